//! The drconsole binary: the console window, or a subcommand (SPEC §9).

use std::process::ExitCode;

use clap::Parser;
use drconsole::cli::{self, Cli};
use drconsole::gui::{self, Startup};

fn main() -> ExitCode {
    let args = Cli::parse();
    match args.command {
        Some(command) => {
            let stdout = std::io::stdout();
            match cli::run(&command, &mut stdout.lock()) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("drconsole: error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        None => {
            let startup =
                Startup::from_path(args.topology.as_deref()).with_workspace(args.workspace);
            if let Some(e) = &startup.error {
                eprintln!("drconsole: error: {e}");
            }
            match gui::run(startup) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("drconsole: error: cannot open the console window: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
