//! Churn end to end, DR (rvs-testbed's L2 segment, `common::e2e_lab`), NAT and FULLNAT (the
//! two-arm and FULLNAT topologies, `common::nat_lab`), each with three nginx reals: clients in
//! the client's namespace keep opening keep-alive HTTP connections to the VIP and sending
//! requests on them, while the engine's Maglev table changes under them
//! every 20-50 ms — weights changed (drained to 0 and back), a real removed and added again,
//! all weights reshuffled at once. What must hold:
//!
//! * an established connection stays on its real whatever the table does (every answer on a
//!   connection names the same real; a connection that moved would be reset by its new real),
//!   unless its real was removed meanwhile (a removed real's flows are scheduled afresh and
//!   reset, docs/xdp.md);
//! * every new connection is answered while some real has a weight;
//! * afterwards, with the weights 1:1:1 again, new connections reach every real.
//!
//! The reals' nginx runs with deferred accept (`TCP_DEFER_ACCEPT`). Without it about one DR
//! run in five to ten failed on one connection that the director had kept on its real: the
//! real's captures showed the SYN, the handshake's ACK and the first request all arriving at
//! the real that answered the SYN, in order and microseconds apart, and that real's kernel
//! answering the request with a reset while it kept the connection — a race in the real's
//! kernel (6.18) between the socket the ACK creates and the request handled on another CPU.
//! With deferred accept the request itself creates the socket, so there is no such race, and
//! the clients need not be pinned to one CPU as they were (docs/xdp.md).
//!
//! Root only (namespaces, XDP); skips with a message otherwise.

mod common;

use common::e2e_lab::{self, in_ns};
use common::nat_lab;
use rvs_core::desired::Change;
use rvs_core::engine::Engine;
use rvs_core::model::{ForwardMethod, RealServer, ServiceKey, ServiceOptions};
use rvs_net::realserver::Method;
use rvs_testbed::echo::{Cuts, Rng, clients, join};
use rvs_testbed::{Kind, Topology};
use rvs_xdp::{XdpConfig, XdpEngine};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

const CHURN: Duration = Duration::from_secs(6);
const CLIENTS: usize = 6;

/// Which real answered: nginx's body is `real<i>\n`.
fn real_of(body: &[u8]) -> Option<usize> {
    match body {
        b"real0\n" => Some(0),
        b"real1\n" => Some(1),
        b"real2\n" => Some(2),
        _ => None,
    }
}

/// One keep-alive connection: `n` requests; the real that answered them all, or why not.
fn connection(vip: SocketAddr, n: u64) -> Result<usize, String> {
    let s = TcpStream::connect_timeout(&vip, Duration::from_secs(3))
        .map_err(|e| format!("connect: {e}"))?;
    let port = s.local_addr().unwrap().port();
    requests(s, n).map_err(|e| format!("{e} (client port {port})"))
}

/// `n` requests on connection `s`; the real that answered them all.
fn requests(s: TcpStream, n: u64) -> Result<usize, String> {
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut r = BufReader::new(s);
    let mut real = None;
    for i in 0..n {
        r.get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
            .map_err(|e| format!("request {i}: write: {e}"))?;
        let mut len = None;
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) => return Err(format!("request {i}: closed")),
                Ok(_) => {}
                Err(e) => return Err(format!("request {i}: read: {e}")),
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("Content-Length: ") {
                len = v.parse::<usize>().ok();
            }
        }
        let mut body = vec![0; len.ok_or(format!("request {i}: no length"))?];
        r.read_exact(&mut body)
            .map_err(|e| format!("request {i}: body: {e}"))?;
        let got = real_of(&body).unwrap_or_else(|| panic!("a body no real sends: {body:?}"));
        match real {
            None => real = Some(got),
            Some(was) => assert_eq!(
                was, got,
                "request {i} of a connection answered by real{got}, the first by real{was}"
            ),
        }
    }
    Ok(real.expect("n > 0"))
}

#[test]
fn established_dr_flows_stay_on_their_reals_through_table_churn() {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root for namespaces and XDP");
        return;
    }
    let lab = e2e_lab::lab_with(Method::Dr, false, true);
    let config = XdpConfig {
        interfaces: vec!["eth0".into()],
        ..Default::default()
    };
    churn(&lab.topo, lab.vip, 80, ForwardMethod::Dr, config);
}

#[test]
fn established_nat_flows_stay_on_their_reals_through_table_churn() {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root for namespaces and XDP");
        return;
    }
    let lab = nat_lab::lab_with(Kind::TwoArm, false, true);
    churn(&lab.topo, lab.vip, 8080, ForwardMethod::Nat, nat_config());
}

#[test]
fn established_fullnat_flows_stay_on_their_reals_through_table_churn() {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root for namespaces and XDP");
        return;
    }
    let lab = nat_lab::lab_with(Kind::FullNat, false, true);
    churn(
        &lab.topo,
        lab.vip,
        8080,
        ForwardMethod::FullNat,
        nat_config(),
    );
}

fn nat_config() -> XdpConfig {
    XdpConfig {
        interfaces: vec!["eth0".into(), "eth1".into()],
        fullnat_local: vec![IpAddr::V4(nat_lab::LOCAL)],
        ..Default::default()
    }
}

/// The churn over `topo`'s three reals (listening on `port`) behind `vip`:80, forwarded by
/// `method`.
fn churn(topo: &Topology, vip: IpAddr, port: u16, method: ForwardMethod, config: XdpConfig) {
    let vip = SocketAddr::new(vip, 80);
    let key = ServiceKey::tcp(vip);
    let reals: Vec<SocketAddr> = (topo.reals.iter())
        .map(|r| SocketAddr::new(r.ip(false), port))
        .collect();
    let name = format!("{method:?}").to_lowercase();
    // Removals under way or done since (odd while one is under way), as in the proxy churn.
    let cuts = Arc::new(Cuts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let state = Arc::new(Mutex::new(String::new()));
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (quiet_tx, quiet_rx) = mpsc::channel::<()>();
    let (checked_tx, checked_rx) = mpsc::channel::<()>();
    let reals = &reals;
    let name = &name;
    thread::scope(move |sc| {
        let (cuts2, stop2, state2) = (Arc::clone(&cuts), Arc::clone(&stop), Arc::clone(&state));
        let director = sc.spawn(move || {
            let (cuts, stop, state) = (cuts2, stop2, state2);
            in_ns(&topo.director.ns, move || {
                // The clients stop when this thread ends, also by a panic.
                let _stop = StopOnDrop(Arc::clone(&stop));
                let mut e = XdpEngine::start(config).expect("engine");
                let mut changes = vec![Change::AddService {
                    key,
                    options: ServiceOptions::default(),
                }];
                changes.extend(reals.iter().map(|&a| Change::AddReal {
                    service: key,
                    real: RealServer::new(a, method, 1),
                }));
                e.apply(&changes).expect("apply");
                ready_tx.send(()).unwrap();
                // None: removed; Some(w): present with weight w.
                let mut weights: [Option<u32>; 3] = [Some(1); 3];
                let mut ops = [0u32; 4];
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
                let t0 = Instant::now();
                while t0.elapsed() < CHURN {
                    thread::sleep(Duration::from_millis(20 + rng.below(30)));
                    let r = rng.below(3) as usize;
                    let op = rng.below(4) as usize;
                    let mut next = weights;
                    match op {
                        0 => next[r] = next[r].map(|_| rng.below(4) as u32),
                        1 => next[r] = None,
                        2 => next[r] = Some(next[r].unwrap_or(1)),
                        _ => {
                            for w in next.iter_mut().flatten() {
                                *w = rng.below(4) as u32;
                            }
                        }
                    }
                    // Some real must keep a weight.
                    if !next.iter().any(|w| w.is_some_and(|w| w > 0)) {
                        continue;
                    }
                    let mut changes = Vec::new();
                    for i in 0..3 {
                        let real = |w| RealServer::new(reals[i], method, w);
                        match (weights[i], next[i]) {
                            (Some(a), Some(b)) if a != b => changes.push(Change::EditReal {
                                service: key,
                                real: real(b),
                            }),
                            (None, Some(b)) => changes.push(Change::AddReal {
                                service: key,
                                real: real(b),
                            }),
                            (Some(_), None) => changes.push(Change::RemoveReal {
                                service: key,
                                addr: reals[i],
                            }),
                            _ => {}
                        }
                    }
                    let removes = changes
                        .iter()
                        .any(|c| matches!(c, Change::RemoveReal { .. }));
                    if removes {
                        cuts.begin();
                    }
                    e.apply(&changes).expect("apply");
                    if removes {
                        cuts.end();
                    }
                    weights = next;
                    ops[op] += 1;
                    *state.lock().unwrap() =
                        format!("{} ms: weights {weights:?}", t0.elapsed().as_millis());
                }
                stop.store(true, Ordering::SeqCst);
                println!("{name} churn: changes {ops:?}, {} removals", cuts.now() / 2);
                assert!(
                    ops.iter().all(|&n| n > 0),
                    "every kind of change ran: {ops:?}"
                );
                // Quiet: all three back at weight 1.
                let changes: Vec<Change> = (0..3)
                    .map(|i| {
                        let real = RealServer::new(reals[i], method, 1);
                        match weights[i] {
                            Some(_) => Change::EditReal { service: key, real },
                            None => Change::AddReal { service: key, real },
                        }
                    })
                    .collect();
                e.apply(&changes).expect("apply");
                quiet_tx.send(()).unwrap();
                // (A failed check on the client side drops the sender instead.)
                let _ = checked_rx.recv_timeout(Duration::from_secs(60));
                let stats = e.stats();
                println!("outcomes: {:?}", stats.outcomes);
                e.shutdown();
            })
        });
        ready_rx.recv().expect("engine up");
        // Each client's tally counts the requests of its connections in `bytes`.
        let (tally, failures) = in_ns(&topo.client.ns, || {
            join(clients(CLIENTS, &cuts, &stop, &state, move |_, rng, t| {
                let n = 5 + rng.below(30);
                let real = connection(vip, n)?;
                t.bytes += n;
                Ok(real as u8)
            }))
        });
        println!(
            "{name} churn: {} connections ({} requests) kept their real, per real {:?}; {} cut by a \
             removal; {} failed otherwise",
            tally.ok,
            tally.bytes,
            tally.per_real,
            tally.excused,
            failures.len()
        );
        assert!(
            failures.is_empty(),
            "{} connections failed with no removal meanwhile, e.g. {:?}",
            failures.len(),
            &failures[..failures.len().min(10)]
        );
        assert!(tally.ok > 100, "too few connections: {}", tally.ok);
        quiet_rx.recv().expect("weights restored");
        let served = in_ns(&topo.client.ns, || {
            let mut served = [0u32; 3];
            for i in 0..60 {
                let real = connection(vip, 2)
                    .unwrap_or_else(|e| panic!("connection {i} after the churn: {e}"));
                served[real] += 1;
            }
            served
        });
        checked_tx.send(()).unwrap();
        director.join().expect("director thread");
        assert!(
            served.iter().all(|&n| n >= 5),
            "new connections after the churn reach every real: {served:?}"
        );
    });
}

/// Sets the flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
