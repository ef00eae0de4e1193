//! The failover panel: choose protection groups and a kind, "Scan replicas" (the worker
//! asks the engine what a failover would do, changing nothing), read the plan — each VM's
//! instances on the replicas with their migration marks, which one wins and why or the
//! error, the reserved recovery host, what the replicated metadata says, the capacity check
//! and whatever stands in the way — then Run (confirmed first for planned and unplanned)
//! and read each VM's result with its verification badges. A test failover's isolated
//! copies are cleaned up from here too.

mod confirm;
mod panel;
mod plan;
mod results;

use std::collections::BTreeSet;

use super::live::Live;
// The moved sections name these as `super::…`.
use super::Action;
use super::{capacity_table, live, replication};
use crate::engine::{FailoverKind, FailoverPlan, FailoverState, GroupView, SimTime, Snapshot};
use crate::topology::Topology;

/// The buttons' texts (also their accessible names).
pub const SCAN: &str = "Scan replicas";
pub const RUN: &str = "Run failover";
pub const CLEANUP: &str = "Clean up test failover";
/// The accessible name of the recovery point picker.
pub const POINT: &str = "Recovery point";

/// The button that asks to reprotect `pg` (also its accessible name).
pub fn reprotect_button(pg: &str) -> String {
    format!("Reprotect {pg}…")
}

/// The button that asks to fail `pg` back (also its accessible name).
pub fn failback_button(pg: &str) -> String {
    format!("Fail back {pg}…")
}

/// The confirm button of the reprotect confirmation for `pg`.
pub fn reprotect_confirm(pg: &str) -> String {
    format!("Reprotect {pg}")
}

/// The confirm button of the run confirmation for `kind`.
pub fn run_confirm(kind: FailoverKind) -> String {
    format!("Run {} failover", kind.as_str())
}

/// A scan asked for and not answered yet, with what the console knew when it asked.
struct PendingScan {
    id: u64,
    protection_groups: Vec<String>,
    kind: FailoverKind,
    point: Option<SimTime>,
    failover_id: Option<u64>,
    sites_down: Vec<String>,
}

/// The answer to a scan.
pub struct Scan {
    pub id: u64,
    pub protection_groups: Vec<String>,
    pub kind: FailoverKind,
    /// The point in time it recovers (`None`: each group's latest point).
    pub point: Option<SimTime>,
    /// The simulated time the replicas were scanned at.
    pub at: SimTime,
    pub result: Result<FailoverPlan, String>,
    /// The latest failover and the lost sites when it was asked for: the plan is stale
    /// once either changes.
    failover_id: Option<u64>,
    sites_down: Vec<String>,
}

pub struct FailoverPanel {
    /// The protection groups ticked.
    pub selected: BTreeSet<String>,
    pub kind: FailoverKind,
    /// Recover from each group's latest retained point cut at or before this time
    /// (`None`: the latest point; SPEC §11 points in time).
    pub point: Option<SimTime>,
    next_id: u64,
    pending: Option<PendingScan>,
    pub scan: Option<Scan>,
    /// The run confirmation (planned and unplanned) is open.
    pub confirming: bool,
    /// The protection group whose reprotect confirmation is open.
    pub reprotecting: Option<String>,
    /// Open the run confirmation once the scan asked for comes back clean (a failback).
    confirm_after_scan: bool,
    /// Buttons to press on the next frame, as clicks would (the demo player's hooks).
    press: Press,
    /// The protected sites down at the last update ([`FailoverPanel::follow_sites`]).
    protected_down: Vec<String>,
}

/// The buttons [`FailoverPanel`] presses on the next frame if they are enabled then.
#[derive(Debug, Default, Clone, Copy)]
struct Press {
    scan: bool,
    run: bool,
    confirm: bool,
}

impl Default for FailoverPanel {
    fn default() -> Self {
        FailoverPanel {
            selected: BTreeSet::new(),
            // The one kind that changes nothing in production.
            kind: FailoverKind::Test,
            point: None,
            next_id: 1,
            pending: None,
            scan: None,
            confirming: false,
            reprotecting: None,
            confirm_after_scan: false,
            press: Press::default(),
            protected_down: Vec::new(),
        }
    }
}

fn latest_id(snap: Option<&Snapshot>) -> Option<u64> {
    snap.and_then(|s| s.failover.as_ref()).map(|f| f.id)
}

fn sites_down(snap: Option<&Snapshot>) -> Vec<String> {
    snap.map(|s| s.sites_down.clone()).unwrap_or_default()
}

fn kind_hint(kind: FailoverKind) -> &'static str {
    match kind {
        FailoverKind::Test => {
            "Recover copies of the latest recovery points into an isolated area at the recovery site and verify them. Production and replication keep running; clean up afterwards."
        }
        FailoverKind::Planned => {
            "The protected site is up: stop the VMs, run a final replication cycle for their groups, then recover them with no write lost. Any error stops it and restarts the VMs where they were."
        }
        FailoverKind::Unplanned => {
            "The protected site is lost: recover from the latest published recovery points. What was written after them is lost."
        }
    }
}

impl FailoverPanel {
    /// Forgets the plan and any scan in flight (another workspace was opened).
    pub fn reset(&mut self) {
        self.pending = None;
        self.scan = None;
        self.point = None;
        self.confirming = false;
        self.confirm_after_scan = false;
        self.press = Press::default();
        self.protected_down.clear();
    }

    /// Ticks exactly these protection groups and chooses `kind` and the point in time
    /// (the demo player drives the panel through here and the `press_` hooks).
    pub fn prefill(
        &mut self,
        protection_groups: &[String],
        kind: FailoverKind,
        point: Option<SimTime>,
    ) {
        self.selected = protection_groups.iter().cloned().collect();
        self.kind = kind;
        self.point = point;
        self.confirming = false;
    }

    /// Presses "Scan replicas" on the next frame the panel is shown, if it is enabled.
    pub fn press_scan(&mut self) {
        self.press.scan = true;
    }

    /// Presses "Run failover" on the next frame the panel is shown, if it is enabled.
    pub fn press_run(&mut self) {
        self.press.run = true;
    }

    /// Presses the run confirmation's confirm button on the next frame, if it is open.
    pub fn press_confirm(&mut self) {
        self.press.confirm = true;
    }

    /// Is a scan in flight?
    pub fn scanning(&self) -> bool {
        self.pending.is_some()
    }

    /// The ticked protection groups in topology order.
    fn chosen(&self, t: &Topology) -> Vec<String> {
        t.protection_groups
            .iter()
            .filter(|p| self.selected.contains(&p.id))
            .map(|p| p.id.clone())
            .collect()
    }

    fn request_scan(&mut self, t: &Topology, live: &Live) -> Action {
        let id = self.next_id;
        self.next_id += 1;
        let pgs = self.chosen(t);
        let snap = live.snapshot.as_ref();
        self.pending = Some(PendingScan {
            id,
            protection_groups: pgs.clone(),
            kind: self.kind,
            point: self.point,
            failover_id: latest_id(snap),
            sites_down: sites_down(snap),
        });
        Action::ScanFailover {
            id,
            protection_groups: pgs,
            kind: self.kind,
            point: self.point,
        }
    }

    /// Takes in the worker's answer to a scan; answers to older scans are dropped.
    pub fn on_scan(&mut self, id: u64, at: SimTime, result: Result<FailoverPlan, String>) {
        let Some(p) = self.pending.take_if(|p| p.id == id) else {
            return;
        };
        let clean = result
            .as_ref()
            .is_ok_and(|plan| plan.problems.is_empty() && plan.unplaced.is_empty());
        self.confirming |= std::mem::take(&mut self.confirm_after_scan) && clean;
        self.scan = Some(Scan {
            id,
            protection_groups: p.protection_groups,
            kind: p.kind,
            point: p.point,
            at,
            result,
            failover_id: p.failover_id,
            sites_down: p.sites_down,
        });
    }

    /// Why the plan on screen no longer describes what Run would do, if it does not.
    fn stale(&self, t: &Topology, live: &Live) -> Option<&'static str> {
        let s = self.scan.as_ref()?;
        let snap = live.snapshot.as_ref();
        if s.protection_groups != self.chosen(t) {
            Some("the protection groups ticked changed since this scan")
        } else if s.kind != self.kind {
            Some("the kind changed since this scan")
        } else if s.point != self.point {
            Some("the recovery point changed since this scan")
        } else if s.failover_id != latest_id(snap) {
            Some("a failover ran since this scan")
        } else if s.sites_down != sites_down(snap) {
            Some("a site was lost since this scan")
        } else {
            None
        }
    }

    /// What keeps Run disabled, if anything.
    fn run_blocker(&self, t: &Topology, live: &Live) -> Option<String> {
        if !live.is_open() {
            return Some("No workspace is open.".into());
        }
        if let Some(f) = live.snapshot.as_ref().and_then(|s| s.failover.as_ref())
            && f.state == FailoverState::Running
        {
            return Some(format!("Planned failover #{} is still running.", f.id));
        }
        if self.pending.is_some() {
            return Some("Scanning…".into());
        }
        let Some(scan) = &self.scan else {
            return Some("Scan the replicas first.".into());
        };
        if let Some(why) = self.stale(t, live) {
            return Some(format!("Scan again: {why}."));
        }
        let plan = match &scan.result {
            Ok(p) => p,
            Err(_) => return Some("The scan failed: see its error.".into()),
        };
        if !plan.problems.is_empty() {
            return Some("Resolve the problems the scan found first.".into());
        }
        if !plan.unplaced.is_empty() {
            return Some("Not every VM fits at the recovery site.".into());
        }
        if plan.vms.is_empty() {
            return Some("There is nothing to recover in these protection groups.".into());
        }
        None
    }
}

/// Instance paths as "datastore/instance" (they are `sites/<site>/datastores/<ds>/<vm>`).
fn short_paths(paths: &[String]) -> String {
    paths
        .iter()
        .map(|p| {
            p.split_once("/datastores/")
                .map_or(p.as_str(), |(_, rest)| rest)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The replication groups that replicate the datastores of these protection groups, those
/// violating their RPO first (what needs attention leads), else in the engine's order.
fn groups_of_pgs<'a>(t: &Topology, s: &'a Snapshot, pgs: &[String]) -> Vec<&'a GroupView> {
    let ds: BTreeSet<&str> = pgs
        .iter()
        .filter_map(|id| t.protection_group(id))
        .flat_map(|p| p.datastores.iter().map(String::as_str))
        .collect();
    let mut groups: Vec<&GroupView> = s
        .groups
        .iter()
        .filter(|g| {
            // A reprotected group's pairs run the other way.
            g.pairs
                .iter()
                .any(|p| ds.contains(p.datastore.as_str()) || ds.contains(p.replica.as_str()))
        })
        .collect();
    groups.sort_by_key(|g| !g.rpo_violation);
    groups
}

/// The title of the plan's capacity table.
pub use super::capacity_table::CAPACITY_BY_HOST;

/// Column widths of the plan and results tables (the last column wraps in the rest).
const PRIO_W: f32 = 28.0;
const VM_W: f32 = 104.0;
const INSTANCES_W: f32 = 190.0;
const FROM_W: f32 = 200.0;
const GRID_GAP: f32 = 12.0;
const MIN_WRAP_W: f32 = 170.0;
/// Room kept for the panel's scroll bar.
const SCROLLBAR_W: f32 = 12.0;
