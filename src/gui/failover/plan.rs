//! The plan a scan returned: each VM's instances on the replicas with their marks, the
//! elected one or the error, the reserved host, the replicated metadata and the capacity.

use egui::{RichText, Ui};

use super::{GRID_GAP, INSTANCES_W, MIN_WRAP_W, PRIO_W, SCROLLBAR_W, Scan, VM_W, short_paths};
use crate::engine::PlanVm;
use crate::gui::live::{Live, mm_ss};
use crate::gui::style::{self, Tone, glyph};
use crate::recovery::{Candidate, Decision};
use crate::topology::Topology;

fn section_heading(ui: &mut Ui, title: &str, detail: String) {
    ui.horizontal(|ui| {
        ui.strong(title);
        ui.label(RichText::new(detail).weak());
    });
    ui.separator();
}

pub(super) fn plan_section(
    ui: &mut Ui,
    t: &Topology,
    live: &Live,
    scan: &Scan,
    stale: Option<&str>,
) {
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
