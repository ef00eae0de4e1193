//! The witness's polarization delay and the incident reports, driven in simulated time.

use super::*;
use crate::engine::stretch::{Incident, StepKind};

/// ds-c with witness "w" and the given extra `Distributed` fields.
fn witness_engine(dir: &Path, extra: &str) -> Engine {
    let text = topology_text().replace(
        r#"Distributed(remote_site: "ny", remote_lun: "ln2")"#,
        &format!(r#"Distributed(remote_site: "ny", remote_lun: "ln2", witness: Some("w"){extra})"#),
    );
    let topo = Topology::from_ron_str(&text, "stretch-witness.ron").unwrap();
    let mut e = Engine::create(&ws(dir), &topo, EngineOptions::default()).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    run_for(&mut e, 2);
    e
}

fn steps(e: &Engine, ds: &str) -> Vec<StepKind> {
    view(e, ds)
        .incidents
        .last()
        .unwrap()
        .steps
        .iter()
        .map(|s| s.kind)
        .collect()
}

#[test]
fn an_unhealthy_side_asks_the_witness_late_so_the_healthy_side_wins() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = witness_engine(
        dir.path(),
        ", polarization_delay_s: Some(3), unhealthy_delay_s: Some(4)",
    );
    let v = view(&e, "ds-c");
    assert_eq!(
        (v.polarization_delay_s, v.unhealthy_delay_s),
        (Some(3.0), Some(4.0))
    );
    // The preferred leg's array faults: both sides still reach the witness; pa would win a
    // tie, but it is unhealthy and asks 4 s after ny.
    let t0 = e.now();
    e.apply(Command::ArrayFault { array: "ap".into() }).unwrap();
    let v = view(&e, "ds-c");
    assert_eq!(
        v.polarizing_until,
        Some(t0 + 3 * SECOND),
        "ny asks after the delay"
    );
    assert_eq!(v.polarization_winner.as_deref(), Some("ny"));
    assert_eq!(v.serving_site, "pa");
    let held = writes(&e, "vm2");
    // Starting the workloads again does not release a held guest.
    e.apply(Command::StopWorkloads).unwrap();
    e.apply(Command::StartWorkloads).unwrap();
    e.advance(t0 + 3 * SECOND - 1).unwrap();
    assert_eq!(writes(&e, "vm2"), held, "held until the witness decides");
    e.advance(t0 + 3 * SECOND).unwrap();
    assert_eq!(view(&e, "ds-c").serving_site, "ny", "the healthy side won");
    run_for(&mut e, 1);
    assert!(writes(&e, "vm2") > held, "I/O resumed on the winner");
    assert_consistent(&e, "vm2");
    assert_eq!(
        steps(&e, "ds-c"),
        [
            StepKind::IoHeld,
            StepKind::OutOfCompliance,
            StepKind::WitnessDecision,
            StepKind::IoMoved
        ]
    );
    let inc = view(&e, "ds-c").incidents.pop().unwrap();
    assert!(inc.failure.contains("array ap"), "{}", inc.failure);
    assert!(
        inc.steps[0]
            .detail
            .contains("pa asks at 00:09.0 (unhealthy"),
        "{}",
        inc.steps[0].detail
    );

    // Healthy again: rebuilt, the preferred leg serves, repaired — every step recorded.
    e.apply(Command::ArrayHealthy { array: "ap".into() })
        .unwrap();
    run_for(&mut e, 10);
    let v = view(&e, "ds-c");
    assert_eq!(v.serving_site, "pa");
    assert!(v.compliant);
    assert_eq!(
        steps(&e, "ds-c")[4..],
        [
            StepKind::RebuildStarted,
            StepKind::Rebuilt,
            StepKind::PreferredLegServes,
            StepKind::Repaired
        ]
    );
    let inc = v.incidents.last().unwrap();
    assert!(inc.repaired_at.is_some());
    assert_eq!(inc.tracked_blocks, inc.rebuilt_blocks);
    assert!(inc.tracked_blocks > 0);
}

#[test]
fn a_fault_on_the_other_legs_array_keeps_the_preferred_leg_after_the_delay() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = witness_engine(dir.path(), "");
    let t0 = e.now();
    e.apply(Command::ArrayFault { array: "an".into() }).unwrap();
    let v = view(&e, "ds-c");
    assert_eq!(
        v.polarizing_until,
        Some(t0 + 2 * SECOND),
        "the default delay"
    );
    assert_eq!(v.polarization_winner.as_deref(), Some("pa"));
    e.advance(t0 + 2 * SECOND).unwrap();
    let v = view(&e, "ds-c");
    assert_eq!(v.serving_site, "pa");
    assert_eq!(v.polarizing_until, None);
    let last = v.incidents.last().unwrap().steps.last().unwrap().clone();
    assert_eq!(last.kind, StepKind::WitnessDecision);
    assert!(last.detail.contains("it keeps serving"), "{}", last.detail);
    // A migration waits for no polarization, but none is under way now.
    run_for(&mut e, 1);
    assert_consistent(&e, "vm2");
}

#[test]
fn a_reopen_during_the_polarization_keeps_the_io_held_until_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = witness_engine(dir.path(), ", polarization_delay_s: Some(5)");
    let t0 = e.now();
    e.apply(Command::PartitionSite { site: "pa".into() })
        .unwrap();
    let m = vm2_move_refused(&mut e);
    assert!(m.contains("witness decides"), "{m}");
    e.advance(t0 + SECOND).unwrap();
    e.close().unwrap();
    let mut e = Engine::open(&ws(dir.path())).unwrap();
    let held = writes(&e, "vm2");
    assert_eq!(view(&e, "ds-c").polarizing_until, Some(t0 + 5 * SECOND));
    e.advance(t0 + 5 * SECOND - 1).unwrap();
    assert_eq!(writes(&e, "vm2"), held, "still held after the reopen");
    e.advance(t0 + 5 * SECOND).unwrap();
    assert_eq!(view(&e, "ds-c").serving_site, "ny");
    run_for(&mut e, 1);
    assert!(writes(&e, "vm2") > held);
    assert_consistent(&e, "vm2");
}

#[test]
fn a_heal_during_the_polarization_ends_it_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = witness_engine(dir.path(), "");
    e.apply(Command::PartitionSite { site: "pa".into() })
        .unwrap();
    run_for(&mut e, 1);
    e.apply(Command::HealPartition).unwrap();
    let v = view(&e, "ds-c");
    assert_eq!(v.polarizing_until, None);
    assert_eq!(v.serving_site, "pa");
    run_for(&mut e, 5);
    let (ok, detail) = e.expect_compliant("ds-c");
    assert!(ok, "{detail}");
    assert_eq!(
        steps(&e, "ds-c"),
        [
            StepKind::IoHeld,
            StepKind::OutOfCompliance,
            StepKind::WitnessDecision,
            StepKind::RebuildStarted,
            StepKind::Rebuilt,
            StepKind::Repaired
        ]
    );
    assert_consistent(&e, "vm2");
}

#[test]
fn the_incident_of_a_datastore_created_during_a_partition_names_every_step_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = created_during_partition(dir.path());
    let (tracked, _, _) = e.stretch_counts("ds-d").unwrap();
    e.apply(Command::HealPartition).unwrap();
    run_for(&mut e, 30);
    let inc = view(&e, "ds-d").incidents.pop().unwrap();
    assert!(
        inc.failure.contains("site ny was partitioned away"),
        "{}",
        inc.failure
    );
    let kinds: Vec<StepKind> = inc.steps.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            StepKind::LocalLegCreated,
            StepKind::OutOfCompliance,
            StepKind::RemoteLegCreated,
            StepKind::RebuildStarted,
            StepKind::Rebuilt,
            StepKind::Repaired
        ]
    );
    assert_eq!((inc.tracked_blocks, inc.rebuilt_blocks), (tracked, tracked));
    assert!(inc.steps.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(inc.steps[3].detail.starts_with("the partition healed"));
    // Recorded for the report from the running engine and, after a close, from disk.
    let of_d = |all: Vec<Incident>| -> Vec<Incident> {
        all.into_iter().filter(|i| i.datastore == "ds-d").collect()
    };
    assert_eq!(of_d(e.recorded().unwrap().incidents), vec![inc.clone()]);
    e.close().unwrap();
    let from_disk = crate::engine::read_recorded(&ws(dir.path())).unwrap();
    assert_eq!(of_d(from_disk.incidents), vec![inc.clone()]);
    let e = Engine::open(&ws(dir.path())).unwrap();
    assert_eq!(view(&e, "ds-d").incidents, vec![inc]);
}

#[test]
fn polarization_settings_need_a_witness_and_a_sane_delay() {
    let bad = topology_text().replace(
        r#"Distributed(remote_site: "ny", remote_lun: "ln2")"#,
        r#"Distributed(remote_site: "ny", remote_lun: "ln2", polarization_delay_s: Some(-1))"#,
    );
    let err = Topology::from_ron_str(&bad, "bad.ron").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with(r#"bad.ron: datastore "ds-c": "#), "{text}");
    let rules: Vec<String> = err
        .violations()
        .into_iter()
        .filter(|v| v.object == r#"datastore "ds-c""#)
        .map(|v| v.rule.clone())
        .collect();
    assert!(
        rules
            .iter()
            .any(|r| r.contains("polarization_delay_s is set but the datastore has no witness")),
        "{rules:?}"
    );
    assert!(
        rules
            .iter()
            .any(|r| r.contains("polarization_delay_s must be 0 to 3600 seconds")),
        "{rules:?}"
    );
}
