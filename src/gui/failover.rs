//! The failover panel: choose protection groups and a kind, "Scan replicas" (the worker
//! asks the engine what a failover would do, changing nothing), read the plan — each VM's
//! instances on the replicas with their migration marks, which one wins and why or the
//! error, the reserved recovery host, what the replicated metadata says, the capacity check
//! and whatever stands in the way — then Run (confirmed first for planned and unplanned)
//! and read each VM's result with its verification badges. A test failover's isolated
//! copies are cleaned up from here too.

use std::collections::BTreeSet;

use egui::{RichText, Ui};

use super::live::{Live, mm_ss};
use super::style::{self, Tone, glyph};
use super::worker::Request;
use super::{Action, Document};
use crate::engine::{
    Command, FailoverKind, FailoverPlan, FailoverReport, FailoverState, GroupView, PlanVm, SimTime,
    Snapshot, VmResult,
};
use crate::recovery::{Candidate, Decision};
use crate::topology::Topology;

/// The buttons' texts (also their accessible names).
pub const SCAN: &str = "Scan replicas";
pub const RUN: &str = "Run failover";
pub const CLEANUP: &str = "Clean up test failover";

/// The confirm button of the run confirmation for `kind`.
pub fn run_confirm(kind: FailoverKind) -> String {
    format!("Run {} failover", kind.as_str())
}

/// A scan asked for and not answered yet, with what the console knew when it asked.
struct PendingScan {
    id: u64,
    protection_groups: Vec<String>,
    kind: FailoverKind,
    failover_id: Option<u64>,
    sites_down: Vec<String>,
}

/// The answer to a scan.
pub struct Scan {
    pub id: u64,
    pub protection_groups: Vec<String>,
    pub kind: FailoverKind,
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
    next_id: u64,
    pending: Option<PendingScan>,
    pub scan: Option<Scan>,
    /// The run confirmation (planned and unplanned) is open.
    pub confirming: bool,
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
            next_id: 1,
            pending: None,
            scan: None,
            confirming: false,
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
        self.confirming = false;
        self.press = Press::default();
        self.protected_down.clear();
    }

    /// Ticks exactly these protection groups and chooses `kind` (the demo player drives
    /// the panel through here and the `press_` hooks).
    pub fn prefill(&mut self, protection_groups: &[String], kind: FailoverKind) {
        self.selected = protection_groups.iter().cloned().collect();
        self.kind = kind;
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
            failover_id: latest_id(snap),
            sites_down: sites_down(snap),
        });
        Action::ScanFailover {
            id,
            protection_groups: pgs,
            kind: self.kind,
        }
    }

    /// Takes in the worker's answer to a scan; answers to older scans are dropped.
    pub fn on_scan(&mut self, id: u64, at: SimTime, result: Result<FailoverPlan, String>) {
        let Some(p) = self.pending.take_if(|p| p.id == id) else {
            return;
        };
        self.scan = Some(Scan {
            id,
            protection_groups: p.protection_groups,
            kind: p.kind,
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

    /// The panel (the central area's Failover tab).
    pub(crate) fn show(
        &mut self,
        ui: &mut Ui,
        doc: &Document,
        live: &Live,
        actions: &mut Vec<Action>,
    ) {
        let t = &doc.topology;
        self.selected.retain(|id| t.protection_group(id).is_some());
        // Scan and Run in a footer that stays put however long the plan below grows.
        egui::Panel::bottom("failover-footer")
            .resizable(false)
            .frame(egui::Frame::new().inner_margin(egui::Margin::symmetric(0, 6)))
            .show(ui, |ui| {
                ui.separator();
                self.controls(ui, t, live, actions);
            });
        egui::ScrollArea::both()
            .id_salt("failover-panel")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                ui.label(
                    RichText::new(
                        "Recover protection groups at the recovery site: tick them, choose the kind, scan the replicas (below), read the plan, run.",
                    )
                    .weak(),
                );
                ui.add_space(4.0);
                self.choose(ui, t, live);
                if let Some(scan) = &self.scan {
                    ui.add_space(10.0);
                    let stale = self.stale(t, live);
                    plan_section(ui, t, live, scan, stale);
                }
                if let Some(f) = live.snapshot.as_ref().and_then(|s| s.failover.as_ref()) {
                    ui.add_space(12.0);
                    results_section(ui, t, live, f);
                }
            });
    }

    /// Follows the lost sites (each update of the engine, drawn or not): when a protected
    /// site goes down, the kind becomes unplanned, the one failover that recovers its VMs.
    /// The operator (or a demo's prefill) may still choose another afterwards.
    pub fn follow_sites(&mut self, t: &Topology, snap: Option<&Snapshot>) {
        let down: Vec<String> = sites_down(snap)
            .into_iter()
            .filter(|s| t.site_role(s) == Some(crate::topology::SiteRole::Protected))
            .collect();
        if down.iter().any(|s| !self.protected_down.contains(s)) {
            self.kind = FailoverKind::Unplanned;
        }
        self.protected_down = down;
    }

    fn choose(&mut self, ui: &mut Ui, t: &Topology, live: &Live) {
        let snap = live.snapshot.as_ref();
        ui.strong("Protection groups");
        if t.protection_groups.is_empty() {
            ui.label(RichText::new("This topology has no protection group.").weak());
        }
        for pg in &t.protection_groups {
            let mut on = self.selected.contains(&pg.id);
            // Wrapped: a long list of datastores would widen the whole tab.
            ui.horizontal_wrapped(|ui| {
                if ui
                    .checkbox(&mut on, format!("{} {}", glyph::PROTECTION_GROUP, pg.id))
                    .changed()
                {
                    if on {
                        self.selected.insert(pg.id.clone());
                    } else {
                        self.selected.remove(&pg.id);
                    }
                }
                let vms = match snap {
                    Some(s) => s
                        .vms
                        .iter()
                        .filter(|v| !v.recovered && pg.datastores.contains(&v.datastore))
                        .count(),
                    None => t
                        .vms
                        .iter()
                        .filter(|v| pg.datastores.contains(&v.datastore))
                        .count(),
                };
                ui.label(
                    RichText::new(format!(
                        "{}  ·  {vms} VM(s) to recover  ·  {}",
                        pg.name,
                        pg.datastores.join(", ")
                    ))
                    .weak(),
                );
            });
            if let Some(s) = snap {
                let groups = groups_of_pgs(t, s, std::slice::from_ref(&pg.id));
                if !groups.is_empty() {
                    ui.horizontal_wrapped(|ui| {
                        ui.add_space(26.0);
                        ui.label(RichText::new("recovery points:").weak().small());
                        for g in groups {
                            let (text, tone) = match (g.lag, g.state) {
                                (_, crate::engine::GroupState::FailedOver) => {
                                    (format!("{} failed over", g.id), Tone::Done)
                                }
                                // A lost site's point ages no more: its lag stops at
                                // the disaster.
                                (Some(l), _) if g.lost_at.is_some() => (
                                    format!(
                                        "{} {} old at the disaster",
                                        g.id,
                                        style::sim_duration(l)
                                    ),
                                    Tone::Bad,
                                ),
                                (Some(l), _) => (
                                    format!("{} {} old", g.id, style::sim_duration(l)),
                                    if g.rpo_violation {
                                        Tone::Bad
                                    } else {
                                        Tone::Good
                                    },
                                ),
                                (None, _) => (format!("{} none yet", g.id), Tone::Warn),
                            };
                            ui.label(style::toned(ui, text, tone).small())
                                .on_hover_text(format!(
                                    "Replication group {}: RPO {}, {}",
                                    g.id,
                                    style::minutes_text(g.rpo_minutes),
                                    g.state.as_str()
                                ));
                        }
                    });
                }
            }
        }
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            ui.strong("Kind");
            for k in FailoverKind::ALL {
                ui.radio_value(&mut self.kind, k, k.as_str())
                    .on_hover_text(kind_hint(k));
            }
        });
        ui.label(RichText::new(kind_hint(self.kind)).weak());
        if let Some(s) = snap.filter(|s| !s.sites_down.is_empty()) {
            // Said for every kind, so the buttons below do not move when it changes.
            let down = s.sites_down.join(", ");
            if self.kind == FailoverKind::Unplanned {
                ui.label(
                    RichText::new(format!(
                        "Site {down} is down: an unplanned failover is the one that recovers its VMs."
                    ))
                    .weak(),
                );
            } else {
                ui.label(style::toned(
                    ui,
                    format!("Site {down} is down: recover its VMs with an unplanned failover."),
                    Tone::Warn,
                ));
            }
        }
    }

    fn controls(&mut self, ui: &mut Ui, t: &Topology, live: &Live, actions: &mut Vec<Action>) {
        let open = live.is_open();
        let none = self.selected.is_empty();
        let blocker = self.run_blocker(t, live);
        let press_scan = std::mem::take(&mut self.press.scan);
        let press_run = std::mem::take(&mut self.press.run);
        let can_scan = open && !none && self.pending.is_none();
        ui.horizontal_wrapped(|ui| {
            let scan = ui
                .add_enabled(can_scan, egui::Button::new(format!("🔍 {SCAN}")))
                .on_hover_text(
                    "Find every instance of the VMs on the replica datastores, elect the one to recover, reserve recovery hosts. Changes nothing.",
                )
                .on_disabled_hover_text(if !open {
                    "No workspace is open."
                } else if none {
                    "Tick at least one protection group."
                } else {
                    "Scanning…"
                });
            scan.widget_info(|| {
                egui::WidgetInfo::labeled(egui::Role::Button, can_scan, SCAN)
            });
            if scan.clicked() || (press_scan && can_scan) {
                actions.push(self.request_scan(t, live));
            }
            if self.pending.is_some() {
                ui.spinner();
            }
            let run = ui
                .add_enabled(
                    blocker.is_none(),
                    egui::Button::new(RichText::new(format!("⚡ {RUN}")).strong()),
                )
                .on_hover_text(if self.kind == FailoverKind::Test {
                    "Recover into an isolated copy and verify"
                } else {
                    "Asks first"
                })
                .on_disabled_hover_text(blocker.clone().unwrap_or_default());
            run.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, blocker.is_none(), RUN));
            if run.clicked() || (press_run && blocker.is_none()) {
                let pgs = self.chosen(t);
                if self.kind == FailoverKind::Test {
                    actions.push(Action::Request(Request::Engine(Command::Failover {
                        protection_groups: pgs,
                        kind: FailoverKind::Test,
                    })));
                } else {
                    self.confirming = true;
                }
            }
            if let Some(why) = &blocker
                && self.scan.is_some()
            {
                ui.label(style::toned(ui, why.as_str(), Tone::Warn));
            }
        });
        if live.snapshot.as_ref().is_some_and(|s| s.test_failover_up) {
            ui.horizontal(|ui| {
                ui.label(style::toned(
                    ui,
                    "A test failover's isolated copies are still up.",
                    Tone::Busy,
                ));
                if ui
                    .button(CLEANUP)
                    .on_hover_text("Delete the isolated copies of the last test failover")
                    .clicked()
                {
                    actions.push(Action::Request(Request::Engine(
                        Command::CleanupTestFailover,
                    )));
                }
            });
        }
    }

    /// The run confirmation for planned and unplanned failovers; returns the command once
    /// confirmed.
    pub fn confirm_modal(
        &mut self,
        ctx: &egui::Context,
        doc: &Document,
        live: &Live,
    ) -> Option<Command> {
        let press_confirm = std::mem::take(&mut self.press.confirm);
        if !self.confirming {
            return None;
        }
        let t = &doc.topology;
        let plan = match self.scan.as_ref().map(|s| &s.result) {
            Some(Ok(p)) if self.run_blocker(t, live).is_none() => p.clone(),
            // The plan went stale under the dialog: close it.
            _ => {
                self.confirming = false;
                return None;
            }
        };
        let kind = plan.kind;
        let pgs = plan.protection_groups.clone();
        let mut answer: Option<bool> = None;
        let id = egui::Id::unique("failover-confirm");
        let modal = egui::Modal::new(id).area(super::replication::top_anchored(ctx, id)).show(ctx, |ui| {
            ui.set_width(560.0);
            let tone = if kind == FailoverKind::Unplanned {
                Tone::Bad
            } else {
                Tone::Warn
            };
            ui.label(
                style::toned(
                    ui,
                    format!(
                        "Are you sure? Run {} {} failover of {}",
                        if kind == FailoverKind::Unplanned { "an" } else { "a" },
                        kind.as_str(),
                        pgs.join(", ")
                    ),
                    tone,
                )
                .heading()
                .size(18.0),
            );
            ui.add_space(4.0);
            ui.label(kind_hint(kind));
            ui.add_space(6.0);
            let recover: Vec<&PlanVm> = plan
                .vms
                .iter()
                .filter(|v| v.election.decision == Decision::Recover && v.election.vm.is_some())
                .collect();
            let lost: Vec<&PlanVm> = plan
                .vms
                .iter()
                .filter(|v| !(v.election.decision == Decision::Recover && v.election.vm.is_some()))
                .collect();
            ui.label(format!(
                "{} VM(s) are recovered and powered on on their reserved hosts, priority 1 first: {}",
                recover.len(),
                recover
                    .iter()
                    .map(|v| format!(
                        "{} on {}",
                        v.election.vm.as_deref().unwrap_or("?"),
                        v.host.as_deref().unwrap_or("?")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            if !lost.is_empty() {
                ui.label(style::toned(
                    ui,
                    format!(
                        "{} cannot be recovered: {}",
                        lost.len(),
                        lost.iter()
                            .map(|v| format!(
                                "{} ({})",
                                v.election.vm.as_deref().unwrap_or(&v.election.uuid),
                                v.election.error.map_or("not in the topology", |e| e.as_str())
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Tone::Bad,
                ));
            }
            let deletes: Vec<&String> =
                plan.vms.iter().flat_map(|v| v.election.delete.iter()).collect();
            if !deletes.is_empty() {
                ui.label(style::toned(
                    ui,
                    format!(
                        "Deleted from the replicas (the losing instances): {}",
                        deletes
                            .iter()
                            .map(|d| d.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Tone::Warn,
                ));
            }
            if let Some(s) = &live.snapshot {
                let groups = groups_of_pgs(t, s, &pgs);
                if !groups.is_empty() {
                    let names: Vec<String> = groups
                        .iter()
                        .map(|g| match (kind, g.lag) {
                            // The engine measures the lag of a lost site's group to the
                            // disaster: the window its last point leaves out.
                            (FailoverKind::Unplanned, Some(l)) if g.lost_at.is_some() => format!(
                                "{} (the writes of the last {} before the disaster are lost)",
                                g.id,
                                style::sim_duration(l)
                            ),
                            (FailoverKind::Unplanned, Some(l)) => {
                                format!("{} (writes of the last {} lost)", g.id, style::sim_duration(l))
                            }
                            _ => g.id.clone(),
                        })
                        .collect();
                    ui.label(format!(
                        "Replication of {} stops: {} over.",
                        names.join(", "),
                        if names.len() == 1 {
                            "the group fails"
                        } else {
                            "the groups fail"
                        }
                    ));
                }
            }
            ui.label(
                RichText::new(
                    "The engine scans the replicas again as it runs: what it finds then is what it recovers, and the results show here.",
                )
                .weak(),
            );
            ui.add_space(10.0);
            ui.horizontal(|ui| {
                if ui.button("Cancel").clicked() {
                    answer = Some(false);
                }
                let go = egui::Button::new(
                    RichText::new(run_confirm(kind))
                        .strong()
                        .color(egui::Color32::WHITE),
                )
                .fill(tone.fill());
                if ui.add(go).clicked() || press_confirm {
                    answer = Some(true);
                }
            });
        });
        if answer.is_none() && modal.should_close() {
            answer = Some(false);
        }
        match answer {
            Some(true) => {
                self.confirming = false;
                Some(Command::Failover {
                    protection_groups: pgs,
                    kind,
                })
            }
            Some(false) => {
                self.confirming = false;
                None
            }
            None => None,
        }
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
        .filter(|g| g.pairs.iter().any(|p| ds.contains(p.datastore.as_str())))
        .collect();
    groups.sort_by_key(|g| !g.rpo_violation);
    groups
}

fn section_heading(ui: &mut Ui, title: &str, detail: String) {
    ui.horizontal(|ui| {
        ui.strong(title);
        ui.label(RichText::new(detail).weak());
    });
    ui.separator();
}

fn plan_section(ui: &mut Ui, t: &Topology, live: &Live, scan: &Scan, stale: Option<&str>) {
    let detail = format!(
        "{} failover of {}  ·  scanned at {}",
        scan.kind.as_str(),
        scan.protection_groups.join(", "),
        mm_ss(scan.at)
    );
    if let Some(why) = stale {
        // Kept for reference, folded: it no longer says what Run would do.
        egui::CollapsingHeader::new(format!("Plan (stale: {why})"))
            .id_salt(("failover-plan", scan.id))
            .default_open(false)
            .show(ui, |ui| {
                ui.label(RichText::new(detail.clone()).weak());
                plan_body(ui, t, live, scan);
            });
        return;
    }
    section_heading(ui, "Plan", detail);
    plan_body(ui, t, live, scan);
}

fn plan_body(ui: &mut Ui, t: &Topology, live: &Live, scan: &Scan) {
    let plan = match &scan.result {
        Ok(p) => p,
        Err(e) => {
            ui.label(style::toned(ui, format!("The scan failed: {e}"), Tone::Bad));
            return;
        }
    };
    let dark = ui.visuals().dark_mode;
    // Capacity.
    let placed = plan.vms.iter().filter(|v| v.host.is_some()).count();
    if plan.unplaced.is_empty() {
        ui.label(style::toned(
            ui,
            format!("✔ Capacity: all {placed} VM(s) fit on recovery-site hosts"),
            Tone::Good,
        ))
        .on_hover_text("Free vCPUs and memory reserved host by host, priority 1 first");
    } else {
        ui.label(style::toned(
            ui,
            format!(
                "✖ Capacity: no recovery-site host has room for {}; nothing would change",
                plan.unplaced.join(", ")
            ),
            Tone::Bad,
        ));
    }
    super::capacity_table::show(ui, plan, scan.id);
    for p in &plan.problems {
        ui.label(style::toned(ui, format!("⚠ {p}"), Tone::Bad));
    }
    // Election winners the failover will not power on (a VM moved out of these PGs runs
    // elsewhere: its replica here is older), each with why: nothing of theirs is touched.
    for v in &plan.left_out {
        let name = v.election.vm.as_deref().unwrap_or(&v.election.uuid);
        ui.label(style::toned(
            ui,
            format!("Left out: {name}: {}", v.reason),
            Tone::Warn,
        ));
    }
    if plan.vms.is_empty() {
        ui.label(RichText::new("No VM of these protection groups is left to recover.").weak());
        return;
    }
    let errors = plan
        .vms
        .iter()
        .filter(|v| v.election.decision == Decision::Error)
        .count();
    ui.label(
        RichText::new(format!(
            "{} VM(s): {} would be recovered, {errors} cannot be",
            plan.vms.len(),
            plan.vms.len() - errors
        ))
        .weak(),
    );
    ui.add_space(4.0);
    // Prio, VM and instances take what they need; the decision wraps in what is left of
    // the width the operator sees. Too narrow for that, each VM is a block with its decision
    // under its instances, so no column is cut off at the panel's edge.
    let visible = super::capacity_table::visible_width(ui);
    let fixed = PRIO_W + VM_W + INSTANCES_W + 3.0 * GRID_GAP + SCROLLBAR_W;
    if visible - fixed < MIN_WRAP_W {
        for v in &plan.vms {
            plan_block(ui, t, live, v, visible - SCROLLBAR_W, dark);
        }
        return;
    }
    let decision_w = visible - fixed;
    egui::Grid::new(("failover-plan-grid", scan.id))
        .num_columns(4)
        .striped(true)
        .spacing([GRID_GAP, 6.0])
        .min_row_height(22.0)
        .show(ui, |ui| {
            for h in ["Prio", "VM", "Instances on the replicas", "Decision"] {
                ui.label(RichText::new(h).strong());
            }
            ui.end_row();
            for v in &plan.vms {
                plan_row(ui, t, live, v, decision_w, dark);
                ui.end_row();
            }
        });
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

fn plan_row(ui: &mut Ui, t: &Topology, live: &Live, v: &PlanVm, decision_w: f32, dark: bool) {
    ui.vertical(|ui| prio_cell(ui, v));
    ui.vertical(|ui| {
        ui.set_min_width(VM_W);
        vm_cell(ui, v);
    });
    ui.vertical(|ui| {
        ui.set_min_width(INSTANCES_W);
        instances_cell(ui, v);
    });
    ui.vertical(|ui| {
        ui.set_width(decision_w);
        decision_cell(ui, t, live, v, dark);
    });
}

/// One VM of the plan on a narrow panel: priority and VM on a line, then its instances,
/// then the decision in the whole `width`.
fn plan_block(ui: &mut Ui, t: &Topology, live: &Live, v: &PlanVm, width: f32, dark: bool) {
    egui::Frame::group(ui.style()).show(ui, |ui| {
        let inner = width - 2.0 * ui.style().spacing.window_margin.leftf() - 4.0;
        ui.set_width(inner.max(MIN_WRAP_W));
        ui.horizontal(|ui| {
            ui.label(RichText::new("Prio").weak());
            prio_cell(ui, v);
            ui.vertical(|ui| vm_cell(ui, v));
        });
        ui.label(RichText::new("Instances on the replicas").weak());
        instances_cell(ui, v);
        ui.label(RichText::new("Decision").weak());
        decision_cell(ui, t, live, v, dark);
    });
    ui.add_space(2.0);
}

fn prio_cell(ui: &mut Ui, v: &PlanVm) {
    ui.label(v.priority.map_or("—".into(), |p| p.to_string()))
        .on_hover_text("Recovery priority: 1 powers on first");
}

fn vm_cell(ui: &mut Ui, v: &PlanVm) {
    let e = &v.election;
    ui.label(RichText::new(format!("{} {}", glyph::VM, e.vm.as_deref().unwrap_or("?"))).strong())
        .on_hover_text(format!("uuid {}", e.uuid));
    match &v.host {
        Some(h) => ui
            .label(RichText::new(format!("{} {h}", glyph::HOST)).small())
            .on_hover_text("The recovery-site host reserved for it"),
        None if e.decision == Decision::Recover => {
            ui.label(style::toned(ui, "no host has room", Tone::Bad).small())
        }
        None => ui.label(RichText::new("no host needed").weak().small()),
    };
}

/// The instance the election picked, if any.
fn winner(v: &PlanVm) -> Option<&Candidate> {
    let e = &v.election;
    e.recover_from
        .as_ref()
        .and_then(|p| e.instances.iter().find(|c| &c.path == p))
}

fn instances_cell(ui: &mut Ui, v: &PlanVm) {
    let e = &v.election;
    let winner = winner(v);
    if e.instances.is_empty() {
        ui.label(style::toned(ui, "none found", Tone::Bad));
    }
    for c in &e.instances {
        let is_winner = winner.is_some_and(|w| w.path == c.path);
        candidate(ui, c, is_winner, e.delete.contains(&c.path));
    }
}

fn decision_cell(ui: &mut Ui, t: &Topology, live: &Live, v: &PlanVm, dark: bool) {
    let e = &v.election;
    let winner = winner(v);
    {
        match (e.decision, winner) {
            (Decision::Recover, Some(w)) => {
                ui.label(
                    style::toned(ui, format!("recover from {}", w.datastore), Tone::Good).strong(),
                );
                ui.add(egui::Label::new(RichText::new(&v.reason).weak()).wrap());
                if let Some(cut) = v.point_cut_at {
                    // A point of a lost site ages no more: its age is what the disaster
                    // lost, measured to the disaster.
                    let lost_at = (live.snapshot.iter())
                        .flat_map(|s| &s.groups)
                        .find(|g| g.pairs.iter().any(|p| p.replica == w.datastore))
                        .and_then(|g| g.lost_at);
                    let age = match (live.point_age(cut, lost_at), lost_at) {
                        (Some(a), Some(_)) => {
                            format!(" ({} before the disaster)", style::sim_duration(a))
                        }
                        (Some(a), None) => format!(" ({} ago)", style::sim_duration(a)),
                        (None, _) => String::new(),
                    };
                    ui.label(
                        RichText::new(format!("recovery point cut at {}{age}", mm_ss(cut)))
                            .weak()
                            .small(),
                    );
                }
            }
            _ => {
                let err = e.error.map_or("error", |x| x.as_str());
                style::badge(
                    ui,
                    err,
                    Tone::Bad,
                    "The election's error: this VM is not recovered",
                );
                ui.add(
                    egui::Label::new(RichText::new(&v.reason).color(Tone::Bad.text(dark))).wrap(),
                );
            }
        }
        if !e.delete.is_empty() {
            ui.add(
                egui::Label::new(
                    style::toned(
                        ui,
                        format!("deletes {}", short_paths(&e.delete)),
                        Tone::Warn,
                    )
                    .small(),
                )
                .wrap(),
            )
            .on_hover_text(format!(
                "The losing instance(s), deleted from the replicas when the failover runs: {}",
                e.delete.join(", ")
            ));
        }
        metadata_line(ui, t, v, winner);
    }
}

/// What the replicated recovery-manager metadata says, and whether it agrees with the
/// election (it may not: it replicates on its own interval, and the failover does not
/// depend on it).
fn metadata_line(ui: &mut Ui, t: &Topology, v: &PlanVm, winner: Option<&Candidate>) {
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing.x = 4.0;
        let Some(meta) = &v.metadata_location else {
            ui.label(RichText::new("metadata: knows nothing of it yet").weak().small())
                .on_hover_text("The replicated location metadata has not been replicated since this VM appeared");
            return;
        };
        let replica = t
            .datastore(meta)
            .and_then(|d| t.replica_of(d))
            .map(|d| d.id.clone());
        let agrees = winner.is_none_or(|w| {
            &w.datastore == meta || replica.as_deref() == Some(w.datastore.as_str())
        });
        let text = format!("metadata says {meta}");
        if agrees {
            ui.label(RichText::new(text).weak().small()).on_hover_text(format!(
                "The recovery manager's replicated location metadata puts it on {meta}{}: it agrees with the election",
                replica.map(|r| format!(" (replica {r})")).unwrap_or_default()
            ));
        } else {
            ui.label(style::toned(ui, text, Tone::Warn).small());
            style::badge(
                ui,
                "disagrees",
                Tone::Warn,
                "The replicated metadata is older than the data (it replicates on its own interval). The election goes by the instances found, not by the metadata.",
            );
        }
    });
}

/// One instance of a VM found on a replica, with its marks; the winner highlighted and the
/// instances the failover deletes struck through.
fn candidate(ui: &mut Ui, c: &Candidate, winner: bool, deleted: bool) {
    ui.horizontal(|ui| {
        ui.spacing_mut().item_spacing.x = 4.0;
        let name = format!("{} {}", glyph::DATASTORE, c.datastore);
        if winner {
            ui.label(style::toned(ui, format!("✔ {name}"), Tone::Good).strong());
        } else if deleted {
            ui.label(RichText::new(format!("✖ {name}")).strikethrough().weak());
        } else {
            ui.label(RichText::new(format!("   {name}")).weak());
        }
        mark_chips(ui, c);
    })
    .response
    .on_hover_text(format!(
        "{}{}",
        c.path,
        if deleted {
            " (deleted by the failover)"
        } else {
            ""
        }
    ));
}

/// The instance's migration marks as chips.
pub fn mark_chips(ui: &mut Ui, c: &Candidate) {
    if !(c.source || c.target || c.completed) {
        style::badge(
            ui,
            "no marks",
            Tone::Muted,
            "Not part of a storage migration",
        );
        return;
    }
    if c.source {
        style::badge(
            ui,
            "source",
            Tone::Busy,
            "Marked as the source of a storage migration",
        );
    }
    if c.target {
        let (tone, hint) = if c.completed {
            (Tone::Good, "The target of a storage migration")
        } else {
            (
                Tone::Warn,
                "The target of a storage migration whose copy had not finished: a partial disk",
            )
        };
        style::badge(ui, "target", tone, hint);
    }
    if c.completed {
        style::badge(ui, "completed", Tone::Good, "The migration's copy finished");
    }
}

fn results_section(ui: &mut Ui, t: &Topology, live: &Live, f: &FailoverReport) {
    ui.horizontal(|ui| {
        ui.strong(format!("Latest failover #{}", f.id));
        ui.label(
            RichText::new(format!(
                "{}  ·  {}  ·  started {}{}",
                f.kind.as_str(),
                f.protection_groups.join(", "),
                mm_ss(f.started_at),
                f.finished_at
                    .map(|at| format!(", finished {}", mm_ss(at)))
                    .unwrap_or_default()
            ))
            .weak(),
        );
        let (text, tone) = match f.state {
            FailoverState::Running => ("running", Tone::Busy),
            FailoverState::Done => ("done", Tone::Good),
            FailoverState::Failed => ("failed", Tone::Bad),
        };
        style::badge(ui, text, tone, "");
        if f.state == FailoverState::Running {
            ui.spinner();
        }
    });
    ui.separator();
    let tone = match f.state {
        FailoverState::Failed => Tone::Bad,
        _ if f.results.iter().any(|r| !r.recovered) => Tone::Warn,
        _ => Tone::Muted,
    };
    if !f.message.is_empty() {
        ui.add(egui::Label::new(style::toned(ui, f.message.as_str(), tone)).wrap());
    }
    if let Some(dir) = &f.test_dir {
        ui.label(RichText::new(format!("Isolated copies in {dir}")).weak());
    }
    if f.results.is_empty() {
        return;
    }
    ui.add_space(4.0);
    let snap = live.snapshot.as_ref();
    let badges_w =
        (ui.available_width() - VM_W - FROM_W - 2.0 * GRID_GAP - SCROLLBAR_W).max(MIN_WRAP_W);
    egui::Grid::new(("failover-results", f.id))
        .num_columns(3)
        .striped(true)
        .spacing([GRID_GAP, 6.0])
        .min_row_height(22.0)
        .show(ui, |ui| {
            for h in ["VM", "Recovered from", "Verification"] {
                ui.label(RichText::new(h).strong());
            }
            ui.end_row();
            for r in &f.results {
                result_row(ui, t, snap, f.kind, r, badges_w);
                ui.end_row();
            }
        });
}

fn result_row(
    ui: &mut Ui,
    t: &Topology,
    snap: Option<&Snapshot>,
    kind: FailoverKind,
    r: &VmResult,
    badges_w: f32,
) {
    let dark = ui.visuals().dark_mode;
    ui.vertical(|ui| {
        ui.set_min_width(VM_W);
        ui.label(
            RichText::new(format!(
                "{} {}",
                glyph::VM,
                r.vm.as_deref().unwrap_or(&r.uuid)
            ))
            .strong(),
        );
        if r.recovered {
            let on = match kind {
                FailoverKind::Test => "isolated copy".to_string(),
                _ => format!("{} {}", glyph::HOST, r.host.as_deref().unwrap_or("?")),
            };
            ui.label(RichText::new(on).small());
        }
    });
    ui.vertical(|ui| {
        ui.set_width(FROM_W);
        if r.recovered {
            ui.label(format!(
                "{} {}",
                glyph::DATASTORE,
                r.datastore.as_deref().unwrap_or("?")
            ))
            .on_hover_text(r.path.clone().unwrap_or_default());
            ui.add(egui::Label::new(RichText::new(&r.reason).weak().small()).wrap());
        } else {
            ui.label(style::toned(ui, "not recovered", Tone::Bad).strong());
            ui.add(
                egui::Label::new(RichText::new(&r.reason).color(Tone::Bad.text(dark)).small())
                    .wrap(),
            );
        }
        if !r.deleted.is_empty() {
            ui.add(
                egui::Label::new(
                    style::toned(
                        ui,
                        format!("deleted {}", short_paths(&r.deleted)),
                        Tone::Warn,
                    )
                    .small(),
                )
                .wrap(),
            )
            .on_hover_text(r.deleted.join(", "));
        }
    });
    ui.vertical(|ui| {
        ui.set_width(badges_w);
        ui.horizontal_wrapped(|ui| {
            ui.spacing_mut().item_spacing = egui::vec2(4.0, 4.0);
            if r.recovered {
                verification_badges(ui, t, snap, r);
            } else {
                style::badge(
                    ui,
                    r.error.as_deref().unwrap_or("error"),
                    Tone::Bad,
                    "Not recovered",
                );
            }
        });
    });
}

/// consistent / NOT consistent, writes lost, achieved RPO (against the group's RPO).
fn verification_badges(ui: &mut Ui, t: &Topology, snap: Option<&Snapshot>, r: &VmResult) {
    match r.consistent {
        Some(true) => style::badge(
            ui,
            "consistent",
            Tone::Good,
            "Every block of the recovered disk matches the journal up to its recovery point: no torn or mismatched block",
        ),
        Some(false) => style::badge(
            ui,
            "NOT consistent",
            Tone::Bad,
            "The recovered disk does not match any point of the VM's write history: torn or mismatched blocks",
        ),
        None => style::badge(ui, "not verified", Tone::Muted, ""),
    };
    if let Some(n) = r.writes_lost {
        if n == 0 {
            style::badge(
                ui,
                "no writes lost",
                Tone::Good,
                "The recovered disk holds every write the VM made",
            );
        } else {
            style::badge(
                ui,
                &format!("{} writes lost", super::live::count(n)),
                Tone::Warn,
                "Writes the VM made that the recovered disk does not hold: those after its recovery point",
            );
        }
    }
    if let Some(m) = r.achieved_rpo_minutes {
        let achieved = style::duration_text(m * 60.0);
        let rpo = r
            .datastore
            .as_deref()
            .and_then(|ds| rpo_of_replica(t, snap, ds));
        let tone = match rpo {
            Some(rpo) if m > f64::from(rpo) => Tone::Warn,
            _ => Tone::Good,
        };
        style::badge(
            ui,
            &format!("RPO {achieved}"),
            tone,
            &format!(
                "Achieved RPO: the recovery point was cut {achieved} before the protected copies stopped{}",
                rpo.map(|r| format!(" (the group's RPO is {})", style::minutes_text(r)))
                    .unwrap_or_default()
            ),
        );
    }
}

/// The RPO of the group replicating to `replica`.
fn rpo_of_replica(t: &Topology, snap: Option<&Snapshot>, replica: &str) -> Option<u32> {
    snap.and_then(|s| {
        s.groups
            .iter()
            .find(|g| g.pairs.iter().any(|p| p.replica == replica))
            .map(|g| g.rpo_minutes)
    })
    .or_else(|| {
        t.replica_source(t.datastore(replica)?)
            .and_then(|d| t.datastore_rpo_minutes(d))
    })
}
