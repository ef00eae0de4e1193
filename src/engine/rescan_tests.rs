//! Rescan arrays (SPEC §2) on real workspaces: opening an edited topology file over its
//! workspace, the `Rescan` command on a running engine, and the refusals.

use super::test_support::run_until;
use super::*;
use crate::dr::Rating;

/// ds-1 (cg-1) and ds-2 (cg-2), both in pg-a; ds-l not replicated. VM a on ds-1, b on ds-2.
const T: &str = r#"Topology(
    name: "rescan test",
    sites: [Site(id: "pa", name: "P", role: Protected), Site(id: "ny", name: "R", role: Recovery)],
    links: [Link(from: "pa", to: "ny", mbps: 100)],
    hosts: [Host(id: "h", site: "pa", cpus: 64, memory_gib: 512)],
    arrays: [
        Array(id: "ap", site: "pa", luns: [
            Lun(id: "l1", capacity_gib: 10, replication: Some(LunReplication(target: "l1r", rpo_minutes: 5, consistency_group: Some("cg-1")))),
            Lun(id: "l2", capacity_gib: 10, replication: Some(LunReplication(target: "l2r", rpo_minutes: 5, consistency_group: Some("cg-2")))),
            Lun(id: "ll", capacity_gib: 10),
        ]),
        Array(id: "ar", site: "ny", luns: [Lun(id: "l1r", capacity_gib: 10), Lun(id: "l2r", capacity_gib: 10)]),
    ],
    datastores: [
        Datastore(id: "ds-1", site: "pa", luns: ["l1"], throughput_mib_s: 2),
        Datastore(id: "ds-2", site: "pa", luns: ["l2"], throughput_mib_s: 2),
        Datastore(id: "ds-l", site: "pa", luns: ["ll"]),
        Datastore(id: "ds-1r", site: "ny", luns: ["l1r"]),
        Datastore(id: "ds-2r", site: "ny", luns: ["l2r"]),
    ],
    protection_groups: [ProtectionGroup(id: "pg-a", name: "A", datastores: ["ds-1", "ds-2"])],
    vms: [
        Vm(id: "a", uuid: "bbbbbbbb-0000-4000-8000-000000000001", host: "h", datastore: "ds-1",
           disk_mib: 1, vcpus: 2, memory_gib: 8, workload: Some(Workload(write_iops: 50, read_iops: 10))),
        Vm(id: "b", uuid: "bbbbbbbb-0000-4000-8000-000000000002", host: "h", datastore: "ds-2",
           disk_mib: 1, vcpus: 2, memory_gib: 8, workload: Some(Workload(write_iops: 50, read_iops: 10))),
    ],
)"#;

/// T with l2 moved into cg-1 (so ds-2 joins cg-1's group; cg-2 ends), and VM a listed on
/// ds-l (a placement the workspace must not take from the file).
fn edited() -> String {
    let s = T.replacen(
        r#"rpo_minutes: 5, consistency_group: Some("cg-2")"#,
        r#"rpo_minutes: 5, consistency_group: Some("cg-1")"#,
        1,
    );
    let s = s.replacen(
        r#"host: "h", datastore: "ds-1""#,
        r#"host: "h", datastore: "ds-l""#,
        1,
    );
    assert_ne!(s, T);
    s
}

fn topology(text: &str) -> Topology {
    Topology::from_ron_str(text, "rescan-test.ron").unwrap()
}

fn tags(e: &Engine, ds: &str) -> Vec<String> {
    crate::dr::discover_tags(e.topology())
        .into_iter()
        .find(|t| t.datastore == ds)
        .unwrap()
        .tags
}

/// (group id, its protected datastores), as the engine shows them.
fn groups(e: &Engine) -> Vec<(String, Vec<String>)> {
    e.snapshot()
        .groups
        .iter()
        .map(|g| {
            (
                g.id.clone(),
                g.pairs.iter().map(|p| p.datastore.clone()).collect(),
            )
        })
        .collect()
}

fn before_checks(e: &Engine) {
    assert_eq!(tags(e, "ds-2")[1], "replication:cg=cg-2");
    assert_eq!(
        e.impact("a", "ds-2").unwrap().rating,
        Rating::HeightenedMild,
        "other CG, same PG"
    );
    assert_eq!(
        groups(e),
        vec![
            ("cg-1".to_string(), vec!["ds-1".to_string()]),
            ("cg-2".to_string(), vec!["ds-2".to_string()]),
        ]
    );
}

/// The edited file adopted: tags, ratings and replication groups follow; placements stay.
fn after_checks(e: &Engine) {
    assert_eq!(
        tags(e, "ds-2"),
        vec![
            "replication:status=replicated",
            "replication:cg=cg-1",
            "replication:pg=pg-a"
        ]
    );
    assert_eq!(
        e.impact("a", "ds-2").unwrap().rating,
        Rating::None,
        "same CG"
    );
    assert_eq!(
        groups(e),
        vec![(
            "cg-1".to_string(),
            vec!["ds-1".to_string(), "ds-2".to_string()]
        )]
    );
    assert_eq!(e.location("a").unwrap().0, "ds-1", "VM placements stay");
    let saved = Topology::load(&e.workspace().root().join("topology.ron")).unwrap();
    assert_eq!(&saved, e.topology(), "topology.ron holds what was adopted");
    assert_eq!(saved.vm("a").unwrap().datastore, "ds-1");
}

/// Runs until no group has a cycle in flight.
fn between_cycles(e: &mut Engine) {
    let limit = e.now() + 30 * MINUTE;
    run_until(e, limit, "no cycle in flight", |e| {
        e.groups.iter().all(|g| g.transfer.is_none())
    });
}

/// Runs until group `id` publishes a recovery point newer than `after` (or fails).
fn run_until_published(e: &mut Engine, id: &str, after: Option<u64>) -> u64 {
    let limit = e.now() + 30 * MINUTE;
    while let Some(t) = e.next_event_time().filter(|&t| t <= limit) {
        e.advance(t).unwrap();
        let g = e
            .snapshot()
            .groups
            .into_iter()
            .find(|g| g.id == id)
            .unwrap();
        if let Some(c) = g.point_cycle.filter(|&c| Some(c) > after) {
            return c;
        }
    }
    panic!("group {id} published nothing newer than {after:?} within 30 minutes");
}

/// The replica of `vm`'s disk (on `replica`) holds the primary's bytes (on `ds`).
fn replica_matches(root: &Path, vm: &str, ds: &str, replica: &str) -> bool {
    let p = std::fs::read(root.join(format!("sites/pa/datastores/{ds}/{vm}/disk0.img"))).unwrap();
    let r = std::fs::read(root.join(format!("sites/ny/datastores/{replica}/{vm}/disk0.img")));
    r.is_ok_and(|r| r == p)
}

#[test]
fn opening_an_edited_topology_over_its_workspace_adopts_the_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    let e = Engine::create(&root, &topology(T), EngineOptions::default()).unwrap();
    before_checks(&e);
    e.close().unwrap();

    let mut e =
        Engine::open_or_create(&root, &topology(&edited()), EngineOptions::default()).unwrap();
    after_checks(&e);
    // The log says what changed.
    let log: Vec<String> = e.take_log().into_iter().map(|l| l.message).collect();
    assert!(
        log.iter()
            .any(|m| m.contains("Rescan") && m.contains("ds-2 now") && m.contains("-cg.cg-2")),
        "{log:#?}"
    );
    // The adopted group replicates both datastores.
    e.apply(Command::StopWorkloads).unwrap();
    run_until_published(&mut e, "cg-1", None);
    assert!(replica_matches(&root, "b", "ds-2", "ds-2r"));
    e.close().unwrap();

    // Reopened plainly, the adopted topology stands.
    let e = Engine::open(&root).unwrap();
    after_checks(&e);
}

#[test]
fn rescan_command_adopts_the_file_into_a_running_engine() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    let file = dir.path().join("t.ron");
    std::fs::write(&file, T).unwrap();
    let mut e = Engine::create(&root, &topology(T), EngineOptions::default()).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    let first = run_until_published(&mut e, "cg-1", None);
    run_until_published(&mut e, "cg-2", None);
    e.advance(e.now() + 2 * MINUTE).unwrap();
    // Between cycles: no transfer in flight in either group.
    between_cycles(&mut e);
    before_checks(&e);

    std::fs::write(&file, edited()).unwrap();
    let out = e.apply(Command::Rescan { file: file.clone() }).unwrap();
    assert!(
        matches!(&out, Outcome::Done(m) if m.contains("ds-2 now") && m.contains("t.ron")),
        "{out:?}"
    );
    after_checks(&e);
    // cg-1 ships ds-2 too at once, then goes on on its schedule; the guests never read a
    // stale block.
    let adopted = run_until_published(&mut e, "cg-1", Some(first));
    e.advance(e.now() + 6 * MINUTE).unwrap();
    assert!(e.snapshot().groups[0].point_cycle > Some(adopted));
    e.apply(Command::StopWorkloads).unwrap();
    // Twice: the first point may have been cut before the guests stopped.
    for _ in 0..2 {
        let last = e.snapshot().groups[0].point_cycle;
        run_until_published(&mut e, "cg-1", last);
    }
    let snap = e.snapshot();
    for vm in ["a", "b"] {
        let v = e.verify_vm(vm).unwrap();
        assert!(v.consistent && v.written_blocks > 0, "{v:?}");
        let v = snap.vms.iter().find(|v| v.id == vm).unwrap();
        assert_eq!(v.read_errors, 0, "{v:?}");
    }
    assert!(replica_matches(&root, "a", "ds-1", "ds-1r"));
    assert!(replica_matches(&root, "b", "ds-2", "ds-2r"));

    // A second rescan of the same file changes nothing.
    let bytes = std::fs::read(root.join("topology.ron")).unwrap();
    let out = e.apply(Command::Rescan { file }).unwrap();
    assert!(
        matches!(&out, Outcome::Done(m) if m.contains("nothing changed")),
        "{out:?}"
    );
    assert_eq!(std::fs::read(root.join("topology.ron")).unwrap(), bytes);
}

/// Applies `text` as a rescan of a running engine and through an open; both must be
/// refused with a message holding `names`, and topology.ron stays byte for byte.
fn assert_refused(text: &str, names: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    let file = dir.path().join("edited.ron");
    std::fs::write(&file, text).unwrap();
    let mut e = Engine::create(&root, &topology(T), EngineOptions::default()).unwrap();
    let bytes = std::fs::read(root.join("topology.ron")).unwrap();
    let err = e
        .apply(Command::Rescan { file: file.clone() })
        .unwrap_err()
        .to_string();
    for n in names.iter().chain(&["edited.ron", "rescan refused"]) {
        assert!(err.contains(n), "{n:?} in {err}");
    }
    assert_eq!(std::fs::read(root.join("topology.ron")).unwrap(), bytes);
    before_checks(&e);
    e.close().unwrap();

    let err = match Engine::open_or_create(&root, &topology(text), EngineOptions::default()) {
        Ok(_) => panic!("the open adopted {text}"),
        Err(e) => e.to_string(),
    };
    for n in names.iter().chain(&["topology.ron", "rescan refused"]) {
        assert!(err.contains(n), "{n:?} in {err}");
    }
    assert_eq!(std::fs::read(root.join("topology.ron")).unwrap(), bytes);
    // The refused open closed the workspace again: it opens, unchanged.
    let e = Engine::open(&root).unwrap();
    before_checks(&e);
}

#[test]
fn rescan_refuses_removing_a_datastore_that_holds_an_instance() {
    // ds-2 gone (its LUNs too), VM b listed elsewhere: the workspace still holds b there.
    let text = T
        .replacen(
            r#"        Datastore(id: "ds-2", site: "pa", luns: ["l2"], throughput_mib_s: 2),
"#,
            "",
            1,
        )
        .replacen(
            r#"datastores: ["ds-1", "ds-2"]"#,
            r#"datastores: ["ds-1"]"#,
            1,
        )
        .replacen(
            r#"host: "h", datastore: "ds-2""#,
            r#"host: "h", datastore: "ds-l""#,
            1,
        );
    assert!(!text.contains(r#"id: "ds-2""#));
    assert_refused(&text, &[r#"datastore "ds-2""#, "holds instances (b)"]);
}

#[test]
fn rescan_refuses_removing_a_vm() {
    let text = T.replacen(
        r#"        Vm(id: "b", uuid: "bbbbbbbb-0000-4000-8000-000000000002", host: "h", datastore: "ds-2",
           disk_mib: 1, vcpus: 2, memory_gib: 8, workload: Some(Workload(write_iops: 50, read_iops: 10))),
"#,
        "",
        1,
    );
    assert!(!text.contains(r#"id: "b""#));
    assert_refused(&text, &[r#"VM "b""#, "removed"]);
}

#[test]
fn rescan_refuses_changing_a_group_with_a_cycle_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    let file = dir.path().join("edited.ron");
    std::fs::write(&file, edited()).unwrap();
    let mut e = Engine::create(&root, &topology(T), EngineOptions::default()).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    // The first cycle of cg-2 cut and on the wire.
    let limit = e.now() + 5 * MINUTE;
    run_until(&mut e, limit, "cg-2's first cycle on the wire", |e| {
        e.groups
            .iter()
            .any(|g| g.spec.id == "cg-2" && g.transfer.is_some())
    });
    let bytes = std::fs::read(root.join("topology.ron")).unwrap();
    let err = e.apply(Command::Rescan { file }).unwrap_err().to_string();
    // Both groups change (cg-1 gains ds-2, cg-2 ends); both have their first cycle out.
    assert!(
        err.contains("replication group cg-") && err.contains("is in flight"),
        "{err}"
    );
    assert_eq!(std::fs::read(root.join("topology.ron")).unwrap(), bytes);
    before_checks(&e);
    // The refused rescan left the cycle alone: it publishes.
    run_until_published(&mut e, "cg-2", None);
}

/// A crash right after topology.ron was replaced (before engine.ron): the reopened
/// workspace runs the adopted topology, its replication groups rebuilt from it.
#[test]
fn a_crash_after_the_topology_is_saved_reopens_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    let file = dir.path().join("edited.ron");
    std::fs::write(&file, edited()).unwrap();
    let mut e = Engine::create(&root, &topology(T), EngineOptions::default()).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    run_until_published(&mut e, "cg-1", None);
    run_until_published(&mut e, "cg-2", None);
    between_cycles(&mut e);
    crate::fault::arm("rescan.topology-saved", 1);
    let err = e.apply(Command::Rescan { file }).unwrap_err();
    crate::fault::disarm();
    assert!(err.to_string().contains("rescan.topology-saved"), "{err}");
    drop(e);

    let mut e = Engine::open(&root).unwrap();
    after_checks(&e);
    e.apply(Command::StopWorkloads).unwrap();
    for _ in 0..2 {
        let last = e.snapshot().groups[0].point_cycle;
        run_until_published(&mut e, "cg-1", last);
    }
    assert!(e.verify_vm("b").unwrap().consistent);
    assert!(replica_matches(&root, "b", "ds-2", "ds-2r"));
}
