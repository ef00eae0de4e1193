//! Deterministic simulation test (VOPR-style): one `u64` seed reproduces a whole run.
//!
//! A run materializes a topology (the built-in demo or `patent_timelines.ron`, chosen by the
//! seed, with disks and guest rates scaled down so a run stays short) into a workspace, then
//! plays a random schedule drawn from a splitmix64 stream seeded by the seed: simulated time
//! advances, workloads, migrations of random VMs to random datastores in every mode with and
//! without the override, cancels, "Replicate now", pauses, link flaps, crashes (the engine is
//! dropped without `close`, then reopened), test failovers at the latest or an older
//! retained point, and at most one ending: a disaster followed by an unplanned failover of
//! every protection group (at the latest or an older point), a site return, a reprotect, a
//! failback and a second reprotect; or a planned round trip (planned failover, reprotect,
//! failback, reprotect). After every step the invariants of issues 6 and 17 are checked (see
//! [`run_seed`]); the first broken one ends the run with a [`SimFailure`] that names the
//! seed, the step, the invariant and the schedule so far.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use drconsole::disk::{self, Horizon, ImageFile, VmDisk};
use drconsole::engine::{
    Command, Engine, EngineError, EngineOptions, FailoverKind, FailoverReport, FailoverState,
    GroupSpec, GroupView, Outcome, Phase, SECOND, SimTime, copy::CopyMode, format_time, groups_of,
    to_minutes,
};
use drconsole::recovery::{self, ElectionError};
use drconsole::topology::Topology;

/// The patent-timelines sample topology, built in so the simulation needs no file.
const PATENT_TIMELINES_RON: &str = include_str!("../../../sample_topologies/patent_timelines.ron");

/// splitmix64: a tiny, good-enough generator whose whole state is one `u64`.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.below(items.len() as u64) as usize])
        }
    }
}

/// How long and how busy a run is.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Schedule steps before the run ends (a disaster ends it earlier, after its failover).
    pub max_steps: usize,
    /// Disks are divided by this (at least 1 MiB each), so images stay small.
    pub disk_divisor: u64,
    /// Guest IOPS are divided by this (at least 1 each).
    pub iops_divisor: u32,
    /// Datastores copy at most this fast (MiB/s), so small disks still migrate over
    /// several steps and replication cuts land mid-copy.
    pub max_throughput_mib_s: f64,
    /// Test of the checks themselves: after this step, write a torn block into one
    /// published replica image (the run must then fail invariant (b)).
    pub sabotage_replica_after_step: Option<usize>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            max_steps: 16,
            disk_divisor: 64,
            iops_divisor: 5,
            max_throughput_mib_s: 8.0,
            sabotage_replica_after_step: None,
        }
    }
}

/// A broken invariant (or an engine error that should not happen).
#[derive(Debug, Clone)]
pub struct SimFailure {
    pub seed: u64,
    /// The schedule step after which the check failed (0 = after creating the workspace).
    pub step: usize,
    pub invariant: String,
    pub detail: String,
    /// Every step played, in order.
    pub schedule: Vec<String>,
}

impl SimFailure {
    /// The one command that replays this run.
    pub fn replay_command(&self) -> String {
        format!(
            "DRCONSOLE_SIM_SEED={} cargo test --test engine sim:: -- --nocapture",
            self.seed
        )
    }
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulation seed {} failed after step {}: invariant {}",
            self.seed, self.step, self.invariant
        )?;
        writeln!(f, "  {}", self.detail)?;
        writeln!(f, "replay: {}", self.replay_command())?;
        writeln!(f, "schedule so far:")?;
        for (i, s) in self.schedule.iter().enumerate() {
            writeln!(f, "  {:>3}. {s}", i + 1)?;
        }
        Ok(())
    }
}

/// What a passing run did, for the driver's totals.
#[derive(Debug, Clone, Default)]
pub struct SimSummary {
    // Read only through `{:#?}` when one seed is replayed.
    #[allow(dead_code)]
    pub topology: String,
    pub steps: usize,
    pub migrations: usize,
    pub crashes: usize,
    pub points_checked: usize,
    /// VMs elected from a point whose cut fell inside one of their migrations.
    pub elected_mid_migration: usize,
    pub disaster: bool,
    pub vms_recovered: usize,
    /// Lost sites that returned after the failover.
    pub site_returns: usize,
    /// Reprotects carried out, and the VMs whose old-side replica was then checked.
    pub reprotects: usize,
    pub vms_reprotected: usize,
    /// Test failovers run (and how many at an older point), planned failovers that are not
    /// failbacks, failbacks, and failovers (any kind) recovering an older point.
    pub test_failovers: usize,
    pub planned_failovers: usize,
    pub failbacks: usize,
    pub older_point_recoveries: usize,
    /// Every step played, in order.
    pub schedule: Vec<String>,
}

/// One migration the schedule started, as the simulation saw it.
#[derive(Debug, Clone)]
struct MigRec {
    vm: String,
    from: String,
    to: String,
    mode: CopyMode,
    start: SimTime,
    /// When it was first seen gone (finished, rolled back or cancelled).
    end: Option<SimTime>,
    /// A cancel or a crash hit it: the source may be mid-rollback (a mix of old and new).
    disturbed: bool,
}

impl MigRec {
    /// Was it (possibly) in progress at `t`?
    fn spans(&self, t: SimTime) -> bool {
        self.start <= t && self.end.is_none_or(|e| e >= t)
    }
}

/// The topology a seed runs on, scaled down per `cfg`.
pub fn topology_for(seed: u64, cfg: &SimConfig) -> Topology {
    let mut t = if seed.is_multiple_of(2) {
        Topology::builtin_default()
    } else {
        Topology::from_ron_str(PATENT_TIMELINES_RON, "patent_timelines.ron")
            .expect("the patent-timelines sample is valid")
    };
    for d in &mut t.datastores {
        d.throughput_mib_s = d.throughput_mib_s.min(cfg.max_throughput_mib_s);
    }
    // Every group keeps 1 to 4 recovery points (the same for all, so each CG agrees).
    let keep = 1 + ((seed / 2) % 4) as u32;
    for r in t
        .arrays
        .iter_mut()
        .flat_map(|a| a.luns.iter_mut())
        .filter_map(|l| l.replication.as_mut())
    {
        r.retain_points = keep;
    }
    for vm in &mut t.vms {
        vm.disk_mib = (vm.disk_mib / cfg.disk_divisor.max(1)).max(1);
        if let Some(w) = &mut vm.workload {
            w.write_iops = (w.write_iops / cfg.iops_divisor.max(1)).max(1);
            w.read_iops = (w.read_iops / cfg.iops_divisor.max(1)).max(1);
        }
    }
    t
}

/// How a run ends, if it does before its last step.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Disaster,
    RoundTrip,
}

struct Sim<'a> {
    seed: u64,
    root: &'a Path,
    rng: SplitMix,
    engine: Option<Engine>,
    schedule: Vec<String>,
    step: usize,
    migs: Vec<MigRec>,
    groups: Vec<GroupSpec>,
    /// Datastore → its consistency group (replicated datastores in a CG only).
    cg_of: BTreeMap<String, String>,
    protected_ds: Vec<String>,
    replicated_ds: Vec<String>,
    pgs: Vec<String>,
    /// (group, cycle) of points already checked; cleared by a crash, which re-checks all.
    checked: BTreeSet<(String, u64)>,
    /// The step changed something (a refused command changes nothing: no need to re-check).
    changed: bool,
    summary: SimSummary,
}

/// Engine errors that are the operator's (refusals, rule violations), not the engine's.
fn is_rule_error(e: &EngineError) -> bool {
    !matches!(
        e,
        EngineError::Io { .. }
            | EngineError::Disk(_)
            | EngineError::Workspace(_)
            | EngineError::Replica(_)
            | EngineError::State { .. }
            | EngineError::ImageSize { .. }
    )
}

impl<'a> Sim<'a> {
    fn fail(&self, invariant: &str, detail: impl Into<String>) -> SimFailure {
        SimFailure {
            seed: self.seed,
            step: self.step,
            invariant: invariant.to_string(),
            detail: detail.into(),
            schedule: self.schedule.clone(),
        }
    }

    fn e(&mut self) -> &mut Engine {
        self.engine.as_mut().expect("the engine is open")
    }

    fn er(&self) -> &Engine {
        self.engine.as_ref().expect("the engine is open")
    }

    fn note(&mut self, s: String) {
        self.changed = true;
        let now = self.engine.as_ref().map_or(0, |e| e.now());
        self.schedule.push(format!("[{}] {s}", format_time(now)));
    }

    /// Applies `cmd`; an operator refusal is fine, an I/O or state error is a failure.
    fn apply(&mut self, cmd: Command) -> Result<Option<Outcome>, SimFailure> {
        let text = format!("{cmd:?}");
        match self.e().apply(cmd) {
            Ok(o) => {
                let o2 = o.clone();
                self.note(format!("{text} -> {o2:?}"));
                Ok(Some(o))
            }
            Err(err) if is_rule_error(&err) => {
                self.note(format!("{text} -> refused: {err}"));
                self.changed = false;
                Ok(None)
            }
            Err(err) => {
                self.note(format!("{text} -> ERROR: {err}"));
                Err(self.fail("engine-error", format!("{text}: {err}")))
            }
        }
    }

    fn advance(&mut self, dt: SimTime) -> Result<(), SimFailure> {
        let until = self.er().now() + dt;
        self.note(format!("advance {:.3} s", dt as f64 / SECOND as f64));
        if let Err(err) = self.e().advance(until) {
            return Err(self.fail("engine-error", format!("advance: {err}")));
        }
        Ok(())
    }

    fn crash(&mut self) -> Result<(), SimFailure> {
        self.note("CRASH (drop without close) and reopen".into());
        drop(self.engine.take()); // a crash: no close
        let e = Engine::open(self.root)
            .map_err(|err| self.fail("reopen", format!("Engine::open after a crash: {err}")))?;
        let now = e.now();
        for m in self.migs.iter_mut().filter(|m| m.end.is_none()) {
            m.disturbed = true;
            // The clock may come back earlier than it was: the migration exists from here.
            m.start = m.start.min(now);
        }
        self.engine = Some(e);
        self.checked.clear();
        self.summary.crashes += 1;
        Ok(())
    }

    /// Runs on for up to 3 s, then, half the time, crashes, reopens and runs up to 1 s more.
    fn run_on_maybe_crash(&mut self) -> Result<(), SimFailure> {
        let dt = 1_000 * (1 + self.rng.below(3_000));
        self.advance(dt)?;
        if self.rng.chance(1, 2) {
            self.crash()?;
            let dt = 1_000 * (1 + self.rng.below(1_000));
            self.advance(dt)?;
        }
        Ok(())
    }

    /// Closes the records of migrations that are gone.
    fn observe(&mut self) {
        let e = self.engine.as_ref().expect("open");
        let now = e.now();
        for m in self.migs.iter_mut().filter(|m| m.end.is_none()) {
            if !e.is_migrating(&m.vm) {
                m.end = Some(now);
            }
        }
    }

    fn random_migrate(&mut self) -> Result<(), SimFailure> {
        let vms = self.er().vm_ids();
        let vm = self.rng.pick(&vms).cloned().unwrap_or_default();
        let to = self
            .rng
            .pick(&self.protected_ds)
            .cloned()
            .unwrap_or_default();
        let mode = *self.rng.pick(&CopyMode::ALL).expect("three modes");
        let confirm = self.rng.chance(3, 4);
        let from = self.er().location(&vm).map(|l| l.0).unwrap_or_default();
        let was = self.er().is_migrating(&vm);
        let out = self.apply(Command::Migrate {
            vm: vm.clone(),
            to: to.clone(),
            mode,
            confirm,
        })?;
        if matches!(out, Some(Outcome::Done(_))) && !was {
            let start = self.er().now();
            self.migs.push(MigRec {
                vm,
                from,
                to,
                mode,
                start,
                end: None,
                disturbed: false,
            });
            self.summary.migrations += 1;
            // A copy may be over at once (tiny disk, fast datastores).
            self.observe();
        }
        Ok(())
    }

    fn random_cancel(&mut self) -> Result<(), SimFailure> {
        let migrating: Vec<String> = self
            .migs
            .iter()
            .filter(|m| m.end.is_none())
            .map(|m| m.vm.clone())
            .collect();
        let vm = match self.rng.pick(&migrating) {
            Some(v) if self.rng.chance(4, 5) => v.clone(),
            _ => {
                let vms = self.er().vm_ids();
                self.rng.pick(&vms).cloned().unwrap_or_default()
            }
        };
        let out = self.apply(Command::CancelMigration { vm: vm.clone() })?;
        if out.is_some() {
            for m in self
                .migs
                .iter_mut()
                .filter(|m| m.vm == vm && m.end.is_none())
            {
                m.disturbed = true;
            }
        }
        Ok(())
    }

    /// Lets a migration in flight (if any) copy a little, then forces a cycle of the group
    /// of its source or destination: a recovery point cut in mid-copy.
    fn cut_mid_copy(&mut self) -> Result<(), SimFailure> {
        let open: Vec<(String, String)> = self
            .migs
            .iter()
            .filter(|m| m.end.is_none())
            .map(|m| (m.from.clone(), m.to.clone()))
            .collect();
        let Some((from, to)) = self.rng.pick(&open).cloned() else {
            return self.random_migrate();
        };
        let dt = 1_000 * (1 + self.rng.below(150));
        self.advance(dt)?;
        let ds = if self.rng.chance(1, 2) { from } else { to };
        self.apply(Command::ReplicateNow { datastore: ds })?;
        Ok(())
    }

    fn random_datastore(&mut self) -> String {
        // Mostly the datastores of a migration in flight: their cuts land mid-copy.
        let busy: Vec<String> = self
            .migs
            .iter()
            .filter(|m| m.end.is_none())
            .flat_map(|m| [m.from.clone(), m.to.clone()])
            .filter(|d| self.replicated_ds.contains(d))
            .collect();
        if !busy.is_empty() && self.rng.chance(2, 3) {
            return self.rng.pick(&busy).cloned().unwrap_or_default();
        }
        if self.rng.chance(1, 8) {
            self.rng
                .pick(&self.protected_ds)
                .cloned()
                .unwrap_or_default()
        } else {
            self.rng
                .pick(&self.replicated_ds)
                .cloned()
                .unwrap_or_default()
        }
    }

    /// One random step before the ending. Returns the ending when it is drawn.
    fn random_step(&mut self) -> Result<Option<Ending>, SimFailure> {
        let r = self.rng.below(100);
        match r {
            0..=27 => {
                let dt = if self.rng.chance(1, 4) {
                    SECOND * (2 + self.rng.below(40))
                } else {
                    1_000 * (1 + self.rng.below(2_000))
                };
                self.advance(dt)?;
            }
            28..=31 => {
                self.apply(Command::StartWorkloads)?;
            }
            32 => {
                self.apply(Command::StopWorkloads)?;
            }
            33..=47 => self.random_migrate()?,
            48..=52 => self.cut_mid_copy()?,
            53..=57 => self.random_cancel()?,
            58..=66 => {
                let ds = self.random_datastore();
                self.apply(Command::ReplicateNow { datastore: ds })?;
            }
            67..=69 => self.test_failover()?,
            70..=73 => {
                let ds = self.random_datastore();
                self.apply(Command::PauseReplication { datastore: ds })?;
            }
            74..=78 => {
                let ds = self.random_datastore();
                self.apply(Command::ResumeReplication { datastore: ds })?;
            }
            79..=81 => {
                self.apply(Command::LinkDown)?;
            }
            82..=85 => {
                self.apply(Command::LinkUp)?;
            }
            86..=94 => self.crash()?,
            _ => {
                if self.step >= 4 && self.rng.chance(1, 2) {
                    return Ok(Some(if self.rng.chance(2, 3) {
                        Ending::Disaster
                    } else {
                        Ending::RoundTrip
                    }));
                }
                let dt = 1_000 * (1 + self.rng.below(500));
                self.advance(dt)?;
            }
        }
        Ok(None)
    }

    /// The groups as the console sees them now.
    fn group_views(&self) -> Vec<GroupView> {
        self.er().snapshot().groups
    }

    /// A point in time to recover: the cut of an older point one group retains, three
    /// times in four when there is one, else the latest (`None`).
    fn random_point(&mut self) -> Option<SimTime> {
        let older: Vec<SimTime> = self
            .group_views()
            .iter()
            .flat_map(|g| g.points.iter().filter(|p| !p.latest).map(|p| p.cut_at))
            .collect();
        if older.is_empty() || self.rng.chance(1, 4) {
            return None;
        }
        self.rng.pick(&older).copied()
    }

    /// The cut of the point a failover at `point` recovers, per datastore (protected and
    /// replica) of every group that has one.
    fn cuts_at(&self, point: Option<SimTime>) -> BTreeMap<String, SimTime> {
        let mut out = BTreeMap::new();
        for g in self.group_views() {
            let cut = match point {
                None => g.last_cut_at,
                Some(t) if g.points.is_empty() => g.last_cut_at.filter(|c| *c <= t),
                Some(t) => g.points.iter().map(|p| p.cut_at).find(|c| *c <= t),
            };
            if let Some(c) = cut {
                for pair in &g.pairs {
                    out.insert(pair.replica.clone(), c);
                    out.insert(pair.datastore.clone(), c);
                }
            }
        }
        out
    }

    /// Every file under the replica datastores of the groups, with its bytes.
    fn replica_bytes(&self) -> BTreeMap<std::path::PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        for g in self.group_views() {
            for pair in &g.pairs {
                let dir = self.root.join(format!(
                    "sites/{}/datastores/{}",
                    g.target_site, pair.replica
                ));
                let mut dirs = vec![dir];
                while let Some(d) = dirs.pop() {
                    let Ok(entries) = std::fs::read_dir(&d) else {
                        continue;
                    };
                    for p in entries.flatten().map(|e| e.path()) {
                        if p.is_dir() {
                            dirs.push(p);
                        } else if let Ok(b) = std::fs::read(&p) {
                            out.insert(p, b);
                        }
                    }
                }
            }
        }
        out
    }

    /// (d)'s rule for one recovered VM of `report`: recovered from the point its group
    /// keeps at the failover's point, and consistent unless a split (or a disturbed
    /// redirect) was in flight at that point's cut.
    fn check_recovered(
        &self,
        invariant: &str,
        report: &FailoverReport,
        cuts: &BTreeMap<String, SimTime>,
    ) -> Result<(), SimFailure> {
        for r in report.results.iter().filter(|r| r.recovered) {
            let vm = r.vm.clone().unwrap_or_default();
            let from = r.datastore.clone().unwrap_or_default();
            let Some(&cut) = cuts.get(&from) else {
                return Err(self.fail(
                    invariant,
                    format!("{vm} recovered from {from}, which had no point then: {r:#?}"),
                ));
            };
            if r.point_cut_at != Some(cut) {
                return Err(self.fail(
                    invariant,
                    format!(
                        "{vm} recovered from the point cut at {:?}, not {} ({}): {r:#?}",
                        r.point_cut_at.map(format_time),
                        format_time(cut),
                        report.point.map_or("the latest".into(), |p| format!(
                            "at or before {}",
                            format_time(p)
                        ))
                    ),
                ));
            }
            let spans = self.migrating_at(&vm, cut);
            let clean = spans.iter().all(|m| {
                m.mode == CopyMode::Mirror || (m.mode == CopyMode::Redirect && !m.disturbed)
            });
            if clean && r.consistent != Some(true) {
                return Err(self.fail(
                    invariant,
                    format!(
                        "{vm} recovered from {from} (cut at {}) with migrations {:?} is not consistent: {r:#?}",
                        format_time(cut),
                        spans
                            .iter()
                            .map(|m| (m.mode, m.from.clone(), m.to.clone(), m.disturbed))
                            .collect::<Vec<_>>()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// (g) A test failover of a random PG at a random point recovers each VM from its
    /// group's point at that time, consistent per (d)'s rule, leaves every replica byte for
    /// byte as it was, and cleans up.
    fn test_failover(&mut self) -> Result<(), SimFailure> {
        let pg = self.rng.pick(&self.pgs).cloned().unwrap_or_default();
        let point = self.random_point();
        let cuts = self.cuts_at(point);
        let before = self.replica_bytes();
        let out = self.apply(Command::Failover {
            protection_groups: vec![pg],
            kind: FailoverKind::Test,
            point: point.map(to_minutes),
        })?;
        if out.is_none() {
            return Ok(());
        }
        let report = self
            .er()
            .failovers()
            .last()
            .cloned()
            .ok_or_else(|| self.fail("g:test", "no failover report"))?;
        self.summary.test_failovers += 1;
        self.summary.older_point_recoveries += usize::from(point.is_some());
        self.check_recovered("g:test-recovered", &report, &cuts)?;
        if self.replica_bytes() != before {
            return Err(self.fail(
                "g:test-leaves-replicas",
                format!("test failover #{} changed a replica", report.id),
            ));
        }
        let out = self.apply(Command::CleanupTestFailover)?;
        if !matches!(out, Some(Outcome::Done(_))) {
            return Err(self.fail("g:cleanup", format!("{out:?}")));
        }
        Ok(())
    }

    /// Every VM's writes lost so far (by its whole history), and whether it is consistent.
    fn losses(&self) -> Result<BTreeMap<String, (bool, u64)>, SimFailure> {
        let mut out = BTreeMap::new();
        for vm in self.er().vm_ids() {
            let v = self
                .er()
                .verify_vm(&vm)
                .map_err(|err| self.fail("h:verify", format!("verify_vm({vm}): {err}")))?;
            out.insert(vm, (v.consistent, v.writes_lost));
        }
        Ok(out)
    }

    /// (h) A planned failover of every PG (a failback when they are reprotected): once it
    /// is done, each VM that was consistent before is recovered consistent with not one
    /// write more lost. `None` when it was refused or stopped on its own terms (a planned
    /// failover that fails restarts the VMs where they were).
    fn planned(&mut self) -> Result<Option<FailoverReport>, SimFailure> {
        let before = self.losses()?;
        let pgs = self.pgs.clone();
        if self
            .apply(Command::Failover {
                protection_groups: pgs,
                kind: FailoverKind::Planned,
                point: None,
            })?
            .is_none()
        {
            return Ok(None);
        }
        for _ in 0..3_600 {
            let running = self
                .er()
                .failovers()
                .last()
                .is_some_and(|f| f.state == FailoverState::Running);
            if !running {
                break;
            }
            self.advance(SECOND)?;
        }
        let report = self
            .er()
            .failovers()
            .last()
            .cloned()
            .ok_or_else(|| self.fail("h:planned", "no failover report"))?;
        match report.state {
            FailoverState::Done => {}
            FailoverState::Failed => return Ok(None),
            FailoverState::Running => {
                return Err(self.fail(
                    "h:planned",
                    format!(
                        "still running after an hour: {report:#?}\ngroups: {:#?}",
                        self.group_views()
                    ),
                ));
            }
        }
        let after = self.losses()?;
        for r in report.results.iter().filter(|r| r.recovered) {
            let vm = r.vm.clone().unwrap_or_default();
            let (was_consistent, lost) = before.get(&vm).copied().unwrap_or((false, 0));
            if !was_consistent {
                continue;
            }
            if r.consistent != Some(true) || after.get(&vm) != Some(&(true, lost)) {
                return Err(self.fail(
                    "h:planned-loses-nothing",
                    format!(
                        "{vm}: {lost} write(s) lost before, {:?} after: {r:#?}",
                        after.get(&vm)
                    ),
                ));
            }
        }
        Ok(Some(report))
    }

    /// (i) Back home: after a failback, each VM it recovered runs on the datastore it ran
    /// on before the round trip began.
    fn check_home(
        &self,
        report: &FailoverReport,
        home: &BTreeMap<String, String>,
    ) -> Result<(), SimFailure> {
        for r in report.results.iter().filter(|r| r.recovered) {
            let vm = r.vm.clone().unwrap_or_default();
            let now = self.er().location(&vm).map(|l| l.0).unwrap_or_default();
            if home.get(&vm) != Some(&now) {
                return Err(self.fail(
                    "i:home",
                    format!(
                        "{vm} runs on {now} after the failback, not {:?}",
                        home.get(&vm)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The ending without a disaster: a planned round trip of every PG — planned failover,
    /// reprotect, failback, reprotect — with (h) after each failover, (i) after the
    /// failback and (f) after each reprotect, every replica converging byte for byte.
    fn round_trip(&mut self) -> Result<(), SimFailure> {
        self.apply(Command::LinkUp)?;
        for ds in self.replicated_ds.clone() {
            self.apply(Command::ResumeReplication { datastore: ds })?;
        }
        // A failover leaves migrations alone: let them finish first.
        for _ in 0..600 {
            let e = self.er();
            if !e.vm_ids().iter().any(|v| e.is_migrating(v)) {
                break;
            }
            self.advance(SECOND)?;
        }
        self.observe();
        let home: BTreeMap<String, String> = self
            .er()
            .snapshot()
            .vms
            .iter()
            .map(|v| (v.id.clone(), v.datastore.clone()))
            .collect();
        if self.planned()?.is_none() {
            return Ok(());
        }
        self.summary.planned_failovers += 1;
        self.apply(Command::StartWorkloads)?;
        self.run_on_maybe_crash()?;
        let Some(reversed) = self.reprotect(None)? else {
            return Ok(());
        };
        self.fail_back(reversed, &home)
    }

    /// The trip home after a reprotect that reversed the groups `reversed`: guests write,
    /// a failback (h, i), guests write, and the second reprotect (f) in the original
    /// direction.
    fn fail_back(
        &mut self,
        reversed: BTreeSet<String>,
        home: &BTreeMap<String, String>,
    ) -> Result<(), SimFailure> {
        self.apply(Command::StartWorkloads)?;
        self.run_on_maybe_crash()?;
        let Some(back) = self.planned()? else {
            return Err(self.fail("i:failback", "the failback of reprotected PGs did not run"));
        };
        self.summary.failbacks += 1;
        self.check_home(&back, home)?;
        self.apply(Command::StartWorkloads)?;
        self.run_on_maybe_crash()?;
        if self.reprotect(Some(reversed))?.is_none() {
            return Err(self.fail("f:reprotect", "the second reprotect did not run"));
        }
        Ok(())
    }

    /// (a): one live instance per VM at the protected site, where the engine says it is, and
    /// `verify_vm` clean (consistent, nothing lost) for every running VM. A VM whose roll-back
    /// failed still has its target too: it holds the only copy of the blocks not yet back.
    fn check_live(&mut self) -> Result<(), SimFailure> {
        let e = self.er();
        for vm in e.vm_ids() {
            let insts = e
                .instances_of(&vm)
                .map_err(|err| self.fail("a:scan", format!("{vm}: {err}")))?;
            let live: Vec<String> = insts
                .iter()
                .filter(|i| {
                    !i.config
                        .migration
                        .as_ref()
                        .is_some_and(|m| m.target && !m.completed)
                })
                .map(|i| format!("{}/{}", i.datastore, i.name))
                .collect();
            if live.len() != 1 {
                return Err(self.fail(
                    "a:one-live-instance",
                    format!("VM {vm} has {} live instances: {live:?}", live.len()),
                ));
            }
            if e.migration_phase(&vm) == Some(Phase::RollbackFailed)
                && !insts.iter().any(|i| {
                    i.config
                        .migration
                        .as_ref()
                        .is_some_and(|m| m.target && !m.completed)
                })
            {
                return Err(self.fail(
                    "a:rollback-failed-keeps-target",
                    format!("VM {vm}: its roll-back failed but its target instance is gone"),
                ));
            }
            let (ds, inst) = e.location(&vm).unwrap_or_default();
            if live[0] != format!("{ds}/{inst}") {
                return Err(self.fail(
                    "a:location",
                    format!("VM {vm}: the engine says {ds}/{inst}, the datastores hold {live:?}"),
                ));
            }
            let v = e
                .verify_vm(&vm)
                .map_err(|err| self.fail("a:verify", format!("verify_vm({vm}): {err}")))?;
            if !v.consistent || v.writes_lost != 0 {
                return Err(self.fail("a:verify", format!("verify_vm({vm}): {v:#?}")));
            }
        }
        Ok(())
    }

    /// Writes a torn block (garbage, bad CRC) into block 0 of the first VM image found on a
    /// replica datastore whose group has published a point (see `SimConfig`).
    fn sabotage(&mut self) -> Result<(), SimFailure> {
        let e = self.er();
        let mut target = None;
        'groups: for g in &self.groups {
            if e.published_point(&g.pairs[0].datastore).is_none() {
                continue;
            }
            for p in &g.pairs {
                let insts = e
                    .workspace()
                    .list_instances(&p.replica)
                    .map_err(|err| self.fail("sabotage", err.to_string()))?;
                if let Some(i) = insts.first() {
                    target = Some(i.dir.join("disk0.img"));
                    break 'groups;
                }
            }
        }
        let Some(path) = target else {
            return Ok(());
        };
        let img = ImageFile::open(&path).map_err(|err| self.fail("sabotage", err.to_string()))?;
        img.write_block(0, &[0x5a; disk::BLOCK_SIZE])
            .map_err(|err| self.fail("sabotage", err.to_string()))?;
        self.note(format!(
            "SABOTAGE: torn block 0 written into {}",
            path.display()
        ));
        self.checked.clear();
        Ok(())
    }

    /// The migrations of `vm` that were (possibly) in flight at `t`.
    fn migrating_at(&self, vm: &str, t: SimTime) -> Vec<&MigRec> {
        self.migs
            .iter()
            .filter(|m| m.vm == vm && m.spans(t))
            .collect()
    }

    /// (b): every group's published point is its cut: the VMs elected on its replicas hold
    /// exactly the journal up to the cut's seq. A VM that was migrating in redirect or split
    /// mode at the cut is excepted from "exactly the cut" (its source is stale by design);
    /// a redirect source that no cancel or crash disturbed must still be consistent on its
    /// own (older, but write-order consistent).
    fn check_points(&mut self) -> Result<(), SimFailure> {
        let e = self.er();
        let ws = e.workspace();
        let mut checked = Vec::new();
        let mut mid = 0;
        for g in &self.groups {
            let Some(point) = e.published_point(&g.pairs[0].datastore).cloned() else {
                continue;
            };
            if self.checked.contains(&(g.id.clone(), point.cycle)) {
                continue;
            }
            let replicas: Vec<String> = g.pairs.iter().map(|p| p.replica.clone()).collect();
            let elections = recovery::scan_and_elect_in(ws, &replicas, |_| false)
                .map_err(|err| self.fail("b:scan", format!("group {}: {err}", g.id)))?;
            let journal = disk::read_journal(&ws.journal_path(&g.source_site))
                .map_err(|err| self.fail("b:journal", err.to_string()))?;
            let cut = journal.up_to(point.cut_seq);
            let mut exact = Vec::new();
            let mut older = Vec::new();
            for el in &elections {
                if el.error == Some(ElectionError::Ambiguous) {
                    return Err(self.fail(
                        "b:election",
                        format!(
                            "group {} cycle {}: ambiguous election {el:#?}",
                            g.id, point.cycle
                        ),
                    ));
                }
                let (Some(path), Some(vm)) = (&el.recover_from, &el.vm) else {
                    continue;
                };
                let Some(uuid) = disk::raw_uuid(&el.uuid) else {
                    continue;
                };
                let img = ImageFile::open_read_only(&ws.root().join(path).join("disk0.img"))
                    .map_err(|err| self.fail("b:image", format!("{path}: {err}")))?;
                let spans = self.migrating_at(vm, point.cut_at);
                mid += usize::from(!spans.is_empty() && point.cut_seq > 0);
                if spans.iter().all(|m| m.mode == CopyMode::Mirror) {
                    exact.push((vm.clone(), uuid, img));
                } else if spans
                    .iter()
                    .all(|m| m.mode != CopyMode::Split && !m.disturbed)
                {
                    older.push((vm.clone(), uuid, img));
                }
            }
            let mut disks = disk::vm_disks(&mut exact);
            let report = disk::verify_set(&mut disks, &cut, Horizon::LastJournaled)
                .map_err(|err| self.fail("b:verify", err.to_string()))?;
            if !report.consistent {
                return Err(self.fail(
                    "b:point-is-the-cut",
                    format!(
                        "group {} cycle {} (cut at {} seq {}) is not the cut state: {report:#?}",
                        g.id,
                        point.cycle,
                        format_time(point.cut_at),
                        point.cut_seq
                    ),
                ));
            }
            for (name, uuid, img) in older.iter_mut() {
                let mut disks = [VmDisk {
                    name: name.clone(),
                    uuid: *uuid,
                    reader: img,
                }];
                let report = disk::verify_set(&mut disks, &cut, Horizon::FromImages)
                    .map_err(|err| self.fail("b:verify", err.to_string()))?;
                if !report.consistent {
                    return Err(self.fail(
                        "b:redirect-source-consistent",
                        format!(
                            "group {} cycle {}: redirect-mode source of {name} is not consistent: {report:#?}",
                            g.id, point.cycle
                        ),
                    ));
                }
            }
            checked.push((g.id.clone(), point.cycle));
        }
        self.summary.points_checked += checked.len();
        self.summary.elected_mid_migration += mid;
        self.checked.extend(checked);
        Ok(())
    }

    /// The disaster, then an unplanned failover of every protection group, checking (c) and
    /// (d), then a little more time and a crash, checking every recovered VM again.
    fn disaster(&mut self) -> Result<(), SimFailure> {
        let site = self
            .er()
            .topology()
            .sites
            .iter()
            .find(|s| s.role == drconsole::topology::SiteRole::Protected)
            .map(|s| s.id.clone())
            .unwrap_or_default();
        // The point to recover (the latest or an older one) and the points a failover at it
        // recovers from, per datastore; and those of the latest, should it be refused (a
        // group keeps no point that old).
        let mut point = self.random_point();
        let mut cut_of = self.cuts_at(point);
        let latest = self.cuts_at(None);
        self.apply(Command::Disaster { site: site.clone() })?;
        self.summary.disaster = true;
        self.observe();
        if self.rng.chance(1, 2) {
            let dt = SECOND * (1 + self.rng.below(60));
            self.advance(dt)?;
        }
        let pgs = self.pgs.clone();
        let mut out = self.apply(Command::Failover {
            protection_groups: pgs.clone(),
            kind: FailoverKind::Unplanned,
            point: point.map(to_minutes),
        })?;
        if out.is_none() && point.is_some() {
            (point, cut_of) = (None, latest);
            out = self.apply(Command::Failover {
                protection_groups: pgs,
                kind: FailoverKind::Unplanned,
                point: None,
            })?;
        }
        self.summary.older_point_recoveries += usize::from(point.is_some());
        if out.is_none() {
            return Err(self.fail(
                "c:failover",
                "the unplanned failover of every protection group was refused",
            ));
        }
        let report = self
            .er()
            .failovers()
            .last()
            .cloned()
            .ok_or_else(|| self.fail("c:failover", "no failover report"))?;
        let mut seen = BTreeSet::new();
        for r in &report.results {
            let Some(vm) = &r.vm else {
                return Err(self.fail("c:failover", format!("a uuid not in the topology: {r:#?}")));
            };
            if !seen.insert(vm.clone()) {
                return Err(self.fail("c:failover", format!("{vm} appears twice: {report:#?}")));
            }
            let moves: Vec<&MigRec> = self.migs.iter().filter(|m| &m.vm == vm).collect();
            let within_cg = moves.iter().all(|m| {
                self.cg_of.contains_key(&m.from) && self.cg_of.get(&m.from) == self.cg_of.get(&m.to)
            });
            let ds_now = self.er().location(vm).map(|l| l.0).unwrap_or_default();
            // (c) A VM that only ever moved within one CG (or never) is recovered, once its
            // group has published a point.
            let home = if r.recovered {
                r.datastore.clone().unwrap_or_default()
            } else {
                ds_now.clone()
            };
            if within_cg && !r.recovered && cut_of.contains_key(&home) {
                return Err(self.fail(
                    "c:no-vm-lost",
                    format!(
                        "{vm} only moved within one CG ({} moves) but was not recovered: {r:#?}",
                        moves.len()
                    ),
                ));
            }
            if !r.recovered {
                continue;
            }
            self.summary.vms_recovered += 1;
            // (d) A VM elected from a source that was not mid-split (mirror, redirect, or no
            // migration at the point's cut) is consistent.
            let Some(&cut_at) = cut_of.get(&home) else {
                return Err(self.fail(
                    "d:point",
                    format!("{vm} recovered from {home}, which had no published point"),
                ));
            };
            let spans = self.migrating_at(vm, cut_at);
            let clean = spans.iter().all(|m| {
                m.mode == CopyMode::Mirror || (m.mode == CopyMode::Redirect && !m.disturbed)
            });
            if clean && r.consistent != Some(true) {
                return Err(self.fail(
                    "d:recovered-consistent",
                    format!(
                        "{vm} recovered from {home} (cut at {}) with migrations {:?} is not consistent: {r:#?}",
                        format_time(cut_at),
                        spans.iter().map(|m| (m.mode, m.from.clone(), m.to.clone(), m.disturbed)).collect::<Vec<_>>()
                    ),
                ));
            }
        }
        self.check_recovered("d:recovered-point", &report, &cut_of)?;
        // Recovered VMs keep running at the recovery site, through a crash too.
        let recovered: Vec<String> = report
            .results
            .iter()
            .filter(|r| r.recovered && r.consistent == Some(true))
            .filter_map(|r| r.vm.clone())
            .collect();
        self.apply(Command::StartWorkloads)?;
        self.run_on_maybe_crash()?;
        for vm in &recovered {
            let v = self
                .er()
                .verify_vm(vm)
                .map_err(|err| self.fail("d:after", format!("verify_vm({vm}): {err}")))?;
            if !v.consistent {
                return Err(self.fail(
                    "d:after",
                    format!("recovered {vm} is inconsistent after running on: {v:#?}"),
                ));
            }
        }
        if self.rng.chance(1, 2) {
            self.site_returns(&site, &report)?;
            if self.rng.chance(2, 3) {
                // Home is the protected side of the replica each VM was recovered from.
                let home: BTreeMap<String, String> = report
                    .results
                    .iter()
                    .filter(|r| r.recovered)
                    .filter_map(|r| {
                        let from = r.datastore.as_ref()?;
                        let pair = self
                            .groups
                            .iter()
                            .flat_map(|g| g.pairs.iter())
                            .find(|p| &p.replica == from)?;
                        Some((r.vm.clone()?, pair.datastore.clone()))
                    })
                    .collect();
                let Some(reversed) = self.reprotect(None)? else {
                    return Ok(());
                };
                if self.rng.chance(1, 2) {
                    self.fail_back(reversed, &home)?;
                }
            }
        }
        Ok(())
    }

    /// (f) Reprotect every PG: refused only for a VM the failover left on the old side;
    /// otherwise the groups reverse (the first reprotect: `groups` is `None`, the groups
    /// reversed are checked) or take their original direction back (the second: `groups`
    /// names them), and once the guests stop and each has published a point cut after
    /// that, every running image is byte for byte its replica on the other side, and
    /// consistent. Returns the groups checked, `None` when it was refused.
    fn reprotect(
        &mut self,
        groups: Option<BTreeSet<String>>,
    ) -> Result<Option<BTreeSet<String>>, SimFailure> {
        self.apply(Command::LinkUp)?;
        let pgs = self.pgs.clone();
        let out = self.apply(Command::Reprotect {
            protection_groups: pgs,
        })?;
        match &out {
            Some(Outcome::Done(_)) => {}
            Some(Outcome::Refused(why)) if why.contains("still live on") => return Ok(None),
            other => return Err(self.fail("f:reprotect", format!("{other:?}"))),
        }
        self.summary.reprotects += 1;
        let dt = 1_000 * (1 + self.rng.below(3_000));
        self.advance(dt)?;
        if self.rng.chance(1, 2) {
            self.crash()?;
        }
        self.apply(Command::StopWorkloads)?;
        self.advance(SECOND)?;
        let stopped = self.er().now();
        let reversed: Vec<GroupView> = self
            .group_views()
            .into_iter()
            .filter(|g| match &groups {
                None => g.reversed,
                Some(ids) => ids.contains(&g.id),
            })
            .collect();
        if reversed.is_empty() || reversed.iter().any(|g| g.reversed != groups.is_none()) {
            return Err(self.fail(
                "f:reprotect",
                format!("the groups' directions after it: {reversed:#?}"),
            ));
        }
        let ids: BTreeSet<String> = reversed.iter().map(|g| g.id.clone()).collect();
        for g in &reversed {
            self.apply(Command::ReplicateNow {
                datastore: g.pairs[0].datastore.clone(),
            })?;
        }
        for _ in 0..3_600 {
            let snap = self.er().snapshot();
            let published = snap
                .groups
                .iter()
                .filter(|g| ids.contains(&g.id))
                .all(|g| g.last_cut_at.is_some_and(|t| t >= stopped) && g.transfer.is_none());
            if published {
                break;
            }
            self.advance(SECOND)?;
        }
        let snap = self.er().snapshot();
        let root = self.root.to_path_buf();
        for v in &snap.vms {
            let Some(g) = snap.groups.iter().find(|g| {
                ids.contains(&g.id) && g.pairs.iter().any(|p| p.datastore == v.datastore)
            }) else {
                continue;
            };
            if g.last_cut_at.is_none_or(|t| t < stopped) {
                return Err(self.fail("f:published", format!("{g:#?}")));
            }
            let pair = g.pairs.iter().find(|p| p.datastore == v.datastore).unwrap();
            let running = root.join(format!(
                "sites/{}/datastores/{}/{}/disk0.img",
                g.source_site, pair.datastore, v.instance
            ));
            let replica = root.join(format!(
                "sites/{}/datastores/{}/{}/disk0.img",
                g.target_site, pair.replica, v.instance
            ));
            let (a, b) = (std::fs::read(&running), std::fs::read(&replica));
            if a.is_err() || a.ok() != b.ok() {
                return Err(self.fail(
                    "f:converged",
                    format!(
                        "{}: {} is not byte for byte {}",
                        v.id,
                        replica.display(),
                        running.display()
                    ),
                ));
            }
            let check = self
                .er()
                .verify_vm(&v.id)
                .map_err(|err| self.fail("f:verify", format!("verify_vm({}): {err}", v.id)))?;
            if !check.consistent {
                return Err(self.fail("f:verify", format!("{}: {check:#?}", v.id)));
            }
            self.summary.vms_reprotected += 1;
        }
        Ok(Some(ids))
    }

    /// (e) The lost site returns: every VM there runs again and stays consistent with
    /// nothing lost; the stale instances are exactly those of the VMs recovered away from
    /// it; the recovered VMs keep running at the recovery site; through a crash too.
    fn site_returns(
        &mut self,
        site: &str,
        report: &drconsole::engine::FailoverReport,
    ) -> Result<(), SimFailure> {
        self.summary.site_returns += 1;
        let out = self.apply(Command::SiteUp { site: site.into() })?;
        if !matches!(out, Some(Outcome::Done(_))) {
            return Err(self.fail("e:site-up", format!("SiteUp({site}) -> {out:?}")));
        }
        self.run_on_maybe_crash()?;
        let snap = self.er().snapshot();
        if !snap.sites_down.is_empty() {
            return Err(self.fail("e:site-up", format!("still down: {:?}", snap.sites_down)));
        }
        let mut stale: Vec<&str> = snap.stale.iter().map(|s| s.vm.as_str()).collect();
        stale.sort();
        let mut away: Vec<&str> = report
            .results
            .iter()
            .filter(|r| r.recovered)
            .filter_map(|r| r.vm.as_deref())
            .collect();
        away.sort();
        // Every stale instance is of a VM recovered away; at most two each (a migration
        // the disaster froze leaves its source and its partial target).
        let too_many = stale
            .iter()
            .any(|vm| stale.iter().filter(|x| *x == vm).count() > 2);
        if too_many || stale.iter().any(|vm| !away.contains(vm)) {
            return Err(self.fail(
                "e:stale",
                format!(
                    "stale {stale:?}, recovered away {away:?}: {:#?}",
                    snap.stale
                ),
            ));
        }
        for v in &snap.vms {
            let recovered_away = away.contains(&v.id.as_str());
            if v.down || (recovered_away && v.site == site) || (!recovered_away && v.site != site) {
                return Err(self.fail(
                    "e:running",
                    format!(
                        "{} after the return: site {}, down {} ({})",
                        v.id, v.site, v.down, v.down_reason
                    ),
                ));
            }
            let check = self
                .er()
                .verify_vm(&v.id)
                .map_err(|err| self.fail("e:verify", format!("verify_vm({}): {err}", v.id)))?;
            if recovered_away {
                continue; // judged by (d), its history may lack what the disaster lost
            }
            if !check.consistent || check.writes_lost > 0 {
                return Err(self.fail(
                    "e:verify",
                    format!("{} after its site returned: {check:#?}", v.id),
                ));
            }
        }
        Ok(())
    }
}

/// Plays seed `seed` in a fresh workspace under `dir` and checks, after every step:
/// (a) at the protected site each VM has exactly one live instance (in-progress targets
/// aside), the one the engine says, and `verify_vm` finds it consistent with nothing lost;
/// (b) every group's published recovery point is its cut (see `check_points`);
/// after the disaster, (c) a VM whose moves all stayed within one CG is recovered and
/// (d) a VM elected from a mirror- or redirect-mode source, or from no migration, is
/// consistent; recovered VMs stay consistent as they run on and through a crash; and when
/// the lost site returns (half the seeds), (e) its VMs run again, consistent with nothing
/// lost, and exactly the failed-over VMs' instances there are stale; then (f) a reprotect
/// converges every old-side replica to its running image, byte for byte. (g) A test
/// failover, at the latest or an older point, recovers consistent copies from the points
/// it should and leaves every replica untouched. (h) A planned failover or failback loses
/// no write more; (i) a failback brings each VM back to the datastore it left; and a
/// second reprotect converges the replicas in the original direction again (f).
pub fn run_seed(seed: u64, dir: &Path, cfg: &SimConfig) -> Result<SimSummary, SimFailure> {
    let topo = topology_for(seed, cfg);
    let root = dir.join("ws");
    let mut rng = SplitMix::new(seed);
    let groups = groups_of(&topo);
    let cg_of = topo
        .datastores
        .iter()
        .filter(|d| topo.is_protected_datastore(d) && topo.replica_of(d).is_some())
        .filter_map(|d| drconsole::dr::datastore_cg(&topo, d).map(|cg| (d.id.clone(), cg)))
        .collect();
    let protected_ds: Vec<String> = topo
        .datastores
        .iter()
        .filter(|d| topo.is_protected_datastore(d))
        .map(|d| d.id.clone())
        .collect();
    let replicated_ds = groups
        .iter()
        .flat_map(|g| g.pairs.iter().map(|p| p.datastore.clone()))
        .collect();
    let pgs = topo
        .protection_groups
        .iter()
        .map(|p| p.id.clone())
        .collect();
    let opts = EngineOptions {
        seed: rng.next_u64(),
        ..EngineOptions::default()
    };
    let mut sim = Sim {
        seed,
        root: &root,
        rng,
        engine: None,
        schedule: vec![format!("create {:?} (seed {})", topo.name, opts.seed)],
        step: 0,
        migs: Vec::new(),
        groups,
        cg_of,
        protected_ds,
        replicated_ds,
        pgs,
        checked: BTreeSet::new(),
        changed: true,
        summary: SimSummary {
            topology: topo.name.clone(),
            ..SimSummary::default()
        },
    };
    let e =
        Engine::create(&root, &topo, opts).map_err(|err| sim.fail("create", err.to_string()))?;
    sim.engine = Some(e);
    if sim.rng.chance(7, 8) {
        sim.apply(Command::StartWorkloads)?;
    }
    sim.check_live()?;
    let steps = cfg.max_steps / 2 + sim.rng.below(cfg.max_steps as u64 / 2 + 1) as usize;
    for step in 1..=steps {
        sim.step = step;
        sim.changed = false;
        let ending = sim.random_step()?;
        sim.observe();
        match ending {
            Some(Ending::Disaster) => {
                sim.disaster()?;
                break;
            }
            Some(Ending::RoundTrip) => {
                sim.round_trip()?;
                break;
            }
            None => {}
        }
        if cfg.sabotage_replica_after_step == Some(step) {
            sim.sabotage()?;
        }
        if sim.changed {
            sim.check_live()?;
            sim.check_points()?;
        }
    }
    sim.summary.steps = sim.step;
    sim.summary.schedule = sim.schedule.clone();
    // A clean close after a run (the engine must not fail on its own state).
    let e = sim.engine.take().expect("open");
    e.close()
        .map_err(|err| sim.fail("close", format!("close: {err}")))?;
    Ok(sim.summary)
}
