//! SIGKILL a running `drconsole run` at named points of a long, busy migration (mid-copy and
//! at every step of its completion); after each kill, `verify --repair` (which opens the
//! workspace and recovers) must be clean and the VM must have exactly one complete instance.

use std::path::{Path, PathBuf};

use crate::testkit::process::{drconsole, run_killed_at};
use drconsole::workspace::Workspace;

/// A 32 MiB VM copied at 2 MiB/s (16 simulated seconds) while its guest writes 2000 IOPS.
fn write_scenario(dir: &Path, mode: &str) -> PathBuf {
    let topo = dir.join("t.ron");
    std::fs::write(
        &topo,
        r#"Topology(name: "crash", sites: [Site(id: "pa", name: "P", role: Protected)],
    hosts: [Host(id: "h", site: "pa", cpus: 4, memory_gib: 8)],
    arrays: [Array(id: "a", site: "pa", luns: [Lun(id: "l1", capacity_gib: 4), Lun(id: "l2", capacity_gib: 4)])],
    datastores: [Datastore(id: "ds-1", site: "pa", luns: ["l1"], throughput_mib_s: 2),
                 Datastore(id: "ds-2", site: "pa", luns: ["l2"], throughput_mib_s: 2)],
    vms: [Vm(id: "vm", uuid: "0f0e0d0c-0b0a-4908-8706-050403020100", host: "h", datastore: "ds-1",
             disk_mib: 32, vcpus: 1, memory_gib: 1, priority: 1,
             workload: Some(Workload(write_iops: 2000, read_iops: 500)))])"#,
    )
    .unwrap();
    let s = dir.join(format!("s-{mode}.ron"));
    std::fs::write(
        &s,
        format!(
            r#"Scenario(name: "crash {mode}", topology: "t.ron", seed: 3, steps: [
    Step(at: 0.0, action: StartWorkloads),
    Step(at: 0.05, action: Migrate(vm: "vm", to: "ds-2", mode: {mode}, confirm: true)),
    Step(at: 0.6, action: Expect(MigrationDone(vm: "vm"))),
])"#
        ),
    )
    .unwrap();
    s
}

/// The fault points the scenario passes and how often, from the same run in this process
/// (a scenario is deterministic for its seed, so the child passes the same ones).
fn points_passed(s: &Path, ws: &Path) -> Vec<(&'static str, u64)> {
    drconsole::fault::record();
    let report = drconsole::scenario::run_file(s, ws).unwrap();
    let hits = drconsole::fault::hits();
    drconsole::fault::disarm();
    assert!(report.passed, "the uninterrupted run passes");
    hits
}

/// Where to kill a run: a third and two thirds through the copy, and at the steps of the
/// migration's start and completion (the last pass of each, so the one of this migration).
fn kill_points(hits: &[(&'static str, u64)]) -> Vec<(&'static str, u64)> {
    const STEPS: [&str; 7] = [
        "migrate.source-marked",
        "copy.bit-written",
        "complete.record-completing",
        "complete.locations-written",
        "complete.topology-saved",
        "instance.removed",
        "migration.record-removed",
    ];
    let mut at = Vec::new();
    for &(name, n) in hits {
        if name == "copy.run-landed" {
            at.extend((1..=2).map(|k| (name, (n * k / 3).max(1))));
        } else if name == "copy.bit-written" {
            at.push((name, (n / 2).max(1)));
        } else if STEPS.contains(&name) {
            at.push((name, n));
        }
    }
    at
}

/// Instances of the VM that are not an in-progress migration target.
fn complete_instances(ws: &Path) -> usize {
    let w = Workspace::open(ws).unwrap();
    let mut n = 0;
    for ds in ["ds-1", "ds-2"] {
        for i in w.list_instances(ds).unwrap() {
            if !i
                .config
                .migration
                .as_ref()
                .is_some_and(|m| m.target && !m.completed)
            {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn sigkill_anywhere_then_verify_is_clean() {
    let dir = crate::testkit::scratch();
    for mode in ["Mirror", "Redirect", "Split"] {
        let s = write_scenario(dir.path(), mode);
        let hits = points_passed(&s, &dir.path().join(format!("full-{mode}")));
        let kills = kill_points(&hits);
        assert!(
            kills
                .iter()
                .filter(|(n, _)| *n == "copy.run-landed")
                .count()
                == 2
                && kills.iter().any(|(n, _)| *n == "complete.topology-saved"),
            "{mode}: the copy runs and completes: {hits:?}"
        );
        for (k, &(point, nth)) in kills.iter().enumerate() {
            let ws = dir.path().join(format!("{mode}-{k}"));
            assert!(
                run_killed_at(&s, &ws, point, nth),
                "{mode}: the child reached {point}#{nth} and was killed there"
            );
            let records = std::fs::read_dir(ws.join("state/migrations"))
                .map(|d| {
                    d.filter(|e| {
                        e.as_ref()
                            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "ron"))
                    })
                    .count()
                })
                .unwrap_or(0);
            if point == "copy.run-landed" {
                assert_eq!(records, 1, "{mode} killed at {point}#{nth}: mid-copy");
            }
            let o = drconsole(&["verify", &ws.display().to_string(), "--repair", "--json"]);
            let out = String::from_utf8_lossy(&o.stdout);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{mode} killed at {point}#{nth}: {out} {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["ok"], true);
            assert_eq!(complete_instances(&ws), 1, "{mode} killed at {point}#{nth}");
        }
    }
}

/// SIGKILL `drconsole run` at every step of a workspace's creation (before its marker is
/// written through after topology.ron), then open it as the console does: a workspace
/// killed before topology.ron opens as "never created" and is rebuilt from its marker, one
/// killed after opens; either way `verify` is clean and every VM has exactly one instance,
/// on its datastore, and nothing else is there.
#[test]
fn sigkill_during_creation_then_the_open_rebuilds_or_finishes_it() {
    use drconsole::engine::{Engine, EngineOptions};
    let dir = crate::testkit::scratch();
    let topology = drconsole::generate::generate(drconsole::generate::GenerateOptions {
        vms: 150,
        datastores: 6,
        seed: 11,
    })
    .unwrap();
    std::fs::write(dir.path().join("big.ron"), topology.to_ron_string()).unwrap();
    let s = dir.path().join("s.ron");
    std::fs::write(
        &s,
        r#"Scenario(name: "create", topology: "big.ron", seed: 1, steps: [
    Step(at: 0.0, action: StartWorkloads),
])"#,
    )
    .unwrap();
    let hits = points_passed(&s, &dir.path().join("full"));
    let passes = |name: &str| hits.iter().find(|(n, _)| *n == name).map_or(0, |(_, c)| *c);
    assert_eq!(passes("create.instance-made"), 150, "{hits:?}");
    let kills = [
        ("create.marker-written", 1),
        ("create.instance-made", 1),
        ("create.instance-made", 75),
        ("create.instance-made", 150),
        ("create.synced", 1),
        // topology.ron is the first file replaced atomically: its temp file, then in place.
        ("atomic.temp-written", 1),
        ("atomic.renamed", 1),
        ("create.workspace-made", 1),
        ("create.state-written", 1),
    ];
    for (k, &(point, nth)) in kills.iter().enumerate() {
        assert!(
            passes(point) >= nth,
            "the run passes {point}#{nth}: {hits:?}"
        );
        let ws = dir.path().join(format!("ws-{k}"));
        assert!(
            run_killed_at(&s, &ws, point, nth),
            "the child reached {point}#{nth} and was killed there"
        );
        let valid = ws.join("topology.ron").exists();
        assert_eq!(
            valid,
            !matches!(
                point,
                "create.marker-written"
                    | "create.instance-made"
                    | "create.synced"
                    | "atomic.temp-written"
            ),
            "killed at {point}#{nth}: topology.ron makes the workspace valid, and only it"
        );
        if !valid {
            assert!(
                ws.join(drconsole::workspace::CREATING_FILE).exists(),
                "killed at {point}#{nth}: the marker says a creation was under way"
            );
        }
        Engine::open_or_create(&ws, &topology, EngineOptions::default())
            .unwrap_or_else(|e| panic!("killed at {point}#{nth}: the open fails: {e}"))
            .close()
            .unwrap();
        assert!(
            !ws.join(drconsole::workspace::CREATING_FILE).exists(),
            "killed at {point}#{nth}: the marker is gone once the workspace is valid"
        );
        let o = drconsole(&["verify", &ws.display().to_string(), "--json"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "killed at {point}#{nth}: {out}");
        let w = Workspace::open(&ws).unwrap();
        let mut instances = 0;
        for ds in &topology.datastores {
            instances += w.list_instances(&ds.id).unwrap().len();
        }
        assert_eq!(instances, topology.vms.len(), "killed at {point}#{nth}");
        for vm in &topology.vms {
            let names: Vec<String> = w
                .list_instances(&vm.datastore)
                .unwrap()
                .into_iter()
                .map(|i| i.name)
                .collect();
            assert!(
                names.contains(&vm.id),
                "killed at {point}#{nth}: {} has its instance on {}",
                vm.id,
                vm.datastore
            );
        }
    }
}
