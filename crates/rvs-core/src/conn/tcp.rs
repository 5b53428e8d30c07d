//! IPVS's TCP connection state machine (`ip_vs_proto_tcp.c`, table `tcp_states`).
//!
//! The director does not see a full TCP conversation, so IPVS tracks a coarse state from the
//! flags of the packets it forwards, separately for packets from the client (**input**), from
//! the real (**output**, NAT-like methods only) and for input when the director never sees the
//! replies (**input-only**: DR and TUN, or NAT before the first reply). Only one flag of each
//! segment counts, in this priority: RST, SYN, FIN, ACK; a segment with none of them changes
//! nothing.

use serde::{Deserialize, Serialize};

/// The IPVS TCP states, with the names `ipvsadm -lc` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum TcpState {
    /// Nothing seen yet.
    None,
    /// Handshake completed, data flowing: the only *active* state.
    Established,
    /// A SYN from the real (output direction) seen.
    SynSent,
    /// A SYN from the client seen.
    SynRecv,
    /// A FIN seen after establishment (our side closing).
    FinWait,
    /// Both sides closed.
    TimeWait,
    /// Reset or otherwise closed.
    Close,
    /// The client closed first, the real still sending.
    CloseWait,
    /// Waiting for the last ACK.
    LastAck,
    /// Listening (not reached by forwarded traffic except via sync).
    Listen,
    /// SYN+ACK seen (SYN-proxy / DoS-defence states).
    SynAck,
}

impl TcpState {
    /// Every state, in IPVS's order.
    pub const ALL: [TcpState; 11] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// The name `ipvsadm -lc` prints.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }

    /// Counts as an active connection (IPVS: only ESTABLISHED).
    pub fn is_active(self) -> bool {
        self == TcpState::Established
    }
}

/// Which way a packet goes, as IPVS distinguishes it for the state table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Client → real, on a connection whose replies pass through the director.
    Input,
    /// Real → client (seen only with NAT / FULLNAT).
    Output,
    /// Client → real when the director never sees the replies (DR, TUN; NAT until the first
    /// reply, as IPVS's `IP_VS_CONN_F_NOOUTPUT`).
    InputOnly,
}

/// The TCP flags of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags {
    pub syn: bool,
    pub fin: bool,
    pub ack: bool,
    pub rst: bool,
}

impl TcpFlags {
    /// From the flags byte of a TCP header (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10).
    pub fn from_bits(b: u8) -> Self {
        TcpFlags {
            fin: b & 0x01 != 0,
            syn: b & 0x02 != 0,
            rst: b & 0x04 != 0,
            ack: b & 0x10 != 0,
        }
    }

    /// The one flag that drives the state table (RST, then SYN, FIN, ACK), if any.
    pub fn event(self) -> Option<TcpEvent> {
        if self.rst {
            Some(TcpEvent::Rst)
        } else if self.syn {
            Some(TcpEvent::Syn)
        } else if self.fin {
            Some(TcpEvent::Fin)
        } else if self.ack {
            Some(TcpEvent::Ack)
        } else {
            None
        }
    }
}

/// The flag a segment is classified by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpEvent {
    Syn,
    Fin,
    Ack,
    Rst,
}

/// The next state after a segment with `flags` going `dir` (IPVS's `set_tcp_state`). A segment
/// with none of SYN/FIN/ACK/RST leaves the state unchanged.
pub fn next_state(state: TcpState, dir: Direction, flags: TcpFlags) -> TcpState {
    match flags.event() {
        Some(ev) => transition(state, dir, ev),
        None => state,
    }
}

/// One cell of IPVS's `tcp_states` table.
pub fn transition(state: TcpState, dir: Direction, ev: TcpEvent) -> TcpState {
    use Direction::*;
    use TcpEvent::*;
    use TcpState::*;
    match (dir, ev, state) {
        // ---- input (client → real, replies seen) ----
        (Input | InputOnly, Syn, Established | SynSent) => Established, // retransmitted SYN keeps it
        (Input | InputOnly, Syn, _) => SynRecv, // a client SYN (re)starts the handshake
        (Input, Fin, Established) => CloseWait, // client closes first
        (InputOnly, Fin, Established) => FinWait, // client closes, replies unseen
        (Input | InputOnly, Fin, None | Close) => Close, // FIN without a connection
        (Input | InputOnly, Fin, SynSent) => SynSent, // FIN before the handshake ends: ignored
        (Input, Fin, SynRecv | FinWait | TimeWait | SynAck) => TimeWait, // both sides closed
        (InputOnly, Fin, SynRecv | TimeWait | SynAck) => TimeWait, // closing, replies unseen
        (InputOnly, Fin, FinWait) => FinWait,   // repeated FIN
        (Input | InputOnly, Fin, CloseWait | LastAck | Listen) => state, // already closing
        (Input | InputOnly, Ack, None) => Close, // stray ACK: nothing to track
        (Input | InputOnly, Ack, Established | SynRecv | SynAck) => Established, // handshake done
        (Input | InputOnly, Ack, LastAck) => Close, // the last ACK
        (Input | InputOnly, Ack, _) => state,   // ACKs change nothing else
        (Input, Rst, SynRecv | SynAck) => SynRecv, // RST during handshake: keep waiting
        (InputOnly, Rst, SynRecv) => SynRecv,   // same, replies unseen
        (Input | InputOnly, Rst, LastAck | Listen) => state, // RST ignored while closing/listening
        (Input | InputOnly, Rst, _) => Close,   // client reset

        // ---- output (real → client) ----
        (Output, Syn, Established | Listen | SynRecv) => state, // SYN changes none of these
        (Output, Syn, SynAck) => SynRecv,                       // SYN after SYN+ACK
        (Output, Syn, _) => SynSent,                            // the real opens towards the client
        (Output, Fin, None | SynRecv | TimeWait | CloseWait | SynAck) => TimeWait, // both closed
        (Output, Fin, Established | FinWait) => FinWait,        // the real closes first
        (Output, Fin, Close) => Close,                          // already closed
        (Output, Fin, SynSent | LastAck | Listen) => state,     // FIN ignored here
        (Output, Ack, None | SynRecv | Listen | SynAck) => Established, // reply ACK: established
        (Output, Ack, _) => state,                              // ACKs change nothing else
        (Output, Rst, SynSent | TimeWait) => state,             // RST ignored here
        (Output, Rst, _) => Close,                              // the real resets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::*;
    use TcpEvent::*;
    use TcpState::*;

    /// IPVS's `tcp_states` table, transcribed row by row (columns in [`TcpState::ALL`] order).
    const KERNEL: [(Direction, TcpEvent, [TcpState; 11]); 12] = [
        (
            Input,
            Syn,
            [
                SynRecv,
                Established,
                Established,
                SynRecv,
                SynRecv,
                SynRecv,
                SynRecv,
                SynRecv,
                SynRecv,
                SynRecv,
                SynRecv,
            ],
        ),
        (
            Input,
            Fin,
            [
                Close, CloseWait, SynSent, TimeWait, TimeWait, TimeWait, Close, CloseWait, LastAck,
                Listen, TimeWait,
            ],
        ),
        (
            Input,
            Ack,
            [
                Close,
                Established,
                SynSent,
                Established,
                FinWait,
                TimeWait,
                Close,
                CloseWait,
                Close,
                Listen,
                Established,
            ],
        ),
        (
            Input,
            Rst,
            [
                Close, Close, Close, SynRecv, Close, Close, Close, Close, LastAck, Listen, SynRecv,
            ],
        ),
        (
            Output,
            Syn,
            [
                SynSent,
                Established,
                SynSent,
                SynRecv,
                SynSent,
                SynSent,
                SynSent,
                SynSent,
                SynSent,
                Listen,
                SynRecv,
            ],
        ),
        (
            Output,
            Fin,
            [
                TimeWait, FinWait, SynSent, TimeWait, FinWait, TimeWait, Close, TimeWait, LastAck,
                Listen, TimeWait,
            ],
        ),
        (
            Output,
            Ack,
            [
                Established,
                Established,
                SynSent,
                Established,
                FinWait,
                TimeWait,
                Close,
                CloseWait,
                LastAck,
                Established,
                Established,
            ],
        ),
        (
            Output,
            Rst,
            [
                Close, Close, SynSent, Close, Close, TimeWait, Close, Close, Close, Close, Close,
            ],
        ),
        (
            InputOnly,
            Syn,
            [
                SynRecv,
                Established,
                Established,
                SynRecv,
                SynRecv,
                SynRecv,
                SynRecv,
                SynRecv,
                SynRecv,
                SynRecv,
                SynRecv,
            ],
        ),
        (
            InputOnly,
            Fin,
            [
                Close, FinWait, SynSent, TimeWait, FinWait, TimeWait, Close, CloseWait, LastAck,
                Listen, TimeWait,
            ],
        ),
        (
            InputOnly,
            Ack,
            [
                Close,
                Established,
                SynSent,
                Established,
                FinWait,
                TimeWait,
                Close,
                CloseWait,
                Close,
                Listen,
                Established,
            ],
        ),
        (
            InputOnly,
            Rst,
            [
                Close, Close, Close, SynRecv, Close, Close, Close, Close, LastAck, Listen, Close,
            ],
        ),
    ];

    #[test]
    fn every_transition_matches_the_kernel_table() {
        for (dir, ev, row) in KERNEL {
            for (from, want) in TcpState::ALL.into_iter().zip(row) {
                assert_eq!(
                    transition(from, dir, ev),
                    want,
                    "{dir:?} {ev:?} from {}",
                    from.name()
                );
            }
        }
    }

    #[test]
    fn flag_priority_and_no_flags() {
        assert_eq!(TcpFlags::from_bits(0x02 | 0x10).event(), Some(Syn)); // SYN+ACK → syn
        assert_eq!(TcpFlags::from_bits(0x04 | 0x02).event(), Some(Rst));
        assert_eq!(TcpFlags::from_bits(0x01 | 0x10).event(), Some(Fin));
        assert_eq!(TcpFlags::from_bits(0x10).event(), Some(Ack));
        assert_eq!(TcpFlags::from_bits(0x08).event(), Option::None); // PSH only
        assert_eq!(
            next_state(Established, Input, TcpFlags::from_bits(0x08)),
            Established
        );
    }

    #[test]
    fn nat_handshake_and_close() {
        let f = TcpFlags::from_bits;
        let mut s = None;
        for (dir, bits, want) in [
            (Input, 0x02, SynRecv),     // client SYN
            (Output, 0x12, SynRecv),    // real SYN+ACK (classified as SYN)
            (Input, 0x10, Established), // client ACK
            (Input, 0x11, CloseWait),   // client FIN
            (Output, 0x11, TimeWait),   // real FIN
            (Input, 0x10, TimeWait),    // last ACK
        ] {
            s = next_state(s, dir, f(bits));
            assert_eq!(s, want);
        }
    }

    #[test]
    fn dr_handshake_and_close() {
        let f = TcpFlags::from_bits;
        let mut s = None;
        for (bits, want) in [
            (0x02, SynRecv),
            (0x10, Established),
            (0x11, FinWait),
            (0x10, FinWait),
        ] {
            s = next_state(s, InputOnly, f(bits));
            assert_eq!(s, want);
        }
        assert_eq!(next_state(Established, InputOnly, f(0x04)), Close);
    }

    #[test]
    fn only_established_is_active() {
        let active: Vec<_> = TcpState::ALL
            .into_iter()
            .filter(|s| s.is_active())
            .collect();
        assert_eq!(active, [Established]);
    }
}
