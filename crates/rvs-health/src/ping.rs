//! `PING_CHECK`: one ICMP (or ICMPv6) echo request; the real is up when the matching echo
//! reply arrives within `connect_timeout`. Uses an unprivileged ICMP datagram socket where
//! `net.ipv4.ping_group_range` allows it, a raw socket otherwise (root).

use crate::error::CheckError;
use rvs_config::keepalived::Checker;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::SocketAddr;
use tokio::net::UdpSocket;

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;

/// An ICMP socket: datagram if permitted, else raw. Returns it and whether it is raw.
fn icmp_socket(v6: bool) -> Result<(Socket, bool), CheckError> {
    let (domain, proto) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    match Socket::new(domain, Type::DGRAM, Some(proto)) {
        Ok(s) => Ok((s, false)),
        Err(_) => Socket::new(domain, Type::RAW, Some(proto))
            .map(|s| (s, true))
            .map_err(|e| CheckError::Icmp(format!("no ICMP socket (datagram or raw): {e}"))),
    }
}

/// The echo request (checksum filled in for IPv4; the kernel fills it for ICMPv6).
pub fn echo_request(v6: bool, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 }, 0, 0, 0];
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    if !v6 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether `packet` (ICMP header first) is our echo reply. Datagram sockets rewrite the
/// identifier, so it is only compared on raw sockets.
fn is_reply(packet: &[u8], v6: bool, ident: Option<u16>, seq: u16, payload: &[u8]) -> bool {
    let want = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    packet.len() >= 8
        && packet[0] == want
        && ident.is_none_or(|i| packet[4..6] == i.to_be_bytes())
        && packet[6..8] == seq.to_be_bytes()
        && &packet[8..] == payload
}

/// Run the check against `target`'s address.
pub async fn check(checker: &Checker, target: SocketAddr, seq: u16) -> Result<(), CheckError> {
    let v6 = target.is_ipv6();
    let (sock, raw) = icmp_socket(v6)?;
    if let Some(ip) = checker.bindto {
        sock.bind(&SockAddr::from(SocketAddr::new(ip, 0)))
            .map_err(CheckError::Connect)?;
    }
    sock.connect(&SockAddr::from(SocketAddr::new(target.ip(), 0)))
        .map_err(CheckError::Connect)?;
    sock.set_nonblocking(true)?;
    let sock = UdpSocket::from_std(std::net::UdpSocket::from(sock))?;
    let ident = (std::process::id() as u16) ^ seq.rotate_left(8);
    let payload = b"rvs-health-ping";
    sock.send(&echo_request(v6, ident, seq, payload)).await?;
    let fut = async {
        let mut buf = vec![0u8; 2048];
        loop {
            let n = sock.recv(&mut buf).await?;
            let mut pkt = &buf[..n];
            // raw IPv4 sockets deliver the IP header too
            if raw && !v6 && !pkt.is_empty() {
                let ihl = usize::from(pkt[0] & 0x0f) * 4;
                pkt = pkt.get(ihl..).unwrap_or(&[]);
            }
            if is_reply(pkt, v6, raw.then_some(ident), seq, payload) {
                return Ok(());
            }
        }
    };
    crate::error::with_timeout(checker.connect_timeout, fut).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_checksum_verifies() {
        let p = echo_request(false, 0x1234, 1, b"abc");
        assert_eq!(checksum(&p), 0, "a packet with its checksum sums to zero");
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 1]);
        let mut reply = p.clone();
        reply[0] = ECHO_REPLY_V4;
        assert!(is_reply(&reply, false, Some(0x1234), 1, b"abc"));
        assert!(!is_reply(&reply, false, Some(0x1234), 2, b"abc"));
        assert!(!is_reply(&p, false, None, 1, b"abc"));
    }
}
