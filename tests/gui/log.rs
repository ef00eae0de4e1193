//! The event log (kinds, filter, JSON-lines export), the status bar and what the console
//! remembers between runs, driven headless with egui_kittest.

use std::time::Duration;

use crate::testkit::{app_in, browse, logged, sample, step_until, wait_for_io, wait_ready};
use drconsole::gui::{DrApp, ExportedEntry, Kind, Level, Persisted, Startup, ThemeChoice};
use drconsole::topology::TopologySource;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn messages_of(app: &mut DrApp) -> Vec<String> {
    app.log.shown().iter().map(|e| e.message.clone()).collect()
}

#[test]
fn commands_and_errors_are_logged_by_kind_and_the_filter_narrows_the_list() {
    let dir = crate::testkit::scratch();
    let mut h = app_in(dir.path());
    wait_ready(&mut h);

    // The status bar: simulated time, speed, RPO alarms, migrations, the workspace.
    h.get_by_label_contains("⏱ sim ");
    h.get_by_label("RPO alarms: 0");
    h.get_by_label("Migrations running: 0");
    h.get_by_label("1× asked");

    h.get_by_label("60×").click();
    h.get_by_label("▶ Start workloads").click();
    step_until(
        &mut h,
        "the guests to start",
        Duration::from_secs(10),
        |a| a.live.snapshot.as_ref().is_some_and(|s| s.workloads_on) && a.live.clock.speed == 60.0,
    );
    h.get_by_label("60× asked");
    // Something the operator asks that fails: a file that is not there.
    h.state_mut()
        .open_path(dir.path().join("no-such-topology.ron"));
    step_until(&mut h, "the open to fail", Duration::from_secs(10), |a| {
        !a.io_busy()
    });

    let app = h.state();
    let find = |text: &str| {
        app.log
            .entries
            .iter()
            .find(|e| e.message.contains(text))
            .unwrap_or_else(|| panic!("no entry with {text:?}: {:#?}", app.log.entries))
    };
    let speed = find("Operator: Run the simulated clock at 60×");
    assert_eq!((speed.kind, speed.level), (Kind::Command, Level::Info));
    assert!(speed.sim.is_some(), "a command carries its simulated time");
    let start = find("Operator: Start workloads");
    assert_eq!(start.kind, Kind::Command);
    let started = find("Guests started");
    assert_eq!(started.kind, Kind::Result, "what the engine did");
    assert!(started.sim.is_some());
    let failed = find("no-such-topology.ron");
    assert_eq!((failed.kind, failed.level), (Kind::Error, Level::Error));
    assert_eq!(failed.sim, None);
    let opened = find("Opened \"Two-site demo\"");
    assert_eq!(opened.kind, Kind::Info);
    assert!(
        app.log
            .visible_toasts()
            .iter()
            .any(|t| t.contains("no-such-topology.ron")),
        "the error is a toast too"
    );

    // The text filter narrows the list, in the view too.
    let total = h.state().log.entries.len();
    h.get_by_label("Filter the log").focus();
    h.get_by_label("Filter the log").type_text("WORKLOADS");
    h.run_steps(3);
    let shown = messages_of(h.state_mut());
    assert!(!shown.is_empty() && shown.len() < total, "{shown:?}");
    assert!(
        shown.iter().all(|m| m.to_lowercase().contains("workloads")),
        "{shown:?}"
    );
    assert!(h.query_by_label_contains("Guests started").is_none());
    h.get_by_label_contains("Start workloads");

    // Levels: only the errors; then kinds: errors hidden, nothing left.
    h.get_by_label("Show all").click();
    h.run_steps(2);
    assert_eq!(h.state_mut().log.shown().len(), h.state().log.entries.len());
    h.get_by_label("errors only").click();
    h.run_steps(2);
    let app = h.state_mut();
    let errors = app.log.shown().len();
    assert!(errors >= 1);
    assert!(app.log.shown().iter().all(|e| e.level == Level::Error));
    h.get_by_role_and_label(Role::Button, "error").click();
    h.run_steps(2);
    assert!(
        h.state_mut()
            .log
            .shown()
            .iter()
            .all(|e| e.kind != Kind::Error),
    );
    h.get_by_label_contains("No entry matches the filter");
    assert_eq!(h.state().log.filter.min_level, Level::Error);
    assert_eq!(h.state().log.filter.hidden_kinds, [Kind::Error]);
}

#[test]
fn the_log_exports_as_json_lines() {
    let dir = crate::testkit::scratch();
    let mut h = browse(Startup::from_path(None));
    h.run_steps(2);
    h.state_mut().log.warning("Something to look at");
    h.state_mut().log.error("Something that failed");
    let n = h.state().log.entries.len();
    let path = dir.path().join("log.jsonl");
    h.state_mut().export_log_to(path.clone());
    wait_for_io(&mut h);

    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), n);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        for key in ["time", "sim_s", "level", "kind", "message"] {
            assert!(keys.contains(&key), "{key} missing from {line}");
        }
    }
    let parsed: Vec<ExportedEntry> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed[0].kind, Kind::Info);
    assert!(parsed[0].message.starts_with("Opened \"Two-site demo\""));
    assert_eq!(parsed[0].sim_s, None);
    assert!(parsed[0].time.ends_with('Z') && parsed[0].time.contains('T'));
    let last = &parsed[n - 1];
    assert_eq!(
        (last.level, last.kind, last.message.as_str()),
        (Level::Error, Kind::Error, "Something that failed")
    );

    let app = h.state();
    let done = app.log.entries.last().unwrap();
    assert_eq!(
        done.message,
        format!("Exported {n} entries to {}", path.display())
    );
    assert_eq!(done.kind, Kind::Result);

    // Where it cannot be written: an error naming the file, as a toast and in the log.
    let bad = dir.path().join("no-such-dir").join("log.jsonl");
    h.state_mut().export_log_to(bad.clone());
    wait_for_io(&mut h);
    let app = h.state();
    let e = app.log.entries.last().unwrap();
    assert_eq!(e.level, Level::Error);
    assert!(
        e.message.contains(&bad.display().to_string()),
        "{}",
        e.message
    );
    assert!(!bad.exists());
    assert!(
        app.log
            .visible_toasts()
            .iter()
            .any(|t| t.contains("Exporting the event log"))
    );
}

#[test]
fn settings_and_the_last_topology_come_back_in_a_new_app() {
    let dir = crate::testkit::scratch();
    let first = dir.path().join("first.ron");
    let second = dir.path().join("second.ron");
    std::fs::copy(sample("patent_hazard.ron"), &first).unwrap();
    std::fs::copy(sample("impact_tour.ron"), &second).unwrap();

    let mut h = browse(Startup::from_path(Some(&first)));
    h.run_steps(2);
    h.ctx.set_theme(egui::ThemePreference::Dark);
    h.state_mut().open_path(second.clone());
    wait_for_io(&mut h);
    h.get_by_label("Filter the log").focus();
    h.get_by_label("Filter the log").type_text("opened");
    h.get_by_label("warnings and errors").click();
    h.get_by_role_and_label(Role::Button, "Failover").click();
    h.run_steps(2);

    let saved = h.state().persisted();
    assert_eq!(saved.theme, ThemeChoice::Dark);
    assert_eq!(saved.last_topology.as_deref(), Some(second.as_path()));
    assert_eq!(saved.recent, [second.clone(), first.clone()]);
    assert_eq!(saved.log_filter.text, "opened");
    assert_eq!(saved.log_filter.min_level, Level::Warning);
    assert_eq!(saved.main_tab, drconsole::gui::MainTab::Failover);
    drop(h);

    // Through eframe's storage format (RON) and into a new app started with no arguments.
    let text = ron::to_string(&saved).unwrap();
    let back: Persisted = ron::from_str(&text).unwrap();
    assert_eq!(back, saved);
    let startup = Startup::with_persisted(None, None, Some(&back));
    assert_eq!(startup.error, None);
    let mut h = browse(startup);
    h.state_mut().restore(&back);
    wait_for_io(&mut h);

    let app = h.state();
    assert_eq!(app.doc.source, TopologySource::File(second.clone()));
    assert_eq!(app.persisted(), saved, "the same settings");
    assert_eq!(
        h.ctx.options(|o| o.theme_preference),
        egui::ThemePreference::Dark
    );
    assert!(!app.recent_files().is_missing(&first));

    // A recent file that is gone is greyed; File → Open Recent still lists it.
    std::fs::remove_file(&first).unwrap();
    h.state_mut().open_path(first.clone());
    wait_for_io(&mut h);
    assert!(h.state().recent_files().is_missing(&first));
    assert_eq!(
        h.state().doc.source,
        TopologySource::File(second.clone()),
        "the open topology stays"
    );
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label("Open Recent").click();
    h.run_steps(3);
    h.get_by_label(&first.display().to_string());
    h.get_by_label(&second.display().to_string());
}

#[test]
fn a_last_topology_that_is_gone_falls_back_to_the_demo_with_an_error() {
    let dir = crate::testkit::scratch();
    let gone = dir.path().join("gone.ron");
    let saved = Persisted {
        last_topology: Some(gone.clone()),
        recent: vec![gone.clone()],
        ..Persisted::default()
    };
    let startup = Startup::with_persisted(None, None, Some(&saved));
    let mut h = browse(startup);
    h.state_mut().restore(&saved);
    wait_for_io(&mut h);

    let app = h.state();
    assert_eq!(app.doc.source, TopologySource::BuiltIn);
    assert_eq!(app.doc.topology.name, "Two-site demo");
    let e = app
        .log
        .entries
        .iter()
        .find(|e| e.level == Level::Error)
        .expect("an error entry");
    assert_eq!(e.kind, Kind::Error);
    assert!(e.message.contains("gone.ron"), "{}", e.message);
    assert!(e.message.contains("built-in demo"), "{}", e.message);
    assert!(
        app.log
            .visible_toasts()
            .iter()
            .any(|t| t.contains("gone.ron"))
    );
    assert!(
        app.recent_files().is_missing(&gone),
        "greyed in Open Recent"
    );
    // The demo is what reopens next time.
    assert_eq!(app.persisted().last_topology, None);
}

fn sim_now(app: &DrApp) -> u64 {
    app.live.snapshot.as_ref().map_or(0, |s| s.now)
}

/// A console on a fresh workspace in `dir` whose guests have run for `secs` simulated
/// seconds (at 60×).
fn running_for(dir: &std::path::Path, secs: u64) -> Harness<'static, DrApp> {
    let mut h = app_in(dir);
    wait_ready(&mut h);
    h.get_by_label("60×").click();
    h.get_by_label("▶ Start workloads").click();
    step_until(&mut h, "time to pass", Duration::from_secs(30), |a| {
        sim_now(a) >= secs * drconsole::engine::SECOND
    });
    h
}

#[test]
fn the_clock_and_the_log_survive_closing_and_reopening_the_workspace() {
    let dir = crate::testkit::scratch();
    let h = running_for(dir.path(), 60);
    let before = sim_now(h.state());
    let earlier = logged(h.state());
    assert!(earlier.iter().any(|m| m == "Operator: Start workloads"));
    drop(h); // closes the workspace

    let mut h = app_in(dir.path());
    wait_ready(&mut h);
    let app = h.state();
    assert!(
        sim_now(app) >= before,
        "the clock went back: {} after {before}",
        sim_now(app)
    );
    // What was logged while the workspace was open comes back, with its simulated time,
    // before a line that marks the reopen.
    let find = |text: &str| {
        app.log
            .entries
            .iter()
            .position(|e| e.message == text)
            .unwrap_or_else(|| panic!("no entry {text:?}: {:#?}", app.log.entries))
    };
    let start = find("Operator: Start workloads");
    assert_eq!(app.log.entries[start].kind, Kind::Command);
    assert!(app.log.entries[start].sim.is_some());
    let started = app
        .log
        .entries
        .iter()
        .position(|e| e.message.starts_with("Guests started"))
        .expect("the engine's line is back");
    let reopened = app
        .log
        .entries
        .iter()
        .position(|e| e.message.contains("again: the clock resumes at"))
        .expect("the reopen is marked");
    assert!(start < reopened && started < reopened);
    assert!(
        app.log.entries[reopened]
            .message
            .contains(&dir.path().display().to_string())
    );
    // Recorded once: a second reopen does not double the history.
    let count = app
        .log
        .entries
        .iter()
        .filter(|e| e.message == "Operator: Start workloads")
        .count();
    assert_eq!(count, 1);
    drop(h);
    let mut h = app_in(dir.path());
    wait_ready(&mut h);
    let count = h
        .state()
        .log
        .entries
        .iter()
        .filter(|e| e.message == "Operator: Start workloads")
        .count();
    assert_eq!(count, 1);
}

#[test]
fn reopening_after_a_disaster_offers_the_reset_and_the_file_menu_resets() {
    use drconsole::gui::replication::disaster_confirm;
    use drconsole::gui::reset;
    let dir = crate::testkit::scratch();
    let mut h = running_for(dir.path(), 30);
    h.state_mut().disaster = Some("pa".into());
    h.run_steps(6);
    h.get_by_label(&disaster_confirm("pa")).click();
    step_until(&mut h, "site pa to go down", Duration::from_secs(10), |a| {
        a.live
            .snapshot
            .as_ref()
            .is_some_and(|s| s.sites_down == ["pa"])
    });
    drop(h);

    // Reopened as the demo starts: the lost site is not carried on without a word.
    let mut h = app_in(dir.path());
    wait_ready(&mut h);
    h.run_steps(6);
    assert!(
        matches!(h.state().restart.ask, Some(reset::Ask::Offer { .. })),
        "the reset is offered"
    );
    h.get_by_label_contains("This workspace has site pa lost since 00:");
    // Continue it: the workspace runs on as it was, the site still lost.
    h.get_by_label(reset::CONTINUE).click();
    h.run_steps(2);
    assert!(h.state().restart.ask.is_none());
    assert_eq!(h.state().live.snapshot.as_ref().unwrap().sites_down, ["pa"]);
    drop(h);

    let mut h = app_in(dir.path());
    wait_ready(&mut h);
    h.run_steps(6);
    h.get_by_label(reset::CONFIRM).click();
    step_until(&mut h, "the reset", Duration::from_secs(30), |a| {
        a.engine_ready()
            && a.live
                .snapshot
                .as_ref()
                .is_some_and(|s| s.sites_down.is_empty())
    });
    assert!(h.state().restart.ask.is_none());
    assert!(
        h.state()
            .log
            .entries
            .iter()
            .any(|e| e.message.starts_with("Reset workspace")),
    );

    // File ▶ Reset workspace…: a confirmation that names what goes, then afresh.
    step_until(&mut h, "time to pass", Duration::from_secs(30), |a| {
        sim_now(a) >= drconsole::engine::SECOND
    });
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label(reset::MENU).click();
    h.run_steps(6);
    h.get_by_label(reset::TITLE);
    h.get_by_label_contains("the event log's history and the simulated clock");
    h.get_by_label_contains(&format!(
        "Everything in {} is discarded",
        dir.path().display()
    ));
    h.get_by_label("Cancel").click();
    h.run_steps(2);
    assert!(h.state().restart.ask.is_none());
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label(reset::MENU).click();
    h.run_steps(6);
    let n = h.state().log.entries.len();
    h.get_by_label(reset::CONFIRM).click();
    step_until(&mut h, "the second reset", Duration::from_secs(30), |a| {
        a.engine_ready()
            && a.log.entries[n..]
                .iter()
                .any(|e| e.message.starts_with("Reset workspace"))
    });
    assert!(sim_now(h.state()) < 30 * drconsole::engine::SECOND);
    assert!(dir.path().join("notes.txt").exists(), "not the workspace's");
    assert!(dir.path().join("topology.ron").exists());
}
