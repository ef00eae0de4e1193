//! The workspace on disk (SPEC §4): one directory holding the live state of one topology.
//!
//! ```text
//! <workspace>/
//!   workspace.lock                                   held (flock) by the process using it
//!   topology.ron                                     the topology in use
//!   sites/<site>/datastores/<datastore>/<instance>/  vm.ron and disk0.img of a VM instance
//!   journal/<site>.log                               ground truth of a protected site (§4.3)
//!   state/                                           the engine's own files
//! ```
//!
//! Only one process may use a workspace at a time: [`Workspace::create`] and
//! [`Workspace::open`] take a lock on `workspace.lock` that lasts as long as the
//! [`Workspace`] value. Every metadata file is replaced atomically.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::Barrier;
use crate::topology::{SiteRole, Topology, TopologyError, Violation, id_problem};

mod config;
mod instances;
mod layout;
mod lock;
mod rescan;

pub use config::*;
pub use instances::*;
pub use layout::*;
use lock::*;

#[cfg(test)]
mod tests;

/// The lock file's name inside a workspace.
pub const LOCK_FILE: &str = "workspace.lock";
/// The topology file's name inside a workspace.
pub const TOPOLOGY_FILE: &str = "topology.ron";
/// The VM config file's name inside an instance directory.
pub const VM_CONFIG_FILE: &str = "vm.ron";
/// Present while a workspace is being created (see [`Workspace::create_with_progress`]).
pub const CREATING_FILE: &str = "workspace.creating";
/// The name of the first (and usually only) disk of a VM.
pub const FIRST_DISK: &str = "disk0.img";

const MIB: u64 = 1024 * 1024;

/// Why a workspace operation failed. Every message names the path or object concerned and
/// the rule broken or the OS error.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("workspace {root} is in use by another drconsole process ({holder}); close it first")]
    Locked { root: String, holder: String },
    #[error("workspace {root} already exists (it holds a topology.ron); open it instead")]
    AlreadyExists { root: String },
    #[error("{root} is not a drconsole workspace (no topology.ron)")]
    NotAWorkspace { root: String },
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error(transparent)]
    Config(#[from] crate::fsutil::SyntaxError),
    #[error("{file}: {message}")]
    InvalidConfig { file: String, message: String },
    #[error("datastore {datastore:?} is not in the workspace's topology")]
    UnknownDatastore { datastore: String },
    #[error("instance name {name:?} is not `<vm id>` or `<vm id>~<n>`: {reason}")]
    InvalidInstanceName { name: String, reason: String },
    #[error("{path}: an instance directory of that name already exists")]
    InstanceExists { path: String },
    #[error("{path} is not an instance directory under {root}/sites; refusing to delete it")]
    OutsideWorkspace { path: String, root: String },
    #[error(
        "{path} is a symbolic link (to {target}); drconsole does not follow links inside a \
         workspace: replace it with the real directory or file, or move it away"
    )]
    Symlink { path: String, target: String },
    #[error(
        "{path}: the journal of protected site {site:?} is missing; it is the ground truth of \
         the site's disks (SPEC §4.3) and a new one would disown every write on them: restore \
         it from where it was moved"
    )]
    MissingJournal { path: String, site: String },
    /// A rescan (SPEC §2) the workspace cannot adopt; nothing was changed.
    #[error("{file}: rescan refused: {object}: {rule}; nothing was changed")]
    RescanRefused {
        file: String,
        object: String,
        rule: String,
    },
}

impl From<crate::fsutil::BarrierError> for WorkspaceError {
    fn from(e: crate::fsutil::BarrierError) -> Self {
        io_err(&e.path)(e.source)
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WorkspaceError + '_ {
    move |source| WorkspaceError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// How far a long piece of work on a workspace has come: `done` of `total` VMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

/// An open workspace. Holds the lock on `workspace.lock` until dropped.
#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
    /// The locked lock file; closing it (on drop) releases the lock. None for a read-only
    /// open of a workspace that has no lock file.
    _lock: Option<File>,
    topology: Topology,
}

/// `root/sites/<site>/datastores/<datastore>`: where a datastore lives in a workspace (one
/// place for the layout of SPEC §4).
pub fn datastore_path(root: &Path, site: &str, datastore: &str) -> PathBuf {
    root.join("sites")
        .join(site)
        .join("datastores")
        .join(datastore)
}

impl Workspace {
    /// Materializes `topology` into `root` (created if missing; it must not already hold a
    /// topology.ron). See [`Workspace::create_with_progress`].
    pub fn create(root: &Path, topology: &Topology) -> Result<Workspace, WorkspaceError> {
        Workspace::create_with_progress(root, topology, &mut |_| {})
    }

    /// Materializes `topology` into `root` (created if missing; it must not already hold a
    /// topology.ron): every site's datastore directories, one instance per VM on its
    /// datastore (vm.ron and a sparse, zeroed disk0.img of disk_mib MiB), an empty journal
    /// per protected site and `state/`. `progress` hears how many VMs are done, now and
    /// then and once at the end.
    ///
    /// Crash safety without an fsync per file: [`CREATING_FILE`] is written (durably)
    /// first, every other file plainly, on every core; then one [`Barrier`] makes them all
    /// durable, and only then is topology.ron written (atomically), which makes the
    /// workspace valid. A crash before it leaves a directory without topology.ron, which
    /// opens as "never created": the next create finds the marker, removes what the
    /// interrupted one made and builds it again.
    pub fn create_with_progress(
        root: &Path,
        topology: &Topology,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Workspace, WorkspaceError> {
        fs::create_dir_all(root).map_err(io_err(root))?;
        let lock = take_lock(root)?;
        let topo_path = root.join(TOPOLOGY_FILE);
        if exists_no_follow(&topo_path).map_err(io_err(&topo_path))? {
            return Err(WorkspaceError::AlreadyExists {
                root: root.display().to_string(),
            });
        }
        check_topology(topology, &topo_path)?;
        let ws = Workspace {
            root: root.to_path_buf(),
            _lock: Some(lock),
            topology: topology.clone(),
        };
        let marker = root.join(CREATING_FILE);
        if exists_no_follow(&marker).map_err(io_err(&marker))? {
            // An interrupted create: what it made is rebuilt from nothing.
            remove_workspace_entries(root)?;
        }
        File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(io_err(&marker))?;
        sync_dir(root)?;
        crate::fault::point("create.marker-written").map_err(io_err(&marker))?;

        let mut barrier = Barrier::new();
        for site in &topology.sites {
            let dir = ws.root.join("sites").join(&site.id).join("datastores");
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            barrier.dir(&dir);
            barrier.dir(dir.parent().unwrap_or(&dir));
        }
        for ds in &topology.datastores {
            // A planned distributed datastore gets its directory when it is created.
            if ds.distributed.as_ref().is_some_and(|d| !d.created) {
                continue;
            }
            let dir = ws.datastore_dir(&ds.id)?;
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            barrier.dir(&dir);
        }
        barrier.absorb(ws.create_instances(progress)?);

        let journal = ws.root.join("journal");
        fs::create_dir_all(&journal).map_err(io_err(&journal))?;
        barrier.dir(&journal);
        for site in &topology.sites {
            if site.role == SiteRole::Protected {
                let path = ws.journal_path(&site.id);
                File::create(&path).map_err(io_err(&path))?;
                barrier.file(&path);
            }
        }
        let state = ws.state_dir();
        fs::create_dir_all(&state).map_err(io_err(&state))?;
        barrier.dir(&state);

        barrier.commit()?;
        crate::fault::point("create.synced").map_err(io_err(root))?;
        topology.save(&topo_path)?;
        // The workspace is valid from here; a marker left by a crash now is never read
        // (only a create reads it, and a create refuses a workspace).
        fs::remove_file(&marker).map_err(io_err(&marker))?;
        Ok(ws)
    }

    /// Every VM's instance on its datastore, spread over the cores ([`crate::fsutil::spread`]).
    fn create_instances(
        &self,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Barrier, WorkspaceError> {
        let total = self.topology.vms.len();
        let ds_dirs: std::collections::HashMap<&str, PathBuf> = self
            .topology
            .datastores
            .iter()
            .map(|d| (d.id.as_str(), datastore_path(&self.root, &d.site, &d.id)))
            .collect();
        let make = |vm: &crate::topology::Vm, barrier: &mut Barrier| {
            let ds_dir = ds_dirs.get(vm.datastore.as_str()).ok_or_else(|| {
                WorkspaceError::UnknownDatastore {
                    datastore: vm.datastore.clone(),
                }
            })?;
            let dir = ds_dir.join(&vm.id);
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            barrier.dir(&dir);
            let config = VmConfig::for_vm(vm);
            materialize_disks(&dir, &config, vm.disk_mib, barrier)?;
            let path = dir.join(VM_CONFIG_FILE);
            fs::write(&path, config.to_ron_string()).map_err(io_err(&path))?;
            barrier.file(&path);
            crate::fault::point("create.instance-made").map_err(io_err(&dir))
        };
        crate::fsutil::spread(&self.topology.vms, make, &mut |done| {
            progress(Progress { done, total })
        })
    }

    /// Opens an existing workspace: takes the lock, loads and validates topology.ron.
    pub fn open(root: &Path) -> Result<Workspace, WorkspaceError> {
        // Check before locking so that opening a wrong directory leaves no lock file in it.
        let topo_path = topology_of_workspace(root)?;
        let lock = take_lock(root)?;
        let topology = Topology::load(&topo_path)?;
        // A crash right after topology.ron left the creation's marker: it is done with.
        let marker = root.join(CREATING_FILE);
        if exists_no_follow(&marker).map_err(io_err(&marker))? {
            fs::remove_file(&marker).map_err(io_err(&marker))?;
        }
        Ok(Workspace {
            root: root.to_path_buf(),
            _lock: Some(lock),
            topology,
        })
    }

    /// Opens an existing workspace to read it, writing nothing at all (`recover --dry-run`):
    /// no lock file is made and none is rewritten. When the lock file is there a *shared*
    /// lock is taken on it, so a process using the workspace (it holds the lock
    /// exclusively) makes this the same clear error as [`Workspace::open`], and that
    /// process cannot start while this one reads. A workspace without a lock file (what a
    /// disaster leaves: topology.ron and the recovery-site datastores) is read unlocked.
    /// Use it only to read: nothing stops a writer that starts after the check.
    pub fn open_read_only(root: &Path) -> Result<Workspace, WorkspaceError> {
        let topo_path = topology_of_workspace(root)?;
        let path = root.join(LOCK_FILE);
        let lock = match File::open(&path) {
            Ok(file) => {
                match file.try_lock_shared() {
                    Ok(()) => {}
                    Err(fs::TryLockError::WouldBlock) => return Err(locked(root, file)),
                    Err(fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
                }
                Some(file)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&path)(e)),
        };
        let topology = Topology::load(&topo_path)?;
        Ok(Workspace {
            root: root.to_path_buf(),
            _lock: lock,
            topology,
        })
    }

    /// Opens the workspace if `root/topology.ron` exists, else creates it from `topology`.
    pub fn open_or_create(root: &Path, topology: &Topology) -> Result<Workspace, WorkspaceError> {
        let topo_path = root.join(TOPOLOGY_FILE);
        if exists_no_follow(&topo_path).map_err(io_err(&topo_path))? {
            Workspace::open(root)
        } else {
            Workspace::create(root, topology)
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Validates `t`, then replaces topology.ron atomically and the in-memory copy.
    pub fn save_topology(&mut self, t: &Topology) -> Result<(), WorkspaceError> {
        let path = self.root.join(TOPOLOGY_FILE);
        check_topology(t, &path)?;
        t.save(&path)?;
        self.topology = t.clone();
        Ok(())
    }
}

/// Validates a topology before its ids are used as path components.
fn check_topology(t: &Topology, file: &Path) -> Result<(), WorkspaceError> {
    match t.validate() {
        Ok(()) => Ok(()),
        Err(violations) => {
            let mut it = violations.into_iter();
            let first = it.next().unwrap_or(Violation {
                object: "topology".to_string(),
                rule: "the topology is not valid".to_string(),
            });
            Err(WorkspaceError::Topology(TopologyError::Invalid {
                file: file.display().to_string(),
                first,
                rest: it.collect(),
            }))
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), WorkspaceError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir))
}

/// Does anything (a symlink included, never followed) exist at `path`?
fn exists_no_follow(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
