//! Where things live in a workspace (SPEC §4), checking it, and discarding a workspace.

use super::*;

impl Workspace {
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
        let sites = self.root.join("sites");
        if no_link(&sites)? {
            self.check_sites_layout(&sites)?;
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

    /// The sites' directories, their datastores' directories (both legs of a distributed
    /// one) and the instances in them: none may be a symbolic link.
    fn check_sites_layout(&self, sites: &Path) -> Result<(), WorkspaceError> {
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
}

/// Is there anything at `path` (false if not)? A symbolic link there is an error.
fn no_link(path: &Path) -> Result<bool, WorkspaceError> {
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
}

/// Every entry of the directory `dir` (if it is one) that is a symbolic link is an error.
fn links_inside(dir: &Path) -> Result<(), WorkspaceError> {
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
}

/// What a workspace directory holds besides the lock file: what [`discard`] removes.
pub(super) const WORKSPACE_ENTRIES: [&str; 4] = [TOPOLOGY_FILE, "sites", "journal", "state"];

/// Discards the workspace at `root` so that it can be created afresh from its topology
/// (File ▶ Reset workspace…, a demo's fresh start): removes `topology.ron`, `sites/`,
/// `journal/` and `state/` — and nothing else, not even another file in `root` (those are
/// returned, left alone) — while holding the workspace's lock, so a workspace another
/// process uses is refused. A missing or empty directory is fine (nothing to discard). A
/// directory that does not look like a workspace (no topology.ron nor the marker of an
/// interrupted create, or its directories are not directories) is refused and left untouched.
pub fn discard(root: &Path) -> Result<Vec<PathBuf>, WorkspaceError> {
    let mut entries = match fs::read_dir(root) {
        Ok(e) => e.peekable(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(root)(e)),
    };
    if entries.peek().is_none() {
        return Ok(Vec::new());
    }
    // A workspace, or what an interrupted create left (its marker, no topology.ron yet).
    if !root.join(CREATING_FILE).is_file() {
        topology_of_workspace(root)?;
    }
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
    let mut left = remove_workspace_entries(root)?;
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

/// Removes what a workspace holds besides its lock file ([`WORKSPACE_ENTRIES`], the
/// creation marker, temp files of topology.ron) and returns the other entries, left alone.
/// The caller holds the lock.
pub(super) fn remove_workspace_entries(root: &Path) -> Result<Vec<PathBuf>, WorkspaceError> {
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
        } else if name != LOCK_FILE
            && name != CREATING_FILE
            && !name.starts_with(&format!(".{TOPOLOGY_FILE}.tmp-"))
        {
            left.push(path);
        } else if name != LOCK_FILE {
            // The marker of an interrupted create, or a temp file an interrupted atomic
            // write of topology.ron left.
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    sync_dir(root)?;
    Ok(left)
}

/// `root/topology.ron`, or the error that `root` is not a workspace.
pub(super) fn topology_of_workspace(root: &Path) -> Result<PathBuf, WorkspaceError> {
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
