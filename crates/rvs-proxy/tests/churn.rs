//! Churn (loopback): clients keep opening connections through a TCP VIP and exchanging echoed
//! data while the reals crash and come back, are drained and restored, removed and re-added,
//! reset by the operator, and the service's scheduler changes under them. What must hold:
//!
//! * every byte a client gets back is the byte it sent, on its own connection (no cross-talk,
//!   no data invented, a stream cut short never delivered as complete);
//! * a connection fails only if a real crashed or was reset while it was open: with at most one
//!   real down at a time and retries on, no new connection is refused to a client;
//! * once the churn stops, every new connection succeeds and every real serves again;
//! * at the end the engine holds no connection and the process no descriptor beyond its pools.

mod common;

use common::churn::{Churn, ChurnReal, Cuts, Rng, clients, descriptors, join};
use common::*;
use rvs_core::engine::Engine;
use rvs_core::{Persistence, SchedulerKind, ServiceKey, ServiceOptions};
use rvs_proxy::{ProxyEngine, ProxyEngineConfig};
use socket2::{Domain, SockRef, Socket, Type};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How long the churn runs.
const CHURN: Duration = Duration::from_secs(6);
/// Client threads.
const CLIENTS: usize = 8;
/// Largest message a client sends (the echo must fit the sockets' buffers: the client writes
/// a whole message before it reads).
const MAX_MSG: usize = 48 * 1024;

/// An echo real on a fixed port that greets each connection with its id byte, can crash
/// (listener closed, every connection reset) and come back on the same port.
struct EchoReal {
    id: u8,
    addr: SocketAddr,
    running: Mutex<Option<Running>>,
}

struct Running {
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: thread::JoinHandle<()>,
}

impl EchoReal {
    fn new(id: u8) -> Arc<EchoReal> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let real = Arc::new(EchoReal {
            id,
            addr: listener.local_addr().unwrap(),
            running: Mutex::new(None),
        });
        real.serve(listener);
        real
    }

    fn serve(&self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (id, s, c) = (self.id, Arc::clone(&stop), Arc::clone(&conns));
        let acceptor = thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        c.lock().unwrap().push(stream.try_clone().unwrap());
                        thread::spawn(move || echo(id, stream));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(1))
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
            // The listener closes here: connects are refused from now on.
        });
        *self.running.lock().unwrap() = Some(Running {
            stop,
            conns,
            acceptor,
        });
    }
}

impl ChurnReal for EchoReal {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn id(&self) -> u8 {
        self.id
    }

    fn is_up(&self) -> bool {
        self.running.lock().unwrap().is_some()
    }

    /// No listener, every connection reset.
    fn crash(&self) {
        let Some(r) = self.running.lock().unwrap().take() else {
            return;
        };
        r.stop.store(true, Ordering::SeqCst);
        r.acceptor.join().unwrap();
        for s in r.conns.lock().unwrap().drain(..) {
            let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restart(&self) {
        if self.is_up() {
            return;
        }
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if e.kind() == ErrorKind::AddrInUse => {
                    thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("rebind {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    /// Keeps the crash list short.
    fn prune(&self) {
        if let Some(r) = self.running.lock().unwrap().as_ref() {
            r.conns
                .lock()
                .unwrap()
                .retain(|s| s.peer_addr().is_ok() && s.take_error().is_ok());
        }
    }
}

/// One connection of a real: the id byte, then everything echoed until the client's FIN,
/// answered with ours.
fn echo(id: u8, mut s: TcpStream) {
    // Without it Nagle holds each echoed chunk after the first until the proxy's delayed ACK.
    s.set_nodelay(true).unwrap();
    if s.write_all(&[id]).is_err() {
        return;
    }
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => {
                let _ = s.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// One client session: connect, read the real's id, 1-4 messages echoed exactly, our FIN,
/// then the real's FIN and nothing else. Err(reason) if the session did not complete; a
/// corrupted byte panics at once (never excusable).
fn session(vip: SocketAddr, from: IpAddr, rng: &mut Rng, bytes: &mut u64) -> Result<u8, String> {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::new(from, 0).into()).unwrap();
    sock.connect(&vip.into())
        .map_err(|e| format!("connect: {e}"))?;
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut id = [0u8];
    s.read_exact(&mut id)
        .map_err(|e| format!("greeting: {e}"))?;
    assert!(id[0] < 3, "greeting {} is no real's id", id[0]);
    for _ in 0..1 + rng.below(4) {
        let len = 1 + rng.below(MAX_MSG as u64) as usize;
        let mut out = vec![0u8; len];
        rng.fill(&mut out);
        s.write_all(&out).map_err(|e| format!("write: {e}"))?;
        let mut back = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match s.read(&mut back[got..]) {
                Ok(0) => return Err(format!("EOF after {got} of {len} echoed bytes")),
                Ok(n) => {
                    assert_eq!(
                        back[got..got + n],
                        out[got..got + n],
                        "echo differs from what was sent (bytes {got}..{} of {len})",
                        got + n
                    );
                    got += n;
                }
                Err(e) => return Err(format!("read after {got} of {len}: {e}")),
            }
        }
        *bytes += len as u64;
    }
    s.shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut rest = [0u8; 64];
    match s.read(&mut rest) {
        Ok(0) => Ok(id[0]),
        Ok(n) => panic!("{n} bytes nobody sent arrived after the echo"),
        Err(e) => Err(format!("final read: {e}")),
    }
}

fn proxy_options() -> ServiceOptions {
    let mut opts = options(SchedulerKind::Wlc);
    opts.proxy.connect_retries = 2;
    opts.proxy.connect_timeout_ms = 2000;
    // Passive detection on, with a short window so taken-out reals are probed during the run.
    opts.proxy.max_fails = 1;
    opts.proxy.fail_timeout_ms = 200;
    opts
}

#[test]
fn data_and_accounting_survive_real_churn() {
    churn_test(proxy_options(), "");
}

/// The same with persistence (-p 1): each client thread connects from an address of its own
/// (127.0.0.10 and on), so each has its template; a template whose real is drained, removed,
/// crashed (taken out) or fails a connect is rebound.
#[test]
fn persistent_clients_survive_real_churn() {
    let opts = ServiceOptions {
        persistence: Some(Persistence {
            timeout: 1,
            prefix_len: 32,
        }),
        ..proxy_options()
    };
    churn_test(opts, "persistent ");
}

/// The source address of client `i`'s connections.
fn client_addr(i: usize) -> IpAddr {
    Ipv4Addr::new(127, 0, 0, 10 + i as u8).into()
}

fn churn_test(opts: ServiceOptions, what: &str) {
    let workers = 2;
    let mut e = ProxyEngine::start(ProxyEngineConfig {
        workers,
        ..Default::default()
    })
    .expect("engine");
    let reals: Vec<Arc<EchoReal>> = (0..3).map(EchoReal::new).collect();
    let vip = free_addr("127.0.0.1");
    let mut churn = Churn::new(&mut e, ServiceKey::tcp(vip), reals, opts);
    let key = churn.key;
    // Warm up (the workers' buffers, the first pipes) before the descriptor baseline.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut warm = 0;
    for _ in 0..30 {
        session(vip, client_addr(0), &mut rng, &mut warm).expect("warm-up session");
    }
    assert!(wait_until(Duration::from_secs(5), || e
        .connections()
        .is_empty()));
    let fds_before = descriptors();

    let cuts = Arc::new(Cuts::default());
    let snap: Arc<Mutex<String>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let handles = clients(CLIENTS, &cuts, &stop, &snap, move |i, rng, t| {
        session(vip, client_addr(i), rng, &mut t.bytes)
    });
    churn.run(&mut e, CHURN, &mut rng, &cuts, &snap);
    stop.store(true, Ordering::SeqCst);
    let (total, failures) = join(handles);
    let ops = churn.ops;
    println!(
        "{what}churn: changes {ops:?}, {total:?}, {} unexcused failures",
        failures.len()
    );
    println!("engine outcomes: {:?}", e.stats().outcomes);
    assert!(
        failures.is_empty(),
        "{} sessions failed with no crash or reset while they were open (each with the state \
         after the mutator's last change), e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(40)]
    );
    assert!(
        ops.iter().all(|&n| n > 0),
        "every kind of change ran: {ops:?}"
    );
    assert!(total.ok > 200, "too few sessions completed: {total:?}");
    if opts.persistence.is_some() {
        let templates = e.connections().iter().filter(|c| c.state == "NONE").count();
        assert!(
            (1..=CLIENTS).contains(&templates),
            "one template per client address: {templates}"
        );
    }

    churn.restore(&mut e);
    let mut served = [0u32; 3];
    let mut bytes = 0;
    // New clients (each from an address of its own: with persistence, a template each).
    for i in 0..150u8 {
        let from = Ipv4Addr::new(127, 0, 1, 1 + i).into();
        match session(vip, from, &mut rng, &mut bytes) {
            Ok(id) => served[id as usize] += 1,
            Err(why) => panic!("session {i} after the churn failed: {why}"),
        }
    }
    assert!(
        served.iter().all(|&n| n >= 30),
        "round robin after the churn should reach every real: {served:?}"
    );

    // Nothing left behind: no connection in the engine, no descriptor beyond the workers'
    // pipe pools (64 pipes of 2 descriptors each per worker at most).
    assert!(
        wait_until(Duration::from_secs(10), || open_conns(&e, &key) == 0),
        "connections left in the engine: {:?}",
        e.connections()
    );
    // Persistence templates (1 s) expire too.
    assert!(
        wait_until(Duration::from_secs(10), || e.connections().is_empty()),
        "entries left in the engine: {:?}",
        e.connections()
    );
    let slack = workers * 64 * 2;
    assert!(
        wait_until(Duration::from_secs(10), || {
            churn.reals.iter().for_each(|x| x.prune());
            descriptors() <= fds_before + slack
        }),
        "descriptors: {} before the churn, {} after (pools may hold {slack})",
        fds_before,
        descriptors()
    );
    e.shutdown();
}
