//! The demo player: plays a scenario file (SPEC §10) in the console, with captions.
//!
//! A demo runs in a workspace of its own (`<data dir>/drconsole/demos/<scenario slug>`),
//! deleted and created afresh from the scenario's topology and seed every time it starts,
//! so a demo always starts from the same state. The worker runs the clock up to each
//! step's time exactly and stops there ([`Request::RunUntil`]); the player then shows the
//! step in the panels an operator uses — the migration wizard filled in and Start pressed,
//! the failover panel scanning and running, the Disaster confirmation — and the step runs
//! on the worker through [`crate::scenario::run_step`], the headless runner's own code,
//! so a demo ends as `drconsole run` does. Between steps the clock runs at its speed.
//!
//! The panels' own code paths issue the commands: the demo presses their buttons through
//! small hooks ([`super::wizard::Wizard::press_start`],
//! [`super::failover::FailoverPanel::press_run`], …), and [`DrApp::demo_route`] turns the
//! command they send into the scenario step it stands for. When a panel refuses (Start
//! disabled, nothing to run), the step runs directly and its outcome says why, as in a
//! headless run.

mod choreo;
mod draw;
mod player;

use player::{Beat, Press, Stage, issues};
pub use player::{Caption, Player, Script, action_words, outcome_words};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::live::mm_ss;
use super::worker::Request;
use super::{Document, DrApp, MainTab, Selection, SideTab, WorkspaceChoice, wizard};
use crate::engine::{Command, SimTime, from_minutes};
use crate::scenario::{Action, Expectation, Scenario, StepOutcome, StepReport};
use crate::topology::{Topology, TopologySource};

/// The directory of sample scenarios, looked for in the working directory and the crate's.
pub const SAMPLES_DIR: &str = "sample_scenarios";
/// The clock's speed when a demo starts (the clock toolbar can change it).
pub const DEFAULT_SPEED: f64 = 60.0;
/// How long each beat of a step's choreography stays on screen (wall time).
pub const DEFAULT_DWELL: Duration = Duration::from_millis(1500);

/// The player bar's buttons (their texts are their accessible names).
pub const PLAY: &str = "▶ Play demo";
pub const PAUSE: &str = "⏸ Pause demo";
pub const STEP: &str = "⏭ Step";
pub const RESTART: &str = "⟲ Restart";
pub const CLOSE: &str = "✖ Close demo";
/// The Demo menu's entry that asks for a file.
pub const OPEN_SCENARIO: &str = "Open scenario…";

/// A scenario of `sample_scenarios/`, as the Demo menu lists it.
#[derive(Debug, Clone)]
pub struct Sample {
    pub path: PathBuf,
    /// The scenario's name, or the file's name if it does not load (choosing it then
    /// shows why).
    pub name: String,
}

/// What the demo's background jobs report.
enum Loaded {
    Samples(Vec<Sample>),
    /// A scenario loaded (or why not), and whether it starts playing at once.
    Script(Result<Box<Script>, String>, bool),
    /// The file dialog was cancelled.
    Cancelled,
}

/// The demo player and the Demo menu's list.
pub struct Demo {
    ctx: egui::Context,
    tx: Sender<Loaded>,
    rx: Receiver<Loaded>,
    /// The sample scenarios, once listed (listed once, off the UI thread).
    pub samples: Option<Vec<Sample>>,
    /// Where demo workspaces go, one per scenario, emptied before every run.
    pub workspaces: PathBuf,
    /// How long each beat of the choreography stays on screen.
    pub dwell: Duration,
    /// The clock's speed when a demo starts.
    pub speed: f64,
    /// A demo starts playing at once (else it waits for Play or Step).
    pub autoplay: bool,
    /// Scenario loads (and dialogs) not yet answered.
    loading: usize,
    pub player: Option<Player>,
    /// What the console showed before the demo started: Close demo goes back to it.
    before: Option<Before>,
}

/// The topology, workspace and clock the operator had before a demo.
struct Before {
    topology: Topology,
    source: TopologySource,
    workspace: WorkspaceChoice,
    speed: f64,
    paused: bool,
}

/// `<data dir>/drconsole/demos`, or `./drconsole-demos` without a home directory.
fn default_workspaces() -> PathBuf {
    match directories::ProjectDirs::from("", "", "drconsole") {
        Some(dirs) => dirs.data_dir().join("demos"),
        None => PathBuf::from("drconsole-demos"),
    }
}

/// The first `sample_scenarios` directory found: in the working directory, else the
/// crate's.
fn samples_dir() -> Option<PathBuf> {
    [
        PathBuf::from(SAMPLES_DIR),
        Path::new(env!("CARGO_MANIFEST_DIR")).join(SAMPLES_DIR),
    ]
    .into_iter()
    .find(|d| d.is_dir())
}

/// The `.ron` files of `dir`, by file name, each with its scenario's name.
pub fn list_samples(dir: &Path) -> Vec<Sample> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ron"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = Scenario::load(&path).map(|s| s.name).unwrap_or_else(|_| {
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            Sample { path, name }
        })
        .collect()
}

impl Demo {
    /// Starts listing the sample scenarios in the background.
    pub fn new(ctx: egui::Context) -> Demo {
        let (tx, rx) = crossbeam_channel::unbounded();
        let demo = Demo {
            ctx,
            tx,
            rx,
            samples: None,
            workspaces: default_workspaces(),
            dwell: DEFAULT_DWELL,
            speed: DEFAULT_SPEED,
            autoplay: true,
            loading: 0,
            player: None,
            before: None,
        };
        demo.spawn(|| Loaded::Samples(samples_dir().map(|d| list_samples(&d)).unwrap_or_default()));
        demo
    }

    fn spawn(&self, job: impl FnOnce() -> Loaded + Send + 'static) {
        let tx = self.tx.clone();
        let ctx = self.ctx.clone();
        std::thread::spawn(move || {
            // The receiver goes away only with the app: nobody to tell then.
            let _ = tx.send(job());
            ctx.request_repaint();
        });
    }

    /// Is a scenario being loaded (or a dialog open)?
    pub fn loading(&self) -> bool {
        self.loading > 0
    }
}

impl DrApp {
    /// Loads a scenario file off the UI thread and plays it once loaded; a bad file is
    /// reported and the console stays as it was.
    pub fn demo_open(&mut self, path: PathBuf) {
        self.demo_load(path, self.demo.autoplay);
    }

    /// Loads a scenario like [`DrApp::demo_open`], and waits at its start for Play or
    /// Step (`--demo`: the presenter starts it when the audience is ready).
    pub fn demo_open_paused(&mut self, path: PathBuf) {
        self.demo_load(path, false);
    }

    /// Loads `path` off the UI thread; once loaded it starts, playing or not.
    fn demo_load(&mut self, path: PathBuf, play: bool) {
        self.demo.loading += 1;
        self.demo
            .spawn(move || Loaded::Script(Script::load(&path).map(Box::new), play));
    }

    /// Asks for a scenario file with a dialog (off the UI thread), then plays it.
    pub fn demo_open_dialog(&mut self) {
        let autoplay = self.demo.autoplay;
        self.demo.loading += 1;
        self.demo.spawn(move || {
            let start = samples_dir();
            let mut dialog = rfd::FileDialog::new()
                .set_title("Open scenario")
                .add_filter("Scenario (RON)", &["ron"]);
            if let Some(d) = start {
                dialog = dialog.set_directory(d);
            }
            match dialog.pick_file() {
                Some(path) => Loaded::Script(Script::load(&path).map(Box::new), autoplay),
                None => Loaded::Cancelled,
            }
        });
    }

    /// Plays `script` from its start in a fresh demo workspace.
    pub fn demo_start(&mut self, script: Script) {
        self.demo_start_with(script, self.demo.autoplay);
    }

    /// Starts `script` in a fresh demo workspace, playing or waiting for Play or Step.
    fn demo_start_with(&mut self, script: Script, play: bool) {
        self.demo_close_panels();
        if self.demo.player.is_none() && self.demo.before.is_none() {
            self.demo.before = Some(Before {
                topology: self.doc.topology.clone(),
                source: self.doc.source.clone(),
                workspace: self.workspace.clone(),
                speed: self.live.clock.speed,
                paused: self.live.clock.paused,
            });
        }
        let slug = crate::workspace::workspace_slug(&script.scenario.name);
        let root = self.demo.workspaces.join(slug);
        self.log.info(format!(
            "Demo \"{}\" from {}: {} step(s), seed {}, in a fresh workspace {}",
            script.scenario.name,
            script.path.display(),
            script.scenario.steps.len(),
            script.scenario.seed,
            root.display()
        ));
        let topology_path = script.scenario.topology_path(&script.path);
        self.doc = Document::new(script.topology.clone(), TopologySource::File(topology_path));
        self.selection = None;
        self.wizard = wizard::Wizard::default();
        self.main_tab = MainTab::Details;
        self.side_tab = SideTab::Migrations;
        self.show_migrations = true;
        self.workspace = WorkspaceChoice::Dir(root.clone());
        self.open_root(root.clone(), script.scenario.engine_options(), true);
        self.worker.send(Request::SetSpeed(self.demo.speed));
        self.demo.player = Some(Player::new(script, root, self.epoch, play));
    }

    /// Starts the demo over from a fresh workspace.
    pub fn demo_restart(&mut self) {
        if let Some(p) = self.demo.player.take() {
            self.demo_start(p.script);
        }
    }

    /// Ends the demo and goes back to the topology, workspace and clock speed the console
    /// had before it (the demo's workspace stays on disk as the demo left it, for a look
    /// with `--workspace`).
    pub fn demo_close(&mut self) {
        if let Some(p) = self.demo.player.take() {
            if matches!(
                p.stage,
                Stage::Show { .. } | Stage::Pressed(_) | Stage::Running
            ) {
                self.demo_close_panels();
            }
            if p.epoch == self.epoch {
                self.worker.send(Request::ClearStop);
            }
            self.log.info(format!(
                "Demo \"{}\" closed; its workspace stays in {}",
                p.script.scenario.name,
                p.root.display()
            ));
            if p.epoch == self.epoch {
                self.demo_restore_before();
            }
        }
        self.demo.before = None;
    }

    /// Reopens what the console showed before the demo, at the clock speed it ran at.
    fn demo_restore_before(&mut self) {
        let Some(b) = self.demo.before.take() else {
            return;
        };
        self.demo_close_panels();
        self.log
            .info(format!("Back to \"{}\" from {}", b.topology.name, b.source));
        self.doc = Document::new(b.topology, b.source);
        self.selection = None;
        self.filter.clear();
        self.wizard = wizard::Wizard::default();
        self.workspace = b.workspace;
        if self.workspace == WorkspaceChoice::None {
            // Browsing only, as before: the demo's engine reports to nobody.
            self.epoch += 1;
            self.live = super::Live::new(super::Status::Off);
            self.failover.reset();
        }
        self.open_workspace();
        self.worker.send(Request::SetSpeed(b.speed));
        self.worker.send(if b.paused {
            Request::Pause
        } else {
            Request::Resume
        });
    }

    /// Plays on from where the demo stands.
    pub fn demo_play(&mut self) {
        let Some(p) = self.demo.player.as_mut() else {
            return;
        };
        p.playing = true;
        match p.stage {
            // The clock stood still on the way to the step: it runs on.
            Stage::Arriving { .. } => self.worker.send(Request::Resume),
            Stage::AtStep(at) => self.demo_arrived(at),
            _ => {}
        }
    }

    /// Stops after the step in progress; the clock pauses.
    pub fn demo_pause(&mut self) {
        let Some(p) = self.demo.player.as_mut() else {
            return;
        };
        p.playing = false;
        match p.stage {
            Stage::Reading { .. } => self.demo_advance(false),
            // The clock stops on the way; Play resumes it, Step rushes on.
            Stage::Arriving { .. } => self.worker.send(Request::Pause),
            _ => {}
        }
    }

    /// Runs the next step now (the clock rushes to its time), then waits.
    pub fn demo_step(&mut self) {
        let Some(p) = self.demo.player.as_mut() else {
            return;
        };
        p.playing = false;
        match p.stage {
            Stage::Arriving { .. } | Stage::Reading { .. } => self.demo_advance(true),
            Stage::AtStep(at) => self.demo_arrived(at),
            _ => {}
        }
    }

    /// Sets the clock's stop at the next step's time (or finishes): with `rush` the clock
    /// hurries there; else it runs there at its speed while playing, and stands still
    /// otherwise. Either way it cannot pass a step not yet run.
    fn demo_advance(&mut self, rush: bool) {
        let Some(p) = self.demo.player.as_mut() else {
            return;
        };
        let Some(at) = p.step().map(|s| from_minutes(s.at)) else {
            self.demo_finish();
            return;
        };
        p.stage = Stage::Arriving { rush };
        let playing = p.playing;
        // The clock first, then the stop: a stop already reached pauses the clock again.
        if !rush {
            self.worker.send(if playing {
                Request::Resume
            } else {
                Request::Pause
            });
        }
        self.worker.send(Request::RunUntil { at, rush });
    }

    fn demo_finish(&mut self) {
        let Some(p) = self.demo.player.as_mut() else {
            return;
        };
        p.stage = Stage::Finished;
        p.playing = false;
        // The last caption stays to be read, then goes: the demo is over and the console
        // is the operator's again (the player bar keeps the verdicts).
        p.caption_until = Some(Instant::now() + self.demo.dwell * CAPTION_LINGER);
        self.ctx.request_repaint();
        self.worker.send(Request::ClearStop);
        let (pass, fail) = p.verdicts();
        let name = p.script.scenario.name.clone();
        if fail == 0 {
            self.log.info(format!(
                "Demo \"{name}\" finished: {pass} expectation(s) passed"
            ));
        } else {
            self.log.error(format!(
                "Demo \"{name}\" finished: {fail} of {} expectation(s) FAILED",
                pass + fail
            ));
        }
    }

    /// Closes what the choreography opened.
    fn demo_close_panels(&mut self) {
        self.wizard.open = false;
        self.disaster = None;
        self.failover.confirming = false;
    }

    /// The work of a frame: take in loaded files, follow the workspace, play the beats.
    pub(super) fn demo_tick(&mut self) {
        while let Ok(l) = self.demo.rx.try_recv() {
            match l {
                Loaded::Samples(s) => self.demo.samples = Some(s),
                Loaded::Script(r, play) => {
                    self.demo.loading = self.demo.loading.saturating_sub(1);
                    match r {
                        Ok(script) => self.demo_start_with(*script, play),
                        Err(e) => self.log.error(format!(
                            "Demo: {e}. Nothing was played; the console is as it was."
                        )),
                    }
                }
                Loaded::Cancelled => self.demo.loading = self.demo.loading.saturating_sub(1),
            }
        }
        self.demo_keys();
        let Some(p) = self.demo.player.as_mut() else {
            return;
        };
        if p.epoch != self.epoch {
            // Another topology or workspace was opened: the demo's is gone.
            let name = p.script.scenario.name.clone();
            self.demo.player = None;
            // The operator chose where to go: nothing to go back to.
            self.demo.before = None;
            self.log.info(format!(
                "Demo \"{name}\" closed: another workspace was opened"
            ));
            return;
        }
        let now = Instant::now();
        match p.caption_until {
            Some(until) if now >= until => {
                p.caption = None;
                p.caption_until = None;
            }
            Some(until) => self.ctx.request_repaint_after(until - now),
            None => {}
        }
        match p.stage {
            Stage::Opening => {
                if let super::Status::Failed { error, .. } = &self.live.status {
                    p.error = Some(error.clone());
                    p.stage = Stage::Finished;
                } else if self.live.is_open() {
                    self.demo_advance(false);
                }
            }
            Stage::Show { beat, due } if now >= due => self.demo_beat(beat),
            Stage::Show { due, .. } => self.ctx.request_repaint_after(due - now),
            Stage::Pressed(press) => self.demo_after_press(press),
            Stage::Reading { due } if now >= due => self.demo_advance(false),
            Stage::Reading { due } => self.ctx.request_repaint_after(due - now),
            Stage::Arriving { .. } | Stage::AtStep(_) | Stage::Running | Stage::Finished => {}
        }
    }

    /// A presenter's remote: Page Down runs the next step, F5 plays or pauses. Taken
    /// before the panels draw, so no scroll area sees them; not while typing.
    fn demo_keys(&mut self) {
        let Some(p) = self.demo.player.as_ref() else {
            return;
        };
        if self.ctx.egui_wants_keyboard_input() {
            return;
        }
        let playing = p.playing && !p.finished();
        let (step, toggle) = self.ctx.input_mut(|i| {
            (
                i.consume_key(egui::Modifiers::NONE, egui::Key::PageDown),
                i.consume_key(egui::Modifiers::NONE, egui::Key::F5),
            )
        });
        if step {
            self.demo_step();
        } else if toggle && playing {
            self.demo_pause();
        } else if toggle {
            self.demo_play();
        }
    }
}

/// How many beats' dwell the last caption stays after a demo finishes.
const CAPTION_LINGER: u32 = 4;

/// Where the window's content starts below the top bars (menu, clock, demo player and
/// caption), as [`DrApp::draw`] last recorded it: modals and the wizard open below it, so
/// they cover no caption, and the caption none of them.
pub(crate) fn content_top(ctx: &egui::Context) -> f32 {
    ctx.data(|d| d.get_temp::<f32>(content_top_id()))
        .unwrap_or(110.0)
}

/// Records [`content_top`] for this frame.
pub(crate) fn set_content_top(ctx: &egui::Context, y: f32) {
    ctx.data_mut(|d| d.insert_temp(content_top_id(), y));
}

fn content_top_id() -> egui::Id {
    egui::Id::unique("drconsole-content-top")
}

#[cfg(test)]
mod tests;
