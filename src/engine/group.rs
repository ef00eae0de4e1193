//! Group migration: every VM of one CG moves to another CG as one operation, with the
//! destination's writes mirrored back so the source CG stays a valid fail-back until the
//! destination CG has published a recovery point holding all of them (seed
//! `live-migration-consistency-group-abstracts.txt`).
//!
//! The operation, in phases:
//! 1. **copying**: one mirror-mode migration per VM. Mirror keeps every write on the
//!    source, so the source CG stays complete. A VM whose copy is done is *held*: its
//!    writes keep being mirrored to both copies until every VM of the group is copied.
//! 2. **switched**: at one instant every VM moves to its target (marked `completed`);
//!    from then on each guest write lands on the target and is mirrored back to the
//!    source instance ("reverse replication"), which keeps its `source` mark. A replication
//!    cycle of the destination CG is forced.
//! 3. **succeeded**: once the destination CG has published a recovery point cut after the
//!    switch (it holds every VM's completed target), reverse mirroring stops, the
//!    recovery manager's locations follow, and the source instances are deleted.
//!
//! Before success anything that fails (a copy error, a cancel) rolls the group back: every
//! VM stays on its complete source. A disaster or a failover interrupts it: the replicas
//! decide, and until the destination CG published the switched VMs the election picks the
//! source CG's copies (the destination replica holds only in-progress targets).

use std::cmp::Reverse;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::copy::{CopyMode, Direction};
use super::{
    Engine, EngineError, Ev, Location, Locations, LogLevel, Outcome, SECOND, SimTime, fault_point,
    format_time, io_err, read_ron, write_ron,
};
use crate::disk::{BLOCK_SIZE, Block, ImageFile};
use crate::dr;
use crate::workspace::MigrationMarks;

/// Where a group migration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupPhase {
    /// Every VM is being copied (mirror mode); copied VMs are held.
    Copying,
    /// Every VM runs on its target; writes are mirrored back to the sources until the
    /// destination CG publishes a recovery point holding them.
    Switched,
    /// The destination CG published; the sources are deleted.
    Succeeded,
    /// A VM's copy failed or was cancelled: every VM stays on its source.
    RolledBack,
    /// A disaster or a failover stopped the VMs: the replicas decide.
    Interrupted,
}

impl GroupPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupPhase::Copying => "copying",
            GroupPhase::Switched => "switched",
            GroupPhase::Succeeded => "succeeded",
            GroupPhase::RolledBack => "rolled back",
            GroupPhase::Interrupted => "interrupted",
        }
    }

    /// Still running.
    pub fn active(self) -> bool {
        matches!(self, GroupPhase::Copying | GroupPhase::Switched)
    }
}

/// One VM of a group migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Member {
    vm: String,
    from: String,
    to: String,
    /// The VM's migration id (its record while copying).
    migration: String,
    source_instance: String,
    target_instance: String,
}

/// The destination CG's recovery point that let the group succeed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct PointSeen {
    cycle: u64,
    cut_at: SimTime,
    published_at: SimTime,
}

/// One group migration, as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct GroupOp {
    id: u64,
    from: String,
    to: String,
    rating: String,
    phase: GroupPhase,
    members: Vec<Member>,
    started_at: SimTime,
    switched_at: Option<SimTime>,
    /// The destination group's cycle counter at the switch: only a later cycle counts.
    cycles_at_switch: u64,
    point: Option<PointSeen>,
    sources_deleted_at: Option<SimTime>,
    ended_at: Option<SimTime>,
    reverse_writes: u64,
    message: String,
}

/// What survives a reopen (a field of `state/engine.ron`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct GroupMoveSaved {
    next_id: u64,
    ops: Vec<GroupOp>,
}

/// Runtime state, a field of the engine.
#[derive(Default)]
pub(super) struct GroupMoveRt {
    saved: GroupMoveSaved,
    /// The switched VMs' source images (reverse mirroring), by VM index.
    sources: BTreeMap<usize, ImageFile>,
    /// After a reopen in the switched phase: the sources are resynced from the targets at
    /// the first event (replication's trackers exist only then).
    resync: bool,
    /// The id of the group operation whose member migrations are being started: their
    /// records carry it until the operation itself is saved.
    starting: Option<u64>,
}

/// One VM of a group migration as the console shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupMemberView {
    pub vm: String,
    pub from: String,
    pub to: String,
    pub blocks: u64,
    pub copied_blocks: u64,
    /// Its copy is done (held for the switch, or switched).
    pub copied: bool,
    /// The datastore it runs on now.
    pub on: String,
}

/// What the console shows (a field of the snapshot).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupMigrationView {
    pub id: u64,
    pub from: String,
    pub to: String,
    pub rating: String,
    pub phase: GroupPhase,
    /// The phase in words ("copying 2/4", "switched, mirroring back · waiting for a
    /// recovery point at cg-b", ...).
    pub status: String,
    pub members: Vec<GroupMemberView>,
    pub reverse_writes: u64,
    pub started_at: SimTime,
    pub switched_at: Option<SimTime>,
    /// The cut of the destination CG's point that declared success.
    pub point_cut_at: Option<SimTime>,
    pub point_published_at: Option<SimTime>,
    pub sources_deleted_at: Option<SimTime>,
    pub ended_at: Option<SimTime>,
    pub message: String,
}

/// Event `i` values: a check (a copy finished) or the once-a-second poll.
const CHECK: usize = 0;
const POLL: usize = 1;

/// The protected-site datastores of consistency group `cg`, in topology order.
pub fn cg_datastores(t: &crate::topology::Topology, cg: &str) -> Vec<String> {
    t.datastores
        .iter()
        .filter(|d| t.is_protected_datastore(d) && dr::datastore_cg(t, d).as_deref() == Some(cg))
        .map(|d| d.id.clone())
        .collect()
}

impl Engine {
    /// Saved with the engine state.
    pub(super) fn group_saved(&self) -> GroupMoveSaved {
        self.group.saved.clone()
    }

    fn active_group_op(&self) -> Option<usize> {
        self.group.saved.ops.iter().position(|o| o.phase.active())
    }

    /// The active group migration with VM `i` as a member, and its phase.
    fn group_member(&self, i: usize) -> Option<(usize, GroupPhase)> {
        let k = self.active_group_op()?;
        let op = &self.group.saved.ops[k];
        let id = &self.vms[i].id;
        op.members
            .iter()
            .any(|m| &m.vm == id)
            .then_some((k, op.phase))
    }

    /// VM `i` is copied and held for its group's switch: its writes keep being mirrored
    /// instead of waiting for a switch-over (`guest_write`'s mirror-mode wait).
    pub(super) fn group_keeps_mirroring(&self, i: usize) -> bool {
        self.group_member(i)
            .is_some_and(|(_, p)| p == GroupPhase::Copying)
    }

    fn queue_group(&mut self, at: SimTime, kind: usize, id: u64) {
        self.queue.push(Reverse((at, Ev::Group, kind, id)));
    }

    /// Restores the saved state right after the engine is built (before migrations are
    /// recovered and replication starts); may queue events.
    pub(super) fn restore_group(&mut self, saved: GroupMoveSaved) -> Result<(), EngineError> {
        self.group.saved = saved;
        let Some(k) = self.active_group_op() else {
            return Ok(());
        };
        let op = self.group.saved.ops[k].clone();
        if op.phase == GroupPhase::Switched {
            // Every VM runs on its target: the migration records are done with (a crash
            // may have left some), the marks are made again, and the VMs open there.
            for m in &op.members {
                let Some(i) = self.vm_index(&m.vm) else {
                    continue;
                };
                self.remove_record(&m.migration)?;
                let (src_dir, dst_dir) = self.member_dirs(m)?;
                self.set_marks(&dst_dir, Some(done_marks(&m.migration, false, true)))?;
                self.set_marks(&src_dir, Some(done_marks(&m.migration, true, false)))?;
                if self.vms[i].down || self.vms[i].recovered.is_some() {
                    continue;
                }
                let image = ImageFile::open(&dst_dir.join("disk0.img"))?.without_readahead();
                let vm = &mut self.vms[i];
                vm.datastore = m.to.clone();
                vm.instance = m.target_instance.clone();
                vm.dir = dst_dir;
                vm.image = image;
            }
            self.group.resync = true;
        }
        self.info(format!(
            "Recovery: group migration #{} {} ▶ {} carries on ({})",
            op.id,
            op.from,
            op.to,
            op.phase.as_str()
        ));
        let now = self.now;
        self.queue_group(now, POLL, op.id);
        Ok(())
    }

    fn member_dirs(
        &self,
        m: &Member,
    ) -> Result<(std::path::PathBuf, std::path::PathBuf), EngineError> {
        Ok((
            self.ws.datastore_dir(&m.from)?.join(&m.source_instance),
            self.ws.datastore_dir(&m.to)?.join(&m.target_instance),
        ))
    }

    /// A queued `Ev::Group` event fell due.
    pub(super) fn on_group_event(&mut self, kind: usize, gen_: u64) -> Result<(), EngineError> {
        let Some(k) = self.active_group_op() else {
            return Ok(());
        };
        if self.group.saved.ops[k].id != gen_ {
            return Ok(());
        }
        if kind == POLL {
            let next = self.now + SECOND;
            self.queue_group(next, POLL, gen_);
        }
        // A disaster or a failover stopped a member: the replicas decide now.
        let stopped: Vec<String> = self.group.saved.ops[k]
            .members
            .iter()
            .filter_map(|m| self.vm_index(&m.vm))
            .filter(|&i| self.vms[i].down || self.vms[i].recovered.is_some())
            .map(|i| self.vms[i].id.clone())
            .collect();
        if !stopped.is_empty() {
            return self.interrupt_group(k, &stopped);
        }
        if self.group.resync {
            self.resync_sources(k)?;
        }
        match self.group.saved.ops[k].phase {
            GroupPhase::Copying => {
                let op = &self.group.saved.ops[k];
                let lost = op.members.iter().find(|m| {
                    self.vm_index(&m.vm).is_none_or(|i| {
                        self.vms[i]
                            .migration
                            .as_ref()
                            .is_none_or(|mg| mg.rec.id != m.migration)
                    })
                });
                if let Some(m) = lost {
                    let why = format!("the migration of {} is gone", m.vm);
                    return self.roll_back_group(k, &why);
                }
                if self.group_all_copied(k) {
                    self.switch_group(k)?;
                }
                Ok(())
            }
            GroupPhase::Switched => {
                if let Some(p) = self.group_point(k) {
                    self.succeed_group(k, p)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Every member's copy is done, no run in flight, no mirrored write pending.
    fn group_all_copied(&self, k: usize) -> bool {
        self.group.saved.ops[k].members.iter().all(|m| {
            self.vm_index(&m.vm).is_some_and(|i| {
                self.vms[i].migration.as_ref().is_some_and(|mg| {
                    mg.core.direction == Direction::Forward
                        && mg.core.done()
                        && mg.core.in_flight.is_none()
                        && mg.mirror_pending.is_empty()
                })
            })
        })
    }

    /// The destination CG's replication group.
    fn dest_group(&self, cg: &str) -> Option<usize> {
        self.groups
            .iter()
            .position(|g| g.spec.consistency_group.as_deref() == Some(cg))
    }

    /// The destination CG's published point, if it was cut after the switch.
    fn group_point(&self, k: usize) -> Option<PointSeen> {
        let op = &self.group.saved.ops[k];
        let switched = op.switched_at?;
        let g = self.dest_group(&op.to)?;
        let p = self.groups[g].published.as_ref()?;
        (p.cycle > op.cycles_at_switch && p.cut_at >= switched).then_some(PointSeen {
            cycle: p.cycle,
            cut_at: p.cut_at,
            published_at: p.published_at,
        })
    }

    /// Every member moves to its target at this instant; writes are mirrored back.
    fn switch_group(&mut self, k: usize) -> Result<(), EngineError> {
        let now = self.now;
        let to = self.group.saved.ops[k].to.clone();
        let cycles = self
            .dest_group(&to)
            .map_or(0, |g| self.groups[g].saved.cycles);
        {
            let op = &mut self.group.saved.ops[k];
            op.phase = GroupPhase::Switched;
            op.switched_at = Some(now);
            op.cycles_at_switch = cycles;
        }
        // The phase first: a reopen from here on switches (marks, records) again.
        self.persist_state()?;
        fault_point("group.switched")?;
        let members = self.group.saved.ops[k].members.clone();
        let mut switched = Vec::new();
        for m in &members {
            let Some(i) = self.vm_index(&m.vm) else {
                continue;
            };
            let Some(mg) = self.vms[i].migration.take() else {
                continue;
            };
            mg.dst.sync().map_err(io_err("syncing the target image"))?;
            let (src_dir, dst_dir) = (mg.src_dir.clone(), mg.dst_dir.clone());
            drop(mg);
            self.set_marks(&dst_dir, Some(done_marks(&m.migration, false, true)))?;
            self.set_marks(&src_dir, Some(done_marks(&m.migration, true, false)))?;
            self.remove_record(&m.migration)?;
            let mut image = ImageFile::open(&dst_dir.join("disk0.img"))?.without_readahead();
            let tracker = self.tracker_for(&m.to, image.path())?;
            image.set_tracker(tracker);
            let vm = &mut self.vms[i];
            vm.datastore = m.to.clone();
            vm.instance = m.target_instance.clone();
            vm.dir = dst_dir;
            // The VM's own image was the source all along (mirror mode writes it).
            let source = std::mem::replace(&mut vm.image, image);
            self.group.sources.insert(i, source);
            switched.push(i);
        }
        for &i in &switched {
            self.release_waiting(i, now)?;
        }
        let op = &self.group.saved.ops[k];
        let (id, from, n) = (op.id, op.from.clone(), switched.len());
        self.info(format!(
            "Group migration #{id} {from} ▶ {to}: {n} VMs switched at {} to their targets; every write is mirrored back to the sources in {from} until {to} publishes a recovery point",
            format_time(now)
        ));
        let ds = self
            .dest_group(&to)
            .and_then(|g| self.groups[g].spec.pairs.first())
            .map(|p| p.datastore.clone());
        if let Some(ds) = ds {
            match self.replicate_now(&ds)? {
                Outcome::Done(msg) => self.info(format!("Group migration #{id}: {msg}")),
                Outcome::Refused(msg) => self.push_log(
                    LogLevel::Warning,
                    format!("Group migration #{id}: {msg}; waiting for {to}'s next cycle"),
                ),
            }
        }
        self.persist_state()
    }

    /// After a reopen in the switched phase: copy what differs from each target to its
    /// source (a write in flight at a crash may have missed the source) and resume the
    /// reverse mirroring.
    fn resync_sources(&mut self, k: usize) -> Result<(), EngineError> {
        self.group.resync = false;
        if self.group.saved.ops[k].phase != GroupPhase::Switched {
            return Ok(());
        }
        let members = self.group.saved.ops[k].members.clone();
        let mut fixed = 0u64;
        for m in &members {
            let Some(i) = self.vm_index(&m.vm) else {
                continue;
            };
            let (src_dir, _) = self.member_dirs(m)?;
            let path = src_dir.join("disk0.img");
            if !path.exists() {
                continue;
            }
            let mut src = ImageFile::open(&path)?.without_readahead();
            let tracker = self.tracker_for(&m.from, src.path())?;
            src.set_tracker(tracker);
            let dst = &self.vms[i].image;
            let (mut a, mut b): (Block, Block) = ([0; BLOCK_SIZE], [0; BLOCK_SIZE]);
            for block in 0..dst.block_count().min(src.block_count()) {
                dst.read_block_at(block, &mut a)
                    .map_err(io_err(dst.path().display().to_string()))?;
                src.read_block_at(block, &mut b)
                    .map_err(io_err(src.path().display().to_string()))?;
                if a != b {
                    src.write_block(block, &a)
                        .map_err(io_err(src.path().display().to_string()))?;
                    fixed += 1;
                }
            }
            self.group.sources.insert(i, src);
        }
        let id = self.group.saved.ops[k].id;
        self.info(format!(
            "Recovery: group migration #{id}: {fixed} block(s) copied from the targets to the sources; reverse mirroring resumes"
        ));
        Ok(())
    }

    /// The destination CG published point `p` (cut after the switch): success.
    fn succeed_group(&mut self, k: usize, p: PointSeen) -> Result<(), EngineError> {
        let op = self.group.saved.ops[k].clone();
        // Reverse mirroring stops.
        self.group.sources.clear();
        // The recovery manager's locations and the topology in use follow the VMs.
        let loc_path = self.ws.state_dir().join("locations.ron");
        let mut locations: Locations = read_ron(&loc_path).unwrap_or_default();
        for m in &op.members {
            locations.vms.insert(
                m.vm.clone(),
                Location {
                    datastore: m.to.clone(),
                    instance: m.target_instance.clone(),
                },
            );
        }
        write_ron(&loc_path, &locations)?;
        fault_point("group.locations-written")?;
        let mut topo = self.topology().clone();
        for m in &op.members {
            if let Some(v) = topo.vms.iter_mut().find(|v| v.id == m.vm) {
                v.datastore = m.to.clone();
            }
        }
        self.ws.save_topology(&topo)?;
        fault_point("group.topology-saved")?;
        // Only now, with the point published, the sources go.
        for m in &op.members {
            let (src_dir, _) = self.member_dirs(m)?;
            if src_dir.exists() {
                self.remove_instance_dir(&src_dir)?;
            }
            if let Some(i) = self.vm_index(&m.vm) {
                self.vms[i].migrations_done += 1;
            }
        }
        let now = self.now;
        let msg = format!(
            "Group migration {} ▶ {} succeeded: {} VMs, point published at {} (cycle {}, cut at {}); {} write(s) were mirrored back; sources deleted",
            op.from,
            op.to,
            op.members.len(),
            format_time(p.published_at),
            p.cycle,
            format_time(p.cut_at),
            op.reverse_writes
        );
        {
            let o = &mut self.group.saved.ops[k];
            o.point = Some(p);
            o.sources_deleted_at = Some(now);
            o.phase = GroupPhase::Succeeded;
            o.ended_at = Some(now);
            o.message = msg.clone();
        }
        self.info(msg);
        self.persist_state()?;
        for m in &op.members {
            if let Some(i) = self.vm_index(&m.vm) {
                self.migration_ended(i, true)?;
            }
        }
        Ok(())
    }

    /// Before the switch: every VM stays on its complete source.
    fn roll_back_group(&mut self, k: usize, why: &str) -> Result<(), EngineError> {
        let now = self.now;
        let op = self.group.saved.ops[k].clone();
        let msg = format!(
            "Group migration {} ▶ {} rolled back ({why}): every VM stays on its complete source in {}",
            op.from, op.to, op.from
        );
        {
            let o = &mut self.group.saved.ops[k];
            o.phase = GroupPhase::RolledBack;
            o.ended_at = Some(now);
            o.message = msg.clone();
        }
        for m in &op.members {
            let Some(i) = self.vm_index(&m.vm) else {
                continue;
            };
            let ours = self.vms[i]
                .migration
                .as_ref()
                .is_some_and(|mg| mg.rec.id == m.migration);
            if ours && !self.vms[i].down {
                self.cancel(&m.vm)?;
            }
        }
        self.push_log(LogLevel::Warning, msg);
        self.persist_state()
    }

    /// A disaster or a failover stopped members: nothing more is done here.
    fn interrupt_group(&mut self, k: usize, stopped: &[String]) -> Result<(), EngineError> {
        let now = self.now;
        self.group.sources.clear();
        let op = &mut self.group.saved.ops[k];
        let fallback = match op.phase {
            GroupPhase::Copying => format!(
                "the copies were in progress, so the recovery points of {} hold the complete sources",
                op.from
            ),
            _ => format!(
                "the VMs had switched; until {} published a point after the switch, the sources in {} are the fail-back",
                op.to, op.from
            ),
        };
        let msg = format!(
            "Group migration {} ▶ {} interrupted ({} stopped): {fallback}",
            op.from,
            op.to,
            stopped.join(", ")
        );
        op.phase = GroupPhase::Interrupted;
        op.ended_at = Some(now);
        op.message = msg.clone();
        self.push_log(LogLevel::Error, msg);
        self.persist_state()
    }

    /// The snapshot's view.
    pub(super) fn group_migration_views(&self) -> Vec<GroupMigrationView> {
        self.group
            .saved
            .ops
            .iter()
            .map(|op| {
                let members: Vec<GroupMemberView> = op
                    .members
                    .iter()
                    .map(|m| {
                        let i = self.vm_index(&m.vm);
                        let mg = i.and_then(|i| {
                            self.vms[i]
                                .migration
                                .as_ref()
                                .filter(|mg| mg.rec.id == m.migration)
                        });
                        let blocks = i.map_or(0, |i| self.vms[i].blocks);
                        let (copied_blocks, copied) = match (mg, op.switched_at) {
                            (Some(mg), _) => (mg.core.cursor, mg.core.done()),
                            (None, Some(_)) => (blocks, true),
                            (None, None) => (0, false),
                        };
                        GroupMemberView {
                            vm: m.vm.clone(),
                            from: m.from.clone(),
                            to: m.to.clone(),
                            blocks,
                            copied_blocks,
                            copied,
                            on: i.map_or_else(String::new, |i| self.vms[i].datastore.clone()),
                        }
                    })
                    .collect();
                let n = members.iter().filter(|m| m.copied).count();
                let status = match op.phase {
                    GroupPhase::Copying => format!("copying {n}/{}", members.len()),
                    GroupPhase::Switched => format!(
                        "switched, mirroring back · waiting for a recovery point at {}",
                        op.to
                    ),
                    p => p.as_str().to_string(),
                };
                GroupMigrationView {
                    id: op.id,
                    from: op.from.clone(),
                    to: op.to.clone(),
                    rating: op.rating.clone(),
                    phase: op.phase,
                    status,
                    members,
                    reverse_writes: op.reverse_writes,
                    started_at: op.started_at,
                    switched_at: op.switched_at,
                    point_cut_at: op.point.as_ref().map(|p| p.cut_at),
                    point_published_at: op.point.as_ref().map(|p| p.published_at),
                    sources_deleted_at: op.sources_deleted_at,
                    ended_at: op.ended_at,
                    message: op.message.clone(),
                }
            })
            .collect()
    }

    /// The worst rating over moving every VM of `from` to the datastores picked for it,
    /// with its explanation; and the placement (vm index, destination datastore).
    #[allow(clippy::type_complexity)]
    fn plan_group(
        &self,
        from: &str,
        to: &str,
    ) -> Result<(Vec<(usize, String)>, dr::Impact), EngineError> {
        let t = self.topology();
        let cg_obj = |cg: &str| format!("consistency group {cg:?}");
        let src = cg_datastores(t, from);
        if src.is_empty() {
            return Err(EngineError::Rule {
                object: cg_obj(from),
                rule: "no protected-site datastore belongs to it (a group migration moves a CG of the protected site)".into(),
            });
        }
        let dst = cg_datastores(t, to);
        if dst.is_empty() {
            return Err(EngineError::Rule {
                object: cg_obj(to),
                rule: "no protected-site datastore belongs to it (the destination must be a CG of the protected site)".into(),
            });
        }
        if from == to {
            return Err(EngineError::Rule {
                object: cg_obj(from),
                rule: "source and destination are the same consistency group".into(),
            });
        }
        let members: Vec<usize> = (0..self.vms.len())
            .filter(|&i| src.contains(&self.vms[i].datastore) && self.vms[i].recovered.is_none())
            .collect();
        if members.is_empty() {
            return Err(EngineError::Rule {
                object: cg_obj(from),
                rule: "holds no VM to migrate".into(),
            });
        }
        for &i in &members {
            self.check_up(i)?;
            if self.vms[i].migration.is_some() {
                return Err(EngineError::AlreadyMigrating(self.vms[i].id.clone()));
            }
        }
        // Largest disks first, each to the destination datastore with the most room left.
        let mut order = members.clone();
        order.sort_by_key(|&i| Reverse(self.vms[i].blocks));
        let mut free: Vec<(String, u64)> =
            dst.iter().map(|d| (d.clone(), self.free_mib(d))).collect();
        let mut placed = Vec::new();
        for i in order {
            let need = self.vms[i].blocks * BLOCK_SIZE as u64 / (1024 * 1024);
            let mut best = 0;
            for (n, f) in free.iter().enumerate() {
                if f.1 > free[best].1 {
                    best = n;
                }
            }
            if free[best].1 < need {
                return Err(EngineError::NoSpace {
                    datastore: free[best].0.clone(),
                    vm: self.vms[i].id.clone(),
                    need_mib: need,
                    free_mib: free[best].1,
                });
            }
            free[best].1 -= need;
            placed.push((i, free[best].0.clone()));
        }
        placed.sort_by_key(|p| p.0);
        let mut worst: Option<dr::Impact> = None;
        for (i, ds) in &placed {
            let imp = dr::impact(t, &self.vms[*i].datastore, ds).map_err(|reason| {
                EngineError::Impact {
                    vm: self.vms[*i].id.clone(),
                    to: ds.clone(),
                    reason,
                }
            })?;
            if worst.as_ref().is_none_or(|w| imp.rating > w.rating) {
                worst = Some(imp);
            }
        }
        Ok((placed, worst.expect("members is not empty")))
    }

    /// The rating of moving CG `from` to CG `to` (the worst over its VMs), for the console.
    pub fn group_impact(&self, from: &str, to: &str) -> Result<dr::Impact, EngineError> {
        self.plan_group(from, to).map(|(_, imp)| imp)
    }

    /// Migrates every VM of consistency group `from` to datastores of CG `to`.
    pub(super) fn migrate_group(
        &mut self,
        from: &str,
        to: &str,
        confirm: bool,
    ) -> Result<Outcome, EngineError> {
        if let Some(k) = self.active_group_op() {
            let op = &self.group.saved.ops[k];
            return Err(EngineError::Rule {
                object: format!("group migration {} ▶ {}", op.from, op.to),
                rule: "is still running; one group migration at a time".into(),
            });
        }
        let (placed, impact) = self.plan_group(from, to)?;
        if let Some(refused) = self.override_gate(
            &format!("Group migration {from} ▶ {to}"),
            &format!("group migration {from} ▶ {to}"),
            &impact,
            confirm,
        ) {
            return Ok(refused);
        }
        self.group.starting = Some(self.group.saved.next_id + 1);
        let started = self.start_members(from, to, &placed, confirm);
        self.group.starting = None;
        let members = match started? {
            Ok(members) => members,
            Err(refused) => return Ok(refused),
        };
        self.group.saved.next_id += 1;
        let id = self.group.saved.next_id;
        let now = self.now;
        let list = members
            .iter()
            .map(|m| format!("{} to {}", m.vm, m.to))
            .collect::<Vec<_>>()
            .join(", ");
        let msg = format!(
            "Group migration {from} ▶ {to} started: {} VMs in mirror mode ({list}), rating {}; each VM is held when copied, all switch at once",
            members.len(),
            impact.rating
        );
        self.group.saved.ops.push(GroupOp {
            id,
            from: from.into(),
            to: to.into(),
            rating: impact.rating.as_str().into(),
            phase: GroupPhase::Copying,
            members,
            started_at: now,
            switched_at: None,
            cycles_at_switch: 0,
            point: None,
            sources_deleted_at: None,
            ended_at: None,
            reverse_writes: 0,
            message: String::new(),
        });
        self.queue_group(now + SECOND, POLL, id);
        self.info(msg.clone());
        Ok(Outcome::Done(msg))
    }

    /// Starts one mirror-mode migration per member (their records carry the group's id);
    /// on a refusal or an error, undoes those already started: every VM stays on its source.
    fn start_members(
        &mut self,
        from: &str,
        to: &str,
        placed: &[(usize, String)],
        confirm: bool,
    ) -> Result<Result<Vec<Member>, Outcome>, EngineError> {
        let mut members: Vec<Member> = Vec::new();
        for (i, ds) in placed {
            let vm = self.vms[*i].id.clone();
            let started = self.migrate(&vm, ds, CopyMode::Mirror, confirm);
            if !matches!(started, Ok(Outcome::Done(_))) || self.vms[*i].migration.is_none() {
                // Undo the copies already started: every VM stays on its source.
                for m in &members {
                    self.cancel(&m.vm)?;
                }
                return match started {
                    Ok(Outcome::Refused(msg)) => {
                        let msg = format!("Group migration {from} ▶ {to} refused: {msg}");
                        self.push_log(LogLevel::Warning, msg.clone());
                        Ok(Err(Outcome::Refused(msg)))
                    }
                    Err(e) => Err(e),
                    Ok(Outcome::Done(_)) => Err(EngineError::Rule {
                        object: format!("VM {vm:?}"),
                        rule: "its migration did not start".into(),
                    }),
                };
            }
            let mg = self.vms[*i].migration.as_ref().expect("just started");
            members.push(Member {
                vm,
                from: mg.rec.from.clone(),
                to: ds.clone(),
                migration: mg.rec.id.clone(),
                source_instance: mg.rec.source_instance.clone(),
                target_instance: mg.rec.target_instance.clone(),
            });
        }
        Ok(Ok(members))
    }

    /// The id of the group operation starting the migration being created, if any.
    pub(super) fn group_starting(&self) -> Option<u64> {
        self.group.starting
    }

    /// After a reopen: a migration started for a group operation that was never saved (a
    /// crash while the group was starting) is rolled back. The group never began, so its
    /// VMs stay on their sources instead of moving one by one across CGs.
    pub(super) fn roll_back_unsaved_group(&mut self) -> Result<(), EngineError> {
        let orphans: Vec<(String, u64)> = self
            .vms
            .iter()
            .filter_map(|v| {
                let g = v.migration.as_ref()?.rec.group?;
                (!self.group.saved.ops.iter().any(|o| o.id == g)).then(|| (v.id.clone(), g))
            })
            .collect();
        for (vm, g) in &orphans {
            self.cancel(vm)?;
            self.push_log(
                LogLevel::Warning,
                format!(
                    "Group migration #{g} was interrupted while it started (a crash before it was saved): the copy of {vm} is rolled back and {vm} stays on its source"
                ),
            );
        }
        if !orphans.is_empty() {
            self.persist_state()?;
        }
        Ok(())
    }

    /// A guest write landed on VM `i`'s image: once switched, it is mirrored back.
    pub(super) fn group_after_write(
        &mut self,
        i: usize,
        block: u64,
        buf: &Block,
    ) -> Result<(), EngineError> {
        let Some(src) = self.group.sources.get(&i) else {
            return Ok(());
        };
        super::alive()?;
        src.write_block(block, buf)
            .map_err(io_err(src.path().display().to_string()))?;
        if let Some(k) = self.active_group_op() {
            self.group.saved.ops[k].reverse_writes += 1;
        }
        Ok(())
    }

    /// VM `i`'s copy is done: true holds its switch-over (a group migration switches all
    /// of its VMs at once).
    pub(super) fn group_holds_completion(&mut self, i: usize) -> Result<bool, EngineError> {
        let Some((k, GroupPhase::Copying)) = self.group_member(i) else {
            return Ok(false);
        };
        let (now, id) = (self.now, self.group.saved.ops[k].id);
        self.queue_group(now, CHECK, id);
        Ok(true)
    }

    /// VM `i`'s migration ended (completed or cancelled).
    pub(super) fn group_migration_ended(
        &mut self,
        i: usize,
        completed: bool,
    ) -> Result<(), EngineError> {
        if completed {
            return Ok(());
        }
        if let Some((k, GroupPhase::Copying)) = self.group_member(i) {
            let why = format!(
                "the migration of {} ended without completing",
                self.vms[i].id
            );
            self.roll_back_group(k, &why)?;
        }
        Ok(())
    }

    /// `Expect(GroupMigrated(from, to))`: the group migration declared success.
    pub fn expect_group_migrated(&self, from: &str, to: &str) -> (bool, String) {
        let Some(op) = self
            .group
            .saved
            .ops
            .iter()
            .rev()
            .find(|o| o.from == from && o.to == to)
        else {
            return (false, format!("no group migration {from} ▶ {to}"));
        };
        if op.phase != GroupPhase::Succeeded {
            return (
                false,
                format!("group migration {from} ▶ {to} is {}", op.phase.as_str()),
            );
        }
        let dst = cg_datastores(self.topology(), to);
        let off: Vec<String> = op
            .members
            .iter()
            .filter(|m| {
                self.location(&m.vm)
                    .is_none_or(|(ds, _)| !dst.contains(&ds))
            })
            .map(|m| m.vm.clone())
            .collect();
        if !off.is_empty() {
            return (false, format!("not on {to}: {}", off.join(", ")));
        }
        let cut = op.point.as_ref().map_or(0, |p| p.cut_at);
        (
            true,
            format!(
                "{} VMs on {to}; {to} published a point cut at {} (switch at {})",
                op.members.len(),
                format_time(cut),
                format_time(op.switched_at.unwrap_or(0))
            ),
        )
    }
}

fn done_marks(id: &str, source: bool, target: bool) -> MigrationMarks {
    MigrationMarks {
        id: id.into(),
        source,
        target,
        completed: true,
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
