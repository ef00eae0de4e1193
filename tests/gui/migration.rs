//! The console running a real workspace (a temp dir passed as `--workspace`): the migration
//! wizard, the task list and the clock, driven through the UI with egui_kittest.

use std::path::Path;
use std::time::Duration;

use crate::testkit::{app_in, step_until};
use drconsole::engine::copy::CopyMode;
use drconsole::engine::{Engine, EngineOptions};
use drconsole::gui::{DrApp, Status, TaskState};
use drconsole::topology::Topology;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

fn datastore_of(app: &DrApp, vm: &str) -> String {
    app.doc.topology.vm(vm).unwrap().datastore.clone()
}

/// Opens the app on a fresh workspace, selects web-01 and walks the wizard to the review
/// of its move to ds-local (rated severe: loss-of-protection).
fn review_web01_to_local(dir: &Path) -> Harness<'static, DrApp> {
    let mut h = app_in(dir);
    step_until(
        &mut h,
        "the workspace to open",
        Duration::from_secs(30),
        |a| a.engine_ready(),
    );
    assert!(
        dir.join("topology.ron").exists(),
        "materialized in the temp dir"
    );
    h.get_all_by_label("💻 web-01").next().unwrap().click();
    h.run_steps(2);
    h.get_by_label("Migrate…").click();
    // A window's first frame is an invisible sizing pass.
    h.run_steps(4);
    let window = h.get_by_label(drconsole::gui::wizard::TITLE);
    window
        .get_by_role_and_label(Role::Button, "🗀 ds-local")
        .click();
    h.run_steps(2);
    assert_eq!(
        h.state().wizard.step(),
        drconsole::gui::wizard::Step::Review
    );
    h.get_by_label_contains("Move 💻 web-01 from 🗀 ds-gold-1 to 🗀 ds-local");
    assert!(h.query_all_by_label("severe").count() >= 1);
    assert!(h.query_all_by_label("loss-of-protection").count() >= 1);
    assert_eq!(h.state().wizard.mode, CopyMode::Mirror, "mirror by default");
    h.get_by_label_contains(CopyMode::Mirror.disaster_note());
    h
}

#[test]
fn a_severe_move_cannot_start_without_are_you_sure() {
    let dir = crate::testkit::scratch();
    let mut h = review_web01_to_local(dir.path());
    h.check_accessibility();

    let start = h.get_by_label(drconsole::gui::wizard::START);
    assert!(start.accesskit_node().is_disabled(), "Start is disabled");
    h.get_by_label_contains("Tick \"Are you sure?\" to start a move rated severe");
    start.click();
    // Choosing another mode shows its note; it changes nothing about the override.
    h.get_by_role_and_label(Role::RadioButton, "split").click();
    h.run_steps(2);
    h.get_by_label_contains(CopyMode::Split.disaster_note());
    assert!(
        h.get_by_label(drconsole::gui::wizard::START)
            .accesskit_node()
            .is_disabled()
    );
    h.get_by_label(drconsole::gui::wizard::START).click();
    // A barrier instead of a wait: the worker applies requests in order, so once it has
    // answered a Pause sent after the click, a migration the click had sent would show.
    h.get_by_label("⏸ Pause").click();
    step_until(&mut h, "the clock to pause", Duration::from_secs(10), |a| {
        a.live.clock.paused
    });

    let app = h.state();
    assert!(app.wizard.open, "the wizard stays open");
    assert!(app.live.tasks.is_empty(), "no migration started");
    assert!(app.live.migration_of("web-01").is_none());
    assert_eq!(datastore_of(app, "web-01"), "ds-gold-1");
    assert!(
        !app.log
            .entries
            .iter()
            .any(|e| e.message.contains("Override"))
    );
    assert!(
        !dir.path()
            .join("sites/pa/datastores/ds-local/web-01")
            .exists(),
        "no target instance on disk"
    );
}

#[test]
fn a_confirmed_severe_move_runs_in_the_task_list_and_moves_the_vm() {
    let dir = crate::testkit::scratch();
    let mut h = review_web01_to_local(dir.path());

    // Pause the clock so the task can be seen running before it finishes.
    h.get_by_label("⏸ Pause").click();
    step_until(&mut h, "the clock to pause", Duration::from_secs(10), |a| {
        a.live.clock.paused
    });
    let paused_at = h.state().live.snapshot.as_ref().unwrap().now;
    h.get_by_label("▶ Resume");

    // The wizard's own checkbox: a plot legend's entries are checkboxes too.
    let window = h.get_by_label(drconsole::gui::wizard::TITLE);
    let sure = window.get_by_role(Role::CheckBox);
    assert!(
        sure.accesskit_node()
            .label()
            .unwrap()
            .starts_with("Are you sure?")
    );
    sure.click();
    h.run_steps(2);
    assert!(h.state().wizard.confirmed);
    let start = h.get_by_label(drconsole::gui::wizard::START);
    assert!(
        !start.accesskit_node().is_disabled(),
        "ticked: Start is enabled"
    );
    start.click();
    h.run_steps(2);
    assert!(!h.state().wizard.open, "Start closes the wizard");
    step_until(&mut h, "the task to appear", Duration::from_secs(10), |a| {
        !a.live.tasks.is_empty()
    });

    // Paused, the simulated clock stood still: the worker reported the task (it applied
    // Start after the pause) at the very instant the clock was paused.
    assert_eq!(h.state().live.snapshot.as_ref().unwrap().now, paused_at);
    let task = &h.state().live.tasks[0];
    assert_eq!(task.vm, "web-01");
    assert_eq!(
        (task.from.as_str(), task.to.as_str()),
        ("ds-gold-1", "ds-local")
    );
    assert_eq!(task.mode, CopyMode::Mirror);
    assert_eq!(task.state, TaskState::Running);
    h.get_by_label("ds-gold-1 ➡ ds-local");
    h.get_by_label("0%  ·  copying");
    h.get_by_label_contains("Migrating to 🗀 ds-local (mirror, copying)");
    h.get_by_label_contains("MiB/s  ·  ETA");
    h.get_by_label("Cancel the migration of web-01");
    assert!(
        dir.path()
            .join("sites/pa/datastores/ds-local/web-01/vm.ron")
            .exists(),
        "the target instance is on disk"
    );
    h.check_accessibility();

    // Full speed ahead.
    h.get_by_label("600×").click();
    h.get_by_label("▶ Resume").click();
    step_until(
        &mut h,
        "web-01 to land on ds-local",
        Duration::from_secs(60),
        |a| datastore_of(a, "web-01") == "ds-local",
    );
    step_until(&mut h, "the task to finish", Duration::from_secs(10), |a| {
        a.live.tasks[0].finished()
    });

    let app = h.state();
    assert_eq!(app.live.clock.speed, 600.0);
    let task = &app.live.tasks[0];
    assert_eq!(task.state, TaskState::Completed);
    assert!(
        task.message
            .as_deref()
            .is_some_and(|m| m.contains("completed")),
        "{:?}",
        task.message
    );
    assert!(
        app.log
            .entries
            .iter()
            .any(|e| e.message.starts_with("Override: web-01 to ds-local") && e.sim.is_some()),
        "the override is in the event log with its simulated time"
    );
    h.get_by_label("✔ completed");
    assert!(h.query_by_label("Cancel the migration of web-01").is_none());
    h.get_by_label_contains("Override: web-01 to ds-local");

    // The inventory follows the engine: web-01 is now under ds-local.
    h.get_by_label("Filter").focus();
    h.get_by_label("Filter").type_text("ds-local");
    h.run_steps(3);
    let tree_nodes = |h: &Harness<'static, DrApp>, label| {
        h.query_all_by_role_and_label(Role::Button, label).count()
    };
    assert_eq!(tree_nodes(&h, "💻 web-01"), 1, "only under ds-local");
    assert_eq!(tree_nodes(&h, "💻 scratch-01"), 1);
    assert_eq!(tree_nodes(&h, "💻 web-02"), 0, "still on ds-gold-1");
    // And so do the files.
    let ds = dir.path().join("sites/pa/datastores");
    assert!(ds.join("ds-local/web-01/disk0.img").exists());
    assert!(
        !ds.join("ds-gold-1/web-01").exists(),
        "the source was deleted"
    );
}

#[test]
fn a_locked_workspace_leaves_the_console_browsable() {
    let dir = crate::testkit::scratch();
    let holder = Engine::open_or_create(
        dir.path(),
        &Topology::builtin_default(),
        EngineOptions::default(),
    )
    .unwrap();
    let mut h = app_in(dir.path());
    step_until(&mut h, "the open to fail", Duration::from_secs(30), |a| {
        matches!(a.live.status, Status::Failed { .. })
    });
    let app = h.state();
    assert!(!app.engine_ready());
    assert!(
        app.log
            .visible_toasts()
            .iter()
            .any(|t| t.contains("in use by another drconsole process")),
        "{:?}",
        app.log.visible_toasts()
    );
    h.get_by_label_contains("): browsing only");

    // Browsing and rating still work; starting does not.
    h.get_all_by_label("💻 web-01").next().unwrap().click();
    h.run_steps(2);
    h.get_by_label("Where can it go?");
    h.get_by_label("Migrate…").click();
    h.run_steps(4);
    h.get_by_label(drconsole::gui::wizard::TITLE)
        .get_by_role_and_label(Role::Button, "🗀 ds-gold-2")
        .click();
    h.run_steps(2);
    assert!(
        h.get_by_label(drconsole::gui::wizard::START)
            .accesskit_node()
            .is_disabled()
    );
    h.get_by_label_contains("No workspace is open: nothing can move.");
    drop(h);
    holder.close().unwrap();
}

fn wizard_rect(h: &Harness<'static, DrApp>) -> egui::Rect {
    h.get_by_label(drconsole::gui::wizard::TITLE).rect()
}

fn start_disabled(h: &Harness<'static, DrApp>) -> bool {
    h.get_by_label(drconsole::gui::wizard::START)
        .accesskit_node()
        .is_disabled()
}

/// Every step shows Start, disabled with why until the move can start; step 1 finds VMs;
/// the window keeps its place and size from step to step; split warns as a risk.
#[test]
fn the_wizard_stays_put_finds_vms_and_says_why_start_waits() {
    use drconsole::gui::wizard::{FIND, Step, TITLE};
    let dir = crate::testkit::scratch();
    let mut h = app_in(dir.path());
    step_until(&mut h, "the workspace", Duration::from_secs(30), |a| {
        a.engine_ready()
    });
    h.get_by_label("Migrate").click();
    h.run_steps(2);
    h.get_by_label("Migrate a VM…").click();
    h.run_steps(4);
    assert_eq!(h.state().wizard.step(), Step::Vm);
    let at_first = wizard_rect(&h);
    assert!(start_disabled(&h), "no VM yet: Start is disabled");
    h.get_by_label_contains("Pick a VM, then a destination");

    // The search narrows the list by id, host or datastore, in any case.
    let window = h.get_by_label(TITLE);
    window.get_by_label(FIND).focus();
    window.get_by_label(FIND).type_text("DB");
    h.run_steps(3);
    let listed = |h: &Harness<'static, DrApp>, vm: &str| {
        h.get_by_label(TITLE)
            .query_all_by_role_and_label(Role::Button, &format!("💻 {vm}"))
            .count()
    };
    assert_eq!((listed(&h, "db-01"), listed(&h, "erp-db")), (1, 1));
    assert_eq!(listed(&h, "web-01"), 0);
    h.state_mut().wizard.search = "ds-bronze-1".into();
    h.run_steps(2);
    assert_eq!((listed(&h, "build-01"), listed(&h, "db-01")), (1, 0));
    h.state_mut().wizard.search = "no-such-vm".into();
    h.run_steps(2);
    h.get_by_label_contains("No VM matches \"no-such-vm\"");
    h.state_mut().wizard.search = "db-01".into();
    h.run_steps(2);
    assert_eq!(wizard_rect(&h), at_first, "the list's length moves nothing");

    h.get_by_label(TITLE)
        .get_by_role_and_label(Role::Button, "💻 db-01")
        .click();
    h.run_steps(3);
    assert_eq!(h.state().wizard.step(), Step::Destination);
    assert_eq!(
        wizard_rect(&h),
        at_first,
        "step 2 in the same place and size"
    );
    assert!(start_disabled(&h), "no destination yet: Start is disabled");
    h.get_by_label_contains("Pick a destination to review the move.");

    h.get_by_label(TITLE)
        .get_by_role_and_label(Role::Button, "🗀 ds-local")
        .click();
    h.run_steps(3);
    assert_eq!(h.state().wizard.step(), Step::Review);
    assert_eq!(
        wizard_rect(&h),
        at_first,
        "step 3 in the same place and size"
    );
    assert!(start_disabled(&h));
    h.get_by_label_contains("Tick \"Are you sure?\"");

    // Mirror's note is a plain note; split and redirect are warned about.
    let warned = |h: &Harness<'static, DrApp>, mode: CopyMode| {
        h.query_by_label(&format!("⚠ {}", mode.disaster_note()))
            .is_some()
    };
    assert!(!warned(&h, CopyMode::Mirror));
    h.get_by_label_contains(CopyMode::Mirror.disaster_note());
    h.get_by_role_and_label(Role::RadioButton, "split").click();
    h.run_steps(2);
    assert!(
        warned(&h, CopyMode::Split),
        "split leaves the source inconsistent"
    );
    h.get_by_role_and_label(Role::RadioButton, "redirect")
        .click();
    h.run_steps(2);
    assert!(warned(&h, CopyMode::Redirect));
    assert_eq!(wizard_rect(&h), at_first, "a longer note moves nothing");

    // Ticked, Start is enabled; Back goes to step 2 and clears the tick.
    h.get_by_label(TITLE).get_by_role(Role::CheckBox).click();
    h.run_steps(2);
    assert!(!start_disabled(&h));
    h.get_by_label("◀ Back").click();
    h.run_steps(2);
    assert_eq!(h.state().wizard.step(), Step::Destination);
    assert!(!h.state().wizard.confirmed);
    assert!(start_disabled(&h));
}

/// The VM details' "Where can it go?" lists each destination's free space, and a click on
/// a row shows what that move could lose below the table, without hovering.
#[test]
fn where_can_it_go_shows_free_space_and_the_picked_rows_explanation() {
    let dir = crate::testkit::scratch();
    let mut h = app_in(dir.path());
    step_until(&mut h, "free space", Duration::from_secs(30), |a| {
        a.engine_ready() && !a.live.free_mib.is_empty()
    });
    h.get_all_by_label("💻 web-01").next().unwrap().click();
    h.run_steps(2);
    h.get_by_label("Where can it go?");
    h.get_by_label("Free");
    let free = h.state().live.free_mib["ds-local"];
    assert!(
        h.query_all_by_label(&drconsole::gui::wizard::size(free))
            .count()
            >= 1
    );
    let explanation = h
        .state()
        .doc
        .destinations("web-01")
        .iter()
        .find(|i| i.to == "ds-local")
        .unwrap()
        .explanation
        .clone();
    assert!(
        h.query_by_label(&explanation).is_none(),
        "nothing picked yet"
    );
    h.get_by_label("🗀 ds-local").click();
    h.run_steps(2);
    h.get_by_label(&explanation);
    h.get_by_label("To 🗀 ds-local:");
    // Another row replaces it; a second click on the picked row hides it.
    // (The tree lists ds-gold-2 under its protection group too: the details' is rightmost.)
    let row = |h: &Harness<'static, DrApp>| {
        h.get_all_by_label("🗀 ds-gold-2")
            .max_by(|a, b| a.rect().left().total_cmp(&b.rect().left()))
            .unwrap()
            .click()
    };
    row(&h);
    h.run_steps(2);
    assert!(h.query_by_label(&explanation).is_none());
    h.get_by_label("To 🗀 ds-gold-2:");
    row(&h);
    h.run_steps(2);
    assert!(h.query_by_label_contains("To 🗀 ").is_none());
}
