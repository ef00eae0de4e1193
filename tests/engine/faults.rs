//! Crash at every fault point: a short fixed schedule (a migration in each mode, a cancel,
//! replication publishes, a disaster and an unplanned failover) is first run recording the
//! fault points it passes; then, for every point and a few of its passes, it is rerun in a
//! fresh workspace with that pass armed. The injected error is the crash: the engine is
//! dropped without `close`, reopened with `Engine::open_or_create`, and the invariants are
//! checked — each VM has one live instance at the protected site and verifies, every
//! published recovery point is its cut on the replicas, and the interrupted work (the
//! migrations, then the failover) finishes or reruns and recovers the same VMs consistent.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use drconsole::disk::{self, Horizon, ImageFile};
use drconsole::engine::copy::CopyMode;
use drconsole::engine::{
    Command, Engine, EngineError, EngineOptions, FailoverKind, FailoverState, GroupState, MINUTE,
    SECOND,
};
use drconsole::fault;
use drconsole::topology::Topology;

/// cg-1 = {ds-1, ds-2} replicated to ny (RPO 1 min) in pg-a; ds-l not replicated.
fn topology() -> Topology {
    Topology::from_ron_str(
        r#"Topology(
    name: "faults",
    sites: [Site(id: "pa", name: "P", role: Protected), Site(id: "ny", name: "R", role: Recovery)],
    links: [Link(from: "pa", to: "ny", mbps: 100)],
    hosts: [Host(id: "h", site: "pa", cpus: 16, memory_gib: 64),
            Host(id: "r", site: "ny", cpus: 16, memory_gib: 64)],
    arrays: [
        Array(id: "ap", site: "pa", luns: [
            Lun(id: "l1", capacity_gib: 4, replication: Some(LunReplication(target: "l1r", rpo_minutes: 1, consistency_group: Some("cg-1")))),
            Lun(id: "l2", capacity_gib: 4, replication: Some(LunReplication(target: "l2r", rpo_minutes: 1, consistency_group: Some("cg-1")))),
            Lun(id: "ll", capacity_gib: 4),
        ]),
        Array(id: "ar", site: "ny", luns: [Lun(id: "l1r", capacity_gib: 4), Lun(id: "l2r", capacity_gib: 4)]),
    ],
    datastores: [
        Datastore(id: "ds-1", site: "pa", luns: ["l1"], throughput_mib_s: 4),
        Datastore(id: "ds-2", site: "pa", luns: ["l2"], throughput_mib_s: 4),
        Datastore(id: "ds-l", site: "pa", luns: ["ll"], throughput_mib_s: 4),
        Datastore(id: "ds-1r", site: "ny", luns: ["l1r"]),
        Datastore(id: "ds-2r", site: "ny", luns: ["l2r"]),
    ],
    protection_groups: [ProtectionGroup(id: "pg-a", name: "A", datastores: ["ds-1", "ds-2"])],
    vms: [
        Vm(id: "a1", uuid: "aaaaaaaa-0000-4000-8000-000000000001", host: "h", datastore: "ds-1",
           disk_mib: 4, vcpus: 1, memory_gib: 1, priority: 1, workload: Some(Workload(write_iops: 20, read_iops: 5))),
        Vm(id: "a2", uuid: "aaaaaaaa-0000-4000-8000-000000000002", host: "h", datastore: "ds-2",
           disk_mib: 1, vcpus: 1, memory_gib: 1, priority: 2, workload: Some(Workload(write_iops: 20, read_iops: 5))),
        Vm(id: "l1", uuid: "aaaaaaaa-0000-4000-8000-000000000003", host: "h", datastore: "ds-l",
           disk_mib: 1, vcpus: 1, memory_gib: 1, priority: 3, workload: Some(Workload(write_iops: 20, read_iops: 5))),
    ],
)"#,
        "faults.ron",
    )
    .unwrap()
}

fn opts() -> EngineOptions {
    EngineOptions {
        seed: 7,
        run_bytes: 256 * 1024,
        ..EngineOptions::default()
    }
}

type Res = Result<(), EngineError>;

fn migrate(e: &mut Engine, vm: &str, to: &str, mode: CopyMode) -> Res {
    e.apply(Command::Migrate {
        vm: vm.into(),
        to: to.into(),
        mode,
        confirm: true,
    })?;
    Ok(())
}

fn finish_migration(e: &mut Engine, vm: &str) -> Res {
    let limit = e.now() + 10 * MINUTE;
    assert!(e.run_until_migrated(vm, limit)?, "{vm}: migration ends");
    Ok(())
}

fn replicate(e: &mut Engine) -> Res {
    e.apply(Command::ReplicateNow {
        datastore: "ds-1".into(),
    })?;
    e.advance(e.now() + 30 * SECOND)
}

fn disaster_and_failover(e: &mut Engine) -> Res {
    if !e.snapshot().sites_down.iter().any(|s| s == "pa") {
        e.apply(Command::Disaster { site: "pa".into() })?;
    }
    e.advance(e.now() + 10 * SECOND)?;
    e.apply(Command::Failover {
        protection_groups: vec!["pg-a".into()],
        kind: FailoverKind::Unplanned,
        point: None,
    })?;
    Ok(())
}

/// The steps of the schedule, after the workspace is created.
const STEPS: usize = 8;
/// The first step of the failover (the disaster and the failover).
const FAILOVER_STEP: usize = 7;

fn step(e: &mut Engine, k: usize) -> Res {
    match k {
        0 => {
            e.apply(Command::StartWorkloads)?;
            e.advance(10 * SECOND)
        }
        1 => {
            migrate(e, "a1", "ds-2", CopyMode::Mirror)?;
            finish_migration(e, "a1")
        }
        2 => {
            migrate(e, "a2", "ds-1", CopyMode::Redirect)?;
            finish_migration(e, "a2")
        }
        3 => {
            // Split mode, cancelled mid-copy: the roll-back copies blocks back.
            migrate(e, "l1", "ds-1", CopyMode::Split)?;
            e.advance(e.now() + SECOND / 10)?;
            e.apply(Command::CancelMigration { vm: "l1".into() })?;
            finish_migration(e, "l1")
        }
        4 => {
            migrate(e, "l1", "ds-2", CopyMode::Split)?;
            finish_migration(e, "l1")
        }
        5 => replicate(e),
        6 => {
            // A move within the CG that a published point catches mid-copy: the replicas
            // then hold its source and its target, and the failover deletes the loser.
            migrate(e, "a1", "ds-1", CopyMode::Mirror)?;
            e.apply(Command::ReplicateNow {
                datastore: "ds-1".into(),
            })?;
            e.advance(e.now() + SECOND * 6 / 10)
        }
        7 => disaster_and_failover(e),
        _ => unreachable!(),
    }
}

/// What a failover recovered: VM → consistent.
fn failover_outcome(e: &Engine) -> BTreeMap<String, bool> {
    let r = e.failovers().last().expect("a failover ran");
    assert_eq!(r.state, FailoverState::Done, "{r:#?}");
    r.results
        .iter()
        .filter(|x| x.recovered)
        .map(|x| (x.vm.clone().unwrap(), x.consistent == Some(true)))
        .collect()
}

/// Invariants of a workspace at rest (after a reopen, or after finishing its work).
fn check(e: &Engine, when: &str) {
    let snap = e.snapshot();
    for v in &snap.vms {
        let verify = e.verify_vm(&v.id).unwrap();
        assert!(
            verify.consistent,
            "{when}: {} does not verify: {verify:#?}",
            v.id
        );
        if v.recovered || v.down {
            continue;
        }
        let live: Vec<_> = e
            .instances_of(&v.id)
            .unwrap()
            .into_iter()
            .filter(|i| {
                !i.config
                    .migration
                    .as_ref()
                    .is_some_and(|m| m.target && !m.completed)
            })
            .map(|i| i.dir.display().to_string())
            .collect();
        assert_eq!(live.len(), 1, "{when}: {} live instances: {live:?}", v.id);
    }
    // Every published point is its cut on the replicas (until a failover makes the
    // replicas live).
    for g in &snap.groups {
        if g.state == GroupState::FailedOver {
            continue;
        }
        // A group that can replicate has its next cycle due (none is in flight here).
        if g.state == GroupState::Idle {
            assert!(
                g.next_cut_at.is_some(),
                "{when}: group {} has no cycle due: replication stopped",
                g.id
            );
        }
        let Some(point) = e.published_point(&g.pairs[0].datastore).cloned() else {
            continue;
        };
        let replicas: Vec<String> = g.pairs.iter().map(|p| p.replica.clone()).collect();
        let ws = e.workspace();
        let elections = drconsole::recovery::scan_and_elect_in(ws, &replicas, |_| false).unwrap();
        let journal = disk::read_journal(&ws.journal_path("pa")).unwrap();
        let cut = journal.up_to(point.cut_seq);
        let mut images = Vec::new();
        for el in &elections {
            let path = el.recover_from.as_ref().unwrap_or_else(|| {
                panic!("{when}: {} has no winner on the replicas: {el:#?}", el.uuid)
            });
            let img = ImageFile::open_read_only(&ws.root().join(path).join("disk0.img")).unwrap();
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
            "{when}: group {} point {} (cut seq {}) is not its cut: {report:#?}",
            g.id, point.cycle, point.cut_seq
        );
    }
}

/// While a migration resumed by the reopen runs, another one starts: it must not reuse
/// the running one's id (its record and bitmap files).
fn migrate_another(e: &mut Engine, when: &str) {
    let snap = e.snapshot();
    let running: Vec<String> = snap
        .vms
        .iter()
        .filter_map(|v| v.migration.as_ref().map(|m| m.id.clone()))
        .collect();
    let idle = snap
        .vms
        .iter()
        .find(|v| v.migration.is_none() && !v.down && !v.recovered);
    let (false, Some(v)) = (running.is_empty(), idle) else {
        return;
    };
    let to = if v.datastore == "ds-1" {
        "ds-2"
    } else {
        "ds-1"
    };
    migrate(e, &v.id, to, CopyMode::Mirror)
        .unwrap_or_else(|err| panic!("{when}: migrating {} too: {err}", v.id));
    let id = e
        .snapshot()
        .vms
        .iter()
        .find(|x| x.id == v.id)
        .unwrap()
        .migration
        .as_ref()
        .map(|m| m.id.clone());
    assert!(
        id.as_ref().is_some_and(|id| !running.contains(id)),
        "{when}: the new migration of {} reuses a running one's id {id:?} (running: {running:?})",
        v.id
    );
}

/// One run of the schedule in `root`. Returns the step a crash fell in (None: no crash;
/// a crash while the workspace is created counts as step 0), the engine, and the fault
/// points passed by the create (when recording).
type Hits = Vec<(&'static str, u64)>;
fn run_schedule(root: &Path) -> (Option<usize>, Engine, Hits) {
    let mut e = match Engine::open_or_create(root, &topology(), opts()) {
        Ok(e) if fault::tripped().is_none() => e,
        Ok(e) => return (Some(0), e, Vec::new()),
        Err(err) => {
            assert!(fault::tripped().is_some(), "create failed: {err}");
            fault::disarm();
            return (Some(0), reopen(root), Vec::new());
        }
    };
    let at_create = fault::hits();
    for k in 0..STEPS {
        let r = step(&mut e, k);
        if fault::tripped().is_some() {
            return (Some(k), e, at_create);
        }
        if let Err(err) = r {
            panic!("step {k} failed without a fault: {err}");
        }
    }
    (None, e, at_create)
}

fn reopen(root: &Path) -> Engine {
    fault::disarm();
    Engine::open_or_create(root, &topology(), opts())
        .unwrap_or_else(|e| panic!("reopen after the crash: {e}"))
}

/// Which passes of a point to crash at: all of them when there are few (`n` ≤ 9);
/// otherwise every pass during the create (`c` of them), the first one after it, the middle
/// one and the last one.
fn passes(n: u64, c: u64) -> Vec<u64> {
    if n <= 9 {
        return (1..=n).collect();
    }
    let mut v: Vec<u64> = (1..=c + 1)
        .chain([n.div_ceil(2), n])
        .filter(|&p| p <= n)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Crash runs at once.
const THREADS: usize = 4;

/// One crash run: the schedule with pass `nth` (of `n`) of point `name` armed, the crash,
/// the reopen, the checks, then the interrupted work finished and the failover (re)run.
fn crash_run(root: &Path, name: &str, nth: u64, n: u64, reference: &BTreeMap<String, bool>) {
    fault::arm(name, nth);
    let (crashed, e, _) = run_schedule(root);
    let what = format!("crash at {name}#{nth} of {n}");
    let k = crashed.unwrap_or_else(|| panic!("{what}: the fault never fired"));
    drop(e); // the crash: no close
    let mut e = reopen(root);
    check(&e, &format!("{what} (step {k}), reopened"));
    // Finish what the crash interrupted.
    if k < FAILOVER_STEP {
        migrate_another(&mut e, &what);
        for vm in e.vm_ids() {
            if e.is_migrating(&vm) {
                finish_migration(&mut e, &vm)
                    .unwrap_or_else(|err| panic!("{what}: finishing {vm}: {err}"));
            }
        }
        check(&e, &format!("{what}, migrations finished"));
        replicate(&mut e).unwrap_or_else(|err| panic!("{what}: replicating: {err}"));
        check(&e, &format!("{what}, replicated"));
    }
    let done = e
        .failovers()
        .last()
        .is_some_and(|r| r.state == FailoverState::Done);
    if !done {
        disaster_and_failover(&mut e)
            .unwrap_or_else(|err| panic!("{what}: the failover (re)run: {err}"));
    }
    let got = failover_outcome(&e);
    if k >= FAILOVER_STEP {
        assert_eq!(
            &got, reference,
            "{what}: the failover recovers the same VMs"
        );
    } else {
        // Where l1 ended depends on where the crash fell; every VM in scope recovers,
        // consistent.
        assert!(
            got.contains_key("a1") && got.contains_key("a2") && got.values().all(|&c| c),
            "{what}: {got:?}"
        );
    }
    check(&e, &format!("{what}, failed over"));
}

#[test]
fn a_crash_at_every_fault_point_recovers() {
    let start = Instant::now();
    let dir = crate::testkit::scratch();
    fault::record();
    let (crashed, mut e, at_create) = run_schedule(&dir.path().join("record"));
    let record_s = start.elapsed().as_secs_f64();
    let hits = fault::hits();
    fault::disarm();
    assert_eq!(crashed, None);
    check(&e, "the uninterrupted run");
    let reference = failover_outcome(&e);
    assert_eq!(
        reference.keys().map(String::as_str).collect::<Vec<_>>(),
        ["a1", "a2", "l1"],
        "the uninterrupted failover recovers every VM of pg-a"
    );
    assert!(reference.values().all(|&c| c), "{reference:?}");
    e.advance(e.now() + MINUTE).unwrap();
    drop(e);
    for want in [
        "atomic.renamed",
        "migrate.record-copying",
        "copy.bit-written",
        "copy.bitmap-written",
        "complete.topology-saved",
        "publish.commit-written",
        "publish.replica-applied",
        "publish.published-written",
        "failover.loser-deleted",
        "failover.state-written",
        "create.workspace-made",
        "create.state-written",
    ] {
        assert!(
            hits.iter().any(|(n, _)| *n == want),
            "the schedule passes {want}: {hits:?}"
        );
    }

    let mut jobs = Vec::new();
    for &(name, n) in &hits {
        // Every pass of the create, for the two atomic-write points whose crash states
        // differ (before the rename: the old file; after it: the new one). A crash at
        // temp-synced leaves what one at temp-written does, dir-synced what renamed does.
        let c = at_create
            .iter()
            .find(|(x, _)| {
                *x == name && !matches!(name, "atomic.temp-synced" | "atomic.dir-synced")
            })
            .map_or(0, |(_, c)| *c);
        jobs.extend(passes(n, c).into_iter().map(|nth| (name, nth, n)));
    }
    // The runs are independent and mostly wait for fsync: a few threads share them (the
    // arming is per thread).
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                while let Some(&(name, nth, n)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let root = dir.path().join(format!("{name}-{nth}"));
                    crash_run(&root, name, nth, n, &reference);
                    let _ = std::fs::remove_dir_all(&root);
                }
            });
        }
    });
    let runs = jobs.len();
    println!(
        "fault points: {} distinct, {} passes in all; crash runs: {runs}; {:.1} s ({record_s:.2} s the uninterrupted run)",
        hits.len(),
        hits.iter().map(|(_, n)| n).sum::<u64>(),
        start.elapsed().as_secs_f64()
    );
    for (name, n) in &hits {
        println!("  {name}: {n}");
    }
}
