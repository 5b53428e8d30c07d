//! UDP echo server: every datagram goes back to its sender, optionally tagged with the name.

use std::net::{SocketAddr, UdpSocket};

use crate::DemoError;

/// Echoes datagrams on `addr` forever.
pub fn serve_udp_echo(addr: SocketAddr, name: &str, tag: bool) -> Result<(), DemoError> {
    let sock = UdpSocket::bind(addr).map_err(|source| DemoError::Bind { addr, source })?;
    eprintln!("{name} echoing UDP on {}", sock.local_addr()?);
    let prefix = format!("{name}: ");
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::with_capacity(65536 + prefix.len());
    loop {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(v) => v,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        out.clear();
        if tag {
            out.extend_from_slice(prefix.as_bytes());
        }
        out.extend_from_slice(&buf[..n]);
        let _ = sock.send_to(&out, peer);
    }
}
