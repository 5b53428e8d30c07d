//! The operator's reset (`reset_real`) reaches every connection to the real, including one whose
//! connect to the real is still pending (loopback only).

mod common;

use common::*;
use rvs_core::desired::Change;
use rvs_core::engine::Engine;
use rvs_core::{SchedulerKind, ServiceKey};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn reset_cuts_a_connection_whose_connect_is_pending() {
    let mut e = engine();
    let (real, fillers) = full_listener();
    let ra = real.local_addr().unwrap();
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    let mut opts = options(SchedulerKind::Rr);
    opts.proxy.connect_timeout_ms = 10_000;
    opts.proxy.connect_retries = 0;
    add_service(&mut e, key, opts, &[fullnat(ra, 1)]);
    let mut client = TcpStream::connect(vip).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert!(wait_until(Duration::from_secs(3), || {
        e.connections().iter().any(|c| c.state == "SYN_RECV")
    }));
    // The operator removes the real and resets its connections while the connect is pending.
    e.apply(&[Change::RemoveReal {
        service: key,
        addr: ra,
    }])
    .unwrap();
    assert_eq!(e.reset_real(&key, ra).unwrap(), 1);
    // Now the real accepts: the proxy's retransmitted SYN gets through.
    drop(fillers);
    let (relayed_tx, relayed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        real.set_nonblocking(false).unwrap();
        while let Ok((mut c, _)) = real.accept() {
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut b = [0u8; 16];
            // A filler, or the proxy's connection cut at once, reads nothing.
            if let Ok(n @ 1..) = c.read(&mut b) {
                let _ = c.write_all(&b[..n]);
                let _ = relayed_tx.send(());
            }
        }
    });
    let _ = client.write_all(b"hello");
    let mut b = [0u8; 16];
    let got = client.read(&mut b);
    assert!(
        !matches!(got, Ok(n) if n > 0),
        "the reset connection still relays: {got:?}"
    );
    assert!(wait_until(Duration::from_secs(5), || e
        .connections()
        .is_empty()));
    assert_eq!(e.stats().outcomes["reset_by_operator"], 1);
    assert!(
        relayed.try_recv().is_err(),
        "a byte reached the real after the reset"
    );
}
