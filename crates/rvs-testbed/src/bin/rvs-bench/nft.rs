//! Packet path end to end, measured by the director-cost method of DESIGN.md: nftables DNAT
//! with `numgen` to three reals vs plain kernel forwarding (with and without conntrack).
//!
//! Two-arm topology (client → director → bridge → 3 nginx reals). Threaded NAPI on every veth
//! end (GRO on, TSO off); the director's NAPI kthreads pinned to CPU 1, every other NAPI
//! kthread, nginx and wrk to CPU 0. The director runs no process: its whole cost is the runtime
//! of its kthreads (`/proc/<pid>/schedstat`), reported per request (µs per request = ms per
//! 1,000 requests). CPU 1's busy time from `/proc/stat` is recorded beside it as a cross-check
//! (it also counts anything else the machine ran on CPU 1).
//!
//! rvs's xdp engine (NAT / FULLNAT) belongs in this same comparison as further subjects once it
//! runs end to end: attach it to the director's interfaces in place of the nftables rules.

use std::time::Duration;

use rvs_testbed::director_cost;
use rvs_testbed::{Kind, Netns, Nginx, NginxOptions, Topology, WrkOptions, wrk};
use serde_json::json;

use crate::record::{HIGHER, LOWER, Recorder, version_of};
use crate::{BALANCER_CPU, BoxResult, CLIENT_CPU, Plan};

/// One way of getting the client's requests to a real.
struct Subject {
    name: &'static str,
    /// nftables ruleset loaded into the director before the run (after `flush ruleset`).
    rules: String,
    /// Address wrk connects to.
    target: String,
}

fn subjects(topo: &Topology) -> Vec<Subject> {
    let reals = &topo.reals;
    let map: Vec<String> = reals
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{i} : {}", r.ip4))
        .collect();
    let dnat = format!(
        "table ip lb {{\n  chain pre {{\n    type nat hook prerouting priority dstnat; policy accept;\n    \
         ip daddr {vip} tcp dport 80 dnat to numgen inc mod {n} map {{ {map} }}\n  }}\n}}\n",
        vip = topo.vip4,
        n = reals.len(),
        map = map.join(", ")
    );
    let conntrack = "table inet track {\n  chain forward {\n    type filter hook forward priority filter; policy accept;\n    \
                     ct state established,related accept\n  }\n}\n"
        .to_string();
    let real0 = reals[0].ip4.to_string();
    vec![
        Subject {
            name: "forward",
            rules: String::new(),
            target: real0.clone(),
        },
        Subject {
            name: "forward-conntrack",
            rules: conntrack,
            target: real0,
        },
        Subject {
            name: "nftables-dnat",
            rules: dnat,
            target: topo.vip4.to_string(),
        },
    ]
}

fn load_rules(ns: &Netns, rules: &str) -> BoxResult<()> {
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), format!("flush ruleset\n{rules}"))?;
    ns.run("nft", &["-f", &file.path().to_string_lossy()])?;
    Ok(())
}

/// Busy time of CPU `cpu` from /proc/stat (all but idle and iowait), in milliseconds.
fn cpu_busy_ms(cpu: &str) -> BoxResult<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let label = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&label))
        .ok_or("no cpu line")?;
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: f64 = f
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(busy * 1000.0 / hz)
}

/// Runs the nftables / forwarding comparison into `rec`.
pub fn run(plan: &Plan, rec: &mut Recorder) -> BoxResult<()> {
    rec.peer("nftables", &version_of("nft", &["-v"]));
    rec.peer("nginx", &version_of("nginx", &["-v"]));
    rec.peer("wrk", &version_of("wrk", &["-v"]));
    rec.param(
        "wrk",
        json!(format!(
            "-t1 -c{} -d{}s --latency",
            plan.connections,
            plan.duration.as_secs_f64()
        )),
    );
    rec.param("rounds", json!(plan.rounds));
    rec.param(
        "topology",
        json!("two-arm: client → director → bridge → 3 nginx reals (veth, threaded NAPI)"),
    );
    rec.param(
        "pinning",
        json!(format!(
            "director NAPI kthreads on CPU {BALANCER_CPU}; all else on CPU {CLIENT_CPU}"
        )),
    );

    let topo = Topology::build(Kind::TwoArm, 3)?;
    let dir = &topo.director.ns;
    dir.add_addr(&topo.director.client_dev, &format!("{}/32", topo.vip4))?;
    // Short TIME_WAIT tracking so long new-connection runs cannot fill the conntrack table.
    let _ = dir.sysctl("net.netfilter.nf_conntrack_tcp_timeout_time_wait", "5");
    let mut reals = Vec::new();
    for (i, r) in topo.reals.iter().enumerate() {
        let mut o = NginxOptions::new((r.ip4, 80).into(), &format!("real{i}"));
        o.cpus = Some(CLIENT_CPU.into());
        reals.push(Nginx::start_with(Some(&r.ns), &o)?);
    }
    let kthreads = director_cost::isolate_director_napi(&topo, BALANCER_CPU, CLIENT_CPU)?;
    rec.param("director_kthreads", json!(kthreads.len()));
    let subjects = subjects(&topo);
    for (scenario, close) in [("keep-alive", false), ("new connection per request", true)] {
        for _round in 0..plan.rounds {
            for s in &subjects {
                load_rules(dir, &s.rules)?;
                if let Some(w) = plan.warmup {
                    wrk(Some(&topo.client.ns), &options(s, plan, w, close))?;
                }
                measure(&topo.client.ns, s, plan, &kthreads, scenario, close, rec)?;
            }
        }
    }
    load_rules(dir, "")?;
    Ok(())
}

fn options(s: &Subject, plan: &Plan, duration: Duration, close: bool) -> WrkOptions {
    WrkOptions {
        url: format!("http://{}/", s.target),
        connections: plan.connections,
        threads: 1,
        duration,
        new_connection_per_request: close,
        cpus: Some(CLIENT_CPU.into()),
    }
}

fn measure(
    client: &Netns,
    s: &Subject,
    plan: &Plan,
    kthreads: &[u32],
    scenario: &str,
    close: bool,
    rec: &mut Recorder,
) -> BoxResult<()> {
    let (k0, c0) = (
        director_cost::runtime_ns(kthreads)?,
        cpu_busy_ms(BALANCER_CPU)?,
    );
    let r = wrk(Some(client), &options(s, plan, plan.duration, close))?;
    let (k1, c1) = (
        director_cost::runtime_ns(kthreads)?,
        cpu_busy_ms(BALANCER_CPU)?,
    );
    if r.requests == 0 {
        return Err(format!("{}: wrk completed no request ({scenario})", s.name).into());
    }
    if r.errors > 0 {
        rec.note(&format!(
            "{} / {scenario}: wrk reported {} errors in {} requests",
            s.name, r.errors, r.requests
        ));
    }
    let n = r.requests as f64;
    rec.push(
        s.name,
        scenario,
        "director_cpu_per_request",
        "µs",
        LOWER,
        (k1 - k0) as f64 / 1000.0 / n,
    );
    rec.push(
        s.name,
        scenario,
        "cpu1_busy_per_request",
        "µs",
        LOWER,
        (c1 - c0) * 1000.0 / n,
    );
    rec.push(
        s.name,
        scenario,
        "requests_per_sec",
        "req/s",
        HIGHER,
        r.requests_per_sec,
    );
    rec.push(s.name, scenario, "p99_latency", "ms", LOWER, r.p99_ms);
    Ok(())
}
