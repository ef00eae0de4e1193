//! The Resilience tab's cross-site section on the demo topology (SPEC §12): plan the move
//! of cg-gold-a to New York, see where each VM goes and the rating, confirm, and watch the
//! group switch and New York protect it; then move it home one VM at a time.

use std::time::Duration;

use crate::testkit::{app_in, step_until, wait_ready};
use drconsole::engine::AcrossPhase;
use drconsole::gui::DrApp;
use drconsole::gui::across_panel::{BREAK, CG, PLAN, START, SURE};
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

/// Scrolls the Resilience page to the node labelled `label`, then clicks it.
fn press(h: &mut Harness<'static, DrApp>, label: &str) {
    h.get_by_label(label).scroll_to_me();
    h.run_steps(3);
    h.get_by_label(label).click();
    h.run_steps(3);
}

/// Asks for the plan and waits for it.
fn ask_plan(h: &mut Harness<'static, DrApp>) {
    press(h, PLAN);
    step_until(h, "the plan", Duration::from_secs(30), |a| {
        a.resilience.across.plan.is_some()
    });
}

/// "Move to the other site" waits for "Are you sure?" on a move rated heightened-mild.
fn confirm(h: &mut Harness<'static, DrApp>) {
    assert!(h.get_by_label(START).accesskit_node().is_disabled());
    press(
        h,
        &format!("{SURE} Move cg-gold-a across and accept the heightened-mild risk"),
    );
    assert!(!h.get_by_label(START).accesskit_node().is_disabled());
}

/// Starts the planned move, the `n`th, and waits for it to succeed.
fn start_and_wait(h: &mut Harness<'static, DrApp>, n: usize) {
    press(h, START);
    step_until(h, "the move to succeed", Duration::from_secs(60), |a| {
        a.live
            .snapshot
            .as_ref()
            .is_some_and(|s| s.across.len() == n && s.across[n - 1].phase == AcrossPhase::Succeeded)
    });
}

#[test]
fn the_cross_site_section_plans_confirms_and_moves_cg_gold_a_to_new_york() {
    let dir = crate::testkit::scratch();
    let mut h = app_in(dir.path());
    wait_ready(&mut h);
    h.get_by_role_and_label(Role::Button, "Resilience").click();
    h.run_steps(3);
    h.get_by_label("Move a consistency group to the other site");

    // Pick cg-gold-a through the combo box (its list is drawn over the page: the last
    // node so labelled), then plan.
    press(&mut h, CG);
    h.get_all_by_label("cg-gold-a (pa to ny)")
        .last()
        .unwrap()
        .click();
    h.run_steps(3);
    assert_eq!(h.state().resilience.across.cg.as_deref(), Some("cg-gold-a"));
    ask_plan(&mut h);
    let plan = match &h.state().resilience.across.plan {
        Some((cg, _, Ok(plan))) if cg == "cg-gold-a" => plan.clone(),
        other => panic!("{other:?}"),
    };
    let mut vms: Vec<&str> = plan.members.iter().map(|m| m.vm.as_str()).collect();
    vms.sort();
    assert_eq!(vms, ["app-01", "mail-01", "web-01", "web-02"]);
    for m in &plan.members {
        assert!(m.to_host.starts_with("esx-ny"), "{m:?}");
        let row = format!("{} on {}", m.to_datastore, m.to_host);
        assert!(h.query_all_by_label(&row).count() >= 1, "{row} shown");
    }
    // db-01 stays in Palo Alto: Tier 1 would span the sites, so it needs "Are you sure?".
    assert!(h.query_all_by_label("heightened-mild").count() >= 1);
    assert!(
        h.query_all_by_label_contains("pg-tier1 keeps db-01 at pa")
            .count()
            >= 1
    );
    confirm(&mut h);
    start_and_wait(&mut h, 1);
    let snap = h.state().live.snapshot.clone().unwrap();
    for (vm, ds) in [
        ("web-01", "ds-gold-1-r"),
        ("web-02", "ds-gold-1-r"),
        ("app-01", "ds-gold-2-r"),
        ("mail-01", "ds-gold-2-r"),
    ] {
        let v = snap.vms.iter().find(|v| v.id == vm).unwrap();
        assert_eq!((v.datastore.as_str(), v.site.as_str()), (ds, "ny"), "{vm}");
        assert!(!v.down, "{vm} never stopped");
    }
    let g = snap
        .groups
        .iter()
        .find(|g| g.consistency_group.as_deref() == Some("cg-gold-a"))
        .unwrap();
    assert_eq!(
        (g.source_site.as_str(), g.target_site.as_str()),
        ("ny", "pa")
    );
    h.run_steps(3);
    assert!(
        h.query_all_by_label_contains("#1 cg-gold-a: pa ▶ ny")
            .count()
            >= 1
    );
    h.get_by_label("succeeded");
    // The inventory says they moved, not that they failed over.
    assert!(
        h.query_all_by_label_contains("web-01 — moved across to esx-ny")
            .count()
            >= 1
    );
    assert_eq!(
        h.query_all_by_label_contains("web-01 — failed over")
            .count(),
        0
    );
    assert!(
        h.query_all_by_label_contains("Cross-site move of cg-gold-a succeeded: ny protects it now")
            .count()
            >= 1
    );

    // Home again the other way: one VM at a time. The wizard says plainly that the RPO may
    // be violated, and it needs "Are you sure?" whatever the PG.
    press(&mut h, BREAK);
    ask_plan(&mut h);
    h.run_steps(3);
    assert!(
        h.query_all_by_label_contains("The RPO may be violated during this move")
            .count()
            >= 1
    );
    confirm(&mut h);
    start_and_wait(&mut h, 2);
    let snap = h.state().live.snapshot.clone().unwrap();
    for (vm, ds) in [("web-01", "ds-gold-1"), ("mail-01", "ds-gold-2")] {
        let v = snap.vms.iter().find(|v| v.id == vm).unwrap();
        assert_eq!((v.datastore.as_str(), v.site.as_str()), (ds, "pa"), "{vm}");
        assert!(!v.down, "{vm} never stopped");
    }
    h.run_steps(3);
    assert!(
        h.query_all_by_label_contains("One VM at a time: 4 of 4 moved")
            .count()
            >= 1
    );
}
