//! The command line (SPEC §9). With no subcommand the binary opens the console.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::dr;
use crate::engine::Engine;
use crate::scenario;
use crate::topology::{SiteRole, Topology};

mod bench;
mod place;
pub use bench::{
    BenchAcrossCli, BenchCommand, BenchCopyCli, BenchReplicateCli, BenchReprotectCli, BenchUiCli,
};
use bench::{bench_across, bench_copy, bench_replicate, bench_reprotect};
pub use place::PlaceArgs;
use place::place;

#[derive(Debug, Parser)]
#[command(
    name = "drconsole",
    version,
    about = "A console for moving VM disks between datastores without breaking disaster recovery.",
    long_about = "A console for moving VM disks between datastores without breaking disaster recovery.\n\n\
                  With no subcommand it opens the console window on the built-in demo topology \
                  (or --topology FILE)."
)]
pub struct Cli {
    /// Open the console on this topology file instead of the built-in demo.
    #[arg(long, value_name = "FILE")]
    pub topology: Option<PathBuf>,
    /// The workspace directory the console runs in (default: one per topology under the
    /// user's data directory). Reopening a workspace continues where it was.
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Play this scenario as a demo once the console is up (Demo menu: play, pause, step,
    /// restart); it runs in a fresh demo workspace with its own topology.
    #[arg(long, value_name = "SCENARIO")]
    pub demo: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a topology file and print a summary.
    Check(CheckArgs),
    /// Print the replication tags of every datastore.
    Tags(TagsArgs),
    /// Rate the DR impact of moving a VM's disk to another datastore.
    Impact(ImpactArgs),
    /// Rank the datastores a new VM could be placed on, safest first: whether it keeps the
    /// protection group it is meant for (the impact rules), whether it fits, and how full the
    /// datastore would be. Free space is the topology's: capacity less the disks on it.
    Place(PlaceArgs),
    /// Open a workspace (recovering from a crash as opening does) and check every VM's
    /// disk against the journal; exit 1 if any fails. With --repair, also report what the
    /// recovery did.
    ///
    /// Opening a workspace always performs crash recovery first, exactly as the console and
    /// `run` do: a cut-short last journal line is dropped; a guest write that reached the
    /// disk but not the journal is journaled; an interrupted migration is undone (had not
    /// started copying), completed (had finished copying) or resumed (copying or rolling
    /// back); an interrupted replication publish is finished (after its commit) or its
    /// staging discarded (before). The workspace is then closed cleanly. --repair asks for
    /// exactly that explicitly and lists every recovery step taken. A workspace with a
    /// symbolic link where it keeps data, a missing protected-site journal or an image of
    /// the wrong size is refused (exit 2, naming the path) and left as it is. A VM whose
    /// vm.ron is unreadable or another VM's is not ok.
    Verify(VerifyArgs),
    /// Run a scenario headless in a new workspace and print its report; exit 1 if an
    /// Expect step failed.
    Run(RunArgs),
    /// Elect, for every VM, the instance a failover would recover from the recovery-site
    /// datastores (SPEC §7), and print the decisions.
    Recover(RecoverArgs),
    /// Report every failover, failback, test and reprotect recorded in a workspace, per
    /// protection group and VM, with each replication group's lag against its RPO (SPEC
    /// §11). Reads the workspace without starting anything.
    Report(ReportArgs),
    /// Benchmarks, with a baseline measured in the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print a generated topology (RON) for large-inventory work: two sites, hosts sized
    /// to hold the VMs, replicated datastores in consistency and protection groups, and
    /// non-replicated ones. The same seed gives the same topology.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// How many VMs (1 to 100,000).
    #[arg(long, value_name = "N")]
    pub vms: usize,
    /// How many protected-site datastores (1 to 10,000); each replicated one also gets its
    /// replica datastore at the recovery site.
    #[arg(long, value_name = "M")]
    pub datastores: usize,
    /// The seed of the generator.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The workspace directory (topology.ron and the recovery-site datastores suffice).
    pub workspace: PathBuf,
    /// Only decide and print; change nothing. Required: recovery itself runs as a
    /// failover from the console or a scenario.
    #[arg(long, required = true)]
    pub dry_run: bool,
    /// Print JSON: one entry per uuid, sorted by uuid.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The workspace directory.
    pub workspace: PathBuf,
    /// Print the report as JSON (the same facts as the text and the HTML page).
    #[arg(long)]
    pub json: bool,
    /// Also write the report as one self-contained HTML page (inline CSS and SVG charts)
    /// to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The workspace directory.
    pub workspace: PathBuf,
    /// Perform the crash recovery that opening performs (roll interrupted migrations and
    /// publishes forward or back, journal a write in flight), list what it did, then verify.
    #[arg(long)]
    pub repair: bool,
    /// Print JSON: {"ok", "workspace", "repaired": [...], "vms": [{"vm", "datastore",
    /// "consistent", ...}]}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// An empty or new directory to run in.
    #[arg(long, value_name = "DIR")]
    pub workspace: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The topology file.
    pub topology: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TagsArgs {
    /// The topology file.
    pub topology: PathBuf,
    /// Print JSON: [{"datastore","replicated","consistency_group","protection_group","tags"}].
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ImpactArgs {
    /// The topology file.
    pub topology: PathBuf,
    /// Source datastore.
    #[arg(
        long,
        value_name = "DS",
        conflicts_with = "vm",
        required_unless_present = "vm"
    )]
    pub from: Option<String>,
    /// The VM to move (its current datastore is the source).
    #[arg(long, value_name = "VM")]
    pub vm: Option<String>,
    /// Destination datastore.
    #[arg(long, value_name = "DS")]
    pub to: String,
    /// Print JSON: {"from","to","allowed","rating","fault","explanation"}.
    #[arg(long)]
    pub json: bool,
}

/// A failure the CLI reports on stderr with exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub String);

/// Runs a subcommand, writing to `out`; returns the exit code (0, or 1 when a check it
/// made failed). Errors carry the one-line message for stderr (exit code 2).
pub fn run(command: &Command, out: &mut dyn Write) -> Result<u8, CliError> {
    match command {
        Command::Check(a) => check(a, out).map(|()| 0),
        Command::Tags(a) => tags(a, out).map(|()| 0),
        Command::Impact(a) => impact(a, out).map(|()| 0),
        Command::Place(a) => place(a, out).map(|()| 0),
        Command::Verify(a) => verify(a, out),
        Command::Run(a) => run_scenario(a, out),
        Command::Recover(a) => recover(a, out).map(|()| 0),
        Command::Report(a) => report(a, out).map(|()| 0),
        Command::Bench(BenchCommand::Copy(a)) => bench_copy(a, out).map(|()| 0),
        Command::Bench(BenchCommand::Replicate(a)) => bench_replicate(a, out).map(|()| 0),
        Command::Bench(BenchCommand::Reprotect(a)) => bench_reprotect(a, out).map(|()| 0),
        Command::Bench(BenchCommand::Across(a)) => bench_across(a, out).map(|()| 0),
        // `bench ui` opens the GUI stack, which is above this library's CLI: the binary
        // runs it (src/main.rs, through gui::bench::run_cli).
        Command::Bench(BenchCommand::Ui(_)) => Err(CliError(
            "bench ui is run by the drconsole binary, not the library's CLI".into(),
        )),
        Command::Generate(a) => generate(a, out).map(|()| 0),
    }
}

pub fn load(path: &Path) -> Result<Topology, CliError> {
    Topology::load(path).map_err(|e| CliError(e.to_string()))
}

pub fn emit(out: &mut dyn Write, text: &str) -> Result<(), CliError> {
    writeln!(out, "{text}").map_err(|e| CliError(format!("cannot write output: {e}")))
}

pub fn emit_json<T: Serialize>(out: &mut dyn Write, value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError(e.to_string()))?;
    emit(out, &text)
}

#[derive(Debug, Serialize)]
struct Summary {
    file: String,
    name: String,
    sites: usize,
    hosts: usize,
    arrays: usize,
    luns: usize,
    datastores: usize,
    replicated_datastores: usize,
    consistency_groups: usize,
    protection_groups: usize,
    vms: usize,
}

fn check(a: &CheckArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let t = load(&a.topology)?;
    let tags = dr::discover_tags(&t);
    let protected: Vec<_> = tags
        .iter()
        .filter(|tg| {
            t.datastore(&tg.datastore)
                .is_some_and(|d| t.site_role(&d.site) == Some(SiteRole::Protected))
        })
        .collect();
    let cgs: std::collections::BTreeSet<_> = protected
        .iter()
        .filter_map(|tg| tg.consistency_group.as_deref())
        .collect();
    let s = Summary {
        file: a.topology.display().to_string(),
        name: t.name.clone(),
        sites: t.sites.len(),
        hosts: t.hosts.len(),
        arrays: t.arrays.len(),
        luns: t.arrays.iter().map(|x| x.luns.len()).sum(),
        datastores: t.datastores.len(),
        replicated_datastores: protected.iter().filter(|tg| tg.replicated).count(),
        consistency_groups: cgs.len(),
        protection_groups: t.protection_groups.len(),
        vms: t.vms.len(),
    };
    if a.json {
        return emit_json(out, &s);
    }
    emit(
        out,
        &format!(
            "{}: OK: \"{}\": {} sites, {} hosts, {} arrays ({} LUNs), {} datastores \
             ({} replicated, {} consistency groups), {} protection groups, {} VMs",
            s.file,
            s.name,
            s.sites,
            s.hosts,
            s.arrays,
            s.luns,
            s.datastores,
            s.replicated_datastores,
            s.consistency_groups,
            s.protection_groups,
            s.vms
        ),
    )
}

fn tags(a: &TagsArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let t = load(&a.topology)?;
    let tags = dr::discover_tags(&t);
    if a.json {
        return emit_json(out, &tags);
    }
    let width = tags.iter().map(|x| x.datastore.len()).max().unwrap_or(0);
    for tg in &tags {
        emit(
            out,
            &format!("{:width$}  {}", tg.datastore, tg.tags.join(" ")),
        )?;
    }
    Ok(())
}

fn impact(a: &ImpactArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let t = load(&a.topology)?;
    let file = a.topology.display();
    let result = match (&a.vm, &a.from) {
        (Some(vm), _) => dr::impact_for_vm(&t, vm, &a.to),
        (None, Some(from)) => dr::impact(&t, from, &a.to),
        (None, None) => return Err(CliError("give --from DS or --vm VM".to_string())),
    };
    let i = result.map_err(|e| CliError(format!("{file}: {e}")))?;
    if a.json {
        return emit_json(out, &i);
    }
    let verdict = if i.allowed {
        "allowed".to_string()
    } else {
        format!(
            "needs an override: rating {}, fault {}",
            i.rating,
            i.fault.map(|f| f.as_str()).unwrap_or("none")
        )
    };
    emit(
        out,
        &format!("{} -> {}: {verdict}\n{}", i.from, i.to, i.explanation),
    )
}

#[derive(Debug, Serialize)]
struct VerifyEntry {
    vm: String,
    datastore: String,
    instance: String,
    migrating: bool,
    /// What is wrong besides the disk's content (an unreadable or foreign vm.ron); a VM
    /// with a problem is not ok even when its disk is consistent.
    problems: Vec<String>,
    #[serde(flatten)]
    result: crate::disk::VmVerify,
}

/// Problems of the live instance's vm.ron: unreadable, not a VmConfig, or another VM's.
fn config_problems(engine: &Engine, vm: &str, datastore: &str, instance: &str) -> Vec<String> {
    let dir = match engine.workspace().datastore_dir(datastore) {
        Ok(d) => d.join(instance),
        Err(e) => return vec![e.to_string()],
    };
    match crate::workspace::Workspace::read_config(&dir) {
        Err(e) => vec![e.to_string()],
        Ok(cfg) => {
            let want = engine
                .topology()
                .vm(vm)
                .map(|v| v.uuid.to_ascii_lowercase());
            if want.is_some_and(|u| u != cfg.uuid.to_ascii_lowercase()) {
                vec![format!(
                    "{}: uuid {} is not VM {vm:?}'s uuid in the topology",
                    dir.join(crate::workspace::VM_CONFIG_FILE).display(),
                    cfg.uuid
                )]
            } else {
                Vec::new()
            }
        }
    }
}

#[derive(Debug, Serialize)]
struct VerifyReport {
    ok: bool,
    workspace: String,
    /// What crash recovery did on opening, one sentence per step (empty after a clean
    /// shutdown).
    repaired: Vec<String>,
    vms: Vec<VerifyEntry>,
}

fn verify(a: &VerifyArgs, out: &mut dyn Write) -> Result<u8, CliError> {
    let fail = |e: &dyn std::fmt::Display| CliError(e.to_string());
    // Opening recovers (Engine::open); its recovery steps are the log lines it wrote.
    let mut engine = Engine::open(&a.workspace).map_err(|e| fail(&e))?;
    let repaired: Vec<String> = engine
        .take_log()
        .into_iter()
        .map(|l| l.message)
        .filter(|m| m.starts_with("Recovery:"))
        .collect();
    let mut vms = Vec::new();
    for vm in engine.vm_ids() {
        let result = engine.verify_vm(&vm).map_err(|e| fail(&e))?;
        let (datastore, instance) = engine.location(&vm).unwrap_or_default();
        vms.push(VerifyEntry {
            problems: config_problems(&engine, &vm, &datastore, &instance),
            migrating: engine.is_migrating(&vm),
            vm,
            datastore,
            instance,
            result,
        });
    }
    engine.close().map_err(|e| fail(&e))?;
    let report = VerifyReport {
        ok: vms
            .iter()
            .all(|v| v.result.consistent && v.problems.is_empty()),
        workspace: a.workspace.display().to_string(),
        repaired,
        vms,
    };
    if a.json {
        emit_json(out, &report)?;
    } else {
        if a.repair {
            if report.repaired.is_empty() {
                emit(out, "repaired: nothing needed repair")?;
            }
            for r in &report.repaired {
                emit(out, &format!("repaired: {r}"))?;
            }
        }
        for v in &report.vms {
            let r = &v.result;
            let verdict = if r.consistent {
                "consistent"
            } else {
                "INCONSISTENT"
            };
            emit(
                out,
                &format!(
                    "{:12} {:14} {verdict}: {} of {} blocks written, {} torn, {} mismatched{}",
                    v.vm,
                    v.datastore,
                    r.written_blocks,
                    r.blocks,
                    r.torn_blocks,
                    r.mismatched_blocks,
                    if v.migrating { " (migrating)" } else { "" }
                ),
            )?;
            for p in &v.problems {
                emit(out, &format!("{:12} PROBLEM: {p}", v.vm))?;
            }
        }
    }
    Ok(if report.ok { 0 } else { 1 })
}

fn run_scenario(a: &RunArgs, out: &mut dyn Write) -> Result<u8, CliError> {
    let report =
        scenario::run_file(&a.scenario, &a.workspace).map_err(|e| CliError(e.to_string()))?;
    if a.json {
        emit_json(out, &report)?;
    } else {
        emit(out, &format!("{} (seed {})", report.scenario, report.seed))?;
        for s in &report.steps {
            emit(
                out,
                &format!(
                    "  [{:>7.2} min] {:?}: {} - {}",
                    s.at, s.outcome, s.action, s.detail
                ),
            )?;
        }
        emit(out, if report.passed { "passed" } else { "FAILED" })?;
    }
    Ok(if report.passed { 0 } else { 1 })
}

/// A dry run writes nothing (no lock file, no temp file, no roll-forward): it reads the
/// workspace and elects over the replicas as the next open would leave them, a publish
/// committed but cut short by a crash read through without being applied.
fn recover(a: &RecoverArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let ws = crate::workspace::Workspace::open_read_only(&a.workspace)
        .map_err(|e| CliError(e.to_string()))?;
    let pending = crate::engine::pending_publishes(&ws).map_err(|e| CliError(e.to_string()))?;
    let elections = crate::recovery::scan_and_elect_through(&ws, &pending)
        .map_err(|e| CliError(e.to_string()))?;
    if a.json {
        return emit_json(out, &elections);
    }
    for e in &elections {
        let who = e.vm.as_deref().unwrap_or("(not in the topology)");
        let what = match (&e.recover_from, e.error) {
            (Some(p), _) => format!("recover from {p}"),
            (None, Some(err)) => format!("error {}", err.as_str()),
            (None, None) => "error".to_string(),
        };
        let delete = if e.delete.is_empty() {
            String::new()
        } else {
            format!("; would delete {}", e.delete.join(", "))
        };
        emit(out, &format!("{} {who}: {what}{delete}", e.uuid))?;
    }
    Ok(())
}

fn report(a: &ReportArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let r = crate::report::from_workspace(&a.workspace).map_err(|e| CliError(e.to_string()))?;
    if let Some(file) = &a.html {
        crate::report::write_html(&r, file).map_err(|e| CliError(e.to_string()))?;
    }
    if a.json {
        return emit_json(out, &r);
    }
    match &a.html {
        // The page holds the report; the terminal gets where it went.
        Some(file) => emit(
            out,
            &format!(
                "Report of {} written to {} ({} event(s), {} replication group(s))",
                a.workspace.display(),
                file.display(),
                r.events.len(),
                r.groups.len()
            ),
        ),
        None => out
            .write_all(r.to_text().as_bytes())
            .map_err(|e| CliError(format!("cannot write output: {e}"))),
    }
}

fn generate(a: &GenerateArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let t = crate::generate::generate(crate::generate::GenerateOptions {
        vms: a.vms,
        datastores: a.datastores,
        seed: a.seed,
    })
    .map_err(|e| CliError(e.to_string()))?;
    out.write_all(t.to_ron_string().as_bytes())
        .map_err(|e| CliError(format!("cannot write output: {e}")))
}
