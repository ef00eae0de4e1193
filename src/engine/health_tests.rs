//! Array health swaps on real files: the fault drains and swaps I/O to the replicas, the
//! resync copies exactly the tracked blocks back, replication restarts only after it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::SwapPhase;
use crate::disk::{self, ImageFile};
use crate::engine::{Command, Engine, EngineError, EngineOptions, Outcome, SECOND, SimTime};
use crate::topology::Topology;

/// cg-1 = {ds-1, ds-2} and ds-3 on array "ap" (replicated to "ar" in ny), ds-l not
/// replicated on "ap", ds-q on "aq" (a protected array with no replicated LUN).
const TOPOLOGY: &str = r#"Topology(
    name: "health test",
    sites: [Site(id: "pa", name: "P", role: Protected), Site(id: "ny", name: "R", role: Recovery)],
    links: [Link(from: "pa", to: "ny", mbps: 100)],
    hosts: [Host(id: "h", site: "pa", cpus: 64, memory_gib: 512),
            Host(id: "r1", site: "ny", cpus: 64, memory_gib: 512)],
    arrays: [
        Array(id: "ap", site: "pa", luns: [
            Lun(id: "l1", capacity_gib: 10, replication: Some(LunReplication(target: "l1r", rpo_minutes: 1, consistency_group: Some("cg-1")))),
            Lun(id: "l2", capacity_gib: 10, replication: Some(LunReplication(target: "l2r", rpo_minutes: 1, consistency_group: Some("cg-1")))),
            Lun(id: "l3", capacity_gib: 10, replication: Some(LunReplication(target: "l3r", rpo_minutes: 1))),
            Lun(id: "ll", capacity_gib: 10),
        ]),
        Array(id: "aq", site: "pa", luns: [Lun(id: "lq", capacity_gib: 10)]),
        Array(id: "ar", site: "ny", luns: [Lun(id: "l1r", capacity_gib: 10), Lun(id: "l2r", capacity_gib: 10), Lun(id: "l3r", capacity_gib: 10)]),
    ],
    datastores: [
        Datastore(id: "ds-1", site: "pa", luns: ["l1"]),
        Datastore(id: "ds-2", site: "pa", luns: ["l2"]),
        Datastore(id: "ds-3", site: "pa", luns: ["l3"]),
        Datastore(id: "ds-l", site: "pa", luns: ["ll"]),
        Datastore(id: "ds-q", site: "pa", luns: ["lq"]),
        Datastore(id: "ds-1r", site: "ny", luns: ["l1r"]),
        Datastore(id: "ds-2r", site: "ny", luns: ["l2r"]),
        Datastore(id: "ds-3r", site: "ny", luns: ["l3r"]),
    ],
    protection_groups: [
        ProtectionGroup(id: "pg-a", name: "A", datastores: ["ds-1", "ds-2"]),
        ProtectionGroup(id: "pg-b", name: "B", datastores: ["ds-3"]),
    ],
    vms: [
        Vm(id: "a1", uuid: "bbbbbbbb-0000-4000-8000-000000000001", host: "h", datastore: "ds-1",
           disk_mib: 2, vcpus: 2, memory_gib: 8, priority: 2, workload: Some(Workload(write_iops: 150, read_iops: 50))),
        Vm(id: "b1", uuid: "bbbbbbbb-0000-4000-8000-000000000002", host: "h", datastore: "ds-2",
           disk_mib: 1, vcpus: 2, memory_gib: 8, priority: 1, workload: Some(Workload(write_iops: 150, read_iops: 50))),
        Vm(id: "c1", uuid: "bbbbbbbb-0000-4000-8000-000000000003", host: "h", datastore: "ds-3",
           disk_mib: 1, vcpus: 2, memory_gib: 8, priority: 1, workload: Some(Workload(write_iops: 150, read_iops: 50))),
        Vm(id: "l1", uuid: "bbbbbbbb-0000-4000-8000-000000000004", host: "h", datastore: "ds-l",
           disk_mib: 1, vcpus: 2, memory_gib: 8, priority: 1, workload: Some(Workload(write_iops: 100, read_iops: 50))),
    ],
)"#;

fn topology() -> Topology {
    Topology::from_ron_str(TOPOLOGY, "health-test.ron").unwrap()
}

const SWAPPED: [&str; 3] = ["a1", "b1", "c1"];

fn engine(dir: &Path) -> Engine {
    let opts = EngineOptions {
        seed: 7,
        ..EngineOptions::default()
    };
    Engine::create(&dir.join("ws"), &topology(), opts).unwrap()
}

fn done(out: Result<Outcome, EngineError>) -> String {
    match out {
        Ok(Outcome::Done(m)) => m,
        other => panic!("expected Done, got {other:?}"),
    }
}

fn refused(out: Result<Outcome, EngineError>) -> String {
    match out {
        Ok(Outcome::Refused(m)) => m,
        other => panic!("expected Refused, got {other:?}"),
    }
}

fn run(e: &mut Engine, d: SimTime) {
    let t = e.now() + d;
    e.advance(t).unwrap();
}

fn published_cycles(e: &Engine) -> Vec<Option<u64>> {
    e.groups
        .iter()
        .map(|g| g.published.as_ref().map(|p| p.cycle))
        .collect()
}

/// (primary image, replica image) of a VM on a replicated datastore.
fn images(e: &Engine, vm: &str) -> (PathBuf, PathBuf) {
    let (ds, inst) = e.location(vm).unwrap();
    let rep = format!("{ds}r");
    (
        e.ws.datastore_dir(&ds)
            .unwrap()
            .join(&inst)
            .join("disk0.img"),
        e.ws.datastore_dir(&rep)
            .unwrap()
            .join(&inst)
            .join("disk0.img"),
    )
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

fn tracked(e: &Engine, vm: &str) -> BTreeSet<u64> {
    let i = e.vm_index(vm).unwrap();
    e.health
        .swaps
        .iter()
        .flat_map(|s| s.vms.iter())
        .filter(|v| v.vm == i)
        .flat_map(|v| v.tracked.iter().copied())
        .collect()
}

fn assert_all_consistent(e: &Engine) {
    for vm in e.vm_ids() {
        let v = e.verify_vm(&vm).unwrap();
        assert!(v.consistent, "{vm}: {v:#?}");
        assert_eq!(v.writes_lost, 0, "{vm}: {v:#?}");
    }
}

/// A group still swapped or resyncing has published nothing since `before`.
fn assert_no_publish_while_swapped(e: &Engine, before: &[Option<u64>]) {
    let now = published_cycles(e);
    for (g, grp) in e.groups.iter().enumerate() {
        if e.health.swaps.iter().any(|s| s.saved.group == grp.spec.key) {
            assert_eq!(
                now[g], before[g],
                "{} published during its resync",
                grp.spec.id
            );
            assert!(grp.transfer.is_none(), "{} is transferring", grp.spec.id);
        }
    }
}

/// Starts the guests and lets the first (full) cycles publish.
fn started(dir: &Path) -> Engine {
    let mut e = engine(dir);
    done(e.apply(Command::StartWorkloads));
    run(&mut e, 3 * SECOND);
    assert!(published_cycles(&e).iter().all(|c| c.is_some()));
    e
}

/// Runs event by event until no swap is draining (fails after `within`).
fn finish_drains(e: &mut Engine, within: SimTime) {
    let limit = e.now() + within;
    while e
        .health
        .swaps
        .iter()
        .any(|s| s.saved.phase == SwapPhase::Draining)
    {
        let t = e.next_event_time().unwrap();
        assert!(t <= limit, "the drain did not finish");
        e.advance(t).unwrap();
    }
}

/// Faults "ap" and runs until every pair is swapped.
fn fault_and_swap(e: &mut Engine) {
    let msg = done(e.apply(Command::ArrayFault { array: "ap".into() }));
    assert!(msg.contains("draining"), "{msg}");
    assert!(msg.contains("ds-l not replicated"), "{msg}");
    finish_drains(e, 10 * SECOND);
    assert_eq!(e.health.swaps.len(), 2, "cg-1 and ds-3 swap");
}

#[test]
fn fault_swaps_to_the_replicas_and_healthy_resyncs_exactly_the_tracked_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = started(dir.path());
    let (a1_primary, a1_replica) = images(&e, "a1");
    fault_and_swap(&mut e);

    // Swapped: every VM of the pairs reads and writes its replica.
    for vm in SWAPPED {
        let (ok, detail) = e.expect_served_by(vm, "ar");
        assert!(ok, "{detail}");
    }
    assert!(
        e.expect_served_by("l1", "ap").0,
        "the unreplicated VM stays"
    );
    assert!(!e.expect_replicating("ds-1").0);
    assert!(e.groups.iter().all(|g| g.saved.swapped));
    let cut_seq: Vec<u64> = e
        .groups
        .iter()
        .map(|g| g.published.as_ref().unwrap().cut_seq)
        .collect();
    let primary_at_swap = bytes(&a1_primary);
    let cycles_at_swap = published_cycles(&e);
    let writes_at_swap = e.snapshot().vms[0].writes;

    // The guests keep writing, on the replicas; nothing replicates, the primaries stay.
    run(&mut e, 8 * SECOND);
    assert!(e.snapshot().vms[0].writes > writes_at_swap + 500);
    assert_eq!(
        published_cycles(&e),
        cycles_at_swap,
        "replication is suspended"
    );
    assert!(
        bytes(&a1_primary) == primary_at_swap,
        "the primary is not written"
    );
    assert!(bytes(&a1_replica) != primary_at_swap, "the replica is");
    assert_eq!(e.verify_vm("a1").unwrap().writes_lost, 0);
    assert!(e.verify_vm("a1").unwrap().consistent);
    done(e.apply(Command::StopWorkloads));

    // What is tracked is exactly what the journal says was written since the drain.
    let journal = disk::read_journal(&e.ws.journal_path("pa")).unwrap();
    let mut expected_total = 0;
    for vm in SWAPPED {
        let i = e.vm_index(vm).unwrap();
        let uuid = e.vms[i].uuid;
        let g = e.group_of(&e.vms[i].datastore).unwrap();
        let want: BTreeSet<u64> = journal
            .entries
            .iter()
            .filter(|x| x.uuid == uuid && x.seq > cut_seq[g])
            .map(|x| x.block)
            .collect();
        assert!(!want.is_empty());
        assert_eq!(tracked(&e, vm), want, "{vm}: tracked blocks");
        let (p, r) = images(&e, vm);
        let diff: BTreeSet<u64> = crate::replica::differing_blocks(
            &ImageFile::open_read_only(&p).unwrap(),
            &ImageFile::open_read_only(&r).unwrap(),
        )
        .unwrap()
        .into_iter()
        .collect();
        assert!(diff.is_subset(&want), "{vm}: a difference nobody tracked");
        expected_total += want.len() as u64;
    }

    // Healthy: resync, and no publish until it is complete.
    let msg = done(e.apply(Command::ArrayHealthy { array: "ap".into() }));
    assert!(msg.contains("resyncing"), "{msg}");
    let mut copied = 0;
    let limit = e.now() + 30 * SECOND;
    while !e.health.swaps.is_empty() {
        copied = e
            .health
            .swaps
            .iter()
            .map(|s| s.saved.copied)
            .sum::<u64>()
            .max(copied);
        assert!(e.health.swaps.iter().all(|s| !s.saved.vms.is_empty()));
        assert_no_publish_while_swapped(&e, &cycles_at_swap);
        for s in &e.health.swaps {
            for vm in &s.saved.vms {
                assert!(
                    e.expect_served_by(vm, "ar").0,
                    "{vm} left the replica before its resync completed"
                );
            }
        }
        let t = e.next_event_time().unwrap();
        assert!(t <= limit, "the resync did not finish");
        e.advance(t).unwrap();
    }
    assert!(copied > 0);
    // Swapped back: the primaries equal the replicas, byte for byte.
    for vm in SWAPPED {
        let (p, r) = images(&e, vm);
        assert!(
            bytes(&p) == bytes(&r),
            "{vm}: primary differs after the resync"
        );
        assert!(e.expect_served_by(vm, "ap").0);
    }
    let log = e.take_log();
    let copied_logged: u64 = log
        .iter()
        .filter(|l| l.message.contains("resync complete"))
        .map(|l| {
            let m = &l.message;
            let from = m.find("complete (").unwrap() + "complete (".len();
            m[from..].split(' ').next().unwrap().parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(
        copied_logged, expected_total,
        "exactly the tracked blocks went back"
    );
    assert!(
        log.iter()
            .any(|l| l.message.contains("replication restarted ap ▶ ar")),
        "{log:#?}"
    );
    // Replication restarted in its original direction: the next point publishes.
    run(&mut e, SECOND);
    let after = published_cycles(&e);
    for (g, (a, b)) in after.iter().zip(&cycles_at_swap).enumerate() {
        assert!(a > b, "group {g} did not publish after the restart");
    }
    for ds in ["ds-1", "ds-2", "ds-3"] {
        let (ok, detail) = e.expect_replicating(ds);
        assert!(ok, "{detail}");
    }
    // The restart's point is truthful: the replicas hold exactly its cut.
    let journal = disk::read_journal(&e.ws.journal_path("pa")).unwrap();
    for g in &e.groups {
        let p = g.published.as_ref().unwrap();
        assert_eq!(p.cut_seq, journal.last_seq);
    }
    assert_all_consistent(&e);
}

#[test]
fn writes_during_the_resync_are_copied_again_and_a_reopen_keeps_the_swap() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = started(dir.path());
    fault_and_swap(&mut e);
    run(&mut e, 4 * SECOND);
    let tracked_before = tracked(&e, "a1");
    assert!(!tracked_before.is_empty());
    e.close().unwrap();

    // Reopened while swapped: still on the replicas, the tracked set rebuilt.
    let mut e = Engine::open(&dir.path().join("ws")).unwrap();
    for vm in SWAPPED {
        assert!(e.expect_served_by(vm, "ar").0, "{vm} after the reopen");
    }
    assert_eq!(tracked(&e, "a1"), tracked_before);
    assert!(e.snapshot().workloads_on);
    let cycles = published_cycles(&e);
    run(&mut e, 3 * SECOND);
    assert_eq!(published_cycles(&e), cycles);
    assert_all_consistent(&e);

    // Healthy with the guests still writing: the resync converges anyway.
    done(e.apply(Command::ArrayHealthy { array: "ap".into() }));
    let limit = e.now() + 60 * SECOND;
    while !e.health.swaps.is_empty() {
        assert_no_publish_while_swapped(&e, &cycles);
        let t = e.next_event_time().unwrap();
        assert!(t <= limit, "the resync did not converge");
        e.advance(t).unwrap();
    }
    let snap = e.snapshot();
    let view = snap.arrays.iter().find(|a| a.id == "ap").unwrap();
    assert!(!view.faulted);
    assert!(
        view.pairs
            .iter()
            .all(|p| p.serving == "ap" && p.phase.is_none())
    );
    run(&mut e, 2 * SECOND);
    done(e.apply(Command::StopWorkloads));
    assert_all_consistent(&e);
    for ds in ["ds-1", "ds-3"] {
        assert!(e.expect_replicating(ds).0, "{}", e.expect_replicating(ds).1);
    }
    // One more cycle: the replicas are the primaries again.
    done(e.apply(Command::ReplicateNow {
        datastore: "ds-1".into(),
    }));
    run(&mut e, 2 * SECOND);
    for vm in ["a1", "b1"] {
        let (p, r) = images(&e, vm);
        assert!(bytes(&p) == bytes(&r), "{vm}");
    }
    // Crash (no close) while swapped again, then reopen: still consistent.
    done(e.apply(Command::StartWorkloads));
    fault_and_swap(&mut e);
    run(&mut e, 2 * SECOND);
    drop(e);
    let mut e = Engine::open(&dir.path().join("ws")).unwrap();
    assert!(e.expect_served_by("c1", "ar").0);
    run(&mut e, SECOND);
    assert_all_consistent(&e);
}

#[test]
fn bad_ids_and_impossible_swaps_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = started(dir.path());
    let err = e
        .apply(Command::ArrayFault {
            array: "nope".into(),
        })
        .unwrap_err();
    assert!(err.to_string().contains("array \"nope\""), "{err}");
    assert!(
        e.apply(Command::ArrayHealthy { array: "zz".into() })
            .is_err()
    );
    let m = refused(e.apply(Command::ArrayHealthy { array: "ap".into() }));
    assert!(m.contains("not faulted"), "{m}");
    let m = refused(e.apply(Command::ArrayFault { array: "ar".into() }));
    assert!(m.contains("not a protected site"), "{m}");
    let m = refused(e.apply(Command::ArrayFault { array: "aq".into() }));
    assert!(m.contains("no replicated or distributed LUN"), "{m}");
    done(e.apply(Command::LinkDown));
    let m = refused(e.apply(Command::ArrayFault { array: "ap".into() }));
    assert!(
        m.contains("link") && m.contains("nothing was changed"),
        "{m}"
    );
    assert!(e.health.swaps.is_empty() && e.health.faulted.is_empty());
    done(e.apply(Command::LinkUp));
    run(&mut e, 2 * SECOND);
    done(e.apply(Command::ArrayFault { array: "ap".into() }));
    let m = refused(e.apply(Command::ArrayFault { array: "ap".into() }));
    assert!(m.contains("already faulted"), "{m}");
    let m = refused(e.apply(Command::ArrayHealthy { array: "ap".into() }));
    assert!(m.contains("draining"), "{m}");
    assert!(!e.expect_served_by("ghost", "ap").0);
    assert!(!e.expect_served_by("a1", "ghost").0);
    assert!(!e.expect_replicating("ds-l").0);
    assert!(!e.expect_replicating("ghost").0);
    // While swapped, a manual cycle is refused: replication is suspended.
    run(&mut e, 3 * SECOND);
    let m = refused(e.apply(Command::ReplicateNow {
        datastore: "ds-3".into(),
    }));
    assert!(m.contains("cannot replicate"), "{m}");
    assert_all_consistent(&e);
}

#[test]
fn link_down_abandons_a_drain_and_holds_a_resync_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = started(dir.path());
    // Enough writes that the final cycle takes a while on 100 Mbit/s.
    run(&mut e, 20 * SECOND);
    let cycles = published_cycles(&e);
    done(e.apply(Command::ArrayFault { array: "ap".into() }));
    assert!(
        e.groups.iter().any(|g| g.transfer.is_some()),
        "the final cycles are on the wire"
    );
    done(e.apply(Command::LinkDown));
    run(&mut e, 2 * SECOND);
    // The drain was abandoned: nothing swapped, the guests write on the primaries again.
    assert!(
        e.health.swaps.is_empty(),
        "no swap without a published drain"
    );
    assert!(e.groups.iter().all(|g| !g.saved.swapped));
    let writes = e.snapshot().vms[0].writes;
    run(&mut e, SECOND);
    assert!(e.snapshot().vms[0].writes > writes, "the guests run again");
    for vm in SWAPPED {
        assert!(e.expect_served_by(vm, "ap").0, "{vm}");
    }
    assert_eq!(published_cycles(&e), cycles);
    let log = e.take_log();
    assert!(
        log.iter().any(|l| l.message.contains("was abandoned")),
        "{log:#?}"
    );
    // The array is still faulted; with the link back, healthy is refused nothing.
    done(e.apply(Command::LinkUp));
    run(&mut e, 5 * SECOND);
    done(e.apply(Command::ArrayHealthy { array: "ap".into() }));

    // Fault again, swap, then lose the link during the resync: it waits, still tracking.
    fault_and_swap(&mut e);
    run(&mut e, 2 * SECOND);
    done(e.apply(Command::ArrayHealthy { array: "ap".into() }));
    done(e.apply(Command::LinkDown));
    run(&mut e, 5 * SECOND);
    assert_eq!(e.health.swaps.len(), 2, "the resync waits for the link");
    assert!(
        e.health
            .swaps
            .iter()
            .all(|s| s.saved.phase == SwapPhase::Resyncing)
    );
    assert!(!tracked(&e, "a1").is_empty());
    done(e.apply(Command::LinkUp));
    let limit = e.now() + 30 * SECOND;
    while !e.health.swaps.is_empty() {
        let t = e.next_event_time().unwrap();
        assert!(
            t <= limit,
            "the resync did not finish after the link came back"
        );
        e.advance(t).unwrap();
    }
    run(&mut e, SECOND);
    done(e.apply(Command::StopWorkloads));
    assert_all_consistent(&e);
    for ds in ["ds-1", "ds-2", "ds-3"] {
        let (ok, detail) = e.expect_replicating(ds);
        assert!(ok, "{detail}");
    }
}

#[test]
fn guests_restarted_during_the_drain_are_drained_again_before_the_swap() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = started(dir.path());
    run(&mut e, 20 * SECOND);
    done(e.apply(Command::ArrayFault { array: "ap".into() }));
    // The operator restarts the guests while the final cycles are on the wire: they write
    // on the primaries after the cut.
    done(e.apply(Command::StopWorkloads));
    done(e.apply(Command::StartWorkloads));
    finish_drains(&mut e, 20 * SECOND);
    assert_eq!(e.health.swaps.len(), 2);
    run(&mut e, 2 * SECOND);
    done(e.apply(Command::StopWorkloads));
    for vm in SWAPPED {
        assert!(e.expect_served_by(vm, "ar").0);
        assert_eq!(
            e.snapshot().vms[e.vm_index(vm).unwrap()].read_errors,
            0,
            "{vm}"
        );
    }
    assert_all_consistent(&e);
}

#[test]
fn a_vm_whose_group_is_swapped_cannot_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = started(dir.path());
    fault_and_swap(&mut e);
    // The replication view says why nothing replicates (not "paused" by the operator).
    let snap = e.snapshot();
    let cg = snap.groups.iter().find(|g| g.id == "cg-1").unwrap();
    assert_eq!(cg.state, crate::engine::GroupState::Swapped);
    // a1 lives on ds-1 (cg-1): its I/O is on the replica, so a copy from ds-1 would miss
    // every write since the swap.
    let m = refused(e.apply(Command::Migrate {
        vm: "a1".into(),
        to: "ds-2".into(),
        mode: crate::engine::copy::CopyMode::Mirror,
        confirm: true,
    }));
    assert!(m.contains("swapped") && m.contains("ap"), "{m}");
    assert!(!e.is_migrating("a1"));
    assert_eq!(e.location("a1").unwrap().0, "ds-1");
    // The unreplicated VM on the faulted array is not swapped and may still move.
    assert!(e.health_refusal(e.vm_index("l1").unwrap()).is_none());
    run(&mut e, 2 * SECOND);
    assert_all_consistent(&e);
}

/// The test topology with guests that write faster than the link copies back (the resync
/// alone would never end) and `swap_back` set on "ap".
fn busy_engine(dir: &Path, swap_back: &str) -> Engine {
    let text = TOPOLOGY
        .replace("write_iops: 150", "write_iops: 3000")
        .replace(
            r#"Array(id: "ap", site: "pa", luns: ["#,
            &format!(r#"Array(id: "ap", site: "pa", swap_back: Some({swap_back}), luns: ["#),
        );
    let t = Topology::from_ron_str(&text, "health-busy.ron").unwrap();
    let opts = EngineOptions {
        seed: 7,
        ..EngineOptions::default()
    };
    let mut e = Engine::create(&dir.join("ws"), &t, opts).unwrap();
    done(e.apply(Command::StartWorkloads));
    run(&mut e, 3 * SECOND);
    assert!(published_cycles(&e).iter().all(|c| c.is_some()));
    fault_and_swap(&mut e);
    run(&mut e, SECOND);
    e
}

fn cg1_view(e: &Engine) -> super::views::HealthPairView {
    e.health_views()
        .into_iter()
        .find(|a| a.id == "ap")
        .unwrap()
        .pairs
        .into_iter()
        .find(|p| p.group == "cg-1")
        .unwrap()
}

#[test]
fn the_latency_comparison_swaps_back_before_a_resync_that_cannot_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = busy_engine(dir.path(), "SwapBack(latency_ms: 1000, hold_s: 2)");
    done(e.apply(Command::ArrayHealthy { array: "ap".into() }));
    let healthy_at = e.now();
    // Run event by event until the early swap-back starts; the countdown shows meanwhile.
    let mut saw_countdown = false;
    while e.health.swaps.iter().all(|s| s.saved.early.is_none()) {
        let t = e.next_event_time().unwrap();
        assert!(t < healthy_at + 10 * SECOND, "no early swap-back");
        e.advance(t).unwrap();
        let v = cg1_view(&e);
        if v.phase.as_deref() == Some("resyncing") {
            assert_eq!(v.swap_back_threshold_ms, Some(1000.0));
            assert_eq!(v.swap_back_hold_s, Some(2.0));
            let (exp, rec) = (
                v.expected_latency_ms.unwrap(),
                v.recorded_latency_ms.unwrap(),
            );
            assert!(
                exp > rec,
                "blocks still to copy back cost time: {exp} vs {rec}"
            );
            if let Some(w) = v.within_for_s {
                assert!((0.0..=2.0).contains(&w), "{w}");
                saw_countdown |= w > 0.0;
            }
        }
    }
    assert!(
        saw_countdown,
        "the hold period counted down in simulated time"
    );
    let s = e
        .health
        .swaps
        .iter()
        .find(|s| s.saved.early.is_some())
        .unwrap();
    let early_at = s.saved.early.unwrap();
    assert!(
        early_at >= healthy_at + 2 * SECOND,
        "not before the hold period"
    );
    assert!(s.tracked() > 0, "the resync had not ended by itself");
    assert!(cg1_view(&e).swapping_back_early || e.health.swaps.len() == 2);
    // The guests are held while the last blocks go back, then I/O swaps back.
    let writes = e.snapshot().vms[0].writes;
    let limit = e.now() + 5 * SECOND;
    while !e.health.swaps.is_empty() {
        let t = e.next_event_time().unwrap();
        assert!(t <= limit, "the early swap-back did not finish");
        e.advance(t).unwrap();
        if e.health
            .swaps
            .iter()
            .any(|s| s.saved.early.is_some() && s.vms.iter().any(|v| v.vm == 0))
        {
            assert_eq!(e.snapshot().vms[0].writes, writes, "a1 is held");
        }
    }
    for vm in SWAPPED {
        assert!(
            e.expect_served_by(vm, "ap").0,
            "{vm} is back on its primary"
        );
    }
    let log = e.take_log();
    assert!(
        log.iter()
            .any(|l| l.message.contains("swaps back before its resync ends")
                && l.message.contains("stayed within 1000 ms")),
        "the reason is logged: {log:#?}"
    );
    assert!(
        log.iter().any(|l| l
            .message
            .contains("swapped back before the resync's end on the latency comparison")),
        "{log:#?}"
    );
    // The guests go on, on the primaries, and replication restarts.
    let writes = e.snapshot().vms[0].writes;
    run(&mut e, SECOND);
    assert!(e.snapshot().vms[0].writes > writes, "the guests run again");
    done(e.apply(Command::StopWorkloads));
    run(&mut e, 2 * SECOND);
    for ds in ["ds-1", "ds-3"] {
        let (ok, detail) = e.expect_replicating(ds);
        assert!(ok, "{detail}");
    }
    assert_all_consistent(&e);
}

#[test]
fn above_the_threshold_the_countdown_never_starts_and_the_resync_end_swaps_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = busy_engine(dir.path(), "SwapBack(latency_ms: 0.5, hold_s: 0)");
    done(e.apply(Command::ArrayHealthy { array: "ap".into() }));
    run(&mut e, 4 * SECOND);
    let v = cg1_view(&e);
    assert_eq!(
        v.phase.as_deref(),
        Some("resyncing"),
        "the guests outrun the link"
    );
    assert_eq!(v.within_for_s, None, "over the threshold: no countdown");
    assert!(e.health.swaps.iter().all(|s| s.saved.early.is_none()));
    assert!(v.expected_latency_ms.unwrap() - v.recorded_latency_ms.unwrap() > 0.5);
    // Stopped guests let the resync end: the swap-back at its end is still there.
    done(e.apply(Command::StopWorkloads));
    run(&mut e, 5 * SECOND);
    assert!(e.health.swaps.is_empty());
    let log = e.take_log();
    assert!(
        log.iter().any(|l| l.message.contains("resync complete")),
        "{log:#?}"
    );
    assert!(
        !log.iter()
            .any(|l| l.message.contains("before its resync ends"))
    );
    assert_all_consistent(&e);
}
