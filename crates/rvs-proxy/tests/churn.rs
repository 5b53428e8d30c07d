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

use common::*;
use rvs_core::desired::Change;
use rvs_core::engine::Engine;
use rvs_core::{RealServer, SchedulerKind, ServiceKey, ServiceOptions};
use rvs_proxy::{ProxyEngine, ProxyEngineConfig};
use socket2::SockRef;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long the churn runs.
const CHURN: Duration = Duration::from_secs(6);
/// Client threads.
const CLIENTS: usize = 8;
/// Largest message a client sends (the echo must fit the sockets' buffers: the client writes
/// a whole message before it reads).
const MAX_MSG: usize = 48 * 1024;

/// xorshift64*: enough randomness for sizes, payloads and the mutator's choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Counts events that may legitimately cut a client's connection (a real crashing, an
/// operator reset): odd while one is under way. A failure is excused only if a cut began or
/// ended between the session's start and the moment the cut under way then, if any, ended.
#[derive(Default)]
struct Cuts(AtomicU64);

impl Cuts {
    fn begin(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn end(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    /// The count once no cut is under way.
    fn settled(&self) -> u64 {
        loop {
            let n = self.now();
            if n.is_multiple_of(2) {
                return n;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
}

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

    fn is_up(&self) -> bool {
        self.running.lock().unwrap().is_some()
    }

    /// The process dies: no listener, every connection reset.
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

    /// The process comes back on the same port.
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

    /// Forget connections that have ended (keeps the crash list short).
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

#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    excused: u64,
    bytes: u64,
    per_real: [u64; 3],
}

/// One client session: connect, read the real's id, 1-4 messages echoed exactly, our FIN,
/// then the real's FIN and nothing else. Err(reason) if the session did not complete; a
/// corrupted byte panics at once (never excusable).
fn session(vip: SocketAddr, rng: &mut Rng, bytes: &mut u64) -> Result<u8, String> {
    let mut s = TcpStream::connect(vip).map_err(|e| format!("connect: {e}"))?;
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

fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The reals as the mutator left them and as the engine sees them, for failure messages.
fn describe(e: &ProxyEngine, key: &ServiceKey, reals: &[Arc<EchoReal>], m: &[Member; 3]) -> String {
    let stats = e.stats();
    let svc = &stats.services[key];
    let each: Vec<String> = reals
        .iter()
        .zip(m)
        .map(|(real, member)| {
            let seen = svc.reals.get(&real.addr).map_or("-".to_string(), |r| {
                format!(
                    "active {} inactive {} connect failures {} passive downs {} out {} ms",
                    r.active_conns,
                    r.inactive_conns,
                    r.connect_failures,
                    r.passive_downs,
                    r.passive_out_ms
                )
            });
            let up = if real.is_up() { "up" } else { "crashed" };
            format!("real {}: {up}, {member:?}, {seen}", real.id)
        })
        .collect();
    each.join("; ")
}

/// The reals' membership and weight as the mutator last set them.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Member {
    In,
    Drained,
    Removed,
}

#[test]
fn data_and_accounting_survive_real_churn() {
    let workers = 2;
    let mut e = ProxyEngine::start(ProxyEngineConfig {
        workers,
        ..Default::default()
    })
    .expect("engine");
    let reals: Vec<Arc<EchoReal>> = (0..3).map(EchoReal::new).collect();
    let vip = free_addr("127.0.0.1");
    let key = ServiceKey::tcp(vip);
    let rs: Vec<RealServer> = reals.iter().map(|r| fullnat(r.addr, 1)).collect();
    add_service(&mut e, key, proxy_options(), &rs);
    // Warm up (the workers' buffers, the first pipes) before the descriptor baseline.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut warm = 0;
    for _ in 0..30 {
        session(vip, &mut rng, &mut warm).expect("warm-up session");
    }
    assert!(wait_until(Duration::from_secs(5), || open_conns(&e, &key) == 0));
    let fds_before = descriptors();

    let cuts = Arc::new(Cuts::default());
    let snap: Arc<Mutex<String>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (cuts, stop, snap) = (Arc::clone(&cuts), Arc::clone(&stop), Arc::clone(&snap));
            thread::spawn(move || {
                let mut rng = Rng(0x1234_5678 + i as u64 * 0x9e37_79b9);
                let mut t = Tally::default();
                let mut failures = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let before = cuts.now();
                    match session(vip, &mut rng, &mut t.bytes) {
                        Ok(id) => {
                            t.ok += 1;
                            t.per_real[id as usize] += 1;
                        }
                        // A crash or reset may have cut it: one that caused it began
                        // after `before` was read, or was under way then and has ended
                        // since (settled waits for the one under way now).
                        Err(_) if cuts.settled() != before => t.excused += 1,
                        Err(why) => failures.push(format!("{why} [{}]", snap.lock().unwrap())),
                    }
                }
                (t, failures)
            })
        })
        .collect();

    // The mutator: one change every 15-40 ms. At most one real is down (crashed) and at most
    // one is out of the scheduling (drained or removed) at a time, so with two retries every
    // new connection can reach a live real.
    let mut members = [Member::In; 3];
    let schedulers = [
        SchedulerKind::Wlc,
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Sh,
        SchedulerKind::Mh,
    ];
    let mut ops = [0u32; 6];
    let end = Instant::now() + CHURN;
    let t0 = Instant::now();
    while Instant::now() < end {
        thread::sleep(Duration::from_millis(15 + rng.below(25)));
        let r = rng.below(3) as usize;
        let real = &reals[r];
        let op = rng.below(6) as usize;
        match op {
            // Crash a real (if none is down), or bring the down one back.
            0 => {
                if real.is_up() && reals.iter().all(|x| x.is_up()) {
                    cuts.begin();
                    real.crash();
                    cuts.end();
                } else {
                    real.restart();
                }
            }
            1 => reals.iter().for_each(|x| x.restart()),
            // Drain / remove a real (if no other is out), or put it back.
            2 | 3 => {
                let others_in = (0..3).all(|i| i == r || members[i] == Member::In);
                let change = match (members[r], op) {
                    (Member::In, 2) if others_in => {
                        members[r] = Member::Drained;
                        Change::EditReal {
                            service: key,
                            real: fullnat(real.addr, 0),
                        }
                    }
                    (Member::In, _) if others_in => {
                        members[r] = Member::Removed;
                        Change::RemoveReal {
                            service: key,
                            addr: real.addr,
                        }
                    }
                    (Member::Drained, _) => {
                        members[r] = Member::In;
                        Change::EditReal {
                            service: key,
                            real: fullnat(real.addr, 1),
                        }
                    }
                    (Member::Removed, _) => {
                        members[r] = Member::In;
                        Change::AddReal {
                            service: key,
                            real: fullnat(real.addr, 1),
                        }
                    }
                    _ => continue,
                };
                e.apply(&[change]).expect("apply");
            }
            // The operator resets a present real's connections.
            4 => {
                if members[r] != Member::Removed {
                    cuts.begin();
                    e.reset_real(&key, real.addr).expect("reset_real");
                    cuts.end();
                }
            }
            // Another scheduler for new connections.
            _ => {
                let mut opts = proxy_options();
                opts.scheduler = schedulers[rng.below(schedulers.len() as u64) as usize];
                e.apply(&[Change::EditService { key, options: opts }])
                    .expect("edit service");
            }
        }
        ops[op] += 1;
        *snap.lock().unwrap() = format!(
            "{} ms, after op {op} on real {r}: {}",
            t0.elapsed().as_millis(),
            describe(&e, &key, &reals, &members)
        );
        reals.iter().for_each(|x| x.prune());
    }
    stop.store(true, Ordering::SeqCst);
    let mut total = Tally::default();
    let mut failures = Vec::new();
    for c in clients {
        let (t, f) = c.join().expect("client thread");
        total.ok += t.ok;
        total.excused += t.excused;
        total.bytes += t.bytes;
        for i in 0..3 {
            total.per_real[i] += t.per_real[i];
        }
        failures.extend(f);
    }
    println!(
        "churn: ops {ops:?}, {total:?}, {} unexcused failures",
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

    // Quiet again: every real up and in, the first scheduler back.
    reals.iter().for_each(|x| x.restart());
    for (r, real) in reals.iter().enumerate() {
        let change = match members[r] {
            Member::In => continue,
            Member::Drained => Change::EditReal {
                service: key,
                real: fullnat(real.addr, 1),
            },
            Member::Removed => Change::AddReal {
                service: key,
                real: fullnat(real.addr, 1),
            },
        };
        e.apply(&[change]).expect("apply");
    }
    e.apply(&[Change::EditService {
        key,
        options: ServiceOptions {
            scheduler: SchedulerKind::Rr,
            ..proxy_options()
        },
    }])
    .unwrap();
    // Reals taken out by passive detection come back after fail_timeout (one probe each).
    thread::sleep(Duration::from_millis(300));
    let mut served = [0u32; 3];
    let mut bytes = 0;
    for i in 0..150 {
        match session(vip, &mut rng, &mut bytes) {
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
    assert!(e.connections().is_empty());
    let slack = workers * 64 * 2;
    assert!(
        wait_until(Duration::from_secs(10), || {
            reals.iter().for_each(|x| x.prune());
            descriptors() <= fds_before + slack
        }),
        "descriptors: {} before the churn, {} after (pools may hold {slack})",
        fds_before,
        descriptors()
    );
    e.shutdown();
}
