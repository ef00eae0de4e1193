//! The drconsole binary: the console window, or a subcommand (SPEC §9).

use std::process::ExitCode;

use clap::Parser;
use drconsole::cli::{self, BenchCommand, Cli, Command};
use drconsole::gui;

fn main() -> ExitCode {
    let args = Cli::parse();
    raise_open_file_limit();
    match args.command {
        Some(command) => {
            // Crash tests kill a child at a named fault point (RELIABILITY.md); the
            // subcommands run the engine on this thread.
            if let Err(e) = drconsole::fault::arm_from_env() {
                eprintln!("drconsole: error: {e}");
                return ExitCode::from(2);
            }
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            // `bench ui` opens the GUI stack, so the binary runs it, not the library's CLI.
            let result = match &command {
                Command::Bench(BenchCommand::Ui(a)) => gui::bench::run_cli(a, &mut out).map(|()| 0),
                command => cli::run(command, &mut out),
            };
            match result {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("drconsole: error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        None => {
            // The window reopens the last topology and workspace unless told otherwise; a
            // file that does not load is reported here and in the console.
            match gui::run(args.topology, args.workspace, args.demo) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("drconsole: error: cannot open the console window: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The engine keeps each VM's image open, so a large inventory needs more files than the
/// usual soft limit (1,024 on many Linux systems): take the soft limit up to the hard one,
/// which an unprivileged process may do. Best effort: if it fails, the open reports the
/// file it could not open.
fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the one struct passed, which lives
    // on this stack frame for both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
