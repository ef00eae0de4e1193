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

use super::sched::GroupIx;
use super::{
    Engine, EngineError, Ev, LogLevel, MINUTE, Outcome, SECOND, SimTime, format_time, io_err_at,
    read_ron, remove_dir_if_exists, remove_file_if_exists, write_ron,
};
use crate::disk::{DirtyTracker, ImageFile};
use crate::fsutil::Barrier;
use crate::topology::Topology;
use crate::workspace::Workspace;
use crate::{recovery, replica};

mod cycle;
mod points;
mod store;
mod views;

pub use points::RetainedPoint;
pub(super) use points::points_dir;
pub use store::pending_publishes;
use store::{committed_cycle, committed_manifest, read_bytes};
pub use views::{GroupState, GroupView, human_bytes};

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
    /// Recovery points kept, the latest included (SPEC §11).
    #[serde(skip_serializing_if = "is_one")]
    pub retain_points: u32,
    pub source_site: String,
    pub target_site: String,
    /// The link's bandwidth, megabits per second.
    pub mbps: f64,
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl GroupSpec {
    pub fn rpo(&self) -> SimTime {
        u64::from(self.rpo_minutes) * MINUTE
    }
    pub fn covers(&self, datastore: &str) -> bool {
        self.pairs.iter().any(|p| p.datastore == datastore)
    }

    /// The group replicating the other way (SPEC §11, reprotect): each replica becomes the
    /// protected side of its pair, and the sites swap. Same id and key.
    pub fn reversed(&self) -> GroupSpec {
        GroupSpec {
            pairs: self
                .pairs
                .iter()
                .map(|p| Pair {
                    datastore: p.replica.clone(),
                    replica: p.datastore.clone(),
                })
                .collect(),
            source_site: self.target_site.clone(),
            target_site: self.source_site.clone(),
            ..self.clone()
        }
    }
}

/// The replication groups of a topology, CGs first (by id), then standalone datastores.
pub fn groups_of(t: &Topology) -> Vec<GroupSpec> {
    let mut cgs: BTreeMap<String, Vec<Pair>> = BTreeMap::new();
    let mut alone: Vec<(String, Pair)> = Vec::new();
    let mut rpo: BTreeMap<String, u32> = BTreeMap::new();
    let mut points: BTreeMap<String, u32> = BTreeMap::new();
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
        points
            .entry(key.clone())
            .or_insert(t.datastore_retain_points(ds).unwrap_or(1));
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
            retain_points: points.get(&key).copied().unwrap_or(1),
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
    /// `vm.ron` changed, staged as `<replica>/<instance>/vm.ron` (how cycles cut before
    /// `config_text` carry it; still read, no longer written).
    #[serde(default)]
    config: bool,
    /// `vm.ron` changed: its new text, carried in the manifest (no file per instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config_text: Option<String>,
    /// Disks with a delta: (file name, block count).
    disks: Vec<(String, u64)>,
    /// Disks of a new instance that hold no data yet: (file name, block count), created
    /// sparse at publish without a delta file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    empty_disks: Vec<(String, u64)>,
}

impl Entry {
    /// The new `vm.ron` of the entry, if it has one: from the manifest, or from the staged
    /// file of a cycle cut in the earlier format.
    fn new_config(&self, staging: &Path) -> Result<Option<Vec<u8>>, EngineError> {
        if let Some(text) = &self.config_text {
            return Ok(Some(text.clone().into_bytes()));
        }
        if !self.config {
            return Ok(None);
        }
        let cfg = staging
            .join(&self.replica)
            .join(&self.instance)
            .join(crate::workspace::VM_CONFIG_FILE);
        std::fs::read(&cfg).map(Some).map_err(io_err_at(&cfg))
    }
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
    /// Reprotected an odd number of times: it replicates from the topology's replicas to
    /// its protected datastores ([`GroupSpec::reversed`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reversed: bool,
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
    /// Its older retained points, newest first (`points.rs`).
    pub older: Vec<points::PointRecord>,
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

impl Engine {
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
        let older = points::read_older(self.ws.root(), &spec)?;
        Ok(GroupRt {
            spec,
            saved,
            published,
            transfer: None,
            generation: 0,
            alarmed: false,
            last_error: None,
            older,
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
            let spec = if s.reversed { spec.reversed() } else { spec };
            let g = self.group_rt(spec, s)?;
            self.groups.push(g);
        }
        for g in 0..self.groups.len() {
            let spec = self.groups[g].spec.clone();
            let staging = self.staging_dir(&spec);
            self.finish_roll_back(g)?;
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
            // A crash between a publish's cleanup and its points settling left the older
            // point in `pending/`: settle it now (a `pending/` of a cycle that never
            // committed goes).
            if let Some(cycle) = self.groups[g].published.as_ref().map(|p| p.cycle) {
                self.settle_points(g, cycle)?;
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

    /// Queues group `g`'s next cut, if it has one. Not while a transfer is in flight: its
    /// publish queues the next cut, and a new generation would orphan that publish (a
    /// "Resume" of a group that was not paused, mid-transfer, left it transferring forever).
    pub(super) fn queue_cut(&mut self, g: usize) {
        let grp = &mut self.groups[g];
        if grp.transfer.is_some() {
            return;
        }
        grp.generation += 1;
        if let Some(t) = grp.saved.next_cut {
            let t = t.max(self.now);
            let gen_ = grp.generation;
            self.schedule(
                t,
                Ev::Cut {
                    group: GroupIx(g),
                    gen_,
                },
            );
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
        } else if self.across_holds(&grp.spec.key) {
            Some(GroupState::MovingAcross)
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
            let key = self.groups[g].spec.key.clone();
            self.across_paused(&key, &id)?;
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
            self.across_link_down()?;
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

    /// Replicates the recovery manager's location metadata to each recovery site.
    pub(super) fn on_metadata(&mut self, gen_: u64) -> Result<(), EngineError> {
        if gen_ != self.metadata_gen {
            return Ok(());
        }
        let interval = self.opts.metadata_interval();
        self.schedule(
            self.now + interval,
            Ev::Metadata {
                gen_: self.metadata_gen,
            },
        );
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
            std::fs::create_dir_all(&dir).map_err(io_err_at(&dir))?;
            crate::fsutil::write_atomic(&dir.join("locations.ron"), &text)
                .map_err(io_err_at(&dir))?;
        }
        Ok(())
    }
}
