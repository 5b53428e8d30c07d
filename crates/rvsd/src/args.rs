//! Command-line arguments. Flags override the `[daemon]` section of the config file.

use clap::Parser;
use rvs_core::engine::EngineKind;
use std::net::SocketAddr;
use std::path::PathBuf;

/// rvsd — the rvs daemon: loads the desired state, runs the engines, serves the control API.
#[derive(Debug, Clone, Parser)]
#[command(name = "rvsd", version, about)]
pub struct Args {
    /// Native TOML configuration file (docs/config.md).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// ipvsadm rule file (the `ipvsadm-save` / `rvsadm -S` format), loaded after --config.
    #[arg(long, value_name = "FILE")]
    pub ipvsadm_rules: Option<PathBuf>,

    /// keepalived.conf: its virtual_server / real_server blocks are loaded after the rule file
    /// and its health checkers run (VRRP is not run yet; unsupported keywords are logged as
    /// warnings with file:line). See docs/keepalived.md.
    #[arg(long, value_name = "FILE")]
    pub keepalived_conf: Option<PathBuf>,

    /// Control socket path (default: $RVS_SOCKET, /run/rvs/rvsd.sock as root, else per user).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Also serve the API on TCP at this address (requires --token-file).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,

    /// File holding the bearer token that TCP API clients must send.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Engines to run (repeatable): proxy, xdp. Default: every engine that can run here.
    #[arg(long = "engine", value_name = "ENGINE", value_parser = parse_engine)]
    pub engines: Vec<EngineKind>,

    /// Interface the xdp engine attaches to (repeatable).
    #[arg(long = "xdp-interface", value_name = "IFACE")]
    pub xdp_interfaces: Vec<String>,

    /// Proxy engine worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub proxy_workers: Option<u32>,

    /// Log level: error, warn, info, debug, trace (default: config, then RUST_LOG, then info).
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Validate the configuration, print what would be served, and exit (0 = valid).
    #[arg(long)]
    pub check: bool,
}

fn parse_engine(s: &str) -> Result<EngineKind, String> {
    match s {
        "proxy" => Ok(EngineKind::Proxy),
        "xdp" => Ok(EngineKind::Xdp),
        _ => Err(format!("unknown engine '{s}' (expected proxy or xdp)")),
    }
}
