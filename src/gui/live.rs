//! What the console knows of the running engine, built from the worker's updates: the
//! latest snapshot and clock, free space, every migration as a task, and the bounded
//! history the graphs draw. Nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::OnceLock;

use crossbeam_channel::Sender;

use egui_plot::PlotPoint;

use super::log::{EventLog, Level};
use super::worker::{Clock, CommandResult, Update};
use crate::dr::{self, Rating};
use crate::engine::copy::CopyMode;
use crate::engine::{
    Command, GroupState, GroupView, LogLevel, MINUTE, MigrationView, Outcome, Phase, Progress,
    SECOND, SimTime, Snapshot, VmView,
};
use crate::topology::Topology;

/// Where the console's workspace stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Started without a workspace: the topology can be browsed, nothing runs.
    Off,
    Opening(PathBuf),
    Open(PathBuf),
    /// The workspace could not be opened; the topology can still be browsed.
    Failed {
        root: PathBuf,
        error: String,
    },
}

/// How a migration task ended, or that it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Running,
    Completed,
    Cancelled,
    Failed,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Running => "running",
            TaskState::Completed => "completed",
            TaskState::Cancelled => "cancelled",
            TaskState::Failed => "failed",
        }
    }
}

/// One storage migration as the task list shows it.
#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub vm: String,
    pub from: String,
    pub to: String,
    pub mode: CopyMode,
    /// The DR rating of the move, as rated when it was first seen.
    pub rating: Option<Rating>,
    /// The engine's view, as last seen.
    pub view: MigrationView,
    pub state: TaskState,
    /// The last log line about this migration (its result once it ended).
    pub message: Option<String>,
    message_level: Option<LogLevel>,
    /// Copy progress in percent over simulated seconds.
    pub progress: Vec<PlotPoint>,
}

impl Task {
    /// Percent copied (forward), 100 once completed.
    pub fn percent(&self) -> f64 {
        if self.state == TaskState::Completed || self.view.phase == Phase::Completing {
            return 100.0;
        }
        if self.view.blocks == 0 {
            return 0.0;
        }
        100.0 * self.view.copied_blocks as f64 / self.view.blocks as f64
    }

    pub fn finished(&self) -> bool {
        self.state != TaskState::Running
    }
}

/// A replication group's lag over simulated time, for the plot: (simulated seconds,
/// minutes behind). Between two publishes the lag grows exactly with the clock (it is now −
/// the cut time of the last published point), so the line is kept as its corners: at every
/// publish the lag before and after it, and the current lag as the moving head. The
/// sawtooth is exact however seldom updates come, and a corner costs two points per cycle.
#[derive(Debug, Clone, Default)]
pub struct LagHistory {
    corners: Vec<PlotPoint>,
    head: Option<PlotPoint>,
    /// (cut time, publish time) of the point the last sample saw.
    last_point: Option<(SimTime, SimTime)>,
}

impl LagHistory {
    fn sample(&mut self, now: SimTime, g: &GroupView) {
        let (Some(cut), Some(published)) = (g.last_cut_at, g.last_published_at) else {
            return;
        };
        if self.last_point != Some((cut, published)) {
            let at = seconds(published);
            if self.corners.last().is_none_or(|p| at > p.x) {
                if let Some((old_cut, _)) = self.last_point {
                    let before = minutes(published.saturating_sub(old_cut));
                    push_bounded(&mut self.corners, PlotPoint::new(at, before), LAG_POINTS);
                }
                let after = minutes(published.saturating_sub(cut));
                push_bounded(&mut self.corners, PlotPoint::new(at, after), LAG_POINTS);
            }
            self.last_point = Some((cut, published));
        }
        if now >= published {
            self.head = Some(PlotPoint::new(seconds(now), minutes(now - cut)));
        }
    }

    /// The line to draw: the corners and the current lag.
    pub fn line(&self) -> Vec<PlotPoint> {
        let mut v = self.corners.clone();
        v.extend(self.head.filter(|h| v.last().is_none_or(|p| h.x > p.x)));
        v
    }

    pub fn is_empty(&self) -> bool {
        self.corners.is_empty() && self.head.is_none()
    }
}

/// The replication link as every view shows it: derived from the link's own state and
/// the lost sites (a link with a lost end carries nothing, whatever its switch says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    Up,
    /// Taken down by the operator (or a scenario).
    Down,
    /// A site is lost: the link has nothing at that end.
    SiteLost(String),
}

impl LinkState {
    pub fn is_up(&self) -> bool {
        *self == LinkState::Up
    }

    /// Why the link carries nothing, in words (empty while up).
    pub fn reason(&self) -> String {
        match self {
            LinkState::Up => String::new(),
            LinkState::Down => "the link is down".into(),
            LinkState::SiteLost(site) => format!("site {site} is lost"),
        }
    }
}

/// Where the VMs are now, where that differs from the topology's placement: what the
/// views built once per topology (the inventory tree) must show on top of it. Derived from
/// the engine's snapshot only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Whereabouts {
    pub lost_sites: BTreeSet<String>,
    /// The VMs that do not run where the topology places them, by id.
    pub away: BTreeMap<String, Away>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Away {
    /// Not running (its site was lost, its host failed, a planned failover stopped it).
    Down,
    /// Failed over (or, with `moved`, moved across sites live with its consistency group):
    /// runs on this other-site host, from this replica datastore.
    Recovered {
        host: String,
        datastore: String,
        moved: bool,
    },
}

/// VM `vm` runs where a cross-site move of its consistency group (SPEC §12) put it, not
/// where a failover did: all at once, or (moving one VM at a time) once its turn came.
pub fn moved_across(snap: &Snapshot, vm: &str, datastore: &str) -> bool {
    use crate::engine::AcrossPhase::*;
    snap.across.iter().any(|o| {
        o.members.iter().any(|m| {
            m.vm == vm
                && m.to_datastore == datastore
                && match o.phase {
                    Switched | Restoring | Succeeded => true,
                    Moving => m.switched_at.is_some(),
                    _ => false,
                }
        })
    })
}

impl Whereabouts {
    pub fn of(snap: &Snapshot) -> Whereabouts {
        Whereabouts {
            lost_sites: snap.sites_down.iter().cloned().collect(),
            away: snap
                .vms
                .iter()
                .filter_map(|v| {
                    let away = if v.recovered {
                        Away::Recovered {
                            host: v.host.clone(),
                            datastore: v.datastore.clone(),
                            moved: moved_across(snap, &v.id, &v.datastore),
                        }
                    } else if v.down {
                        Away::Down
                    } else {
                        return None;
                    };
                    Some((v.id.clone(), away))
                })
                .collect(),
        }
    }
}

/// Points kept per latency line and per progress line; older ones are dropped.
const LATENCY_POINTS: usize = 4000;
/// Points kept over all the per-VM latency lines of VMs without a migration.
const LATENCY_BUDGET: usize = 400_000;
/// Points kept at least per VM latency line.
const LATENCY_MIN_POINTS: usize = 64;
/// Points kept per replication group's lag line.
const LAG_POINTS: usize = 4000;
const PROGRESS_POINTS: usize = 2000;
/// Finished tasks kept in the list (running ones are always kept).
const FINISHED_TASKS: usize = 30;

/// The engine as the UI knows it.
pub struct Live {
    pub status: Status,
    pub snapshot: Option<Snapshot>,
    pub clock: Clock,
    /// Free MiB per protected datastore.
    pub free_mib: BTreeMap<String, u64>,
    /// Every migration seen since the workspace opened, oldest first.
    pub tasks: Vec<Task>,
    /// Worst guest write latency per update, per VM: (simulated seconds, µs).
    pub latency: HashMap<String, Vec<PlotPoint>>,
    /// Worst guest write latency per update over every VM.
    pub latency_all: Vec<PlotPoint>,
    /// Each replication group's lag over time, by group id.
    pub lag: BTreeMap<String, LagHistory>,
    /// VM id → index in `snapshot.vms`.
    vm_index: HashMap<String, usize>,
    /// Updates taken in since the workspace opened.
    pub updates: u64,
    /// Where the VMs are now, from the latest snapshot.
    pub whereabouts: Whereabouts,
    /// How far the creation of the workspace being opened has come, while it is made.
    pub preparing: Option<Progress>,
}

impl Live {
    pub fn new(status: Status) -> Live {
        Live {
            status,
            snapshot: None,
            clock: Clock::default(),
            free_mib: BTreeMap::new(),
            tasks: Vec::new(),
            latency: HashMap::new(),
            latency_all: Vec::new(),
            lag: BTreeMap::new(),
            vm_index: HashMap::new(),
            updates: 0,
            whereabouts: Whereabouts::default(),
            preparing: None,
        }
    }

    /// Is an engine running that commands can go to?
    pub fn is_open(&self) -> bool {
        matches!(self.status, Status::Open(_)) && self.snapshot.is_some()
    }

    /// The engine's view of VM `id`, as last reported.
    pub fn vm(&self, id: &str) -> Option<&VmView> {
        let vms = &self.snapshot.as_ref()?.vms;
        self.vm_index
            .get(id)
            .and_then(|&i| vms.get(i))
            .filter(|v| v.id == id)
            .or_else(|| vms.iter().find(|v| v.id == id))
    }

    /// The replication link as it is now (None before the engine reports).
    pub fn link(&self) -> Option<LinkState> {
        let s = self.snapshot.as_ref()?;
        Some(if let Some(site) = s.sites_down.first() {
            LinkState::SiteLost(site.clone())
        } else if s.link_up {
            LinkState::Up
        } else {
            LinkState::Down
        })
    }

    /// When `site` was lost, if it was.
    pub fn site_lost_at(&self, site: &str) -> Option<SimTime> {
        self.snapshot.as_ref()?.sites_lost_at.get(site).copied()
    }

    /// The age of a recovery point cut at `cut`: to now, or, for a group whose protected
    /// site is lost, to the disaster (what it holds stops ageing: nothing newer can come).
    pub fn point_age(&self, cut: SimTime, lost_at: Option<SimTime>) -> Option<SimTime> {
        let now = self.snapshot.as_ref()?.now;
        Some(lost_at.map_or(now, |t| t.min(now)).saturating_sub(cut))
    }

    /// The migration of `vm` in flight, if any.
    pub fn migration_of(&self, vm: &str) -> Option<&MigrationView> {
        self.vm(vm)?.migration.as_ref()
    }

    pub fn running_tasks(&self) -> usize {
        self.tasks.iter().filter(|t| !t.finished()).count()
    }

    /// Forgets the finished tasks and their history.
    pub fn clear_finished(&mut self) {
        self.tasks.retain(|t| !t.finished());
    }

    /// Takes in an update: tasks, history, and the engine's log lines into `log`.
    /// `topology` is the one shown before this update (to rate new migrations). The
    /// update's snapshot is kept as is (taken, not copied: it lists every VM).
    pub fn apply(&mut self, u: Update, topology: &Topology, log: &mut EventLog) {
        self.updates += 1;
        let snap = &u.snapshot;
        let now_s = seconds(snap.now);
        // The migrations in flight, by id: one pass over the VMs.
        let mut in_flight: HashSet<&str> = HashSet::new();
        for v in &snap.vms {
            let Some(m) = &v.migration else { continue };
            in_flight.insert(m.id.as_str());
            let i = match self.tasks.iter().position(|t| t.id == m.id) {
                Some(i) => i,
                None => {
                    self.tasks.push(Task {
                        id: m.id.clone(),
                        vm: m.vm.clone(),
                        from: m.from.clone(),
                        to: m.to.clone(),
                        mode: m.mode,
                        rating: dr::impact(topology, &m.from, &m.to).ok().map(|i| i.rating),
                        view: m.clone(),
                        state: TaskState::Running,
                        message: None,
                        message_level: None,
                        progress: Vec::new(),
                    });
                    self.tasks.len() - 1
                }
            };
            let t = &mut self.tasks[i];
            t.view = m.clone();
            let p = t.percent();
            push_bounded(&mut t.progress, PlotPoint::new(now_s, p), PROGRESS_POINTS);
        }

        for line in &u.log {
            let level = match line.level {
                LogLevel::Info => Level::Info,
                LogLevel::Warning => Level::Warning,
                LogLevel::Error => Level::Error,
            };
            log.push_at(level, &line.message, Some(line.at), level == Level::Error);
            // The engine names a migration first in every line about it: "Migration m-0007 …".
            let id = line
                .message
                .strip_prefix("Migration ")
                .and_then(|rest| rest.split(' ').next());
            if let Some(t) = id.and_then(|id| self.tasks.iter_mut().find(|t| t.id == id)) {
                t.message = Some(line.message.clone());
                t.message_level = Some(line.level);
            }
        }

        for t in self.tasks.iter_mut().filter(|t| !t.finished()) {
            if in_flight.contains(t.id.as_str()) {
                continue;
            }
            // It ended: a scan over the VMs, once per migration.
            let now_on = snap
                .vms
                .iter()
                .find(|v| v.id == t.vm)
                .map(|v| v.datastore.as_str());
            t.state = if now_on == Some(t.to.as_str()) {
                TaskState::Completed
            } else if t.message_level == Some(LogLevel::Error) {
                TaskState::Failed
            } else {
                TaskState::Cancelled
            };
            if t.state == TaskState::Completed {
                push_bounded(
                    &mut t.progress,
                    PlotPoint::new(now_s, 100.0),
                    PROGRESS_POINTS,
                );
            }
        }
        let finished = self.tasks.iter().filter(|t| t.finished()).count();
        // Drop the oldest finished tasks beyond the limit.
        let mut excess = finished.saturating_sub(FINISHED_TASKS);
        self.tasks.retain(|t| {
            let gone = excess > 0 && t.finished();
            excess -= usize::from(gone);
            !gone
        });

        let mut worst: BTreeMap<usize, (SimTime, u64)> = BTreeMap::new();
        for &(t, i, lat) in &snap.latencies {
            let w = worst.entry(i).or_insert((t, lat));
            *w = (w.0.max(t), w.1.max(lat));
        }
        if let Some(&(_, lat)) = worst.values().max_by_key(|w| w.1) {
            let p = PlotPoint::new(now_s, lat as f64);
            push_bounded(&mut self.latency_all, p, LATENCY_POINTS);
        }
        // A line per VM, short for VMs without a migration in the task list so that a
        // large inventory's history stays bounded; the graph draws the migrating ones.
        let short =
            (LATENCY_BUDGET / snap.vms.len().max(1)).clamp(LATENCY_MIN_POINTS, LATENCY_POINTS);
        let with_task: HashSet<&str> = self.tasks.iter().map(|t| t.vm.as_str()).collect();
        for (i, (t, lat)) in worst {
            let Some(v) = snap.vms.get(i) else { continue };
            let cap = if with_task.contains(v.id.as_str()) {
                LATENCY_POINTS
            } else {
                short
            };
            let p = PlotPoint::new(seconds(t), lat as f64);
            match self.latency.get_mut(&v.id) {
                Some(line) => push_bounded(line, p, cap),
                None => {
                    self.latency.insert(v.id.clone(), vec![p]);
                }
            }
        }

        for g in &snap.groups {
            // A group that failed over, or lost a site, replicates no more: its lag line
            // ends there (after a disaster no write is added to what is at risk).
            if !matches!(g.state, GroupState::FailedOver | GroupState::SiteDown) {
                self.lag
                    .entry(g.id.clone())
                    .or_default()
                    .sample(snap.now, g);
            }
        }

        for r in &u.results {
            report_result(r, topology, log);
        }
        if let Some(f) = &u.fault {
            log.push_at(Level::Error, f, Some(snap.now), true);
        }
        if let Some(free) = &u.free_mib {
            self.free_mib = free.clone();
        }
        self.clock = u.clock;
        self.whereabouts = Whereabouts::of(&u.snapshot);
        // The engine lists its VMs in one order for as long as a workspace is open; a
        // lookup checks the id it finds, so a count that stays the same is enough here.
        if self.snapshot.as_ref().map(|s| s.vms.len()) != Some(u.snapshot.vms.len()) {
            self.vm_index = (u.snapshot.vms.iter().enumerate())
                .map(|(i, v)| (v.id.clone(), i))
                .collect();
        }
        if let Some(old) = self.snapshot.replace(u.snapshot) {
            drop_elsewhere(old);
        }
    }
}

/// Snapshots with at least this many VMs are freed on a helper thread.
const DROP_ELSEWHERE_MIN_VMS: usize = 1000;

/// Frees a replaced snapshot off the UI thread when it is large: freeing the strings of
/// 10,000 VM views takes milliseconds a frame cannot spare.
fn drop_elsewhere(old: Snapshot) {
    static DROPPER: OnceLock<Option<Sender<Snapshot>>> = OnceLock::new();
    if old.vms.len() < DROP_ELSEWHERE_MIN_VMS {
        return;
    }
    let tx = DROPPER.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::unbounded::<Snapshot>();
        std::thread::Builder::new()
            .name("drconsole-drop".into())
            .spawn(move || rx.into_iter().for_each(drop))
            .ok()
            .map(|_| tx)
    });
    if let Some(tx) = tx {
        // The thread only ends with the process; if it is gone, the value drops here.
        let _ = tx.send(old);
    }
}

/// Errors become a toast and a log entry. A refusal is already in the engine's log; it
/// gets a toast so the operator sees it now. Successes are in the engine's log.
fn report_result(r: &CommandResult, topology: &Topology, log: &mut EventLog) {
    match &r.result {
        Ok(Outcome::Done(_)) => {}
        Ok(Outcome::Refused(msg)) => log.toast(Level::Warning, msg),
        Err(e) => log.error(format!("{}: {e}", describe_in(&r.command, topology))),
    }
}

/// The command in a few words (its `Display`), naming a replication command by its group as the group's button does: the
/// command carries one datastore of the group, so cg-silver's *Replicate now* is
/// "Replicate cg-silver now", not "Replicate ds-silver-1 now".
pub fn describe_in(c: &Command, t: &Topology) -> String {
    let mut c = c.clone();
    if let Command::ReplicateNow { datastore }
    | Command::PauseReplication { datastore }
    | Command::ResumeReplication { datastore } = &mut c
        && let Some(cg) = t
            .datastore(datastore)
            .and_then(|d| crate::dr::datastore_cg(t, d))
    {
        *datastore = cg;
    }
    c.to_string()
}

/// Appends `p`, dropping the oldest points down to three quarters of `cap` when `cap` is
/// reached (amortized O(1)).
fn push_bounded(v: &mut Vec<PlotPoint>, p: PlotPoint, cap: usize) {
    if v.len() >= cap {
        v.drain(..v.len() - (cap - cap / 4));
    }
    v.push(p);
}

pub fn seconds(t: SimTime) -> f64 {
    t as f64 / SECOND as f64
}

pub fn minutes(t: SimTime) -> f64 {
    t as f64 / MINUTE as f64
}

/// A point in simulated time, as the clock reads it: "mm:ss", "h:mm:ss" from the first
/// hour on. Spans of time read otherwise ([`super::style::duration_text`]).
pub fn mm_ss(t: SimTime) -> String {
    let s = t / SECOND;
    if s < 3600 {
        format!("{:02}:{:02}", s / 60, s % 60)
    } else {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    }
}

/// A count with thousands separators: "241,920".
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_clock_times_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(241_920), "241,920");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(mm_ss(61 * SECOND + 500_000), "01:01");
        assert_eq!(mm_ss(3599 * SECOND), "59:59");
        assert_eq!(mm_ss(3600 * SECOND), "1:00:00");
        assert_eq!(mm_ss(3600 * SECOND * 25 + 62 * SECOND), "25:01:02");
    }
}
