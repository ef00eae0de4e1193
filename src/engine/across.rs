//! Cross-site live migration of a consistency group (SPEC §12, seed
//! `live-migration-consistency-group-abstracts.txt`): every VM of a replicated CG moves to
//! the other site while its guest keeps writing, onto the replica that is already there.
//!
//! The operation, in phases:
//! 1. **syncing**: the group replicates synchronously. A cycle is forced at once; it ships
//!    only the group's changes since its last published point (what is not yet at the
//!    destination). From the start every guest write of the CG is acknowledged only once it
//!    has also crossed the link, so it pays the write's transfer time over the link; the
//!    destination holds those writes in order and applies them when the catch-up cycle
//!    publishes (the tracker since the cycle's cut lists them).
//! 2. **switched**: at that publish, in one instant, the replicas equal the sources block
//!    for block; every VM switches to its replica instance, on a recovery-site host reserved
//!    before the start, and the group reverses (as reprotect does). From then each write at
//!    the destination is mirrored back to the VM's source instance (reverse replication,
//!    again paying the link), so the source CG stays a consistent fail-back.
//! 3. **succeeded**: the reversed group has published a point holding every VM: the
//!    destination is protected, mirroring stops, replication runs asynchronously in the new
//!    direction.
//!
//! A failure before success (the link goes down, the destination site is lost, a cancel)
//! fails the group back: before the switch nothing moved; after it every VM returns to its
//! source instance, which holds every write, and the group reverses back. Nothing is lost
//! either way. A disaster at the source site interrupts the move: before the switch the
//! replicas decide as in any disaster; after it the VMs keep running at the destination.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{
    Engine, EngineError, LogLevel, Outcome, SimTime, duration_for, format_time, io_err_at,
};
use crate::disk::{BLOCK_SIZE, Block, ImageFile};
use crate::dr;
use crate::replica;

mod one_by_one;
mod plan;

/// How a cross-site move treats the CG's consistency (SPEC §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Consistency {
    /// Synchronous replication and one switch instant: consistent throughout.
    #[default]
    Keep,
    /// VMs one by one without synchronous replication; a record of the source CG is the
    /// fail-back, and consistency is restored at the destination before success
    /// (`across_break.rs`).
    Break,
}

impl Consistency {
    pub fn is_keep(&self) -> bool {
        *self == Consistency::Keep
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Keep => "keep",
            Consistency::Break => "break",
        }
    }
}

/// Where a cross-site move is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AcrossPhase {
    /// Synchronous replication; the catch-up cycle is on its way.
    Syncing,
    /// The VMs run at the destination; their writes are mirrored back to the sources.
    Switched,
    /// `Break`: the VMs move one by one; the group publishes nothing meanwhile.
    Moving,
    /// `Break`: every VM runs at the destination; the reversed group's first point, which
    /// makes the CG consistent again, is on its way.
    Restoring,
    /// The destination is protected: replication runs reversed and asynchronous.
    Succeeded,
    /// A failure before success: every VM runs on its source again, nothing lost.
    FailedBack,
    /// The source site was lost: the move cannot finish.
    Interrupted,
}

impl AcrossPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            AcrossPhase::Syncing => "synchronous catch-up",
            AcrossPhase::Switched => "switched, mirroring back",
            AcrossPhase::Moving => "moving one by one",
            AcrossPhase::Restoring => "restoring consistency",
            AcrossPhase::Succeeded => "succeeded",
            AcrossPhase::FailedBack => "failed back",
            AcrossPhase::Interrupted => "interrupted",
        }
    }

    pub fn active(self) -> bool {
        matches!(
            self,
            AcrossPhase::Syncing
                | AcrossPhase::Switched
                | AcrossPhase::Moving
                | AcrossPhase::Restoring
        )
    }
}

/// One VM of a cross-site move: where it was and where it goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcrossMember {
    pub vm: String,
    pub from_datastore: String,
    pub from_host: String,
    pub to_datastore: String,
    pub to_host: String,
    /// The instance directory (the same name on both sides).
    pub instance: String,
    /// `Break`: when it switched to the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched_at: Option<SimTime>,
    /// `Break`: its write history at the record (hops kept, writes since), which a
    /// fail-back returns to.
    #[serde(default)]
    pub hops_at_record: usize,
    #[serde(default)]
    pub since_at_record: u64,
}

/// One cross-site move, persisted with the engine state and shown by the console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcrossOp {
    pub id: u64,
    pub consistency_group: String,
    /// The replication group's key.
    pub group: String,
    pub from_site: String,
    pub to_site: String,
    pub rating: String,
    pub members: Vec<AcrossMember>,
    pub phase: AcrossPhase,
    pub started_at: SimTime,
    pub switched_at: Option<SimTime>,
    pub ended_at: Option<SimTime>,
    /// The group's last cycle cut before the start: the catch-up is the first one after.
    pub cycles_at_start: u64,
    /// The reversed group's last cycle cut before the switch.
    pub cycles_at_switch: u64,
    /// Blocks not yet at the destination when the move started.
    pub changed_blocks: u64,
    /// Bytes the group's cycles shipped from the start to the switch.
    pub catchup_bytes: u64,
    /// Guest writes replicated synchronously before the switch, and blocks the
    /// destination applied from them at the switch.
    pub sync_writes: u64,
    pub sync_blocks_applied: u64,
    /// Writes mirrored back to the sources after the switch.
    pub reverse_writes: u64,
    pub message: String,
    #[serde(skip)]
    bytes_at_start: u64,
    #[serde(default)]
    pub consistency: Consistency,
    /// `Break`: the record's instant, the last journaled write when the move started.
    #[serde(default)]
    pub record_seq: u64,
    /// `Break`: the pre-copy round of the next member to switch, and since when it is
    /// paused for its last blocks.
    #[serde(default)]
    pub round: u32,
    #[serde(default)]
    pub paused_since: Option<SimTime>,
    /// `Break`: the longest pause of a VM at its switch.
    #[serde(default)]
    pub max_pause: SimTime,
    /// `Break`: the blocks the record kept (saved before their first overwrite).
    #[serde(default)]
    pub record_blocks: u64,
    /// `Break`: writes a fail-back to the record lost (the RPO the variant risks).
    #[serde(default)]
    pub writes_lost: u64,
    /// `Break`: a fail-back under way (why), finished at the next open after a crash.
    #[serde(default)]
    pub failing_back: Option<String>,
}

impl AcrossOp {
    /// `Break`: the members switched so far, which move in order: the first `moved()`.
    pub fn moved(&self) -> usize {
        self.members
            .iter()
            .take_while(|m| m.switched_at.is_some())
            .count()
    }
}

/// Persisted with the engine state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub(super) struct AcrossSaved {
    #[serde(default)]
    pub(super) ops: Vec<AcrossOp>,
    #[serde(default)]
    next_id: u64,
}

#[derive(Default)]
pub(super) struct AcrossRt {
    pub(super) saved: AcrossSaved,
    /// The source images the switched VMs' writes are mirrored back to.
    sources: super::mirror_back::MirrorBack,
    /// `Break`: the record of each member's source image, by VM index.
    pub(super) records: BTreeMap<usize, crate::disk::UndoLog>,
    /// `Break`: the step event that counts (earlier ones are stale).
    pub(super) step: u64,
}

/// The plan of a move: its replication group, members and the impact.
#[derive(Debug, Clone, PartialEq)]
pub struct AcrossPlan {
    pub group: usize,
    pub members: Vec<AcrossMember>,
    pub impact: dr::Impact,
    /// The link's bandwidth, megabits per second: what a synchronous write crosses.
    pub mbps: f64,
}

impl Engine {
    pub(super) fn across_saved(&self) -> AcrossSaved {
        self.across.saved.clone()
    }

    /// After an open: a move caught syncing ends (nothing had moved; the catch-up cycle is
    /// the replication's own business); a switched one mirrors on until it succeeds.
    pub(super) fn restore_across(&mut self, saved: AcrossSaved) -> Result<(), EngineError> {
        self.across = AcrossRt {
            saved,
            ..Default::default()
        };
        let Some(k) = self.active_across() else {
            return Ok(());
        };
        if !self.across.saved.ops[k].consistency.is_keep() {
            return self.restore_break(k);
        }
        match self.across.saved.ops[k].phase {
            AcrossPhase::Syncing => {
                self.end_across(
                    k,
                    AcrossPhase::FailedBack,
                    "the console restarted before the switch: the VMs stay at the source".into(),
                );
            }
            _ => self.open_sources(k)?,
        }
        Ok(())
    }

    /// The cross-site moves so far, oldest first.
    pub fn across_ops(&self) -> &[AcrossOp] {
        &self.across.saved.ops
    }

    pub(super) fn active_across(&self) -> Option<usize> {
        self.across.saved.ops.iter().position(|o| o.phase.active())
    }

    /// Why VM `i` cannot start another move now: it belongs to a running cross-site move.
    pub(super) fn across_busy(&self, i: usize) -> Option<String> {
        let op = &self.across.saved.ops[self.active_across()?];
        op.members.iter().any(|m| m.vm == self.vms[i].id).then(|| {
            format!(
                "VM {} is moving to {} with {} (cross-site move #{}, {}); cancel it or let it finish first",
                self.vms[i].id,
                op.to_site,
                op.consistency_group,
                op.id,
                op.phase.as_str()
            )
        })
    }

    /// What a guest write of VM `i` costs on top of its own storage: the write's transfer
    /// over the link while its CG replicates synchronously or mirrors back (SPEC §12;
    /// nothing when it moves one VM at a time).
    pub(super) fn across_write_cost(&self, i: usize) -> SimTime {
        let Some(k) = self.active_across() else {
            return 0;
        };
        let op = &self.across.saved.ops[k];
        let vm = &self.vms[i].id;
        if !op.consistency.is_keep() || !op.members.iter().any(|m| &m.vm == vm) {
            return 0;
        }
        if op.phase == AcrossPhase::Switched && !self.across.sources.contains(i) {
            return 0;
        }
        let Some(g) = self.group_by_key(&op.group) else {
            return 0;
        };
        link_write_time(self.groups[g].spec.mbps)
    }

    /// A guest write of VM `i` landed: counted as replicated synchronously, or mirrored
    /// back to its source instance.
    pub(super) fn across_after_write(
        &mut self,
        i: usize,
        block: u64,
        buf: &Block,
    ) -> Result<(), EngineError> {
        let Some(k) = self.active_across() else {
            return Ok(());
        };
        if self.across.sources.write(i, block, buf)? {
            self.across.saved.ops[k].reverse_writes += 1;
        } else if self.across.saved.ops[k].phase == AcrossPhase::Syncing
            && self.across.saved.ops[k]
                .members
                .iter()
                .any(|m| m.vm == self.vms[i].id)
        {
            self.across.saved.ops[k].sync_writes += 1;
        }
        Ok(())
    }

    pub(super) fn group_by_key(&self, key: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.spec.key == key)
    }

    /// `MigrateAcross(consistency_group, confirm, consistency)`.
    pub(super) fn migrate_across(
        &mut self,
        cg: &str,
        confirm: bool,
        consistency: Consistency,
    ) -> Result<Outcome, EngineError> {
        if let Some(k) = self.active_across() {
            return Err(EngineError::Rule {
                object: format!(
                    "cross-site move of {}",
                    self.across.saved.ops[k].consistency_group
                ),
                rule: "is still running; one cross-site move at a time".into(),
            });
        }
        let plan = self.plan_across(cg, consistency)?;
        if let Some(refused) = self.override_gate(
            &format!("Cross-site move of {cg}"),
            &format!("cross-site move of {cg}"),
            &plan.impact,
            confirm,
        ) {
            return Ok(refused);
        }
        let g = plan.group;
        let spec = self.groups[g].spec.clone();
        if !consistency.is_keep() {
            // The group publishes nothing while the VMs move one by one; the blocks of a
            // cycle in flight go back to the trackers, which the moves ship.
            self.abandon_transfer(g, "a cross-site move one VM at a time holds the group")?;
        }
        // What is not at the destination yet: the trackers of the group's images.
        let mut changed = 0;
        for m in &plan.members {
            let i = self.vm_index(&m.vm).expect("planned");
            let path = self.vms[i].image.path().to_path_buf();
            changed += self
                .tracker_for(&m.from_datastore, &path)?
                .map_or(0, |t| t.count());
        }
        self.across.saved.next_id += 1;
        let id = self.across.saved.next_id;
        let list = plan
            .members
            .iter()
            .map(|m| format!("{} to {} on {}", m.vm, m.to_datastore, m.to_host))
            .collect::<Vec<_>>()
            .join(", ");
        let msg = if consistency.is_keep() {
            format!(
                "Cross-site move of {cg} started, {} to {}: replication is synchronous; the catch-up ships the {changed} block(s) not yet at {} ({list}), rating {}",
                spec.source_site, spec.target_site, spec.target_site, plan.impact.rating
            )
        } else {
            format!(
                "Cross-site move of {cg} started, {} to {}, one VM at a time without synchronous replication: {} is recorded as the fail-back; the RPO may be violated until consistency is restored at {}; {changed} block(s) are not yet there ({list}), rating {}",
                spec.source_site,
                spec.target_site,
                spec.source_site,
                spec.target_site,
                plan.impact.rating
            )
        };
        self.across.saved.ops.push(AcrossOp {
            id,
            consistency_group: cg.to_string(),
            group: spec.key.clone(),
            from_site: spec.source_site.clone(),
            to_site: spec.target_site.clone(),
            rating: plan.impact.rating.as_str().into(),
            members: plan.members,
            phase: if consistency.is_keep() {
                AcrossPhase::Syncing
            } else {
                AcrossPhase::Moving
            },
            started_at: self.now,
            switched_at: None,
            ended_at: None,
            cycles_at_start: self.groups[g].saved.cycles,
            cycles_at_switch: 0,
            changed_blocks: changed,
            catchup_bytes: 0,
            sync_writes: 0,
            sync_blocks_applied: 0,
            reverse_writes: 0,
            message: msg.clone(),
            bytes_at_start: self.groups[g].saved.bytes_shipped,
            consistency,
            record_seq: 0,
            round: 0,
            paused_since: None,
            max_pause: 0,
            record_blocks: 0,
            writes_lost: 0,
            failing_back: None,
        });
        self.info(msg.clone());
        if !consistency.is_keep() {
            let k = self.across.saved.ops.len() - 1;
            self.start_break(k, g)?;
            return Ok(Outcome::Done(msg));
        }
        // The catch-up cycle: now, or right after the cycle in flight.
        if self.groups[g].transfer.is_some() {
            self.groups[g].saved.now_requested = true;
        } else {
            self.cut_now(g)?;
        }
        Ok(Outcome::Done(msg))
    }

    /// After every publish: a syncing move whose catch-up published switches; a switched
    /// one whose reversed group published succeeds.
    pub(super) fn across_after_publish(&mut self) -> Result<(), EngineError> {
        let Some(k) = self.active_across() else {
            return Ok(());
        };
        let op = &self.across.saved.ops[k];
        let Some(g) = self.group_by_key(&op.group) else {
            return Ok(());
        };
        let published = self.groups[g].published.as_ref().map(|p| p.cycle);
        match op.phase {
            AcrossPhase::Syncing if published.is_some_and(|c| c > op.cycles_at_start) => {
                self.switch_across(k, g)
            }
            AcrossPhase::Switched if published.is_some_and(|c| c > op.cycles_at_switch) => {
                self.succeed_across(k)
            }
            AcrossPhase::Restoring if published.is_some_and(|c| c > op.cycles_at_switch) => {
                self.succeed_break(k)
            }
            _ => Ok(()),
        }
    }

    /// The switch instant: the destination applies the writes replicated since the
    /// catch-up's cut, every VM moves to its replica, the group reverses.
    fn switch_across(&mut self, k: usize, g: usize) -> Result<(), EngineError> {
        let members = self.across.saved.ops[k].members.clone();
        // The writes since the catch-up's cut are what its trackers hold: without one the
        // destination cannot know them, and the move must not switch onto a stale replica.
        let untracked: Vec<&str> = members
            .iter()
            .filter(|m| {
                self.vm_index(&m.vm)
                    .is_none_or(|i| !self.trackers.contains_key(self.vms[i].image.path()))
            })
            .map(|m| m.vm.as_str())
            .collect();
        if !untracked.is_empty() {
            let why = format!("no change tracking for {}", untracked.join(", "));
            return self.fail_back_across(k, &why);
        }
        let mut applied = 0;
        for m in &members {
            let i = self.vm_index(&m.vm).expect("a member");
            let src_path = self.vms[i].image.path().to_path_buf();
            let dst_path = self.member_disk(m, true)?;
            let blocks = self
                .trackers
                .get(&src_path)
                .map(|t| t.take())
                .unwrap_or_default();
            let dst = ImageFile::open(&dst_path)?.without_readahead();
            let mut buf: Block = [0; BLOCK_SIZE];
            for &b in &blocks {
                self.vms[i]
                    .image
                    .read_block_at(b, &mut buf)
                    .map_err(io_err_at(&src_path))?;
                super::alive()?;
                dst.write_block(b, &buf).map_err(io_err_at(&dst_path))?;
            }
            applied += blocks.len() as u64;
            debug_assert!(
                replica::differing_blocks(&self.vms[i].image, &dst).is_ok_and(|d| d.is_empty()),
                "{}: the destination differs from the source at the switch",
                m.vm
            );
        }
        super::fault_point("across.applied")?;
        let now = self.now;
        let bytes = self.groups[g].saved.bytes_shipped;
        for m in &members {
            let i = self.vm_index(&m.vm).expect("a member");
            let dir = self.ws.datastore_dir(&m.to_datastore)?.join(&m.instance);
            let horizon = self.next_seq.saturating_sub(1);
            self.power_on_recovered(i, &m.to_datastore, &dir, &m.to_host, horizon, 0)?;
        }
        // The running images equal their sources block for block (checked above in debug
        // builds): the reversed group tracks them from clean, without comparing them again.
        for m in &members {
            let i = self.vm_index(&m.vm).expect("a member");
            let path = self.vms[i].image.path().to_path_buf();
            let blocks = self.vms[i].image.block_count();
            self.trackers.insert(
                path,
                std::sync::Arc::new(crate::disk::DirtyTracker::new(blocks)),
            );
        }
        let scope = BTreeSet::from([g]);
        let (reversed, deleted, tracked) = self.reverse_groups(&scope)?;
        debug_assert!(deleted.is_empty(), "a switch deletes nothing: {deleted:?}");
        let op = &mut self.across.saved.ops[k];
        op.phase = AcrossPhase::Switched;
        op.switched_at = Some(now);
        op.sync_blocks_applied = applied;
        op.catchup_bytes = bytes.saturating_sub(op.bytes_at_start);
        op.cycles_at_switch = self.groups[g].saved.cycles;
        let msg = format!(
            "Cross-site move of {}: switched at {}: {} VM(s) run at {} on their replicas ({} block(s) of synchronous writes applied, {} shipped by the catch-up); {}; writes are mirrored back to {} until the first reversed point ({tracked} block(s) differ)",
            op.consistency_group,
            format_time(now),
            members.len(),
            op.to_site,
            applied,
            super::replication::human_bytes(op.catchup_bytes),
            reversed.join("; "),
            op.from_site
        );
        op.message = msg.clone();
        self.info(msg);
        self.open_sources(k)?;
        self.persist_state()?;
        super::fault_point("across.switched")
    }

    /// The disk of member `m`'s instance on its destination (`to`) or source datastore.
    fn member_disk(&self, m: &AcrossMember, to: bool) -> Result<PathBuf, EngineError> {
        let ds = if to {
            &m.to_datastore
        } else {
            &m.from_datastore
        };
        Ok(self
            .ws
            .datastore_dir(ds)?
            .join(&m.instance)
            .join(crate::workspace::FIRST_DISK))
    }

    /// Opens the switched VMs' source images for mirroring back.
    fn open_sources(&mut self, k: usize) -> Result<(), EngineError> {
        let members = self.across.saved.ops[k].members.clone();
        self.across.sources.clear();
        for m in &members {
            let Some(i) = self.vm_index(&m.vm) else {
                continue;
            };
            let img = ImageFile::open(&self.member_disk(m, false)?)?.without_readahead();
            self.across.sources.insert(i, img);
        }
        Ok(())
    }

    fn succeed_across(&mut self, k: usize) -> Result<(), EngineError> {
        self.across.sources.clear();
        let op = &self.across.saved.ops[k];
        let msg = format!(
            "Cross-site move of {} succeeded: {} protects it now, replicating asynchronously to {}; {} write(s) were mirrored back, none lost",
            op.consistency_group, op.to_site, op.from_site, op.reverse_writes
        );
        self.end_across(k, AcrossPhase::Succeeded, msg);
        self.persist_state()
    }

    pub(super) fn end_across(&mut self, k: usize, phase: AcrossPhase, msg: String) {
        let now = self.now;
        let op = &mut self.across.saved.ops[k];
        op.phase = phase;
        op.ended_at = Some(now);
        op.message = msg.clone();
        let level = match phase {
            AcrossPhase::Succeeded => LogLevel::Info,
            _ => LogLevel::Warning,
        };
        self.push_log(level, msg);
    }

    /// Fails the active move back to the source (`why` says what failed): before the
    /// switch nothing moved; after it every VM returns to its source instance, which holds
    /// each of its writes, and the group reverses back.
    fn fail_back_across(&mut self, k: usize, why: &str) -> Result<(), EngineError> {
        if !self.across.saved.ops[k].consistency.is_keep() {
            return self.fail_back_break(k, why);
        }
        let op = self.across.saved.ops[k].clone();
        if op.phase == AcrossPhase::Switched {
            self.across.sources.clear();
            let g = self.group_by_key(&op.group);
            if let Some(g) = g {
                self.abandon_transfer(g, why)?;
            }
            for m in &op.members {
                let Some(i) = self.vm_index(&m.vm) else {
                    continue;
                };
                let dir = self.ws.datastore_dir(&m.from_datastore)?.join(&m.instance);
                let horizon = self.next_seq.saturating_sub(1);
                self.power_on_recovered(i, &m.from_datastore, &dir, &m.from_host, horizon, 0)?;
            }
            if let Some(g) = g {
                self.reverse_groups(&BTreeSet::from([g]))?;
            }
        }
        let msg = format!(
            "Cross-site move of {} failed back ({why}): every VM runs at {} on its source, nothing lost",
            op.consistency_group, op.from_site
        );
        self.end_across(k, AcrossPhase::FailedBack, msg);
        self.persist_state()
    }

    /// `CancelAcross(consistency_group)`: fails the running move back.
    pub(super) fn cancel_across(&mut self, cg: &str) -> Result<Outcome, EngineError> {
        let Some(k) = self
            .active_across()
            .filter(|&k| self.across.saved.ops[k].consistency_group == cg)
        else {
            return Err(EngineError::Rule {
                object: format!("consistency group {cg}"),
                rule: "has no cross-site move running".into(),
            });
        };
        self.fail_back_across(k, "cancelled by the operator")?;
        Ok(Outcome::Done(self.across.saved.ops[k].message.clone()))
    }

    /// Replication of group `key` (`id`) was paused: a synchronous move of it cannot get
    /// the point it waits for (while its guests pay every write), so it fails back. A move
    /// one VM at a time does not replicate while its VMs move, and failing it back would
    /// lose writes: it waits for the resume to restore consistency instead.
    pub(super) fn across_paused(&mut self, key: &str, id: &str) -> Result<(), EngineError> {
        match self
            .active_across()
            .filter(|&k| self.across.saved.ops[k].group == key)
        {
            Some(k) if self.across.saved.ops[k].consistency.is_keep() => {
                self.fail_back_across(k, &format!("replication of {id} was paused"))
            }
            Some(k) => {
                let cg = self.across.saved.ops[k].consistency_group.clone();
                self.push_log(
                    LogLevel::Warning,
                    format!(
                        "Cross-site move of {cg}: replication of {id} is paused; consistency is restored only once it resumes"
                    ),
                );
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The link went down: a running move fails back.
    pub(super) fn across_link_down(&mut self) -> Result<(), EngineError> {
        match self.active_across() {
            Some(k) => self.fail_back_across(k, "the link went down"),
            None => Ok(()),
        }
    }

    /// Site `site` was lost: the destination fails the move back; the source interrupts it.
    pub(super) fn across_after_disaster(&mut self, site: &str) -> Result<(), EngineError> {
        let Some(k) = self.active_across() else {
            return Ok(());
        };
        let op = &self.across.saved.ops[k];
        if site == op.to_site {
            return self.fail_back_across(k, &format!("destination site {site} was lost"));
        }
        if site == op.from_site {
            self.across.sources.clear();
            // The record was on the lost site's storage: there is nothing to fail back to.
            self.across.records.clear();
            let msg = match op.phase {
                AcrossPhase::Moving => format!(
                    "Cross-site move of {} interrupted: source site {site} was lost with {} of {} VM(s) moved; those keep running at {}, the rest are recovered from replicas the move left without a consistent point",
                    op.consistency_group,
                    op.moved(),
                    op.members.len(),
                    op.to_site
                ),
                AcrossPhase::Syncing => format!(
                    "Cross-site move of {} interrupted: source site {site} was lost before the switch; the replicas decide as in any disaster",
                    op.consistency_group
                ),
                _ => format!(
                    "Cross-site move of {} interrupted: source site {site} was lost after the switch; the VMs keep running at {}, unprotected until it returns",
                    op.consistency_group, op.to_site
                ),
            };
            self.end_across(k, AcrossPhase::Interrupted, msg);
        }
        Ok(())
    }
}

/// The time one guest write takes to cross a link of `mbps` megabits per second.
pub fn link_write_time(mbps: f64) -> SimTime {
    let mib_s = mbps.max(1.0) / 8.0 * 1_000_000.0 / (1024.0 * 1024.0);
    duration_for(BLOCK_SIZE as u64, mib_s)
}
