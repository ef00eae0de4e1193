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

use serde::{Deserialize, Serialize};

use super::copy::{CopyMode, Direction};
use super::sched::GroupTick;
use super::{
    Engine, EngineError, Ev, Location, Locations, LogLevel, Outcome, SECOND, SimTime, fault_point,
    format_time, io_err, io_err_at, read_ron, write_ron,
};
use crate::disk::{BLOCK_SIZE, Block, ImageFile};
use crate::dr;
use crate::workspace::MigrationMarks;

mod switch;
mod views;

use switch::done_marks;
pub use views::{GroupMemberView, GroupMigrationView};

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
    /// The switched VMs' source images (reverse mirroring).
    sources: super::mirror_back::MirrorBack,
    /// After a reopen in the switched phase: the sources are resynced from the targets at
    /// the first event (replication's trackers exist only then).
    resync: bool,
    /// The id of the group operation whose member migrations are being started: their
    /// records carry it until the operation itself is saved.
    starting: Option<u64>,
}

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

    fn queue_group(&mut self, at: SimTime, tick: GroupTick, op: u64) {
        self.schedule(at, Ev::Group { tick, op });
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
        self.queue_group(now, GroupTick::Poll, op.id);
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
    pub(super) fn on_group_event(&mut self, tick: GroupTick, gen_: u64) -> Result<(), EngineError> {
        let Some(k) = self.active_group_op() else {
            return Ok(());
        };
        if self.group.saved.ops[k].id != gen_ {
            return Ok(());
        }
        if tick == GroupTick::Poll {
            let next = self.now + SECOND;
            self.queue_group(next, GroupTick::Poll, gen_);
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
            if let Some(rule) = self.across_busy(i) {
                return Err(EngineError::Rule {
                    object: cg_obj(from),
                    rule,
                });
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
        self.queue_group(now + SECOND, GroupTick::Poll, id);
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
        if !self.group.sources.write(i, block, buf)? {
            return Ok(());
        }
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
        self.queue_group(now, GroupTick::Check, id);
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
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
