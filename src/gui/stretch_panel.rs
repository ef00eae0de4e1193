//! The Resilience tab's section on distributed datastores: legs per site, compliance, rebuild progress; create, partition and heal.

use egui::{RichText, Ui};

use super::live::mm_ss;
use super::style::{self, Tone, glyph};
use super::worker::Request;
use super::{Action, Document, Live};
use crate::disk::BLOCK_SIZE;
use crate::engine::{Command, DistributedView, SimTime};

/// This section's own widget state (kept across frames).
#[derive(Default)]
pub struct State {}

/// The accessible name (and text) of the button creating a planned datastore.
pub fn create_name(datastore: &str) -> String {
    format!("Create {datastore}")
}

/// The accessible name (and text) of the button partitioning a site away.
pub fn partition_name(site: &str) -> String {
    format!("Partition {site}")
}

/// The accessible name (and text) of the button healing the partition.
pub const HEAL: &str = "Heal the partition";

fn send(actions: &mut Vec<Action>, c: Command) {
    actions.push(Action::Request(Request::Engine(c)));
}

fn leg_tone(state: &str) -> Tone {
    match state {
        "in sync" => Tone::Good,
        "rebuilding" => Tone::Busy,
        "behind" | "absent" => Tone::Warn,
        _ => Tone::Muted,
    }
}

/// Draws the section. Engine commands go out as `Action::Request(Request::Engine(..))`.
pub(crate) fn show(
    ui: &mut Ui,
    doc: &Document,
    live: &Live,
    _state: &mut State,
    actions: &mut Vec<Action>,
) {
    ui.heading("Distributed datastores");
    let t = &doc.topology;
    if !t.datastores.iter().any(|d| d.distributed.is_some()) {
        ui.label(RichText::new("This topology has no distributed datastore.").weak());
        return;
    }
    let Some(snap) = live.snapshot.as_ref().filter(|_| live.is_open()) else {
        super::status::not_running(
            ui,
            live,
            "No workspace is open: the legs and their compliance show once one is.",
        );
        return;
    };
    let partitioned: Vec<String> = snap
        .distributed
        .first()
        .map(|v| v.partitioned_sites.clone())
        .unwrap_or_default();
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new("Inter-site network").strong());
        if partitioned.is_empty() {
            style::badge(ui, "connected", Tone::Good, "Every site reaches the others");
        } else {
            for s in &partitioned {
                style::badge(
                    ui,
                    &format!("{s} partitioned"),
                    Tone::Warn,
                    "Cut off from the other sites: distributed datastores with a leg there track changes",
                );
            }
        }
        for s in &t.sites {
            let name = partition_name(&s.id);
            let enabled = !partitioned.contains(&s.id);
            if ui
                .add_enabled(enabled, egui::Button::new(&name))
                .on_hover_text(format!(
                    "Cut site {} off from the other sites (an inter-site network failure)",
                    s.id
                ))
                .clicked()
            {
                send(actions, Command::PartitionSite { site: s.id.clone() });
            }
        }
        if ui
            .add_enabled(!partitioned.is_empty(), egui::Button::new(HEAL))
            .on_hover_text(
                "End the partition: missing legs are created and only the tracked blocks are rebuilt",
            )
            .clicked()
        {
            send(actions, Command::HealPartition);
        }
    });
    for v in &snap.distributed {
        ui.add_space(4.0);
        card(ui, v, snap.now, actions);
    }
}

fn card(ui: &mut Ui, v: &DistributedView, now: SimTime, actions: &mut Vec<Action>) {
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new(format!("{} {}", glyph::DATASTORE, v.datastore)).strong());
            if !v.created {
                style::badge(
                    ui,
                    "planned",
                    Tone::Muted,
                    "Not created yet: no VM may live on it",
                );
                let name = create_name(&v.datastore);
                if ui
                    .button(&name)
                    .on_hover_text(
                        "Create both legs, or the local leg only while the other site is partitioned away",
                    )
                    .clicked()
                {
                    send(
                        actions,
                        Command::CreateDatastore {
                            datastore: v.datastore.clone(),
                        },
                    );
                }
            } else if v.compliant {
                style::badge(
                    ui,
                    "in compliance",
                    Tone::Good,
                    "Both legs present and identical: every write lands on both",
                );
            } else {
                style::badge(
                    ui,
                    "out of compliance",
                    Tone::Warn,
                    "One leg serves I/O; the other is missing or behind",
                );
            }
        });
        for (role, leg) in [("local", &v.local), ("remote", &v.remote)] {
            ui.horizontal(|ui| {
                ui.label(format!(
                    "{} {} · {} {} ({role})",
                    glyph::SITE,
                    leg.site,
                    glyph::LUN,
                    leg.lun
                ));
                let s = leg.state.as_str();
                style::badge(ui, s, leg_tone(s), "");
                if v.created && leg.site == v.serving_site {
                    ui.label(RichText::new("serves VM I/O").weak());
                }
            });
        }
        ui.horizontal_wrapped(|ui| {
            match &v.witness {
                Some(w) => ui
                    .label(format!("Witness: {w}"))
                    .on_hover_text(format!(
                        "When the legs lose touch both sides hold I/O for {} s, then ask {w}; the first to ask serves. A side whose array reports a fault asks {} s later, so the healthy side wins.",
                        v.polarization_delay_s.unwrap_or_default(),
                        v.unhealthy_delay_s.unwrap_or_default()
                    )),
                None => ui.label(
                    RichText::new(format!(
                        "No witness: {} (preferred) keeps serving in a partition",
                        v.local.site
                    ))
                    .weak(),
                ),
            };
            if v.created {
                ui.label(format!(
                    "· {} tracked block(s) ({})",
                    v.tracked_blocks,
                    style::size_text(v.tracked_blocks * BLOCK_SIZE as u64)
                ));
                if !v.instances.is_empty() {
                    ui.label(
                        RichText::new(format!("· instances: {}", v.instances.join(", "))).weak(),
                    );
                }
            }
        });
        if let Some(until) = v.polarizing_until {
            let left = until.saturating_sub(now) as f64 / crate::engine::SECOND as f64;
            ui.label(style::toned(
                ui,
                format!(
                    "Polarization: I/O held; the witness decides at {} (in {left:.1} s){}",
                    mm_ss(until),
                    v.polarization_winner
                        .as_deref()
                        .map_or(" — no side reaches it".to_string(), |w| format!(
                            ": {w} asks first"
                        ))
                ),
                Tone::Busy,
            ));
        }
        if v.rebuilding || v.rebuild_total > 0 {
            let frac = if v.rebuild_total == 0 {
                1.0
            } else {
                v.rebuilt as f32 / v.rebuild_total as f32
            };
            let text = if v.rebuilding {
                format!("Rebuilding {} of {} block(s)", v.rebuilt, v.rebuild_total)
            } else {
                format!("Last rebuild: {} of {} block(s)", v.rebuilt, v.rebuild_total)
            };
            ui.add(egui::ProgressBar::new(frac).text(text));
        }
        incidents(ui, v);
        if let Some(r) = v.reports.last() {
            let tone = if v.compliant { Tone::Good } else { Tone::Warn };
            ui.label(style::toned(ui, format!("{} {}", mm_ss(r.at), r.message), tone))
                .on_hover_text(
                    v.reports
                        .iter()
                        .map(|r| format!("{} {}", mm_ss(r.at), r.message))
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
        }
    });
}

/// The datastore's incident reports: each failure and every step performed (the last one
/// open), newest first.
fn incidents(ui: &mut Ui, v: &DistributedView) {
    for (n, inc) in v.incidents.iter().enumerate().rev() {
        let (state, tone) = match inc.repaired_at {
            Some(at) => (format!("repaired at {}", mm_ss(at)), Tone::Good),
            None => ("open".to_string(), Tone::Warn),
        };
        let title = format!(
            "Report {}: {} {} — {state}",
            n + 1,
            mm_ss(inc.began_at),
            inc.failure
        );
        egui::CollapsingHeader::new(style::toned(ui, title, tone))
            .id_salt(("incident", &v.datastore, n))
            .default_open(n + 1 == v.incidents.len())
            .show(ui, |ui| {
                for s in &inc.steps {
                    // Wrapped, so a long detail stays inside the card.
                    ui.horizontal_wrapped(|ui| {
                        ui.label(RichText::new(mm_ss(s.at)).monospace());
                        ui.label(RichText::new(format!("{}:", s.kind.label())).strong());
                        ui.label(RichText::new(&s.detail).small());
                    });
                }
                ui.label(
                    RichText::new(format!(
                        "{} block(s) tracked while the legs were apart, {} rebuilt",
                        inc.tracked_blocks, inc.rebuilt_blocks
                    ))
                    .weak(),
                );
            });
    }
}
