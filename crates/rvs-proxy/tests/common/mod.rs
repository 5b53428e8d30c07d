//! Helpers shared by the proxy engine's loopback tests.
#![allow(dead_code)]

pub mod churn;

use rvs_core::desired::Change;
use rvs_core::engine::{Engine, EngineStats};
use rvs_core::{ForwardMethod, RealServer, SchedulerKind, ServiceKey, ServiceOptions};
use rvs_proxy::{ProxyEngine, ProxyEngineConfig};
use socket2::{Domain, Socket, Type};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// An engine with two workers (so `SO_REUSEPORT` spreading is exercised).
pub fn engine() -> ProxyEngine {
    ProxyEngine::start(ProxyEngineConfig {
        workers: 2,
        ..Default::default()
    })
    .expect("engine")
}

/// A currently free port on `ip`.
pub fn free_addr(ip: &str) -> SocketAddr {
    let ip: IpAddr = ip.parse().unwrap();
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap()
}

pub fn fullnat(addr: SocketAddr, weight: u32) -> RealServer {
    RealServer::new(addr, ForwardMethod::FullNat, weight)
}

pub fn options(scheduler: SchedulerKind) -> ServiceOptions {
    ServiceOptions {
        scheduler,
        ..ServiceOptions::default()
    }
}

/// A TCP service on a free port of `ip` over `reals` (FULLNAT, weight 1 each); returns the
/// VIP and the service's key.
pub fn tcp_service(
    e: &mut ProxyEngine,
    ip: &str,
    opts: ServiceOptions,
    reals: &[SocketAddr],
) -> (SocketAddr, ServiceKey) {
    let vip = free_addr(ip);
    let key = ServiceKey::tcp(vip);
    let reals: Vec<RealServer> = reals.iter().map(|r| fullnat(*r, 1)).collect();
    add_service(e, key, opts, &reals);
    (vip, key)
}

/// A UDP service on a free loopback port over new echo reals tagged `names` (FULLNAT, weight
/// 1 each); returns the VIP, the service's key and the reals.
pub fn udp_echo_service(
    e: &mut ProxyEngine,
    names: &[&'static str],
    opts: ServiceOptions,
) -> (SocketAddr, ServiceKey, Vec<SocketAddr>) {
    let reals = echo_backends(names);
    let vip = udp_vip();
    let key = ServiceKey::udp(vip);
    let rs: Vec<RealServer> = reals.iter().map(|r| fullnat(*r, 1)).collect();
    add_service(e, key, opts, &rs);
    (vip, key, reals)
}

/// Adds a service with its reals.
pub fn add_service(
    e: &mut ProxyEngine,
    key: ServiceKey,
    opts: ServiceOptions,
    reals: &[RealServer],
) {
    let mut changes = vec![Change::AddService { key, options: opts }];
    changes.extend(reals.iter().map(|r| Change::AddReal {
        service: key,
        real: *r,
    }));
    e.apply(&changes).expect("apply");
}

/// One HTTP request on a new connection; returns the body.
pub fn http_get(vip: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect(vip)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    match resp.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => Err(std::io::Error::other(format!("bad response {resp:?}"))),
    }
}

/// A client connected to `vip` (reads time out after 5 s) that has sent `first`.
pub fn client(vip: SocketAddr, first: &[u8]) -> TcpStream {
    let mut c = TcpStream::connect(vip).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(first).unwrap();
    c
}

/// A keep-alive HTTP client connection.
pub struct KeepAlive {
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    pub fn connect(vip: SocketAddr) -> std::io::Result<KeepAlive> {
        let s = TcpStream::connect(vip)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(KeepAlive {
            reader: BufReader::new(s),
        })
    }

    /// One request; returns the body.
    pub fn get(&mut self) -> std::io::Result<String> {
        self.reader
            .get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")?;
        let mut len = None;
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("Content-Length: ") {
                len = v.parse::<usize>().ok();
            }
        }
        let mut body = vec![0; len.ok_or_else(|| std::io::Error::other("no length"))?];
        self.reader.read_exact(&mut body)?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// Polls `f` every 10 ms until it is true or `timeout` passes; returns its last value.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// (active, inactive) of one real in the stats.
pub fn conn_counts(stats: &EngineStats, key: &ServiceKey, real: SocketAddr) -> (u32, u32) {
    let r = &stats.services[key].reals[&real];
    (r.active_conns, r.inactive_conns)
}

/// Total active + inactive connections of a service.
pub fn open_conns(e: &ProxyEngine, key: &ServiceKey) -> u32 {
    e.stats().services[key]
        .reals
        .values()
        .map(|r| r.active_conns + r.inactive_conns)
        .sum()
}

/// UDP echo backends that tag replies with their name; returns their addresses.
pub fn echo_backends(names: &[&'static str]) -> Vec<SocketAddr> {
    names
        .iter()
        .map(|&name| rvs_demo::spawn_udp_echo(([127, 0, 0, 1], 0).into(), name, true).unwrap())
        .collect()
}

/// A currently free UDP port on 127.0.0.1.
pub fn udp_vip() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `n` clients on new source ports each send one datagram to `vip` and wait up to `wait` for a
/// reply; returns how many got one, and the clients (so their sessions, if any, stay wanted).
pub fn new_udp_clients(vip: SocketAddr, n: usize, wait: Duration) -> (usize, Vec<UdpSocket>) {
    let clients: Vec<UdpSocket> = (0..n)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(wait)).unwrap();
            s
        })
        .collect();
    for (i, s) in clients.iter().enumerate() {
        s.send_to(format!("m{i}").as_bytes(), vip).unwrap();
    }
    let mut buf = [0u8; 256];
    let answered = clients
        .iter()
        .filter(|s| s.recv_from(&mut buf).is_ok())
        .count();
    (answered, clients)
}

/// A listener whose accept queue is full: a new SYN to it is dropped, so a connect to it stays
/// pending until the queue drains (the SYN is retransmitted after about 1 s). Returns the
/// listener and the connections that fill its queue.
pub fn full_listener() -> (TcpListener, Vec<Socket>) {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.listen(0).unwrap();
    let listener: TcpListener = s.into();
    let addr = listener.local_addr().unwrap();
    let fillers = (0..3)
        .map(|_| {
            let c = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            c.set_nonblocking(true).unwrap();
            let _ = c.connect(&addr.into());
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    (listener, fillers)
}

/// Sets the soft open-files limit of this process; returns the one before. Only for a test alone
/// in its binary: every thread of the process is bound by it.
pub fn set_soft_nofile(limit: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit value.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        let old = lim.rlim_cur;
        lim.rlim_cur = limit;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        old
    }
}

/// The lowest descriptor number free now (the next one the process would get: `open` returns
/// the lowest free number).
pub fn lowest_free_fd() -> u64 {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open("/dev/null").unwrap();
    f.as_raw_fd() as u64
}

/// After connects that failed on the director's side: exactly `n` counted as
/// `connect_local_error`, nothing retried or blamed on a real (no connect failure, never taken
/// out).
pub fn assert_only_local_errors(
    stats: &EngineStats,
    key: &ServiceKey,
    reals: &[SocketAddr],
    n: u64,
) {
    assert_eq!(
        stats.outcomes["connect_local_error"], n,
        "{:?}",
        stats.outcomes
    );
    for name in ["connect_retry", "connect_error", "no_real", "passive_down"] {
        assert_eq!(stats.outcomes[name], 0, "{name}: {:?}", stats.outcomes);
    }
    for r in reals {
        let s = &stats.services[key].reals[r];
        assert_eq!(
            (s.connect_failures, s.passive_downs, s.passive_out_ms),
            (0, 0, 0),
            "{r}"
        );
    }
}

/// Round robin with passive failure detection set as given.
pub fn passive_options(max_fails: u32, fail_timeout_ms: u32) -> ServiceOptions {
    let mut o = options(SchedulerKind::Rr);
    o.proxy.max_fails = max_fails;
    o.proxy.fail_timeout_ms = fail_timeout_ms;
    o
}

/// A real's stats as the engine reports them now.
pub fn real_stats(
    e: &ProxyEngine,
    key: &ServiceKey,
    real: SocketAddr,
) -> rvs_core::engine::RealStats {
    e.stats().services[key].reals[&real]
}
