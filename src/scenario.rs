//! Scenario files (SPEC §10) and the headless runner: a scripted timeline played against
//! the engine in simulated time, deterministic for a seed, with expectations checked at
//! their moment.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dr::Rating;
use crate::engine::copy::CopyMode;
use crate::engine::{
    Command, Engine, EngineError, EngineOptions, FailoverKind, LogLevel, Outcome, from_minutes,
    to_minutes,
};
use crate::topology::{Topology, TopologyError};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// The topology file, relative to the scenario file.
    pub topology: String,
    pub seed: u64,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Simulated minutes from the start.
    pub at: f64,
    pub action: Action,
    #[serde(default)]
    pub caption: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum Action {
    StartWorkloads,
    StopWorkloads,
    Migrate {
        vm: String,
        to: String,
        mode: CopyMode,
        confirm: bool,
    },
    CancelMigration {
        vm: String,
    },
    /// Retries a roll-back that stopped on an I/O error.
    RetryRollback {
        vm: String,
    },
    /// These three act on the datastore's whole replication group.
    ReplicateNow {
        datastore: String,
    },
    PauseReplication {
        datastore: String,
    },
    ResumeReplication {
        datastore: String,
    },
    LinkDown,
    LinkUp,
    Disaster {
        site: String,
    },
    Failover {
        protection_groups: Vec<String>,
        kind: FailoverKind,
    },
    /// Creates a planned distributed datastore (local leg only while partitioned).
    CreateDatastore {
        datastore: String,
    },
    PartitionSite {
        site: String,
    },
    HealPartition,
    ArrayFault {
        array: String,
    },
    ArrayHealthy {
        array: String,
    },
    HostFault {
        host: String,
    },
    HostHealthy {
        host: String,
    },
    /// Every VM of consistency group `from` to CG `to`, as one operation.
    MigrateGroup {
        from: String,
        to: String,
        confirm: bool,
    },
    EnterMaintenance {
        datastore: String,
        confirm: bool,
    },
    ExitMaintenance {
        datastore: String,
    },
    Balance {
        cluster: String,
        confirm: bool,
    },
    Expect(Expectation),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum Expectation {
    /// Its live instance is on this datastore now.
    Located {
        vm: String,
        datastore: String,
    },
    /// Its live instance passes the SPEC §4.3 check.
    Consistent {
        vm: String,
    },
    WritesLost {
        vm: String,
        max: u64,
    },
    /// Moving it to `to` would be rated `rating` (a SPEC §3 rating string).
    Rating {
        vm: String,
        to: String,
        rating: String,
    },
    /// Its migration has completed (none is running and at least one finished).
    MigrationDone {
        vm: String,
    },
    /// The latest failover that considered it brought it up from an instance on this
    /// (replica) datastore.
    Recovered {
        vm: String,
        datastore: String,
    },
    /// The latest failover that considered it could not recover it.
    Lost {
        vm: String,
    },
    /// A distributed datastore: both legs present, nothing left to rebuild, legs
    /// byte-identical.
    Compliant {
        datastore: String,
    },
    /// A distributed datastore serving I/O from one leg only.
    OutOfCompliance {
        datastore: String,
    },
    /// The VM's I/O goes to a LUN of this array now.
    ServedBy {
        vm: String,
        array: String,
    },
    /// The datastore's replication group replicates in its original direction and has
    /// published a point since its last swap back.
    Replicating {
        datastore: String,
    },
    /// The VM runs on this host now.
    OnHost {
        vm: String,
        host: String,
    },
    /// The group migration from CG `from` to CG `to` declared success.
    GroupMigrated {
        from: String,
        to: String,
    },
    /// The datastore is in maintenance mode and holds no VM.
    InMaintenance {
        datastore: String,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::StartWorkloads => f.write_str("StartWorkloads"),
            Action::StopWorkloads => f.write_str("StopWorkloads"),
            Action::Migrate {
                vm,
                to,
                mode,
                confirm,
            } => write!(
                f,
                "Migrate(vm: {vm:?}, to: {to:?}, mode: {mode:?}, confirm: {confirm})"
            ),
            Action::CancelMigration { vm } => write!(f, "CancelMigration(vm: {vm:?})"),
            Action::RetryRollback { vm } => write!(f, "RetryRollback(vm: {vm:?})"),
            Action::ReplicateNow { datastore } => {
                write!(f, "ReplicateNow(datastore: {datastore:?})")
            }
            Action::PauseReplication { datastore } => {
                write!(f, "PauseReplication(datastore: {datastore:?})")
            }
            Action::ResumeReplication { datastore } => {
                write!(f, "ResumeReplication(datastore: {datastore:?})")
            }
            Action::LinkDown => f.write_str("LinkDown"),
            Action::LinkUp => f.write_str("LinkUp"),
            Action::Disaster { site } => write!(f, "Disaster(site: {site:?})"),
            Action::Failover {
                protection_groups,
                kind,
            } => write!(
                f,
                "Failover(protection_groups: {protection_groups:?}, kind: {kind:?})"
            ),
            Action::CreateDatastore { datastore } => {
                write!(f, "CreateDatastore(datastore: {datastore:?})")
            }
            Action::PartitionSite { site } => write!(f, "PartitionSite(site: {site:?})"),
            Action::HealPartition => f.write_str("HealPartition"),
            Action::ArrayFault { array } => write!(f, "ArrayFault(array: {array:?})"),
            Action::ArrayHealthy { array } => write!(f, "ArrayHealthy(array: {array:?})"),
            Action::HostFault { host } => write!(f, "HostFault(host: {host:?})"),
            Action::HostHealthy { host } => write!(f, "HostHealthy(host: {host:?})"),
            Action::MigrateGroup { from, to, confirm } => write!(
                f,
                "MigrateGroup(from: {from:?}, to: {to:?}, confirm: {confirm})"
            ),
            Action::EnterMaintenance { datastore, confirm } => write!(
                f,
                "EnterMaintenance(datastore: {datastore:?}, confirm: {confirm})"
            ),
            Action::ExitMaintenance { datastore } => {
                write!(f, "ExitMaintenance(datastore: {datastore:?})")
            }
            Action::Balance { cluster, confirm } => {
                write!(f, "Balance(cluster: {cluster:?}, confirm: {confirm})")
            }
            Action::Expect(e) => write!(f, "Expect({e})"),
        }
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::Located { vm, datastore } => {
                write!(f, "Located(vm: {vm:?}, datastore: {datastore:?})")
            }
            Expectation::Consistent { vm } => write!(f, "Consistent(vm: {vm:?})"),
            Expectation::WritesLost { vm, max } => write!(f, "WritesLost(vm: {vm:?}, max: {max})"),
            Expectation::Rating { vm, to, rating } => {
                write!(f, "Rating(vm: {vm:?}, to: {to:?}, rating: {rating:?})")
            }
            Expectation::MigrationDone { vm } => write!(f, "MigrationDone(vm: {vm:?})"),
            Expectation::Recovered { vm, datastore } => {
                write!(f, "Recovered(vm: {vm:?}, datastore: {datastore:?})")
            }
            Expectation::Lost { vm } => write!(f, "Lost(vm: {vm:?})"),
            Expectation::Compliant { datastore } => {
                write!(f, "Compliant(datastore: {datastore:?})")
            }
            Expectation::OutOfCompliance { datastore } => {
                write!(f, "OutOfCompliance(datastore: {datastore:?})")
            }
            Expectation::ServedBy { vm, array } => {
                write!(f, "ServedBy(vm: {vm:?}, array: {array:?})")
            }
            Expectation::Replicating { datastore } => {
                write!(f, "Replicating(datastore: {datastore:?})")
            }
            Expectation::OnHost { vm, host } => write!(f, "OnHost(vm: {vm:?}, host: {host:?})"),
            Expectation::GroupMigrated { from, to } => {
                write!(f, "GroupMigrated(from: {from:?}, to: {to:?})")
            }
            Expectation::InMaintenance { datastore } => {
                write!(f, "InMaintenance(datastore: {datastore:?})")
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Syntax(#[from] crate::fsutil::SyntaxError),
    #[error("{file}: step {step}: {rule}")]
    Step {
        file: String,
        step: usize,
        rule: String,
    },
    #[error("{file}: topology: {source}")]
    Topology {
        file: String,
        #[source]
        source: TopologyError,
    },
    #[error("{dir}: {rule}")]
    Workspace { dir: String, rule: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl Scenario {
    pub fn from_ron_str(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = crate::fsutil::parse_ron(text, file)?;
        let mut prev = 0.0;
        for (i, step) in s.steps.iter().enumerate() {
            let rule = if !step.at.is_finite() || step.at < 0.0 {
                Some(format!(
                    "at must be a number of minutes >= 0, not {}",
                    step.at
                ))
            } else if step.at < prev {
                Some(format!(
                    "steps run in time order; at {} comes after at {prev}",
                    step.at
                ))
            } else if let Action::Expect(Expectation::Rating { rating, .. }) = &step.action {
                Rating::parse(rating).is_none().then(|| {
                    format!(
                        "rating {rating:?} is not one of none, mild, heightened-mild, severe, heightened-severe"
                    )
                })
            } else {
                None
            };
            if let Some(rule) = rule {
                return Err(ScenarioError::Step {
                    file: file.into(),
                    step: i + 1,
                    rule,
                });
            }
            prev = step.at;
        }
        Ok(s)
    }

    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            file: file.clone(),
            source,
        })?;
        Scenario::from_ron_str(&text, &file)
    }

    /// The topology file, resolved against the scenario's directory.
    pub fn topology_path(&self, scenario_path: &Path) -> PathBuf {
        scenario_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&self.topology)
    }

    /// Loads and checks the scenario's topology; an error names the scenario file.
    pub fn load_topology(&self, scenario_path: &Path) -> Result<Topology, ScenarioError> {
        Topology::load(&self.topology_path(scenario_path)).map_err(|source| {
            ScenarioError::Topology {
                file: scenario_path.display().to_string(),
                source,
            }
        })
    }

    /// The engine's options for a run of this scenario: its seed, the rest default.
    pub fn engine_options(&self) -> EngineOptions {
        EngineOptions {
            seed: self.seed,
            ..EngineOptions::default()
        }
    }
}

/// How one step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepOutcome {
    Ok,
    Refused,
    Error,
    Pass,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReport {
    pub step: usize,
    pub at: f64,
    pub action: String,
    pub caption: Option<String>,
    pub outcome: StepOutcome,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogReport {
    pub at: f64,
    pub level: LogLevel,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    pub scenario: String,
    pub seed: u64,
    pub passed: bool,
    pub steps: Vec<StepReport>,
    pub log: Vec<LogReport>,
}

impl Action {
    /// The engine command this action issues; `None` for an `Expect`, which only looks.
    pub fn command(&self) -> Option<Command> {
        self.command_or_check().ok()
    }

    /// The command this action issues, or the expectation it checks.
    fn command_or_check(&self) -> Result<Command, &Expectation> {
        Ok(match self {
            Action::StartWorkloads => Command::StartWorkloads,
            Action::StopWorkloads => Command::StopWorkloads,
            Action::Migrate {
                vm,
                to,
                mode,
                confirm,
            } => Command::Migrate {
                vm: vm.clone(),
                to: to.clone(),
                mode: *mode,
                confirm: *confirm,
            },
            Action::CancelMigration { vm } => Command::CancelMigration { vm: vm.clone() },
            Action::RetryRollback { vm } => Command::RetryRollback { vm: vm.clone() },
            Action::ReplicateNow { datastore } => Command::ReplicateNow {
                datastore: datastore.clone(),
            },
            Action::PauseReplication { datastore } => Command::PauseReplication {
                datastore: datastore.clone(),
            },
            Action::ResumeReplication { datastore } => Command::ResumeReplication {
                datastore: datastore.clone(),
            },
            Action::LinkDown => Command::LinkDown,
            Action::LinkUp => Command::LinkUp,
            Action::Disaster { site } => Command::Disaster { site: site.clone() },
            Action::Failover {
                protection_groups,
                kind,
            } => Command::Failover {
                protection_groups: protection_groups.clone(),
                kind: *kind,
            },
            Action::CreateDatastore { datastore } => Command::CreateDatastore {
                datastore: datastore.clone(),
            },
            Action::PartitionSite { site } => Command::PartitionSite { site: site.clone() },
            Action::HealPartition => Command::HealPartition,
            Action::ArrayFault { array } => Command::ArrayFault {
                array: array.clone(),
            },
            Action::ArrayHealthy { array } => Command::ArrayHealthy {
                array: array.clone(),
            },
            Action::HostFault { host } => Command::HostFault { host: host.clone() },
            Action::HostHealthy { host } => Command::HostHealthy { host: host.clone() },
            Action::MigrateGroup { from, to, confirm } => Command::MigrateGroup {
                from: from.clone(),
                to: to.clone(),
                confirm: *confirm,
            },
            Action::EnterMaintenance { datastore, confirm } => Command::EnterMaintenance {
                datastore: datastore.clone(),
                confirm: *confirm,
            },
            Action::ExitMaintenance { datastore } => Command::ExitMaintenance {
                datastore: datastore.clone(),
            },
            Action::Balance { cluster, confirm } => Command::Balance {
                cluster: cluster.clone(),
                confirm: *confirm,
            },
            Action::Expect(e) => return Err(e),
        })
    }
}

/// Advances `engine` to the step's time and runs it: applies its command (an error of the
/// command is the step's outcome, not the run's) or checks its expectation. The headless
/// [`Runner`] and the console's demo player both run steps through here, so a demo ends
/// as `drconsole run` does. `number` counts from 1. Only the engine failing while the
/// clock advances is an error.
pub fn run_step(
    engine: &mut Engine,
    number: usize,
    step: &Step,
) -> Result<StepReport, EngineError> {
    engine.advance(from_minutes(step.at))?;
    let (outcome, detail) = match step.action.command_or_check() {
        Ok(cmd) => match engine.apply(cmd) {
            Ok(Outcome::Done(m)) => (StepOutcome::Ok, m),
            Ok(Outcome::Refused(m)) => (StepOutcome::Refused, m),
            // A command the engine rejects is reported, and the run goes on.
            Err(e) => (StepOutcome::Error, e.to_string()),
        },
        Err(e) => check(engine, e),
    };
    Ok(StepReport {
        step: number,
        at: step.at,
        action: step.action.to_string(),
        caption: step.caption.clone(),
        outcome,
        detail,
    })
}

/// Checks an expectation against the engine's state now: `Pass` or `Fail`, and what was
/// found.
pub fn check(eng: &Engine, e: &Expectation) -> (StepOutcome, String) {
    let verdict = |ok: bool, detail: String| {
        (
            if ok {
                StepOutcome::Pass
            } else {
                StepOutcome::Fail
            },
            detail,
        )
    };
    match e {
        Expectation::Located { vm, datastore } => match eng.location(vm) {
            Some((ds, inst)) => verdict(
                &ds == datastore,
                format!("{vm} lives on {ds} (instance {inst})"),
            ),
            None => verdict(false, format!("VM {vm:?} does not exist")),
        },
        Expectation::Consistent { vm } => match eng.verify_vm(vm) {
            Ok(v) => verdict(
                v.consistent,
                format!(
                    "{} blocks written, {} torn, {} mismatched",
                    v.written_blocks, v.torn_blocks, v.mismatched_blocks
                ),
            ),
            Err(err) => verdict(false, err.to_string()),
        },
        Expectation::WritesLost { vm, max } => match eng.verify_vm(vm) {
            Ok(v) => verdict(
                v.writes_lost <= *max,
                format!("{} writes lost (at most {max} expected)", v.writes_lost),
            ),
            Err(err) => verdict(false, err.to_string()),
        },
        Expectation::Rating { vm, to, rating } => match eng.impact(vm, to) {
            Ok(i) => verdict(
                i.rating.as_str() == rating,
                format!(
                    "rated {} ({})",
                    i.rating,
                    i.fault.map(|f| f.as_str()).unwrap_or("allowed")
                ),
            ),
            Err(err) => verdict(false, err.to_string()),
        },
        Expectation::MigrationDone { vm } => {
            let running = eng.is_migrating(vm);
            let done = eng.migrations_done(vm);
            let detail = if running {
                format!("{vm} is still migrating")
            } else {
                format!("{done} migration(s) of {vm} completed")
            };
            verdict(!running && done > 0, detail)
        }
        Expectation::Recovered { vm, datastore } => match eng.failover_result(vm) {
            Some(r) if r.recovered => verdict(
                r.datastore.as_deref() == Some(datastore.as_str()),
                recovered_detail(vm, r),
            ),
            Some(r) => verdict(false, recovered_detail(vm, r)),
            None => verdict(false, format!("no failover has considered {vm}")),
        },
        Expectation::Lost { vm } => match eng.failover_result(vm) {
            Some(r) => verdict(!r.recovered, recovered_detail(vm, r)),
            None => verdict(false, format!("no failover has considered {vm}")),
        },
        Expectation::Compliant { datastore } => {
            let (ok, detail) = eng.expect_compliant(datastore);
            verdict(ok, detail)
        }
        Expectation::OutOfCompliance { datastore } => {
            let (ok, detail) = eng.expect_out_of_compliance(datastore);
            verdict(ok, detail)
        }
        Expectation::ServedBy { vm, array } => {
            let (ok, detail) = eng.expect_served_by(vm, array);
            verdict(ok, detail)
        }
        Expectation::Replicating { datastore } => {
            let (ok, detail) = eng.expect_replicating(datastore);
            verdict(ok, detail)
        }
        Expectation::OnHost { vm, host } => {
            let (ok, detail) = eng.expect_on_host(vm, host);
            verdict(ok, detail)
        }
        Expectation::GroupMigrated { from, to } => {
            let (ok, detail) = eng.expect_group_migrated(from, to);
            verdict(ok, detail)
        }
        Expectation::InMaintenance { datastore } => {
            let (ok, detail) = eng.expect_in_maintenance(datastore);
            verdict(ok, detail)
        }
    }
}

/// Plays a scenario step by step against an engine, headless.
pub struct Runner {
    pub scenario: Scenario,
    pub engine: Engine,
    next: usize,
    pub report: RunReport,
}

impl Runner {
    /// Materializes the scenario's topology into `workspace` (which must be empty or
    /// missing: a run always starts from the same state) and prepares the run.
    pub fn new(
        scenario_path: &Path,
        scenario: Scenario,
        workspace: &Path,
    ) -> Result<Runner, ScenarioError> {
        let topology = scenario.load_topology(scenario_path)?;
        if let Ok(mut entries) = std::fs::read_dir(workspace)
            && entries.next().is_some()
        {
            return Err(ScenarioError::Workspace {
                dir: workspace.display().to_string(),
                rule: "a scenario runs in an empty or new directory, so every run starts alike"
                    .into(),
            });
        }
        let engine = Engine::create(workspace, &topology, scenario.engine_options())?;
        let report = RunReport {
            scenario: scenario.name.clone(),
            seed: scenario.seed,
            passed: true,
            steps: Vec::new(),
            log: Vec::new(),
        };
        Ok(Runner {
            scenario,
            engine,
            next: 0,
            report,
        })
    }

    /// Is every step done?
    pub fn finished(&self) -> bool {
        self.next >= self.scenario.steps.len()
    }

    /// The next step's time, if any.
    pub fn next_at(&self) -> Option<f64> {
        self.scenario.steps.get(self.next).map(|s| s.at)
    }

    /// Advances to the next step's time and runs it.
    pub fn step(&mut self) -> Result<&StepReport, ScenarioError> {
        let step = self.scenario.steps[self.next].clone();
        self.next += 1;
        let report = run_step(&mut self.engine, self.next, &step)?;
        if report.outcome == StepOutcome::Fail {
            self.report.passed = false;
        }
        self.drain_log();
        self.report.steps.push(report);
        Ok(self.report.steps.last().expect("just pushed"))
    }

    fn drain_log(&mut self) {
        for l in self.engine.take_log() {
            self.report.log.push(LogReport {
                at: (to_minutes(l.at) * 1e6).round() / 1e6,
                level: l.level,
                message: l.message,
            });
        }
    }

    /// Runs every remaining step, then closes the engine cleanly.
    pub fn run_to_end(mut self) -> Result<RunReport, ScenarioError> {
        while !self.finished() {
            self.step()?;
        }
        self.drain_log();
        let report = self.report.clone();
        self.engine.close()?;
        Ok(report)
    }
}

/// One VM's failover result in words.
fn recovered_detail(vm: &str, r: &crate::engine::VmResult) -> String {
    if r.recovered {
        format!(
            "{vm} recovered from {} ({}, {} write(s) lost{})",
            r.datastore.as_deref().unwrap_or("?"),
            if r.consistent == Some(true) {
                "consistent"
            } else {
                "NOT consistent"
            },
            r.writes_lost.unwrap_or(0),
            r.achieved_rpo_minutes
                .map(|m| format!(", achieved RPO {m:.1} min"))
                .unwrap_or_default()
        )
    } else {
        format!(
            "{vm} not recovered: {} ({})",
            r.error.as_deref().unwrap_or("error"),
            r.reason
        )
    }
}

/// Loads and runs a scenario headless into `workspace`.
pub fn run_file(path: &Path, workspace: &Path) -> Result<RunReport, ScenarioError> {
    let scenario = Scenario::load(path)?;
    Runner::new(path, scenario, workspace)?.run_to_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_rollback_is_a_scenario_action() {
        let s = Scenario::from_ron_str(
            r#"Scenario(name: "r", topology: "t.ron", seed: 1,
                steps: [Step(at: 1.0, action: RetryRollback(vm: "vm1"))])"#,
            "r.ron",
        )
        .unwrap();
        let a = &s.steps[0].action;
        assert_eq!(
            a.command(),
            Some(Command::RetryRollback { vm: "vm1".into() })
        );
        assert_eq!(a.to_string(), r#"RetryRollback(vm: "vm1")"#);
    }
}
