//! UDP echo server: every datagram goes back to its sender, optionally tagged with the name.
//!
//! Bind first ([`UdpEcho::bind`], [`spawn_udp_echo`]), then serve: a caller that sends right
//! after gets its datagram queued on the bound socket instead of an ICMP port unreachable.

use std::net::{SocketAddr, UdpSocket};
use std::thread;

use crate::DemoError;

/// A bound UDP echo server.
pub struct UdpEcho {
    sock: UdpSocket,
    name: String,
    tag: bool,
}

impl UdpEcho {
    /// Binds `addr` (port 0 picks a free port); with `tag`, replies are prefixed `<name>: `.
    pub fn bind(addr: SocketAddr, name: &str, tag: bool) -> Result<Self, DemoError> {
        let sock = UdpSocket::bind(addr).map_err(|source| DemoError::Bind { addr, source })?;
        Ok(Self {
            sock,
            name: name.to_string(),
            tag,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("bound socket has an address")
    }

    /// Echoes datagrams forever (returns only on a receive error).
    pub fn serve_forever(self) -> Result<(), DemoError> {
        eprintln!("{} echoing UDP on {}", self.name, self.local_addr());
        let prefix = format!("{}: ", self.name);
        let mut buf = vec![0u8; 65536];
        let mut out = Vec::with_capacity(65536 + prefix.len());
        loop {
            let (n, peer) = match self.sock.recv_from(&mut buf) {
                Ok(v) => v,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            out.clear();
            if self.tag {
                out.extend_from_slice(prefix.as_bytes());
            }
            out.extend_from_slice(&buf[..n]);
            let _ = self.sock.send_to(&out, peer);
        }
    }
}

/// Echoes datagrams on `addr` forever.
pub fn serve_udp_echo(addr: SocketAddr, name: &str, tag: bool) -> Result<(), DemoError> {
    UdpEcho::bind(addr, name, tag)?.serve_forever()
}

/// Binds, then echoes on a background thread; returns the bound address (the socket is bound
/// when this returns).
pub fn spawn_udp_echo(addr: SocketAddr, name: &str, tag: bool) -> Result<SocketAddr, DemoError> {
    let server = UdpEcho::bind(addr, name, tag)?;
    let local = server.local_addr();
    thread::spawn(move || server.serve_forever());
    Ok(local)
}
