//! How a relayed TCP connection ends: the FIN timeout after a half-close, and a reset from one
//! side reaching the other as a reset (loopback only).

mod common;

use common::*;
use rvs_core::SchedulerKind;
use rvs_core::desired::{Change, Timeouts};
use rvs_core::engine::Engine;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A real that echoes until the client's FIN, then answers `bye` after `delay`.
fn echo_then_bye(delay: Duration) -> SocketAddr {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in server.incoming() {
            let Ok(mut c) = c else { return };
            std::thread::spawn(move || {
                let mut b = [0u8; 64];
                while let Ok(n @ 1..) = c.read(&mut b) {
                    let _ = c.write_all(&b[..n]);
                }
                std::thread::sleep(delay);
                let _ = c.write_all(b"bye");
            });
        }
    });
    addr
}

#[test]
fn fin_timeout_runs_from_the_half_close_not_from_the_last_data() {
    let mut e = engine();
    e.apply(&[Change::SetTimeouts(Timeouts {
        tcp: 900,
        tcp_fin: 1,
        udp: 300,
        ..Default::default()
    })])
    .unwrap();
    let real = echo_then_bye(Duration::from_millis(300));
    let (vip, _) = tcp_service(&mut e, "127.0.0.1", options(SchedulerKind::Rr), &[real]);
    let mut c = client(vip, b"hi");
    let mut b = [0u8; 2];
    c.read_exact(&mut b).unwrap();
    // Idle for longer than the FIN timeout while established (the 900 s timeout applies)...
    std::thread::sleep(Duration::from_millis(1500));
    // ...then half-close: the real's answer 300 ms later is within the 1 s FIN timeout.
    c.shutdown(Shutdown::Write).unwrap();
    let mut rest = String::new();
    c.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "bye");
    assert_eq!(e.stats().outcomes["idle_timeout"], 0);
}

/// Closes `s` with RST (linger 0).
fn abort(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

/// Reads until EOF or an error: the bytes, and how the stream ended.
fn read_until_end(c: &mut TcpStream) -> (String, std::io::Result<()>) {
    let mut got = Vec::new();
    let mut b = [0u8; 64];
    let end = loop {
        match c.read(&mut b) {
            Ok(0) => break Ok(()),
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) => break Err(e),
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), end)
}

/// A real that takes one connection, reads its first `first` bytes (5 s read timeout), then
/// hands it to `then` on its own thread.
fn one_connection_real(first: usize, then: impl FnOnce(TcpStream) + Send + 'static) -> SocketAddr {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut c, _) = server.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = vec![0u8; first];
        c.read_exact(&mut b).unwrap();
        then(c);
    });
    addr
}

#[test]
fn a_real_that_resets_resets_the_client_too() {
    let mut e = engine();
    // A real that answers part of a response, then aborts with RST.
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let real = server.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut c, _) = server.accept().unwrap();
        let mut b = [0u8; 16];
        let _ = c.read(&mut b);
        c.write_all(b"part-").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        abort(c);
    });
    let (vip, key) = tcp_service(&mut e, "127.0.0.1", options(SchedulerKind::Rr), &[real]);
    let mut c = client(vip, b"go");
    let (got, end) = read_until_end(&mut c);
    assert_eq!(got, "part-");
    let err = end.expect_err("a truncated response must not end with a clean close");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    assert!(wait_until(Duration::from_secs(3), || open_conns(&e, &key) == 0));
    assert_eq!(e.stats().outcomes["relay_reset"], 1);
}

#[test]
fn a_client_that_resets_resets_the_real_too() {
    let mut e = engine();
    let (tx, rx) = std::sync::mpsc::channel();
    let real = one_connection_real(2, move |mut c| {
        c.write_all(b"ok").unwrap();
        tx.send(read_until_end(&mut c)).unwrap();
    });
    let (vip, _) = tcp_service(&mut e, "127.0.0.1", options(SchedulerKind::Rr), &[real]);
    let mut c = client(vip, b"go");
    let mut b = [0u8; 2];
    c.read_exact(&mut b).unwrap();
    abort(c);
    let (got, end) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(got, "");
    let err = end.expect_err("the client's reset must reach the real as a reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    assert_eq!(e.stats().outcomes["relay_reset"], 1);
}

/// `TCP_INFO` of `s`: (segments received, segments sent and not yet acknowledged).
fn tcp_counts(s: &TcpStream) -> (u32, u32) {
    use std::os::fd::AsRawFd;
    // SAFETY: all-zero is a valid tcp_info (plain integers).
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` and `len` describe a writable buffer of `len` bytes; the fd is open.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    (info.tcpi_segs_in, info.tcpi_unacked)
}

/// Sends `data` and the FIN in one segment (`MSG_MORE` holds the data until the shutdown).
fn send_with_fin(s: &TcpStream, data: &[u8]) {
    let n = socket2::SockRef::from(s)
        .send_with_flags(data, libc::MSG_MORE)
        .unwrap();
    assert_eq!(n, data.len());
    s.shutdown(Shutdown::Write).unwrap();
}

/// Waits until everything `s` sent is acknowledged, then gives the peer's stack a moment, so
/// no segment is still on its way to `s` when the caller starts counting.
fn settled(s: &TcpStream) {
    assert!(wait_until(Duration::from_secs(3), || tcp_counts(s).1 == 0));
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn a_reals_last_bytes_and_fin_reach_the_client_in_one_segment() {
    let mut e = engine();
    // A real that reads the request, waits for the go, then answers and closes in one segment.
    let (got_tx, got_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let real = one_connection_real(3, move |mut c| {
        got_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        send_with_fin(&c, b"answer");
        let _ = read_until_end(&mut c);
    });
    let (vip, key) = tcp_service(&mut e, "127.0.0.1", options(SchedulerKind::Rr), &[real]);
    let mut c = client(vip, b"ask");
    got_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    settled(&c);
    let before = tcp_counts(&c).0;
    go_tx.send(()).unwrap();
    let (got, end) = read_until_end(&mut c);
    end.unwrap();
    assert_eq!(got, "answer");
    // One segment: the answer with the FIN. Without MSG_MORE on the relayed bytes the FIN
    // follows in a segment of its own (2).
    assert_eq!(tcp_counts(&c).0 - before, 1);
    drop(c);
    assert!(wait_until(Duration::from_secs(3), || open_conns(&e, &key) == 0));
}

#[test]
fn a_clients_last_bytes_and_fin_reach_the_real_in_one_segment() {
    let mut e = engine();
    let (tx, rx) = std::sync::mpsc::channel();
    let (counted_tx, counted_rx) = std::sync::mpsc::channel::<()>();
    let real = one_connection_real(5, move |mut c| {
        settled(&c);
        let before = tcp_counts(&c).0;
        counted_tx.send(()).unwrap();
        let (got, end) = read_until_end(&mut c);
        let segs = tcp_counts(&c).0 - before;
        c.write_all(b"ok").unwrap();
        tx.send((got, end.is_ok(), segs)).unwrap();
    });
    let (vip, _) = tcp_service(&mut e, "127.0.0.1", options(SchedulerKind::Rr), &[real]);
    let mut c = client(vip, b"hello");
    counted_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    send_with_fin(&c, b"last");
    let (got, clean, segs) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(got, "last");
    assert!(clean);
    assert_eq!(segs, 1, "the last bytes and the FIN in one segment");
    // The half-close still lets the real's answer through.
    let (answer, end) = read_until_end(&mut c);
    end.unwrap();
    assert_eq!(answer, "ok");
}

#[test]
fn bytes_a_real_sends_just_before_its_reset_still_reach_the_client() {
    let mut e = engine();
    // The answer and the RST leave back to back: the proxy sees both at its next wake-up (a
    // read-closed socket with data, then ECONNRESET), and must pass the bytes on before the
    // reset, not hold them for a FIN that never comes.
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let real = one_connection_real(2, move |mut c| {
        go_rx.recv().unwrap();
        c.write_all(b"last-words").unwrap();
        abort(c);
    });
    let (vip, _) = tcp_service(&mut e, "127.0.0.1", options(SchedulerKind::Rr), &[real]);
    let mut c = client(vip, b"go");
    settled(&c);
    go_tx.send(()).unwrap();
    let (got, end) = read_until_end(&mut c);
    assert_eq!(got, "last-words");
    let err = end.expect_err("the real's reset must reach the client as a reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
}
