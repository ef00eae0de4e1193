//! The Resilience tab's array health section on a real workspace of the demo topology:
//! fault array-pa (its pairs drain and swap to array-ny), then mark it healthy (resync,
//! swap back, replication restarts), driven through the UI with egui_kittest.

use std::time::Duration;

use crate::testkit::{app_in, click, step_until, wait_ready};
use drconsole::engine::ArrayView;
use drconsole::gui::{DrApp, MainTab};
use egui_kittest::kittest::Queryable;

/// The section's button names (`health_panel::fault_name` / `healthy_name`).
fn fault_name(array: &str) -> String {
    format!("Fault {array}")
}
fn healthy_name(array: &str) -> String {
    format!("Mark {array} healthy")
}

fn array<'a>(app: &'a DrApp, id: &str) -> &'a ArrayView {
    app.live
        .snapshot
        .as_ref()
        .and_then(|s| s.arrays.iter().find(|a| a.id == id))
        .unwrap_or_else(|| panic!("no array {id}"))
}

fn first_points_published(app: &DrApp) -> bool {
    app.live.snapshot.as_ref().is_some_and(|s| {
        !s.groups.is_empty() && s.groups.iter().all(|g| g.last_published_at.is_some())
    })
}

#[test]
fn fault_then_healthy_swaps_io_to_the_replicas_and_back() {
    let dir = crate::testkit::scratch();
    let mut h = app_in(dir.path());
    wait_ready(&mut h);
    click(&mut h, "Resilience");
    assert_eq!(h.state().main_tab, MainTab::Resilience);
    click(&mut h, "▶ Start workloads");
    step_until(
        &mut h,
        "the first recovery points",
        Duration::from_secs(15),
        first_points_published,
    );

    // Only the protected array with replicated LUNs can be faulted.
    h.get_by_label("Array health");
    assert!(h.query_by_label(&fault_name("array-ny")).is_none());
    let pa = array(h.state(), "array-pa");
    assert!(pa.can_fault && !pa.faulted);
    assert_eq!(
        pa.pairs.len(),
        4,
        "cg-gold-a, cg-gold-b, cg-silver, ds-bronze-1"
    );
    assert!(pa.pairs.iter().all(|p| p.serving == "array-pa"));

    click(&mut h, &fault_name("array-pa"));
    step_until(&mut h, "every pair to swap", Duration::from_secs(15), |a| {
        let pa = array(a, "array-pa");
        pa.faulted
            && pa
                .pairs
                .iter()
                .all(|p| p.phase.as_deref() == Some("swapped"))
    });
    let pa = array(h.state(), "array-pa");
    for p in &pa.pairs {
        assert_eq!(p.serving, "array-ny", "{}", p.group);
        assert!(p.state.contains("replication suspended"), "{}", p.state);
    }
    h.get_by_label("faulted");
    h.get_by_label(&healthy_name("array-pa"));
    assert!(h.query_by_label(&fault_name("array-pa")).is_none());
    assert!(h.query_all_by_label("swapped").count() >= 4);

    click(&mut h, &healthy_name("array-pa"));
    step_until(
        &mut h,
        "the resync and the restart",
        Duration::from_secs(20),
        |a| {
            let pa = array(a, "array-pa");
            !pa.faulted
                && pa.pairs.iter().all(|p| {
                    p.phase.is_none()
                        && p.serving == "array-pa"
                        && p.state
                            .contains("resync complete; replication restarted array-pa ▶ array-ny")
                })
        },
    );
    h.get_by_label(&fault_name("array-pa"));
    assert!(h.query_by_label(&healthy_name("array-pa")).is_none());
    assert_eq!(
        h.query_all_by_label_contains("resync complete; replication restarted array-pa ▶ array-ny")
            .count(),
        4,
        "each pair says it restarted in its original direction"
    );
}
