//! `DNS_CHECK`: send one query (`type`, `name`) over UDP; the real is up when a reply with the
//! same id, the QR bit, RCODE NOERROR and the same question arrives within `connect_timeout`.
//! The query is built by hand (RFC 1035 §4.1): a header, one question, recursion desired.

use crate::error::CheckError;
use crate::udp::{connected_socket, map_refused};
use rvs_config::keepalived::{Checker, DnsCheck};
use std::net::SocketAddr;

const HEADER_LEN: usize = 12;
const CLASS_IN: u16 = 1;
const FLAG_RD: u16 = 0x0100;
const FLAG_QR: u16 = 0x8000;

/// The wire form of `name` (dot-separated labels, `.` = the root).
pub fn encode_name(name: &str) -> Result<Vec<u8>, CheckError> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        if label.len() > 63 {
            return Err(CheckError::Dns(format!(
                "label '{label}' longer than 63 bytes"
            )));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    if out.len() > 255 {
        return Err(CheckError::Dns("name longer than 255 bytes".into()));
    }
    Ok(out)
}

/// A query with this id.
pub fn build_query(id: u16, dns: &DnsCheck) -> Result<Vec<u8>, CheckError> {
    let mut q = Vec::with_capacity(HEADER_LEN + dns.name.len() + 6);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&FLAG_RD.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    q.extend_from_slice(&[0; 6]); // AN, NS, AR counts
    q.extend_from_slice(&encode_name(&dns.name)?);
    q.extend_from_slice(&dns.qtype.code().to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

/// Judge a reply to `query`.
pub fn check_reply(query: &[u8], reply: &[u8]) -> Result<(), CheckError> {
    if reply.len() < query.len() {
        return Err(CheckError::Dns(format!(
            "reply too short ({} bytes)",
            reply.len()
        )));
    }
    if reply[..2] != query[..2] {
        return Err(CheckError::Dns("reply id does not match".into()));
    }
    let flags = u16::from_be_bytes([reply[2], reply[3]]);
    if flags & FLAG_QR == 0 {
        return Err(CheckError::Dns("not a response (QR clear)".into()));
    }
    let rcode = flags & 0x000f;
    if rcode != 0 {
        return Err(CheckError::Dns(format!("RCODE {rcode}")));
    }
    if reply[HEADER_LEN..query.len()] != query[HEADER_LEN..] {
        return Err(CheckError::Dns(
            "reply question differs from the query".into(),
        ));
    }
    Ok(())
}

/// Run the check.
pub async fn check(
    checker: &Checker,
    dns: &DnsCheck,
    target: SocketAddr,
    id: u16,
) -> Result<(), CheckError> {
    let query = build_query(id, dns)?;
    let sock = connected_socket(checker, target).await?;
    let fut = async {
        sock.send(&query).await.map_err(map_refused)?;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = sock.recv(&mut buf).await.map_err(map_refused)?;
            // a stray datagram with another id: keep waiting for ours
            if n >= 2 && buf[..2] != query[..2] {
                continue;
            }
            return check_reply(&query, &buf[..n]);
        }
    };
    crate::error::with_timeout(checker.connect_timeout, fut).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_config::keepalived::DnsType;

    #[test]
    fn query_layout() {
        let q = build_query(
            0x1234,
            &DnsCheck {
                qtype: DnsType::A,
                name: "example.org".into(),
            },
        )
        .unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[4..6], &[0, 1]);
        assert_eq!(&q[12..], b"\x07example\x03org\x00\x00\x01\x00\x01");
        let root = build_query(
            1,
            &DnsCheck {
                qtype: DnsType::Soa,
                name: ".".into(),
            },
        )
        .unwrap();
        assert_eq!(&root[12..], &[0, 0, 6, 0, 1]);
        assert!(encode_name(&"x".repeat(64)).is_err());
    }

    #[test]
    fn reply_judgement() {
        let q = build_query(
            7,
            &DnsCheck {
                qtype: DnsType::A,
                name: "a.b".into(),
            },
        )
        .unwrap();
        let mut r = q.clone();
        r[2] |= 0x80;
        assert!(check_reply(&q, &r).is_ok());
        let mut bad = r.clone();
        bad[3] |= 3; // NXDOMAIN
        assert!(check_reply(&q, &bad).is_err());
        assert!(check_reply(&q, &q).is_err(), "QR clear");
        assert!(check_reply(&q, &r[..5]).is_err());
    }
}
