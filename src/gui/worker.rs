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

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::history;
use super::log::ExportedEntry;
use crate::engine::{
    Command, Engine, EngineOptions, FailoverKind, FailoverPlan, LogLine, Outcome, SECOND, SimTime,
    Snapshot,
};
use crate::scenario::{self, Step, StepReport};
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
    /// A command arrived while no workspace was open.
    NotApplied {
        command: Command,
        reason: String,
    },
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

/// An open workspace and what the worker remembers between updates.
struct Session {
    epoch: u64,
    root: PathBuf,
    engine: Engine,
    /// The topology last sent.
    topology: Topology,
    /// (vm, destination) of the migrations last seen, to know when free space changes.
    migrations: Vec<(String, String)>,
    /// The newest latency sample already sent.
    last_latency: Option<SimTime>,
    results: Vec<CommandResult>,
    /// Send the topology and free space with the next update.
    fresh: bool,
    /// Appending to the event log's history failed (said once).
    history_failed: bool,
    /// Recording the clock failed (said once).
    clock_failed: bool,
}

/// Measures the achieved speed over a window of slices.
#[derive(Default)]
struct Meter {
    sim: SimTime,
    wall: Duration,
}

struct Driver {
    ctx: egui::Context,
    tx: Sender<Report>,
    session: Option<Session>,
    clock: Clock,
    meter: Meter,
    /// When the last slice started (what the next slice's elapsed time counts from).
    last_tick: Instant,
    /// When the next slice is due.
    next_tick: Instant,
    /// Where the clock stops ([`Request::RunUntil`]).
    stop: Option<Stop>,
}

/// A stop of the clock at an exact instant.
#[derive(Debug, Clone, Copy)]
struct Stop {
    at: SimTime,
    /// Run there as fast as the engine goes, paused or not.
    rush: bool,
    /// [`Report::Reached`] was sent.
    reached: bool,
}

impl Driver {
    fn new(ctx: egui::Context, tx: Sender<Report>) -> Driver {
        let now = Instant::now();
        Driver {
            ctx,
            tx,
            session: None,
            clock: Clock::default(),
            meter: Meter::default(),
            last_tick: now,
            next_tick: now,
            stop: None,
        }
    }

    fn rushing(&self) -> bool {
        self.stop.is_some_and(|s| s.rush && !s.reached)
    }

    fn running(&self) -> bool {
        self.session.is_some() && (!self.clock.paused || self.rushing())
    }

    fn run(mut self, requests: &Receiver<Request>) {
        loop {
            let request = if self.running() {
                let wait = self.next_tick.saturating_duration_since(Instant::now());
                match requests.recv_timeout(wait) {
                    Ok(r) => Some(r),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match requests.recv() {
                    Ok(r) => Some(r),
                    Err(_) => break,
                }
            };
            let mut pending: Vec<Request> = request.into_iter().collect();
            pending.extend(requests.try_iter());
            let mut changed = false;
            for r in pending {
                match self.handle(r) {
                    Some(c) => changed |= c,
                    None => return self.close(),
                }
            }
            // Report what the requests did before the clock moves on, so that every
            // migration started here shows up in at least one snapshot.
            if changed {
                self.send_update(None);
            }
            if self.running() && Instant::now() >= self.next_tick {
                self.slice();
            }
        }
        self.close();
    }

    fn report(&self, report: Report) {
        // The UI is gone only while the app shuts down; nothing to tell then.
        let _ = self.tx.send(report);
        self.ctx.request_repaint();
    }

    /// Handles one request: `Some(true)` if the UI should get an update for it, `None`
    /// on shutdown.
    fn handle(&mut self, request: Request) -> Option<bool> {
        let changed = match request {
            Request::Open {
                epoch,
                root,
                topology,
                options,
                fresh,
            } => {
                self.close();
                self.stop = None;
                self.open(epoch, root, &topology, options, fresh);
                self.session.is_some()
            }
            Request::Engine(command) => match self.session.as_mut() {
                Some(s) => {
                    let result = s.engine.apply(command.clone()).map_err(|e| e.to_string());
                    s.results.push(CommandResult { command, result });
                    true
                }
                None => {
                    self.report(Report::NotApplied {
                        command,
                        reason: "no workspace is open".into(),
                    });
                    false
                }
            },
            Request::ScanFailover {
                epoch,
                id,
                protection_groups,
                kind,
            } => {
                let (at, result) = match self.session.as_ref().filter(|s| s.epoch == epoch) {
                    Some(s) => (
                        s.engine.now(),
                        s.engine
                            .scan_failover(&protection_groups, kind)
                            .map_err(|e| e.to_string()),
                    ),
                    None => (0, Err("no workspace is open".to_string())),
                };
                self.report(Report::FailoverScan {
                    epoch,
                    id,
                    at,
                    result,
                });
                false
            }
            Request::RunUntil { at, rush } => {
                self.stop = Some(Stop {
                    at,
                    rush,
                    reached: false,
                });
                if rush {
                    self.restart_clock();
                }
                self.check_stop();
                true
            }
            Request::ClearStop => {
                self.stop = None;
                false
            }
            Request::RunStep {
                epoch,
                number,
                step,
            } => {
                let result = match self.session.as_mut().filter(|s| s.epoch == epoch) {
                    Some(s) => scenario::run_step(&mut s.engine, number, &step).map_err(|e| {
                        self.clock.paused = true;
                        format!(
                            "The engine stopped at {}: {e}. The clock is paused.",
                            crate::engine::format_time(s.engine.now())
                        )
                    }),
                    None => Err("the workspace it was meant for is no longer open".into()),
                };
                self.report(Report::StepDone {
                    epoch,
                    number,
                    result,
                });
                true
            }
            Request::Pause => {
                self.clock.paused = true;
                true
            }
            Request::Resume => {
                if self.clock.paused {
                    self.clock.paused = false;
                    self.restart_clock();
                }
                true
            }
            Request::SetSpeed(speed) => {
                if speed.is_finite() && speed > 0.0 {
                    self.clock.speed = speed;
                    self.restart_clock();
                }
                true
            }
            Request::Record { epoch, entries } => {
                if let Some(s) = self.session.as_mut().filter(|s| s.epoch == epoch)
                    && !s.history_failed
                    && let Err(e) = history::append(&s.root, &entries)
                {
                    // Said once: the workspace runs on, its history stops here.
                    s.history_failed = true;
                    self.report(Report::NotRecorded { epoch, error: e });
                }
                false
            }
            Request::Shutdown => return None,
        };
        Some(changed)
    }

    /// Starts measuring afresh: no elapsed time is owed, nothing is behind yet.
    fn restart_clock(&mut self) {
        let now = Instant::now();
        self.last_tick = now;
        self.next_tick = now + TICK_BUSY;
        self.meter = Meter::default();
        self.clock.achieved = self.clock.speed;
        self.clock.behind = false;
    }

    /// Runs the clock onto the stop if it is due now (the clock is at it, or past it) and
    /// reports reaching it once.
    fn check_stop(&mut self) {
        let Some(stop) = self.stop.filter(|s| !s.reached) else {
            return;
        };
        let Some(s) = self.session.as_mut() else {
            return;
        };
        if s.engine.now() < stop.at {
            return;
        }
        // Events due at the very instant run before anyone looks, as in the headless runner.
        if let Err(e) = s.engine.advance(stop.at) {
            let fault = format!(
                "The engine stopped at {}: {e}. The clock is paused.",
                crate::engine::format_time(s.engine.now())
            );
            self.clock.paused = true;
            self.stop = None;
            self.send_update(Some(fault));
            return;
        }
        let (epoch, at) = (s.epoch, s.engine.now());
        self.clock.paused = true;
        self.stop = Some(Stop {
            reached: true,
            ..stop
        });
        self.report(Report::Reached { epoch, at });
    }

    fn open(
        &mut self,
        epoch: u64,
        root: PathBuf,
        topology: &Topology,
        options: EngineOptions,
        fresh: bool,
    ) {
        if fresh && let Err(error) = empty_workspace(&root) {
            self.report(Report::OpenFailed { epoch, root, error });
            return;
        }
        let created = !root.join(crate::workspace::TOPOLOGY_FILE).exists();
        match Engine::open_or_create(&root, topology, options) {
            Ok(engine) => {
                let mut before = Before {
                    now: engine.now(),
                    sites_lost: engine
                        .sites_lost()
                        .iter()
                        .map(|(s, t)| (s.clone(), *t))
                        .collect(),
                    failovers: engine.failovers().len(),
                    ..Before::default()
                };
                match history::load(&root) {
                    Ok(h) => {
                        let mut notes = Vec::new();
                        if h.skipped > 0 {
                            notes.push(format!(
                                "{} torn line(s) skipped (a crash cut them short)",
                                h.skipped
                            ));
                        }
                        if h.dropped > 0 {
                            notes.push(format!(
                                "the {} oldest entries dropped to keep it at {}",
                                h.dropped,
                                history::KEEP_LINES
                            ));
                        }
                        before.note = (!notes.is_empty()).then(|| notes.join("; "));
                        before.entries = h.entries;
                    }
                    Err(e) => before.note = Some(e),
                }
                self.session = Some(Session {
                    epoch,
                    root: root.clone(),
                    topology: engine.topology().clone(),
                    engine,
                    migrations: Vec::new(),
                    last_latency: None,
                    results: Vec::new(),
                    fresh: true,
                    history_failed: false,
                    clock_failed: false,
                });
                self.restart_clock();
                if fresh {
                    self.clock.paused = true;
                }
                self.report(Report::Opened {
                    epoch,
                    root,
                    created,
                    before: Box::new(before),
                });
            }
            Err(e) => self.report(Report::OpenFailed {
                epoch,
                root,
                error: e.to_string(),
            }),
        }
    }

    fn close(&mut self) {
        let Some(s) = self.session.take() else {
            return;
        };
        let error = s.engine.close().err().map(|e| e.to_string());
        self.report(Report::Closed {
            epoch: s.epoch,
            root: s.root,
            error,
        });
    }

    /// Advances the clock by the wall time since the last slice × speed, within the budget.
    fn slice(&mut self) {
        let start = Instant::now();
        let wall = start.duration_since(self.last_tick).min(MAX_SLICE_WALL);
        self.last_tick = start;
        let rush = self.rushing();
        let Some(s) = self.session.as_mut() else {
            return;
        };
        let before = s.engine.now();
        let asked = (wall.as_secs_f64() * self.clock.speed * SECOND as f64) as SimTime;
        let target = match self.stop {
            Some(stop) if rush => stop.at.max(before),
            Some(stop) => (before + asked).min(stop.at.max(before)),
            None => before + asked,
        };
        // Held back by the stop, the clock is not slow: this slice does not count.
        let held = target < before + asked;
        let mut events = false;
        let mut fault = None;
        loop {
            let due = s.engine.next_event_time().filter(|&t| t <= target);
            events |= due.is_some();
            let step = due.unwrap_or(target);
            if let Err(e) = s.engine.advance(step) {
                fault = Some(format!(
                    "The engine stopped at {}: {e}. The clock is paused.",
                    crate::engine::format_time(s.engine.now())
                ));
                self.clock.paused = true;
                self.stop = None;
                break;
            }
            if step == target || start.elapsed() >= SLICE_BUDGET {
                break;
            }
        }
        let advanced = s.engine.now() - before;
        let busy = events || !s.migrations.is_empty();
        if rush || held {
            // Not paced by the wall clock (rushing: no wait before the next slice), or
            // held at the stop: nothing to measure.
            self.next_tick = if rush { start } else { start + TICK_IDLE };
            self.check_stop();
            self.send_update(fault);
            return;
        }
        self.meter.sim += advanced;
        self.meter.wall += wall;
        if self.meter.wall >= METER_WINDOW {
            let achieved = self.meter.sim as f64 / SECOND as f64 / self.meter.wall.as_secs_f64();
            self.clock.achieved = achieved;
            self.clock.behind = achieved < self.clock.speed * BEHIND_RATIO;
            self.meter = Meter::default();
        }
        self.next_tick = start + if busy { TICK_BUSY } else { TICK_IDLE };
        self.check_stop();
        self.send_update(fault);
    }

    fn send_update(&mut self, fault: Option<String>) {
        let clock = self.clock;
        let Some(s) = self.session.as_mut() else {
            return;
        };
        // Every time the console shows is recorded first: a reopen never starts earlier.
        let mut log = s.engine.take_log();
        if !s.clock_failed
            && let Err(e) = s.engine.record_clock()
        {
            s.clock_failed = true;
            log.push(LogLine {
                at: s.engine.now(),
                level: crate::engine::LogLevel::Warning,
                message: format!(
                    "Recording the simulated clock failed ({e}); after a crash the clock may resume earlier"
                ),
            });
        }
        let mut snapshot = s.engine.snapshot();
        let last = s.last_latency;
        snapshot.latencies.retain(|l| Some(l.0) > last);
        if let Some(newest) = snapshot.latencies.iter().map(|l| l.0).max() {
            s.last_latency = Some(newest);
        }
        let topology = if s.fresh || s.engine.topology() != &s.topology {
            s.topology = s.engine.topology().clone();
            Some(s.topology.clone())
        } else {
            None
        };
        let migrations: Vec<(String, String)> = snapshot
            .vms
            .iter()
            .filter_map(|v| v.migration.as_ref().map(|m| (v.id.clone(), m.to.clone())))
            .collect();
        let free_mib = if topology.is_some() || migrations != s.migrations {
            s.migrations = migrations;
            let t = s.engine.topology();
            Some(
                t.datastores
                    .iter()
                    .filter(|d| t.is_protected_datastore(d))
                    .map(|d| (d.id.clone(), s.engine.free_mib(&d.id)))
                    .collect(),
            )
        } else {
            None
        };
        s.fresh = false;
        let update = Update {
            snapshot,
            log,
            topology,
            free_mib,
            clock,
            results: std::mem::take(&mut s.results),
            fault,
        };
        let epoch = s.epoch;
        self.report(Report::Update {
            epoch,
            update: Box::new(update),
        });
    }
}

/// Discards the workspace at `root` so it can be created afresh
/// ([`crate::workspace::discard`]); a missing or empty directory is fine. Anything else
/// than a workspace is left alone: an error says so.
fn empty_workspace(root: &std::path::Path) -> Result<(), String> {
    crate::workspace::discard(root).map(|_| ()).map_err(|e| match e {
        crate::workspace::WorkspaceError::NotAWorkspace { .. } => format!(
            "{}: not a drconsole workspace (no {} beside sites/, journal/ and state/), so nothing in it was discarded",
            root.display(),
            crate::workspace::TOPOLOGY_FILE
        ),
        e => format!("{}: cannot discard the workspace: {e}", root.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::from_minutes;

    /// The next report that `pick` takes, skipping the others (fails after 60 s).
    fn wait_for<T>(w: &Worker, what: &str, mut pick: impl FnMut(Report) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}"
            );
            match w.rx.recv_timeout(Duration::from_millis(50)) {
                Ok(r) => {
                    if let Report::OpenFailed { error, .. } = &r {
                        panic!("the workspace did not open: {error}");
                    }
                    if let Some(t) = pick(r) {
                        return t;
                    }
                }
                Err(_) => continue,
            }
        }
    }

    /// The clock as the next update reports it: (simulated time, paused).
    fn clock_now(w: &Worker) -> (SimTime, bool) {
        // A speed change is answered by an update at once.
        w.send(Request::SetSpeed(600.0));
        wait_for(w, "an update", |r| match r {
            Report::Update { update, .. } => Some((update.snapshot.now, update.clock.paused)),
            _ => None,
        })
    }

    fn open(w: &Worker, root: PathBuf) {
        w.send(Request::Open {
            epoch: 1,
            root,
            topology: Box::new(Topology::builtin_default()),
            options: EngineOptions {
                seed: 5,
                ..EngineOptions::default()
            },
            fresh: true,
        });
        wait_for(w, "the workspace to open", |r| {
            matches!(r, Report::Opened { .. }).then_some(())
        });
    }

    fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dst = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &dst);
            } else {
                std::fs::copy(e.path(), &dst).unwrap();
            }
        }
    }

    /// The files of a workspace as a crash leaves them (copied while it is open, nothing
    /// closed) reopen at the time the console last showed, not at the state saved last.
    #[test]
    fn after_a_crash_the_clock_resumes_where_the_console_showed_it() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        let w = Worker::spawn(egui::Context::default());
        open(&w, ws.clone());
        // Saved with the state at zero; nothing saves it while the clock runs.
        w.send(Request::Engine(Command::StartWorkloads));
        w.send(Request::RunUntil {
            at: from_minutes(2.0),
            rush: true,
        });
        wait_for(&w, "the stop", |r| {
            matches!(r, Report::Reached { .. }).then_some(())
        });
        let shown = clock_now(&w).0;
        assert!(shown >= from_minutes(2.0));
        let crashed = dir.path().join("crashed");
        copy_dir(&ws, &crashed);
        let e = Engine::open(&crashed).unwrap();
        assert!(
            e.now() >= shown,
            "resumed at {} after showing {}",
            crate::engine::format_time(e.now()),
            crate::engine::format_time(shown)
        );
    }

    #[test]
    fn the_clock_stops_exactly_at_the_instant_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let w = Worker::spawn(egui::Context::default());
        open(&w, dir.path().join("ws"));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(clock_now(&w), (0, true), "a fresh open waits at zero");
        w.send(Request::Engine(Command::StartWorkloads));
        w.send(Request::SetSpeed(600.0));
        w.send(Request::Resume);

        // At the clock's speed: 6 simulated seconds and a few microseconds, an instant no
        // slice would land on by itself.
        let at = from_minutes(0.1) + 1_234;
        w.send(Request::RunUntil { at, rush: false });
        let reached = wait_for(&w, "the stop", |r| match r {
            Report::Reached { epoch: 1, at } => Some(at),
            _ => None,
        });
        assert_eq!(reached, at);
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(clock_now(&w), (at, true), "paused there, and stays there");

        // Rushing runs the clock there even while it is paused.
        let at2 = from_minutes(0.75) + 7;
        w.send(Request::RunUntil {
            at: at2,
            rush: true,
        });
        let reached = wait_for(&w, "the second stop", |r| match r {
            Report::Reached { epoch: 1, at } => Some(at),
            _ => None,
        });
        assert_eq!(reached, at2);
        assert_eq!(clock_now(&w), (at2, true));

        // Asking for the instant the clock is at answers at once.
        w.send(Request::RunUntil {
            at: at2,
            rush: false,
        });
        let reached = wait_for(&w, "the same stop", |r| match r {
            Report::Reached { epoch: 1, at } => Some(at),
            _ => None,
        });
        assert_eq!(reached, at2);

        // A step runs at the stop and is reported like the headless runner's.
        let step = Step {
            at: crate::engine::to_minutes(at2),
            action: scenario::Action::Expect(scenario::Expectation::Located {
                vm: "db-01".into(),
                datastore: "ds-gold-3".into(),
            }),
            caption: None,
        };
        w.send(Request::RunStep {
            epoch: 1,
            number: 4,
            step,
        });
        let report = wait_for(&w, "the step", |r| match r {
            Report::StepDone { result, .. } => Some(result),
            _ => None,
        })
        .unwrap();
        assert_eq!(report.step, 4);
        assert_eq!(report.outcome, scenario::StepOutcome::Pass, "{report:?}");
        assert_eq!(clock_now(&w).0, at2);
    }

    #[test]
    fn a_fresh_open_empties_a_workspace_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        let w = Worker::spawn(egui::Context::default());
        open(&w, ws.clone());
        w.send(Request::RunUntil {
            at: from_minutes(0.2),
            rush: true,
        });
        wait_for(&w, "the stop", |r| {
            matches!(r, Report::Reached { .. }).then_some(())
        });
        // Opened again fresh: created anew, the clock back at zero.
        w.send(Request::Open {
            epoch: 2,
            root: ws.clone(),
            topology: Box::new(Topology::builtin_default()),
            options: EngineOptions::default(),
            fresh: true,
        });
        let created = wait_for(&w, "the second open", |r| match r {
            Report::Opened {
                epoch: 2, created, ..
            } => Some(created),
            _ => None,
        });
        assert!(created, "the old workspace was deleted first");
        assert_eq!(clock_now(&w).0, 0);

        // A directory that holds something else is not emptied.
        let other = dir.path().join("notes");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("keep.txt"), b"mine").unwrap();
        w.send(Request::Open {
            epoch: 3,
            root: other.clone(),
            topology: Box::new(Topology::builtin_default()),
            options: EngineOptions::default(),
            fresh: true,
        });
        let start = Instant::now();
        let error = loop {
            assert!(start.elapsed() < Duration::from_secs(60));
            if let Ok(Report::OpenFailed { error, .. }) =
                w.rx.recv_timeout(Duration::from_millis(50))
            {
                break error;
            }
        };
        assert!(error.contains("not a drconsole workspace"), "{error}");
        assert_eq!(std::fs::read(other.join("keep.txt")).unwrap(), b"mine");
    }
}
