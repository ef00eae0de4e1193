//! The DR lifecycle on real files: a lost site's return.

use super::replication_tests::{opts, topology};
use super::*;

/// pa is lost; pg-a (cg-1: a1, a2, b1) fails over to ny, pg-b (c1) does not. When pa
/// returns, c1 restarts there and its group cuts again; a1, a2 and b1 keep running at ny,
/// and their instances at pa are named stale and stay off. All of it survives a reopen, and
/// a second return is refused.
#[test]
fn a_returned_site_restarts_what_was_not_failed_over_and_names_the_stale_copies() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(&dir.path().join("ws"), &topology(100.0, 1, 50), opts(3)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(150 * SECOND).unwrap();
    e.apply(Command::Disaster { site: "pa".into() }).unwrap();
    let lost_at = e.now;
    e.advance(e.now + 10 * MINUTE).unwrap();
    e.apply(Command::Failover {
        protection_groups: vec!["pg-a".into()],
        kind: FailoverKind::Unplanned,
        point: None,
    })
    .unwrap();
    let refused = e.apply(Command::SiteUp { site: "ny".into() }).unwrap();
    assert!(
        matches!(&refused, Outcome::Refused(why) if why.contains("ny is not down")),
        "{refused:?}"
    );
    let c1_writes = e
        .snapshot()
        .vms
        .iter()
        .find(|v| v.id == "c1")
        .unwrap()
        .writes;
    e.advance(e.now + 5 * MINUTE).unwrap();
    let out = e.apply(Command::SiteUp { site: "pa".into() }).unwrap();
    let Outcome::Done(msg) = out else {
        panic!("{out:?}")
    };
    assert!(
        msg.contains("1 VM(s) restarted") && msg.contains("3 stale instance(s)"),
        "{msg}"
    );
    let snap = e.snapshot();
    assert!(snap.sites_down.is_empty());
    let mut stale: Vec<&str> = snap.stale.iter().map(|s| s.vm.as_str()).collect();
    stale.sort();
    assert_eq!(stale, ["a1", "a2", "b1"]);
    for s in &snap.stale {
        assert!(s.path.starts_with("sites/pa/datastores/"), "{s:?}");
        assert!(e.workspace().root().join(&s.path).join("vm.ron").exists());
        let vm = snap.vms.iter().find(|v| v.id == s.vm).unwrap();
        assert_eq!(vm.site, "ny", "{vm:?}");
        assert!(!vm.down && vm.recovered);
    }
    let log: Vec<String> = e.take_log().into_iter().map(|l| l.message).collect();
    for vm in ["a1", "a2", "b1"] {
        assert!(
            log.iter()
                .any(|l| l.contains("is stale") && l.contains(&format!("({vm} was failed over"))),
            "{log:#?}"
        );
    }
    // c1 runs at pa again and its group ships cycles cut after the return.
    let c1 = snap.vms.iter().find(|v| v.id == "c1").unwrap();
    assert!(!c1.down && c1.site == "pa", "{c1:?}");
    let returned_at = e.now;
    e.advance(e.now + 5 * MINUTE).unwrap();
    let snap = e.snapshot();
    assert!(snap.vms.iter().find(|v| v.id == "c1").unwrap().writes > c1_writes);
    let g = snap.groups.iter().find(|g| g.id == "ds-3").unwrap();
    assert!(
        g.last_cut_at.is_some_and(|t| t >= returned_at),
        "{g:#?} (lost at {lost_at})"
    );
    assert!(e.verify_vm("c1").unwrap().consistent);
    // The failed-over group stays failed over: nothing ships into the running copies.
    let a = snap.groups.iter().find(|g| g.id == "cg-1").unwrap();
    assert!(a.last_cut_at.is_some_and(|t| t < lost_at), "{a:#?}");

    let root = e.workspace().root().to_path_buf();
    e.close().unwrap();
    let mut e = Engine::open(&root).unwrap();
    assert_eq!(e.stale_instances().len(), 3);
    assert_eq!(e.site_returns().len(), 1);
    assert_eq!(e.site_returns()[0].restarted, ["c1"]);
    assert!(!e.snapshot().vms.iter().any(|v| v.down));
    let again = e.apply(Command::SiteUp { site: "pa".into() }).unwrap();
    assert!(matches!(again, Outcome::Refused(_)), "{again:?}");
}

fn refused(e: &mut Engine, cmd: Command, why: &str) {
    let out = e.apply(cmd.clone()).unwrap();
    assert!(
        matches!(&out, Outcome::Refused(m) if m.contains(why)),
        "{cmd:?}: {out:?}, wanted a refusal saying {why:?}"
    );
}

fn group<'a>(e: &'a Engine, id: &str) -> &'a super::replication::GroupRt {
    e.groups.iter().find(|g| g.spec.id == id).unwrap()
}

/// Runs until group `id` has published a point cut at or after `after`.
fn until_published(e: &mut Engine, id: &str, after: SimTime) {
    for _ in 0..600 {
        if group(e, id)
            .published
            .as_ref()
            .is_some_and(|p| p.cut_at >= after)
        {
            return;
        }
        e.advance(e.now + SECOND).unwrap();
    }
    panic!("{id} published nothing cut after {after}");
}

/// Reprotect is refused, with its reason, until a real failover happened and both sites
/// and the link are up. Then cg-1 replicates ny → pa: its first cycle ships only the
/// blocks that differ between each running image and its old image at pa, a partial
/// target left at pa is deleted and named, and once the guests stop and a cycle publishes,
/// every old image at pa is byte for byte the running one. A failback is refused for now.
#[test]
fn reprotect_reverses_the_groups_and_ships_only_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(&dir.path().join("ws"), &topology(100.0, 1, 4), opts(5)).unwrap();
    let pg_a = || Command::Reprotect {
        protection_groups: vec!["pg-a".into()],
    };
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(150 * SECOND).unwrap();
    refused(&mut e, pg_a(), "pg-a is not failed over");
    e.apply(Command::Failover {
        protection_groups: vec!["pg-a".into()],
        kind: FailoverKind::Test,
        point: None,
    })
    .unwrap();
    refused(&mut e, pg_a(), "only test-failed-over");
    e.apply(Command::CleanupTestFailover).unwrap();
    // A partial target at pa when it is lost: a1 is moving inside cg-1.
    e.apply(Command::Migrate {
        vm: "a1".into(),
        to: "ds-2".into(),
        mode: super::copy::CopyMode::Mirror,
        confirm: false,
    })
    .unwrap();
    e.advance(e.now + SECOND / 4).unwrap();
    e.apply(Command::Disaster { site: "pa".into() }).unwrap();
    e.advance(e.now + MINUTE).unwrap();
    e.apply(Command::Failover {
        protection_groups: vec!["pg-a".into()],
        kind: FailoverKind::Unplanned,
        point: None,
    })
    .unwrap();
    refused(&mut e, pg_a(), "site pa is down");
    e.advance(e.now + 20 * SECOND).unwrap();
    e.apply(Command::SiteUp { site: "pa".into() }).unwrap();
    e.apply(Command::LinkDown).unwrap();
    refused(&mut e, pg_a(), "the replication link is down");
    e.apply(Command::LinkUp).unwrap();
    let partial: Vec<String> = e
        .stale_instances()
        .iter()
        .filter(|s| s.vm == "a1" && s.datastore == "ds-2")
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(partial.len(), 1, "{:#?}", e.stale_instances());

    let (ok, why) = e.expect_protected("a2");
    assert!(
        !ok && why.contains("which no replication group protects"),
        "{why}"
    );
    // What differs between the sides, block by block, before the reversal.
    let mut differing = 0u64;
    for vm in ["a1", "a2", "b1"] {
        let i = e.vm_index(vm).unwrap();
        let running = std::fs::read(e.vms[i].image.path()).unwrap();
        let old = e.workspace().root().join(format!(
            "sites/pa/datastores/{}/{}/disk0.img",
            e.vms[i].datastore.trim_end_matches('r'),
            e.vms[i].instance
        ));
        let old = std::fs::read(&old).unwrap();
        assert_eq!(running.len(), old.len());
        differing += running
            .chunks(4096)
            .zip(old.chunks(4096))
            .filter(|(a, b)| a != b)
            .count() as u64;
    }
    assert!(differing > 0);

    let out = e.apply(pg_a()).unwrap();
    let Outcome::Done(msg) = &out else {
        panic!("{out:?}")
    };
    assert!(
        msg.contains("cg-1: ny to pa") && msg.contains(&format!("the {differing} block(s)")),
        "{msg}"
    );
    assert!(!e.workspace().root().join(&partial[0]).exists());
    assert!(
        e.take_log()
            .iter()
            .any(|l| l.message.contains(&format!("deleted {}", partial[0]))),
        "the deletion is named"
    );
    assert_eq!(e.reprotects().len(), 1);
    assert!(e.reprotected("pg-a") && !e.reprotected("pg-b"));
    let g = group(&e, "cg-1");
    assert_eq!(
        (g.spec.source_site.as_str(), g.spec.target_site.as_str()),
        ("ny", "pa")
    );
    assert!(g.spec.pairs.iter().all(|p| p.datastore.ends_with('r')));
    refused(&mut e, pg_a(), "pg-a is not failed over");

    // The first reverse cycle: the differing blocks, not the images.
    let start = e.now;
    until_published(&mut e, "cg-1", start);
    let first = group(&e, "cg-1").published.clone().unwrap();
    let changed = differing * 4096;
    let whole: u64 = (2 + 1 + 2) * 1024 * 1024;
    assert!(
        first.bytes >= changed && first.bytes * 10 <= changed * 11 + 64 * 1024,
        "shipped {} for {changed} changed bytes",
        first.bytes
    );
    assert!(
        first.bytes < whole / 2,
        "shipped {} of {whole}",
        first.bytes
    );
    for vm in ["a1", "a2", "b1"] {
        let (ok, why) = e.expect_protected(vm);
        assert!(ok && why.contains("(ny to pa)"), "{why}");
    }

    // Guests stop, a cycle publishes: pa holds exactly what runs at ny.
    e.apply(Command::StopWorkloads).unwrap();
    e.advance(e.now + SECOND).unwrap();
    let stopped = e.now;
    e.apply(Command::ReplicateNow {
        datastore: "ds-1r".into(),
    })
    .unwrap();
    until_published(&mut e, "cg-1", stopped);
    let same = |e: &Engine| {
        for vm in ["a1", "a2", "b1"] {
            let i = e.vm_index(vm).unwrap();
            let rep = e.workspace().root().join(format!(
                "sites/pa/datastores/{}/{}/disk0.img",
                e.vms[i].datastore.trim_end_matches('r'),
                e.vms[i].instance
            ));
            assert!(
                std::fs::read(e.vms[i].image.path()).unwrap() == std::fs::read(&rep).unwrap(),
                "{vm}: the replica at pa differs from the running image"
            );
        }
    };
    same(&e);

    // Through a reopen: still reversed, still tracking, still shipping.
    let root = e.workspace().root().to_path_buf();
    e.close().unwrap();
    let mut e = Engine::open(&root).unwrap();
    assert_eq!(group(&e, "cg-1").spec.source_site, "ny");
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(e.now + 30 * SECOND).unwrap();
    e.apply(Command::StopWorkloads).unwrap();
    e.advance(e.now + SECOND).unwrap();
    let stopped = e.now;
    e.apply(Command::ReplicateNow {
        datastore: "ds-2r".into(),
    })
    .unwrap();
    until_published(&mut e, "cg-1", stopped);
    same(&e);
    for vm in ["a1", "a2", "b1"] {
        assert!(e.verify_vm(vm).unwrap().consistent, "{vm}");
    }
    // The unplanned leg lost writes; a planned failback loses none more, and the whole
    // history (pa, then ny, then pa again) is judged.
    let lost_before: BTreeMap<&str, u64> = ["a1", "a2", "b1"]
        .into_iter()
        .map(|vm| (vm, e.verify_vm(vm).unwrap().writes_lost))
        .collect();
    assert!(lost_before.values().any(|&n| n > 0), "{lost_before:?}");
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(e.now + 20 * SECOND).unwrap();
    failback(&mut e, "pg-a");
    e.advance(e.now + 20 * SECOND).unwrap();
    for vm in ["a1", "a2", "b1"] {
        let v = e.verify_vm(vm).unwrap();
        assert!(v.consistent, "{vm}: {v:?}");
        assert_eq!(
            v.writes_lost, lost_before[vm],
            "{vm}: the unplanned leg's loss stays"
        );
        let i = e.vm_index(vm).unwrap();
        assert_eq!(e.vms[i].site, "pa");
        assert_eq!(e.vms[i].history.hops.len(), 2, "{:?}", e.vms[i].history);
    }
}

/// A planned failback of reprotected `pg`: the scan is clean, the VMs come home.
fn failback(e: &mut Engine, pg: &str) {
    let plan = e
        .scan_failover(&[pg.into()], FailoverKind::Planned)
        .unwrap();
    assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    assert!(plan.unplaced.is_empty(), "{:?}", plan.unplaced);
    assert!(
        plan.vms.iter().all(|v| v
            .host
            .as_deref()
            .is_some_and(|h| e.topology().host(h).is_some_and(|h| h.site == "pa"))),
        "{:#?}",
        plan.vms
    );
    let out = e
        .apply(Command::Failover {
            protection_groups: vec![pg.into()],
            kind: FailoverKind::Planned,
            point: None,
        })
        .unwrap();
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
    for _ in 0..600 {
        if e.pending_failover.is_none() {
            break;
        }
        e.advance(e.now + SECOND).unwrap();
    }
    let last = e.failovers().last().unwrap();
    assert_eq!(last.state, FailoverState::Done, "{last:#?}");
    assert!(last.results.iter().all(|r| r.recovered), "{last:#?}");
}

/// A round trip of planned legs: pa ➡ ny, reprotect, failback ny ➡ pa, reprotect. No write
/// is lost, every VM runs on its own datastore and host again as a plain protected VM, and
/// once the guests stop and a cycle publishes its replica at ny is the running image byte
/// for byte. It all holds through a reopen.
#[test]
fn a_planned_round_trip_loses_no_write_and_ends_where_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(&dir.path().join("ws"), &topology(100.0, 1, 4), opts(7)).unwrap();
    let home: BTreeMap<String, (String, String)> = e
        .topology()
        .vms
        .iter()
        .map(|v| (v.id.clone(), (v.datastore.clone(), v.host.clone())))
        .collect();
    let pg = || vec!["pg-a".to_string()];
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(150 * SECOND).unwrap();
    e.apply(Command::Failover {
        protection_groups: pg(),
        kind: FailoverKind::Planned,
        point: None,
    })
    .unwrap();
    for _ in 0..600 {
        if e.pending_failover.is_none() {
            break;
        }
        e.advance(e.now + SECOND).unwrap();
    }
    assert_eq!(e.vms[e.vm_index("a1").unwrap()].site, "ny");
    e.advance(e.now + 20 * SECOND).unwrap();
    let out = e
        .apply(Command::Reprotect {
            protection_groups: pg(),
        })
        .unwrap();
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
    e.advance(e.now + 20 * SECOND).unwrap();
    failback(&mut e, "pg-a");
    for vm in ["a1", "a2", "b1"] {
        let i = e.vm_index(vm).unwrap();
        let v = &e.vms[i];
        assert_eq!(
            (&v.datastore, &v.host),
            (&home[vm].0, &home[vm].1),
            "{vm} is home"
        );
        assert!(v.recovered.is_none(), "{vm} is a plain protected VM again");
    }
    // Failed back, not yet reprotected: pa runs them, nothing replicates to ny yet.
    let (ok, why) = e.expect_protected("a1");
    assert!(!ok, "{why}");
    let out = e
        .apply(Command::Reprotect {
            protection_groups: pg(),
        })
        .unwrap();
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
    assert!(!e.reprotected("pg-a"));
    assert_eq!(group(&e, "cg-1").spec.source_site, "pa");
    e.advance(e.now + 30 * SECOND).unwrap();
    e.apply(Command::StopWorkloads).unwrap();
    e.advance(e.now + SECOND).unwrap();
    let stopped = e.now;
    e.apply(Command::ReplicateNow {
        datastore: "ds-1".into(),
    })
    .unwrap();
    until_published(&mut e, "cg-1", stopped);
    let root = e.workspace().root().to_path_buf();
    e.close().unwrap();
    let e = Engine::open(&root).unwrap();
    for vm in ["a1", "a2", "b1"] {
        let v = e.verify_vm(vm).unwrap();
        assert!(v.consistent && v.writes_lost == 0, "{vm}: {v:?}");
        let (ok, why) = e.expect_protected(vm);
        assert!(ok && why.contains("(pa to ny)"), "{why}");
        let i = e.vm_index(vm).unwrap();
        assert_eq!(e.vms[i].datastore, home[vm].0);
        assert!(e.vms[i].recovered.is_none());
        let rep = root.join(format!(
            "sites/ny/datastores/{}r/{}/disk0.img",
            e.vms[i].datastore, e.vms[i].instance
        ));
        assert!(
            std::fs::read(e.vms[i].image.path()).unwrap() == std::fs::read(&rep).unwrap(),
            "{vm}: the replica at ny differs from the running image"
        );
    }
    assert_eq!(e.failovers().len(), 2);
    assert_eq!(e.reprotects().len(), 2);
}

/// The replication test topology with every LUN keeping `n` recovery points.
fn points_topology(n: u32) -> Topology {
    let mut t = topology(100.0, 1, 2);
    for lun in t.arrays.iter_mut().flat_map(|a| a.luns.iter_mut()) {
        if let Some(r) = &mut lun.replication {
            r.retain_points = n;
        }
    }
    t
}

/// Six minutes of guest writes on [`points_topology`] keeping 4 points: cg-1 has cut a
/// point a minute, so it keeps its latest and three older ones.
fn six_minutes_of_points() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(&dir.path().join("ws"), &points_topology(4), opts(11)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(6 * MINUTE).unwrap();
    (dir, e)
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn tree_bytes(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// Points in time (SPEC §11): cg-1 keeps 4 points, stored as undos far smaller than its
/// images. A test failover at an older point recovers consistent copies cut then and
/// leaves the replicas byte for byte as they were; a point older than any kept is refused
/// naming the group, changing nothing; after a disaster, an unplanned failover to the
/// older point rolls the replicas back and recovers consistent images strictly older than
/// the latest point, giving up more writes than the latest would have.
#[test]
fn a_failover_to_an_older_point_recovers_a_consistent_older_image() {
    let (_dir, mut e) = six_minutes_of_points();
    let points = |e: &Engine| {
        e.snapshot()
            .groups
            .into_iter()
            .find(|g| g.id == "cg-1")
            .unwrap()
            .points
    };
    let kept = points(&e);
    assert_eq!(kept.len(), 4, "{kept:?}");
    assert!(kept[0].latest && kept[1..].iter().all(|p| !p.latest));
    assert!(
        kept.windows(2).all(|w| w[0].cut_at > w[1].cut_at),
        "{kept:?}"
    );
    // An older point costs the blocks the next cycle overwrote, not a copy of the images
    // (a1 2 MiB, a2 1 MiB, b1 2 MiB).
    for p in &kept[1..] {
        assert!(p.bytes > 0 && p.bytes < 5 * 1024 * 1024 / 2, "{p:?}");
    }
    let older = kept[2].clone();
    let latest_cut = kept[0].cut_at;
    let root = e.workspace().root().to_path_buf();
    let replicas = root.join("sites/ny/datastores");
    let before = tree_bytes(&replicas);

    // A test failover at the older point: consistent copies cut then, replicas untouched.
    let pg = || vec!["pg-a".to_string()];
    let out = e
        .apply(Command::Failover {
            protection_groups: pg(),
            kind: FailoverKind::Test,
            point: Some(to_minutes(older.cut_at)),
        })
        .unwrap();
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
    let test = e.failovers().last().unwrap().clone();
    assert_eq!(test.point, Some(older.cut_at));
    assert_eq!(test.results.len(), 3, "{test:?}");
    for r in &test.results {
        assert!(r.recovered, "{r:?}");
        assert_eq!(r.consistent, Some(true), "{r:?}");
        assert_eq!(r.point_cut_at, Some(older.cut_at), "{r:?}");
    }
    assert_eq!(
        before,
        tree_bytes(&replicas),
        "a test failover changed a replica"
    );
    e.apply(Command::CleanupTestFailover).unwrap();

    // A point older than any kept: refused, naming the group; nothing changes.
    e.apply(Command::Disaster { site: "pa".into() }).unwrap();
    let lost_at = e.now;
    e.advance(e.now + MINUTE).unwrap();
    let reports = e.failovers().len();
    let before = tree_bytes(&replicas);
    let err = e
        .apply(Command::Failover {
            protection_groups: pg(),
            kind: FailoverKind::Unplanned,
            point: Some(0.5),
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("group cg-1 keeps no recovery point cut at or before 00:30.0"),
        "{err}"
    );
    assert_eq!(e.failovers().len(), reports);
    assert_eq!(before, tree_bytes(&replicas));
    let plan = e
        .scan_failover_at(&pg(), FailoverKind::Unplanned, Some(older.cut_at))
        .unwrap();
    assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    assert!(
        plan.vms
            .iter()
            .all(|v| v.point_cut_at == Some(older.cut_at))
    );

    // The unplanned failover to the older point.
    let out = e
        .apply(Command::Failover {
            protection_groups: pg(),
            kind: FailoverKind::Unplanned,
            point: Some(to_minutes(older.cut_at)),
        })
        .unwrap();
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
    let report = e.failovers().last().unwrap().clone();
    assert_eq!(report.point, Some(older.cut_at));
    for r in &report.results {
        assert!(r.recovered, "{r:?}");
        assert_eq!(r.consistent, Some(true), "{r:?}");
        let cut = r.point_cut_at.unwrap();
        assert!(cut == older.cut_at && cut < latest_cut, "{r:?}");
        // Given up: the writes between the older cut and the disaster, more than the
        // latest point would have lost.
        let rpo = r.achieved_rpo_minutes.unwrap();
        assert!(rpo >= to_minutes(lost_at - older.cut_at) - 1e-6, "{r:?}");
        assert!(rpo > to_minutes(lost_at - latest_cut), "{r:?}");
        assert!(r.writes_lost.unwrap() > 0, "{r:?}");
        let v = e.verify_vm(r.vm.as_deref().unwrap()).unwrap();
        assert!(v.consistent && v.writes_lost > 0, "{v:?}");
    }
    // The rolled-back replicas are what the VMs run on now: still consistent after a reopen.
    let root = e.workspace().root().to_path_buf();
    e.close().unwrap();
    let e = Engine::open(&root).unwrap();
    for vm in ["a1", "a2", "b1"] {
        let v = e.verify_vm(vm).unwrap();
        assert!(v.consistent, "{vm} after a reopen: {v:?}");
    }
}

/// A crash while an unplanned failover rolls the replicas back to an older point (at the
/// marker, or after one or two undos applied) is finished at the next open: the replicas
/// hold the older point, and the failover asked again recovers it, consistent.
#[test]
fn a_crash_mid_rollback_is_finished_at_the_next_open() {
    for (fault, nth) in [
        ("points.rollback-marked", 1),
        ("points.undo-applied", 1),
        ("points.undo-applied", 2),
    ] {
        let (dir, mut e) = six_minutes_of_points();
        let ws = dir.path().join("ws");
        let g = e.groups.iter().position(|g| g.spec.id == "cg-1").unwrap();
        let older = e.retained_points(g)[2].cut_at;
        e.apply(Command::Disaster { site: "pa".into() }).unwrap();
        let failover = Command::Failover {
            protection_groups: vec!["pg-a".into()],
            kind: FailoverKind::Unplanned,
            point: Some(to_minutes(older)),
        };
        crate::fault::arm(fault, nth);
        let crashed = e.apply(failover.clone());
        assert!(
            crate::fault::tripped().is_some(),
            "{fault}#{nth}: {crashed:?}"
        );
        crate::fault::disarm();
        drop(e);

        let mut e = Engine::open(&ws).unwrap();
        let point = e.groups[g].published.clone().unwrap();
        assert_eq!(
            point.cut_at, older,
            "{fault}#{nth}: rolled back at the open"
        );
        let out = e.apply(failover).unwrap();
        assert!(matches!(out, Outcome::Done(_)), "{fault}#{nth}: {out:?}");
        for r in &e.failovers().last().unwrap().results {
            assert!(
                r.recovered && r.consistent == Some(true),
                "{fault}#{nth}: {r:?}"
            );
            assert_eq!(r.point_cut_at, Some(older), "{fault}#{nth}: {r:?}");
        }
    }
}
