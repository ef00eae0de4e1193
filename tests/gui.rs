//! Drives the console headless with egui_kittest: the real app, real files. These tests
//! browse and edit topologies without a workspace; tests/gui_migration.rs runs one.

mod common;

use common::{browse, sample, wait_for_io};
use drconsole::gui::{DrApp, Selection, Startup};
use drconsole::topology::TopologySource;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

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
    let dir = tempfile::tempdir().unwrap();
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
    let dir = tempfile::tempdir().unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hazard.ron");
    let text = std::fs::read_to_string(sample("patent_hazard.ron")).unwrap();
    std::fs::write(&file, &text).unwrap();
    let ws = dir.path().join("ws");
    let mut h = common::app_with(&ws, &["--topology", file.to_str().unwrap()]);
    common::wait_ready(&mut h);
    h.state_mut().selection = Some(Selection::Datastore("ds-2".into()));
    h.run_steps(2);
    h.get_by_label("replication:cg=cg-2");
    // A group with a cycle in flight refuses to change: wait for the first recovery points.
    common::step_until(
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
    common::step_until(
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
    wait_for_io(&mut h);
    h.run_steps(2);
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
    wait_for_io(&mut h);
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
