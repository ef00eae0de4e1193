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

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::engine::{
    Command, Engine, EngineOptions, FailoverKind, FailoverPlan, LogLine, Outcome, SECOND, SimTime,
    Snapshot,
};
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
    Open {
        epoch: u64,
        root: PathBuf,
        topology: Topology,
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
    /// Simulated seconds per wall second (one of [`SPEEDS`]; any positive value works).
    SetSpeed(f64),
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
    /// A command arrived while no workspace was open.
    NotApplied {
        command: Command,
        reason: String,
    },
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
        }
    }

    fn running(&self) -> bool {
        self.session.is_some() && !self.clock.paused
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
            } => {
                self.close();
                self.open(epoch, root, &topology);
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

    fn open(&mut self, epoch: u64, root: PathBuf, topology: &Topology) {
        let created = !root.join(crate::workspace::TOPOLOGY_FILE).exists();
        match Engine::open_or_create(&root, topology, EngineOptions::default()) {
            Ok(engine) => {
                self.session = Some(Session {
                    epoch,
                    root: root.clone(),
                    topology: engine.topology().clone(),
                    engine,
                    migrations: Vec::new(),
                    last_latency: None,
                    results: Vec::new(),
                    fresh: true,
                });
                self.restart_clock();
                self.report(Report::Opened {
                    epoch,
                    root,
                    created,
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
        let Some(s) = self.session.as_mut() else {
            return;
        };
        let before = s.engine.now();
        let asked = (wall.as_secs_f64() * self.clock.speed * SECOND as f64) as SimTime;
        let target = before + asked;
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
                break;
            }
            if step == target || start.elapsed() >= SLICE_BUDGET {
                break;
            }
        }
        let advanced = s.engine.now() - before;
        let busy = events || !s.migrations.is_empty();
        self.meter.sim += advanced;
        self.meter.wall += wall;
        if self.meter.wall >= METER_WINDOW {
            let achieved = self.meter.sim as f64 / SECOND as f64 / self.meter.wall.as_secs_f64();
            self.clock.achieved = achieved;
            self.clock.behind = achieved < self.clock.speed * BEHIND_RATIO;
            self.meter = Meter::default();
        }
        self.next_tick = start + if busy { TICK_BUSY } else { TICK_IDLE };
        self.send_update(fault);
    }

    fn send_update(&mut self, fault: Option<String>) {
        let clock = self.clock;
        let Some(s) = self.session.as_mut() else {
            return;
        };
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
            log: s.engine.take_log(),
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
