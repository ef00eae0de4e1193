//! The publish log (`state/publishes.log`): one JSON line per published recovery point, so
//! that a report can draw each group's lag against its RPO over simulated time (SPEC §11,
//! *Reports*).
//!
//! It is history only: nothing in the engine reads it back, and losing its last lines
//! costs a few points of a chart, never a recovery point. So a line is appended with one
//! `write`, not synced (a process crash keeps what the kernel has), after the point's
//! `published.ron` is written; a crash between the two leaves the point unlogged. The
//! reader skips a line that is not a record (a line torn by a crash) and counts it, and an
//! append after a torn line starts on a line of its own. A publish applied again when a
//! workspace reopens (the commit record's roll-forward) is not logged twice.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Engine, EngineError, LogLevel, PublishedPoint, SimTime, io_err_at};

/// The log's file name in the workspace's `state/` directory.
pub const PUBLISH_LOG_FILE: &str = "publishes.log";

/// Where the publish log of the workspace at `root` lives.
pub fn publish_log_path(root: &Path) -> PathBuf {
    root.join("state").join(PUBLISH_LOG_FILE)
}

/// One published recovery point of one replication group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishRecord {
    /// The group's id (its CG, or its standalone datastore).
    pub group: String,
    /// Its direction when the point was published (a reprotect swaps the sites).
    pub source_site: String,
    pub target_site: String,
    pub cycle: u64,
    /// When the point was cut (simulated).
    pub cut_at: SimTime,
    /// When it was published (simulated).
    pub published_at: SimTime,
    /// What the cycle shipped.
    pub bytes: u64,
    pub rpo_minutes: u32,
    /// The cut of the point this one replaced, in the same direction (none: the group's
    /// first point, or its first since a reprotect). The lag just before this publish was
    /// `published_at - previous_cut_at`.
    pub previous_cut_at: Option<SimTime>,
}

impl PublishRecord {
    /// The lag right after the publish: how old the replicas' state is then.
    pub fn lag_after(&self) -> SimTime {
        self.published_at.saturating_sub(self.cut_at)
    }

    /// The lag right before the publish (the previous point's age then), if there was one.
    pub fn lag_before(&self) -> Option<SimTime> {
        self.previous_cut_at
            .map(|c| self.published_at.saturating_sub(c))
    }
}

/// What [`read_publish_log`] found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PublishLog {
    /// The records, in the order they were published.
    pub records: Vec<PublishRecord>,
    /// Lines that were not a record (torn by a crash, or garbled): skipped.
    pub skipped: usize,
}

/// Reads the publish log of the workspace at `root`; none yet is an empty log.
pub fn read_publish_log(root: &Path) -> Result<PublishLog, EngineError> {
    let path = publish_log_path(root);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PublishLog::default()),
        Err(e) => return Err(io_err_at(&path)(e)),
    };
    Ok(parse_publish_log(&String::from_utf8_lossy(&bytes)))
}

/// The records of a publish log's text, skipping what is not one; a record repeated (the
/// same group, direction and cycle) counts once.
pub fn parse_publish_log(text: &str) -> PublishLog {
    let mut log = PublishLog::default();
    let mut seen = std::collections::HashSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<PublishRecord>(line) {
            Ok(r) => {
                if seen.insert((r.group.clone(), r.source_site.clone(), r.cycle)) {
                    log.records.push(r);
                }
            }
            Err(_) => log.skipped += 1,
        }
    }
    log
}

/// Appends `line` (ending in a newline) to the file at `path`, on a line of its own even
/// when the file ends in a torn line.
fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    // Read as well: the last byte says whether the file ends in a torn line.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let len = file.metadata()?.len();
    let mut last = [0u8; 1];
    let torn = len > 0 && file.read_exact_at(&mut last, len - 1).is_ok() && last[0] != b'\n';
    let text = if torn {
        format!("\n{line}")
    } else {
        line.to_string()
    };
    file.write_all(text.as_bytes())
}

impl Engine {
    /// Logs `point`, about to become group `g`'s published point, in the publish log.
    /// Called once per publish, before `published` is replaced (the point it replaces gives
    /// the lag before). A failure to write is a warning in the event log, not an error of
    /// the publish: the point is already durable.
    pub(super) fn record_publish(&mut self, g: usize, point: &PublishedPoint) {
        let grp = &self.groups[g];
        let previous = grp.published.as_ref();
        // The same point applied again (a roll-forward when the workspace reopens): it was
        // logged when it was first published, or its line was lost with the crash.
        if previous.is_some_and(|p| p.cycle == point.cycle) {
            return;
        }
        // After an injected crash nothing more reaches the disk (RELIABILITY.md).
        if super::alive().is_err() {
            return;
        }
        let record = PublishRecord {
            group: grp.spec.id.clone(),
            source_site: grp.spec.source_site.clone(),
            target_site: grp.spec.target_site.clone(),
            cycle: point.cycle,
            cut_at: point.cut_at,
            published_at: point.published_at,
            bytes: point.bytes,
            rpo_minutes: grp.spec.rpo_minutes,
            previous_cut_at: previous.map(|p| p.cut_at),
        };
        // Strings and numbers always serialize.
        let line = serde_json::to_string(&record).unwrap_or_default() + "\n";
        let path = publish_log_path(self.ws.root());
        if let Err(e) = append_line(&path, &line) {
            let msg = format!(
                "{}: cannot log recovery point {} of {} (the point itself is published; reports miss it): {e}",
                path.display(),
                record.cycle,
                record.group
            );
            self.push_log(LogLevel::Warning, msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(group: &str, cycle: u64, cut: SimTime) -> PublishRecord {
        PublishRecord {
            group: group.into(),
            source_site: "pa".into(),
            target_site: "ny".into(),
            cycle,
            cut_at: cut,
            published_at: cut + 7,
            bytes: 4096 * cycle,
            rpo_minutes: 5,
            previous_cut_at: (cycle > 1).then(|| cut - 100),
        }
    }

    fn line(r: &PublishRecord) -> String {
        serde_json::to_string(r).unwrap() + "\n"
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_next_append_starts_a_line_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PUBLISH_LOG_FILE);
        let (a, b, c) = (rec("cg-a", 1, 0), rec("cg-a", 2, 300), rec("cg-b", 1, 10));
        let whole = line(&b);
        std::fs::write(&path, line(&a) + &whole[..whole.len() / 2]).unwrap();
        let torn = parse_publish_log(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(torn.records, std::slice::from_ref(&a));
        assert_eq!(torn.skipped, 1);

        append_line(&path, &line(&c)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let after = parse_publish_log(&text);
        assert_eq!(
            after.records,
            [a, c],
            "the torn line stays skipped, c reads"
        );
        assert_eq!(after.skipped, 1);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn a_point_logged_twice_counts_once_and_lags_come_from_the_cuts() {
        let b = rec("cg-a", 2, 300);
        let log = parse_publish_log(&(line(&b) + &line(&b) + "\n"));
        assert_eq!(log.records.len(), 1);
        assert_eq!(log.skipped, 0);
        assert_eq!(b.lag_after(), 7);
        assert_eq!(b.lag_before(), Some(107));
        assert_eq!(rec("cg-a", 1, 0).lag_before(), None);
    }

    #[test]
    fn no_log_yet_is_an_empty_log() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        assert_eq!(read_publish_log(dir.path()).unwrap(), PublishLog::default());
    }
}
