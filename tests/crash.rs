//! SIGKILL a running `drconsole run` at many points of a long, busy migration; after each
//! kill, `verify --repair` (which opens the workspace and recovers) must be clean and the VM must
//! have exactly one complete instance.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drconsole::workspace::Workspace;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_drconsole")
}

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

fn run(s: &Path, ws: &Path) -> std::process::Child {
    Command::new(bin())
        .args([
            "run",
            &s.display().to_string(),
            "--workspace",
            &ws.display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
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
    let dir = tempfile::tempdir().unwrap();
    for mode in ["Mirror", "Redirect", "Split"] {
        let s = write_scenario(dir.path(), mode);
        // How long a whole run takes here, to spread the kills over it.
        let full = dir.path().join(format!("full-{mode}"));
        let start = Instant::now();
        let status = run(&s, &full).wait().unwrap();
        assert!(status.success(), "{mode}: the uninterrupted run passes");
        let span = start.elapsed();
        let mut mid_copy = 0;
        for k in 1..=6u32 {
            let ws = dir.path().join(format!("{mode}-{k}"));
            let mut child = run(&s, &ws);
            std::thread::sleep(span * k / 7);
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            if !ws.join("topology.ron").exists() {
                continue; // killed before the workspace existed
            }
            let records = std::fs::read_dir(ws.join("state/migrations"))
                .map(|d| {
                    d.filter(|e| {
                        e.as_ref()
                            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "ron"))
                    })
                    .count()
                })
                .unwrap_or(0);
            mid_copy += usize::from(records > 0);
            let o = Command::new(bin())
                .args(["verify", &ws.display().to_string(), "--repair", "--json"])
                .output()
                .unwrap();
            let out = String::from_utf8_lossy(&o.stdout);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{mode} killed at {}/7: {out} {}",
                k,
                String::from_utf8_lossy(&o.stderr)
            );
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["ok"], true);
            assert_eq!(complete_instances(&ws), 1, "{mode} killed at {k}/7");
        }
        assert!(mid_copy >= 1, "{mode}: at least one kill landed mid-copy");
        assert!(start.elapsed() < Duration::from_secs(600));
    }
}
