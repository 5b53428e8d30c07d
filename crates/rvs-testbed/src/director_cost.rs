//! The director-cost method of `shared/DESIGN.md`, for the two-arm topologies: threaded NAPI on
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

/// Enables threaded NAPI on every veth end of a two-arm topology, pins the director's two NAPI
/// kthreads to `director_cpu` and every other one to `other_cpu`, and returns the director's.
pub fn isolate_director_napi(
    topo: &Topology,
    director_cpu: &str,
    other_cpu: &str,
) -> Result<Vec<u32>> {
    if topo.kind == Kind::L2Segment {
        return Err(TestbedError::Invalid(
            "the director-cost method needs a two-arm topology".into(),
        ));
    }
    let d = &topo.director;
    let mut director = d.ns.threaded_napi(&d.client_dev)?;
    director.extend(d.ns.threaded_napi(&d.real_dev)?);
    let mut others = topo.client.ns.threaded_napi(&topo.client.dev)?;
    others.extend(topo.switch.threaded_napi("dir")?);
    for (i, r) in topo.reals.iter().enumerate() {
        others.extend(r.ns.threaded_napi(&r.dev)?);
        others.extend(topo.switch.threaded_napi(&format!("real{i}"))?);
    }
    if director.len() < 2 {
        return Err(TestbedError::Invalid(format!(
            "found {} director NAPI kthreads, expected 2",
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
