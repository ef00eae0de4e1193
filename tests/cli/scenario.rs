//! The headless scenario runner and `verify`, through the built binary.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::testkit::process::{drconsole, drconsole_ok, repo, sample_run};

fn run_json(scenario: &Path, ws: &Path) -> (Option<i32>, Vec<u8>) {
    let o = drconsole(&[
        "run",
        &scenario.display().to_string(),
        "--workspace",
        &ws.display().to_string(),
        "--json",
    ]);
    assert!(
        o.stderr.is_empty() || o.status.code() == Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code(), o.stdout)
}

/// The live-migration sample: the same seed gives the same report and journal byte for
/// byte, `verify` agrees with the run, a failed expectation exits 1, and another seed drives
/// the guests differently.
#[test]
fn sample_scenario_is_deterministic_and_its_seed_drives_the_guests() {
    let dir = crate::testkit::scratch();
    let scenario = repo("sample_scenarios/live_migration.ron");
    // The first run is the one the recorded-report check looks at too.
    let one = sample_run("live_migration");
    let a = &one.stdout;
    assert_eq!(one.code, Some(0), "{}", String::from_utf8_lossy(a));
    let (code, b) = run_json(&scenario, &dir.path().join("two"));
    assert_eq!(code, Some(0));
    assert_eq!(a, &b, "same scenario and seed, same report byte for byte");
    let j42 = std::fs::read(one.ws.join("journal/pa.log")).unwrap();
    assert_eq!(
        j42,
        std::fs::read(dir.path().join("two/journal/pa.log")).unwrap(),
        "and the same journal"
    );
    let v: Value = serde_json::from_slice(a).unwrap();
    assert_eq!(v["passed"], true);
    let steps = v["steps"].as_array().unwrap();
    let outcome = |i: usize| steps[i]["outcome"].as_str().unwrap().to_string();
    assert_eq!(outcome(4), "refused", "a severe move without confirmation");
    assert!(steps.iter().filter(|s| s["outcome"] == "pass").count() >= 10);
    let log = v["log"].as_array().unwrap();
    assert!(log.iter().any(|l| {
        l["message"]
            .as_str()
            .unwrap()
            .starts_with("Override: build-01")
    }));

    // verify agrees with the run, and the cancelled target is gone.
    let o = drconsole_ok(&["verify", &one.ws.display().to_string(), "--json"]);
    let rep: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["ok"], true);
    assert_eq!(rep["vms"].as_array().unwrap().len(), 10);
    assert!(
        !one.ws
            .join("sites/pa/datastores/ds-bronze-1/erp-db")
            .exists()
    );
    assert!(!one.ws.join("sites/pa/datastores/ds-gold-1/web-01").exists());

    // Seed 7 and an expectation that cannot hold: exit 1, and other guest writes.
    let text = std::fs::read_to_string(&scenario)
        .unwrap()
        .replace(
            "../sample_topologies/",
            &format!("{}/", repo("sample_topologies").display()),
        )
        .replace(
            "Located(vm: \"db-01\", datastore: \"ds-gold-3\")",
            "Located(vm: \"db-01\", datastore: \"ds-local\")",
        )
        .replace("seed: 42", "seed: 7");
    let s = dir.path().join("s.ron");
    std::fs::write(&s, text).unwrap();
    let (code, out) = run_json(&s, &dir.path().join("ws"));
    assert_eq!(code, Some(1));
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["passed"], false);
    assert!(
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["outcome"] == "fail")
    );
    let j7 = std::fs::read(dir.path().join("ws/journal/pa.log")).unwrap();
    assert_ne!(j7, j42, "the seed drives the guests");
}

#[test]
fn bad_scenarios_exit_2() {
    let dir = crate::testkit::scratch();
    let bad = dir.path().join("bad.ron");
    std::fs::write(&bad, "Scenario(name: \"x\", topology: \"t.ron\", seed: 1, steps: [ Step(at: 1.0, action: Fly) ])").unwrap();
    let o = drconsole(&[
        "run",
        &bad.display().to_string(),
        "--workspace",
        &dir.path().join("w").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.ron:1:") && err.contains("Fly"), "{err}");

    let order = dir.path().join("order.ron");
    std::fs::write(
        &order,
        format!(
            "Scenario(name: \"x\", topology: \"{}\", seed: 1, steps: [ Step(at: 2.0, action: StartWorkloads), Step(at: 1.0, action: StopWorkloads) ])",
            repo("sample_topologies/patent_hazard.ron").display()
        ),
    )
    .unwrap();
    let o = drconsole(&[
        "run",
        &order.display().to_string(),
        "--workspace",
        &dir.path().join("w").display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("step 2: steps run in time order"));

    // A directory that already holds something is refused: every run starts alike.
    let used = dir.path().join("used");
    std::fs::create_dir_all(&used).unwrap();
    std::fs::write(used.join("x"), "x").unwrap();
    let o = drconsole(&[
        "run",
        &repo("sample_scenarios/live_migration.ron")
            .display()
            .to_string(),
        "--workspace",
        &used.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("empty or new directory"));

    let o = drconsole(&["verify", &dir.path().join("nothing").display().to_string()]);
    assert_eq!(o.status.code(), Some(2));
}

/// Every shipped scenario (the patent's timelines included) passes headless, and its
/// `run --json` report is the one recorded in `tests/golden/<name>.run.json`, byte for byte:
/// a change of behaviour shows up here, and in the diff of the recorded file. After a change
/// that is meant, `DRCONSOLE_BLESS=1 cargo test --test cli every_sample` records the new
/// reports (review their diff before committing them).
#[test]
fn every_sample_scenario_passes_headless_as_recorded_first_half() {
    passes_headless_as_recorded(|i| i % 2 == 0);
}

/// The other half of the samples (two tests, so that both cores run them).
#[test]
fn every_sample_scenario_passes_headless_as_recorded_second_half() {
    passes_headless_as_recorded(|i| i % 2 == 1);
}

/// Runs the samples whose index (sorted by name) `pick` takes and checks their reports.
fn passes_headless_as_recorded(pick: impl Fn(usize) -> bool) {
    let dir = crate::testkit::scratch();
    let bless = std::env::var_os("DRCONSOLE_BLESS").is_some();
    let mut names: Vec<PathBuf> = std::fs::read_dir(repo("sample_scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ron"))
        .collect();
    names.sort();
    assert!(names.len() >= 6, "{names:?}");
    let mut changed = Vec::new();
    for scenario in names
        .iter()
        .enumerate()
        .filter(|(i, _)| pick(*i))
        .map(|(_, s)| s)
    {
        let run = sample_run(&scenario.file_stem().unwrap().to_string_lossy());
        assert!(
            run.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let (code, out) = (run.code, &run.stdout);
        let v: Value = serde_json::from_slice(out).unwrap();
        let failed: Vec<&Value> = v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["outcome"] == "fail" || s["outcome"] == "error")
            .collect();
        assert_eq!(code, Some(0), "{}: {failed:#?}", scenario.display());
        assert!(failed.is_empty());
        let expects = v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["outcome"] == "pass")
            .count();
        assert!(
            expects >= 3,
            "{}: only {expects} expectations",
            scenario.display()
        );
        let golden = crate::testkit::golden_report_path(scenario);
        if bless {
            std::fs::write(&golden, out).unwrap();
        } else if std::fs::read(&golden).ok().as_deref() != Some(&out[..]) {
            let got = dir.path().join(golden.file_name().unwrap());
            std::fs::write(&got, out).unwrap();
            changed.push(format!(
                "{} differs from {} (diff it against {})",
                scenario.display(),
                golden.display(),
                got.display()
            ));
        }
    }
    if !changed.is_empty() {
        // Keep the reports for the diff: the scratch directory would go with `dir`.
        let _ = dir.keep();
        panic!("{}", changed.join("\n"));
    }
}

/// With room for only two open image descriptors (`DRCONSOLE_OPEN_IMAGES=2`), the engine
/// opens images again at nearly every read and write, and nothing it reports changes: the
/// samples that migrate, replicate, fail over, stretch and swap arrays give their recorded
/// reports byte for byte. This is how 50,000 VMs run under a descriptor limit of 20,000.
#[test]
fn a_two_descriptor_image_cache_changes_no_report() {
    let dir = crate::testkit::scratch();
    for name in [
        "disaster_mid_copy",
        "group_migration",
        "partition_create_and_heal",
        "array_health_swap",
    ] {
        let scenario = repo(&format!("sample_scenarios/{name}.ron"));
        let o = std::process::Command::new(crate::testkit::process::bin())
            .env(drconsole::disk::OPEN_IMAGES_VAR, "2")
            .args([
                "run",
                &scenario.display().to_string(),
                "--workspace",
                &dir.path().join(name).display().to_string(),
                "--json",
            ])
            .output()
            .expect("the binary runs");
        assert_eq!(
            o.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let golden = crate::testkit::golden_report_path(&scenario);
        assert!(
            std::fs::read(&golden).expect("golden") == o.stdout,
            "{name}: the report differs from {} with two open images",
            golden.display()
        );
    }
}

#[test]
fn the_cross_cg_hazard_loses_the_vm_and_says_why() {
    let dir = crate::testkit::scratch();
    let (code, out) = run_json(
        &repo("sample_scenarios/cross_cg_hazard.ron"),
        &dir.path().join("ws"),
    );
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_slice(&out).unwrap();
    let lost = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["action"].as_str().unwrap().starts_with("Expect(Lost"))
        .unwrap();
    assert!(
        lost["detail"].as_str().unwrap().contains("no-instance"),
        "{lost}"
    );
    // The replicas really hold no vm1, and the workspace says where the others came back.
    let ws = dir.path().join("ws/sites/ny/datastores");
    assert!(!ws.join("ds-1-r/vm1").exists() && !ws.join("ds-2-r/vm1").exists());
    assert!(ws.join("ds-2-r/vm2/disk0.img").exists());
}

/// The cross-site sample (SPEC §12): cg-gold-a's four VMs end in New York, and once the
/// guests stopped and the reversed group published, each Palo Alto instance (the replica
/// now) holds its running copy's bytes; `verify` agrees that nothing was lost.
#[test]
fn a_cg_moved_across_sites_leaves_its_sources_byte_identical() {
    let run = sample_run("cg_across_sites");
    assert_eq!(
        run.code,
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let ws = &run.ws;
    for (vm, ds) in [
        ("web-01", "ds-gold-1"),
        ("web-02", "ds-gold-1"),
        ("app-01", "ds-gold-2"),
        ("mail-01", "ds-gold-2"),
    ] {
        let read = |site: &str, ds: &str| {
            let p = ws.join(format!("sites/{site}/datastores/{ds}/{vm}/disk0.img"));
            std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        let running = read("ny", &format!("{ds}-r"));
        assert!(
            read("pa", ds) == running,
            "{vm}: the Palo Alto instance differs from the one running in New York"
        );
    }
    let o = drconsole_ok(&["verify", &ws.display().to_string(), "--json"]);
    let rep: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["ok"], true, "{rep:#}");
}
