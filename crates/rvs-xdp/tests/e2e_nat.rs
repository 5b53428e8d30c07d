//! End-to-end NAT and FULLNAT through the XDP engine in network namespaces: rvs-testbed's
//! two-arm topology (client arm eth0, real arm eth1; NAT reals route back via the director,
//! FULLNAT reals have no route to the client), three nginx reals listening on port 8080 behind
//! VIP:80 (port mapping). 1,000 curls through the VIP must succeed; nginx's access logs must
//! show the client's address (NAT) or the director's local address (FULLNAT); after the
//! clients are gone and the (short) timeouts pass, the program's NAT table is empty.
//! The engine runs on a thread inside the director's namespace. Root only.

use rvs_core::conn::{ConnTimeouts, TcpState};
use rvs_core::desired::{Change, Timeouts};
use rvs_core::engine::Engine;
use rvs_core::model::{ForwardMethod, RealServer, ServiceKey, ServiceOptions};
mod common;

use common::nat_lab::{LOCAL, LOCAL6, Lab, lab};
use rvs_testbed::{Kind, Netns};
use rvs_xdp::{XdpConfig, XdpEngine};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Run `f` on a thread inside namespace `ns`.
fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    ns.in_thread(f)
}

/// `n` sequential curls from the client; body → count ("FAIL" for failures).
fn curls(lab: &Lab, n: usize) -> BTreeMap<String, usize> {
    let url = format!("http://{}/", SocketAddr::new(lab.vip, 80));
    rvs_testbed::clients::curl_counts(&lab.topo.client.ns, &url, n).expect("curl loop")
}

/// Source addresses nginx logged ("addr:port ..." per line), counted.
fn logged_sources(lab: &Lab) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for n in &lab.nginx {
        for line in n.access_log().unwrap().lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            let addr = first.rsplit_once(':').map_or(first, |(a, _)| a);
            *out.entry(addr.to_string()).or_insert(0) += 1;
        }
    }
    out
}

fn run(kind: Kind, fwd: ForwardMethod, v6: bool) {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root for namespaces and XDP");
        return;
    }
    let lab = lab(kind, v6);
    let n: usize = std::env::var("RVS_E2E_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let key = ServiceKey::tcp(SocketAddr::new(lab.vip, 80));
    in_ns(&lab.topo.director.ns, || {
        let mut engine = XdpEngine::start(XdpConfig {
            interfaces: vec!["eth0".into(), "eth1".into()],
            fullnat_local: vec![IpAddr::V4(LOCAL), IpAddr::V6(LOCAL6)],
            upkeep_interval: Duration::from_millis(300),
            ..Default::default()
        })
        .expect("engine");
        println!("attached: {:?}", engine.attachments());
        let mut changes = vec![
            Change::SetTimeouts(Timeouts {
                tcp: 3,
                tcp_fin: 2,
                udp: 2,
                ..Default::default()
            }),
            Change::AddService {
                key,
                options: ServiceOptions::default(),
            },
        ];
        for r in &lab.topo.reals {
            let addr = SocketAddr::new(r.ip(v6), 8080);
            changes.push(Change::AddReal {
                service: key,
                real: RealServer::new(addr, fwd, 1),
            });
        }
        engine.apply(&changes).expect("apply");
        engine
            .set_state_timeouts(short_closing_states())
            .expect("state timeouts");
        let forwarded_by_kernel = || {
            let out = lab
                .topo
                .director
                .ns
                .run("nstat", &["-az", "IpForwDatagrams", "Ip6OutForwDatagrams"]);
            let out = out.expect("nstat");
            assert!(out.contains("IpForwDatagrams"), "nstat: {out}");
            out.lines()
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        };
        let dump =
            rvs_testbed::Tcpdump::start(Some(&lab.topo.reals[0].ns), "eth0", "tcp dst port 8080")
                .expect("tcpdump");
        let kernel_before = forwarded_by_kernel();
        let started = Instant::now();
        let counts = curls(&lab, n);
        let kernel = forwarded_by_kernel() - kernel_before;
        println!("packets the director's kernel forwarded: {kernel}");
        // Only the first packets of a flow to a neighbour not resolved yet may take the kernel
        // path; the rest go out by XDP_TX / bpf_redirect_map.
        assert!(kernel < n as u64, "kernel forwarded {kernel} packets");
        let after = engine.stats();
        println!("{fwd:?}: {counts:?} in {:?}", started.elapsed());
        println!("outcomes: {:?}", after.outcomes);
        assert_eq!(counts.get("FAIL"), None, "failed requests: {counts:?}");
        assert_eq!(counts.values().sum::<usize>(), n);
        for i in 0..3 {
            if n < 100 {
                break;
            }
            assert!(
                counts.get(&format!("real{i}")).copied().unwrap_or(0) > n / 10,
                "{counts:?}"
            );
        }
        assert!(
            after.outcomes["nat_forwarded"] >= 5 * n as u64,
            "{:?}",
            after.outcomes
        );
        assert!(
            after.outcomes["nat_reply"] >= 4 * n as u64,
            "{:?}",
            after.outcomes
        );
        // InPkts/OutPkts as `rvsadm -Ln --stats` shows them: the replies count out (real ->
        // client), in the service and in the reals that sent them.
        let svc = &after.services[&key];
        let c = svc.counters;
        println!("service counters: {c:?}");
        assert!(
            c.in_pkts >= 5 * n as u64 && c.out_pkts >= 4 * n as u64,
            "{c:?}"
        );
        assert!(c.out_bytes >= 40 * c.out_pkts, "{c:?}");
        let reals_out: u64 = svc.reals.values().map(|r| r.counters.out_pkts).sum();
        assert!(reals_out >= c.out_pkts, "reals {reals_out}, service {c:?}");
        if n >= 100 {
            assert!(
                svc.reals.values().all(|r| r.counters.out_pkts > 0),
                "{svc:?}"
            );
        }
        let dump = dump.finish().expect("tcpdump");
        let syns: Vec<&str> = dump.lines().filter(|l| l.contains("Flags [S]")).collect();
        println!(
            "SYNs at real0: {}; first: {}",
            syns.len(),
            syns.first().unwrap_or(&"")
        );
        assert!(!syns.is_empty(), "no SYN captured at real0");
        // tcpdump prints option 254 as an RFC 6994 experimental option named by its first two
        // bytes (here the client's port): TOA first, before the client's own options.
        if fwd == ForwardMethod::FullNat {
            let without: Vec<&&str> = syns
                .iter()
                .filter(|l| !l.contains("options [exp-"))
                .collect();
            assert!(without.is_empty(), "SYNs without TOA: {without:?}");
            // The client's ACK completing the handshake carries it too (toa.ko reads it
            // there): after a SYN, a flow's first other packet has TOA, its later ones not.
            let mut after_syn: BTreeMap<&str, bool> = BTreeMap::new();
            let mut wrong = Vec::new();
            for l in dump.lines() {
                let Some(src) = l.split(": ").nth(1).and_then(|a| a.split(" > ").next()) else {
                    continue;
                };
                if l.contains("Flags [S]") {
                    after_syn.insert(src, true);
                    continue;
                }
                let first = after_syn.insert(src, false).unwrap_or(false);
                if l.contains("options [exp-") != first {
                    wrong.push(l);
                }
            }
            println!("flows at real0: {}", after_syn.len());
            assert!(wrong.is_empty(), "TOA on the wrong packets: {wrong:?}");
        } else {
            assert!(!syns.iter().any(|l| l.contains("exp-")), "TOA on a NAT SYN");
        }
        let sources = logged_sources(&lab);
        println!("nginx saw: {sources:?}");
        let want = match (fwd == ForwardMethod::Nat, v6) {
            (true, false) => lab.topo.client.ip4.to_string(),
            (true, true) => lab.topo.client.ip6.to_string(),
            (false, false) => LOCAL.to_string(),
            (false, true) => LOCAL6.to_string(),
        };
        assert_eq!(sources.get(&want).copied(), Some(n), "sources: {sources:?}");
        assert_eq!(sources.len(), 1, "sources: {sources:?}");
        let conns = engine.connections();
        let rows = conns.len();
        // -Lnc rows: client as it connected, the VIP, the real with its mapped port.
        assert!(rows > 0, "no -Lnc rows right after the requests");
        // Every row in an IPVS state; the closed connections in one of the closing states.
        let mut states: BTreeMap<String, usize> = BTreeMap::new();
        for c in &conns {
            *states.entry(c.state.clone()).or_default() += 1;
        }
        println!("-Lnc states: {states:?}");
        let names: Vec<&str> = TcpState::ALL.iter().map(|s| s.name()).collect();
        assert!(
            states.keys().all(|s| names.contains(&s.as_str())),
            "{states:?}"
        );
        let closing = ["TIME_WAIT", "CLOSE", "CLOSE_WAIT", "FIN_WAIT", "LAST_ACK"];
        assert!(
            closing.iter().any(|s| states.contains_key(*s)),
            "no closing state after the clients closed: {states:?}"
        );
        for c in &conns {
            assert_eq!(c.virtual_addr, SocketAddr::new(lab.vip, 80), "{c:?}");
            assert_eq!(c.real.port(), 8080, "{c:?}");
            let client: IpAddr = if v6 {
                lab.topo.client.ip6.into()
            } else {
                lab.topo.client.ip4.into()
            };
            assert_eq!(c.client.ip(), client, "{c:?}");
        }
        println!(
            "connections right after: {rows}, NAT table {}",
            engine.nat_table_len()
        );
        assert!(engine.nat_table_len() > 0);
        let deadline = Instant::now() + Duration::from_secs(20);
        while engine.nat_table_len() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(engine.nat_table_len(), 0, "NAT table not reclaimed");
        assert!(engine.connections().is_empty(), "-Lnc not empty");
        engine.shutdown();
    });
}

#[test]
fn e2e_nat_v4() {
    run(Kind::TwoArm, ForwardMethod::Nat, false);
}

#[test]
fn e2e_nat_v6() {
    run(Kind::TwoArm, ForwardMethod::Nat, true);
}

#[test]
fn e2e_fullnat_v6() {
    run(Kind::FullNat, ForwardMethod::FullNat, true);
}

#[test]
fn e2e_fullnat_v4() {
    run(Kind::FullNat, ForwardMethod::FullNat, false);
}

/// Hold `n` TCP connections to vip:80 until stdin closes (one process; fds ≤ n + a few).
const HOLDER: &str = r#"
import socket, sys
n, vip = int(sys.argv[1]), sys.argv[2]
socks = []
for i in range(n):
    s = socket.socket()
    s.settimeout(10)
    s.connect((vip, 80))
    socks.append(s)
print("connected", len(socks), flush=True)
sys.stdin.read()
"#;

/// 20,000 concurrent connections through FULLNAT (one client address, one local address):
/// every connect succeeds, the reals see as many distinct established connections from the
/// local address, the program's table holds one reverse entry per flow with distinct local
/// ports per real; after the clients close and the FIN timeout passes, the table is empty.
#[test]
fn e2e_fullnat_concurrent() {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root for namespaces and XDP");
        return;
    }
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let total: usize = std::env::var("RVS_E2E_CONCURRENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let procs = 4;
    let lab = lab(Kind::FullNat, false);
    let key = ServiceKey::tcp(SocketAddr::new(lab.vip, 80));
    in_ns(&lab.topo.director.ns, || {
        let mut engine = XdpEngine::start(XdpConfig {
            interfaces: vec!["eth0".into(), "eth1".into()],
            fullnat_local: vec![IpAddr::V4(LOCAL)],
            upkeep_interval: Duration::from_secs(1),
            ..Default::default()
        })
        .expect("engine");
        let mut changes = vec![
            Change::SetTimeouts(Timeouts {
                tcp: 300,
                tcp_fin: 3,
                udp: 3,
                ..Default::default()
            }),
            Change::AddService {
                key,
                options: ServiceOptions::default(),
            },
        ];
        for r in &lab.topo.reals {
            let addr = SocketAddr::new(IpAddr::V4(r.ip4), 8080);
            changes.push(Change::AddReal {
                service: key,
                real: RealServer::new(addr, ForwardMethod::FullNat, 1),
            });
        }
        engine.apply(&changes).expect("apply");
        engine
            .set_state_timeouts(short_closing_states())
            .expect("state timeouts");
        let started = Instant::now();
        let mut holders = Vec::new();
        for _ in 0..procs {
            let mut cmd = lab.topo.client.ns.command("sh");
            cmd.args([
                "-c",
                &format!(
                    "ulimit -n {}; exec python3 -c '{HOLDER}' {} {}",
                    total / procs + 100,
                    total / procs,
                    lab.topo.vip4
                ),
            ]);
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
            holders.push(cmd.spawn().expect("spawn holder"));
        }
        for h in &mut holders {
            let mut line = String::new();
            BufReader::new(h.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert!(line.starts_with("connected"), "holder: {line:?}");
        }
        println!("{total} connections up in {:?}", started.elapsed());
        let mut seen = 0;
        for r in &lab.topo.reals {
            let out =
                r.ns.run("ss", &["-Htn", "state", "established", "( sport = :8080 )"])
                    .unwrap();
            let from_local = out
                .lines()
                .filter(|l| l.contains(&format!("{LOCAL}:")))
                .count();
            println!("{}: {from_local} established from {LOCAL}", r.ns.name());
            seen += from_local;
        }
        assert_eq!(seen, total, "reals see every connection, none merged");
        let flows = engine.nat_flows();
        let clients: std::collections::HashSet<_> = flows.iter().map(|(_, o)| *o).collect();
        let locals: std::collections::HashSet<_> =
            flows.iter().map(|(r, _)| (r.src, r.dst, r.dport)).collect();
        assert_eq!(flows.len(), total);
        assert_eq!(clients.len(), total, "one reverse entry per client flow");
        assert_eq!(
            locals.len(),
            total,
            "distinct local address and port per real"
        );
        let stats = engine.stats();
        assert_eq!(stats.outcomes["table_full"], 0);
        assert_eq!(stats.outcomes["no_lport"], 0);
        for h in &mut holders {
            drop(h.stdin.take());
        }
        for mut h in holders {
            h.wait().unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while engine.nat_table_len() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
        }
        println!("table empty after close: {}", engine.nat_table_len() == 0);
        assert_eq!(engine.nat_table_len(), 0, "NAT table not reclaimed");
        assert!(engine.connections().is_empty());
        engine.shutdown();
    });
}

/// IPVS's per-state timeouts with every state but ESTABLISHED cut to 2 s, so a test can
/// watch closed connections expire (IPVS's own are 10 s to 2 min).
fn short_closing_states() -> ConnTimeouts {
    let mut t = ConnTimeouts::default();
    for s in TcpState::ALL {
        if s != TcpState::Established {
            t.tcp[s as usize] = 2;
        }
    }
    t
}
