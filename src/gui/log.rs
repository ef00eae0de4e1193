//! The event log and its toasts: every error lands in both, so the operator sees it now
//! and can read it later.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use egui::{Color32, RichText};

use crate::engine::{self, SimTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    fn color(self, dark: bool) -> Color32 {
        match (self, dark) {
            (Level::Info, true) => Color32::from_gray(200),
            (Level::Info, false) => Color32::from_gray(40),
            (Level::Warning, _) => Color32::from_rgb(220, 150, 30),
            (Level::Error, true) => Color32::from_rgb(240, 90, 80),
            (Level::Error, false) => Color32::from_rgb(190, 30, 30),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LogEntry {
    /// Wall-clock time of day, UTC, `HH:MM:SS`.
    pub time: String,
    /// Simulated time, for what the engine reported.
    pub sim: Option<SimTime>,
    pub level: Level,
    pub message: String,
}

struct Toast {
    level: Level,
    message: String,
    until: Instant,
}

#[derive(Default)]
pub struct EventLog {
    pub entries: Vec<LogEntry>,
    toasts: Vec<Toast>,
}

/// Characters of the simulated-time column ("sim mm:ss.s" and a space), so rows line up.
const SIM_COLUMN: usize = 12;

/// How long a toast stays unless closed.
const TOAST_INFO: Duration = Duration::from_secs(4);
const TOAST_ERROR: Duration = Duration::from_secs(12);

fn time_of_day() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

impl EventLog {
    pub fn push(&mut self, level: Level, message: impl Into<String>, toast: bool) {
        self.push_at(level, message, None, toast);
    }

    /// An entry stamped with the simulated time it happened at.
    pub fn push_at(
        &mut self,
        level: Level,
        message: impl Into<String>,
        sim: Option<SimTime>,
        toast: bool,
    ) {
        let message = message.into();
        if toast {
            self.toast(level, message.clone());
        }
        self.entries.push(LogEntry {
            time: time_of_day(),
            sim,
            level,
            message,
        });
    }

    /// A toast for something the log already holds.
    pub fn toast(&mut self, level: Level, message: impl Into<String>) {
        let life = if level == Level::Error {
            TOAST_ERROR
        } else {
            TOAST_INFO
        };
        self.toasts.push(Toast {
            level,
            message: message.into(),
            until: Instant::now() + life,
        });
    }

    /// Logged only.
    pub fn info(&mut self, message: impl Into<String>) {
        self.push(Level::Info, message, false);
    }

    /// Logged and shown as a toast.
    pub fn warning(&mut self, message: impl Into<String>) {
        self.push(Level::Warning, message, true);
    }

    /// Logged and shown as a toast.
    pub fn error(&mut self, message: impl Into<String>) {
        self.push(Level::Error, message, true);
    }

    /// The messages of the toasts on screen now.
    pub fn visible_toasts(&self) -> Vec<&str> {
        self.toasts.iter().map(|t| t.message.as_str()).collect()
    }

    /// The log as a table, newest last, only visible rows laid out.
    pub fn ui(&self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.strong("Event log");
            let n = self.entries.len();
            let noun = if n == 1 { "entry" } else { "entries" };
            ui.label(RichText::new(format!("{n} {noun}")).weak());
        });
        ui.separator();
        if self.entries.is_empty() {
            ui.weak("Nothing has happened yet.");
            return;
        }
        let row_h = ui.text_style_height(&egui::TextStyle::Body);
        let dark = ui.visuals().dark_mode;
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .stick_to_bottom(true)
            .show_rows(ui, row_h, self.entries.len(), |ui, rows| {
                for e in &self.entries[rows] {
                    ui.horizontal(|ui| {
                        ui.monospace(&e.time);
                        let sim = e
                            .sim
                            .map(|t| format!("sim {}", engine::format_time(t)))
                            .unwrap_or_default();
                        ui.label(
                            RichText::new(format!("{sim:<SIM_COLUMN$}"))
                                .monospace()
                                .weak(),
                        )
                        .on_hover_text("Simulated time");
                        ui.label(
                            RichText::new(e.level.as_str())
                                .color(e.level.color(dark))
                                .monospace(),
                        );
                        ui.label(&e.message);
                    });
                }
            });
    }

    /// Draws the toasts in the top-right corner and drops the expired ones.
    pub fn toasts(&mut self, ui: &mut egui::Ui) {
        let now = Instant::now();
        self.toasts.retain(|t| t.until > now);
        if self.toasts.is_empty() {
            return;
        }
        let dark = ui.visuals().dark_mode;
        let mut close = None;
        egui::Area::new(egui::Id::unique("toasts"))
            .anchor(egui::Align2::RIGHT_TOP, [-12.0, 36.0])
            .order(egui::Order::Foreground)
            .show(ui.ctx(), |ui| {
                ui.set_max_width(460.0);
                for (i, t) in self.toasts.iter().enumerate() {
                    egui::Frame::popup(ui.style())
                        .stroke(egui::Stroke::new(1.5, t.level.color(dark)))
                        .show(ui, |ui| {
                            ui.horizontal(|ui| {
                                ui.label(
                                    RichText::new(t.level.as_str().to_uppercase())
                                        .color(t.level.color(dark))
                                        .strong(),
                                );
                                if ui.small_button("✖").on_hover_text("Dismiss").clicked() {
                                    close = Some(i);
                                }
                            });
                            ui.label(&t.message);
                        });
                    ui.add_space(6.0);
                }
            });
        if let Some(i) = close {
            self.toasts.remove(i);
        }
        // Come back when the next toast expires.
        if let Some(next) = self.toasts.iter().map(|t| t.until).min() {
            ui.ctx()
                .request_repaint_after(next.saturating_duration_since(now));
        }
    }
}
