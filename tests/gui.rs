//! Drives the console headless with egui_kittest: the real app, real files. These tests
//! browse and edit topologies without a workspace; tests/gui/migration.rs runs one.

mod testkit;

#[path = "gui/across.rs"]
mod across;
#[path = "gui/demo.rs"]
mod demo;
#[path = "gui/failover.rs"]
mod failover;
#[path = "gui/group.rs"]
mod group;
#[path = "gui/health.rs"]
mod health;
#[path = "gui/hosts.rs"]
mod hosts;
#[path = "gui/large.rs"]
mod large;
#[path = "gui/log.rs"]
mod log;
#[path = "gui/migration.rs"]
mod migration;
#[path = "gui/new_vm.rs"]
mod new_vm;
#[path = "gui/placement.rs"]
mod placement;
#[path = "gui/story.rs"]
mod story;
#[path = "gui/stretch.rs"]
mod stretch;

use drconsole::gui::{DrApp, Selection, Startup};
use drconsole::topology::TopologySource;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use testkit::{browse, sample, wait_for_io};

fn default_app() -> Harness<'static, DrApp> {
    browse(Startup::from_path(None))
}

#[test]
fn tree_shows_the_default_topologys_sites() {
    let mut h = default_app();
    h.run_steps(2);
    h.get_by_label_contains("pa — Palo Alto (protected)");
    h.get_by_label_contains("ny — New York (recovery)");
    h.get_by_label_contains("esx-pa-1");
    assert_eq!(h.state().title(), "drconsole — Two-site demo");
}

#[test]
fn clicking_a_vm_shows_its_ratings_table() {
    let mut h = default_app();
    h.run_steps(2);
    assert!(h.query_by_label("Where can it go?").is_none());
    h.get_all_by_label_contains("web-01")
        .next()
        .unwrap()
        .click();
    h.run_steps(2);
    assert_eq!(h.state().selection, Some(Selection::Vm("web-01".into())));
    h.get_by_label("Where can it go?");
    // web-01 is on ds-gold-1 (cg-gold-a, Tier 1): ds-gold-2 is the same CG, ds-local loses protection.
    h.get_by_label("loss-of-protection");
    h.get_by_label("replication-loss-of-protection");
    h.get_by_label("heightened-severe");
    assert!(h.query_all_by_label("allowed").count() >= 1);
}

#[test]
fn opening_a_broken_file_shows_the_error_and_keeps_the_topology() {
    let dir = crate::testkit::scratch();
    let broken = dir.path().join("broken.ron");
    let text = std::fs::read_to_string(sample("patent_hazard.ron"))
        .unwrap()
        .replace("target: \"lun-2r\"", "target: \"lun-1r\"");
    std::fs::write(&broken, text).unwrap();

    let mut h = default_app();
    h.run_steps(2);
    h.get_all_by_label_contains("web-01")
        .next()
        .unwrap()
        .click();
    h.run_steps(1);
    h.state_mut().open_path(broken.clone());
    wait_for_io(&mut h);

    let app = h.state();
    assert_eq!(
        app.doc.topology.name, "Two-site demo",
        "the old topology stays"
    );
    assert_eq!(
        app.selection,
        Some(Selection::Vm("web-01".into())),
        "and so does the selection"
    );
    let last = app.log.entries.last().unwrap();
    assert_eq!(last.level, drconsole::gui::Level::Error);
    assert!(last.message.contains("broken.ron"), "{}", last.message);
    assert!(last.message.contains("targeted once"), "{}", last.message);
    assert!(
        app.log
            .visible_toasts()
            .iter()
            .any(|t| t.contains("targeted once"))
    );
    // The toast and the log entry are both on screen.
    assert!(h.query_all_by_label_contains("targeted once").count() >= 2);
    h.get_by_label_contains("pa — Palo Alto");
}

#[test]
fn opening_a_good_file_replaces_the_topology_and_title() {
    let mut h = default_app();
    h.run_steps(1);
    // A filter typed for the demo's inventory does not carry over to the new one.
    h.state_mut().filter = "web-01".into();
    h.run_steps(1);
    h.state_mut().open_path(sample("patent_hazard.ron"));
    wait_for_io(&mut h);
    assert_eq!(h.state().filter, "", "a new topology starts unfiltered");
    assert_eq!(
        h.state().title(),
        "drconsole — Patent hazard: cross-CG move in one PG"
    );
    assert!(
        h.query_all_by_label_contains("vm1").count() >= 2,
        "under its host and its datastore"
    );
    assert!(h.query_by_label_contains("Palo Alto").is_none());

    // Remembered files reopen on the next start; the File menu gets back to the demo.
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label("Open the built-in demo").click();
    h.run_steps(2);
    assert_eq!(h.state().title(), "drconsole — Two-site demo");
    assert_eq!(h.state().doc.source, TopologySource::BuiltIn);
    h.get_by_label_contains("pa — Palo Alto (protected)");
}

#[test]
fn filter_narrows_the_tree() {
    let mut h = default_app();
    h.run_steps(1);
    h.get_by_label("Filter").focus();
    h.get_by_label("Filter").type_text("db-01");
    h.run_steps(3);
    assert!(
        h.query_all_by_label_contains("db-01").count() >= 2,
        "under its host and its datastore"
    );
    assert!(h.query_by_label_contains("scratch-01").is_none());
    assert!(
        h.query_by_label_contains("lun-local").is_none(),
        "arrays without a match are hidden"
    );
}

#[test]
fn save_as_then_open_round_trips() {
    let dir = crate::testkit::scratch();
    let out = dir.path().join("saved.ron");
    let mut h = default_app();
    h.run_steps(1);
    h.state_mut().save_to(out.clone());
    wait_for_io(&mut h);
    let saved = drconsole::topology::Topology::load(&out).unwrap();
    assert_eq!(saved, h.state().doc.topology);
    h.state_mut().open_path(out.clone());
    wait_for_io(&mut h);
    assert!(
        matches!(&h.state().doc.source, drconsole::topology::TopologySource::File(p) if p == &out)
    );
}

#[test]
fn a_bad_startup_file_opens_the_demo_with_the_error() {
    let mut h = browse(Startup::from_path(Some(std::path::Path::new(
        "/no/such/topology.ron",
    ))));
    h.run_steps(2);
    assert_eq!(h.state().doc.topology.name, "Two-site demo");
    assert!(
        h.query_all_by_label_contains("/no/such/topology.ron: cannot read")
            .count()
            >= 1
    );
}

/// DR ▶ Rescan arrays (SPEC §2): after the topology file is edited (lun-2 moved into
/// cg-1), the running workspace adopts it and the details panel shows the new tag.
#[test]
fn rescan_arrays_shows_an_edited_files_new_tag() {
    let dir = crate::testkit::scratch();
    let file = dir.path().join("hazard.ron");
    let text = std::fs::read_to_string(sample("patent_hazard.ron")).unwrap();
    std::fs::write(&file, &text).unwrap();
    let ws = dir.path().join("ws");
    let mut h = testkit::app_with(&ws, &["--topology", file.to_str().unwrap()]);
    testkit::wait_ready(&mut h);
    h.state_mut().selection = Some(Selection::Datastore("ds-2".into()));
    h.run_steps(2);
    h.get_by_label("replication:cg=cg-2");
    // A group with a cycle in flight refuses to change: wait for the first recovery points.
    testkit::step_until(
        &mut h,
        "the first recovery points",
        std::time::Duration::from_secs(30),
        |a| {
            a.live.snapshot.as_ref().is_some_and(|s| {
                s.groups
                    .iter()
                    .all(|g| g.point_cycle.is_some() && g.transfer.is_none())
            })
        },
    );

    let edited = text.replace(
        "target: \"lun-2r\", rpo_minutes: 20, consistency_group: Some(\"cg-2\")",
        "target: \"lun-2r\", rpo_minutes: 15, consistency_group: Some(\"cg-1\")",
    );
    assert_ne!(edited, text);
    std::fs::write(&file, edited).unwrap();
    h.get_by_label("DR").click();
    h.run_steps(2);
    h.get_by_label("Rescan arrays").click();
    testkit::step_until(
        &mut h,
        "the rescan to reach the details panel",
        std::time::Duration::from_secs(30),
        |a| {
            a.doc
                .tags_of("ds-2")
                .is_some_and(|t| t.consistency_group.as_deref() == Some("cg-1"))
        },
    );
    h.get_by_label("replication:cg=cg-1");
    assert!(h.query_by_label("replication:cg=cg-2").is_none());
    // The ratings follow: vm1 (ds-1, cg-1) may now move to ds-2 freely.
    let to_ds2 = h
        .state()
        .doc
        .destinations("vm1")
        .iter()
        .find(|i| i.to == "ds-2")
        .cloned()
        .unwrap();
    assert_eq!(to_ds2.rating, drconsole::dr::Rating::None);
    // And the workspace keeps what it adopted.
    let saved = drconsole::topology::Topology::load(&ws.join("topology.ron")).unwrap();
    assert_eq!(
        drconsole::dr::datastore_cg(&saved, saved.datastore("ds-2").unwrap()).as_deref(),
        Some("cg-1")
    );
}

/// Every main view at this window size, with its key controls where the operator can use
/// them: inside the window and inside their own panel (not cut off at its edge, not under
/// the next one); tables that do not fit scroll sideways to their last column.
fn key_controls_are_reachable_at(size: [f32; 2]) {
    use drconsole::gui::replication::{disaster_button, replicate_now_name};
    use drconsole::gui::{MainTab, SideTab};
    use std::time::Duration;
    use testkit::{Region, assert_inside, assert_reachable, click, step_until, wait_ready};

    let dir = crate::testkit::scratch();
    let topo = sample("clusters.ron");
    let mut h = testkit::app_sized(dir.path(), &["--topology", topo.to_str().unwrap()], size);
    wait_ready(&mut h);
    h.run_steps(4);
    let app = h.state();
    assert_eq!(app.regions.window.size(), egui::vec2(size[0], size[1]));
    let central = app.regions.central;
    for (name, r) in [
        ("inventory", app.regions.inventory.unwrap()),
        ("side panel", app.regions.side.unwrap()),
        ("event log", app.regions.log.unwrap()),
    ] {
        assert!(
            !r.shrink(1.0).intersects(central),
            "the {name} {r:?} overlaps the middle {central:?} at {size:?}"
        );
    }
    assert!(
        central.width() >= 400.0,
        "the middle is {central:?} at {size:?}"
    );

    // Details of a VM: its Migrate… button, and the ratings table's last column.
    h.state_mut().selection = Some(Selection::Vm("web-01".into()));
    h.run_steps(3);
    assert_inside(&mut h, "Migrate…", Region::Central);
    assert_reachable(&mut h, "Fault", Region::Central);

    // Failover.
    click(&mut h, "Failover");
    assert_eq!(h.state().main_tab, MainTab::Failover);
    assert_inside(&mut h, drconsole::gui::failover::SCAN, Region::Central);
    assert_inside(&mut h, drconsole::gui::failover::RUN, Region::Central);

    // Resilience: array health, hosts, datastore clusters and maintenance mode.
    click(&mut h, "Resilience");
    assert_eq!(h.state().main_tab, MainTab::Resilience);
    assert_inside(&mut h, "Fault array-pa", Region::Central);
    assert_inside(&mut h, "Fail esx-pa-1", Region::Central);
    assert_inside(&mut h, "Balance dsc-gold", Region::Central);
    h.get_by_label("Enter maintenance ds-local-2").click();
    step_until(&mut h, "maintenance mode", Duration::from_secs(10), |a| {
        a.live.snapshot.as_ref().is_some_and(|s| {
            s.placement
                .iter()
                .flat_map(|c| &c.datastores)
                .any(|d| d.id == "ds-local-2" && d.in_maintenance)
        })
    });
    assert_reachable(&mut h, "Exit maintenance ds-local-2", Region::Central);

    // The side panel's two tabs.
    h.get_by_role_and_label(egui::accesskit::Role::Button, "Replication")
        .click();
    h.run_steps(3);
    assert_eq!(h.state().side_tab, SideTab::Replication);
    assert_inside(&mut h, "Link down", Region::Side);
    assert_inside(&mut h, &disaster_button("pa"), Region::Side);
    for g in ["cg-gold-a", "ds-bronze-1"] {
        assert_inside(&mut h, &replicate_now_name(g), Region::Side);
    }
    h.get_by_role_and_label(egui::accesskit::Role::Button, "Migrations")
        .click();
    h.run_steps(3);
    assert_eq!(h.state().side_tab, SideTab::Migrations);
    assert_inside(&mut h, "Copy progress", Region::Side);
    assert_inside(&mut h, "Guest write latency", Region::Side);

    // The event log.
    assert_inside(&mut h, "Export…", Region::Log);
    assert_inside(&mut h, "Filter the log", Region::Log);

    // Folding the side panels away gives the middle their room; they come back.
    let before = h.state().regions.central.width();
    click(&mut h, drconsole::gui::HIDE_INVENTORY);
    click(&mut h, drconsole::gui::HIDE_SIDE_PANEL);
    h.run_steps(20);
    assert!(h.state().regions.inventory.is_none() && h.state().regions.side.is_none());
    assert!(h.state().regions.central.width() > before + 300.0);
    click(&mut h, drconsole::gui::SHOW_INVENTORY);
    click(&mut h, drconsole::gui::SHOW_SIDE_PANEL);
    h.run_steps(20);
    assert!(h.state().regions.inventory.is_some() && h.state().regions.side.is_some());
}

#[test]
fn key_controls_are_reachable_at_1024x700() {
    key_controls_are_reachable_at([1024.0, 700.0]);
}

#[test]
fn key_controls_are_reachable_at_1600x1000() {
    key_controls_are_reachable_at([1600.0, 1000.0]);
}

/// Toasts cover no control: stacked over the event log's rows (which hold the same lines),
/// clipped to them however many there are; with the log folded away, in a strip of their
/// own above the status bar.
#[test]
fn toasts_stay_over_the_log_or_in_a_strip_of_their_own() {
    let startup = Startup::from_path(None).browse_only();
    let mut h = Harness::builder()
        .with_size([1024.0, 700.0])
        .build_eframe(|cc| DrApp::new(cc.egui_ctx.clone(), startup));
    h.run_steps(2);
    for i in 1..=4 {
        h.state_mut().log.error(format!(
            "Toast number {i}: something went wrong with a long enough explanation to wrap over two lines"
        ));
    }
    h.run_steps(4);
    assert_eq!(h.state().log.visible_toasts().len(), 4);
    let panels = |h: &Harness<'static, DrApp>| {
        let r = h.state().regions;
        [Some(r.central), r.inventory, r.side]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
    };
    // As many as the log's rows hold, the newest; each whole inside the log.
    let log = h.state().regions.log.unwrap();
    let shown: Vec<egui::Rect> = h
        .query_all_by_label_contains("Toast number")
        .map(|n| n.rect())
        .collect();
    assert!(!shown.is_empty());
    for r in &shown {
        assert!(
            log.contains_rect(*r),
            "a toast at {r:?} is outside the log {log:?}"
        );
        for p in panels(&h) {
            assert!(!r.intersects(p), "{r:?} covers {p:?}");
        }
    }
    assert!(
        shown.len() < 8,
        "the older toasts wait their turn: {shown:?}"
    );
    // The newest is there, as a toast and as a line of the log.
    assert_eq!(h.query_all_by_label_contains("Toast number 4").count(), 2);

    // The log folded away: a strip between the panels and the status bar.
    h.state_mut()
        .log
        .error("Toast number 5: with the log folded away");
    h.get_by_label("View").click();
    h.run_steps(2);
    h.get_by_role_and_label(egui::accesskit::Role::CheckBox, "Event log")
        .click();
    h.run_steps(2);
    h.key_press(egui::Key::Escape);
    h.run_steps(20);
    assert!(h.state().regions.log.is_none());
    let toast = h.get_by_label_contains("Toast number 5").rect();
    for p in panels(&h) {
        assert!(!toast.intersects(p), "{toast:?} covers {p:?}");
    }
    assert!(h.state().regions.window.contains_rect(toast));
}

fn press(h: &mut Harness<'static, DrApp>, key: egui::Key) {
    h.key_press(key);
    h.run_steps(2);
}

fn tree_rows(h: &Harness<'static, DrApp>, label: &str) -> usize {
    h.query_all_by_role_and_label(egui::accesskit::Role::Button, label)
        .count()
}

/// Left walks up: from a leaf to its parent, folds an open node, and from a folded node
/// goes to its parent; Right unfolds and then walks into the first child.
#[test]
fn left_on_a_folded_node_moves_to_its_parent() {
    let mut h = default_app();
    h.run_steps(2);
    let vm = |id: &str| Some(Selection::Vm(id.into()));
    let host = |id: &str| Some(Selection::Host(id.into()));
    assert_eq!(
        tree_rows(&h, "💻 db-01"),
        2,
        "under its host and its datastore"
    );
    // The first db-01 is under its host, in Sites.
    h.get_all_by_label("💻 db-01").next().unwrap().click();
    h.run_steps(2);
    assert_eq!(h.state().selection, vm("db-01"));
    press(&mut h, egui::Key::ArrowLeft);
    assert_eq!(
        h.state().selection,
        host("esx-pa-2"),
        "a leaf: up to its host"
    );
    press(&mut h, egui::Key::ArrowLeft);
    assert_eq!(h.state().selection, host("esx-pa-2"), "an open node folds");
    assert_eq!(
        tree_rows(&h, "💻 db-01"),
        1,
        "folded: only under its datastore"
    );
    press(&mut h, egui::Key::ArrowLeft);
    assert_eq!(
        h.state().selection,
        Some(Selection::Site("pa".into())),
        "a folded node: up to its parent"
    );
    // Right on the open site walks into its first host; Left folds it, Right opens it and
    // once more walks into its first VM.
    press(&mut h, egui::Key::ArrowRight);
    assert_eq!(h.state().selection, host("esx-pa-1"));
    press(&mut h, egui::Key::ArrowLeft);
    assert_eq!(tree_rows(&h, "💻 web-01"), 1, "esx-pa-1 folded");
    press(&mut h, egui::Key::ArrowRight);
    assert_eq!(tree_rows(&h, "💻 web-01"), 2, "esx-pa-1 open again");
    assert_eq!(h.state().selection, host("esx-pa-1"));
    press(&mut h, egui::Key::ArrowRight);
    assert_eq!(h.state().selection, vm("web-01"));

    // The second db-01 is under its datastore: Left goes to the datastore, not the host,
    // also after the rows were rebuilt (a section folded and unfolded).
    h.get_by_label("🖥 esx-pa-2").click();
    h.run_steps(2);
    press(&mut h, egui::Key::ArrowRight);
    assert_eq!(tree_rows(&h, "💻 db-01"), 2, "esx-pa-2 open again");
    // Tall enough for the whole tree, Arrays folded: no scrolling to reach the datastores.
    h.set_size(egui::vec2(1280.0, 1400.0));
    let luns = |h: &Harness<'static, DrApp>| h.query_all_by_label_contains("🖴 ").count();
    h.get_by_label_contains("Arrays (").click();
    h.run_steps(2);
    assert_eq!(luns(&h), 0, "Arrays folded");
    h.get_all_by_label("💻 db-01").nth(1).unwrap().click();
    h.run_steps(2);
    assert_eq!(h.state().selection, vm("db-01"));
    h.get_by_label_contains("Arrays (").click();
    h.run_steps(2);
    assert!(luns(&h) > 0, "Arrays open again");
    press(&mut h, egui::Key::ArrowLeft);
    let ds = h
        .state()
        .doc
        .topology
        .vm("db-01")
        .unwrap()
        .datastore
        .clone();
    assert_eq!(h.state().selection, Some(Selection::Datastore(ds)));
}

/// A click in the tree shows the object's details whichever main tab is open, also when
/// the object was already selected.
#[test]
fn clicking_a_vm_on_another_tab_shows_its_details() {
    use drconsole::gui::MainTab;
    let mut h = default_app();
    h.run_steps(2);
    h.state_mut().main_tab = MainTab::Failover;
    h.run_steps(2);
    h.get_all_by_label("💻 web-01").next().unwrap().click();
    h.run_steps(2);
    assert_eq!(h.state().main_tab, MainTab::Details);
    h.get_by_label("Where can it go?");
    // Already selected: the click still shows it.
    for tab in [MainTab::Failover, MainTab::Resilience] {
        h.state_mut().main_tab = tab;
        h.run_steps(2);
        assert!(h.query_by_label("Where can it go?").is_none());
        h.get_all_by_label("💻 web-01").next().unwrap().click();
        h.run_steps(2);
        assert_eq!(h.state().main_tab, MainTab::Details, "from {tab:?}");
        assert_eq!(h.state().selection, Some(Selection::Vm("web-01".into())));
        h.get_by_label("Where can it go?");
    }
}

#[test]
fn file_open_without_a_chooser_offers_a_path_field() {
    use drconsole::gui::open_path::OPEN_LABEL;
    let mut h = default_app();
    h.run_steps(2);
    // As on a system with no desktop portal: the chooser gives nothing.
    h.state_mut().files.chooser = |_| None;
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_all_by_label_contains("Open…")
        .find(|n| {
            egui_kittest::kittest::NodeT::accesskit_node(n).role() == egui::accesskit::Role::Button
        })
        .expect("File ▶ Open…")
        .click();
    wait_for_io(&mut h);
    h.run_steps(4);
    let app = h.state();
    assert!(app.files.prompt.is_some(), "the path field is offered");
    assert!(
        app.log
            .visible_toasts()
            .iter()
            .any(|t| t.contains("the file chooser returned nothing")),
        "{:?}",
        app.log.visible_toasts()
    );
    assert!(
        app.log
            .entries
            .iter()
            .any(|e| e.message.contains("the file chooser returned nothing"))
    );

    // A path that is not there: the error names it, in the dialog, which stays.
    let bad = "/no/such/dir/topology.ron";
    h.get_by_label(OPEN_LABEL).focus();
    h.get_by_label(OPEN_LABEL).type_text(bad);
    h.run_steps(2);
    h.get_by_label("Open").click();
    // The click is taken in the next frame and the load runs in the background: wait
    // for its outcome, not for an idle moment that can come before the click is taken.
    testkit::step_until(
        &mut h,
        "the path field's error",
        std::time::Duration::from_secs(10),
        |a| a.files.prompt.as_ref().is_some_and(|p| p.error.is_some()),
    );
    let error = h.state().files.prompt.as_ref().unwrap().error.clone();
    assert!(
        error.as_deref().is_some_and(|e| e.contains(bad)),
        "{error:?}"
    );
    assert_eq!(h.state().doc.source, TopologySource::BuiltIn);

    // A sample: it opens, the dialog goes.
    let good = sample("patent_hazard.ron");
    h.state_mut().files.prompt.as_mut().unwrap().text.clear();
    h.run_steps(2);
    h.get_by_label(OPEN_LABEL).focus();
    h.get_by_label(OPEN_LABEL)
        .type_text(&good.display().to_string());
    h.run_steps(2);
    h.get_by_label("Open").click();
    testkit::step_until(
        &mut h,
        "the sample to open",
        std::time::Duration::from_secs(10),
        |a| a.doc.source != TopologySource::BuiltIn,
    );
    h.run_steps(2);
    let app = h.state();
    assert_eq!(app.doc.source, TopologySource::File(good));
    assert!(app.files.prompt.is_none());
}

#[test]
fn a_dropped_topology_file_opens() {
    let mut h = default_app();
    h.run_steps(2);
    let path = sample("impact_tour.ron");
    #[derive(Debug)]
    struct Dropped(std::path::PathBuf);
    impl egui::DroppedFile for Dropped {
        fn path(&self) -> &std::path::Path {
            &self.0
        }
        fn bytes(&self) -> Result<Vec<u8>, String> {
            std::fs::read(&self.0).map_err(|e| e.to_string())
        }
    }
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(Dropped(path.clone())));
    h.run_steps(2);
    wait_for_io(&mut h);
    assert_eq!(h.state().doc.source, TopologySource::File(path));
}
