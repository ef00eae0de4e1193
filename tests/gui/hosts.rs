//! The Resilience tab's hosts section on a real workspace of `host_ha.ron`: fail esx-pa-1
//! (its VMs get reservations elsewhere or are listed as not fitting), read the failover
//! panel's capacity check while the reservations are held, let the reserved VMs boot, then
//! repair the host so the VM that did not fit restarts on it — driven through the UI with
//! egui_kittest.

use std::time::Duration;

use crate::testkit::{app_with, click, sample, scanned_plan, step_until, wait_ready};
use drconsole::engine::{HostView, VmView};
use drconsole::gui::capacity_table::reservations_toggle;
use drconsole::gui::failover::{CAPACITY_BY_HOST, SCAN};
use drconsole::gui::{DrApp, MainTab};
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn host<'a>(app: &'a DrApp, id: &str) -> &'a HostView {
    app.live
        .snapshot
        .as_ref()
        .and_then(|s| s.hosts.iter().find(|h| h.id == id))
        .unwrap_or_else(|| panic!("no host {id}"))
}

fn vm<'a>(app: &'a DrApp, id: &str) -> &'a VmView {
    app.live.vm(id).unwrap_or_else(|| panic!("no VM {id}"))
}

fn runs_on(app: &DrApp, id: &str, on: &str) -> bool {
    let v = vm(app, id);
    v.host == on && !v.down && v.running
}

/// Clicks a button of the (scrolled) Resilience tab through accessibility.
fn press(h: &mut Harness<'static, DrApp>, label: &str) {
    h.get_by_role_and_label(Role::Button, label)
        .click_accesskit();
    h.run_steps(2);
}

#[test]
fn fail_and_repair_a_host_from_the_resilience_tab() {
    let dir = crate::testkit::scratch();
    let topo = sample("host_ha.ron");
    let mut h = app_with(dir.path(), &["--topology", topo.to_str().unwrap()]);
    wait_ready(&mut h);
    click(&mut h, "Resilience");
    assert_eq!(h.state().main_tab, MainTab::Resilience);
    click(&mut h, "▶ Start workloads");
    step_until(&mut h, "guests running", Duration::from_secs(10), |a| {
        runs_on(a, "db-01", "esx-pa-1") && vm(a, "db-01").writes > 0
    });

    // Three healthy hosts, one button each; the recovery-site host is not listed.
    h.get_by_label("Hosts");
    for id in ["esx-pa-1", "esx-pa-2", "esx-pa-3"] {
        h.get_by_role_and_label(Role::Button, &format!("Fail {id}"));
        assert!(!host(h.state(), id).failed);
    }
    assert!(h.query_by_label("Fail esx-ny-1").is_none());
    assert_eq!(
        host(h.state(), "esx-pa-1").vms,
        ["db-01", "app-01", "erp-01"]
    );
    h.get_by_label("16 / 16 vCPU");

    // At 1×, the reservations are held for 20 s of wall time: fail, then read them.
    press(&mut h, "Fail esx-pa-1");
    step_until(&mut h, "the fault", Duration::from_secs(10), |a| {
        host(a, "esx-pa-1").failed
    });
    let pa1 = host(h.state(), "esx-pa-1").clone();
    let fault = pa1.fault.as_ref().expect("the fault record");
    let fates: Vec<(&str, &str)> = fault
        .impacted
        .iter()
        .map(|v| (v.vm.as_str(), v.fate.kind()))
        .collect();
    assert_eq!(
        fates,
        [
            ("db-01", "reserved"),
            ("app-01", "reserved"),
            ("erp-01", "no-room")
        ]
    );
    assert!(vm(h.state(), "db-01").down && vm(h.state(), "erp-01").down);
    let pa2 = host(h.state(), "esx-pa-2");
    assert_eq!(pa2.reservations.len(), 1);
    assert_eq!(pa2.reservations[0].vm, "db-01");
    // What the operator reads in the section.
    h.get_by_label("failed");
    h.get_by_role_and_label(Role::Button, "Repair esx-pa-1");
    assert!(h.query_by_label("Fail esx-pa-1").is_none());
    h.get_by_label_contains("Holds 8 vCPU / 32 GiB for db-01 (from failed esx-pa-1)");
    h.get_by_label_contains(
        "down, no room: erp-01 needs 4 vCPU / 16 GiB; the most free is esx-pa-2: 2 vCPU / 8 GiB",
    );
    h.get_by_label("2+8 reserved / 12 vCPU");

    // The failover panel's capacity check shows the HA reservations next to its own.
    h.get_by_role_and_label(Role::Button, "Failover").click();
    h.run_steps(2);
    h.get_by_role_and_label(Role::CheckBox, "🛡 pg-gold").click();
    h.get_by_role_and_label(Role::RadioButton, "test").click();
    h.run_steps(2);
    click(&mut h, SCAN);
    let plan = scanned_plan(&mut h);
    let held: Vec<(String, String, String)> = plan
        .capacity
        .iter()
        .flat_map(|c| {
            c.reserved
                .iter()
                .map(|r| (c.host.clone(), r.vm.clone(), r.purpose.clone()))
        })
        .collect();
    assert!(
        held.contains(&(
            "esx-pa-2".into(),
            "db-01".into(),
            "HA restart from esx-pa-1".into()
        )),
        "{held:?}"
    );
    assert!(
        held.contains(&("esx-ny-1".into(), "db-01".into(), "this failover".into())),
        "{held:?}"
    );
    h.get_by_label(CAPACITY_BY_HOST);
    // Each host's reservations are listed under it on demand.
    for host in ["esx-pa-2", "esx-pa-3"] {
        h.get_by_label(&reservations_toggle(host)).click_accesskit();
        h.run_steps(2);
    }
    h.get_by_label("8 vCPU / 32 GiB for db-01 (HA restart from esx-pa-1)");
    h.get_by_label("4 vCPU / 16 GiB for app-01 (HA restart from esx-pa-1)");
    h.get_by_label("failed");
    h.check_accessibility();

    // Faster: the reserved VMs boot on their new hosts.
    click(&mut h, "Resilience");
    h.get_by_role_and_label(Role::Button, "60×").click();
    h.run_steps(2);
    step_until(&mut h, "the restarts", Duration::from_secs(15), |a| {
        runs_on(a, "db-01", "esx-pa-2") && runs_on(a, "app-01", "esx-pa-3")
    });
    assert!(vm(h.state(), "erp-01").down, "erp-01 found no room");
    assert!(host(h.state(), "esx-pa-2").reservations.is_empty());
    h.run_steps(2);
    h.get_by_label_contains("runs on esx-pa-2 since");
    let db_writes = vm(h.state(), "db-01").writes;

    // Repair: erp-01 gets a reservation on esx-pa-1 and boots there.
    press(&mut h, "Repair esx-pa-1");
    step_until(&mut h, "erp-01 back", Duration::from_secs(15), |a| {
        runs_on(a, "erp-01", "esx-pa-1")
    });
    assert!(!host(h.state(), "esx-pa-1").failed);
    h.get_by_role_and_label(Role::Button, "Fail esx-pa-1");
    assert!(
        vm(h.state(), "db-01").writes > db_writes,
        "db-01 keeps writing"
    );
    let topology = drconsole::topology::Topology::load(&dir.path().join("topology.ron")).unwrap();
    assert_eq!(topology.vm("db-01").unwrap().host, "esx-pa-2");
    assert_eq!(topology.vm("erp-01").unwrap().host, "esx-pa-1");
}
