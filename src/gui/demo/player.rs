//! The demo player's state: the scenario being played, where it stands, and its caption.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::engine::{Command, SimTime};
use crate::scenario::{Action, Expectation, Scenario, Step, StepOutcome, StepReport};
use crate::topology::Topology;

/// A scenario file loaded with its topology, ready to play.
#[derive(Debug, Clone)]
pub struct Script {
    pub path: PathBuf,
    pub scenario: Scenario,
    pub topology: Topology,
}

impl Script {
    /// Reads and checks the scenario and its topology (file I/O: not on the UI thread).
    pub fn load(path: &Path) -> Result<Script, String> {
        let scenario = Scenario::load(path).map_err(|e| e.to_string())?;
        let topology = scenario.load_topology(path).map_err(|e| e.to_string())?;
        Ok(Script {
            path: path.to_path_buf(),
            scenario,
            topology,
        })
    }
}

/// The scenario on the caption overlay.
#[derive(Debug, Clone, PartialEq)]
pub struct Caption {
    /// The step's number, from 1.
    pub number: usize,
    pub at: SimTime,
    /// The step's caption, or its action in words.
    pub text: String,
    /// How it ended, once it ran.
    pub outcome: Option<StepOutcome>,
    pub detail: String,
}

/// Where the player is in its scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Stage {
    /// The workspace is being created.
    Opening,
    /// The clock runs to the next step's time (or stands still, paused, while the demo
    /// waits for Play or Step): the worker stops it there. `rush`: Step was pressed.
    Arriving {
        rush: bool,
    },
    /// The clock stands at the next step's time, `at`, and the demo waits for Play or
    /// Step (the clock got there while the demo was paused).
    AtStep(SimTime),
    /// Showing the step in the panels; `beat` comes at `due`.
    Show {
        beat: Beat,
        due: Instant,
    },
    /// A button was pressed this frame; the command it issues should have arrived.
    Pressed(Press),
    /// The step runs on the worker.
    Running,
    /// Holding a caption before the next step, which runs at the same instant.
    Reading {
        due: Instant,
    },
    Finished,
}

/// The beats of the steps' choreography.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Beat {
    /// Tick (or not) the wizard's "Are you sure?".
    Confirm,
    /// Press the wizard's Start.
    Start,
    /// Press the failover panel's Scan.
    Scan,
    /// Wait for the scan, then show the plan.
    Scanned,
    /// Press the failover panel's Run.
    Run,
    /// Press the run confirmation's confirm button.
    ConfirmRun,
    /// Close the Disaster confirmation and run the step.
    CloseDisaster,
    /// Run the step directly.
    Direct,
}

/// What was pressed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Press {
    Start,
    Run,
    ConfirmRun,
}

/// A scenario being played.
pub struct Player {
    pub script: Script,
    /// The demo's workspace.
    pub root: PathBuf,
    /// The console's workspace epoch the demo runs in.
    pub(super) epoch: u64,
    /// The index of the next step to run (or the one running).
    pub(super) next: usize,
    /// The reports of the steps run, in order: what `drconsole run` reports.
    pub reports: Vec<StepReport>,
    /// Play (steps follow each other) rather than step by step.
    pub playing: bool,
    pub(super) stage: Stage,
    pub caption: Option<Caption>,
    /// When the last step's caption goes, once the demo has finished.
    pub(super) caption_until: Option<Instant>,
    /// Why the demo stopped early.
    pub error: Option<String>,
}

impl Player {
    /// A player at the start of `script`, its workspace `root` being opened in the
    /// console's workspace `epoch`; `playing`: steps follow each other once it is open.
    pub fn new(script: Script, root: PathBuf, epoch: u64, playing: bool) -> Player {
        Player {
            script,
            root,
            epoch,
            next: 0,
            reports: Vec::new(),
            playing,
            stage: Stage::Opening,
            caption: None,
            caption_until: None,
            error: None,
        }
    }

    pub fn total(&self) -> usize {
        self.script.scenario.steps.len()
    }

    /// Every step has run (or the demo stopped on an engine failure).
    pub fn finished(&self) -> bool {
        self.stage == Stage::Finished
    }

    /// Waiting for Play or Step.
    pub fn ready(&self) -> bool {
        !self.playing && matches!(self.stage, Stage::Arriving { .. } | Stage::AtStep(_))
    }

    /// The step on screen: the one in progress, else the last one run (0 before any).
    pub fn shown_step(&self) -> usize {
        match self.stage {
            Stage::Show { .. } | Stage::Pressed(_) | Stage::Running => self.next + 1,
            _ => self.reports.len(),
        }
    }

    /// "step 3 of 7".
    pub fn counter(&self) -> String {
        format!("step {} of {}", self.shown_step(), self.total())
    }

    /// Expectations passed and failed so far.
    pub fn verdicts(&self) -> (usize, usize) {
        let count = |o| self.reports.iter().filter(|r| r.outcome == o).count();
        (count(StepOutcome::Pass), count(StepOutcome::Fail))
    }

    pub(super) fn step(&self) -> Option<&Step> {
        self.script.scenario.steps.get(self.next)
    }
}

/// The action of a step in words, for a step without a caption.
pub fn action_words(action: &Action) -> String {
    match action {
        Action::Expect(e) => expectation_words(e),
        Action::Command(c @ Command::Migrate { confirm: true, .. }) => {
            format!("{c}, the operator confirming the risk")
        }
        Action::Command(c) => c.to_string(),
    }
}

fn expectation_words(e: &Expectation) -> String {
    match e {
        Expectation::Located { vm, datastore } => format!("Check: {vm} lives on {datastore}"),
        Expectation::Consistent { vm } => format!("Check: {vm} is write-order consistent"),
        Expectation::WritesLost { vm, max } => {
            format!("Check: {vm} lost at most {max} acknowledged write(s)")
        }
        Expectation::Rating { vm, to, rating } => {
            format!("Check: moving {vm} to {to} is rated {rating}")
        }
        Expectation::MigrationDone { vm } => format!("Check: {vm}'s migration has completed"),
        Expectation::Recovered { vm, datastore } => {
            format!("Check: {vm} was recovered from {datastore}")
        }
        Expectation::Lost { vm } => format!("Check: {vm} could not be recovered"),
        Expectation::Compliant { datastore } => {
            format!("Check: {datastore} is in compliance, its two legs identical")
        }
        Expectation::OutOfCompliance { datastore } => {
            format!("Check: {datastore} is out of compliance (one leg)")
        }
        Expectation::ServedBy { vm, array } => format!("Check: {vm}'s I/O goes to {array}"),
        Expectation::Replicating { datastore } => {
            format!("Check: {datastore} replicates in its original direction again")
        }
        Expectation::Protected { vm } => {
            format!("Check: {vm} is protected: a published point holds its running instance")
        }
        Expectation::OnHost { vm, host } => format!("Check: {vm} runs on {host}"),
        Expectation::GroupMigrated { from, to } => {
            format!("Check: the group migration {from} ▶ {to} declared success")
        }
        Expectation::InMaintenance { datastore } => {
            format!("Check: {datastore} is in maintenance mode and empty")
        }
    }
}

/// A step's outcome in a word or two.
pub fn outcome_words(o: StepOutcome) -> &'static str {
    match o {
        StepOutcome::Ok => "done",
        StepOutcome::Refused => "refused",
        StepOutcome::Error => "error",
        StepOutcome::Pass => "✔ passed",
        StepOutcome::Fail => "✘ FAILED",
    }
}

/// Does `c`, sent by a panel, issue the step's command? The panels order protection
/// groups their own way and send `confirm` only for a risky move, so those are compared
/// loosely.
pub(super) fn issues(step: &Step, c: &Command) -> bool {
    step.action.command().is_some_and(|own| own.same_request(c))
}

#[cfg(test)]
mod tests;
