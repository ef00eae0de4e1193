//! The run confirmation of planned and unplanned failovers: what will be recovered, lost
//! and deleted, and which replication stops, before the operator confirms.

use egui::RichText;

use super::{FailoverPanel, groups_of_pgs, kind_hint, reprotect_confirm, run_confirm};
use crate::engine::{Command, FailoverKind, PlanVm};
use crate::gui::Document;
use crate::gui::live::Live;
use crate::gui::style::{self, Tone, glyph};
use crate::recovery::Decision;

impl FailoverPanel {
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
            let failback = live.snapshot.as_ref().and_then(|s| {
                groups_of_pgs(t, s, &pgs)
                    .into_iter()
                    .find(|g| g.reversed)
                    .map(|g| (g.source_site.clone(), g.target_site.clone()))
            });
            let heading = match &failback {
                Some((from, home)) => format!(
                    "Are you sure? Fail back {}: a planned failover from {from} home to {home}",
                    pgs.join(", ")
                ),
                None => format!(
                    "Are you sure? Run {} {} failover of {}",
                    if kind == FailoverKind::Unplanned { "an" } else { "a" },
                    kind.as_str(),
                    pgs.join(", ")
                ),
            };
            ui.label(
                style::toned(
                    ui,
                    heading,
                    tone,
                )
                .heading()
                .size(18.0),
            );
            ui.add_space(4.0);
            ui.label(kind_hint(kind));
            if let Some(at) = self.scan.as_ref().and_then(|s| s.point) {
                ui.label(style::toned(
                    ui,
                    format!(
                        "An earlier point: each group recovers its latest point cut at or before {}. The writes after it are given up, and the replicas are rolled back to it.",
                        crate::engine::format_time(at)
                    ),
                    Tone::Warn,
                ));
            }
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
            answer = cancel_or_confirm(ui, &run_confirm(kind), tone, press_confirm);
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
                    point: self.point.map(crate::engine::to_minutes),
                })
            }
            Some(false) => {
                self.confirming = false;
                None
            }
            None => None,
        }
    }

    /// The reprotect confirmation: which groups reverse, which site becomes protected,
    /// and what is deleted at the old one. Returns the command once confirmed.
    pub fn reprotect_modal(
        &mut self,
        ctx: &egui::Context,
        doc: &Document,
        live: &Live,
    ) -> Option<Command> {
        let pg = self.reprotecting.clone()?;
        let t = &doc.topology;
        let Some(snap) = live.snapshot.as_ref() else {
            self.reprotecting = None;
            return None;
        };
        let groups = groups_of_pgs(t, snap, std::slice::from_ref(&pg));
        let mut answer: Option<bool> = None;
        let id = egui::Id::unique("reprotect-confirm");
        let modal = egui::Modal::new(id)
            .area(super::super::replication::top_anchored(ctx, id))
            .show(ctx, |ui| {
                ui.set_width(560.0);
                ui.label(
                    style::toned(ui, format!("Are you sure? Reprotect {pg}"), Tone::Warn)
                        .heading()
                        .size(18.0),
                );
                ui.add_space(4.0);
                for g in &groups {
                    let pairs: Vec<String> = g
                        .pairs
                        .iter()
                        .map(|p| format!("{} {} {}", p.replica, glyph::TO, p.datastore))
                        .collect();
                    ui.label(format!(
                        "{} reverses: {} becomes its protected site, {} its replica ({}).",
                        g.id,
                        g.target_site,
                        g.source_site,
                        pairs.join(", ")
                    ));
                }
                ui.label(
                    "The first cycle ships only the blocks that differ between each running image and its old image; nothing is copied whole.",
                );
                let old: Vec<&crate::engine::StaleInstance> = snap
                    .stale
                    .iter()
                    .filter(|s| {
                        groups
                            .iter()
                            .any(|g| g.pairs.iter().any(|p| p.datastore == s.datastore))
                    })
                    .collect();
                if !old.is_empty() {
                    ui.label(style::toned(
                        ui,
                        format!(
                            "The stale instances become replicas; those no running VM continues are deleted. Stale now: {}",
                            old.iter().map(|s| s.path.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                        Tone::Warn,
                    ));
                }
                ui.label(
                    RichText::new(
                        "The engine checks again as it runs: both sites and the link must be up, and it says why if it refuses.",
                    )
                    .weak(),
                );
                ui.add_space(10.0);
                answer = cancel_or_confirm(ui, &reprotect_confirm(&pg), Tone::Warn, false);
            });
        if answer.is_none() && modal.should_close() {
            answer = Some(false);
        }
        match answer? {
            true => {
                self.reprotecting = None;
                Some(Command::Reprotect {
                    protection_groups: vec![pg],
                })
            }
            false => {
                self.reprotecting = None;
                None
            }
        }
    }
}

/// A confirmation's last row: Cancel, and the confirm button filled with `tone`.
/// `Some(false)` on Cancel, `Some(true)` on confirm (or when `press` stands in for a click).
fn cancel_or_confirm(ui: &mut egui::Ui, confirm: &str, tone: Tone, press: bool) -> Option<bool> {
    ui.horizontal(|ui| {
        if ui.button("Cancel").clicked() {
            return Some(false);
        }
        let go = egui::Button::new(RichText::new(confirm).strong().color(egui::Color32::WHITE))
            .fill(tone.fill());
        (ui.add(go).clicked() || press).then_some(true)
    })
    .inner
}
