use std::time::Instant;

use super::*;
use crate::engine::{Engine, from_minutes};
use crate::scenario;

/// The next report that `pick` takes, skipping the others (fails after 60 s).
fn wait_for<T>(w: &Worker, what: &str, mut pick: impl FnMut(Report) -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        match w.rx.recv_timeout(Duration::from_millis(50)) {
            Ok(r) => {
                if let Report::OpenFailed { error, .. } = &r {
                    panic!("the workspace did not open: {error}");
                }
                if let Some(t) = pick(r) {
                    return t;
                }
            }
            Err(_) => continue,
        }
    }
}

/// The clock as the next update reports it: (simulated time, paused).
fn clock_now(w: &Worker) -> (SimTime, bool) {
    // A speed change is answered by an update at once.
    w.send(Request::SetSpeed(600.0));
    wait_for(w, "an update", |r| match r {
        Report::Update { update, .. } => Some((update.snapshot.now, update.clock.paused)),
        _ => None,
    })
}

fn open(w: &Worker, root: PathBuf) {
    w.send(Request::Open {
        epoch: 1,
        root,
        topology: Box::new(Topology::builtin_default()),
        options: EngineOptions {
            seed: 5,
            ..EngineOptions::default()
        },
        fresh: true,
    });
    wait_for(w, "the workspace to open", |r| {
        matches!(r, Report::Opened { .. }).then_some(())
    });
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// The files of a workspace as a crash leaves them (copied while it is open, nothing
/// closed) reopen at the time the console last showed, not at the state saved last.
#[test]
fn after_a_crash_the_clock_resumes_where_the_console_showed_it() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let w = Worker::spawn(egui::Context::default());
    open(&w, ws.clone());
    // Saved with the state at zero; nothing saves it while the clock runs.
    w.send(Request::Engine(Command::StartWorkloads));
    w.send(Request::RunUntil {
        at: from_minutes(2.0),
        rush: true,
    });
    wait_for(&w, "the stop", |r| {
        matches!(r, Report::Reached { .. }).then_some(())
    });
    let shown = clock_now(&w).0;
    assert!(shown >= from_minutes(2.0));
    let crashed = dir.path().join("crashed");
    copy_dir(&ws, &crashed);
    let e = Engine::open(&crashed).unwrap();
    assert!(
        e.now() >= shown,
        "resumed at {} after showing {}",
        crate::engine::format_time(e.now()),
        crate::engine::format_time(shown)
    );
}

#[test]
fn the_clock_stops_exactly_at_the_instant_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let w = Worker::spawn(egui::Context::default());
    open(&w, dir.path().join("ws"));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(clock_now(&w), (0, true), "a fresh open waits at zero");
    w.send(Request::Engine(Command::StartWorkloads));
    w.send(Request::SetSpeed(600.0));
    w.send(Request::Resume);

    // At the clock's speed: 6 simulated seconds and a few microseconds, an instant no
    // slice would land on by itself.
    let at = from_minutes(0.1) + 1_234;
    w.send(Request::RunUntil { at, rush: false });
    let reached = wait_for(&w, "the stop", |r| match r {
        Report::Reached { epoch: 1, at } => Some(at),
        _ => None,
    });
    assert_eq!(reached, at);
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(clock_now(&w), (at, true), "paused there, and stays there");

    // Rushing runs the clock there even while it is paused.
    let at2 = from_minutes(0.75) + 7;
    w.send(Request::RunUntil {
        at: at2,
        rush: true,
    });
    let reached = wait_for(&w, "the second stop", |r| match r {
        Report::Reached { epoch: 1, at } => Some(at),
        _ => None,
    });
    assert_eq!(reached, at2);
    assert_eq!(clock_now(&w), (at2, true));

    // Asking for the instant the clock is at answers at once.
    w.send(Request::RunUntil {
        at: at2,
        rush: false,
    });
    let reached = wait_for(&w, "the same stop", |r| match r {
        Report::Reached { epoch: 1, at } => Some(at),
        _ => None,
    });
    assert_eq!(reached, at2);

    // A step runs at the stop and is reported like the headless runner's.
    let step = Step {
        at: crate::engine::to_minutes(at2),
        action: scenario::Action::Expect(scenario::Expectation::Located {
            vm: "db-01".into(),
            datastore: "ds-gold-3".into(),
        }),
        caption: None,
    };
    w.send(Request::RunStep {
        epoch: 1,
        number: 4,
        step,
    });
    let report = wait_for(&w, "the step", |r| match r {
        Report::StepDone { result, .. } => Some(result),
        _ => None,
    })
    .unwrap();
    assert_eq!(report.step, 4);
    assert_eq!(report.outcome, scenario::StepOutcome::Pass, "{report:?}");
    assert_eq!(clock_now(&w).0, at2);
}

#[test]
fn a_fresh_open_empties_a_workspace_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let w = Worker::spawn(egui::Context::default());
    open(&w, ws.clone());
    w.send(Request::RunUntil {
        at: from_minutes(0.2),
        rush: true,
    });
    wait_for(&w, "the stop", |r| {
        matches!(r, Report::Reached { .. }).then_some(())
    });
    // Opened again fresh: created anew, the clock back at zero.
    w.send(Request::Open {
        epoch: 2,
        root: ws.clone(),
        topology: Box::new(Topology::builtin_default()),
        options: EngineOptions::default(),
        fresh: true,
    });
    let created = wait_for(&w, "the second open", |r| match r {
        Report::Opened {
            epoch: 2, created, ..
        } => Some(created),
        _ => None,
    });
    assert!(created, "the old workspace was deleted first");
    assert_eq!(clock_now(&w).0, 0);

    // A directory that holds something else is not emptied.
    let other = dir.path().join("notes");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("keep.txt"), b"mine").unwrap();
    w.send(Request::Open {
        epoch: 3,
        root: other.clone(),
        topology: Box::new(Topology::builtin_default()),
        options: EngineOptions::default(),
        fresh: true,
    });
    let start = Instant::now();
    let error = loop {
        assert!(start.elapsed() < Duration::from_secs(60));
        if let Ok(Report::OpenFailed { error, .. }) = w.rx.recv_timeout(Duration::from_millis(50)) {
            break error;
        }
    };
    assert!(error.contains("not a drconsole workspace"), "{error}");
    assert_eq!(std::fs::read(other.join("keep.txt")).unwrap(), b"mine");
}

/// A report asked for with no workspace open is answered with an error naming the file,
/// and nothing is written.
#[test]
fn a_report_without_a_workspace_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.html");
    let w = Worker::spawn(egui::Context::default());
    w.send(Request::ExportReport { path: path.clone() });
    let (to, result) = wait_for(&w, "the report's answer", |r| match r {
        Report::ReportExported { path, result } => Some((path, result)),
        _ => None,
    });
    assert_eq!(to, path);
    let e = result.unwrap_err();
    assert!(
        e.contains(&path.display().to_string()) && e.contains("no workspace is open"),
        "{e}"
    );
    assert!(!path.exists());
}
