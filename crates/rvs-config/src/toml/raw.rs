//! The file as written: serde structures that mirror the TOML text one to one, with spans kept on
//! the values that validation may complain about. Unknown keys are errors (`deny_unknown_fields`).

use ::toml::Spanned;
use rvs_core::engine::EngineKind;
use rvs_core::model::{
    AddressFamily, AdminState, EnginePin, ForwardMethod, Protocol, ProxyProtocol, SchedulerKind,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    pub daemon: RawDaemon,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default, rename = "service")]
    pub services: Vec<Spanned<RawService>>,
}

/// `[daemon]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub socket: Option<Spanned<PathBuf>>,
    pub listen: Option<Spanned<String>>,
    pub token_file: Option<Spanned<PathBuf>>,
    pub engines: Option<Spanned<Vec<Spanned<EngineKind>>>>,
    pub xdp_interfaces: Option<Spanned<Vec<Spanned<String>>>>,
    pub xdp_nat_conns: Option<Spanned<u32>>,
    pub xdp_icmp_rate: Option<Spanned<u32>>,
    pub xdp_icmp_burst: Option<Spanned<u32>>,
    pub xdp_keep_on_exit: Option<Spanned<bool>>,
    pub proxy_workers: Option<Spanned<u32>>,
    pub proxy_udp_sessions: Option<Spanned<u32>>,
    pub proxy_max_conns: Option<Spanned<u32>>,
    pub proxy_splice: Option<Spanned<bool>>,
    pub stop_grace_ms: Option<Spanned<u32>>,
    pub log_level: Option<Spanned<super::LogLevel>>,
    pub fullnat_local: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[timeouts]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    pub tcp: Option<Spanned<u32>>,
    pub tcp_fin: Option<Spanned<u32>>,
    pub udp: Option<Spanned<u32>>,
    /// `[timeouts.tcp_states]`: state name → seconds (names checked in `convert`).
    #[serde(default)]
    pub tcp_states: BTreeMap<Spanned<String>, Spanned<u32>>,
}

/// `[[service]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub protocol: Option<Protocol>,
    pub address: Option<Spanned<String>>,
    pub fwmark: Option<Spanned<u32>>,
    pub family: Option<AddressFamily>,
    pub scheduler: Option<SchedulerKind>,
    #[serde(default)]
    pub flags: Vec<Spanned<RawFlag>>,
    pub persistence: Option<Spanned<RawPersistence>>,
    pub one_packet: Option<Spanned<bool>>,
    #[serde(default)]
    pub engine: EnginePin,
    pub proxy: Option<Spanned<RawProxy>>,
    pub local_addresses: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default, rename = "real")]
    pub reals: Vec<Spanned<RawReal>>,
}

/// Scheduler flags, as ipvsadm's `-b` names them.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawFlag {
    ShFallback,
    ShPort,
    MhFallback,
    MhPort,
}

/// `persistence = { timeout = 300, prefix_len = 24 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPersistence {
    pub timeout: Option<Spanned<u32>>,
    pub prefix_len: Option<u8>,
}

/// `[service.proxy]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxy {
    pub connect_timeout_ms: Option<Spanned<u32>>,
    pub connect_retries: Option<Spanned<u8>>,
    pub idle_timeout_ms: Option<Spanned<u32>>,
    pub proxy_protocol: Option<ProxyProtocol>,
    pub max_fails: Option<u32>,
    pub fail_timeout_ms: Option<Spanned<u32>>,
}

/// `[[service.real]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReal {
    pub address: Spanned<String>,
    pub method: Option<ForwardMethod>,
    pub weight: Option<Spanned<u32>>,
    #[serde(default)]
    pub upper_threshold: u32,
    pub lower_threshold: Option<Spanned<u32>>,
    pub proxy_protocol: Option<Spanned<ProxyProtocol>>,
    #[serde(default)]
    pub admin: AdminState,
}
