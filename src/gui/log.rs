//! The event log and its toasts: every error lands in both, so the operator sees it now
//! and can read it later.
//!
//! Every entry has a wall-clock time, the simulated time when the engine reported it, a
//! [`Level`] and a [`Kind`]. The view filters by the least level, by kind and by text
//! ([`LogFilter`], persisted with the console's settings); only the visible rows of the
//! filtered list are laid out, and the filtered list is kept between frames and extended
//! as entries arrive, so the log stays fast with many thousands of entries.
//!
//! # Kinds
//!
//! Derived where an entry is pushed ([`Kind::infer`] for what carries no kind of its own):
//!
//! | kind       | what                                                                    |
//! |------------|-------------------------------------------------------------------------|
//! | `command`  | an operator's command as the console sent it, "Operator: …" (engine commands, pause, resume, speed) |
//! | `override` | the engine's "Override: …" line: a rated move confirmed by the operator |
//! | `alarm`    | what needs attention: the engine's warnings (RPO violation, link down, abandoned cycle, refused move, writes lost) and "DISASTER: …" |
//! | `error`    | what failed: every other error, and the console's own warnings (a command with no workspace, a scan that failed) |
//! | `result`   | what the engine did (its other lines: started, completed, published, recovered) and files the console wrote (exported) |
//! | `info`     | the console's own notes (a topology or workspace opened) |
//!
//! # Export: JSON lines
//!
//! [`json_lines`] writes every entry, oldest first, one JSON object per line:
//!
//! ```json
//! {"time":"2025-05-04T13:07:21Z","sim_s":83.5,"level":"warning","kind":"override","message":"Override: web-01 to ds-local …"}
//! ```
//!
//! - `time`: wall-clock time of the entry, UTC, RFC 3339 to the second;
//! - `sim_s`: simulated seconds since the workspace was created, or `null` for what the
//!   console logged itself (opening files, failures of its own);
//! - `level`: `"info"`, `"warning"` or `"error"`;
//! - `kind`: one of the kinds above;
//! - `message`: the text as the log shows it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use egui::{Color32, RichText};
use serde::{Deserialize, Serialize};

use crate::engine::{self, SECOND, SimTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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

    /// The chip that shows entries of this level and above.
    pub fn at_least_label(self) -> &'static str {
        match self {
            Level::Info => "all levels",
            Level::Warning => "warnings and errors",
            Level::Error => "errors only",
        }
    }
}

/// What an entry is about (see the module documentation for the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Command,
    Override,
    Alarm,
    Error,
    Result,
    Info,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Command,
        Kind::Override,
        Kind::Alarm,
        Kind::Error,
        Kind::Result,
        Kind::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Command => "command",
            Kind::Override => "override",
            Kind::Alarm => "alarm",
            Kind::Error => "error",
            Kind::Result => "result",
            Kind::Info => "info",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Kind::Command => "Commands the operator sent: engine commands, pause, resume, speed",
            Kind::Override => "Moves the operator confirmed despite their DR rating",
            Kind::Alarm => {
                "What needs attention: disasters, RPO violations, the link down, abandoned cycles, refused moves, lost writes"
            }
            Kind::Error => "What failed",
            Kind::Result => "What the engine did, and files the console wrote",
            Kind::Info => "The console's own notes: topologies and workspaces opened",
        }
    }

    /// The kind of an entry pushed without one: from its level, whether the engine
    /// reported it (`from_engine`: it carries a simulated time) and the prefixes the
    /// engine gives overrides and disasters.
    pub fn infer(level: Level, message: &str, from_engine: bool) -> Kind {
        if message.starts_with("Override:") {
            return Kind::Override;
        }
        if message.starts_with("DISASTER:") {
            return Kind::Alarm;
        }
        match (level, from_engine) {
            (Level::Error, _) => Kind::Error,
            (Level::Warning, true) => Kind::Alarm,
            (Level::Warning, false) => Kind::Error,
            (Level::Info, true) => Kind::Result,
            (Level::Info, false) => Kind::Info,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LogEntry {
    /// Wall-clock time of day, UTC, `HH:MM:SS`.
    pub time: String,
    /// Wall-clock time of the entry.
    pub at: SystemTime,
    /// Simulated time, for what the engine reported.
    pub sim: Option<SimTime>,
    pub level: Level,
    pub kind: Kind,
    pub message: String,
}

/// What the log view shows: entries of at least `min_level`, of no hidden kind, whose
/// message contains `text` (ignoring case).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogFilter {
    pub min_level: Level,
    pub hidden_kinds: Vec<Kind>,
    pub text: String,
}

impl Default for LogFilter {
    fn default() -> Self {
        LogFilter {
            min_level: Level::Info,
            hidden_kinds: Vec::new(),
            text: String::new(),
        }
    }
}

impl LogFilter {
    /// A matcher for this filter (the text lower-cased once).
    fn matcher(&self) -> impl Fn(&LogEntry) -> bool + '_ {
        let needle = self.text.trim().to_lowercase();
        move |e: &LogEntry| {
            e.level >= self.min_level
                && !self.hidden_kinds.contains(&e.kind)
                && (needle.is_empty() || e.message.to_lowercase().contains(&needle))
        }
    }

    pub fn is_active(&self) -> bool {
        *self != LogFilter::default()
    }

    fn toggle(&mut self, kind: Kind) {
        if let Some(i) = self.hidden_kinds.iter().position(|&k| k == kind) {
            self.hidden_kinds.remove(i);
        } else {
            self.hidden_kinds.push(kind);
            self.hidden_kinds.sort();
        }
    }
}

/// The filtered list as last computed: the indexes of the matching entries among the
/// first `seen` entries, for `filter`.
#[derive(Default)]
struct Shown {
    filter: LogFilter,
    seen: usize,
    rows: Vec<usize>,
}

struct Toast {
    level: Level,
    message: String,
    until: Instant,
}

#[derive(Default)]
pub struct EventLog {
    /// Every entry, oldest first. Only appended to (the view relies on it).
    pub entries: Vec<LogEntry>,
    pub filter: LogFilter,
    shown: Shown,
    toasts: Vec<Toast>,
}

/// What the operator asked of the log view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogResponse {
    /// The Export… button was clicked.
    pub export: bool,
    /// Where the rows are, under the filters: the toasts go over them.
    pub rows: egui::Rect,
}

impl Default for LogResponse {
    fn default() -> Self {
        LogResponse {
            export: false,
            rows: egui::Rect::NOTHING,
        }
    }
}

/// Characters of the simulated-time column ("sim mm:ss.s" and a space), so rows line up.
const SIM_COLUMN: usize = 12;
/// Characters of the kind column.
const KIND_COLUMN: usize = 8;

/// How long a toast stays unless closed.
const TOAST_INFO: Duration = Duration::from_secs(4);
const TOAST_ERROR: Duration = Duration::from_secs(12);

/// The accessible name of the log's text filter.
pub const FILTER_LABEL: &str = "Filter the log";
/// The export button.
pub const EXPORT_LABEL: &str = "Export…";

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn time_of_day(t: SystemTime) -> String {
    let secs = unix_seconds(t) % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// `t` as RFC 3339 in UTC to the second: "2025-05-04T13:07:21Z".
pub fn rfc3339(t: SystemTime) -> String {
    let secs = unix_seconds(t);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// One line of the JSON-lines export (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedEntry {
    pub time: String,
    pub sim_s: Option<f64>,
    pub level: Level,
    pub kind: Kind,
    pub message: String,
}

impl From<&LogEntry> for ExportedEntry {
    fn from(e: &LogEntry) -> Self {
        ExportedEntry {
            time: rfc3339(e.at),
            sim_s: e.sim.map(|t| t as f64 / SECOND as f64),
            level: e.level,
            kind: e.kind,
            message: e.message.clone(),
        }
    }
}

/// `entries` as JSON lines, one object per entry, each line ending in '\n'.
pub fn json_lines(entries: &[LogEntry]) -> String {
    let mut out = String::with_capacity(entries.len() * 128);
    for e in entries {
        // A struct of strings, numbers and enums always serializes.
        let line = serde_json::to_string(&ExportedEntry::from(e)).unwrap_or_default();
        out.push_str(&line);
        out.push('\n');
    }
    out
}

impl EventLog {
    pub fn push(&mut self, level: Level, message: impl Into<String>, toast: bool) {
        self.push_at(level, message, None, toast);
    }

    /// An entry stamped with the simulated time it happened at; its kind is inferred
    /// ([`Kind::infer`]).
    pub fn push_at(
        &mut self,
        level: Level,
        message: impl Into<String>,
        sim: Option<SimTime>,
        toast: bool,
    ) {
        let message = message.into();
        let kind = Kind::infer(level, &message, sim.is_some());
        self.record(kind, level, message, sim, toast);
    }

    /// An entry of a known kind.
    pub fn record(
        &mut self,
        kind: Kind,
        level: Level,
        message: impl Into<String>,
        sim: Option<SimTime>,
        toast: bool,
    ) {
        let message = message.into();
        if toast {
            self.toast(level, message.clone());
        }
        let at = SystemTime::now();
        self.entries.push(LogEntry {
            time: time_of_day(at),
            at,
            sim,
            level,
            kind,
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

    /// Brings the filtered list up to date: recomputed when the filter changed (or the
    /// log shrank), else extended by the entries that arrived since.
    fn refresh(&mut self) {
        if self.shown.filter != self.filter || self.shown.seen > self.entries.len() {
            self.shown = Shown {
                filter: self.filter.clone(),
                ..Shown::default()
            };
        }
        let matches = self.filter.matcher();
        let from = self.shown.seen;
        self.shown.rows.extend(
            self.entries[from..]
                .iter()
                .enumerate()
                .filter(|(_, e)| matches(e))
                .map(|(i, _)| from + i),
        );
        self.shown.seen = self.entries.len();
    }

    /// The entries the filter lets through, oldest first.
    pub fn shown(&mut self) -> Vec<&LogEntry> {
        self.refresh();
        self.shown.rows.iter().map(|&i| &self.entries[i]).collect()
    }

    /// The filter chips, the text filter, the export button and the log as a table,
    /// newest last, only visible rows laid out.
    pub fn ui(&mut self, ui: &mut egui::Ui) -> LogResponse {
        self.refresh();
        let mut response = LogResponse::default();
        ui.horizontal_wrapped(|ui| {
            ui.strong("Event log");
            let n = self.entries.len();
            let shown = self.shown.rows.len();
            let noun = if n == 1 { "entry" } else { "entries" };
            let count = if shown == n {
                format!("{n} {noun}")
            } else {
                format!("{shown} of {n} {noun}")
            };
            ui.label(RichText::new(count).weak());
            ui.separator();
            ui.label(RichText::new("Level:").weak());
            for level in [Level::Info, Level::Warning, Level::Error] {
                if ui
                    .selectable_label(self.filter.min_level == level, level.at_least_label())
                    .on_hover_text("Show entries of this level and above")
                    .clicked()
                {
                    self.filter.min_level = level;
                }
            }
            ui.separator();
            ui.label(RichText::new("Kind:").weak());
            for kind in Kind::ALL {
                let on = !self.filter.hidden_kinds.contains(&kind);
                if ui
                    .selectable_label(on, kind.as_str())
                    .on_hover_text(format!("{} (click to show or hide)", kind.hint()))
                    .clicked()
                {
                    self.filter.toggle(kind);
                }
            }
            ui.separator();
            let label = ui.label(FILTER_LABEL);
            ui.add(
                egui::TextEdit::singleline(&mut self.filter.text)
                    .hint_text("text in the message")
                    .desired_width(160.0),
            )
            .labelled_by(label.id);
            if self.filter.is_active()
                && ui
                    .small_button("Show all")
                    .on_hover_text("Clear the level, kind and text filters")
                    .clicked()
            {
                self.filter = LogFilter::default();
            }
            ui.separator();
            response.export = ui
                .add_enabled(!self.entries.is_empty(), egui::Button::new(EXPORT_LABEL))
                .on_hover_text(
                    "Save every entry (not only those shown) as JSON lines: one object per line with time, sim_s, level, kind and message",
                )
                .clicked();
        });
        // The chips may have changed the filter.
        self.refresh();
        ui.separator();
        response.rows = ui.available_rect_before_wrap();
        if self.entries.is_empty() {
            ui.weak("Nothing has happened yet.");
            return response;
        }
        if self.shown.rows.is_empty() {
            ui.weak("No entry matches the filter. Click Show all to see every entry.");
            return response;
        }
        let row_h = ui.text_style_height(&egui::TextStyle::Body);
        let dark = ui.visuals().dark_mode;
        let entries = &self.entries;
        let rows = &self.shown.rows;
        egui::ScrollArea::vertical()
            .id_salt("event-log-rows")
            .auto_shrink([false, false])
            .stick_to_bottom(true)
            .show_rows(ui, row_h, rows.len(), |ui, range| {
                for &i in &rows[range] {
                    entry_row(ui, &entries[i], dark);
                }
            });
        response
    }

    /// Draws the toasts and drops the expired ones. With `over` (the event log's rows,
    /// which hold the same lines) they stack in its bottom-right corner, clipped to it; with
    /// the log folded away they take a strip of their own above the status bar. Either way
    /// they cover no control: floating over the panels they hid Link down, Disaster and the
    /// capacity table.
    pub fn toasts(&mut self, ui: &mut egui::Ui, over: Option<egui::Rect>) {
        let now = Instant::now();
        self.toasts.retain(|t| t.until > now);
        if self.toasts.is_empty() {
            return;
        }
        let dark = ui.visuals().dark_mode;
        let mut close = None;
        match over {
            Some(rows) => {
                let width = TOAST_WIDTH.min(rows.width() * 0.5);
                egui::Area::new(egui::Id::unique("toasts"))
                    .pivot(egui::Align2::RIGHT_BOTTOM)
                    .fixed_pos(rows.right_bottom() - egui::vec2(12.0, 4.0))
                    .order(egui::Order::Foreground)
                    .show(ui.ctx(), |ui| {
                        ui.set_clip_rect(rows);
                        ui.set_max_width(width);
                        // Newest at the bottom, next to the log's newest line, as many as
                        // the rows hold: the older wait their turn (they are in the log).
                        let fit = ((rows.height() + 4.0) / TOAST_SLOT).floor().max(1.0) as usize;
                        let older = self.toasts.len().saturating_sub(fit);
                        for (i, t) in self.toasts.iter().enumerate().skip(older) {
                            if toast(ui, t, dark) {
                                close = Some(i);
                            }
                            ui.add_space(4.0);
                        }
                    });
            }
            None => {
                egui::Panel::bottom("toasts")
                    .resizable(false)
                    .show(ui, |ui| {
                        ui.horizontal_wrapped(|ui| {
                            for (i, t) in self.toasts.iter().enumerate().rev() {
                                ui.scope(|ui| {
                                    ui.set_max_width(TOAST_WIDTH);
                                    if toast(ui, t, dark) {
                                        close = Some(i);
                                    }
                                });
                            }
                        });
                    });
            }
        }
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

/// How wide a toast grows at most.
const TOAST_WIDTH: f32 = 420.0;
/// The height a toast with a two-line message takes, with the gap to the next.
const TOAST_SLOT: f32 = 76.0;

/// One toast: its level, a dismiss button and the message. True when dismissed.
fn toast(ui: &mut egui::Ui, t: &Toast, dark: bool) -> bool {
    let mut close = false;
    egui::Frame::popup(ui.style())
        .stroke(egui::Stroke::new(1.5, t.level.color(dark)))
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.label(
                    RichText::new(t.level.as_str().to_uppercase())
                        .color(t.level.color(dark))
                        .strong(),
                );
                close = ui.small_button("✖").on_hover_text("Dismiss").clicked();
            });
            ui.label(&t.message);
        });
    close
}

fn entry_row(ui: &mut egui::Ui, e: &LogEntry, dark: bool) {
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
        ui.label(
            RichText::new(format!("{:<KIND_COLUMN$}", e.kind.as_str()))
                .monospace()
                .weak(),
        )
        .on_hover_text(e.kind.hint());
        ui.label(&e.message);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_level_source_and_prefix() {
        use Kind as K;
        use Level as L;
        assert_eq!(
            K::infer(L::Warning, "Override: web-01 to ds-local confirmed", true),
            K::Override
        );
        assert_eq!(
            K::infer(L::Error, "DISASTER: site pa lost at 01:00.0", true),
            K::Alarm
        );
        assert_eq!(
            K::infer(L::Warning, "RPO violation: cg-gold-a lags", true),
            K::Alarm
        );
        assert_eq!(
            K::infer(L::Error, "Migration m-1: I/O error", true),
            K::Error
        );
        assert_eq!(
            K::infer(L::Warning, "Link down: no workspace is open", false),
            K::Error
        );
        assert_eq!(
            K::infer(L::Info, "Migration m-1 of web-01 completed", true),
            K::Result
        );
        assert_eq!(K::infer(L::Info, "Opened workspace /tmp/x", false), K::Info);
    }

    #[test]
    fn dates_are_rfc3339_utc() {
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(at(1_746_364_041)), "2025-05-04T13:07:21Z");
        assert_eq!(rfc3339(at(4_102_444_799)), "2099-12-31T23:59:59Z");
    }

    fn log_of(lines: &[(Level, &str, Option<SimTime>)]) -> EventLog {
        let mut log = EventLog::default();
        for &(level, msg, sim) in lines {
            log.push_at(level, msg, sim, false);
        }
        log
    }

    #[test]
    fn the_filter_is_kept_and_extended_as_entries_arrive() {
        let mut log = log_of(&[
            (Level::Info, "Opened workspace", None),
            (Level::Warning, "RPO violation: cg-a", Some(SECOND)),
            (
                Level::Info,
                "Replication of cg-a: published",
                Some(2 * SECOND),
            ),
        ]);
        assert_eq!(log.shown().len(), 3);
        log.filter.min_level = Level::Warning;
        assert_eq!(log.shown().len(), 1);
        log.push_at(
            Level::Error,
            "Replication of cg-a: publish failed",
            Some(3),
            false,
        );
        log.info("Saved");
        let shown: Vec<_> = log.shown().iter().map(|e| e.message.clone()).collect();
        assert_eq!(
            shown,
            ["RPO violation: cg-a", "Replication of cg-a: publish failed"]
        );
        log.filter = LogFilter {
            text: "CG-A".into(),
            hidden_kinds: vec![Kind::Alarm],
            ..LogFilter::default()
        };
        let kinds: Vec<_> = log.shown().iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [Kind::Result, Kind::Error]);
    }

    #[test]
    fn json_lines_parse_back() {
        let log = log_of(&[
            (Level::Info, "Opened \"x\" from built-in", None),
            (
                Level::Warning,
                "Override: a to b",
                Some(83 * SECOND + SECOND / 2),
            ),
        ]);
        let text = json_lines(&log.entries);
        let parsed: Vec<ExportedEntry> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].sim_s, None);
        assert_eq!(parsed[0].message, "Opened \"x\" from built-in");
        assert_eq!(parsed[1].sim_s, Some(83.5));
        assert_eq!(parsed[1].kind, Kind::Override);
        assert_eq!(parsed[1].level, Level::Warning);
        assert!(text.contains("\"level\":\"warning\",\"kind\":\"override\""));
    }
}
