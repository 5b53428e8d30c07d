//! `xdp_nat_e2e`: rvs NAT and FULLNAT end to end, director CPU per request by the NAPI-kthread
//! method of DESIGN.md — the same two-arm topology, pinning and wrk runs as `bench/nft.sh`
//! (nftables DNAT / plain forwarding), so the figures compare with that comparison's. Writes the
//! bench suite's JSON (see bench/README.md). An example (not a bin) because it builds on the
//! test-bed crate, a dev-dependency.
//!
//! Usage: xdp_nat_e2e [--mode smoke|quick|full] [--out FILE]   (root)

use rvs_core::desired::{Change, Timeouts};
use rvs_core::engine::Engine;
use rvs_core::model::{ForwardMethod, RealServer, ServiceKey, ServiceOptions};
use rvs_testbed::director_cost;
use rvs_testbed::{Kind, Netns, Nginx, NginxOptions, Topology, WrkOptions, wrk};
use rvs_xdp::{XdpConfig, XdpEngine};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const BALANCER_CPU: &str = "1";
const CLIENT_CPU: &str = "0";
const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 20, 2, 100);

/// Run `f` on a thread inside namespace `ns`.
fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    ns.in_thread(f)
}

struct Row {
    subject: &'static str,
    scenario: &'static str,
    metric: &'static str,
    unit: &'static str,
    better: &'static str,
    values: Vec<f64>,
}

fn push(
    rows: &mut Vec<Row>,
    r: (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ),
    v: f64,
) {
    match rows
        .iter_mut()
        .find(|x| x.subject == r.0 && x.scenario == r.1 && x.metric == r.2)
    {
        Some(x) => x.values.push(v),
        None => rows.push(Row {
            subject: r.0,
            scenario: r.1,
            metric: r.2,
            unit: r.3,
            better: r.4,
            values: vec![v],
        }),
    }
}

/// One subject: topology, reals, engine, then every scenario and round.
fn subject(
    name: &'static str,
    kind: Kind,
    fwd: ForwardMethod,
    generic: bool,
    rounds: usize,
    duration: Duration,
    rows: &mut Vec<Row>,
) -> BoxResult<()> {
    let topo = Topology::build(kind, 3)?;
    let peers: Vec<_> = [(&topo.switch, "dir"), (&topo.client.ns, "eth0")]
        .into_iter()
        .map(|(ns, dev)| {
            in_ns(ns, || {
                let mut d = rvs_xdp::decap::Decap::load().expect("load pass program");
                d.attach(dev).expect("attach to a peer");
                d
            })
        })
        .collect();
    topo.client
        .ns
        .run("ethtool", &["-K", "eth0", "tx", "off"])?;
    let dir = &topo.director.ns;
    dir.ip(&["addr", "add", &format!("{}/32", topo.vip4), "dev", "lo"])?;
    if kind == Kind::FullNat {
        dir.ip(&["addr", "add", &format!("{LOCAL}/24"), "dev", "eth1"])?;
    }
    let mut nginx = Vec::new();
    for (i, r) in topo.reals.iter().enumerate() {
        r.ns.run("ethtool", &["-K", "eth0", "tx", "off"])?;
        let mut o = NginxOptions::new((r.ip4, 80).into(), &format!("real{i}"));
        o.cpus = Some(CLIENT_CPU.into());
        nginx.push(Nginx::start_with(Some(&r.ns), &o)?);
    }
    let kthreads = director_cost::isolate_director_napi(&topo, BALANCER_CPU, CLIENT_CPU)?;
    let key = ServiceKey::tcp(SocketAddr::new(IpAddr::V4(topo.vip4), 80));
    in_ns(dir, || -> BoxResult<()> {
        let mut engine = XdpEngine::start(XdpConfig {
            interfaces: vec!["eth0".into(), "eth1".into()],
            fullnat_local: vec![IpAddr::V4(LOCAL)],
            force_generic: generic,
            ..Default::default()
        })?;
        let mut changes = vec![
            Change::SetTimeouts(Timeouts {
                tcp: 900,
                tcp_fin: 5,
                udp: 300,
            }),
            Change::AddService {
                key,
                options: ServiceOptions::default(),
            },
        ];
        for r in &topo.reals {
            changes.push(Change::AddReal {
                service: key,
                real: RealServer::new(SocketAddr::new(IpAddr::V4(r.ip4), 80), fwd, 1),
            });
        }
        engine.apply(&changes)?;
        for (scenario, close) in [("keep-alive", false), ("new connection per request", true)] {
            for _ in 0..rounds {
                let o = WrkOptions {
                    url: format!("http://{}/", topo.vip4),
                    connections: 50,
                    threads: 1,
                    duration,
                    new_connection_per_request: close,
                    cpus: Some(CLIENT_CPU.into()),
                };
                let k0 = director_cost::runtime_ns(&kthreads)?;
                let r = wrk(Some(&topo.client.ns), &o)?;
                let k1 = director_cost::runtime_ns(&kthreads)?;
                if r.requests == 0 || r.errors > r.requests / 100 {
                    return Err(format!(
                        "{name} {scenario}: {} requests, {} errors",
                        r.requests, r.errors
                    )
                    .into());
                }
                let n = r.requests as f64;
                push(
                    rows,
                    (name, scenario, "director_cpu_per_request", "µs", "lower"),
                    (k1 - k0) as f64 / 1000.0 / n,
                );
                push(
                    rows,
                    (name, scenario, "requests_per_sec", "req/s", "higher"),
                    r.requests_per_sec,
                );
                push(
                    rows,
                    (name, scenario, "p99_latency", "ms", "lower"),
                    r.p99_ms,
                );
            }
        }
        let s = engine.stats();
        println!("{name}: outcomes {:?}", s.outcomes);
        engine.shutdown();
        Ok(())
    })?;
    drop(peers);
    drop(nginx);
    Ok(())
}

fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |n: &str| {
        args.iter()
            .position(|a| a == n)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let mode = arg("--mode").unwrap_or_else(|| "quick".into());
    let (rounds, secs) = match mode.as_str() {
        "smoke" => (1, 1.0),
        "quick" => (3, 5.0),
        "full" => (5, 10.0),
        other => return Err(format!("unknown mode {other}").into()),
    };
    let duration = Duration::from_secs_f64(secs);
    let mut rows = Vec::new();
    for (name, kind, fwd, generic) in [
        ("rvs-xdp-nat", Kind::TwoArm, ForwardMethod::Nat, false),
        (
            "rvs-xdp-fullnat",
            Kind::FullNat,
            ForwardMethod::FullNat,
            false,
        ),
        (
            "rvs-xdp-nat-generic",
            Kind::TwoArm,
            ForwardMethod::Nat,
            true,
        ),
        (
            "rvs-xdp-fullnat-generic",
            Kind::FullNat,
            ForwardMethod::FullNat,
            true,
        ),
    ] {
        subject(name, kind, fwd, generic, rounds, duration, &mut rows)?;
    }
    let series: Vec<String> = rows
        .iter()
        .map(|r| {
            let v: Vec<String> = r.values.iter().map(|v| format!("{v:.3}")).collect();
            format!(
                "{{\"subject\": \"{}\", \"scenario\": \"{}\", \"metric\": \"{}\", \"unit\": \"{}\", \"better\": \"{}\", \"values\": [{}]}}",
                r.subject, r.scenario, r.metric, r.unit, r.better, v.join(", ")
            )
        })
        .collect();
    for r in &rows {
        println!(
            "{:<16} {:<28} {:<26} {:?} {}",
            r.subject, r.scenario, r.metric, r.values, r.unit
        );
    }
    let notes = [
        "same topology, pinning and wrk runs as bench/nft.sh (two-arm, threaded NAPI on every veth end, director NAPI kthreads on CPU 1, all else on CPU 0; wrk -t1 -c50); compare director_cpu_per_request with nft.json's nftables-dnat / forward subjects",
        "the xdp engine attached to the director's two veths natively (rvs-xdp-nat/fullnat) or in generic SKB mode (-generic: on veth the native path copies every skb into a page frame for XDP, the generic path does not convert); pass-through XDP programs on the peer ends (client eth0, switch 'dir') so redirected frames are received; client and reals with tx checksum offload off (frames that went through XDP lose CHECKSUM_PARTIAL)",
        "the engine's userspace upkeep thread (neighbour watch, sweep of expired NAT flows) runs in this process and is not in the director kthreads' runtime",
        "issue 6 anchors (nftables DNAT): 7.1 µs per keep-alive request, 40.4 µs per new connection; goal <= 0.5x those",
    ];
    let out = format!(
        "{{\"comparison\": \"xdp_nat_e2e\", \"title\": \"rvs XDP NAT/FULLNAT end to end: director CPU per request\", \"mode\": \"{mode}\", \"references\": [], \"peers\": {{}}, \"params\": {{\"rounds\": {rounds}, \"duration_s\": {secs}}}, \"skipped\": {{}}, \"notes\": [{}],\n \"series\": [\n  {}\n ]}}\n",
        notes
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", "),
        series.join(",\n  ")
    );
    match arg("--out") {
        Some(p) => std::fs::write(p, out)?,
        None => print!("{out}"),
    }
    Ok(())
}
