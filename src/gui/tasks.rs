//! The task list: every migration since the workspace opened, running ones first, each
//! with its progress, rate, ETA and a Cancel button (a Retry button and the error when its
//! roll-back failed); finished ones greyed with their result.

use egui::{RichText, Ui};

use super::Action;
use super::live::{Live, Status, Task, TaskState, count};
use super::style::{self, glyph};
use super::worker::Request;
use crate::engine::{Command, Phase};

pub fn show(ui: &mut Ui, live: &mut Live, max_height: f32, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        ui.strong("Migrations");
        let running = live.running_tasks();
        if running > 0 {
            ui.label(RichText::new(format!("{running} running")).weak());
        }
        if live.tasks.iter().any(Task::finished) {
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui
                    .small_button("Clear finished")
                    .on_hover_text(
                        "Remove completed, cancelled and failed migrations from the list",
                    )
                    .clicked()
                {
                    live.clear_finished();
                }
            });
        }
    });
    ui.separator();
    if live.tasks.is_empty() {
        let hint = match &live.status {
            Status::Open(_) => {
                "No migrations yet. Select a VM and press \"Migrate…\", or use Migrate ▶ Migrate a VM…"
            }
            Status::Opening(_) | Status::Off | Status::Failed { .. } => {
                "No workspace is open, so nothing can move. The topology can still be browsed and every move rated."
            }
        };
        super::status::not_running(ui, live, hint);
        return;
    }
    // Running first (oldest first), then finished (newest first).
    let mut order: Vec<usize> = (0..live.tasks.len())
        .filter(|&i| !live.tasks[i].finished())
        .collect();
    order.extend(
        (0..live.tasks.len())
            .rev()
            .filter(|&i| live.tasks[i].finished()),
    );
    egui::ScrollArea::vertical()
        .id_salt("tasks")
        .max_height(max_height)
        .auto_shrink([false, true])
        .show(ui, |ui| {
            for i in order {
                card(ui, &live.tasks[i], actions);
                ui.add_space(4.0);
            }
        });
}

fn card(ui: &mut Ui, t: &Task, actions: &mut Vec<Action>) {
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        if t.finished() {
            ui.multiply_opacity(0.6);
        }
        ui.horizontal(|ui| {
            ui.strong(format!("{} {}", glyph::VM, t.vm));
            ui.label(format!("{} ➡ {}", t.from, t.to));
            ui.label(RichText::new(t.mode.as_str()).weak());
            if let Some(r) = t.rating {
                ui.label(style::rating_text(ui, r).small())
                    .on_hover_text("The move's DR rating");
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                match t.state {
                    TaskState::Running if t.view.phase == Phase::RollbackFailed => {
                        // Both copies are kept; the operator retries once the storage is fixed.
                        let b = ui.button("Retry").on_hover_text(
                            "Copy the blocks still newer on the destination back to the source again. Both copies stay until it succeeds.",
                        );
                        let name = format!("Retry the roll-back of {}", t.vm);
                        b.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &name));
                        if b.clicked() {
                            actions.push(Action::Request(Request::Engine(
                                Command::RetryRollback { vm: t.vm.clone() },
                            )));
                        }
                    }
                    TaskState::Running => {
                        let cancelling = t.view.rolling_back;
                        let b = ui
                            .add_enabled(!cancelling, egui::Button::new("Cancel"))
                            .on_hover_text(match t.mode {
                                crate::engine::copy::CopyMode::Mirror => {
                                    "Stop and delete the copy: the source is complete."
                                }
                                _ => "Copy the blocks written on the destination back to the source, then delete the copy.",
                            });
                        let name = format!("Cancel the migration of {}", t.vm);
                        b.widget_info(|| {
                            egui::WidgetInfo::labeled(egui::Role::Button, !cancelling, &name)
                        });
                        if b.clicked() {
                            actions.push(Action::Request(Request::Engine(
                                Command::CancelMigration { vm: t.vm.clone() },
                            )));
                        }
                    }
                    s => {
                        let icon = match s {
                            TaskState::Completed => "✔",
                            TaskState::Cancelled => "✖",
                            _ => "⚠",
                        };
                        ui.label(format!("{icon} {}", s.as_str()));
                    }
                }
            });
        });
        let v = &t.view;
        let (fraction, text) = if t.state == TaskState::Running && v.rolling_back {
            let done = v.blocks.saturating_sub(v.blocks_left);
            let what = if v.phase == Phase::RollbackFailed {
                "roll-back failed"
            } else {
                "rolling back"
            };
            (
                done as f32 / v.blocks.max(1) as f32,
                format!("{what}: {} blocks left", count(v.blocks_left)),
            )
        } else {
            let p = t.percent();
            let phase = match t.state {
                TaskState::Running => v.phase.as_str(),
                s => s.as_str(),
            };
            ((p / 100.0) as f32, format!("{p:.0}%  ·  {phase}"))
        };
        ui.add(egui::ProgressBar::new(fraction).text(text));
        if t.state == TaskState::Running && v.phase == Phase::RollbackFailed {
            let err = v.error.as_deref().unwrap_or("I/O error");
            ui.label(style::toned(
                ui,
                format!(
                    "⚠ Roll-back failed: {err}. Both copies are kept and the VM runs on them; nothing is lost."
                ),
                style::Tone::Bad,
            ));
        } else if t.state == TaskState::Running {
            ui.label(
                RichText::new(format!(
                    "{} MiB/s  ·  ETA {}  ·  {} blocks left  ·  mirror queue {}",
                    super::style::rate_text(v.mib_per_s),
                    super::style::duration_text(v.eta_s),
                    count(v.blocks_left),
                    count(v.mirror_pending as u64)
                ))
                .weak(),
            );
        } else if let Some(m) = &t.message {
            ui.label(RichText::new(m).weak());
        }
    });
}
