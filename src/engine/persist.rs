//! Persisted state (`state/engine.ron`, `state/locations.ron`, the clock record): create,
//! open, close and save.

use super::*;

/// Persisted in `state/engine.ron`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct EngineState {
    pub(super) now: SimTime,
    pub(super) workloads_on: bool,
    pub(super) next_migration: u64,
    pub(super) options: EngineOptions,
    #[serde(default)]
    pub(super) groups: BTreeMap<String, GroupSaved>,
    #[serde(default = "yes")]
    pub(super) link_up: bool,
    /// Lost sites and when.
    #[serde(default)]
    pub(super) sites_down: BTreeMap<String, SimTime>,
    #[serde(default)]
    pub(super) recovered: BTreeMap<String, RecoveredVm>,
    /// The write histories of VMs that ever failed over (SPEC §11).
    #[serde(default)]
    pub(super) history: BTreeMap<String, VmHistory>,
    /// VMs stopped (by a planned failover in progress, a host fault, or the loss of the
    /// site they were recovered at).
    #[serde(default)]
    pub(super) stopped: Vec<String>,
    #[serde(default)]
    pub(super) failovers: Vec<FailoverReport>,
    #[serde(default)]
    pub(super) pending_failover: Option<PendingFailover>,
    #[serde(default)]
    pub(super) test_dir: Option<PathBuf>,
    #[serde(default)]
    pub(super) stretch: stretch::StretchSaved,
    #[serde(default)]
    pub(super) health: health::HealthSaved,
    #[serde(default)]
    pub(super) hosts: hosts::HostsSaved,
    #[serde(default)]
    pub(super) group: group::GroupMoveSaved,
    #[serde(default)]
    pub(super) placement: placement::PlacementSaved,
    #[serde(default)]
    pub(super) lifecycle: lifecycle::LifecycleSaved,
    #[serde(default)]
    pub(super) across: super::across::AcrossSaved,
}

pub(super) fn yes() -> bool {
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

pub(super) fn ron_pretty<T: Serialize>(v: &T) -> String {
    let cfg = ron::ser::PrettyConfig::new().struct_names(true);
    // Plain data always serializes.
    ron::ser::to_string_pretty(v, cfg).expect("state serializes") + "\n"
}

pub(super) fn read_ron<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, EngineError> {
    let text = std::fs::read_to_string(path).map_err(io_err_at(path))?;
    ron::from_str(&text).map_err(|e| EngineError::State {
        file: path.display().to_string(),
        message: e.to_string(),
    })
}

pub(super) fn write_ron<T: Serialize>(path: &Path, v: &T) -> Result<(), EngineError> {
    crate::fsutil::write_atomic(path, ron_pretty(v).as_bytes()).map_err(io_err_at(path))
}

/// A named fault point (see [`crate::fault`]): an injected error when a crash test arms it.
pub(super) fn fault_point(name: &'static str) -> Result<(), EngineError> {
    crate::fault::point(name).map_err(io_err(name))
}

/// Fails once an injected crash has fired (nothing more reaches the disk).
pub(super) fn alive() -> Result<(), EngineError> {
    crate::fault::alive().map_err(io_err("after an injected crash"))
}

/// Removes a directory tree; one that is not there is not an error.
pub(super) fn remove_dir_if_exists(p: &Path) -> Result<(), EngineError> {
    alive()?;
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err_at(p)(e)),
    }
}

/// Removes a file; one that is not there is not an error.
pub(super) fn remove_file_if_exists(p: &Path) -> Result<(), EngineError> {
    alive()?;
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err_at(p)(e)),
    }
}

/// The file of [`Engine::record_clock`] in `state/`.
pub const CLOCK_FILE: &str = "clock";

/// The clock record: the time (u64 LE) and its bitwise complement, so a torn or foreign
/// record is recognized.
pub(super) fn clock_record(now: SimTime) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&now.to_le_bytes());
    b[8..].copy_from_slice(&(!now).to_le_bytes());
    b
}

/// The time of a clock record, if it is one.
pub(super) fn read_clock_record(b: &[u8]) -> Option<SimTime> {
    let now = SimTime::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let check = SimTime::from_le_bytes(b.get(8..16)?.try_into().ok()?);
    (check == !now).then_some(now)
}

impl Engine {
    /// Materializes `topology` into a new workspace at `root` and starts an engine on it.
    pub fn create(
        root: &Path,
        topology: &Topology,
        opts: EngineOptions,
    ) -> Result<Engine, EngineError> {
        Engine::create_with_progress(root, topology, opts, &mut |_| {})
    }

    /// [`Engine::create`], telling `progress` how many VMs' instances are made.
    pub fn create_with_progress(
        root: &Path,
        topology: &Topology,
        opts: EngineOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Engine, EngineError> {
        let ws = Workspace::create_with_progress(root, topology, progress)?;
        fault_point("create.workspace-made")?;
        Engine::write_initial_state(&ws, topology, opts)?;
        // Nothing has run yet: there is no write in flight to look for.
        std::fs::write(Engine::clean_marker(&ws), b"clean\n")
            .map_err(io_err("writing the clean-shutdown marker"))?;
        Engine::start(ws)
    }

    /// The state of a workspace on which nothing has run yet.
    pub(super) fn write_initial_state(
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
            history: BTreeMap::new(),
            stopped: Vec::new(),
            failovers: Vec::new(),
            pending_failover: None,
            test_dir: None,
            stretch: Default::default(),
            health: Default::default(),
            hosts: Default::default(),
            group: Default::default(),
            placement: Default::default(),
            lifecycle: Default::default(),
            across: Default::default(),
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
    pub(super) fn open_with(root: &Path, opts: EngineOptions) -> Result<Engine, EngineError> {
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
        Engine::open_or_create_with_progress(root, topology, opts, &mut |_| {})
    }

    /// [`Engine::open_or_create`], telling `progress` how a creation advances (an open
    /// of an existing workspace reports nothing).
    pub fn open_or_create_with_progress(
        root: &Path,
        topology: &Topology,
        opts: EngineOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Engine, EngineError> {
        if root.join("topology.ron").exists() {
            Engine::open_adopting(root, topology, opts)
        } else {
            Engine::create_with_progress(root, topology, opts, progress)
        }
    }

    pub(super) fn state_path(&self) -> PathBuf {
        self.ws.state_dir().join("engine.ron")
    }

    pub(super) fn migrations_dir(ws: &Workspace) -> PathBuf {
        ws.state_dir().join("migrations")
    }

    pub(super) fn clean_marker(ws: &Workspace) -> PathBuf {
        ws.state_dir().join("clean-shutdown")
    }

    pub(super) fn clock_path(ws: &Workspace) -> PathBuf {
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
            .map_err(io_err_at(&path))?;
        file.write_all_at(&clock_record(self.now), 0)
            .map_err(io_err_at(&path))
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

    pub(super) fn persist_state(&self) -> Result<(), EngineError> {
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
                history: self
                    .vms
                    .iter()
                    .filter(|v| !v.history.hops.is_empty())
                    .map(|v| (v.id.clone(), v.history.clone()))
                    .collect(),
                stopped: self
                    .vms
                    .iter()
                    .filter(|v| v.down)
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
                lifecycle: self.lifecycle_saved(),
                across: self.across_saved(),
            },
        )
    }
}
