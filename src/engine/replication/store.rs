//! Replication files on disk: staging, commit records and published points per group.

use super::*;

pub(super) fn read_bytes(p: &Path) -> Option<Vec<u8>> {
    std::fs::read(p).ok()
}

/// `sites/<site>/replication`, where a recovery site keeps its groups' records.
pub(super) fn replication_dir(root: &Path, site: &str) -> PathBuf {
    root.join("sites").join(site).join("replication")
}

pub(super) fn staging_dir(root: &Path, g: &GroupSpec) -> PathBuf {
    replication_dir(root, &g.target_site).join(format!("{}.staging", g.key))
}

pub(super) fn commit_path(root: &Path, g: &GroupSpec) -> PathBuf {
    replication_dir(root, &g.target_site).join(format!("{}.commit", g.key))
}

pub(super) fn published_path(root: &Path, g: &GroupSpec) -> PathBuf {
    replication_dir(root, &g.target_site).join(format!("{}.ron", g.key))
}

/// The cycle group `g`'s commit record names, if it has one.
pub(super) fn committed_cycle(root: &Path, g: &GroupSpec) -> Result<Option<u64>, EngineError> {
    let commit = commit_path(root, g);
    Ok(if commit.exists() {
        Some(read_ron(&commit)?)
    } else {
        None
    })
}

/// The staged manifest of group `g`'s committed cycle `committed`.
pub(super) fn committed_manifest(
    root: &Path,
    g: &GroupSpec,
    committed: u64,
) -> Result<Manifest, EngineError> {
    let path = staging_dir(root, g).join("manifest.ron");
    let manifest: Manifest = read_ron(&path)?;
    if manifest.cycle != committed {
        return Err(EngineError::State {
            file: path.display().to_string(),
            message: format!(
                "stages cycle {} but the commit record {} is for cycle {committed}; a commit record must match its staging",
                manifest.cycle,
                commit_path(root, g).display()
            ),
        });
    }
    Ok(manifest)
}

/// What the replica datastores of `ws` show once every publish that is committed but not
/// applied (a crash fell after its commit record) is applied, as the next open applies it:
/// the instances it deletes and the `vm.ron` it writes. Read from the commit records,
/// published records and staging areas; changes nothing (`recover --dry-run`).
pub fn pending_publishes(ws: &Workspace) -> Result<recovery::PendingChanges, EngineError> {
    let root = ws.root();
    let mut out = recovery::PendingChanges::default();
    // A reprotected group replicates the other way: its records are at the other site.
    let both = groups_of(ws.topology())
        .into_iter()
        .flat_map(|s| [s.reversed(), s]);
    for spec in both {
        let Some(committed) = committed_cycle(root, &spec)? else {
            continue;
        };
        let published = published_path(root, &spec);
        let published = if published.exists() {
            Some(read_ron::<PublishedPoint>(&published)?.cycle)
        } else {
            None
        };
        if published >= Some(committed) {
            continue; // applied already; only its cleanup is left
        }
        let staging = staging_dir(root, &spec);
        for e in committed_manifest(root, &spec, committed)?.entries {
            let key = (e.replica.clone(), e.instance.clone());
            if e.delete {
                out.configs.remove(&key);
                out.removed.insert(key);
            } else if let Some(bytes) = e.new_config(&staging)? {
                let file = staging
                    .join(&e.replica)
                    .join(&e.instance)
                    .join(crate::workspace::VM_CONFIG_FILE);
                let text = String::from_utf8_lossy(&bytes);
                let config =
                    crate::workspace::VmConfig::from_ron_str(&text, &file.display().to_string())?;
                out.removed.remove(&key);
                out.configs.insert(key, config);
            }
        }
    }
    Ok(out)
}

impl Engine {
    pub(in crate::engine) fn staging_dir(&self, g: &GroupSpec) -> PathBuf {
        staging_dir(self.ws.root(), g)
    }

    pub(in crate::engine) fn commit_path(&self, g: &GroupSpec) -> PathBuf {
        commit_path(self.ws.root(), g)
    }

    pub(in crate::engine) fn published_path(&self, g: &GroupSpec) -> PathBuf {
        published_path(self.ws.root(), g)
    }
}
