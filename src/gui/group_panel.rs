//! The Resilience tab's section on migrating a whole consistency group to another: pick source and destination CG, progress, reverse mirroring, success.

use egui::{RichText, Ui};

use super::live::mm_ss;
use super::style::{self, Tone};
use super::worker::Request;
use super::{Action, Document, Live};
use crate::dr::{self, Rating};
use crate::engine::{Command, GroupMigrationView, GroupPhase};

/// Accessible names of the section's controls.
pub const SOURCE: &str = "Group migration source";
pub const DESTINATION: &str = "Group migration destination";
/// The start of the group migration's "Are you sure?" checkbox (its label names the move).
pub const SURE: &str = "Are you sure?";
pub const START: &str = "Migrate group";

/// This section's own widget state (kept across frames).
#[derive(Default)]
pub struct State {
    pub from: Option<String>,
    pub to: Option<String>,
    pub sure: bool,
}

/// The protected-site datastores with their consistency group, from the tags the document
/// discovered once for its topology (no LUN lookups per frame).
fn protected_with_cg(doc: &Document) -> impl Iterator<Item = (&str, &str)> {
    let t = &doc.topology;
    t.datastores
        .iter()
        .zip(&doc.tags)
        .filter(|(d, tag)| tag.datastore == d.id && t.is_protected_datastore(d))
        .filter_map(|(d, tag)| Some((d.id.as_str(), tag.consistency_group.as_deref()?)))
}

/// The protected-site datastores of consistency group `cg`.
fn cg_datastores(doc: &Document, cg: &str) -> Vec<String> {
    protected_with_cg(doc)
        .filter(|(_, c)| *c == cg)
        .map(|(d, _)| d.to_string())
        .collect()
}

/// Every consistency group with a datastore at a protected site, sorted.
fn protected_cgs(doc: &Document) -> Vec<String> {
    let mut out: Vec<String> = protected_with_cg(doc).map(|(_, c)| c.to_string()).collect();
    out.sort();
    out.dedup();
    out
}

/// The worst rating over the VMs of `from` moving to `to`'s datastores (the engine picks
/// the datastore per VM; any of `to`'s rates the same kind of move), with its explanation.
fn rate(doc: &Document, from: &str, to: &str) -> Option<dr::Impact> {
    let t = &doc.topology;
    let dst = cg_datastores(doc, to);
    let src = cg_datastores(doc, from);
    let mut worst: Option<dr::Impact> = None;
    for s in &src {
        for d in &dst {
            if let Ok(imp) = dr::impact(t, s, d)
                && worst.as_ref().is_none_or(|w| imp.rating > w.rating)
            {
                worst = Some(imp);
            }
        }
    }
    worst
}

/// Draws the section. Engine commands go out as `Action::Request(Request::Engine(..))`.
pub(crate) fn show(
    ui: &mut Ui,
    doc: &Document,
    live: &Live,
    state: &mut State,
    actions: &mut Vec<Action>,
) {
    ui.heading("Group migration");
    let cgs = protected_cgs(doc);
    if cgs.len() < 2 {
        ui.label(
            RichText::new(
                "This topology has fewer than two consistency groups at a protected site.",
            )
            .weak(),
        );
        return;
    }
    let Some(snap) = live.snapshot.as_ref().filter(|_| live.is_open()) else {
        super::status::not_running(ui, live, "No workspace is open: nothing can migrate.");
        return;
    };
    ui.label(
        RichText::new(
            "Moves every VM of one CG to another as one operation: copies in mirror mode, switches all at once, mirrors writes back to the source CG until the destination CG has published a recovery point holding them.",
        )
        .weak(),
    );
    let from = state
        .from
        .clone()
        .filter(|c| cgs.contains(c))
        .unwrap_or_else(|| cgs[0].clone());
    let to = state
        .to
        .clone()
        .filter(|c| cgs.contains(c) && *c != from)
        .unwrap_or_else(|| {
            cgs.iter()
                .find(|c| **c != from)
                .cloned()
                .unwrap_or_default()
        });
    let mut new_from = from.clone();
    let mut new_to = to.clone();
    ui.horizontal(|ui| {
        ui.label("From");
        egui::ComboBox::from_id_salt("group-migration-from")
            .selected_text(&from)
            .show_ui(ui, |ui| {
                for c in &cgs {
                    ui.selectable_value(&mut new_from, c.clone(), c);
                }
            })
            .response
            .widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, SOURCE));
        ui.label("to");
        egui::ComboBox::from_id_salt("group-migration-to")
            .selected_text(&to)
            .show_ui(ui, |ui| {
                for c in cgs.iter().filter(|c| **c != new_from) {
                    ui.selectable_value(&mut new_to, c.clone(), c);
                }
            })
            .response
            .widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, DESTINATION));
    });
    if new_from != from || new_to != to {
        state.sure = false;
    }
    if new_to == new_from {
        new_to = cgs
            .iter()
            .find(|c| **c != new_from)
            .cloned()
            .unwrap_or_default();
    }
    state.from = Some(new_from.clone());
    state.to = Some(new_to.clone());
    let (from, to) = (new_from, new_to);

    let vms: Vec<&str> = {
        let src = cg_datastores(doc, &from);
        snap.vms
            .iter()
            .filter(|v| src.contains(&v.datastore) && !v.recovered)
            .map(|v| v.id.as_str())
            .collect()
    };
    let running = snap.group_migrations.iter().any(|g| g.phase.active());
    let impact = rate(doc, &from, &to);
    ui.label(format!(
        "{} VM(s) of {from}: {}",
        vms.len(),
        if vms.is_empty() {
            "nothing to move".to_string()
        } else {
            vms.join(", ")
        }
    ));
    let rating = impact.as_ref().map_or(Rating::None, |i| i.rating);
    if let Some(imp) = &impact {
        ui.horizontal(|ui| {
            ui.label("Rated");
            ui.label(style::rating_text(ui, imp.rating));
            if let Some(f) = imp.fault {
                ui.label(RichText::new(f.as_str()).weak());
            }
        });
        ui.label(RichText::new(&imp.explanation).small());
    }
    let needs_sure = rating > Rating::None;
    if needs_sure {
        let sure = format!("{SURE} Move every VM of {from} to {to} and accept the {rating} risk");
        ui.checkbox(&mut state.sure, sure);
    }
    let ok = !vms.is_empty() && !running && (!needs_sure || state.sure);
    let button = ui.add_enabled(ok, egui::Button::new(START));
    if running {
        ui.label(RichText::new("A group migration is running: one at a time.").weak());
    } else if needs_sure && !state.sure {
        ui.label(
            RichText::new(format!(
                "Tick \"Are you sure?\" to start a group migration rated {rating}"
            ))
            .weak(),
        );
    }
    if button.clicked() {
        actions.push(Action::Request(Request::Engine(Command::MigrateGroup {
            from: from.clone(),
            to: to.clone(),
            confirm: state.sure,
        })));
        state.sure = false;
    }
    for g in snap.group_migrations.iter().rev().take(3) {
        ui.separator();
        operation(ui, g);
    }
}

fn operation(ui: &mut Ui, g: &GroupMigrationView) {
    let tone = match g.phase {
        GroupPhase::Copying | GroupPhase::Switched => Tone::Busy,
        GroupPhase::Succeeded => Tone::Good,
        GroupPhase::RolledBack => Tone::Warn,
        GroupPhase::Interrupted => Tone::Bad,
    };
    ui.horizontal(|ui| {
        ui.label(RichText::new(format!("#{} {} ▶ {}", g.id, g.from, g.to)).strong());
        style::badge(ui, &g.status, tone, &g.message);
    });
    ui.horizontal_wrapped(|ui| {
        ui.label(format!("Started {}", mm_ss(g.started_at)));
        if let Some(s) = g.switched_at {
            ui.label(format!("· switched {}", mm_ss(s)));
        }
        ui.label(format!("· {} write(s) mirrored back", g.reverse_writes));
        if let (Some(c), Some(p)) = (g.point_cut_at, g.point_published_at) {
            ui.label(format!("· point cut {} published {}", mm_ss(c), mm_ss(p)));
        }
    });
    for m in &g.members {
        ui.horizontal(|ui| {
            let frac = if m.blocks == 0 {
                0.0
            } else {
                m.copied_blocks as f32 / m.blocks as f32
            };
            ui.label(format!("{} {} to {}", m.vm, m.from, m.to));
            ui.add(
                egui::ProgressBar::new(frac)
                    .desired_width(120.0)
                    .text(if m.copied {
                        "copied".into()
                    } else {
                        format!("{:.0}%", frac * 100.0)
                    }),
            );
            ui.label(RichText::new(format!("on {}", m.on)).weak());
        });
    }
    if !g.message.is_empty() {
        ui.label(RichText::new(&g.message).small());
    }
}
