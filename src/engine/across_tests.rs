//! Cross-site live migration of a consistency group (SPEC §12) on real files.

use super::replication_tests::{opts, topology};
use super::test_support::run_until;
use super::*;

fn across(cg: &str) -> Command {
    Command::MigrateAcross {
        consistency_group: cg.into(),
        confirm: false,
        consistency: Consistency::Keep,
    }
}

/// The consistency-breaking move, confirmed or not.
fn one_by_one(cg: &str, confirm: bool) -> Command {
    Command::MigrateAcross {
        consistency_group: cg.into(),
        confirm,
        consistency: Consistency::Break,
    }
}

fn phase(e: &Engine) -> AcrossPhase {
    e.across_ops().last().expect("a move").phase
}

/// Each VM of cg-1 is where `ds` says, consistent, with no write lost.
fn all_on(e: &Engine, ds: [&str; 3]) {
    for (vm, ds) in ["a1", "a2", "b1"].into_iter().zip(ds) {
        assert_eq!(e.location(vm).unwrap().0, ds, "{vm}");
        let v = e.verify_vm(vm).unwrap();
        assert!(v.consistent, "{vm}: {v:?}");
        assert_eq!(v.writes_lost, 0, "{vm}");
    }
}

/// With the guests stopped and a cycle of the reversed group published, each of pa's
/// instances holds its running copy's bytes (the source is the replica now).
fn sources_hold_the_running_bytes(e: &mut Engine) {
    e.apply(Command::StopWorkloads).unwrap();
    let in_flight = u64::from(e.groups[0].transfer.is_some());
    e.apply(Command::ReplicateNow {
        datastore: "ds-1r".into(),
    })
    .unwrap();
    // The cycle cut now, or the one right after the cycle in flight.
    let cycle = e.groups[0].saved.cycles + in_flight;
    let limit = e.now + 10 * MINUTE;
    run_until(e, limit, "the last cycle", |e| {
        e.groups[0]
            .published
            .as_ref()
            .is_some_and(|p| p.cycle >= cycle)
    });
    for (vm, from, to) in [
        ("a1", "ds-1", "ds-1r"),
        ("a2", "ds-1", "ds-1r"),
        ("b1", "ds-2", "ds-2r"),
    ] {
        let read = |ds: &str| {
            let p = e
                .workspace()
                .datastore_dir(ds)
                .unwrap()
                .join(vm)
                .join("disk0.img");
            std::fs::read(&p).unwrap_or_else(|err| panic!("{}: {err}", p.display()))
        };
        assert!(
            read(from) == read(to),
            "{vm}: pa's instance differs from the running one"
        );
    }
}

/// The latest write latency of VM `vm`, µs.
fn last_latency(e: &Engine, vm: &str) -> u64 {
    let i = e.vm_index(vm).unwrap();
    e.latencies
        .iter()
        .rev()
        .find(|l| l.1 == i)
        .expect("a write")
        .2
}

/// cg-1 (a1, a2 on ds-1, b1 on ds-2: all of pg-a) moves to ny while its guests write:
/// rated none, synchronous until the switch (each write pays the link), only what ny lacks
/// is shipped, all three switch at one instant onto reserved ny hosts, the group reverses,
/// nothing is lost and no guest stops. With the guests stopped and a cycle published, pa's
/// instances hold the running images' bytes.
#[test]
fn a_cg_moves_across_sites_live_and_its_sources_become_exact_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(&dir.path().join("ws"), &topology(20.0, 1, 50), opts(5)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(90 * SECOND).unwrap();
    let before = last_latency(&e, "a1");
    let out = e.apply(across("cg-1")).unwrap();
    assert!(
        matches!(&out, Outcome::Done(m) if m.contains("synchronous")),
        "{out:?}"
    );
    let op = e.across_ops()[0].clone();
    assert_eq!(op.rating, "none");
    assert_eq!((op.from_site.as_str(), op.to_site.as_str()), ("pa", "ny"));
    assert!(op.changed_blocks > 0);
    // Synchronous: a write now costs its transfer over the link on top of the storage.
    let writes = e.snapshot().vms[0].writes;
    let limit = e.now + MINUTE;
    run_until(&mut e, limit, "a synchronous write", |e| {
        e.snapshot().vms[0].writes > writes
    });
    assert_eq!(phase(&e), AcrossPhase::Syncing);
    assert_eq!(
        last_latency(&e, "a1"),
        before + link_write_time(20.0),
        "the write waited for the link"
    );
    let limit = e.now + 10 * MINUTE;
    run_until(&mut e, limit, "the move to succeed", |e| {
        phase(e) == AcrossPhase::Succeeded
    });
    let op = e.across_ops()[0].clone();
    // Only what ny lacked crossed before the switch: the changed blocks (a cycle's
    // framing aside), not the disks.
    assert!(
        op.catchup_bytes <= op.changed_blocks * 4096 * 11 / 10 + 64 * 1024,
        "{} bytes for {} changed blocks",
        op.catchup_bytes,
        op.changed_blocks
    );
    all_on(&e, ["ds-1r", "ds-1r", "ds-2r"]);
    let snap = e.snapshot();
    for v in snap.vms.iter().filter(|v| v.id != "c1") {
        assert!(
            !v.down && v.site == "ny" && v.host.starts_with('r'),
            "{v:?}"
        );
    }
    let g = snap.groups.iter().find(|g| g.id == "cg-1").unwrap();
    assert!(e.reprotected("pg-a"), "{g:?}");
    assert!(e.expect_protected("a1").0);
    // The guests never stopped: their writes went on at ny.
    let at_ny = e.snapshot().vms[0].writes;
    e.advance(e.now + MINUTE).unwrap();
    assert!(e.snapshot().vms[0].writes > at_ny);
    assert_eq!(e.across_write_cost(0), 0, "asynchronous again");

    sources_hold_the_running_bytes(&mut e);
}

/// The link goes down while the catch-up is on the wire: the move fails back, the VMs never
/// left pa, nothing is lost, writes are asynchronous again, and once the link returns the
/// group publishes again in its old direction.
#[test]
fn link_loss_mid_move_fails_back_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(&dir.path().join("ws"), &topology(1.0, 1, 50), opts(6)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(90 * SECOND).unwrap();
    e.apply(across("cg-1")).unwrap();
    e.advance(e.now + 2 * SECOND).unwrap();
    assert_eq!(phase(&e), AcrossPhase::Syncing);
    assert!(
        e.groups[0].transfer.is_some(),
        "the catch-up is on the wire"
    );
    e.apply(Command::LinkDown).unwrap();
    assert_eq!(phase(&e), AcrossPhase::FailedBack);
    assert!(e.across_ops()[0].message.contains("the link went down"));
    assert_eq!(e.across_write_cost(0), 0);
    all_on(&e, ["ds-1", "ds-1", "ds-2"]);
    e.advance(e.now + MINUTE).unwrap();
    e.apply(Command::LinkUp).unwrap();
    let cycle = e.groups[0].saved.cycles;
    let limit = e.now + 30 * MINUTE;
    run_until(&mut e, limit, "a publish after the link returns", |e| {
        e.groups[0]
            .published
            .as_ref()
            .is_some_and(|p| p.cycle > cycle)
    });
    assert!(!e.reprotected("pg-a"));
    all_on(&e, ["ds-1", "ds-1", "ds-2"]);
    // A new move is accepted.
    assert!(matches!(e.apply(across("cg-1")).unwrap(), Outcome::Done(_)));
}

/// The destination site is lost mid-move: the group fails back, nothing lost; a cancel
/// and a pause of the group's replication do the same; a move whose VMs do not fit at the other site is refused naming them.
#[test]
fn a_lost_destination_or_a_cancel_fails_back_and_a_move_that_does_not_fit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(&dir.path().join("ws"), &topology(1.0, 1, 50), opts(7)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(90 * SECOND).unwrap();
    e.apply(across("cg-1")).unwrap();
    e.advance(e.now + SECOND).unwrap();
    e.apply(Command::CancelAcross {
        consistency_group: "cg-1".into(),
    })
    .unwrap();
    assert_eq!(phase(&e), AcrossPhase::FailedBack);
    all_on(&e, ["ds-1", "ds-1", "ds-2"]);
    e.apply(across("cg-1")).unwrap();
    e.advance(e.now + SECOND).unwrap();
    e.apply(Command::Disaster { site: "ny".into() }).unwrap();
    assert_eq!(phase(&e), AcrossPhase::FailedBack);
    assert!(
        e.across_ops()[1]
            .message
            .contains("destination site ny was lost")
    );
    all_on(&e, ["ds-1", "ds-1", "ds-2"]);
    // Pausing the group's replication mid-move: the catch-up cannot come, so it fails back.
    e.apply(Command::SiteUp { site: "ny".into() }).unwrap();
    e.apply(across("cg-1")).unwrap();
    e.apply(Command::PauseReplication {
        datastore: "ds-1".into(),
    })
    .unwrap();
    assert_eq!(phase(&e), AcrossPhase::FailedBack);
    assert!(
        e.across_ops()[2]
            .message
            .contains("replication of cg-1 was paused")
    );
    assert_eq!(e.across_write_cost(0), 0);
    all_on(&e, ["ds-1", "ds-1", "ds-2"]);

    let mut t = topology(1.0, 1, 50);
    t.hosts.retain(|h| h.id != "r2");
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(&dir.path().join("ws"), &t, opts(7)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(30 * SECOND).unwrap();
    let err = e.apply(across("cg-1")).unwrap_err().to_string();
    assert!(
        err.contains("cg-1") && err.contains("b1") && err.contains("do(es) not fit"),
        "{err}"
    );
    let err = e.apply(across("cg-9")).unwrap_err().to_string();
    assert!(
        err.contains("cg-9") && err.contains("not a replicated consistency group"),
        "{err}"
    );
}

/// There and back: cg-1 moves to ny, then back to pa; each leg loses nothing, the VMs end
/// on their own datastores and hosts (home again, not recovered), replication runs pa to ny
/// as it began, and a reopen in between keeps the state.
#[test]
fn a_cg_moves_across_and_back_home() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let mut e = Engine::create(&ws, &topology(20.0, 1, 50), opts(8)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(90 * SECOND).unwrap();
    e.apply(across("cg-1")).unwrap();
    let limit = e.now + 10 * MINUTE;
    run_until(&mut e, limit, "the move to ny", |e| {
        phase(e) == AcrossPhase::Succeeded
    });
    all_on(&e, ["ds-1r", "ds-1r", "ds-2r"]);
    e.advance(e.now + MINUTE).unwrap();
    e.close().unwrap();
    let mut e = Engine::open(&ws).unwrap();
    assert_eq!(e.across_ops().len(), 1);
    all_on(&e, ["ds-1r", "ds-1r", "ds-2r"]);
    // The way back: the group now replicates ny to pa, so the move goes to pa.
    e.apply(across("cg-1")).unwrap();
    assert_eq!(
        (
            e.across_ops()[1].from_site.as_str(),
            e.across_ops()[1].to_site.as_str()
        ),
        ("ny", "pa")
    );
    let limit = e.now + 10 * MINUTE;
    run_until(&mut e, limit, "the move home", |e| {
        phase(e) == AcrossPhase::Succeeded
    });
    all_on(&e, ["ds-1", "ds-1", "ds-2"]);
    let snap = e.snapshot();
    for v in snap.vms.iter() {
        assert!(!v.recovered && v.site == "pa" && v.host == "h", "{v:?}");
    }
    let g = snap.groups.iter().find(|g| g.id == "cg-1").unwrap();
    assert_eq!(
        (g.source_site.as_str(), g.target_site.as_str()),
        ("pa", "ny")
    );
    assert!(!g.reversed, "{g:?}");
}

/// The record files of move `op`, on the source datastores.
fn records(e: &Engine, op: u64) -> Vec<std::path::PathBuf> {
    ["ds-1", "ds-2"]
        .iter()
        .filter_map(|ds| {
            let dir = e
                .workspace()
                .datastore_dir(ds)
                .unwrap()
                .join(".records")
                .join(format!("across-{op}"));
            std::fs::read_dir(dir).ok()
        })
        .flatten()
        .map(|d| d.unwrap().path())
        .collect()
}

/// `consistency: Break`: rated heightened-mild (refused unless confirmed); the group stops
/// publishing and a record of pa's CG is kept; the VMs move one at a time (one runs at ny
/// while the others still run at pa), none stops for more than its last blocks, then the
/// group reverses and its first point restores consistency: success, nothing lost, the
/// record gone. With the guests stopped and a cycle published, pa holds the running bytes.
#[test]
fn a_cg_moves_across_one_vm_at_a_time_and_consistency_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(&dir.path().join("ws"), &topology(20.0, 1, 50), opts(9)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(90 * SECOND).unwrap();
    let out = e.apply(one_by_one("cg-1", false)).unwrap();
    assert!(
        matches!(&out, Outcome::Refused(m) if m.contains("heightened-mild")),
        "{out:?}"
    );
    let published = e.groups[0].published.as_ref().map(|p| p.cycle);
    let out = e.apply(one_by_one("cg-1", true)).unwrap();
    assert!(
        matches!(&out, Outcome::Done(m) if m.contains("one VM at a time") && m.contains("RPO may be violated")),
        "{out:?}"
    );
    let id = e.across_ops()[0].id;
    assert_eq!(phase(&e), AcrossPhase::Moving);
    assert_eq!(records(&e, id).len(), 3, "a record per member");
    let g = e
        .snapshot()
        .groups
        .into_iter()
        .find(|g| g.id == "cg-1")
        .unwrap();
    assert_eq!(g.state, GroupState::MovingAcross);
    assert_eq!(e.across_write_cost(0), 0, "no synchronous replication");
    // One at a time: the first has switched while the last still runs at pa.
    let limit = e.now + 10 * MINUTE;
    run_until(&mut e, limit, "the first VM to switch", |e| {
        e.across_ops()[0].moved() >= 1
    });
    assert_eq!(e.location("a1").unwrap().0, "ds-1r");
    assert_eq!(e.location("b1").unwrap().0, "ds-2");
    assert_eq!(
        e.groups[0].published.as_ref().map(|p| p.cycle),
        published,
        "nothing published while the VMs move"
    );
    assert!(
        e.across_ops()[0].record_blocks > 0,
        "pa's writes were recorded"
    );
    // A member cannot start another move meanwhile, nor its PG a planned failover.
    let err = e
        .apply(Command::Migrate {
            vm: "b1".into(),
            to: "ds-1".into(),
            mode: crate::engine::copy::CopyMode::Mirror,
            confirm: true,
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("b1 is moving to ny with cg-1"), "{err}");
    let err = e
        .apply(Command::Failover {
            protection_groups: vec!["pg-a".into()],
            kind: FailoverKind::Planned,
            point: None,
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("cancel it or let it finish"), "{err}");
    run_until(&mut e, limit, "the move to succeed", |e| {
        phase(e) == AcrossPhase::Succeeded
    });
    let op = e.across_ops()[0].clone();
    assert!(
        op.message.contains("consistency restored"),
        "{}",
        op.message
    );
    assert!(
        op.max_pause > 0 && op.max_pause < SECOND,
        "{}",
        op.max_pause
    );
    assert!(records(&e, id).is_empty(), "the record is released");
    all_on(&e, ["ds-1r", "ds-1r", "ds-2r"]);
    for v in e.snapshot().vms.iter().filter(|v| v.id != "c1") {
        assert!(
            !v.down && v.site == "ny" && v.host.starts_with('r'),
            "{v:?}"
        );
    }
    assert!(e.reprotected("pg-a"));
    let at_ny = e.snapshot().vms[0].writes;
    e.advance(e.now + MINUTE).unwrap();
    assert!(e.snapshot().vms[0].writes > at_ny, "the guests run on");

    sources_hold_the_running_bytes(&mut e);
    // The DR report lists the move, and its group's direction counts it.
    let report = crate::report::build(&e.recorded().unwrap());
    assert_eq!(report.summary.cross_site_moves, 1);
    let ev = report
        .events
        .iter()
        .find(|ev| ev.kind == crate::report::EventKind::CrossSiteMove)
        .unwrap();
    assert_eq!(
        (ev.from_site.as_deref(), ev.to_site.as_deref()),
        (Some("pa"), Some("ny"))
    );
    assert_eq!(ev.state.as_deref(), Some("succeeded"));
    assert_eq!(ev.protection_groups, ["pg-a"]);
    assert!(ev.summary.contains("consistency break"), "{}", ev.summary);
    assert!(report.to_text().contains("1 cross-site move(s)"));
    assert!(crate::report::html::render(&report).contains("k-cross-site-move"));
}

/// A workspace at `ws` whose cg-1 moves one VM at a time over a slow link (seed `seed`),
/// run until the first VM has switched.
fn one_moved(ws: &std::path::Path, seed: u64) -> Engine {
    let mut e = Engine::create(ws, &topology(2.0, 1, 50), opts(seed)).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(90 * SECOND).unwrap();
    e.apply(one_by_one("cg-1", true)).unwrap();
    let limit = e.now + 30 * MINUTE;
    run_until(&mut e, limit, "the first VM to switch", |e| {
        e.across_ops()[0].moved() >= 1
    });
    e
}

/// The link goes down with one VM at ny: every VM returns to pa reverted to the record,
/// consistent, with the writes since counted as lost (the RPO this variant risks); the
/// group publishes again once the link returns. A crash in the middle of a fail-back (after
/// the first revert) is finished at the next open.
#[test]
fn a_failure_mid_move_one_vm_at_a_time_reverts_every_vm_to_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let mut e = one_moved(&ws, 10);
    e.advance(e.now + 5 * SECOND).unwrap();
    e.apply(Command::LinkDown).unwrap();
    let op = e.across_ops()[0].clone();
    assert_eq!(op.phase, AcrossPhase::FailedBack);
    assert!(op.message.contains("the link went down"), "{}", op.message);
    assert!(records(&e, op.id).is_empty());
    let mut lost = 0;
    for (vm, ds) in [("a1", "ds-1"), ("a2", "ds-1"), ("b1", "ds-2")] {
        assert_eq!(e.location(vm).unwrap().0, ds, "{vm}");
        let v = e.verify_vm(vm).unwrap();
        assert!(v.consistent, "{vm}: {v:?}");
        assert!(v.writes_lost > 0, "{vm} wrote after the record");
        lost += v.writes_lost;
    }
    assert_eq!(
        op.writes_lost, lost,
        "the move counts what the verify finds"
    );
    assert!(
        e.groups[0].published.is_none(),
        "the replicas are no point now"
    );
    e.advance(e.now + MINUTE).unwrap();
    e.apply(Command::LinkUp).unwrap();
    let limit = e.now + 30 * MINUTE;
    run_until(&mut e, limit, "a publish after the link returns", |e| {
        e.groups[0].published.is_some()
    });
    for vm in ["a1", "a2", "b1"] {
        assert!(e.verify_vm(vm).unwrap().consistent, "{vm}");
    }

    // Again, and the process dies after the first VM's revert: the reopen finishes it.
    e.apply(one_by_one("cg-1", true)).unwrap();
    e.advance(e.now + 10 * SECOND).unwrap();
    crate::fault::arm("across.reverted", 1);
    let crashed = e.apply(Command::CancelAcross {
        consistency_group: "cg-1".into(),
    });
    assert!(crate::fault::tripped().is_some(), "{crashed:?}");
    crate::fault::disarm();
    drop(e);
    let mut e = Engine::open(&ws).unwrap();
    let op = e.across_ops()[1].clone();
    assert_eq!(op.phase, AcrossPhase::FailedBack, "{}", op.message);
    assert!(
        op.message.contains("finished after a restart"),
        "{}",
        op.message
    );
    for (vm, ds) in [("a1", "ds-1"), ("a2", "ds-1"), ("b1", "ds-2")] {
        assert_eq!(e.location(vm).unwrap().0, ds, "{vm}");
        assert!(e.verify_vm(vm).unwrap().consistent, "{vm}");
    }

    // Pausing the group does not fail such a move back (that would lose writes); losing
    // the destination does.
    e.apply(one_by_one("cg-1", true)).unwrap();
    e.apply(Command::PauseReplication {
        datastore: "ds-1".into(),
    })
    .unwrap();
    assert_eq!(phase(&e), AcrossPhase::Moving);
    let limit = e.now + 30 * MINUTE;
    run_until(&mut e, limit, "the first VM to switch", |e| {
        e.across_ops()[2].moved() >= 1
    });
    e.apply(Command::Disaster { site: "ny".into() }).unwrap();
    let op = e.across_ops()[2].clone();
    assert_eq!(op.phase, AcrossPhase::FailedBack, "{}", op.message);
    assert!(
        op.message.contains("destination site ny was lost"),
        "{}",
        op.message
    );
    for (vm, ds) in [("a1", "ds-1"), ("a2", "ds-1"), ("b1", "ds-2")] {
        assert_eq!(e.location(vm).unwrap().0, ds, "{vm}");
        assert!(
            !e.snapshot().vms.iter().any(|v| v.id == vm && v.down),
            "{vm} runs"
        );
        assert!(e.verify_vm(vm).unwrap().consistent, "{vm}");
    }
}

/// A close in the middle of the moves: the reopen reads the records back and goes on with
/// the VMs still at pa; the move succeeds with nothing lost. An I/O error in a step of the
/// move home fails it back, and a cancel while a VM pauses for its switch lets it run again.
#[test]
fn a_reopen_mid_move_one_vm_at_a_time_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let e = one_moved(&ws, 11);
    let recorded = e.across_ops()[0].record_blocks;
    e.close().unwrap();
    let mut e = Engine::open(&ws).unwrap();
    assert_eq!(phase(&e), AcrossPhase::Moving);
    assert_eq!(e.across.records.len(), 3, "the records are read back");
    assert!(e.across.records.values().map(|r| r.saved()).sum::<u64>() >= recorded);
    let limit = e.now + 30 * MINUTE;
    run_until(&mut e, limit, "the move to succeed", |e| {
        phase(e) == AcrossPhase::Succeeded
    });
    all_on(&e, ["ds-1r", "ds-1r", "ds-2r"]);

    // Home again, and an I/O error as the first VM switches: the move fails back to the
    // record (at ny now) instead of staying stuck with its group held.
    e.apply(one_by_one("cg-1", true)).unwrap();
    crate::fault::fail_next("across.member-switched", 1);
    let limit = e.now + 30 * MINUTE;
    run_until(&mut e, limit, "the move home to end", |e| {
        !phase(e).active()
    });
    crate::fault::disarm();
    let op = e.across_ops()[1].clone();
    assert_eq!(op.phase, AcrossPhase::FailedBack, "{}", op.message);
    assert!(op.message.contains("the move failed"), "{}", op.message);
    for (vm, ds) in [("a1", "ds-1r"), ("a2", "ds-1r"), ("b1", "ds-2r")] {
        assert_eq!(e.location(vm).unwrap().0, ds, "{vm}");
        assert!(e.verify_vm(vm).unwrap().consistent, "{vm}");
    }
    assert!(!e.groups[0].saved.paused && e.group_blocked(0).is_none());

    // A cancel while a VM pauses for its last blocks: that VM's guest writes again.
    e.apply(one_by_one("cg-1", true)).unwrap();
    let limit = e.now + 30 * MINUTE;
    run_until(&mut e, limit, "a pause for the last blocks", |e| {
        e.across_ops()[2].paused_since.is_some()
    });
    let vm = e.across_ops()[2].members[e.across_ops()[2].moved()]
        .vm
        .clone();
    e.apply(Command::CancelAcross {
        consistency_group: "cg-1".into(),
    })
    .unwrap();
    let i = e.vm_index(&vm).unwrap();
    let writes = e.vms[i].writes;
    e.advance(e.now + 5 * SECOND).unwrap();
    assert!(e.vms[i].writes > writes, "{vm} runs again after the cancel");
}
