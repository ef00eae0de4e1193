//! The Resilience tab's datastore-cluster section on a real workspace of
//! `sample_topologies/clusters.ron`: maintenance mode evacuates ds-gold-1 inside its CG by
//! itself, ds-gold-3's only move (across CGs) waits as a recommendation until the
//! operator ticks "Are you sure?" and applies it, then Balance; driven with egui_kittest.

use std::time::Duration;

use crate::testkit::{app_with, click, sample, step_until, wait_ready};
use drconsole::engine::PlacementView;
use drconsole::gui::{DrApp, MainTab, Selection};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

/// Scrolls the Resilience page to the node labelled `label` (the section is the last one),
/// then clicks it.
fn press(h: &mut Harness<'static, DrApp>, label: &str) {
    h.get_by_label(label).scroll_to_me();
    h.run_steps(3);
    // Through accesskit: rows change width as their buttons change, which can move a
    // widget between the frame a pointer click is aimed and the frame it lands.
    h.get_by_label(label).click_accesskit();
    h.run_steps(3);
}

fn gold(app: &DrApp) -> &PlacementView {
    app.live
        .snapshot
        .as_ref()
        .and_then(|s| {
            s.placement
                .iter()
                .find(|p| p.cluster.as_deref() == Some("dsc-gold"))
        })
        .expect("the gold cluster is shown")
}

fn in_maintenance(app: &DrApp, ds: &str) -> bool {
    gold(app)
        .datastores
        .iter()
        .any(|d| d.id == ds && d.in_maintenance)
}

fn datastore_of(app: &DrApp, vm: &str) -> String {
    app.live
        .snapshot
        .as_ref()
        .and_then(|s| s.vms.iter().find(|v| v.id == vm))
        .map(|v| v.datastore.clone())
        .unwrap_or_default()
}

fn idle(app: &DrApp) -> bool {
    app.live
        .snapshot
        .as_ref()
        .is_some_and(|s| s.vms.iter().all(|v| v.migration.is_none()))
}

#[test]
fn maintenance_evacuates_and_the_cross_cg_move_needs_are_you_sure() {
    let dir = crate::testkit::scratch();
    let topo = sample("clusters.ron");
    let mut h = app_with(dir.path(), &["--topology", topo.to_str().unwrap()]);
    wait_ready(&mut h);
    click(&mut h, "Resilience");
    assert_eq!(h.state().main_tab, MainTab::Resilience);
    h.get_by_label("Datastore clusters");
    h.get_by_label("Balance dsc-gold");
    h.get_by_label("Balance dsc-scratch");
    h.get_by_label_contains("ds-gold-1 12.5% (128 MiB of 1 GiB)");
    click(&mut h, "▶ Start workloads");

    // Same CG: web-01 and web-02 leave ds-gold-1 by themselves.
    press(&mut h, "Enter maintenance ds-gold-1");
    step_until(
        &mut h,
        "ds-gold-1 to be evacuated",
        Duration::from_secs(20),
        |a| {
            in_maintenance(a, "ds-gold-1")
                && datastore_of(a, "web-01") == "ds-gold-2"
                && datastore_of(a, "web-02") == "ds-gold-2"
                && idle(a)
        },
    );
    h.get_by_label("ds-gold-1: empty");
    // web-01's "Where can it go?" says ds-gold-1 takes no VM now.
    h.state_mut().selection = Some(Selection::Vm("web-01".into()));
    h.state_mut().main_tab = MainTab::Details;
    h.run_steps(3);
    h.get_by_label("in maintenance mode: takes no VM");
    click(&mut h, "Resilience");
    h.get_by_label("Exit maintenance ds-gold-1");
    assert!(h.query_by_label("Enter maintenance ds-gold-1").is_none());
    assert!(gold(h.state()).recommendations.is_empty());

    // Across CGs: db-01 waits for the override.
    press(&mut h, "Enter maintenance ds-gold-3");
    step_until(&mut h, "the recommendation", Duration::from_secs(10), |a| {
        gold(a).recommendations.iter().any(|r| r.vm == "db-01")
    });
    let r = &gold(h.state()).recommendations[0];
    assert_eq!((r.from.as_str(), r.to.as_str()), ("ds-gold-3", "ds-gold-2"));
    assert_eq!(r.rating, drconsole::dr::Rating::HeightenedMild);
    assert!(h.query_all_by_label("heightened-mild").count() >= 1);
    assert!(h.query_all_by_label("replication-within-group").count() >= 1);
    h.get_by_label("ds-gold-3: 1 VM(s) left");
    let apply = "Apply db-01 to ds-gold-2";
    assert!(h.get_by_label(apply).accesskit_node().is_disabled());
    press(&mut h, apply);
    assert_eq!(
        datastore_of(h.state(), "db-01"),
        "ds-gold-3",
        "not without the override"
    );
    let sure = "Are you sure? db-01 to ds-gold-2";
    press(&mut h, sure);
    assert_eq!(
        h.get_by_label(sure).accesskit_node().toggled(),
        Some(egui::accesskit::Toggled::True)
    );
    assert!(!h.get_by_label(apply).accesskit_node().is_disabled());
    press(&mut h, apply);
    step_until(&mut h, "db-01 to move", Duration::from_secs(20), |a| {
        datastore_of(a, "db-01") == "ds-gold-2" && idle(a)
    });
    step_until(&mut h, "the list to clear", Duration::from_secs(5), |a| {
        gold(a).recommendations.is_empty()
    });
    h.get_by_label("ds-gold-3: empty");

    // Out of maintenance, then Balance: the moves inside cg-gold-a start at once.
    press(&mut h, "Exit maintenance ds-gold-1");
    press(&mut h, "Exit maintenance ds-gold-3");
    step_until(&mut h, "both to exit", Duration::from_secs(5), |a| {
        !in_maintenance(a, "ds-gold-1") && !in_maintenance(a, "ds-gold-3")
    });
    let before = gold(h.state()).spread_bp;
    press(&mut h, "Balance dsc-gold");
    step_until(&mut h, "Balance's moves", Duration::from_secs(20), |a| {
        datastore_of(a, "db-01") == "ds-gold-1" && idle(a)
    });
    let g = gold(h.state());
    assert!(g.spread_bp < before, "{} → {}", before, g.spread_bp);
    assert!(
        g.recommendations
            .iter()
            .all(|r| r.to == "ds-gold-3" && r.rating > drconsole::dr::Rating::None),
        "{:?}",
        g.recommendations
    );
}
