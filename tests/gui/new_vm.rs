//! New VM… (initial placement): the dialog ranks the datastores for the intended protection
//! group, preselects the safest, asks "Are you sure?" for one that loses the protection,
//! and the VM is added: to the running workspace, or (without one) to the topology shown.

use std::time::Duration;

use crate::testkit::{app_in, browse, click, logged, open_modal, step_until, wait_ready};
use drconsole::gui::new_vm::{
    ADD, DISK, HOST, MEMORY, MENU, NAME, PG, READS, TITLE, VCPUS, WRITES,
};
use drconsole::gui::{DrApp, Selection, Startup};
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

fn open_new_vm(h: &mut Harness<'static, DrApp>) {
    open_modal(h, &format!("➕ {MENU}"));
    assert!(h.state().new_vm.open);
    for name in [NAME, DISK, VCPUS, MEMORY, HOST, PG, WRITES, READS] {
        assert!(h.query_by_label(name).is_some(), "no input named {name:?}");
    }
}

fn add_disabled(h: &Harness<'static, DrApp>) -> bool {
    h.get_by_label(ADD).accesskit_node().is_disabled()
}

/// Clicks the dialog's row of datastore `ds` (found inside the dialog: the inventory may
/// show the same label).
fn pick_datastore(h: &mut Harness<'static, DrApp>, ds: &str) {
    h.get_by_label(TITLE)
        .get_by_label(&format!("🗀 {ds}"))
        .click();
    h.run_steps(2);
}

#[test]
fn new_vm_places_it_in_its_group_and_an_unprotected_pick_needs_are_you_sure() {
    let dir = crate::testkit::scratch();
    let mut h = app_in(dir.path());
    wait_ready(&mut h);
    open_new_vm(&mut h);
    assert_eq!(h.state().new_vm.name, "new-vm-01");

    // Meant for Tier 2: ds-silver-1 keeps it, and is preselected.
    h.get_by_role_and_label(Role::ComboBox, PG).click();
    h.run_steps(2);
    h.get_by_label("pg-tier2 (Tier 2 (back office))").click();
    h.run_steps(2);
    assert_eq!(h.state().new_vm.pg, "pg-tier2");
    h.get_by_label_contains("on 🗀 ds-silver-1: none");
    assert!(!add_disabled(&h));
    h.get_by_label("protected by pg-tier2");
    h.get_by_label_contains("not replicated: no protection");

    // ds-local loses the protection: Add waits for "Are you sure?".
    pick_datastore(&mut h, "ds-local");
    assert_eq!(h.state().new_vm.chosen.as_deref(), Some("ds-local"));
    assert!(add_disabled(&h));
    h.get_by_label_contains("Tick \"Are you sure?\" to place it on ds-local (rated severe)");
    let sure = h.get_by_label(TITLE).get_by_role(Role::CheckBox);
    let text = sure.accesskit_node().label().unwrap_or_default();
    assert!(
        text.starts_with("Are you sure? Place new-vm-01 on ds-local anyway"),
        "{text}"
    );
    // Through accesskit: the row's explanation, shown on hover, may lie over the footer.
    sure.click_accesskit();
    h.run_steps(2);
    assert!(h.state().new_vm.confirmed);
    assert!(!add_disabled(&h));
    click(&mut h, ADD);
    assert!(!h.state().new_vm.open);
    step_until(&mut h, "new-vm-01 to run", Duration::from_secs(20), |a| {
        a.live.snapshot.as_ref().is_some_and(|s| {
            s.vms
                .iter()
                .any(|v| v.id == "new-vm-01" && v.datastore == "ds-local")
        }) && a.doc.topology.vm("new-vm-01").is_some()
    });
    let log = logged(h.state());
    assert!(
        log.iter()
            .any(|m| m.starts_with("Override: new VM new-vm-01 on ds-local (meant for pg-tier2)")),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|m| m.contains("Operator: Add VM new-vm-01")),
        "{log:#?}"
    );
    assert!(
        dir.path()
            .join("sites/pa/datastores/ds-local/new-vm-01/disk0.img")
            .is_file()
    );
}

#[test]
fn without_a_workspace_new_vm_joins_the_topology_shown() {
    let mut h = browse(Startup::from_path(None));
    h.run_steps(2);
    open_new_vm(&mut h);
    // Tier 1 by default: ds-gold-1 is the emptiest of its datastores.
    assert_eq!(h.state().new_vm.pg, "pg-tier1");
    h.get_by_label_contains("on 🗀 ds-gold-1: none");
    h.get_by_label(TITLE)
        .get_by_role_and_label(Role::TextInput, NAME)
        .focus();
    h.run_steps(2);
    h.get_by_label(TITLE)
        .get_by_role_and_label(Role::TextInput, NAME)
        .type_text(" 2");
    h.run_steps(2);
    assert!(add_disabled(&h), "a name with spaces is not an id");
    h.get_by_label_contains("VM name \"new-vm-01 2\"");
    h.state_mut().new_vm.name = "web-03".into();
    h.run_steps(2);
    click(&mut h, ADD);
    let vm = h.state().doc.topology.vm("web-03").cloned().expect("added");
    assert_eq!((vm.datastore.as_str(), vm.disk_mib), ("ds-gold-1", 64));
    assert_eq!(h.state().selection, Some(Selection::Vm("web-03".into())));
}
