//! The console window (eframe). The UI never touches files: opening and saving run on
//! background threads, the engine runs on its worker thread ([`worker`]), and both report
//! back over channels drained each frame in `logic`.

pub mod bench;
pub mod capacity_table;
mod clock;
pub mod demo;
mod details;
pub mod failover;
mod graphs;
mod group_panel;
mod health_panel;
mod history;
mod hosts_panel;
mod live;
mod log;
pub mod open_path;
mod persist;
mod placement_panel;
pub mod replication;
pub mod reset;
mod resilience;
mod status;
mod stretch_panel;
pub mod style;
mod tasks;
mod tree;
pub mod wizard;
pub mod worker;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use egui::{Key, KeyboardShortcut, Modifiers};

use crate::dr::{self, DatastoreTags};
use crate::topology::{Topology, TopologySource};

pub use live::{LagHistory, Live, Status, Task, TaskState};
pub use log::{EventLog, ExportedEntry, Kind, Level, LogEntry, LogFilter};
pub use persist::{Persisted, RecentFiles, StartupChoice, ThemeChoice, choose_startup};
use worker::{Report, Request, Worker};

/// What the inventory tree and the details panel can select.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selection {
    Site(String),
    Host(String),
    Vm(String),
    Array(String),
    Lun(String),
    Datastore(String),
    ProtectionGroup(String),
}

/// The loaded topology with what is derived from it.
pub struct Document {
    pub topology: Topology,
    pub source: TopologySource,
    pub tags: Vec<DatastoreTags>,
    /// The inventory tree and the lookups the views need, built once per topology.
    pub(crate) inventory: tree::Inventory,
    /// Each VM's rated destinations, computed on first use: rating every datastore is too
    /// much work for every frame of a large inventory. A new topology is a new document.
    destinations: RefCell<HashMap<String, Arc<Vec<dr::Impact>>>>,
}

impl Document {
    pub fn new(topology: Topology, source: TopologySource) -> Document {
        Document::at(topology, source, live::Whereabouts::default())
    }

    /// The document of `topology` with where things are now on top (see
    /// [`tree::Inventory::at`]).
    pub fn at(topology: Topology, source: TopologySource, at: live::Whereabouts) -> Document {
        let tags = dr::discover_tags(&topology);
        Document {
            inventory: tree::Inventory::at(&topology, at),
            destinations: RefCell::default(),
            topology,
            source,
            tags,
        }
    }

    pub fn tags_of(&self, datastore: &str) -> Option<&DatastoreTags> {
        self.tags.iter().find(|t| t.datastore == datastore)
    }

    /// Every protected datastore `vm` could move to, rated, safest first
    /// ([`dr::destinations_for_vm`]); empty for an unknown VM. Cached per VM.
    pub fn destinations(&self, vm: &str) -> Arc<Vec<dr::Impact>> {
        /// Enough for every VM an operator looks at in a session, bounded for a script.
        const KEEP: usize = 256;
        if let Some(d) = self.destinations.borrow().get(vm) {
            return d.clone();
        }
        let d = Arc::new(dr::destinations_for_vm(&self.topology, vm).unwrap_or_default());
        let mut cache = self.destinations.borrow_mut();
        if cache.len() >= KEEP {
            cache.clear();
        }
        cache.insert(vm.to_string(), d.clone());
        d
    }
}

/// What a background I/O job reports.
enum IoResult {
    /// Boxed: a topology is large next to the other results.
    Opened(Box<Result<(PathBuf, Topology), String>>),
    Saved(Result<PathBuf, String>),
    /// The event log written as JSON lines: where, and how many entries.
    Exported(Result<(PathBuf, usize), String>),
    /// The recent files that were not found.
    RecentMissing(Vec<PathBuf>),
    /// A file dialog returned nothing: the operator cancelled, or no dialog is available
    /// (rfd cannot tell which).
    ChooserNone(open_path::FileAsk),
}

/// The shortcuts of the File menu.
const OPEN: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::O);
const SAVE: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::S);
const SAVE_AS: KeyboardShortcut =
    KeyboardShortcut::new(Modifiers::COMMAND.plus(Modifiers::SHIFT), Key::S);

/// Which workspace the console runs the topology in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WorkspaceChoice {
    /// The topology's default workspace (one per topology name, under the user's data
    /// directory); opening another topology switches to its own.
    Default,
    /// This directory (`--workspace DIR`).
    Dir(PathBuf),
    /// None: browse and rate only, nothing runs.
    None,
}

/// How the console starts: a topology, where it came from, an error to show if the
/// requested file could not be used, and the workspace to run it in.
pub struct Startup {
    pub topology: Topology,
    pub source: TopologySource,
    pub error: Option<String>,
    pub workspace: WorkspaceChoice,
}

impl Startup {
    /// The built-in demo, or `path` if given and valid (else the demo and the error).
    pub fn from_path(path: Option<&Path>) -> Startup {
        match path {
            None => Startup {
                topology: Topology::builtin_default(),
                source: TopologySource::BuiltIn,
                error: None,
                workspace: WorkspaceChoice::Default,
            },
            Some(p) => match Topology::load(p) {
                Ok(t) => Startup {
                    topology: t,
                    source: TopologySource::File(p.to_path_buf()),
                    error: None,
                    workspace: WorkspaceChoice::Default,
                },
                Err(e) => Startup {
                    error: Some(format!("{e}; opened the built-in demo instead")),
                    ..Startup::from_path(None)
                },
            },
        }
    }

    /// Runs in `dir` if given (`--workspace DIR`), else in the topology's default workspace.
    pub fn with_workspace(self, dir: Option<PathBuf>) -> Startup {
        Startup {
            workspace: dir.map_or(WorkspaceChoice::Default, WorkspaceChoice::Dir),
            ..self
        }
    }

    /// Opens no workspace: the topology can be browsed and rated, nothing runs.
    pub fn browse_only(self) -> Startup {
        Startup {
            workspace: WorkspaceChoice::None,
            ..self
        }
    }
}

/// The tabs of the central area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MainTab {
    /// The selected object.
    Details,
    /// Scan, run and read failovers.
    Failover,
    /// Distributed datastores, array health, hosts, group migrations, clusters.
    Resilience,
}

/// The tabs of the right-hand panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SideTab {
    /// Migration tasks, copy progress and write latency.
    Migrations,
    /// Replication groups, the link, the sites and the lag plot.
    Replication,
}

impl MainTab {
    pub fn label(self) -> &'static str {
        match self {
            MainTab::Details => "Details",
            MainTab::Failover => "Failover",
            MainTab::Resilience => "Resilience",
        }
    }
}

impl SideTab {
    pub fn label(self) -> &'static str {
        match self {
            SideTab::Migrations => "Migrations",
            SideTab::Replication => "Replication",
        }
    }
}

/// What a view asks for; applied after drawing.
pub(crate) enum Action {
    OpenWizard(Option<String>),
    Request(Request),
    /// Ask the worker for a failover plan (the app adds the workspace's epoch).
    ScanFailover {
        id: u64,
        protection_groups: Vec<String>,
        kind: crate::engine::FailoverKind,
    },
    /// Open the Disaster confirmation for this site.
    AskDisaster(String),
    ShowMain(MainTab),
    ShowSide(SideTab),
}

/// How long `logic` spends taking in the worker's reports per frame.
const DRAIN_BUDGET: Duration = Duration::from_millis(8);

pub struct DrApp {
    ctx: egui::Context,
    pub doc: Document,
    pub selection: Option<Selection>,
    pub filter: String,
    /// The inventory tree's open state, rows and keyboard cursor.
    tree: tree::TreeView,
    pub log: EventLog,
    io_tx: Sender<IoResult>,
    io_rx: Receiver<IoResult>,
    /// Background I/O jobs started and not yet reported.
    io_pending: usize,
    title_shown: String,
    show_log: bool,
    show_migrations: bool,
    /// The inventory tree on the left is open.
    pub show_inventory: bool,
    /// Where the window's regions were drawn last frame.
    pub regions: Regions,
    worker: Worker,
    /// Bumped for every workspace opened; reports of older ones are dropped.
    epoch: u64,
    workspace: WorkspaceChoice,
    /// The engine as last reported.
    pub live: Live,
    pub wizard: wizard::Wizard,
    /// The workspace just opened; its first update brings its topology.
    first_update: bool,
    pub main_tab: MainTab,
    pub side_tab: SideTab,
    pub failover: failover::FailoverPanel,
    pub resilience: resilience::Panels,
    /// The site the Disaster confirmation asks about, while it is open.
    pub disaster: Option<String>,
    /// The Demo menu's scenarios and the demo player.
    pub demo: demo::Demo,
    /// The recent topology files (File → Open Recent).
    recent: RecentFiles,
    /// The file chooser and the path dialog that stands in for it.
    pub files: open_path::Files,
    /// Reset workspace, and what a reopen brings back.
    pub restart: reset::Restart,
}

impl DrApp {
    pub fn new(ctx: egui::Context, startup: Startup) -> DrApp {
        style::install(&ctx);
        let (io_tx, io_rx) = crossbeam_channel::unbounded();
        let mut app = DrApp {
            worker: Worker::spawn(ctx.clone()),
            demo: demo::Demo::new(ctx.clone()),
            ctx,
            doc: Document::new(startup.topology, startup.source),
            selection: None,
            filter: String::new(),
            tree: tree::TreeView::default(),
            log: EventLog::default(),
            io_tx,
            io_rx,
            io_pending: 0,
            title_shown: String::new(),
            show_log: true,
            show_migrations: true,
            show_inventory: true,
            regions: Regions::default(),
            epoch: 0,
            workspace: startup.workspace,
            live: Live::new(Status::Off),
            wizard: wizard::Wizard::default(),
            first_update: false,
            main_tab: MainTab::Details,
            side_tab: SideTab::Migrations,
            failover: failover::FailoverPanel::default(),
            resilience: resilience::Panels::default(),
            disaster: None,
            recent: RecentFiles::default(),
            files: open_path::Files::default(),
            restart: reset::Restart::default(),
        };
        app.restart.loaded = Some(app.doc.topology.clone());
        app.log.info(format!(
            "Opened \"{}\" from {}",
            app.doc.topology.name, app.doc.source
        ));
        if let crate::topology::TopologySource::File(p) = &app.doc.source {
            app.recent.add(p);
        }
        if let Some(e) = startup.error {
            app.log.error(e);
        }
        app.open_workspace();
        app
    }

    /// Asks the worker to run the current topology in the chosen workspace (closing the
    /// one open before).
    fn open_workspace(&mut self) {
        let root = match &self.workspace {
            WorkspaceChoice::None => return,
            WorkspaceChoice::Dir(d) => d.clone(),
            WorkspaceChoice::Default => {
                crate::workspace::default_workspace_dir(&self.doc.topology.name)
            }
        };
        self.open_root(root, crate::engine::EngineOptions::default(), false);
    }

    /// Asks the worker to run the current topology in `root` (see [`Request::Open`]).
    fn open_root(&mut self, root: PathBuf, options: crate::engine::EngineOptions, fresh: bool) {
        // What the open workspace logged goes to its history before it closes.
        self.record_history();
        self.restart.record_from = None;
        self.restart.opening_fresh = fresh;
        self.restart.ask = None;
        self.epoch += 1;
        self.live = Live::new(Status::Opening(root.clone()));
        self.first_update = false;
        self.failover.reset();
        self.disaster = None;
        self.worker.send(Request::Open {
            epoch: self.epoch,
            root,
            topology: Box::new(self.doc.topology.clone()),
            options,
            fresh,
        });
    }

    /// Is a workspace open and its engine reporting?
    pub fn engine_ready(&self) -> bool {
        self.live.is_open()
    }

    /// Sets the simulated clock's speed (simulated seconds per wall second).
    pub fn set_speed(&mut self, speed: f64) {
        self.apply(Action::Request(Request::SetSpeed(speed)));
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::OpenWizard(vm) => self.wizard.open_for(vm),
            Action::ShowMain(tab) => self.main_tab = tab,
            Action::ShowSide(tab) => {
                self.side_tab = tab;
                self.show_migrations = true;
            }
            Action::AskDisaster(site) => self.disaster = Some(site),
            Action::ScanFailover {
                id,
                protection_groups,
                kind,
            } => self.worker.send(Request::ScanFailover {
                epoch: self.epoch,
                id,
                protection_groups,
                kind,
            }),
            Action::Request(Request::Engine(c)) if !self.live.is_open() => {
                self.log.warning(format!(
                    "{}: no workspace is open, so nothing runs",
                    live::describe_in(&c, &self.doc.topology)
                ));
            }
            Action::Request(r) => {
                self.log_command(&r);
                let r = self.demo_route(r);
                self.worker.send(r);
            }
        }
    }

    /// An operator's command into the event log, at the simulated time it is sent. The
    /// "Operator: " prefix keeps the entry apart from the button that sent it.
    fn log_command(&mut self, r: &Request) {
        let text = match r {
            Request::Engine(c) => live::describe_in(c, &self.doc.topology),
            Request::Pause => "Pause the simulated clock".into(),
            Request::Resume => "Resume the simulated clock".into(),
            Request::SetSpeed(s) => {
                format!("Run the simulated clock at {}", clock::speed_label(*s))
            }
            _ => return,
        };
        let now = self.live.snapshot.as_ref().map(|s| s.now);
        self.log.record(
            Kind::Command,
            Level::Info,
            format!("Operator: {text}"),
            now,
            false,
        );
    }

    fn handle_report(&mut self, report: Report) {
        match report {
            Report::Opened {
                epoch,
                root,
                created,
                before,
            } if epoch == self.epoch => {
                self.opened(root, created, *before);
            }
            Report::NotRecorded { epoch, error } if epoch == self.epoch => {
                self.log.warning(format!(
                    "{error}; the event log's history in the workspace stops here"
                ));
            }
            Report::OpenFailed { epoch, root, error } if epoch == self.epoch => {
                self.log.error(format!(
                    "{error}. The topology can be browsed and rated, but nothing runs."
                ));
                self.live.status = Status::Failed { root, error };
            }
            Report::Update { epoch, mut update } if epoch == self.epoch => {
                let topology = update.topology.take();
                self.live.apply(*update, &self.doc.topology, &mut self.log);
                self.failover
                    .follow_sites(&self.doc.topology, self.live.snapshot.as_ref());
                if let Some(t) = topology
                    && t != self.doc.topology
                {
                    if self.first_update {
                        self.log.info(format!(
                            "The workspace keeps its own copy of \"{}\" (VMs stay where they were moved); that copy is shown",
                            t.name
                        ));
                    }
                    self.doc =
                        Document::at(t, self.doc.source.clone(), self.live.whereabouts.clone());
                } else if *self.doc.inventory.whereabouts() != self.live.whereabouts {
                    // A site was lost, VMs stopped or failed over: the tree shows it.
                    self.doc.inventory =
                        tree::Inventory::at(&self.doc.topology, self.live.whereabouts.clone());
                }
                self.first_update = false;
            }
            Report::Closed {
                root,
                error: Some(e),
                ..
            } => self
                .log
                .error(format!("Closing workspace {}: {e}", root.display())),
            Report::FailoverScan {
                epoch,
                id,
                at,
                result,
            } if epoch == self.epoch => {
                if let Err(e) = &result {
                    self.log.warning(format!("Scan replicas: {e}"));
                }
                self.failover.on_scan(id, at, result);
            }
            Report::NotApplied { command, reason } => self.log.warning(format!(
                "{}: {reason}",
                live::describe_in(&command, &self.doc.topology)
            )),
            r @ (Report::Reached { .. } | Report::StepDone { .. }) => self.demo_report(r),
            // Closed cleanly, or from a workspace the console has left.
            Report::Opened { .. }
            | Report::OpenFailed { .. }
            | Report::Update { .. }
            | Report::FailoverScan { .. }
            | Report::NotRecorded { .. }
            | Report::Closed { .. } => {}
        }
    }

    /// The window title for the current topology.
    pub fn title(&self) -> String {
        format!("drconsole — {}", self.doc.topology.name)
    }

    /// Is a background open or save still running?
    pub fn io_busy(&self) -> bool {
        self.io_pending > 0
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

    /// Looks for the recent files off the UI thread; the missing ones are greyed.
    fn check_recent_files(&mut self) {
        let paths = self.recent.paths().to_vec();
        if !paths.is_empty() {
            self.spawn_io(move || IoResult::RecentMissing(persist::missing_files(&paths)));
        }
    }

    /// DR ▶ Rescan arrays: the running engine re-reads `file` and adopts it (the next
    /// update brings its topology, so tags and ratings follow); with no workspace running,
    /// the file is read again for browsing.
    fn rescan_arrays(&mut self, file: PathBuf) {
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

    fn handle_io(&mut self, result: IoResult) {
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
            IoResult::ChooserNone(ask) => {
                self.log
                    .push(Level::Info, open_path::chooser_gave_nothing(&ask), true);
                self.files.prompt = Some(open_path::Prompt::new(ask));
            }
        }
    }

    fn handle_input(&mut self, ctx: &egui::Context) {
        let (open, save_as, save, dropped) = ctx.input_mut(|i| {
            (
                i.consume_shortcut(&OPEN),
                // Shift+S first: Ctrl+S would also match Ctrl+Shift+S otherwise.
                i.consume_shortcut(&SAVE_AS),
                i.consume_shortcut(&SAVE),
                std::mem::take(&mut i.raw.dropped_files),
            )
        });
        if open {
            self.open_dialog();
        }
        if save_as {
            self.save_as_dialog();
        } else if save {
            self.save();
        }
        for file in dropped {
            let p = file.path().to_path_buf();
            if p.extension().is_some_and(|e| e == "ron") {
                self.open_path(p);
            } else {
                self.log.error(format!(
                    "{}: not a topology file; drop a .ron file",
                    p.display()
                ));
            }
        }
    }

    fn menu_bar(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui
                    .add(egui::Button::new("Open…").shortcut_text(ui.ctx().format_shortcut(&OPEN)))
                    .clicked()
                {
                    self.open_dialog();
                }
                self.recent_menu(ui);
                if ui
                    .button("Open the built-in demo")
                    .on_hover_text("The two-site demo topology, in its own workspace")
                    .clicked()
                {
                    self.open_builtin();
                }
                if ui
                    .add(egui::Button::new("Save").shortcut_text(ui.ctx().format_shortcut(&SAVE)))
                    .clicked()
                {
                    self.save();
                }
                if ui
                    .add(
                        egui::Button::new("Save As…")
                            .shortcut_text(ui.ctx().format_shortcut(&SAVE_AS)),
                    )
                    .clicked()
                {
                    self.save_as_dialog();
                }
                ui.separator();
                self.reset_menu_item(ui);
                ui.separator();
                if ui.button("Quit").clicked() {
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
            ui.menu_button("Migrate", |ui| {
                if ui
                    .button("Migrate a VM…")
                    .on_hover_text("Choose a VM and a destination, review the DR impact, start")
                    .clicked()
                {
                    let vm = match &self.selection {
                        Some(Selection::Vm(id)) => Some(id.clone()),
                        _ => None,
                    };
                    self.wizard.open_for(vm);
                }
            });
            let mut link_command = None;
            let mut rescan = None;
            ui.menu_button("DR", |ui| {
                if ui
                    .button("Replication")
                    .on_hover_text("Replication groups, lag against RPO, the link and the sites")
                    .clicked()
                {
                    self.side_tab = SideTab::Replication;
                    self.show_migrations = true;
                }
                if ui
                    .button("Failover…")
                    .on_hover_text("Choose protection groups, scan the replicas, run a failover")
                    .clicked()
                {
                    self.main_tab = MainTab::Failover;
                }
                let file = match &self.doc.source {
                    TopologySource::File(p) => Some(p.clone()),
                    TopologySource::BuiltIn => None,
                };
                if ui
                    .add_enabled(file.is_some(), egui::Button::new("Rescan arrays"))
                    .on_hover_text(
                        "Re-read the topology file's arrays, LUNs, protection groups, hosts \
                         and links; tags, ratings and replication groups follow",
                    )
                    .on_disabled_hover_text("The built-in topology has no file to re-read")
                    .clicked()
                    && let Some(file) = file
                {
                    rescan = Some(file);
                }
                if let Some(snap) = self.live.snapshot.as_ref().filter(|_| self.live.is_open()) {
                    ui.separator();
                    let (text, command) = if snap.link_up {
                        ("Take the link down", crate::engine::Command::LinkDown)
                    } else {
                        ("Bring the link up", crate::engine::Command::LinkUp)
                    };
                    let link = self.live.link().unwrap_or(live::LinkState::Up);
                    let lost = matches!(link, live::LinkState::SiteLost(_));
                    if ui
                        .add_enabled(!lost, egui::Button::new(text))
                        .on_disabled_hover_text(format!(
                            "Nothing to switch: {}, so the link has no other end",
                            link.reason()
                        ))
                        .clicked()
                    {
                        link_command = Some(command);
                    }
                    for site in self
                        .doc
                        .topology
                        .sites
                        .iter()
                        .filter(|s| s.role == crate::topology::SiteRole::Protected)
                    {
                        let down = snap.sites_down.contains(&site.id);
                        if ui
                            .add_enabled(
                                !down,
                                egui::Button::new(replication::disaster_button(&site.id)),
                            )
                            .on_disabled_hover_text(format!("Site {} is already lost", site.id))
                            .clicked()
                        {
                            self.disaster = Some(site.id.clone());
                        }
                    }
                }
            });
            if let Some(c) = link_command {
                self.apply(Action::Request(Request::Engine(c)));
            }
            if let Some(file) = rescan {
                self.rescan_arrays(file);
            }
            ui.menu_button("Demo", |ui| self.demo_menu(ui));
            ui.menu_button("View", |ui| {
                ui.checkbox(&mut self.show_inventory, "Inventory");
                ui.checkbox(&mut self.show_log, "Event log");
                ui.checkbox(&mut self.show_migrations, "Migrations and replication");
                egui::widgets::global_theme_preference_buttons(ui);
            });
            ui.separator();
            ui.label(
                egui::RichText::new(format!(
                    "{}  ·  {}",
                    self.doc.topology.name, self.doc.source
                ))
                .weak(),
            );
            if self.io_busy() {
                ui.spinner();
            }
        });
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

impl eframe::App for DrApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.logic_step(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.draw(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, persist::STORAGE_KEY, &self.persisted());
    }
}

impl DrApp {
    /// The work of a frame before drawing: take in background results and input. Needs no
    /// `eframe::Frame`, so the headless UI benchmark drives it directly.
    pub fn logic_step(&mut self, ctx: &egui::Context) {
        while let Ok(r) = self.io_rx.try_recv() {
            self.handle_io(r);
        }
        let start = Instant::now();
        while start.elapsed() < DRAIN_BUDGET {
            let Some(r) = self.worker.try_recv() else {
                break;
            };
            self.handle_report(r);
        }
        if start.elapsed() >= DRAIN_BUDGET {
            // More is waiting: take it in next frame.
            ctx.request_repaint();
        }
        self.handle_input(ctx);
        self.demo_tick();
        self.record_history();
        let title = self.title();
        if title != self.title_shown {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title_shown = title;
        }
    }

    /// Draws the whole console into `ui` (the window's root).
    pub fn draw(&mut self, ui: &mut egui::Ui) {
        let mut actions = Vec::new();
        let window = ui.available_rect_before_wrap();
        egui::Panel::top("menu_bar").show(ui, |ui| self.menu_bar(ui));
        egui::Panel::top("clock").show(ui, |ui| {
            ui.add_space(2.0);
            clock::toolbar(ui, &self.live, &mut actions);
            ui.add_space(2.0);
        });
        self.demo_bar(ui);
        self.demo_caption(ui);
        demo::set_content_top(ui.ctx(), ui.available_rect_before_wrap().top());
        egui::Panel::bottom("status_bar")
            .resizable(false)
            .show(ui, |ui| status::bar(ui, &self.live, &mut actions));
        let log = &mut self.log;
        let log_panel = egui::Panel::bottom("event_log")
            .resizable(true)
            .default_size(sizes::log_default(window.height()))
            .size_range(sizes::log_range(window.height()))
            .show_collapsible(ui, &mut self.show_log, |ui| log.ui(ui));
        if log_panel.as_ref().is_some_and(|r| r.inner.export) {
            self.export_log_dialog();
        }
        self.regions.log = log_panel.as_ref().map(|r| r.response.rect);
        // Over the log's rows (which hold the same lines), else in a strip of their own:
        // never over a control.
        self.log
            .toasts(ui, log_panel.as_ref().map(|r| r.inner.rows));
        self.regions.inventory = egui::Panel::left("inventory")
            .resizable(true)
            .default_size(sizes::inventory_default(window.width()))
            .size_range(sizes::inventory_range(window.width()))
            .show_collapsible(ui, &mut self.show_inventory, |ui| {
                let out = tree::inventory(
                    ui,
                    &self.doc,
                    &mut self.tree,
                    &mut self.filter,
                    &mut self.selection,
                );
                if let Some(vm) = out.open_wizard {
                    actions.push(Action::OpenWizard(Some(vm)));
                }
                if out.show_details {
                    actions.push(Action::ShowMain(MainTab::Details));
                }
            })
            .map(|r| r.response.rect);
        let live = &mut self.live;
        let doc = &self.doc;
        let side_tab = &mut self.side_tab;
        self.regions.side = egui::Panel::right("migrations")
            .resizable(true)
            .default_size(sizes::side_default(window.width()))
            .size_range(sizes::side_range(window.width()))
            .show_collapsible(ui, &mut self.show_migrations, |ui| {
                tab_bar(
                    ui,
                    side_tab,
                    [SideTab::Migrations, SideTab::Replication],
                    SideTab::label,
                );
                // A short window scrolls the panel rather than spill it over the log.
                egui::ScrollArea::vertical()
                    .id_salt("side-panel")
                    .auto_shrink([false, false])
                    .show(ui, |ui| match side_tab {
                        SideTab::Migrations => migrations_panel(ui, live, &mut actions),
                        SideTab::Replication => replication::show(ui, doc, live, &mut actions),
                    });
            })
            .map(|r| r.response.rect);
        let selected_before = self.selection.clone();
        let central = egui::CentralPanel::default_margins().show(ui, |ui| {
            ui.horizontal(|ui| {
                panel_toggle(ui, &mut self.show_inventory, PanelToggle::Inventory);
                ui.separator();
                tabs(
                    ui,
                    &mut self.main_tab,
                    [MainTab::Details, MainTab::Failover, MainTab::Resilience],
                    MainTab::label,
                );
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    panel_toggle(ui, &mut self.show_migrations, PanelToggle::Side);
                });
            });
            ui.separator();
            // Each view scrolls both ways: what does not fit the width (a table's columns)
            // scrolls sideways rather than being cut off.
            match self.main_tab {
                MainTab::Details => {
                    details::show(ui, &self.doc, &self.live, &mut self.selection, &mut actions)
                }
                MainTab::Failover => self.failover.show(ui, &self.doc, &self.live, &mut actions),
                MainTab::Resilience => resilience::show(
                    ui,
                    &self.doc,
                    &self.live,
                    &mut self.resilience,
                    &mut actions,
                ),
            }
        });
        self.regions.central = central.response.rect;
        self.regions.window = window;
        if self.selection != selected_before && self.selection.is_some() {
            // Picking an object in the inventory shows it.
            self.main_tab = MainTab::Details;
        }
        if let Some(c) = self.wizard.show(ui.ctx(), &self.doc, &self.live) {
            actions.push(Action::Request(Request::Engine(c)));
        }
        if let Some(c) = self.failover.confirm_modal(ui.ctx(), &self.doc, &self.live) {
            actions.push(Action::Request(Request::Engine(c)));
        }
        if let Some(site) = self.disaster.clone() {
            match replication::disaster_modal(ui.ctx(), &site, &self.doc, &self.live) {
                Some(true) => {
                    self.disaster = None;
                    actions.push(Action::Request(Request::Engine(
                        crate::engine::Command::Disaster { site },
                    )));
                }
                Some(false) => self.disaster = None,
                None => {}
            }
        }
        self.restart_dialogs(ui.ctx());
        for a in actions {
            self.apply(a);
        }
    }
}

/// A row of tabs under a separator; the current one is highlighted.
fn tab_bar<T: Copy + PartialEq, const N: usize>(
    ui: &mut egui::Ui,
    current: &mut T,
    tabs_: [T; N],
    label: fn(T) -> &'static str,
) {
    ui.horizontal(|ui| tabs(ui, current, tabs_, label));
    ui.separator();
}

/// The tabs of a tab bar, in the current row.
fn tabs<T: Copy + PartialEq, const N: usize>(
    ui: &mut egui::Ui,
    current: &mut T,
    tabs: [T; N],
    label: fn(T) -> &'static str,
) {
    for t in tabs {
        if ui
            .selectable_label(*current == t, egui::RichText::new(label(t)).strong())
            .clicked()
        {
            *current = t;
        }
    }
}

/// The side panels that fold away from the middle's tab bar (and the View menu).
#[derive(Clone, Copy)]
enum PanelToggle {
    Inventory,
    Side,
}

/// The buttons' accessible names (their texts are arrows pointing where the panel goes).
pub const HIDE_INVENTORY: &str = "Hide the inventory";
pub const SHOW_INVENTORY: &str = "Show the inventory";
pub const HIDE_SIDE_PANEL: &str = "Hide the side panel";
pub const SHOW_SIDE_PANEL: &str = "Show the side panel";

/// Folds a side panel away or brings it back: on a small screen the middle gets its room.
fn panel_toggle(ui: &mut egui::Ui, open: &mut bool, which: PanelToggle) {
    let (arrow, name, hint) = match (which, *open) {
        (PanelToggle::Inventory, true) => (
            "◀",
            HIDE_INVENTORY,
            "Fold the inventory away to give the middle its room (View ▶ Inventory)",
        ),
        (PanelToggle::Inventory, false) => ("▶", SHOW_INVENTORY, "Show the inventory tree again"),
        (PanelToggle::Side, true) => (
            "▶",
            HIDE_SIDE_PANEL,
            "Fold the Migrations and Replication panel away to give the middle its room (View ▶ Migrations and replication)",
        ),
        (PanelToggle::Side, false) => (
            "◀",
            SHOW_SIDE_PANEL,
            "Show the Migrations and Replication panel again",
        ),
    };
    let b = ui.small_button(arrow).on_hover_text(hint);
    b.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, name));
    if b.clicked() {
        *open = !*open;
    }
}

/// Where the window's regions were drawn last frame (the layout tests read them).
#[derive(Debug, Clone, Copy)]
pub struct Regions {
    pub window: egui::Rect,
    pub central: egui::Rect,
    /// `None` while folded away.
    pub inventory: Option<egui::Rect>,
    pub side: Option<egui::Rect>,
    pub log: Option<egui::Rect>,
}

impl Default for Regions {
    fn default() -> Self {
        Regions {
            window: egui::Rect::NOTHING,
            central: egui::Rect::NOTHING,
            inventory: None,
            side: None,
            log: None,
        }
    }
}

/// The panels' sizes follow the window's, so the middle keeps its room at 1024×700 as at
/// 1920×1080; what a panel cannot show at its width it scrolls.
mod sizes {
    use egui::Rangef;

    pub fn inventory_default(window_w: f32) -> f32 {
        (window_w * 0.2).clamp(170.0, 280.0)
    }
    pub fn inventory_range(window_w: f32) -> Rangef {
        Rangef::new(150.0, (window_w * 0.22).max(150.0))
    }
    pub fn side_default(window_w: f32) -> f32 {
        (window_w * 0.34).clamp(300.0, 440.0)
    }
    pub fn side_range(window_w: f32) -> Rangef {
        Rangef::new(280.0, (window_w * 0.34).max(280.0))
    }
    pub fn log_default(window_h: f32) -> f32 {
        (window_h * 0.25).clamp(110.0, 200.0)
    }
    pub fn log_range(window_h: f32) -> Rangef {
        Rangef::new(90.0, (window_h * 0.45).max(90.0))
    }
}

/// The right-hand panel: the task list on top, the two graphs sharing what is left.
fn migrations_panel(ui: &mut egui::Ui, live: &mut Live, actions: &mut Vec<Action>) {
    ui.add_space(4.0);
    let total = ui.available_height();
    tasks::show(ui, live, (total * 0.45).max(120.0), actions);
    ui.add_space(8.0);
    // Two graphs, each with a heading line, in the height left.
    let heading = ui.text_style_height(&egui::TextStyle::Body) + 10.0;
    let h = ((ui.available_height() - 2.0 * heading) / 2.0).max(90.0);
    graphs::progress(ui, live, h);
    ui.add_space(6.0);
    graphs::latency(ui, live, h);
}

/// Opens the console window on `--topology` and `--workspace` if given, else where it was
/// last time ([`Startup::with_persisted`]); the settings saved last time come back too.
/// `demo` is a scenario to play once the window is up (`--demo`).
pub fn run(
    topology: Option<PathBuf>,
    workspace: Option<PathBuf>,
    demo: Option<PathBuf>,
) -> eframe::Result {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_app_id("drconsole")
            .with_title("drconsole")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([640.0, 400.0])
            .with_drag_and_drop(true),
        // Window size and position come back from eframe's own storage.
        persist_window: true,
        ..Default::default()
    };
    eframe::run_native(
        "drconsole",
        options,
        Box::new(move |cc| {
            let saved: Option<Persisted> = cc
                .storage
                .and_then(|s| eframe::get_value(s, persist::STORAGE_KEY));
            let startup = Startup::with_persisted(topology.as_deref(), workspace, saved.as_ref());
            if let Some(e) = &startup.error {
                eprintln!("drconsole: error: {e}");
            }
            let mut app = DrApp::new(cc.egui_ctx.clone(), startup);
            if let Some(saved) = &saved {
                app.restore(saved);
            }
            if let Some(scenario) = demo {
                app.demo_open_paused(scenario);
            }
            Ok(Box::new(app))
        }),
    )
}
