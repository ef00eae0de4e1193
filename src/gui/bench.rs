//! The UI benchmark: `drconsole bench ui --topology FILE --frames N --json`.
//!
//! It runs the whole console headless: a [`DrApp`] on an `egui::Context` with a fixed
//! screen of [`SCREEN`], its worker thread and engine on a workspace in a temporary
//! directory, the guests writing. Warm-up lasts until the workspace is open, its first
//! update is in, the guests run and every replication group has published its first point
//! (a new workspace's initial full copy, during which the engine sends no updates). Then
//! the inventory tree is expanded, a VM in the middle of the inventory is selected (so the
//! tree scrolls to it and the details panel rates its destinations), and after a short
//! settling period N frames are timed. A frame is what eframe does for a window: take in
//! the input, `logic_step` (drain the worker's updates), `draw`, and tessellate the shapes
//! into meshes; only the GPU upload is left out. Frames are paced at 60 Hz, as a display
//! would, so the worker runs beside them as it does in the app.
//!
//! The baseline, measured in the same run the same way, is the built-in 10-VM demo.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::worker::Request;
use super::{Action, DrApp, Selection, Startup, Status, WorkspaceChoice};
use crate::cli::{BenchUiCli, CliError, emit, emit_json, load};
use crate::engine::Command;
use crate::topology::{Topology, TopologySource};

/// The screen the benchmark draws on, in points.
pub const SCREEN: [f32; 2] = [1400.0, 900.0];
/// The frame pace: 60 Hz.
const FRAME: Duration = Duration::from_micros(16_667);
/// Frames drawn after the selection and before timing (the tree scrolls, the destinations
/// are rated, the guests start).
const SETTLE_FRAMES: usize = 60;
/// The longest the workspace may take to open.
const OPEN_LIMIT: Duration = Duration::from_secs(30 * 60);

/// What to run.
pub struct BenchUiArgs {
    pub topology: Topology,
    pub source: TopologySource,
    /// Frames to time (at least 1).
    pub frames: usize,
    /// Where to put the temporary workspaces (default: the system temp directory).
    pub dir: Option<PathBuf>,
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct FrameStats {
    pub vms: usize,
    pub datastores: usize,
    /// Rows of the expanded inventory tree (only those in view are laid out).
    pub tree_rows: usize,
    /// Wall seconds until the workspace was open and its first update was in.
    pub open_s: f64,
    /// Wall seconds until the guests ran and every replication group had published its
    /// first point (the initial full copy).
    pub running_s: f64,
    pub frame_ms_p50: f64,
    pub frame_ms_p99: f64,
    pub frame_ms_max: f64,
    pub frame_ms_mean: f64,
    /// Medians of the parts of a frame.
    pub logic_ms_p50: f64,
    pub draw_ms_p50: f64,
    pub tessellate_ms_p50: f64,
    /// The worst of each part (`logic_step` takes in the engine's updates).
    pub logic_ms_max: f64,
    pub draw_ms_max: f64,
    pub tessellate_ms_max: f64,
    /// Engine updates taken in while timing.
    pub updates: u64,
    /// Simulated seconds the engine advanced while timing.
    pub sim_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchUiReport {
    pub topology: String,
    pub frames: usize,
    pub screen: [f32; 2],
    #[serde(flatten)]
    pub stats: FrameStats,
    /// The same benchmark on the built-in 10-VM demo.
    pub baseline_vms: usize,
    pub baseline_frame_ms_p50: f64,
    pub baseline_frame_ms_p99: f64,
    pub baseline_open_s: f64,
    pub baseline_running_s: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchUiError {
    #[error("--frames must be at least 1")]
    NoFrames,
    #[error("{dir}: cannot create the benchmark's workspace directory: {source}")]
    Dir {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the workspace could not be opened: {0}")]
    Open(String),
    #[error("the workspace did not open and start its guests within {} minutes", OPEN_LIMIT.as_secs() / 60)]
    Timeout,
}

/// Runs the benchmark on `args.topology`, then on the built-in demo as the baseline.
pub fn bench_ui(args: BenchUiArgs) -> Result<BenchUiReport, BenchUiError> {
    if args.frames == 0 {
        return Err(BenchUiError::NoFrames);
    }
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let label = args.source.to_string();
    let stats = run_in_temp(&base, args.topology, args.source, args.frames)?;
    let baseline = run_in_temp(
        &base,
        Topology::builtin_default(),
        TopologySource::BuiltIn,
        args.frames,
    )?;
    Ok(BenchUiReport {
        topology: label,
        frames: args.frames,
        screen: SCREEN,
        stats,
        baseline_vms: baseline.vms,
        baseline_frame_ms_p50: baseline.frame_ms_p50,
        baseline_frame_ms_p99: baseline.frame_ms_p99,
        baseline_open_s: baseline.open_s,
        baseline_running_s: baseline.running_s,
    })
}

/// `drconsole bench ui`: runs [`bench_ui`] and prints its report (text, or JSON with
/// `--json`). The binary dispatches it here, so the library's CLI does not depend on the GUI.
pub fn run_cli(a: &BenchUiCli, out: &mut dyn Write) -> Result<(), CliError> {
    if a.frames == 0 {
        return Err(CliError("--frames must be at least 1".into()));
    }
    let topology = load(&a.topology)?;
    let r = bench_ui(BenchUiArgs {
        topology,
        source: TopologySource::File(a.topology.clone()),
        frames: a.frames,
        dir: a.dir.clone(),
    })
    .map_err(|e| CliError(e.to_string()))?;
    if a.json {
        return emit_json(out, &r);
    }
    let s = &r.stats;
    emit(
        out,
        &format!(
            "{}: {} VMs, {} datastores, {} tree rows, {} frames of {}x{}: frame p50 {:.2} ms, \
             p99 {:.2} ms, max {:.2} ms (logic {:.2}, draw {:.2}, tessellate {:.2} ms at p50; \
             {} engine updates); workspace open in {:.2} s, guests running after {:.2} s; baseline ({} VMs): p50 {:.2} ms, \
             p99 {:.2} ms, open in {:.2} s, running after {:.2} s",
            r.topology,
            s.vms,
            s.datastores,
            s.tree_rows,
            r.frames,
            r.screen[0],
            r.screen[1],
            s.frame_ms_p50,
            s.frame_ms_p99,
            s.frame_ms_max,
            s.logic_ms_p50,
            s.draw_ms_p50,
            s.tessellate_ms_p50,
            s.updates,
            s.open_s,
            s.running_s,
            r.baseline_vms,
            r.baseline_frame_ms_p50,
            r.baseline_frame_ms_p99,
            r.baseline_open_s,
            r.baseline_running_s
        ),
    )
}

/// Runs one measurement in a fresh directory under `base`, removed afterwards.
fn run_in_temp(
    base: &Path,
    topology: Topology,
    source: TopologySource,
    frames: usize,
) -> Result<FrameStats, BenchUiError> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = base.join(format!("drconsole-bench-ui-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| BenchUiError::Dir {
        dir: dir.display().to_string(),
        source,
    })?;
    let result = run(&dir.join("workspace"), topology, source, frames);
    // Best effort: a temp directory left behind is no reason to fail the run.
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The parts of one frame, in wall time.
#[derive(Default, Clone, Copy)]
struct Frame {
    total: Duration,
    logic: Duration,
    draw: Duration,
    tessellate: Duration,
}

/// Runs one frame as eframe would: input, logic, draw, tessellate.
fn frame(ctx: &egui::Context, app: &mut DrApp, started: Instant) -> Frame {
    let input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(SCREEN[0], SCREEN[1]),
        )),
        time: Some(started.elapsed().as_secs_f64()),
        predicted_dt: FRAME.as_secs_f32(),
        focused: true,
        ..Default::default()
    };
    let mut f = Frame::default();
    let t0 = Instant::now();
    let mut output = ctx.run_ui(input, |ui| {
        let a = Instant::now();
        app.logic_step(ui.ctx());
        let b = Instant::now();
        app.draw(ui);
        f.logic += b - a;
        f.draw += b.elapsed();
    });
    let t1 = Instant::now();
    let shapes = std::mem::take(&mut output.shapes);
    let pixels_per_point = output.pixels_per_point;
    // No GPU here: the font atlas updates go nowhere.
    output.drop_without_applying_deltas();
    let meshes = ctx.tessellate(shapes, pixels_per_point);
    std::hint::black_box(meshes);
    f.tessellate = t1.elapsed();
    f.total = t0.elapsed();
    f
}

fn run(
    root: &Path,
    topology: Topology,
    source: TopologySource,
    frames: usize,
) -> Result<FrameStats, BenchUiError> {
    let vms = topology.vms.len();
    let datastores = topology.datastores.len();
    let middle = topology.vms.get(vms / 2).map(|v| v.id.clone());
    let ctx = egui::Context::default();
    let started = Instant::now();
    let mut app = DrApp::new(
        ctx.clone(),
        Startup {
            topology,
            source,
            error: None,
            workspace: WorkspaceChoice::Dir(root.to_path_buf()),
        },
    );
    // Warm-up: until the workspace is open and its first update is in.
    while !app.engine_ready() {
        if let Status::Failed { error, .. } = &app.live.status {
            return Err(BenchUiError::Open(error.clone()));
        }
        if started.elapsed() > OPEN_LIMIT {
            return Err(BenchUiError::Timeout);
        }
        frame(&ctx, &mut app, started);
        std::thread::sleep(Duration::from_millis(10));
    }
    let open_s = started.elapsed().as_secs_f64();
    // Then until the guests run and every replication group has published its first
    // point: a new workspace's first cycles ship every image, and the engine takes no
    // command and sends no update while one runs.
    app.apply(Action::Request(Request::Engine(Command::StartWorkloads)));
    while !app
        .live
        .snapshot
        .as_ref()
        .is_some_and(|s| s.workloads_on && s.groups.iter().all(|g| g.last_published_at.is_some()))
    {
        if started.elapsed() > OPEN_LIMIT {
            return Err(BenchUiError::Timeout);
        }
        frame(&ctx, &mut app, started);
        std::thread::sleep(Duration::from_millis(10));
    }
    let running_s = started.elapsed().as_secs_f64();
    app.tree.expand_all();
    app.selection = middle.map(Selection::Vm);
    pace(&ctx, &mut app, started, SETTLE_FRAMES);

    let sim_before = app.live.snapshot.as_ref().map_or(0, |s| s.now);
    let updates_before = update_count(&app);
    let timed = pace(&ctx, &mut app, started, frames);
    let sim_after = app.live.snapshot.as_ref().map_or(0, |s| s.now);
    let tree_rows = app.tree.row_count();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut total: Vec<f64> = timed.iter().map(|f| ms(f.total)).collect();
    let median = |pick: fn(&Frame) -> Duration| {
        let mut v: Vec<f64> = timed.iter().map(|f| ms(pick(f))).collect();
        percentile(&mut v, 50.0)
    };
    Ok(FrameStats {
        vms,
        datastores,
        tree_rows,
        open_s,
        running_s,
        frame_ms_p50: percentile(&mut total, 50.0),
        frame_ms_p99: percentile(&mut total, 99.0),
        frame_ms_max: total.iter().copied().fold(0.0, f64::max),
        frame_ms_mean: total.iter().sum::<f64>() / total.len() as f64,
        logic_ms_p50: median(|f| f.logic),
        draw_ms_p50: median(|f| f.draw),
        tessellate_ms_p50: median(|f| f.tessellate),
        logic_ms_max: timed.iter().map(|f| ms(f.logic)).fold(0.0, f64::max),
        draw_ms_max: timed.iter().map(|f| ms(f.draw)).fold(0.0, f64::max),
        tessellate_ms_max: timed.iter().map(|f| ms(f.tessellate)).fold(0.0, f64::max),
        updates: update_count(&app).saturating_sub(updates_before),
        sim_s: super::live::seconds(sim_after.saturating_sub(sim_before)),
    })
}

/// How many engine updates the app has taken in so far.
fn update_count(app: &DrApp) -> u64 {
    app.live.updates
}

/// Runs `n` frames at 60 Hz (a frame that overruns its slot is followed at once).
fn pace(ctx: &egui::Context, app: &mut DrApp, started: Instant, n: usize) -> Vec<Frame> {
    let mut out = Vec::with_capacity(n);
    let mut next = Instant::now();
    for _ in 0..n {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += FRAME;
        out.push(frame(ctx, app, started));
    }
    out
}

/// The `p`-th percentile (nearest rank) of `v`, sorting it.
fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_runs_headless_with_the_engine_reporting() {
        let dir = tempfile::tempdir().unwrap();
        let r = bench_ui(BenchUiArgs {
            topology: Topology::builtin_default(),
            source: TopologySource::BuiltIn,
            frames: 20,
            dir: Some(dir.path().to_path_buf()),
        })
        .unwrap();
        assert_eq!(r.frames, 20);
        assert_eq!(r.stats.vms, 10);
        assert_eq!(r.baseline_vms, 10);
        // Expanded: every node of the demo's tree plus the four section headers.
        let inventory = super::super::tree::Inventory::new(&Topology::builtin_default());
        assert_eq!(r.stats.tree_rows, inventory.node_count() + 4);
        assert!(r.stats.frame_ms_p50 > 0.0);
        assert!(r.stats.frame_ms_p99 >= r.stats.frame_ms_p50);
        assert!(r.stats.frame_ms_max >= r.stats.frame_ms_p99);
        // The temporary workspaces are gone.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(matches!(
            bench_ui(BenchUiArgs {
                topology: Topology::builtin_default(),
                source: TopologySource::BuiltIn,
                frames: 0,
                dir: None,
            }),
            Err(BenchUiError::NoFrames)
        ));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50.0), 50.0);
        assert_eq!(percentile(&mut v, 99.0), 99.0);
        assert_eq!(percentile(&mut v, 100.0), 100.0);
        let mut one = [7.0];
        assert_eq!(percentile(&mut one, 99.0), 7.0);
        assert_eq!(percentile(&mut [], 50.0), 0.0);
    }
}
