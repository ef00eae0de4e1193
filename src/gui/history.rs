//! The event log's history in the workspace (`state/events.jsonl`), so that reopening a
//! workspace shows what happened in it before.
//!
//! One [`ExportedEntry`] per line, the same JSON lines as *Export…* writes. The engine's
//! worker appends the entries the console logged while the workspace was open (the UI
//! sends them, [`super::worker::Request::Record`]); each batch is one `write`, not synced:
//! a process crash keeps what the kernel has, and losing the last lines to a power cut
//! costs only history. The reader tolerates a torn or garbled line (it is skipped), and
//! the file stays bounded: when it holds more than [`MAX_LINES`] entries (or a torn
//! line), opening rewrites it atomically with the newest [`KEEP_LINES`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::log::{ExportedEntry, LogEntry};
use crate::engine::{SECOND, SimTime};

/// The history's file name in the workspace's `state/` directory.
pub const FILE: &str = "events.jsonl";
/// Above this many lines the history is cut down when the workspace opens.
pub const MAX_LINES: usize = 20_000;
/// What a cut keeps: the newest entries.
pub const KEEP_LINES: usize = 10_000;

/// Where the history of the workspace at `root` lives.
pub fn path(root: &Path) -> PathBuf {
    root.join("state").join(FILE)
}

/// What [`load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The entries, oldest first (at most [`KEEP_LINES`] once cut).
    pub entries: Vec<ExportedEntry>,
    /// Lines that were not an entry (a line torn by a crash): skipped.
    pub skipped: usize,
    /// Older entries dropped to keep the file bounded.
    pub dropped: usize,
}

/// Reads the history of the workspace at `root` (none yet: empty) and, if it holds torn
/// lines or is over the bound, rewrites it atomically without them, so appends start on a
/// clean line.
pub fn load(root: &Path) -> Result<Loaded, String> {
    let file = path(root);
    let text = match std::fs::read(&file) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => {
            return Err(format!(
                "{}: cannot read the event log: {e}",
                file.display()
            ));
        }
    };
    let mut loaded = Loaded::default();
    for line in text.lines() {
        match serde_json::from_str::<ExportedEntry>(line) {
            Ok(e) => loaded.entries.push(e),
            Err(_) => loaded.skipped += 1,
        }
    }
    let torn_tail = !text.is_empty() && !text.ends_with('\n');
    if loaded.entries.len() > MAX_LINES {
        loaded.dropped = loaded.entries.len() - KEEP_LINES;
        loaded.entries.drain(..loaded.dropped);
    }
    if loaded.skipped > 0 || loaded.dropped > 0 || torn_tail {
        let lines: String = loaded.entries.iter().map(line_of).collect();
        crate::fsutil::write_atomic(&file, lines.as_bytes())
            .map_err(|e| format!("{}: cannot rewrite the event log: {e}", file.display()))?;
    }
    Ok(loaded)
}

/// Appends `entries` to the history of the workspace at `root`.
pub fn append(root: &Path, entries: &[ExportedEntry]) -> Result<(), String> {
    if entries.is_empty() {
        return Ok(());
    }
    let file = path(root);
    let lines: String = entries.iter().map(line_of).collect();
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .and_then(|mut f| f.write_all(lines.as_bytes()))
        .map_err(|e| format!("{}: cannot append to the event log: {e}", file.display()))
}

fn line_of(e: &ExportedEntry) -> String {
    // A struct of strings, numbers and enums always serializes.
    let mut line = serde_json::to_string(e).unwrap_or_default();
    line.push('\n');
    line
}

/// A history entry as the log shows it again: its wall-clock time and simulated time as
/// recorded (a time that does not parse shows as the epoch).
pub fn to_entry(e: &ExportedEntry) -> LogEntry {
    let at = parse_rfc3339(&e.time).unwrap_or(UNIX_EPOCH);
    LogEntry {
        time: e.time.get(11..19).unwrap_or("--:--:--").to_string(),
        at,
        sim: e
            .sim_s
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| (s * SECOND as f64).round() as SimTime),
        level: e.level,
        kind: e.kind,
        message: e.message.clone(),
    }
}

/// "2025-05-04T13:07:21Z" (what [`super::log::rfc3339`] writes) as a time.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let secs = days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gui::log::{Kind, Level, rfc3339};

    fn entry(message: &str, sim_s: Option<f64>) -> ExportedEntry {
        ExportedEntry {
            time: "2026-12-04T18:14:26Z".into(),
            sim_s,
            level: Level::Info,
            kind: Kind::Result,
            message: message.into(),
        }
    }

    #[test]
    fn times_round_trip() {
        for secs in [0, 951_782_400, 1_746_364_041, 4_102_444_799] {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(parse_rfc3339("2025-13-04T13:07:21Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn appends_come_back_and_a_torn_tail_is_skipped_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        assert!(
            load(dir.path()).unwrap().entries.is_empty(),
            "no history yet"
        );
        append(dir.path(), &[entry("one", Some(1.5)), entry("two", None)]).unwrap();
        append(dir.path(), &[entry("three", Some(3.0))]).unwrap();
        // A crash cut the last append short.
        let file = path(dir.path());
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push_str("{\"time\":\"2026-12-04T18:1");
        std::fs::write(&file, &text).unwrap();

        let loaded = load(dir.path()).unwrap();
        let messages: Vec<_> = loaded.entries.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["one", "two", "three"]);
        assert_eq!(loaded.skipped, 1);
        let back = to_entry(&loaded.entries[0]);
        assert_eq!(back.sim, Some(3 * SECOND / 2));
        assert_eq!(back.time, "18:14:26");
        assert_eq!(to_entry(&loaded.entries[1]).sim, None);
        // The torn line is gone, so the next append starts on a line of its own.
        append(dir.path(), &[entry("four", None)]).unwrap();
        let loaded = load(dir.path()).unwrap();
        assert_eq!(loaded.entries.len(), 4);
        assert_eq!(loaded.skipped, 0);
    }

    #[test]
    fn the_history_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let many: Vec<_> = (0..MAX_LINES + 5)
            .map(|i| entry(&format!("e{i}"), None))
            .collect();
        append(dir.path(), &many).unwrap();
        let loaded = load(dir.path()).unwrap();
        assert_eq!(loaded.entries.len(), KEEP_LINES);
        assert_eq!(loaded.dropped, MAX_LINES + 5 - KEEP_LINES);
        assert_eq!(
            loaded.entries.last().unwrap().message,
            format!("e{}", MAX_LINES + 4)
        );
        assert_eq!(load(dir.path()).unwrap().entries.len(), KEEP_LINES);
    }
}
