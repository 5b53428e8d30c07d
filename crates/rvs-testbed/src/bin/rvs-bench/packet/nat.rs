//! `packet_nat`: the two-arm topology (client → director → bridge → 3 nginx reals) with every
//! subject in every round: plain forwarding (with and without a conntrack rule), nftables DNAT
//! (`numgen inc mod 3`), nftables DNAT + masquerade (the kernel's FULLNAT), rvs XDP NAT and
//! FULLNAT (rvsd, TOML config with `fullnat_local`); in full mode also the same engine attached
//! in generic (SKB) mode, through the `xdp_serve` example (rvsd has no switch for that).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rvs_testbed::{Iperf3Server, Kind, Netns, Nginx, NginxOptions, Topology, director_cost};
use serde_json::json;

use super::balancer::{Binaries, Launch, Running};
use super::measure::{self, Ctx, spread};
use super::memory::{self, State};
use crate::record::{Recorder, version_of};
use crate::{BALANCER_CPU, BoxResult, CLIENT_CPU, Plan};

/// The director's FULLNAT local address (on its real-side interface).
const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 20, 2, 100);
/// Port of the iperf3 server on real 0 (and of the VIP's bulk service).
const IPERF: u16 = 5201;

/// How a subject gets the client's requests to the reals.
enum How {
    /// An nftables ruleset in the director (empty: plain forwarding).
    Nft(String),
    /// An rvs director process.
    Rvs(Launch),
}

struct Subject {
    name: &'static str,
    how: How,
    /// Where wrk connects (real 0 for plain forwarding, else the VIP).
    target: String,
    /// Per-connection state kept by the director, for the idle-connection figure.
    state: Option<State<'static>>,
}

/// The per-flow maps of NAT and FULLNAT flows: their connection table and the reverse table
/// (a FULLNAT flow's local port lives in its connection entry).
const NAT_MAPS: &[&str] = &["rvs_nat_conns", "rvs_nat_rev"];
const FULLNAT_MAPS: &[&str] = NAT_MAPS;

fn subjects(topo: &Topology, full: bool) -> Vec<Subject> {
    let vip = topo.vip4;
    let reals: Vec<String> = topo.reals.iter().map(|r| r.ip4.to_string()).collect();
    let map: Vec<String> = reals
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{i} : {r}"))
        .collect();
    let dnat = format!(
        "table ip lb {{\n  chain pre {{\n    type nat hook prerouting priority dstnat; policy accept;\n    \
         ip daddr {vip} tcp dport 80 dnat to numgen inc mod {n} map {{ {map} }}\n    \
         ip daddr {vip} tcp dport {IPERF} dnat to {r0}\n  }}\n}}\n",
        n = reals.len(),
        map = map.join(", "),
        r0 = reals[0],
    );
    let masq = dnat.replace(
        "  }\n}\n",
        "  }\n  chain post {\n    type nat hook postrouting priority srcnat; policy accept;\n    \
         ct status dnat masquerade\n  }\n}\n",
    );
    let conntrack = "table inet track {\n  chain forward {\n    type filter hook forward priority filter; policy accept;\n    \
                     ct state established,related accept\n  }\n}\n";
    let toml = |method: &str| {
        let mut t = format!(
            "[daemon]\nlog_level = \"warn\"\nengines = [\"xdp\"]\nxdp_interfaces = [\"eth0\", \"eth1\"]\n\
             fullnat_local = [\"{LOCAL}\"]\n\n[timeouts]\ntcp_fin = 5\n\n"
        );
        t += &format!("[[service]]\naddress = \"{vip}:80\"\nscheduler = \"mh\"\n\n");
        for r in &reals {
            t += &format!("[[service.real]]\naddress = \"{r}:80\"\nmethod = \"{method}\"\n\n");
        }
        t += &format!(
            "[[service]]\naddress = \"{vip}:{IPERF}\"\nscheduler = \"mh\"\n\n\
             [[service.real]]\naddress = \"{}:{IPERF}\"\nmethod = \"{method}\"\n",
            reals[0]
        );
        t
    };
    let serve = |method: &str, generic: bool| {
        let mut a: Vec<String> = [
            "--interface",
            "eth0",
            "--interface",
            "eth1",
            "--local",
            &LOCAL.to_string(),
            "--method",
            method,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if generic {
            a.push("--generic".into());
        }
        a.extend(["--service".into(), format!("{vip}:80")]);
        for r in &reals {
            a.extend(["--real".into(), format!("{r}:80")]);
        }
        a.extend([
            "--service".into(),
            format!("{vip}:{IPERF}"),
            "--real".into(),
            format!("{}:{IPERF}", reals[0]),
        ]);
        a
    };
    let vip_s = vip.to_string();
    let mut v = vec![
        Subject {
            name: "forward",
            how: How::Nft(String::new()),
            target: reals[0].clone(),
            state: None,
        },
        Subject {
            name: "forward-conntrack",
            how: How::Nft(conntrack.into()),
            target: reals[0].clone(),
            state: None,
        },
        Subject {
            name: "nftables-dnat",
            how: How::Nft(dnat),
            target: vip_s.clone(),
            state: Some(State::Conntrack),
        },
        Subject {
            name: "nftables-dnat-masq",
            how: How::Nft(masq),
            target: vip_s.clone(),
            state: Some(State::Conntrack),
        },
        Subject {
            name: "rvs-xdp-nat",
            how: How::Rvs(Launch::Rvsd(toml("nat"))),
            target: vip_s.clone(),
            state: Some(State::Bpf {
                dev: "eth0",
                flow_maps: NAT_MAPS,
            }),
        },
        Subject {
            name: "rvs-xdp-fullnat",
            how: How::Rvs(Launch::Rvsd(toml("fullnat"))),
            target: vip_s.clone(),
            state: Some(State::Bpf {
                dev: "eth0",
                flow_maps: FULLNAT_MAPS,
            }),
        },
    ];
    if full {
        v.push(Subject {
            name: "rvs-xdp-nat-generic",
            how: How::Rvs(Launch::XdpServe(serve("nat", true))),
            target: vip_s.clone(),
            state: None,
        });
        v.push(Subject {
            name: "rvs-xdp-fullnat-generic",
            how: How::Rvs(Launch::XdpServe(serve("fullnat", true))),
            target: vip_s,
            state: None,
        });
    }
    v
}

fn load_rules(ns: &Netns, rules: &str) -> BoxResult<()> {
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), format!("flush ruleset\n{rules}"))?;
    ns.run("nft", &["-f", &file.path().to_string_lossy()])?;
    Ok(())
}

/// The subjects ratios are taken between (subject, reference), pair by pair within a round.
pub const PAIRS: &[(&str, &str)] = &[
    ("rvs-xdp-nat", "nftables-dnat"),
    ("rvs-xdp-fullnat", "nftables-dnat-masq"),
    ("rvs-xdp-nat", "forward"),
    ("rvs-xdp-fullnat", "forward"),
    ("nftables-dnat", "forward"),
    ("nftables-dnat-masq", "forward"),
    ("forward-conntrack", "forward"),
    ("rvs-xdp-nat-generic", "rvs-xdp-nat"),
    ("rvs-xdp-fullnat-generic", "rvs-xdp-fullnat"),
];

/// Runs the comparison into `rec`.
pub fn run(plan: &Plan, bins: &Binaries, rec: &mut Recorder) -> BoxResult<()> {
    super::record_common(plan, rec);
    rec.peer("nftables", &version_of("nft", &["-v"]));
    rec.param("topology", json!("two-arm: client → director (eth0 | eth1) → bridge → 3 nginx reals (veth, threaded NAPI)"));
    let topo = Topology::build(Kind::TwoArm, 3)?;
    let dir = &topo.director.ns;
    dir.add_addr("lo", &format!("{}/32", topo.vip4))?;
    dir.add_addr("eth1", &format!("{LOCAL}/24"))?;
    // Short TIME_WAIT tracking so long new-connection runs cannot fill the conntrack table.
    let _ = dir.sysctl("net.netfilter.nf_conntrack_tcp_timeout_time_wait", "5");
    // The subjects that go straight to the reals (forward, forward-conntrack) use a second
    // client address. Otherwise their connections would leave TIME_WAIT sockets on the reals
    // for the same four-tuples (client:port, real:80) that the VIP subjects without
    // masquerade later reuse through DNAT. A SYN whose timestamp and sequence number come
    // from another key (the client keys them on the address it connects to: real vs VIP)
    // is then refused by the real's TIME_WAIT socket about half the time, and the client
    // waits a second to retry: nftables DNAT fell to ~300 new connections/s that way.
    let direct_src = Ipv4Addr::new(10, 20, 1, 3);
    let client = &topo.client.ns;
    client.add_addr(&topo.client.dev, &format!("{direct_src}/24"))?;
    let reals_net = format!(
        "{}/24",
        Ipv4Addr::from(u32::from(topo.reals[0].ip4) & !0xff)
    );
    client.ip(&[
        "route",
        "add",
        &reals_net,
        "via",
        &topo.director.client_ip4.to_string(),
        "src",
        &direct_src.to_string(),
    ])?;
    super::prepare_peers(&topo, &[(&topo.client.ns, "eth0"), (&topo.switch, "dir")])?;
    let mut nginx = Vec::new();
    for (i, r) in topo.reals.iter().enumerate() {
        let mut o = NginxOptions::new((r.ip4, 80).into(), &format!("real{i}"));
        o.cpus = Some(CLIENT_CPU.into());
        nginx.push(Nginx::start_with(Some(&r.ns), &o)?);
    }
    let r0 = &topo.reals[0];
    let _iperf =
        Iperf3Server::start_pinned(Some(&r0.ns), (r0.ip4, IPERF).into(), Some(CLIENT_CPU))?;
    let kthreads = director_cost::isolate_director_napi(&topo, BALANCER_CPU, CLIENT_CPU)?;
    director_cost::switch_gro_off(&topo)?;
    rec.param("director_kthreads", json!(kthreads.len()));
    let mut subjects = subjects(&topo, plan.mode == "full");
    if plan.mode == "quick" {
        // Under five minutes for the whole suite: the conntrack-only subject is for full runs
        // (and smoke, so it cannot rot).
        subjects.retain(|s| s.name != "forward-conntrack");
        rec.note("quick mode: forward-conntrack left out (full and smoke modes run it)");
    }
    subjects.retain(|s| match &s.how {
        How::Rvs(l) => match bins.check(l) {
            Ok(()) => true,
            Err(why) => {
                rec.skip(s.name, &why);
                false
            }
        },
        How::Nft(_) => true,
    });
    let mut ctx = Ctx {
        plan,
        client: &topo.client.ns,
        reals: topo.reals.iter().map(|r| &r.ns).collect(),
        kthreads: &kthreads,
        rec,
    };
    // Idle connections first, before the request runs leave conntrack entries behind. The
    // conntrack subjects are measured first and last, with the rvs ones between, so that the
    // first one's closed connections (TIME_WAIT tracked 5 s here) have expired before the last
    // one's slab growth is read; any time still missing is waited out.
    let (mut idle, rvs): (Vec<&Subject>, Vec<&Subject>) = subjects
        .iter()
        .filter(|s| s.state.is_some())
        .partition(|s| matches!(s.state, Some(State::Conntrack)));
    let last = if idle.len() > 1 { idle.pop() } else { None };
    idle.extend(rvs);
    idle.extend(last);
    let mut conntrack_closed: Option<Instant> = None;
    for s in idle {
        let Some(state) = &s.state else { continue };
        if let (State::Conntrack, Some(t)) = (state, conntrack_closed) {
            let settle = Duration::from_secs(if plan.mode == "smoke" { 1 } else { 6 });
            std::thread::sleep(settle.saturating_sub(t.elapsed()));
        }
        with_subject(s, bins, &topo, |_| {
            memory::idle(&mut ctx, s.name, dir, &format!("{}:80", s.target), state)
        })?;
        if matches!(state, State::Conntrack) {
            conntrack_closed = Some(Instant::now());
        }
    }
    for round in 0..plan.rounds {
        let bulk = round < plan.bulk_rounds;
        for s in &subjects {
            // Three wrk processes for every subject (17 + 17 + 16 connections): at the VIP, or
            // for plain forwarding one per real (so no real gets all the connections' TIME_WAIT
            // sockets and every subject spreads its requests over the three reals).
            let urls: Vec<String> = if s.target == topo.vip4.to_string() {
                vec![format!("http://{}/", s.target); topo.reals.len()]
            } else {
                topo.reals
                    .iter()
                    .map(|r| format!("http://{}/", r.ip4))
                    .collect()
            };
            let targets = spread(&urls, plan.connections);
            with_subject(s, bins, &topo, |running| {
                // A freshly started rvs director every round; the kernel's subjects once.
                if round == 0 || running.is_some() {
                    measure::warm_up(&ctx, &targets)?;
                }
                let cpu = running.map(|r| move || r.cpu_ms());
                for (scenario, close) in super::SCENARIOS {
                    let f = cpu.as_ref().map(|f| f as &dyn Fn() -> f64);
                    measure::requests(&mut ctx, s.name, &targets, scenario, close, true, f)?;
                }
                if bulk {
                    measure::bulk(&mut ctx, s.name, &s.target, IPERF)?;
                }
                Ok(())
            })?;
        }
    }
    load_rules(dir, "")?;
    ctx.rec.note(&format!("forward and forward-conntrack connect from a second client address ({direct_src}), the VIP subjects from the first: else the reals' TIME_WAIT sockets of the direct runs refuse about half of the later DNAT connections that reuse the same four-tuple (their timestamps and sequence numbers are keyed on another destination)"));
    ctx.rec.note("every subject in every round, one after the other on the same topology; the director's kthreads are its whole kernel cost (XDP runs inside their NAPI poll)");
    ctx.rec.note("pass-through XDP programs on the peer ends of the director's veths (client eth0, switch 'dir') and tx checksum offload off on the client and the reals, for every subject: frames an XDP program transmits out of a veth are only received when the peer has XDP, and lose CHECKSUM_PARTIAL");
    ctx.rec.note("rvs-xdp-nat and rvs-xdp-fullnat are rvsd (xdp engine, TOML config with xdp_interfaces and fullnat_local); the -generic subjects (full mode) run the same engine through the xdp_serve example, since rvsd has no switch for generic attach; director_userspace_cpu_per_request is that process's own CPU (all its threads' run time: netlink, upkeep), not in the kthread figure");
    ctx.rec.note("every subject runs three wrk processes side by side (17 + 17 + 16 connections; requests/s summed, p99 the worst of the three): forward and forward-conntrack one per real (wrk picks the real), the others all at the VIP (nftables numgen, rvs Maglev); bulk: one iperf3 stream to real 0 (forward) or through the VIP's port 5201 service (to real 0)");
    ctx.rec.note("issue 6 anchors (nftables DNAT, same method elsewhere): 7.1 µs per keep-alive request, 40.4 µs per new connection; goal rvs <= 0.5x nftables");
    drop(nginx);
    Ok(())
}

/// Sets the director up for `s` (rules, or a started rvs director), runs `f`, tears it down.
fn with_subject(
    s: &Subject,
    bins: &Binaries,
    topo: &Topology,
    f: impl FnOnce(Option<&Running>) -> BoxResult<()>,
) -> BoxResult<()> {
    let dir = &topo.director.ns;
    match &s.how {
        How::Nft(rules) => {
            load_rules(dir, rules)?;
            f(None)
        }
        How::Rvs(launch) => {
            load_rules(dir, "")?;
            let url = format!("http://{}/", s.target);
            let r = Running::start(bins, launch, dir, &["eth0", "eth1"], &topo.client.ns, &url)?;
            let out = f(Some(&r));
            r.stop(dir)?;
            out
        }
    }
}
