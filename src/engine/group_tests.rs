//! Group migration on real files: the whole CG moves, the sources stay a verified
//! fail-back until the destination CG has published the switched VMs, and only then go.

use super::super::*;
use super::GroupPhase;
use crate::disk::{Horizon, VmDisk};
use crate::engine::test_support::run_until;

/// cg-a = {ds-1, ds-2} and cg-b = {ds-3, ds-4}, all in pg-1 (a move between them is rated
/// heightened-mild); ds-5 replicated alone. Three VMs in cg-a, one in cg-b. A slow link
/// (8 Mbit/s) so a cycle is on the wire for seconds.
fn topology() -> Topology {
    let text = r#"Topology(
    name: "group migration test",
    sites: [Site(id: "pa", name: "P", role: Protected), Site(id: "ny", name: "R", role: Recovery)],
    links: [Link(from: "pa", to: "ny", mbps: 8)],
    hosts: [Host(id: "h", site: "pa", cpus: 64, memory_gib: 512),
            Host(id: "r1", site: "ny", cpus: 64, memory_gib: 512)],
    arrays: [
        Array(id: "ap", site: "pa", luns: [
            Lun(id: "l1", capacity_gib: 10, replication: Some(LunReplication(target: "l1r", rpo_minutes: 2, consistency_group: Some("cg-a")))),
            Lun(id: "l2", capacity_gib: 10, replication: Some(LunReplication(target: "l2r", rpo_minutes: 2, consistency_group: Some("cg-a")))),
            Lun(id: "l3", capacity_gib: 10, replication: Some(LunReplication(target: "l3r", rpo_minutes: 2, consistency_group: Some("cg-b")))),
            Lun(id: "l4", capacity_gib: 10, replication: Some(LunReplication(target: "l4r", rpo_minutes: 2, consistency_group: Some("cg-b")))),
            Lun(id: "l5", capacity_gib: 10, replication: Some(LunReplication(target: "l5r", rpo_minutes: 2))),
        ]),
        Array(id: "ar", site: "ny", luns: [Lun(id: "l1r", capacity_gib: 10), Lun(id: "l2r", capacity_gib: 10),
            Lun(id: "l3r", capacity_gib: 10), Lun(id: "l4r", capacity_gib: 10), Lun(id: "l5r", capacity_gib: 10)]),
    ],
    datastores: [
        Datastore(id: "ds-1", site: "pa", luns: ["l1"], throughput_mib_s: 2),
        Datastore(id: "ds-2", site: "pa", luns: ["l2"], throughput_mib_s: 2),
        Datastore(id: "ds-3", site: "pa", luns: ["l3"], throughput_mib_s: 2),
        Datastore(id: "ds-4", site: "pa", luns: ["l4"], throughput_mib_s: 2),
        Datastore(id: "ds-5", site: "pa", luns: ["l5"], throughput_mib_s: 2),
        Datastore(id: "ds-1r", site: "ny", luns: ["l1r"]),
        Datastore(id: "ds-2r", site: "ny", luns: ["l2r"]),
        Datastore(id: "ds-3r", site: "ny", luns: ["l3r"]),
        Datastore(id: "ds-4r", site: "ny", luns: ["l4r"]),
        Datastore(id: "ds-5r", site: "ny", luns: ["l5r"]),
    ],
    protection_groups: [
        ProtectionGroup(id: "pg-1", name: "One", datastores: ["ds-1", "ds-2", "ds-3", "ds-4"]),
    ],
    vms: [
        Vm(id: "a1", uuid: "bbbbbbbb-0000-4000-8000-000000000001", host: "h", datastore: "ds-1",
           disk_mib: 2, vcpus: 2, memory_gib: 8, priority: 2, workload: Some(Workload(write_iops: 60, read_iops: 20))),
        Vm(id: "a2", uuid: "bbbbbbbb-0000-4000-8000-000000000002", host: "h", datastore: "ds-1",
           disk_mib: 1, vcpus: 2, memory_gib: 8, priority: 1, workload: Some(Workload(write_iops: 60, read_iops: 20))),
        Vm(id: "b1", uuid: "bbbbbbbb-0000-4000-8000-000000000003", host: "h", datastore: "ds-2",
           disk_mib: 2, vcpus: 2, memory_gib: 8, priority: 3, workload: Some(Workload(write_iops: 60, read_iops: 20))),
        Vm(id: "c1", uuid: "bbbbbbbb-0000-4000-8000-000000000004", host: "h", datastore: "ds-3",
           disk_mib: 1, vcpus: 2, memory_gib: 8, priority: 1, workload: Some(Workload(write_iops: 60, read_iops: 20))),
    ],
)"#;
    Topology::from_ron_str(text, "group-test.ron").unwrap()
}

const MEMBERS: [&str; 3] = ["a1", "a2", "b1"];

fn engine(dir: &Path) -> Engine {
    let opts = EngineOptions {
        seed: 7,
        ..EngineOptions::default()
    };
    let mut e = Engine::create(&dir.join("ws"), &topology(), opts).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(20 * SECOND).unwrap();
    e
}

fn phase(e: &Engine) -> Option<GroupPhase> {
    e.snapshot().group_migrations.last().map(|g| g.phase)
}

/// Starts the confirmed move of cg-a to cg-b (the tests' group migration).
fn start_group(e: &mut Engine) -> Outcome {
    e.apply(Command::MigrateGroup {
        from: "cg-a".into(),
        to: "cg-b".into(),
        confirm: true,
    })
    .unwrap()
}

/// Runs until every member has switched to its target.
fn run_to_switch(e: &mut Engine) {
    run_until(e, 5 * MINUTE, "the switch", |e| {
        phase(e) == Some(GroupPhase::Switched)
    });
}

/// Verifies the image at `img` as VM `vm`'s complete copy against the journal.
fn verify_image(e: &Engine, vm: &str, img: &Path) -> disk::VmVerify {
    let uuid = disk::raw_uuid(&e.topology().vm(vm).unwrap().uuid).unwrap();
    let journal = disk::read_journal(&e.workspace().journal_path("pa")).unwrap();
    let j = Journal {
        entries: journal
            .entries
            .into_iter()
            .filter(|x| x.uuid == uuid)
            .collect(),
        last_seq: journal.last_seq,
    };
    let mut reader = ImageFile::open_read_only(img).unwrap();
    let mut disks = [VmDisk {
        name: vm.into(),
        uuid,
        reader: &mut reader,
    }];
    let report = disk::verify_set(&mut disks, &j, Horizon::LastJournaled).unwrap();
    report.vms.into_iter().next().unwrap()
}

fn source_dir(e: &Engine, vm: &str) -> PathBuf {
    let ds = e.topology().vm(vm).unwrap().datastore.clone();
    e.workspace().datastore_dir(&ds).unwrap().join(vm)
}

/// Which replica datastore the failover dry run would recover each member from.
fn elected(e: &Engine) -> BTreeMap<String, String> {
    let plan = e
        .scan_failover(&["pg-1".into()], FailoverKind::Unplanned)
        .unwrap();
    plan.vms
        .iter()
        .filter_map(|p| {
            let vm = p.election.vm.clone()?;
            let from = p.election.recover_from.as_ref()?;
            let c = p.election.instances.iter().find(|c| &c.path == from)?;
            Some((vm, c.datastore.clone()))
        })
        .collect()
}

#[test]
fn the_whole_cg_moves_and_the_sources_go_only_after_a_published_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    let out = start_group(&mut e);
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
    for vm in MEMBERS {
        assert!(e.is_migrating(vm), "{vm} copies");
    }
    assert!(!e.is_migrating("c1"));
    // Copying: a cycle of cg-b at once ships the targets as they are (in progress).
    e.apply(Command::ReplicateNow {
        datastore: "ds-3".into(),
    })
    .unwrap();
    let sources: Vec<PathBuf> = MEMBERS.iter().map(|vm| source_dir(&e, vm)).collect();
    // cg-b publishes while the copies run: its replica now holds in-progress targets, and
    // the election drops them for the complete sources on cg-a's replicas.
    let g = e.dest_group("cg-b").unwrap();
    let cycle = |e: &Engine| e.groups[g].published.as_ref().map(|p| p.cycle);
    let before = cycle(&e);
    run_until(&mut e, MINUTE, "cg-b's cycle", |e| cycle(e) != before);
    assert_eq!(phase(&e), Some(GroupPhase::Copying));
    let plan = e
        .scan_failover(&["pg-1".into()], FailoverKind::Unplanned)
        .unwrap();
    let a1 = plan
        .vms
        .iter()
        .find(|p| p.election.vm.as_deref() == Some("a1"))
        .unwrap();
    assert!(
        a1.election.instances.iter().any(|c| c.in_progress_target()
            && c.datastore.starts_with("ds-3")
            || c.in_progress_target() && c.datastore.starts_with("ds-4")),
        "{a1:#?}"
    );
    let copying = elected(&e);
    for vm in MEMBERS {
        let ds = &copying[vm];
        assert!(
            ds == "ds-1r" || ds == "ds-2r",
            "{vm} from {ds} while copying"
        );
    }

    // Until the switch, a copied VM is held (and keeps writing).
    run_to_switch(&mut e);
    let view = e.snapshot().group_migrations[0].clone();
    let switched_at = view.switched_at.unwrap();
    for m in &view.members {
        assert_eq!(m.on, m.to, "{m:?}");
        assert!(m.to == "ds-3" || m.to == "ds-4", "{m:?}");
    }
    // Both destination datastores are used (free space evened out).
    assert!(view.members.iter().any(|m| m.to == "ds-3"));
    assert!(view.members.iter().any(|m| m.to == "ds-4"));
    let writes_at_switch: u64 = e.snapshot().vms.iter().map(|v| v.writes).sum();

    // Switched, not yet published: the sources hold every write (the fail-back), the
    // election still picks them.
    e.advance(e.now() + SECOND).unwrap();
    assert_eq!(
        phase(&e),
        Some(GroupPhase::Switched),
        "cg-b's cycle is on the wire"
    );
    assert!(e.snapshot().vms.iter().map(|v| v.writes).sum::<u64>() > writes_at_switch);
    assert!(e.snapshot().group_migrations[0].reverse_writes > 0);
    for (vm, src) in MEMBERS.iter().zip(&sources) {
        assert!(src.exists(), "{vm}'s source stays");
        let v = verify_image(&e, vm, &src.join("disk0.img"));
        assert!(v.consistent && v.writes_lost == 0, "{vm}'s source: {v:?}");
        let v = e.verify_vm(vm).unwrap();
        assert!(
            v.consistent && v.writes_lost == 0,
            "{vm} on its target: {v:?}"
        );
    }
    let during = elected(&e);
    for vm in MEMBERS {
        let ds = &during[vm];
        assert!(ds == "ds-1r" || ds == "ds-2r", "{vm} from {ds}");
    }

    // Event by event: the sources vanish only once cg-b published a point cut after the
    // switch.
    while sources.iter().any(|s| s.exists()) {
        let t = e.next_event_time().unwrap();
        assert!(t < 10 * MINUTE, "the group never succeeded");
        e.advance(t).unwrap();
        if sources.iter().any(|s| !s.exists()) {
            let p = e.groups[g].published.clone().unwrap();
            assert!(p.cut_at >= switched_at, "{p:?} vs switch {switched_at}");
        }
    }
    let view = e.snapshot().group_migrations[0].clone();
    assert_eq!(view.phase, GroupPhase::Succeeded);
    assert!(view.point_cut_at.unwrap() >= switched_at);
    assert!(view.point_published_at.unwrap() <= view.sources_deleted_at.unwrap());
    assert!(e.expect_group_migrated("cg-a", "cg-b").0);

    // Every VM on cg-b, one instance each, nothing lost; the guests keep running.
    e.advance(e.now() + 5 * SECOND).unwrap();
    for vm in MEMBERS {
        let (ds, _) = e.location(vm).unwrap();
        assert!(ds == "ds-3" || ds == "ds-4", "{vm} on {ds}");
        assert_eq!(e.instances_of(vm).unwrap().len(), 1, "{vm}");
        let v = e.verify_vm(vm).unwrap();
        assert!(v.consistent && v.writes_lost == 0, "{vm}: {v:?}");
        assert_eq!(e.topology().vm(vm).unwrap().datastore, ds);
        assert_eq!(e.migrations_done(vm), 1);
    }
    assert_eq!(
        e.snapshot().vms.iter().map(|v| v.read_errors).sum::<u64>(),
        0
    );
    // The recovery manager's locations follow.
    let loc: Locations = read_ron(&e.workspace().state_dir().join("locations.ron")).unwrap();
    for vm in MEMBERS {
        assert_eq!(loc.vms[vm].datastore, e.location(vm).unwrap().0);
    }
    // After success the election picks the completed targets on cg-b's replicas.
    let after = elected(&e);
    for vm in MEMBERS {
        let ds = &after[vm];
        assert!(ds == "ds-3r" || ds == "ds-4r", "{vm} from {ds}");
    }
}

#[test]
fn a_disaster_after_the_switch_recovers_the_sources() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    start_group(&mut e);
    run_to_switch(&mut e);
    // A cycle of cg-a after the switch ships the reverse-mirrored writes.
    e.advance(e.now() + SECOND / 10).unwrap();
    e.apply(Command::ReplicateNow {
        datastore: "ds-1".into(),
    })
    .unwrap();
    e.advance(e.now() + SECOND / 5).unwrap();
    assert_eq!(phase(&e), Some(GroupPhase::Switched));
    e.apply(Command::Disaster { site: "pa".into() }).unwrap();
    e.advance(e.now() + 2 * SECOND).unwrap();
    assert_eq!(phase(&e), Some(GroupPhase::Interrupted));
    e.apply(Command::Failover {
        protection_groups: vec!["pg-1".into()],
        kind: FailoverKind::Unplanned,
        point: None,
    })
    .unwrap();
    let report = e.failovers().last().unwrap().clone();
    assert_eq!(report.state, FailoverState::Done, "{report:#?}");
    for vm in MEMBERS {
        let r = report
            .results
            .iter()
            .find(|r| r.vm.as_deref() == Some(vm))
            .unwrap();
        assert!(r.recovered && r.consistent == Some(true), "{r:#?}");
        let ds = e.location(vm).unwrap().0;
        assert!(ds == "ds-1r" || ds == "ds-2r", "{vm} came back from {ds}");
    }
}

#[test]
fn a_cancel_rolls_the_whole_group_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    start_group(&mut e);
    e.advance(e.now() + SECOND / 2).unwrap();
    e.apply(Command::CancelMigration { vm: "a2".into() })
        .unwrap();
    assert_eq!(phase(&e), Some(GroupPhase::RolledBack));
    e.advance(e.now() + 3 * SECOND).unwrap();
    for vm in MEMBERS {
        assert!(!e.is_migrating(vm), "{vm}");
        let ds = e.location(vm).unwrap().0;
        assert!(ds == "ds-1" || ds == "ds-2", "{vm} stays on {ds}");
        assert_eq!(e.instances_of(vm).unwrap().len(), 1, "{vm}: target deleted");
        let v = e.verify_vm(vm).unwrap();
        assert!(v.consistent && v.writes_lost == 0, "{vm}: {v:?}");
    }
    assert!(!e.expect_group_migrated("cg-a", "cg-b").0);
}

#[test]
fn a_reopen_while_switched_carries_on_to_success() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    start_group(&mut e);
    run_to_switch(&mut e);
    e.advance(e.now() + SECOND / 2).unwrap();
    assert_eq!(phase(&e), Some(GroupPhase::Switched));
    // A crash: dropped without closing.
    drop(e);
    let mut e = Engine::open(&dir.path().join("ws")).unwrap();
    assert_eq!(phase(&e), Some(GroupPhase::Switched));
    for vm in MEMBERS {
        let ds = e.location(vm).unwrap().0;
        assert!(
            ds == "ds-3" || ds == "ds-4",
            "{vm} reopens on its target, not {ds}"
        );
    }
    run_until(&mut e, 15 * MINUTE, "success", |e| {
        phase(e) == Some(GroupPhase::Succeeded)
    });
    e.advance(e.now() + 2 * SECOND).unwrap();
    for vm in MEMBERS {
        assert_eq!(e.instances_of(vm).unwrap().len(), 1, "{vm}");
        let v = e.verify_vm(vm).unwrap();
        assert!(v.consistent && v.writes_lost == 0, "{vm}: {v:?}");
    }
    // And a clean reopen after success opens every VM on cg-b.
    e.close().unwrap();
    let e = Engine::open(&dir.path().join("ws")).unwrap();
    for vm in MEMBERS {
        let ds = e.location(vm).unwrap().0;
        assert!(ds == "ds-3" || ds == "ds-4", "{vm} on {ds}");
    }
}

#[test]
fn an_unconfirmed_move_is_refused_and_bad_ids_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    let out = e
        .apply(Command::MigrateGroup {
            from: "cg-a".into(),
            to: "cg-b".into(),
            confirm: false,
        })
        .unwrap();
    let Outcome::Refused(msg) = out else {
        panic!("{out:?}")
    };
    assert!(msg.contains("heightened-mild"), "{msg}");
    assert!(MEMBERS.iter().all(|vm| !e.is_migrating(vm)));
    assert!(e.snapshot().group_migrations.is_empty());
    for (from, to, word) in [
        ("cg-x", "cg-b", "cg-x"),
        ("cg-a", "cg-nope", "cg-nope"),
        ("cg-a", "cg-a", "same"),
        ("ds-1", "cg-b", "ds-1"),
    ] {
        let err = e
            .apply(Command::MigrateGroup {
                from: from.into(),
                to: to.into(),
                confirm: true,
            })
            .unwrap_err();
        assert!(matches!(err, EngineError::Rule { .. }), "{err:?}");
        assert!(err.to_string().contains(word), "{err}");
    }
    // One at a time.
    start_group(&mut e);
    let err = e
        .apply(Command::MigrateGroup {
            from: "cg-b".into(),
            to: "cg-a".into(),
            confirm: true,
        })
        .unwrap_err();
    assert!(err.to_string().contains("still running"), "{err}");
}

#[test]
fn a_crash_while_the_group_starts_rolls_its_copies_back_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let mut e = engine(dir.path());
    // The process dies as the second member's target is created: the first member's copy
    // is on disk as a migration record, the group operation itself was never saved.
    crate::fault::arm("migrate.target-created", 2);
    let crashed = e.apply(Command::MigrateGroup {
        from: "cg-a".into(),
        to: "cg-b".into(),
        confirm: true,
    });
    assert!(crate::fault::tripped().is_some(), "{crashed:?}");
    crate::fault::disarm();
    drop(e);

    let mut e = Engine::open(&ws).unwrap();
    assert!(
        e.snapshot().group_migrations.is_empty(),
        "no group was saved"
    );
    for vm in MEMBERS {
        assert!(!e.is_migrating(vm), "{vm}: not left to move on its own");
        let ds = e.location(vm).unwrap().0;
        assert!(ds == "ds-1" || ds == "ds-2", "{vm} stays on {ds}");
        assert_eq!(e.instances_of(vm).unwrap().len(), 1, "{vm}: target deleted");
    }
    assert!(
        e.take_log()
            .iter()
            .any(|l| l.message.contains("interrupted while it started")),
        "the roll-back is logged"
    );
    e.advance(e.now() + 2 * SECOND).unwrap();
    for vm in MEMBERS {
        let v = e.verify_vm(vm).unwrap();
        assert!(v.consistent && v.writes_lost == 0, "{vm}: {v:?}");
    }
    // The operator can start it again.
    let out = start_group(&mut e);
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
}
