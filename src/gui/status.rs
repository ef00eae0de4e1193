//! The status bar at the bottom of the window: the simulated time, the speed asked and
//! the speed achieved (and whether the machine keeps up), the RPO alarm count, the
//! migrations running, and the workspace with its state. Every item explains itself on
//! hover; the counts open the view that lists them.

use std::path::Path;

use egui::{RichText, Sense, Ui};

use super::live::{Live, Status, mm_ss};
use super::style::{Tone, speed_label, toned};
use super::{Action, SideTab};
use crate::engine::Progress;

/// The number of path components the bar shows of the workspace ("…/workspaces/demo").
const PATH_TAIL: usize = 2;

/// `path` shortened to its last components: "…/workspaces/two-site-demo".
pub fn short_path(path: &Path) -> String {
    let parts: Vec<_> = path.components().collect();
    if parts.len() <= PATH_TAIL + 1 {
        return path.display().to_string();
    }
    let tail: std::path::PathBuf = parts[parts.len() - PATH_TAIL..].iter().collect();
    format!("…{}{}", std::path::MAIN_SEPARATOR, tail.display())
}

/// The groups violating their RPO now, from the latest snapshot.
pub fn rpo_alarms(live: &Live) -> Vec<&str> {
    live.snapshot
        .as_ref()
        .map(|s| {
            s.groups
                .iter()
                .filter(|g| g.rpo_violation)
                .map(|g| g.id.as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// A label that can be clicked.
fn clickable(ui: &mut Ui, text: RichText, hint: impl Into<egui::WidgetText>) -> bool {
    ui.add(egui::Label::new(text).sense(Sense::click()))
        .on_hover_text(hint)
        .clicked()
}

pub(crate) fn bar(ui: &mut Ui, live: &Live, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        let open = live.is_open();
        let now = live.snapshot.as_ref().map(|s| s.now).filter(|_| open);
        ui.label(
            RichText::new(format!(
                "⏱ sim {}",
                now.map(mm_ss).unwrap_or_else(|| "--:--".into())
            ))
            .monospace()
            .strong(),
        )
        .on_hover_text(
            "Simulated time (mm:ss, h:mm:ss from the first hour) since the workspace was created. It runs on across restarts: the workspace keeps it.",
        );
        ui.separator();
        speed(ui, live, open);
        ui.separator();

        let late = rpo_alarms(live);
        let (text, tone) = if !open {
            ("RPO alarms: —".to_string(), Tone::Muted)
        } else if late.is_empty() {
            ("RPO alarms: 0".to_string(), Tone::Good)
        } else {
            (format!("RPO alarms: {}", late.len()), Tone::Bad)
        };
        let hint = if late.is_empty() {
            "Replication groups lagging more than their RPO now: none. Click for the replication view.".to_string()
        } else {
            format!(
                "Replication groups lagging more than their RPO now: {}. Click for the replication view.",
                late.join(", ")
            )
        };
        if clickable(ui, toned(ui, text, tone), hint) {
            actions.push(Action::ShowSide(SideTab::Replication));
        }
        ui.separator();

        if let Some(link) = live.link().filter(|l| open && !l.is_up()) {
            let tone = match link {
                super::live::LinkState::SiteLost(_) => Tone::Bad,
                _ => Tone::Warn,
            };
            if clickable(
                ui,
                toned(ui, "link down", tone),
                format!(
                    "The replication link carries nothing: {}. Click for the replication view.",
                    link.reason()
                ),
            ) {
                actions.push(Action::ShowSide(SideTab::Replication));
            }
            ui.separator();
        }

        let running = live.running_tasks();
        let tone = if running > 0 { Tone::Busy } else { Tone::Muted };
        if clickable(
            ui,
            toned(ui, format!("Migrations running: {running}"), tone),
            "Storage migrations in flight. Click for the task list.",
        ) {
            actions.push(Action::ShowSide(SideTab::Migrations));
        }

        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            workspace(ui, live);
        });
    });
}

/// The speed asked, the speed achieved, and whether the engine keeps up.
fn speed(ui: &mut Ui, live: &Live, open: bool) {
    let clock = live.clock;
    if !open {
        ui.label(RichText::new("speed —").weak())
            .on_hover_text("No engine runs: the simulated clock is stopped.");
        return;
    }
    ui.label(format!("{} asked", speed_label(clock.speed)))
        .on_hover_text("The speed chosen in the toolbar: simulated seconds per wall second.");
    if clock.paused {
        ui.label(toned(ui, "clock paused", Tone::Muted))
            .on_hover_text(
                "The simulated clock stands still: guests and copies wait. Resume in the toolbar.",
            );
        return;
    }
    ui.label(format!("{} achieved", speed_label(clock.achieved)))
        .on_hover_text("The speed the simulated clock really ran at over the last half second.");
    if clock.behind {
        ui.label(toned(ui, "⚠ behind", Tone::Warn)).on_hover_text(format!(
            "The engine needs more wall time than {} allows: the simulated clock runs slower than asked. Choose a lower speed to keep up.",
            speed_label(clock.speed)
        ));
    } else {
        ui.label(toned(ui, "keeps up", Tone::Good))
            .on_hover_text("The machine runs the simulation at the speed asked.");
    }
}

/// What the console says while the workspace opens: how far its creation has come, or
/// that it is being opened (an existing workspace, recovering from a crash if needed).
pub fn opening_text(preparing: Option<Progress>) -> String {
    match preparing {
        Some(p) if p.done < p.total => {
            format!("Preparing the workspace — {} of {} VMs", p.done, p.total)
        }
        Some(p) => format!("Preparing the workspace — {} VMs made, starting", p.total),
        None => "Opening the workspace…".to_string(),
    }
}

/// The fraction of the workspace's creation done, if it is being created.
fn opening_fraction(preparing: Option<Progress>) -> Option<f32> {
    preparing.map(|p| p.done as f32 / p.total.max(1) as f32)
}

/// Stands in for a panel that needs the running workspace: while the workspace opens, how
/// far it has come (a progress bar while it is created); otherwise `closed`, why nothing
/// runs.
pub fn not_running(ui: &mut Ui, live: &Live, closed: &str) {
    if !matches!(live.status, Status::Opening(_)) {
        ui.label(RichText::new(closed).weak());
        return;
    }
    ui.horizontal(|ui| {
        ui.spinner();
        ui.label(RichText::new(opening_text(live.preparing)).weak());
    });
    if let Some(f) = opening_fraction(live.preparing) {
        ui.add(
            egui::ProgressBar::new(f)
                .desired_width(ui.available_width().min(320.0))
                .show_percentage(),
        );
    }
}

fn workspace(ui: &mut Ui, live: &Live) {
    match &live.status {
        Status::Off => {
            ui.label(RichText::new("No workspace: browsing only").weak())
                .on_hover_text("Started without a workspace: the topology can be browsed and rated, nothing runs.");
        }
        Status::Opening(root) => {
            ui.spinner();
            if let Some(f) = opening_fraction(live.preparing) {
                ui.add(egui::ProgressBar::new(f).desired_width(120.0));
            }
            let text = match live.preparing {
                Some(_) => opening_text(live.preparing),
                None => format!("Opening {}…", short_path(root)),
            };
            ui.label(RichText::new(text).weak()).on_hover_text(format!(
                "Opening the workspace {} (creating it from the topology, or recovering from a crash if needed). The inventory, the ratings and \"Where can it go?\" answer meanwhile.",
                root.display()
            ));
        }
        Status::Open(root) => {
            ui.add(
                egui::Label::new(RichText::new(format!("🗁 {}", short_path(root))).weak())
                    .truncate(),
            )
            .on_hover_text(format!(
                "Workspace: {}. It holds the engine's state; reopening the console continues from it.",
                root.display()
            ));
        }
        Status::Failed { root, error } => {
            ui.add(
                egui::Label::new(toned(
                    ui,
                    format!("⚠ No workspace ({}): browsing only", short_path(root)),
                    Tone::Warn,
                ))
                .truncate(),
            )
            .on_hover_text(format!(
                "{error}\nThe topology can be browsed and rated, but nothing runs."
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_shortened_to_their_tail() {
        let sep = std::path::MAIN_SEPARATOR;
        assert_eq!(
            short_path(Path::new("/home/op/.local/share/drconsole/workspaces/demo")),
            format!("…{sep}workspaces{sep}demo")
        );
        assert_eq!(short_path(Path::new("/ws/demo")), "/ws/demo");
        assert_eq!(short_path(Path::new("demo")), "demo");
    }
}
