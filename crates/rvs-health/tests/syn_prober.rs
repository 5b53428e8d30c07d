//! The SYN prober against real kernels (root): a checker namespace and a real namespace joined
//! by veth, IPv4 and IPv6. A listening port is up (and the real is left with no half-open or
//! established connection: the checker's kernel reset it), a closed port is refused (RST), a
//! blackholed address times out, a non-local `bindto` fails, a lost SYN is sent again after 1 s,
//! a real retrying its SYN-ACK (the kernel's RST lost) is reset by the prober, the supervisor
//! uses the prober for `TCP_CHECK`s, and without `CAP_NET_RAW` checks fall back to connect.

mod common;

use rvs_health::{CheckError, HealthSupervisor, SupervisorEvent, SynProber, TcpProber};
use rvs_testbed::{Netns, skip_unless_root};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// Checker namespace `c` (10.61.0.1, fd61::1) — veth — real namespace `r` (10.61.0.2, fd61::2).
/// `r` does not forward, so what `c` routes to 10.61.1.0/24 / fd61:1::/64 via `r` vanishes.
fn topology() -> (Netns, Netns) {
    let c = Netns::new("syn-chk").unwrap();
    let r = Netns::new("syn-real").unwrap();
    c.veth("v0", &r, "v1").unwrap();
    c.add_addr("v0", "10.61.0.1/24").unwrap();
    r.add_addr("v1", "10.61.0.2/24").unwrap();
    c.add_addr("v0", "fd61::1/64").unwrap();
    r.add_addr("v1", "fd61::2/64").unwrap();
    c.add_route("10.61.1.0/24", "10.61.0.2").unwrap();
    c.add_route("fd61:1::/64", "fd61::2").unwrap();
    (c, r)
}

/// Lines of `ss -tan` in `ns` for TCP port `port` (any state but LISTEN).
fn connections(ns: &Netns, port: u16) -> Vec<String> {
    ns.run("ss", &["-Htan", "state", "all"])
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("LISTEN") && l.contains(&format!(":{port} ")))
        .map(str::to_string)
        .collect()
}

fn run_in(ns: &Netns, f: impl AsyncFnOnce() + Send) {
    ns.in_thread(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    })
}

#[test]
fn open_closed_and_blackholed_over_ipv4_and_ipv6() {
    if !skip_unless_root("open_closed_and_blackholed_over_ipv4_and_ipv6") {
        return;
    }
    let (c, r) = topology();
    // listeners created inside the real's namespace (a socket keeps its namespace); never
    // accepted from: a completed handshake would sit in the accept queue and show in `ss`
    let (l4, l6) = r.in_thread(|| {
        (
            TcpListener::bind("10.61.0.2:8080").unwrap(),
            TcpListener::bind("[fd61::2]:8080").unwrap(),
        )
    });
    let t = Duration::from_millis(500);
    run_in(&c, async || {
        let p = SynProber::start(None).expect("raw sockets as root");
        let (first, last) = p.ports();
        assert_eq!(last - first + 1, rvs_health::syn::PORT_BLOCK);
        for real in ["10.61.0.2", "fd61::2"] {
            let ip: IpAddr = real.parse().unwrap();
            p.probe(SocketAddr::new(ip, 8080), None, t)
                .await
                .unwrap_or_else(|e| panic!("{real}:8080 listens: {e}"));
            match p.probe(SocketAddr::new(ip, 8081), None, t).await {
                Err(CheckError::Connect(e)) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED), "{real}")
                }
                other => panic!("{real}:8081 is closed, got {other:?}"),
            }
        }
        for hole in ["10.61.1.9", "fd61:1::9"] {
            let start = Instant::now();
            let got = p
                .probe(SocketAddr::new(hole.parse().unwrap(), 80), None, t)
                .await;
            assert!(
                matches!(got, Err(CheckError::Timeout(d)) if d == t),
                "{hole}: {got:?}"
            );
            let took = start.elapsed();
            assert!(took >= t && took < t * 3, "{hole} timed out after {took:?}");
        }
        // bindto: our own address works, a foreign one cannot be sent from
        let own: IpAddr = "10.61.0.1".parse().unwrap();
        p.probe("10.61.0.2:8080".parse().unwrap(), Some(own), t)
            .await
            .unwrap();
        let foreign: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(
            p.probe("10.61.0.2:8080".parse().unwrap(), Some(foreign), t)
                .await
                .is_err()
        );
        // many at once: one batch, every one answered
        let many: Vec<_> = (0..200)
            .map(|i| {
                let target: SocketAddr = if i % 2 == 0 {
                    "10.61.0.2:8080".parse().unwrap()
                } else {
                    "[fd61::2]:8080".parse().unwrap()
                };
                let p = p.clone();
                tokio::spawn(async move { p.probe(target, None, t).await })
            })
            .collect();
        for h in many {
            h.await.unwrap().unwrap();
        }
        let s = p.stats();
        assert_eq!((s.open, s.refused, s.timeouts), (203, 2, 2), "{s:?}");
        assert_eq!(s.send_errors, 1, "the foreign bindto");
        assert_eq!(
            s.retransmits, 0,
            "timeouts of 500 ms end before the first retransmission"
        );
        // the real's SYN-ACKs were reset by the checker's kernel: give the RSTs a moment
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    for port in [8080, 8081] {
        let left = connections(&r, port);
        assert!(
            left.is_empty(),
            "half-open or open connections left on the real: {left:?}"
        );
    }
    drop((l4, l6));
}

#[test]
fn supervisor_runs_tcp_checks_through_the_syn_prober() {
    if !skip_unless_root("supervisor_runs_tcp_checks_through_the_syn_prober") {
        return;
    }
    let (c, r) = topology();
    let _l = r.in_thread(|| TcpListener::bind("[fd61::2]:8080").unwrap());
    let text = "virtual_server fd61::100 80 {\n delay_loop 1\n\
        real_server fd61::2 8080 {\n TCP_CHECK {\n connect_timeout 1\n warmup 0\n }\n }\n\
        real_server fd61::2 8081 {\n TCP_CHECK {\n connect_timeout 1\n warmup 0\n }\n }\n}\n";
    let cfg = common::config(text);
    run_in(&c, async || {
        let (sup, mut rx) = HealthSupervisor::start(&cfg.virtual_servers);
        let tcp = sup.tcp_prober().expect("TCP_CHECKs configured").clone();
        assert!(matches!(tcp, TcpProber::Syn(_)), "{}", tcp.describe());
        let mut down = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while down.is_none() {
            let ev = tokio::time::timeout_at(deadline, rx.recv()).await.unwrap();
            if let Some(SupervisorEvent::Real(h)) = ev
                && h.health == rvs_core::model::Health::Down
            {
                down = Some(h);
            }
        }
        let h = down.unwrap();
        assert_eq!(h.real, "[fd61::2]:8081".parse().unwrap());
        assert!(h.last_error.unwrap().contains("refused"));
        let st = sup.status();
        let up = st.iter().find(|s| s.real.port() == 8080).unwrap();
        assert_eq!(up.health, rvs_core::model::Health::Up);
        let s = tcp.syn_stats().unwrap();
        assert!(s.open >= 1 && s.refused >= 1, "{s:?}");
        sup.shutdown().await;
    });
}

#[test]
fn a_lost_syn_is_sent_again_after_one_second() {
    if !skip_unless_root("a_lost_syn_is_sent_again_after_one_second") {
        return;
    }
    let (c, r) = topology();
    // 10.61.1.5 is routed to the real's namespace, which drops it until it owns the address
    let _l = r.in_thread(|| TcpListener::bind("0.0.0.0:8082").unwrap());
    run_in(&c, async || {
        let p = SynProber::start(None).unwrap();
        let probe = p.probe(
            "10.61.1.5:8082".parse().unwrap(),
            None,
            Duration::from_millis(2500),
        );
        let start = Instant::now();
        let late_addr = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            r.ip(&["addr", "add", "10.61.1.5/32", "dev", "lo"]).unwrap();
        };
        let (got, ()) = tokio::join!(probe, late_addr);
        let took = start.elapsed();
        got.unwrap_or_else(|e| panic!("answered after the retransmission: {e} {:?}", p.stats()));
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_millis(1800),
            "{took:?}"
        );
        let s = p.stats();
        assert_eq!((s.sent, s.retransmits, s.open), (2, 1, 1), "{s:?}");
    });
}

/// Child half of the fallback test: runs without `CAP_NET_RAW`.
const FALLBACK_CHILD: &str = "RVS_SYN_FALLBACK_CHILD";

#[test]
fn without_cap_net_raw_tcp_checks_fall_back_to_connect() {
    if std::env::var_os(FALLBACK_CHILD).is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let p = TcpProber::from_env();
                let why = p.describe();
                assert!(matches!(p, TcpProber::Connect { .. }), "{why}");
                assert!(why.contains("SYN prober unavailable"), "{why}");
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let up = l.local_addr().unwrap();
                let c = common::checker(up, "TCP_CHECK {\n connect_timeout 1\n }");
                p.check(&c, up).await.unwrap();
                let closed = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
                assert!(p.check(&c, closed).await.is_err());
            });
        return;
    }
    if !skip_unless_root("without_cap_net_raw_tcp_checks_fall_back_to_connect") {
        return;
    }
    // the same test binary, as root but with CAP_NET_RAW out of the bounding set
    let status = std::process::Command::new("setpriv")
        .args(["--bounding-set", "-net_raw", "--inh-caps", "-net_raw", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "without_cap_net_raw_tcp_checks_fall_back_to_connect",
            "--nocapture",
        ])
        .env(FALLBACK_CHILD, "1")
        .env_remove("RVS_TCP_CHECK")
        .status()
        .expect("setpriv (util-linux)");
    assert!(status.success(), "child without CAP_NET_RAW: {status}");
}

#[test]
fn a_real_retrying_its_syn_ack_is_reset_by_the_prober() {
    if !skip_unless_root("a_real_retrying_its_syn_ack_is_reset_by_the_prober") {
        return;
    }
    let (c, r) = topology();
    let _l = r.in_thread(|| TcpListener::bind("10.61.0.2:8083").unwrap());
    // the checker's kernel loses its RSTs (sent from a kernel socket: no owner uid); the
    // prober's own (from its raw socket, owned by root) pass
    let rules = "add table inet t\n\
        add chain inet t out { type filter hook output priority 0; }\n\
        add rule inet t out tcp flags rst meta skuid 0 accept\n\
        add rule inet t out tcp flags rst drop\n";
    let mut nft = c.command("nft");
    nft.args(["-f", "-"]).stdin(std::process::Stdio::piped());
    let mut child = nft.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), rules.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "nft rules");
    let half_open = || {
        r.run("ss", &["-Htn", "state", "syn-recv"])
            .unwrap()
            .lines()
            .count()
    };
    run_in(&c, async || {
        let p = SynProber::start(None).unwrap();
        let t = Duration::from_millis(500);
        p.probe("10.61.0.2:8083".parse().unwrap(), None, t)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            half_open(),
            1,
            "the kernel's RST was dropped: the real waits"
        );
        // the real retries its SYN-ACK after ~1 s; the prober answers it with an RST
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let s = p.stats();
        assert!(s.unmatched >= 1 && s.resets >= 1, "{s:?}");
        assert_eq!(half_open(), 0, "reset by the prober");
    });
}
