//! Replication and failover on real files, checked with the stamp verifier.

use super::guest::splitmix;
use super::test_support::run_until;
use super::*;
use crate::recovery;

/// cg-1 = {ds-1, ds-2} (RPO `rpo` min) in pg-a; ds-3 standalone (RPO 2 min) in pg-b; ds-l
/// not replicated. Three VMs in the CG, one on ds-3.
pub(super) fn topology(mbps: f64, rpo: u32, iops: u32) -> Topology {
    let text = format!(
        r#"Topology(
    name: "replication test",
    sites: [Site(id: "pa", name: "P", role: Protected), Site(id: "ny", name: "R", role: Recovery)],
    links: [Link(from: "pa", to: "ny", mbps: {mbps})],
    hosts: [Host(id: "h", site: "pa", cpus: 64, memory_gib: 512),
            Host(id: "r1", site: "ny", cpus: 4, memory_gib: 16),
            Host(id: "r2", site: "ny", cpus: 8, memory_gib: 64)],
    arrays: [
        Array(id: "ap", site: "pa", luns: [
            Lun(id: "l1", capacity_gib: 10, replication: Some(LunReplication(target: "l1r", rpo_minutes: {rpo}, consistency_group: Some("cg-1")))),
            Lun(id: "l2", capacity_gib: 10, replication: Some(LunReplication(target: "l2r", rpo_minutes: {rpo}, consistency_group: Some("cg-1")))),
            Lun(id: "l3", capacity_gib: 10, replication: Some(LunReplication(target: "l3r", rpo_minutes: 2))),
            Lun(id: "ll", capacity_gib: 10),
        ]),
        Array(id: "ar", site: "ny", luns: [Lun(id: "l1r", capacity_gib: 10), Lun(id: "l2r", capacity_gib: 10), Lun(id: "l3r", capacity_gib: 10)]),
    ],
    datastores: [
        Datastore(id: "ds-1", site: "pa", luns: ["l1"], throughput_mib_s: 2),
        Datastore(id: "ds-2", site: "pa", luns: ["l2"], throughput_mib_s: 2),
        Datastore(id: "ds-3", site: "pa", luns: ["l3"], throughput_mib_s: 2),
        Datastore(id: "ds-l", site: "pa", luns: ["ll"]),
        Datastore(id: "ds-1r", site: "ny", luns: ["l1r"]),
        Datastore(id: "ds-2r", site: "ny", luns: ["l2r"]),
        Datastore(id: "ds-3r", site: "ny", luns: ["l3r"]),
    ],
    protection_groups: [
        ProtectionGroup(id: "pg-a", name: "A", datastores: ["ds-1", "ds-2"]),
        ProtectionGroup(id: "pg-b", name: "B", datastores: ["ds-3"]),
    ],
    vms: [
        Vm(id: "a1", uuid: "aaaaaaaa-0000-4000-8000-000000000001", host: "h", datastore: "ds-1",
           disk_mib: 2, vcpus: 2, memory_gib: 8, priority: 2, workload: Some(Workload(write_iops: {iops}, read_iops: 20))),
        Vm(id: "a2", uuid: "aaaaaaaa-0000-4000-8000-000000000002", host: "h", datastore: "ds-1",
           disk_mib: 1, vcpus: 2, memory_gib: 8, priority: 1, workload: Some(Workload(write_iops: {iops}, read_iops: 20))),
        Vm(id: "b1", uuid: "aaaaaaaa-0000-4000-8000-000000000003", host: "h", datastore: "ds-2",
           disk_mib: 2, vcpus: 2, memory_gib: 8, priority: 3, workload: Some(Workload(write_iops: {iops}, read_iops: 20))),
        Vm(id: "c1", uuid: "aaaaaaaa-0000-4000-8000-000000000004", host: "h", datastore: "ds-3",
           disk_mib: 1, vcpus: 2, memory_gib: 8, priority: 1, workload: Some(Workload(write_iops: {iops}, read_iops: 20))),
    ],
)"#
    );
    Topology::from_ron_str(&text, "replication-test.ron").unwrap()
}

pub(super) fn opts(seed: u64) -> EngineOptions {
    EngineOptions {
        seed,
        ..EngineOptions::default()
    }
}

/// Runs one event at a time until `until`; calls `f` after every event that published a
/// recovery point (with the group's index).
fn run_watching(e: &mut Engine, until: SimTime, mut f: impl FnMut(&mut Engine, usize)) {
    let cycles = |e: &Engine| -> Vec<Option<u64>> {
        e.groups
            .iter()
            .map(|g| g.published.as_ref().map(|p| p.cycle))
            .collect()
    };
    let mut before = cycles(e);
    while let Some(t) = e.next_event_time() {
        if t > until {
            break;
        }
        e.advance(t).unwrap();
        let after = cycles(e);
        for g in 0..after.len() {
            if after[g] != before[g] {
                f(e, g);
            }
        }
        before = after;
    }
    e.advance(until).unwrap();
}

/// Checks that the replicas of group `g` hold exactly the state at its last cut: every VM
/// of the group, elected on the replicas, verified against the journal cut at `cut_seq`
/// (nothing newer, nothing missing, nothing torn).
fn assert_point_is_the_cut(e: &Engine, g: usize) {
    let grp = &e.groups[g];
    let point = grp.published.clone().unwrap();
    let replicas: Vec<String> = grp.spec.pairs.iter().map(|p| p.replica.clone()).collect();
    let elections = recovery::scan_and_elect_in(&e.ws, &replicas, |_| false).unwrap();
    let journal = disk::read_journal(&e.ws.journal_path("pa")).unwrap();
    let cut = journal.up_to(point.cut_seq);
    let mut images = Vec::new();
    for el in &elections {
        let path = el
            .recover_from
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no winner on the replicas: {el:#?}", el.uuid));
        let img = ImageFile::open_read_only(&e.ws.root().join(path).join("disk0.img")).unwrap();
        images.push((
            el.vm.clone().unwrap(),
            disk::raw_uuid(&el.uuid).unwrap(),
            img,
        ));
    }
    let mut disks = disk::vm_disks(&mut images);
    let report = disk::verify_set(&mut disks, &cut, Horizon::LastJournaled).unwrap();
    assert!(
        report.consistent,
        "group {} cycle {} (cut at seq {}) is not the cut state: {report:#?}",
        grp.spec.id, point.cycle, point.cut_seq
    );
    // And, as a recovered set, write-order consistent with S from its own images.
    let mut disks = disk::vm_disks(&mut images);
    let report = disk::verify_set(&mut disks, &journal, Horizon::FromImages).unwrap();
    assert!(report.consistent, "{report:#?}");
}

#[test]
fn every_published_point_of_a_cg_is_its_cut_across_seeds() {
    for seed in 1..=6u64 {
        let dir = tempfile::tempdir().unwrap();
        // 20 Mbit/s: a cycle of a few hundred KiB takes a good fraction of a second, so
        // guests write during every transfer.
        let mut e =
            Engine::create(&dir.path().join("ws"), &topology(20.0, 1, 400), opts(seed)).unwrap();
        e.apply(Command::StartWorkloads).unwrap();
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut checked = 0;
        let mut t = 0;
        for _ in 0..12 {
            t += SECOND * (5 + splitmix(&mut rng) % 40);
            run_watching(&mut e, t, |e, g| {
                assert_point_is_the_cut(e, g);
                checked += 1;
            });
            // Random operator actions between checks.
            match splitmix(&mut rng) % 6 {
                0 => {
                    e.apply(Command::ReplicateNow {
                        datastore: "ds-2".into(),
                    })
                    .unwrap();
                }
                1 => {
                    e.apply(Command::LinkDown).unwrap();
                }
                2 => {
                    e.apply(Command::LinkUp).unwrap();
                }
                3 if !e.is_migrating("a2") => {
                    let to = if e.location("a2").unwrap().0 == "ds-1" {
                        "ds-2"
                    } else {
                        "ds-1"
                    };
                    e.apply(Command::Migrate {
                        vm: "a2".into(),
                        to: to.into(),
                        mode: CopyMode::Mirror,
                        confirm: false,
                    })
                    .unwrap();
                }
                _ => {}
            }
        }
        e.apply(Command::LinkUp).unwrap();
        run_watching(&mut e, t + 3 * MINUTE, |e, g| {
            assert_point_is_the_cut(e, g);
            checked += 1;
        });
        assert!(checked >= 6, "seed {seed}: only {checked} points published");
        for vm in ["a1", "a2", "b1", "c1"] {
            assert!(e.verify_vm(vm).unwrap().consistent);
        }
    }
}

/// Distinct blocks of `uuid` written with seq in (after, upto].
fn distinct_blocks(e: &Engine, uuid: &str, after: u64, upto: u64) -> u64 {
    let j = disk::read_journal(&e.ws.journal_path("pa")).unwrap();
    let u = disk::raw_uuid(uuid).unwrap();
    let set: std::collections::BTreeSet<u64> = j
        .entries
        .iter()
        .filter(|x| x.uuid == u && x.seq > after && x.seq <= upto)
        .map(|x| x.block)
        .collect();
    set.len() as u64
}

#[test]
fn link_down_then_up_ships_only_the_changed_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = topology(1000.0, 5, 50);
    t.vms.retain(|v| v.id == "c1");
    t.vms[0].disk_mib = 64;
    t.vms[0].workload = Some(crate::topology::Workload {
        write_iops: 5,
        read_iops: 5,
    });
    let mut e = Engine::create(&dir.path().join("ws"), &t, opts(3)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(MINUTE).unwrap();
    let g = e.group_of("ds-3").unwrap();
    let first = e.groups[g].published.clone().unwrap();
    assert_eq!(first.cut_at, 0, "the first cycle cuts at time 0");
    e.apply(Command::LinkDown).unwrap();
    e.advance(10 * MINUTE).unwrap();
    let during = e.groups[g].published.clone().unwrap();
    assert_eq!(
        during.cycle, first.cycle,
        "nothing publishes while the link is down"
    );
    let shipped_before = e.groups[g].saved.bytes_shipped;
    e.apply(Command::LinkUp).unwrap();
    e.advance(e.now).unwrap();
    let cut = e.groups[g].transfer.as_ref().unwrap().manifest.clone();
    e.advance(e.now + MINUTE).unwrap();
    let after = e.groups[g].published.clone().unwrap();
    assert_eq!(after.cycle, cut.cycle);
    let changed = distinct_blocks(
        &e,
        "aaaaaaaa-0000-4000-8000-000000000004",
        during.cut_seq,
        cut.cut_seq,
    );
    let shipped = e.groups[g].saved.bytes_shipped - shipped_before;
    let changed_bytes = changed * BLOCK_SIZE as u64;
    assert!(
        changed > 100,
        "the guest wrote while the link was down ({changed} blocks)"
    );
    assert!(
        shipped >= changed_bytes && shipped as f64 <= changed_bytes as f64 * 1.1,
        "shipped {shipped} bytes for {changed_bytes} changed bytes"
    );
    assert!(shipped < 64 * 1024 * 1024 / 4, "far less than the image");
    assert_point_is_the_cut(&e, g);
}

#[test]
fn a_crash_during_a_transfer_leaves_the_previous_point_published() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    // 1 Mbit/s: the cycle takes seconds.
    let mut e = Engine::create(&ws, &topology(1.0, 5, 200), opts(5)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(2 * MINUTE).unwrap();
    let g = e.group_of("ds-1").unwrap();
    let before = e.groups[g].published.clone().unwrap();
    let replica = ws.join("sites/ny/datastores/ds-1r/a1/disk0.img");
    let bytes_before = std::fs::read(&replica).unwrap();
    e.apply(Command::ReplicateNow {
        datastore: "ds-1".into(),
    })
    .unwrap();
    let ends = e.groups[g].transfer.as_ref().unwrap().ends_at;
    e.advance(ends - 1).unwrap();
    assert!(e.groups[g].transfer.is_some(), "mid-transfer");
    // Crash: no close.
    drop(e);
    assert_eq!(std::fs::read(&replica).unwrap(), bytes_before);
    let mut e = Engine::open(&ws).unwrap();
    let log: Vec<String> = e.take_log().into_iter().map(|l| l.message).collect();
    assert!(
        log.iter().any(|l| l.contains("staging was discarded")),
        "{log:#?}"
    );
    assert_eq!(e.groups[g].published.as_ref().unwrap(), &before);
    assert_eq!(std::fs::read(&replica).unwrap(), bytes_before);
    assert!(!ws.join("sites/ny/replication/cg.cg-1.staging").exists());
    // The next cycle ships what changed since the published point (tracking rebuilt by
    // comparing with the replicas) and is the cut.
    e.apply(Command::ReplicateNow {
        datastore: "ds-1".into(),
    })
    .unwrap();
    e.advance(e.now + 5 * MINUTE).unwrap();
    assert!(e.groups[g].published.as_ref().unwrap().cycle > before.cycle);
    let g2 = e.group_of("ds-2").unwrap();
    assert_eq!(g, g2);
    e.apply(Command::StopWorkloads).unwrap();
    e.apply(Command::ReplicateNow {
        datastore: "ds-1".into(),
    })
    .unwrap();
    e.advance(e.now + 5 * MINUTE).unwrap();
    assert_point_is_the_cut(&e, g);
}

#[test]
fn a_crash_while_a_published_cycle_is_cleaned_up_opens_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let mut e = Engine::create(&ws, &topology(100.0, 5, 200), opts(6)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(6 * MINUTE).unwrap();
    let g = e.group_of("ds-1").unwrap();
    let published = e.groups[g].published.clone().unwrap();
    assert!(published.cycle >= 2);
    drop(e);
    // The state a SIGKILL inside the cleanup left (seen in tests/crash_replication.rs):
    // the cycle is published, its commit record is still there, and the staging area is
    // partly removed — its manifest and some deltas gone.
    let rep = ws.join("sites/ny/replication");
    std::fs::write(rep.join("cg.cg-1.commit"), published.cycle.to_string()).unwrap();
    std::fs::create_dir_all(rep.join("cg.cg-1.staging/ds-1r/a1")).unwrap();
    let mut e = Engine::open(&ws).unwrap();
    assert_eq!(e.groups[g].published.as_ref().unwrap(), &published);
    assert!(!rep.join("cg.cg-1.commit").exists());
    assert!(!rep.join("cg.cg-1.staging").exists());
    e.apply(Command::StopWorkloads).unwrap();
    e.apply(Command::ReplicateNow {
        datastore: "ds-1".into(),
    })
    .unwrap();
    e.advance(e.now + 5 * MINUTE).unwrap();
    assert!(e.groups[g].published.as_ref().unwrap().cycle > published.cycle);
    assert_point_is_the_cut(&e, g);
}

#[test]
fn planned_failover_loses_no_write_and_the_vms_run_at_the_recovery_site() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(&dir.path().join("ws"), &topology(100.0, 5, 300), opts(9)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(3 * MINUTE).unwrap();
    let out = e
        .apply(Command::Failover {
            protection_groups: vec!["pg-a".into()],
            kind: FailoverKind::Planned,
            point: None,
        })
        .unwrap();
    assert!(matches!(out, Outcome::Done(_)));
    assert_eq!(e.failovers().last().unwrap().state, FailoverState::Running);
    e.advance(e.now + MINUTE).unwrap();
    let report = e.failovers().last().unwrap().clone();
    assert_eq!(report.state, FailoverState::Done, "{report:#?}");
    assert_eq!(report.results.len(), 3);
    for r in &report.results {
        assert!(r.recovered, "{r:#?}");
        assert_eq!(r.consistent, Some(true), "{r:#?}");
        assert_eq!(
            r.writes_lost,
            Some(0),
            "planned failover loses nothing: {r:#?}"
        );
        assert_eq!(r.achieved_rpo_minutes, Some(0.0));
    }
    // Priority order and capacity: a2 (priority 1) placed first on r1 (4 vCPUs).
    assert_eq!(report.results[0].vm.as_deref(), Some("a2"));
    assert_eq!(report.results[0].host.as_deref(), Some("r1"));
    // They now run at ny and keep writing there; c1 (pg-b) still runs at pa.
    let writes_before = e
        .snapshot()
        .vms
        .iter()
        .find(|v| v.id == "a1")
        .unwrap()
        .writes;
    e.advance(e.now + MINUTE).unwrap();
    let snap = e.snapshot();
    let a1 = snap.vms.iter().find(|v| v.id == "a1").unwrap();
    assert_eq!(a1.site, "ny");
    assert!(a1.recovered && a1.writes > writes_before && a1.read_errors == 0);
    for vm in ["a1", "a2", "b1", "c1"] {
        let v = e.verify_vm(vm).unwrap();
        assert!(v.consistent && v.writes_lost == 0, "{vm}: {v:#?}");
    }
    let cg = snap.groups.iter().find(|g| g.id == "cg-1").unwrap();
    assert_eq!(cg.state, GroupState::FailedOver);
    // Survives a reopen.
    let root = e.workspace().root().to_path_buf();
    e.close().unwrap();
    let mut e = Engine::open(&root).unwrap();
    e.advance(e.now + MINUTE).unwrap();
    let v = e.verify_vm("a1").unwrap();
    assert!(v.consistent, "{v:#?}");
    assert_eq!(e.location("a1").unwrap().0, "ds-1r");
}

#[test]
fn unplanned_failover_after_a_disaster_recovers_consistent_points() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(&dir.path().join("ws"), &topology(100.0, 1, 300), opts(11)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    // Event by event, so the alarm is checked while every cycle is on the wire.
    run_watching(&mut e, 150 * SECOND, |_, _| {});
    let log: Vec<String> = e.take_log().into_iter().map(|l| l.message).collect();
    assert!(
        !log.iter().any(|l| l.contains("RPO violation")),
        "cycles on schedule raise no alarm: {log:#?}"
    );
    e.apply(Command::Disaster { site: "pa".into() }).unwrap();
    let lost_at = e.now;
    let writes = e.snapshot().vms.iter().map(|v| v.writes).sum::<u64>();
    // The failover runs half an hour later; the achieved RPO counts to the disaster.
    e.advance(e.now + 30 * MINUTE).unwrap();
    let snap = e.snapshot();
    assert_eq!(
        writes,
        snap.vms.iter().map(|v| v.writes).sum::<u64>(),
        "pa stopped"
    );
    assert_eq!(snap.sites_lost_at.get("pa"), Some(&lost_at));
    // What the disaster lost stops growing: each group's lag is measured to it, and an
    // RPO kept until then is not violated half an hour later.
    for g in &snap.groups {
        assert_eq!(g.lost_at, Some(lost_at), "{}", g.id);
        assert_eq!(g.lag, Some(lost_at - g.last_cut_at.unwrap()), "{}", g.id);
        assert!(!g.rpo_violation, "{}", g.id);
    }
    let lags: Vec<_> = snap.groups.iter().map(|g| g.lag).collect();
    assert!(
        !e.take_log()
            .iter()
            .any(|l| l.message.contains("RPO violation")),
        "no alarm for what the disaster can no longer lose"
    );
    let plan = e
        .scan_failover(&["pg-a".into(), "pg-b".into()], FailoverKind::Unplanned)
        .unwrap();
    assert!(
        plan.problems.is_empty() && plan.unplaced.is_empty(),
        "{plan:#?}"
    );
    e.apply(Command::Failover {
        protection_groups: vec!["pg-a".into(), "pg-b".into()],
        kind: FailoverKind::Unplanned,
        point: None,
    })
    .unwrap();
    let report = e.failovers().last().unwrap().clone();
    assert_eq!(report.state, FailoverState::Done);
    assert_eq!(report.results.len(), 4);
    for r in &report.results {
        assert!(r.recovered && r.consistent == Some(true), "{r:#?}");
        let rpo = r.achieved_rpo_minutes.unwrap();
        assert!(rpo > 0.0 && rpo <= 2.0, "{r:#?}");
    }
    assert!(report.results.iter().any(|r| r.writes_lost.unwrap() > 0));
    // Each result's achieved RPO is its group's lag: the window the disaster lost.
    for r in &report.results {
        let rpo = r.achieved_rpo_minutes.unwrap();
        assert!(
            lags.iter()
                .any(|l| l.is_some_and(|l| (l as f64 / MINUTE as f64 - rpo).abs() < 1e-9)),
            "{r:#?} against {lags:?}"
        );
    }
}

#[test]
fn capacity_shortfall_stops_before_anything_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = topology(100.0, 1, 10);
    for h in t.hosts.iter_mut().filter(|h| h.site == "ny") {
        h.cpus = 2;
    }
    let mut e = Engine::create(&dir.path().join("ws"), &t, opts(1)).unwrap();
    e.advance(MINUTE).unwrap();
    let err = e
        .apply(Command::Failover {
            protection_groups: vec!["pg-a".into()],
            kind: FailoverKind::Unplanned,
            point: None,
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not enough capacity") && err.contains("b1"),
        "{err}"
    );
    assert!(e.failovers().is_empty());
    assert!(!e.snapshot().vms.iter().any(|v| v.down));
}

#[test]
fn test_failover_copies_verifies_and_cleans_up_while_replication_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(&dir.path().join("ws"), &topology(100.0, 1, 100), opts(2)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(90 * SECOND).unwrap();
    e.apply(Command::Failover {
        protection_groups: vec!["pg-b".into()],
        kind: FailoverKind::Test,
        point: None,
    })
    .unwrap();
    let r = e.failovers().last().unwrap().clone();
    let test_dir = e.workspace().root().join(r.test_dir.clone().unwrap());
    assert!(test_dir.join("c1/disk0.img").exists());
    assert!(r.results[0].recovered && r.results[0].consistent == Some(true));
    let snap = e.snapshot();
    assert!(!snap.vms.iter().any(|v| v.down || v.recovered));
    let cycles = snap.groups.iter().map(|g| g.cycles).sum::<u64>();
    e.advance(e.now + 3 * MINUTE).unwrap();
    assert!(e.snapshot().groups.iter().map(|g| g.cycles).sum::<u64>() > cycles);
    e.apply(Command::CleanupTestFailover).unwrap();
    assert!(!test_dir.exists());
}

/// Moves a1 out of pg-a (ds-1 → ds-l, not replicated) after the first cycle replicated it:
/// its old instance stays on ds-1r until the next cycle of cg-1 (RPO 5 min) ships the
/// deletion. Returns the engine, with the move done and that cycle not yet cut.
fn a1_moved_out_of_pg_a(dir: &Path) -> Engine {
    let mut e = Engine::create(&dir.join("ws"), &topology(100.0, 5, 100), opts(21)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(MINUTE).unwrap();
    let old = dir.join("ws/sites/ny/datastores/ds-1r/a1/vm.ron");
    assert!(old.exists(), "the first cycle replicated a1 on ds-1");
    e.apply(Command::Migrate {
        vm: "a1".into(),
        to: "ds-l".into(),
        mode: CopyMode::Mirror,
        confirm: true,
    })
    .unwrap();
    let limit = e.now() + 5 * MINUTE;
    run_until(&mut e, limit, "a1's move to ds-l", |e| {
        !e.is_migrating("a1")
    });
    assert_eq!(e.location("a1").unwrap().0, "ds-l");
    assert!(old.exists(), "the deletion is not replicated yet");
    assert!(e.now < 5 * MINUTE, "the next cycle of cg-1 is not cut yet");
    e
}

/// The recovered VMs of the last failover, each on a recovery-site host, and no host
/// holding more than it has.
fn assert_every_recovered_vm_has_a_host(e: &Engine) {
    let t = e.topology();
    let mut used: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for v in e.snapshot().vms.iter().filter(|v| v.recovered) {
        let host = t
            .host(&v.host)
            .unwrap_or_else(|| panic!("{} runs on no host ({:?})", v.id, v.host));
        assert_eq!(host.site, "ny", "{}", v.id);
        let spec = t.vm(&v.id).unwrap();
        let u = used.entry(host.id.clone()).or_default();
        u.0 += spec.vcpus;
        u.1 += spec.memory_gib;
        assert!(
            u.0 <= host.cpus && u.1 <= host.memory_gib,
            "{} overcommits {}",
            v.id,
            host.id
        );
    }
}

/// Runs an unplanned failover of pg-a; a1's result.
fn unplanned_failover_of_pg_a_for_a1(e: &mut Engine) -> VmResult {
    e.apply(Command::Failover {
        protection_groups: vec!["pg-a".into()],
        kind: FailoverKind::Unplanned,
        point: None,
    })
    .unwrap();
    let report = e.failovers().last().unwrap();
    report
        .results
        .iter()
        .find(|r| r.vm.as_deref() == Some("a1"))
        .unwrap_or_else(|| panic!("a1 is in the report: {report:#?}"))
        .clone()
}

#[test]
fn a_vm_moved_out_of_the_pg_and_recovered_by_the_election_has_a_reserved_host() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = a1_moved_out_of_pg_a(dir.path());
    // The site is lost: a1's live copy on ds-l with it. The replicas decide (SPEC §7): its
    // only instance in scope, on ds-1r, is recovered, so it needs a host like the others.
    e.apply(Command::Disaster { site: "pa".into() }).unwrap();
    let plan = e
        .scan_failover(&["pg-a".into()], FailoverKind::Unplanned)
        .unwrap();
    let a1 = plan
        .vms
        .iter()
        .find(|v| v.election.vm.as_deref() == Some("a1"))
        .unwrap_or_else(|| panic!("the election recovers a1: {plan:#?}"));
    assert_eq!(
        a1.election.recover_from.as_deref(),
        Some("sites/ny/datastores/ds-1r/a1")
    );
    let host = a1
        .host
        .clone()
        .unwrap_or_else(|| panic!("a1 is recovered with no host reserved: {plan:#?}"));
    let reserved = plan
        .capacity
        .iter()
        .find(|h| h.host == host)
        .unwrap()
        .reserved
        .iter()
        .any(|r| r.vm == "a1" && r.for_this_failover());
    assert!(reserved, "{plan:#?}");
    let r = unplanned_failover_of_pg_a_for_a1(&mut e);
    assert!(r.recovered && r.consistent == Some(true), "{r:#?}");
    assert_eq!(r.host.as_deref(), Some(host.as_str()), "{r:#?}");
    assert_every_recovered_vm_has_a_host(&e);
    // It runs there: its guest writes at the recovery site.
    let writes = |e: &Engine| {
        e.snapshot()
            .vms
            .iter()
            .find(|v| v.id == "a1")
            .unwrap()
            .writes
    };
    let before = writes(&e);
    e.advance(e.now + MINUTE).unwrap();
    assert!(writes(&e) > before);
    assert_eq!(e.location("a1").unwrap().0, "ds-1r");
}

#[test]
fn a_vm_moved_out_of_the_pg_that_runs_elsewhere_is_left_out_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = a1_moved_out_of_pg_a(dir.path());
    // No disaster: a1 runs at pa on ds-l, newer than its old instance on ds-1r.
    e.take_log();
    let r = unplanned_failover_of_pg_a_for_a1(&mut e);
    assert!(!r.recovered && r.host.is_none(), "{r:#?}");
    assert_eq!(r.error.as_deref(), Some("moved-out"), "{r:#?}");
    assert!(
        r.reason.contains("ds-l") && r.reason.contains("older copy"),
        "{r:#?}"
    );
    let log: Vec<String> = e.take_log().into_iter().map(|l| l.message).collect();
    assert!(
        log.iter()
            .any(|l| l.contains("a1 left out") && l.contains("ds-l")),
        "{log:#?}"
    );
    assert_every_recovered_vm_has_a_host(&e);
    // a1 still runs at pa on ds-l; its old instance stays on the replica.
    let a1 = |e: &Engine| e.snapshot().vms.into_iter().find(|v| v.id == "a1").unwrap();
    let before = a1(&e);
    assert!(!before.down && !before.recovered && before.site == "pa");
    e.advance(e.now + MINUTE).unwrap();
    assert!(a1(&e).writes > before.writes);
    assert_eq!(e.location("a1").unwrap().0, "ds-l");
    let v = e.verify_vm("a1").unwrap();
    assert!(v.consistent && v.writes_lost == 0, "{v:#?}");
    assert!(
        dir.path()
            .join("ws/sites/ny/datastores/ds-1r/a1/vm.ron")
            .exists()
    );
}

/// The instance directories on the recovery site's datastores.
fn recovery_site_instances(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for ds in ["ds-1r", "ds-2r", "ds-3r"] {
        let dir = root.join("sites/ny/datastores").join(ds);
        for entry in std::fs::read_dir(&dir).unwrap() {
            out.push(format!(
                "{ds}/{}",
                entry.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    out.sort();
    out
}

/// A planned failover of pg-a whose final cycle meets a transient I/O error at fault point
/// `point` (not a crash: the process lives on) stops with the error (SPEC §7: stop on any
/// error): the guests in scope run again where they were, nothing is recovered or deleted
/// at the recovery site, and a later planned failover succeeds, losing nothing.
fn planned_failover_stops_on_an_error_at(point: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    let mut e = Engine::create(&root, &topology(100.0, 5, 300), opts(9)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(3 * MINUTE).unwrap();
    assert!(e.groups.iter().all(|g| g.transfer.is_none()));
    let instances = recovery_site_instances(&root);
    e.take_log();
    crate::fault::fail_next(point, 1);
    let started = e.apply(Command::Failover {
        protection_groups: vec!["pg-a".into()],
        kind: FailoverKind::Planned,
        point: None,
    });
    // A cut fails at once; a publish after the transfer.
    let until = e.now + MINUTE;
    while e.failovers().last().unwrap().state == FailoverState::Running {
        match e.next_event_time() {
            Some(t) if t <= until => e.advance(t).unwrap(),
            _ => break,
        }
    }
    crate::fault::disarm();
    let report = e.failovers().last().unwrap().clone();
    assert_eq!(report.state, FailoverState::Failed, "{report:#?}");
    let injected = format!("injected fault at {point}#1");
    assert!(
        report.message.contains("stopped") && report.message.contains(&injected),
        "{report:#?}"
    );
    assert!(report.results.is_empty(), "{report:#?}");
    match started {
        Err(err) => assert!(err.to_string().contains(&injected), "{err}"),
        Ok(_) => assert!(
            point.starts_with("publish.commit"),
            "the cut failed at once"
        ),
    }
    let log: Vec<String> = e.take_log().into_iter().map(|l| l.message).collect();
    assert!(
        log.iter()
            .any(|l| l.contains("Planned failover #1 stopped") && l.contains(&injected)),
        "{log:#?}"
    );
    // Nothing recovered: no VM registered at ny, no instance deleted there.
    assert_eq!(recovery_site_instances(&root), instances);
    // Every guest in scope runs again at pa, where it was: writes go on, the journal grows.
    let journal = root.join("journal/pa.log");
    let journal_len = std::fs::metadata(&journal).unwrap().len();
    let writes = |e: &Engine, vm: &str| e.snapshot().vms.into_iter().find(|v| v.id == vm).unwrap();
    let before: Vec<VmView> = ["a1", "a2", "b1"].iter().map(|v| writes(&e, v)).collect();
    e.advance(e.now + 30 * SECOND).unwrap();
    for b in &before {
        let now = writes(&e, &b.id);
        assert!(!now.down && !now.recovered && now.site == "pa", "{now:#?}");
        assert_eq!(e.location(&b.id).unwrap().0, b.datastore);
        assert!(now.writes > b.writes, "{} writes again", b.id);
        let v = e.verify_vm(&b.id).unwrap();
        assert!(v.consistent && v.writes_lost == 0, "{v:#?}");
    }
    assert!(std::fs::metadata(&journal).unwrap().len() > journal_len);
    // A later planned failover succeeds, losing nothing: the failed cycle's changes were
    // not lost to the trackers.
    e.apply(Command::Failover {
        protection_groups: vec!["pg-a".into()],
        kind: FailoverKind::Planned,
        point: None,
    })
    .unwrap();
    e.advance(e.now + MINUTE).unwrap();
    let report = e.failovers().last().unwrap().clone();
    assert_eq!(report.state, FailoverState::Done, "{report:#?}");
    assert_eq!(report.results.len(), 3);
    for r in &report.results {
        assert!(r.recovered && r.host.is_some(), "{r:#?}");
        assert_eq!(r.consistent, Some(true), "{r:#?}");
        assert_eq!(r.writes_lost, Some(0), "{r:#?}");
    }
}

#[test]
fn a_planned_failover_whose_final_cut_fails_stops_and_restarts_the_guests() {
    planned_failover_stops_on_an_error_at("publish.staging-written");
}

#[test]
fn a_planned_failover_whose_final_publish_fails_stops_and_restarts_the_guests() {
    planned_failover_stops_on_an_error_at("publish.commit-written");
}

/// A publish that fails past its commit record is finished before the next cut; if that
/// re-apply fails too, the cycle's staging stays (the commit record needs it), and a later
/// cut finishes the publish and goes on: the replicas are its cut, and the workspace opens.
#[test]
fn a_failed_re_apply_of_a_committed_publish_keeps_its_staging() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    let mut e = Engine::create(&root, &topology(100.0, 5, 300), opts(4)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(3 * MINUTE).unwrap();
    let g = e.groups.iter().position(|g| g.spec.id == "cg-1").unwrap();
    let spec = e.groups[g].spec.clone();
    let (commit, staging) = (e.commit_path(&spec), e.staging_dir(&spec));
    let published = e.groups[g].published.clone().unwrap().cycle;
    let replicate = || Command::ReplicateNow {
        datastore: spec.pairs[0].datastore.clone(),
    };
    // The publish fails right after its commit record is written.
    crate::fault::fail_next("publish.commit-written", 1);
    e.apply(replicate()).unwrap();
    e.advance(e.now + MINUTE).unwrap();
    assert!(
        commit.exists() && staging.exists(),
        "committed, not applied"
    );
    // The next cut re-applies it first, and that fails too.
    crate::fault::fail_next("publish.replica-applied", 1);
    let _ = e.apply(replicate());
    e.advance(e.now + SECOND).unwrap();
    crate::fault::disarm();
    assert!(commit.exists(), "the commit record stands");
    assert!(staging.exists(), "its staging is kept for it");
    // A later cut finishes it and publishes anew.
    e.apply(replicate()).unwrap();
    e.advance(e.now + MINUTE).unwrap();
    assert!(!commit.exists() && !staging.exists());
    assert!(e.groups[g].published.as_ref().unwrap().cycle >= published + 2);
    assert_point_is_the_cut(&e, g);
    e.close().unwrap();
    Engine::open(&root).unwrap().close().unwrap();
}

/// Guests writing on a slow link (1 Mbit/s) for 10 s, then "Replicate now" of cg-1: its
/// cycle is in flight. Returns the engine and cg-1's index.
fn cg1_transferring(seed: u64) -> (tempfile::TempDir, Engine, usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(&dir.path().join("ws"), &topology(1.0, 60, 50), opts(seed)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(10 * SECOND).unwrap();
    e.apply(Command::ReplicateNow {
        datastore: "ds-1".into(),
    })
    .unwrap();
    let g = e.groups.iter().position(|g| g.spec.id == "cg-1").unwrap();
    (dir, e, g)
}

/// "Resume" of a group that was not paused, mid-transfer, leaves the transfer alone: it
/// publishes when it ends and the group cycles on (it used to orphan the publish and stay
/// transferring forever — found by the simulation, seed 25).
#[test]
fn resuming_a_running_group_mid_transfer_does_not_orphan_its_publish() {
    let (_dir, mut e, g) = cg1_transferring(5);
    let cycle = e.groups[g]
        .transfer
        .as_ref()
        .expect("in flight")
        .manifest
        .cycle;
    e.apply(Command::ResumeReplication {
        datastore: "ds-1".into(),
    })
    .unwrap();
    e.advance(e.now + 10 * MINUTE).unwrap();
    let published = e.groups[g].published.as_ref().map(|p| p.cycle);
    assert!(published >= Some(cycle), "{published:?} < {cycle}");
}

/// A planned failover started while a cycle is in flight does not take that cycle as its
/// final one, even when it was cut at the very instant the guests stopped: what happened
/// at that instant after the cut (a cancelled split's roll-back, found by the simulation,
/// seed 7921) must ship too. It recovers from the cycle after it.
#[test]
fn a_planned_failover_does_not_take_the_cycle_in_flight_as_its_final_one() {
    let (_dir, mut e, g) = cg1_transferring(9);
    let in_flight = e.groups[g]
        .transfer
        .as_ref()
        .expect("in flight")
        .manifest
        .clone();
    assert_eq!(
        in_flight.cut_at, e.now,
        "cut at the instant the guests stop"
    );
    e.apply(Command::Failover {
        protection_groups: vec!["pg-a".into()],
        kind: FailoverKind::Planned,
        point: None,
    })
    .unwrap();
    for _ in 0..3_600 {
        if e.pending_failover.is_none() {
            break;
        }
        e.advance(e.now + SECOND).unwrap();
    }
    assert!(e.pending_failover.is_none());
    let published = e.groups[g].published.as_ref().unwrap().cycle;
    assert!(
        published > in_flight.cycle,
        "{published} <= {}",
        in_flight.cycle
    );
    for r in &e.failovers().last().unwrap().results {
        assert_eq!(
            (r.consistent, r.writes_lost),
            (Some(true), Some(0)),
            "{r:?}"
        );
    }
}
