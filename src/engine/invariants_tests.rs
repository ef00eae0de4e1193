//! `check_invariants` holds on a running engine and names the rule a corrupted state breaks.

use super::*;
use crate::engine::test_support::run_until;

const T: &str = r#"Topology(
    name: "invariants test",
    sites: [Site(id: "pa", name: "P", role: Protected), Site(id: "ny", name: "R", role: Recovery)],
    links: [Link(from: "pa", to: "ny", mbps: 100)],
    hosts: [Host(id: "h", site: "pa", cpus: 64, memory_gib: 512)],
    arrays: [
        Array(id: "ap", site: "pa", luns: [
            Lun(id: "l1", capacity_gib: 10, replication: Some(LunReplication(target: "l1r", rpo_minutes: 5))),
            Lun(id: "l2", capacity_gib: 10),
        ]),
        Array(id: "ar", site: "ny", luns: [Lun(id: "l1r", capacity_gib: 10)]),
    ],
    datastores: [
        Datastore(id: "ds-1", site: "pa", luns: ["l1"], throughput_mib_s: 100),
        Datastore(id: "ds-l", site: "pa", luns: ["l2"], throughput_mib_s: 100),
        Datastore(id: "ds-1r", site: "ny", luns: ["l1r"]),
    ],
    protection_groups: [ProtectionGroup(id: "pg-a", name: "A", datastores: ["ds-1"])],
    vms: [
        Vm(id: "a", uuid: "00000000-0000-0000-0000-00000000000a", host: "h", datastore: "ds-1", disk_mib: 4, vcpus: 2, memory_gib: 8,
           workload: Some(Workload(write_iops: 200, read_iops: 100))),
        Vm(id: "b", uuid: "00000000-0000-0000-0000-00000000000b", host: "h", datastore: "ds-l", disk_mib: 4, vcpus: 2, memory_gib: 8,
           workload: Some(Workload(write_iops: 200, read_iops: 100))),
    ],
)"#;

/// An engine that has run a while with guests writing and one published point.
fn running(dir: &Path) -> Engine {
    let t = Topology::from_ron_str(T, "invariants-test.ron").unwrap();
    let mut e = Engine::create(dir, &t, EngineOptions::default()).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    run_until(&mut e, 30 * MINUTE, "a published point", |e| {
        e.published_point("ds-1").is_some()
    });
    e
}

#[test]
fn a_running_engine_keeps_its_invariants() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = running(dir.path());
    assert_eq!(e.check_invariants(), Ok(()));
    e.apply(Command::Migrate {
        vm: "b".into(),
        to: "ds-1".into(),
        mode: CopyMode::Mirror,
        confirm: true,
    })
    .unwrap();
    // 4 MiB at 100 MiB/s: 40 ms; 1 ms in, the copy runs.
    e.advance(e.now() + 1_000).unwrap();
    assert!(e.is_migrating("b"));
    assert_eq!(e.check_invariants(), Ok(()));
}

#[test]
fn a_stale_id_map_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = running(dir.path());
    e.vm_ix.insert("a".into(), VmIx(1));
    let err = e.check_invariants().unwrap_err();
    assert_eq!(err.rule, "id maps agree with vectors", "{err}");
}

#[test]
fn an_incomplete_instance_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = running(dir.path());
    e.vms[0].last_seq.pop();
    let err = e.check_invariants().unwrap_err();
    assert_eq!(err.rule, "VM has a complete instance", "{err}");
}

#[test]
fn a_point_published_before_its_cut_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = running(dir.path());
    let p = e.groups[0].published.as_mut().expect("published");
    p.cut_at = p.published_at + 1;
    let err = e.check_invariants().unwrap_err();
    assert_eq!(err.rule, "published point consistent", "{err}");
}
