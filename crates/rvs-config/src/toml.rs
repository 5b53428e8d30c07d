//! rvs's native configuration file, documented field by field in `docs/config.md`.
//!
//! ```toml
//! [daemon]
//! log_level = "info"
//!
//! [[service]]
//! protocol = "tcp"
//! address = "127.0.0.1:8080"
//! scheduler = "rr"
//!
//! [[service.real]]
//! address = "127.0.0.1:9001"
//! method = "fullnat"
//! weight = 1
//! ```
//!
//! [`parse`] returns the typed tree ([`Config`]: the daemon's own settings plus a validated
//! [`DesiredState`]) or every problem found, each with `path:line:column` and what was expected.
//! Syntax errors, unknown keys and values of the wrong type stop parsing at the first one (that
//! is where the TOML parser stops); validation errors (bad addresses, duplicates, weights out of
//! range, ...) are all reported together. Settings that are accepted but have no effect as
//! written come back as located [`Config::warnings`]; those that only one engine uses are
//! listed in [`Config::engine_settings`], which [`engine_warnings`] turns into warnings once the
//! daemon knows which engines run (module [`warn`]).

mod convert;
mod raw;
pub mod warn;

pub use warn::{EngineSetting, engine_warnings};

use crate::error::{ConfigError, ConfigErrors, Location};
use crate::local_addr::ServicePools;
use rvs_core::desired::DesiredState;
use rvs_core::engine::EngineKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// A parsed and validated configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// `[daemon]`: how rvsd itself runs.
    pub daemon: DaemonConfig,
    /// `[timeouts]` and `[[service]]`: what the director should do.
    pub state: DesiredState,
    /// Services' own FULLNAT local addresses (`local_addresses`), checked against the VIP's
    /// family; a service not listed uses `[daemon] fullnat_local`.
    pub local_addresses: ServicePools,
    /// Settings accepted but without effect as written (located; they change nothing loaded).
    pub warnings: Vec<ConfigError>,
    /// Settings only one engine uses, located: without effect when that engine does not run.
    pub engine_settings: Vec<EngineSetting>,
    /// Where each `[daemon]` key the file gives is (for warning that a command-line flag
    /// overrides it).
    pub daemon_keys: BTreeMap<String, Location>,
}

/// The highest `xdp_icmp_rate`: beyond ten million errors per second per CPU the limit would
/// limit nothing (0 is the way to say unlimited).
pub const MAX_XDP_ICMP_RATE: u32 = 10_000_000;

/// The highest `xdp_icmp_burst`. The program takes any bucket size (it counts tokens in 64
/// bits, `burst` × 10⁹ fits), but a burst above the highest rate lets errors through
/// unlimited for as long as a flood of that size lasts (0 is refused: a bucket of 0 would drop
/// every error whatever the rate).
pub const MAX_XDP_ICMP_BURST: u32 = 10_000_000;

/// The default of `stop_grace_ms`: 10 s.
pub const DEFAULT_STOP_GRACE_MS: u32 = 10_000;

/// The highest `stop_grace_ms`: a day (a larger figure is more likely seconds or µs taken for
/// ms than a wish).
pub const MAX_STOP_GRACE_MS: u32 = 86_400_000;

/// `[daemon]`. Every field is optional; command-line flags override them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DaemonConfig {
    /// Control socket path (default: `/run/rvs/rvsd.sock` as root, else a per-user path).
    pub socket: Option<PathBuf>,
    /// Also serve the API on this TCP address (requires `token_file`).
    pub listen: Option<SocketAddr>,
    /// File holding the bearer token TCP clients must send.
    pub token_file: Option<PathBuf>,
    /// Engines to run; `None` = every engine that can run here.
    pub engines: Option<Vec<EngineKind>>,
    /// Interfaces the xdp engine attaches to.
    pub xdp_interfaces: Vec<String>,
    /// NAT/FULLNAT flows the xdp engine can track (its NAT connection table and reverse table,
    /// not the DR/TUN table); `None` = its default (262,144).
    pub xdp_nat_conns: Option<u32>,
    /// ICMP errors per second per CPU the xdp engine sends on about DR/TUN flows it has no
    /// entry for (0 = unlimited, at most [`MAX_XDP_ICMP_RATE`]); `None` = its default (1,000).
    pub xdp_icmp_rate: Option<u32>,
    /// The burst of that limit: the bucket's size in errors (1 to [`MAX_XDP_ICMP_BURST`]);
    /// `None` = its default (200).
    pub xdp_icmp_burst: Option<u32>,
    /// Leave the xdp engine's program attached with its flows when rvsd exits, for the next
    /// rvsd to adopt (docs/xdp.md "Restart without losing flows"); `false` (the default)
    /// detaches it.
    pub xdp_keep_on_exit: bool,
    /// FULLNAT local addresses of every FULLNAT service without its own `local_addresses`
    /// (those of the VIP's family; at most [`crate::local_addr::MAX_PER_FAMILY`] per family).
    pub fullnat_local: Vec<IpAddr>,
    /// Proxy engine worker threads; `None` = one per core.
    pub proxy_workers: Option<u32>,
    /// Most UDP sessions the proxy engine holds at once; `None` = a quarter of the open-files
    /// limit.
    pub proxy_udp_sessions: Option<u32>,
    /// Most TCP connections the proxy engine relays at once (clients beyond wait in the listen
    /// backlog); `None` = what the open-files limit leaves after the UDP cap.
    pub proxy_max_conns: Option<u32>,
    /// Relay bulk TCP data with `splice(2)` (`true`, the default where the kernel has it) or
    /// always copy it through a buffer (`false`, as HAProxy's `nosplice`); `None` = the default.
    pub proxy_splice: Option<bool>,
    /// How long a graceful stop (SIGTERM) waits for the proxy engine's open connections to
    /// end, in ms (0: close them at once; at most [`MAX_STOP_GRACE_MS`]); `None` =
    /// [`DEFAULT_STOP_GRACE_MS`].
    pub stop_grace_ms: Option<u32>,
    /// Log level; `None` = `info` (or `RUST_LOG`).
    pub log_level: Option<LogLevel>,
}

impl DaemonConfig {
    /// The `[daemon]` keys whose values differ between `self` and `other` (in field order).
    pub fn changed_keys(&self, other: &DaemonConfig) -> Vec<&'static str> {
        // Destructured so that a new field cannot be forgotten here.
        let DaemonConfig {
            socket,
            listen,
            token_file,
            engines,
            xdp_interfaces,
            xdp_nat_conns,
            xdp_icmp_rate,
            xdp_icmp_burst,
            xdp_keep_on_exit,
            fullnat_local,
            proxy_workers,
            proxy_udp_sessions,
            proxy_max_conns,
            proxy_splice,
            stop_grace_ms,
            log_level,
        } = self;
        let differs = [
            ("socket", *socket != other.socket),
            ("listen", *listen != other.listen),
            ("token_file", *token_file != other.token_file),
            ("engines", *engines != other.engines),
            ("xdp_interfaces", *xdp_interfaces != other.xdp_interfaces),
            ("xdp_nat_conns", *xdp_nat_conns != other.xdp_nat_conns),
            ("xdp_icmp_rate", *xdp_icmp_rate != other.xdp_icmp_rate),
            ("xdp_icmp_burst", *xdp_icmp_burst != other.xdp_icmp_burst),
            (
                "xdp_keep_on_exit",
                *xdp_keep_on_exit != other.xdp_keep_on_exit,
            ),
            ("fullnat_local", *fullnat_local != other.fullnat_local),
            ("proxy_workers", *proxy_workers != other.proxy_workers),
            (
                "proxy_udp_sessions",
                *proxy_udp_sessions != other.proxy_udp_sessions,
            ),
            ("proxy_max_conns", *proxy_max_conns != other.proxy_max_conns),
            ("proxy_splice", *proxy_splice != other.proxy_splice),
            ("stop_grace_ms", *stop_grace_ms != other.stop_grace_ms),
            ("log_level", *log_level != other.log_level),
        ];
        differs
            .into_iter()
            .filter_map(|(k, d)| d.then_some(k))
            .collect()
    }
}

/// `log_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The name `tracing` filters use.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Parse the text of a configuration file; `path` is only used in error locations.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let mut rep = convert::Reporter::new(path, text);
    let raw: raw::RawFile = match ::toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            rep.error_at(span, e.message().trim_end().to_string());
            return Err(rep.finish());
        }
    };
    let found = warn::file_warnings(&raw, &rep);
    let mut config = convert::convert(raw, &mut rep);
    config.warnings = found.warnings;
    config.engine_settings = found.settings;
    config.daemon_keys = found.daemon_keys;
    if rep.errors.is_empty() {
        Ok(config)
    } else {
        Err(rep.finish())
    }
}

/// Read and parse a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::new(path, 0, 0, format!("cannot read the file: {e}")))?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => parse(text, path),
        Err(e) => {
            // at the first bad byte, not 0:0
            let (line, column) = crate::error::utf8_error_location(&bytes, &e);
            Err(
                ConfigError::new(path, line, column, "not valid UTF-8 (expected UTF-8 text)")
                    .into(),
            )
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod warn_tests;
