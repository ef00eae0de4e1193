//! The built binary: its path, running it, and a run that SIGKILLs itself at a fault point.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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
