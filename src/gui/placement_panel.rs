//! The Resilience tab's section on datastore clusters: space use, maintenance mode, evacuation, Balance recommendations with ratings and override.

use std::collections::BTreeMap;

use egui::{RichText, Ui};

use super::style::{self, ChipKind, Tone, glyph};
use super::worker::Request;
use super::{Action, Document, Live};
use crate::dr::Rating;
use crate::engine::copy::CopyMode;
use crate::engine::{Command, PlacementView};

/// This section's own widget state (kept across frames).
#[derive(Default)]
pub struct State {
    /// The "Are you sure?" of each recommendation, by VM.
    sure: BTreeMap<String, bool>,
}

/// Accessible names of the section's buttons.
pub fn enter_name(ds: &str) -> String {
    format!("Enter maintenance {ds}")
}
pub fn exit_name(ds: &str) -> String {
    format!("Exit maintenance {ds}")
}
pub fn evacuate_name(ds: &str) -> String {
    format!("Evacuate {ds} again")
}
pub fn balance_name(cluster: &str) -> String {
    format!("Balance {cluster}")
}
pub fn sure_name(vm: &str, to: &str) -> String {
    format!("Are you sure? {vm} to {to}")
}
pub fn apply_name(vm: &str, to: &str) -> String {
    format!("Apply {vm} to {to}")
}

fn send(actions: &mut Vec<Action>, c: Command) {
    actions.push(Action::Request(Request::Engine(c)));
}

/// Draws the section. Engine commands go out as `Action::Request(Request::Engine(..))`.
pub(crate) fn show(
    ui: &mut Ui,
    doc: &Document,
    live: &Live,
    state: &mut State,
    actions: &mut Vec<Action>,
) {
    ui.heading("Datastore clusters");
    if doc.topology.datastore_clusters.is_empty() {
        ui.label(RichText::new("This topology has no datastore cluster.").weak());
        return;
    }
    let Some(snap) = live.snapshot.as_ref().filter(|_| live.is_open()) else {
        let names: Vec<&str> = doc
            .topology
            .datastore_clusters
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        ui.label(
            RichText::new(format!(
                "Clusters {}: open a workspace to see space use, maintenance mode and Balance.",
                names.join(", ")
            ))
            .weak(),
        );
        return;
    };
    for view in &snap.placement {
        cluster(ui, view, state, actions);
        ui.add_space(6.0);
    }
    // Forget the checkboxes of recommendations that are gone.
    let live_recs: Vec<&str> = snap
        .placement
        .iter()
        .flat_map(|p| p.recommendations.iter().map(|r| r.vm.as_str()))
        .collect();
    state.sure.retain(|vm, _| live_recs.contains(&vm.as_str()));
}

/// "12.5%" from basis points.
fn percent(bp: u64) -> String {
    format!("{}.{}%", bp / 100, (bp % 100) / 10)
}

fn cluster(ui: &mut Ui, view: &PlacementView, state: &mut State, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        let title = match &view.cluster {
            Some(id) => format!("{} {id}", glyph::DATASTORE),
            None => glyph::DATASTORE.to_string(),
        };
        ui.label(RichText::new(title).strong());
        ui.label(RichText::new(&view.name).weak());
        ui.label(format!("spread {}", percent(view.spread_bp)))
            .on_hover_text(
                "The fullest minus the emptiest datastore's used fraction, over the datastores not in maintenance mode",
            );
        if let Some(id) = &view.cluster
            && ui
                .button(balance_name(id))
                .on_hover_text(
                    "Recommend moves that even out space use: moves inside a consistency group (or between non-replicated datastores) start at once; moves across CGs are listed below and need your override",
                )
                .clicked()
            {
                send(
                    actions,
                    Command::Balance {
                        cluster: id.clone(),
                        confirm: false,
                    },
                );
        }
    });
    let grid_id = format!("placement-{}", view.cluster.as_deref().unwrap_or("-"));
    egui::Grid::new(grid_id)
        .num_columns(4)
        .spacing([10.0, 4.0])
        .show(ui, |ui| {
            for k in 0..view.datastores.len() {
                datastore_row(ui, view, k, actions);
                ui.end_row();
            }
        });
    if !view.recommendations.is_empty() {
        ui.label(RichText::new("Recommendations (need your override)").strong());
        for k in 0..view.recommendations.len() {
            recommendation(ui, view, k, state, actions);
        }
    }
}

/// One datastore of a cluster: name, CG, space use, maintenance and its buttons.
fn datastore_row(ui: &mut Ui, view: &PlacementView, k: usize, actions: &mut Vec<Action>) {
    let d = &view.datastores[k];
    ui.label(format!("{} {}", glyph::DATASTORE, d.id));
    match (&d.consistency_group, d.replicated) {
        (Some(cg), _) => style::chip(ui, cg, ChipKind::ConsistencyGroup),
        (None, true) => style::chip(ui, "replicated, no CG", ChipKind::Replicated),
        (None, false) => style::chip(ui, "not replicated", ChipKind::NotReplicated),
    };
    let fraction = (d.used_bp as f32 / 10_000.0).clamp(0.0, 1.0);
    ui.add(
        egui::ProgressBar::new(fraction)
            .desired_width(180.0)
            .text(format!(
                "{} {} ({} of {})",
                d.id,
                percent(d.used_bp),
                style::mib_text(d.used_mib),
                style::mib_text(d.capacity_mib)
            )),
    );
    ui.horizontal(|ui| {
        if d.in_maintenance {
            style::badge(
                ui,
                "maintenance",
                Tone::Warn,
                "In maintenance mode: no VM may be placed on it",
            );
            let progress = if d.vms_left == 0 {
                "empty".to_string()
            } else if d.moving_out > 0 {
                format!("{} VM(s) left, {} moving", d.vms_left, d.moving_out)
            } else {
                format!("{} VM(s) left", d.vms_left)
            };
            ui.label(style::toned(
                ui,
                format!("{}: {progress}", d.id),
                if d.vms_left == 0 { Tone::Good } else { Tone::Busy },
            ));
            if d.vms_left > d.moving_out
                && ui
                    .button(evacuate_name(&d.id))
                    .on_hover_text("Plan the evacuation again for the VMs still on it")
                    .clicked()
            {
                send(
                    actions,
                    Command::EnterMaintenance {
                        datastore: d.id.clone(),
                        confirm: false,
                    },
                );
            }
            if ui.button(exit_name(&d.id)).clicked() {
                send(
                    actions,
                    Command::ExitMaintenance {
                        datastore: d.id.clone(),
                    },
                );
            }
        } else if ui
            .button(enter_name(&d.id))
            .on_hover_text(
                "No new VM may be placed on it; its VMs move to datastores of the same consistency group (or between non-replicated ones) at once, other moves are listed as recommendations",
            )
            .clicked()
        {
            send(
                actions,
                Command::EnterMaintenance {
                    datastore: d.id.clone(),
                    confirm: false,
                },
            );
        }
    });
}

/// One recommendation: the move, its rating, fault and explanation, and the override.
fn recommendation(
    ui: &mut Ui,
    view: &PlacementView,
    k: usize,
    state: &mut State,
    actions: &mut Vec<Action>,
) {
    let r = &view.recommendations[k];
    ui.horizontal_wrapped(|ui| {
        ui.label(format!("{} {}  {} ▶ {}", glyph::VM, r.vm, r.from, r.to));
        ui.label(style::rating_text(ui, r.rating));
        if let Some(f) = &r.fault {
            ui.label(RichText::new(f).monospace());
        }
        ui.label(RichText::new(format!("({})", r.purpose.as_str())).weak());
        if r.migrating {
            style::badge(ui, "moving", Tone::Busy, "Overridden: the move runs");
            return;
        }
        let sure = state.sure.entry(r.vm.clone()).or_insert(false);
        let needs = r.rating > Rating::None;
        if needs {
            ui.checkbox(sure, sure_name(&r.vm, &r.to));
        }
        let ok = !needs || *sure;
        if ui
            .add_enabled(ok, egui::Button::new(apply_name(&r.vm, &r.to)))
            .on_disabled_hover_text(format!(
                "Tick \"Are you sure?\" to override a move rated {}",
                r.rating
            ))
            .clicked()
        {
            send(
                actions,
                Command::Migrate {
                    vm: r.vm.clone(),
                    to: r.to.clone(),
                    mode: CopyMode::Mirror,
                    confirm: needs,
                },
            );
            *sure = false;
        }
    });
    ui.label(RichText::new(&r.explanation).weak().small());
}
