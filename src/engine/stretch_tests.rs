//! Distributed datastores on real files: created during a partition, tracked, rebuilt.

use super::super::*;
use super::views::LegState;
use super::*;
use crate::disk::BLOCK_SIZE;

/// ds-a: a plain datastore (vm1 starts there). ds-d: a planned distributed datastore
/// (legs pa/ld and ny/ln). ds-c: a distributed datastore created with the workspace, vm2 on it.
fn topology_text() -> &'static str {
    r#"Topology(
    name: "stretch test",
    sites: [Site(id: "pa", name: "P", role: Protected), Site(id: "ny", name: "R", role: Recovery)],
    links: [Link(from: "pa", to: "ny", mbps: 80)],
    hosts: [Host(id: "h", site: "pa", cpus: 8, memory_gib: 64)],
    arrays: [
        Array(id: "ap", site: "pa", luns: [
            Lun(id: "la", capacity_gib: 10), Lun(id: "ld", capacity_gib: 10),
            Lun(id: "lc", capacity_gib: 10),
        ]),
        Array(id: "an", site: "ny", luns: [Lun(id: "ln", capacity_gib: 10), Lun(id: "ln2", capacity_gib: 10)]),
    ],
    datastores: [
        Datastore(id: "ds-a", site: "pa", luns: ["la"], throughput_mib_s: 8),
        Datastore(id: "ds-d", site: "pa", luns: ["ld"], throughput_mib_s: 8,
            distributed: Some(Distributed(remote_site: "ny", remote_lun: "ln", created: false))),
        Datastore(id: "ds-c", site: "pa", luns: ["lc"], throughput_mib_s: 8,
            distributed: Some(Distributed(remote_site: "ny", remote_lun: "ln2"))),
    ],
    protection_groups: [],
    vms: [
        Vm(id: "vm1", uuid: "11111111-2222-4333-8444-555555555555", host: "h", datastore: "ds-a",
           disk_mib: 8, vcpus: 1, memory_gib: 1, priority: 1,
           workload: Some(Workload(write_iops: 100, read_iops: 100))),
        Vm(id: "vm2", uuid: "11111111-2222-4333-8444-666666666666", host: "h", datastore: "ds-c",
           disk_mib: 8, vcpus: 1, memory_gib: 1, priority: 2,
           workload: Some(Workload(write_iops: 100, read_iops: 100))),
    ],
)"#
}

fn topology() -> Topology {
    Topology::from_ron_str(topology_text(), "stretch-test.ron").unwrap()
}

const BLOCKS: u64 = 8 * 1024 * 1024 / BLOCK_SIZE as u64;

fn ws(dir: &Path) -> PathBuf {
    dir.join("ws")
}

fn engine(dir: &Path) -> Engine {
    Engine::create(&ws(dir), &topology(), EngineOptions::default()).unwrap()
}

fn run_for(e: &mut Engine, secs: u64) {
    let until = e.now() + secs * SECOND;
    e.advance(until).unwrap();
}

fn leg(dir: &Path, site: &str, ds: &str) -> PathBuf {
    ws(dir).join("sites").join(site).join("datastores").join(ds)
}

/// Blocks of an image file that are not all zeros.
fn nonzero(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    bytes
        .chunks_exact(BLOCK_SIZE)
        .filter(|c| c.iter().any(|&b| b != 0))
        .count() as u64
}

fn view(e: &Engine, ds: &str) -> DistributedView {
    e.snapshot()
        .distributed
        .into_iter()
        .find(|d| d.datastore == ds)
        .unwrap()
}

fn writes(e: &Engine, vm: &str) -> u64 {
    e.snapshot().vms.iter().find(|x| x.id == vm).unwrap().writes
}

/// Why moving vm2 to ds-a is refused now (it must be).
fn vm2_move_refused(e: &mut Engine) -> String {
    e.apply(Command::Migrate {
        vm: "vm2".into(),
        to: "ds-a".into(),
        mode: CopyMode::Mirror,
        confirm: true,
    })
    .unwrap_err()
    .to_string()
}

fn assert_consistent(e: &Engine, vm: &str) {
    let v = e.verify_vm(vm).unwrap();
    assert!(v.consistent, "{v:#?}");
    assert_eq!(v.writes_lost, 0);
    let snap = e.snapshot();
    assert_eq!(snap.vms.iter().find(|x| x.id == vm).unwrap().read_errors, 0);
}

/// Partition ny, create ds-d (local leg only), move vm1 onto it and let it write.
fn created_during_partition(dir: &Path) -> Engine {
    let mut e = engine(dir);
    assert!(
        !leg(dir, "pa", "ds-d").exists(),
        "a planned datastore has no directory yet"
    );
    e.apply(Command::StartWorkloads).unwrap();
    run_for(&mut e, 2);
    e.apply(Command::PartitionSite { site: "ny".into() })
        .unwrap();
    let out = e
        .apply(Command::CreateDatastore {
            datastore: "ds-d".into(),
        })
        .unwrap();
    assert!(
        matches!(&out, Outcome::Done(m) if m.contains("out of compliance")),
        "{out:?}"
    );
    assert!(leg(dir, "pa", "ds-d").is_dir(), "the local leg exists");
    assert!(
        !leg(dir, "ny", "ds-d").exists(),
        "the remote leg is not created during the partition"
    );
    assert!(
        e.topology()
            .datastore("ds-d")
            .unwrap()
            .distributed
            .as_ref()
            .unwrap()
            .created
    );
    let (ok, detail) = e.expect_out_of_compliance("ds-d");
    assert!(ok, "{detail}");
    let (ok, detail) = e.expect_compliant("ds-d");
    assert!(!ok, "{detail}");
    let out = e
        .apply(Command::Migrate {
            vm: "vm1".into(),
            to: "ds-d".into(),
            mode: CopyMode::Mirror,
            confirm: false,
        })
        .unwrap();
    assert!(matches!(out, Outcome::Done(_)), "rated none: {out:?}");
    let limit = e.now() + 60 * SECOND;
    assert!(e.run_until_migrated("vm1", limit).unwrap());
    assert_eq!(e.location("vm1").unwrap().0, "ds-d");
    run_for(&mut e, 2);
    e.apply(Command::StopWorkloads).unwrap();
    e
}

#[test]
fn created_during_a_partition_then_healed_rebuilds_only_tracked_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = created_during_partition(dir.path());
    let local_img = leg(dir.path(), "pa", "ds-d").join("vm1/disk0.img");
    let (tracked, _, _) = e.stretch_counts("ds-d").unwrap();
    // Everything on the local leg that is not zero is tracked (the other leg starts as
    // zeros), and that is a small part of the disk.
    assert_eq!(tracked, nonzero(&local_img));
    assert!(tracked > 100 && tracked < BLOCKS / 2, "tracked {tracked}");
    let v = view(&e, "ds-d");
    assert_eq!(v.remote.state, LegState::Absent);
    assert!(!v.compliant);
    assert_eq!(v.tracked_blocks, tracked);
    assert_eq!(v.reports[0].kind, ReportKind::OutOfCompliance);

    e.apply(Command::HealPartition).unwrap();
    assert!(leg(dir.path(), "ny", "ds-d").join("vm1/vm.ron").is_file());
    assert!(view(&e, "ds-d").rebuilding, "the rebuild runs over time");
    run_for(&mut e, 30);
    let (left, total, rebuilt) = e.stretch_counts("ds-d").unwrap();
    assert_eq!(left, 0);
    assert_eq!(total, tracked, "the rebuild covers the tracked blocks");
    assert_eq!(
        rebuilt, tracked,
        "rebuilt blocks == tracked blocks, not the disk"
    );
    let remote_img = leg(dir.path(), "ny", "ds-d").join("vm1/disk0.img");
    assert_eq!(
        std::fs::read(&local_img).unwrap(),
        std::fs::read(&remote_img).unwrap(),
        "both legs byte-identical"
    );
    let (ok, detail) = e.expect_compliant("ds-d");
    assert!(ok, "{detail}");
    let (ok, _) = e.expect_out_of_compliance("ds-d");
    assert!(!ok);
    let v = view(&e, "ds-d");
    assert!(v.compliant);
    assert_eq!(v.remote.state, LegState::InSync);
    assert_eq!(v.reports.last().unwrap().kind, ReportKind::Repaired);
    assert_consistent(&e, "vm1");

    // In sync now: new writes land on both legs.
    e.apply(Command::StartWorkloads).unwrap();
    run_for(&mut e, 2);
    assert_eq!(e.stretch_counts("ds-d").unwrap().0, 0);
    assert_eq!(
        std::fs::read(&local_img).unwrap(),
        std::fs::read(&remote_img).unwrap()
    );
    assert_consistent(&e, "vm1");
}

#[test]
fn a_partition_after_creation_degrades_and_heal_makes_the_legs_identical() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    let local = leg(dir.path(), "pa", "ds-c").join("vm2/disk0.img");
    let remote = leg(dir.path(), "ny", "ds-c").join("vm2/disk0.img");
    assert!(remote.is_file(), "created with the workspace: both legs");
    e.apply(Command::StartWorkloads).unwrap();
    run_for(&mut e, 2);
    assert!(nonzero(&local) > 0);
    assert_eq!(
        std::fs::read(&local).unwrap(),
        std::fs::read(&remote).unwrap()
    );
    let (ok, detail) = e.expect_compliant("ds-c");
    assert!(ok, "{detail}");

    // Partition the datastore's own site: without a witness it keeps serving.
    e.apply(Command::PartitionSite { site: "pa".into() })
        .unwrap();
    let (ok, detail) = e.expect_out_of_compliance("ds-c");
    assert!(ok, "{detail}");
    run_for(&mut e, 2);
    let (tracked, _, _) = e.stretch_counts("ds-c").unwrap();
    assert!(tracked > 0);
    assert_ne!(
        std::fs::read(&local).unwrap(),
        std::fs::read(&remote).unwrap()
    );
    assert_eq!(view(&e, "ds-c").remote.state, LegState::Behind);

    // Heal with the guest still writing: writes during the rebuild reach both legs.
    e.apply(Command::HealPartition).unwrap();
    run_for(&mut e, 10);
    let (left, total, rebuilt) = e.stretch_counts("ds-c").unwrap();
    assert_eq!(left, 0);
    assert_eq!(rebuilt, total);
    assert!(total >= tracked && total < BLOCKS);
    let (ok, detail) = e.expect_compliant("ds-c");
    assert!(ok, "{detail}");
    e.apply(Command::StopWorkloads).unwrap();
    assert_eq!(
        std::fs::read(&local).unwrap(),
        std::fs::read(&remote).unwrap()
    );
    assert_consistent(&e, "vm2");
    let kinds: Vec<ReportKind> = view(&e, "ds-c")
        .reports
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![ReportKind::OutOfCompliance, ReportKind::Repaired]
    );
}

#[test]
fn a_reopen_mid_partition_keeps_the_bitmap() {
    let dir = tempfile::tempdir().unwrap();
    let e = created_during_partition(dir.path());
    let (tracked, _, _) = e.stretch_counts("ds-d").unwrap();
    assert!(tracked > 0);
    e.close().unwrap();
    let mut e = Engine::open(&ws(dir.path())).unwrap();
    assert_eq!(e.stretch_counts("ds-d").unwrap().0, tracked);
    let v = view(&e, "ds-d");
    assert_eq!(v.partitioned_sites, vec!["ny".to_string()]);
    assert_eq!(v.remote.state, LegState::Absent);
    let (ok, detail) = e.expect_out_of_compliance("ds-d");
    assert!(ok, "{detail}");
    e.apply(Command::HealPartition).unwrap();
    run_for(&mut e, 30);
    let (left, total, rebuilt) = e.stretch_counts("ds-d").unwrap();
    assert_eq!((left, total, rebuilt), (0, tracked, tracked));
    let (ok, detail) = e.expect_compliant("ds-d");
    assert!(ok, "{detail}");
    assert_consistent(&e, "vm1");
}

#[test]
fn a_differing_block_fails_the_compliance_check() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    e.apply(Command::StartWorkloads).unwrap();
    run_for(&mut e, 1);
    e.apply(Command::StopWorkloads).unwrap();
    let (ok, detail) = e.expect_compliant("ds-c");
    assert!(ok, "{detail}");
    // Damage block 7 of the second leg behind the engine's back.
    let remote = leg(dir.path(), "ny", "ds-c").join("vm2/disk0.img");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&remote)
        .unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&[0xAB; 16], 7 * BLOCK_SIZE as u64 + 100)
        .unwrap();
    let (ok, detail) = e.expect_compliant("ds-c");
    assert!(!ok);
    assert!(detail.contains("block 7 differs"), "{detail}");
}

#[test]
fn bad_ids_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    let err = |e: &mut Engine, c: Command| e.apply(c).unwrap_err().to_string();
    let m = err(
        &mut e,
        Command::CreateDatastore {
            datastore: "nope".into(),
        },
    );
    assert!(m.contains("\"nope\" does not exist"), "{m}");
    let m = err(
        &mut e,
        Command::CreateDatastore {
            datastore: "ds-a".into(),
        },
    );
    assert!(
        m.contains("ds-a") && m.contains("not a distributed datastore"),
        "{m}"
    );
    let m = err(
        &mut e,
        Command::CreateDatastore {
            datastore: "ds-c".into(),
        },
    );
    assert!(m.contains("already created"), "{m}");
    let m = err(
        &mut e,
        Command::PartitionSite {
            site: "mars".into(),
        },
    );
    assert!(
        m.contains("\"mars\"") && m.contains("does not exist"),
        "{m}"
    );
    let m = err(&mut e, Command::HealPartition);
    assert!(m.contains("no site is partitioned"), "{m}");
    let m = err(
        &mut e,
        Command::Migrate {
            vm: "vm1".into(),
            to: "ds-d".into(),
            mode: CopyMode::Mirror,
            confirm: true,
        },
    );
    assert!(m.contains("ds-d") && m.contains("planned"), "{m}");
    assert!(!leg(dir.path(), "pa", "ds-d").exists(), "nothing was made");
    let (ok, m) = e.expect_compliant("ds-a");
    assert!(!ok && m.contains("not a distributed datastore"), "{m}");
    let (ok, m) = e.expect_out_of_compliance("ds-d");
    assert!(!ok && m.contains("planned"), "{m}");
    let (ok, m) = e.expect_compliant("zzz");
    assert!(!ok && m.contains("does not exist"), "{m}");
}

#[test]
fn a_partition_stops_replication_publishing_until_heal() {
    let dir = tempfile::tempdir().unwrap();
    let text = topology_text().replace(
        r#"Lun(id: "lc", capacity_gib: 10),"#,
        r#"Lun(id: "lc", capacity_gib: 10),
            Lun(id: "lr", capacity_gib: 10, replication: Some(LunReplication(target: "lr-r", rpo_minutes: 15))),"#,
    )
    .replace(
        r#"Lun(id: "ln2", capacity_gib: 10)]"#,
        r#"Lun(id: "ln2", capacity_gib: 10), Lun(id: "lr-r", capacity_gib: 10)]"#,
    )
    .replace(
        r#"    protection_groups: [],"#,
        r#"    protection_groups: [ProtectionGroup(id: "pg", name: "PG", datastores: ["ds-rep"])],"#,
    )
    .replace(
        r#"Datastore(id: "ds-a","#,
        r#"Datastore(id: "ds-rep", site: "pa", luns: ["lr"]),
        Datastore(id: "ds-rep-r", site: "ny", luns: ["lr-r"]),
        Datastore(id: "ds-a","#,
    );
    let topo = Topology::from_ron_str(&text, "stretch-rep.ron").unwrap();
    let mut e = Engine::create(&ws(dir.path()), &topo, EngineOptions::default()).unwrap();
    assert!(e.snapshot().link_up);
    e.apply(Command::PartitionSite { site: "ny".into() })
        .unwrap();
    assert!(!e.snapshot().link_up, "the replication link touches ny");
    run_for(&mut e, 1);
    e.apply(Command::HealPartition).unwrap();
    assert!(e.snapshot().link_up, "restored on heal");

    // A link the operator took down stays down after the heal.
    e.apply(Command::LinkDown).unwrap();
    e.apply(Command::PartitionSite { site: "ny".into() })
        .unwrap();
    e.apply(Command::HealPartition).unwrap();
    assert!(!e.snapshot().link_up);
}

#[test]
fn with_a_witness_the_second_leg_serves_when_the_own_site_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let text = topology_text().replace(
        r#"Distributed(remote_site: "ny", remote_lun: "ln2")"#,
        r#"Distributed(remote_site: "ny", remote_lun: "ln2", witness: Some("w-tie"))"#,
    );
    let topo = Topology::from_ron_str(&text, "stretch-witness.ron").unwrap();
    let mut e = Engine::create(&ws(dir.path()), &topo, EngineOptions::default()).unwrap();
    let local = leg(dir.path(), "pa", "ds-c").join("vm2/disk0.img");
    let remote = leg(dir.path(), "ny", "ds-c").join("vm2/disk0.img");
    e.apply(Command::StartWorkloads).unwrap();
    run_for(&mut e, 2);
    assert_eq!(view(&e, "ds-c").serving_site, "pa");

    let t0 = e.now();
    e.apply(Command::PartitionSite { site: "pa".into() })
        .unwrap();
    // Both sides hold the I/O for the polarization delay, then ask the witness; pa is cut
    // off from it, so ny asks first.
    let v = view(&e, "ds-c");
    assert_eq!(
        v.serving_site, "pa",
        "nothing moves before the witness decides"
    );
    assert_eq!(v.polarizing_until, Some(t0 + 2 * SECOND));
    assert_eq!(v.polarization_winner.as_deref(), Some("ny"));
    let held = writes(&e, "vm2");
    e.advance(t0 + 2 * SECOND - 1).unwrap();
    assert_eq!(
        writes(&e, "vm2"),
        held,
        "I/O is held during the polarization"
    );
    assert_eq!(view(&e, "ds-c").serving_site, "pa");
    e.advance(t0 + 2 * SECOND).unwrap();
    let v = view(&e, "ds-c");
    assert_eq!(v.serving_site, "ny", "the witness picked the other leg");
    assert_eq!(v.polarizing_until, None);
    assert_eq!(v.local.state, LegState::Behind);
    assert_eq!(v.remote.state, LegState::InSync);
    assert!(v.reports[0].message.contains("witness w-tie"));
    let before_local = std::fs::read(&local).unwrap();
    run_for(&mut e, 2);
    assert_eq!(
        std::fs::read(&local).unwrap(),
        before_local,
        "the cut-off local leg is not written"
    );
    assert_ne!(
        std::fs::read(&local).unwrap(),
        std::fs::read(&remote).unwrap()
    );
    assert!(e.stretch_counts("ds-c").unwrap().0 > 0);
    assert_consistent(&e, "vm2");
    let m = vm2_move_refused(&mut e);
    assert!(m.contains("second leg"), "{m}");

    // A reopen mid-partition keeps serving from the second leg.
    e.apply(Command::StopWorkloads).unwrap();
    e.close().unwrap();
    let mut e = Engine::open(&ws(dir.path())).unwrap();
    assert_eq!(view(&e, "ds-c").serving_site, "ny");
    assert_consistent(&e, "vm2");
    e.apply(Command::StartWorkloads).unwrap();
    run_for(&mut e, 1);

    e.apply(Command::HealPartition).unwrap();
    run_for(&mut e, 10);
    let v = view(&e, "ds-c");
    assert_eq!(v.serving_site, "pa", "the preferred leg serves again");
    assert!(v.compliant);
    let (ok, detail) = e.expect_compliant("ds-c");
    assert!(ok, "{detail}");
    e.apply(Command::StopWorkloads).unwrap();
    assert_eq!(
        std::fs::read(&local).unwrap(),
        std::fs::read(&remote).unwrap()
    );
    assert_consistent(&e, "vm2");
}

#[test]
fn an_array_fault_on_the_serving_leg_swaps_to_the_other_leg_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    let local = leg(dir.path(), "pa", "ds-c").join("vm2/disk0.img");
    let remote = leg(dir.path(), "ny", "ds-c").join("vm2/disk0.img");
    e.apply(Command::StartWorkloads).unwrap();
    run_for(&mut e, 1);
    let out = e.apply(Command::ArrayFault { array: "ap".into() }).unwrap();
    assert!(matches!(&out, Outcome::Done(_)), "{out:?}");
    let v = view(&e, "ds-c");
    assert_eq!(v.serving_site, "ny");
    assert!(!v.compliant);
    let before = std::fs::read(&local).unwrap();
    run_for(&mut e, 2);
    assert_eq!(
        std::fs::read(&local).unwrap(),
        before,
        "the faulted leg rests"
    );
    assert!(e.stretch_counts("ds-c").unwrap().0 > 0);
    assert_consistent(&e, "vm2");
    e.apply(Command::ArrayHealthy { array: "ap".into() })
        .unwrap();
    run_for(&mut e, 10);
    let v = view(&e, "ds-c");
    assert_eq!(v.serving_site, "pa", "back on the preferred leg");
    let (ok, detail) = e.expect_compliant("ds-c");
    assert!(ok, "{detail}");
    e.apply(Command::StopWorkloads).unwrap();
    assert_eq!(
        std::fs::read(&local).unwrap(),
        std::fs::read(&remote).unwrap()
    );
    assert_consistent(&e, "vm2");
}

#[path = "stretch_witness_tests.rs"]
mod witness;
