//! `rvsd` binary: parse arguments and run the daemon; errors end with a message and exit 1
//! (2: `--check` found services this host would not serve).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = rvsd::args::Args::parse();
    match rvsd::run::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvsd: {e:#}");
            if e.downcast_ref::<rvsd::run::Unserved>().is_some() {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}
