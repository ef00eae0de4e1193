//! The engine: simulated guests writing stamped blocks into real images, and live storage
//! migrations copying them (SPEC §4–§5). It knows nothing of egui or threads: `apply` a
//! command, `advance` the simulated clock; whoever drives it decides the pacing.
//!
//! Time is simulated, in microseconds. Every guest I/O and every copy run is an event in
//! one queue, processed in time order with deterministic tie-breaks, so a seed reproduces
//! a run byte for byte. The bytes are real: every write is a 4 KiB `pwrite` plus a journal
//! line, every copy run a large read and write.
//!
//! # How the engine is built
//!
//! A small core and one subsystem per capability. The core (this file and `time`,
//! `sched`, `guest`, `persist`, `recover`, `verify`, `views`) owns the simulated clock,
//! the typed event queue (`sched::Scheduled`: each event carries its own typed index,
//! `VmIx`, `GroupIx`, …), the VMs with their guests, images and journals, the id → index
//! maps and the workspace. Each capability is one module owning its state machine and its
//! runtime/saved state in a field of [`Engine`]: live migration (`migrate`, `migration`,
//! `copy`), replication, failover, stretch, health, hosts, group moves and placement.
//!
//! A new capability plugs in by implementing the same hooks the others do, each called
//! from exactly one place in the core:
//! - **events**: an `Ev` variant with its typed index, queued with `Engine::schedule`
//!   and dispatched in `Engine::advance` (`sched.rs`) to its `on_*_event`;
//! - **guest writes**: an `*_after_write` called from `Engine::after_guest_write`;
//! - **migration ends**: a `*_migration_ended` called from `Engine::migration_ended`;
//! - **save/restore**: a `*Saved` field of `EngineState` filled by `*_saved` in
//!   `Engine::persist_state` and read back by `restore_*` in `Engine::start`;
//! - **views**: a view type in [`Snapshot`] built by `*_views` in `Engine::snapshot`;
//! - **invariants**: a rule in `Engine::check_invariants` (`invariants.rs`), run after
//!   every command and every `advance` in debug builds.
//!
//! A new command is added in exactly one place, `engine/command.rs` (the [`Command`]
//! vocabulary every front end and scenario shares), then handled in the engine's one
//! dispatch, `Engine::apply`.

mod across;
mod command;
pub mod copy;
mod error;
mod failover;
mod group;
mod guest;
mod health;
mod hosts;
mod invariants;
mod lifecycle;
mod migrate;
mod migration;
mod mirror_back;
mod persist;
mod placement;
mod publog;
mod recorded;
mod recover;
mod replication;
mod rescan;
mod sched;
mod stretch;
mod time;
mod verify;
mod views;

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
pub use crate::workspace::Progress;
use crate::workspace::{MigrationMarks, Workspace, WorkspaceError};
pub use across::{AcrossMember, AcrossOp, AcrossPhase, AcrossPlan, Consistency, link_write_time};
pub use command::{Command, Outcome};
use copy::{CopyCore, CopyMode, Direction, WriteRoute};
pub use error::EngineError;
use error::{io_err, io_err_at};
pub use failover::{
    FailoverKind, FailoverPlan, FailoverReport, FailoverState, HeldCapacity, HostCapacity, PlanVm,
    VmResult,
};
use failover::{PendingFailover, RecoveredVm, VmHistory};
pub use group::{GroupMemberView, GroupMigrationView, GroupPhase};
use guest::{GuestOp, OpKind, seed_for};
pub use health::{ArrayView, HealthPairView};
pub use hosts::HostView;
pub use invariants::Broken;
pub use lifecycle::{ReprotectRecord, SiteReturn, StaleInstance};
pub use migration::Phase;
use migration::{Migration, MigrationRecord, RoutedReader};
pub use persist::{CLOCK_FILE, Location, Locations};
use persist::{
    EngineState, alive, fault_point, read_clock_record, read_ron, remove_dir_if_exists,
    remove_file_if_exists, write_ron,
};
pub use placement::percent as placement_percent;
pub use placement::{
    MAX_NEW_DISK_MIB, PlacementError, PlacementOption, PlacementView, check_placement_request,
    rank_initial_placement, recommended,
};
pub use publog::{
    PUBLISH_LOG_FILE, PublishLog, PublishRecord, parse_publish_log, publish_log_path,
    read_publish_log,
};
pub use recorded::{Disaster, Recorded, VmRecord, read_recorded};
use replication::{GroupRt, GroupSaved};
pub use replication::{
    GroupSpec, GroupState, GroupView, Pair, PublishedPoint, RetainedPoint, groups_of, human_bytes,
    pending_publishes,
};
use sched::{Ev, Queued, VmIx};
pub use stretch::{DistributedView, Incident, IncidentStep, StepKind};
use time::duration_for;
pub use time::{MINUTE, SECOND, SimTime, format_duration, format_time, from_minutes, to_minutes};
use verify::{SiteJournal, history};
pub use views::{MigrationView, Snapshot, VmView};

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
    /// Where a failover brought it up (until a failback brings it home).
    recovered: Option<RecoveredVm>,
    /// Its writes across failovers: where they are journaled.
    history: VmHistory,
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

impl VmRt {
    /// A VM up on `place` = (site, datastore, instance, host), its image open at `dir`,
    /// with no writes known yet and nothing in flight; its guest's random numbers are
    /// seeded with 0 (the caller seeds them).
    fn new(
        vm: &crate::topology::Vm,
        uuid: RawUuid,
        place: (String, String, String, String),
        dir: PathBuf,
        image: ImageFile,
    ) -> VmRt {
        let (site, datastore, instance, host) = place;
        let blocks = image.block_count();
        let w = vm.workload.as_ref();
        VmRt {
            id: vm.id.clone(),
            uuid,
            site,
            datastore,
            instance,
            host,
            down: false,
            recovered: None,
            history: VmHistory::default(),
            dir,
            image,
            blocks,
            write_iops: w.map_or(0, |w| w.write_iops),
            read_iops: w.map_or(0, |w| w.read_iops),
            rng: 0,
            guest_gen: 0,
            run_gen: 0,
            last_seq: vec![0; blocks as usize],
            waiting: VecDeque::new(),
            migration: None,
            writes: 0,
            reads: 0,
            read_errors: 0,
            migrations_done: 0,
        }
    }
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
    /// Each VM's index in `vms` by id, kept in step with it (VMs are only added at start).
    vm_ix: HashMap<String, VmIx>,
    sites: BTreeMap<String, SiteIo>,
    /// The next guest write's seq: one sequence for all sites, so a VM's history stays
    /// ordered across a failover.
    next_seq: u64,
    queue: BinaryHeap<Queued>,
    /// The next event's [`Scheduled::seq`].
    sched_seq: u64,
    log: Vec<LogLine>,
    latencies: VecDeque<(SimTime, usize, u64)>,
    groups: Vec<GroupRt>,
    /// Change tracking of every image on a replicated datastore, by path.
    /// By image path, ordered, so a datastore's trackers are one range of keys.
    trackers: BTreeMap<PathBuf, Arc<DirtyTracker>>,
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
    lifecycle: lifecycle::LifecycleRt,
    across: across::AcrossRt,
}

/// splitmix64: the guests' seeded random numbers.
/// Copy throughput of every datastore of `t`, MiB/s.
fn throughput_of(t: &Topology) -> HashMap<String, f64> {
    t.datastores
        .iter()
        .map(|d| (d.id.clone(), d.throughput_mib_s))
        .collect()
}

impl Engine {
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
        self.vm_ix.get(id).map(|ix| ix.0)
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
            Command::SiteUp { site } => self.site_up(&site)?,
            Command::Reprotect { protection_groups } => self.reprotect(&protection_groups)?,
            Command::Failover {
                protection_groups,
                kind,
                point,
            } => self.failover(protection_groups, kind, point.map(from_minutes))?,
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
            Command::MigrateAcross {
                consistency_group,
                confirm,
                consistency,
            } => self.migrate_across(&consistency_group, confirm, consistency)?,
            Command::CancelAcross { consistency_group } => {
                self.cancel_across(&consistency_group)?
            }
            Command::EnterMaintenance { datastore, confirm } => {
                self.enter_maintenance(&datastore, confirm)?
            }
            Command::ExitMaintenance { datastore } => self.exit_maintenance(&datastore)?,
            Command::Balance { cluster, confirm } => self.balance(&cluster, confirm)?,
            Command::Rescan { file } => self.rescan_file(&file)?,
            Command::AddVm {
                vm,
                protection_group,
                confirm,
            } => self.add_vm(vm, &protection_group, confirm)?,
        };
        self.persist_state()?;
        self.debug_check_invariants();
        Ok(out)
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
        self.capacity_mib(datastore)
            .saturating_sub(self.used_mib(datastore))
    }

    /// Every feature that follows guest writes (distributed legs, swapped pairs, group
    /// migrations) sees each one after it landed and was journaled.
    fn after_guest_write(&mut self, i: usize, block: u64, buf: &Block) -> Result<(), EngineError> {
        self.stretch_after_write(i, block, buf)?;
        self.health_after_write(i, block, buf)?;
        self.group_after_write(i, block, buf)?;
        self.across_after_write(i, block, buf)
    }

    /// A migration of VM `i` ended: completed (switched to its target) or not.
    fn migration_ended(&mut self, i: usize, completed: bool) -> Result<(), EngineError> {
        self.stretch_migration_ended(i, completed)?;
        self.group_migration_ended(i, completed)?;
        self.placement_migration_ended(i, completed)
    }
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod replication_tests;

#[cfg(test)]
mod lifecycle_tests;

#[cfg(test)]
mod across_tests;

#[cfg(test)]
mod rescan_tests;

#[cfg(test)]
mod invariants_tests;
