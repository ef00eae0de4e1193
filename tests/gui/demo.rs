//! The demo player, driven through the console with egui_kittest: a sample scenario chosen
//! from the Demo menu plays step by step through the panels an operator uses, with
//! captions, and ends exactly as the headless `drconsole run` of the same scenario does; a
//! bad scenario file is reported and changes nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::testkit::{click, step_until, wait_ready};
use drconsole::engine::FailoverState;
use drconsole::gui::demo::{STEP, outcome_words};
use drconsole::gui::{DrApp, Kind, Level, MainTab, Status};
use drconsole::scenario::{Action, Scenario, StepOutcome};
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample_scenarios")
        .join(name)
}

/// The console on the built-in demo in `dir/console`, with demos going to `dir/demos`,
/// each beat of the choreography one frame long, and demos waiting for Step.
fn console(dir: &Path) -> Harness<'static, DrApp> {
    let mut h = crate::testkit::app_in(&dir.join("console"));
    wait_ready(&mut h);
    let app = h.state_mut();
    app.demo.workspaces = dir.join("demos");
    app.demo.dwell = Duration::ZERO;
    app.demo.autoplay = false;
    h
}

fn commands_logged(app: &DrApp) -> Vec<String> {
    app.log
        .entries
        .iter()
        .filter(|e| e.kind == Kind::Command)
        .map(|e| e.message.clone())
        .collect()
}

#[test]
fn a_sample_plays_through_the_panels_and_ends_as_the_headless_run() {
    let dir = crate::testkit::scratch();
    let path = sample("disaster_mid_copy.ron");
    let scenario = Scenario::load(&path).unwrap();
    let mut h = console(dir.path());

    // The Demo menu lists the samples by name.
    step_until(&mut h, "the samples", Duration::from_secs(10), |a| {
        a.demo.samples.is_some()
    });
    h.get_by_role_and_label(Role::Button, "Demo").click();
    h.run_steps(2);
    h.get_by_label("Planned failover loses no write");
    h.get_by_label(&scenario.name).click();
    h.run_steps(2);
    step_until(
        &mut h,
        "the demo's workspace",
        Duration::from_secs(60),
        |a| a.demo.player.as_ref().is_some_and(|p| p.ready()) && a.engine_ready(),
    );
    let root = dir
        .path()
        .join("demos/disaster-in-mid-copy-recovers-the-source");
    assert_eq!(h.state().live.status, Status::Open(root.clone()));
    assert_eq!(h.state().doc.topology.name, "Patent timelines");
    h.get_by_label_contains(&format!("🎬 {}", scenario.name));
    h.get_by_label("step 0 of 9");

    let total = scenario.steps.len();
    for (i, step) in scenario.steps.iter().enumerate() {
        click(&mut h, STEP);
        step_until(
            &mut h,
            &format!("step {}", i + 1),
            Duration::from_secs(60),
            |a| {
                a.demo
                    .player
                    .as_ref()
                    .is_some_and(|p| p.reports.len() == i + 1 && (p.ready() || p.finished()))
            },
        );
        let app = h.state();
        let p = app.demo.player.as_ref().unwrap();
        let report = &p.reports[i];
        let caption = step.caption.clone().unwrap();
        if i + 1 == total {
            // The demo is over: its caption goes (its result stays in the log, and the
            // verdicts in the player bar).
            assert!(h.query_by_label(&caption).is_none(), "{caption}");
            assert!(app.demo.player.as_ref().unwrap().caption.is_none());
            h.get_by_label("✔ 3 passed");
            h.get_by_label(&format!("step {total} of {total}"));
        } else {
            // The caption is on screen with the step's outcome.
            assert_eq!(h.query_all_by_label(&caption).count(), 1, "{caption}");
            // It sits in its own strip above the panels, covering none of them: above the
            // middle's tabs and the inventory's filter, whatever the step acts on below.
            let below = h.get_by_label(&caption).rect().bottom();
            for label in [
                "Details",
                "Failover",
                "Resilience",
                "Migrations",
                "Replication",
                "Filter",
            ] {
                for n in h.query_all_by_label(label) {
                    assert!(
                        n.rect().top() >= below,
                        "step {}: the caption (bottom {below}) is not above {label} at {:?}",
                        i + 1,
                        n.rect()
                    );
                }
            }
            h.get_by_label(&format!("step {} of {total}", i + 1));
            h.get_by_label(&format!(
                "{} — {}",
                outcome_words(report.outcome),
                report.detail
            ));
        }
        if let Action::Expect(_) = step.action {
            assert_eq!(report.outcome, StepOutcome::Pass, "{report:?}");
        } else {
            assert_eq!(report.outcome, StepOutcome::Ok, "{report:?}");
        }
        // The clock stands at the step's time exactly.
        let now = app.live.snapshot.as_ref().unwrap().now;
        assert_eq!(
            now,
            drconsole::engine::from_minutes(step.at),
            "step {}",
            i + 1
        );

        match i {
            // The wizard sent the migration (the console logs the commands the panels
            // send), and the right panel shows it.
            1 => {
                assert!(!app.wizard.open);
                assert!(
                    commands_logged(app)
                        .iter()
                        .any(|c| c.ends_with("Migrate vm1 to ds-2 (mirror)")),
                    "{:?}",
                    commands_logged(app)
                );
                assert!(app.live.tasks.iter().any(|t| t.vm == "vm1"));
                // The patent timelines copy at 0.25 MiB/s: the task says so (not "0").
                h.get_by_label_contains("0.25 MiB/s  ·  ETA");
            }
            // The failover panel scanned, showed the plan and ran it.
            5 => {
                assert_eq!(app.main_tab, MainTab::Failover);
                let scan = app.failover.scan.as_ref().expect("the panel scanned");
                assert!(scan.result.is_ok());
                assert!(
                    commands_logged(app)
                        .iter()
                        .any(|c| c.ends_with("unplanned failover of pg-a")),
                    "{:?}",
                    commands_logged(app)
                );
                let f = app
                    .live
                    .snapshot
                    .as_ref()
                    .unwrap()
                    .failover
                    .as_ref()
                    .unwrap();
                assert_eq!(f.state, FailoverState::Done);
            }
            _ => {}
        }
    }
    let p = h.state().demo.player.as_ref().unwrap();
    assert!(p.finished());
    assert_eq!(p.verdicts(), (3, 0));
    let gui_reports = p.reports.clone();
    // Every step's result is in the event log at its simulated time.
    let results: Vec<_> = h
        .state()
        .log
        .entries
        .iter()
        .filter(|e| e.kind == Kind::Result && e.message.starts_with("Demo step "))
        .collect();
    assert_eq!(results.len(), total);
    assert!(
        results
            .iter()
            .all(|e| e.level == Level::Info && e.sim.is_some())
    );
    assert!(h.state().log.entries.iter().any(|e| e.message
        == format!(
            "Demo \"{}\" finished: 3 expectation(s) passed",
            scenario.name
        )));

    // The headless run of the same scenario reports the same steps, word for word.
    let headless = drconsole::scenario::run_file(&path, &dir.path().join("headless")).unwrap();
    assert!(headless.passed);
    assert_eq!(gui_reports, headless.steps);

    // Restart starts over from a fresh workspace.
    click(&mut h, drconsole::gui::demo::RESTART);
    step_until(&mut h, "the restart", Duration::from_secs(60), |a| {
        a.demo
            .player
            .as_ref()
            .is_some_and(|p| p.ready() && p.reports.is_empty())
            && a.engine_ready()
    });
    assert_eq!(h.state().live.snapshot.as_ref().unwrap().now, 0);
    assert!(h.state().live.snapshot.as_ref().unwrap().failover.is_none());
    click(&mut h, drconsole::gui::demo::CLOSE);
    assert!(h.state().demo.player.is_none());
    assert!(
        h.query_by_label(scenario.steps[8].caption.as_deref().unwrap())
            .is_none()
    );
}

#[test]
fn playing_runs_the_steps_at_their_times_by_itself() {
    let dir = crate::testkit::scratch();
    let path = sample("planned_failover.ron");
    let mut h = console(dir.path());
    {
        let app = h.state_mut();
        app.demo.autoplay = true;
        app.demo.speed = 600.0;
        app.demo_open(path.clone());
    }
    step_until(
        &mut h,
        "the demo to finish",
        Duration::from_secs(120),
        |a| a.demo.player.as_ref().is_some_and(|p| p.finished()),
    );
    let p = h.state().demo.player.as_ref().unwrap();
    assert_eq!(p.verdicts(), (7, 0), "{:#?}", p.reports);
    // A planned failover asks first: the panel's confirmation sent it.
    assert!(
        commands_logged(h.state())
            .iter()
            .any(|c| c.ends_with("planned failover of pg-tier1")),
        "{:?}",
        commands_logged(h.state())
    );
    // The steps the headless run reports (recorded, and checked by the CLI tests).
    assert_eq!(
        serde_json::to_value(&p.reports).unwrap(),
        crate::testkit::golden_steps(&path)
    );
}

#[test]
fn a_bad_scenario_file_is_reported_and_changes_nothing() {
    let dir = crate::testkit::scratch();
    let mut h = console(dir.path());
    let topo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample_topologies/patent_timelines.ron")
        .display()
        .to_string();
    let out_of_order = dir.path().join("out_of_order.ron");
    std::fs::write(
        &out_of_order,
        format!(
            r#"Scenario(name: "Backwards", topology: "{topo}", seed: 1, steps: [
                Step(at: 2.0, action: LinkDown),
                Step(at: 1.0, action: LinkUp),
            ])"#
        ),
    )
    .unwrap();
    let no_topology = dir.path().join("no_topology.ron");
    std::fs::write(
        &no_topology,
        r#"Scenario(name: "Nowhere", topology: "missing.ron", seed: 1, steps: [])"#,
    )
    .unwrap();
    let cases = [
        (
            out_of_order,
            "step 2: steps run in time order; at 1 comes after at 2",
        ),
        (no_topology, "topology"),
    ];
    let before_topology = h.state().doc.topology.name.clone();
    let before_status = h.state().live.status.clone();
    for (file, rule) in cases {
        let errors = h
            .state()
            .log
            .entries
            .iter()
            .filter(|e| e.level == Level::Error)
            .count();
        h.state_mut().demo_open(file.clone());
        step_until(&mut h, "the load", Duration::from_secs(10), |a| {
            !a.demo.loading()
        });
        let app = h.state();
        let last = app
            .log
            .entries
            .iter()
            .filter(|e| e.level == Level::Error)
            .collect::<Vec<_>>();
        assert_eq!(last.len(), errors + 1);
        let msg = &last.last().unwrap().message;
        assert!(msg.contains(&file.display().to_string()), "{msg}");
        assert!(msg.contains(rule), "{msg}");
        assert!(
            app.log.visible_toasts().iter().any(|t| t == msg),
            "an error toast"
        );
        assert!(
            h.query_all_by_label(msg).count() >= 1,
            "shown on screen (the toast, the log)"
        );
        assert!(app.demo.player.is_none());
        assert_eq!(app.doc.topology.name, before_topology);
        assert_eq!(app.live.status, before_status);
        assert!(app.engine_ready());
    }
    assert!(!dir.path().join("demos").exists(), "no demo workspace made");
}

#[test]
fn every_sample_plays_to_the_headless_result_first_half() {
    plays_to_the_headless_result(|i| i % 2 == 0);
}

/// The other half of the samples (two tests, so that both cores play them).
#[test]
fn every_sample_plays_to_the_headless_result_second_half() {
    plays_to_the_headless_result(|i| i % 2 == 1);
}

/// Plays the samples whose index (in the list the console shows) `pick` takes, one after
/// the other in one console, each to its end, and compares with the recorded headless run.
fn plays_to_the_headless_result(pick: impl Fn(usize) -> bool) {
    let dir = crate::testkit::scratch();
    let mut h = console(dir.path());
    let samples = drconsole::gui::demo::list_samples(&sample(""));
    assert!(samples.len() >= 6);
    for s in samples
        .iter()
        .enumerate()
        .filter(|(i, _)| pick(*i))
        .map(|(_, s)| s)
    {
        h.state_mut().demo_open(s.path.clone());
        step_until(&mut h, &s.name, Duration::from_secs(60), |a| {
            a.demo
                .player
                .as_ref()
                .is_some_and(|p| p.script.path == s.path && p.ready())
                && a.engine_ready()
        });
        while !h.state().demo.player.as_ref().unwrap().finished() {
            let done = h.state().demo.player.as_ref().unwrap().reports.len();
            h.state_mut().demo_step();
            step_until(&mut h, &s.name, Duration::from_secs(60), |a| {
                a.demo
                    .player
                    .as_ref()
                    .is_some_and(|p| p.reports.len() > done && (p.ready() || p.finished()))
            });
        }
        // The headless run's steps (recorded, and checked by the CLI tests).
        let p = h.state().demo.player.as_ref().unwrap();
        assert_eq!(
            serde_json::to_value(&p.reports).unwrap(),
            crate::testkit::golden_steps(&s.path),
            "{}",
            s.name
        );
        assert_eq!(p.verdicts().1, 0, "{}", s.name);
    }
}

#[test]
fn a_presenters_keys_step_through_a_whole_demo() {
    let dir = crate::testkit::scratch();
    let path = sample("live_migration.ron");
    let total = Scenario::load(&path).unwrap().steps.len();
    let mut h = console(dir.path());
    h.state_mut().demo_open_paused(path);
    step_until(
        &mut h,
        "the demo to wait at its start",
        Duration::from_secs(60),
        |a| a.demo.player.as_ref().is_some_and(|p| p.ready()) && a.engine_ready(),
    );
    let done = |a: &DrApp| a.demo.player.as_ref().map_or(0, |p| p.reports.len());
    assert_eq!(done(h.state()), 0, "--demo waits for the presenter");
    // Page Down runs one step at a time, whatever the step left on screen (a wizard whose
    // Start stayed disabled, a refusal's toast).
    for n in 1..=total {
        h.key_press(egui::Key::PageDown);
        step_until(
            &mut h,
            &format!("step {n} by Page Down"),
            Duration::from_secs(30),
            |a| {
                done(a) == n
                    && a.demo
                        .player
                        .as_ref()
                        .is_some_and(|p| p.ready() || p.finished())
            },
        );
    }
    assert!(h.state().demo.player.as_ref().unwrap().finished());
}

/// Close demo goes back to what the console showed before the demo: its topology, its
/// workspace and its clock speed.
#[test]
fn close_demo_returns_to_the_topology_workspace_and_speed_from_before() {
    let dir = crate::testkit::scratch();
    let mut h = console(dir.path());
    click(&mut h, "10×");
    step_until(&mut h, "10×", Duration::from_secs(10), |a| {
        a.live.clock.speed == 10.0
    });
    let before = h.state().live.status.clone();
    assert_eq!(before, Status::Open(dir.path().join("console")));
    h.state_mut()
        .demo_open_paused(sample("disaster_mid_copy.ron"));
    step_until(
        &mut h,
        "the demo to wait at its start",
        Duration::from_secs(60),
        |a| a.demo.player.as_ref().is_some_and(|p| p.ready()) && a.engine_ready(),
    );
    assert_ne!(h.state().live.status, before);
    click(&mut h, STEP);
    step_until(&mut h, "step 1", Duration::from_secs(60), |a| {
        a.demo
            .player
            .as_ref()
            .is_some_and(|p| p.reports.len() == 1 && p.ready())
    });
    assert_eq!(
        h.state().live.clock.speed,
        drconsole::gui::demo::DEFAULT_SPEED
    );
    assert_eq!(h.state().title(), "drconsole — Patent timelines");

    click(&mut h, drconsole::gui::demo::CLOSE);
    assert!(h.state().demo.player.is_none());
    assert_eq!(h.state().title(), "drconsole — Two-site demo");
    step_until(
        &mut h,
        "the console's own workspace at its own speed",
        Duration::from_secs(30),
        |a| a.engine_ready() && a.live.status == before && a.live.clock.speed == 10.0,
    );
    h.run_steps(5);
    assert_eq!(h.state().live.clock.speed, 10.0);
    assert_eq!(h.state().doc.topology.name, "Two-site demo");
    h.get_by_label_contains("pa — Palo Alto (protected)");
}
