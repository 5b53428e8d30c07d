//! Benchmark: 10,000 reals under TCP_CHECK at `delay_loop 1` on one tokio thread.
//!
//! Reals are distinct addresses (127.1.x.y on loopback, or 10.98.x.y in a namespace with
//! `NETNS=1`) whose `connect_port` is one of a few listener ports; the listeners run in a child
//! process (this binary with `--serve`). On loopback the listeners' half of each handshake runs
//! in the connecting process's softirq and is charged to it; with `NETNS=1` it is not. The config
//! is generated as keepalived.conf text and parsed (parse time reported too).
//!
//! Reports: CPU time of this process per wall second (share of one core), checks per second,
//! failures, and how late checks start against their schedule (p50 / p99 / max).
//!
//! `TCP_CHECK` runs on the SYN prober when raw sockets are permitted (root), as in rvsd;
//! `PROBER=connect` measures the connect-per-check checker instead. With `NETNS=1` the SYN-ACK
//! receive — and, for the SYN prober, the kernel's RST answer to it — run in the checker side's
//! RX kthread `napi/rvsh0-*`, reported beside the process and added to it.
//!
//! Run: `cargo bench -p rvs-health --bench tcp_check_10k` (env `REALS`, `SECS` override the
//! defaults 10000 and 20; `BASELINE=1` measures bare paced connects instead, the kernel floor;
//! `NETNS=1` puts the listeners in a network namespace behind veth with threaded NAPI, root only,
//! and pins the NAPI kthreads (at SCHED_FIFO 50, as a NIC's softirq runs ahead of processes) and
//! the listener process to CPU 0 and the checker to CPU 1, so the reals' half of every handshake
//! is not charged to the checker, as in production).

use rvs_health::{HealthSupervisor, TcpProber};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LISTENERS: usize = 20;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time (user, system) of this process.
fn cpu_time() -> (Duration, Duration) {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid out-pointer for getrusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// Child mode: listen on `LISTENERS` ports of 0.0.0.0, print them, accept and drop forever.
fn serve() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut ports = Vec::new();
        for _ in 0..LISTENERS {
            let l = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
            ports.push(l.local_addr().unwrap().port());
            tokio::spawn(async move {
                while let Ok((s, _)) = l.accept().await {
                    drop(s);
                }
            });
        }
        println!(
            "{}",
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        );
        std::future::pending::<()>().await;
    });
}

/// Network namespace for `NETNS=1`.
const NS: &str = "rvsh-bench";

fn sh(cmd: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "command failed: {cmd}");
}

/// `NETNS=1`: the listeners live in a namespace behind a veth pair with threaded NAPI on both
/// ends, so the listener side's TCP work and the receive path run in NAPI kthreads rather than
/// in this process (as on a real network, where the real server does its own half). Reals are
/// 10.98.x.y, all local inside the namespace.
fn netns_up() {
    netns_down();
    sh(&format!("ip netns add {NS}"));
    sh(&format!(
        "ip link add rvsh0 type veth peer name rvsh1 netns {NS}"
    ));
    sh("ip addr add 10.99.0.1/30 dev rvsh0 && ip link set rvsh0 up");
    sh(&format!(
        "ip -n {NS} addr add 10.99.0.2/30 dev rvsh1 && ip -n {NS} link set rvsh1 up && ip -n {NS} link set lo up"
    ));
    sh(&format!("ip -n {NS} route add local 10.98.0.0/16 dev lo"));
    sh("ip route add 10.98.0.0/16 via 10.99.0.2");
    sh("ethtool -K rvsh0 gro on tso off >/dev/null && echo 1 > /sys/class/net/rvsh0/threaded");
    sh(&format!(
        "ip netns exec {NS} sh -c 'ethtool -K rvsh1 gro on tso off >/dev/null && echo 1 > /sys/class/net/rvsh1/threaded'"
    ));
    // a queue in front of each veth ring (256 packets), as a NIC has in front of its TX ring:
    // veth stops its queue while the peer's ring is full (kernel >= 6.16) instead of dropping,
    // so a burst of SYNs (or of SYN-ACKs) waits rather than being lost
    sh("tc qdisc replace dev rvsh0 root pfifo limit 10000");
    sh(&format!(
        "ip netns exec {NS} tc qdisc replace dev rvsh1 root pfifo limit 10000"
    ));
}

fn netns_down() {
    let _ = Command::new("sh").arg("-c").arg(format!("ip route del 10.98.0.0/16 2>/dev/null; ip link del rvsh0 2>/dev/null; ip netns del {NS} 2>/dev/null")).status();
}

/// Pin thread/process `pid` (0 = the calling thread) to one CPU.
fn pin(pid: libc::pid_t, cpu: usize) {
    // SAFETY: `set` is a plain bitmask initialised by CPU_ZERO/CPU_SET before use.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    assert!(ok, "sched_setaffinity({pid}, cpu {cpu}) failed");
}

/// Give thread `pid` SCHED_FIFO priority 50: a NIC's receive softirq runs ahead of every
/// process; a threaded-NAPI kthread at normal priority competes with them, and on a loaded
/// machine the veth rings (256 packets) overflow while it waits.
fn realtime(pid: libc::pid_t) {
    let param = libc::sched_param { sched_priority: 50 };
    // SAFETY: plain syscall with a valid sched_param.
    let ok = unsafe { libc::sched_setscheduler(pid, libc::SCHED_FIFO, &param) == 0 };
    assert!(ok, "sched_setscheduler({pid}, SCHED_FIFO) failed");
}

/// The NAPI kthreads of the bench's veth ends (`napi/rvsh0-N` on the checker's side,
/// `napi/rvsh1-N` on the listeners' side): (pid, name).
fn napi_threads() -> Vec<(libc::pid_t, String)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<libc::pid_t>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let comm = comm.trim();
        if comm.starts_with("napi/rvsh") {
            v.push((pid, comm.to_string()));
        }
    }
    v.sort();
    v
}

/// Run time of a thread in ns (`/proc/<pid>/schedstat`, first field).
fn schedstat_ns(pid: libc::pid_t) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a whole process in clock ticks (`/proc/<pid>/stat`).
fn proc_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // after ')' field 0 is state (field 3 of the stat line); utime, stime are fields 14, 15
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

/// Busy and all ticks of one CPU from `/proc/stat` (busy = user+nice+system+irq+softirq).
fn cpu_ticks(cpu: usize) -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let name = format!("cpu{cpu} ");
    let Some(line) = stat.lines().find(|l| l.starts_with(&name)) else {
        return (0, 0);
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let g = |i: usize| f.get(i).copied().unwrap_or(0);
    (g(0) + g(1) + g(2) + g(5) + g(6), f.iter().take(8).sum())
}

/// The side figures of a pinned (`NETNS=1`) run: taken before and after the measured interval.
struct Side {
    napi: Vec<(libc::pid_t, String, u64)>,
    listener: u64,
    cpu1: (u64, u64),
    /// This process's main thread (the checker's runtime), precise run time in ns.
    me: u64,
}

impl Side {
    fn take(listener: u32) -> Side {
        Side {
            napi: napi_threads()
                .into_iter()
                .map(|(p, n)| (p, n.clone(), schedstat_ns(p)))
                .collect(),
            listener: proc_ticks(listener),
            cpu1: cpu_ticks(1),
            me: schedstat_ns(std::process::id() as libc::pid_t),
        }
    }

    /// Print what ran elsewhere during the interval of `wall`; `process` is the checker
    /// process's own share (percent of a core), added to its RX kthread's.
    fn report(&self, later: &Side, wall: Duration, process: f64) {
        let hz = 100.0; // USER_HZ
        let pct = |ns: u64| 100.0 * ns as f64 / 1e9 / wall.as_secs_f64();
        let mut rx_side = 0.0;
        for ((_, name, a), (_, _, b)) in self.napi.iter().zip(&later.napi) {
            println!(
                "  NAPI kthread {name} (CPU 0): {:.2}% of a core",
                pct(b - a)
            );
            if name.starts_with("napi/rvsh0") {
                rx_side += pct(b - a);
            }
        }
        println!(
            "  checker process + its RX kthread napi/rvsh0: {process:.2}% + {rx_side:.2}% = {:.2}% of a core",
            process + rx_side
        );
        println!(
            "  listener process (CPU 0): {:.2}% of a core",
            100.0 * (later.listener - self.listener) as f64 / hz / wall.as_secs_f64()
        );
        println!(
            "  checker thread run time (schedstat, cross-check of getrusage): {:.2}% of a core",
            pct(later.me - self.me)
        );
        let (busy, all) = (later.cpu1.0 - self.cpu1.0, later.cpu1.1 - self.cpu1.1);
        println!(
            "  CPU 1 (checker's CPU; /proc/stat is tick-sampled, other load may share it): busy {:.2}%",
            100.0 * busy as f64 / all.max(1) as f64
        );
    }
}

/// The address of real `i`.
fn real_ip(i: usize, netns: bool) -> std::net::Ipv4Addr {
    let first = if netns { [10, 98] } else { [127, 1] };
    std::net::Ipv4Addr::new(first[0], first[1], (i / 250) as u8, (i % 250 + 1) as u8)
}

fn config_text(reals: usize, ports: &[u16], netns: bool) -> String {
    let mut t = String::with_capacity(reals * 150);
    for (vs, chunk) in (0..reals).collect::<Vec<_>>().chunks(100).enumerate() {
        t.push_str(&format!(
            "virtual_server 10.200.{}.{} 80 {{\n  delay_loop 1\n  lb_kind DR\n",
            vs / 250,
            vs % 250 + 1
        ));
        for &i in chunk {
            let port = ports[i % ports.len()];
            t.push_str(&format!(
                "  real_server {} 80 {{\n    TCP_CHECK {{\n      connect_port {port}\n      connect_timeout 3\n    }}\n  }}\n",
                real_ip(i, netns)
            ));
        }
        t.push_str("}\n");
    }
    t
}

/// Floor: the same connects (socket, connect, RST close) from a plain paced loop with no
/// scheduler at all — the kernel's share of a TCP check (on loopback the listener's half too).
fn baseline(reals: usize, ports: &[u16], secs: u64, netns: bool, listener: Option<u32>) {
    use socket2::{Domain, SockAddr, Socket, Type};
    let addrs: Vec<SockAddr> = (0..reals)
        .map(|i| {
            SockAddr::from(std::net::SocketAddr::from((
                real_ip(i, netns),
                ports[i % ports.len()],
            )))
        })
        .collect();
    let side0 = listener.map(Side::take);
    let (cpu0, t0) = (cpu_time(), Instant::now());
    let per = Duration::from_secs(1) / reals as u32;
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_secs(secs) {
        let due = t0 + per * (n as u32);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.set_linger(Some(Duration::ZERO)).unwrap();
        s.connect(&addrs[(n as usize) % reals]).unwrap();
        drop(s);
        n += 1;
    }
    let (cpu1, wall) = (cpu_time(), t0.elapsed());
    let (user, sys) = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
    println!(
        "baseline (bare blocking connects, no scheduler): {:.1} connects/s, CPU {:.2}% of one core ({user:?} user + {sys:?} system, {:.1} µs per connect)",
        n as f64 / wall.as_secs_f64(),
        100.0 * (user + sys).as_secs_f64() / wall.as_secs_f64(),
        (user + sys).as_secs_f64() * 1e6 / n.max(1) as f64
    );
    if let (Some(a), Some(pid)) = (side0, listener) {
        a.report(
            &Side::take(pid),
            wall,
            100.0 * (user + sys).as_secs_f64() / wall.as_secs_f64(),
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--serve") {
        return serve();
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let reals = env_or("REALS", 10_000) as usize;
    let secs = env_or("SECS", 20);
    let netns = std::env::var("NETNS").is_ok_and(|v| v == "1");
    let exe = std::env::current_exe().unwrap();
    let mut child = if netns {
        netns_up();
        Command::new("ip")
            .args(["netns", "exec", NS])
            .arg(exe)
            .arg("--serve")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    } else {
        Command::new(exe)
            .arg("--serve")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ports: Vec<u16> = line
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    // NETNS: the reals' side (listener process, both NAPI kthreads) on CPU 0, the checker on
    // CPU 1 (pinned before the runtime starts, so every thread it makes inherits it)
    let listener = netns.then(|| {
        pin(child.id() as libc::pid_t, 0);
        let napi = napi_threads();
        assert!(
            napi.len() >= 2,
            "threaded NAPI kthreads not found: {napi:?}"
        );
        for (pid, _) in &napi {
            pin(*pid, 0);
            realtime(*pid);
        }
        pin(0, 1);
        println!("pinned: listener + {napi:?} (SCHED_FIFO 50) to CPU 0, checker to CPU 1");
        child.id()
    });

    if std::env::var("BASELINE").is_ok_and(|v| v == "1") {
        baseline(reals, &ports, secs, netns, listener);
        let _ = child.kill();
        let _ = child.wait();
        if netns {
            netns_down();
        }
        return;
    }
    let text = config_text(reals, &ports, netns);
    let t = Instant::now();
    let cfg = rvs_config::keepalived::parse_str(&text, std::path::Path::new("bench.conf")).unwrap();
    let parse = t.elapsed();
    println!(
        "config: {} bytes, {} reals in {} services, parsed in {parse:?}",
        text.len(),
        reals,
        cfg.virtual_servers.len()
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = if std::env::var("PROBER").is_ok_and(|v| v == "connect") {
            TcpProber::Connect {
                why: "PROBER=connect".into(),
            }
        } else {
            TcpProber::from_env()
        };
        println!("TCP_CHECK prober: {}", tcp.describe());
        let (sup, mut rx) = HealthSupervisor::start_with(&cfg.virtual_servers, Some(tcp.clone()));
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        // warmup spreads first checks over 0..=delay_loop; let it settle
        tokio::time::sleep(Duration::from_secs(3)).await;
        sup.reset_lateness();
        let before = sup.stats();
        let syn_before = tcp.syn_stats();
        let side0 = listener.map(Side::take);
        let (cpu0, wall0) = (cpu_time(), Instant::now());
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let (cpu1, wall) = (cpu_time(), wall0.elapsed());
        let (user, sys) = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
        let cpu = user + sys;
        let after = sup.stats();
        let syn_after = tcp.syn_stats();
        let checks = after.checks - before.checks;
        println!(
            "reals {reals} delay_loop 1s: {:.1} checks/s, failures {}, CPU {:.2}% of one core ({:?} user + {:?} system in {:?}, {:.1} µs per check)",
            checks as f64 / wall.as_secs_f64(),
            after.failures - before.failures,
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
            user,
            sys,
            wall,
            cpu.as_secs_f64() * 1e6 / checks.max(1) as f64
        );
        println!(
            "lateness of check starts: p50 {:?}  p99 {:?}  max {:?} (50 µs buckets)",
            after.late_p50, after.late_p99, after.late_max
        );
        if let (Some(a), Some(b)) = (syn_before, syn_after) {
            println!(
                "SYN prober: {} SYNs sent ({} of them retransmissions), {} SYN-ACK, {} RST, {} timeouts, {} unmatched replies ({} answered with our own RST), {} send errors, {} dropped by the local queue",
                b.sent - a.sent,
                b.retransmits - a.retransmits,
                b.open - a.open,
                b.refused - a.refused,
                b.timeouts - a.timeouts,
                b.unmatched - a.unmatched,
                b.resets - a.resets,
                b.send_errors - a.send_errors,
                b.local_drops - a.local_drops
            );
        }
        if let (Some(a), Some(pid)) = (side0, listener) {
            a.report(
                &Side::take(pid),
                wall,
                100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
            );
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    if netns {
        netns_down();
    }
}
