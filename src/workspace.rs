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

use crate::topology::{SiteRole, Topology, TopologyError, Violation, id_problem};

/// The lock file's name inside a workspace.
pub const LOCK_FILE: &str = "workspace.lock";
/// The topology file's name inside a workspace.
pub const TOPOLOGY_FILE: &str = "topology.ron";
/// The VM config file's name inside an instance directory.
pub const VM_CONFIG_FILE: &str = "vm.ron";
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

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WorkspaceError + '_ {
    move |source| WorkspaceError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The migration marks of SPEC §4.1 / §5.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationMarks {
    pub id: String,
    /// This instance is the source of a storage migration.
    pub source: bool,
    /// This instance is the destination of a storage migration.
    pub target: bool,
    /// The copy finished successfully.
    pub completed: bool,
}

/// The VM config file `vm.ron` (SPEC §4.1). Readers accept extra fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmConfig {
    pub uuid: String,
    pub name: String,
    pub vcpus: u32,
    pub memory_gib: u32,
    /// Disk image file names, relative to the instance directory.
    pub disks: Vec<String>,
    #[serde(default)]
    pub migration: Option<MigrationMarks>,
}

impl VmConfig {
    /// The config of a fresh instance of `vm`: one disk `disk0.img`, no migration marks.
    pub fn for_vm(vm: &crate::topology::Vm) -> VmConfig {
        VmConfig {
            uuid: vm.uuid.clone(),
            name: vm.id.clone(),
            vcpus: vm.vcpus,
            memory_gib: vm.memory_gib,
            disks: vec![FIRST_DISK.to_string()],
            migration: None,
        }
    }

    /// Pretty RON in the contract's shape: `VmConfig(uuid: ..., migration: None)`.
    pub fn to_ron_string(&self) -> String {
        let config = ron::ser::PrettyConfig::new()
            .struct_names(true)
            .indentor("    ".to_string());
        match ron::ser::to_string_pretty(self, config) {
            Ok(s) => s + "\n",
            // Strings, numbers, booleans and options always serialize; keep a fallback
            // anyway rather than panic.
            Err(_) => format!("{self:?}\n"),
        }
    }

    /// Parses `vm.ron` text; `file` names the source in errors. Checks the uuid and the
    /// disk file names.
    pub fn from_ron_str(text: &str, file: &str) -> Result<VmConfig, WorkspaceError> {
        let config: VmConfig = crate::fsutil::parse_ron(text, file)?;
        config.check(file)?;
        Ok(config)
    }

    /// The rules a config must keep so that it can be used safely: a standard uuid (disk
    /// stamps hold it) and disk names that are plain file names inside the instance directory.
    fn check(&self, file: &str) -> Result<(), WorkspaceError> {
        let invalid = |message: String| WorkspaceError::InvalidConfig {
            file: file.to_string(),
            message,
        };
        if uuid::Uuid::parse_str(&self.uuid).is_err() || self.uuid.len() != 36 {
            return Err(invalid(format!(
                "uuid {:?} is not a standard UUID (8-4-4-4-12 hex digits)",
                self.uuid
            )));
        }
        for (i, disk) in self.disks.iter().enumerate() {
            if let Some(p) = id_problem(disk) {
                return Err(invalid(format!(
                    "disk file name {disk:?} is not a plain file name: {p}"
                )));
            }
            if disk == VM_CONFIG_FILE {
                return Err(invalid(format!(
                    "disk file name {disk:?} is the config file's own name"
                )));
            }
            if self.disks[..i].contains(disk) {
                return Err(invalid(format!("disk file name {disk:?} is listed twice")));
            }
        }
        Ok(())
    }
}

/// One VM instance directory on a datastore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub site: String,
    pub datastore: String,
    /// The directory name: `<vm id>` or `<vm id>~<n>`.
    pub name: String,
    pub dir: PathBuf,
    pub config: VmConfig,
}

impl Instance {
    /// The path of disk `i` (`dir/config.disks[i]`). For an index past the config's list it
    /// is the conventional name `disk<i>.img`, so that this never panics.
    pub fn disk_path(&self, i: usize) -> PathBuf {
        match self.config.disks.get(i) {
            Some(name) => self.dir.join(name),
            None => self.dir.join(format!("disk{i}.img")),
        }
    }

    /// The paths of every disk, in order.
    pub fn disk_paths(&self) -> Vec<PathBuf> {
        self.config.disks.iter().map(|d| self.dir.join(d)).collect()
    }
}

/// Why `name` is not a valid instance directory name (`<id>` or `<id>~<n>`, n >= 1 written
/// without leading zeros), or None if it is.
pub fn instance_name_problem(name: &str) -> Option<String> {
    let (id, n) = match name.split_once('~') {
        Some((id, n)) => (id, Some(n)),
        None => (name, None),
    };
    if let Some(p) = id_problem(id) {
        return Some(p);
    }
    if let Some(n) = n {
        let digits = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
        if !digits || n.starts_with('0') || n.parse::<u64>().is_err() {
            return Some(format!(
                "the suffix after '~' must be a decimal number >= 1 without leading zeros, not {n:?}"
            ));
        }
    }
    None
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
    /// topology.ron). Lays out every site's datastore directories, one instance per VM on its
    /// datastore (vm.ron and a zeroed disk0.img of disk_mib MiB), an empty journal per
    /// protected site and `state/`. topology.ron is written last, so an interrupted create
    /// leaves no workspace behind and can simply be run again.
    pub fn create(root: &Path, topology: &Topology) -> Result<Workspace, WorkspaceError> {
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

        for site in &topology.sites {
            let dir = ws.root.join("sites").join(&site.id).join("datastores");
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        for ds in &topology.datastores {
            // A planned distributed datastore gets its directory when it is created.
            if ds.distributed.as_ref().is_some_and(|d| !d.created) {
                continue;
            }
            let dir = ws.datastore_dir(&ds.id)?;
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        for vm in &topology.vms {
            let ds_dir = ws.datastore_dir(&vm.datastore)?;
            let dir = ds_dir.join(&vm.id);
            // A previous, interrupted create may have left the directory: rewrite it.
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            materialize_instance(&dir, &VmConfig::for_vm(vm), vm.disk_mib)?;
            sync_dir(&ds_dir)?;
        }

        let journal = ws.root.join("journal");
        fs::create_dir_all(&journal).map_err(io_err(&journal))?;
        for site in &topology.sites {
            if site.role == SiteRole::Protected {
                let path = ws.journal_path(&site.id);
                let f = File::create(&path).map_err(io_err(&path))?;
                f.sync_all().map_err(io_err(&path))?;
            }
        }
        sync_dir(&journal)?;
        let state = ws.state_dir();
        fs::create_dir_all(&state).map_err(io_err(&state))?;

        topology.save(&topo_path)?;
        Ok(ws)
    }

    /// Opens an existing workspace: takes the lock, loads and validates topology.ron.
    pub fn open(root: &Path) -> Result<Workspace, WorkspaceError> {
        // Check before locking so that opening a wrong directory leaves no lock file in it.
        let topo_path = topology_of_workspace(root)?;
        let lock = take_lock(root)?;
        let topology = Topology::load(&topo_path)?;
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

    /// The topology a rescan of `file` (SPEC §2) would adopt: the file's links, hosts,
    /// arrays and LUNs, datastores, protection groups and datastore clusters, with the
    /// workspace's name, sites and VMs (VM placements are the workspace's: migrations
    /// changed them). Checks everything that does not depend on the running engine and
    /// changes nothing: the sites must be the same, the VMs the same ones (a rescan neither
    /// deletes a VM nor materializes one), a datastore that leaves must hold no instance, one
    /// that stays keeps its site and its distributed legs (its directories stay where they
    /// are), and the result must be valid. `file` names the file in errors.
    pub fn rescan_topology(&self, read: &Topology, file: &str) -> Result<Topology, WorkspaceError> {
        let refuse = |object: String, rule: String| WorkspaceError::RescanRefused {
            file: file.to_string(),
            object,
            rule,
        };
        let old = &self.topology;
        if read.sites != old.sites {
            return Err(refuse(
                "sites".into(),
                "the sites differ from the workspace's; a workspace keeps its sites (journals \
                 and directories are per site): open the file in a new workspace"
                    .into(),
            ));
        }
        let in_file: BTreeSet<&str> = read.vms.iter().map(|v| v.id.as_str()).collect();
        let in_ws: BTreeSet<&str> = old.vms.iter().map(|v| v.id.as_str()).collect();
        if let Some(vm) = in_ws.difference(&in_file).next() {
            return Err(refuse(
                format!("VM {vm:?}"),
                "removed from the file, but the workspace holds it (its disks and journal); \
                 a rescan does not delete VMs"
                    .into(),
            ));
        }
        if let Some(vm) = in_file.difference(&in_ws).next() {
            return Err(refuse(
                format!("VM {vm:?}"),
                "in the file but not in the workspace; a rescan does not create VMs: open the \
                 file in a new workspace"
                    .into(),
            ));
        }
        for ds in &old.datastores {
            let obj = || format!("datastore {:?}", ds.id);
            match read.datastore(&ds.id) {
                None => {
                    let held = self.list_instances(&ds.id)?;
                    let vms: Vec<&str> = old
                        .vms
                        .iter()
                        .filter(|v| v.datastore == ds.id)
                        .map(|v| v.id.as_str())
                        .collect();
                    if !held.is_empty() || !vms.is_empty() {
                        let names: Vec<String> = held.iter().map(|i| i.name.clone()).collect();
                        let names = if names.is_empty() {
                            vms.join(", ")
                        } else {
                            names.join(", ")
                        };
                        return Err(refuse(
                            obj(),
                            format!(
                                "removed from the file, but it holds instances ({names}); move \
                                 them off first"
                            ),
                        ));
                    }
                }
                Some(new) if new.site != ds.site => {
                    return Err(refuse(
                        obj(),
                        format!(
                            "its site changes from {:?} to {:?}; its directory cannot move",
                            ds.site, new.site
                        ),
                    ));
                }
                Some(new) if !same_legs(ds, new) => {
                    return Err(refuse(
                        obj(),
                        "its distributed legs change; a distributed datastore keeps its legs \
                         while it runs"
                            .into(),
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(ds) = read
            .datastores
            .iter()
            .find(|d| d.distributed.is_some() && old.datastore(&d.id).is_none())
        {
            return Err(refuse(
                format!("datastore {:?}", ds.id),
                "a new distributed datastore; plan it in a new workspace".into(),
            ));
        }
        let mut t = read.clone();
        t.name = old.name.clone();
        t.sites = old.sites.clone();
        t.vms = old.vms.clone();
        // A created distributed datastore says so in the workspace (CreateDatastore).
        for ds in &mut t.datastores {
            if let Some(d) = old.datastore(&ds.id) {
                ds.distributed = d.distributed.clone();
            }
        }
        check_topology(&t, Path::new(file))?;
        Ok(t)
    }

    /// Adopts `t` (from [`Workspace::rescan_topology`]): makes the directories of datastores
    /// new in it, then replaces topology.ron atomically. A crash before the replace leaves
    /// only empty directories the old topology ignores.
    pub fn adopt_topology(&mut self, t: &Topology) -> Result<(), WorkspaceError> {
        for ds in &t.datastores {
            if self.topology.datastore(&ds.id).is_some()
                || ds.distributed.as_ref().is_some_and(|d| !d.created)
            {
                continue;
            }
            let dir = datastore_path(&self.root, &ds.site, &ds.id);
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        self.save_topology(t)
    }

    /// `root/sites/<site>/datastores/<datastore>`, the site taken from the topology.
    pub fn datastore_dir(&self, datastore: &str) -> Result<PathBuf, WorkspaceError> {
        let ds =
            self.topology
                .datastore(datastore)
                .ok_or_else(|| WorkspaceError::UnknownDatastore {
                    datastore: datastore.to_string(),
                })?;
        Ok(datastore_path(&self.root, &ds.site, &ds.id))
    }

    /// Checks what the engine is about to read and write through before it opens anything:
    /// no symbolic link where the workspace keeps its data (`sites/<site>/datastores/<ds>`,
    /// an instance-named entry of a datastore directory or any file inside an instance,
    /// `journal/`, a journal, `state/`, `state/migrations` and its records), since one
    /// could lead reads and writes out of the workspace;
    /// and every protected site's journal present. Entries of a datastore directory that
    /// are not instance names are ignored, as [`Workspace::list_instances`] ignores them.
    /// Reads only directory entries and link metadata; changes nothing.
    pub fn check_layout(&self) -> Result<(), WorkspaceError> {
        let no_link = |path: &Path| -> Result<bool, WorkspaceError> {
            match fs::symlink_metadata(path) {
                Ok(m) if m.file_type().is_symlink() => Err(WorkspaceError::Symlink {
                    path: path.display().to_string(),
                    target: fs::read_link(path)
                        .map(|t| t.display().to_string())
                        .unwrap_or_else(|e| format!("unreadable: {e}")),
                }),
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(io_err(path)(e)),
            }
        };
        // Every entry of the directory `dir` (if it is one) that is a symbolic link.
        let links_inside = |dir: &Path| -> Result<(), WorkspaceError> {
            let Ok(entries) = fs::read_dir(dir) else {
                // Not a directory (a stray file), or gone: nothing inside to follow.
                return Ok(());
            };
            for entry in entries {
                let entry = entry.map_err(io_err(dir))?;
                if entry
                    .file_type()
                    .map_err(io_err(&entry.path()))?
                    .is_symlink()
                {
                    no_link(&entry.path())?;
                }
            }
            Ok(())
        };
        let sites = self.root.join("sites");
        if no_link(&sites)? {
            for site in &self.topology.sites {
                let dir = sites.join(&site.id);
                if no_link(&dir)? {
                    no_link(&dir.join("datastores"))?;
                }
            }
            // A distributed datastore's second leg lives at its remote site.
            let second_legs = self.topology.datastores.iter().filter_map(|ds| {
                let d = ds.distributed.as_ref()?;
                Some(sites.join(&d.remote_site).join("datastores").join(&ds.id))
            });
            let dirs = self
                .topology
                .datastores
                .iter()
                .map(|ds| self.datastore_dir(&ds.id))
                .collect::<Result<Vec<_>, _>>()?;
            for dir in dirs.into_iter().chain(second_legs) {
                if !no_link(&dir)? {
                    continue;
                }
                for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
                    let entry = entry.map_err(io_err(&dir))?;
                    let instance_named = entry
                        .file_name()
                        .to_str()
                        .is_some_and(|n| instance_name_problem(n).is_none());
                    let is_link = entry
                        .file_type()
                        .map_err(io_err(&entry.path()))?
                        .is_symlink();
                    if instance_named && is_link {
                        no_link(&entry.path())?;
                    } else if instance_named {
                        // Nor a file inside an instance (its image, its vm.ron).
                        links_inside(&entry.path())?;
                    }
                }
            }
        }
        no_link(&self.root.join("journal"))?;
        for site in &self.topology.sites {
            let path = self.journal_path(&site.id);
            let present = no_link(&path)?;
            if !present && site.role == SiteRole::Protected {
                return Err(WorkspaceError::MissingJournal {
                    path: path.display().to_string(),
                    site: site.id.clone(),
                });
            }
        }
        let state = self.state_dir();
        if no_link(&state)? {
            let migrations = state.join("migrations");
            if no_link(&migrations)? {
                links_inside(&migrations)?;
            }
        }
        Ok(())
    }

    /// `root/journal/<site>.log`.
    pub fn journal_path(&self, site: &str) -> PathBuf {
        self.root.join("journal").join(format!("{site}.log"))
    }

    /// `root/state`.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    /// Every instance on `datastore`, sorted by name: the subdirectories (not symlinks) named
    /// `<id>` or `<id>~<n>` that hold a regular file vm.ron. A vm.ron that cannot be read or
    /// parsed is an error naming the file. A missing datastore directory yields an empty list.
    pub fn list_instances(&self, datastore: &str) -> Result<Vec<Instance>, WorkspaceError> {
        let ds_dir = self.datastore_dir(datastore)?;
        let site = self
            .topology
            .datastore(datastore)
            .map(|d| d.site.clone())
            .unwrap_or_default();
        let entries = match fs::read_dir(&ds_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&ds_dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&ds_dir))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if instance_name_problem(&name).is_some() {
                continue;
            }
            let dir = ds_dir.join(&name);
            let meta = fs::symlink_metadata(&dir).map_err(io_err(&dir))?;
            if !meta.is_dir() {
                continue; // symlinks and plain files
            }
            let cfg_path = dir.join(VM_CONFIG_FILE);
            match fs::symlink_metadata(&cfg_path) {
                Ok(m) if m.is_file() => {}
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&cfg_path)(e)),
            }
            let config = Workspace::read_config(&dir)?;
            out.push(Instance {
                site: site.clone(),
                datastore: datastore.to_string(),
                name,
                dir,
                config,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The instance name to use for `vm_id` on `datastore`: `vm_id` if nothing of that name
    /// exists there, else the smallest free `vm_id~<n>`, n >= 1.
    pub fn free_instance_name(
        &self,
        datastore: &str,
        vm_id: &str,
    ) -> Result<String, WorkspaceError> {
        if let Some(reason) = id_problem(vm_id) {
            return Err(WorkspaceError::InvalidInstanceName {
                name: vm_id.to_string(),
                reason,
            });
        }
        let ds_dir = self.datastore_dir(datastore)?;
        let taken = |name: &str| {
            let p = ds_dir.join(name);
            exists_no_follow(&p).map_err(io_err(&p))
        };
        if !taken(vm_id)? {
            return Ok(vm_id.to_string());
        }
        let mut n: u64 = 1;
        loop {
            let name = format!("{vm_id}~{n}");
            if !taken(&name)? {
                return Ok(name);
            }
            n += 1;
        }
    }

    /// Creates the instance directory `name` on `datastore` with its disks (each `disk_mib`
    /// MiB of zeros, sparse) and vm.ron (written last, atomically). Errors if the directory
    /// exists. Fsyncs the files, the instance directory and the datastore directory. On
    /// failure the half-made directory is removed.
    pub fn create_instance(
        &self,
        datastore: &str,
        name: &str,
        config: &VmConfig,
        disk_mib: u64,
    ) -> Result<Instance, WorkspaceError> {
        if let Some(reason) = instance_name_problem(name) {
            return Err(WorkspaceError::InvalidInstanceName {
                name: name.to_string(),
                reason,
            });
        }
        let ds_dir = self.datastore_dir(datastore)?;
        let dir = ds_dir.join(name);
        config.check(&dir.join(VM_CONFIG_FILE).display().to_string())?;
        fs::create_dir_all(&ds_dir).map_err(io_err(&ds_dir))?;
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(WorkspaceError::InstanceExists {
                    path: dir.display().to_string(),
                });
            }
            Err(e) => return Err(io_err(&dir)(e)),
        }
        let made = materialize_instance(&dir, config, disk_mib).and_then(|()| sync_dir(&ds_dir));
        if let Err(e) = made {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        let site = self
            .topology
            .datastore(datastore)
            .map(|d| d.site.clone())
            .unwrap_or_default();
        Ok(Instance {
            site,
            datastore: datastore.to_string(),
            name: name.to_string(),
            dir,
            config: config.clone(),
        })
    }

    /// Reads `<dir>/vm.ron`.
    pub fn read_config(dir: &Path) -> Result<VmConfig, WorkspaceError> {
        let path = dir.join(VM_CONFIG_FILE);
        let text = fs::read_to_string(&path).map_err(io_err(&path))?;
        VmConfig::from_ron_str(&text, &path.display().to_string())
    }

    /// Replaces `<dir>/vm.ron` atomically.
    pub fn write_config(dir: &Path, config: &VmConfig) -> Result<(), WorkspaceError> {
        let path = dir.join(VM_CONFIG_FILE);
        config.check(&path.display().to_string())?;
        crate::fsutil::write_atomic(&path, config.to_ron_string().as_bytes()).map_err(io_err(&path))
    }

    /// Deletes an instance directory and fsyncs its parent. Refuses anything that is not a
    /// real directory at `sites/<site>/datastores/<datastore>/<instance>` of this workspace
    /// (symlinks, `..` tricks and paths elsewhere included).
    pub fn remove_instance(&self, dir: &Path) -> Result<(), WorkspaceError> {
        let refuse = || WorkspaceError::OutsideWorkspace {
            path: dir.display().to_string(),
            root: self.root.display().to_string(),
        };
        let meta = fs::symlink_metadata(dir).map_err(io_err(dir))?;
        if !meta.is_dir() {
            return Err(refuse());
        }
        let canon_root = fs::canonicalize(&self.root).map_err(io_err(&self.root))?;
        let canon = fs::canonicalize(dir).map_err(io_err(dir))?;
        let Ok(rel) = canon.strip_prefix(&canon_root) else {
            return Err(refuse());
        };
        let parts: Vec<&std::ffi::OsStr> = rel
            .components()
            .map(|c| match c {
                Component::Normal(s) => Some(s),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(refuse)?;
        let is_instance = parts.len() == 5
            && parts[0] == "sites"
            && parts[2] == "datastores"
            && parts[4]
                .to_str()
                .is_some_and(|n| instance_name_problem(n).is_none());
        if !is_instance {
            return Err(refuse());
        }
        fs::remove_dir_all(&canon).map_err(io_err(dir))?;
        match canon.parent() {
            Some(parent) => sync_dir(parent),
            None => Ok(()),
        }
    }
}

/// What a workspace directory holds besides the lock file: what [`discard`] removes.
const WORKSPACE_ENTRIES: [&str; 4] = [TOPOLOGY_FILE, "sites", "journal", "state"];

/// Discards the workspace at `root` so that it can be created afresh from its topology
/// (File ▶ Reset workspace…, a demo's fresh start): removes `topology.ron`, `sites/`,
/// `journal/` and `state/` — and nothing else, not even another file in `root` (those are
/// returned, left alone) — while holding the workspace's lock, so a workspace another
/// process uses is refused. A missing or empty directory is fine (nothing to discard). A
/// directory that does not look like a workspace (no topology.ron, or its directories are
/// not directories) is refused and left untouched.
pub fn discard(root: &Path) -> Result<Vec<PathBuf>, WorkspaceError> {
    let mut entries = match fs::read_dir(root) {
        Ok(e) => e.peekable(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(root)(e)),
    };
    if entries.peek().is_none() {
        return Ok(Vec::new());
    }
    topology_of_workspace(root)?;
    for name in &WORKSPACE_ENTRIES[1..] {
        let dir = root.join(name);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            _ => {
                return Err(WorkspaceError::NotAWorkspace {
                    root: root.display().to_string(),
                });
            }
        }
    }
    let _lock = take_lock(root)?;
    let mut left = Vec::new();
    for e in fs::read_dir(root).map_err(io_err(root))? {
        let e = e.map_err(io_err(root))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        let path = e.path();
        if WORKSPACE_ENTRIES.contains(&name.as_ref()) {
            if path.is_dir() && !path.is_symlink() {
                fs::remove_dir_all(&path).map_err(io_err(&path))?;
            } else {
                fs::remove_file(&path).map_err(io_err(&path))?;
            }
        } else if name != LOCK_FILE && !name.starts_with(&format!(".{TOPOLOGY_FILE}.tmp-")) {
            left.push(path);
        } else if name != LOCK_FILE {
            // A temp file an interrupted atomic write of topology.ron left.
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    sync_dir(root)?;
    left.sort();
    Ok(left)
}

/// Default location of a topology's workspace when none is given:
/// `<user data dir>/drconsole/workspaces/<slug>`, or `./drconsole-workspaces/<slug>` when
/// there is no home directory.
pub fn default_workspace_dir(topology_name: &str) -> PathBuf {
    let slug = workspace_slug(topology_name);
    match directories::ProjectDirs::from("", "", "drconsole") {
        Some(dirs) => dirs.data_dir().join("workspaces").join(slug),
        None => PathBuf::from("drconsole-workspaces").join(slug),
    }
}

/// The lower-case topology name with every run of characters outside `[a-z0-9]` replaced by
/// one '-', trimmed of '-', at most 64 characters; "workspace" if nothing is left.
pub fn workspace_slug(topology_name: &str) -> String {
    let mut slug = String::new();
    let mut dash = false;
    for c in topology_name.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if dash && !slug.is_empty() {
                slug.push('-');
            }
            dash = false;
            slug.push(c);
        } else {
            dash = true;
        }
    }
    // Only ASCII is left, so byte truncation is character truncation.
    slug.truncate(64);
    let slug = slug.trim_matches('-');
    if slug.is_empty() {
        "workspace".to_string()
    } else {
        slug.to_string()
    }
}

/// `root/topology.ron`, or the error that `root` is not a workspace.
fn topology_of_workspace(root: &Path) -> Result<PathBuf, WorkspaceError> {
    let topo_path = root.join(TOPOLOGY_FILE);
    let not_a_workspace = || WorkspaceError::NotAWorkspace {
        root: root.display().to_string(),
    };
    match fs::metadata(&topo_path) {
        Ok(m) if m.is_file() => Ok(topo_path),
        Ok(_) => Err(not_a_workspace()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_a_workspace()),
        Err(e) => Err(io_err(&topo_path)(e)),
    }
}

/// The error for a workspace whose lock `file` another process holds (its pid, as it
/// recorded it in the file).
fn locked(root: &Path, mut file: File) -> WorkspaceError {
    let mut text = String::new();
    let _ = (&mut file).take(256).read_to_string(&mut text);
    let text = text.trim();
    let holder = if text.is_empty() {
        "holder unknown".to_string()
    } else {
        text.to_string()
    };
    WorkspaceError::Locked {
        root: root.display().to_string(),
        holder,
    }
}

/// Opens (creating) `root/workspace.lock`, locks it without waiting and records our pid.
fn take_lock(root: &Path) -> Result<File, WorkspaceError> {
    let path = root.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Err(locked(root, file)),
        Err(fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
    }
    let record = (|| {
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "pid {}", std::process::id())?;
        file.flush()
    })();
    record.map_err(io_err(&path))?;
    Ok(file)
}

/// Do two versions of a datastore have the same distributed legs (whether it was created
/// yet aside: the workspace knows that)?
fn same_legs(a: &crate::topology::Datastore, b: &crate::topology::Datastore) -> bool {
    let legs = |d: &crate::topology::Datastore| {
        d.distributed.as_ref().map(|x| {
            (
                x.remote_site.clone(),
                x.remote_lun.clone(),
                x.witness.clone(),
            )
        })
    };
    legs(a) == legs(b)
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

/// Writes the disks (sparse zeros) and then vm.ron of an instance into an existing `dir`,
/// fsyncing each and the directory.
fn materialize_instance(
    dir: &Path,
    config: &VmConfig,
    disk_mib: u64,
) -> Result<(), WorkspaceError> {
    let bytes = disk_mib
        .checked_mul(MIB)
        .ok_or_else(|| WorkspaceError::Io {
            path: dir.display().to_string(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a disk of {disk_mib} MiB is too large"),
            ),
        })?;
    for disk in &config.disks {
        let path = dir.join(disk);
        let f = File::create(&path).map_err(io_err(&path))?;
        f.set_len(bytes).map_err(io_err(&path))?;
        f.sync_all().map_err(io_err(&path))?;
    }
    Workspace::write_config(dir, config)?;
    sync_dir(dir)
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

#[cfg(test)]
mod tests {
    use super::*;

    const PATENT: &str = include_str!("../sample_topologies/patent_hazard.ron");

    fn patent() -> Topology {
        Topology::from_ron_str(PATENT, "patent_hazard.ron").unwrap()
    }

    fn sample_config() -> VmConfig {
        VmConfig {
            uuid: "8f0c6f4e-3c1a-4f7e-9a51-0d2f6b7c9e11".to_string(),
            name: "web-01".to_string(),
            vcpus: 2,
            memory_gib: 8,
            disks: vec!["disk0.img".to_string()],
            migration: None,
        }
    }

    #[test]
    fn create_materializes_the_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        let topo = patent();
        let ws = Workspace::create(&root, &topo).unwrap();
        assert_eq!(ws.root(), root);
        assert_eq!(ws.topology(), &topo);
        assert_eq!(Topology::load(&root.join("topology.ron")).unwrap(), topo);
        for (site, ds) in [
            ("pa", "ds-1"),
            ("pa", "ds-2"),
            ("ny", "ds-1-r"),
            ("ny", "ds-2-r"),
        ] {
            let d = root.join("sites").join(site).join("datastores").join(ds);
            assert!(d.is_dir(), "{}", d.display());
            assert_eq!(ws.datastore_dir(ds).unwrap(), d);
        }
        for vm in &topo.vms {
            let dir = ws.datastore_dir(&vm.datastore).unwrap().join(&vm.id);
            let cfg = Workspace::read_config(&dir).unwrap();
            assert_eq!(cfg, VmConfig::for_vm(vm));
            assert_eq!(cfg.name, vm.id);
            let img = fs::metadata(dir.join("disk0.img")).unwrap();
            assert_eq!(img.len(), vm.disk_mib * 1024 * 1024);
        }
        let journal = root.join("journal/pa.log");
        assert_eq!(ws.journal_path("pa"), journal);
        assert_eq!(fs::read(&journal).unwrap(), b"");
        assert!(!root.join("journal/ny.log").exists());
        assert!(ws.state_dir().is_dir());
        assert_eq!(ws.state_dir(), root.join("state"));
        let lock = fs::read_to_string(root.join(LOCK_FILE)).unwrap();
        assert_eq!(lock, format!("pid {}\n", std::process::id()));

        let vm1 = ws.list_instances("ds-1").unwrap();
        assert_eq!(vm1.len(), 1);
        assert_eq!(vm1[0].name, "vm1");
        assert_eq!(vm1[0].site, "pa");
        assert_eq!(vm1[0].disk_path(0), vm1[0].dir.join("disk0.img"));
        assert!(ws.list_instances("ds-1-r").unwrap().is_empty());
        assert!(matches!(
            ws.list_instances("nope"),
            Err(WorkspaceError::UnknownDatastore { .. })
        ));
    }

    #[test]
    fn discard_removes_the_workspace_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        let ws = Workspace::create(&root, &patent()).unwrap();
        // In use: refused, nothing removed.
        assert!(matches!(discard(&root), Err(WorkspaceError::Locked { .. })));
        assert!(root.join(TOPOLOGY_FILE).is_file());
        drop(ws);
        std::fs::write(root.join("notes.txt"), "mine").unwrap();
        std::fs::write(dir.path().join("beside.txt"), "mine").unwrap();
        assert_eq!(discard(&root).unwrap(), [root.join("notes.txt")]);
        for name in WORKSPACE_ENTRIES {
            assert!(!root.join(name).exists(), "{name} removed");
        }
        assert!(root.join("notes.txt").exists() && dir.path().join("beside.txt").exists());
        // Created afresh in the same place.
        Workspace::create(&root, &patent()).unwrap();

        // Not a workspace: refused, untouched; a missing directory is nothing to discard.
        let other = dir.path().join("other");
        std::fs::create_dir_all(other.join("state")).unwrap();
        std::fs::write(other.join("state/keep"), "x").unwrap();
        assert!(matches!(
            discard(&other),
            Err(WorkspaceError::NotAWorkspace { .. })
        ));
        assert!(other.join("state/keep").exists());
        std::fs::write(other.join(TOPOLOGY_FILE), "x").unwrap();
        std::fs::remove_dir_all(other.join("state")).unwrap();
        std::fs::write(other.join("state"), "a file").unwrap();
        assert!(matches!(
            discard(&other),
            Err(WorkspaceError::NotAWorkspace { .. })
        ));
        assert!(other.join("state").is_file());
        assert_eq!(
            discard(&dir.path().join("none")).unwrap(),
            Vec::<PathBuf>::new()
        );
    }

    #[test]
    fn create_refuses_an_existing_workspace() {
        let tmp = tempfile::tempdir().unwrap();
        drop(Workspace::create(tmp.path(), &patent()).unwrap());
        let err = Workspace::create(tmp.path(), &patent()).unwrap_err();
        assert!(matches!(err, WorkspaceError::AlreadyExists { .. }), "{err}");
    }

    #[test]
    fn vm_config_round_trip() {
        let mut cfg = sample_config();
        let text = cfg.to_ron_string();
        assert!(text.starts_with("VmConfig("), "{text}");
        assert!(text.contains("migration: None"), "{text}");
        assert_eq!(VmConfig::from_ron_str(&text, "vm.ron").unwrap(), cfg);

        cfg.migration = Some(MigrationMarks {
            id: "m-0007".to_string(),
            source: true,
            target: false,
            completed: false,
        });
        let text = cfg.to_ron_string();
        assert!(text.contains("Some(MigrationMarks("), "{text}");
        assert_eq!(VmConfig::from_ron_str(&text, "vm.ron").unwrap(), cfg);

        let tmp = tempfile::tempdir().unwrap();
        Workspace::write_config(tmp.path(), &cfg).unwrap();
        assert_eq!(Workspace::read_config(tmp.path()).unwrap(), cfg);
    }

    #[test]
    fn vm_config_spec_example_parses() {
        let text = r#"VmConfig(
    uuid: "8f0c6f4e-3c1a-4f7e-9a51-0d2f6b7c9e11",
    name: "web-01",
    vcpus: 2,
    memory_gib: 8,
    disks: ["disk0.img"],
    migration: Some(MigrationMarks(id: "m-0007", source: true, target: false, completed: false)),
)"#;
        let cfg = VmConfig::from_ron_str(text, "vm.ron").unwrap();
        assert_eq!(cfg.migration.unwrap().id, "m-0007");
    }

    #[test]
    fn vm_config_accepts_unknown_fields_and_missing_migration() {
        let text = r#"VmConfig(
    uuid: "8f0c6f4e-3c1a-4f7e-9a51-0d2f6b7c9e11",
    name: "web-01",
    vcpus: 2,
    memory_gib: 8,
    disks: ["disk0.img"],
    future_field: Some((a: 1, b: [2, 3])),
    notes: "hello",
)"#;
        let cfg = VmConfig::from_ron_str(text, "vm.ron").unwrap();
        assert_eq!(cfg, sample_config());
    }

    #[test]
    fn garbage_vm_config_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("vm.ron");
        fs::write(&path, "VmConfig(\n  uuid: 17,\n").unwrap();
        let err = Workspace::read_config(tmp.path()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, WorkspaceError::Config(_)), "{msg}");
        assert!(msg.starts_with(&format!("{}:2:", path.display())), "{msg}");

        let err = Workspace::read_config(&tmp.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("missing/vm.ron"), "{err}");
    }

    #[test]
    fn vm_config_rejects_unsafe_disk_names_and_bad_uuids() {
        let mut cfg = sample_config();
        cfg.disks = vec!["../../etc/passwd".to_string()];
        let err = VmConfig::from_ron_str(&cfg.to_ron_string(), "x/vm.ron").unwrap_err();
        assert!(matches!(err, WorkspaceError::InvalidConfig { .. }), "{err}");
        assert!(err.to_string().starts_with("x/vm.ron: "), "{err}");
        let tmp = tempfile::tempdir().unwrap();
        assert!(Workspace::write_config(tmp.path(), &cfg).is_err());
        assert!(!tmp.path().join("vm.ron").exists());

        let mut cfg = sample_config();
        cfg.uuid = "not-a-uuid".to_string();
        let err = VmConfig::from_ron_str(&cfg.to_ron_string(), "vm.ron").unwrap_err();
        assert!(err.to_string().contains("not-a-uuid"), "{err}");
    }

    #[test]
    fn free_instance_name_counts_up() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = Workspace::create(tmp.path(), &patent()).unwrap();
        assert_eq!(ws.free_instance_name("ds-2", "vm1").unwrap(), "vm1");
        assert_eq!(ws.free_instance_name("ds-1", "vm1").unwrap(), "vm1~1");
        let cfg = VmConfig::for_vm(ws.topology().vm("vm1").unwrap());
        let a = ws.create_instance("ds-1", "vm1~1", &cfg, 1).unwrap();
        assert_eq!(a.dir, ws.datastore_dir("ds-1").unwrap().join("vm1~1"));
        assert_eq!(fs::metadata(a.disk_path(0)).unwrap().len(), 1024 * 1024);
        assert_eq!(ws.free_instance_name("ds-1", "vm1").unwrap(), "vm1~2");
        // A gap is reused.
        ws.create_instance("ds-1", "vm1~3", &cfg, 1).unwrap();
        assert_eq!(ws.free_instance_name("ds-1", "vm1").unwrap(), "vm1~2");

        let names: Vec<String> = ws
            .list_instances("ds-1")
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(names, ["vm1", "vm1~1", "vm1~3"]);

        let err = ws.create_instance("ds-1", "vm1~1", &cfg, 1).unwrap_err();
        assert!(
            matches!(err, WorkspaceError::InstanceExists { .. }),
            "{err}"
        );
        for bad in ["../x", "vm1~0", "vm1~01", "vm1~", "Vm1", "a/b"] {
            let err = ws.create_instance("ds-1", bad, &cfg, 1).unwrap_err();
            assert!(
                matches!(err, WorkspaceError::InvalidInstanceName { .. }),
                "{bad}: {err}"
            );
        }
        assert!(ws.free_instance_name("ds-1", "../x").is_err());
    }

    #[test]
    fn list_instances_skips_symlinks_bad_names_and_dirs_without_config() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = Workspace::create(&tmp.path().join("ws"), &patent()).unwrap();
        let ds = ws.datastore_dir("ds-1").unwrap();

        // A directory outside the workspace that looks just like an instance.
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        Workspace::write_config(&outside, &sample_config()).unwrap();
        std::os::unix::fs::symlink(&outside, ds.join("vm9")).unwrap();

        // Badly named directories holding a valid vm.ron.
        for bad in ["Bad Name", ".hidden", "vm1~0", "vm1~x", "vm1~1~2"] {
            fs::create_dir(ds.join(bad)).unwrap();
            Workspace::write_config(&ds.join(bad), &sample_config()).unwrap();
        }
        // A well-named directory without vm.ron and a stray file.
        fs::create_dir(ds.join("vm7")).unwrap();
        fs::write(ds.join("vm8"), b"not a dir").unwrap();

        let names: Vec<String> = ws
            .list_instances("ds-1")
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(names, ["vm1"]);

        // Taken names count even when they are symlinks.
        assert_eq!(ws.free_instance_name("ds-1", "vm9").unwrap(), "vm9~1");

        // A broken vm.ron in a listed instance is an error naming the file.
        fs::create_dir(ds.join("vm1~1")).unwrap();
        fs::write(ds.join("vm1~1/vm.ron"), "garbage").unwrap();
        let err = ws.list_instances("ds-1").unwrap_err();
        assert!(err.to_string().contains("vm1~1/vm.ron"), "{err}");
    }

    #[test]
    fn list_instances_of_a_missing_directory_is_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = Workspace::create(tmp.path(), &patent()).unwrap();
        fs::remove_dir_all(ws.datastore_dir("ds-2").unwrap()).unwrap();
        assert!(ws.list_instances("ds-2").unwrap().is_empty());
    }

    #[test]
    fn second_open_is_locked_and_drop_releases() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        let ws = Workspace::create(&root, &patent()).unwrap();
        let err = Workspace::open(&root).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, WorkspaceError::Locked { .. }), "{msg}");
        assert!(msg.contains(&root.display().to_string()), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(matches!(
            Workspace::open_or_create(&root, &patent()),
            Err(WorkspaceError::Locked { .. })
        ));
        drop(ws);
        let ws = Workspace::open(&root).unwrap();
        assert_eq!(ws.topology(), &patent());
    }

    #[test]
    fn open_needs_a_workspace() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Workspace::open(tmp.path()).unwrap_err();
        assert!(matches!(err, WorkspaceError::NotAWorkspace { .. }), "{err}");
        assert!(err.to_string().contains("no topology.ron"), "{err}");
        assert!(!tmp.path().join(LOCK_FILE).exists());
        assert!(matches!(
            Workspace::open(&tmp.path().join("missing")),
            Err(WorkspaceError::NotAWorkspace { .. })
        ));
    }

    #[test]
    fn open_or_create_reopens() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        let ws = Workspace::open_or_create(&root, &patent()).unwrap();
        let ds = ws.datastore_dir("ds-2").unwrap();
        let cfg = VmConfig::for_vm(ws.topology().vm("vm2").unwrap());
        ws.create_instance("ds-2", "vm2~1", &cfg, 1).unwrap();
        drop(ws);

        // A different topology is ignored: the workspace's own is loaded.
        let other = Topology::builtin_default();
        let ws = Workspace::open_or_create(&root, &other).unwrap();
        assert_eq!(ws.topology(), &patent());
        assert!(ds.join("vm2~1/vm.ron").is_file());
        assert_eq!(ws.list_instances("ds-2").unwrap().len(), 2);
    }

    #[test]
    fn save_topology_replaces_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ws = Workspace::create(tmp.path(), &patent()).unwrap();
        let mut t = patent();
        t.vms[0].datastore = "ds-2".to_string();
        ws.save_topology(&t).unwrap();
        assert_eq!(ws.topology(), &t);
        drop(ws);
        let ws = Workspace::open(tmp.path()).unwrap();
        assert_eq!(ws.topology(), &t);

        let mut ws = ws;
        let mut bad = t.clone();
        bad.sites[0].id = "../evil".to_string();
        let err = ws.save_topology(&bad).unwrap_err();
        assert!(matches!(err, WorkspaceError::Topology(_)), "{err}");
        assert_eq!(ws.topology(), &t);
    }

    #[test]
    fn remove_instance_refuses_paths_outside() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        let ws = Workspace::create(&root, &patent()).unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        Workspace::write_config(&outside, &sample_config()).unwrap();

        let ds = ws.datastore_dir("ds-1").unwrap();
        std::os::unix::fs::symlink(&outside, ds.join("vm5")).unwrap();
        let sneaky = ds
            .join("..")
            .join("..")
            .join("..")
            .join("..")
            .join("..")
            .join("outside");
        for p in [
            outside.clone(),
            sneaky,
            ds.join("vm5"),
            ds.clone(),
            root.join("sites"),
            root.join("state"),
            root.clone(),
        ] {
            let err = ws.remove_instance(&p).unwrap_err();
            assert!(
                matches!(err, WorkspaceError::OutsideWorkspace { .. }),
                "{}: {err}",
                p.display()
            );
        }
        assert!(outside.join("vm.ron").is_file());
        assert!(ds.join("vm1/vm.ron").is_file());

        ws.remove_instance(&ds.join("vm1")).unwrap();
        assert!(!ds.join("vm1").exists());
        assert!(ds.is_dir());
        assert!(ws.remove_instance(&ds.join("vm1")).is_err());
    }

    #[test]
    fn default_workspace_dir_slugs_the_name() {
        assert_eq!(
            workspace_slug("Patent hazard: cross-CG move in one PG"),
            "patent-hazard-cross-cg-move-in-one-pg"
        );
        assert_eq!(workspace_slug("  --Two  Site__Demo!! "), "two-site-demo");
        assert_eq!(workspace_slug("Zürich 2"), "z-rich-2");
        assert_eq!(workspace_slug(""), "workspace");
        assert_eq!(workspace_slug("!!!"), "workspace");
        let long = "a".repeat(63) + " b" + &"c".repeat(10);
        assert_eq!(workspace_slug(&long), "a".repeat(63));
        assert_eq!(workspace_slug(&"x".repeat(100)).len(), 64);

        let dir = default_workspace_dir("Two Site Demo");
        assert_eq!(dir.file_name().unwrap(), "two-site-demo");
        let parent = dir.parent().unwrap();
        assert!(
            parent.ends_with("drconsole/workspaces") || parent.ends_with("drconsole-workspaces"),
            "{}",
            dir.display()
        );
    }
}
