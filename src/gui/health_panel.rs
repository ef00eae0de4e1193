//! The Resilience tab's section on arrays: health, which side serves each pair, resync progress, replication direction; fault and healthy.

use egui::{RichText, Ui};

use super::style::{self, Tone};
use super::worker::Request;
use super::{Action, Document, Live};
use crate::engine::{Command, HealthPairView};

/// The accessible names of an array's buttons.
pub fn fault_name(array: &str) -> String {
    format!("Fault {array}")
}
pub fn healthy_name(array: &str) -> String {
    format!("Mark {array} healthy")
}

/// This section's own widget state (kept across frames).
#[derive(Default)]
pub struct State {}

/// Draws the section. Engine commands go out as `Action::Request(Request::Engine(..))`.
pub(crate) fn show(
    ui: &mut Ui,
    doc: &Document,
    live: &Live,
    _state: &mut State,
    actions: &mut Vec<Action>,
) {
    ui.heading("Array health");
    let Some(snap) = live.snapshot.as_ref().filter(|_| live.is_open()) else {
        super::status::not_running(
            ui,
            live,
            "No workspace is open: no array reports its health.",
        );
        return;
    };
    if snap.arrays.is_empty() || !snap.arrays.iter().any(|a| a.can_fault) {
        ui.label(
            RichText::new(
                "This topology has no protected array with replicated or distributed LUNs.",
            )
            .weak(),
        );
    }
    for a in &snap.arrays {
        // The single source of what the array can do: its site is there or it is lost.
        let lost = snap.sites_down.contains(&a.site);
        ui.horizontal(|ui| {
            ui.label(RichText::new(&a.id).strong());
            let site = doc
                .topology
                .site(&a.site)
                .map_or(a.site.clone(), |s| format!("{} ({})", a.site, s.name));
            ui.label(RichText::new(format!("at {site}")).weak());
            if lost {
                style::badge(
                    ui,
                    "lost",
                    Tone::Bad,
                    &format!(
                        "Site {} is lost in a disaster: the array serves no I/O and replicates nothing",
                        a.site
                    ),
                );
            } else if a.faulted {
                style::badge(
                    ui,
                    "faulted",
                    Tone::Bad,
                    "The array reports a health condition: its replicated pairs serve I/O from their replicas",
                );
            } else {
                style::badge(ui, "healthy", Tone::Good, "The array reports no health condition");
            }
            if a.can_fault {
                let (text, command, hint) = if a.faulted {
                    (
                        healthy_name(&a.id),
                        Command::ArrayHealthy { array: a.id.clone() },
                        "Health returns: copy the changes made on the replicas back, swap I/O back, then restart replication in its original direction",
                    )
                } else {
                    (
                        fault_name(&a.id),
                        Command::ArrayFault { array: a.id.clone() },
                        "Report a health condition: drain each pair with a final cycle, then swap its VMs' I/O to the replicas",
                    )
                };
                if ui
                    .add_enabled(!lost, egui::Button::new(text))
                    .on_hover_text(hint)
                    .on_disabled_hover_text(format!(
                        "Site {} is lost: the array reports nothing any more",
                        a.site
                    ))
                    .clicked()
                {
                    actions.push(Action::Request(Request::Engine(command)));
                }
            }
        });
        ui.indent(("array-health", &a.id), |ui| {
            for p in &a.pairs {
                let tone = match p.phase.as_deref() {
                    _ if lost => Tone::Bad,
                    Some("draining") => Tone::Warn,
                    Some("swapped") => Tone::Warn,
                    Some("resyncing") => Tone::Busy,
                    _ => Tone::Good,
                };
                ui.horizontal_wrapped(|ui| {
                    ui.label(RichText::new(&p.group).strong());
                    let pairs: Vec<String> = p
                        .datastores
                        .iter()
                        .map(|(d, r)| format!("{d} ▶ {r}"))
                        .collect();
                    ui.label(RichText::new(pairs.join(", ")).weak());
                    if lost {
                        ui.label(style::toned(ui, "lost: no I/O, no replication", tone));
                        return;
                    }
                    ui.label(format!("I/O on {}", p.serving));
                    ui.label(style::toned(
                        ui,
                        p.phase.as_deref().unwrap_or("normal"),
                        tone,
                    ));
                    ui.label(RichText::new(format!("replication {}", p.direction)).weak());
                });
                if lost {
                    continue;
                }
                ui.label(RichText::new(&p.state).small());
                match p.phase.as_deref() {
                    Some("resyncing") => {
                        ui.add(
                            egui::ProgressBar::new(p.progress)
                                .desired_width(260.0)
                                .text(format!("{} block(s) left", p.blocks_left)),
                        );
                        swap_back_line(ui, p);
                    }
                    Some("swapped") => {
                        ui.label(format!(
                            "{} block(s) tracked on the replicas",
                            p.tracked_blocks
                        ));
                        swap_back_line(ui, p);
                    }
                    Some("draining") => {
                        ui.label(format!("final cycle: {} block(s) to ship", p.blocks_left));
                    }
                    _ => {}
                }
            }
        });
    }
}

/// The early swap-back: its threshold and hold period, and while resyncing the latencies
/// compared and the countdown.
fn swap_back_line(ui: &mut Ui, p: &HealthPairView) {
    let (Some(limit), Some(hold)) = (p.swap_back_threshold_ms, p.swap_back_hold_s) else {
        return;
    };
    let rule = format!(
        "Swap back early when the latency expected on the primaries stays within {limit} ms of the one recorded on the replicas for {hold} s"
    );
    if p.swapping_back_early {
        ui.label(style::toned(
            ui,
            "Swapping back early: guests held while the last blocks go back",
            Tone::Busy,
        ))
        .on_hover_text(rule);
        return;
    }
    let (Some(expected), Some(recorded)) = (p.expected_latency_ms, p.recorded_latency_ms) else {
        ui.label(RichText::new(rule).weak().small());
        return;
    };
    let diff = expected - recorded;
    let (text, tone) = match p.within_for_s {
        Some(w) => (
            format!(
                "Latency: expected {expected:.2} ms, recorded {recorded:.2} ms ({diff:+.2} ≤ {limit} ms) · swap back in {:.1} s",
                (hold - w).max(0.0)
            ),
            Tone::Good,
        ),
        None => (
            format!(
                "Latency: expected {expected:.2} ms, recorded {recorded:.2} ms ({diff:+.2} > {limit} ms) · waiting for the resync"
            ),
            Tone::Muted,
        ),
    };
    ui.label(style::toned(ui, text, tone)).on_hover_text(rule);
}
