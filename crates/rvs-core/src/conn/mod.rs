//! Connection tracking: the IPVS state machines (TCP, UDP, SCTP), their timeouts, and the
//! connection table that expires entries and reports per-real active/inactive changes.
//!
//! * [`tcp`] — IPVS's TCP state table, driven by (state, flags, direction);
//! * [`sctp`] — SCTP association states (a documented subset of IPVS's transitions);
//! * [`state`] — one [`ConnState`] for every protocol, and [`ConnTimeouts`] (IPVS defaults,
//!   `ipvsadm --set tcp tcpfin udp`);
//! * [`table`] — the [`ConnTable`]: ≤ 80 bytes per connection, timer-wheel expiry.
//!
//! How an engine uses it with a [`crate::runtime::ServiceRuntime`]: schedule, then
//! [`ConnTable::insert`] and `conn_opened(.., active: false, ..)`; on each packet
//! [`ConnTable::packet`], and feed any [`ActivityChange`] to `conn_changed`; every second or so
//! [`ConnTable::expire`], and feed each [`Closed`] to `conn_closed`.

mod entry;
mod index;
pub mod sctp;
pub mod state;
pub mod table;
pub mod tcp;

pub use sctp::{SctpChunk, SctpState};
pub use state::{ConnState, ConnTimeouts, PacketEvent};
pub use table::{ActivityChange, Closed, ConnError, ConnKey, ConnTable, ConnView, NewConn};
pub use tcp::{Direction, TcpFlags, TcpState};

impl Direction {
    /// The direction of a packet for a connection forwarded with `method`: replies seen only
    /// with NAT and FULLNAT (IPVS treats DR/TUN input as input-only).
    pub fn of(method: crate::model::ForwardMethod, from_client: bool) -> Self {
        use crate::model::ForwardMethod::*;
        match (method, from_client) {
            (Nat | FullNat, true) => Direction::Input,
            (Nat | FullNat, false) => Direction::Output,
            (Dr | Tun, _) => Direction::InputOnly,
        }
    }
}

#[cfg(test)]
mod table_tests;
