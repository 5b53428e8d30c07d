//! Connection tracking of the XDP program, userspace side: the `rvs_config` value — rvs-core's
//! IPVS TCP state table ([`rvs_core::conn::tcp::transition`]) and per-state timeouts
//! ([`ConnTimeouts`], `ipvsadm --set tcp tcpfin udp` applied) — and reading `rvs_conns`
//! entries back: state names, expiry, active/inactive.
//!
//! The program (`bpf/conn_state.h`) holds no table of its own: it indexes the one written here,
//! so its transitions are rvs-core's by construction; the packet fixtures check the C indexing.

use crate::abi::{self, Config, Conn};
use rvs_core::conn::tcp::{TcpEvent, transition};
use rvs_core::conn::{ConnState, ConnTimeouts, Direction, TcpState};
use rvs_core::desired::Timeouts;
use rvs_core::model::ForwardMethod;

const STATES: usize = abi::RVS_CONN_STATES as usize;

/// The program's direction codes.
const DIRS: [(u64, Direction); 3] = [
    (abi::RVS_DIR_INPUT, Direction::Input),
    (abi::RVS_DIR_OUTPUT, Direction::Output),
    (abi::RVS_DIR_INPUT_ONLY, Direction::InputOnly),
];

/// The program's event codes.
const EVENTS: [(u64, TcpEvent); 4] = [
    (abi::RVS_EV_SYN, TcpEvent::Syn),
    (abi::RVS_EV_FIN, TcpEvent::Fin),
    (abi::RVS_EV_ACK, TcpEvent::Ack),
    (abi::RVS_EV_RST, TcpEvent::Rst),
];

/// Index of `rvs_config.tcp_next` for (direction, event, state) codes.
pub fn table_index(dir: u64, event: u64, state: u64) -> usize {
    ((dir * abi::RVS_TCP_EVENTS + event) * abi::RVS_CONN_STATES + state) as usize
}

/// The `rvs_config` value for `timeouts`: rvs-core's TCP table; cells the program never
/// reaches (unused direction row, state codes above SYNACK) keep the state unchanged. The
/// untracked-ICMP limit is the default (`RVS_ICMP_RATE_DEFAULT` / `RVS_ICMP_BURST_DEFAULT`).
pub fn config(timeouts: &ConnTimeouts) -> Config {
    let mut c = Config {
        timeout_ns: [0; STATES],
        tcp_next: [0; (abi::RVS_DIRS * abi::RVS_TCP_EVENTS * abi::RVS_CONN_STATES) as usize],
        icmp_rate: abi::RVS_ICMP_RATE_DEFAULT as u32,
        icmp_burst: abi::RVS_ICMP_BURST_DEFAULT as u32,
    };
    for (i, cell) in c.tcp_next.iter_mut().enumerate() {
        *cell = (i % STATES) as u8;
    }
    for s in TcpState::ALL {
        c.timeout_ns[s as usize] = secs_ns(timeouts.secs(ConnState::Tcp(s)));
    }
    c.timeout_ns[abi::RVS_STATE_UDP as usize] = secs_ns(timeouts.udp);
    for (d, dir) in DIRS {
        for (e, ev) in EVENTS {
            for s in TcpState::ALL {
                c.tcp_next[table_index(d, e, s as u64)] = transition(s, dir, ev) as u8;
            }
        }
    }
    c
}

fn secs_ns(s: u32) -> u64 {
    u64::from(s) * 1_000_000_000
}

/// The per-state timeouts in force: `base` (IPVS's defaults unless the engine was given
/// others) with `ipvsadm --set` applied (`tcp` → ESTABLISHED, `tcpfin` → FIN_WAIT, `udp`;
/// 0 keeps the base value, as with ipvsadm).
pub fn timeouts(base: &ConnTimeouts, set: &Timeouts) -> ConnTimeouts {
    base.with_set(set)
}

/// The state an entry's code stands for (`None` for a code the program never writes).
pub fn state_of(code: u8) -> Option<ConnState> {
    ConnState::from_code(code).filter(|s| matches!(s, ConnState::Tcp(_) | ConnState::Udp))
}

/// The name `ipvsadm -lnc` prints for a state code.
pub fn state_name(code: u8) -> &'static str {
    state_of(code).map_or("UNKNOWN", ConnState::name)
}

/// Counts as an active connection (ESTABLISHED only, as IPVS).
pub fn is_active(code: u8) -> bool {
    state_of(code).is_some_and(ConnState::is_active)
}

/// How long an entry in state `code` lives without traffic under `cfg`.
pub fn timeout_ns(cfg: &Config, code: u8) -> u64 {
    cfg.timeout_ns[code as usize % STATES]
}

/// Whether a connection entry is expired (or absent) at `now` (monotonic ns, the program's
/// clock).
pub fn expired(cfg: &Config, conn: Option<&Conn>, now: u64) -> bool {
    conn.is_none_or(|c| now.saturating_sub(c.last_ns) > timeout_ns(cfg, c.state))
}

/// The program's direction code for a client packet to a real of `method`.
pub fn client_dir(method: ForwardMethod) -> u64 {
    match Direction::of(method, true) {
        Direction::Input => abi::RVS_DIR_INPUT,
        Direction::Output => abi::RVS_DIR_OUTPUT,
        Direction::InputOnly => abi::RVS_DIR_INPUT_ONLY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_core::conn::TcpFlags;

    #[test]
    fn state_codes_are_rvs_core_codes() {
        let abi_codes = [
            abi::RVS_STATE_NONE,
            abi::RVS_STATE_ESTABLISHED,
            abi::RVS_STATE_SYN_SENT,
            abi::RVS_STATE_SYN_RECV,
            abi::RVS_STATE_FIN_WAIT,
            abi::RVS_STATE_TIME_WAIT,
            abi::RVS_STATE_CLOSE,
            abi::RVS_STATE_CLOSE_WAIT,
            abi::RVS_STATE_LAST_ACK,
            abi::RVS_STATE_LISTEN,
            abi::RVS_STATE_SYNACK,
        ];
        for (s, code) in TcpState::ALL.into_iter().zip(abi_codes) {
            assert_eq!(u64::from(ConnState::Tcp(s).code()), code, "{}", s.name());
            assert_eq!(state_name(code as u8), s.name());
        }
        assert_eq!(
            u64::from(ConnState::Udp.code()),
            abi::RVS_STATE_UDP,
            "UDP code"
        );
        assert_eq!(state_name(abi::RVS_STATE_UDP as u8), "UDP");
        assert_eq!(
            state_name(16),
            "UNKNOWN",
            "SCTP codes are not the program's"
        );
        assert!(is_active(abi::RVS_STATE_ESTABLISHED as u8));
        assert!(!is_active(abi::RVS_STATE_UDP as u8) && !is_active(abi::RVS_STATE_SYN_RECV as u8));
    }

    #[test]
    fn table_is_rvs_core_transition_at_the_c_index() {
        let c = config(&ConnTimeouts::default());
        for (d, dir) in DIRS {
            for (e, ev) in EVENTS {
                for s in TcpState::ALL {
                    let got = c.tcp_next[table_index(d, e, s as u64)];
                    assert_eq!(got, transition(s, dir, ev) as u8, "{dir:?} {ev:?} {s:?}");
                }
            }
        }
        // The event order is the program's flag priority (RST, SYN, FIN, ACK): SYN+ACK is SYN.
        let syn_ack = TcpFlags::from_bits(0x12).event();
        assert_eq!(syn_ack, Some(TcpEvent::Syn));
        // A few cells spelled out (IPVS's tcp_states).
        let at = |d, e, s: TcpState| c.tcp_next[table_index(d, e, s as u64)];
        assert_eq!(
            at(abi::RVS_DIR_INPUT, abi::RVS_EV_SYN, TcpState::None),
            TcpState::SynRecv as u8
        );
        assert_eq!(
            at(abi::RVS_DIR_INPUT, abi::RVS_EV_FIN, TcpState::Established),
            TcpState::CloseWait as u8
        );
        assert_eq!(
            at(
                abi::RVS_DIR_INPUT_ONLY,
                abi::RVS_EV_FIN,
                TcpState::Established
            ),
            TcpState::FinWait as u8
        );
        assert_eq!(
            at(abi::RVS_DIR_OUTPUT, abi::RVS_EV_RST, TcpState::Established),
            TcpState::Close as u8
        );
        // Unreached cells keep the state.
        assert_eq!(c.tcp_next[table_index(3, 0, 5)], 5);
        assert_eq!(c.tcp_next[table_index(0, 0, 11)], 11);
    }

    #[test]
    fn timeouts_are_ipvs_with_set_applied() {
        let base = ConnTimeouts::default();
        let c = config(&base);
        let s = 1_000_000_000;
        assert_eq!(c.timeout_ns[abi::RVS_STATE_ESTABLISHED as usize], 900 * s);
        assert_eq!(c.timeout_ns[abi::RVS_STATE_SYN_RECV as usize], 60 * s);
        assert_eq!(c.timeout_ns[abi::RVS_STATE_CLOSE as usize], 10 * s);
        assert_eq!(c.timeout_ns[abi::RVS_STATE_UDP as usize], 300 * s);
        let t = timeouts(
            &base,
            &Timeouts {
                tcp: 3600,
                tcp_fin: 30,
                udp: 5,
                ..Default::default()
            },
        );
        assert_eq!(
            t,
            ConnTimeouts::from_set(&Timeouts {
                tcp: 3600,
                tcp_fin: 30,
                udp: 5,
                ..Default::default()
            })
        );
        let mut short = base;
        short.tcp = [1; 11];
        let t = timeouts(
            &short,
            &Timeouts {
                tcp: 0,
                tcp_fin: 7,
                udp: 0,
                ..Default::default()
            },
        );
        assert_eq!((t.tcp[1], t.tcp[4], t.tcp[5], t.udp), (1, 7, 1, 300));
        let mut set = Timeouts::default();
        set.tcp_states.time_wait = Some(7);
        set.tcp_states.syn_recv = Some(3);
        let c = config(&timeouts(&base, &set));
        assert_eq!(c.timeout_ns[abi::RVS_STATE_TIME_WAIT as usize], 7 * s);
        assert_eq!(c.timeout_ns[abi::RVS_STATE_SYN_RECV as usize], 3 * s);
        assert_eq!(c.timeout_ns[abi::RVS_STATE_CLOSE as usize], 10 * s);
        let cfg = config(&t);
        let conn = Conn {
            state: abi::RVS_STATE_TIME_WAIT as u8,
            last_ns: 10 * s,
            ..Default::default()
        };
        assert!(!expired(&cfg, Some(&conn), 11 * s));
        assert!(expired(&cfg, Some(&conn), 11 * s + 1));
        assert!(expired(&cfg, None, 0));
    }

    #[test]
    fn directions_follow_the_method() {
        assert_eq!(client_dir(ForwardMethod::Dr), abi::RVS_DIR_INPUT_ONLY);
        assert_eq!(client_dir(ForwardMethod::Tun), abi::RVS_DIR_INPUT_ONLY);
        assert_eq!(client_dir(ForwardMethod::Nat), abi::RVS_DIR_INPUT);
        assert_eq!(client_dir(ForwardMethod::FullNat), abi::RVS_DIR_INPUT);
    }
}
