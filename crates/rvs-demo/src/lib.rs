//! Demo backends used by the quickstart and by tests: a keep-alive HTTP/1.1 server that
//! answers every request with its own name and address, and a UDP echo server.
//!
//! Blocking std IO with a thread per connection: this is a demo and a test peer, not a
//! benchmark target (the benchmarks put nginx behind the balancers).

mod http;
mod udp;

use std::net::SocketAddr;

pub use http::{HttpServer, serve_http};
pub use udp::{UdpEcho, serve_udp_echo, spawn_udp_echo};

/// What the backend serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// HTTP/1.1: every request gets `<name> (<addr>)\n`.
    Http,
    /// UDP echo; with `tag`, replies are prefixed with `<name>: `.
    UdpEcho { tag: bool },
}

/// Command-line options of `rvs-demo-backend`.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub name: String,
    pub mode: Mode,
}

/// Errors of the demo backend.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the backend in the foreground until the process is killed.
pub fn run(opts: &Options) -> Result<(), DemoError> {
    match opts.mode {
        Mode::Http => {
            let server = HttpServer::bind(opts.listen, &opts.name)?;
            eprintln!("{} serving HTTP on {}", opts.name, server.local_addr());
            server.serve_forever();
            Ok(())
        }
        Mode::UdpEcho { tag } => serve_udp_echo(opts.listen, &opts.name, tag),
    }
}
