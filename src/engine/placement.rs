//! Datastore clusters: maintenance mode evacuates a datastore, Balance evens out space use;
//! moves that keep DR protection run at once, the others are recommendations with their
//! ratings that need the operator's override (seed `storage-migration-dr-tags-and-marks.txt`).
//!
//! The planners are pure functions over the topology and the free space (unit-tested on
//! their own); the engine side applies their plans with ordinary `Mirror` migrations, so
//! every move is a real copy that keeps the source complete until the switch-over.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::copy::CopyMode;
use super::{Engine, EngineError, LogLevel, Outcome};
use crate::dr::{self, Fault, Rating};
use crate::topology::Topology;

/// Balance stops once no move lowers the spread (max − min used fraction) by at least this
/// much, in basis points (1 percentage point).
pub const MIN_GAIN_BP: u64 = 100;

/// Why a recommendation was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Purpose {
    /// Evacuating a datastore in maintenance mode.
    Evacuate,
    /// Evening out space use in a cluster.
    Balance,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Evacuate => "evacuate",
            Purpose::Balance => "balance",
        }
    }
}

/// A move waiting for the operator's override (rating above `none`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SavedRecommendation {
    vm: String,
    from: String,
    to: String,
    rating: String,
    fault: Option<String>,
    explanation: String,
    purpose: Purpose,
}

/// What survives a reopen (a field of `state/engine.ron`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct PlacementSaved {
    /// Datastores in maintenance mode, sorted.
    #[serde(default)]
    maintenance: Vec<String>,
    /// Datastores in maintenance mode whose "empty" was already logged.
    #[serde(default)]
    announced_empty: Vec<String>,
    /// Moves waiting for the operator's override.
    #[serde(default)]
    pending: Vec<SavedRecommendation>,
}

/// Runtime state, a field of the engine.
#[derive(Default)]
pub(super) struct PlacementRt {
    maintenance: BTreeSet<String>,
    announced_empty: BTreeSet<String>,
    pending: Vec<SavedRecommendation>,
}

/// One datastore's space and mode, as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatastoreUseView {
    pub id: String,
    pub replicated: bool,
    pub consistency_group: Option<String>,
    pub capacity_mib: u64,
    pub used_mib: u64,
    /// Used fraction in basis points (10000 = full).
    pub used_bp: u64,
    pub in_maintenance: bool,
    /// VMs still living on it (an evacuation's progress).
    pub vms_left: usize,
    /// Of those, VMs being moved off it now.
    pub moving_out: usize,
}

/// A recommended move waiting for the operator's override.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecommendationView {
    pub vm: String,
    pub from: String,
    pub to: String,
    pub rating: Rating,
    pub fault: Option<String>,
    pub explanation: String,
    pub purpose: Purpose,
    /// The override was given and the move is running.
    pub migrating: bool,
}

/// What the console shows (a field of the snapshot): one datastore cluster, or (with
/// `cluster: None`) the datastores in maintenance mode that belong to no cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacementView {
    pub cluster: Option<String>,
    pub name: String,
    pub datastores: Vec<DatastoreUseView>,
    /// max − min used fraction over the datastores not in maintenance, basis points.
    pub spread_bp: u64,
    pub recommendations: Vec<RecommendationView>,
}

// ---------------------------------------------------------------------------------------
// The planners (pure).

/// A VM the planners may move: where it lives and how big its disk is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movable {
    pub vm: String,
    pub from: String,
    pub mib: u64,
}

/// One planned move, rated (SPEC §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub vm: String,
    pub from: String,
    pub to: String,
    pub mib: u64,
    pub rating: Rating,
    pub fault: Option<Fault>,
    pub explanation: String,
}

/// Where each VM of an evacuated datastore goes, and the VMs that fit nowhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvacuationPlan {
    pub moves: Vec<Move>,
    /// (VM, why it has no destination).
    pub stuck: Vec<(String, String)>,
}

/// Balance's moves and the spread before and after all of them (basis points).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BalancePlan {
    pub moves: Vec<Move>,
    pub before_bp: u64,
    pub after_bp: u64,
}

/// Where VMs of datastore `from` may go: the other datastores of its cluster, or (in no
/// cluster) every other protected-site datastore that can take a VM; never a datastore in
/// `unavailable` (maintenance mode). Topology order.
pub fn evacuation_candidates(
    t: &Topology,
    from: &str,
    unavailable: &BTreeSet<String>,
) -> Vec<String> {
    let usable = |id: &str| {
        id != from
            && !unavailable.contains(id)
            && t.datastore(id).is_some_and(|d| {
                d.distributed.as_ref().is_none_or(|x| x.created) && dr::impact(t, from, id).is_ok()
            })
    };
    match t.cluster_of(from) {
        Some(c) => c.datastores.iter().filter(|d| usable(d)).cloned().collect(),
        None => t
            .datastores
            .iter()
            .filter(|d| t.is_protected_datastore(d) && usable(&d.id))
            .map(|d| d.id.clone())
            .collect(),
    }
}

fn rated(t: &Topology, m: &Movable, to: &str) -> Option<Move> {
    let i = dr::impact(t, &m.from, to).ok()?;
    Some(Move {
        vm: m.vm.clone(),
        from: m.from.clone(),
        to: to.to_string(),
        mib: m.mib,
        rating: i.rating,
        fault: i.fault,
        explanation: i.explanation,
    })
}

/// Plans the evacuation of datastore `from`: for each VM (largest first, then by id), the
/// candidate with rating `none` (same CG, or non-replicated to non-replicated) if one has
/// room, else the lowest rating, then the most free space, then the first in topology
/// order. `free` is each candidate's free MiB; planned moves use it up.
pub fn plan_evacuation(
    t: &Topology,
    from: &str,
    vms: &[Movable],
    unavailable: &BTreeSet<String>,
    free: &BTreeMap<String, u64>,
) -> EvacuationPlan {
    let candidates = evacuation_candidates(t, from, unavailable);
    let mut free = free.clone();
    let mut order: Vec<&Movable> = vms.iter().collect();
    order.sort_by(|a, b| b.mib.cmp(&a.mib).then_with(|| a.vm.cmp(&b.vm)));
    let mut plan = EvacuationPlan::default();
    for m in order {
        let best = candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| free.get(*c).copied().unwrap_or(0) >= m.mib)
            .filter_map(|(k, c)| rated(t, m, c).map(|mv| (k, mv)))
            .min_by(|(ka, a), (kb, b)| {
                a.rating
                    .cmp(&b.rating)
                    .then_with(|| free[&b.to].cmp(&free[&a.to]))
                    .then_with(|| ka.cmp(kb))
            });
        match best {
            Some((_, mv)) => {
                *free.get_mut(&mv.to).expect("a candidate with room") -= m.mib;
                plan.moves.push(mv);
            }
            None => {
                let scope = match t.cluster_of(from) {
                    Some(c) => format!("in cluster {}", c.id),
                    None => "at the protected site".to_string(),
                };
                let why = if candidates.is_empty() {
                    format!(
                        "no other datastore {scope} can take VMs (all in maintenance mode or none at all)"
                    )
                } else {
                    let most = candidates
                        .iter()
                        .map(|c| (free.get(c).copied().unwrap_or(0), c))
                        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)))
                        .expect("not empty");
                    format!(
                        "no datastore {scope} has {} MiB free (the most is {} MiB on {})",
                        m.mib, most.0, most.1
                    )
                };
                plan.stuck.push((m.vm.clone(), why));
            }
        }
    }
    plan
}

/// Used fraction in basis points.
pub fn used_bp(used: u64, capacity: u64) -> u64 {
    if capacity == 0 {
        return if used == 0 { 0 } else { 10_000 };
    }
    used.saturating_mul(10_000) / capacity
}

/// max − min used fraction (basis points) over `datastores`.
fn spread(
    datastores: &[String],
    used: &BTreeMap<String, u64>,
    capacity: &BTreeMap<String, u64>,
) -> u64 {
    let fr: Vec<u64> = datastores
        .iter()
        .map(|d| used_bp(used[d], capacity[d]))
        .collect();
    match (fr.iter().max(), fr.iter().min()) {
        (Some(a), Some(b)) => a - b,
        _ => 0,
    }
}

/// Plans Balance on `datastores` (a cluster's, without those in maintenance): greedily,
/// while some move of a VM not yet moved lowers the spread by at least [`MIN_GAIN_BP`],
/// take the lowest-rated such move (a move that keeps DR protection beats one across CGs),
/// then the one leaving the smallest spread, then by VM and destination. `used` and
/// `capacity` hold every listed datastore (MiB); `vms` are the VMs that may move.
pub fn plan_balance(
    t: &Topology,
    datastores: &[String],
    vms: &[Movable],
    used: &BTreeMap<String, u64>,
    capacity: &BTreeMap<String, u64>,
) -> BalancePlan {
    let mut used = used.clone();
    let before = spread(datastores, &used, capacity);
    let mut current = before;
    let mut moved: BTreeSet<&str> = BTreeSet::new();
    let mut where_: BTreeMap<&str, String> = vms
        .iter()
        .map(|m| (m.vm.as_str(), m.from.clone()))
        .collect();
    let mut plan = BalancePlan {
        before_bp: before,
        ..BalancePlan::default()
    };
    loop {
        let mut best: Option<(Rating, u64, Move)> = None;
        for m in vms.iter().filter(|m| !moved.contains(m.vm.as_str())) {
            let from = &where_[m.vm.as_str()];
            if !datastores.contains(from) {
                continue;
            }
            for to in datastores.iter().filter(|d| *d != from) {
                if used[to] + m.mib > capacity[to] {
                    continue;
                }
                let mut after = used.clone();
                *after.get_mut(from).expect("listed") -= m.mib.min(after[from]);
                *after.get_mut(to).expect("listed") += m.mib;
                let s = spread(datastores, &after, capacity);
                if s + MIN_GAIN_BP > current {
                    continue;
                }
                let Some(mv) = rated(t, m, to) else { continue };
                let key = (mv.rating, s);
                let better = match &best {
                    None => true,
                    Some((r, bs, b)) => {
                        key < (*r, *bs) || (key == (*r, *bs) && (&mv.vm, &mv.to) < (&b.vm, &b.to))
                    }
                };
                if better {
                    best = Some((mv.rating, s, mv));
                }
            }
        }
        let Some((_, s, mv)) = best else { break };
        let from = where_[mv.vm.as_str()].clone();
        *used.get_mut(&from).expect("listed") -= mv.mib.min(used[&from]);
        *used.get_mut(&mv.to).expect("listed") += mv.mib;
        current = s;
        let vm = vms
            .iter()
            .find(|m| m.vm == mv.vm)
            .map(|m| m.vm.as_str())
            .expect("planned from vms");
        moved.insert(vm);
        where_.insert(vm, mv.to.clone());
        plan.moves.push(mv);
    }
    plan.after_bp = current;
    plan
}

/// "12.5%" from basis points.
pub fn percent(bp: u64) -> String {
    format!("{}.{}%", bp / 100, (bp % 100) / 10)
}

fn describe_move(m: &Move) -> String {
    match m.fault {
        Some(f) => format!("{} {} ▶ {} ({}, {f})", m.vm, m.from, m.to, m.rating),
        None => format!("{} {} ▶ {} ({})", m.vm, m.from, m.to, m.rating),
    }
}

// ---------------------------------------------------------------------------------------
// The engine side.

/// What applying a plan did.
#[derive(Default)]
struct Applied {
    started: Vec<String>,
    pending: Vec<String>,
    failed: Vec<String>,
}

/// One datastore's use, as the views count it.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    /// MiB of the disks on it plus those of migrations coming in.
    used: u64,
    /// VMs living on it.
    vms: usize,
    /// Of those, VMs migrating (off it).
    moving_out: usize,
}

impl Engine {
    /// Saved with the engine state.
    pub(super) fn placement_saved(&self) -> PlacementSaved {
        PlacementSaved {
            maintenance: self.placement.maintenance.iter().cloned().collect(),
            announced_empty: self.placement.announced_empty.iter().cloned().collect(),
            pending: self.placement.pending.clone(),
        }
    }

    /// Restores the saved state right after the engine is built (before migrations are
    /// recovered and replication starts); may queue events.
    pub(super) fn restore_placement(&mut self, saved: PlacementSaved) -> Result<(), EngineError> {
        for r in &saved.pending {
            if Rating::parse(&r.rating).is_none() {
                return Err(EngineError::State {
                    file: "state/engine.ron".into(),
                    message: format!(
                        "placement: recommendation for {} has an unknown rating {:?}",
                        r.vm, r.rating
                    ),
                });
            }
        }
        self.placement = PlacementRt {
            maintenance: saved.maintenance.into_iter().collect(),
            announced_empty: saved.announced_empty.into_iter().collect(),
            pending: saved.pending,
        };
        Ok(())
    }

    /// A queued `Ev::Placement` event fell due: VM `i`'s migration completed earlier at
    /// this time. If it landed on a datastore in maintenance mode (the move started before
    /// the datastore entered it), it is evacuated again; then emptied datastores are
    /// announced. Runs as its own event so no migration starts inside another's completion.
    pub(super) fn on_placement_event(&mut self, i: usize, _gen: u64) -> Result<(), EngineError> {
        let Some(v) = self.vms.get(i) else {
            return Ok(());
        };
        let ds = v.datastore.clone();
        if self.placement.maintenance.contains(&ds) && v.migration.is_none() && !v.down {
            let vm = v.id.clone();
            self.placement.announced_empty.remove(&ds);
            self.info(format!(
                "{vm} arrived on {ds}, which is in maintenance mode: evacuating it again"
            ));
            let _ = self.evacuate(&ds, false);
        }
        self.announce_empty();
        self.persist_state()
    }

    /// Is datastore `ds` in maintenance mode?
    pub fn in_maintenance(&self, ds: &str) -> bool {
        self.placement.maintenance.contains(ds)
    }

    /// `migrate` refuses a destination in maintenance mode (logged as a warning).
    pub(super) fn placement_refusal(&mut self, vm: &str, to: &str) -> Option<Outcome> {
        if !self.in_maintenance(to) {
            return None;
        }
        let msg = format!(
            "Migration of {vm} to {to} refused: {to} is in maintenance mode, no VM may be placed on it until it exits maintenance mode"
        );
        self.push_log(LogLevel::Warning, msg.clone());
        Some(Outcome::Refused(msg))
    }

    fn capacity_mib(&self, ds: &str) -> u64 {
        let t = self.topology();
        t.datastore(ds)
            .map(|d| t.datastore_luns(d).map(|l| l.capacity_gib * 1024).sum())
            .unwrap_or(0)
    }

    /// MiB in use on `ds`: every disk on it, migration targets included (as `free_mib`
    /// counts them, without saturating).
    fn used_mib(&self, ds: &str) -> u64 {
        let mib = |blocks: u64| blocks * crate::disk::BLOCK_SIZE as u64 / (1024 * 1024);
        let on: u64 = self
            .topology()
            .vms
            .iter()
            .filter(|v| v.datastore == ds)
            .map(|v| v.disk_mib)
            .sum();
        let incoming: u64 = self
            .vms
            .iter()
            .filter(|v| v.migration.as_ref().is_some_and(|m| m.rec.to == ds))
            .map(|v| mib(v.blocks))
            .sum();
        on + incoming
    }

    /// VMs living on `ds` (down or not), in topology order.
    fn vms_on(&self, ds: &str) -> Vec<usize> {
        (0..self.vms.len())
            .filter(|&i| self.vms[i].datastore == ds)
            .collect()
    }

    /// VMs on `ds` the planners may move: up, not migrating, not recovered elsewhere.
    fn movables_on(&self, ds: &str) -> Vec<Movable> {
        self.vms_on(ds)
            .into_iter()
            .filter(|&i| {
                let v = &self.vms[i];
                !v.down && v.migration.is_none() && v.recovered.is_none()
            })
            .map(|i| Movable {
                vm: self.vms[i].id.clone(),
                from: ds.to_string(),
                mib: self.vms[i].blocks * crate::disk::BLOCK_SIZE as u64 / (1024 * 1024),
            })
            .collect()
    }

    fn check_datastore(&self, ds: &str) -> Result<(), EngineError> {
        let t = self.topology();
        let d = t
            .datastore(ds)
            .ok_or_else(|| EngineError::NoSuchDatastore(ds.into()))?;
        if !t.is_protected_datastore(d) {
            return Err(EngineError::Rule {
                object: format!("datastore {ds:?}"),
                rule: format!(
                    "is at site {:?}, not a protected site; only datastores where VMs run have a maintenance mode",
                    d.site
                ),
            });
        }
        Ok(())
    }

    /// Starts the `none`-rated moves (and, with `confirm`, the others); the rest become
    /// pending recommendations of `purpose`.
    fn apply_moves(&mut self, moves: &[Move], confirm: bool, purpose: Purpose) -> Applied {
        let mut out = Applied::default();
        for m in moves {
            if m.rating > Rating::None && !confirm {
                self.placement.pending.retain(|r| r.vm != m.vm);
                self.placement.pending.push(SavedRecommendation {
                    vm: m.vm.clone(),
                    from: m.from.clone(),
                    to: m.to.clone(),
                    rating: m.rating.as_str().into(),
                    fault: m.fault.map(|f| f.as_str().to_string()),
                    explanation: m.explanation.clone(),
                    purpose,
                });
                out.pending.push(describe_move(m));
                continue;
            }
            match self.migrate(&m.vm, &m.to, CopyMode::Mirror, m.rating > Rating::None) {
                Ok(Outcome::Done(_)) => {
                    self.placement.pending.retain(|r| r.vm != m.vm);
                    out.started.push(describe_move(m));
                }
                Ok(Outcome::Refused(msg)) => out.failed.push(msg),
                Err(e) => {
                    let msg = format!("{}: {e}", m.vm);
                    self.push_log(LogLevel::Error, format!("Placement: move of {msg}"));
                    out.failed.push(msg);
                }
            }
        }
        out
    }

    /// Plans and applies the evacuation of `ds` (in maintenance mode).
    fn evacuate(&mut self, ds: &str, confirm: bool) -> (Applied, Vec<String>) {
        let movables = self.movables_on(ds);
        let candidates = evacuation_candidates(self.topology(), ds, &self.placement.maintenance);
        let free: BTreeMap<String, u64> = candidates
            .iter()
            .map(|c| (c.clone(), self.free_mib(c)))
            .collect();
        let plan = plan_evacuation(
            self.topology(),
            ds,
            &movables,
            &self.placement.maintenance,
            &free,
        );
        // The VMs now planned get fresh recommendations; stale ones from this datastore go.
        self.placement
            .pending
            .retain(|r| !(r.purpose == Purpose::Evacuate && r.from == ds));
        let applied = self.apply_moves(&plan.moves, confirm, Purpose::Evacuate);
        let mut stuck = Vec::new();
        for (vm, why) in plan.stuck {
            self.push_log(
                LogLevel::Warning,
                format!("Maintenance of {ds}: {vm} has no destination: {why}"),
            );
            stuck.push(format!("{vm} ({why})"));
        }
        for i in self.vms_on(ds) {
            if self.vms[i].down {
                stuck.push(format!("{} (down: its site is lost)", self.vms[i].id));
            }
        }
        (applied, stuck)
    }

    /// Logs "in maintenance mode and empty" once per datastore that got there.
    fn announce_empty(&mut self) {
        let done: Vec<String> = self
            .placement
            .maintenance
            .iter()
            .filter(|d| !self.placement.announced_empty.contains(*d) && self.vms_on(d).is_empty())
            .cloned()
            .collect();
        for d in done {
            self.info(format!("{d} is in maintenance mode and empty"));
            self.placement.announced_empty.insert(d);
        }
    }

    /// Puts a datastore in maintenance mode and evacuates it.
    pub(super) fn enter_maintenance(
        &mut self,
        datastore: &str,
        confirm: bool,
    ) -> Result<Outcome, EngineError> {
        self.check_datastore(datastore)?;
        let ds = datastore;
        if self.placement.maintenance.insert(ds.to_string()) {
            self.info(format!(
                "{ds} enters maintenance mode: no new VM may be placed on it; evacuating its VMs"
            ));
        }
        let (applied, stuck) = self.evacuate(ds, confirm);
        self.announce_empty();
        let left = self.vms_on(ds).len();
        let mut parts = Vec::new();
        if !applied.started.is_empty() {
            parts.push(format!("moving {}", applied.started.join(", ")));
        }
        let migrating = self
            .vms_on(ds)
            .into_iter()
            .filter(|&i| self.vms[i].migration.is_some())
            .count();
        if applied.started.is_empty() && migrating > 0 {
            parts.push(format!("{migrating} VM(s) already moving off it"));
        }
        if !applied.pending.is_empty() {
            parts.push(format!(
                "needs the operator's override: {}",
                applied.pending.join(", ")
            ));
        }
        if !applied.failed.is_empty() {
            parts.push(format!("could not start: {}", applied.failed.join("; ")));
        }
        if !stuck.is_empty() {
            parts.push(format!("no destination for {}", stuck.join(", ")));
        }
        let msg = if left == 0 {
            format!("{ds} is in maintenance mode and empty")
        } else {
            format!(
                "{ds} is in maintenance mode, {left} VM(s) on it: {}",
                parts.join("; ")
            )
        };
        if !applied.pending.is_empty() {
            self.push_log(LogLevel::Warning, msg.clone());
            Ok(Outcome::Refused(msg))
        } else {
            if left > 0 {
                self.info(msg.clone());
            }
            Ok(Outcome::Done(msg))
        }
    }

    /// Takes a datastore out of maintenance mode.
    pub(super) fn exit_maintenance(&mut self, datastore: &str) -> Result<Outcome, EngineError> {
        self.check_datastore(datastore)?;
        let ds = datastore;
        if !self.placement.maintenance.remove(ds) {
            return Err(EngineError::Rule {
                object: format!("datastore {ds:?}"),
                rule: "is not in maintenance mode".into(),
            });
        }
        self.placement.announced_empty.remove(ds);
        let dropped = self.placement.pending.len();
        self.placement
            .pending
            .retain(|r| !(r.purpose == Purpose::Evacuate && r.from == ds));
        let dropped = dropped - self.placement.pending.len();
        let left = self.vms_on(ds).len();
        let mut msg = format!("{ds} exits maintenance mode ({left} VM(s) on it)");
        if dropped > 0 {
            msg += &format!("; {dropped} evacuation recommendation(s) withdrawn");
        }
        self.info(msg.clone());
        Ok(Outcome::Done(msg))
    }

    /// Recommends (and with `confirm`, starts) moves that even out space use in a cluster.
    pub(super) fn balance(&mut self, cluster: &str, confirm: bool) -> Result<Outcome, EngineError> {
        let c = self
            .topology()
            .datastore_cluster(cluster)
            .cloned()
            .ok_or_else(|| EngineError::Rule {
                object: format!("datastore cluster {cluster:?}"),
                rule: "does not exist in the topology".into(),
            })?;
        let datastores: Vec<String> = c
            .datastores
            .iter()
            .filter(|d| !self.placement.maintenance.contains(*d))
            .cloned()
            .collect();
        if datastores.len() < 2 {
            return Err(EngineError::Rule {
                object: format!("datastore cluster {cluster:?}"),
                rule: "Balance needs at least two datastores that are not in maintenance mode"
                    .into(),
            });
        }
        let used: BTreeMap<String, u64> = datastores
            .iter()
            .map(|d| (d.clone(), self.used_mib(d)))
            .collect();
        let capacity: BTreeMap<String, u64> = datastores
            .iter()
            .map(|d| (d.clone(), self.capacity_mib(d)))
            .collect();
        let vms: Vec<Movable> = datastores
            .iter()
            .flat_map(|d| self.movables_on(d))
            .collect();
        let plan = plan_balance(self.topology(), &datastores, &vms, &used, &capacity);
        self.placement
            .pending
            .retain(|r| !(r.purpose == Purpose::Balance && datastores.contains(&r.from)));
        if plan.moves.is_empty() {
            let msg = format!(
                "Balance of {cluster}: spread {} already; no move lowers it by {} or more",
                percent(plan.before_bp),
                percent(MIN_GAIN_BP)
            );
            self.info(msg.clone());
            return Ok(Outcome::Done(msg));
        }
        let applied = self.apply_moves(&plan.moves, confirm, Purpose::Balance);
        let mut msg = format!(
            "Balance of {cluster}: spread {} ▶ {} once every move is done",
            percent(plan.before_bp),
            percent(plan.after_bp)
        );
        if !applied.started.is_empty() {
            msg += &format!("; moving {}", applied.started.join(", "));
        }
        if !applied.pending.is_empty() {
            msg += &format!(
                "; needs the operator's override: {}",
                applied.pending.join(", ")
            );
        }
        if !applied.failed.is_empty() {
            msg += &format!("; could not start: {}", applied.failed.join("; "));
        }
        if applied.pending.is_empty() {
            self.info(msg.clone());
            Ok(Outcome::Done(msg))
        } else {
            self.push_log(LogLevel::Warning, msg.clone());
            Ok(Outcome::Refused(msg))
        }
    }

    /// VM `i`'s migration ended (completed or cancelled).
    pub(super) fn placement_migration_ended(
        &mut self,
        i: usize,
        completed: bool,
    ) -> Result<(), EngineError> {
        if completed {
            let vm = self.vms[i].id.clone();
            let before = self.placement.pending.len();
            self.placement.pending.retain(|r| r.vm != vm);
            if self.placement.pending.len() != before {
                self.persist_state()?;
            }
        }
        if !self.placement.maintenance.is_empty() {
            // Follow up at once, but outside this migration's completion.
            self.queue
                .push(Reverse((self.now, super::Ev::Placement, i, 0)));
        }
        Ok(())
    }

    /// `Expect(InMaintenance(datastore))`: in maintenance mode and holding no VM.
    pub fn expect_in_maintenance(&self, datastore: &str) -> (bool, String) {
        if self.topology().datastore(datastore).is_none() {
            return (false, format!("datastore {datastore:?} does not exist"));
        }
        let on: Vec<String> = self
            .vms_on(datastore)
            .into_iter()
            .map(|i| self.vms[i].id.clone())
            .collect();
        match (self.in_maintenance(datastore), on.is_empty()) {
            (true, true) => (
                true,
                format!("{datastore} is in maintenance mode and empty"),
            ),
            (true, false) => (
                false,
                format!(
                    "{datastore} is in maintenance mode but still holds {}",
                    on.join(", ")
                ),
            ),
            (false, _) => (false, format!("{datastore} is not in maintenance mode")),
        }
    }

    /// The snapshot's view.
    pub(super) fn placement_views(&self) -> Vec<PlacementView> {
        let t = self.topology();
        let mut out = Vec::new();
        let mut groups: Vec<(Option<String>, String, Vec<String>)> = t
            .datastore_clusters
            .iter()
            .map(|c| (Some(c.id.clone()), c.name.clone(), c.datastores.clone()))
            .collect();
        let loose: Vec<String> = self
            .placement
            .maintenance
            .iter()
            .filter(|d| t.cluster_of(d).is_none())
            .cloned()
            .collect();
        let loose_recs = self
            .placement
            .pending
            .iter()
            .any(|r| t.cluster_of(&r.from).is_none());
        if !loose.is_empty() || loose_recs {
            groups.push((None, "Not in a cluster".into(), loose));
        }
        if groups.is_empty() {
            return out;
        }
        // Every snapshot builds this: one pass over the VMs for every datastore's use (as
        // `used_mib` and `vms_on` count it), not one pass per datastore.
        let mib = |blocks: u64| blocks * crate::disk::BLOCK_SIZE as u64 / (1024 * 1024);
        let mut usage: HashMap<&str, Usage> = HashMap::new();
        for v in &t.vms {
            usage.entry(v.datastore.as_str()).or_default().used += v.disk_mib;
        }
        for v in &self.vms {
            let on = usage.entry(v.datastore.as_str()).or_default();
            on.vms += 1;
            on.moving_out += usize::from(v.migration.is_some());
            if let Some(m) = &v.migration {
                usage.entry(m.rec.to.as_str()).or_default().used += mib(v.blocks);
            }
        }
        for (cluster, name, members) in groups {
            let datastores: Vec<DatastoreUseView> = members
                .iter()
                .filter_map(|d| t.datastore(d))
                .map(|d| {
                    let tags = dr::tags_of(t, d);
                    let capacity = self.capacity_mib(&d.id);
                    let on = usage.get(d.id.as_str()).copied().unwrap_or_default();
                    let used = on.used;
                    DatastoreUseView {
                        id: d.id.clone(),
                        replicated: tags.replicated,
                        consistency_group: tags.consistency_group,
                        capacity_mib: capacity,
                        used_mib: used,
                        used_bp: used_bp(used, capacity),
                        in_maintenance: self.in_maintenance(&d.id),
                        vms_left: on.vms,
                        moving_out: on.moving_out,
                    }
                })
                .collect();
            let active: Vec<u64> = datastores
                .iter()
                .filter(|d| !d.in_maintenance)
                .map(|d| d.used_bp)
                .collect();
            let spread_bp = match (active.iter().max(), active.iter().min()) {
                (Some(a), Some(b)) => a - b,
                _ => 0,
            };
            let recommendations = self
                .placement
                .pending
                .iter()
                .filter(|r| t.cluster_of(&r.from).map(|c| c.id.clone()) == cluster)
                .map(|r| RecommendationView {
                    vm: r.vm.clone(),
                    from: r.from.clone(),
                    to: r.to.clone(),
                    rating: Rating::parse(&r.rating).unwrap_or(Rating::HeightenedSevere),
                    fault: r.fault.clone(),
                    explanation: r.explanation.clone(),
                    purpose: r.purpose,
                    migrating: self.vm_index(&r.vm).is_some_and(|i| {
                        self.vms[i]
                            .migration
                            .as_ref()
                            .is_some_and(|m| m.rec.to == r.to)
                    }),
                })
                .collect();
            out.push(PlacementView {
                cluster,
                name,
                datastores,
                spread_bp,
                recommendations,
            });
        }
        out
    }
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;
