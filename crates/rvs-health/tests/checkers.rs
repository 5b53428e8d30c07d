//! Every checker against real servers on loopback.

mod common;

use common::*;
use rvs_health::{CheckError, run_check};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, UdpSocket};

#[tokio::test]
async fn tcp_check_follows_a_listener_that_stops() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let c = checker(addr, "TCP_CHECK {\n connect_timeout 1\n}");
    run_check(&c, addr, None, 1).await.unwrap();
    drop(l);
    let e = run_check(&c, addr, None, 2).await.unwrap_err();
    assert!(matches!(e, CheckError::Connect(_)), "{e}");
}

#[tokio::test]
async fn tcp_check_uses_connect_port_and_bindto() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let real: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let c = checker(
        real,
        &format!("TCP_CHECK {{\n connect_port {port}\n bindto 127.0.0.2\n}}"),
    );
    let accept = tokio::spawn(async move { l.accept().await.unwrap().1 });
    run_check(&c, real, None, 1).await.unwrap();
    assert_eq!(accept.await.unwrap().ip().to_string(), "127.0.0.2");
}

#[tokio::test]
async fn http_get_status_and_digest_follow_the_body() {
    let body = Arc::new(Mutex::new("hello".to_string()));
    let (addr, _srv) = http_server(body.clone(), 200).await;
    let digest = rvs_health::http::digest_of(b"hello");
    let block =
        format!("HTTP_GET {{\n connect_timeout 2\n url {{\n path /\n digest {digest}\n }}\n}}");
    let c = checker(addr, &block);
    run_check(&c, addr, None, 1).await.unwrap();
    *body.lock().unwrap() = "changed".into();
    let e = run_check(&c, addr, None, 2).await.unwrap_err();
    assert!(matches!(e, CheckError::Digest { .. }), "{e}");

    let (addr404, _srv2) = http_server(body.clone(), 404).await;
    let c = checker(addr404, "HTTP_GET {\n url {\n path /x\n }\n}");
    let e = run_check(&c, addr404, None, 3).await.unwrap_err();
    assert!(matches!(e, CheckError::Status { got: 404, .. }), "{e}");
    let c = checker(
        addr404,
        "HTTP_GET {\n url {\n path /x\n status_code 404\n }\n}",
    );
    run_check(&c, addr404, None, 4).await.unwrap();
}

#[tokio::test]
async fn http_get_times_out_on_a_silent_server() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut keep = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            keep.push(s);
        }
    });
    let c = checker(
        addr,
        "HTTP_GET {\n connect_timeout 0.3\n url {\n path /\n }\n}",
    );
    let t = std::time::Instant::now();
    let e = run_check(&c, addr, None, 1).await.unwrap_err();
    assert!(matches!(e, CheckError::Timeout(_)), "{e}");
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
}

#[tokio::test]
async fn ssl_get_with_and_without_verification() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls.write_all(b"HTTP/1.0 200 OK\r\n\r\nsecure").await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let digest = rvs_health::http::digest_of(b"secure");
    let c = checker(
        addr,
        &format!(
            "SSL_GET {{\n url {{\n path /\n digest {digest}\n }}\n virtualhost localhost\n enable_sni\n}}"
        ),
    );
    run_check(&c, addr, None, 1).await.unwrap();
    let c = checker(
        addr,
        "SSL_GET {\n url {\n path /\n }\n virtualhost localhost\n enable_sni\n tls_verify\n}",
    );
    let e = run_check(&c, addr, None, 2).await.unwrap_err();
    assert!(
        matches!(e, CheckError::Tls(_)),
        "self-signed must fail verification: {e}"
    );
}

async fn udp_echo() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let _ = s.send_to(&buf[..n], from).await;
        }
    });
    addr
}

#[tokio::test]
async fn udp_check_payload_and_reply() {
    let addr = udp_echo().await;
    let c = checker(
        addr,
        "UDP_CHECK {\n connect_timeout 1\n payload 68656c6c6f\n require_reply 6865\n}",
    );
    run_check(&c, addr, None, 1).await.unwrap();
    let c = checker(
        addr,
        "UDP_CHECK {\n connect_timeout 1\n payload 68656c6c6f\n require_reply 7878\n}",
    );
    assert!(matches!(
        run_check(&c, addr, None, 2).await.unwrap_err(),
        CheckError::Reply(_)
    ));
    let c = checker(
        addr,
        "UDP_CHECK {\n payload 6869\n require_reply 68\n min_reply_length 3\n}",
    );
    assert!(matches!(
        run_check(&c, addr, None, 3).await.unwrap_err(),
        CheckError::Reply(_)
    ));
    let closed: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let c = checker(closed, "UDP_CHECK {\n connect_timeout 1\n payload 00\n}");
    assert!(matches!(
        run_check(&c, closed, None, 4).await.unwrap_err(),
        CheckError::Unreachable
    ));
}

/// A DNS responder: NOERROR with the question echoed for `good.test`, NXDOMAIN otherwise.
async fn dns_responder() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 512];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let mut r = buf[..n].to_vec();
            let good = r.windows(5).any(|w| w == b"\x04good");
            r[2] |= 0x80; // QR
            r[3] = if good { 0x80 } else { 0x83 }; // RA, rcode 0 / 3
            let _ = s.send_to(&r, from).await;
        }
    });
    addr
}

#[tokio::test]
async fn dns_check_against_a_responder() {
    let addr = dns_responder().await;
    let c = checker(
        addr,
        "DNS_CHECK {\n connect_timeout 1\n type A\n name good.test\n}",
    );
    run_check(&c, addr, None, 77).await.unwrap();
    let c = checker(
        addr,
        "DNS_CHECK {\n connect_timeout 1\n type A\n name bad.test\n}",
    );
    let e = run_check(&c, addr, None, 78).await.unwrap_err();
    assert!(matches!(e, CheckError::Dns(_)), "{e}");
}

#[tokio::test]
async fn misc_check_exit_codes_dynamic_weight_and_timeout() {
    let real: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let c = checker(real, "MISC_CHECK {\n misc_path \"exit 0\"\n}");
    assert_eq!(run_check(&c, real, None, 1).await.unwrap(), None);
    let c = checker(
        real,
        "MISC_CHECK {\n misc_path \"exit 1\"\n misc_dynamic\n}",
    );
    assert!(matches!(
        run_check(&c, real, None, 1).await.unwrap_err(),
        CheckError::ScriptExit(1)
    ));
    let c = checker(
        real,
        "MISC_CHECK {\n misc_path \"exit 7\"\n misc_dynamic\n}",
    );
    assert_eq!(run_check(&c, real, None, 1).await.unwrap(), Some(5));
    let c = checker(real, "MISC_CHECK {\n misc_path \"exit 7\"\n}");
    assert!(matches!(
        run_check(&c, real, None, 1).await.unwrap_err(),
        CheckError::ScriptExit(7)
    ));
    let t = std::time::Instant::now();
    let c = checker(
        real,
        "MISC_CHECK {\n misc_path \"sleep 5\"\n misc_timeout 0.3\n}",
    );
    assert!(matches!(
        run_check(&c, real, None, 1).await.unwrap_err(),
        CheckError::Timeout(_)
    ));
    assert!(t.elapsed() < std::time::Duration::from_secs(3));
}

#[tokio::test]
async fn ping_check_loopback() {
    let real: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let c = checker(real, "PING_CHECK {\n connect_timeout 1\n}");
    match run_check(&c, real, None, 1).await {
        Ok(_) => {}
        Err(CheckError::Icmp(why)) => eprintln!("skipping: no ICMP socket here ({why})"),
        Err(e) => panic!("ping 127.0.0.1 failed: {e}"),
    }
}

#[tokio::test]
async fn ipv6_tcp_check() {
    let Ok(l) = TcpListener::bind("[::1]:0").await else {
        eprintln!("skipping: no IPv6 loopback");
        return;
    };
    let addr = l.local_addr().unwrap();
    let c = checker(addr, "TCP_CHECK {\n connect_timeout 1\n}");
    run_check(&c, addr, None, 1).await.unwrap();
    drop(l);
    assert!(run_check(&c, addr, None, 2).await.is_err());
}
