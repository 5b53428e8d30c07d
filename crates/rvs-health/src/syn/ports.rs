//! The prober's source ports: a block of local TCP ports held by ordinary TCP sockets that are
//! bound (to the wildcard address) but never listen or connect. While they are held the kernel
//! hands none of these ports to its own connections (neither as ephemeral ports nor to another
//! `bind`), and a packet to them finds no socket that accepts it, so the kernel answers a real's
//! SYN-ACK with an RST — the real keeps no half-open connection.
//!
//! The block is searched upward from the end of `net.ipv4.ip_local_port_range` (so the kernel's
//! ephemeral range is not narrowed), or from a given first port; a block any of whose ports is
//! already bound by someone else is skipped.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// A held block of ports `first..first + len`.
#[derive(Debug)]
pub struct PortBlock {
    first: u16,
    len: u16,
    /// The sockets that hold the ports (dropping them releases the ports).
    _held: Vec<Socket>,
}

impl PortBlock {
    /// First port of the block.
    pub fn first(&self) -> u16 {
        self.first
    }

    /// Last port of the block.
    pub fn last(&self) -> u16 {
        self.first + (self.len - 1)
    }

    /// Number of ports.
    pub fn len(&self) -> u16 {
        self.len
    }

    /// Never empty (kept for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Bind one TCP socket to `port` on every address: dual-stack `[::]` where IPv6 exists,
/// `0.0.0.0` otherwise.
fn hold(port: u16) -> io::Result<Socket> {
    match Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP)) {
        Ok(s) => {
            s.set_only_v6(false)?;
            s.bind(&SockAddr::from(SocketAddr::from((
                Ipv6Addr::UNSPECIFIED,
                port,
            ))))?;
            Ok(s)
        }
        Err(_) => {
            let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
            s.bind(&SockAddr::from(SocketAddr::from((
                Ipv4Addr::UNSPECIFIED,
                port,
            ))))?;
            Ok(s)
        }
    }
}

/// The end of the kernel's ephemeral port range (60999 if unreadable).
fn ephemeral_end() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(60999)
}

/// Hold `len` consecutive ports, searching upward from `from` (default: just above the
/// ephemeral range; if nothing is free above it, from 1024).
pub fn reserve(len: u16, from: Option<u16>) -> io::Result<PortBlock> {
    assert!(len > 0, "an empty port block");
    let starts = match from {
        Some(f) => vec![f],
        None => vec![ephemeral_end().saturating_add(1), 1024],
    };
    let mut last_err = io::Error::new(io::ErrorKind::AddrInUse, "no free port block");
    for start in starts {
        let mut first = u32::from(start);
        while first + u32::from(len) - 1 <= u32::from(u16::MAX) {
            let mut held = Vec::with_capacity(usize::from(len));
            let mut busy = None;
            for p in first..first + u32::from(len) {
                match hold(p as u16) {
                    Ok(s) => held.push(s),
                    Err(e) => {
                        busy = Some(p);
                        last_err = e;
                        break;
                    }
                }
            }
            match busy {
                None => {
                    return Ok(PortBlock {
                        first: first as u16,
                        len,
                        _held: held,
                    });
                }
                Some(p) => first = p + 1,
            }
        }
    }
    Err(last_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_port_cannot_be_bound_again_and_busy_ports_are_skipped() {
        let a = reserve(4, Some(47000)).unwrap();
        assert!(a.first() >= 47000);
        let again = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let e = again
            .bind(&SockAddr::from(SocketAddr::from((
                Ipv4Addr::LOCALHOST,
                a.first(),
            ))))
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        // a second block from the same start skips the held one
        let b = reserve(4, Some(a.first())).unwrap();
        assert!(b.first() > a.last(), "{} after {}", b.first(), a.last());
        let first = a.first();
        drop(a);
        again
            .bind(&SockAddr::from(SocketAddr::from((
                Ipv4Addr::LOCALHOST,
                first,
            ))))
            .unwrap_or_else(|e| panic!("released on drop: {e}"));
    }
}
