//! Array health events: a fault swaps host I/O of a replicated or distributed pair to its
//! healthy side; when health returns the changes are mirrored back and replication
//! restarts in its original direction only after that resync (seed
//! `related-ha-and-replication-abstracts.txt`).
//!
//! A replicated pair (a replication group with a datastore on the faulted array) goes
//! through three phases:
//! 1. **draining**: the group's guests are held (no new I/O is issued), a final replication
//!    cycle ships what changed since the last cut (simulated time: bytes ÷ link bandwidth);
//! 2. **swapped**: once that cycle is published the replicas equal the primaries, the VMs'
//!    I/O goes to their replica instances (the VM keeps its home datastore and its host),
//!    every block they write is tracked, and the group's replication is suspended;
//! 3. **resyncing** (after `ArrayHealthy`): the tracked blocks are copied back from the
//!    replica images to the primary images in batches at link bandwidth (writes arriving
//!    meanwhile are tracked and copied again); when nothing is left, I/O swaps back to the
//!    primaries and only then replication restarts (its next cycle cut at once, which ships
//!    nothing: replica and primary are equal, so the point it publishes is truthfully the
//!    cut).
//!
//! The tracked set survives a reopen as the difference between the two images: the
//! primaries are not written while swapped except by the resync, so a block differs exactly
//! when it still has to be copied back. A disaster or a failover while swapped is not
//! treated specially (the replicas hold the live data; a failover recovers from them).
//! A CG swaps as a whole (write-order consistency), even if only one of its datastores is
//! on the faulted array.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::sched::SwapId;
use super::{Engine, EngineError, Ev, LogLevel, Outcome, SECOND, SimTime, format_time, io_err_at};
use crate::disk::{BLOCK_SIZE, Block, ImageFile};
use crate::topology::SiteRole;

mod swap;
mod swap_back;
mod views;

pub use views::{ArrayView, HealthPairView};

/// Where a pair is in its swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SwapPhase {
    /// Guests held; the final cycle ships to the replicas.
    Draining,
    /// I/O on the replicas, replication suspended.
    Swapped,
    /// Copying the tracked blocks back to the primaries.
    Resyncing,
}

impl SwapPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            SwapPhase::Draining => "draining",
            SwapPhase::Swapped => "swapped",
            SwapPhase::Resyncing => "resyncing",
        }
    }
}

/// One swap, as saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SwapSaved {
    pub id: u64,
    /// The replication group's key.
    pub group: String,
    pub array: String,
    pub phase: SwapPhase,
    /// The VMs whose I/O was swapped (set when the swap happens).
    pub vms: Vec<String>,
    pub faulted_at: SimTime,
    pub swapped_at: Option<SimTime>,
    /// Blocks copied back so far by the resync.
    pub copied: u64,
    /// When the latencies allowed an early swap-back: the guests are held while the last
    /// blocks go back (`swap_back`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early: Option<SimTime>,
}

/// What survives a reopen (a field of `state/engine.ron`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct HealthSaved {
    /// Arrays reporting a fault now.
    pub faulted: Vec<String>,
    pub swaps: Vec<SwapSaved>,
    /// Group key → the cycle that restarted its replication after its last swap back.
    pub restarted: BTreeMap<String, u64>,
    pub next_id: u64,
}

/// A swapped VM: its primary image is kept while its I/O goes to the replica.
pub(super) struct SwapVm {
    vm: usize,
    primary: ImageFile,
    primary_dir: PathBuf,
    replica_dir: PathBuf,
    /// Blocks written on the replica since the swap and not yet copied back.
    tracked: BTreeSet<u64>,
}

pub(super) struct SwapRt {
    saved: SwapSaved,
    /// The final cycle's number once cut.
    drain_cycle: Option<u64>,
    generation: u64,
    vms: Vec<SwapVm>,
    /// Blocks to copy back when the resync started (plus re-copies), for the progress bar.
    resync_total: u64,
    /// Since when the early swap-back's latency difference has stayed within the threshold
    /// (not saved: a reopen starts the hold period over).
    within_since: Option<SimTime>,
}

/// Runtime state, a field of the engine.
#[derive(Default)]
pub(super) struct HealthRt {
    faulted: Vec<String>,
    swaps: Vec<SwapRt>,
    restarted: BTreeMap<String, u64>,
    next_id: u64,
}

fn rule(object: String, rule: impl Into<String>) -> EngineError {
    EngineError::Rule {
        object,
        rule: rule.into(),
    }
}

impl Engine {
    /// Saved with the engine state.
    pub(super) fn health_saved(&self) -> HealthSaved {
        HealthSaved {
            faulted: self.health.faulted.clone(),
            swaps: self.health.swaps.iter().map(|s| s.saved.clone()).collect(),
            restarted: self.health.restarted.clone(),
            next_id: self.health.next_id,
        }
    }

    /// Restores the saved state right after the engine is built (before migrations are
    /// recovered and replication starts); may queue events.
    pub(super) fn restore_health(&mut self, saved: HealthSaved) -> Result<(), EngineError> {
        self.health.faulted = saved.faulted;
        self.health.restarted = saved.restarted;
        self.health.next_id = saved.next_id;
        for s in saved.swaps {
            let mut rt = SwapRt {
                saved: s,
                drain_cycle: None,
                generation: 1,
                vms: Vec::new(),
                resync_total: 0,
                within_since: None,
            };
            if rt.saved.phase != SwapPhase::Draining {
                // I/O goes to the replicas again; what is still to copy back is what differs.
                let specs = super::groups_of(self.topology());
                let spec = specs
                    .iter()
                    .find(|g| g.key == rt.saved.group)
                    .ok_or_else(|| EngineError::State {
                        file: "engine.ron".into(),
                        message: format!("array health: no replication group {}", rt.saved.group),
                    })?;
                for id in rt.saved.vms.clone() {
                    let i = self
                        .vm_index(&id)
                        .ok_or_else(|| EngineError::NoSuchVm(id.clone()))?;
                    let mut v = self.swap_vm(i, &spec.pairs)?;
                    let rep = ImageFile::open_read_only(self.vms[i].image.path())?;
                    v.tracked = crate::replica::differing_blocks(&v.primary, &rep)?
                        .into_iter()
                        .collect();
                    rt.vms.push(v);
                }
                rt.resync_total = rt.saved.copied + rt.tracked();
            }
            self.health.swaps.push(rt);
        }
        // Draining and resyncing pairs carry on once replication has started.
        for k in 0..self.health.swaps.len() {
            if self.health.swaps[k].saved.phase != SwapPhase::Swapped {
                self.queue_health(k, self.now);
            }
        }
        Ok(())
    }

    fn queue_health(&mut self, k: usize, at: SimTime) {
        let s = &mut self.health.swaps[k];
        s.generation += 1;
        let ev = Ev::Health {
            swap: SwapId(s.saved.id),
            gen_: s.generation,
        };
        self.schedule(at.max(self.now), ev);
    }

    /// Re-points VM `i`'s I/O to its replica instance (on the pair's replica datastore)
    /// and returns what it needs to come back.
    fn swap_vm(&mut self, i: usize, pairs: &[super::Pair]) -> Result<SwapVm, EngineError> {
        let ds = self.vms[i].datastore.clone();
        let pair = pairs.iter().find(|p| p.datastore == ds).ok_or_else(|| {
            rule(
                format!("VM {}", self.vms[i].id),
                "its datastore is not in the pair",
            )
        })?;
        let replica_dir = self
            .ws
            .datastore_dir(&pair.replica)?
            .join(&self.vms[i].instance);
        let replica = ImageFile::open(&replica_dir.join("disk0.img"))?.without_readahead();
        if replica.block_count() != self.vms[i].blocks {
            return Err(rule(
                format!("VM {}", self.vms[i].id),
                format!(
                    "its replica image on {} holds {} blocks, not {}",
                    pair.replica,
                    replica.block_count(),
                    self.vms[i].blocks
                ),
            ));
        }
        let mut primary = std::mem::replace(&mut self.vms[i].image, replica);
        // The resync's copies are not new changes to replicate.
        primary.set_tracker(None);
        let primary_dir = std::mem::replace(&mut self.vms[i].dir, replica_dir.clone());
        Ok(SwapVm {
            vm: i,
            primary,
            primary_dir,
            replica_dir,
            tracked: BTreeSet::new(),
        })
    }

    fn swap_index(&self, id: u64) -> Option<usize> {
        self.health.swaps.iter().position(|s| s.saved.id == id)
    }

    fn group_index(&self, key: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.spec.key == key)
    }

    /// The VMs (up) living on the group's protected datastores.
    fn group_vms(&self, g: usize) -> Vec<usize> {
        let spec = &self.groups[g].spec;
        (0..self.vms.len())
            .filter(|&i| spec.covers(&self.vms[i].datastore) && !self.vms[i].down)
            .collect()
    }

    /// A storage migration of VM `i` while its group is draining, swapped or resyncing
    /// would copy from the wrong side (its I/O is on the replica): refused, naming why.
    pub(super) fn health_refusal(&mut self, i: usize) -> Option<Outcome> {
        let vm = &self.vms[i];
        let swap = self.health.swaps.iter().find(|s| {
            s.vms.iter().any(|v| v.vm == i)
                || self
                    .group_index(&s.saved.group)
                    .is_some_and(|g| self.groups[g].spec.covers(&vm.datastore))
        })?;
        let msg = format!(
            "VM {} cannot migrate: its replication group {} is {} after a fault of array {} (its I/O is not on its own datastore until the resync completes)",
            vm.id,
            self.group_label(&swap.saved.group),
            swap.saved.phase.as_str(),
            swap.saved.array
        );
        self.push_log(LogLevel::Warning, msg.clone());
        Some(Outcome::Refused(msg))
    }

    /// Why group `g` cannot swap (or keep draining), if it cannot.
    fn cannot_swap(&self, g: usize) -> Option<String> {
        let grp = &self.groups[g];
        if grp.saved.failed_over {
            return Some(format!("group {} has failed over", grp.spec.id));
        }
        for site in [&grp.spec.source_site, &grp.spec.target_site] {
            if self.sites_down.contains_key(site) {
                return Some(format!("site {site} is lost"));
            }
        }
        if !self.link_up {
            return Some(format!(
                "the link to {} is down: the replicas cannot be brought up to date",
                grp.spec.target_site
            ));
        }
        if grp.published.is_none() {
            return Some(format!(
                "group {} has no published recovery point yet",
                grp.spec.id
            ));
        }
        None
    }

    /// The arrays backing a datastore's (local) LUNs.
    fn arrays_of(&self, datastore: &str) -> Vec<String> {
        let t = self.topology();
        let mut out = Vec::new();
        if let Some(ds) = t.datastore(datastore) {
            for l in &ds.luns {
                if let Some((a, _)) = t.lun(l)
                    && !out.contains(&a.id)
                {
                    out.push(a.id.clone());
                }
            }
        }
        out
    }

    fn arrays_label(&self, datastores: impl Iterator<Item = String>) -> String {
        let mut all: Vec<String> = Vec::new();
        for d in datastores {
            for a in self.arrays_of(&d) {
                if !all.contains(&a) {
                    all.push(a);
                }
            }
        }
        all.join("+")
    }

    /// The groups with a protected datastore on `array`.
    fn groups_on_array(&self, array: &str) -> Vec<usize> {
        (0..self.groups.len())
            .filter(|&g| {
                self.groups[g]
                    .spec
                    .pairs
                    .iter()
                    .any(|p| self.arrays_of(&p.datastore).iter().any(|a| a == array))
            })
            .collect()
    }

    /// A queued `Ev::Health` event fell due.
    pub(super) fn on_health_event(&mut self, id: SwapId, gen_: u64) -> Result<(), EngineError> {
        let Some(k) = self.swap_index(id.0) else {
            return Ok(());
        };
        if self.health.swaps[k].generation != gen_ {
            return Ok(());
        }
        match self.health.swaps[k].saved.phase {
            SwapPhase::Draining => self.drain_step(k),
            SwapPhase::Resyncing => self.resync_step(k),
            SwapPhase::Swapped => Ok(()),
        }
    }

    fn check_array(&self, array: &str) -> Result<(), EngineError> {
        if self.topology().arrays.iter().any(|a| a.id == array) {
            Ok(())
        } else {
            Err(rule(
                format!("array {array:?}"),
                "no such array in the topology",
            ))
        }
    }

    /// An array reports a health condition: swap host I/O of its pairs to the healthy side.
    pub(super) fn array_fault(&mut self, array: &str) -> Result<Outcome, EngineError> {
        self.check_array(array)?;
        let refuse = |e: &mut Engine, msg: String| {
            e.push_log(LogLevel::Warning, msg.clone());
            Ok(Outcome::Refused(msg))
        };
        if self.health.faulted.iter().any(|a| a == array) {
            return refuse(self, format!("ArrayFault: {array} is already faulted"));
        }
        let site = self
            .topology()
            .arrays
            .iter()
            .find(|a| a.id == array)
            .map(|a| a.site.clone())
            .unwrap_or_default();
        let groups = self.groups_on_array(array);
        for &g in &groups {
            let id = self.groups[g].spec.id.clone();
            if let Some(why) = self.cannot_swap(g) {
                return refuse(
                    self,
                    format!(
                        "ArrayFault: {array}: the I/O of {id} cannot swap to its replicas: {why}; nothing was changed"
                    ),
                );
            }
            if self.groups[g].saved.paused {
                return refuse(
                    self,
                    format!(
                        "ArrayFault: {array}: replication of {id} is paused; resume it before a swap"
                    ),
                );
            }
            if let Some(&i) = self
                .group_vms(g)
                .iter()
                .find(|&&i| self.vms[i].migration.is_some())
            {
                return refuse(
                    self,
                    format!(
                        "ArrayFault: {array}: VM {} of {id} is migrating; a swap waits for no migration — cancel it or let it finish",
                        self.vms[i].id
                    ),
                );
            }
            if self
                .health
                .swaps
                .iter()
                .any(|s| s.saved.group == self.groups[g].spec.key)
            {
                return refuse(
                    self,
                    format!("ArrayFault: {array}: {id} is still swapped or resyncing"),
                );
            }
        }
        let stretch = self.stretch_array_fault(array)?;
        if groups.is_empty() && stretch.is_empty() {
            let why = if self.topology().site_role(&site) != Some(SiteRole::Protected) {
                format!(
                    "it is at {site}, not a protected site: it holds no protected LUN whose I/O could swap"
                )
            } else {
                "it holds no replicated or distributed LUN: there is no healthy side to swap to"
                    .into()
            };
            return refuse(self, format!("ArrayFault: {array}: {why}"));
        }
        self.health.faulted.push(array.to_string());
        let mut lines = Vec::new();
        for g in groups {
            let id = self.health.next_id + 1;
            self.health.next_id = id;
            self.health.swaps.push(SwapRt {
                saved: SwapSaved {
                    id,
                    group: self.groups[g].spec.key.clone(),
                    array: array.to_string(),
                    phase: SwapPhase::Draining,
                    vms: Vec::new(),
                    faulted_at: self.now,
                    swapped_at: None,
                    copied: 0,
                    early: None,
                },
                drain_cycle: None,
                generation: 0,
                vms: Vec::new(),
                resync_total: 0,
                within_since: None,
            });
            let k = self.health.swaps.len() - 1;
            self.drain_step(k)?;
            lines.push(format!(
                "{}: draining to {}",
                self.groups[g].spec.id,
                self.arrays_label(self.groups[g].spec.pairs.iter().map(|p| p.replica.clone()))
            ));
        }
        lines.extend(stretch);
        // Unreplicated datastores stay on the degraded (still readable) array.
        let stays: Vec<String> = self
            .topology()
            .datastores
            .iter()
            .filter(|d| d.distributed.is_none() && !self.topology().is_replicated(d))
            .filter(|d| self.arrays_of(&d.id).iter().any(|a| a == array))
            .map(|d| d.id.clone())
            .collect();
        if !stays.is_empty() {
            lines.push(format!(
                "{} not replicated: stays on the degraded array",
                stays.join(", ")
            ));
        }
        let msg = format!("Array {array} faulted: {}", lines.join("; "));
        self.push_log(LogLevel::Warning, msg.clone());
        Ok(Outcome::Done(msg))
    }

    /// The array is healthy again: mirror the changes back, then restart replication in
    /// its original direction.
    pub(super) fn array_healthy(&mut self, array: &str) -> Result<Outcome, EngineError> {
        self.check_array(array)?;
        if !self.health.faulted.iter().any(|a| a == array) {
            let msg = format!("ArrayHealthy: {array} is not faulted");
            self.push_log(LogLevel::Warning, msg.clone());
            return Ok(Outcome::Refused(msg));
        }
        if let Some(s) = self
            .health
            .swaps
            .iter()
            .find(|s| s.saved.array == array && s.saved.phase == SwapPhase::Draining)
        {
            let msg = format!(
                "ArrayHealthy: {array}: {} is still draining; mark it healthy once its I/O has swapped",
                self.group_label(&s.saved.group)
            );
            self.push_log(LogLevel::Warning, msg.clone());
            return Ok(Outcome::Refused(msg));
        }
        let stretch = self.stretch_array_healthy(array)?;
        self.health.faulted.retain(|a| a != array);
        let mut lines = Vec::new();
        for k in 0..self.health.swaps.len() {
            if self.health.swaps[k].saved.array != array
                || self.health.swaps[k].saved.phase != SwapPhase::Swapped
            {
                continue;
            }
            let s = &mut self.health.swaps[k];
            s.saved.phase = SwapPhase::Resyncing;
            s.resync_total = s.tracked();
            let n = s.resync_total;
            let label = self.group_label(&self.health.swaps[k].saved.group);
            lines.push(format!("{label}: resyncing {n} block(s) back"));
            self.queue_health(k, self.now);
        }
        lines.extend(stretch);
        let msg = if lines.is_empty() {
            format!("Array {array} healthy")
        } else {
            format!("Array {array} healthy: {}", lines.join("; "))
        };
        self.info(msg.clone());
        Ok(Outcome::Done(msg))
    }

    /// A guest write landed on VM `i`'s image.
    pub(super) fn health_after_write(
        &mut self,
        i: usize,
        block: u64,
        _buf: &Block,
    ) -> Result<(), EngineError> {
        for s in &mut self.health.swaps {
            for v in &mut s.vms {
                if v.vm == i && v.tracked.insert(block) && s.saved.phase == SwapPhase::Resyncing {
                    s.resync_total += 1;
                }
            }
        }
        Ok(())
    }
}

impl SwapRt {
    fn tracked(&self) -> u64 {
        self.vms.iter().map(|v| v.tracked.len() as u64).sum()
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
