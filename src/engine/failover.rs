//! The recovery manager (SPEC §7): disasters, capacity reservation, test, planned and
//! unplanned failover by protection group, the election, power-on in priority order and
//! verification of every recovered VM.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    Engine, EngineError, LogLevel, MINUTE, Outcome, PublishedPoint, SimTime, format_time, io_err,
    io_err_at, read_ron,
};
use crate::disk::{self, BLOCK_SIZE, Block, BlockContent, Horizon, ImageFile, VmDisk};
use crate::recovery::{self, Election};
use crate::topology::SiteRole;

mod plan;
mod run;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailoverKind {
    Test,
    Planned,
    Unplanned,
}

impl FailoverKind {
    pub const ALL: [FailoverKind; 3] = [
        FailoverKind::Test,
        FailoverKind::Planned,
        FailoverKind::Unplanned,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverKind::Test => "test",
            FailoverKind::Planned => "planned",
            FailoverKind::Unplanned => "unplanned",
        }
    }
}

/// One VM (or unknown uuid) of a failover plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanVm {
    pub election: Election,
    /// Why that instance wins, or what the error means.
    pub reason: String,
    pub priority: Option<u8>,
    /// The recovery-site host reserved for it.
    pub host: Option<String>,
    /// Where the replicated recovery-manager metadata says it lives (may disagree).
    pub metadata_location: Option<String>,
    /// Cut time of the recovery point it would come from.
    pub point_cut_at: Option<SimTime>,
}

/// "Scan replicas": what a failover of these PGs would do, changing nothing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailoverPlan {
    pub protection_groups: Vec<String>,
    pub kind: FailoverKind,
    pub vms: Vec<PlanVm>,
    /// Winners of the election that are not recovered, each with its reason (a VM that
    /// moved out of the PGs in scope and runs elsewhere: its replica instance is older).
    pub left_out: Vec<PlanVm>,
    /// VMs for which no recovery host has room, in priority order.
    pub unplaced: Vec<String>,
    /// Reasons this kind of failover cannot run now.
    pub problems: Vec<String>,
    /// The capacity check host by host: every recovery-site host (what this plan would
    /// reserve on it included), then every protected-site host that is failed or holds HA
    /// reservations for a host fault.
    pub capacity: Vec<HostCapacity>,
}

/// Capacity held on a host for one VM that is not running there yet, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldCapacity {
    pub vm: String,
    pub vcpus: u32,
    pub memory_gib: u32,
    /// "this failover", or "HA restart from <failed host>".
    pub purpose: String,
}

/// One host of a capacity check: what it has, what runs on it, what is spoken for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostCapacity {
    pub host: String,
    pub site: String,
    pub recovery_site: bool,
    /// A protected-site host that failed (its capacity counts for nothing).
    pub failed: bool,
    pub cpus: u32,
    pub memory_gib: u32,
    /// The VMs running on it.
    pub running: Vec<String>,
    pub used_vcpus: u32,
    pub used_memory_gib: u32,
    pub reserved: Vec<HeldCapacity>,
}

impl HeldCapacity {
    /// Held by the plan itself (not by an HA restart).
    pub fn for_this_failover(&self) -> bool {
        self.purpose == PLAN_PURPOSE
    }
}

impl HostCapacity {
    pub fn reserved_vcpus(&self) -> u32 {
        self.reserved.iter().map(|r| r.vcpus).sum()
    }
    pub fn reserved_memory_gib(&self) -> u32 {
        self.reserved.iter().map(|r| r.memory_gib).sum()
    }
    /// What is left: capacity less running VMs less reservations (nothing on a failed host).
    pub fn free_vcpus(&self) -> u32 {
        if self.failed {
            return 0;
        }
        self.cpus
            .saturating_sub(self.used_vcpus + self.reserved_vcpus())
    }
    pub fn free_memory_gib(&self) -> u32 {
        if self.failed {
            return 0;
        }
        self.memory_gib
            .saturating_sub(self.used_memory_gib + self.reserved_memory_gib())
    }
}

/// The purpose of a failover plan's own reservations.
pub const PLAN_PURPOSE: &str = "this failover";

/// The outcome for one VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmResult {
    pub vm: Option<String>,
    pub uuid: String,
    pub recovered: bool,
    pub datastore: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    /// `no-instance`, `ambiguous`, `incomplete`, `not-in-topology`, `no-host` (no recovery
    /// host had room), `moved-out` (the VM lives outside the scope now, at a site that is
    /// up), or an I/O error.
    pub error: Option<String>,
    pub reason: String,
    pub consistent: Option<bool>,
    pub writes_lost: Option<u64>,
    pub achieved_rpo_minutes: Option<f64>,
    pub deleted: Vec<String>,
    /// Cut time of the recovery point the instance came from.
    #[serde(default)]
    pub point_cut_at: Option<SimTime>,
    /// When it was powered on (simulated); a test failover powers nothing on.
    #[serde(default)]
    pub powered_on_at: Option<SimTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailoverState {
    /// Planned: guests stopped, the final cycle is replicating.
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverReport {
    pub id: u64,
    pub kind: FailoverKind,
    pub protection_groups: Vec<String>,
    pub started_at: SimTime,
    pub finished_at: Option<SimTime>,
    pub state: FailoverState,
    pub message: String,
    pub results: Vec<VmResult>,
    /// Test failover: the isolated copies, relative to the workspace (until cleaned up).
    pub test_dir: Option<String>,
    /// The point asked for (SPEC §11): each group recovered from its latest point cut at or
    /// before it; none: the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<SimTime>,
}

/// A recovered VM's new home, persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct RecoveredVm {
    pub site: String,
    pub datastore: String,
    pub instance: String,
    pub host: String,
    pub from_site: String,
    /// S of the recovered images: the last write of the old site in the VM's history.
    pub horizon: u64,
    pub at: SimTime,
    /// Writes of the old site the recovered images did not hold.
    #[serde(default)]
    pub writes_lost: u64,
}

/// One closed stretch of a VM's write history (SPEC §11): its writes at `site` with a seq
/// above `after` and at most `horizon` (the last write the images it left with held).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Hop {
    pub site: String,
    pub after: u64,
    pub horizon: u64,
}

/// A VM's write history across any number of failovers: the hops it left, oldest first,
/// then its writes at its current site with a seq above `since`. Seqs are one sequence for
/// all sites, so a site visited twice keeps its two stretches apart.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(super) struct VmHistory {
    #[serde(default)]
    pub hops: Vec<Hop>,
    #[serde(default)]
    pub since: u64,
    /// Writes the failovers that closed the hops lost: they stay lost.
    #[serde(default)]
    pub writes_lost: u64,
}

impl VmHistory {
    /// The history of a VM recovered before hops were kept: one hop from its old site.
    pub(super) fn of_recovered(r: &RecoveredVm) -> VmHistory {
        VmHistory {
            hops: vec![Hop {
                site: r.from_site.clone(),
                after: 0,
                horizon: r.horizon,
            }],
            since: 0,
            writes_lost: r.writes_lost,
        }
    }

    /// The sites whose journals hold this history, current site last.
    pub(super) fn sites<'a>(&'a self, current: &'a str) -> BTreeSet<&'a str> {
        self.hops
            .iter()
            .map(|h| h.site.as_str())
            .chain([current])
            .collect()
    }
}

/// A planned failover waiting for its final cycles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct PendingFailover {
    pub id: u64,
    pub protection_groups: Vec<String>,
    pub stop_at: SimTime,
    pub groups: Vec<String>,
    pub vms: Vec<String>,
    /// Groups whose cycle was in flight when the guests stopped, with that cycle: it was
    /// cut before the stop (at the same instant at the latest), so it cannot be the final
    /// one — a cycle after it is (a cancelled split's roll-back, say, lands between).
    #[serde(default)]
    pub in_flight: BTreeMap<String, u64>,
}

impl Engine {
    /// Starts a failover; unplanned and test failovers finish at once, a planned one after
    /// its final replication cycles.
    pub(super) fn failover(
        &mut self,
        pgs: Vec<String>,
        kind: FailoverKind,
        point: Option<SimTime>,
    ) -> Result<Outcome, EngineError> {
        let plan = self.scan_failover_at(&pgs, kind, point)?;
        if !plan.problems.is_empty() {
            return Err(EngineError::Failover(plan.problems.join("; ")));
        }
        if !plan.unplaced.is_empty() {
            return Err(EngineError::Failover(format!(
                "not enough capacity at the recovery site for {}; nothing was changed",
                plan.unplaced.join(", ")
            )));
        }
        let id = self.failovers.last().map_or(1, |f| f.id + 1);
        let report = FailoverReport {
            id,
            kind,
            protection_groups: pgs.clone(),
            started_at: self.now,
            finished_at: None,
            state: FailoverState::Running,
            message: String::new(),
            results: Vec::new(),
            test_dir: None,
            point,
        };
        self.failovers.push(report);
        let (protected, _) = self.pg_scope(&pgs)?;
        let in_scope = self.vms_in_scope(&protected);
        let label = pgs.join(", ");
        match kind {
            FailoverKind::Planned => {
                // Only these restart if it fails (a VM down for a host fault stays down).
                let running: Vec<String> = in_scope
                    .iter()
                    .filter(|&&i| !self.vms[i].down)
                    .map(|&i| self.vms[i].id.clone())
                    .collect();
                for &i in &in_scope {
                    self.power_off(i);
                }
                let groups: Vec<usize> = self.groups_in_scope(&protected).collect();
                // Pending before the cuts: a cut that fails stops it (and restarts the VMs).
                self.pending_failover = Some(PendingFailover {
                    id,
                    protection_groups: pgs.clone(),
                    stop_at: self.now,
                    groups: groups
                        .iter()
                        .map(|&g| self.groups[g].spec.key.clone())
                        .collect(),
                    vms: running,
                    in_flight: groups
                        .iter()
                        .filter_map(|&g| {
                            let t = self.groups[g].transfer.as_ref()?;
                            Some((self.groups[g].spec.key.clone(), t.manifest.cycle))
                        })
                        .collect(),
                });
                let msg = format!(
                    "Planned failover #{id} of {label}: {} VM(s) stopped; the final replication cycle is running",
                    in_scope.len()
                );
                self.info(msg.clone());
                self.set_failover_message(id, &msg);
                for g in groups {
                    if self.groups[g].transfer.is_some() {
                        self.groups[g].saved.now_requested = true;
                    } else {
                        self.cut_now(g)?;
                    }
                    if self.pending_failover.as_ref().is_none_or(|p| p.id != id) {
                        break;
                    }
                }
                // Nothing to ship (no group) finishes at once.
                self.after_publish()?;
                let r = self
                    .failovers
                    .iter()
                    .find(|r| r.id == id)
                    .expect("pushed above");
                if r.state == FailoverState::Failed {
                    return Err(EngineError::Failover(r.message.clone()));
                }
                Ok(Outcome::Done(msg))
            }
            FailoverKind::Unplanned | FailoverKind::Test => {
                if kind == FailoverKind::Unplanned {
                    // The protected copies must stop writing, whatever state they are in.
                    for &i in &in_scope {
                        self.power_off(i);
                    }
                }
                let reference = self.now;
                self.run_recovery(id, &pgs, kind, reference, point)?;
                let r = self.failovers.last().expect("pushed above");
                Ok(Outcome::Done(r.message.clone()))
            }
        }
    }

    fn set_failover_message(&mut self, id: u64, msg: &str) {
        if let Some(r) = self.failovers.iter_mut().find(|r| r.id == id) {
            r.message = msg.to_string();
        }
    }

    /// Stops a VM's guest and any migration of it (frozen where it is).
    pub(super) fn power_off(&mut self, i: usize) {
        let vm = &mut self.vms[i];
        vm.down = true;
        vm.guest_gen += 1;
        vm.run_gen += 1;
        vm.waiting.clear();
        if let Some(m) = vm.migration.as_mut() {
            m.run_ends_at = None;
            m.core.in_flight = None;
            m.mirror_pending.clear();
        }
    }

    /// Called after every publish: a planned failover whose final cycles are all published
    /// recovers now.
    pub(super) fn after_publish(&mut self) -> Result<(), EngineError> {
        self.across_after_publish()?;
        let Some(p) = self.pending_failover.clone() else {
            return Ok(());
        };
        let ready = p.groups.iter().all(|key| {
            self.groups
                .iter()
                .find(|g| &g.spec.key == key)
                .and_then(|g| g.published.as_ref())
                .is_some_and(|pt| {
                    pt.cut_at >= p.stop_at && p.in_flight.get(key).is_none_or(|&c| pt.cycle > c)
                })
        });
        if !ready {
            return Ok(());
        }
        self.pending_failover = None;
        self.run_recovery(
            p.id,
            &p.protection_groups,
            FailoverKind::Planned,
            p.stop_at,
            None,
        )
    }

    /// A planned failover stops on any error: the protected VMs restart where they were.
    pub(super) fn fail_pending_failover(&mut self, why: &str) -> Result<(), EngineError> {
        let Some(p) = self.pending_failover.take() else {
            return Ok(());
        };
        let mut restarted = 0;
        for id in &p.vms {
            if let Some(i) = self.vm_index(id)
                && !self.sites_down.contains_key(&self.vms[i].site)
            {
                self.vms[i].down = false;
                self.start_guest(i);
                restarted += 1;
            }
        }
        let msg = format!(
            "Planned failover #{} stopped: {why}; nothing was recovered, {restarted} VM(s) restarted at the protected site",
            p.id
        );
        if let Some(r) = self.failovers.iter_mut().find(|r| r.id == p.id) {
            r.state = FailoverState::Failed;
            r.finished_at = Some(self.now);
            r.message = msg.clone();
        }
        self.push_log(LogLevel::Error, msg);
        self.persist_state()
    }

    /// Removes a test failover's isolated copies.
    pub(super) fn cleanup_test(&mut self) -> Result<Outcome, EngineError> {
        let Some(dir) = self.test_dir.take() else {
            return Err(EngineError::Failover(
                "there is no test failover to clean up".into(),
            ));
        };
        let abs = self.ws.root().join(&dir);
        super::remove_dir_if_exists(&abs)?;
        if let Some(r) = self
            .failovers
            .iter_mut()
            .rev()
            .find(|r| r.test_dir.is_some())
        {
            r.test_dir = None;
        }
        let msg = format!("Test failover cleaned up ({} removed)", dir.display());
        self.info(msg.clone());
        self.persist_state()?;
        Ok(Outcome::Done(msg))
    }

    /// `Disaster(site)`: everything at the site stops at once.
    pub(super) fn disaster(&mut self, site: &str) -> Result<Outcome, EngineError> {
        if self.topology().site(site).is_none() {
            return Err(EngineError::Failover(format!("no site {site:?}")));
        }
        if self.sites_down.contains_key(site) {
            return Ok(Outcome::Done(format!("site {site} is already down")));
        }
        self.sites_down.insert(site.to_string(), self.now);
        let mut stopped = 0;
        let mut frozen = 0;
        for i in 0..self.vms.len() {
            if self.vms[i].site == site && !self.vms[i].down {
                stopped += 1;
                frozen += usize::from(self.vms[i].migration.is_some());
                self.power_off(i);
            }
        }
        let mut abandoned = 0;
        for g in 0..self.groups.len() {
            let s = &self.groups[g].spec;
            if (s.source_site == site || s.target_site == site) && self.groups[g].transfer.is_some()
            {
                abandoned += 1;
                self.abandon_transfer(g, "site lost")?;
            }
            self.groups[g].saved.next_cut = self.groups[g].saved.next_cut.filter(|_| {
                self.groups[g].spec.source_site != site && self.groups[g].spec.target_site != site
            });
        }
        self.fail_pending_failover(&format!("site {site} was lost"))?;
        self.across_after_disaster(site)?;
        let msg = format!(
            "DISASTER: site {site} lost at {}: {stopped} VM(s) stopped, {frozen} migration(s) frozen, {abandoned} transfer(s) abandoned",
            format_time(self.now)
        );
        self.push_log(LogLevel::Error, msg.clone());
        Ok(Outcome::Done(msg))
    }

    /// The failovers run so far, oldest first.
    pub fn failovers(&self) -> &[FailoverReport] {
        &self.failovers
    }

    /// The result for `vm` in the latest failover that considered it.
    pub fn failover_result(&self, vm: &str) -> Option<&VmResult> {
        self.failovers
            .iter()
            .rev()
            .filter(|f| f.state == FailoverState::Done)
            .flat_map(|f| f.results.iter())
            .find(|r| r.vm.as_deref() == Some(vm))
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}
