//! The consistency-breaking cross-site move (SPEC §12, `consistency: Break`; seed
//! `live-migration-consistency-group-abstracts.txt`, its "destructive consistency breaking
//! operations"): the VMs of the CG move to the other site one at a time, without
//! synchronous replication.
//!
//! 1. **record**: at the start every member's source image gets a copy-on-write record
//!    ([`UndoLog`], on its own datastore at the source): each block is saved just before
//!    its first overwrite, so the source CG can always return to this one consistent
//!    instant. The group stops publishing (a cycle in flight is abandoned, its blocks go
//!    back to the trackers) and its older points are released: from here its replicas hold
//!    no consistent point and the RPO may be violated.
//! 2. **moving**: for each VM in turn, the blocks its replica lacks (its tracker) are
//!    shipped over the link while the guest runs, round after round; once few are left (or
//!    after a few rounds) the guest pauses, the last blocks cross, and the VM
//!    switches onto its replica, on a recovery-site host reserved before the start.
//! 3. **restoring**: with every VM at the destination the group reverses (as reprotect
//!    does) and replicates back; its first published point holds every VM at one instant:
//!    consistency is restored, the record is released and the move succeeds.
//!
//! A failure before success (the link goes down, the destination site is lost, a cancel)
//! returns every VM to its source, reverted to the record: consistent,
//! with the writes made since lost and counted, as this variant allows. The revert is
//! marked in the state first, so a crash in the middle of it is finished at the next open.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::{AcrossPhase, Consistency, link_write_time};
use crate::disk::{BLOCK_SIZE, Block, ImageFile, UndoLog};
use crate::engine::sched::Ev;
use crate::engine::{
    Engine, EngineError, SimTime, alive, duration_for, fault_point, format_time, io_err_at,
    remove_dir_if_exists, remove_file_if_exists, verify,
};
use crate::replica;

/// A VM switches once at most this many blocks are left after a round...
const CONVERGED_BLOCKS: u64 = 32;
/// ...or after this many rounds (a guest that writes faster than the link never converges:
/// its pause then covers what is left).
const MAX_ROUNDS: u32 = 8;

/// The explanation of a `Break` move's impact (SPEC §3's one paragraph).
pub(super) fn break_explanation(cg: &str, spec: &crate::engine::GroupSpec, vms: usize) -> String {
    let (from, to) = (&spec.source_site, &spec.target_site);
    format!(
        "{cg} moves from {from} to {to} one VM at a time, without synchronous replication. A record of the CG at {from} is taken at the start (each block saved before its first overwrite, on {from}'s datastores): it is the fail-back. Each VM's blocks not yet at {to} are shipped while it runs; it pauses only for its last blocks and switches onto a reserved {to} host. Until all {vms} VM(s) have moved and {to}'s first point of the reversed group is published, the group publishes no recovery point and its replicas are not consistent: the RPO ({} min) may be violated, and a failure (the link down, {to} lost, a cancel) returns every VM to the record, losing the writes made since.",
        spec.rpo_minutes
    )
}

impl Engine {
    /// Rule "a move one VM at a time is where it says": while it moves, its members switch
    /// in order, the switched ones run on their replicas and the rest on their recorded
    /// sources, and its group ships nothing; once restoring, all run on their replicas.
    pub(in crate::engine) fn check_across(&self) -> Result<(), crate::engine::Broken> {
        const RULE: &str = "a move one VM at a time is where it says";
        let Some(k) = self.active_across() else {
            return Ok(());
        };
        let op = &self.across.saved.ops[k];
        if op.consistency.is_keep() || op.failing_back.is_some() {
            return Ok(());
        }
        let broken = |detail: String| Err(crate::engine::Broken { rule: RULE, detail });
        let moving = op.phase == AcrossPhase::Moving;
        let switched = op
            .members
            .iter()
            .filter(|m| m.switched_at.is_some())
            .count();
        if switched != op.moved() {
            return broken(format!(
                "move #{}: its members switched out of order ({switched} switched, the first {} in order)",
                op.id,
                op.moved()
            ));
        }
        for m in &op.members {
            let Some(i) = self.vm_index(&m.vm) else {
                return broken(format!("member {} is not a VM", m.vm));
            };
            let moved = !moving || m.switched_at.is_some();
            let want = if moved {
                &m.to_datastore
            } else {
                &m.from_datastore
            };
            if &self.vms[i].datastore != want {
                return broken(format!(
                    "move #{}: {} runs on {}, not {want} ({} of {} moved)",
                    op.id,
                    m.vm,
                    self.vms[i].datastore,
                    op.moved(),
                    op.members.len()
                ));
            }
            if moving && !moved && !self.across.records.contains_key(&i) {
                return broken(format!("move #{}: {} has no record", op.id, m.vm));
            }
        }
        if moving
            && let Some(g) = self.group_by_key(&op.group)
            && self.groups[g].transfer.is_some()
        {
            return broken(format!("move #{}: its group {} ships", op.id, op.group));
        }
        Ok(())
    }

    /// Where member `m`'s record lives: beside its source image, in a directory no instance
    /// can be named after.
    fn record_path(&self, k: usize, m: usize) -> Result<PathBuf, EngineError> {
        let op = &self.across.saved.ops[k];
        let m = &op.members[m];
        Ok(self
            .ws
            .datastore_dir(&m.from_datastore)?
            .join(".records")
            .join(format!("across-{}", op.id))
            .join(format!("{}.undo", m.instance)))
    }

    /// Starts move `k` (already in the list) of group `g`: the record, then the first VM.
    /// A record that cannot be made ends the move before anything moved.
    pub(in crate::engine) fn start_break(&mut self, k: usize, g: usize) -> Result<(), EngineError> {
        if let Err(e) = self.make_records(k) {
            self.across.records.clear();
            let _ = self.drop_records(k);
            let msg = format!(
                "Cross-site move of {} did not start: its record could not be made ({e}); nothing moved",
                self.across.saved.ops[k].consistency_group
            );
            self.end_across(k, AcrossPhase::FailedBack, msg);
            return Err(e);
        }
        let points = crate::engine::replication::points_dir(self.ws.root(), &self.groups[g].spec);
        remove_dir_if_exists(&points)?;
        self.groups[g].older.clear();
        self.across.saved.ops[k].record_seq = self.next_seq.saturating_sub(1);
        self.persist_state()?;
        fault_point("across.recorded")?;
        self.step_or_fail_back(k)
    }

    /// A copy-on-write record of each member's source image, as it is now.
    fn make_records(&mut self, k: usize) -> Result<(), EngineError> {
        self.across.records.clear();
        for n in 0..self.across.saved.ops[k].members.len() {
            let path = self.record_path(k, n)?;
            let vm = self.across.saved.ops[k].members[n].vm.clone();
            let i = self.vm_index(&vm).expect("planned");
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io_err_at(dir))?;
            }
            alive()?;
            let log = UndoLog::create(&path, self.vms[i].image.block_count())
                .map_err(io_err_at(&path))?;
            self.across.records.insert(i, log);
            let hist = &self.vms[i].history;
            let member = &mut self.across.saved.ops[k].members[n];
            member.hops_at_record = hist.hops.len();
            member.since_at_record = hist.since;
        }
        Ok(())
    }

    /// The next step; an error in it (a copy that fails, an image that will not open)
    /// fails the move back to the record rather than leaving it stuck with its group held.
    fn step_or_fail_back(&mut self, k: usize) -> Result<(), EngineError> {
        match self.break_step(k) {
            Ok(()) => Ok(()),
            Err(e) => self.fail_back_break(k, &format!("the move failed: {e}")),
        }
    }

    /// Saves block `block` of VM `i`'s source image in the record before a guest write
    /// overwrites it. Returns what the save adds to the write's latency (a read and a write
    /// of the block on the source storage), zero when nothing was saved.
    pub(in crate::engine) fn across_before_write(
        &mut self,
        i: usize,
        block: u64,
    ) -> Result<SimTime, EngineError> {
        if !self.across.records.contains_key(&i) {
            return Ok(0);
        }
        let Some(k) = self.active_across() else {
            return Ok(0);
        };
        // Only the source image is recorded: once switched the VM writes elsewhere.
        if self.across.saved.ops[k]
            .members
            .iter()
            .any(|m| m.vm == self.vms[i].id && m.switched_at.is_some())
        {
            return Ok(0);
        }
        let img = &self.vms[i].image;
        let log = self.across.records.get_mut(&i).expect("checked above");
        alive()?;
        let saved = log
            .before_write(img, block)
            .map_err(io_err_at(log.path()))?;
        fault_point("across.record-saved")?;
        if !saved {
            return Ok(0);
        }
        self.across.saved.ops[k].record_blocks += 1;
        Ok(2 * duration_for(BLOCK_SIZE as u64, self.copy_rate(i)))
    }

    /// Is VM `i` paused for its last blocks in a move one VM at a time?
    pub(in crate::engine) fn across_pauses(&self, i: usize) -> bool {
        self.active_across().is_some_and(|k| {
            let op = &self.across.saved.ops[k];
            op.paused_since.is_some()
                && op
                    .members
                    .get(op.moved())
                    .is_some_and(|m| m.vm == self.vms[i].id)
        })
    }

    /// Is group `key` held by a move of its VMs one by one (it publishes nothing then)?
    pub(in crate::engine) fn across_holds(&self, key: &str) -> bool {
        self.active_across().is_some_and(|k| {
            let op = &self.across.saved.ops[k];
            op.phase == AcrossPhase::Moving && op.group == key
        })
    }

    /// The step event of move `id` fell due.
    pub(in crate::engine) fn on_across_step(
        &mut self,
        id: u64,
        step: u64,
    ) -> Result<(), EngineError> {
        match self.active_across() {
            Some(k) if self.across.saved.ops[k].id == id && self.across.step == step => {
                self.step_or_fail_back(k)
            }
            _ => Ok(()),
        }
    }

    fn schedule_step(&mut self, k: usize, at: SimTime) {
        self.across.step += 1;
        let ev = Ev::Across {
            op: self.across.saved.ops[k].id,
            step: self.across.step,
        };
        self.schedule(at, ev);
    }

    /// One step of the VM moving now: a pre-copy round, the pause for its last blocks, or
    /// its switch; with every VM moved, the restore of consistency.
    fn break_step(&mut self, k: usize) -> Result<(), EngineError> {
        let op = &self.across.saved.ops[k];
        if op.moved() == op.members.len() {
            return self.restore_consistency(k);
        }
        let m = op.members[op.moved()].clone();
        let Some(i) = self.vm_index(&m.vm) else {
            return self.fail_back_break(k, &format!("{} is gone", m.vm));
        };
        let src = self.vms[i].image.path().to_path_buf();
        let Some(tracker) = self.trackers.get(&src).cloned() else {
            // Without one the blocks its replica lacks are unknown: it must not switch.
            return self.fail_back_break(k, &format!("no change tracking for {}", m.vm));
        };
        let dst_path = self.member_disk(&m, true)?;
        let dst = ImageFile::open(&dst_path)?.without_readahead();
        let mbps = self
            .group_by_key(&op.group)
            .map_or(1000.0, |g| self.groups[g].spec.mbps);
        let paused = op.paused_since.is_some();
        let round = op.round;
        let left = tracker.count();
        let pause = !paused && round > 0 && (left <= CONVERGED_BLOCKS || round >= MAX_ROUNDS);
        let blocks = tracker.take();
        let mut buf: Block = [0; BLOCK_SIZE];
        for &b in &blocks {
            self.vms[i]
                .image
                .read_block_at(b, &mut buf)
                .map_err(io_err_at(&src))?;
            alive()?;
            dst.write_block(b, &buf).map_err(io_err_at(&dst_path))?;
        }
        let bytes = blocks.len() as u64 * BLOCK_SIZE as u64;
        let op = &mut self.across.saved.ops[k];
        op.catchup_bytes += bytes;
        if paused {
            return self.switch_member(k, i, &dst);
        }
        if pause {
            // The guest stops issuing I/O until it runs at the destination.
            self.vms[i].guest_gen += 1;
            self.across.saved.ops[k].paused_since = Some(self.now);
        } else {
            self.across.saved.ops[k].round += 1;
        }
        let at = self.now + (blocks.len() as u64 * link_write_time(mbps)).max(1);
        self.schedule_step(k, at);
        Ok(())
    }

    /// VM `i` (the next member of move `k`) holds nothing its replica `dst` lacks: it runs
    /// there from now on.
    fn switch_member(&mut self, k: usize, i: usize, dst: &ImageFile) -> Result<(), EngineError> {
        debug_assert!(
            replica::differing_blocks(&self.vms[i].image, dst).is_ok_and(|d| d.is_empty()),
            "{}: the replica differs from the source at its switch",
            self.vms[i].id
        );
        let n = self.across.saved.ops[k].moved();
        let m = self.across.saved.ops[k].members[n].clone();
        let dir = self.ws.datastore_dir(&m.to_datastore)?.join(&m.instance);
        let horizon = self.next_seq.saturating_sub(1);
        let now = self.now;
        // The pause ends as it starts there.
        let paused_since = self.across.saved.ops[k].paused_since.take();
        self.power_on_recovered(i, &m.to_datastore, &dir, &m.to_host, horizon, 0)?;
        let op = &mut self.across.saved.ops[k];
        let pause = now - paused_since.unwrap_or(now);
        op.max_pause = op.max_pause.max(pause);
        op.members[n].switched_at = Some(now);
        op.round = 0;
        let msg = format!(
            "Cross-site move of {}: {} runs at {} on {} on {} (paused {} for its last blocks); {} of {} moved",
            op.consistency_group,
            m.vm,
            op.to_site,
            m.to_datastore,
            m.to_host,
            crate::engine::format_duration(pause),
            op.moved(),
            op.members.len()
        );
        op.message = msg.clone();
        self.info(msg);
        self.persist_state()?;
        fault_point("across.member-switched")?;
        self.break_step(k)
    }

    /// Every VM runs at the destination: the group reverses and replicates back; its first
    /// point restores consistency.
    fn restore_consistency(&mut self, k: usize) -> Result<(), EngineError> {
        let Some(g) = self.group_by_key(&self.across.saved.ops[k].group) else {
            return self.fail_back_break(k, "its replication group is gone");
        };
        let (reversed, deleted, tracked) = self.reverse_groups(&BTreeSet::from([g]))?;
        debug_assert!(deleted.is_empty(), "every instance continues: {deleted:?}");
        let now = self.now;
        let op = &mut self.across.saved.ops[k];
        op.phase = AcrossPhase::Restoring;
        op.switched_at = Some(now);
        op.cycles_at_switch = self.groups[g].saved.cycles;
        let msg = format!(
            "Cross-site move of {}: all {} VM(s) run at {}; restoring consistency: {} ({tracked} block(s) written since their switches); the move succeeds once that group publishes its first point",
            op.consistency_group,
            op.members.len(),
            op.to_site,
            reversed.join("; ")
        );
        op.message = msg.clone();
        self.info(msg);
        self.persist_state()
    }

    /// The reversed group published a point holding every VM: consistency is restored, the
    /// record goes.
    pub(in crate::engine) fn succeed_break(&mut self, k: usize) -> Result<(), EngineError> {
        let op = &self.across.saved.ops[k];
        let cut = self
            .group_by_key(&op.group)
            .and_then(|g| self.groups[g].published.as_ref())
            .map_or(0, |p| p.cut_at);
        let msg = format!(
            "Cross-site move of {} succeeded: consistency restored at {} (a point of all {} VM(s) cut at {}), {} protects it now, replicating asynchronously to {}; the record of {} is released; the longest pause was {}, no write lost",
            op.consistency_group,
            op.to_site,
            op.members.len(),
            format_time(cut),
            op.to_site,
            op.from_site,
            op.from_site,
            crate::engine::format_duration(op.max_pause)
        );
        self.end_across(k, AcrossPhase::Succeeded, msg);
        self.persist_state()?;
        self.drop_records(k)
    }

    fn drop_records(&mut self, k: usize) -> Result<(), EngineError> {
        self.across.records.clear();
        for n in 0..self.across.saved.ops[k].members.len() {
            let path = self.record_path(k, n)?;
            remove_file_if_exists(&path)?;
            if let Some(dir) = path.parent() {
                // Emptied: `.records` may hold other moves' records.
                let _ = std::fs::remove_dir(dir);
            }
        }
        Ok(())
    }

    /// Returns every VM of move `k` to its source, reverted to the record: consistent, the
    /// writes since lost (counted from the journals) and the group replicating as before.
    pub(in crate::engine) fn fail_back_break(
        &mut self,
        k: usize,
        why: &str,
    ) -> Result<(), EngineError> {
        if self.across.saved.ops[k].failing_back.is_none() {
            self.across.saved.ops[k].failing_back = Some(why.to_string());
            self.persist_state()?;
        }
        fault_point("across.failing-back")?;
        // A VM paused for its switch is no longer held: it starts again where it goes back.
        self.across.saved.ops[k].paused_since = None;
        let op = self.across.saved.ops[k].clone();
        let g = self.group_by_key(&op.group);
        if let Some(g) = g {
            self.abandon_transfer(g, why)?;
        }
        let journals =
            verify::site_journals(&self.ws, [op.from_site.as_str(), op.to_site.as_str()])?;
        let mut lost_total = 0;
        for (n, m) in op.members.iter().enumerate() {
            let Some(i) = self.vm_index(&m.vm) else {
                continue;
            };
            let uuid = self.vms[i].uuid;
            let lost = journals
                .values()
                .map(|j| j.of(&uuid).iter().filter(|e| e.seq > op.record_seq).count() as u64)
                .sum::<u64>();
            let dir = self.ws.datastore_dir(&m.from_datastore)?.join(&m.instance);
            let src = self.member_disk(m, false)?;
            let path = self.record_path(k, n)?;
            let img = ImageFile::open(&src)?.without_readahead();
            let log = match self.across.records.remove(&i) {
                Some(log) => log,
                None => UndoLog::open(&path, img.block_count()).map_err(io_err_at(&path))?,
            };
            self.power_off(i);
            alive()?;
            log.revert(&img).map_err(io_err_at(&src))?;
            fault_point("across.reverted")?;
            // Its history returns to the record: the hop of its switch, if it made one, and
            // every write since are gone.
            let hist = &mut self.vms[i].history;
            hist.hops.truncate(m.hops_at_record);
            hist.since = m.since_at_record;
            self.vms[i].site = op.from_site.clone();
            self.trackers.remove(&src);
            self.power_on_recovered(
                i,
                &m.from_datastore,
                &dir,
                &m.from_host,
                op.record_seq,
                lost,
            )?;
            lost_total += lost;
        }
        if let Some(g) = g {
            if op.phase == AcrossPhase::Restoring {
                // Replicating back: it turns around again (trackers compare the sides).
                self.reverse_groups(&BTreeSet::from([g]))?;
            } else {
                // The replicas are no recovery point any more (some VMs' are ahead of it):
                // the next cycle ships what differs and publishes a consistent one.
                let spec = self.groups[g].spec.clone();
                remove_file_if_exists(&self.published_path(&spec))?;
                self.groups[g].published = None;
                self.groups[g].saved.next_cut = Some(self.now);
                self.queue_cut(g);
                for m in &op.members {
                    if let Some(i) = self.vm_index(&m.vm) {
                        let path = self.vms[i].image.path().to_path_buf();
                        let t = self.tracker_for(&m.from_datastore, &path)?;
                        self.vms[i].image.set_tracker(t);
                    }
                }
            }
        }
        let record_at = op.started_at;
        let msg = format!(
            "Cross-site move of {} failed back ({why}): every VM runs at {} on the record of {} (consistent); {lost_total} write(s) made since were lost, as the move one VM at a time allows",
            op.consistency_group,
            op.from_site,
            format_time(record_at)
        );
        let op = &mut self.across.saved.ops[k];
        op.writes_lost = lost_total;
        op.failing_back = None;
        self.end_across(k, AcrossPhase::FailedBack, msg);
        self.persist_state()?;
        self.drop_records(k)
    }

    /// After an open: reopens the records, then finishes a fail-back a crash interrupted,
    /// goes on moving (the VM that was pausing runs again and starts its rounds afresh: its
    /// tracker was rebuilt by comparing it with its replica), or succeeds if the point that
    /// restores consistency was published.
    pub(in crate::engine) fn restore_break(&mut self, k: usize) -> Result<(), EngineError> {
        debug_assert_eq!(self.across.saved.ops[k].consistency, Consistency::Break);
        for n in 0..self.across.saved.ops[k].members.len() {
            let vm = self.across.saved.ops[k].members[n].vm.clone();
            let Some(i) = self.vm_index(&vm) else {
                continue;
            };
            let path = self.record_path(k, n)?;
            let src = self.member_disk(&self.across.saved.ops[k].members[n], false)?;
            let blocks = ImageFile::open_read_only(&src)?.block_count();
            let log = UndoLog::open(&path, blocks).map_err(io_err_at(&path))?;
            self.across.records.insert(i, log);
        }
        if let Some(why) = self.across.saved.ops[k].failing_back.clone() {
            return self.fail_back_break(k, &format!("{why}; finished after a restart"));
        }
        match self.across.saved.ops[k].phase {
            AcrossPhase::Moving => {
                let op = &mut self.across.saved.ops[k];
                op.paused_since = None;
                op.round = 0;
                self.schedule_step(k, self.now);
                Ok(())
            }
            AcrossPhase::Restoring => {
                let op = &self.across.saved.ops[k];
                let published = self
                    .group_by_key(&op.group)
                    .and_then(|g| self.groups[g].published.as_ref())
                    .map(|p| p.cycle);
                if published.is_some_and(|c| c > op.cycles_at_switch) {
                    self.succeed_break(k)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }
}
