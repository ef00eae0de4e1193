//! `drconsole recover --dry-run --json` on what a disaster leaves: topology.ron and the
//! recovery-site datastore directories, nothing else.

use std::path::Path;

use serde_json::Value;

use crate::testkit::process::{drconsole, drconsole_ok};

fn vm_ron(dir: &Path, uuid: &str, name: &str, marks: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("vm.ron"),
        format!(
            "VmConfig(uuid: \"{uuid}\", name: \"{name}\", vcpus: 2, memory_gib: 8, disks: [\"disk0.img\"], migration: {marks})"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("disk0.img"), b"").unwrap();
}

fn marks(source: bool, target: bool, completed: bool) -> String {
    format!(
        "Some(MigrationMarks(id: \"m-0001\", source: {source}, target: {target}, completed: {completed}))"
    )
}

fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out.retain(|p| p != "workspace.lock");
    out.sort();
    out
}

#[test]
fn dry_run_elects_from_replica_datastores_only() {
    let dir = crate::testkit::scratch();
    let ws = dir.path();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_topologies/patent_hazard.ron"),
        ws.join("topology.ron"),
    )
    .unwrap();
    let vm1 = "0b6e2c1a-7d3f-4a58-9c21-5e8f0a1b2c01";
    let stray = "ffffffff-0000-4000-8000-000000000001";
    // The patent's race: vm1's completed target (ds-2) and its source (ds-1) both replicated.
    vm_ron(
        &ws.join("sites/ny/datastores/ds-1-r/vm1"),
        vm1,
        "vm1",
        &marks(true, false, true),
    );
    vm_ron(
        &ws.join("sites/ny/datastores/ds-2-r/vm1"),
        vm1,
        "vm1",
        &marks(false, true, true),
    );
    // vm2 was never replicated; a uuid the topology does not know was.
    vm_ron(
        &ws.join("sites/ny/datastores/ds-2-r/stray"),
        stray,
        "stray",
        "None",
    );
    let before = tree(ws);

    let v = dry_run(ws);
    let entries = v.as_array().unwrap();
    assert_eq!(entries.len(), 3, "vm1, vm2 and the stray uuid");
    let uuids: Vec<&str> = entries
        .iter()
        .map(|e| e["uuid"].as_str().unwrap())
        .collect();
    let mut sorted = uuids.clone();
    sorted.sort();
    assert_eq!(uuids, sorted, "sorted by uuid");

    let by = |u: &str| entries.iter().find(|e| e["uuid"] == u).unwrap();
    let e1 = by(vm1);
    assert_eq!(e1["vm"], "vm1");
    assert_eq!(e1["decision"], "recover");
    assert_eq!(e1["recover_from"], "sites/ny/datastores/ds-2-r/vm1");
    assert_eq!(
        e1["delete"],
        serde_json::json!(["sites/ny/datastores/ds-1-r/vm1"])
    );
    assert_eq!(e1["instances"].as_array().unwrap().len(), 2);
    let e2 = by("1c7f3d2b-8e40-4b69-8d32-6f9a1b2c3d02");
    assert_eq!(e2["vm"], "vm2");
    assert_eq!(e2["error"], "no-instance");
    assert!(e2["recover_from"].is_null());
    let es = by(stray);
    assert!(es["vm"].is_null());
    assert_eq!(es["recover_from"], "sites/ny/datastores/ds-2-r/stray");

    assert_eq!(tree(ws), before, "a dry run changes nothing");

    let o = drconsole(&["recover", &ws.display().to_string(), "--json"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "only the dry run exists on the command line"
    );
}

#[test]
fn dry_run_reports_incomplete_and_ambiguous() {
    let dir = crate::testkit::scratch();
    let ws = dir.path();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_topologies/patent_hazard.ron"),
        ws.join("topology.ron"),
    )
    .unwrap();
    let vm1 = "0b6e2c1a-7d3f-4a58-9c21-5e8f0a1b2c01";
    let vm2 = "1c7f3d2b-8e40-4b69-8d32-6f9a1b2c3d02";
    // vm1: only its partial target reached the recovery site.
    vm_ron(
        &ws.join("sites/ny/datastores/ds-2-r/vm1"),
        vm1,
        "vm1",
        &marks(false, true, false),
    );
    // vm2: two unmarked copies, neither a completed target.
    vm_ron(
        &ws.join("sites/ny/datastores/ds-1-r/vm2"),
        vm2,
        "vm2",
        "None",
    );
    vm_ron(
        &ws.join("sites/ny/datastores/ds-2-r/vm2"),
        vm2,
        "vm2",
        "None",
    );
    let before = tree(ws);
    let o = drconsole(&["recover", &ws.display().to_string(), "--dry-run", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let by = |u: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|e| e["uuid"] == u)
            .unwrap()
            .clone()
    };
    assert_eq!(by(vm1)["error"], "incomplete");
    assert_eq!(by(vm1)["decision"], "error");
    assert_eq!(by(vm2)["error"], "ambiguous");
    assert_eq!(by(vm2)["delete"], serde_json::json!([]));
    assert_eq!(tree(ws), before);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dst = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &dst);
        } else {
            std::fs::copy(&p, &dst).unwrap();
        }
    }
}

/// A real run up to a disaster in mid-copy, then only what the recovery site keeps
/// (topology.ron and its datastore directories) is copied elsewhere: the dry run there
/// elects the source and names the partial target for deletion.
#[test]
fn dry_run_on_what_a_real_disaster_leaves() {
    let dir = crate::testkit::scratch();
    let topo = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_topologies/patent_timelines.ron");
    let scenario = dir.path().join("mid_copy.ron");
    std::fs::write(
        &scenario,
        format!(
            r#"Scenario(name: "mid-copy", topology: {topo:?}, seed: 5, steps: [
    Step(at: 0.0, action: StartWorkloads),
    Step(at: 1.0, action: Migrate(vm: "vm1", to: "ds-2", mode: Mirror, confirm: true)),
    Step(at: 3.0, action: ReplicateNow(datastore: "ds-2")),
    Step(at: 3.0, action: ReplicateNow(datastore: "ds-1")),
    Step(at: 3.5, action: Disaster(site: "pa")),
])"#
        ),
    )
    .unwrap();
    let ws = dir.path().join("ws");
    drconsole_ok(&[
        "run",
        &scenario.display().to_string(),
        "--workspace",
        &ws.display().to_string(),
    ]);
    let left = dir.path().join("left");
    std::fs::create_dir_all(&left).unwrap();
    std::fs::copy(ws.join("topology.ron"), left.join("topology.ron")).unwrap();
    copy_tree(
        &ws.join("sites/ny/datastores"),
        &left.join("sites/ny/datastores"),
    );
    let v = dry_run(&left);
    let vm1 = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["vm"] == "vm1")
        .unwrap();
    assert_eq!(vm1["instances"].as_array().unwrap().len(), 2, "{vm1}");
    assert_eq!(vm1["recover_from"], "sites/ny/datastores/ds-1-r/vm1");
    assert_eq!(
        vm1["delete"],
        serde_json::json!(["sites/ny/datastores/ds-2-r/vm1"])
    );
    let source = vm1["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["datastore"] == "ds-1-r")
        .unwrap();
    assert_eq!(source["source"], true);
    assert_eq!(source["completed"], false);
    for other in ["vm2", "vm3"] {
        let e = v
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["vm"] == other)
            .unwrap();
        assert_eq!(e["decision"], "recover", "{e}");
    }
}

/// Every file and directory under `root`: its path, and for a file its size and a hash of
/// its bytes. Equal before and after: byte-identical, with the same list of files and dirs.
fn fingerprint(root: &Path) -> Vec<(String, Option<(u64, u64)>)> {
    use std::hash::{Hash, Hasher};
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p.clone());
                out.push((rel, None));
            } else {
                let bytes = std::fs::read(&p).unwrap();
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                out.push((rel, Some((meta.len(), h.finish()))));
            }
        }
    }
    out.sort();
    out
}

/// cg-1 = {ds-1, ds-2} replicated to ny in pg-a; small disks.
fn small_cg() -> drconsole::topology::Topology {
    drconsole::topology::Topology::from_ron_str(
        r#"Topology(
    name: "dry run",
    sites: [Site(id: "pa", name: "P", role: Protected), Site(id: "ny", name: "R", role: Recovery)],
    links: [Link(from: "pa", to: "ny", mbps: 100)],
    hosts: [Host(id: "h", site: "pa", cpus: 16, memory_gib: 64),
            Host(id: "r", site: "ny", cpus: 16, memory_gib: 64)],
    arrays: [
        Array(id: "ap", site: "pa", luns: [
            Lun(id: "l1", capacity_gib: 4, replication: Some(LunReplication(target: "l1r", rpo_minutes: 15, consistency_group: Some("cg-1")))),
            Lun(id: "l2", capacity_gib: 4, replication: Some(LunReplication(target: "l2r", rpo_minutes: 15, consistency_group: Some("cg-1")))),
        ]),
        Array(id: "ar", site: "ny", luns: [Lun(id: "l1r", capacity_gib: 4), Lun(id: "l2r", capacity_gib: 4)]),
    ],
    datastores: [
        Datastore(id: "ds-1", site: "pa", luns: ["l1"]),
        Datastore(id: "ds-2", site: "pa", luns: ["l2"]),
        Datastore(id: "ds-1-r", site: "ny", luns: ["l1r"]),
        Datastore(id: "ds-2-r", site: "ny", luns: ["l2r"]),
    ],
    protection_groups: [ProtectionGroup(id: "pg-a", name: "A", datastores: ["ds-1", "ds-2"])],
    vms: [
        Vm(id: "vm1", uuid: "0b6e2c1a-7d3f-4a58-9c21-5e8f0a1b2c01", host: "h", datastore: "ds-1",
           disk_mib: 2, vcpus: 2, memory_gib: 8, priority: 1, workload: Some(Workload(write_iops: 100, read_iops: 20))),
        Vm(id: "vm2", uuid: "1c7f3d2b-8e40-4b69-8d32-6f9a1b2c3d02", host: "h", datastore: "ds-2",
           disk_mib: 1, vcpus: 2, memory_gib: 8, priority: 2, workload: Some(Workload(write_iops: 100, read_iops: 20))),
    ],
)"#,
        "dry-run.ron",
    )
    .unwrap()
}

fn opts() -> drconsole::engine::EngineOptions {
    drconsole::engine::EngineOptions {
        seed: 3,
        ..Default::default()
    }
}

/// `drconsole recover WS --dry-run --json`, which must succeed.
fn dry_run(ws: &Path) -> Value {
    let o = drconsole_ok(&["recover", &ws.display().to_string(), "--dry-run", "--json"]);
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A dry run writes nothing: not the lock file (a real workspace has one, holding the pid
/// of its last user), not a temp file; and on what a disaster leaves (no lock file) it
/// makes none.
#[test]
fn dry_run_leaves_the_workspace_byte_identical() {
    use drconsole::engine::{Command as Cmd, Engine, MINUTE};
    let dir = crate::testkit::scratch();
    let ws = dir.path().join("ws");
    let mut e = Engine::create(&ws, &small_cg(), opts()).unwrap();
    e.apply(Cmd::StartWorkloads).unwrap();
    e.advance(2 * MINUTE).unwrap();
    e.close().unwrap();
    assert!(ws.join("workspace.lock").exists());
    let before = fingerprint(&ws);
    let v = dry_run(&ws);
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
    assert_eq!(fingerprint(&ws), before, "a dry run changes nothing");

    std::fs::remove_file(ws.join("workspace.lock")).unwrap();
    let before = fingerprint(&ws);
    assert_eq!(dry_run(&ws), v);
    assert_eq!(
        fingerprint(&ws),
        before,
        "a dry run makes no lock file either"
    );
}

/// A crash fell in a publish right after its commit record: the cycle is published (the
/// next open applies it), but the replicas still show the previous point. The cycle
/// ships vm1's move from ds-1 to ds-2, so the two states elect differently. The dry run
/// elects over the state the next open produces, without applying it.
#[test]
fn dry_run_reads_through_a_committed_publish_a_crash_cut_short() {
    use drconsole::engine::copy::CopyMode;
    use drconsole::engine::{Command as Cmd, Engine, MINUTE};
    use drconsole::fault;
    let dir = crate::testkit::scratch();
    let ws = dir.path().join("ws");
    let mut e = Engine::create(&ws, &small_cg(), opts()).unwrap();
    e.apply(Cmd::StartWorkloads).unwrap();
    e.advance(MINUTE).unwrap();
    e.apply(Cmd::Migrate {
        vm: "vm1".into(),
        to: "ds-2".into(),
        mode: CopyMode::Mirror,
        confirm: true,
    })
    .unwrap();
    while e.is_migrating("vm1") {
        let t = e.next_event_time().unwrap();
        e.advance(t).unwrap();
    }
    assert_eq!(e.location("vm1").unwrap().0, "ds-2");
    fault::arm("publish.commit-written", 1);
    e.apply(Cmd::ReplicateNow {
        datastore: "ds-1".into(),
    })
    .unwrap();
    while fault::tripped().is_none() {
        let t = e.next_event_time().unwrap();
        assert!(t < e.now() + MINUTE, "the publish comes");
        let _ = e.advance(t);
    }
    drop(e);
    fault::disarm();
    let old = ws.join("sites/ny/datastores/ds-1-r/vm1");
    let new = ws.join("sites/ny/datastores/ds-2-r/vm1");
    assert!(ws.join("sites/ny/replication/cg.cg-1.commit").exists());
    assert!(
        old.exists() && !new.exists(),
        "the replicas show the previous point"
    );

    let before = fingerprint(&ws);
    let dry = dry_run(&ws);
    let unchanged = fingerprint(&ws) == before;
    // The next open applies the committed cycle; the election over what it leaves.
    Engine::open(&ws).unwrap().close().unwrap();
    assert!(!old.exists() && new.exists());
    let after_open = dry_run(&ws);
    assert_eq!(
        dry, after_open,
        "the dry run elects what the next open leaves"
    );
    let vm1 = dry
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["vm"] == "vm1")
        .unwrap();
    assert_eq!(
        vm1["recover_from"], "sites/ny/datastores/ds-2-r/vm1",
        "{vm1}"
    );
    assert!(unchanged, "the dry run applied nothing and wrote nothing");
}
