//! The worker thread's loop: the open session, the pacing of the simulated clock, the
//! requests it handles and the updates it sends.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::{
    BEHIND_RATIO, Before, Clock, CommandResult, MAX_SLICE_WALL, METER_WINDOW, Report, Request,
    SLICE_BUDGET, TICK_BUSY, TICK_IDLE, UPDATE_SHARE, Update,
};
use crate::engine::{Engine, EngineOptions, LogLine, SECOND, SimTime};
use crate::gui::history;
use crate::scenario;
use crate::topology::Topology;

/// Writes the DR report of `engine`'s workspace to `path` (one HTML page, atomically).
fn export_report(engine: &Engine, path: &std::path::Path) -> Result<super::ExportedReport, String> {
    let fail =
        |e: &dyn std::fmt::Display| format!("Exporting the DR report to {}: {e}", path.display());
    let recorded = engine.recorded().map_err(|e| fail(&e))?;
    let report = crate::report::build(&recorded);
    crate::report::write_html(&report, path).map_err(|e| fail(&e))?;
    Ok(super::ExportedReport {
        workspace: recorded.root,
        events: report.events.len(),
    })
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

pub(super) struct Driver {
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
    /// When the last update was sent, and how long building and sending it took.
    last_update: Instant,
    update_cost: Duration,
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
    pub(super) fn new(ctx: egui::Context, tx: Sender<Report>) -> Driver {
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
            last_update: now,
            update_cost: Duration::ZERO,
        }
    }

    fn rushing(&self) -> bool {
        self.stop.is_some_and(|s| s.rush && !s.reached)
    }

    fn running(&self) -> bool {
        self.session.is_some() && (!self.clock.paused || self.rushing())
    }

    pub(super) fn run(mut self, requests: &Receiver<Request>) {
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
            Request::PlanAcross {
                epoch,
                id,
                consistency_group,
                consistency,
            } => {
                let (at, result) = match self.session.as_ref().filter(|s| s.epoch == epoch) {
                    Some(s) => (
                        s.engine.now(),
                        s.engine
                            .plan_across(&consistency_group, consistency)
                            .map_err(|e| e.to_string()),
                    ),
                    None => (0, Err("no workspace is open".to_string())),
                };
                self.report(Report::AcrossPlan {
                    epoch,
                    id,
                    consistency_group,
                    at,
                    result,
                });
                false
            }
            Request::ScanFailover {
                epoch,
                id,
                protection_groups,
                kind,
                point,
            } => {
                let (at, result) = match self.session.as_ref().filter(|s| s.epoch == epoch) {
                    Some(s) => (
                        s.engine.now(),
                        s.engine
                            .scan_failover_at(&protection_groups, kind, point)
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
            Request::ExportReport { path } => {
                let result = match self.session.as_ref() {
                    Some(s) => export_report(&s.engine, &path),
                    None => Err(format!(
                        "Exporting the DR report to {}: no workspace is open, so there is nothing to report",
                        path.display()
                    )),
                };
                self.report(Report::ReportExported { path, result });
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
        let (tx, ctx) = (self.tx.clone(), self.ctx.clone());
        let mut progress = |progress| {
            let _ = tx.send(Report::Preparing { epoch, progress });
            ctx.request_repaint();
        };
        match Engine::open_or_create_with_progress(&root, topology, options, &mut progress) {
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
            self.update_after_slice(fault);
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
        self.update_after_slice(fault);
    }

    /// Sends an update after a slice, unless updates would take more than
    /// 1/[`UPDATE_SHARE`] of the worker's time: an update of 50,000 VMs costs the worker
    /// tens of milliseconds, and sent after every 20 ms slice it left the engine a tenth of
    /// its time (the guests' clock ran at 1/170 of the wall clock). A console of ten VMs
    /// still gets one after every slice. A fault, or a clock that stopped (paused, or at
    /// its stop), always gets one: the console must show where things stand.
    fn update_after_slice(&mut self, fault: Option<String>) {
        let due = self.last_update.elapsed() >= self.update_cost * UPDATE_SHARE;
        if due || fault.is_some() || !self.running() {
            self.send_update(fault);
        }
    }

    fn send_update(&mut self, fault: Option<String>) {
        let start = Instant::now();
        self.send_update_now(fault);
        self.last_update = Instant::now();
        self.update_cost = self.last_update - start;
    }

    fn send_update_now(&mut self, fault: Option<String>) {
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
