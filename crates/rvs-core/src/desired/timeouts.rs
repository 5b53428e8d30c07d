//! Connection timeouts of the desired state: `ipvsadm --set tcp tcpfin udp` and the other TCP
//! states' timeouts (`[timeouts.tcp_states]`).

use crate::conn::TcpState;
use serde::{Deserialize, Serialize};

/// Connection timeouts in seconds (`ipvsadm --set tcp tcpfin udp`); IPVS's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// Established TCP connections (IPVS default 900 s).
    pub tcp: u32,
    /// TCP connections after a FIN (IPVS default 120 s).
    pub tcp_fin: u32,
    /// UDP sessions (IPVS default 300 s).
    pub udp: u32,
    /// The other TCP states' timeouts, where the operator set them (IPVS's defaults
    /// otherwise); the connection-tracking engines (xdp) use them.
    #[serde(default, skip_serializing_if = "TcpStateTimeouts::is_empty")]
    pub tcp_states: TcpStateTimeouts,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
            tcp_states: TcpStateTimeouts::default(),
        }
    }
}

/// Seconds for the TCP states `ipvsadm --set` does not reach (`None` = IPVS's default, see
/// [`crate::conn::ConnTimeouts`]). ESTABLISHED and FIN_WAIT are [`Timeouts::tcp`] and
/// [`Timeouts::tcp_fin`]. A FULLNAT local port is held while its flow is in TIME_WAIT: shorter
/// frees ports sooner, but not below the reals' own TIME_WAIT (60 s on Linux; docs/config.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpStateTimeouts {
    /// NONE (IPVS default 2 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub none: Option<u32>,
    /// SYN_SENT (120 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn_sent: Option<u32>,
    /// SYN_RECV (60 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn_recv: Option<u32>,
    /// TIME_WAIT (120 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_wait: Option<u32>,
    /// CLOSE (10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close: Option<u32>,
    /// CLOSE_WAIT (60 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_wait: Option<u32>,
    /// LAST_ACK (30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ack: Option<u32>,
    /// LISTEN (120 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<u32>,
    /// SYNACK (120 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synack: Option<u32>,
}

impl TcpStateTimeouts {
    /// Every state with its key (`time_wait`, ...) and its value here.
    pub fn entries(&self) -> [(TcpState, &'static str, Option<u32>); 9] {
        [
            (TcpState::None, "none", self.none),
            (TcpState::SynSent, "syn_sent", self.syn_sent),
            (TcpState::SynRecv, "syn_recv", self.syn_recv),
            (TcpState::TimeWait, "time_wait", self.time_wait),
            (TcpState::Close, "close", self.close),
            (TcpState::CloseWait, "close_wait", self.close_wait),
            (TcpState::LastAck, "last_ack", self.last_ack),
            (TcpState::Listen, "listen", self.listen),
            (TcpState::SynAck, "synack", self.synack),
        ]
    }

    /// The value for `key` (as in [`TcpStateTimeouts::entries`]); `false` if there is no such
    /// state here.
    pub fn set(&mut self, key: &str, value: Option<u32>) -> bool {
        let slot = match key {
            "none" => &mut self.none,
            "syn_sent" => &mut self.syn_sent,
            "syn_recv" => &mut self.syn_recv,
            "time_wait" => &mut self.time_wait,
            "close" => &mut self.close,
            "close_wait" => &mut self.close_wait,
            "last_ack" => &mut self.last_ack,
            "listen" => &mut self.listen,
            "synack" => &mut self.synack,
            _ => return false,
        };
        *slot = value;
        true
    }

    /// No state set.
    pub fn is_empty(&self) -> bool {
        self.entries().iter().all(|(_, _, v)| v.is_none())
    }
}

impl Timeouts {
    /// The keys of timeouts set to 0 (`tcp`, `tcp_states.time_wait`, ...): a timeout of 0
    /// would end every connection at once.
    pub fn zero_keys(&self) -> Vec<String> {
        let base = [
            ("tcp", self.tcp),
            ("tcp_fin", self.tcp_fin),
            ("udp", self.udp),
        ];
        let base = base
            .into_iter()
            .filter(|(_, v)| *v == 0)
            .map(|(k, _)| k.to_string());
        let states = self
            .tcp_states
            .entries()
            .into_iter()
            .filter(|(_, _, v)| *v == Some(0))
            .map(|(_, k, _)| format!("tcp_states.{k}"));
        base.chain(states).collect()
    }
}
