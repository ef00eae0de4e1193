//! `drconsole recover --dry-run --json` on what a disaster leaves: topology.ron and the
//! recovery-site datastore directories, nothing else.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

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
    let dir = tempfile::tempdir().unwrap();
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

    let o = Command::new(env!("CARGO_BIN_EXE_drconsole"))
        .args(["recover", &ws.display().to_string(), "--dry-run", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
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

    let o = Command::new(env!("CARGO_BIN_EXE_drconsole"))
        .args(["recover", &ws.display().to_string(), "--json"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "only the dry run exists on the command line"
    );
}
