//! The latest failover's results: each VM's outcome with its verification badges.

use egui::{RichText, Ui};

use super::{FROM_W, GRID_GAP, MIN_WRAP_W, SCROLLBAR_W, VM_W, short_paths};
use crate::engine::{FailoverKind, FailoverReport, FailoverState, Snapshot, VmResult};
use crate::gui::live::{Live, mm_ss};
use crate::gui::style::{self, Tone, glyph};
use crate::topology::Topology;

pub(super) fn results_section(ui: &mut Ui, t: &Topology, live: &Live, f: &FailoverReport) {
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
