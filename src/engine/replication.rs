//! Replication (SPEC §6): groups, cuts, transfers and publishes.
//!
//! A *group* is a CG (all its datastores) or one replicated datastore outside any CG. A
//! cycle of a group:
//! 1. **cut**, one event at one simulated instant, so write-order consistent across the
//!    whole group: for every instance on the group's datastores, the blocks its array-style
//!    [`DirtyTracker`] saw written since the last cut are read from the image and written to
//!    a staging *delta* at the recovery site (`sites/<r>/replication/<group>.staging/`), with
//!    the instance's `vm.ron` when it changed, and deletions of instances that went away. A
//!    new instance ships its non-zero blocks (its replica is created sparse).
//! 2. **transfer**: simulated time bytes ÷ link bandwidth. Link loss, a disaster or a crash
//!    in this window abandons the staging: the previous recovery point stays, and the
//!    abandoned blocks are marked dirty again (after a crash, tracking is rebuilt by
//!    comparing each image with its replica).
//! 3. **publish**: a commit record (`<group>.commit`) is written atomically, the deltas and
//!    configs are applied to every replica datastore of the group, the published record
//!    (`<group>.ron`) is replaced, then staging and commit record are removed. A crash after
//!    the commit record rolls the publish forward on the next open; before it, rolls back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    Engine, EngineError, Ev, LogLevel, MINUTE, Outcome, SECOND, SimTime, format_time, io_err,
    read_ron, remove_dir_if_exists, remove_file_if_exists, write_ron,
};
use crate::disk::{DirtyTracker, ImageFile};
use crate::topology::Topology;
use crate::workspace::Workspace;
use crate::{recovery, replica};

/// One replicated datastore and its replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    pub datastore: String,
    pub replica: String,
}

/// A replication group, from the topology.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSpec {
    /// The CG's id, or the datastore's for a standalone replicated datastore.
    pub id: String,
    /// Unique and file-safe: `cg.<id>` or `ds.<id>`.
    pub key: String,
    pub consistency_group: Option<String>,
    pub pairs: Vec<Pair>,
    pub rpo_minutes: u32,
    pub source_site: String,
    pub target_site: String,
    /// The link's bandwidth, megabits per second.
    pub mbps: f64,
}

impl GroupSpec {
    pub fn rpo(&self) -> SimTime {
        u64::from(self.rpo_minutes) * MINUTE
    }
    pub fn covers(&self, datastore: &str) -> bool {
        self.pairs.iter().any(|p| p.datastore == datastore)
    }
}

/// The replication groups of a topology, CGs first (by id), then standalone datastores.
pub fn groups_of(t: &Topology) -> Vec<GroupSpec> {
    let mut cgs: BTreeMap<String, Vec<Pair>> = BTreeMap::new();
    let mut alone: Vec<(String, Pair)> = Vec::new();
    let mut rpo: BTreeMap<String, u32> = BTreeMap::new();
    let mut sites: BTreeMap<String, (String, String)> = BTreeMap::new();
    for ds in t.datastores.iter().filter(|d| t.is_protected_datastore(d)) {
        let Some(r) = t.replica_of(ds) else { continue };
        let pair = Pair {
            datastore: ds.id.clone(),
            replica: r.id.clone(),
        };
        let key = match crate::dr::datastore_cg(t, ds) {
            Some(cg) => {
                cgs.entry(cg.clone()).or_default().push(pair);
                format!("cg.{cg}")
            }
            None => {
                alone.push((ds.id.clone(), pair));
                format!("ds.{}", ds.id)
            }
        };
        rpo.entry(key.clone())
            .or_insert(t.datastore_rpo_minutes(ds).unwrap_or(15));
        sites
            .entry(key)
            .or_insert((ds.site.clone(), r.site.clone()));
    }
    let mbps = |from: &str, to: &str| {
        t.links
            .iter()
            .find(|l| (l.from == from && l.to == to) || (l.from == to && l.to == from))
            .map_or(1000.0, |l| l.mbps)
    };
    let make = |id: String, key: String, cg: Option<String>, pairs: Vec<Pair>| {
        let (src, dst) = sites.get(&key).cloned().unwrap_or_default();
        GroupSpec {
            rpo_minutes: rpo.get(&key).copied().unwrap_or(15),
            mbps: mbps(&src, &dst),
            id,
            key,
            consistency_group: cg,
            pairs,
            source_site: src,
            target_site: dst,
        }
    };
    let mut out: Vec<GroupSpec> = cgs
        .into_iter()
        .map(|(cg, pairs)| make(cg.clone(), format!("cg.{cg}"), Some(cg), pairs))
        .collect();
    out.extend(
        alone
            .into_iter()
            .map(|(ds, pair)| make(ds.clone(), format!("ds.{ds}"), None, vec![pair])),
    );
    out
}

/// The last published recovery point of a group, kept at the recovery site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedPoint {
    pub group: String,
    pub cycle: u64,
    pub cut_at: SimTime,
    /// The protected site's last journaled write at the cut.
    pub cut_seq: u64,
    pub published_at: SimTime,
    pub bytes: u64,
}

/// What a staging area holds: one cycle of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Manifest {
    pub group: String,
    pub cycle: u64,
    pub cut_at: SimTime,
    pub cut_seq: u64,
    pub bytes: u64,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    replica: String,
    instance: String,
    /// Deletes the replica instance; nothing else of the entry counts.
    delete: bool,
    /// `vm.ron` changed: staged as `<replica>/<instance>/vm.ron`.
    config: bool,
    /// Disks with a delta: (file name, block count).
    disks: Vec<(String, u64)>,
}

/// The schedule side of a group, persisted with the engine state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub(super) struct GroupSaved {
    pub cycles: u64,
    pub next_cut: Option<SimTime>,
    pub paused: bool,
    pub failed_over: bool,
    pub bytes_shipped: u64,
    pub now_requested: bool,
    /// Host I/O was swapped to the replicas by an array health event (`health.rs`): no
    /// cycle runs until the resync back is complete.
    #[serde(default)]
    pub swapped: bool,
}

/// A transfer in flight.
pub(super) struct Transfer {
    pub manifest: Manifest,
    pub ends_at: SimTime,
    /// The blocks taken from each tracker, to give back if the cycle is abandoned.
    taken: Vec<(PathBuf, Vec<u64>)>,
}

pub(super) struct GroupRt {
    pub spec: GroupSpec,
    pub saved: GroupSaved,
    pub published: Option<PublishedPoint>,
    pub transfer: Option<Transfer>,
    pub generation: u64,
    /// Lag above RPO was reported (reset when back under).
    pub alarmed: bool,
    pub last_error: Option<String>,
}

impl GroupRt {
    /// Lag above RPO, except while a cycle that was cut on time (within one RPO of the
    /// published point's cut) is still transferring: the schedule holds, the bytes are on
    /// the wire.
    fn rpo_violated(&self, now: SimTime) -> bool {
        let Some(p) = &self.published else {
            return false;
        };
        if now.saturating_sub(p.cut_at) <= self.spec.rpo() {
            return false;
        }
        self.transfer
            .as_ref()
            .is_none_or(|t| t.manifest.cut_at > p.cut_at + self.spec.rpo())
    }
}

/// The state a group is in, as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupState {
    Idle,
    Transferring,
    Paused,
    /// Host I/O runs on the replicas after an array fault (health.rs): suspended until the
    /// resync back completes.
    Swapped,
    LinkDown,
    SiteDown,
    FailedOver,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Idle => "idle",
            GroupState::Transferring => "transferring",
            GroupState::Paused => "paused",
            GroupState::Swapped => "swapped",
            GroupState::LinkDown => "link down",
            GroupState::SiteDown => "site down",
            GroupState::FailedOver => "failed over",
        }
    }
}

/// A group as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupView {
    pub id: String,
    pub consistency_group: Option<String>,
    pub pairs: Vec<Pair>,
    pub rpo_minutes: u32,
    pub state: GroupState,
    pub cycles: u64,
    pub last_cut_at: Option<SimTime>,
    pub last_published_at: Option<SimTime>,
    pub next_cut_at: Option<SimTime>,
    /// now − cut time of the last published point (None before the first); once the
    /// protected site is lost, the disaster's time − that cut: what the disaster lost.
    pub lag: Option<SimTime>,
    /// When its protected (source) site was lost, if it was.
    pub lost_at: Option<SimTime>,
    pub rpo_violation: bool,
    /// The cycle number of the last published point (`cycles` counts the one in flight).
    pub point_cycle: Option<u64>,
    pub bytes_shipped: u64,
    pub last_cycle_bytes: u64,
    /// The transfer in flight: (cut at, bytes, ends at).
    pub transfer: Option<(SimTime, u64, SimTime)>,
    pub last_error: Option<String>,
}

fn read_bytes(p: &Path) -> Option<Vec<u8>> {
    std::fs::read(p).ok()
}

/// `sites/<site>/replication`, where a recovery site keeps its groups' records.
fn replication_dir(root: &Path, site: &str) -> PathBuf {
    root.join("sites").join(site).join("replication")
}

fn staging_dir(root: &Path, g: &GroupSpec) -> PathBuf {
    replication_dir(root, &g.target_site).join(format!("{}.staging", g.key))
}

fn commit_path(root: &Path, g: &GroupSpec) -> PathBuf {
    replication_dir(root, &g.target_site).join(format!("{}.commit", g.key))
}

fn published_path(root: &Path, g: &GroupSpec) -> PathBuf {
    replication_dir(root, &g.target_site).join(format!("{}.ron", g.key))
}

/// The cycle group `g`'s commit record names, if it has one.
fn committed_cycle(root: &Path, g: &GroupSpec) -> Result<Option<u64>, EngineError> {
    let commit = commit_path(root, g);
    Ok(if commit.exists() {
        Some(read_ron(&commit)?)
    } else {
        None
    })
}

/// The staged manifest of group `g`'s committed cycle `committed`.
fn committed_manifest(root: &Path, g: &GroupSpec, committed: u64) -> Result<Manifest, EngineError> {
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
    for spec in groups_of(ws.topology()) {
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
            } else if e.config {
                let config = Workspace::read_config(&staging.join(&e.replica).join(&e.instance))?;
                out.removed.remove(&key);
                out.configs.insert(key, config);
            }
        }
    }
    Ok(out)
}

impl Engine {
    pub(super) fn staging_dir(&self, g: &GroupSpec) -> PathBuf {
        staging_dir(self.ws.root(), g)
    }

    pub(super) fn commit_path(&self, g: &GroupSpec) -> PathBuf {
        commit_path(self.ws.root(), g)
    }

    pub(super) fn published_path(&self, g: &GroupSpec) -> PathBuf {
        published_path(self.ws.root(), g)
    }

    /// A group's runtime as it starts (at open, or new with a rescan): its saved schedule and
    /// the recovery point its replicas hold, nothing in flight.
    pub(super) fn group_rt(
        &self,
        spec: GroupSpec,
        saved: GroupSaved,
    ) -> Result<GroupRt, EngineError> {
        let path = self.published_path(&spec);
        let published = if path.exists() {
            Some(read_ron::<PublishedPoint>(&path)?)
        } else {
            None
        };
        Ok(GroupRt {
            spec,
            saved,
            published,
            transfer: None,
            generation: 0,
            alarmed: false,
            last_error: None,
        })
    }

    /// Builds the groups at start: reads their published points, finishes or undoes a
    /// publish a crash interrupted, and queues their next cuts.
    pub(super) fn start_replication(
        &mut self,
        saved: &BTreeMap<String, GroupSaved>,
    ) -> Result<(), EngineError> {
        for spec in groups_of(self.topology()) {
            let s = saved.get(&spec.key).cloned().unwrap_or_default();
            let g = self.group_rt(spec, s)?;
            self.groups.push(g);
        }
        for g in 0..self.groups.len() {
            let spec = self.groups[g].spec.clone();
            let staging = self.staging_dir(&spec);
            if let Some(cycle) = self.finish_committed_publish(g)? {
                self.info(format!(
                    "Recovery: the publish of cycle {cycle} of {} was interrupted after its commit; finished it",
                    spec.id
                ));
            } else if staging.exists() {
                remove_dir_if_exists(&staging)?;
                self.info(format!(
                    "Recovery: a transfer of {} was interrupted; its staging was discarded and the previous recovery point stands",
                    spec.id
                ));
            }
            // A cut clears the next cut until its publish sets it; a crash (or a close) in
            // between left none, and no transfer survives a reopen: without this the group
            // never replicated again. Its next cycle is due at once (a lost site's or a
            // failed-over group's stays unset).
            let grp = &mut self.groups[g];
            let site_lost = self.sites_down.contains_key(&spec.source_site)
                || self.sites_down.contains_key(&spec.target_site);
            if grp.saved.next_cut.is_none() && !grp.saved.failed_over && !site_lost {
                grp.saved.next_cut = Some(self.now);
            }
            self.queue_cut(g);
        }
        Ok(())
    }

    /// Finishes a publish of group `g` whose commit record is written but whose apply did
    /// not end (a crash, or an I/O error in this process): the cycle is published, so its
    /// staging is applied again (idempotent). A commit record of a cycle already published
    /// only has its cleanup finished (the crash fell while commit record and staging were
    /// being removed; staging may be partly gone). Returns the cycle it applied, if any.
    pub(super) fn finish_committed_publish(
        &mut self,
        g: usize,
    ) -> Result<Option<u64>, EngineError> {
        let spec = self.groups[g].spec.clone();
        let Some(committed) = committed_cycle(self.ws.root(), &spec)? else {
            return Ok(None);
        };
        let published = self.groups[g].published.as_ref().map(|p| p.cycle);
        if published < Some(committed) {
            let manifest = committed_manifest(self.ws.root(), &spec, committed)?;
            self.apply_manifest(g, &manifest)?;
            return Ok(Some(committed));
        }
        remove_file_if_exists(&self.commit_path(&spec))?;
        remove_dir_if_exists(&self.staging_dir(&spec))?;
        Ok(None)
    }

    /// Queues group `g`'s next cut, if it has one.
    pub(super) fn queue_cut(&mut self, g: usize) {
        let grp = &mut self.groups[g];
        grp.generation += 1;
        if let Some(t) = grp.saved.next_cut {
            let t = t.max(self.now);
            self.queue
                .push(std::cmp::Reverse((t, Ev::Cut, g, grp.generation)));
        }
    }

    /// The tracker of an image on a replicated datastore, made on first use by comparing
    /// the image with its replica (all clean if the replica has no such instance: the first
    /// cycle then ships the whole image).
    pub(super) fn tracker_for(
        &mut self,
        datastore: &str,
        image: &Path,
    ) -> Result<Option<Arc<DirtyTracker>>, EngineError> {
        if let Some(t) = self.trackers.get(image) {
            return Ok(Some(t.clone()));
        }
        let Some(g) = self.groups.iter().find(|g| g.spec.covers(datastore)) else {
            return Ok(None);
        };
        let pair = g
            .spec
            .pairs
            .iter()
            .find(|p| p.datastore == datastore)
            .expect("covers")
            .clone();
        let src = ImageFile::open_read_only(image)?.without_readahead();
        let tracker = Arc::new(DirtyTracker::new(src.block_count()));
        if let Some(replica) = self.replica_image_path(&pair, image)? {
            let rep = ImageFile::open_read_only(&replica)?.without_readahead();
            if rep.block_count() == src.block_count() {
                let diff = replica::differing_blocks(&src, &rep)?;
                tracker.mark_all(&diff);
            }
        }
        self.trackers.insert(image.to_path_buf(), tracker.clone());
        Ok(Some(tracker))
    }

    /// The replica of image `image` (on `pair.datastore`), if the replica instance exists.
    fn replica_image_path(
        &self,
        pair: &Pair,
        image: &Path,
    ) -> Result<Option<PathBuf>, EngineError> {
        let (Some(file), Some(inst)) = (
            image.file_name(),
            image.parent().and_then(|p| p.file_name()),
        ) else {
            return Ok(None);
        };
        let p = self.ws.datastore_dir(&pair.replica)?.join(inst).join(file);
        Ok(p.exists().then_some(p))
    }

    /// Attaches change tracking to every image the engine writes.
    pub(super) fn attach_trackers(&mut self) -> Result<(), EngineError> {
        for i in 0..self.vms.len() {
            if self.vms[i].down {
                continue;
            }
            let ds = self.vms[i].datastore.clone();
            let path = self.vms[i].image.path().to_path_buf();
            let t = self.tracker_for(&ds, &path)?;
            self.vms[i].image.set_tracker(t);
            if let Some(m) = self.vms[i].migration.as_ref() {
                let (from, to) = (m.rec.from.clone(), m.rec.to.clone());
                let (sp, dp) = (m.src.path().to_path_buf(), m.dst.path().to_path_buf());
                let ts = self.tracker_for(&from, &sp)?;
                let td = self.tracker_for(&to, &dp)?;
                let m = self.vms[i].migration.as_mut().expect("checked");
                m.src.set_tracker(ts);
                m.dst.set_tracker(td);
            }
        }
        Ok(())
    }

    /// Is group `g` able to ship now?
    pub(super) fn group_blocked(&self, g: usize) -> Option<GroupState> {
        let grp = &self.groups[g];
        if grp.saved.failed_over {
            Some(GroupState::FailedOver)
        } else if self.sites_down.contains_key(&grp.spec.source_site)
            || self.sites_down.contains_key(&grp.spec.target_site)
        {
            Some(GroupState::SiteDown)
        } else if grp.saved.swapped {
            Some(GroupState::Swapped)
        } else if grp.saved.paused {
            Some(GroupState::Paused)
        } else if !self.link_up {
            Some(GroupState::LinkDown)
        } else {
            None
        }
    }

    /// The cut event of group `g`.
    pub(super) fn on_cut(&mut self, g: usize, gen_: u64) -> Result<(), EngineError> {
        if self.groups[g].generation != gen_ || self.groups[g].transfer.is_some() {
            return Ok(());
        }
        if self.group_blocked(g).is_some() {
            // Stays due: it runs when the group can ship again.
            return Ok(());
        }
        self.cut_now(g)
    }

    /// Starts a cycle of group `g` now. An error abandons the cycle: the blocks it took
    /// from the trackers are given back (the next cycle ships them), it is logged, the
    /// group tries again one RPO later, and a planned failover waiting for this group's
    /// final cycle stops (SPEC §7: stop on any error).
    pub(super) fn cut_now(&mut self, g: usize) -> Result<(), EngineError> {
        self.groups[g].saved.now_requested = false;
        let mut taken = Vec::new();
        match self.try_cut(g, &mut taken) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.give_back(&taken);
                // Failing after the transfer was set up (saving the state) drops it too.
                if let Some(tr) = self.groups[g].transfer.take() {
                    self.groups[g].generation += 1;
                    self.give_back(&tr.taken);
                }
                let spec = self.groups[g].spec.clone();
                // A committed cycle whose re-apply failed keeps its staging: the commit
                // record needs it to finish the publish (at the next cut or open).
                if !self.commit_path(&spec).exists() {
                    remove_dir_if_exists(&self.staging_dir(&spec))?;
                }
                let msg = format!("Replication of {}: cycle abandoned: {e}", spec.id);
                self.push_log(LogLevel::Error, msg.clone());
                self.groups[g].last_error = Some(e.to_string());
                // Try again one RPO later.
                self.groups[g].saved.next_cut = Some(self.now + spec.rpo());
                self.queue_cut(g);
                self.fail_pending_failover_of(
                    g,
                    &format!(
                        "the final replication cycle of {} could not be cut: {e}",
                        spec.id
                    ),
                )
            }
        }
    }

    /// Marks blocks taken from trackers dirty again (a cycle that will not publish them).
    fn give_back(&self, taken: &[(PathBuf, Vec<u64>)]) {
        for (path, blocks) in taken {
            if let Some(t) = self.trackers.get(path) {
                t.mark_all(blocks);
            }
        }
    }

    /// Stops the planned failover waiting for group `g`'s final cycle, if one is.
    fn fail_pending_failover_of(&mut self, g: usize, why: &str) -> Result<(), EngineError> {
        let key = &self.groups[g].spec.key;
        if self
            .pending_failover
            .as_ref()
            .is_some_and(|p| p.groups.contains(key))
        {
            self.fail_pending_failover(why)?;
        }
        Ok(())
    }

    /// Cuts a cycle of group `g` into its staging; every block taken from a tracker is
    /// listed in `taken` as soon as it is taken, so that a failure can give it back.
    fn try_cut(
        &mut self,
        g: usize,
        taken: &mut Vec<(PathBuf, Vec<u64>)>,
    ) -> Result<(), EngineError> {
        let spec = self.groups[g].spec.clone();
        // A publish committed but not applied (an I/O error in mid-apply) is finished
        // first: this cycle's deltas are relative to it.
        self.finish_committed_publish(g)?;
        let staging = self.staging_dir(&spec);
        remove_dir_if_exists(&staging)?;
        std::fs::create_dir_all(&staging).map_err(io_err(staging.display().to_string()))?;
        let cycle = self.groups[g].saved.cycles + 1;
        let mut entries = Vec::new();
        let mut bytes = 0u64;
        for pair in &spec.pairs {
            let instances = self.ws.list_instances(&pair.datastore)?;
            let replicas = self.ws.list_instances(&pair.replica)?;
            let rep_dir = self.ws.datastore_dir(&pair.replica)?;
            let names: BTreeSet<&str> = instances.iter().map(|i| i.name.as_str()).collect();
            // Forget trackers of images that are gone.
            let ds_dir = self.ws.datastore_dir(&pair.datastore)?;
            self.trackers
                .retain(|p, _| !p.starts_with(&ds_dir) || p.exists());
            for inst in &instances {
                let stage = staging.join(&pair.replica).join(&inst.name);
                std::fs::create_dir_all(&stage).map_err(io_err(stage.display().to_string()))?;
                let mut entry = Entry {
                    replica: pair.replica.clone(),
                    instance: inst.name.clone(),
                    delete: false,
                    config: false,
                    disks: Vec::new(),
                };
                let cfg_src = inst.dir.join(crate::workspace::VM_CONFIG_FILE);
                let cfg = std::fs::read(&cfg_src).map_err(io_err(cfg_src.display().to_string()))?;
                let rep_inst = rep_dir.join(&inst.name);
                if read_bytes(&rep_inst.join(crate::workspace::VM_CONFIG_FILE)).as_ref()
                    != Some(&cfg)
                {
                    crate::fsutil::write_atomic(
                        &stage.join(crate::workspace::VM_CONFIG_FILE),
                        &cfg,
                    )
                    .map_err(io_err(stage.display().to_string()))?;
                    entry.config = true;
                    bytes += cfg.len() as u64;
                }
                for disk in &inst.config.disks {
                    let path = inst.dir.join(disk);
                    let src = ImageFile::open_read_only(&path)?.without_readahead();
                    let tracker = self.tracker_for(&pair.datastore, &path)?;
                    let rep_img = rep_inst.join(disk);
                    let same_size = ImageFile::open_read_only(&rep_img)
                        .is_ok_and(|r| r.block_count() == src.block_count());
                    let tracked = tracker.as_ref().map(|t| t.take()).unwrap_or_default();
                    // Listed before anything else can fail, to be given back then.
                    if !tracked.is_empty() {
                        taken.push((path.clone(), tracked.clone()));
                    }
                    let blocks = if same_size {
                        tracked
                    } else {
                        // A new instance: the whole image (its non-zero blocks).
                        replica::nonzero_blocks(&src)?
                    };
                    if blocks.is_empty() && same_size {
                        continue;
                    }
                    let delta = stage.join(format!("{disk}.delta"));
                    super::alive()?;
                    let stats = replica::write_delta(&src, &blocks, &delta)?;
                    bytes += stats.bytes;
                    entry.disks.push((disk.clone(), src.block_count()));
                }
                if entry.config || !entry.disks.is_empty() {
                    entries.push(entry);
                }
            }
            for rep in replicas.iter().filter(|r| !names.contains(r.name.as_str())) {
                entries.push(Entry {
                    replica: pair.replica.clone(),
                    instance: rep.name.clone(),
                    delete: true,
                    config: false,
                    disks: Vec::new(),
                });
            }
        }
        let manifest = Manifest {
            group: spec.key.clone(),
            cycle,
            cut_at: self.now,
            cut_seq: self.next_seq - 1,
            bytes,
            entries,
        };
        write_ron(&staging.join("manifest.ron"), &manifest)?;
        super::fault_point("publish.staging-written")?;
        let bytes_per_s = spec.mbps * 1_000_000.0 / 8.0;
        let secs = bytes as f64 / bytes_per_s;
        let ends_at = self.now + ((secs * SECOND as f64).ceil() as SimTime).max(1);
        let grp = &mut self.groups[g];
        grp.saved.cycles = cycle;
        grp.saved.next_cut = None;
        grp.generation += 1;
        let gen_ = grp.generation;
        grp.transfer = Some(Transfer {
            manifest,
            ends_at,
            taken: std::mem::take(taken),
        });
        self.queue
            .push(std::cmp::Reverse((ends_at, Ev::Publish, g, gen_)));
        self.persist_state()?;
        Ok(())
    }

    /// Gives an abandoned cycle's blocks back to their trackers and drops its staging.
    pub(super) fn abandon_transfer(&mut self, g: usize, why: &str) -> Result<(), EngineError> {
        let Some(tr) = self.groups[g].transfer.take() else {
            return Ok(());
        };
        self.groups[g].generation += 1;
        self.give_back(&tr.taken);
        let spec = self.groups[g].spec.clone();
        remove_dir_if_exists(&self.staging_dir(&spec))?;
        self.push_log(
            LogLevel::Warning,
            format!(
                "Replication of {}: cycle {} (cut at {}) abandoned ({why}); the previous recovery point stands",
                spec.id,
                tr.manifest.cycle,
                format_time(tr.manifest.cut_at)
            ),
        );
        // Due again as soon as it can ship.
        self.groups[g].saved.next_cut = Some(self.now);
        Ok(())
    }

    /// The publish event of group `g`.
    pub(super) fn on_publish(&mut self, g: usize, gen_: u64) -> Result<(), EngineError> {
        if self.groups[g].generation != gen_ {
            return Ok(());
        }
        let Some(tr) = self.groups[g].transfer.take() else {
            return Ok(());
        };
        let spec = self.groups[g].spec.clone();
        if let Err(e) = self.publish(g, &tr.manifest) {
            return self.publish_failed(g, tr, e);
        }
        let m = &tr.manifest;
        let grp = &mut self.groups[g];
        grp.saved.bytes_shipped += m.bytes;
        grp.last_error = None;
        let next = if grp.saved.now_requested {
            self.now
        } else {
            (m.cut_at + spec.rpo()).max(self.now)
        };
        grp.saved.next_cut = Some(next);
        self.info(format!(
            "Replication of {}: recovery point {} published (cut at {}, {} shipped)",
            spec.id,
            m.cycle,
            format_time(m.cut_at),
            human_bytes(m.bytes)
        ));
        self.queue_cut(g);
        self.persist_state()?;
        self.after_publish()
    }

    /// A publish of group `g` failed with `e`. The commit record decides (RELIABILITY.md,
    /// invariant 4): once it is written the cycle is published, and the next cut (or open,
    /// or failover) finishes applying it from its staging; before it, the cycle is
    /// abandoned, its blocks go back to the trackers and the previous point stands. Either
    /// way the group tries again one RPO later, and a planned failover waiting for this
    /// group's final cycle stops (SPEC §7: stop on any error).
    fn publish_failed(
        &mut self,
        g: usize,
        tr: Transfer,
        e: EngineError,
    ) -> Result<(), EngineError> {
        let spec = self.groups[g].spec.clone();
        let committed =
            committed_cycle(self.ws.root(), &spec).is_ok_and(|c| c == Some(tr.manifest.cycle));
        let what = if committed {
            "it is committed and is finished before the next cycle"
        } else {
            self.give_back(&tr.taken);
            remove_dir_if_exists(&self.staging_dir(&spec))?;
            "the previous recovery point stands"
        };
        self.push_log(
            LogLevel::Error,
            format!(
                "Replication of {}: publish of cycle {} failed: {e}; {what}",
                spec.id, tr.manifest.cycle
            ),
        );
        self.groups[g].last_error = Some(e.to_string());
        self.groups[g].saved.next_cut = Some(self.now + spec.rpo());
        self.queue_cut(g);
        self.persist_state()?;
        self.fail_pending_failover_of(
            g,
            &format!(
                "the final replication cycle of {} could not be published: {e}",
                spec.id
            ),
        )
    }

    fn publish(&mut self, g: usize, m: &Manifest) -> Result<(), EngineError> {
        let spec = self.groups[g].spec.clone();
        write_ron(&self.commit_path(&spec), &m.cycle)?;
        super::fault_point("publish.commit-written")?;
        self.apply_manifest(g, m)
    }

    /// Applies a committed manifest to the replica datastores, records the published point,
    /// removes staging and commit record. Idempotent.
    fn apply_manifest(&mut self, g: usize, m: &Manifest) -> Result<(), EngineError> {
        let spec = self.groups[g].spec.clone();
        let staging = self.staging_dir(&spec);
        for e in &m.entries {
            let dir = self.ws.datastore_dir(&e.replica)?.join(&e.instance);
            if e.delete {
                if dir.exists() {
                    self.remove_instance_dir(&dir)?;
                }
                continue;
            }
            super::alive()?;
            std::fs::create_dir_all(&dir).map_err(io_err(dir.display().to_string()))?;
            let stage = staging.join(&e.replica).join(&e.instance);
            for (disk, blocks) in &e.disks {
                let delta = stage.join(format!("{disk}.delta"));
                replica::apply_delta(&delta, &dir.join(disk), *blocks)?;
                super::fault_point("publish.replica-disk-applied")?;
            }
            if e.config {
                let cfg = stage.join(crate::workspace::VM_CONFIG_FILE);
                let text = std::fs::read(&cfg).map_err(io_err(cfg.display().to_string()))?;
                crate::fsutil::write_atomic(&dir.join(crate::workspace::VM_CONFIG_FILE), &text)
                    .map_err(io_err(dir.display().to_string()))?;
            }
            super::fault_point("publish.replica-applied")?;
        }
        let point = PublishedPoint {
            group: spec.key.clone(),
            cycle: m.cycle,
            cut_at: m.cut_at,
            cut_seq: m.cut_seq,
            published_at: self.now,
            bytes: m.bytes,
        };
        write_ron(&self.published_path(&spec), &point)?;
        super::fault_point("publish.published-written")?;
        self.groups[g].published = Some(point);
        // The point is published: the commit record goes first, so that no crash can leave
        // a commit record over a staging area already partly removed.
        remove_file_if_exists(&self.commit_path(&spec))?;
        super::fault_point("publish.commit-removed")?;
        remove_dir_if_exists(&staging)?;
        super::fault_point("publish.staging-removed")?;
        Ok(())
    }

    /// The group replicating `datastore`.
    pub(super) fn group_of(&self, datastore: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.spec.covers(datastore))
    }

    fn group_for_command(&self, datastore: &str) -> Result<usize, EngineError> {
        if self.topology().datastore(datastore).is_none() {
            return Err(EngineError::NoSuchDatastore(datastore.into()));
        }
        self.group_of(datastore)
            .ok_or_else(|| EngineError::NotReplicated(datastore.into()))
    }

    /// "Replicate now": a cycle at once (or right after the one in flight).
    pub(super) fn replicate_now(&mut self, datastore: &str) -> Result<Outcome, EngineError> {
        let g = self.group_for_command(datastore)?;
        let id = self.groups[g].spec.id.clone();
        if let Some(state) = self.group_blocked(g) {
            let msg = format!(
                "Replicate now: group {id} cannot replicate ({})",
                state.as_str()
            );
            self.push_log(LogLevel::Warning, msg.clone());
            return Ok(Outcome::Refused(msg));
        }
        if self.groups[g].transfer.is_some() {
            self.groups[g].saved.now_requested = true;
            return Ok(Outcome::Done(format!(
                "Replicate now: {id} is transferring; another cycle follows at once"
            )));
        }
        self.cut_now(g)?;
        Ok(Outcome::Done(format!(
            "Replicate now: cycle of {id} started"
        )))
    }

    pub(super) fn pause_replication(
        &mut self,
        datastore: &str,
        pause: bool,
    ) -> Result<String, EngineError> {
        let g = self.group_for_command(datastore)?;
        let id = self.groups[g].spec.id.clone();
        self.groups[g].saved.paused = pause;
        if pause {
            // The transfer in flight may finish; no new cycle starts.
            Ok(format!("Replication of {id} paused"))
        } else {
            if self.groups[g].transfer.is_none() && self.groups[g].saved.next_cut.is_none() {
                self.groups[g].saved.next_cut = Some(self.now);
            }
            self.queue_cut(g);
            Ok(format!("Replication of {id} resumed"))
        }
    }

    pub(super) fn set_link(&mut self, up: bool) -> Result<String, EngineError> {
        if self.link_up == up {
            return Ok(format!(
                "The link is already {}",
                if up { "up" } else { "down" }
            ));
        }
        self.link_up = up;
        if !up {
            for g in 0..self.groups.len() {
                self.abandon_transfer(g, "link down")?;
            }
            self.push_log(
                LogLevel::Warning,
                "Link down: replication stops publishing; changes keep being tracked".into(),
            );
            self.fail_pending_failover("the link went down")?;
            return Ok("Link down".into());
        }
        // Overdue groups cut at once; they ship only what changed.
        for g in 0..self.groups.len() {
            if self.groups[g].transfer.is_none() {
                self.queue_cut(g);
            }
        }
        self.info("Link up: overdue groups replicate now, shipping only what changed".into());
        Ok("Link up".into())
    }

    /// When group `g`'s protected site was lost, if it was.
    fn source_lost_at(&self, g: usize) -> Option<SimTime> {
        self.sites_down
            .get(&self.groups[g].spec.source_site)
            .copied()
    }

    /// The time group `g`'s lag and RPO are measured to: now, or the loss of its protected
    /// site (no write is added to what is at risk after it).
    fn measured_until(&self, g: usize) -> SimTime {
        self.source_lost_at(g).map_or(self.now, |t| t.min(self.now))
    }

    /// Logs RPO violations once per violation.
    pub(super) fn check_rpo_alarms(&mut self) {
        for g in 0..self.groups.len() {
            let until = self.measured_until(g);
            let grp = &self.groups[g];
            if grp.saved.failed_over {
                continue;
            }
            let violated = grp.rpo_violated(until);
            if violated && !grp.alarmed {
                let msg = format!(
                    "RPO violation: {} lags more than its RPO of {} min",
                    grp.spec.id, grp.spec.rpo_minutes
                );
                self.groups[g].alarmed = true;
                self.push_log(LogLevel::Warning, msg);
            } else if !violated && grp.alarmed {
                self.groups[g].alarmed = false;
            }
        }
    }

    pub(super) fn group_views(&self) -> Vec<GroupView> {
        self.groups
            .iter()
            .enumerate()
            .map(|(g, grp)| {
                // Once its protected site is lost no write is added to what is at risk:
                // the lag, and the RPO it is held to, are measured to the disaster.
                let lost_at = self.source_lost_at(g);
                let until = self.measured_until(g);
                let lag = grp
                    .published
                    .as_ref()
                    .map(|p| until.saturating_sub(p.cut_at));
                let state = match self.group_blocked(g) {
                    Some(s) => s,
                    None if grp.transfer.is_some() => GroupState::Transferring,
                    None => GroupState::Idle,
                };
                GroupView {
                    id: grp.spec.id.clone(),
                    consistency_group: grp.spec.consistency_group.clone(),
                    pairs: grp.spec.pairs.clone(),
                    rpo_minutes: grp.spec.rpo_minutes,
                    state,
                    cycles: grp.saved.cycles,
                    last_cut_at: grp.published.as_ref().map(|p| p.cut_at),
                    last_published_at: grp.published.as_ref().map(|p| p.published_at),
                    next_cut_at: grp.saved.next_cut,
                    lag,
                    lost_at,
                    rpo_violation: !grp.saved.failed_over && grp.rpo_violated(until),
                    point_cycle: grp.published.as_ref().map(|p| p.cycle),
                    bytes_shipped: grp.saved.bytes_shipped,
                    last_cycle_bytes: grp.published.as_ref().map_or(0, |p| p.bytes),
                    transfer: grp
                        .transfer
                        .as_ref()
                        .map(|t| (t.manifest.cut_at, t.manifest.bytes, t.ends_at)),
                    last_error: grp.last_error.clone(),
                }
            })
            .collect()
    }

    /// The last published point of the group replicating `datastore` (a protected or a
    /// replica datastore).
    pub fn published_point(&self, datastore: &str) -> Option<&PublishedPoint> {
        self.groups
            .iter()
            .find(|g| {
                g.spec
                    .pairs
                    .iter()
                    .any(|p| p.datastore == datastore || p.replica == datastore)
            })
            .and_then(|g| g.published.as_ref())
    }

    /// Replicates the recovery manager's location metadata to each recovery site.
    pub(super) fn on_metadata(&mut self, gen_: u64) -> Result<(), EngineError> {
        if gen_ != self.metadata_gen {
            return Ok(());
        }
        let interval = self.opts.metadata_interval();
        self.queue.push(std::cmp::Reverse((
            self.now + interval,
            Ev::Metadata,
            0,
            self.metadata_gen,
        )));
        if !self.link_up {
            return Ok(());
        }
        let src = self.ws.state_dir().join("locations.ron");
        let Ok(text) = std::fs::read(&src) else {
            return Ok(());
        };
        let targets: BTreeSet<String> = self
            .groups
            .iter()
            .filter(|g| !self.sites_down.contains_key(&g.spec.source_site))
            .filter(|g| !self.sites_down.contains_key(&g.spec.target_site))
            .map(|g| g.spec.target_site.clone())
            .collect();
        for site in targets {
            let dir = self
                .ws
                .root()
                .join("sites")
                .join(&site)
                .join("recovery-manager");
            std::fs::create_dir_all(&dir).map_err(io_err(dir.display().to_string()))?;
            crate::fsutil::write_atomic(&dir.join("locations.ron"), &text)
                .map_err(io_err(dir.display().to_string()))?;
        }
        Ok(())
    }
}

/// "12.3 MiB".
pub fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b < 1024.0 {
        format!("{b:.0} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    }
}
