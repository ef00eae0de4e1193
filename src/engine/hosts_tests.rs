//! Host faults with proactive reservations, on real files, checked with the stamp verifier.

use super::super::*;
use super::{BOOT_DELAY, Fate};

fn host_ha() -> Topology {
    Topology::from_ron_str(
        include_str!("../../sample_topologies/host_ha.ron"),
        "host_ha.ron",
    )
    .unwrap()
}

fn demo() -> Topology {
    Topology::from_ron_str(
        include_str!("../../sample_topologies/two_site_demo.ron"),
        "two_site_demo.ron",
    )
    .unwrap()
}

fn opts() -> EngineOptions {
    EngineOptions {
        seed: 7,
        ..EngineOptions::default()
    }
}

fn host_of(e: &Engine, vm: &str) -> (String, bool) {
    let i = e.vm_index(vm).unwrap();
    (e.vms[i].host.clone(), e.vms[i].down)
}

fn writes(e: &Engine, vm: &str) -> u64 {
    e.vms[e.vm_index(vm).unwrap()].writes
}

/// Every protected-site host: running VMs plus reservations never exceed its capacity.
fn assert_within_capacity(e: &Engine) {
    for h in e.hosts_views() {
        assert!(
            h.used_vcpus + h.reserved_vcpus() <= h.cpus,
            "{} over its vCPUs: {h:?}",
            h.id
        );
        assert!(
            h.used_memory_gib + h.reserved_memory_gib() <= h.memory_gib,
            "{} over its memory: {h:?}",
            h.id
        );
    }
}

fn assert_consistent(e: &Engine, vm: &str) {
    let v = e.verify_vm(vm).unwrap();
    assert!(v.consistent, "{vm}: {v:?}");
    assert_eq!(v.writes_lost, 0, "{vm}: {v:?}");
    assert!(v.written_blocks > 0, "{vm} wrote nothing: {v:?}");
}

#[test]
fn a_fault_moves_its_vms_in_priority_order_within_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(dir.path(), &demo(), opts()).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(2 * SECOND).unwrap();
    let before: Vec<u64> = ["mail-01", "erp-01", "log-01"]
        .iter()
        .map(|v| writes(&e, v))
        .collect();
    assert!(before.iter().all(|&w| w > 0));
    let out = e
        .apply(Command::HostFault {
            host: "esx-pa-3".into(),
        })
        .unwrap();
    assert!(
        matches!(&out, Outcome::Done(m) if m.contains("3 VM(s) impacted, 3 reserved")),
        "{out:?}"
    );
    // The three VMs stop: no more writes while down.
    for vm in ["mail-01", "erp-01", "log-01"] {
        assert!(host_of(&e, vm).1, "{vm} should be down");
    }
    assert_within_capacity(&e);
    let view = e.hosts_views();
    let pa3 = view.iter().find(|h| h.id == "esx-pa-3").unwrap();
    assert!(pa3.failed && pa3.vms.is_empty());
    let fault = pa3.fault.as_ref().unwrap();
    // Priority order: mail-01 and erp-01 (3) before log-01 (5).
    let order: Vec<&str> = fault.impacted.iter().map(|v| v.vm.as_str()).collect();
    assert_eq!(order, ["erp-01", "mail-01", "log-01"]);
    let mut boots = Vec::new();
    for v in &fault.impacted {
        match &v.fate {
            Fate::Reserved {
                host, restart_at, ..
            } => {
                assert_ne!(host, "esx-pa-3");
                boots.push(*restart_at);
            }
            other => panic!("{}: {other:?}", v.vm),
        }
    }
    assert!(boots.windows(2).all(|w| w[0] < w[1]), "{boots:?}");
    let held: usize = view.iter().map(|h| h.reservations.len()).sum();
    assert_eq!(held, 3);
    let stopped_at: Vec<u64> = ["erp-01", "mail-01", "log-01"]
        .iter()
        .map(|v| writes(&e, v))
        .collect();
    e.advance(e.now() + BOOT_DELAY - SECOND).unwrap();
    for (k, vm) in ["erp-01", "mail-01", "log-01"].iter().enumerate() {
        assert_eq!(writes(&e, vm), stopped_at[k], "{vm} wrote while down");
    }
    e.advance(e.now() + 6 * SECOND).unwrap();
    for vm in ["erp-01", "mail-01", "log-01"] {
        let (host, down) = host_of(&e, vm);
        assert!(!down, "{vm} still down");
        assert_ne!(host, "esx-pa-3");
        assert!(e.expect_on_host(vm, &host).0);
        assert!(!e.expect_on_host(vm, "esx-pa-3").0);
        // The new placement is the topology's.
        assert_eq!(e.topology().vm(vm).unwrap().host, host);
    }
    // Reservations became placements.
    assert!(e.hosts_views().iter().all(|h| h.reservations.is_empty()));
    assert_within_capacity(&e);
    let after: Vec<u64> = ["erp-01", "mail-01", "log-01"]
        .iter()
        .map(|v| writes(&e, v))
        .collect();
    assert!(after.iter().zip(&stopped_at).all(|(a, b)| a > b));
    for vm in e.vm_ids() {
        assert_consistent(&e, &vm);
    }
}

#[test]
fn what_does_not_fit_stays_down_until_the_repair() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(dir.path(), &host_ha(), opts()).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(5 * SECOND).unwrap();
    let out = e
        .apply(Command::HostFault {
            host: "esx-pa-1".into(),
        })
        .unwrap();
    let Outcome::Done(msg) = out else {
        panic!("{out:?}")
    };
    assert!(msg.contains("no room for erp-01"), "{msg}");
    let log = e.take_log();
    assert!(
        log.iter().any(|l| l.level == LogLevel::Warning
            && l.message.contains(
                "erp-01 needs 4 vCPU / 16 GiB; the most free is esx-pa-2: 2 vCPU / 8 GiB"
            )),
        "{log:?}"
    );
    assert_within_capacity(&e);
    e.advance(e.now() + MINUTE).unwrap();
    assert_eq!(host_of(&e, "db-01"), ("esx-pa-2".into(), false));
    assert_eq!(host_of(&e, "app-01"), ("esx-pa-3".into(), false));
    assert_eq!(host_of(&e, "erp-01"), ("esx-pa-1".into(), true));
    let (ok, detail) = e.expect_on_host("erp-01", "esx-pa-1");
    assert!(!ok && detail.contains("down"), "{detail}");
    assert_within_capacity(&e);
    let stuck = writes(&e, "erp-01");
    e.advance(e.now() + MINUTE).unwrap();
    assert_eq!(writes(&e, "erp-01"), stuck);
    // Repair: erp-01 restarts on it.
    let out = e
        .apply(Command::HostHealthy {
            host: "esx-pa-1".into(),
        })
        .unwrap();
    assert!(
        matches!(&out, Outcome::Done(m) if m.contains("erp-01 reserved")),
        "{out:?}"
    );
    let pa1 = e
        .hosts_views()
        .into_iter()
        .find(|h| h.id == "esx-pa-1")
        .unwrap();
    assert!(!pa1.failed);
    assert_eq!(pa1.reservations.len(), 1);
    e.advance(e.now() + MINUTE).unwrap();
    assert_eq!(host_of(&e, "erp-01"), ("esx-pa-1".into(), false));
    assert!(writes(&e, "erp-01") > stuck);
    assert_within_capacity(&e);
    for vm in e.vm_ids() {
        assert_consistent(&e, &vm);
    }
}

#[test]
fn reservations_and_pending_restarts_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let mut e = Engine::create(&ws, &host_ha(), opts()).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(5 * SECOND).unwrap();
    e.apply(Command::HostFault {
        host: "esx-pa-1".into(),
    })
    .unwrap();
    e.advance(e.now() + 5 * SECOND).unwrap();
    let views = e.hosts_views();
    e.close().unwrap();

    let mut e = Engine::open(&ws).unwrap();
    assert_eq!(e.hosts_views(), views, "the reopened engine shows the same");
    assert!(e.ha_host_failed("esx-pa-1"));
    for vm in ["db-01", "app-01", "erp-01"] {
        assert!(
            host_of(&e, vm).1,
            "{vm} should still be down after the reopen"
        );
    }
    // A second fault of the same host is still refused.
    assert!(matches!(
        e.apply(Command::HostFault {
            host: "esx-pa-1".into()
        }),
        Err(EngineError::Rule { .. })
    ));
    // The pending boots were queued again.
    e.advance(e.now() + MINUTE).unwrap();
    assert_eq!(host_of(&e, "db-01"), ("esx-pa-2".into(), false));
    assert_eq!(host_of(&e, "app-01"), ("esx-pa-3".into(), false));
    assert_eq!(host_of(&e, "erp-01"), ("esx-pa-1".into(), true));
    e.close().unwrap();

    // The new placements are in the topology in use; erp-01 is still waiting for room.
    let mut e = Engine::open(&ws).unwrap();
    assert_eq!(host_of(&e, "db-01"), ("esx-pa-2".into(), false));
    assert_eq!(host_of(&e, "erp-01"), ("esx-pa-1".into(), true));
    e.apply(Command::HostHealthy {
        host: "esx-pa-1".into(),
    })
    .unwrap();
    e.advance(e.now() + MINUTE).unwrap();
    assert_eq!(host_of(&e, "erp-01"), ("esx-pa-1".into(), false));
    for vm in e.vm_ids() {
        assert_consistent(&e, &vm);
    }
}

#[test]
fn a_fault_of_a_host_holding_reservations_moves_them_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(dir.path(), &demo(), opts()).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(5 * SECOND).unwrap();
    e.apply(Command::HostFault {
        host: "esx-pa-3".into(),
    })
    .unwrap();
    let holders: Vec<(String, String)> = e
        .hosts_views()
        .iter()
        .flat_map(|h| h.reservations.iter().map(|r| (r.vm.clone(), h.id.clone())))
        .collect();
    let (vm, holder) = holders.first().cloned().unwrap();
    e.apply(Command::HostFault {
        host: holder.clone(),
    })
    .unwrap();
    assert_within_capacity(&e);
    e.advance(e.now() + 45 * SECOND).unwrap();
    let views = e.hosts_views();
    let first = views.iter().find(|h| h.id == "esx-pa-3").unwrap();
    let entry = |f: &super::FaultRecord| f.impacted.iter().find(|v| v.vm == vm).cloned();
    let old = entry(first.fault.as_ref().unwrap()).unwrap();
    assert_eq!(old.fate, Fate::Superseded { by: holder.clone() });
    let second = views.iter().find(|h| h.id == holder).unwrap();
    let new = entry(second.fault.as_ref().unwrap()).unwrap();
    let (now_on, down) = host_of(&e, &vm);
    match new.fate {
        Fate::Running { host, .. } => {
            assert!(!down);
            assert_eq!(host, now_on);
            assert_ne!(now_on, holder);
            assert_ne!(now_on, "esx-pa-3");
        }
        Fate::NoRoom { reason } => {
            assert!(down, "{vm} has no room but runs");
            assert!(reason.contains(&vm), "{reason}");
        }
        other => panic!("{vm}: {other:?}"),
    }
    assert!(
        e.hosts_views()
            .iter()
            .filter(|h| h.failed)
            .all(|h| h.vms.is_empty())
    );
    for vm in e.vm_ids() {
        let v = e.verify_vm(&vm).unwrap();
        assert!(v.consistent && v.writes_lost == 0, "{vm}: {v:?}");
    }
}

#[test]
fn bad_ids_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(dir.path(), &host_ha(), opts()).unwrap();
    let err = |r: Result<Outcome, EngineError>| match r {
        Err(EngineError::Rule { object, rule }) => format!("{object}: {rule}"),
        other => panic!("expected a rule error, got {other:?}"),
    };
    let m = err(e.apply(Command::HostFault {
        host: "esx-nope".into(),
    }));
    assert!(
        m.contains("\"esx-nope\"") && m.contains("does not exist"),
        "{m}"
    );
    let m = err(e.apply(Command::HostFault {
        host: "esx-ny-1".into(),
    }));
    assert!(
        m.contains("\"esx-ny-1\"") && m.contains("not a protected site"),
        "{m}"
    );
    let m = err(e.apply(Command::HostHealthy {
        host: "esx-pa-2".into(),
    }));
    assert!(m.contains("has not failed"), "{m}");
    let m = err(e.apply(Command::HostHealthy {
        host: "esx-nope".into(),
    }));
    assert!(m.contains("does not exist"), "{m}");
    e.apply(Command::HostFault {
        host: "esx-pa-2".into(),
    })
    .unwrap();
    let m = err(e.apply(Command::HostFault {
        host: "esx-pa-2".into(),
    }));
    assert!(m.contains("already failed"), "{m}");
    let (ok, detail) = e.expect_on_host("nope", "esx-pa-1");
    assert!(!ok && detail.contains("does not exist"), "{detail}");
}

#[test]
fn the_failover_capacity_check_shows_every_reservation_held() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(dir.path(), &host_ha(), opts()).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(5 * SECOND).unwrap();
    let pgs = vec!["pg-gold".to_string()];
    let before = e.scan_failover(&pgs, FailoverKind::Test).unwrap();
    // No fault yet: only the recovery-site host, with this plan's reservations.
    assert_eq!(before.capacity.len(), 1);
    let ny = &before.capacity[0];
    assert_eq!(ny.host, "esx-ny-1");
    assert!(ny.recovery_site && !ny.failed);
    let mut planned: Vec<&str> = ny.reserved.iter().map(|r| r.vm.as_str()).collect();
    planned.sort();
    assert_eq!(planned, ["app-01", "db-01"]);
    assert!(ny.reserved.iter().all(|r| r.for_this_failover()));
    assert_eq!((ny.free_vcpus(), ny.free_memory_gib()), (16 - 12, 64 - 48));

    e.apply(Command::HostFault {
        host: "esx-pa-1".into(),
    })
    .unwrap();
    let plan = e.scan_failover(&pgs, FailoverKind::Test).unwrap();
    let row = |id: &str| plan.capacity.iter().find(|h| h.host == id).unwrap();
    assert!(row("esx-pa-1").failed);
    assert_eq!(row("esx-pa-1").free_vcpus(), 0);
    let pa2 = row("esx-pa-2");
    assert!(!pa2.recovery_site);
    assert_eq!(pa2.running, ["web-01"]);
    assert_eq!((pa2.used_vcpus, pa2.used_memory_gib), (2, 8));
    assert_eq!(pa2.reserved.len(), 1);
    assert_eq!(pa2.reserved[0].vm, "db-01");
    assert_eq!(pa2.reserved[0].purpose, "HA restart from esx-pa-1");
    assert!(!pa2.reserved[0].for_this_failover());
    assert_eq!((pa2.free_vcpus(), pa2.free_memory_gib()), (2, 8));
    assert_eq!(row("esx-pa-3").reserved[0].vm, "app-01");
    // Once they run, the reservations are placements: no HA row is left but the failed host.
    e.advance(e.now() + MINUTE).unwrap();
    let plan = e.scan_failover(&pgs, FailoverKind::Test).unwrap();
    let hosts: Vec<&str> = plan.capacity.iter().map(|h| h.host.as_str()).collect();
    assert_eq!(hosts, ["esx-ny-1", "esx-pa-1"]);
}

#[test]
fn a_planned_failover_takes_over_vms_waiting_to_boot() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::create(dir.path(), &host_ha(), opts()).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(5 * SECOND).unwrap();
    e.apply(Command::HostFault {
        host: "esx-pa-1".into(),
    })
    .unwrap();
    // db-01 and app-01 (on ds-gold, in pg-gold) wait to boot when the failover starts.
    e.apply(Command::Failover {
        protection_groups: vec!["pg-gold".into()],
        kind: FailoverKind::Planned,
        point: None,
    })
    .unwrap();
    e.advance(e.now() + 5 * MINUTE).unwrap();
    let pa1 = e
        .hosts_views()
        .into_iter()
        .find(|h| h.id == "esx-pa-1")
        .unwrap();
    for v in &pa1.fault.unwrap().impacted {
        if v.vm == "erp-01" {
            assert_eq!(v.fate.kind(), "no-room");
        } else {
            assert_eq!(v.fate.kind(), "abandoned", "{}: {:?}", v.vm, v.fate);
        }
    }
    for vm in ["db-01", "app-01"] {
        let r = e.failover_result(vm).unwrap();
        assert!(r.recovered, "{vm}: {r:?}");
        let i = e.vm_index(vm).unwrap();
        assert!(e.vms[i].recovered.is_some() && !e.vms[i].down);
        assert_eq!(e.vms[i].site, "ny");
        let v = e.verify_vm(vm).unwrap();
        assert!(v.consistent && v.writes_lost == 0, "{vm}: {v:?}");
    }
    // No reservation is left behind on the protected site.
    assert!(e.hosts_views().iter().all(|h| h.reservations.is_empty()));
}

#[test]
fn a_migration_of_a_vm_down_for_its_host_carries_on_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let mut e = Engine::create(&ws, &host_ha(), opts()).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(5 * SECOND).unwrap();
    // erp-01 starts moving; then its host fails (and it fits nowhere, so it stays down).
    let out = e
        .apply(Command::Migrate {
            vm: "erp-01".into(),
            to: "ds-gold".into(),
            mode: copy::CopyMode::Mirror,
            confirm: true,
        })
        .unwrap();
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
    e.apply(Command::HostFault {
        host: "esx-pa-1".into(),
    })
    .unwrap();
    assert!(e.is_migrating("erp-01"));
    assert_eq!(host_of(&e, "erp-01"), ("esx-pa-1".into(), true));
    // A crash: dropped without closing.
    drop(e);
    let mut e = Engine::open(&ws).unwrap();
    assert!(
        e.is_migrating("erp-01"),
        "the copy of a VM down for its host resumes on reopen"
    );
    e.apply(Command::HostHealthy {
        host: "esx-pa-1".into(),
    })
    .unwrap();
    e.advance(e.now() + MINUTE).unwrap();
    assert!(!e.is_migrating("erp-01"));
    assert_eq!(e.migrations_done("erp-01"), 1);
    assert_eq!(e.location("erp-01").unwrap().0, "ds-gold");
    assert_eq!(host_of(&e, "erp-01"), ("esx-pa-1".into(), false));
    assert_eq!(e.instances_of("erp-01").unwrap().len(), 1);
    assert_consistent(&e, "erp-01");
}
