//! SCTP association states, after IPVS's `ip_vs_proto_sctp.c`.
//!
//! The states and their default timeouts are IPVS's. The transitions are a documented subset of
//! IPVS's table: the state follows the first chunk of each packet through the four-way
//! handshake (INIT, INIT-ACK, COOKIE-ECHO, COOKIE-ACK), data, the three-way shutdown and ABORT;
//! chunks that do not move a normal association along (HEARTBEAT, ERROR, duplicates out of
//! order, ...) leave the state unchanged. IPVS additionally distinguishes INIT collisions and
//! some retransmission orders; rvs does not.

use super::tcp::Direction;
use serde::{Deserialize, Serialize};

/// IPVS's SCTP states, with the names `ipvsadm -lc` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum SctpState {
    None,
    /// INIT from the client seen.
    Init1,
    /// INIT-ACK from the real seen.
    Init,
    /// COOKIE-ECHO from the client seen.
    CookieSent,
    /// COOKIE-ACK from the real seen.
    CookieReplied,
    /// INIT from the real seen (association opened from the real's side).
    CookieWait,
    /// COOKIE-ECHO from the real seen.
    CookieEchoed,
    /// Association up: the only *active* state.
    Established,
    /// SHUTDOWN from the client seen.
    ShutdownSent,
    /// SHUTDOWN from the real seen.
    ShutdownReceived,
    /// SHUTDOWN-ACK seen.
    ShutdownAckSent,
    /// ABORT during setup.
    Rejected,
    /// SHUTDOWN-COMPLETE or ABORT after setup.
    Closed,
}

/// The first chunk of a packet, by SCTP chunk type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SctpChunk {
    Data,
    Init,
    InitAck,
    CookieEcho,
    CookieAck,
    Shutdown,
    ShutdownAck,
    ShutdownComplete,
    Abort,
    /// Any other chunk (HEARTBEAT, SACK, ERROR, ...).
    Other,
}

impl SctpChunk {
    /// From the chunk type byte (RFC 9260 §3.2).
    pub fn from_type(t: u8) -> Self {
        match t {
            0 => SctpChunk::Data,
            1 => SctpChunk::Init,
            2 => SctpChunk::InitAck,
            6 => SctpChunk::Abort,
            7 => SctpChunk::Shutdown,
            8 => SctpChunk::ShutdownAck,
            10 => SctpChunk::CookieEcho,
            11 => SctpChunk::CookieAck,
            14 => SctpChunk::ShutdownComplete,
            _ => SctpChunk::Other,
        }
    }
}

impl SctpState {
    /// The name `ipvsadm -lc` prints.
    pub fn name(self) -> &'static str {
        match self {
            SctpState::None => "NONE",
            SctpState::Init1 => "INIT1",
            SctpState::Init => "INIT",
            SctpState::CookieSent => "C_SENT",
            SctpState::CookieReplied => "C_REPLIED",
            SctpState::CookieWait => "C_WAIT",
            SctpState::CookieEchoed => "C_ECHOED",
            SctpState::Established => "ESTABLISHED",
            SctpState::ShutdownSent => "S_SENT",
            SctpState::ShutdownReceived => "S_RECEIVED",
            SctpState::ShutdownAckSent => "S_ACK_SENT",
            SctpState::Rejected => "REJECTED",
            SctpState::Closed => "CLOSED",
        }
    }

    /// Counts as an active connection (only ESTABLISHED).
    pub fn is_active(self) -> bool {
        self == SctpState::Established
    }

    /// Still setting up (an ABORT now means rejected, not closed).
    fn in_setup(self) -> bool {
        use SctpState::*;
        matches!(
            self,
            None | Init1 | Init | CookieSent | CookieReplied | CookieWait | CookieEchoed
        )
    }
}

/// The next state after a packet whose first chunk is `chunk`, going `dir`.
pub fn next_state(state: SctpState, dir: Direction, chunk: SctpChunk) -> SctpState {
    use SctpChunk as C;
    use SctpState::*;
    let from_client = dir != Direction::Output;
    match (chunk, from_client, state) {
        (C::Init, true, _) => Init1,        // client opens (or restarts)
        (C::Init, false, _) => CookieWait,  // real opens
        (C::InitAck, false, Init1) => Init, // real answers the client's INIT
        (C::InitAck, true, CookieWait) => CookieWait, // client answers the real's INIT
        (C::CookieEcho, true, Init1 | Init) => CookieSent, // client echoes the cookie
        (C::CookieEcho, false, CookieWait) => CookieEchoed, // real echoes the cookie
        (C::CookieAck, false, CookieSent) => CookieReplied, // real accepts the cookie
        (C::CookieAck, true, CookieEchoed) => Established, // client accepts the cookie
        (C::Data, _, CookieReplied | CookieEchoed) => Established, // first data: up
        (C::Shutdown, true, Established) => ShutdownSent, // client shuts down
        (C::Shutdown, false, Established) => ShutdownReceived, // real shuts down
        (C::ShutdownAck, _, ShutdownSent | ShutdownReceived) => ShutdownAckSent, // peer agrees
        (C::ShutdownComplete, _, _) => Closed, // shutdown finished
        (C::Abort, _, s) if s.in_setup() => Rejected, // refused during setup
        (C::Abort, _, _) => Closed,         // aborted
        (_, _, s) => s,                     // nothing else moves the state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::*;
    use SctpChunk as C;
    use SctpState::*;

    fn walk(steps: &[(Direction, SctpChunk, SctpState)]) {
        let mut s = None;
        for &(dir, chunk, want) in steps {
            s = next_state(s, dir, chunk);
            assert_eq!(s, want, "{chunk:?} {dir:?}");
        }
    }

    #[test]
    fn client_opened_association_lifecycle() {
        walk(&[
            (Input, C::Init, Init1),
            (Output, C::InitAck, Init),
            (Input, C::CookieEcho, CookieSent),
            (Output, C::CookieAck, CookieReplied),
            (Input, C::Data, Established),
            (Output, C::Other, Established),
            (Input, C::Shutdown, ShutdownSent),
            (Output, C::ShutdownAck, ShutdownAckSent),
            (Input, C::ShutdownComplete, Closed),
        ]);
    }

    #[test]
    fn real_opened_association_and_real_shutdown() {
        walk(&[
            (Output, C::Init, CookieWait),
            (Input, C::InitAck, CookieWait),
            (Output, C::CookieEcho, CookieEchoed),
            (Input, C::CookieAck, Established),
            (Output, C::Shutdown, ShutdownReceived),
            (Input, C::ShutdownAck, ShutdownAckSent),
        ]);
    }

    #[test]
    fn abort_rejects_in_setup_and_closes_after() {
        assert_eq!(next_state(Init1, Output, C::Abort), Rejected);
        assert_eq!(next_state(Established, Input, C::Abort), Closed);
        assert_eq!(next_state(ShutdownSent, InputOnly, C::Abort), Closed);
    }

    #[test]
    fn out_of_order_chunks_change_nothing() {
        assert_eq!(next_state(None, Input, C::Data), None);
        assert_eq!(next_state(Established, Output, C::CookieAck), Established);
        assert_eq!(next_state(Init1, Input, C::CookieAck), Init1);
    }

    #[test]
    fn chunk_types() {
        assert_eq!(SctpChunk::from_type(1), C::Init);
        assert_eq!(SctpChunk::from_type(14), C::ShutdownComplete);
        assert_eq!(SctpChunk::from_type(4), C::Other);
        assert!(Established.is_active() && !CookieReplied.is_active());
    }
}
