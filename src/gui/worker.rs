//! The engine's thread. It owns the [`Engine`] (the UI thread never touches a file): it
//! opens and closes workspaces, applies commands, and drives the simulated clock at
//! wall-clock time × speed. After every slice of work it sends an [`Update`] and wakes the
//! UI with `request_repaint`.
//!
//! Pacing: every tick the clock is asked to move by the wall time elapsed since the last
//! tick × speed. The engine works through its due events one simulated instant at a time
//! and stops when a slice has used [`SLICE_BUDGET`] of wall time; what it did not reach is
//! dropped, so the simulated clock runs slower than asked and the update says how fast it
//! really went ([`Clock::achieved`], [`Clock::behind`]). When paused or without a
//! workspace the thread sleeps in `recv` on its channel.
//!
//! The demo player asks for exact instants: [`Request::RunUntil`] sets a stop the clock
//! never passes; reaching it pauses the clock there and answers [`Report::Reached`], and
//! [`Request::RunStep`] then runs a scenario step at that instant through
//! [`scenario::run_step`], as the headless runner does.

mod driver;

#[cfg(test)]
mod tests;

use driver::Driver;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::log::ExportedEntry;
use crate::engine::{
    Command, EngineOptions, FailoverKind, FailoverPlan, LogLine, Outcome, Progress, SimTime,
    Snapshot,
};
use crate::scenario::{Step, StepReport};
use crate::topology::Topology;

/// The speeds the console offers (simulated seconds per wall second).
pub const SPEEDS: [f64; 4] = [1.0, 10.0, 60.0, 600.0];

/// Wall time of engine work per slice before the worker stops and reports.
pub const SLICE_BUDGET: Duration = Duration::from_millis(20);
/// Time between slices while something happens (events ran, a migration is in flight).
const TICK_BUSY: Duration = Duration::from_millis(20);
/// Time between slices while the clock only ticks.
const TICK_IDLE: Duration = Duration::from_millis(100);
/// The most wall time one slice accounts for: after a stall the clock does not leap.
const MAX_SLICE_WALL: Duration = Duration::from_millis(250);
/// The window over which the achieved speed is measured.
const METER_WINDOW: Duration = Duration::from_millis(500);
/// Updates after slices take at most one part in this many of the worker's time.
const UPDATE_SHARE: u32 = 5;
/// Below this fraction of the asked speed the clock counts as behind.
const BEHIND_RATIO: f64 = 0.9;

/// What the UI asks of the worker.
#[derive(Debug, Clone)]
pub enum Request {
    /// Close the open workspace (if any), then open or create `root` for `topology`.
    /// Reports carry `epoch`, so the UI can drop what an older workspace still sends.
    /// `options` apply when the workspace is created. With `fresh`, a workspace already at
    /// `root` is deleted first, so the run starts from the topology (a directory holding
    /// anything but a workspace is left alone and the open fails), and the clock starts
    /// paused at zero: a scripted run says when it may move, so its first step runs at
    /// exactly its time.
    Open {
        epoch: u64,
        root: PathBuf,
        /// Boxed: a topology is large, and requests travel often.
        topology: Box<Topology>,
        options: EngineOptions,
        fresh: bool,
    },
    /// A command for the engine, applied at the current simulated time.
    Engine(Command),
    /// "Scan replicas": what a failover of these protection groups would do, changing
    /// nothing. Answered by [`Report::FailoverScan`] with the same `id`, unless the
    /// workspace of `epoch` is no longer the open one.
    ScanFailover {
        epoch: u64,
        id: u64,
        protection_groups: Vec<String>,
        kind: FailoverKind,
        /// Recover from the points cut at or before this time (`None`: the latest).
        point: Option<crate::engine::SimTime>,
    },
    /// What a cross-site move of consistency group `consistency_group` would do, changing
    /// nothing. Answered by [`Report::AcrossPlan`] with the same `id`.
    PlanAcross {
        epoch: u64,
        id: u64,
        consistency_group: String,
        consistency: crate::engine::Consistency,
    },
    Pause,
    Resume,
    /// Run the clock up to exactly `at` and stop there: the clock never passes a stop;
    /// reaching it pauses the clock and answers [`Report::Reached`] (at once if the clock
    /// is already there). With `rush` the clock runs as fast as the engine can, paused or
    /// not; otherwise at its speed while it is not paused. A later `RunUntil` replaces the
    /// stop, opening a workspace drops it.
    RunUntil {
        at: SimTime,
        rush: bool,
    },
    /// Drop the stop: the clock runs freely again.
    ClearStop,
    /// Run a scenario step now (after advancing to its time, as the headless runner does).
    /// Answered by [`Report::StepDone`], unless the workspace of `epoch` is no longer open.
    RunStep {
        epoch: u64,
        /// The step's number in its scenario, from 1.
        number: usize,
        step: Step,
    },
    /// Simulated seconds per wall second (one of [`SPEEDS`]; any positive value works).
    SetSpeed(f64),
    /// Entries the console logged while the workspace of `epoch` was open: appended to its
    /// history ([`super::history`]), so a reopen shows them.
    Record {
        epoch: u64,
        entries: Vec<ExportedEntry>,
    },
    /// Write the DR report (SPEC §11) of the open workspace to `path` as one HTML page.
    /// Always answered by [`Report::ReportExported`], whichever workspace is open.
    ExportReport {
        path: PathBuf,
    },
    /// Close the engine cleanly and end the thread.
    Shutdown,
}

/// The simulated clock as the worker runs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    pub paused: bool,
    /// The speed asked for.
    pub speed: f64,
    /// The speed reached over the last measuring window.
    pub achieved: f64,
    /// The engine cannot keep up: `achieved` is well below `speed`.
    pub behind: bool,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            paused: false,
            speed: SPEEDS[0],
            achieved: SPEEDS[0],
            behind: false,
        }
    }
}

/// How a command sent to the engine ended.
#[derive(Debug, Clone)]
pub struct CommandResult {
    pub command: Command,
    pub result: Result<Outcome, String>,
}

/// What the worker reports after a slice, a command or a clock change.
#[derive(Debug, Clone)]
pub struct Update {
    /// The engine's state; `latencies` holds only the samples newer than the last update.
    pub snapshot: Snapshot,
    /// Log lines produced since the last update.
    pub log: Vec<LogLine>,
    /// The engine's topology, when it changed (a VM moved) or the workspace just opened.
    pub topology: Option<Topology>,
    /// Free MiB per protected datastore, when it may have changed.
    pub free_mib: Option<BTreeMap<String, u64>>,
    pub clock: Clock,
    /// Commands applied since the last update.
    pub results: Vec<CommandResult>,
    /// The engine failed while running; the clock was paused.
    pub fault: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Report {
    Opened {
        epoch: u64,
        root: PathBuf,
        /// The workspace did not exist and was materialized from the topology.
        created: bool,
        /// What happened in it before (boxed: the event log's history can be long).
        before: Box<Before>,
    },
    OpenFailed {
        epoch: u64,
        root: PathBuf,
        error: String,
    },
    /// The workspace being opened is being created: how many VMs' instances are made.
    Preparing {
        epoch: u64,
        progress: Progress,
    },
    Update {
        epoch: u64,
        update: Box<Update>,
    },
    Closed {
        epoch: u64,
        root: PathBuf,
        error: Option<String>,
    },
    /// The answer to [`Request::ScanFailover`]: the plan, or why there is none.
    FailoverScan {
        epoch: u64,
        id: u64,
        /// The simulated time the replicas were scanned at.
        at: SimTime,
        result: Result<FailoverPlan, String>,
    },
    /// The answer to [`Request::PlanAcross`]: the plan, or why the move cannot start.
    AcrossPlan {
        epoch: u64,
        id: u64,
        consistency_group: String,
        at: SimTime,
        result: Result<crate::engine::AcrossPlan, String>,
    },
    /// The clock reached the stop set by [`Request::RunUntil`] and is paused there.
    Reached {
        epoch: u64,
        at: SimTime,
    },
    /// The answer to [`Request::RunStep`]: the step's report, or the engine's failure.
    StepDone {
        epoch: u64,
        number: usize,
        result: Result<StepReport, String>,
    },
    /// The event log's history could not be written; it is not written again.
    NotRecorded {
        epoch: u64,
        error: String,
    },
    /// The answer to [`Request::ExportReport`]: where the report went and how many events
    /// it holds, or why it could not be written.
    ReportExported {
        path: PathBuf,
        result: Result<ExportedReport, String>,
    },
    /// A command arrived while no workspace was open.
    NotApplied {
        command: Command,
        reason: String,
    },
}

/// A DR report written by [`Request::ExportReport`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedReport {
    /// The workspace it reports on.
    pub workspace: PathBuf,
    /// Failovers, failbacks, tests, reprotects, disasters and site returns.
    pub events: usize,
}

/// What an opened workspace went through before this open.
#[derive(Debug, Clone, Default)]
pub struct Before {
    /// The event log's history ([`super::history`]), oldest first.
    pub entries: Vec<ExportedEntry>,
    /// Why some history is missing (a line torn by a crash, entries cut to keep it
    /// bounded, a file that could not be read), in words.
    pub note: Option<String>,
    /// The simulated time the clock resumes at.
    pub now: SimTime,
    /// Sites lost in a disaster, and when.
    pub sites_lost: Vec<(String, SimTime)>,
    /// Failovers run in it.
    pub failovers: usize,
}

/// The UI's end of the worker: a sender, a receiver and the thread, shut down on drop.
pub struct Worker {
    tx: Sender<Request>,
    rx: Receiver<Report>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread; it opens nothing until asked.
    pub fn spawn(ctx: egui::Context) -> Worker {
        let (tx, requests) = crossbeam_channel::unbounded();
        let (reports, rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("drconsole-engine".into())
            .spawn(move || Driver::new(ctx, reports).run(&requests))
            .expect("the OS can start a thread");
        Worker {
            tx,
            rx,
            thread: Some(thread),
        }
    }

    pub fn send(&self, request: Request) {
        // The thread only ends on Shutdown (sent by drop) or a panic; a panic has already
        // printed its message, and there is nobody left to act on the request.
        let _ = self.tx.send(request);
    }

    pub fn try_recv(&self) -> Option<Report> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.tx.send(Request::Shutdown);
        if let Some(t) = self.thread.take() {
            // Closing the engine writes a few small files: wait, so the workspace is left
            // clean and unlocked when the console is gone.
            let _ = t.join();
        }
    }
}
