//! Virtual services: how they are keyed (protocol + address + port, or firewall mark) and the
//! options an operator sets on them (scheduler, persistence, one-packet scheduling, engine pin).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// Transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The name ipvsadm prints in listings (`TCP`, `UDP`, `SCTP`).
    pub fn ipvs_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// Address family; needed to key firewall-mark services, which have no address of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    V4,
    V6,
}

impl AddressFamily {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => AddressFamily::V4,
            IpAddr::V6(_) => AddressFamily::V6,
        }
    }

    /// Longest prefix length of the family (32 or 128).
    pub fn max_prefix(self) -> u8 {
        match self {
            AddressFamily::V4 => 32,
            AddressFamily::V6 => 128,
        }
    }
}

/// What identifies a virtual service, as in IPVS: protocol + VIP + port, or a firewall mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ServiceKey {
    /// `-t`, `-u`, `--sctp-service`: protocol, virtual address and port.
    Addr {
        protocol: Protocol,
        addr: SocketAddr,
    },
    /// `-f`: packets carrying this firewall mark, of this family, whatever their address or port.
    FwMark { mark: u32, family: AddressFamily },
}

impl ServiceKey {
    /// A TCP service.
    pub fn tcp(addr: SocketAddr) -> Self {
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr,
        }
    }

    /// A UDP service.
    pub fn udp(addr: SocketAddr) -> Self {
        ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr,
        }
    }

    /// The address family of the service.
    pub fn family(&self) -> AddressFamily {
        match self {
            ServiceKey::Addr { addr, .. } => AddressFamily::of(addr.ip()),
            ServiceKey::FwMark { family, .. } => *family,
        }
    }
}

impl fmt::Display for ServiceKey {
    /// ipvsadm's listing form: `TCP  10.0.0.3:80` is printed by the printers; this is the short
    /// form used in messages: `tcp 10.0.0.3:80`, `fwmark 1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr { protocol, addr } => {
                write!(f, "{} {}", protocol.ipvs_name().to_lowercase(), addr)
            }
            ServiceKey::FwMark {
                mark,
                family: AddressFamily::V4,
            } => write!(f, "fwmark {mark}"),
            ServiceKey::FwMark {
                mark,
                family: AddressFamily::V6,
            } => {
                write!(f, "fwmark {mark} (ipv6)")
            }
        }
    }
}

/// The IPVS schedulers, by the names ipvsadm's `-s` takes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerKind {
    /// Round robin.
    Rr,
    /// Weighted least connection (ipvsadm's default).
    #[default]
    Wlc,
    /// Weighted round robin.
    Wrr,
    /// Least connection.
    Lc,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Locality-based least connection.
    Lblc,
    /// Locality-based least connection with replication.
    Lblcr,
    /// Destination hashing.
    Dh,
    /// Source hashing.
    Sh,
    /// Maglev hashing.
    Mh,
    /// Weighted failover.
    Fo,
    /// Weighted overflow.
    Ovf,
    /// Weighted random twos choice.
    Twos,
}

impl SchedulerKind {
    /// Every scheduler, in ipvsadm's order of documentation.
    pub const ALL: [SchedulerKind; 14] = [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Lblc,
        SchedulerKind::Lblcr,
        SchedulerKind::Dh,
        SchedulerKind::Sh,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Fo,
        SchedulerKind::Ovf,
        SchedulerKind::Mh,
        SchedulerKind::Twos,
    ];

    /// The name ipvsadm uses (`rr`, `wrr`, ...).
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Lblc => "lblc",
            SchedulerKind::Lblcr => "lblcr",
            SchedulerKind::Dh => "dh",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Mh => "mh",
            SchedulerKind::Fo => "fo",
            SchedulerKind::Ovf => "ovf",
            SchedulerKind::Twos => "twos",
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown scheduler name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scheduler '{0}' (expected one of rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos)"
)]
pub struct UnknownScheduler(pub String);

impl FromStr for SchedulerKind {
    type Err = UnknownScheduler;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SchedulerKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownScheduler(s.to_string()))
    }
}

/// Scheduler flags (ipvsadm `-b sh-fallback,sh-port,mh-fallback,mh-port`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct SchedFlags {
    /// sh: if the hashed real is unavailable, try the next one.
    #[serde(default)]
    pub sh_fallback: bool,
    /// sh: include the source port in the hash.
    #[serde(default)]
    pub sh_port: bool,
    /// mh: if the hashed real is unavailable, try the next one.
    #[serde(default)]
    pub mh_fallback: bool,
    /// mh: include the source port in the hash.
    #[serde(default)]
    pub mh_port: bool,
}

/// Persistence (`-p timeout`, `-M netmask`): clients within one netmask stick to one real for
/// `timeout` seconds after their last connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Persistence {
    /// Seconds; ipvsadm's default when `-p` is given without a value is 300.
    pub timeout: u32,
    /// Prefix length applied to the client address (32 / 128 = per client address).
    pub prefix_len: u8,
}

impl Persistence {
    /// ipvsadm's default persistence timeout (seconds).
    pub const DEFAULT_TIMEOUT: u32 = 300;
}

/// Which engine serves a service.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EnginePin {
    /// The daemon picks: xdp for DR/TUN/NAT, xdp or else proxy for FULLNAT.
    #[default]
    Auto,
    /// Only the XDP engine.
    Xdp,
    /// Only the proxy engine.
    Proxy,
}

/// How the client address is passed to a real by the proxy engine.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    /// Nothing is prepended.
    #[default]
    None,
    /// PROXY protocol v1 (text).
    V1,
    /// PROXY protocol v2 (binary).
    V2,
}

/// Options of the proxy engine for a service. Every field may be left out of a JSON body (its
/// default then applies), as every key may be left out of the TOML config's `[service.proxy]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyOptions {
    /// Milliseconds allowed for a connect to a real before it counts as failed.
    pub connect_timeout_ms: u32,
    /// How many other reals are tried after a refused or timed-out connect.
    pub connect_retries: u8,
    /// Milliseconds a relayed TCP connection may stay idle; `None` = the `--set tcp` timeout.
    pub idle_timeout_ms: Option<u32>,
    /// PROXY protocol header sent to every real of the service (a real may override it).
    pub proxy_protocol: ProxyProtocol,
    /// Passive failure detection (nginx's `max_fails`): after this many failed connects to a
    /// real within `fail_timeout_ms`, no new connection is scheduled to it for
    /// `fail_timeout_ms`. 0 = off.
    pub max_fails: u32,
    /// The window of `max_fails` and how long a real stays out (nginx's `fail_timeout`), ms.
    pub fail_timeout_ms: u32,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            connect_timeout_ms: 3000,
            connect_retries: 2,
            idle_timeout_ms: None,
            proxy_protocol: ProxyProtocol::None,
            max_fails: 1,
            fail_timeout_ms: 10_000,
        }
    }
}

/// Everything an operator sets on a virtual service apart from its reals. Every field may be
/// left out of a JSON body: ipvsadm's defaults apply (`-E` semantics: what is not given returns
/// to its default), so `{}` is a wlc service without persistence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceOptions {
    /// `-s`: the scheduler (ipvsadm's default is wlc).
    pub scheduler: SchedulerKind,
    /// `-b`: scheduler flags.
    #[serde(default)]
    pub flags: SchedFlags,
    /// `-p`/`-M`: persistence.
    #[serde(default)]
    pub persistence: Option<Persistence>,
    /// `-o`: one-packet scheduling (UDP: every datagram scheduled on its own).
    #[serde(default)]
    pub one_packet: bool,
    /// Which engine serves the service.
    #[serde(default)]
    pub engine: EnginePin,
    /// Proxy-engine options.
    #[serde(default)]
    pub proxy: ProxyOptions,
}
