//! Files by path when the system's file chooser gives nothing.
//!
//! File ▶ Open…, Save As… and the log's Export… ask the system's chooser (rfd, off the UI
//! thread). Where there is none (no desktop portal and no zenity, as under a bare X
//! server) rfd returns nothing, exactly as when the operator cancels: it cannot tell the
//! two apart. So after every empty answer the console says the chooser returned nothing
//! (a toast and the log) and offers a small dialog with a path field; a path that does
//! not work shows its error in the dialog, naming the file, and the dialog stays.

use std::path::PathBuf;

use egui::RichText;

use super::{DrApp, IoResult};

/// What a file is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileAsk {
    /// A topology to open.
    Open,
    /// Where to save the topology (the name suggested).
    SaveAs { file_name: String },
    /// Where to export the event log.
    ExportLog,
    /// Where to write the DR report (HTML).
    ExportReport,
}

/// The accessible name of the path field for opening a topology.
pub const OPEN_LABEL: &str = "Topology file path";
/// … for saving the topology.
pub const SAVE_LABEL: &str = "Save the topology to path";
/// … for exporting the log.
pub const EXPORT_LABEL: &str = "Export the event log to path";
/// … for writing the DR report.
pub const REPORT_LABEL: &str = "Write the DR report to path";

impl FileAsk {
    /// The dialog's title.
    pub fn title(&self) -> &'static str {
        match self {
            FileAsk::Open => "Open topology",
            FileAsk::SaveAs { .. } => "Save topology as",
            FileAsk::ExportLog => "Export the event log",
            FileAsk::ExportReport => "Export the DR report",
        }
    }

    /// The path field's accessible name.
    pub fn label(&self) -> &'static str {
        match self {
            FileAsk::Open => OPEN_LABEL,
            FileAsk::SaveAs { .. } => SAVE_LABEL,
            FileAsk::ExportLog => EXPORT_LABEL,
            FileAsk::ExportReport => REPORT_LABEL,
        }
    }

    /// The button that acts.
    pub fn verb(&self) -> &'static str {
        match self {
            FileAsk::Open => "Open",
            FileAsk::SaveAs { .. } => "Save",
            FileAsk::ExportLog | FileAsk::ExportReport => "Export",
        }
    }
}

/// Asks the system's file chooser (blocking: call it off the UI thread). `None`: the
/// operator cancelled, or there is no chooser.
pub type Chooser = fn(&FileAsk) -> Option<PathBuf>;

/// The system's chooser, through rfd.
pub fn system_chooser(ask: &FileAsk) -> Option<PathBuf> {
    let dialog = rfd::FileDialog::new().set_title(ask.title());
    match ask {
        FileAsk::Open => dialog.add_filter("Topology (RON)", &["ron"]).pick_file(),
        FileAsk::SaveAs { file_name } => dialog
            .add_filter("Topology (RON)", &["ron"])
            .set_file_name(file_name)
            .save_file(),
        FileAsk::ExportLog => dialog
            .add_filter("JSON lines", &["jsonl"])
            .set_file_name("drconsole-log.jsonl")
            .save_file(),
        FileAsk::ExportReport => dialog
            .add_filter("HTML page", &["html", "htm"])
            .set_file_name(REPORT_FILE_NAME)
            .save_file(),
    }
}

/// The DR report's suggested file name.
pub const REPORT_FILE_NAME: &str = "drconsole-report.html";

/// What the chooser's empty answer tells the operator.
pub fn chooser_gave_nothing(ask: &FileAsk) -> String {
    format!(
        "{}: the file chooser returned nothing (cancelled, or no chooser is available on this system); type the path instead",
        ask.title()
    )
}

/// The path dialog while it is open.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub ask: FileAsk,
    pub text: String,
    /// The last attempt's error.
    pub error: Option<String>,
    /// An attempt is running (its result clears this).
    pub busy: bool,
    /// Put the cursor in the field (the first frame).
    focus: bool,
}

impl Prompt {
    pub fn new(ask: FileAsk) -> Prompt {
        let text = match &ask {
            FileAsk::SaveAs { file_name } => file_name.clone(),
            FileAsk::Open => String::new(),
            FileAsk::ExportLog => "drconsole-log.jsonl".into(),
            FileAsk::ExportReport => REPORT_FILE_NAME.into(),
        };
        Prompt {
            ask,
            text,
            error: None,
            busy: false,
            focus: true,
        }
    }
}

/// The file chooser and the path dialog.
pub struct Files {
    /// Replaceable, so tests can stand in for a system without a chooser.
    pub chooser: Chooser,
    pub prompt: Option<Prompt>,
}

impl Default for Files {
    fn default() -> Self {
        Files {
            chooser: system_chooser,
            prompt: None,
        }
    }
}

/// What the operator did in the path dialog this frame.
pub enum Answer {
    /// Act on this path.
    Go(FileAsk, PathBuf),
    Cancel,
}

/// Draws the path dialog, if open.
pub fn show(ctx: &egui::Context, files: &mut Files) -> Option<Answer> {
    let p = files.prompt.as_mut()?;
    let mut answer = None;
    let id = egui::Id::unique("file-path-prompt");
    let modal = egui::Modal::new(id)
        .area(super::replication::top_anchored(ctx, id))
        .show(ctx, |ui| {
            ui.set_width(480.0_f32.min(ctx.content_rect().width() - 48.0));
            ui.label(RichText::new(p.ask.title()).heading().size(18.0));
            ui.add_space(4.0);
            ui.add(
                egui::Label::new(
                    "The file chooser returned nothing: it was cancelled, or this system has none. Type the file's path:",
                )
                .wrap(),
            );
            ui.add_space(4.0);
            let label = ui.label(p.ask.label());
            let field = ui
                .add(
                    egui::TextEdit::singleline(&mut p.text)
                        .desired_width(f32::INFINITY)
                        .hint_text("/path/to/file"),
                )
                .labelled_by(label.id);
            // Until it has taken (a modal's first frames only lay it out).
            if p.focus {
                if field.has_focus() {
                    p.focus = false;
                } else {
                    field.request_focus();
                }
            }
            let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if let Some(e) = &p.error {
                ui.add(egui::Label::new(super::style::toned(ui, e, super::style::Tone::Bad)).wrap());
            }
            ui.add_space(8.0);
            ui.horizontal(|ui| {
                if ui.button("Cancel").clicked() {
                    answer = Some(Answer::Cancel);
                }
                let path = p.text.trim();
                let go = ui.add_enabled(!path.is_empty() && !p.busy, egui::Button::new(p.ask.verb()));
                if (go.clicked() || enter) && !path.is_empty() && !p.busy {
                    answer = Some(Answer::Go(p.ask.clone(), PathBuf::from(path)));
                }
                if p.busy {
                    ui.spinner();
                }
            });
        });
    if answer.is_none() && modal.should_close() {
        answer = Some(Answer::Cancel);
    }
    match &answer {
        Some(Answer::Cancel) => files.prompt = None,
        Some(Answer::Go(..)) => {
            if let Some(p) = files.prompt.as_mut() {
                p.busy = true;
                p.error = None;
            }
        }
        None => {}
    }
    answer
}

impl DrApp {
    /// A background job's result reaches the path dialog waiting for it: success closes
    /// the dialog, an error stays in it (the log has it too).
    pub(super) fn prompt_result(&mut self, result: &IoResult) {
        let Some(p) = self.files.prompt.as_ref().filter(|p| p.busy) else {
            return;
        };
        let outcome = match (&p.ask, result) {
            (FileAsk::Open, IoResult::Opened(o)) => o.as_ref().as_ref().map(|_| ()),
            (FileAsk::SaveAs { .. }, IoResult::Saved(o)) => o.as_ref().map(|_| ()),
            (FileAsk::ExportLog, IoResult::Exported(o)) => o.as_ref().map(|_| ()),
            _ => return,
        };
        self.prompt_outcome(outcome);
    }

    /// The worker's answer to a report export reaches the path dialog waiting for it.
    pub(super) fn prompt_report_result(&mut self, outcome: Result<(), &String>) {
        if self
            .files
            .prompt
            .as_ref()
            .is_some_and(|p| p.busy && p.ask == FileAsk::ExportReport)
        {
            self.prompt_outcome(outcome);
        }
    }

    fn prompt_outcome(&mut self, outcome: Result<(), &String>) {
        match outcome {
            Ok(()) => self.files.prompt = None,
            Err(e) => {
                let e = e.clone();
                if let Some(p) = self.files.prompt.as_mut() {
                    p.busy = false;
                    p.error = Some(e);
                }
            }
        }
    }

    /// Draws the path dialog and acts on its answer.
    pub(super) fn path_prompt(&mut self, ctx: &egui::Context) {
        if let Some(Answer::Go(ask, path)) = show(ctx, &mut self.files) {
            match ask {
                FileAsk::Open => self.open_path(path),
                FileAsk::SaveAs { .. } => self.save_to(path),
                FileAsk::ExportLog => self.export_log_to(path),
                FileAsk::ExportReport => self.export_report_to(path),
            }
        }
    }
}
