//! Rescan arrays (SPEC §2): a running engine adopts a topology file's arrays and LUNs,
//! datastores, protection groups, hosts and links. Tags are derived from the topology, so
//! they (and the impact ratings) follow at once; the replication groups are rebuilt from
//! the new tags, keeping the schedule, the published point and any cycle in flight of every
//! group that stays as it was.
//!
//! What the running state cannot adopt is refused, naming it, before anything changes: the
//! workspace's own rules ([`crate::workspace::Workspace::rescan_topology`]: same sites and
//! VMs, no removed datastore holding instances, valid), then the engine's: a replication
//! group that changes (or goes) must have no cycle in flight and be neither failed over nor
//! swapped by an array fault; a migration in flight must not have its source or target
//! change replication pair; a faulted array or failed host must not disappear; no group
//! migration may be running while consistency groups change.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::group::GroupPhase;
use super::replication::{GroupRt, GroupSaved, GroupSpec, groups_of};
use super::sched::GroupIx;
use super::{Engine, EngineError, Ev, Outcome, fault_point};
use crate::topology::Topology;
use crate::workspace::WorkspaceError;

/// Each replicated datastore's replica datastore, by the groups' pairs.
fn pairs_of<'a>(specs: impl IntoIterator<Item = &'a GroupSpec>) -> BTreeMap<String, String> {
    specs
        .into_iter()
        .flat_map(|g| g.pairs.iter())
        .map(|p| (p.datastore.clone(), p.replica.clone()))
        .collect()
}

impl Engine {
    /// Opens the workspace at `root` and adopts `topology` into it (SPEC §2: opening a
    /// topology over its existing workspace is a rescan). A refusal closes the workspace
    /// again, unchanged, and is the error.
    pub(super) fn open_adopting(
        root: &Path,
        topology: &Topology,
        opts: super::EngineOptions,
    ) -> Result<Engine, EngineError> {
        let mut engine = Engine::open_with(root, opts)?;
        let file = format!(
            "{} (opening topology {:?} over it)",
            root.join(crate::workspace::TOPOLOGY_FILE).display(),
            topology.name
        );
        match engine.rescan(topology, &file) {
            Ok(_) => Ok(engine),
            Err(e) => {
                engine.close()?;
                Err(e)
            }
        }
    }

    /// [`super::Command::Rescan`]: re-reads `file` and adopts it ([`Engine::rescan`]).
    pub(super) fn rescan_file(&mut self, file: &Path) -> Result<Outcome, EngineError> {
        let read = Topology::load(file).map_err(WorkspaceError::from)?;
        self.rescan(&read, &file.display().to_string())
    }

    /// Adopts `read` (a topology as read from `file`, which names it in messages) into the
    /// running workspace, or refuses with an error naming what cannot be adopted; a refusal
    /// changes nothing (topology.ron stays byte for byte).
    pub fn rescan(&mut self, read: &Topology, file: &str) -> Result<Outcome, EngineError> {
        if let Some(g) = self.groups.iter().find(|g| g.saved.reversed) {
            return Err(EngineError::Workspace(WorkspaceError::RescanRefused {
                file: file.to_string(),
                object: format!("replication group {}", g.spec.id),
                rule: format!(
                    "it is reprotected (replicating {} to {}); a rescan adopts replication in the topology's direction only, so fail back and reprotect first",
                    g.spec.source_site, g.spec.target_site
                ),
            }));
        }
        let new = self.ws.rescan_topology(read, file, self.added_vms())?;
        if &new == self.topology() {
            return Ok(Outcome::Done(format!("Rescan of {file}: nothing changed")));
        }
        let specs = groups_of(&new);
        let old_pairs = pairs_of(self.groups.iter().map(|g| &g.spec));
        let new_pairs = pairs_of(&specs);
        self.check_rescan(&new, &specs, (&old_pairs, &new_pairs), file)?;
        let before = crate::dr::discover_tags(self.topology());
        let after = crate::dr::discover_tags(&new);

        self.ws.adopt_topology(&new)?;
        fault_point("rescan.topology-saved")?;
        let (added, changed, removed) = self.adopt_groups(specs)?;
        self.retrack(&old_pairs, &new_pairs)?;
        self.throughput = super::throughput_of(&new);
        self.persist_state()?;
        debug_assert_eq!(
            self.groups.iter().map(|g| &g.spec).collect::<Vec<_>>(),
            groups_of(self.topology()).iter().collect::<Vec<_>>(),
            "the replication groups follow the adopted tags"
        );

        let mut lines = Vec::new();
        for t in &after {
            let was = before.iter().find(|b| b.datastore == t.datastore);
            if was.map(|b| &b.tags) != Some(&t.tags) {
                lines.push(format!("{} now {}", t.datastore, t.tags.join(", ")));
            }
        }
        let mut groups = Vec::new();
        for (sign, keys) in [("+", added), ("~", changed), ("-", removed)] {
            groups.extend(keys.into_iter().map(|k| format!("{sign}{k}")));
        }
        if !groups.is_empty() {
            lines.push(format!("replication groups {}", groups.join(" ")));
        }
        let summary = if lines.is_empty() {
            format!("Rescan of {file}: adopted (tags unchanged)")
        } else {
            format!("Rescan of {file}: adopted; {}", lines.join("; "))
        };
        self.info(summary.clone());
        Ok(Outcome::Done(summary))
    }

    /// The engine's refusals (see the module's doc), checked before anything changes.
    /// `pairs`: each protected datastore's replica before and after the rescan.
    fn check_rescan(
        &self,
        new: &Topology,
        specs: &[GroupSpec],
        (old_pairs, new_pairs): (&BTreeMap<String, String>, &BTreeMap<String, String>),
        file: &str,
    ) -> Result<(), EngineError> {
        let refuse = |object: String, rule: String| {
            EngineError::Workspace(WorkspaceError::RescanRefused {
                file: file.to_string(),
                object,
                rule,
            })
        };
        let mut any_group_changes = false;
        for g in &self.groups {
            let now = specs.iter().find(|s| s.key == g.spec.key);
            if now == Some(&g.spec) {
                continue;
            }
            any_group_changes = true;
            let what = if now.is_some() {
                "its membership or schedule changes"
            } else {
                "it would end"
            };
            let object = format!("replication group {}", g.spec.id);
            if let Some(tr) = &g.transfer {
                return Err(refuse(
                    object,
                    format!(
                        "a cycle (cut at {}) is in flight and {what}; rescan after it publishes",
                        super::format_time(tr.manifest.cut_at)
                    ),
                ));
            }
            if g.saved.failed_over {
                return Err(refuse(object, format!("it failed over and {what}")));
            }
            if g.saved.swapped {
                return Err(refuse(
                    object,
                    format!("its I/O is swapped to the replicas by an array fault and {what}"),
                ));
            }
        }
        any_group_changes |= specs
            .iter()
            .any(|s| !self.groups.iter().any(|g| g.spec.key == s.key));
        for vm in &self.vms {
            let Some(m) = &vm.migration else { continue };
            for ds in [&m.rec.from, &m.rec.to] {
                if old_pairs.get(ds) != new_pairs.get(ds) {
                    return Err(refuse(
                        format!("VM {:?}", vm.id),
                        format!(
                            "its migration {} uses datastore {ds:?}, whose replication changes; \
                             rescan after the migration ends",
                            m.rec.id
                        ),
                    ));
                }
            }
        }
        let snap = self.snapshot();
        if let Some(a) = snap
            .arrays
            .iter()
            .find(|a| a.faulted && !new.arrays.iter().any(|n| n.id == a.id))
        {
            return Err(refuse(
                format!("array {:?}", a.id),
                "removed from the file while it is faulted; mark it healthy first".into(),
            ));
        }
        if let Some(h) = snap
            .hosts
            .iter()
            .find(|h| h.failed && !new.hosts.iter().any(|n| n.id == h.id))
        {
            return Err(refuse(
                format!("host {:?}", h.id),
                "removed from the file while it is failed; repair it first".into(),
            ));
        }
        let in_maintenance: BTreeSet<&str> = snap
            .placement
            .iter()
            .flat_map(|p| p.datastores.iter())
            .filter(|d| d.in_maintenance)
            .map(|d| d.id.as_str())
            .collect();
        if let Some(ds) = in_maintenance.iter().find(|d| new.datastore(d).is_none()) {
            return Err(refuse(
                format!("datastore {ds:?}"),
                "removed from the file while in maintenance mode; exit it first".into(),
            ));
        }
        if any_group_changes
            && let Some(gm) = snap
                .group_migrations
                .iter()
                .find(|g| matches!(g.phase, GroupPhase::Copying | GroupPhase::Switched))
        {
            return Err(refuse(
                format!("group migration {} ({} to {})", gm.id, gm.from, gm.to),
                "it is running and the replication groups change; rescan after it ends".into(),
            ));
        }
        Ok(())
    }

    /// Rebuilds the replication groups from `specs`: a group whose key stays keeps its
    /// runtime state (schedule, published point, transfer); a new or changed one is due at
    /// once (its new members need their first copy). Queued cut and publish events follow
    /// their group to its new index. Returns the keys added, changed and removed.
    #[allow(clippy::type_complexity)]
    fn adopt_groups(
        &mut self,
        specs: Vec<GroupSpec>,
    ) -> Result<(Vec<String>, Vec<String>, Vec<String>), EngineError> {
        let old = std::mem::take(&mut self.groups);
        let mut new_index: Vec<Option<usize>> = vec![None; old.len()];
        let mut by_key: BTreeMap<String, (usize, GroupRt)> = old
            .into_iter()
            .enumerate()
            .map(|(i, g)| (g.spec.key.clone(), (i, g)))
            .collect();
        let (mut added, mut changed, mut due) = (Vec::new(), Vec::new(), Vec::new());
        for spec in specs {
            let ni = self.groups.len();
            match by_key.remove(&spec.key) {
                Some((oi, mut g)) => {
                    new_index[oi] = Some(ni);
                    if g.spec != spec {
                        changed.push(spec.key.clone());
                        due.push(ni);
                    }
                    g.spec = spec;
                    self.groups.push(g);
                }
                None => {
                    added.push(spec.key.clone());
                    due.push(ni);
                    let g = self.group_rt(spec, GroupSaved::default())?;
                    self.groups.push(g);
                }
            }
        }
        let removed = by_key.into_keys().collect();
        let queued = std::mem::take(&mut self.queue).into_vec();
        for Reverse(mut s) in queued {
            match &mut s.ev {
                Ev::Cut { group, .. } | Ev::Publish { group, .. } => {
                    match new_index.get(group.0).copied().flatten() {
                        Some(ni) => *group = GroupIx(ni),
                        None => continue,
                    }
                }
                _ => {}
            }
            self.queue.push(Reverse(s));
        }
        for g in due {
            debug_assert!(self.groups[g].transfer.is_none(), "checked before adopting");
            self.groups[g].saved.next_cut = Some(self.now);
            self.queue_cut(g);
        }
        Ok((added, changed, removed))
    }

    /// Drops the change tracking of images on datastores whose replica changed (or that
    /// are no longer replicated), then attaches tracking anew: a newly replicated image
    /// is compared with its replica, an unreplicated one is tracked no more.
    fn retrack(
        &mut self,
        old_pairs: &BTreeMap<String, String>,
        new_pairs: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let moved: Vec<_> = old_pairs
            .keys()
            .chain(new_pairs.keys())
            .filter(|ds| old_pairs.get(*ds) != new_pairs.get(*ds))
            .filter_map(|ds| self.ws.datastore_dir(ds).ok())
            .collect();
        self.trackers
            .retain(|path, _| !moved.iter().any(|dir| path.starts_with(dir)));
        self.attach_trackers()
    }
}
