//! # rvs-proxy — the userspace L4 data plane
//!
//! [`ProxyEngine`] implements [`rvs_core::engine::Engine`] for TCP and UDP virtual services
//! whose reals are all FULLNAT (`-b`): the proxy terminates the client's connection on the VIP
//! and opens its own to the real, so the real sees the director's address — the client's
//! address reaches it by the PROXY protocol (v1 or v2, per service or per real) if asked.
//!
//! * workers: one thread per core, each a current-thread tokio runtime with its own
//!   `SO_REUSEPORT` listener per service ([`worker`], [`listen`]);
//! * accept ([`accept`]): batched non-blocking `accept4` under an engine-wide connection cap
//!   ([`cap`]: at the cap clients wait in the listen backlog);
//! * TCP ([`tcp`]): bounded connect retries on other reals (a local failure — descriptors,
//!   memory, local address — is not the real's and is not retried: [`connect`]) (timeouts on a per-worker ticker,
//!   [`ticker`]), `splice(2)` relay with pooled pipes
//!   and correct half-close ([`relay`]), idle / FIN timeouts, operator reset (a signal per
//!   connection, [`stop`]);
//! * UDP ([`udp`]): sessions by client address with the UDP timeout, replies from the VIP,
//!   one-packet scheduling (`-o`, a session ends with its reply), a cap on sessions (each
//!   holds a descriptor), a real that refuses a datagram (ICMP port unreachable) counted for
//!   passive failure detection as a refused TCP connect;
//! * accounting ([`track`], [`stats`]): IPVS states (`SYN_RECV`, `ESTABLISHED`, `FIN_WAIT`,
//!   `CLOSE_WAIT`, `UDP`), active/inactive counts that feed the schedulers, lock-free counters.
//!
//! Packets for TCP: the proxy sees no segments, so each read from a socket (one `splice` into
//! the pipe, or one `read`) counts as one packet.

pub mod accept;
pub mod balance;
pub mod cap;
pub mod connect;
pub mod engine;
pub mod listen;
pub mod pp;
pub mod real;
pub mod relay;
pub mod shared;
mod slots;
pub mod stats;
pub mod stop;
mod support;
pub mod tcp;
pub mod ticker;
pub mod track;
pub mod udp;
pub mod worker;

pub use engine::{ProxyEngine, ProxyEngineConfig};

/// A current-thread runtime with IO and time, as a worker has (for unit tests).
#[cfg(test)]
pub(crate) fn test_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
