//! The console window (eframe). The UI never touches files: opening and saving run on
//! background threads, the engine runs on its worker thread ([`worker`]), and both report
//! back over channels drained each frame in `logic`.

pub mod across_panel;
pub mod bench;
pub mod capacity_table;
mod clock;
pub mod demo;
mod details;
pub mod failover;
mod files;
mod graphs;
mod group_panel;
mod health_panel;
mod history;
mod hosts_panel;
mod layout;
mod live;
mod log;
mod menu;
pub mod new_vm;
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

use crate::dr::{self, DatastoreTags};
use crate::topology::{Topology, TopologySource};

pub use layout::{HIDE_INVENTORY, HIDE_SIDE_PANEL, Regions, SHOW_INVENTORY, SHOW_SIDE_PANEL};
pub use live::{LagHistory, Live, Status, Task, TaskState};
pub use log::{EventLog, ExportedEntry, Kind, Level, LogEntry, LogFilter};
pub use menu::EXPORT_REPORT;
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
    /// Where the operator chose to write the DR report (the worker writes it).
    ReportTo(PathBuf),
    /// A file dialog returned nothing: the operator cancelled, or no dialog is available
    /// (rfd cannot tell which).
    ChooserNone(open_path::FileAsk),
}

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
    /// Open the New VM dialog.
    NewVm,
    Request(Request),
    /// Ask the worker for a failover plan (the app adds the workspace's epoch).
    ScanFailover {
        id: u64,
        protection_groups: Vec<String>,
        kind: crate::engine::FailoverKind,
        point: Option<crate::engine::SimTime>,
    },
    /// Ask the worker for a cross-site move's plan (the app adds the workspace's epoch).
    PlanAcross {
        id: u64,
        consistency_group: String,
        consistency: crate::engine::Consistency,
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
    /// DR report exports asked of the worker and not yet answered.
    reports_pending: usize,
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
    /// New VM: initial placement.
    pub new_vm: new_vm::NewVm,
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
            reports_pending: 0,
            title_shown: String::new(),
            show_log: true,
            show_migrations: true,
            show_inventory: true,
            regions: Regions::default(),
            epoch: 0,
            workspace: startup.workspace,
            live: Live::new(Status::Off),
            wizard: wizard::Wizard::default(),
            new_vm: new_vm::NewVm::default(),
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
            Action::NewVm => self.new_vm.open_for(&self.doc.topology),
            Action::ShowMain(tab) => self.main_tab = tab,
            Action::ShowSide(tab) => {
                self.side_tab = tab;
                self.show_migrations = true;
            }
            Action::AskDisaster(site) => self.disaster = Some(site),
            Action::PlanAcross {
                id,
                consistency_group,
                consistency,
            } => self.worker.send(Request::PlanAcross {
                epoch: self.epoch,
                id,
                consistency_group,
                consistency,
            }),
            Action::ScanFailover {
                id,
                protection_groups,
                kind,
                point,
            } => self.worker.send(Request::ScanFailover {
                epoch: self.epoch,
                id,
                protection_groups,
                kind,
                point,
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
                format!("Run the simulated clock at {}", style::speed_label(*s))
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
            Report::Preparing { epoch, progress } if epoch == self.epoch => {
                self.live.preparing = Some(progress);
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
            Report::AcrossPlan {
                epoch,
                id,
                consistency_group,
                at,
                result,
            } if epoch == self.epoch => {
                if let Err(e) = &result {
                    self.log
                        .warning(format!("Cross-site move of {consistency_group}: {e}"));
                }
                self.resilience
                    .across
                    .on_plan(id, consistency_group, at, result);
            }
            Report::ReportExported { path, result } => self.report_exported(path, result),
            Report::NotApplied { command, reason } => self.log.warning(format!(
                "{}: {reason}",
                live::describe_in(&command, &self.doc.topology)
            )),
            r @ (Report::Reached { .. } | Report::StepDone { .. }) => self.demo_report(r),
            // Closed cleanly, or from a workspace the console has left.
            Report::Opened { .. }
            | Report::OpenFailed { .. }
            | Report::Preparing { .. }
            | Report::Update { .. }
            | Report::FailoverScan { .. }
            | Report::AcrossPlan { .. }
            | Report::NotRecorded { .. }
            | Report::Closed { .. } => {}
        }
    }
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
