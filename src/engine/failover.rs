//! The recovery manager (SPEC §7): disasters, capacity reservation, test, planned and
//! unplanned failover by protection group, the election, power-on in priority order and
//! verification of every recovered VM.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    Engine, EngineError, LogLevel, MINUTE, Outcome, SimTime, format_time, io_err, read_ron,
};
use crate::disk::{self, BLOCK_SIZE, Block, BlockContent, Horizon, ImageFile, Journal, VmDisk};
use crate::recovery::{self, Election};
use crate::topology::SiteRole;

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

/// A planned failover waiting for its final cycles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct PendingFailover {
    pub id: u64,
    pub protection_groups: Vec<String>,
    pub stop_at: SimTime,
    pub groups: Vec<String>,
    pub vms: Vec<String>,
}

impl Engine {
    /// The replication groups with a pair on one of the `protected` datastores.
    fn groups_in_scope<'a>(
        &'a self,
        protected: &'a BTreeSet<String>,
    ) -> impl Iterator<Item = usize> + 'a {
        (0..self.groups.len()).filter(move |&g| {
            self.groups[g]
                .spec
                .pairs
                .iter()
                .any(|p| protected.contains(&p.datastore))
        })
    }

    /// The protected datastores of these PGs, and their replicas.
    pub(super) fn pg_scope(
        &self,
        pgs: &[String],
    ) -> Result<(BTreeSet<String>, Vec<String>), EngineError> {
        let t = self.topology();
        if pgs.is_empty() {
            return Err(EngineError::Failover(
                "choose at least one protection group".into(),
            ));
        }
        let mut protected = BTreeSet::new();
        let mut replicas = Vec::new();
        for id in pgs {
            let pg = t
                .protection_group(id)
                .ok_or_else(|| EngineError::Failover(format!("no protection group {id:?}")))?;
            for ds in &pg.datastores {
                protected.insert(ds.clone());
                if let Some(r) = t.datastore(ds).and_then(|d| t.replica_of(d)) {
                    replicas.push(r.id.clone());
                }
            }
        }
        Ok((protected, replicas))
    }

    /// VMs a failover of these datastores moves: not yet recovered, living there now.
    fn vms_in_scope(&self, protected: &BTreeSet<String>) -> Vec<usize> {
        (0..self.vms.len())
            .filter(|&i| {
                self.vms[i].recovered.is_none() && protected.contains(&self.vms[i].datastore)
            })
            .collect()
    }

    /// A host's capacity as it stands: the VMs running on it (recovered ones at the
    /// recovery site) and the HA reservations it holds for a host fault.
    fn host_capacity(&self, h: &crate::topology::Host) -> HostCapacity {
        let t = self.topology();
        let recovery_site = t.site_role(&h.site) == Some(SiteRole::Recovery);
        let running: Vec<&super::VmRt> = self
            .vms
            .iter()
            .filter(|v| {
                v.host == h.id
                    && if recovery_site {
                        v.recovered.is_some()
                    } else {
                        !v.down && v.recovered.is_none()
                    }
            })
            .collect();
        let (used_vcpus, used_memory_gib) = running.iter().fold((0, 0), |(c, m), v| {
            let spec = t.vm(&v.id);
            (
                c + spec.map_or(0, |s| s.vcpus),
                m + spec.map_or(0, |s| s.memory_gib),
            )
        });
        HostCapacity {
            host: h.id.clone(),
            site: h.site.clone(),
            recovery_site,
            failed: self.ha_host_failed(&h.id),
            cpus: h.cpus,
            memory_gib: h.memory_gib,
            running: running.iter().map(|v| v.id.clone()).collect(),
            used_vcpus,
            used_memory_gib,
            reserved: self
                .ha_reservations_on(&h.id)
                .into_iter()
                .map(|r| HeldCapacity {
                    vm: r.vm,
                    vcpus: r.vcpus,
                    memory_gib: r.memory_gib,
                    purpose: format!("HA restart from {}", r.from_host),
                })
                .collect(),
        }
    }

    /// Places `vms` (priority order) on recovery-site hosts with room (capacity less
    /// running VMs less reservations already held): (vm → host), unplaced, and the
    /// capacity check host by host with this plan's reservations added.
    fn reserve(&self, vms: &[usize]) -> (BTreeMap<String, String>, Vec<String>, Vec<HostCapacity>) {
        let t = self.topology();
        let mut recovery: Vec<HostCapacity> = t
            .hosts
            .iter()
            .filter(|h| t.site_role(&h.site) == Some(SiteRole::Recovery))
            .map(|h| self.host_capacity(h))
            .collect();
        let mut order: Vec<usize> = vms.to_vec();
        order.sort_by_key(|&i| {
            let p = t.vm(&self.vms[i].id).map_or(5, |v| v.priority);
            (p, self.vms[i].id.clone())
        });
        let mut placed = BTreeMap::new();
        let mut unplaced = Vec::new();
        for i in order {
            let Some(spec) = t.vm(&self.vms[i].id) else {
                continue;
            };
            match recovery
                .iter_mut()
                .find(|h| h.free_vcpus() >= spec.vcpus && h.free_memory_gib() >= spec.memory_gib)
            {
                Some(h) => {
                    h.reserved.push(HeldCapacity {
                        vm: spec.id.clone(),
                        vcpus: spec.vcpus,
                        memory_gib: spec.memory_gib,
                        purpose: PLAN_PURPOSE.into(),
                    });
                    placed.insert(spec.id.clone(), h.host.clone());
                }
                None => unplaced.push(spec.id.clone()),
            }
        }
        // The protected site's HA reservations, so one table says what is spoken for.
        recovery.extend(
            t.hosts
                .iter()
                .filter(|h| t.site_role(&h.site) == Some(SiteRole::Protected))
                .map(|h| self.host_capacity(h))
                .filter(|c| c.failed || !c.reserved.is_empty()),
        );
        (placed, unplaced, recovery)
    }

    /// "Scan replicas": the election over the PGs' replica datastores, the capacity check,
    /// and what stands in the way of this kind of failover. Changes nothing.
    pub fn scan_failover(
        &self,
        pgs: &[String],
        kind: FailoverKind,
    ) -> Result<FailoverPlan, EngineError> {
        let (protected, replicas) = self.pg_scope(pgs)?;
        let in_scope = self.vms_in_scope(&protected);
        let wanted: BTreeSet<&str> = in_scope.iter().map(|&i| self.vms[i].id.as_str()).collect();
        let elections =
            recovery::scan_and_elect_in(&self.ws, &replicas, |v| wanted.contains(v.id.as_str()))?;
        let t = self.topology();
        // Capacity is reserved for exactly the VMs the election recovers (SPEC §7): every
        // winner that is a topology VM, one that moved out of these PGs after its old
        // instance was replicated included (the replicas decide, not where it lives now),
        // and, while a planned failover has its final cycle to ship, every VM in scope.
        // A winner whose VM lives outside the scope at a site that is up is left out: its
        // live copy is newer than that replica instance, which stays where it is.
        let mut to_place: BTreeSet<usize> = if kind == FailoverKind::Planned {
            in_scope.iter().copied().collect()
        } else {
            BTreeSet::new()
        };
        let mut left_out: BTreeMap<usize, String> = BTreeMap::new();
        for e in &elections {
            let (Some(path), Some(i)) = (
                &e.recover_from,
                e.vm.as_deref().and_then(|id| self.vm_index(id)),
            ) else {
                continue;
            };
            let vm = &self.vms[i];
            if vm.recovered.is_some() || to_place.contains(&i) {
                continue;
            }
            if protected.contains(&vm.datastore) || self.sites_down.contains_key(&vm.site) {
                to_place.insert(i);
            } else {
                left_out.insert(
                    i,
                    format!(
                        "{} lives on {} now, outside {}, and its site {} is up: the instance {path} is an older copy from before it moved; it stays on the replica and is not recovered",
                        vm.id,
                        vm.datastore,
                        pgs.join(", "),
                        vm.site
                    ),
                );
            }
        }
        let to_place: Vec<usize> = to_place.into_iter().collect();
        let (placed, unplaced, capacity) = self.reserve(&to_place);
        let metadata = self.replicated_metadata();
        let mut vms = Vec::new();
        let mut out_of_scope = Vec::new();
        for e in elections {
            let ix = e.vm.as_deref().and_then(|id| self.vm_index(id));
            // A VM recovered earlier is no longer the replicas' to give.
            if ix.is_some_and(|i| self.vms[i].recovered.is_some()) {
                continue;
            }
            let point = e
                .recover_from
                .as_ref()
                .and_then(|_| {
                    e.instances
                        .iter()
                        .find(|c| Some(&c.path) == e.recover_from.as_ref())
                })
                .and_then(|c| self.published_point(&c.datastore))
                .map(|p| p.cut_at);
            let why_out = ix.and_then(|i| left_out.get(&i));
            let pv = PlanVm {
                reason: why_out.cloned().unwrap_or_else(|| recovery::explain(&e)),
                priority: e.vm.as_deref().and_then(|id| t.vm(id)).map(|v| v.priority),
                host: e.vm.as_ref().and_then(|id| placed.get(id).cloned()),
                metadata_location: e.vm.as_ref().and_then(|id| metadata.get(id).cloned()),
                point_cut_at: point,
                election: e,
            };
            if why_out.is_some() {
                out_of_scope.push(pv);
            } else {
                debug_assert!(
                    pv.election.recover_from.is_none()
                        || pv.election.vm.is_none()
                        || pv.host.is_some()
                        || unplaced.contains(pv.election.vm.as_ref().expect("checked")),
                    "every VM the election recovers is placed or listed unplaced: {pv:#?}"
                );
                vms.push(pv);
            }
        }
        vms.sort_by_key(|p| {
            (
                p.priority.unwrap_or(u8::MAX),
                p.election.vm.clone(),
                p.election.uuid.clone(),
            )
        });
        let mut problems = Vec::new();
        let sites: BTreeSet<String> = protected
            .iter()
            .filter_map(|d| t.datastore(d).map(|d| d.site.clone()))
            .collect();
        if let Some(p) = &self.pending_failover {
            problems.push(format!("planned failover #{} is still running", p.id));
        }
        if kind == FailoverKind::Test && self.test_dir.is_some() {
            problems.push("a test failover is still up: clean it up first".into());
        }
        if kind == FailoverKind::Planned {
            for s in &sites {
                if self.sites_down.contains_key(s) {
                    problems.push(format!(
                        "site {s} is down: a planned failover needs the protected site; run an unplanned one"
                    ));
                }
            }
            if !self.link_up {
                problems.push("the link is down: the final replication cycle cannot run".into());
            }
            for &i in &in_scope {
                if let Some(m) = &self.vms[i].migration {
                    problems.push(format!(
                        "VM {} is migrating ({}); cancel it or let it finish first",
                        self.vms[i].id, m.rec.id
                    ));
                }
            }
            for g in self.groups_in_scope(&protected).map(|g| &self.groups[g]) {
                if g.saved.failed_over {
                    problems.push(format!("group {} has already failed over", g.spec.id));
                }
            }
        }
        Ok(FailoverPlan {
            protection_groups: pgs.to_vec(),
            kind,
            vms,
            left_out: out_of_scope,
            unplaced,
            problems,
            capacity,
        })
    }

    /// The recovery-site copy of the location metadata: vm → datastore.
    fn replicated_metadata(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let t = self.topology();
        for s in t.sites.iter().filter(|s| s.role == SiteRole::Recovery) {
            let p = self
                .ws
                .root()
                .join("sites")
                .join(&s.id)
                .join("recovery-manager")
                .join("locations.ron");
            if let Ok(l) = read_ron::<super::Locations>(&p) {
                out.extend(l.vms.into_iter().map(|(k, v)| (k, v.datastore)));
            }
        }
        out
    }

    /// Starts a failover; unplanned and test failovers finish at once, a planned one after
    /// its final replication cycles.
    pub(super) fn failover(
        &mut self,
        pgs: Vec<String>,
        kind: FailoverKind,
    ) -> Result<Outcome, EngineError> {
        let plan = self.scan_failover(&pgs, kind)?;
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
                self.run_recovery(id, &pgs, kind, reference)?;
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
        let Some(p) = self.pending_failover.clone() else {
            return Ok(());
        };
        let ready = p.groups.iter().all(|key| {
            self.groups
                .iter()
                .find(|g| &g.spec.key == key)
                .and_then(|g| g.published.as_ref())
                .is_some_and(|pt| pt.cut_at >= p.stop_at)
        });
        if !ready {
            return Ok(());
        }
        self.pending_failover = None;
        self.run_recovery(p.id, &p.protection_groups, FailoverKind::Planned, p.stop_at)
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

    /// Elects, deletes the losers, verifies, registers and powers on (or, for a test,
    /// copies into an isolated area and verifies there). `reference` is when the
    /// protected copies stopped (for the achieved RPO).
    fn run_recovery(
        &mut self,
        id: u64,
        pgs: &[String],
        kind: FailoverKind,
        reference: SimTime,
    ) -> Result<(), EngineError> {
        // A publish committed but not applied (an I/O error in mid-apply) is the replicas'
        // state: finish it before electing, as the next open would.
        let (protected, _) = self.pg_scope(pgs)?;
        for g in self.groups_in_scope(&protected).collect::<Vec<_>>() {
            if self.groups[g].transfer.is_none()
                && let Some(cycle) = self.finish_committed_publish(g)?
            {
                let group = self.groups[g].spec.id.clone();
                self.info(format!(
                    "Failover #{id}: the committed cycle {cycle} of {group} was applied to its replicas first"
                ));
            }
        }
        let plan = self.scan_failover(pgs, kind)?;
        let t = self.topology().clone();
        let test_dir = (kind == FailoverKind::Test).then(|| {
            let site = t
                .sites
                .iter()
                .find(|s| s.role == SiteRole::Recovery)
                .map_or("recovery".to_string(), |s| s.id.clone());
            PathBuf::from("sites")
                .join(site)
                .join("test-failover")
                .join(format!("f-{id:04}"))
        });
        let mut journals: BTreeMap<String, Journal> = BTreeMap::new();
        let mut results = Vec::new();
        let mut powered = 0;
        for pv in &plan.vms {
            let e = &pv.election;
            let mut res = VmResult {
                vm: e.vm.clone(),
                uuid: e.uuid.clone(),
                recovered: false,
                datastore: None,
                path: e.recover_from.clone(),
                host: pv.host.clone(),
                error: e.error.map(|x| x.as_str().to_string()),
                reason: pv.reason.clone(),
                consistent: None,
                writes_lost: None,
                achieved_rpo_minutes: None,
                deleted: Vec::new(),
            };
            let (Some(path), Some(vm_id)) = (&e.recover_from, &e.vm) else {
                if e.recover_from.is_some() {
                    res.error = Some("not-in-topology".into());
                    res.reason =
                        "an instance of a uuid the topology does not know: left on the replica"
                            .into();
                }
                self.push_log(
                    LogLevel::Error,
                    format!(
                        "Failover #{id}: {} not recovered: {} ({})",
                        e.vm.as_deref().unwrap_or(&e.uuid),
                        res.error.as_deref().unwrap_or("error"),
                        res.reason
                    ),
                );
                results.push(res);
                continue;
            };
            if kind != FailoverKind::Test && pv.host.is_none() {
                // Never powered on without a host (the failover refuses to start with a VM
                // unplaced; capacity can change while a planned one ships its final cycle).
                res.error = Some("no-host".into());
                res.reason =
                    "no recovery-site host has room for it: not recovered, nothing deleted".into();
                self.push_log(
                    LogLevel::Error,
                    format!("Failover #{id}: {vm_id} not recovered: {}", res.reason),
                );
                results.push(res);
                continue;
            }
            let cand = e
                .instances
                .iter()
                .find(|c| &c.path == path)
                .expect("winner listed");
            res.datastore = Some(cand.datastore.clone());
            let i = self.vm_index(vm_id).expect("topology VM");
            let from_site = self.vms[i].site.clone();
            let src_dir = self.ws.root().join(path);
            let dir = match &test_dir {
                Some(td) => {
                    let dst = self.ws.root().join(td).join(vm_id);
                    copy_instance(&src_dir, &dst)?;
                    dst
                }
                None => {
                    for d in &e.delete {
                        self.remove_instance_dir(&self.ws.root().join(d))?;
                        super::fault_point("failover.loser-deleted")?;
                        res.deleted.push(d.clone());
                    }
                    src_dir
                }
            };
            if !journals.contains_key(&from_site) {
                let j = disk::read_journal(&self.ws.journal_path(&from_site))?;
                journals.insert(from_site.clone(), j);
            }
            let uuid = self.vms[i].uuid;
            let img = ImageFile::open_read_only(&dir.join(crate::workspace::FIRST_DISK))?
                .without_readahead();
            let mut reader = img;
            let mut disks = [VmDisk {
                name: vm_id.clone(),
                uuid,
                reader: &mut reader,
            }];
            let check = disk::verify_set(&mut disks, &journals[&from_site], Horizon::FromImages)
                .map_err(io_err(format!("verifying the recovered {vm_id}")))?;
            let v = check.vms.into_iter().next().expect("one disk");
            res.consistent = Some(v.consistent);
            res.writes_lost = Some(v.writes_lost);
            // Measured to when the protected copy stopped: the site's loss, if it was lost.
            let stopped = self
                .sites_down
                .get(&from_site)
                .copied()
                .unwrap_or(reference);
            res.achieved_rpo_minutes = self
                .published_point(&cand.datastore)
                .map(|p| stopped.saturating_sub(p.cut_at) as f64 / MINUTE as f64);
            res.recovered = true;
            if kind != FailoverKind::Test {
                let host = pv.host.clone().expect("checked above: a host is reserved");
                self.power_on_recovered(
                    i,
                    &cand.datastore,
                    &dir,
                    &host,
                    check.horizon_seq,
                    v.writes_lost,
                )?;
                powered += 1;
            }
            self.info(format!(
                "Failover #{id}: {vm_id} {} from {} ({}; {} write(s) lost{})",
                if kind == FailoverKind::Test {
                    "test-recovered"
                } else {
                    "recovered and powered on"
                },
                cand.datastore,
                if v.consistent {
                    "consistent"
                } else {
                    "NOT consistent"
                },
                v.writes_lost,
                res.achieved_rpo_minutes
                    .map(|m| format!(", achieved RPO {m:.1} min"))
                    .unwrap_or_default()
            ));
            results.push(res);
        }
        for pv in &plan.left_out {
            let e = &pv.election;
            let who = e.vm.clone().unwrap_or_else(|| e.uuid.clone());
            self.push_log(
                LogLevel::Warning,
                format!("Failover #{id}: {who} left out: {}", pv.reason),
            );
            results.push(VmResult {
                vm: e.vm.clone(),
                uuid: e.uuid.clone(),
                recovered: false,
                datastore: None,
                path: e.recover_from.clone(),
                host: None,
                error: Some("moved-out".into()),
                reason: pv.reason.clone(),
                consistent: None,
                writes_lost: None,
                achieved_rpo_minutes: None,
                deleted: Vec::new(),
            });
        }
        if kind != FailoverKind::Test {
            for g in self.groups_in_scope(&protected).collect::<Vec<_>>() {
                self.abandon_transfer(g, "failed over")?;
                self.groups[g].saved.failed_over = true;
                self.groups[g].saved.next_cut = None;
            }
        }
        let lost = results.iter().filter(|r| !r.recovered).count();
        let msg = format!(
            "{} failover #{id} of {}: {} recovered{}, {lost} not recovered",
            capitalized(kind.as_str()),
            pgs.join(", "),
            results.len() - lost,
            if kind == FailoverKind::Test {
                " into an isolated copy".to_string()
            } else {
                format!(" ({powered} powered on)")
            },
        );
        let level = if lost > 0 {
            LogLevel::Warning
        } else {
            LogLevel::Info
        };
        self.push_log(level, msg.clone());
        if let Some(r) = self.failovers.iter_mut().find(|r| r.id == id) {
            r.state = FailoverState::Done;
            r.finished_at = Some(self.now);
            r.message = msg;
            r.results = results;
            r.test_dir = test_dir.as_ref().map(|d| d.display().to_string());
        }
        if let Some(td) = test_dir {
            self.test_dir = Some(td);
        }
        self.persist_state()?;
        super::fault_point("failover.state-written")
    }

    /// Registers VM `i` on its recovery-site instance and starts its guest there.
    fn power_on_recovered(
        &mut self,
        i: usize,
        datastore: &str,
        dir: &Path,
        host: &str,
        horizon: u64,
        writes_lost: u64,
    ) -> Result<(), EngineError> {
        let site = self
            .topology()
            .datastore(datastore)
            .map(|d| d.site.clone())
            .unwrap_or_default();
        debug_assert!(
            self.topology().host(host).is_some_and(|h| h.site == site),
            "{} is powered on at {site} on host {host:?}, which is not a host of that site",
            self.vms[i].id
        );
        if let Some(m) = self.vms[i].migration.take() {
            // The protected site's migration is moot now.
            self.remove_record(&m.rec.id)?;
        }
        self.power_off(i);
        let image = ImageFile::open(&dir.join(crate::workspace::FIRST_DISK))?.without_readahead();
        let last_seq = stamps_of(&image, &self.vms[i].uuid)?;
        let instance = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.ensure_site_journal(&site)?;
        let from_site = self.vms[i].site.clone();
        let vm = &mut self.vms[i];
        vm.site = site.clone();
        vm.datastore = datastore.to_string();
        vm.instance = instance.clone();
        vm.dir = dir.to_path_buf();
        vm.image = image;
        vm.host = host.to_string();
        vm.last_seq = last_seq;
        vm.down = false;
        vm.recovered = Some(RecoveredVm {
            site,
            datastore: datastore.to_string(),
            instance,
            host: host.to_string(),
            from_site,
            horizon,
            at: self.now,
            writes_lost,
        });
        self.start_guest(i);
        super::fault_point("failover.powered-on")
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

/// The seq stamped in each block of `img` for `uuid` (0 where none): the guest's view.
pub(super) fn stamps_of(img: &ImageFile, uuid: &disk::RawUuid) -> Result<Vec<u64>, EngineError> {
    let mut out = vec![0; img.block_count() as usize];
    let mut buf: Block = [0; BLOCK_SIZE];
    for (b, slot) in out.iter_mut().enumerate() {
        img.read_block_at(b as u64, &mut buf)
            .map_err(io_err(img.path().display().to_string()))?;
        if let BlockContent::Stamped(s) = disk::inspect(&buf)
            && &s.uuid == uuid
            && s.block == b as u64
        {
            *slot = s.seq;
        }
    }
    Ok(out)
}

/// Copies an instance directory's regular files (sparse images stay sparse where the
/// filesystem's copy allows).
fn copy_instance(from: &Path, to: &Path) -> Result<(), EngineError> {
    std::fs::create_dir_all(to).map_err(io_err(to.display().to_string()))?;
    for entry in std::fs::read_dir(from).map_err(io_err(from.display().to_string()))? {
        let entry = entry.map_err(io_err(from.display().to_string()))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::copy(entry.path(), to.join(entry.file_name()))
                .map_err(io_err(entry.path().display().to_string()))?;
        }
    }
    Ok(())
}
