//! The typed model of a keepalived.conf: per-virtual-server health settings, per-real checker
//! configuration, and the VRRP blocks. Services and reals themselves go into a
//! [`rvs_core::desired::DesiredState`]; this is everything keepalived adds around them.

use rvs_core::model::{ForwardMethod, ServiceKey};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// keepalived's default `delay_loop` (seconds).
pub const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
/// keepalived's default `connect_timeout` (seconds).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// keepalived's default `retry` / `nb_get_retry`.
pub const DEFAULT_RETRY: u32 = 1;
/// keepalived's default `delay_before_retry`.
pub const DEFAULT_DELAY_BEFORE_RETRY: Duration = Duration::from_secs(1);
/// keepalived's persistence timeout for `persistence_timeout` without a value, or
/// `persistence_granularity` without `persistence_timeout` (seconds; ipvsadm's is 300).
pub const KEEPALIVED_PERSISTENCE_TIMEOUT: u32 = 360;
/// keepalived's default `lb_kind` (when a virtual server names none): NAT.
pub const DEFAULT_LB_KIND: ForwardMethod = ForwardMethod::Nat;

/// `global_defs` (only `router_id` and `script_user` are used; everything else is warned
/// about).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GlobalDefs {
    pub router_id: Option<String>,
    /// `script_user USER [GROUP]`: who runs the notify commands and `MISC_CHECK` scripts that
    /// name no user of their own (already applied to them in the model).
    pub script_user: Option<String>,
    pub script_group: Option<String>,
}

/// A command run on an event (`notify_up`, `notify_down`, `quorum_up`, `quorum_down`), written
/// as keepalived 2.x reads it: `KEYWORD COMMAND [USER [GROUP]]`. A command line with arguments
/// is quoted; the words after it are the user and group to run it as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    /// The command line (run through `/bin/sh -c`).
    pub command: String,
    /// Run as this user (default: `global_defs`' `script_user`, else rvsd's own user).
    pub user: Option<String>,
    /// Run with this group (default: the user's).
    pub group: Option<String>,
}

/// Health settings of one virtual server (one per service key; a `group` yields several).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualServerHealth {
    pub service: ServiceKey,
    /// `delay_loop`.
    pub delay_loop: Duration,
    /// `quorum` (default 1).
    pub quorum: u32,
    /// `hysteresis` (default 0).
    pub hysteresis: u32,
    /// `alpha`: reals start down until a check succeeds.
    pub alpha: bool,
    /// `omega`: run down notifications when checking stops.
    pub omega: bool,
    /// `inhibit_on_failure` set on the virtual server (applies to every real).
    pub inhibit_on_failure: bool,
    /// `sorry_server IP PORT`.
    pub sorry_server: Option<SocketAddr>,
    /// `sorry_server_inhibit`.
    pub sorry_server_inhibit: bool,
    /// `sorry_server_lvs_method`: the sorry server's forwarding method (default: the virtual
    /// server's).
    pub sorry_server_method: Option<ForwardMethod>,
    /// `virtualhost` default for HTTP checks of this virtual server.
    pub virtualhost: Option<String>,
    /// `quorum_up` command.
    pub quorum_up: Option<Script>,
    /// `quorum_down` command.
    pub quorum_down: Option<Script>,
    /// The reals with their checkers.
    pub reals: Vec<RealCheck>,
}

/// One real server's checking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealCheck {
    pub addr: SocketAddr,
    /// Configured `weight`.
    pub weight: u32,
    /// `inhibit_on_failure` (its own or the virtual server's).
    pub inhibit_on_failure: bool,
    /// `notify_up` command.
    pub notify_up: Option<Script>,
    /// `notify_down` command.
    pub notify_down: Option<Script>,
    pub checkers: Vec<Checker>,
}

/// One checker of a real, with the parameters every checker shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checker {
    pub kind: CheckKind,
    /// `connect_ip` (default: the real's address).
    pub connect_ip: Option<IpAddr>,
    /// `connect_port` (default: the real's port).
    pub connect_port: Option<u16>,
    /// `bindto`: source address.
    pub bindto: Option<IpAddr>,
    /// `bind_port`: source port.
    pub bind_port: Option<u16>,
    /// `connect_timeout`.
    pub connect_timeout: Duration,
    /// `retry` / `nb_get_retry`.
    pub retry: u32,
    /// `delay_before_retry`.
    pub delay_before_retry: Duration,
    /// `delay_loop` of the checker (default: the virtual server's).
    pub delay_loop: Duration,
    /// `warmup`: the first check starts after a random delay up to this (default `delay_loop`).
    pub warmup: Duration,
    /// `alpha` (checker's own, else the virtual server's).
    pub alpha: bool,
}

impl Checker {
    /// Where the check connects to for a real at `real`.
    pub fn target(&self, real: SocketAddr) -> SocketAddr {
        SocketAddr::new(
            self.connect_ip.unwrap_or(real.ip()),
            self.connect_port.unwrap_or(real.port()),
        )
    }
}

/// What a checker does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckKind {
    /// `TCP_CHECK`: a TCP connect succeeds.
    Tcp,
    /// `HTTP_GET`.
    Http(HttpCheck),
    /// `SSL_GET`: HTTP over TLS.
    Ssl(HttpCheck),
    /// `UDP_CHECK`.
    Udp(UdpCheck),
    /// `DNS_CHECK`.
    Dns(DnsCheck),
    /// `MISC_CHECK`.
    Misc(MiscCheck),
    /// `PING_CHECK`: ICMP echo.
    Ping,
    /// `SMTP_CHECK`: greeting 220, `HELO` answered 250.
    Smtp(SmtpCheck),
}

impl CheckKind {
    /// keepalived's block name.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "TCP_CHECK",
            CheckKind::Http(_) => "HTTP_GET",
            CheckKind::Ssl(_) => "SSL_GET",
            CheckKind::Udp(_) => "UDP_CHECK",
            CheckKind::Dns(_) => "DNS_CHECK",
            CheckKind::Misc(_) => "MISC_CHECK",
            CheckKind::Ping => "PING_CHECK",
            CheckKind::Smtp(_) => "SMTP_CHECK",
        }
    }
}

/// `HTTP_GET` / `SSL_GET` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HttpCheck {
    /// `url { ... }` blocks; every one must pass.
    pub urls: Vec<UrlCheck>,
    /// `virtualhost` (Host header); default: the virtual server's, else the connect address.
    pub virtualhost: Option<String>,
    /// `enable_sni` (SSL_GET): send the virtualhost as SNI.
    pub enable_sni: bool,
    /// `tls_verify` (rvs extension; keepalived never verifies): verify the server certificate.
    pub tls_verify: bool,
}

/// One `url { path ...; digest ...; status_code ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlCheck {
    pub path: String,
    /// Lower-case hex MD5 of the body (keepalived's `genhash`).
    pub digest: Option<String>,
    /// Accepted status codes as inclusive ranges (default 200-299).
    pub status: Vec<(u16, u16)>,
    /// `virtualhost` for this url.
    pub virtualhost: Option<String>,
}

impl UrlCheck {
    /// Whether `code` is accepted.
    pub fn accepts(&self, code: u16) -> bool {
        if self.status.is_empty() {
            return (200..=299).contains(&code);
        }
        self.status
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&code))
    }
}

/// `UDP_CHECK` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UdpCheck {
    /// `payload` (hex) sent; empty = one zero-length datagram.
    pub payload: Vec<u8>,
    /// `require_reply` (hex): a reply must start with these bytes; `None` = no reply needed
    /// (only an ICMP port-unreachable fails the check).
    pub require_reply: Option<Vec<u8>>,
    /// `min_reply_length` / `max_reply_length`.
    pub min_reply_length: Option<usize>,
    pub max_reply_length: Option<usize>,
}

/// keepalived's default `helo_name` of `SMTP_CHECK`.
pub const DEFAULT_SMTP_HELO: &str = "smtpchecker.keepalived.org";
/// keepalived's default `connect_port` of `SMTP_CHECK` (not the real's port).
pub const DEFAULT_SMTP_PORT: u16 = 25;

/// `SMTP_CHECK` parameters (the port default, 25, is set in the checker's `connect_port`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpCheck {
    /// `helo_name`: the name sent in `HELO` (default [`DEFAULT_SMTP_HELO`]).
    pub helo_name: String,
}

/// `DNS_CHECK` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsCheck {
    /// `type` (A, NS, CNAME, SOA, MX, TXT, AAAA; default SOA).
    pub qtype: DnsType,
    /// `name` (default `.`).
    pub name: String,
}

/// DNS query types keepalived's DNS_CHECK knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DnsType {
    A,
    Ns,
    Cname,
    Soa,
    Mx,
    Txt,
    Aaaa,
}

impl DnsType {
    /// The numeric QTYPE.
    pub fn code(self) -> u16 {
        match self {
            DnsType::A => 1,
            DnsType::Ns => 2,
            DnsType::Cname => 5,
            DnsType::Soa => 6,
            DnsType::Mx => 15,
            DnsType::Txt => 16,
            DnsType::Aaaa => 28,
        }
    }

    /// Parse a type name (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "A" => DnsType::A,
            "NS" => DnsType::Ns,
            "CNAME" => DnsType::Cname,
            "SOA" => DnsType::Soa,
            "MX" => DnsType::Mx,
            "TXT" => DnsType::Txt,
            "AAAA" => DnsType::Aaaa,
            _ => return None,
        })
    }
}

/// `MISC_CHECK` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MiscCheck {
    /// `misc_path`: the command line (run through `/bin/sh -c`).
    pub path: String,
    /// `misc_timeout` (default: the checker's `delay_loop`).
    pub timeout: Option<Duration>,
    /// `misc_dynamic`: exit codes 2..=255 set the weight to code − 2.
    pub dynamic: bool,
    /// `user USER [GROUP]`: run as this user (name, as given) ...
    pub user: Option<String>,
    /// ... and group (default: the user's).
    pub group: Option<String>,
}

/// The VRRP blocks.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VrrpConfig {
    pub instances: Vec<VrrpInstance>,
    pub sync_groups: Vec<VrrpSyncGroup>,
    pub scripts: Vec<VrrpScript>,
}

/// `state MASTER|BACKUP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VrrpState {
    Master,
    Backup,
}

/// One `virtual_ipaddress` line: `ADDR[/PREFIX] [dev IF] [label L]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualAddress {
    pub addr: IpAddr,
    pub prefix_len: u8,
    pub dev: Option<String>,
    pub label: Option<String>,
}

/// `vrrp_instance NAME { ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpInstance {
    pub name: String,
    pub state: Option<VrrpState>,
    pub interface: Option<String>,
    pub virtual_router_id: Option<u8>,
    /// `priority` (default 100).
    pub priority: u8,
    /// `advert_int` (default 1 s).
    pub advert_int: Duration,
    pub nopreempt: bool,
    pub preempt_delay: Option<Duration>,
    /// `authentication { auth_type PASS|AH; auth_pass ... }`.
    pub auth_type: Option<String>,
    pub auth_pass: Option<String>,
    pub virtual_ipaddress: Vec<VirtualAddress>,
    pub unicast_src_ip: Option<IpAddr>,
    pub unicast_peer: Vec<IpAddr>,
    pub track_interface: Vec<String>,
    pub track_script: Vec<String>,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
    pub notify: Option<String>,
}

/// `vrrp_sync_group NAME { group { ... } }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpSyncGroup {
    pub name: String,
    pub group: Vec<String>,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
    pub notify: Option<String>,
}

/// `vrrp_script NAME { script ...; interval ...; weight ...; fall ...; rise ...; timeout ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpScript {
    pub name: String,
    pub script: Option<String>,
    /// `interval` (default 1 s).
    pub interval: Duration,
    pub timeout: Option<Duration>,
    /// `weight` (−253..=253, default 0).
    pub weight: i32,
    pub fall: u32,
    pub rise: u32,
}
