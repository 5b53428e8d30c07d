//! One state type for every protocol, the events that drive it, and IPVS's per-state timeouts
//! (overridable like `ipvsadm --set tcp tcpfin udp`).

use super::sctp::{self, SctpChunk, SctpState};
use super::tcp::{self, Direction, TcpFlags, TcpState};
use crate::desired::Timeouts;
use crate::model::Protocol;
use std::time::Duration;

/// The state of a tracked connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnState {
    /// A TCP connection.
    Tcp(TcpState),
    /// A UDP "connection" (IPVS has a single UDP state).
    Udp,
    /// An SCTP association.
    Sctp(SctpState),
}

/// A packet as far as the state machines care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketEvent {
    /// A TCP segment with these flags.
    Tcp(TcpFlags),
    /// A UDP datagram.
    Udp,
    /// An SCTP packet whose first chunk is this.
    Sctp(SctpChunk),
}

impl ConnState {
    /// The state a new connection of `protocol` starts in.
    pub fn initial(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Tcp => ConnState::Tcp(TcpState::None),
            Protocol::Udp => ConnState::Udp,
            Protocol::Sctp => ConnState::Sctp(SctpState::None),
        }
    }

    /// Counts as active (TCP / SCTP ESTABLISHED); everything else, UDP included, is inactive.
    pub fn is_active(self) -> bool {
        match self {
            ConnState::Tcp(s) => s.is_active(),
            ConnState::Udp => false,
            ConnState::Sctp(s) => s.is_active(),
        }
    }

    /// The state after a packet going `dir`. An event of another protocol changes nothing.
    pub fn next(self, dir: Direction, ev: PacketEvent) -> Self {
        match (self, ev) {
            (ConnState::Tcp(s), PacketEvent::Tcp(f)) => ConnState::Tcp(tcp::next_state(s, dir, f)),
            (ConnState::Sctp(s), PacketEvent::Sctp(c)) => {
                ConnState::Sctp(sctp::next_state(s, dir, c))
            }
            (s, _) => s,
        }
    }

    /// The name `ipvsadm -lc` prints.
    pub fn name(self) -> &'static str {
        match self {
            ConnState::Tcp(s) => s.name(),
            ConnState::Udp => "UDP",
            ConnState::Sctp(s) => s.name(),
        }
    }

    /// Compact code (for packed storage): TCP 0..=10, UDP 11, SCTP 16..=28.
    pub fn code(self) -> u8 {
        match self {
            ConnState::Tcp(s) => s as u8,
            ConnState::Udp => 11,
            ConnState::Sctp(s) => 16 + s as u8,
        }
    }

    /// Inverse of [`ConnState::code`].
    pub fn from_code(c: u8) -> Option<Self> {
        match c {
            0..=10 => Some(ConnState::Tcp(TcpState::ALL[c as usize])),
            11 => Some(ConnState::Udp),
            16..=28 => Some(ConnState::Sctp(SCTP_ALL[(c - 16) as usize])),
            _ => None,
        }
    }
}

const SCTP_ALL: [SctpState; 13] = [
    SctpState::None,
    SctpState::Init1,
    SctpState::Init,
    SctpState::CookieSent,
    SctpState::CookieReplied,
    SctpState::CookieWait,
    SctpState::CookieEchoed,
    SctpState::Established,
    SctpState::ShutdownSent,
    SctpState::ShutdownReceived,
    SctpState::ShutdownAckSent,
    SctpState::Rejected,
    SctpState::Closed,
];

/// Seconds each state lives without traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnTimeouts {
    /// Per TCP state, in [`TcpState::ALL`] order.
    pub tcp: [u32; 11],
    /// UDP.
    pub udp: u32,
    /// Per SCTP state, in declaration order.
    pub sctp: [u32; 13],
}

impl Default for ConnTimeouts {
    /// IPVS's defaults: TCP NONE 2, ESTABLISHED 900, SYN_SENT 120, SYN_RECV 60, FIN_WAIT 120,
    /// TIME_WAIT 120, CLOSE 10, CLOSE_WAIT 60, LAST_ACK 30, LISTEN 120, SYNACK 120; UDP 300;
    /// SCTP NONE 2, INIT1..COOKIE_ECHOED 10, ESTABLISHED 900, SHUTDOWN_* 2, REJECTED 10, CLOSED 10.
    fn default() -> Self {
        ConnTimeouts {
            tcp: [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120],
            udp: 300,
            sctp: [2, 10, 10, 10, 10, 10, 10, 900, 2, 2, 2, 10, 10],
        }
    }
}

impl ConnTimeouts {
    /// IPVS's defaults with `ipvsadm --set tcp tcpfin udp` applied: `tcp` sets ESTABLISHED,
    /// `tcpfin` FIN_WAIT, `udp` UDP, and `tcp_states` the other TCP states; 0 keeps the
    /// default, as with ipvsadm.
    pub fn from_set(set: &Timeouts) -> Self {
        ConnTimeouts::default().with_set(set)
    }

    /// These timeouts with `ipvsadm --set tcp tcpfin udp` and the per-state timeouts applied
    /// (0 or unset keeps the value here).
    pub fn with_set(self, set: &Timeouts) -> Self {
        let mut t = self;
        if set.tcp > 0 {
            t.tcp[TcpState::Established as usize] = set.tcp;
        }
        if set.tcp_fin > 0 {
            t.tcp[TcpState::FinWait as usize] = set.tcp_fin;
        }
        if set.udp > 0 {
            t.udp = set.udp;
        }
        for (state, _, secs) in set.tcp_states.entries() {
            if let Some(secs) = secs.filter(|s| *s > 0) {
                t.tcp[state as usize] = secs;
            }
        }
        t
    }

    /// Seconds a connection in `state` lives without traffic.
    pub fn secs(&self, state: ConnState) -> u32 {
        match state {
            ConnState::Tcp(s) => self.tcp[s as usize],
            ConnState::Udp => self.udp,
            ConnState::Sctp(s) => self.sctp[s as usize],
        }
    }

    /// [`ConnTimeouts::secs`] as a duration.
    pub fn timeout(&self, state: ConnState) -> Duration {
        Duration::from_secs(u64::from(self.secs(state)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_timeouts_are_ipvs() {
        let t = ConnTimeouts::default();
        let want = [
            ("NONE", 2),
            ("ESTABLISHED", 900),
            ("SYN_SENT", 120),
            ("SYN_RECV", 60),
            ("FIN_WAIT", 120),
            ("TIME_WAIT", 120),
            ("CLOSE", 10),
            ("CLOSE_WAIT", 60),
            ("LAST_ACK", 30),
            ("LISTEN", 120),
            ("SYNACK", 120),
        ];
        for (s, (name, secs)) in TcpState::ALL.into_iter().zip(want) {
            assert_eq!((s.name(), t.secs(ConnState::Tcp(s))), (name, secs));
        }
        assert_eq!(t.secs(ConnState::Udp), 300);
        assert_eq!(t.secs(ConnState::Sctp(SctpState::Established)), 900);
        assert_eq!(t.secs(ConnState::Sctp(SctpState::Init1)), 10);
        assert_eq!(t.timeout(ConnState::Udp), Duration::from_secs(300));
    }

    #[test]
    fn set_overrides_like_ipvsadm() {
        let t = ConnTimeouts::from_set(&Timeouts {
            tcp: 3600,
            tcp_fin: 30,
            udp: 5,
            ..Default::default()
        });
        assert_eq!(t.secs(ConnState::Tcp(TcpState::Established)), 3600);
        assert_eq!(t.secs(ConnState::Tcp(TcpState::FinWait)), 30);
        assert_eq!(t.secs(ConnState::Udp), 5);
        assert_eq!(
            t.secs(ConnState::Tcp(TcpState::TimeWait)),
            120,
            "others unchanged"
        );
        let keep = ConnTimeouts::from_set(&Timeouts {
            tcp: 0,
            tcp_fin: 0,
            udp: 0,
            ..Default::default()
        });
        assert_eq!(keep, ConnTimeouts::default());
        assert_eq!(
            ConnTimeouts::from_set(&Timeouts::default()),
            ConnTimeouts::default()
        );
    }

    #[test]
    fn codes_round_trip_and_activity() {
        let mut all: Vec<ConnState> = TcpState::ALL.into_iter().map(ConnState::Tcp).collect();
        all.push(ConnState::Udp);
        all.extend(SCTP_ALL.into_iter().map(ConnState::Sctp));
        for s in all {
            assert_eq!(ConnState::from_code(s.code()), Some(s));
        }
        assert_eq!(ConnState::from_code(12), None);
        assert!(!ConnState::Udp.is_active());
        assert_eq!(
            ConnState::initial(Protocol::Sctp),
            ConnState::Sctp(SctpState::None)
        );
    }

    #[test]
    fn events_of_another_protocol_change_nothing() {
        let s = ConnState::Tcp(TcpState::Established);
        assert_eq!(s.next(Direction::Input, PacketEvent::Udp), s);
        assert_eq!(
            ConnState::Udp.next(Direction::Input, PacketEvent::Udp),
            ConnState::Udp
        );
        let syn = PacketEvent::Tcp(TcpFlags {
            syn: true,
            ..Default::default()
        });
        assert_eq!(
            ConnState::initial(Protocol::Tcp).next(Direction::Input, syn),
            ConnState::Tcp(TcpState::SynRecv)
        );
    }
}
