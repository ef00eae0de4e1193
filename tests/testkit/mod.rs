//! What the test binaries share: the built binary (`process`), workspaces to start from
//! (`workspace`), a scratch directory; for the GUI tests, starting the console as the
//! command line would, and stepping it while the worker thread runs.
// Each test crate uses its own subset.
#![allow(dead_code)]

pub mod process;
pub mod workspace;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use drconsole::cli::Cli;
use drconsole::gui::{DrApp, Startup};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// A file of `sample_topologies/`.
pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample_topologies")
        .join(name)
}

/// Where the recorded `run --json` report of a sample scenario is kept:
/// `tests/golden/<name>.run.json` (the CLI test checks the binary still writes it).
pub fn golden_report_path(scenario: &Path) -> PathBuf {
    let name = scenario.file_stem().unwrap().to_string_lossy();
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.run.json"))
}

/// The steps of a sample scenario's recorded headless report, as JSON: what the player
/// of the console must report too.
pub fn golden_steps(scenario: &Path) -> serde_json::Value {
    let path = golden_report_path(scenario);
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let report: serde_json::Value = serde_json::from_slice(&text).unwrap();
    report["steps"].clone()
}

/// A scratch directory for one test (a workspace, files to read): on tmpfs when there is
/// one (the engine fsyncs its state files; on a disk that, not the test, would set the
/// pace), else the system's temp.
pub fn scratch() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

/// The console without a workspace: browsing only, nothing runs.
pub fn browse(startup: Startup) -> Harness<'static, DrApp> {
    let startup = startup.browse_only();
    Harness::builder()
        .with_size([1280.0, 800.0])
        .build_eframe(|cc| DrApp::new(cc.egui_ctx.clone(), startup))
}

/// The console as `drconsole --workspace DIR [extra args]` starts it.
pub fn app_with(dir: &Path, extra: &[&str]) -> Harness<'static, DrApp> {
    app_sized(dir, extra, [1280.0, 800.0])
}

/// [`app_with`] in a window of this size.
pub fn app_sized(dir: &Path, extra: &[&str], size: [f32; 2]) -> Harness<'static, DrApp> {
    let mut args = vec!["drconsole", "--workspace", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let cli = Cli::try_parse_from(args).unwrap();
    let startup = Startup::from_path(cli.topology.as_deref()).with_workspace(cli.workspace);
    Harness::builder()
        .with_size(size)
        .build_eframe(|cc| DrApp::new(cc.egui_ctx.clone(), startup))
}

/// Which region of the window a control belongs in.
#[derive(Debug, Clone, Copy)]
pub enum Region {
    Central,
    Side,
    Log,
}

fn region_rect(h: &Harness<'static, DrApp>, region: Region) -> egui::Rect {
    let r = h.state().regions;
    match region {
        Region::Central => r.central,
        Region::Side => r.side.expect("the side panel is open"),
        Region::Log => r.log.expect("the event log is open"),
    }
}

/// Asserts the control labelled `label` (the first of that name) lies inside its region
/// of the window as drawn, across without scrolling (nothing cut off at the panel's edge),
/// and down once scrolled to (a long view scrolls).
pub fn assert_inside(h: &mut Harness<'static, DrApp>, label: &str, region: Region) {
    let across = h
        .query_all_by_label(label)
        .next()
        .unwrap_or_else(|| panic!("no control {label:?}"))
        .rect();
    let a = region_rect(h, region);
    assert!(
        across.left() >= a.left() - 0.5 && across.right() <= a.right() + 0.5,
        "{label:?} at {across:?} is cut off across: {region:?} is {a:?} in a {:?} window",
        h.state().regions.window.size()
    );
    assert_reachable(h, label, region);
}

/// Asserts the control labelled `label` comes inside its region once scrolled to (a wide
/// table scrolls sideways).
pub fn assert_reachable(h: &mut Harness<'static, DrApp>, label: &str, region: Region) {
    h.query_all_by_label(label)
        .next()
        .unwrap_or_else(|| panic!("no control {label:?}"))
        .scroll_to_me();
    h.run_steps(3);
    let rect = h.query_all_by_label(label).next().unwrap().rect();
    let a = region_rect(h, region);
    let window = h.state().regions.window;
    assert!(
        a.expand(0.5).contains_rect(rect) && window.contains_rect(rect),
        "{label:?} at {rect:?} is outside the {region:?} {a:?} in a {:?} window",
        window.size()
    );
}

/// The console as `drconsole --workspace DIR` starts it: the built-in demo topology.
pub fn app_in(dir: &Path) -> Harness<'static, DrApp> {
    app_with(dir, &[])
}

/// Steps the app, sleeping a little between frames, until `done` holds (fails after `limit`).
pub fn step_until(
    h: &mut Harness<'static, DrApp>,
    what: &str,
    limit: Duration,
    done: impl Fn(&DrApp) -> bool,
) {
    let start = Instant::now();
    // A frame of the whole console costs a debug build milliseconds of a core that the
    // engine's worker thread (and the other tests) need: between frames the test sleeps at
    // least as long as the last frame took, so waiting never takes more than half a core.
    let mut frame = Duration::from_millis(5);
    while !done(h.state()) {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(frame.max(Duration::from_millis(5)));
        let t = Instant::now();
        h.step();
        frame = t.elapsed();
    }
    h.run_steps(2);
}

/// Waits for the workspace to open and its engine to report.
pub fn wait_ready(h: &mut Harness<'static, DrApp>) {
    step_until(h, "the workspace to open", Duration::from_secs(30), |a| {
        a.engine_ready()
    });
}

/// Every message of the app's event log, oldest first (whatever its filter shows).
pub fn logged(app: &DrApp) -> Vec<String> {
    app.log.entries.iter().map(|e| e.message.clone()).collect()
}

pub fn click(h: &mut Harness<'static, DrApp>, label: &str) {
    h.get_by_label(label).click();
    h.run_steps(2);
}

/// Clicks the widget labelled `label` by its id (an accessibility action), then lets the
/// app take it in: for a button in a region whose layout moves while time runs, where a
/// pointer click at its last position could miss.
pub fn press(h: &mut Harness<'static, DrApp>, label: &str) {
    h.get_by_label(label).click_accesskit();
    h.run_steps(2);
}

/// Clicks what opens a modal dialog or a window, then lets it settle (its first frames
/// lay it out).
pub fn open_modal(h: &mut Harness<'static, DrApp>, label: &str) {
    h.get_by_label(label).click();
    h.run_steps(8);
}

/// Steps the app until its background I/O (opening, saving, exporting) has reported.
pub fn wait_for_io(h: &mut Harness<'static, DrApp>) {
    // A click is taken in the next frame, which starts the job: without that frame the
    // wait could end before the job began.
    h.run_steps(1);
    step_until(h, "background I/O", Duration::from_secs(10), |a| {
        !a.io_busy()
    });
    h.run_steps(1);
}

/// Waits for the failover panel's scan (after its Scan button was clicked) and returns the
/// plan it shows; fails if the scan found an error.
pub fn scanned_plan(h: &mut Harness<'static, DrApp>) -> drconsole::engine::FailoverPlan {
    step_until(h, "the scan", Duration::from_secs(10), |a| {
        a.failover.scan.is_some()
    });
    let scan = h.state().failover.scan.as_ref().expect("scanned");
    scan.result.clone().expect("the scan succeeded")
}

/// Declares a disaster at `site` from its button and confirmation, and waits until the
/// engine reports the site down (and no other).
pub fn declare_disaster(h: &mut Harness<'static, DrApp>, site: &str, limit: Duration) {
    use drconsole::gui::replication::{disaster_button, disaster_confirm};
    open_modal(h, &disaster_button(site));
    click(h, &disaster_confirm(site));
    step_until(h, &format!("site {site} to go down"), limit, |a| {
        a.live
            .snapshot
            .as_ref()
            .is_some_and(|s| s.sites_down == [site])
    });
}
