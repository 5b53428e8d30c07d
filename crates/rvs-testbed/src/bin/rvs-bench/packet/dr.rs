//! `packet_dr`: one L2 segment (client, director, 3 nginx reals on one bridge). Subjects in every
//! round: `direct` — wrk straight to the three reals —, `xdp-forward` — the trivial XDP forwarder
//! of `crates/rvs-xdp` (DR's MAC rewrite by a hash of the client's address and port, nothing
//! else) on the director, the ceiling of any XDP director on this test bed — and rvs XDP DR and
//! TUN (rvsd with a TOML config, as an operator would run it). The reals are prepared once with
//! `rvsadm realserver setup --method tun` (VIP on lo, ARP sysctls, rp_filter, and rvs's
//! decapsulation program since this kernel has no ipip module), which also serves DR; the
//! decapsulation program is on the reals' receive path for every subject alike.
//!
//! Fair "direct": every subject runs three wrk processes side by side with the same connections
//! (17 + 17 + 16 = 50) — `direct` one per real, the others all three at the VIP — and the
//! report sums their requests/s (p99: the worst of the three). The director sees only the
//! requests (replies go straight from the reals to the client), so its CPU per request is the
//! runtime of its one NAPI kthread.

use rvs_testbed::{Iperf3Server, Kind, Nginx, NginxOptions, Topology, director_cost};
use serde_json::json;

use super::balancer::{Binaries, Launch, Running};
use super::measure::{self, Ctx, spread};
use super::memory::{self, State};
use crate::record::Recorder;
use crate::{BALANCER_CPU, BoxResult, CLIENT_CPU, Plan};

const IPERF: u16 = 5201;
const CONN_MAPS: &[&str] = &["rvs_conns"];
/// The ceiling subject: the trivial XDP forwarder.
const FORWARD: &str = "xdp-forward";

/// `rvs-xdp-forward` arguments: the VIP's port 80 over the reals' MACs.
fn forward_args(topo: &Topology) -> BoxResult<Vec<String>> {
    let mut a = vec![
        "--interface".to_string(),
        "eth0".into(),
        "--vip".into(),
        topo.vip4.to_string(),
        "--port".into(),
        "80".into(),
    ];
    for r in &topo.reals {
        a.push("--real-mac".into());
        a.push(r.ns.mac(&r.dev)?.trim().to_string());
    }
    Ok(a)
}

/// Ratios taken pair by pair within a round.
pub const PAIRS: &[(&str, &str)] = &[
    ("rvs-xdp-dr", "direct"),
    ("rvs-xdp-dr", FORWARD),
    (FORWARD, "direct"),
    ("rvs-xdp-tun", "direct"),
    ("rvs-xdp-tun", "rvs-xdp-dr"),
];

/// Undoes `rvsadm realserver setup` on the reals (the decapsulation program is pinned in bpffs
/// and would outlive the namespaces otherwise).
struct RealsPrepared<'a> {
    topo: &'a Topology,
    rvsadm: std::path::PathBuf,
    vip: String,
}

impl RealsPrepared<'_> {
    fn run(&self, action: &str) -> BoxResult<()> {
        // nsenter, not `ip netns exec`: the latter remounts /sys, hiding the bpf file system
        // (/sys/fs/bpf) where rvsadm pins the decapsulation program so that it outlives rvsadm.
        for r in &self.topo.reals {
            let net = format!("--net=/run/netns/{}", r.ns.name());
            let rvsadm = self.rvsadm.to_string_lossy();
            let a = [
                net.as_str(),
                &rvsadm,
                "realserver",
                action,
                "--vip",
                &self.vip,
                "--method",
                "tun",
                "--interface",
                &r.dev,
            ];
            rvs_testbed::cmd::run_args("nsenter", &a)?;
        }
        Ok(())
    }
}

impl Drop for RealsPrepared<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.run("teardown") {
            eprintln!("rvs-bench: realserver teardown: {e}");
        }
    }
}

fn toml(topo: &Topology, method: &str) -> String {
    let vip = topo.vip4;
    let mut t =
        "[daemon]\nlog_level = \"warn\"\nengines = [\"xdp\"]\nxdp_interfaces = [\"eth0\"]\n\n"
            .to_string();
    t += &format!("[[service]]\naddress = \"{vip}:80\"\nscheduler = \"mh\"\n\n");
    for r in &topo.reals {
        t += &format!(
            "[[service.real]]\naddress = \"{}:80\"\nmethod = \"{method}\"\n\n",
            r.ip4
        );
    }
    t += &format!(
        "[[service]]\naddress = \"{vip}:{IPERF}\"\nscheduler = \"mh\"\n\n\
         [[service.real]]\naddress = \"{}:{IPERF}\"\nmethod = \"{method}\"\n",
        topo.reals[0].ip4
    );
    t
}

/// Runs the comparison into `rec`.
pub fn run(plan: &Plan, bins: &Binaries, rec: &mut Recorder) -> BoxResult<()> {
    super::record_common(plan, rec);
    rec.param(
        "topology",
        json!("one L2 segment: client, director, 3 nginx reals on a bridge (veth, threaded NAPI)"),
    );
    let rvsadm = bins.rvsadm()?;
    let topo = Topology::build(Kind::L2Segment, 3)?;
    let dir = &topo.director.ns;
    let vip = topo.vip4.to_string();
    dir.add_addr("lo", &format!("{vip}/32"))?;
    super::prepare_peers(&topo, &[(&topo.switch, "dir")])?;
    let prepared = RealsPrepared {
        topo: &topo,
        rvsadm,
        vip: vip.clone(),
    };
    prepared.run("setup")?;
    let mut nginx = Vec::new();
    for (i, r) in topo.reals.iter().enumerate() {
        let mut o = NginxOptions::new(([0, 0, 0, 0], 80).into(), &format!("real{i}"));
        o.cpus = Some(CLIENT_CPU.into());
        nginx.push(Nginx::start_with(Some(&r.ns), &o)?);
    }
    let r0 = &topo.reals[0];
    let _iperf =
        Iperf3Server::start_pinned(Some(&r0.ns), ([0, 0, 0, 0], IPERF).into(), Some(CLIENT_CPU))?;
    let kthreads = director_cost::isolate_director_napi(&topo, BALANCER_CPU, CLIENT_CPU)?;
    director_cost::switch_gro_off(&topo)?;
    rec.param("director_kthreads", json!(kthreads.len()));
    let mut subjects = vec![
        (FORWARD, Launch::Forward(forward_args(&topo)?)),
        ("rvs-xdp-dr", Launch::Rvsd(toml(&topo, "dr"))),
        ("rvs-xdp-tun", Launch::Rvsd(toml(&topo, "tun"))),
    ];
    subjects.retain(|(name, l)| match bins.check(l) {
        Ok(()) => true,
        Err(why) => {
            rec.skip(name, &why);
            false
        }
    });
    let direct_urls: Vec<String> = topo
        .reals
        .iter()
        .map(|r| format!("http://{}/", r.ip4))
        .collect();
    let direct = spread(&direct_urls, plan.connections);
    let via_vip = spread(
        &vec![format!("http://{vip}/"); topo.reals.len()],
        plan.connections,
    );
    let probe = format!("http://{vip}/");
    let mut per_request: Vec<String> = Vec::new();
    let mut ctx = Ctx {
        plan,
        client: &topo.client.ns,
        reals: topo.reals.iter().map(|r| &r.ns).collect(),
        kthreads: &kthreads,
        rec,
    };
    // The forwarder has no connection state: no memory figure.
    for (name, launch) in subjects.iter().filter(|(name, _)| *name != FORWARD) {
        let r = Running::start(bins, launch, dir, &["eth0"], &topo.client.ns, &probe)?;
        let state = State::Bpf {
            dev: "eth0",
            flow_maps: CONN_MAPS,
        };
        let out = memory::idle(&mut ctx, name, dir, &format!("{vip}:80"), &state);
        r.stop(dir)?;
        out?;
    }
    for round in 0..plan.rounds {
        let bulk = round < plan.bulk_rounds;
        if round == 0 {
            // Nothing to warm but the reals: once is enough.
            measure::warm_up(&ctx, &direct)?;
        }
        for (scenario, close) in super::SCENARIOS {
            measure::requests(&mut ctx, "direct", &direct, scenario, close, false, None)?;
        }
        if bulk {
            measure::bulk(&mut ctx, "direct", &r0.ip4.to_string(), IPERF)?;
        }
        for (name, launch) in &subjects {
            let mut r = Running::start(bins, launch, dir, &["eth0"], &topo.client.ns, &probe)?;
            let out = (|| -> BoxResult<()> {
                measure::warm_up(&ctx, &via_vip)?;
                for (scenario, close) in super::SCENARIOS {
                    let forward = *name == FORWARD;
                    let before = forward.then(|| r.forwarded()).transpose()?;
                    let cpu = || r.cpu_ms();
                    // The forwarder's process only waits for signals once attached: no
                    // userspace figure (a ratio against its zero would mean nothing).
                    let userspace: Option<&dyn Fn() -> f64> = (!forward).then_some(&cpu);
                    let n = measure::requests(
                        &mut ctx, name, &via_vip, scenario, close, true, userspace,
                    )?;
                    if let Some(before) = before {
                        let packets = r.forwarded()? - before;
                        check_forwarded(&mut ctx, scenario, packets, n, &mut per_request);
                    }
                }
                // The forwarder serves port 80 only (no second service for iperf3).
                if bulk && *name != FORWARD {
                    measure::bulk(&mut ctx, name, &vip, IPERF)?;
                }
                Ok(())
            })();
            r.stop(dir)?;
            out?;
        }
    }
    ctx.rec.note("every round: direct (3 wrk processes, one per real, 17+17+16 connections), then the trivial XDP forwarder (rvs-xdp-forward), then rvsd with a DR service, then rvsd with a TUN service (3 wrk processes at the VIP, same connections); requests/s summed over the 3 wrk processes, p99 the worst of the three");
    ctx.rec.note("xdp-forward: the ceiling — an XDP program on the director's veth that sends IPv4 TCP to VIP:80 to one of the reals' MACs (hash of client address and port modulo 3) with XDP_TX and passes everything else; no connection table, no Maglev, one per-CPU packet counter; its ratios say how far the test bed itself (cross-CPU wakeups, veth, the switch) keeps any XDP director from direct, and how much of that rvs adds; no bulk run (it forwards port 80 only) and no memory figure (no state)");
    if !per_request.is_empty() {
        ctx.rec.note(&format!(
            "xdp-forward: packets it forwarded per request (its counter read before and after each run, round by round): {}",
            per_request.join("; ")
        ));
    }
    ctx.rec.note("the director receives only the client's packets and sends them back out of the same veth (XDP_TX): its one NAPI kthread's runtime is its whole kernel cost; replies go from the reals straight to the client");
    ctx.rec.note("reals prepared by `rvsadm realserver setup --method tun` (VIP on lo, arp_ignore/arp_announce, rp_filter, rvs's decapsulation XDP program — no ipip module here), used for DR too; a pass-through XDP program on the switch end of the director's veth and tx checksum offload off on client and reals, for every subject");
    ctx.rec.note("issue 5 goal: wrk through the DR VIP reaches >= 0.9x the requests/s of wrk straight to the reals (ratio rvs-xdp-dr / direct, requests_per_sec)");
    drop(nginx);
    drop(prepared);
    Ok(())
}

/// Checks that the forwarder forwarded at least one packet per completed request of a run (the
/// VIP is on the director's `lo` with nothing listening there, so a request it passed to the
/// kernel would fail instead); notes a run where it did not. Collects packets per request.
fn check_forwarded(
    ctx: &mut Ctx,
    scenario: &str,
    packets: u64,
    requests: u64,
    per_request: &mut Vec<String>,
) {
    if requests == 0 {
        return;
    }
    if packets < requests {
        ctx.rec.note(&format!(
            "{FORWARD} / {scenario}: the forwarder counted {packets} packets for {requests} \
             requests: not every request went through it"
        ));
    }
    per_request.push(format!(
        "{scenario} {:.2}",
        packets as f64 / requests as f64
    ));
}
