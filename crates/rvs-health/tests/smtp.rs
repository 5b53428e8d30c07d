//! `SMTP_CHECK` against a real SMTP server (OpenSMTPD, root only: it drops privileges to its own
//! users) and against scripted loopback servers that answer wrongly, slowly or endlessly.

mod common;

use common::*;
use rvs_health::{CheckError, run_check};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// An SMTP_CHECK of the real at `addr` (its port given as `connect_port`: the default is 25).
fn smtp_checker(addr: SocketAddr, extra: &str) -> rvs_config::keepalived::Checker {
    checker(
        addr,
        &format!(
            "SMTP_CHECK {{\n connect_port {}\n connect_timeout 1\n{extra}\n}}",
            addr.port()
        ),
    )
}

/// A server for one connection: writes `greeting`; then, with `helo_reply`, reads a line,
/// answers it, reads the next (QUIT) and answers `221`; without, reads until the client goes.
/// Returns the lines the client sent.
async fn scripted(
    greeting: Vec<u8>,
    helo_reply: Option<&'static [u8]>,
) -> (SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let h = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let (r, mut w) = s.into_split();
        let mut r = BufReader::new(r);
        let mut lines = Vec::new();
        if w.write_all(&greeting).await.is_err() {
            return lines;
        }
        let replies: &[&[u8]] = match helo_reply {
            Some(reply) => &[reply, b"221 bye\r\n"],
            None => &[],
        };
        for reply in replies {
            let mut line = String::new();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                return lines;
            }
            lines.push(line);
            let _ = w.write_all(reply).await;
        }
        let mut rest = String::new();
        while r.read_line(&mut rest).await.unwrap_or(0) > 0 {}
        lines
    });
    (addr, h)
}

fn smtp_error(e: &CheckError, needle: &str) {
    assert!(
        matches!(e, CheckError::Smtp(m) if m.contains(needle)),
        "expected an SMTP error with '{needle}', got: {e}"
    );
}

#[tokio::test]
async fn up_against_opensmtpd_and_down_once_it_stops() {
    if !rvs_testbed::is_root() {
        eprintln!(
            "SKIP smtp::up_against_opensmtpd_and_down_once_it_stops: needs root (smtpd drops \
             privileges to its own users and runs in a private mount namespace)"
        );
        return;
    }
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut smtpd = rvs_testbed::Smtpd::start(addr).unwrap_or_else(|e| panic!("{e}"));
    let c = smtp_checker(addr, " helo_name rvs-test.example");
    for seq in 0..3 {
        run_check(&c, addr, None, seq)
            .await
            .unwrap_or_else(|e| panic!("check {seq}: {e}\nsmtpd log:\n{}", smtpd.log()));
    }
    // every conversation ended with QUIT (smtpd logs "disconnected reason=quit"; the line of
    // the last one may come a moment after the checker has its verdict)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut log = smtpd.log();
    while log.matches("reason=quit").count() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        log = smtpd.log();
    }
    assert_eq!(log.matches("reason=quit").count(), 3, "{log}");
    smtpd.stop();
    let e = run_check(&c, addr, None, 4).await.unwrap_err();
    assert!(matches!(e, CheckError::Connect(_)), "{e}");
}

#[tokio::test]
async fn nothing_listening_is_down() {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let e = run_check(&smtp_checker(addr, ""), addr, None, 1)
        .await
        .unwrap_err();
    assert!(matches!(e, CheckError::Connect(_)), "{e}");
    assert!(e.to_string().contains("refused"), "{e}");
}

#[tokio::test]
async fn a_500_banner_is_down_with_the_reply_in_the_reason() {
    let (addr, srv) = scripted(b"500 go away\r\n".to_vec(), None).await;
    let e = run_check(&smtp_checker(addr, ""), addr, None, 1)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "SMTP: the greeting was '500 go away', expected 220"
    );
    assert!(
        srv.await.unwrap().is_empty(),
        "no HELO after a bad greeting"
    );
}

#[tokio::test]
async fn a_non_smtp_banner_is_down() {
    let (addr, _srv) = scripted(b"SSH-2.0-OpenSSH_9.2p1\r\n".to_vec(), None).await;
    let e = run_check(&smtp_checker(addr, ""), addr, None, 1)
        .await
        .unwrap_err();
    smtp_error(&e, "malformed reply line 'SSH-2.0-OpenSSH_9.2p1'");
}

#[tokio::test]
async fn multi_line_replies_and_the_default_helo_name() {
    let (addr, srv) = scripted(
        b"220-mx.example ESMTP\r\n220-no UCE\r\n220 ready\r\n".to_vec(),
        Some(b"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
    )
    .await;
    run_check(&smtp_checker(addr, ""), addr, None, 1)
        .await
        .unwrap();
    let lines = srv.await.unwrap();
    assert_eq!(
        lines,
        ["HELO smtpchecker.keepalived.org\r\n", "QUIT\r\n"],
        "keepalived's default helo_name, then QUIT"
    );
}

#[tokio::test]
async fn a_rejected_helo_is_down() {
    let (addr, srv) = scripted(b"220 mx\r\n".to_vec(), Some(b"501 5.5.4 bad name\r\n")).await;
    let e = run_check(&smtp_checker(addr, " helo_name x.example"), addr, None, 1)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "SMTP: the HELO reply was '501 5.5.4 bad name', expected 250"
    );
    assert_eq!(srv.await.unwrap()[0], "HELO x.example\r\n");
}

#[tokio::test]
async fn a_silent_or_closing_server_is_down_in_time() {
    let (addr, _srv) = scripted(Vec::new(), None).await;
    let c = checker(
        addr,
        &format!(
            "SMTP_CHECK {{\n connect_port {}\n connect_timeout 0.3\n}}",
            addr.port()
        ),
    );
    let t = Instant::now();
    let e = run_check(&c, addr, None, 1).await.unwrap_err();
    smtp_error(&e, "the greeting did not arrive within 300ms");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // a greeting cut short, then the connection closed
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let _ = s.write_all(b"220 mx ESM").await;
    });
    let e = run_check(&smtp_checker(addr, ""), addr, None, 2)
        .await
        .unwrap_err();
    smtp_error(
        &e,
        "connection closed before the greeting (after '220 mx ESM')",
    );
}

#[tokio::test]
async fn an_endless_reply_is_cut_off() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let srv = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut sent = 0usize;
        // continuation lines without end, until the checker hangs up
        while s.write_all(b"220-more\r\n").await.is_ok() {
            sent += 10;
            if sent > 10 << 20 {
                break;
            }
        }
        sent
    });
    let t = Instant::now();
    let e = run_check(&smtp_checker(addr, ""), addr, None, 1)
        .await
        .unwrap_err();
    smtp_error(&e, "reply longer than 4096 bytes");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let sent = srv.await.unwrap();
    assert!(
        sent < 10 << 20,
        "the checker hung up: the server stopped at {sent} bytes"
    );
}
