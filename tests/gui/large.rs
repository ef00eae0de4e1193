//! A large generated inventory (2,000 VMs, browse-only): the tree lays out rows, the
//! keyboard moves the selection and opens details, and the filter finds a VM deep in the
//! list.

use drconsole::generate::{GenerateOptions, generate};
use drconsole::gui::{DrApp, MainTab, Selection, Startup};
use drconsole::topology::Topology;
use egui::Key;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// The 2,000-VM topology saved in a scratch directory: (directory, topology, its file).
fn large_topology() -> (tempfile::TempDir, Topology, std::path::PathBuf) {
    let t = generate(GenerateOptions {
        vms: 2_000,
        datastores: 60,
        seed: 7,
    })
    .unwrap();
    let dir = crate::testkit::scratch();
    let path = dir.path().join("large.ron");
    t.save(&path).unwrap();
    (dir, t, path)
}

fn large() -> (tempfile::TempDir, Topology, Harness<'static, DrApp>) {
    let (dir, t, path) = large_topology();
    let startup = Startup::from_path(Some(&path)).browse_only();
    assert!(startup.error.is_none(), "{:?}", startup.error);
    let mut h = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_eframe(|cc| DrApp::new(cc.egui_ctx.clone(), startup));
    h.run_steps(3);
    (dir, t, h)
}

fn press(h: &mut Harness<'static, DrApp>, key: Key) {
    h.key_press(key);
    h.run_steps(2);
}

fn tree_buttons(h: &Harness<'static, DrApp>, label: &str) -> usize {
    h.query_all_by_role_and_label(Role::Button, label).count()
}

#[test]
fn the_tree_shows_a_large_inventory_folded_and_the_keyboard_walks_it() {
    let (_dir, t, mut h) = large();
    // Folded: the sections and their top-level objects, not 2,000 VMs twice over.
    h.get_by_label("Sites (2)");
    h.get_by_label(&format!("Datastores ({})", t.datastores.len()));
    h.get_by_label_contains("pa — Palo Alto");
    assert!(h.query_all_by_label_contains("💻 ").next().is_none());

    // Down selects the first object; Right opens it, Down walks into it.
    press(&mut h, Key::ArrowDown);
    assert_eq!(h.state().selection, Some(Selection::Site("pa".into())));
    press(&mut h, Key::ArrowRight);
    let first_host = t.hosts.iter().find(|x| x.site == "pa").unwrap();
    assert_eq!(tree_buttons(&h, &format!("🖥 {}", first_host.id)), 1);
    // Only the rows in view are laid out: the site's last host is far below.
    let last_host = t.hosts.iter().rfind(|x| x.site == "pa").unwrap();
    assert!(t.hosts.iter().filter(|x| x.site == "pa").count() > 60);
    assert_eq!(tree_buttons(&h, &format!("🖥 {}", last_host.id)), 0);
    press(&mut h, Key::ArrowDown);
    assert_eq!(
        h.state().selection,
        Some(Selection::Host(first_host.id.clone()))
    );
    press(&mut h, Key::ArrowRight);
    press(&mut h, Key::ArrowDown);
    let first_vm = t.vms.iter().find(|v| v.host == first_host.id).unwrap();
    assert_eq!(
        h.state().selection,
        Some(Selection::Vm(first_vm.id.clone()))
    );

    // Enter shows the VM's details, even from another tab.
    h.state_mut().main_tab = MainTab::Failover;
    press(&mut h, Key::Enter);
    assert_eq!(h.state().main_tab, MainTab::Details);
    h.get_by_label("virtual machine");
    h.get_by_label(&first_vm.uuid);

    // Left goes back up to the host, and again folds it.
    press(&mut h, Key::ArrowLeft);
    assert_eq!(
        h.state().selection,
        Some(Selection::Host(first_host.id.clone()))
    );
    press(&mut h, Key::ArrowLeft);
    assert_eq!(tree_buttons(&h, &format!("💻 {}", first_vm.id)), 0);
    // Up from the first host is the site again.
    press(&mut h, Key::ArrowUp);
    assert_eq!(h.state().selection, Some(Selection::Site("pa".into())));
}

#[test]
fn the_filter_finds_a_vm_deep_in_the_list() {
    let (_dir, t, mut h) = large();
    let deep = t.vms.last().unwrap();
    h.get_by_label("Filter").focus();
    h.get_by_label("Filter").type_text(&deep.id);
    h.run_steps(3);
    // Under its host and under its datastore, both unfolded.
    assert_eq!(tree_buttons(&h, &format!("💻 {}", deep.id)), 2);
    h.get_by_label(&format!("🖥 {}", deep.host));
    h.get_by_label_contains(&format!("🗀 {} (pa)", deep.datastore));
    assert!(
        h.query_by_label_contains("Arrays (").is_none(),
        "no array matches"
    );

    // Clicking the VM shows it.
    h.query_all_by_role_and_label(Role::Button, &format!("💻 {}", deep.id))
        .next()
        .unwrap()
        .click();
    h.run_steps(2);
    assert_eq!(h.state().selection, Some(Selection::Vm(deep.id.clone())));
    h.get_by_label(&deep.uuid);

    // A filter that matches nothing says what to do, and the button does it.
    h.get_by_label("Filter").focus();
    h.get_by_label("Filter").type_text("-no-such-object");
    h.run_steps(3);
    h.get_by_label_contains("No object matches");
    h.get_by_label_contains("clear the filter");
    h.get_by_label("Clear the filter").click();
    h.run_steps(3);
    assert_eq!(h.state().filter, "");
    h.get_by_label("Sites (2)");
}

#[test]
fn down_from_the_filter_moves_into_the_matches() {
    let (_dir, t, mut h) = large();
    let deep = &t.vms[t.vms.len() - 2];
    h.get_by_label("Filter").focus();
    h.get_by_label("Filter").type_text(&deep.id);
    h.run_steps(3);
    press(&mut h, Key::ArrowDown);
    // The first match is the site holding it; more Downs reach the VM under its host.
    assert_eq!(h.state().selection, Some(Selection::Site("pa".into())));
    press(&mut h, Key::ArrowDown);
    assert_eq!(
        h.state().selection,
        Some(Selection::Host(deep.host.clone()))
    );
    press(&mut h, Key::ArrowDown);
    assert_eq!(h.state().selection, Some(Selection::Vm(deep.id.clone())));
    press(&mut h, Key::Enter);
    h.get_by_label(&deep.uuid);
}

/// While a large workspace is being created the console answers: the inventory, the
/// selection and "Where can it go?" work, and the panels that need the running workspace
/// and the status bar say how far its preparation is, with a progress bar. The state is
/// set as the worker's reports set it, so nothing races the worker.
#[test]
fn while_the_workspace_is_prepared_the_console_answers_and_says_how_far_it_is() {
    let (dir, t, mut h) = large();
    let app = h.state_mut();
    app.live.status = drconsole::gui::Status::Opening(dir.path().join("ws"));
    app.live.preparing = Some(drconsole::engine::Progress {
        done: 1_216,
        total: 2_000,
    });
    app.selection = Some(Selection::Vm(t.vms[1_500].id.clone()));
    h.run_steps(4);
    let text = "Preparing the workspace — 1216 of 2000 VMs";
    // The Migrations panel and the status bar.
    assert_eq!(h.query_all_by_label(text).count(), 2);
    assert!(
        h.query_all_by_role(Role::ProgressIndicator).count() >= 2,
        "a progress bar in the panel and in the status bar"
    );
    h.get_by_label("Where can it go?");
    h.get_by_label(&t.vms[1_500].uuid);

    // Once every instance is made, the engine starts: the status bar says so.
    h.state_mut().live.preparing = Some(drconsole::engine::Progress {
        done: 2_000,
        total: 2_000,
    });
    h.run_steps(2);
    h.get_all_by_label_contains("2000 VMs made, starting")
        .next()
        .unwrap();
}

/// A real creation reports its progress up to every VM, and the workspace opens.
#[test]
fn a_created_workspace_reports_its_progress_to_the_end() {
    let (dir, _t, path) = large_topology();
    let startup = Startup::from_path(Some(&path)).with_workspace(Some(dir.path().join("ws")));
    let mut h = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_eframe(|cc| DrApp::new(cc.egui_ctx.clone(), startup));
    crate::testkit::wait_ready(&mut h);
    assert_eq!(
        h.state().live.preparing,
        Some(drconsole::engine::Progress {
            done: 2_000,
            total: 2_000
        })
    );
    assert!(matches!(
        h.state().live.status,
        drconsole::gui::Status::Open(_)
    ));
}
