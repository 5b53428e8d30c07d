//! Packet path end to end, measured by the director-cost method of DESIGN.md (threaded NAPI on
//! every veth end, the director's NAPI kthreads alone on CPU 1, everything else on CPU 0, their
//! runtime per request). Two comparisons, each with every subject in every round:
//!
//! * [`nat`] (`packet_nat`): two-arm topology — forwarding, nftables DNAT (+ masquerade), rvs
//!   XDP NAT and FULLNAT;
//! * [`dr`] (`packet_dr`): one L2 segment — wrk straight to the reals vs a trivial XDP forwarder
//!   (the ceiling) and rvs XDP DR and TUN.
//!
//! Besides requests/s, p99 and director CPU per request (keep-alive and a new connection per
//! request): bulk throughput (iperf3, one stream) and the director's memory for idle
//! connections.

pub mod balancer;
pub mod dr;
pub mod measure;
pub mod memory;
pub mod nat;

use rvs_testbed::{Netns, Topology, xdp_pass};
use serde_json::json;

use crate::record::{Recorder, version_of};
use crate::{BALANCER_CPU, BoxResult, CLIENT_CPU, Plan};

/// The two request scenarios: keep-alive, and a new connection per request.
pub const SCENARIOS: [(&str, bool); 2] =
    [("keep-alive", false), ("new connection per request", true)];

/// Parameters and peers every packet-path comparison records.
fn record_common(plan: &Plan, rec: &mut Recorder) {
    rec.peer("nginx", &version_of("nginx", &["-v"]));
    rec.peer("wrk", &version_of("wrk", &["-v"]));
    rec.peer("iperf3", &version_of("iperf3", &["-v"]));
    rec.peer("clang", &version_of("clang", &["--version"]));
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
        "iperf3",
        json!(format!(
            "-t {} (one stream), in {} of the rounds",
            plan.bulk_secs, plan.bulk_rounds
        )),
    );
    rec.param("idle_connections", json!(memory::count(plan)));
    rec.param(
        "pinning",
        json!(format!("director NAPI kthreads on CPU {BALANCER_CPU}; all else (clients, reals, their kthreads, the rvs process) on CPU {CLIENT_CPU}")),
    );
}

/// Pass-through XDP programs on the peers of the director's veths (so frames its XDP program
/// transmits are received), and tx checksum offload off on the client and the reals (frames
/// that went through XDP lose CHECKSUM_PARTIAL), and the client's port range opened. Applied
/// for every subject alike.
fn prepare_peers(topo: &Topology, peers: &[(&Netns, &str)]) -> BoxResult<()> {
    for (ns, dev) in peers {
        xdp_pass::attach(ns, dev)?;
    }
    topo.client
        .ns
        .run("ethtool", &["-K", &topo.client.dev, "tx", "off"])?;
    for r in &topo.reals {
        r.ns.run("ethtool", &["-K", &r.dev, "tx", "off"])?;
    }
    // The client opens tens of thousands of connections to one address (idle holds of 10,000
    // that it closes itself, so its side keeps them in TIME-WAIT for 60 s): the whole port
    // range. (Not TIME-WAIT reuse: reusing a port within seconds meets the director's
    // conntrack entry of the previous connection, still bound to its NAT mapping.)
    topo.client
        .ns
        .sysctl("net.ipv4.ip_local_port_range", "1024 65535")?;
    Ok(())
}
