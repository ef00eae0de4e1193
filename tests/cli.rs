//! Runs the built binary on good and bad files and checks exit codes, stdout and stderr.

mod testkit;

#[path = "cli/crash.rs"]
mod crash;
#[path = "cli/crash_replication.rs"]
mod crash_replication;
#[path = "cli/place.rs"]
mod place;
#[path = "cli/recover.rs"]
mod recover;
#[path = "cli/report.rs"]
mod report;
#[path = "cli/scenario.rs"]
mod scenario;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use testkit::process::{bin, drconsole};

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_topologies")
}

fn sample(name: &str) -> String {
    samples().join(name).display().to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// Asserts exit code 2 with a one-line message on stderr containing every `part`.
fn fails_with(o: &Output, parts: &[&str]) {
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout: {} stderr: {}",
        stdout(o),
        stderr(o)
    );
    let err = stderr(o);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for p in parts {
        assert!(err.contains(p), "{p:?} not in {err:?}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(o.stdout.is_empty(), "nothing on stdout: {}", stdout(o));
}

#[test]
fn every_sample_passes_check() {
    for name in ["two_site_demo.ron", "patent_hazard.ron", "impact_tour.ron"] {
        let o = drconsole(&["check", &sample(name)]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        assert!(stdout(&o).contains(": OK:"), "{}", stdout(&o));
    }
}

#[test]
fn check_json_summarizes_the_demo() {
    let v = json(&drconsole(&[
        "check",
        &sample("two_site_demo.ron"),
        "--json",
    ]));
    assert_eq!(v["name"], "Two-site demo");
    assert_eq!(v["sites"], 2);
    assert!(v["hosts"].as_u64().unwrap() >= 4);
    assert_eq!(v["arrays"], 2);
    assert!(v["vms"].as_u64().unwrap() >= 8);
    assert_eq!(v["protection_groups"], 2);
    assert_eq!(v["consistency_groups"], 3);
}

#[test]
fn the_demo_has_what_the_issue_asks_for() {
    let tags = json(&drconsole(&[
        "tags",
        &sample("two_site_demo.ron"),
        "--json",
    ]));
    let tags = tags.as_array().unwrap();
    let protected: Vec<&Value> = tags
        .iter()
        .filter(|t| !t["datastore"].as_str().unwrap().ends_with("-r"))
        .collect();
    assert!(protected.len() >= 5);
    assert!(
        protected.iter().any(|t| t["replicated"] == false),
        "a non-replicated datastore"
    );
    assert!(
        protected
            .iter()
            .any(|t| t["replicated"] == true && t["protection_group"].is_null()),
        "a replicated datastore in no PG"
    );
    let cgs_in = |pg: &str| {
        let mut cgs: Vec<&str> = protected
            .iter()
            .filter(|t| t["protection_group"] == pg)
            .filter_map(|t| t["consistency_group"].as_str())
            .collect();
        cgs.sort();
        cgs.dedup();
        cgs.len()
    };
    assert_eq!(cgs_in("pg-tier1"), 2, "two CGs in one PG");
    assert_eq!(cgs_in("pg-tier2"), 1, "a CG in a second PG");
}

#[test]
fn tags_json_has_the_contract_shape() {
    let v = json(&drconsole(&[
        "tags",
        &sample("patent_hazard.ron"),
        "--json",
    ]));
    let first = &v[0];
    let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "consistency_group",
            "datastore",
            "protection_group",
            "replicated",
            "tags"
        ]
    );
    assert_eq!(first["datastore"], "ds-1");
    assert_eq!(first["replicated"], true);
    assert_eq!(first["consistency_group"], "cg-1");
    assert_eq!(first["protection_group"], "pg-a");
    assert_eq!(
        first["tags"],
        serde_json::json!([
            "replication:status=replicated",
            "replication:cg=cg-1",
            "replication:pg=pg-a"
        ])
    );
    let replica = v
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["datastore"] == "ds-1-r")
        .unwrap();
    assert!(replica["consistency_group"].is_null() && replica["protection_group"].is_null());
    assert_eq!(
        replica["tags"],
        serde_json::json!(["replication:status=not-replicated"])
    );
}

#[test]
fn impact_by_datastores_and_by_vm() {
    let hazard = sample("patent_hazard.ron");
    let v = json(&drconsole(&[
        "impact", &hazard, "--from", "ds-1", "--to", "ds-2", "--json",
    ]));
    assert_eq!(v["from"], "ds-1");
    assert_eq!(v["to"], "ds-2");
    assert_eq!(v["allowed"], false);
    assert_eq!(v["rating"], "heightened-mild");
    assert_eq!(v["fault"], "replication-within-group");
    assert!(v["explanation"].as_str().unwrap().contains("20 minutes"));
    let by_vm = json(&drconsole(&[
        "impact", &hazard, "--vm", "vm1", "--to", "ds-2", "--json",
    ]));
    assert_eq!(by_vm, v);

    let tour = sample("impact_tour.ron");
    let ok = json(&drconsole(&[
        "impact",
        &tour,
        "--vm",
        "vm-gold",
        "--to",
        "ds-pg1-a2",
        "--json",
    ]));
    assert_eq!(ok["allowed"], true);
    assert_eq!(ok["rating"], "none");
    assert!(ok["fault"].is_null());
    let sev = json(&drconsole(&[
        "impact", &tour, "--vm", "vm-gold", "--to", "ds-rep", "--json",
    ]));
    assert_eq!(sev["rating"], "heightened-severe");
    assert_eq!(sev["fault"], "replication-loss-of-protection");
}

#[test]
fn impact_text_output() {
    let o = drconsole(&[
        "impact",
        &sample("impact_tour.ron"),
        "--vm",
        "vm-gold",
        "--to",
        "ds-plain",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(
        out.starts_with(
            "ds-pg1-a -> ds-plain: needs an override: rating severe, fault loss-of-protection"
        ),
        "{out}"
    );
}

#[test]
fn bad_destinations_exit_2() {
    let tour = sample("impact_tour.ron");
    fails_with(
        &drconsole(&[
            "impact",
            &tour,
            "--from",
            "ds-pg1-a",
            "--to",
            "ds-pg1-a-r",
            "--json",
        ]),
        &["impact_tour.ron", "ds-pg1-a-r", "replica datastore"],
    );
    fails_with(
        &drconsole(&["impact", &tour, "--from", "ds-plain", "--to", "ds-plain"]),
        &["same datastore", "ds-plain"],
    );
    fails_with(
        &drconsole(&["impact", &tour, "--from", "ds-nope", "--to", "ds-plain"]),
        &["datastore \"ds-nope\" does not exist"],
    );
    fails_with(
        &drconsole(&["impact", &tour, "--vm", "ghost", "--to", "ds-plain"]),
        &["VM \"ghost\" does not exist"],
    );
}

#[test]
fn broken_files_exit_2_naming_the_problem() {
    let dir = crate::testkit::scratch();
    let syntax = dir.path().join("syntax.ron");
    std::fs::write(
        &syntax,
        "Topology(\n  name: \"x\",\n  sites: [ Site(id: \"a\" name: \"A\", role: Protected) ],\n)",
    )
    .unwrap();
    let s = syntax.display().to_string();
    fails_with(&drconsole(&["check", &s]), &[&format!("{s}:3:")]);
    fails_with(&drconsole(&["tags", &s, "--json"]), &["syntax error"]);

    let semantic = dir.path().join("semantic.ron");
    let text = std::fs::read_to_string(samples().join("patent_hazard.ron"))
        .unwrap()
        .replace("priority: 1,", "priority: 7,");
    std::fs::write(&semantic, text).unwrap();
    let s = semantic.display().to_string();
    fails_with(
        &drconsole(&["check", &s]),
        &[&s, "VM \"vm1\"", "priority must be 1..=5, not 7"],
    );
    fails_with(
        &drconsole(&["impact", &s, "--vm", "vm1", "--to", "ds-2"]),
        &["priority must be 1..=5"],
    );

    fails_with(
        &drconsole(&["check", "/no/such/file.ron"]),
        &["/no/such/file.ron", "cannot read"],
    );

    let binary = dir.path().join("binary.ron");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let o = drconsole(&["check", &binary.display().to_string()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn usage_errors_exit_2() {
    let o = drconsole(&["impact", &sample("impact_tour.ron"), "--to", "ds-plain"]);
    assert_eq!(o.status.code(), Some(2), "neither --from nor --vm");
    let o = drconsole(&[
        "impact",
        &sample("impact_tour.ron"),
        "--from",
        "ds-plain",
        "--vm",
        "vm-rep",
        "--to",
        "ds-rep",
    ]);
    assert_eq!(o.status.code(), Some(2), "both --from and --vm");
    let o = drconsole(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn bench_copy_reports_against_cp() {
    let dir = crate::testkit::scratch();
    for mode in ["mirror", "redirect", "split"] {
        let v = json(&drconsole(&[
            "bench",
            "copy",
            "--size-mib",
            "4",
            "--mode",
            mode,
            "--write-iops",
            "500",
            "--rounds",
            "3",
            "--dir",
            &dir.path().display().to_string(),
            "--json",
        ]));
        for key in [
            "mib_per_s",
            "guest_write_p50_us",
            "guest_write_p99_us",
            "cp_mib_per_s",
        ] {
            assert!(
                v[key].as_f64().is_some_and(|x| x >= 0.0),
                "{mode}: {key} in {v}"
            );
        }
        assert!(v["mib_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(v["consistent"], true);
        // Three interleaved rounds: the figures are the medians of the rounds' figures, the
        // ratio the median of the rounds' ratios, with their ranges.
        assert_eq!(v["rounds"], 3, "{v}");
        let rounds = v["per_round"].as_array().expect("per_round");
        assert_eq!(rounds.len(), 3, "{v}");
        for (key, figure) in [
            ("mib_per_s", "mib_per_s"),
            ("cp_mib_per_s", "cp_mib_per_s"),
            ("ratio", "ratio"),
        ] {
            let mut f: Vec<f64> = rounds.iter().map(|r| r[figure].as_f64().unwrap()).collect();
            f.sort_by(f64::total_cmp);
            assert_eq!(v[key].as_f64(), Some(f[1]), "{key} in {v}");
            assert_eq!(v[format!("{key}_min")].as_f64(), Some(f[0]), "{key} in {v}");
            assert_eq!(v[format!("{key}_max")].as_f64(), Some(f[2]), "{key} in {v}");
        }
    }
    let o = drconsole(&["bench", "copy", "--size-mib", "4", "--mode", "sideways"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a copy mode"), "{}", stderr(&o));
    let o = drconsole(&["bench", "copy", "--size-mib", "4", "--rounds", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--rounds"), "{}", stderr(&o));
}

/// `bench replicate` on a machine without rsync: the comparison is skipped with a note (its
/// figures null), the replication cycle is still timed and checked. Both ways rsync can be
/// missing: not on PATH (PATH is an empty directory), or DRCONSOLE_RSYNC names no program.
#[test]
fn bench_replicate_without_rsync_skips_the_comparison() {
    let dir = crate::testkit::scratch();
    let empty = crate::testkit::scratch();
    let d = dir.path().display().to_string();
    let args = [
        "bench",
        "replicate",
        "--size-mib",
        "2",
        "--changed-pct",
        "5",
        "--dir",
        &d,
    ];
    let run = |json: bool, env: (&str, &std::ffi::OsStr)| {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env_remove("DRCONSOLE_RSYNC")
            .env(env.0, env.1);
        if json {
            cmd.arg("--json");
        }
        cmd.output().expect("the binary runs")
    };
    for (env, named) in [
        (("PATH", empty.path().as_os_str()), "not found on PATH"),
        (
            (
                "DRCONSOLE_RSYNC",
                std::ffi::OsStr::new("/nonexistent/rsync"),
            ),
            "DRCONSOLE_RSYNC=/nonexistent/rsync is not an executable file",
        ),
    ] {
        let v = json(&run(true, env));
        assert_eq!(v["rsync_seconds"], Value::Null, "{v}");
        assert_eq!(v["speedup"], Value::Null, "{v}");
        let note = v["rsync_note"].as_str().unwrap_or_default();
        assert!(
            note.contains(named) && note.contains("the rsync comparison was skipped"),
            "{v}"
        );
        // 5 % of 512 blocks, shipped as one delta and applied: the replica matches.
        assert_eq!(v["changed_blocks"], 26, "{v}");
        assert_eq!(v["identical"], true, "{v}");
        assert!(v["seconds"].as_f64().is_some_and(|s| s > 0.0), "{v}");
        assert!(
            v["bytes_shipped"].as_u64() > v["changed_bytes"].as_u64(),
            "{v}"
        );
        let o = run(false, env);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stdout(&o).contains(named), "{}", stdout(&o));
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn generate_prints_a_topology_that_passes_check() {
    let dir = crate::testkit::scratch();
    let args = [
        "generate",
        "--vms",
        "500",
        "--datastores",
        "24",
        "--seed",
        "3",
    ];
    let o = drconsole(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        o.stdout,
        drconsole(&args).stdout,
        "the same seed, the same file"
    );
    let path = dir.path().join("generated.ron");
    std::fs::write(&path, &o.stdout).unwrap();
    let v = json(&drconsole(&[
        "check",
        &path.display().to_string(),
        "--json",
    ]));
    assert_eq!(v["sites"], 2);
    assert_eq!(v["vms"], 500);
    assert!(v["replicated_datastores"].as_u64().unwrap() > 0, "{v}");
    assert!(v["consistency_groups"].as_u64().unwrap() > 1, "{v}");
    assert!(v["protection_groups"].as_u64().unwrap() > 1, "{v}");
    fails_with(
        &drconsole(&["generate", "--vms", "10", "--datastores", "0"]),
        &["--datastores 0", "at least 1 datastore"],
    );
    fails_with(
        &drconsole(&["generate", "--vms", "100000000", "--datastores", "5"]),
        &["--vms 100000000", "at most 100000 VMs"],
    );
}

/// Two VMs with busy guests on one non-replicated datastore; a few simulated seconds of
/// writes, then a clean close (or, with `crash_mid_migration`, vm-a starts moving to the
/// slow ds-2 and the engine is dropped unclosed mid-copy, as a crash leaves it). Returns
/// the workspace path.
fn busy_workspace_with(dir: &Path, crash_mid_migration: bool) -> PathBuf {
    use drconsole::engine::{Command as EngineCommand, from_minutes};
    let topo = testkit::workspace::two_busy_vms("verify", "verify.ron", ", throughput_mib_s: 0.25");
    let (mut e, ws) = testkit::workspace::busy_engine(dir, &topo);
    if crash_mid_migration {
        e.apply(EngineCommand::Migrate {
            vm: "vm-a".into(),
            to: "ds-2".into(),
            mode: drconsole::engine::copy::CopyMode::Mirror,
            confirm: true,
        })
        .unwrap();
        e.advance(from_minutes(0.07)).unwrap();
        assert!(e.is_migrating("vm-a"), "still copying at the crash");
        drop(e);
    } else {
        e.close().unwrap();
    }
    ws
}

fn busy_workspace(dir: &Path) -> PathBuf {
    busy_workspace_with(dir, false)
}

/// The first block of `image` that holds a valid stamp, and its bytes.
fn first_stamped_block(image: &Path) -> (u64, Vec<u8>) {
    let bytes = std::fs::read(image).unwrap();
    for (i, chunk) in bytes.chunks_exact(drconsole::disk::BLOCK_SIZE).enumerate() {
        let block: &drconsole::disk::Block = chunk.try_into().unwrap();
        if matches!(
            drconsole::disk::inspect(block),
            drconsole::disk::BlockContent::Stamped(_)
        ) {
            return (i as u64, chunk.to_vec());
        }
    }
    panic!("{} holds no written block", image.display());
}

#[test]
fn verify_repair_json_on_a_clean_workspace_is_ok() {
    let dir = crate::testkit::scratch();
    let ws = busy_workspace(dir.path());
    let o = drconsole(&["verify", &ws.display().to_string(), "--repair", "--json"]);
    let v = json(&o);
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["workspace"], ws.display().to_string());
    assert_eq!(
        v["repaired"].as_array().unwrap().len(),
        0,
        "a clean shutdown needs no repair: {v:#}"
    );
    let vms = v["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 2);
    for (entry, name) in vms.iter().zip(["vm-a", "vm-b"]) {
        assert_eq!(entry["vm"], name);
        assert_eq!(entry["datastore"], "ds-1");
        assert_eq!(entry["consistent"], true);
        assert!(entry["written_blocks"].as_u64().unwrap() > 0, "{entry:#}");
    }
    // The text output still has one line per VM, and --repair says what it did.
    let o = drconsole(&["verify", &ws.display().to_string(), "--repair"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("repaired: nothing needed repair"), "{text}");
    assert_eq!(text.matches(" consistent: ").count(), 2, "{text}");
}

#[test]
fn verify_repair_json_names_the_vm_with_a_foreign_block() {
    let dir = crate::testkit::scratch();
    let ws = busy_workspace(dir.path());
    let ds = ws.join("sites/pa/datastores/ds-1");
    let (_, foreign) = first_stamped_block(&ds.join("vm-a/disk0.img"));
    let victim = ds.join("vm-b/disk0.img");
    let (block, _) = first_stamped_block(&victim);
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&victim)
            .unwrap();
        f.seek(SeekFrom::Start(block * drconsole::disk::BLOCK_SIZE as u64))
            .unwrap();
        f.write_all(&foreign).unwrap();
        f.sync_all().unwrap();
    }
    let o = drconsole(&["verify", &ws.display().to_string(), "--repair", "--json"]);
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let vms = v["vms"].as_array().unwrap();
    let bad: Vec<&str> = vms
        .iter()
        .filter(|e| e["consistent"] == false)
        .map(|e| e["vm"].as_str().unwrap())
        .collect();
    assert_eq!(bad, ["vm-b"], "{v:#}");
    let entry = vms.iter().find(|e| e["vm"] == "vm-b").unwrap();
    assert!(
        entry["mismatched_blocks"].as_u64().unwrap() >= 1,
        "{entry:#}"
    );
    // The text output names it too.
    let o = drconsole(&["verify", &ws.display().to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.starts_with("vm-b") && l.contains("INCONSISTENT")),
        "{}",
        stdout(&o)
    );
}

#[test]
fn verify_repair_reports_the_recovery_of_a_crashed_migration() {
    let dir = crate::testkit::scratch();
    let ws = busy_workspace_with(dir.path(), true);
    let o = drconsole(&["verify", &ws.display().to_string(), "--repair", "--json"]);
    let v = json(&o);
    assert_eq!(v["ok"], true, "{v:#}");
    let repaired: Vec<&str> = v["repaired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        repaired
            .iter()
            .any(|r| r.contains("vm-a") && r.contains("resumes copying")),
        "{repaired:?}"
    );
    let a = v["vms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["vm"] == "vm-a")
        .unwrap();
    assert_eq!(a["migrating"], true);
    assert_eq!(a["consistent"], true);
    // Closed cleanly by the repair: a second run has nothing left to repair.
    let v = json(&drconsole(&[
        "verify",
        &ws.display().to_string(),
        "--repair",
        "--json",
    ]));
    assert_eq!(v["ok"], true);
    let again = v["repaired"].as_array().unwrap();
    assert!(
        again
            .iter()
            .all(|r| !r.as_str().unwrap().contains("journaled")),
        "{again:?}"
    );
}
