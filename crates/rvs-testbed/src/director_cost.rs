//! The director-cost method of `shared/DESIGN.md`, for every topology: threaded NAPI on
//! every veth end, the director's NAPI kthreads alone on one CPU and everything else on the
//! other, then the kthreads' run time (`/proc/<pid>/schedstat`) per request. XDP on veth runs
//! inside those NAPI polls, so an XDP balancer and the kernel's own forwarding (nftables) are
//! measured on equal terms. Needs Linux ≥ 5.12 (threaded NAPI) and root.

use crate::cmd;
use crate::error::{Result, TestbedError};
use crate::procstat::sched_runtime_ns;
use crate::topology::{Kind, Topology};

/// Pins process or thread `pid` to the CPUs `cpu` (`taskset -pc`, e.g. `"1"`).
pub fn pin(pid: u32, cpu: &str) -> Result<()> {
    cmd::run_args("taskset", &["-pc", cpu, &pid.to_string()])?;
    Ok(())
}

/// Enables threaded NAPI on every veth end of a topology, pins the director's NAPI kthreads to
/// `director_cpu` and every other one to `other_cpu`, and returns the director's. Two-arm
/// topologies: the director's two interfaces (two kthreads). L2 segment (DR/TUN): the director's
/// one interface (one kthread) — it receives the client's packets and sends them back out of the
/// same interface (`XDP_TX`), so that kthread carries its whole share of the work.
pub fn isolate_director_napi(
    topo: &Topology,
    director_cpu: &str,
    other_cpu: &str,
) -> Result<Vec<u32>> {
    let d = &topo.director;
    let mut director = d.ns.threaded_napi(&d.client_dev)?;
    let mut others = topo.client.ns.threaded_napi(&topo.client.dev)?;
    let expected = if topo.kind == Kind::L2Segment {
        // Switch-side ends are named after the host's role.
        others.extend(topo.switch.threaded_napi("client")?);
        1
    } else {
        director.extend(d.ns.threaded_napi(&d.real_dev)?);
        2
    };
    others.extend(topo.switch.threaded_napi("dir")?);
    for (i, r) in topo.reals.iter().enumerate() {
        others.extend(r.ns.threaded_napi(&r.dev)?);
        others.extend(topo.switch.threaded_napi(&format!("real{i}"))?);
    }
    if director.len() < expected {
        return Err(TestbedError::Invalid(format!(
            "found {} director NAPI kthreads, expected {expected}",
            director.len()
        )));
    }
    for &p in &director {
        pin(p, director_cpu)?;
    }
    for &p in &others {
        pin(p, other_cpu)?;
    }
    Ok(director)
}

/// Total run time of `pids` so far, in nanoseconds (sample before and after a load).
pub fn runtime_ns(pids: &[u32]) -> Result<u64> {
    pids.iter().map(|&p| sched_runtime_ns(p)).sum()
}

/// Turns GRO off on every port of the topology's bridge (call after
/// [`isolate_director_napi`]). A switch is a wire, not a host: with GRO on its ports, the bridge
/// would hand the director (and the reals) 64 KB aggregates that no NIC receives, which the
/// kernel forwards cheaply per byte and an XDP program — one frame per buffer — cannot take
/// (bulk transfers through XDP stall). The director's own interfaces and the end hosts keep GRO.
/// Ports with an XDP program attached keep their NAPI kthread; the others lose it and their
/// receive work runs in the sender's softirq (CPU 0 for every sender but the director, whose
/// peer port always has XDP or NAPI).
pub fn switch_gro_off(topo: &Topology) -> Result<()> {
    let mut ports = vec!["dir".to_string()];
    if topo.kind == Kind::L2Segment {
        ports.push("client".into());
    }
    ports.extend((0..topo.reals.len()).map(|i| format!("real{i}")));
    for p in &ports {
        topo.switch.run("ethtool", &["-K", p, "gro", "off"])?;
    }
    Ok(())
}
