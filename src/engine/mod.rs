//! The engine: simulated guests writing stamped blocks into real images, and live storage
//! migrations copying them (SPEC §4–§5). It knows nothing of egui or threads: `apply` a
//! command, `advance` the simulated clock; whoever drives it decides the pacing.
//!
//! Time is simulated, in microseconds. Every guest I/O and every copy run is an event in
//! one queue, processed in time order with deterministic tie-breaks, so a seed reproduces
//! a run byte for byte. The bytes are real: every write is a 4 KiB `pwrite` plus a journal
//! line, every copy run a large read and write.

mod command;
pub mod copy;
mod failover;
mod group;
mod health;
mod hosts;
mod migration;
mod placement;
mod replication;
mod rescan;
mod stretch;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::disk::{
    self, BLOCK_SIZE, Block, BlockContent, BlockRead, DirtyTracker, Horizon, ImageFile, Journal,
    JournalEntry, JournalWriter, RawUuid, VmDisk, VmVerify,
};
use crate::dr::{self, Rating};
use crate::topology::Topology;
use crate::workspace::{MigrationMarks, Workspace, WorkspaceError};
pub use command::{Command, Outcome};
use copy::{CopyCore, CopyMode, Direction, WriteRoute};
pub use failover::{
    FailoverKind, FailoverPlan, FailoverReport, FailoverState, HeldCapacity, HostCapacity, PlanVm,
    VmResult,
};
use failover::{PendingFailover, RecoveredVm};
pub use group::{GroupMemberView, GroupMigrationView, GroupPhase};
pub use health::ArrayView;
pub use hosts::HostView;
pub use migration::Phase;
use migration::{Migration, MigrationRecord, RoutedReader};
pub use placement::PlacementView;
use replication::{GroupRt, GroupSaved};
pub use replication::{
    GroupSpec, GroupState, GroupView, Pair, PublishedPoint, groups_of, human_bytes,
    pending_publishes,
};
pub use stretch::DistributedView;

/// Simulated time in microseconds since the workspace was created.
pub type SimTime = u64;
pub const SECOND: SimTime = 1_000_000;
pub const MINUTE: SimTime = 60 * SECOND;

/// Simulated minutes (as scenarios write them) to `SimTime`.
pub fn from_minutes(m: f64) -> SimTime {
    (m.max(0.0) * MINUTE as f64).round() as SimTime
}

/// `SimTime` as minutes.
pub fn to_minutes(t: SimTime) -> f64 {
    t as f64 / MINUTE as f64
}

/// "mm:ss.s" for logs.
pub fn format_time(t: SimTime) -> String {
    let secs = t as f64 / SECOND as f64;
    let m = (secs / 60.0).floor();
    format!("{:02}:{:04.1}", m as u64, secs - m * 60.0)
}

/// Tunables of the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineOptions {
    pub seed: u64,
    /// The copy's data block (default 64 KiB); runs are whole data blocks.
    pub data_block_bytes: u64,
    /// The least a copy run coalesces (default 1 MiB).
    pub run_bytes: u64,
    /// New mirrored writes wait while more than this many are pending (default 16; SPEC §5,
    /// `copy::mirror_must_wait`).
    pub mirror_max_pending: usize,
    /// How often the recovery manager's location metadata is replicated (default 5 min).
    #[serde(default = "default_metadata_minutes")]
    pub metadata_interval_minutes: f64,
}

fn default_metadata_minutes() -> f64 {
    5.0
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            seed: 1,
            data_block_bytes: 64 * 1024,
            run_bytes: 1024 * 1024,
            mirror_max_pending: 16,
            metadata_interval_minutes: default_metadata_minutes(),
        }
    }
}

impl EngineOptions {
    /// Blocks per copy run: at least `run_bytes`, a whole number of data blocks.
    fn run_blocks(&self) -> u64 {
        let db = (self.data_block_bytes / BLOCK_SIZE as u64).max(1);
        let want = (self.run_bytes / BLOCK_SIZE as u64).max(1);
        want.div_ceil(db) * db
    }

    fn metadata_interval(&self) -> SimTime {
        from_minutes(self.metadata_interval_minutes).max(SECOND)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Disk(#[from] disk::DiskError),
    #[error(transparent)]
    Replica(#[from] crate::replica::ReplicaError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("VM {0:?} does not exist")]
    NoSuchVm(String),
    #[error("VM {vm:?} cannot move to {to:?}: {reason}")]
    Impact {
        vm: String,
        to: String,
        reason: dr::ImpactError,
    },
    #[error("VM {0:?} is already migrating; cancel it or wait for it to finish")]
    AlreadyMigrating(String),
    #[error("VM {0:?} is not migrating")]
    NotMigrating(String),
    #[error(
        "no space on datastore {datastore:?}: VM {vm:?} needs {need_mib} MiB, {free_mib} MiB are free"
    )]
    NoSpace {
        datastore: String,
        vm: String,
        need_mib: u64,
        free_mib: u64,
    },
    #[error("VM {vm:?}: image {path} holds {found} blocks, the topology says {expected}")]
    ImageSize {
        vm: String,
        path: String,
        found: u64,
        expected: u64,
    },
    #[error("{file}: {message}")]
    State { file: String, message: String },
    #[error("datastore {0:?} does not exist")]
    NoSuchDatastore(String),
    #[error("datastore {0:?} is not replicated (no replication group)")]
    NotReplicated(String),
    #[error("replication: {0}")]
    Replication(String),
    #[error("failover: {0}")]
    Failover(String),
    #[error("VM {vm:?} is down: {why}")]
    VmDown { vm: String, why: String },
    /// A command that breaks a rule: the object and the rule, in words.
    #[error("{object}: {rule}")]
    Rule { object: String, rule: String },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
    let what = what.into();
    move |source| EngineError::Io { what, source }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LogLevel {
    Info,
    Warning,
    Error,
}

/// One line of the engine's event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub at: SimTime,
    pub level: LogLevel,
    pub message: String,
}

/// A migration as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationView {
    pub id: String,
    pub vm: String,
    pub from: String,
    pub to: String,
    pub mode: CopyMode,
    pub phase: Phase,
    pub rolling_back: bool,
    /// Why the roll-back stopped (phase `RollbackFailed`); the task list shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub blocks: u64,
    pub copied_blocks: u64,
    /// Blocks the copier still has to copy (forward, or back when cancelling).
    pub blocks_left: u64,
    pub mirror_pending: usize,
    pub bytes_copied: u64,
    pub started_at: SimTime,
    /// Simulated copy rate of the two datastores, MiB/s.
    pub mib_per_s: f64,
    /// Simulated seconds to go at that rate.
    pub eta_s: f64,
}

/// A VM as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmView {
    pub id: String,
    pub datastore: String,
    pub instance: String,
    pub running: bool,
    pub site: String,
    pub host: String,
    /// Stopped by a disaster, a failover or a host fault.
    pub down: bool,
    /// Why it is down, in words (empty while up).
    pub down_reason: String,
    /// Running at the recovery site after a failover.
    pub recovered: bool,
    pub writes: u64,
    pub reads: u64,
    /// Reads that did not return the last write (must stay 0).
    pub read_errors: u64,
    pub migrations_done: u64,
    pub migration: Option<MigrationView>,
}

/// Everything a view needs to draw, cheap to clone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub now: SimTime,
    pub workloads_on: bool,
    pub vms: Vec<VmView>,
    /// Recent guest write latencies: (time, vm index, latency in µs).
    #[serde(skip)]
    pub latencies: Vec<(SimTime, usize, u64)>,
    pub groups: Vec<GroupView>,
    pub link_up: bool,
    pub sites_down: Vec<String>,
    /// When each site of `sites_down` was lost (simulated time).
    pub sites_lost_at: BTreeMap<String, SimTime>,
    /// The latest failover, if any.
    pub failover: Option<FailoverReport>,
    pub test_failover_up: bool,
    pub distributed: Vec<DistributedView>,
    pub arrays: Vec<ArrayView>,
    pub hosts: Vec<HostView>,
    pub group_migrations: Vec<GroupMigrationView>,
    pub placement: Vec<PlacementView>,
}

/// Persisted in `state/engine.ron`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EngineState {
    now: SimTime,
    workloads_on: bool,
    next_migration: u64,
    options: EngineOptions,
    #[serde(default)]
    groups: BTreeMap<String, GroupSaved>,
    #[serde(default = "yes")]
    link_up: bool,
    /// Lost sites and when.
    #[serde(default)]
    sites_down: BTreeMap<String, SimTime>,
    #[serde(default)]
    recovered: BTreeMap<String, RecoveredVm>,
    /// VMs stopped (by a planned failover in progress).
    #[serde(default)]
    stopped: Vec<String>,
    #[serde(default)]
    failovers: Vec<FailoverReport>,
    #[serde(default)]
    pending_failover: Option<PendingFailover>,
    #[serde(default)]
    test_dir: Option<PathBuf>,
    #[serde(default)]
    stretch: stretch::StretchSaved,
    #[serde(default)]
    health: health::HealthSaved,
    #[serde(default)]
    hosts: hosts::HostsSaved,
    #[serde(default)]
    group: group::GroupMoveSaved,
    #[serde(default)]
    placement: placement::PlacementSaved,
}

fn yes() -> bool {
    true
}

/// Where each VM lives, per the recovery manager (`state/locations.ron`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Locations {
    pub vms: BTreeMap<String, Location>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub datastore: String,
    pub instance: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Write,
    Read,
}

#[derive(Debug, Clone, Copy)]
struct GuestOp {
    kind: OpKind,
    block: u64,
    issued: SimTime,
}

/// Event kinds, in the order they run at equal times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    RunDone,
    MirrorLand,
    Publish,
    Cut,
    Metadata,
    Stretch,
    Health,
    Host,
    Group,
    Placement,
    GuestWrite,
    GuestRead,
}

/// A queued event: (time, kind, vm index, generation).
type Queued = Reverse<(SimTime, Ev, usize, u64)>;

struct VmRt {
    id: String,
    uuid: RawUuid,
    site: String,
    datastore: String,
    instance: String,
    dir: PathBuf,
    image: ImageFile,
    blocks: u64,
    write_iops: u32,
    read_iops: u32,
    rng: u64,
    host: String,
    /// Stopped: its site was lost, or a failover stopped it.
    down: bool,
    /// Where a failover brought it up.
    recovered: Option<RecoveredVm>,
    /// Bumped to drop queued guest events (workloads stopped).
    guest_gen: u64,
    /// Bumped to drop queued run events (a run abandoned by a cancel).
    run_gen: u64,
    /// The oracle: the seq last written to each block (0 = never).
    last_seq: Vec<u64>,
    waiting: VecDeque<GuestOp>,
    migration: Option<Box<Migration>>,
    writes: u64,
    reads: u64,
    read_errors: u64,
    migrations_done: u64,
}

struct SiteIo {
    journal: JournalWriter,
}

pub struct Engine {
    ws: Workspace,
    opts: EngineOptions,
    now: SimTime,
    workloads_on: bool,
    next_migration: u64,
    vms: Vec<VmRt>,
    sites: BTreeMap<String, SiteIo>,
    /// The next guest write's seq: one sequence for all sites, so a VM's history stays
    /// ordered across a failover.
    next_seq: u64,
    queue: BinaryHeap<Queued>,
    log: Vec<LogLine>,
    latencies: VecDeque<(SimTime, usize, u64)>,
    groups: Vec<GroupRt>,
    /// Change tracking of every image on a replicated datastore, by path.
    trackers: HashMap<PathBuf, Arc<DirtyTracker>>,
    link_up: bool,
    sites_down: BTreeMap<String, SimTime>,
    failovers: Vec<FailoverReport>,
    pending_failover: Option<PendingFailover>,
    test_dir: Option<PathBuf>,
    metadata_gen: u64,
    /// Copy throughput of every datastore, MiB/s ([`throughput_of`] the topology in use,
    /// made anew when a rescan adopts another).
    throughput: HashMap<String, f64>,
    stretch: stretch::StretchRt,
    health: health::HealthRt,
    hosts: hosts::HostsRt,
    group: group::GroupMoveRt,
    placement: placement::PlacementRt,
}

/// How many recent write latencies the snapshot carries.
const LATENCY_SAMPLES: usize = 2048;
/// Read mismatches logged per VM before going quiet.
const READ_ERRORS_LOGGED: u64 = 3;

/// splitmix64: the guests' seeded random numbers.
/// Copy throughput of every datastore of `t`, MiB/s.
fn throughput_of(t: &Topology) -> HashMap<String, f64> {
    t.datastores
        .iter()
        .map(|d| (d.id.clone(), d.throughput_mib_s))
        .collect()
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn seed_for(seed: u64, uuid: &RawUuid) -> u64 {
    let mut s = seed;
    for chunk in uuid.chunks(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        s ^= u64::from_le_bytes(b);
        splitmix(&mut s);
    }
    s
}

fn ron_pretty<T: Serialize>(v: &T) -> String {
    let cfg = ron::ser::PrettyConfig::new().struct_names(true);
    // Plain data always serializes.
    ron::ser::to_string_pretty(v, cfg).expect("state serializes") + "\n"
}

fn read_ron<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, EngineError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path.display().to_string()))?;
    ron::from_str(&text).map_err(|e| EngineError::State {
        file: path.display().to_string(),
        message: e.to_string(),
    })
}

fn write_ron<T: Serialize>(path: &Path, v: &T) -> Result<(), EngineError> {
    crate::fsutil::write_atomic(path, ron_pretty(v).as_bytes())
        .map_err(io_err(path.display().to_string()))
}

/// A named fault point (see [`crate::fault`]): an injected error when a crash test arms it.
fn fault_point(name: &'static str) -> Result<(), EngineError> {
    crate::fault::point(name).map_err(io_err(name))
}

/// Fails once an injected crash has fired (nothing more reaches the disk).
fn alive() -> Result<(), EngineError> {
    crate::fault::alive().map_err(io_err("after an injected crash"))
}

/// Removes a directory tree; one that is not there is not an error.
fn remove_dir_if_exists(p: &Path) -> Result<(), EngineError> {
    alive()?;
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(p.display().to_string())(e)),
    }
}

/// Removes a file; one that is not there is not an error.
fn remove_file_if_exists(p: &Path) -> Result<(), EngineError> {
    alive()?;
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(p.display().to_string())(e)),
    }
}

/// The file of [`Engine::record_clock`] in `state/`.
pub const CLOCK_FILE: &str = "clock";

/// The clock record: the time (u64 LE) and its bitwise complement, so a torn or foreign
/// record is recognized.
fn clock_record(now: SimTime) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&now.to_le_bytes());
    b[8..].copy_from_slice(&(!now).to_le_bytes());
    b
}

/// The time of a clock record, if it is one.
fn read_clock_record(b: &[u8]) -> Option<SimTime> {
    let now = SimTime::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let check = SimTime::from_le_bytes(b.get(8..16)?.try_into().ok()?);
    (check == !now).then_some(now)
}

/// Simulated bytes per microsecond for a rate in MiB/s.
fn bytes_per_us(mib_s: f64) -> f64 {
    mib_s * 1024.0 * 1024.0 / SECOND as f64
}

/// Simulated time to move `bytes` at `mib_s` (at least 1 µs).
fn duration_for(bytes: u64, mib_s: f64) -> SimTime {
    ((bytes as f64 / bytes_per_us(mib_s)).ceil() as SimTime).max(1)
}

impl Engine {
    /// Materializes `topology` into a new workspace at `root` and starts an engine on it.
    pub fn create(
        root: &Path,
        topology: &Topology,
        opts: EngineOptions,
    ) -> Result<Engine, EngineError> {
        let ws = Workspace::create(root, topology)?;
        fault_point("create.workspace-made")?;
        Engine::write_initial_state(&ws, topology, opts)?;
        // Nothing has run yet: there is no write in flight to look for.
        std::fs::write(Engine::clean_marker(&ws), b"clean\n")
            .map_err(io_err("writing the clean-shutdown marker"))?;
        Engine::start(ws)
    }

    /// The state of a workspace on which nothing has run yet.
    fn write_initial_state(
        ws: &Workspace,
        topology: &Topology,
        opts: EngineOptions,
    ) -> Result<(), EngineError> {
        let state = EngineState {
            now: 0,
            workloads_on: false,
            next_migration: 1,
            options: opts,
            groups: replication::groups_of(topology)
                .into_iter()
                .map(|g| {
                    let saved = GroupSaved {
                        // The first cycle (the initial full copy) cuts at time 0.
                        next_cut: Some(0),
                        ..GroupSaved::default()
                    };
                    (g.key, saved)
                })
                .collect(),
            link_up: true,
            sites_down: BTreeMap::new(),
            recovered: BTreeMap::new(),
            stopped: Vec::new(),
            failovers: Vec::new(),
            pending_failover: None,
            test_dir: None,
            stretch: Default::default(),
            health: Default::default(),
            hosts: Default::default(),
            group: Default::default(),
            placement: Default::default(),
        };
        write_ron(&ws.state_dir().join("engine.ron"), &state)?;
        let locations = Locations {
            vms: topology
                .vms
                .iter()
                .map(|v| {
                    (
                        v.id.clone(),
                        Location {
                            datastore: v.datastore.clone(),
                            instance: v.id.clone(),
                        },
                    )
                })
                .collect(),
        };
        write_ron(&ws.state_dir().join("locations.ron"), &locations)?;
        fault_point("create.state-written")
    }

    /// Opens an existing workspace, performing crash recovery: a cut-short journal line is
    /// dropped, a write that was in flight is journaled, and interrupted migrations resume
    /// or roll back.
    pub fn open(root: &Path) -> Result<Engine, EngineError> {
        Engine::open_with(root, EngineOptions::default())
    }

    /// Opens `root`; `opts` only serve to finish a create that a crash interrupted.
    fn open_with(root: &Path, opts: EngineOptions) -> Result<Engine, EngineError> {
        let ws = Workspace::open(root)?;
        // No link out of the workspace, no missing journal: refuse before touching anything.
        ws.check_layout()?;
        // A crash during create: topology.ron is the last file of the workspace but comes
        // before the engine's state; without engine.ron (or locations.ron) nothing has run
        // yet, so the initial state is written now.
        let state = ws.state_dir();
        if !state.join("engine.ron").exists() || !state.join("locations.ron").exists() {
            let topology = ws.topology().clone();
            Engine::write_initial_state(&ws, &topology, opts)?;
        }
        Engine::start(ws)
    }

    /// Opens `root` if it holds a workspace, else materializes `topology` there. Opening
    /// adopts `topology`'s arrays, LUNs, datastores, protection groups, hosts and links
    /// (a rescan, SPEC §2; VM placements stay the workspace's); if they cannot be adopted
    /// the workspace is closed again unchanged and the refusal is the error.
    pub fn open_or_create(
        root: &Path,
        topology: &Topology,
        opts: EngineOptions,
    ) -> Result<Engine, EngineError> {
        if root.join("topology.ron").exists() {
            Engine::open_adopting(root, topology, opts)
        } else {
            Engine::create(root, topology, opts)
        }
    }

    fn state_path(&self) -> PathBuf {
        self.ws.state_dir().join("engine.ron")
    }

    fn migrations_dir(ws: &Workspace) -> PathBuf {
        ws.state_dir().join("migrations")
    }

    fn clean_marker(ws: &Workspace) -> PathBuf {
        ws.state_dir().join("clean-shutdown")
    }

    fn clock_path(ws: &Workspace) -> PathBuf {
        ws.state_dir().join(CLOCK_FILE)
    }

    /// Records the simulated time in `state/clock`, so that a reopen after a crash never
    /// starts before a time the operator has seen. engine.ron holds `now` only as of the
    /// last command, event or close that saved the state; the console calls this after
    /// every slice of the clock, so it is cheap: 16 bytes written in place, not synced
    /// (a process crash keeps what the kernel has). The record carries its own check, so a
    /// torn one is ignored and the open falls back to engine.ron.
    pub fn record_clock(&self) -> Result<(), EngineError> {
        use std::os::unix::fs::FileExt;
        let path = Engine::clock_path(&self.ws);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(path.display().to_string()))?;
        file.write_all_at(&clock_record(self.now), 0)
            .map_err(io_err(path.display().to_string()))
    }

    fn start(ws: Workspace) -> Result<Engine, EngineError> {
        let state: EngineState = read_ron(&ws.state_dir().join("engine.ron"))?;
        let locations: Locations = read_ron(&ws.state_dir().join("locations.ron"))?;
        let topo = ws.topology().clone();
        let was_clean = Engine::clean_marker(&ws).exists();
        // The clock never goes back: the last time recorded ([`Engine::record_clock`]) may
        // be later than the state saved last (a crash between two saves).
        let recorded = std::fs::read(Engine::clock_path(&ws))
            .ok()
            .and_then(|b| read_clock_record(&b));
        let now = state.now.max(recorded.unwrap_or(0));

        // Journals: drop a cut-short last line, learn each site's last seq and each VM's
        // last write to every block (the guests' oracle).
        // Every site has a journal: a recovery site's fills after a failover.
        let mut journals = BTreeMap::new();
        for site in &topo.sites {
            let path = ws.journal_path(&site.id);
            repair_journal_tail(&path)?;
            journals.insert(site.id.clone(), disk::read_journal(&path)?);
        }
        let next_seq = journals.values().map(|j| j.last_seq).max().unwrap_or(0) + 1;
        // Split by VM once: each VM then finds its history without scanning the journal.
        let journals: BTreeMap<String, SiteJournal> = journals
            .into_iter()
            .map(|(site, j)| (site, SiteJournal::new(j)))
            .collect();

        let mut vms = Vec::new();
        for vm in &topo.vms {
            let ds = topo
                .datastore(&vm.datastore)
                .ok_or_else(|| EngineError::NoSuchVm(vm.id.clone()))?;
            let recovered = state.recovered.get(&vm.id).cloned();
            let (site, datastore, instance, host) = match &recovered {
                Some(r) => (
                    r.site.clone(),
                    r.datastore.clone(),
                    r.instance.clone(),
                    r.host.clone(),
                ),
                None => (
                    ds.site.clone(),
                    ds.id.clone(),
                    locations
                        .vms
                        .get(&vm.id)
                        .filter(|l| l.datastore == vm.datastore)
                        .map(|l| l.instance.clone())
                        .unwrap_or_else(|| vm.id.clone()),
                    vm.host.clone(),
                ),
            };
            let dir = ws.datastore_dir(&datastore)?.join(&instance);
            let uuid = disk::raw_uuid(&vm.uuid).ok_or_else(|| EngineError::State {
                file: "topology.ron".into(),
                message: format!("VM {:?}: bad uuid", vm.id),
            })?;
            let image = ImageFile::open(&dir.join("disk0.img"))?.without_readahead();
            let blocks = vm.disk_mib * 1024 * 1024 / BLOCK_SIZE as u64;
            if image.block_count() != blocks {
                return Err(EngineError::ImageSize {
                    vm: vm.id.clone(),
                    path: image.path().display().to_string(),
                    found: image.block_count(),
                    expected: blocks,
                });
            }
            let mut last_seq = vec![0; blocks as usize];
            for e in history(&journals, &site, recovered.as_ref(), &uuid).entries {
                if let Some(s) = last_seq.get_mut(e.block as usize) {
                    *s = e.seq;
                }
            }
            let w = vm.workload.clone();
            let down = recovered.is_none()
                && (state.sites_down.contains_key(&site) || state.stopped.contains(&vm.id));
            vms.push(VmRt {
                id: vm.id.clone(),
                uuid,
                site,
                datastore,
                instance,
                host,
                down,
                recovered,
                dir,
                image,
                blocks,
                write_iops: w.as_ref().map_or(0, |w| w.write_iops),
                read_iops: w.as_ref().map_or(0, |w| w.read_iops),
                rng: seed_for(state.options.seed, &uuid),
                guest_gen: 0,
                run_gen: 0,
                last_seq,
                waiting: VecDeque::new(),
                migration: None,
                writes: 0,
                reads: 0,
                read_errors: 0,
                migrations_done: 0,
            });
        }

        let mut sites = BTreeMap::new();
        for site in journals.keys() {
            sites.insert(
                site.clone(),
                SiteIo {
                    journal: JournalWriter::open(&ws.journal_path(site))?,
                },
            );
        }

        let mut engine = Engine {
            ws,
            opts: state.options.clone(),
            now,
            workloads_on: false,
            next_migration: state.next_migration,
            vms,
            sites,
            next_seq,
            queue: BinaryHeap::new(),
            log: Vec::new(),
            latencies: VecDeque::new(),
            groups: Vec::new(),
            trackers: HashMap::new(),
            link_up: state.link_up,
            sites_down: state.sites_down.clone(),
            failovers: state.failovers.clone(),
            pending_failover: state.pending_failover.clone(),
            test_dir: state.test_dir.clone(),
            metadata_gen: 0,
            throughput: throughput_of(&topo),
            stretch: Default::default(),
            health: Default::default(),
            hosts: Default::default(),
            group: Default::default(),
            placement: Default::default(),
        };
        engine.restore_stretch(state.stretch.clone())?;
        engine.restore_health(state.health.clone())?;
        engine.restore_hosts(state.hosts.clone())?;
        engine.restore_group(state.group.clone())?;
        engine.restore_placement(state.placement.clone())?;
        // Removed only now that every image opened: a refused open changes nothing.
        if was_clean {
            std::fs::remove_file(Engine::clean_marker(&engine.ws))
                .map_err(io_err("removing the clean-shutdown marker"))?;
        }
        if now > state.now {
            engine.info(format!(
                "Recovery: the clock resumes at {}, the last time recorded (the state was saved at {})",
                format_time(now),
                format_time(state.now)
            ));
        }
        engine.recover_migrations()?;
        engine.roll_back_unsaved_group()?;
        if !was_clean {
            engine.journal_in_flight_writes()?;
        }
        engine.start_replication(&state.groups)?;
        engine.attach_trackers()?;
        let first = engine.now + engine.opts.metadata_interval();
        engine.queue.push(Reverse((first, Ev::Metadata, 0, 0)));
        if state.workloads_on {
            engine.start_workloads();
        }
        Ok(engine)
    }

    /// After a crash, the write in flight may be on disk but not in the journal: find a
    /// block stamped with the next seq and journal it, so the journal describes the disks.
    fn journal_in_flight_writes(&mut self) -> Result<(), EngineError> {
        for i in 0..self.vms.len() {
            let site = self.vms[i].site.clone();
            let next = self.next_seq;
            if !self.sites.contains_key(&site) {
                continue;
            }
            let vm = &self.vms[i];
            let mut images: Vec<&ImageFile> = vec![&vm.image];
            if let Some(m) = &vm.migration {
                images = vec![&m.src, &m.dst];
            }
            let mut found = None;
            for img in images {
                if let Some(b) = find_stamp(img, &vm.uuid, next)? {
                    found = Some(b);
                    break;
                }
            }
            if let Some(block) = found {
                let uuid = self.vms[i].uuid;
                let io = self.sites.get_mut(&site).expect("site checked above");
                io.journal
                    .append(&JournalEntry {
                        seq: next,
                        uuid,
                        block,
                    })
                    .map_err(io_err("appending to the journal"))?;
                self.next_seq += 1;
                self.vms[i].last_seq[block as usize] = next;
                let id = self.vms[i].id.clone();
                self.info(format!(
                    "Recovery: the write in flight at the crash (seq {next}, VM {id}, block {block}) reached the disk; journaled it"
                ));
            }
        }
        Ok(())
    }

    fn recover_migrations(&mut self) -> Result<(), EngineError> {
        let dir = Engine::migrations_dir(&self.ws);
        let mut records = Vec::new();
        if dir.exists() {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(io_err(dir.display().to_string()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "ron"))
                .collect();
            paths.sort();
            for p in paths {
                records.push(read_ron::<MigrationRecord>(&p)?);
            }
        }
        // The id counter lives in engine.ron, which a migration's start does not rewrite: after
        // a crash it may lag the records on disk, and a new migration would take a running
        // one's id (and overwrite its record and bitmap). Move it past every record.
        for rec in &records {
            if let Some(n) = rec
                .id
                .strip_prefix("m-")
                .and_then(|n| n.parse::<u64>().ok())
            {
                self.next_migration = self.next_migration.max(n + 1);
            }
        }
        for rec in records {
            let Some(i) = self.vm_index(&rec.vm) else {
                continue;
            };
            let vm = &self.vms[i];
            if vm.recovered.is_some() || (vm.down && !self.ha_down_for_host(&vm.id)) {
                // Its site is lost (or a failover stopped it): the migration stays frozen
                // where the disaster left it. A VM down only because its host failed
                // still has its storage: its migration carries on.
                continue;
            }
            let src_dir = self.ws.datastore_dir(&rec.from)?.join(&rec.source_instance);
            let dst_dir = self.ws.datastore_dir(&rec.to)?.join(&rec.target_instance);
            match rec.phase {
                Phase::Preparing => {
                    // Half made: undo it. The source was never written elsewhere.
                    if dst_dir.exists() {
                        self.remove_instance_dir(&dst_dir)?;
                    }
                    self.set_marks(&src_dir, None)?;
                    self.remove_record(&rec.id)?;
                    self.info(format!(
                        "Recovery: migration {} of {} had not started copying; undone",
                        rec.id, rec.vm
                    ));
                }
                Phase::Completing => {
                    self.finish_completion(i, &rec, &src_dir, &dst_dir)?;
                    self.info(format!(
                        "Recovery: migration {} of {} had finished copying; completed it",
                        rec.id, rec.vm
                    ));
                }
                Phase::Copying | Phase::Cancelling | Phase::RollbackFailed
                    if Workspace::read_config(&src_dir).is_ok_and(|c| c.migration.is_none()) =>
                {
                    // Only the end of a cancel clears the source's marks while the record
                    // lives: the crash fell in it (the target maybe gone already, which
                    // made the open fail). The source is current: finish the cancel.
                    if dst_dir.exists() {
                        self.remove_instance_dir(&dst_dir)?;
                    }
                    self.remove_record(&rec.id)?;
                    self.info(format!(
                        "Recovery: migration {} of {} was being cancelled; finished the cancel",
                        rec.id, rec.vm
                    ));
                }
                Phase::Copying | Phase::Cancelling | Phase::RollbackFailed => {
                    let mut m = self.load_migration(rec.clone(), src_dir, dst_dir)?;
                    let cleared = reconcile_bits(&mut m)?;
                    if cleared > 0 {
                        self.info(format!(
                            "Recovery: {cleared} block(s) of {} were marked newer on the destination but the write had not landed; the source copy stands",
                            rec.vm
                        ));
                    }
                    if rec.phase == Phase::RollbackFailed {
                        // A reopen retries a roll-back that an I/O error stopped.
                        m.core.start_rollback();
                        self.record_rollback_retried(&mut m)?;
                    } else if rec.phase == Phase::Cancelling {
                        m.core.start_rollback();
                    } else if rec.mode == CopyMode::Mirror {
                        // Mirrored writes in flight at the crash may be missing on the
                        // destination: copy again from the start (the source is complete).
                        m.core.cursor = 0;
                    }
                    let what = if rec.phase == Phase::RollbackFailed {
                        "retries its failed roll-back"
                    } else if rec.phase == Phase::Cancelling {
                        "resumes its roll-back"
                    } else {
                        "resumes copying"
                    };
                    self.info(format!(
                        "Recovery: migration {} of {} {what} at block {} of {}",
                        rec.id, rec.vm, m.core.cursor, m.core.blocks
                    ));
                    self.vms[i].migration = Some(Box::new(m));
                    let now = self.now;
                    self.start_next_run(i, now)?;
                }
            }
        }
        Ok(())
    }

    fn load_migration(
        &self,
        rec: MigrationRecord,
        src_dir: PathBuf,
        dst_dir: PathBuf,
    ) -> Result<Migration, EngineError> {
        let bitmap_path = Engine::migrations_dir(&self.ws).join(format!("{}.bitmap", rec.id));
        let mut core = CopyCore::new(rec.mode, rec.blocks, self.opts.run_blocks());
        core.cursor = rec.cursor.min(rec.blocks);
        core.bits = Migration::load_bitmap(&bitmap_path, rec.blocks)
            .map_err(io_err(bitmap_path.display().to_string()))?;
        Migration::new(rec, core, src_dir, dst_dir, &bitmap_path)
            .map_err(io_err("reopening a migration's images"))
    }

    /// Writes engine state and a clean-shutdown marker. Dropping without this is a crash.
    pub fn close(mut self) -> Result<(), EngineError> {
        self.persist_state()?;
        for i in 0..self.vms.len() {
            if let Some(m) = &mut self.vms[i].migration {
                m.mark_cursor_persisted();
                let rec = m.rec.clone();
                self.write_record(&rec)?;
            }
        }
        std::fs::write(Engine::clean_marker(&self.ws), b"clean\n")
            .map_err(io_err("writing the clean-shutdown marker"))
    }

    fn persist_state(&self) -> Result<(), EngineError> {
        alive()?;
        write_ron(
            &self.state_path(),
            &EngineState {
                now: self.now,
                workloads_on: self.workloads_on,
                next_migration: self.next_migration,
                options: self.opts.clone(),
                groups: self
                    .groups
                    .iter()
                    .map(|g| (g.spec.key.clone(), g.saved.clone()))
                    .collect(),
                link_up: self.link_up,
                sites_down: self.sites_down.clone(),
                recovered: self
                    .vms
                    .iter()
                    .filter_map(|v| v.recovered.clone().map(|r| (v.id.clone(), r)))
                    .collect(),
                stopped: self
                    .vms
                    .iter()
                    .filter(|v| v.down && v.recovered.is_none())
                    .map(|v| v.id.clone())
                    .collect(),
                failovers: self.failovers.clone(),
                pending_failover: self.pending_failover.clone(),
                test_dir: self.test_dir.clone(),
                stretch: self.stretch_saved(),
                health: self.health_saved(),
                hosts: self.hosts_saved(),
                group: self.group_saved(),
                placement: self.placement_saved(),
            },
        )
    }

    pub fn now(&self) -> SimTime {
        self.now
    }

    /// The sites lost in a disaster, and when.
    pub fn sites_lost(&self) -> &BTreeMap<String, SimTime> {
        &self.sites_down
    }

    pub fn workspace(&self) -> &Workspace {
        &self.ws
    }

    pub fn topology(&self) -> &Topology {
        self.ws.topology()
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Takes the log lines produced since the last call.
    pub fn take_log(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.log)
    }

    fn push_log(&mut self, level: LogLevel, message: String) {
        self.log.push(LogLine {
            at: self.now,
            level,
            message,
        });
    }

    fn info(&mut self, message: String) {
        self.push_log(LogLevel::Info, message);
    }

    fn vm_index(&self, id: &str) -> Option<usize> {
        self.vms.iter().position(|v| v.id == id)
    }

    /// Carries out a command at the current simulated time.
    pub fn apply(&mut self, cmd: Command) -> Result<Outcome, EngineError> {
        let out = match cmd {
            Command::StartWorkloads => {
                self.start_workloads();
                Outcome::Done("guests started".into())
            }
            Command::StopWorkloads => {
                self.stop_workloads();
                Outcome::Done("guests stopped".into())
            }
            Command::Migrate {
                vm,
                to,
                mode,
                confirm,
            } => self.migrate(&vm, &to, mode, confirm)?,
            Command::CancelMigration { vm } => self.cancel(&vm)?,
            Command::RetryRollback { vm } => self.retry_rollback(&vm)?,
            Command::ReplicateNow { datastore } => self.replicate_now(&datastore)?,
            Command::PauseReplication { datastore } => {
                Outcome::Done(self.pause_replication(&datastore, true)?)
            }
            Command::ResumeReplication { datastore } => {
                Outcome::Done(self.pause_replication(&datastore, false)?)
            }
            Command::LinkDown => Outcome::Done(self.set_link(false)?),
            Command::LinkUp => Outcome::Done(self.set_link(true)?),
            Command::Disaster { site } => self.disaster(&site)?,
            Command::Failover {
                protection_groups,
                kind,
            } => self.failover(protection_groups, kind)?,
            Command::CleanupTestFailover => self.cleanup_test()?,
            Command::CreateDatastore { datastore } => self.create_datastore(&datastore)?,
            Command::PartitionSite { site } => self.partition_site(&site)?,
            Command::HealPartition => self.heal_partition()?,
            Command::ArrayFault { array } => self.array_fault(&array)?,
            Command::ArrayHealthy { array } => self.array_healthy(&array)?,
            Command::HostFault { host } => self.host_fault(&host)?,
            Command::HostHealthy { host } => self.host_healthy(&host)?,
            Command::MigrateGroup { from, to, confirm } => {
                self.migrate_group(&from, &to, confirm)?
            }
            Command::EnterMaintenance { datastore, confirm } => {
                self.enter_maintenance(&datastore, confirm)?
            }
            Command::ExitMaintenance { datastore } => self.exit_maintenance(&datastore)?,
            Command::Balance { cluster, confirm } => self.balance(&cluster, confirm)?,
            Command::Rescan { file } => self.rescan_file(&file)?,
        };
        self.persist_state()?;
        Ok(out)
    }

    fn start_workloads(&mut self) {
        if self.workloads_on {
            return;
        }
        self.workloads_on = true;
        for i in 0..self.vms.len() {
            self.start_guest(i);
        }
        self.info("Guests started".into());
    }

    /// Starts VM `i`'s guest I/O if workloads are on and the VM is up.
    fn start_guest(&mut self, i: usize) {
        if !self.workloads_on || self.vms[i].down {
            return;
        }
        let now = self.now;
        let vm = &mut self.vms[i];
        vm.guest_gen += 1;
        let gen_ = vm.guest_gen;
        // A random phase so guests do not all fire at once.
        for (iops, ev) in [
            (vm.write_iops, Ev::GuestWrite),
            (vm.read_iops, Ev::GuestRead),
        ] {
            if iops > 0 {
                let interval = SECOND / u64::from(iops);
                let phase = splitmix(&mut vm.rng) % interval.max(1);
                self.queue.push(Reverse((now + phase, ev, i, gen_)));
            }
        }
    }

    fn stop_workloads(&mut self) {
        if !self.workloads_on {
            return;
        }
        self.workloads_on = false;
        for vm in &mut self.vms {
            vm.guest_gen += 1;
        }
        self.info("Guests stopped".into());
    }

    /// Rates a move the way the wizard does.
    pub fn impact(&self, vm: &str, to: &str) -> Result<dr::Impact, EngineError> {
        dr::impact_for_vm(self.topology(), vm, to).map_err(|reason| EngineError::Impact {
            vm: vm.into(),
            to: to.into(),
            reason,
        })
    }

    /// Free space on a datastore in MiB: its LUNs' capacity less every disk on it,
    /// migration targets included.
    pub fn free_mib(&self, datastore: &str) -> u64 {
        let t = self.topology();
        let Some(ds) = t.datastore(datastore) else {
            return 0;
        };
        let capacity: u64 = t.datastore_luns(ds).map(|l| l.capacity_gib * 1024).sum();
        let used: u64 = t
            .vms
            .iter()
            .filter(|v| v.datastore == datastore)
            .map(|v| v.disk_mib)
            .chain(self.vms.iter().filter_map(|v| {
                v.migration
                    .as_ref()
                    .filter(|m| m.rec.to == datastore)
                    .map(|_| v.blocks * BLOCK_SIZE as u64 / (1024 * 1024))
            }))
            .sum();
        capacity.saturating_sub(used)
    }

    fn migrate(
        &mut self,
        vm: &str,
        to: &str,
        mode: CopyMode,
        confirm: bool,
    ) -> Result<Outcome, EngineError> {
        let i = self
            .vm_index(vm)
            .ok_or_else(|| EngineError::NoSuchVm(vm.into()))?;
        self.check_up(i)?;
        if self.vms[i].migration.is_some() {
            return Err(EngineError::AlreadyMigrating(vm.into()));
        }
        if let Some(refused) = self.placement_refusal(vm, to) {
            return Ok(refused);
        }
        if let Some(refused) = self.health_refusal(i) {
            return Ok(refused);
        }
        self.stretch_check_move(i, to)?;
        // (1) Rate the impact; refuse unless `none` or overridden.
        let impact = self.impact(vm, to)?;
        if let Some(refused) = self.override_gate(
            &format!("Migration of {vm} to {to}"),
            &format!("{vm} to {to}"),
            &impact,
            confirm,
        ) {
            return Ok(refused);
        }
        let need = self.vms[i].blocks * BLOCK_SIZE as u64 / (1024 * 1024);
        let free = self.free_mib(to);
        if need > free {
            return Err(EngineError::NoSpace {
                datastore: to.into(),
                vm: vm.into(),
                need_mib: need,
                free_mib: free,
            });
        }
        // The source must be whole before anything changes.
        let src_dir = self.vms[i].dir.clone();
        let src_img = src_dir.join("disk0.img");
        let src_check = ImageFile::open_read_only(&src_img)?;
        if src_check.block_count() != self.vms[i].blocks {
            return Err(EngineError::ImageSize {
                vm: vm.into(),
                path: src_img.display().to_string(),
                found: src_check.block_count(),
                expected: self.vms[i].blocks,
            });
        }
        let mut src_config = Workspace::read_config(&src_dir)?;

        let id = format!("m-{:04}", self.next_migration);
        self.next_migration += 1;
        let target_instance = self.ws.free_instance_name(to, vm)?;
        let rec = MigrationRecord {
            id: id.clone(),
            vm: vm.into(),
            from: self.vms[i].datastore.clone(),
            to: to.into(),
            source_instance: self.vms[i].instance.clone(),
            target_instance: target_instance.clone(),
            mode,
            phase: Phase::Preparing,
            cursor: 0,
            blocks: self.vms[i].blocks,
            started_at: self.now,
            rating: impact.rating.as_str().into(),
            group: self.group_starting(),
            error: None,
        };
        std::fs::create_dir_all(Engine::migrations_dir(&self.ws))
            .map_err(io_err("creating state/migrations"))?;
        // A crash between removing a finished migration's record and its bitmap leaves the
        // bitmap; were the id reused, its stale bits would skip blocks of this copy.
        remove_file_if_exists(&Engine::migrations_dir(&self.ws).join(format!("{id}.bitmap")))?;
        self.write_record(&rec)?;
        fault_point("migrate.record-preparing")?;

        let undo = |eng: &mut Engine, e: EngineError| -> EngineError {
            // Best effort: the record says Preparing, so a crash here is undone on reopen too.
            let dst = eng.ws.datastore_dir(to).map(|d| d.join(&target_instance));
            if let Ok(dst) = dst
                && dst.exists()
            {
                let _ = eng.remove_instance_dir(&dst);
            }
            let _ = eng.set_marks(&src_dir, None);
            let _ = eng.remove_record(&id);
            e
        };
        // (2) Create the target with marks target, not completed.
        let mut target_config = src_config.clone();
        target_config.migration = Some(MigrationMarks {
            id: id.clone(),
            source: false,
            target: true,
            completed: false,
        });
        if let Err(e) = self
            .ws
            .create_instance(to, &target_instance, &target_config, need.max(1))
            .map_err(EngineError::from)
            .and_then(|_| fault_point("migrate.target-created"))
        {
            return Err(undo(self, e));
        }
        // (3) Mark the source.
        src_config.migration = Some(MigrationMarks {
            id: id.clone(),
            source: true,
            target: false,
            completed: false,
        });
        if let Err(e) = Workspace::write_config(&src_dir, &src_config)
            .map_err(EngineError::from)
            .and_then(|()| fault_point("migrate.source-marked"))
        {
            return Err(undo(self, e));
        }
        let dst_dir = match self.ws.datastore_dir(to) {
            Ok(d) => d.join(&target_instance),
            Err(e) => return Err(undo(self, e.into())),
        };
        let mut rec = rec;
        rec.phase = Phase::Copying;
        if let Err(e) = self
            .write_record(&rec)
            .and_then(|()| fault_point("migrate.record-copying"))
        {
            return Err(undo(self, e));
        }
        let m = match self.load_migration(rec, src_dir.clone(), dst_dir) {
            Ok(m) => m,
            Err(e) => return Err(undo(self, e)),
        };
        self.vms[i].migration = Some(Box::new(m));
        self.attach_trackers()?;
        let now = self.now;
        self.start_next_run(i, now)?;
        let msg = format!(
            "Migration {id} of {vm} from {} to {to} started ({} mode, rating {})",
            self.vms[i].datastore,
            mode.as_str(),
            impact.rating
        );
        self.info(msg.clone());
        Ok(Outcome::Done(msg))
    }

    /// The index of VM `vm`, which must exist, be up and be migrating (for the commands on
    /// its migration).
    fn migrating_vm(&self, vm: &str) -> Result<usize, EngineError> {
        let i = self
            .vm_index(vm)
            .ok_or_else(|| EngineError::NoSuchVm(vm.into()))?;
        self.check_up(i)?;
        if self.vms[i].migration.is_none() {
            return Err(EngineError::NotMigrating(vm.into()));
        }
        Ok(i)
    }

    fn cancel(&mut self, vm: &str) -> Result<Outcome, EngineError> {
        let i = self.migrating_vm(vm)?;
        let m = self.vms[i].migration.as_mut().expect("checked above");
        if m.rec.phase == Phase::RollbackFailed {
            return Ok(Outcome::Done(format!(
                "{vm}: the roll-back of migration {} failed ({}); retry it",
                m.rec.id,
                m.rec.error.as_deref().unwrap_or("I/O error")
            )));
        }
        if m.core.direction == Direction::Back {
            return Ok(Outcome::Done(format!("{vm}: already cancelling")));
        }
        let id = m.rec.id.clone();
        // Abandon the run in flight: nothing of it has landed.
        self.vms[i].run_gen += 1;
        let m = self.vms[i].migration.as_mut().expect("checked above");
        m.run_ends_at = None;
        if m.mode() == CopyMode::Mirror {
            // The source is complete: drop the target.
            self.finish_cancel(i)?;
            let msg = format!("Migration {id} of {vm} cancelled; the source was complete");
            self.info(msg.clone());
            return Ok(Outcome::Done(msg));
        }
        m.core.start_rollback();
        m.rec.phase = Phase::Cancelling;
        let rec = m.rec.clone();
        self.write_record(&rec)?;
        fault_point("cancel.record-cancelling")?;
        let now = self.now;
        self.release_waiting(i, now)?;
        self.start_next_run(i, now)?;
        let msg = format!(
            "Migration {id} of {vm} cancelling: copying the blocks written on the destination back to the source"
        );
        self.info(msg.clone());
        Ok(Outcome::Done(msg))
    }

    /// Commands on a VM need it running.
    fn check_up(&self, i: usize) -> Result<(), EngineError> {
        if self.vms[i].down {
            return Err(EngineError::VmDown {
                vm: self.vms[i].id.clone(),
                why: self.down_reason(i),
            });
        }
        Ok(())
    }

    /// Why VM `i` is down, in words.
    fn down_reason(&self, i: usize) -> String {
        let vm = &self.vms[i];
        if self.ha_down_for_host(&vm.id) {
            format!(
                "its host {} failed; it restarts where capacity is reserved (Resilience tab)",
                vm.host
            )
        } else if self.sites_down.contains_key(&vm.site) {
            format!(
                "its site {} was lost; recover it from the Failover tab",
                vm.site
            )
        } else {
            format!(
                "it was stopped at site {} for a failover; see the Failover tab",
                vm.site
            )
        }
    }

    fn write_record(&self, rec: &MigrationRecord) -> Result<(), EngineError> {
        write_ron(
            &Engine::migrations_dir(&self.ws).join(format!("{}.ron", rec.id)),
            rec,
        )
    }

    fn remove_record(&self, id: &str) -> Result<(), EngineError> {
        let dir = Engine::migrations_dir(&self.ws);
        for ext in ["ron", "bitmap"] {
            remove_file_if_exists(&dir.join(format!("{id}.{ext}")))?;
            fault_point(if ext == "ron" {
                "migration.record-removed"
            } else {
                "migration.bitmap-removed"
            })?;
        }
        Ok(())
    }

    fn set_marks(&self, dir: &Path, marks: Option<MigrationMarks>) -> Result<(), EngineError> {
        if !dir.join("vm.ron").exists() {
            return Ok(());
        }
        let mut c = Workspace::read_config(dir)?;
        if c.migration != marks {
            c.migration = marks;
            Workspace::write_config(dir, &c)?;
            fault_point("migration.marks-written")?;
        }
        Ok(())
    }

    /// Deletes an instance directory (a fault point after it).
    fn remove_instance_dir(&self, dir: &Path) -> Result<(), EngineError> {
        alive()?;
        self.ws.remove_instance(dir)?;
        fault_point("instance.removed")
    }

    /// Starts the next copy run of VM `i`'s migration, or finishes the migration.
    fn start_next_run(&mut self, i: usize, t: SimTime) -> Result<(), EngineError> {
        let rate = self.copy_rate(i);
        let run_gen = self.vms[i].run_gen;
        let Some(m) = self.vms[i].migration.as_mut() else {
            return Ok(());
        };
        if let Some(run) = m.core.begin_run() {
            let bytes: u64 = m
                .core
                .pieces(&run)
                .iter()
                .map(|p| (p.end - p.start) * BLOCK_SIZE as u64)
                .sum();
            let ends = t.max(m.dst_busy_until) + duration_for(bytes, rate);
            m.dst_busy_until = ends;
            m.run_ends_at = Some(ends);
            self.queue.push(Reverse((ends, Ev::RunDone, i, run_gen)));
            return Ok(());
        }
        match m.core.direction {
            Direction::Forward if m.mirror_pending.is_empty() => {
                if self.group_holds_completion(i)? {
                    Ok(())
                } else {
                    self.complete_migration(i)
                }
            }
            // Wait for the mirrored writes to land.
            Direction::Forward => Ok(()),
            Direction::Back => {
                let id = m.rec.id.clone();
                self.finish_cancel(i)?;
                let vm = self.vms[i].id.clone();
                self.info(format!(
                    "Migration {id} of {vm} cancelled: the source is current again"
                ));
                Ok(())
            }
        }
    }

    /// The simulated copy rate of VM `i`'s migration: the slower datastore's throughput.
    fn copy_rate(&self, i: usize) -> f64 {
        let tp = |id: &str| self.throughput.get(id).copied().unwrap_or(400.0);
        match &self.vms[i].migration {
            Some(m) => tp(&m.rec.from).min(tp(&m.rec.to)),
            None => tp(&self.vms[i].datastore),
        }
    }

    fn on_run_done(&mut self, i: usize, t: SimTime) -> Result<(), EngineError> {
        let Some(m) = self.vms[i].migration.as_mut() else {
            return Ok(());
        };
        let Some(run) = m.core.in_flight.clone() else {
            return Ok(());
        };
        m.run_ends_at = None;
        let pieces = m.core.pieces(&run);
        alive()?;
        if let Err(e) = m.copy_pieces(&pieces) {
            return self.copy_failed(i, e);
        }
        fault_point("copy.run-landed")?;
        let m = self.vms[i].migration.as_mut().expect("checked above");
        m.core.finish_run(run);
        match m.core.direction {
            Direction::Back => {
                m.persist_bitmap()
                    .map_err(io_err("writing the migration bitmap"))?;
                fault_point("copy.bitmap-written")?;
            }
            Direction::Forward => {
                if m.cursor_needs_persist() {
                    m.mark_cursor_persisted();
                    let rec = m.rec.clone();
                    self.write_record(&rec)?;
                    fault_point("copy.cursor-written")?;
                }
            }
        }
        self.release_waiting(i, t)?;
        self.start_next_run(i, t)
    }

    /// A copy I/O failed. Mirror: the source is complete, so drop the target. Redirect and
    /// split copying forward: roll back to the source. A roll-back (a cancel's, or this
    /// one's) that fails must not drop the target, which holds the only copy of the blocks
    /// whose bit is set: it stops in `RollbackFailed` (see [`Engine::rollback_failed`]).
    fn copy_failed(&mut self, i: usize, e: std::io::Error) -> Result<(), EngineError> {
        // After an injected crash there is no one left to handle the error.
        alive()?;
        let vm = self.vms[i].id.clone();
        let m = self.vms[i].migration.as_mut().expect("caller checked");
        let id = m.rec.id.clone();
        m.core.in_flight = None;
        if m.core.direction == Direction::Back {
            return self.rollback_failed(i, &e);
        }
        if m.mode() == CopyMode::Mirror {
            self.finish_cancel(i)?;
            self.push_log(
                LogLevel::Error,
                format!("Migration {id} of {vm} aborted by an I/O error ({e}); the VM stays on its source"),
            );
            return Ok(());
        }
        self.push_log(
            LogLevel::Error,
            format!("Migration {id} of {vm}: I/O error ({e}); rolling back to the source"),
        );
        let m = self.vms[i].migration.as_mut().expect("caller checked");
        m.core.start_rollback();
        m.rec.phase = Phase::Cancelling;
        let rec = m.rec.clone();
        self.write_record(&rec)?;
        fault_point("cancel.record-cancelling")?;
        let now = self.now;
        self.start_next_run(i, now)
    }

    /// A roll-back's copy failed: stop in `RollbackFailed` with the error, keeping both
    /// instances, the bitmap and the routing (reads of a set bit's block still go to the
    /// destination, writes land on the source and clear the bit). The VM keeps running with
    /// nothing lost; `RetryRollback` or a reopen resumes the roll-back (SPEC §5: never a VM
    /// without a complete instance).
    fn rollback_failed(&mut self, i: usize, e: &std::io::Error) -> Result<(), EngineError> {
        let vm = self.vms[i].id.clone();
        let m = self.vms[i].migration.as_mut().expect("caller checked");
        debug_assert_eq!(m.core.direction, Direction::Back);
        debug_assert!(m.core.in_flight.is_none());
        let (id, to) = (m.rec.id.clone(), m.rec.to.clone());
        let only_on_dst = m.core.bits.count();
        m.rec.phase = Phase::RollbackFailed;
        m.rec.error = Some(e.to_string());
        let rec = m.rec.clone();
        self.write_record(&rec)?;
        fault_point("rollback.record-failed")?;
        self.push_log(
            LogLevel::Error,
            format!(
                "Migration {id} of {vm}: roll-back failed ({e}); {only_on_dst} block(s) exist only on the destination {to}, so both instances and the bitmap are kept and the VM runs on them. Retry the roll-back"
            ),
        );
        // Guest I/O that waited for the failed run goes on, through the bitmap.
        let now = self.now;
        self.release_waiting(i, now)
    }

    /// `RetryRollback`: resumes a roll-back that stopped on an I/O error.
    fn retry_rollback(&mut self, vm: &str) -> Result<Outcome, EngineError> {
        let i = self.migrating_vm(vm)?;
        let m = self.vms[i].migration.as_mut().expect("checked above");
        if m.rec.phase != Phase::RollbackFailed {
            return Err(EngineError::Rule {
                object: format!("migration {} of {vm}", m.rec.id),
                rule: format!(
                    "only a failed roll-back can be retried; it is {}",
                    m.rec.phase.as_str()
                ),
            });
        }
        let id = m.rec.id.clone();
        let left = m.core.bits.count();
        let mut m = self.vms[i].migration.take().expect("checked above");
        let recorded = self.record_rollback_retried(&mut m);
        self.vms[i].migration = Some(m);
        recorded?;
        let msg = format!(
            "Migration {id} of {vm}: retrying the roll-back ({left} block(s) to copy back to the source)"
        );
        self.info(msg.clone());
        let now = self.now;
        self.start_next_run(i, now)?;
        Ok(Outcome::Done(msg))
    }

    /// A failed roll-back is retried: the record says `Cancelling` again (a crash from here on
    /// resumes the roll-back), its error is cleared.
    fn record_rollback_retried(&self, m: &mut Migration) -> Result<(), EngineError> {
        m.rec.phase = Phase::Cancelling;
        m.rec.error = None;
        self.write_record(&m.rec)?;
        fault_point("retry.record-cancelling")
    }

    /// (5)–(7): mark completed, switch the VM to the target, delete the source.
    fn complete_migration(&mut self, i: usize) -> Result<(), EngineError> {
        let m = self.vms[i].migration.as_mut().expect("caller checked");
        m.rec.phase = Phase::Completing;
        m.rec.cursor = m.core.blocks;
        m.dst.sync().map_err(io_err("syncing the target image"))?;
        let rec = m.rec.clone();
        self.write_record(&rec)?;
        fault_point("complete.record-completing")?;
        let m = self.vms[i].migration.take().expect("set");
        let (src_dir, dst_dir) = (m.src_dir.clone(), m.dst_dir.clone());
        drop(m);
        self.finish_completion(i, &rec, &src_dir, &dst_dir)
    }

    /// The rest of a completion, from the `Completing` record on. Idempotent, so recovery
    /// runs it again after a crash at any point (the source may already be gone).
    fn finish_completion(
        &mut self,
        i: usize,
        rec: &MigrationRecord,
        src_dir: &Path,
        dst_dir: &Path,
    ) -> Result<(), EngineError> {
        let done = |source, target| MigrationMarks {
            id: rec.id.clone(),
            source,
            target,
            completed: true,
        };
        self.set_marks(dst_dir, Some(done(false, true)))?;
        self.set_marks(src_dir, Some(done(true, false)))?;
        // (6) Switch: the recovery manager's location metadata first, then the topology
        // in use (a crash between them reopens on the source, which still exists).
        let loc_path = self.ws.state_dir().join("locations.ron");
        let mut locations: Locations = read_ron(&loc_path).unwrap_or_default();
        locations.vms.insert(
            rec.vm.clone(),
            Location {
                datastore: rec.to.clone(),
                instance: rec.target_instance.clone(),
            },
        );
        write_ron(&loc_path, &locations)?;
        fault_point("complete.locations-written")?;
        let mut topo = self.topology().clone();
        if let Some(v) = topo.vms.iter_mut().find(|v| v.id == rec.vm) {
            v.datastore = rec.to.clone();
        }
        self.ws.save_topology(&topo)?;
        fault_point("complete.topology-saved")?;
        let mut image = ImageFile::open(&dst_dir.join("disk0.img"))?.without_readahead();
        let tracker = self.tracker_for(&rec.to, image.path())?;
        image.set_tracker(tracker);
        let vm = &mut self.vms[i];
        vm.datastore = rec.to.clone();
        vm.instance = rec.target_instance.clone();
        vm.dir = dst_dir.to_path_buf();
        vm.image = image;
        vm.migrations_done += 1;
        // (7) Delete the source.
        if src_dir.exists() {
            self.remove_instance_dir(src_dir)?;
        }
        self.remove_record(&rec.id)?;
        let secs = (self.now.saturating_sub(rec.started_at)) as f64 / SECOND as f64;
        self.info(format!(
            "Migration {} of {} to {} completed in {secs:.1} s ({} mode); source deleted",
            rec.id,
            rec.vm,
            rec.to,
            rec.mode.as_str()
        ));
        self.persist_state()?;
        let now = self.now;
        self.release_waiting(i, now)?;
        self.migration_ended(i, true)
    }

    /// Ends a cancel: delete the target, clear the source's marks. Only when no block's
    /// newest data is on the destination alone: the source must be complete.
    fn finish_cancel(&mut self, i: usize) -> Result<(), EngineError> {
        let m = self.vms[i].migration.take().expect("caller checked");
        debug_assert_eq!(
            m.core.bits.count(),
            0,
            "migration {}: the target still holds the only copy of some blocks",
            m.rec.id
        );
        let id = m.rec.id.clone();
        let (src_dir, dst_dir) = (m.src_dir.clone(), m.dst_dir.clone());
        drop(m);
        self.set_marks(&src_dir, None)?;
        if dst_dir.exists() {
            self.remove_instance_dir(&dst_dir)?;
        }
        self.remove_record(&id)?;
        let now = self.now;
        self.release_waiting(i, now)?;
        self.migration_ended(i, false)
    }

    /// Step (1) of every move (one VM, a group): a rating above `none` is refused unless
    /// the operator confirmed it, and a confirmed one is logged as an override with its
    /// rating and fault. `refused` and `overridden` name the move in the two messages.
    fn override_gate(
        &mut self,
        refused: &str,
        overridden: &str,
        impact: &dr::Impact,
        confirm: bool,
    ) -> Option<Outcome> {
        if impact.rating == Rating::None {
            return None;
        }
        let fault = impact.fault.map(|f| f.as_str()).unwrap_or("none");
        if !confirm {
            let msg = format!(
                "{refused} refused: rated {} ({fault}) and not confirmed",
                impact.rating
            );
            self.push_log(LogLevel::Warning, msg.clone());
            return Some(Outcome::Refused(msg));
        }
        self.push_log(
            LogLevel::Warning,
            format!(
                "Override: {overridden} confirmed by the operator despite rating {} ({fault})",
                impact.rating
            ),
        );
        None
    }

    /// Re-runs guest I/O that waited for a copy run or the mirror queue.
    fn release_waiting(&mut self, i: usize, t: SimTime) -> Result<(), EngineError> {
        let ops: Vec<GuestOp> = self.vms[i].waiting.drain(..).collect();
        for op in ops {
            self.guest_op(i, op, t)?;
        }
        Ok(())
    }

    fn on_mirror_land(&mut self, i: usize, t: SimTime) -> Result<(), EngineError> {
        let vm = &mut self.vms[i];
        let uuid = vm.uuid;
        let Some(m) = vm.migration.as_mut() else {
            return Ok(());
        };
        let mut buf: Block = [0; BLOCK_SIZE];
        while let Some(&(at, block, seq)) = m.mirror_pending.front() {
            if at > t {
                break;
            }
            alive()?;
            m.mirror_pending.pop_front();
            disk::stamp_block(&uuid, block, seq, &mut buf);
            m.dst
                .write_block(block, &buf)
                .map_err(io_err(m.dst.path().display().to_string()))?;
        }
        self.release_waiting(i, t)?;
        let m = self.vms[i].migration.as_ref();
        if m.is_some_and(|m| m.core.done() && m.mirror_pending.is_empty())
            && !self.group_holds_completion(i)?
        {
            self.complete_migration(i)?;
        }
        Ok(())
    }

    fn next_block(&mut self, i: usize) -> u64 {
        let vm = &mut self.vms[i];
        splitmix(&mut vm.rng) % vm.blocks.max(1)
    }

    /// One guest I/O at time `t` (`op.issued` <= `t`).
    fn guest_op(&mut self, i: usize, op: GuestOp, t: SimTime) -> Result<(), EngineError> {
        match op.kind {
            OpKind::Write => self.guest_write(i, op, t),
            OpKind::Read => self.guest_read(i, op, t),
        }
    }

    fn guest_write(&mut self, i: usize, op: GuestOp, t: SimTime) -> Result<(), EngineError> {
        let cap = self.opts.mirror_max_pending;
        let svc = duration_for(BLOCK_SIZE as u64, self.copy_rate(i));
        // A copied VM held for its group's switch keeps mirroring instead of waiting.
        let held = self.group_keeps_mirroring(i);
        let vm = &mut self.vms[i];
        let block = op.block;
        enum Target {
            Image,
            Src,
            Dst,
            SrcMirror,
        }
        let mut clear_after = false;
        let target = match vm.migration.as_mut() {
            None => Target::Image,
            Some(m) => {
                let was_set = m.core.bits.get(block);
                let back = m.core.direction == Direction::Back;
                // A mirrored write waits while more than the cap are pending, and once the
                // copy is done every write waits for the switch-over (the mirror drains, then
                // the VM moves; without this a guest faster than the target never converges).
                let in_flight = m
                    .core
                    .in_flight
                    .as_ref()
                    .is_some_and(|r| r.contains(&block));
                let route = if m.mode() == CopyMode::Mirror
                    && !in_flight
                    && ((block < m.core.cursor
                        && copy::mirror_must_wait(m.mirror_pending.len(), cap))
                        || (m.core.done() && !held))
                {
                    vm.waiting.push_back(op);
                    return Ok(());
                } else {
                    m.core.route_write(block)
                };
                // A newly set bit is persisted before the data lands on the destination; a
                // bit cleared by a roll-back write after the data lands on the source.
                // Recovery compares stamps where a crash fell in between.
                let now_set = m.core.bits.get(block);
                if now_set && !was_set {
                    alive()?;
                    m.persist_bit(block)
                        .map_err(io_err("writing the migration bitmap"))?;
                    fault_point("copy.bit-written")?;
                }
                clear_after = back && was_set && !now_set;
                match route {
                    WriteRoute::Wait => {
                        vm.waiting.push_back(op);
                        return Ok(());
                    }
                    WriteRoute::Source => Target::Src,
                    WriteRoute::Destination => Target::Dst,
                    WriteRoute::SourceAndMirror => Target::SrcMirror,
                }
            }
        };
        let io = self
            .sites
            .get_mut(&vm.site)
            .ok_or_else(|| EngineError::State {
                file: "journal".into(),
                message: format!("site {:?} has no journal", vm.site),
            })?;
        let seq = self.next_seq;
        let mut buf: Block = [0; BLOCK_SIZE];
        disk::stamp_block(&vm.uuid, block, seq, &mut buf);
        let img = match (&target, vm.migration.as_ref()) {
            (Target::Image, _) | (_, None) => &vm.image,
            (Target::Dst, Some(m)) => &m.dst,
            (_, Some(m)) => &m.src,
        };
        alive()?;
        img.write_block(block, &buf)
            .map_err(io_err(img.path().display().to_string()))?;
        fault_point("guest.data-written")?;
        if clear_after && let Some(m) = vm.migration.as_ref() {
            m.persist_bit(block)
                .map_err(io_err("writing the migration bitmap"))?;
            fault_point("copy.bit-cleared")?;
        }
        io.journal
            .append(&JournalEntry {
                seq,
                uuid: vm.uuid,
                block,
            })
            .map_err(io_err("appending to the journal"))?;
        self.next_seq += 1;
        vm.last_seq[block as usize] = seq;
        vm.writes += 1;
        if let (Target::SrcMirror, Some(m)) = (&target, vm.migration.as_mut()) {
            let lands = t.max(m.dst_busy_until) + svc;
            m.dst_busy_until = lands;
            m.mirror_pending.push_back((lands, block, seq));
            self.queue.push(Reverse((lands, Ev::MirrorLand, i, 0)));
        }
        // Acknowledged when its first copy lands.
        let latency = t - op.issued + svc;
        if self.latencies.len() == LATENCY_SAMPLES {
            self.latencies.pop_front();
        }
        self.latencies.push_back((t, i, latency));
        self.after_guest_write(i, block, &buf)
    }

    /// Every feature that follows guest writes (distributed legs, swapped pairs, group
    /// migrations) sees each one after it landed and was journaled.
    fn after_guest_write(&mut self, i: usize, block: u64, buf: &Block) -> Result<(), EngineError> {
        self.stretch_after_write(i, block, buf)?;
        self.health_after_write(i, block, buf)?;
        self.group_after_write(i, block, buf)
    }

    /// A migration of VM `i` ended: completed (switched to its target) or not.
    fn migration_ended(&mut self, i: usize, completed: bool) -> Result<(), EngineError> {
        self.stretch_migration_ended(i, completed)?;
        self.group_migration_ended(i, completed)?;
        self.placement_migration_ended(i, completed)
    }

    fn guest_read(&mut self, i: usize, op: GuestOp, _t: SimTime) -> Result<(), EngineError> {
        let vm = &mut self.vms[i];
        let block = op.block;
        let mut buf: Block = [0; BLOCK_SIZE];
        match vm.migration.as_ref() {
            Some(m) => {
                if m.core.route_read(block) == copy::ReadRoute::Wait {
                    vm.waiting.push_back(op);
                    return Ok(());
                }
                m.read_routed(block, &mut buf)
                    .map_err(io_err("guest read"))?;
            }
            None => vm
                .image
                .read_block_at(block, &mut buf)
                .map_err(io_err(vm.image.path().display().to_string()))?,
        }
        vm.reads += 1;
        let want = vm.last_seq[block as usize];
        let ok = match disk::inspect(&buf) {
            BlockContent::Zero => want == 0,
            BlockContent::Stamped(s) => s.seq == want && s.uuid == vm.uuid && s.block == block,
            BlockContent::Torn => false,
        };
        if !ok {
            vm.read_errors += 1;
            if vm.read_errors <= READ_ERRORS_LOGGED {
                let msg = format!(
                    "VM {}: read of block {block} did not return its last write (seq {want})",
                    vm.id
                );
                self.push_log(LogLevel::Error, msg);
            }
        }
        Ok(())
    }

    /// Runs every event due up to and including `until`, then sets the clock to `until`.
    pub fn advance(&mut self, until: SimTime) -> Result<(), EngineError> {
        while let Some(&Reverse((t, ev, i, gen_))) = self.queue.peek() {
            if t > until {
                break;
            }
            self.queue.pop();
            self.now = self.now.max(t);
            match ev {
                Ev::RunDone => {
                    if gen_ == self.vms[i].run_gen
                        && self.vms[i]
                            .migration
                            .as_ref()
                            .is_some_and(|m| m.run_ends_at == Some(t))
                    {
                        self.on_run_done(i, t)?;
                    }
                }
                Ev::MirrorLand => self.on_mirror_land(i, t)?,
                Ev::Publish => self.on_publish(i, gen_)?,
                Ev::Cut => self.on_cut(i, gen_)?,
                Ev::Metadata => self.on_metadata(gen_)?,
                Ev::Stretch => self.on_stretch_event(i, gen_)?,
                Ev::Health => self.on_health_event(i, gen_)?,
                Ev::Host => self.on_hosts_event(i, gen_)?,
                Ev::Group => self.on_group_event(i, gen_)?,
                Ev::Placement => self.on_placement_event(i, gen_)?,
                Ev::GuestWrite | Ev::GuestRead => {
                    if !self.workloads_on || gen_ != self.vms[i].guest_gen || self.vms[i].down {
                        continue;
                    }
                    let vm = &self.vms[i];
                    let iops = if ev == Ev::GuestWrite {
                        vm.write_iops
                    } else {
                        vm.read_iops
                    };
                    let interval = (SECOND / u64::from(iops.max(1))).max(1);
                    self.queue.push(Reverse((t + interval, ev, i, gen_)));
                    let block = self.next_block(i);
                    let kind = if ev == Ev::GuestWrite {
                        OpKind::Write
                    } else {
                        OpKind::Read
                    };
                    self.guest_op(
                        i,
                        GuestOp {
                            kind,
                            block,
                            issued: t,
                        },
                        t,
                    )?;
                }
            }
        }
        self.now = self.now.max(until);
        self.check_rpo_alarms();
        Ok(())
    }

    /// The time of the next queued event, if any.
    pub fn next_event_time(&self) -> Option<SimTime> {
        self.queue.peek().map(|Reverse((t, ..))| *t)
    }

    /// Runs until VM `vm`'s migration has ended, or `limit` is reached.
    pub fn run_until_migrated(&mut self, vm: &str, limit: SimTime) -> Result<bool, EngineError> {
        let i = self
            .vm_index(vm)
            .ok_or_else(|| EngineError::NoSuchVm(vm.into()))?;
        while self.vms[i].migration.is_some() {
            let Some(t) = self.next_event_time() else {
                break;
            };
            if t > limit {
                break;
            }
            self.advance(t)?;
        }
        Ok(self.vms[i].migration.is_none())
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            now: self.now,
            workloads_on: self.workloads_on,
            vms: self
                .vms
                .iter()
                .enumerate()
                .map(|(i, v)| self.vm_view(i, v))
                .collect(),
            latencies: self.latencies.iter().copied().collect(),
            groups: self.group_views(),
            link_up: self.link_up,
            sites_down: self.sites_down.keys().cloned().collect(),
            sites_lost_at: self.sites_down.clone(),
            failover: self.failovers.last().cloned(),
            test_failover_up: self.test_dir.is_some(),
            distributed: self.stretch_views(),
            arrays: self.health_views(),
            hosts: self.hosts_views(),
            group_migrations: self.group_migration_views(),
            placement: self.placement_views(),
        }
    }

    fn vm_view(&self, i: usize, v: &VmRt) -> VmView {
        VmView {
            id: v.id.clone(),
            datastore: v.datastore.clone(),
            instance: v.instance.clone(),
            running: self.workloads_on && !v.down,
            site: v.site.clone(),
            host: v.host.clone(),
            down: v.down,
            down_reason: if v.down {
                self.down_reason(i)
            } else {
                String::new()
            },
            recovered: v.recovered.is_some(),
            writes: v.writes,
            reads: v.reads,
            read_errors: v.read_errors,
            migrations_done: v.migrations_done,
            migration: v.migration.as_ref().map(|m| {
                let rate = self.copy_rate(i);
                let left = m.core.blocks_left();
                MigrationView {
                    id: m.rec.id.clone(),
                    vm: v.id.clone(),
                    from: m.rec.from.clone(),
                    to: m.rec.to.clone(),
                    mode: m.rec.mode,
                    phase: m.rec.phase,
                    rolling_back: m.core.direction == Direction::Back,
                    error: m.rec.error.clone(),
                    blocks: m.core.blocks,
                    copied_blocks: m.core.cursor,
                    blocks_left: left,
                    mirror_pending: m.mirror_pending.len(),
                    bytes_copied: m.bytes_copied,
                    started_at: m.rec.started_at,
                    mib_per_s: rate,
                    eta_s: (left * BLOCK_SIZE as u64) as f64 / (rate * 1024.0 * 1024.0),
                }
            }),
        }
    }

    /// Verifies VM `vm` as its guest sees it (through the copy's read path while it
    /// migrates) against the journal, with S = the last journaled write (SPEC §4.3).
    pub fn verify_vm(&self, vm: &str) -> Result<VmVerify, EngineError> {
        let i = self
            .vm_index(vm)
            .ok_or_else(|| EngineError::NoSuchVm(vm.into()))?;
        let v = &self.vms[i];
        let mut journals = BTreeMap::new();
        for site in [Some(&v.site), v.recovered.as_ref().map(|r| &r.from_site)]
            .into_iter()
            .flatten()
        {
            journals.insert(
                site.clone(),
                SiteJournal::new(disk::read_journal(&self.ws.journal_path(site))?),
            );
        }
        let journal = history(&journals, &v.site, v.recovered.as_ref(), &v.uuid);
        let mut plain;
        let mut routed;
        let reader: &mut dyn BlockRead = match v.migration.as_deref() {
            Some(m) => {
                routed = RoutedReader { migration: m };
                &mut routed
            }
            None => {
                plain = ImageFile::open_read_only(v.image.path())?.without_readahead();
                &mut plain
            }
        };
        let mut disks = [VmDisk {
            name: v.id.clone(),
            uuid: v.uuid,
            reader,
        }];
        let report = disk::verify_set(&mut disks, &journal, Horizon::LastJournaled)
            .map_err(io_err(format!("verifying {vm}")))?;
        let mut out = report
            .vms
            .into_iter()
            .next()
            .expect("one disk in, one report out");
        // A recovered VM's history stops at its recovered images; what the failover lost
        // stays lost.
        out.writes_lost += v.recovered.as_ref().map_or(0, |r| r.writes_lost);
        Ok(out)
    }

    /// The VMs in topology order.
    pub fn vm_ids(&self) -> Vec<String> {
        self.vms.iter().map(|v| v.id.clone()).collect()
    }

    /// Every instance of `vm` found on the protected site's datastores.
    pub fn instances_of(&self, vm: &str) -> Result<Vec<crate::workspace::Instance>, EngineError> {
        let t = self.topology();
        let uuid = t.vm(vm).map(|v| v.uuid.clone()).unwrap_or_default();
        let mut out = Vec::new();
        for ds in t.datastores.iter().filter(|d| t.is_protected_datastore(d)) {
            for inst in self.ws.list_instances(&ds.id)? {
                if inst.config.uuid == uuid {
                    out.push(inst);
                }
            }
        }
        Ok(out)
    }

    /// Where VM `vm` lives now, if it exists.
    pub fn location(&self, vm: &str) -> Option<(String, String)> {
        self.vm_index(vm)
            .map(|i| (self.vms[i].datastore.clone(), self.vms[i].instance.clone()))
    }

    /// Is VM `vm` migrating now?
    pub fn is_migrating(&self, vm: &str) -> bool {
        self.vm_index(vm)
            .is_some_and(|i| self.vms[i].migration.is_some())
    }

    /// The phase of VM `vm`'s migration, if it is migrating.
    pub fn migration_phase(&self, vm: &str) -> Option<Phase> {
        let i = self.vm_index(vm)?;
        self.vms[i].migration.as_ref().map(|m| m.rec.phase)
    }

    /// Completed migrations of VM `vm` since the engine started.
    pub fn migrations_done(&self, vm: &str) -> u64 {
        self.vm_index(vm).map_or(0, |i| self.vms[i].migrations_done)
    }
}

/// VM `uuid`'s write history: its entries in its site's journal, after (for a recovered VM)
/// those of its old site up to the recovered images' horizon. Entries of other VMs are left
/// out; the result's `last_seq` is the site's.
/// A site's journal split by VM (each VM's entries in journal order), and its last seq.
struct SiteJournal {
    by_uuid: HashMap<RawUuid, Vec<JournalEntry>>,
    last_seq: u64,
}

impl SiteJournal {
    fn new(j: Journal) -> SiteJournal {
        let mut by_uuid: HashMap<RawUuid, Vec<JournalEntry>> = HashMap::new();
        for e in j.entries {
            by_uuid.entry(e.uuid).or_default().push(e);
        }
        SiteJournal {
            by_uuid,
            last_seq: j.last_seq,
        }
    }

    fn of(&self, uuid: &RawUuid) -> &[JournalEntry] {
        self.by_uuid.get(uuid).map_or(&[], |v| &v[..])
    }
}

fn history(
    journals: &BTreeMap<String, SiteJournal>,
    site: &str,
    recovered: Option<&RecoveredVm>,
    uuid: &RawUuid,
) -> Journal {
    let mut out = Journal::default();
    if let Some(r) = recovered
        && let Some(j) = journals.get(&r.from_site)
    {
        out.entries
            .extend(j.of(uuid).iter().filter(|e| e.seq <= r.horizon).cloned());
    }
    if let Some(j) = journals.get(site) {
        out.entries.extend(j.of(uuid).iter().cloned());
        out.last_seq = j.last_seq;
    }
    if let Some(last) = out.entries.last() {
        out.last_seq = out.last_seq.max(last.seq);
    }
    out
}

impl Engine {
    /// Opens the journal of `site` for writing if it is not open yet.
    fn ensure_site_journal(&mut self, site: &str) -> Result<(), EngineError> {
        if !self.sites.contains_key(site) {
            let journal = JournalWriter::open(&self.ws.journal_path(site))?;
            self.sites.insert(site.to_string(), SiteIo { journal });
        }
        Ok(())
    }
}

/// After a crash, a set bit may describe a write that never landed on the destination
/// (the bit is persisted first), and a roll-back write may have landed on the source before
/// its bit was cleared. For every set bit, keep the copy with the newer stamp: clear the bit
/// where the source is newer. Returns how many bits were cleared.
fn reconcile_bits(m: &mut Migration) -> Result<u64, EngineError> {
    let seq = |img: &ImageFile, b: u64| -> Result<u64, EngineError> {
        let mut buf: Block = [0; BLOCK_SIZE];
        img.read_block_at(b, &mut buf)
            .map_err(io_err(img.path().display().to_string()))?;
        Ok(match disk::inspect(&buf) {
            BlockContent::Stamped(s) => s.seq,
            BlockContent::Zero | BlockContent::Torn => 0,
        })
    };
    let set: Vec<u64> = m.core.bits.ones().collect();
    let mut cleared = 0;
    for b in set {
        if seq(&m.src, b)? > seq(&m.dst, b)? {
            m.core.bits.clear(b);
            cleared += 1;
        }
    }
    if cleared > 0 {
        m.persist_bitmap()
            .map_err(io_err("writing the migration bitmap"))?;
    }
    Ok(cleared)
}

/// The first block of `img` stamped for `uuid` with `seq` at its own index, if any. Reads
/// in 1 MiB chunks and checks the cheap fields before the CRC.
fn find_stamp(img: &ImageFile, uuid: &RawUuid, seq: u64) -> Result<Option<u64>, EngineError> {
    const CHUNK_BLOCKS: u64 = 256;
    let mut buf = vec![0u8; CHUNK_BLOCKS as usize * BLOCK_SIZE];
    let mut first = 0;
    while first < img.block_count() {
        let n = CHUNK_BLOCKS.min(img.block_count() - first);
        let bytes = &mut buf[..n as usize * BLOCK_SIZE];
        img.read_at(first * BLOCK_SIZE as u64, bytes)
            .map_err(io_err(img.path().display().to_string()))?;
        for (k, chunk) in bytes.chunks_exact(BLOCK_SIZE).enumerate() {
            let b = first + k as u64;
            if &chunk[0..8] == disk::MAGIC
                && chunk[8..24] == uuid[..]
                && chunk[24..32] == b.to_le_bytes()
                && chunk[32..40] == seq.to_le_bytes()
            {
                let block: &Block = chunk.try_into().expect("chunks_exact gives whole blocks");
                if matches!(disk::inspect(block), BlockContent::Stamped(_)) {
                    return Ok(Some(b));
                }
            }
        }
        first += n;
    }
    Ok(None)
}

/// Drops a journal's cut-short last line (no trailing newline) so appends start clean.
fn repair_journal_tail(path: &Path) -> Result<(), EngineError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(path, b"").map_err(io_err(path.display().to_string()))?;
            return Ok(());
        }
        Err(e) => return Err(io_err(path.display().to_string())(e)),
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path.display().to_string()))?;
    f.set_len(keep as u64)
        .and_then(|()| f.sync_all())
        .map_err(io_err(path.display().to_string()))
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod replication_tests;

#[cfg(test)]
mod rescan_tests;
