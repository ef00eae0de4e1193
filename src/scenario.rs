//! Scenario files (SPEC §10) and the headless runner: a scripted timeline played against
//! the engine in simulated time, deterministic for a seed, with expectations checked at
//! their moment.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize, de};

use crate::dr::Rating;
use crate::engine::{
    Command, Engine, EngineError, EngineOptions, LogLevel, Outcome, from_minutes, to_minutes,
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

/// What a step does: issue one of the engine's commands (written as the command itself,
/// `Migrate(vm: "vm1", …)`), or check an expectation (`Expect(Lost(vm: "vm1"))`).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Command(Command),
    Expect(Expectation),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The VM runs on a replicated datastore and its group has published a point, in the
    /// group's current direction, that holds its running instance (SPEC §11).
    Protected {
        vm: String,
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

/// Writes `value` as one line of RON, as a scenario file spells it: `Name(field: value,
/// …)`, lists as `["a", "b"]`, strings quoted and escaped as Rust's `{:?}` does.
fn write_ron<T: Serialize>(f: &mut fmt::Formatter<'_>, value: &T) -> fmt::Result {
    let config = ron::ser::PrettyConfig::new()
        .compact_structs(true)
        .compact_arrays(true);
    let text = ron::ser::to_string_pretty(value, config).map_err(|_| fmt::Error)?;
    // RON escapes a single quote in a string (`\\'`), `{:?}` does not; every other
    // backslash RON writes starts an escape of its own, so this undoes only that one.
    f.write_str(&text.replace("\\'", "'"))
}

impl fmt::Display for Action {
    /// The action as its scenario file writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_ron(f, self)
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_ron(f, self)
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Action::Command(c) => c.serialize(s),
            Action::Expect(e) => s.serialize_newtype_variant("Action", 0, "Expect", e),
        }
    }
}

impl<'de> Deserialize<'de> for Action {
    /// Reads the variant's name, then either the expectation (`Expect`) or, handing the
    /// name back, the command's own derived reader: no second list of commands.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Action, D::Error> {
        d.deserialize_enum("Action", action_variants(), ActionVisitor)
    }
}

struct ActionVisitor;

impl<'de> de::Visitor<'de> for ActionVisitor {
    type Value = Action;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a command or Expect(...)")
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Action, A::Error> {
        let (VariantName(name), variant) = data.variant()?;
        if name == "Expect" {
            return de::VariantAccess::newtype_variant(variant).map(Action::Expect);
        }
        if !command_variants().contains(&name.as_str()) {
            return Err(de::Error::unknown_variant(&name, action_variants()));
        }
        let named = Named { name, variant };
        Command::deserialize(de::value::EnumAccessDeserializer::new(named)).map(Action::Command)
    }
}

/// An enum variant's name, read as an identifier (RON reads a `String` only in quotes).
struct VariantName(String);

impl<'de> Deserialize<'de> for VariantName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<VariantName, D::Error> {
        struct Name;
        impl de::Visitor<'_> for Name {
            type Value = VariantName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a variant name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<VariantName, E> {
                Ok(VariantName(v.to_string()))
            }
        }
        d.deserialize_identifier(Name)
    }
}

/// An enum's variant whose name was already read: gives it again to the next reader.
struct Named<V> {
    name: String,
    variant: V,
}

impl<'de, V: de::VariantAccess<'de>> de::EnumAccess<'de> for Named<V> {
    type Error = V::Error;
    type Variant = V;

    fn variant_seed<T: de::DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, V), V::Error> {
        let value = seed.deserialize(de::IntoDeserializer::into_deserializer(self.name))?;
        Ok((value, self.variant))
    }
}

/// The names of [`Command`]'s variants, as its derived reader knows them.
pub fn command_variants() -> &'static [&'static str] {
    static NAMES: OnceLock<&'static [&'static str]> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut probe = VariantProbe(&[]);
        // The probe fails every read: it only notes the list the reader asks for.
        let _ = Command::deserialize(&mut probe);
        probe.0
    })
}

/// A step's action names: every command, then `Expect`.
fn action_variants() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names = command_variants().to_vec();
        names.push("Expect");
        names
    })
}

/// A reader that only records the variant names an enum's reader asks for.
struct VariantProbe(&'static [&'static str]);

impl<'de> serde::Deserializer<'de> for &mut VariantProbe {
    type Error = de::value::Error;

    fn deserialize_any<V: de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only an enum's variant names are probed"))
    }

    fn deserialize_enum<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = variants;
        Err(de::Error::custom("probed"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map struct
        identifier ignored_any
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
    pub fn command(&self) -> Option<&Command> {
        match self {
            Action::Command(c) => Some(c),
            Action::Expect(_) => None,
        }
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
    let (outcome, detail) = match &step.action {
        Action::Command(cmd) => match engine.apply(cmd.clone()) {
            Ok(Outcome::Done(m)) => (StepOutcome::Ok, m),
            Ok(Outcome::Refused(m)) => (StepOutcome::Refused, m),
            // A command the engine rejects is reported, and the run goes on.
            Err(e) => (StepOutcome::Error, e.to_string()),
        },
        Action::Expect(e) => check(engine, e),
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
        Expectation::Protected { vm } => {
            let (ok, detail) = eng.expect_protected(vm);
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
mod tests;
