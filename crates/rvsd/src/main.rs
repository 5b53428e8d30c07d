//! `rvsd` binary: parse arguments and run the daemon; errors end with a message and exit 1.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = rvsd::args::Args::parse();
    match rvsd::run::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvsd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
