//! The demo backends answer as the quickstart and the proxy tests expect.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

#[test]
fn http_names_itself_and_keeps_the_connection_alive() {
    let addr = rvs_demo::serve_http("127.0.0.1:0".parse().unwrap(), "backend-9").unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let body = format!("backend-9 ({addr})\n");
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        let resp = String::from_utf8_lossy(&buf[..n]);
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        assert!(resp.contains("Connection: keep-alive"), "{resp}");
        assert!(resp.ends_with(&body), "{resp}");
    }
    // Connection: close is honoured: the server closes after the reply.
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut rest = String::new();
    s.read_to_string(&mut rest).unwrap();
    assert!(rest.ends_with(&body));
}

#[test]
fn udp_echo_tags_replies() {
    let addr = rvs_demo::spawn_udp_echo(([127, 0, 0, 1], 0).into(), "echo-1", true).unwrap();
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..20 {
        c.send_to(b"ping", addr).unwrap();
        if let Ok((n, from)) = c.recv_from(&mut buf) {
            assert_eq!(from, addr);
            assert_eq!(&buf[..n], b"echo-1: ping");
            return;
        }
    }
    panic!("no echo");
}
