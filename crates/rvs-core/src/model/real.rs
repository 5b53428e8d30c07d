//! Real servers: address, forwarding method, weight, connection thresholds, operator intent and
//! observed health, and the IPVS overload rule for the `-x`/`-y` thresholds.

use super::intent::{AdminState, Health, effective_weight};
use super::service::ProxyProtocol;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;

/// How packets reach a real server (ipvsadm `-m`, `-g`, `-i`, `-b`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMethod {
    /// `-m`, masquerading: DNAT to the real, replies come back through the director.
    Nat,
    /// `-g`, gatewaying / direct routing: MAC rewrite, replies go straight to the client.
    #[default]
    Dr,
    /// `-i`, IP-in-IP tunnelling: encapsulated to the real, replies go straight to the client.
    Tun,
    /// `-b`, full NAT: source and destination rewritten; reals need no special routing.
    FullNat,
}

impl ForwardMethod {
    /// The word ipvsadm prints in the `Forward` column (`Masq`, `Route`, `Tunnel`, `FullNat`).
    pub fn ipvs_name(self) -> &'static str {
        match self {
            ForwardMethod::Nat => "Masq",
            ForwardMethod::Dr => "Route",
            ForwardMethod::Tun => "Tunnel",
            ForwardMethod::FullNat => "FullNat",
        }
    }

    /// The method's short name in messages (`DR`, `TUN`, `NAT`, `FULLNAT`).
    pub fn short_name(self) -> &'static str {
        match self {
            ForwardMethod::Nat => "NAT",
            ForwardMethod::Dr => "DR",
            ForwardMethod::Tun => "TUN",
            ForwardMethod::FullNat => "FULLNAT",
        }
    }

    /// The ipvsadm flag that selects the method.
    pub fn flag(self) -> &'static str {
        match self {
            ForwardMethod::Nat => "-m",
            ForwardMethod::Dr => "-g",
            ForwardMethod::Tun => "-i",
            ForwardMethod::FullNat => "-b",
        }
    }
}

impl fmt::Display for ForwardMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ipvs_name())
    }
}

/// Highest weight IPVS accepts.
pub const MAX_WEIGHT: u32 = 65535;

/// A real server as the operator configured it, plus what the checkers observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealServer {
    /// Address and port of the real (port 0 = same as the virtual port, for fwmark services).
    pub addr: SocketAddr,
    /// Forwarding method.
    pub method: ForwardMethod,
    /// Operator weight, 0..=65535 (`-w`). 0 = no new connections.
    pub weight: u32,
    /// `-x`: upper connection threshold, 0 = none.
    #[serde(default)]
    pub upper_threshold: u32,
    /// `-y`: lower connection threshold, 0 = three quarters of the upper one.
    #[serde(default)]
    pub lower_threshold: u32,
    /// Operator intent.
    #[serde(default)]
    pub admin: AdminState,
    /// Observed health (set by the daemon from its checkers, never by the operator).
    #[serde(default)]
    pub health: Health,
    /// Weight set by a dynamic checker (`misc_dynamic`), if any.
    #[serde(default)]
    pub dynamic_weight: Option<u32>,
    /// Held out of service because its service lost quorum and the sorry server serves
    /// instead (set by the daemon, never by the operator): weight 0 and down for persistence,
    /// as keepalived removes such reals from IPVS (which drops their templates).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quorum_gated: bool,
    /// PROXY protocol for this real; `None` = the service's setting.
    #[serde(default)]
    pub proxy_protocol: Option<ProxyProtocol>,
}

impl RealServer {
    /// A real with the given address, method and weight, everything else default.
    pub fn new(addr: SocketAddr, method: ForwardMethod, weight: u32) -> Self {
        RealServer {
            addr,
            method,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            admin: AdminState::Enabled,
            health: Health::Unknown,
            dynamic_weight: None,
            quorum_gated: false,
            proxy_protocol: None,
        }
    }

    /// The weight schedulers use (see [`effective_weight`]); 0 while quorum-gated.
    pub fn effective_weight(&self) -> u32 {
        if self.quorum_gated {
            return 0;
        }
        effective_weight(self.weight, self.admin, self.health, self.dynamic_weight)
    }

    /// Down for persistence: health checks see it down, the operator disabled it, or it is
    /// quorum-gated. Such a real gets no persistent client either (keepalived removes a failed
    /// or gated real from IPVS, which drops its templates); a drained or overloaded one still
    /// gets the clients whose template names it, as with IPVS's default
    /// (`expire_quiescent_template = 0`).
    pub fn is_down(&self) -> bool {
        self.health == Health::Down || self.admin == AdminState::Disabled || self.quorum_gated
    }

    /// The overload flag after a change of the real's connection count (see [`next_overload`]).
    pub fn next_overload(&self, overloaded: bool, total_conns: u32) -> bool {
        next_overload(
            overloaded,
            total_conns,
            self.upper_threshold,
            self.lower_threshold,
        )
    }
}

/// IPVS's threshold rule (`ip_vs_bind_dest` / `__ip_vs_update_dest`): a real becomes overloaded
/// when its active+inactive connections reach the upper threshold, and stays so until they fall
/// below the lower threshold (or, with no lower threshold, below 3/4 of the upper one).
pub fn next_overload(overloaded: bool, total_conns: u32, upper: u32, lower: u32) -> bool {
    if upper == 0 {
        return false;
    }
    if total_conns >= upper {
        return true;
    }
    if !overloaded {
        return false;
    }
    if lower > 0 {
        total_conns >= lower
    } else {
        // kernel: clear when conns * 4 < upper * 3
        (total_conns as u64) * 4 >= (upper as u64) * 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_has_hysteresis() {
        // no threshold: never overloaded
        assert!(!next_overload(false, 1_000_000, 0, 0));
        assert!(!next_overload(true, 5, 0, 0));
        // upper 10, lower 5
        assert!(!next_overload(false, 9, 10, 5));
        assert!(next_overload(false, 10, 10, 5));
        assert!(next_overload(true, 7, 10, 5));
        assert!(next_overload(true, 5, 10, 5));
        assert!(!next_overload(true, 4, 10, 5));
        // upper 8, no lower: clear below 6 (3/4 of 8)
        assert!(next_overload(true, 6, 8, 0));
        assert!(!next_overload(true, 5, 8, 0));
    }

    #[test]
    fn method_names_match_ipvsadm() {
        assert_eq!(ForwardMethod::Nat.ipvs_name(), "Masq");
        assert_eq!(ForwardMethod::Dr.ipvs_name(), "Route");
        assert_eq!(ForwardMethod::Tun.ipvs_name(), "Tunnel");
        assert_eq!(ForwardMethod::Dr.flag(), "-g");
    }
}
