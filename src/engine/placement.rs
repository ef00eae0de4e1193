//! Datastore clusters: maintenance mode evacuates a datastore, Balance evens out space use;
//! moves that keep DR protection run at once, the others are recommendations with their
//! ratings that need the operator's override (seed `storage-migration-dr-tags-and-marks.txt`).
//!
//! The planners are pure functions over the topology and the free space (unit-tested on
//! their own); the engine side applies their plans with ordinary `Mirror` migrations, so
//! every move is a real copy that keeps the source complete until the switch-over.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::copy::CopyMode;
use super::sched::VmIx;
use super::{Engine, EngineError, LogLevel, Outcome};
use crate::dr::{self, Fault, Rating};
use crate::topology::Topology;

mod add;
mod initial;
mod plan;
mod views;

pub use initial::{
    MAX_NEW_DISK_MIB, PlacementError, PlacementOption, check_placement_request,
    rank_initial_placement, recommended,
};
use plan::describe_move;
pub use plan::{
    Movable, Move, evacuation_candidates, percent, plan_balance, plan_evacuation, used_bp,
};
pub use views::PlacementView;

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
    /// VMs added to this workspace (New VM), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    added: Vec<String>,
}

/// Runtime state, a field of the engine.
#[derive(Default)]
pub(super) struct PlacementRt {
    maintenance: BTreeSet<String>,
    announced_empty: BTreeSet<String>,
    pending: Vec<SavedRecommendation>,
    added: BTreeSet<String>,
}

// ---------------------------------------------------------------------------------------
// The planners (pure).

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
            added: self.placement.added.iter().cloned().collect(),
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
            added: saved.added.into_iter().collect(),
        };
        Ok(())
    }

    /// A queued `Ev::Placement` event fell due: VM `i`'s migration completed earlier at
    /// this time. If it landed on a datastore in maintenance mode (the move started before
    /// the datastore entered it), it is evacuated again; then emptied datastores are
    /// announced. Runs as its own event so no migration starts inside another's completion.
    pub(super) fn on_placement_event(&mut self, i: usize) -> Result<(), EngineError> {
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

    pub(super) fn capacity_mib(&self, ds: &str) -> u64 {
        let t = self.topology();
        t.datastore(ds)
            .map(|d| t.datastore_capacity_mib(d))
            .unwrap_or(0)
    }

    /// MiB in use on `ds`: every disk on it, migration targets included (as `free_mib`
    /// counts them, without saturating).
    pub(super) fn used_mib(&self, ds: &str) -> u64 {
        let incoming: u64 = self
            .vms
            .iter()
            .filter(|v| v.migration.as_ref().is_some_and(|m| m.rec.to == ds))
            .map(|v| v.blocks * crate::disk::BLOCK_SIZE as u64 / (1024 * 1024))
            .sum();
        self.topology().datastore_used_mib(ds) + incoming
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
            self.schedule(self.now, super::Ev::Placement { vm: VmIx(i) });
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;
