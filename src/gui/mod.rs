//! The console window (eframe). The UI never touches files: opening and saving run on
//! background threads and report back over a channel, drained each frame in `logic`.

mod details;
mod log;
pub mod style;
mod tree;

use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, Sender};
use egui::{Key, KeyboardShortcut, Modifiers};

use crate::dr::{self, DatastoreTags};
use crate::topology::{Topology, TopologySource};

pub use log::{EventLog, Level, LogEntry};

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
}

impl Document {
    pub fn new(topology: Topology, source: TopologySource) -> Document {
        let tags = dr::discover_tags(&topology);
        Document {
            topology,
            source,
            tags,
        }
    }

    pub fn tags_of(&self, datastore: &str) -> Option<&DatastoreTags> {
        self.tags.iter().find(|t| t.datastore == datastore)
    }
}

/// What a background I/O job reports.
enum IoResult {
    Opened(Result<(PathBuf, Topology), String>),
    Saved(Result<PathBuf, String>),
    /// A file dialog returned nothing: the operator cancelled (or no dialog is available).
    Cancelled,
}

/// The shortcuts of the File menu.
const OPEN: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::O);
const SAVE: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::S);
const SAVE_AS: KeyboardShortcut =
    KeyboardShortcut::new(Modifiers::COMMAND.plus(Modifiers::SHIFT), Key::S);

/// How the console starts: a topology, where it came from, and an error to show if the
/// requested file could not be used.
pub struct Startup {
    pub topology: Topology,
    pub source: TopologySource,
    pub error: Option<String>,
}

impl Startup {
    /// The built-in demo, or `path` if given and valid (else the demo and the error).
    pub fn from_path(path: Option<&Path>) -> Startup {
        match path {
            None => Startup {
                topology: Topology::builtin_default(),
                source: TopologySource::BuiltIn,
                error: None,
            },
            Some(p) => match Topology::load(p) {
                Ok(t) => Startup {
                    topology: t,
                    source: TopologySource::File(p.to_path_buf()),
                    error: None,
                },
                Err(e) => Startup {
                    error: Some(format!("{e}; opened the built-in demo instead")),
                    ..Startup::from_path(None)
                },
            },
        }
    }
}

pub struct DrApp {
    ctx: egui::Context,
    pub doc: Document,
    pub selection: Option<Selection>,
    pub filter: String,
    pub log: EventLog,
    io_tx: Sender<IoResult>,
    io_rx: Receiver<IoResult>,
    /// Background I/O jobs started and not yet reported.
    io_pending: usize,
    title_shown: String,
    show_log: bool,
}

impl DrApp {
    pub fn new(ctx: egui::Context, startup: Startup) -> DrApp {
        let (io_tx, io_rx) = crossbeam_channel::unbounded();
        let mut app = DrApp {
            ctx,
            doc: Document::new(startup.topology, startup.source),
            selection: None,
            filter: String::new(),
            log: EventLog::default(),
            io_tx,
            io_rx,
            io_pending: 0,
            title_shown: String::new(),
            show_log: true,
        };
        app.log.info(format!(
            "Opened \"{}\" from {}",
            app.doc.topology.name, app.doc.source
        ));
        if let Some(e) = startup.error {
            app.log.error(e);
        }
        app
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
        self.spawn_io(move || IoResult::Opened(load(path)));
    }

    /// Asks for a file with a dialog (off the UI thread), then opens it.
    pub fn open_dialog(&mut self) {
        self.spawn_io(|| {
            match rfd::FileDialog::new()
                .set_title("Open topology")
                .add_filter("Topology (RON)", &["ron"])
                .pick_file()
            {
                Some(path) => IoResult::Opened(load(path)),
                None => IoResult::Cancelled,
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
        self.spawn_io(move || {
            match rfd::FileDialog::new()
                .set_title("Save topology as")
                .add_filter("Topology (RON)", &["ron"])
                .set_file_name(file_name)
                .save_file()
            {
                Some(path) => IoResult::Saved(
                    topology
                        .save(&path)
                        .map(|()| path)
                        .map_err(|e| e.to_string()),
                ),
                None => IoResult::Cancelled,
            }
        });
    }

    fn handle_io(&mut self, result: IoResult) {
        self.io_pending = self.io_pending.saturating_sub(1);
        match result {
            IoResult::Opened(Ok((path, topology))) => {
                self.log.info(format!(
                    "Opened \"{}\" from {}",
                    topology.name,
                    path.display()
                ));
                self.doc = Document::new(topology, TopologySource::File(path));
                self.selection = None;
            }
            IoResult::Opened(Err(e)) => {
                self.log
                    .error(format!("{e}; the current topology stays open"));
            }
            IoResult::Saved(Ok(path)) => {
                self.log.info(format!("Saved to {}", path.display()));
                self.doc.source = TopologySource::File(path);
            }
            IoResult::Saved(Err(e)) => self.log.error(e),
            IoResult::Cancelled => {}
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
                if ui.button("Quit").clicked() {
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
            ui.menu_button("View", |ui| {
                ui.checkbox(&mut self.show_log, "Event log");
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

impl eframe::App for DrApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        while let Ok(r) = self.io_rx.try_recv() {
            self.handle_io(r);
        }
        self.handle_input(ctx);
        let title = self.title();
        if title != self.title_shown {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title_shown = title;
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::Panel::top("menu_bar").show(ui, |ui| self.menu_bar(ui));
        egui::Panel::bottom("event_log")
            .resizable(true)
            .default_size(140.0)
            .show_collapsible(ui, &mut self.show_log, |ui| self.log.ui(ui));
        egui::Panel::left("inventory")
            .resizable(true)
            .default_size(300.0)
            .show(ui, |ui| {
                tree::inventory(ui, &self.doc, &mut self.filter, &mut self.selection)
            });
        egui::CentralPanel::default_margins().show(ui, |ui| {
            details::show(ui, &self.doc, &mut self.selection);
        });
        self.log.toasts(ui);
    }
}

/// Opens the console window.
pub fn run(startup: Startup) -> eframe::Result {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(format!("drconsole — {}", startup.topology.name))
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([640.0, 400.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "drconsole",
        options,
        Box::new(|cc| Ok(Box::new(DrApp::new(cc.egui_ctx.clone(), startup)))),
    )
}
