//! `UDP_CHECK`: send `payload` to the real; with `require_reply` a reply must arrive within
//! `connect_timeout` and start with those bytes (and respect the length bounds); without it the
//! check fails only when the real answers with ICMP port-unreachable (seen as `ECONNREFUSED` on
//! a connected socket), as keepalived does.

use crate::error::CheckError;
use rvs_config::keepalived::{Checker, UdpCheck};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::UdpSocket;

/// A UDP socket bound per `bindto`/`bind_port` and connected to `target`.
pub async fn connected_socket(
    checker: &Checker,
    target: SocketAddr,
) -> Result<UdpSocket, CheckError> {
    let any = if target.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let local = SocketAddr::new(
        checker.bindto.unwrap_or(any),
        checker.bind_port.unwrap_or(0),
    );
    let sock = UdpSocket::bind(local).await.map_err(CheckError::Connect)?;
    sock.connect(target).await.map_err(CheckError::Connect)?;
    Ok(sock)
}

/// Run the check.
pub async fn check(
    checker: &Checker,
    udp: &UdpCheck,
    target: SocketAddr,
) -> Result<(), CheckError> {
    let sock = connected_socket(checker, target).await?;
    sock.send(&udp.payload).await.map_err(map_refused)?;
    let mut buf = vec![0u8; 65536];
    let reply = tokio::time::timeout(checker.connect_timeout, sock.recv(&mut buf)).await;
    match (reply, &udp.require_reply) {
        (Err(_), None) => Ok(()),
        (Err(_), Some(_)) => Err(CheckError::Timeout(checker.connect_timeout)),
        (Ok(Err(e)), _) => Err(map_refused(e)),
        (Ok(Ok(n)), want) => judge(&buf[..n], udp, want.as_deref()),
    }
}

fn judge(reply: &[u8], udp: &UdpCheck, want: Option<&[u8]>) -> Result<(), CheckError> {
    if let Some(min) = udp.min_reply_length
        && reply.len() < min
    {
        return Err(CheckError::Reply(format!(
            "{} bytes, fewer than {min}",
            reply.len()
        )));
    }
    if let Some(max) = udp.max_reply_length
        && reply.len() > max
    {
        return Err(CheckError::Reply(format!(
            "{} bytes, more than {max}",
            reply.len()
        )));
    }
    match want {
        Some(w) if !reply.starts_with(w) => Err(CheckError::Reply(format!(
            "reply {} does not start with {}",
            crate::http::hex(&reply[..reply.len().min(32)]),
            crate::http::hex(w)
        ))),
        _ => Ok(()),
    }
}

/// `ECONNREFUSED` on a connected UDP socket is an ICMP port-unreachable.
pub fn map_refused(e: std::io::Error) -> CheckError {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        CheckError::Unreachable
    } else {
        CheckError::Io(e)
    }
}
