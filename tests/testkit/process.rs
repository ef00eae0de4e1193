//! The built binary: its path, running it, and a run that SIGKILLs itself at a fault point.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

/// The `drconsole` binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_drconsole")
}

/// A path in the repository (`sample_scenarios/…`).
pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Runs `drconsole ARGS` to its end.
pub fn drconsole(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs `drconsole ARGS`, which must exit 0; its output.
pub fn drconsole_ok(args: &[&str]) -> Output {
    let o = drconsole(args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "drconsole {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Runs scenario `s` in workspace `ws` in a child process that SIGKILLs itself at the
/// `nth` pass of fault point `point` (`DRCONSOLE_KILL_AT`): the kill lands at a chosen
/// step, not after a guessed sleep. Returns whether the kill happened (the point was
/// reached).
pub fn run_killed_at(s: &Path, ws: &Path, point: &str, nth: u64) -> bool {
    let status = Command::new(bin())
        .args(["run", &s.display().to_string(), "--workspace"])
        .arg(ws)
        .env(drconsole::fault::KILL_AT_ENV, format!("{point}#{nth}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    status.signal() == Some(libc::SIGKILL)
}

/// A sample scenario's headless `run --json`, made once per test binary and shared by the
/// tests that look at it (the recorded-report check, the reports of the round trip and of
/// a point in time): the longest samples take a good part of a minute, and running each
/// once is what keeps the suite inside CI's time.
pub struct SampleRun {
    /// The workspace the run left; tests only read it.
    pub ws: PathBuf,
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// The run of `sample_scenarios/<name>.ron` (see [`SampleRun`]); the first caller runs it,
/// callers at the same time wait for it.
pub fn sample_run(name: &str) -> Arc<SampleRun> {
    static RUNS: Mutex<BTreeMap<String, Arc<OnceLock<Arc<SampleRun>>>>> =
        Mutex::new(BTreeMap::new());
    let cell = RUNS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(name.to_string())
        .or_default()
        .clone();
    cell.get_or_init(|| {
        let ws = shared_root().join(name);
        let o = drconsole(&[
            "run",
            &repo(&format!("sample_scenarios/{name}.ron"))
                .display()
                .to_string(),
            "--workspace",
            &ws.display().to_string(),
            "--json",
        ]);
        Arc::new(SampleRun {
            ws,
            code: o.status.code(),
            stdout: o.stdout,
            stderr: o.stderr,
        })
    })
    .clone()
}

/// A scratch directory that lives as long as the test process: removed when it exits
/// (the test harness ends with `exit`, which runs `atexit` handlers).
fn shared_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        extern "C" fn remove_root() {
            if let Some(root) = ROOT.get() {
                let _ = std::fs::remove_dir_all(root);
            }
        }
        let root = super::scratch().keep();
        // SAFETY: registers a plain function with no arguments; it only removes a directory.
        unsafe {
            libc::atexit(remove_root);
        }
        root
    })
}
