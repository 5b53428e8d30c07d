//! `rvs-demo-backend` — a tiny backend for the quickstart and tests.
//!
//! ```text
//! rvs-demo-backend --listen 127.0.0.1:9001 --name backend-1          # HTTP/1.1
//! rvs-demo-backend --listen 127.0.0.1:9001 --name backend-1 --udp    # UDP echo
//! ```
//!
//! HTTP mode answers every request with `<name> (<listen addr>)\n`, keeps connections alive
//! (HTTP/1.1 default, `Connection: close` honoured). UDP mode echoes every datagram back to its
//! sender unchanged (or prefixed with `<name>: ` with `--tag`).

use std::net::SocketAddr;
use std::process::ExitCode;

use rvs_demo::{Mode, Options};

const USAGE: &str = "usage: rvs-demo-backend --listen ADDR:PORT [--name NAME] [--udp [--tag]]";

fn parse_args(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut listen: Option<SocketAddr> = None;
    let mut name: Option<String> = None;
    let mut udp = false;
    let mut tag = false;
    let mut args = args;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" | "-l" => {
                let v = args.next().ok_or("--listen needs ADDR:PORT")?;
                listen = Some(v.parse().map_err(|e| format!("--listen {v}: {e}"))?);
            }
            "--name" | "-n" => name = Some(args.next().ok_or("--name needs a value")?),
            "--udp" => udp = true,
            "--tag" => tag = true,
            "--help" | "-h" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let listen = listen.ok_or_else(|| format!("--listen is required\n{USAGE}"))?;
    let name = name.unwrap_or_else(|| format!("backend-{}", listen.port()));
    let mode = if udp {
        Mode::UdpEcho { tag }
    } else {
        Mode::Http
    };
    Ok(Options { listen, name, mode })
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match rvs_demo::run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvs-demo-backend: {e}");
            ExitCode::FAILURE
        }
    }
}
