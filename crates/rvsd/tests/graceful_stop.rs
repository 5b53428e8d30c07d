//! The graceful stop: SIGTERM closes the proxy engine's listeners and freezes the state, the
//! open connections run on until they end (at most `[daemon] stop_grace_ms`), and the daemon
//! exits; SIGTERM again or SIGINT stops at once.

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A TCP real that echoes every connection until the client closes it.
fn echo_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A connection through the VIP that has been relayed once.
fn connected(vip: SocketAddr) -> TcpStream {
    let mut c = TcpStream::connect(vip).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(round_trip(&mut c, b"ping").unwrap(), b"ping");
    c
}

fn round_trip(c: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    c.write_all(msg)?;
    let mut got = vec![0u8; msg.len()];
    c.read_exact(&mut got)?;
    Ok(got)
}

fn vip() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

/// Whether the client's connection was closed by the director (EOF or reset), within 5 s.
fn closed(c: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    match c.read(&mut b) {
        Ok(0) => true,
        Err(e) => matches!(
            e.kind(),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
        ),
        Ok(_) => false,
    }
}

/// After `sig`, rvsd exits (successfully) within 5 s and client `c`'s connection is closed.
fn exits_at_once(d: &mut Rvsd, sig: &str, c: &mut TcpStream) {
    let sent = Instant::now();
    d.signal(sig);
    let st = d.wait_exit();
    assert!(st.success(), "{st}: {}", d.log());
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );
    assert!(closed(c), "the client's connection is closed");
}

#[test]
fn sigterm_drains_the_open_connections_then_exits() {
    let v = vip();
    let mut d = Rvsd::start(&fullnat_config(v, &[echo_backend()]), &[]);
    let mut c = connected(v);
    let sent = Instant::now();
    d.signal("TERM");
    d.wait_log("draining", 1);
    assert!(d.log().contains("open=1"), "{}", d.log());
    // Still running, still relaying the open connection...
    assert!(d.child.try_wait().unwrap().is_none(), "{}", d.log());
    assert_eq!(round_trip(&mut c, b"still here").unwrap(), b"still here");
    // ...but no new connection: the VIP's listener closes (its task is aborted by the time
    // the log line is written, and gone at its worker's next turn).
    let deadline = Instant::now() + Duration::from_secs(3);
    while TcpStream::connect(v).is_ok() {
        assert!(Instant::now() < deadline, "the listener must close");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The API answers: not ready, and the state is frozen.
    let ready = d.get("/v1/ready");
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["status"], "stopping", "{}", ready.body);
    let del = d.req("DELETE", &format!("/v1/services/tcp:{v}"), None);
    assert_eq!((del.status, del.kind()), (503, "stopping".to_string()));
    assert_eq!(d.get("/v1/services").json().as_array().unwrap().len(), 1);
    // The client is done: the daemon exits at once, long before the 10 s grace.
    drop(c);
    let st = d.wait_exit();
    assert!(st.success(), "{st}: {}", d.log());
    assert!(
        d.log().contains("drained: every connection ended"),
        "{}",
        d.log()
    );
    assert!(
        sent.elapsed() < Duration::from_secs(8),
        "{:?}",
        sent.elapsed()
    );
    assert!(!d.socket.exists(), "socket removed");
}

#[test]
fn a_second_sigterm_closes_the_open_connections_at_once() {
    let v = vip();
    let mut d = Rvsd::start(&fullnat_config(v, &[echo_backend()]), &[]);
    let mut c = connected(v);
    d.signal("TERM");
    d.wait_log("draining", 1);
    exits_at_once(&mut d, "TERM", &mut c);
    assert!(d.log().contains("SIGTERM again"), "{}", d.log());
}

#[test]
fn sigint_exits_at_once() {
    let v = vip();
    let mut d = Rvsd::start(&fullnat_config(v, &[echo_backend()]), &[]);
    let mut c = connected(v);
    exits_at_once(&mut d, "INT", &mut c);
    assert!(!d.log().contains("draining"), "{}", d.log());
}

#[test]
fn the_open_connections_are_closed_when_the_stop_grace_is_over() {
    let v = vip();
    let config = format!(
        "[daemon]\nstop_grace_ms = 400\n{}",
        fullnat_config(v, &[echo_backend()])
    );
    let mut d = Rvsd::start(&config, &[]);
    let mut c = connected(v);
    let sent = Instant::now();
    d.signal("TERM");
    d.wait_log("draining", 1);
    assert_eq!(round_trip(&mut c, b"during").unwrap(), b"during");
    let st = d.wait_exit();
    let took = sent.elapsed();
    assert!(st.success(), "{st}: {}", d.log());
    assert!(d.log().contains("stop grace over"), "{}", d.log());
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(closed(&mut c), "the client's connection is closed");
}

#[test]
fn stop_grace_zero_closes_the_open_connections_at_once() {
    let v = vip();
    let config = format!(
        "[daemon]\nstop_grace_ms = 0\n{}",
        fullnat_config(v, &[echo_backend()])
    );
    let mut d = Rvsd::start(&config, &[]);
    let mut c = connected(v);
    exits_at_once(&mut d, "TERM", &mut c);
    assert!(d.log().contains("stop_grace_ms = 0"), "{}", d.log());
}
