//! The panel itself: the protection groups and kind to choose, and the footer's Scan, Run
//! and clean-up buttons; the plan and results sections are drawn by their own modules.

use egui::{RichText, Ui};

use super::plan::plan_section;
use super::results::results_section;
use super::{CLEANUP, FailoverPanel, POINT, RUN, SCAN, groups_of_pgs, kind_hint, sites_down};
use crate::engine::{Command, FailoverKind, SimTime, Snapshot, format_time};
use crate::gui::live::Live;
use crate::gui::style::{self, Tone, glyph};
use crate::gui::worker::Request;
use crate::gui::{Action, Document};
use crate::topology::Topology;

/// The round trip's next step for a PG.
#[derive(Clone, Copy)]
enum Next {
    Reprotect,
    FailBack,
}

impl FailoverPanel {
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

    /// Where PG `pg` stands in the DR round trip (SPEC §11), and its next step's button:
    /// protected → failed over (Reprotect) → reprotected (Fail back) → failed back
    /// (Reprotect, which restores the original direction) → protected.
    fn round_trip(&mut self, ui: &mut Ui, pg: &str, groups: &[&crate::engine::GroupView]) {
        let failed_over = groups
            .iter()
            .any(|g| g.state == crate::engine::GroupState::FailedOver);
        let reversed = groups.iter().find(|g| g.reversed);
        let direction = |g: &crate::engine::GroupView| {
            format!("{} {} {}", g.source_site, glyph::TO, g.target_site)
        };
        // A failed-over group's target is where its VMs run now.
        let running_at = groups
            .first()
            .map(|g| g.target_site.clone())
            .unwrap_or_default();
        let (text, tone, hint, next) = match (failed_over, reversed) {
            (true, None) => (
                format!("failed over: runs at {running_at}, unprotected"),
                Tone::Done,
                "Its VMs run at the recovery site and nothing protects them. Reprotect reverses its replication: once the failed site is back and the link is up, the running side becomes protected and ships only what differs".to_string(),
                Some(Next::Reprotect),
            ),
            (true, Some(_)) => (
                format!("failed back: runs at {running_at}, unprotected"),
                Tone::Done,
                "Its VMs are home on their original datastores and nothing protects them yet. Reprotect restores the original direction, shipping only what differs".to_string(),
                Some(Next::Reprotect),
            ),
            (false, Some(g)) => (
                format!("reprotected: replicating {}", direction(g)),
                Tone::Busy,
                "Its VMs run at the recovery site, replicated back to their original datastores. A failback (a planned failover home) comes next".to_string(),
                Some(Next::FailBack),
            ),
            (false, None) => (
                format!(
                    "protected: replicating {}",
                    groups.first().map(|g| direction(g)).unwrap_or_default()
                ),
                Tone::Good,
                "Its VMs run at the protected site and replicate to the recovery site".to_string(),
                None,
            ),
        };
        ui.horizontal_wrapped(|ui| {
            ui.add_space(26.0);
            ui.label(style::toned(ui, format!("round trip: {text}"), tone).small())
                .on_hover_text(hint);
            let (label, hover) = match next {
                Some(Next::Reprotect) => (
                    super::reprotect_button(pg),
                    "Reverse its replication. Asks first, naming what changes.",
                ),
                Some(Next::FailBack) => (
                    super::failback_button(pg),
                    "A planned failover home: stop the VMs, ship a final cycle, recover them on their original datastores. Scans first, then asks.",
                ),
                None => return,
            };
            if !ui.small_button(label).on_hover_text(hover).clicked() {
                return;
            }
            match next {
                Some(Next::Reprotect) => self.reprotecting = Some(pg.to_string()),
                Some(Next::FailBack) => {
                    self.prefill(&[pg.to_string()], FailoverKind::Planned, None);
                    self.press_scan();
                    self.confirm_after_scan = true;
                }
                None => {}
            }
        });
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
                        for g in &groups {
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
                    self.round_trip(ui, &pg.id, &groups);
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
        if let Some(s) = snap {
            self.point_picker(ui, t, s);
        }
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

    /// The point in time to recover (SPEC §11), shown when a group in scope keeps more
    /// than one: "Latest point" or a cut time, then each group's retained points (cut
    /// time, what keeping it costs) with the one this choice recovers marked.
    fn point_picker(&mut self, ui: &mut Ui, t: &Topology, s: &Snapshot) {
        let groups: Vec<&crate::engine::GroupView> = groups_of_pgs(t, s, &self.chosen(t))
            .into_iter()
            .filter(|g| !g.points.is_empty())
            .collect();
        if groups.is_empty() && self.point.is_none() {
            return;
        }
        let mut cuts: Vec<SimTime> = groups
            .iter()
            .flat_map(|g| g.points.iter().map(|p| p.cut_at))
            .collect();
        cuts.sort_unstable_by(|a, b| b.cmp(a));
        cuts.dedup();
        if let Some(p) = self.point
            && !cuts.contains(&p)
        {
            // A prefilled time between cuts: keep it choosable.
            cuts.push(p);
            cuts.sort_unstable_by(|a, b| b.cmp(a));
        }
        let text = |p: Option<SimTime>| match p {
            None => "Latest point".to_string(),
            Some(c) => format!("at or before {}", format_time(c)),
        };
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            ui.strong("Recovery point");
            let mut chosen = self.point;
            egui::ComboBox::from_id_salt("failover-point")
                .selected_text(text(chosen))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut chosen, None, text(None));
                    for c in &cuts {
                        ui.selectable_value(&mut chosen, Some(*c), text(Some(*c)));
                    }
                })
                .response
                .on_hover_text(
                    "Each group recovers from its latest retained point cut at or before this time: an older point is how to get back to before a corruption, giving up the writes after it.",
                )
                .widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, POINT));
            self.point = chosen;
        });
        for g in groups {
            let used = match self.point {
                None => g.points.iter().find(|p| p.latest),
                Some(at) => g.points.iter().find(|p| p.cut_at <= at),
            };
            ui.horizontal_wrapped(|ui| {
                ui.add_space(26.0);
                ui.label(RichText::new(format!("{}:", g.id)).small());
                for p in &g.points {
                    let mine = used.is_some_and(|u| u.cycle == p.cycle);
                    let label = format!(
                        "{}{} {}",
                        format_time(p.cut_at),
                        if p.latest { " latest" } else { "" },
                        style::size_text(p.bytes)
                    );
                    let rt = if mine {
                        style::toned(ui, format!("▶ {label}"), Tone::Good)
                            .small()
                            .strong()
                    } else {
                        RichText::new(label).weak().small()
                    };
                    ui.label(rt).on_hover_text(format!(
                        "Point of cycle {} cut at {}: {} {}",
                        p.cycle,
                        format_time(p.cut_at),
                        if p.latest {
                            "what its replicas hold now, shipped in"
                        } else {
                            "kept as the blocks the next cycle overwrote,"
                        },
                        style::size_text(p.bytes)
                    ));
                }
                if used.is_none() {
                    ui.label(style::toned(ui, "no point this old: refused", Tone::Bad).small());
                }
            });
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
                        point: self.point.map(crate::engine::to_minutes),
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
}
