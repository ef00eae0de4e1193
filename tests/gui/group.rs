//! The Resilience tab's group migration section on the demo topology: pick cg-gold-a ▶
//! cg-gold-b, see the rating, confirm, and watch the whole group move.

use std::time::Duration;

use crate::testkit::{app_in, step_until, wait_ready};
use drconsole::engine::GroupPhase;
use drconsole::gui::DrApp;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

const SOURCE: &str = "Group migration source";
const DESTINATION: &str = "Group migration destination";
const START: &str = "Migrate group";
const SURE: &str = "Are you sure?";

const MEMBERS: [&str; 4] = ["web-01", "web-02", "app-01", "mail-01"];

/// Scrolls the Resilience page to the node labelled `label`, then clicks it.
fn press(h: &mut Harness<'static, DrApp>, label: &str) {
    h.get_by_label(label).scroll_to_me();
    h.run_steps(3);
    h.get_by_label(label).click();
    h.run_steps(3);
}

/// Clicks `cg` in the open combo box's list (drawn over the section, so the last node so
/// labelled).
fn pick(h: &mut Harness<'static, DrApp>, cg: &str) {
    h.get_all_by_label(cg).last().unwrap().click();
    h.run_steps(3);
}

#[test]
fn the_group_section_moves_cg_gold_a_to_cg_gold_b() {
    let dir = crate::testkit::scratch();
    let mut h = app_in(dir.path());
    wait_ready(&mut h);
    h.get_by_role_and_label(Role::Button, "Resilience").click();
    h.run_steps(3);
    h.get_by_label("Group migration");

    // Pick the source through its combo box: cg-silver first, then cg-gold-a.
    press(&mut h, SOURCE);
    pick(&mut h, "cg-silver");
    h.run_steps(3);
    assert_eq!(
        h.state().resilience.group.from.as_deref(),
        Some("cg-silver")
    );
    h.get_by_label_contains("VM(s) of cg-silver: erp-01, erp-db");
    press(&mut h, SOURCE);
    pick(&mut h, "cg-gold-a");
    h.run_steps(3);
    press(&mut h, DESTINATION);
    pick(&mut h, "cg-gold-b");
    h.run_steps(3);
    assert_eq!(h.state().resilience.group.to.as_deref(), Some("cg-gold-b"));
    h.get_by_label_contains("VM(s) of cg-gold-a: web-01, web-02, app-01, mail-01");

    // Rated heightened-mild: the button waits for "Are you sure?".
    assert!(h.query_all_by_label("heightened-mild").count() >= 1);
    assert!(h.get_by_label(START).accesskit_node().is_disabled());
    press(
        &mut h,
        &format!(
            "{SURE} Move every VM of cg-gold-a to cg-gold-b and accept the heightened-mild risk"
        ),
    );
    assert!(!h.get_by_label(START).accesskit_node().is_disabled());
    press(&mut h, START);

    step_until(
        &mut h,
        "the group migration to succeed",
        Duration::from_secs(30),
        |a| {
            a.live.snapshot.as_ref().is_some_and(|s| {
                s.group_migrations
                    .last()
                    .is_some_and(|g| g.phase == GroupPhase::Succeeded)
            })
        },
    );
    let snap = h.state().live.snapshot.clone().unwrap();
    let g = snap.group_migrations.last().unwrap();
    assert_eq!((g.from.as_str(), g.to.as_str()), ("cg-gold-a", "cg-gold-b"));
    assert!(g.point_cut_at.unwrap() >= g.switched_at.unwrap());
    for vm in MEMBERS {
        let v = snap.vms.iter().find(|v| v.id == vm).unwrap();
        assert_eq!(v.datastore, "ds-gold-3", "{vm}");
        assert!(
            !dir.path()
                .join("sites/pa/datastores/ds-gold-1")
                .join(vm)
                .exists()
                && !dir
                    .path()
                    .join("sites/pa/datastores/ds-gold-2")
                    .join(vm)
                    .exists(),
            "{vm}'s source is deleted"
        );
    }
    h.run_steps(3);
    assert!(
        h.query_all_by_label_contains("#1 cg-gold-a ▶ cg-gold-b")
            .count()
            >= 1
    );
    h.get_by_label("succeeded");
    assert!(
        h.query_all_by_label_contains("Group migration cg-gold-a ▶ cg-gold-b succeeded: 4 VMs")
            .count()
            >= 1
    );
}
