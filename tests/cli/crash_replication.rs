//! SIGKILL a running `drconsole run` at named steps of replication cycles' transfers and
//! publishes; after each kill, the recovery site must hold exactly its published recovery
//! point (the replicas are the cut state of the published record, block for block), before
//! and after reopening the workspace.

use std::path::{Path, PathBuf};

use crate::testkit::process::{drconsole, run_killed_at};
use drconsole::disk::{self, Horizon, ImageFile};
use drconsole::workspace::Workspace;

/// Two VMs in one CG over two datastores, replicated over an 8 Mbit/s link (a cycle of a
/// few MiB takes seconds of simulated time), cut every minute and on demand.
fn write_scenario(dir: &Path) -> PathBuf {
    std::fs::write(
        dir.join("t.ron"),
        r#"Topology(name: "crash-rep",
    sites: [Site(id: "pa", name: "P", role: Protected), Site(id: "ny", name: "R", role: Recovery)],
    links: [Link(from: "pa", to: "ny", mbps: 8)],
    hosts: [Host(id: "h", site: "pa", cpus: 4, memory_gib: 8), Host(id: "r", site: "ny", cpus: 4, memory_gib: 8)],
    arrays: [Array(id: "a", site: "pa", luns: [
                Lun(id: "l1", capacity_gib: 4, replication: Some(LunReplication(target: "l1r", rpo_minutes: 1, consistency_group: Some("cg")))),
                Lun(id: "l2", capacity_gib: 4, replication: Some(LunReplication(target: "l2r", rpo_minutes: 1, consistency_group: Some("cg"))))]),
             Array(id: "b", site: "ny", luns: [Lun(id: "l1r", capacity_gib: 4), Lun(id: "l2r", capacity_gib: 4)])],
    datastores: [Datastore(id: "ds-1", site: "pa", luns: ["l1"]), Datastore(id: "ds-2", site: "pa", luns: ["l2"]),
                 Datastore(id: "ds-1r", site: "ny", luns: ["l1r"]), Datastore(id: "ds-2r", site: "ny", luns: ["l2r"])],
    vms: [Vm(id: "v1", uuid: "0f0e0d0c-0b0a-4908-8706-050403020101", host: "h", datastore: "ds-1",
             disk_mib: 8, vcpus: 1, memory_gib: 1, priority: 1, workload: Some(Workload(write_iops: 1500, read_iops: 100))),
          Vm(id: "v2", uuid: "0f0e0d0c-0b0a-4908-8706-050403020102", host: "h", datastore: "ds-2",
             disk_mib: 8, vcpus: 1, memory_gib: 1, priority: 1, workload: Some(Workload(write_iops: 1500, read_iops: 100)))])"#,
    )
    .unwrap();
    let s = dir.join("s.ron");
    let mut steps = String::from("Step(at: 0.0, action: StartWorkloads),\n");
    for k in 1..=12 {
        steps += &format!(
            "Step(at: {}, action: ReplicateNow(datastore: \"ds-1\")),\n",
            f64::from(k) * 0.25
        );
    }
    std::fs::write(
        &s,
        format!(
            r#"Scenario(name: "crash replication", topology: "t.ron", seed: 4, steps: [{steps}])"#
        ),
    )
    .unwrap();
    s
}

/// The published cycle, and whether the replicas hold exactly its cut (None before any).
fn check_published(ws: &Path) -> Option<u64> {
    let rec = ws.join("sites/ny/replication/cg.cg.ron");
    let text = std::fs::read_to_string(&rec).ok()?;
    let field = |name: &str| -> u64 {
        let at = text.find(&format!("{name}: ")).unwrap() + name.len() + 2;
        text[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (cycle, cut_seq) = (field("cycle"), field("cut_seq"));
    let journal = disk::read_journal(&ws.join("journal/pa.log")).unwrap();
    let cut = journal.up_to(cut_seq);
    let w = Workspace::open(ws).unwrap();
    let mut images = Vec::new();
    for (ds, vm, uuid) in [
        ("ds-1r", "v1", "0f0e0d0c-0b0a-4908-8706-050403020101"),
        ("ds-2r", "v2", "0f0e0d0c-0b0a-4908-8706-050403020102"),
    ] {
        let dir = w.datastore_dir(ds).unwrap().join(vm);
        images.push((
            vm.to_string(),
            disk::raw_uuid(uuid).unwrap(),
            ImageFile::open_read_only(&dir.join("disk0.img")).unwrap(),
        ));
    }
    let mut disks = disk::vm_disks(&mut images);
    let report = disk::verify_set(&mut disks, &cut, Horizon::LastJournaled).unwrap();
    assert!(
        report.consistent,
        "{}: replicas are not cycle {cycle}'s cut (seq {cut_seq}): {report:#?}",
        ws.display()
    );
    Some(cycle)
}

#[test]
fn sigkill_during_replication_leaves_the_published_point() {
    let dir = crate::testkit::scratch();
    let s = write_scenario(dir.path());
    // The points the run passes, from the same deterministic run in this process.
    let full = dir.path().join("full");
    drconsole::fault::record();
    let report = drconsole::scenario::run_file(&s, &full).unwrap();
    let hits = drconsole::fault::hits();
    drconsole::fault::disarm();
    assert!(report.passed);
    assert!(check_published(&full).unwrap() >= 10);
    // Kill halfway through the run's passes of every step of a publish (the commit, each
    // replica applied, the record, the clean-up), at a quarter, half and three quarters of
    // its staged transfers, and in the middle of the guests' writes between cycles.
    let mut kills = Vec::new();
    for &(name, n) in &hits {
        if name == "publish.staging-written" {
            kills.extend([1, 2, 3].map(|k| (name, (n * k / 4).max(1))));
        } else if name.starts_with("publish.") || name == "guest.data-written" {
            kills.push((name, (n / 2).max(1)));
        }
    }
    kills.dedup();
    eprintln!("kills: {kills:?}");
    assert!(
        kills.iter().any(|(n, _)| *n == "publish.staging-written"),
        "{hits:?}"
    );
    let mut mid_transfer = 0;
    for (k, &(point, nth)) in kills.iter().enumerate() {
        let ws = dir.path().join(format!("k{k}"));
        assert!(
            run_killed_at(&s, &ws, point, nth),
            "the child reached {point}#{nth} and was killed there"
        );
        let staging = ws.join("sites/ny/replication/cg.cg.staging");
        let committed = ws.join("sites/ny/replication/cg.cg.commit").exists();
        if point == "publish.staging-written" {
            assert!(
                staging.exists() && !committed,
                "killed at {point}#{nth}: mid-transfer"
            );
            mid_transfer += 1;
        }
        // What the kill left: the published record and the replicas agree, unless the
        // kill fell inside a publish after its commit (the next open finishes it).
        let before = if committed {
            None
        } else {
            check_published(&ws)
        };
        // Reopen (recovery runs), then the point must hold; it is never older.
        let o = drconsole(&["verify", &ws.display().to_string(), "--repair", "--json"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{point}#{nth}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["ok"], true, "{point}#{nth}: {v:#}");
        assert!(!staging.exists(), "the interrupted staging is gone");
        let after = check_published(&ws);
        assert!(after >= before, "{point}#{nth}: {after:?} < {before:?}");
    }
    assert!(mid_transfer >= 2, "kills landed mid-transfer");
}
