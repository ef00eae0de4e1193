//! VM instance directories on a datastore: listing, naming, creating, removing.

use super::*;

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

impl Workspace {
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
        let made = (|| {
            let mut barrier = Barrier::new();
            materialize_disks(&dir, config, disk_mib, &mut barrier)?;
            barrier.commit()?;
            Workspace::write_config(&dir, config)?;
            sync_dir(&dir)?;
            sync_dir(&ds_dir)
        })();
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

/// Creates the disks of an instance in an existing `dir`: sparse files of `disk_mib` MiB
/// of zeros, recorded in `barrier` (not synced here).
pub(super) fn materialize_disks(
    dir: &Path,
    config: &VmConfig,
    disk_mib: u64,
    barrier: &mut Barrier,
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
        barrier.file(&path);
    }
    Ok(())
}
