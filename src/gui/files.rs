//! Opening, saving and exporting: each runs as a background job whose [`IoResult`] comes
//! back over a channel, then lands in the document, the recent files and the log.

use std::path::{Path, PathBuf};

use super::worker::Request;
use super::{
    Action, Document, DrApp, IoResult, Kind, Level, LogEntry, WorkspaceChoice, log, open_path,
    persist, wizard, worker,
};
use crate::topology::{Topology, TopologySource};

impl DrApp {
    /// The window title for the current topology.
    pub fn title(&self) -> String {
        format!("drconsole — {}", self.doc.topology.name)
    }

    /// Is a background open, save or export still running?
    pub fn io_busy(&self) -> bool {
        self.io_pending > 0 || self.reports_pending > 0
    }

    fn spawn_io(&mut self, job: impl FnOnce() -> IoResult + Send + 'static) {
        let tx = self.io_tx.clone();
        let ctx = self.ctx.clone();
        self.io_pending += 1;
        std::thread::spawn(move || {
            let result = job();
            // The receiver only goes away with the app; nothing to report to then.
            let _ = tx.send(result);
            ctx.request_repaint();
        });
    }

    /// Loads and validates `path` off the UI thread; on success it replaces the topology.
    pub fn open_path(&mut self, path: PathBuf) {
        self.spawn_io(move || IoResult::Opened(Box::new(load(path))));
    }

    /// Asks for a file with a dialog (off the UI thread), then opens it; without an
    /// answer, offers a path field ([`open_path`]).
    pub fn open_dialog(&mut self) {
        let chooser = self.files.chooser;
        self.spawn_io(move || {
            let ask = open_path::FileAsk::Open;
            match chooser(&ask) {
                Some(path) => IoResult::Opened(Box::new(load(path))),
                None => IoResult::ChooserNone(ask),
            }
        });
    }

    /// Saves to the file it came from; the built-in topology asks where.
    pub fn save(&mut self) {
        match &self.doc.source {
            TopologySource::File(p) => self.save_to(p.clone()),
            TopologySource::BuiltIn => self.save_as_dialog(),
        }
    }

    /// Writes the topology to `path` (atomically, off the UI thread).
    pub fn save_to(&mut self, path: PathBuf) {
        let topology = self.doc.topology.clone();
        self.spawn_io(move || {
            IoResult::Saved(
                topology
                    .save(&path)
                    .map(|()| path)
                    .map_err(|e| e.to_string()),
            )
        });
    }

    pub fn save_as_dialog(&mut self) {
        let topology = self.doc.topology.clone();
        let file_name = match &self.doc.source {
            TopologySource::File(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            TopologySource::BuiltIn => "two_site_demo.ron".to_string(),
        };
        let chooser = self.files.chooser;
        self.spawn_io(move || {
            let ask = open_path::FileAsk::SaveAs { file_name };
            match chooser(&ask) {
                Some(path) => IoResult::Saved(
                    topology
                        .save(&path)
                        .map(|()| path)
                        .map_err(|e| e.to_string()),
                ),
                None => IoResult::ChooserNone(ask),
            }
        });
    }

    /// Writes the whole event log to `path` as JSON lines (see [`log`]), atomically and
    /// off the UI thread; logs how many entries went where, or the error.
    pub fn export_log_to(&mut self, path: PathBuf) {
        let entries = self.log.entries.clone();
        self.spawn_io(move || IoResult::Exported(write_log(&path, &entries)));
    }

    /// Asks where to export the event log (off the UI thread), then writes it there.
    pub fn export_log_dialog(&mut self) {
        let entries = self.log.entries.clone();
        let chooser = self.files.chooser;
        self.spawn_io(move || {
            let ask = open_path::FileAsk::ExportLog;
            match chooser(&ask) {
                Some(path) => IoResult::Exported(write_log(&path, &entries)),
                None => IoResult::ChooserNone(ask),
            }
        });
    }

    /// Asks the engine's worker to write the DR report (SPEC §11) of the open workspace to
    /// `path` as one HTML page; the answer lands in the log and a toast
    /// ([`worker::Report::ReportExported`]).
    pub fn export_report_to(&mut self, path: PathBuf) {
        self.reports_pending += 1;
        self.worker.send(Request::ExportReport { path });
    }

    /// File ▶ Export report…: asks where (off the UI thread), then has the worker write it.
    pub fn export_report_dialog(&mut self) {
        let chooser = self.files.chooser;
        self.spawn_io(move || {
            let ask = open_path::FileAsk::ExportReport;
            match chooser(&ask) {
                Some(path) => IoResult::ReportTo(path),
                None => IoResult::ChooserNone(ask),
            }
        });
    }

    /// The worker wrote the DR report, or could not.
    pub(super) fn report_exported(
        &mut self,
        path: PathBuf,
        result: Result<worker::ExportedReport, String>,
    ) {
        self.reports_pending = self.reports_pending.saturating_sub(1);
        self.prompt_report_result(result.as_ref().map(|_| ()));
        match result {
            Ok(r) => {
                let now = self.live.snapshot.as_ref().map(|s| s.now);
                self.log.record(
                    Kind::Result,
                    Level::Info,
                    format!(
                        "Exported the DR report of {} ({} event(s)) to {}",
                        r.workspace.display(),
                        r.events,
                        path.display()
                    ),
                    now,
                    true,
                );
            }
            Err(e) => self.log.error(e),
        }
    }

    /// Looks for the recent files off the UI thread; the missing ones are greyed.
    pub(super) fn check_recent_files(&mut self) {
        let paths = self.recent.paths().to_vec();
        if !paths.is_empty() {
            self.spawn_io(move || IoResult::RecentMissing(persist::missing_files(&paths)));
        }
    }

    /// DR ▶ Rescan arrays: the running engine re-reads `file` and adopts it (the next
    /// update brings its topology, so tags and ratings follow); with no workspace running,
    /// the file is read again for browsing.
    pub(super) fn rescan_arrays(&mut self, file: PathBuf) {
        if self.live.is_open() {
            let c = crate::engine::Command::Rescan { file };
            self.apply(Action::Request(Request::Engine(c)));
        } else {
            self.open_path(file);
        }
    }

    /// Replaces the topology with the built-in demo, in its own default workspace.
    pub fn open_builtin(&mut self) {
        self.show_topology(Topology::builtin_default(), TopologySource::BuiltIn);
    }

    /// Shows `topology` in place of the current one and runs it in its default workspace
    /// (unless the console runs nothing).
    fn show_topology(&mut self, topology: Topology, source: TopologySource) {
        // What the open workspace logged is its history; the new topology's line is not.
        self.record_history();
        self.log
            .info(format!("Opened \"{}\" from {source}", topology.name));
        self.restart.loaded = Some(topology.clone());
        self.doc = Document::new(topology, source);
        self.selection = None;
        // The old filter would hide the new inventory's objects behind names it lacks.
        self.filter.clear();
        self.wizard = wizard::Wizard::default();
        if self.workspace != WorkspaceChoice::None {
            self.workspace = WorkspaceChoice::Default;
            self.open_workspace();
        }
    }

    pub(super) fn handle_io(&mut self, result: IoResult) {
        self.io_pending = self.io_pending.saturating_sub(1);
        self.prompt_result(&result);
        match result {
            IoResult::Opened(opened) => match *opened {
                Ok((path, topology)) => {
                    self.add_recent(&path);
                    self.show_topology(topology, TopologySource::File(path));
                }
                Err(e) => {
                    self.log
                        .error(format!("{e}; the current topology stays open"));
                    // A recent file may have gone.
                    self.check_recent_files();
                }
            },
            IoResult::Saved(Ok(path)) => {
                self.log.info(format!("Saved to {}", path.display()));
                self.add_recent(&path);
                self.doc.source = TopologySource::File(path);
            }
            IoResult::Saved(Err(e)) => self.log.error(e),
            IoResult::Exported(Ok((path, n))) => self.log.record(
                Kind::Result,
                Level::Info,
                format!("Exported {n} entries to {}", path.display()),
                None,
                false,
            ),
            IoResult::Exported(Err(e)) => self.log.error(e),
            IoResult::RecentMissing(missing) => self.recent.set_missing(missing),
            IoResult::ReportTo(path) => self.export_report_to(path),
            IoResult::ChooserNone(ask) => {
                self.log
                    .push(Level::Info, open_path::chooser_gave_nothing(&ask), true);
                self.files.prompt = Some(open_path::Prompt::new(ask));
            }
        }
    }
}

fn load(path: PathBuf) -> Result<(PathBuf, Topology), String> {
    Topology::load(&path)
        .map(|t| (path, t))
        .map_err(|e| e.to_string())
}

/// Writes `entries` to `path` as JSON lines, atomically: how many, or the error.
fn write_log(path: &Path, entries: &[LogEntry]) -> Result<(PathBuf, usize), String> {
    crate::fsutil::write_atomic(path, log::json_lines(entries).as_bytes())
        .map(|()| (path.to_path_buf(), entries.len()))
        .map_err(|e| format!("Exporting the event log to {}: {e}", path.display()))
}
