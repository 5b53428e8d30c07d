//! PROXY protocol v1 and v2 through the proxy engine: the header a test server receives parses
//! (with the `ppp` crate) to the client's and the VIP's addresses, and the client's bytes follow
//! it intact. v1 is set on the service, v2 as a per-real override.

mod common;

use common::*;
use rvs_core::{ProxyProtocol, RealServer, SchedulerKind, ServiceKey, ServiceOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

/// A server that reads one PROXY header of `version` and then 5 payload bytes; sends back
/// (source, destination, payload) on the channel and echoes "ok".
fn header_server(
    version: u8,
) -> (
    SocketAddr,
    mpsc::Receiver<(SocketAddr, SocketAddr, Vec<u8>)>,
) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let header = if version == 1 {
            read_v1(&mut s)
        } else {
            read_v2(&mut s)
        };
        let mut payload = [0u8; 5];
        s.read_exact(&mut payload).unwrap();
        let (src, dst) = parse(version, &header);
        tx.send((src, dst, payload.to_vec())).unwrap();
        s.write_all(b"ok").unwrap();
    });
    (addr, rx)
}

fn read_v1(s: &mut TcpStream) -> Vec<u8> {
    let mut h = Vec::new();
    let mut b = [0u8; 1];
    while !h.ends_with(b"\r\n") {
        s.read_exact(&mut b).unwrap();
        h.push(b[0]);
    }
    h
}

fn read_v2(s: &mut TcpStream) -> Vec<u8> {
    let mut h = vec![0u8; 16];
    s.read_exact(&mut h).unwrap();
    let len = u16::from_be_bytes([h[14], h[15]]) as usize;
    let mut rest = vec![0u8; len];
    s.read_exact(&mut rest).unwrap();
    h.extend(rest);
    h
}

fn parse(version: u8, h: &[u8]) -> (SocketAddr, SocketAddr) {
    if version == 1 {
        let parsed = ppp::v1::Header::try_from(h).expect("valid v1 header");
        match parsed.addresses {
            ppp::v1::Addresses::Tcp4(a) => (
                (a.source_address, a.source_port).into(),
                (a.destination_address, a.destination_port).into(),
            ),
            other => panic!("unexpected {other:?}"),
        }
    } else {
        let parsed = ppp::v2::Header::try_from(h).expect("valid v2 header");
        assert_eq!(parsed.command, ppp::v2::Command::Proxy);
        assert_eq!(parsed.protocol, ppp::v2::Protocol::Stream);
        match parsed.addresses {
            ppp::v2::Addresses::IPv4(a) => (
                (a.source_address, a.source_port).into(),
                (a.destination_address, a.destination_port).into(),
            ),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn check(vip: SocketAddr, rx: mpsc::Receiver<(SocketAddr, SocketAddr, Vec<u8>)>) {
    let mut c = TcpStream::connect(vip).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"hello").unwrap();
    let mut ok = [0u8; 2];
    c.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"ok");
    let (src, dst, payload) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(src, c.local_addr().unwrap(), "the client's own address");
    assert_eq!(dst, vip);
    assert_eq!(payload, b"hello");
}

#[test]
fn v1_set_on_the_service() {
    let mut e = engine();
    let (real, rx) = header_server(1);
    let vip = free_addr("127.0.0.1");
    let mut opts = options(SchedulerKind::Rr);
    opts.proxy.proxy_protocol = ProxyProtocol::V1;
    add_service(&mut e, ServiceKey::tcp(vip), opts, &[fullnat(real, 1)]);
    check(vip, rx);
}

#[test]
fn v2_set_on_the_real_overrides_the_service() {
    let mut e = engine();
    let (real, rx) = header_server(2);
    let vip = free_addr("127.0.0.1");
    let opts = ServiceOptions {
        ..options(SchedulerKind::Rr)
    }; // service: no header
    let r = RealServer {
        proxy_protocol: Some(ProxyProtocol::V2),
        ..fullnat(real, 1)
    };
    add_service(&mut e, ServiceKey::tcp(vip), opts, &[r]);
    check(vip, rx);
}
