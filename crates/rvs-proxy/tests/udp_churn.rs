//! UDP churn (loopback): clients keep asking through a UDP VIP — each client a socket that
//! lives for 200 requests, so sessions are made and left all the time — while the reals crash
//! and come back, are drained and restored, removed and re-added, reset by the operator, and
//! the scheduler changes (the harness in `common/churn.rs`). What must hold:
//!
//! * every reply comes from the VIP and is the echo of a datagram this very client sent (no
//!   reply ever reaches another client, none is altered);
//! * a request goes unanswered through all its tries (1 s) only if a real crashed or was reset
//!   meanwhile: a lost datagram is resent, and the resend finds a live real;
//! * once the churn stops, every new client is answered and every real serves again;
//! * when the clients are gone, their sessions expire (UDP timeout 1 s) and nothing is left:
//!   no session in the engine, no descriptor beyond the baseline.

mod common;

use common::churn::{Churn, ChurnReal, Cuts, Rng, clients, descriptors, join};
use common::*;
use rvs_core::desired::{Change, Timeouts};
use rvs_core::engine::Engine;
use rvs_core::{SchedulerKind, ServiceKey, ServiceOptions};
use rvs_proxy::{ProxyEngine, ProxyEngineConfig};
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const CHURN: Duration = Duration::from_secs(6);
const CLIENTS: usize = 8;
/// Requests a client socket makes before the client takes a new one (a new session).
const PER_SOCKET: u64 = 200;
/// Tries of one request, each waiting this long for the reply.
const TRIES: u32 = 10;
const TRY_WAIT: Duration = Duration::from_millis(100);

/// A UDP echo real on a fixed port: replies with its id byte and the datagram; can crash
/// (its socket closed: datagrams to it draw ICMP port unreachable) and come back.
struct UdpEchoReal {
    id: u8,
    addr: SocketAddr,
    running: Mutex<Option<(Arc<AtomicBool>, thread::JoinHandle<()>)>>,
}

impl UdpEchoReal {
    fn new(id: u8) -> Arc<UdpEchoReal> {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let real = Arc::new(UdpEchoReal {
            id,
            addr: socket.local_addr().unwrap(),
            running: Mutex::new(None),
        });
        real.serve(socket);
        real
    }

    fn serve(&self, socket: UdpSocket) {
        socket
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (id, s) = (self.id, Arc::clone(&stop));
        let thread = thread::spawn(move || {
            let mut buf = vec![0u8; 2048];
            while !s.load(Ordering::SeqCst) {
                match socket.recv_from(&mut buf[1..]) {
                    Ok((n, from)) => {
                        buf[0] = id;
                        let _ = socket.send_to(&buf[..n + 1], from);
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => {} // e.g. an ICMP error about an earlier reply
                }
            }
            // The socket closes here.
        });
        *self.running.lock().unwrap() = Some((stop, thread));
    }
}

impl ChurnReal for UdpEchoReal {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn id(&self) -> u8 {
        self.id
    }

    fn is_up(&self) -> bool {
        self.running.lock().unwrap().is_some()
    }

    fn crash(&self) {
        if let Some((stop, thread)) = self.running.lock().unwrap().take() {
            stop.store(true, Ordering::SeqCst);
            thread.join().unwrap();
        }
    }

    fn restart(&self) {
        if self.is_up() {
            return;
        }
        let socket = loop {
            match UdpSocket::bind(self.addr) {
                Ok(s) => break s,
                Err(e) if e.kind() == ErrorKind::AddrInUse => {
                    thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("rebind {}: {e}", self.addr),
            }
        };
        self.serve(socket);
    }
}

/// The datagram of request `seq` of client `client`: its index, the sequence number, and up to
/// 1,200 bytes that follow from both (so any reply can be checked against what was sent).
fn request(client: u8, seq: u64) -> Vec<u8> {
    let mut rng = Rng((u64::from(client) << 56) ^ seq ^ 0x5851_f42d_4c95_7f2d);
    let mut d = vec![0u8; 9 + rng.below(1201) as usize];
    d[0] = client;
    d[1..9].copy_from_slice(&seq.to_le_bytes());
    rng.fill(&mut d[9..]);
    d
}

/// One client: a socket, and the number of its next request.
struct Client {
    index: u8,
    socket: Option<UdpSocket>,
    seq: u64,
}

impl Client {
    fn new(index: u8) -> Client {
        Client {
            index,
            socket: None,
            seq: 0,
        }
    }

    /// One request answered: sent (again after each TRY_WAIT without its reply, TRIES times
    /// at most); returns the id of the real that answered. Every reply that arrives is checked
    /// (an altered or foreign one panics); late replies to earlier requests are skipped.
    fn ask(&mut self, vip: SocketAddr, bytes: &mut u64) -> Result<u8, String> {
        if self.seq.is_multiple_of(PER_SOCKET) {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(TRY_WAIT)).unwrap();
            self.socket = Some(s);
        }
        let s = self.socket.as_ref().unwrap();
        let seq = self.seq;
        self.seq += 1;
        let out = request(self.index, seq);
        let mut buf = vec![0u8; 2048];
        for _ in 0..TRIES {
            // A send may fail with the ICMP error of an earlier datagram: the next try resends.
            let _ = s.send_to(&out, vip);
            loop {
                let (n, from) = match s.recv_from(&mut buf) {
                    Ok(r) => r,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        break;
                    }
                    Err(_) => break,
                };
                assert_eq!(from, vip, "a reply not from the VIP");
                assert!(
                    n >= 10 && buf[0] < 3,
                    "a reply of {n} bytes tagged {}",
                    buf[0]
                );
                let got = &buf[1..n];
                assert_eq!(got[0], self.index, "another client's reply arrived here");
                let got_seq = u64::from_le_bytes(got[1..9].try_into().unwrap());
                assert!(got_seq <= seq, "a reply to request {got_seq} not yet sent");
                assert!(
                    got == request(self.index, got_seq),
                    "the reply to request {got_seq} differs from the request"
                );
                if got_seq == seq {
                    *bytes += out.len() as u64;
                    return Ok(buf[0]);
                }
            }
        }
        Err(format!("request {seq}: no reply to {TRIES} tries"))
    }
}

fn proxy_options() -> ServiceOptions {
    let mut opts = options(SchedulerKind::Wlc);
    opts.proxy.max_fails = 1;
    opts.proxy.fail_timeout_ms = 200;
    opts
}

#[test]
fn udp_replies_and_sessions_survive_real_churn() {
    let mut e = ProxyEngine::start(ProxyEngineConfig {
        workers: 2,
        ..Default::default()
    })
    .expect("engine");
    e.apply(&[Change::SetTimeouts(Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 1,
        ..Default::default()
    })])
    .unwrap();
    let reals: Vec<Arc<UdpEchoReal>> = (0..3).map(UdpEchoReal::new).collect();
    let vip = udp_vip();
    let mut churn = Churn::new(&mut e, ServiceKey::udp(vip), reals, proxy_options());
    let mut warm = Client::new(100);
    let mut bytes = 0;
    for _ in 0..30 {
        warm.ask(vip, &mut bytes).expect("warm-up request");
    }
    drop(warm);
    assert!(
        wait_until(Duration::from_secs(5), || e.connections().is_empty()),
        "the warm-up session expires"
    );
    let fds_before = descriptors();

    let cuts = Arc::new(Cuts::default());
    let snap: Arc<Mutex<String>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let state: Arc<Vec<Mutex<Client>>> = Arc::new(
        (0..CLIENTS as u8)
            .map(|i| Mutex::new(Client::new(i)))
            .collect(),
    );
    let handles = {
        let state = Arc::clone(&state);
        clients(CLIENTS, &cuts, &stop, &snap, move |i, _, t| {
            state[i].lock().unwrap().ask(vip, &mut t.bytes)
        })
    };
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    churn.run(&mut e, CHURN, &mut rng, &cuts, &snap);
    stop.store(true, Ordering::SeqCst);
    let (total, failures) = join(handles);
    let ops = churn.ops;
    println!(
        "udp churn: changes {ops:?}, {total:?}, {} unexcused failures",
        failures.len()
    );
    println!("engine outcomes: {:?}", e.stats().outcomes);
    assert!(
        failures.is_empty(),
        "{} requests went unanswered with no crash or reset meanwhile (each with the state \
         after the mutator's last change), e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(20)]
    );
    assert!(
        ops.iter().all(|&n| n > 0),
        "every kind of change ran: {ops:?}"
    );
    assert!(total.ok > 1000, "too few requests answered: {total:?}");
    drop(state);

    churn.restore(&mut e);
    let mut served = [0u32; 3];
    for i in 0..60u8 {
        let mut c = Client::new(i);
        match c.ask(vip, &mut bytes) {
            Ok(id) => served[id as usize] += 1,
            Err(why) => panic!("client {i} after the churn: {why}"),
        }
    }
    assert!(
        served.iter().all(|&n| n >= 10),
        "round robin after the churn should reach every real: {served:?}"
    );

    // The clients are gone: their sessions expire and free their sockets.
    assert!(
        wait_until(Duration::from_secs(10), || e.connections().is_empty()),
        "sessions left in the engine: {}",
        e.connections().len()
    );
    assert!(
        wait_until(Duration::from_secs(5), || descriptors() <= fds_before),
        "descriptors: {} before the churn, {} after",
        fds_before,
        descriptors()
    );
    e.shutdown();
}
