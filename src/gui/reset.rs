//! Restarting a workspace: File ▶ Reset workspace… and what a reopen brings back.
//!
//! *Reset* discards the open workspace's state (its disks, journals, replicas, migrations,
//! failovers, event-log history and clock) and creates it afresh from the topology, after a
//! confirmation naming all that; the engine is closed first, and only the workspace's own
//! files go ([`crate::workspace::discard`], which refuses a directory that does not look
//! like a workspace). Reopening a workspace where a site was lost or a failover ran *offers*
//! the reset ("Continue it / Reset workspace") instead of carrying on without a word.
//!
//! A reopen also brings the event log's history back ([`super::history`]): the entries
//! logged while the workspace was open before come first, then a line marks the reopen.

use std::path::PathBuf;

use egui::RichText;

use super::history;
use super::live::{Status, mm_ss};
use super::log::ExportedEntry;
use super::style::Tone;
use super::worker::{Before, Request};
use super::{Document, DrApp, Kind, Level};
use crate::engine::SimTime;

/// The menu entry.
pub const MENU: &str = "Reset workspace…";
/// The confirming button of both dialogs.
pub const CONFIRM: &str = "Reset workspace";
/// The offer's button that keeps the workspace as it is.
pub const CONTINUE: &str = "Continue it";
/// The confirmation's title.
pub const TITLE: &str = "Reset the workspace?";

/// A question about the workspace at `root`.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    /// File ▶ Reset workspace…: are you sure?
    Confirm {
        root: PathBuf,
        topology: String,
        now: Option<SimTime>,
    },
    /// A reopen found a lost site or a failover: continue, or start afresh?
    Offer {
        root: PathBuf,
        sites_lost: Vec<(String, SimTime)>,
        failovers: usize,
    },
}

/// The offer's headline: "This workspace has site pa lost since 03:00".
pub fn offer_headline(sites_lost: &[(String, SimTime)], failovers: usize) -> String {
    let mut parts: Vec<String> = sites_lost
        .iter()
        .map(|(s, t)| format!("site {s} lost since {}", mm_ss(*t)))
        .collect();
    if failovers > 0 {
        parts.push(format!(
            "{failovers} failover{} run",
            if failovers == 1 { "" } else { "s" }
        ));
    }
    format!("This workspace has {}", parts.join(" and "))
}

/// What a reset discards, in words.
fn discarded(root: &std::path::Path, topology: &str, now: Option<SimTime>) -> String {
    let clock = now.map_or(String::new(), |t| format!(" (now {})", mm_ss(t)));
    format!(
        "Everything in {} is discarded: the VMs' disks and configurations, the journals, the \
         replicas and their recovery points, migrations in flight, failovers and their \
         reports, lost sites, the event log's history and the simulated clock{clock}. The \
         workspace is then created afresh from the topology \"{topology}\", with the clock at \
         00:00. Nothing outside that directory is touched, and files in it that are not the \
         workspace's are left alone.",
        root.display()
    )
}

/// What the operator answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Reset,
    /// Cancel, or Continue it.
    Keep,
}

/// Draws the question, if any.
pub fn show(ctx: &egui::Context, ask: &Ask) -> Option<Answer> {
    let mut answer = None;
    let id = egui::Id::unique("reset-workspace");
    let width = 520.0_f32.min(ctx.content_rect().width() - 48.0);
    let modal = egui::Modal::new(id)
        .area(super::replication::top_anchored(ctx, id))
        .show(ctx, |ui| {
            ui.set_width(width);
            let dark = ui.visuals().dark_mode;
            let keep = match ask {
                Ask::Confirm {
                    root,
                    topology,
                    now,
                } => {
                    ui.label(
                        RichText::new(TITLE)
                            .heading()
                            .size(18.0)
                            .color(Tone::Bad.text(dark)),
                    );
                    ui.add_space(4.0);
                    ui.add(egui::Label::new(discarded(root, topology, *now)).wrap());
                    "Cancel"
                }
                Ask::Offer {
                    root,
                    sites_lost,
                    failovers,
                } => {
                    ui.label(
                        RichText::new(offer_headline(sites_lost, *failovers))
                            .heading()
                            .size(18.0)
                            .color(Tone::Warn.text(dark)),
                    );
                    ui.add_space(4.0);
                    ui.add(
                        egui::Label::new(format!(
                            "The workspace {} was reopened as it was left. Continue it to carry on \
                             from there (a lost site stays lost until it comes back or a failover \
                             recovers its VMs), or reset it to start the topology afresh.",
                            root.display()
                        ))
                        .wrap(),
                    );
                    CONTINUE
                }
            };
            ui.add_space(12.0);
            ui.horizontal(|ui| {
                if ui.button(keep).clicked() {
                    answer = Some(Answer::Keep);
                }
                let go =
                    egui::Button::new(RichText::new(CONFIRM).strong().color(egui::Color32::WHITE))
                        .fill(Tone::Bad.fill());
                if ui.add(go).clicked() {
                    answer = Some(Answer::Reset);
                }
            });
        });
    if answer.is_none() && modal.should_close() {
        answer = Some(Answer::Keep);
    }
    answer
}

impl Drop for DrApp {
    /// What the last frames logged reaches the workspace's history: the worker (dropped
    /// after this) takes it before it closes the workspace.
    fn drop(&mut self) {
        self.record_history();
    }
}

/// What restarting needs to remember across frames.
#[derive(Default)]
pub struct Restart {
    /// The open question.
    pub ask: Option<Ask>,
    /// The next log entry to record in the open workspace's history (None: no workspace
    /// is open, or its open has not been reported yet).
    pub record_from: Option<usize>,
    /// The workspace being opened is created afresh (a demo, a reset): nothing to offer.
    pub opening_fresh: bool,
    /// The workspace being opened is a reset: resume the clock if it ran before.
    pub resetting: Option<bool>,
    /// The topology as opened (not the workspace's copy, where VMs have moved): what a
    /// reset starts from.
    pub loaded: Option<crate::topology::Topology>,
}

impl DrApp {
    /// The workspace the console runs (or tried to), if any.
    fn workspace_root(&self) -> Option<PathBuf> {
        match &self.live.status {
            Status::Open(root) | Status::Failed { root, .. } => Some(root.clone()),
            Status::Off | Status::Opening(_) => None,
        }
    }

    /// A workspace opened ([`super::worker::Report::Opened`]): its history comes back into
    /// the log, a line marks the (re)open, what is logged from there on is recorded in it,
    /// and a lost site or a failover is met with the offer to reset.
    pub(super) fn opened(&mut self, root: PathBuf, created: bool, before: Before) {
        let restored = before.entries.len();
        self.log
            .entries
            .extend(before.entries.iter().map(history::to_entry));
        let mark = self.log.entries.len();
        let resetting = self.restart.resetting.take();
        let message = if let Some(running) = resetting {
            if running {
                self.worker.send(Request::Resume);
            }
            format!(
                "Reset workspace {}: created afresh from \"{}\"",
                root.display(),
                self.doc.topology.name
            )
        } else if created {
            format!("Created workspace {}", root.display())
        } else if restored > 0 {
            let entries = if restored == 1 {
                "the entry above is".to_string()
            } else {
                format!("the {restored} entries above are")
            };
            format!(
                "Opened workspace {} again: the clock resumes at {}; {entries} its history",
                root.display(),
                mm_ss(before.now)
            )
        } else {
            format!(
                "Opened workspace {}: the clock resumes at {}",
                root.display(),
                mm_ss(before.now)
            )
        };
        self.log.info(message);
        if let Some(note) = before.note {
            self.log.push(
                Level::Warning,
                format!("The event log's history of {}: {note}", root.display()),
                false,
            );
        }
        self.restart.record_from = Some(mark);
        if !created
            && !self.restart.opening_fresh
            && (!before.sites_lost.is_empty() || before.failovers > 0)
        {
            self.restart.ask = Some(Ask::Offer {
                root: root.clone(),
                sites_lost: before.sites_lost,
                failovers: before.failovers,
            });
        }
        self.live.status = Status::Open(root);
        self.first_update = true;
    }

    /// Sends what was logged since the last call to the open workspace's history.
    pub(super) fn record_history(&mut self) {
        let Some(from) = self.restart.record_from else {
            return;
        };
        let n = self.log.entries.len();
        if from >= n {
            return;
        }
        let entries = self.log.entries[from..]
            .iter()
            .map(ExportedEntry::from)
            .collect();
        self.worker.send(Request::Record {
            epoch: self.epoch,
            entries,
        });
        self.restart.record_from = Some(n);
    }

    /// File ▶ Reset workspace…, enabled while a workspace runs (or failed to open).
    pub(super) fn reset_menu_item(&mut self, ui: &mut egui::Ui) {
        let root = self.workspace_root();
        let why_not = if self.demo.player.is_some() {
            Some("A demo runs in its own workspace: its Restart starts it afresh")
        } else if root.is_none() {
            Some("No workspace is open")
        } else {
            None
        };
        let clicked = ui
            .add_enabled(why_not.is_none(), egui::Button::new(MENU))
            .on_hover_text("Discard the workspace's state and start the topology afresh")
            .on_disabled_hover_text(why_not.unwrap_or_default())
            .clicked();
        if clicked && let Some(root) = root {
            self.restart.ask = Some(Ask::Confirm {
                root,
                topology: self.doc.topology.name.clone(),
                now: self.live.snapshot.as_ref().map(|s| s.now),
            });
        }
    }

    /// The path dialog, then the reset question, if open.
    pub(super) fn restart_dialogs(&mut self, ctx: &egui::Context) {
        self.path_prompt(ctx);
        let Some(ask) = self.restart.ask.clone() else {
            return;
        };
        let Some(answer) = show(ctx, &ask) else {
            return;
        };
        self.restart.ask = None;
        match (answer, ask) {
            (Answer::Reset, Ask::Confirm { root, .. } | Ask::Offer { root, .. }) => {
                self.reset_workspace(root)
            }
            (Answer::Keep, Ask::Offer { root, .. }) => self.log.info(format!(
                "Workspace {} continues as it was left",
                root.display()
            )),
            (Answer::Keep, Ask::Confirm { .. }) => {}
        }
    }

    /// Discards the workspace at `root` and creates it afresh from the topology as it was
    /// opened; the clock runs on if it ran.
    pub fn reset_workspace(&mut self, root: PathBuf) {
        let topology = match &self.restart.loaded {
            Some(t) if t.name == self.doc.topology.name => t.clone(),
            _ => self.doc.topology.clone(),
        };
        let now = self.live.snapshot.as_ref().map(|s| s.now);
        self.log.record(
            Kind::Command,
            Level::Info,
            format!(
                "Operator: Reset workspace {}: discard its state and start \"{}\" afresh",
                root.display(),
                topology.name
            ),
            now,
            false,
        );
        let running = self.live.snapshot.is_some() && !self.live.clock.paused;
        self.doc = Document::new(topology, self.doc.source.clone());
        self.selection = None;
        self.wizard = super::wizard::Wizard::default();
        self.open_root(root, crate::engine::EngineOptions::default(), true);
        self.restart.resetting = Some(running);
    }
}
