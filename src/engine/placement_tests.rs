//! Datastore clusters: the planners on their own, then maintenance mode on real files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::*;
use crate::engine::{Command, EngineOptions, SECOND};

/// Cluster c1 = ds-a1, ds-a2 (CG cg-a) and ds-b (CG cg-b), all in PG pg-1; ds-p1 and
/// ds-p2 are not replicated and in no cluster; ds-r is replicated (no CG, no PG). `fill`
/// (no workload) takes 1000 MiB of ds-a2's 1 GiB, so only one 16 MiB VM fits there.
const TOPOLOGY: &str = r#"Topology(
    name: "placement test",
    sites: [Site(id: "pa", name: "P", role: Protected), Site(id: "ny", name: "R", role: Recovery)],
    hosts: [Host(id: "h", site: "pa", cpus: 8, memory_gib: 64)],
    arrays: [
        Array(id: "ap", site: "pa", luns: [
            Lun(id: "la1", capacity_gib: 1, replication: Some(LunReplication(target: "la1r", rpo_minutes: 15, consistency_group: Some("cg-a")))),
            Lun(id: "la2", capacity_gib: 1, replication: Some(LunReplication(target: "la2r", rpo_minutes: 15, consistency_group: Some("cg-a")))),
            Lun(id: "lb", capacity_gib: 1, replication: Some(LunReplication(target: "lbr", rpo_minutes: 20, consistency_group: Some("cg-b")))),
            Lun(id: "lr", capacity_gib: 1, replication: Some(LunReplication(target: "lrr", rpo_minutes: 30))),
            Lun(id: "lp1", capacity_gib: 1),
            Lun(id: "lp2", capacity_gib: 1),
        ]),
        Array(id: "ar", site: "ny", luns: [
            Lun(id: "la1r", capacity_gib: 1), Lun(id: "la2r", capacity_gib: 1),
            Lun(id: "lbr", capacity_gib: 1), Lun(id: "lrr", capacity_gib: 1),
        ]),
    ],
    datastores: [
        Datastore(id: "ds-a1", site: "pa", luns: ["la1"], throughput_mib_s: 64),
        Datastore(id: "ds-a2", site: "pa", luns: ["la2"], throughput_mib_s: 64),
        Datastore(id: "ds-b", site: "pa", luns: ["lb"], throughput_mib_s: 64),
        Datastore(id: "ds-r", site: "pa", luns: ["lr"], throughput_mib_s: 64),
        Datastore(id: "ds-p1", site: "pa", luns: ["lp1"], throughput_mib_s: 64),
        Datastore(id: "ds-p2", site: "pa", luns: ["lp2"], throughput_mib_s: 64),
        Datastore(id: "ds-a1-r", site: "ny", luns: ["la1r"]),
        Datastore(id: "ds-a2-r", site: "ny", luns: ["la2r"]),
        Datastore(id: "ds-b-r", site: "ny", luns: ["lbr"]),
        Datastore(id: "ds-r-r", site: "ny", luns: ["lrr"]),
    ],
    protection_groups: [ProtectionGroup(id: "pg-1", name: "PG 1", datastores: ["ds-a1", "ds-a2", "ds-b"])],
    datastore_clusters: [DatastoreCluster(id: "c1", name: "Cluster 1", datastores: ["ds-a1", "ds-a2", "ds-b"])],
    vms: [
        Vm(id: "v1", uuid: "11111111-2222-4333-8444-000000000001", host: "h", datastore: "ds-a1",
           disk_mib: 16, vcpus: 1, memory_gib: 1, priority: 1, workload: Some(Workload(write_iops: 80, read_iops: 80))),
        Vm(id: "v2", uuid: "11111111-2222-4333-8444-000000000002", host: "h", datastore: "ds-a1",
           disk_mib: 16, vcpus: 1, memory_gib: 1, priority: 1, workload: Some(Workload(write_iops: 80, read_iops: 80))),
        Vm(id: "v3", uuid: "11111111-2222-4333-8444-000000000003", host: "h", datastore: "ds-p1",
           disk_mib: 16, vcpus: 1, memory_gib: 1, priority: 1, workload: Some(Workload(write_iops: 80, read_iops: 80))),
        Vm(id: "fill", uuid: "11111111-2222-4333-8444-000000000004", host: "h", datastore: "ds-a2",
           disk_mib: 1000, vcpus: 1, memory_gib: 1, priority: 3),
    ],
)"#;

fn topology() -> Topology {
    Topology::from_ron_str(TOPOLOGY, "placement-test.ron").unwrap()
}

fn vm(id: &str, from: &str, mib: u64) -> Movable {
    Movable {
        vm: id.into(),
        from: from.into(),
        mib,
    }
}

fn free(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(d, f)| (d.to_string(), *f)).collect()
}

#[test]
fn evacuation_prefers_the_same_cg_over_more_space() {
    let t = topology();
    let plan = plan_evacuation(
        &t,
        "ds-a1",
        &[vm("v1", "ds-a1", 16)],
        &BTreeSet::new(),
        &free(&[("ds-a2", 100), ("ds-b", 900)]),
    );
    assert!(plan.stuck.is_empty());
    assert_eq!(plan.moves.len(), 1);
    assert_eq!(plan.moves[0].to, "ds-a2");
    assert_eq!(plan.moves[0].rating, Rating::None);
    // The cluster bounds the candidates: ds-p1/ds-p2/ds-r are never considered.
    assert_eq!(
        evacuation_candidates(&t, "ds-a1", &BTreeSet::new()),
        vec!["ds-a2".to_string(), "ds-b".to_string()]
    );
}

#[test]
fn a_full_same_cg_datastore_leaves_only_a_cross_cg_move_that_needs_an_override() {
    let t = topology();
    let plan = plan_evacuation(
        &t,
        "ds-a1",
        &[vm("v1", "ds-a1", 16), vm("v2", "ds-a1", 16)],
        &BTreeSet::new(),
        &free(&[("ds-a2", 24), ("ds-b", 900)]),
    );
    assert_eq!(plan.moves.len(), 2);
    assert_eq!(
        (plan.moves[0].vm.as_str(), plan.moves[0].to.as_str()),
        ("v1", "ds-a2")
    );
    assert_eq!(plan.moves[0].rating, Rating::None);
    let cross = &plan.moves[1];
    assert_eq!((cross.vm.as_str(), cross.to.as_str()), ("v2", "ds-b"));
    assert!(
        cross.rating > Rating::None,
        "cross-CG is never allowed as-is"
    );
    assert_eq!(cross.fault, Some(Fault::ReplicationWithinGroup));
    assert!(cross.explanation.contains("cg-b"), "{}", cross.explanation);
}

#[test]
fn a_datastore_in_no_cluster_moves_between_non_replicated_datastores() {
    let t = topology();
    let all = free(&[
        ("ds-a1", 900),
        ("ds-a2", 900),
        ("ds-b", 900),
        ("ds-r", 1000),
        ("ds-p2", 500),
    ]);
    let plan = plan_evacuation(
        &t,
        "ds-p1",
        &[vm("v3", "ds-p1", 16)],
        &BTreeSet::new(),
        &all,
    );
    assert_eq!(plan.moves[0].to, "ds-p2");
    assert_eq!(plan.moves[0].rating, Rating::None);
    // Without ds-p2 (in maintenance), the least harmful replicated one: ds-r, mild.
    let unavailable: BTreeSet<String> = ["ds-p2".to_string()].into();
    let plan = plan_evacuation(&t, "ds-p1", &[vm("v3", "ds-p1", 16)], &unavailable, &all);
    assert_eq!(plan.moves[0].to, "ds-r");
    assert_eq!(plan.moves[0].rating, Rating::Mild);
    // Replica datastores and recovery sites are never candidates.
    let c = evacuation_candidates(&t, "ds-p1", &BTreeSet::new());
    assert!(c.iter().all(|d| !d.ends_with("-r") || d == "ds-r"), "{c:?}");
}

#[test]
fn nothing_fits_is_reported_per_vm() {
    let t = topology();
    let plan = plan_evacuation(
        &t,
        "ds-a1",
        &[vm("v1", "ds-a1", 16)],
        &BTreeSet::new(),
        &free(&[("ds-a2", 8), ("ds-b", 10)]),
    );
    assert!(plan.moves.is_empty());
    assert_eq!(plan.stuck.len(), 1);
    assert_eq!(plan.stuck[0].0, "v1");
    assert!(
        plan.stuck[0].1.contains("16 MiB free") && plan.stuck[0].1.contains("ds-b"),
        "{}",
        plan.stuck[0].1
    );
    let all: BTreeSet<String> = ["ds-a2".to_string(), "ds-b".to_string()].into();
    let plan = plan_evacuation(&t, "ds-a1", &[vm("v1", "ds-a1", 16)], &all, &free(&[]));
    assert!(plan.stuck[0].1.contains("maintenance"), "{:?}", plan.stuck);
}

fn spread_of(used: &BTreeMap<String, u64>) -> u64 {
    let f: Vec<u64> = used.values().map(|u| used_bp(*u, 1024)).collect();
    f.iter().max().unwrap() - f.iter().min().unwrap()
}

#[test]
fn balance_reduces_the_spread_inside_the_cg_first() {
    let t = topology();
    let ds: Vec<String> = ["ds-a1", "ds-a2", "ds-b"].map(String::from).to_vec();
    let mut used = free(&[("ds-a1", 800), ("ds-a2", 0), ("ds-b", 400)]);
    let cap = free(&[("ds-a1", 1024), ("ds-a2", 1024), ("ds-b", 1024)]);
    let vms: Vec<Movable> = (1..=4)
        .map(|k| vm(&format!("x{k}"), "ds-a1", 200))
        .chain([vm("y1", "ds-b", 200), vm("y2", "ds-b", 200)])
        .collect();
    let plan = plan_balance(&t, &ds, &vms, &used, &cap);
    assert_eq!(plan.before_bp, spread_of(&used));
    assert!(!plan.moves.is_empty());
    assert!(plan.after_bp + MIN_GAIN_BP <= plan.before_bp, "{plan:?}");
    // The first move stays in cg-a (ds-a1 ▶ ds-a2, none).
    assert_eq!(
        (plan.moves[0].from.as_str(), plan.moves[0].to.as_str()),
        ("ds-a1", "ds-a2")
    );
    assert_eq!(plan.moves[0].rating, Rating::None);
    // Every move crossing CGs is rated above none; each VM moves once.
    let mut seen = BTreeSet::new();
    for m in &plan.moves {
        assert!(seen.insert(m.vm.clone()));
        let cross = (m.from == "ds-b") != (m.to == "ds-b");
        assert_eq!(cross, m.rating > Rating::None, "{m:?}");
        *used.get_mut(&m.from).unwrap() -= m.mib;
        *used.get_mut(&m.to).unwrap() += m.mib;
    }
    // after_bp is the spread once every move is done.
    assert_eq!(spread_of(&used), plan.after_bp);
    // Balanced already: nothing to do.
    let even = free(&[("ds-a1", 200), ("ds-a2", 200), ("ds-b", 200)]);
    let vms = [vm("x1", "ds-a1", 200), vm("x2", "ds-a2", 200)];
    let plan = plan_balance(&t, &ds, &vms, &even, &cap);
    assert!(plan.moves.is_empty());
    assert_eq!((plan.before_bp, plan.after_bp), (0, 0));
}

// ---------------------------------------------------------------------------------------
// The engine.

fn engine(dir: &Path) -> Engine {
    let opts = EngineOptions {
        seed: 7,
        ..EngineOptions::default()
    };
    Engine::create(&dir.join("ws"), &topology(), opts).unwrap()
}

fn run_until_idle(e: &mut Engine, vms: &[&str]) {
    let limit = e.now() + 120 * SECOND;
    for v in vms {
        assert!(e.run_until_migrated(v, limit).unwrap(), "{v} finished");
    }
    let t = e.now() + SECOND;
    e.advance(t).unwrap();
}

fn assert_clean(e: &Engine, vm: &str) {
    let v = e.verify_vm(vm).unwrap();
    assert!(v.consistent, "{vm}: {v:#?}");
    assert_eq!(v.writes_lost, 0, "{vm}");
    assert!(v.written_blocks > 0, "{vm} wrote");
}

#[test]
fn maintenance_evacuates_automatically_within_the_cg_and_waits_for_an_override_across() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(2 * SECOND).unwrap();

    let out = e
        .apply(Command::EnterMaintenance {
            datastore: "ds-a1".into(),
            confirm: false,
        })
        .unwrap();
    let Outcome::Refused(msg) = out else {
        panic!("a cross-CG move waits for the override: {out:?}")
    };
    assert!(msg.contains("v2 ds-a1 ▶ ds-b (heightened-mild"), "{msg}");
    assert!(e.in_maintenance("ds-a1"));
    assert!(e.is_migrating("v1"), "the same-CG move started at once");
    assert!(!e.is_migrating("v2"), "the cross-CG one did not");
    let out = e
        .apply(Command::EnterMaintenance {
            datastore: "ds-p1".into(),
            confirm: false,
        })
        .unwrap();
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
    assert!(e.is_migrating("v3"));

    // Nothing may be placed on a datastore in maintenance mode.
    let refused = e
        .apply(Command::Migrate {
            vm: "v2".into(),
            to: "ds-p1".into(),
            mode: CopyMode::Mirror,
            confirm: true,
        })
        .unwrap();
    assert!(
        matches!(&refused, Outcome::Refused(m) if m.contains("ds-p1 is in maintenance mode")),
        "{refused:?}"
    );

    run_until_idle(&mut e, &["v1", "v3"]);
    assert_eq!(e.location("v1").unwrap().0, "ds-a2");
    assert_eq!(e.location("v3").unwrap().0, "ds-p2");
    assert_eq!(e.location("v2").unwrap().0, "ds-a1");
    let (ok, detail) = e.expect_in_maintenance("ds-a1");
    assert!(!ok && detail.contains("v2"), "{detail}");
    assert!(e.expect_in_maintenance("ds-p1").0);
    let snap = e.snapshot();
    let c1 = snap
        .placement
        .iter()
        .find(|p| p.cluster.as_deref() == Some("c1"))
        .unwrap();
    assert_eq!(c1.recommendations.len(), 1);
    assert_eq!(c1.recommendations[0].vm, "v2");
    assert_eq!(c1.recommendations[0].rating, Rating::HeightenedMild);
    let a1 = c1.datastores.iter().find(|d| d.id == "ds-a1").unwrap();
    assert!(a1.in_maintenance);
    assert_eq!(a1.vms_left, 1);

    // The override: the pending move starts and the datastore empties.
    let out = e
        .apply(Command::EnterMaintenance {
            datastore: "ds-a1".into(),
            confirm: true,
        })
        .unwrap();
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
    run_until_idle(&mut e, &["v2"]);
    assert_eq!(e.location("v2").unwrap().0, "ds-b");
    assert!(e.expect_in_maintenance("ds-a1").0);
    let log = e.take_log();
    assert!(
        log.iter()
            .any(|l| l.message == "ds-a1 is in maintenance mode and empty"),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.message.starts_with("Override: v2 to ds-b"))
    );
    assert!(
        e.snapshot()
            .placement
            .iter()
            .all(|p| p.recommendations.is_empty())
    );
    for v in ["v1", "v2", "v3"] {
        assert_clean(&e, v);
        assert_eq!(e.migrations_done(v), 1);
        // One complete instance: the source was deleted after the switch.
        assert_eq!(e.instances_of(v).unwrap().len(), 1, "{v}");
    }

    // Reopen: the mode survives, and so does the refusal.
    e.close().unwrap();
    let mut e = Engine::open(&dir.path().join("ws")).unwrap();
    assert!(e.in_maintenance("ds-a1") && e.in_maintenance("ds-p1"));
    assert!(e.expect_in_maintenance("ds-a1").0);
    let refused = e
        .apply(Command::Migrate {
            vm: "v2".into(),
            to: "ds-a1".into(),
            mode: CopyMode::Mirror,
            confirm: true,
        })
        .unwrap();
    assert!(
        matches!(&refused, Outcome::Refused(m) if m.contains("ds-a1 is in maintenance mode")),
        "{refused:?}"
    );
    e.apply(Command::ExitMaintenance {
        datastore: "ds-a1".into(),
    })
    .unwrap();
    assert!(!e.in_maintenance("ds-a1"));
    let out = e
        .apply(Command::Migrate {
            vm: "v2".into(),
            to: "ds-a1".into(),
            mode: CopyMode::Mirror,
            confirm: true,
        })
        .unwrap();
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
}

#[test]
fn pending_recommendations_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    let out = e
        .apply(Command::EnterMaintenance {
            datastore: "ds-a1".into(),
            confirm: false,
        })
        .unwrap();
    assert!(matches!(out, Outcome::Refused(_)));
    run_until_idle(&mut e, &["v1"]);
    drop(e); // a crash: no clean close
    let e = Engine::open(&dir.path().join("ws")).unwrap();
    let snap = e.snapshot();
    let recs: Vec<_> = snap
        .placement
        .iter()
        .flat_map(|p| p.recommendations.iter())
        .collect();
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].vm.as_str(), recs[0].to.as_str()), ("v2", "ds-b"));
    assert_eq!(recs[0].purpose, Purpose::Evacuate);
}

#[test]
fn bad_requests_name_the_object_and_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    let err = |e: &mut Engine, c: Command| e.apply(c).unwrap_err().to_string();
    let m = err(
        &mut e,
        Command::EnterMaintenance {
            datastore: "nope".into(),
            confirm: false,
        },
    );
    assert!(m.contains("\"nope\" does not exist"), "{m}");
    let m = err(
        &mut e,
        Command::EnterMaintenance {
            datastore: "ds-a1-r".into(),
            confirm: false,
        },
    );
    assert!(m.contains("not a protected site"), "{m}");
    let m = err(
        &mut e,
        Command::ExitMaintenance {
            datastore: "ds-a1".into(),
        },
    );
    assert!(m.contains("is not in maintenance mode"), "{m}");
    let m = err(
        &mut e,
        Command::Balance {
            cluster: "c9".into(),
            confirm: false,
        },
    );
    assert!(m.contains("datastore cluster \"c9\""), "{m}");
}

#[test]
fn balance_in_the_engine_runs_none_moves_and_holds_cross_cg_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine(dir.path());
    e.apply(Command::StartWorkloads).unwrap();
    // ds-a1 holds 32 MiB, ds-a2 1000 MiB (full), ds-b nothing: the spread is ~97%.
    let out = e
        .apply(Command::Balance {
            cluster: "c1".into(),
            confirm: false,
        })
        .unwrap();
    // The only moves that help leave cg-a for cg-b: recommendations, nothing runs.
    let Outcome::Refused(msg) = out else {
        panic!("{out:?}")
    };
    assert!(msg.contains("▶ ds-b (heightened-mild"), "{msg}");
    assert!(!e.is_migrating("v1") && !e.is_migrating("v2"));
    let recs = e.snapshot().placement[0].recommendations.clone();
    assert!(!recs.is_empty() && recs.iter().all(|r| r.purpose == Purpose::Balance));
    assert!(
        recs.iter()
            .all(|r| r.to == "ds-b" && r.rating > Rating::None)
    );
    let before = e.snapshot().placement[0].spread_bp;
    let out = e
        .apply(Command::Balance {
            cluster: "c1".into(),
            confirm: true,
        })
        .unwrap();
    assert!(matches!(out, Outcome::Done(_)), "{out:?}");
    let moved: Vec<String> = recs.iter().map(|r| r.vm.clone()).collect();
    let names: Vec<&str> = moved.iter().map(String::as_str).collect();
    run_until_idle(&mut e, &names);
    for v in &names {
        assert_eq!(e.location(v).unwrap().0, "ds-b");
        assert_clean(&e, v);
    }
    let after = e.snapshot().placement[0].spread_bp;
    assert!(after + MIN_GAIN_BP <= before, "{before} ▶ {after}");
    assert!(e.snapshot().placement[0].recommendations.is_empty());
}
