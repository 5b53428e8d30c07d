//! The director-cost method's set-up on each topology (threaded NAPI kthreads found and pinned,
//! switch GRO off) and the pass-through XDP program for veth peers. Needs root; skips otherwise.

use rvs_testbed::procstat::sched_runtime_ns;
use rvs_testbed::{Kind, Topology, director_cost, ping, skip_unless_root, xdp_pass};

fn affinity(pid: u32) -> String {
    let out = std::process::Command::new("taskset")
        .args(["-pc", &pid.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.rsplit(':').next().unwrap_or("").trim().to_string()
}

fn check(kind: Kind, expected_kthreads: usize) {
    let topo = Topology::build(kind, 2).unwrap();
    let k = director_cost::isolate_director_napi(&topo, "1", "0").unwrap();
    assert_eq!(
        k.len(),
        expected_kthreads,
        "{kind:?}: director kthreads {k:?}"
    );
    for &p in &k {
        assert_eq!(affinity(p), "1", "{kind:?}: kthread {p} not on CPU 1");
        assert!(sched_runtime_ns(p).is_ok());
    }
    director_cost::switch_gro_off(&topo).unwrap();
    let features = topo.switch.run("ethtool", &["-k", "real0"]).unwrap();
    assert!(
        features.contains("generic-receive-offload: off"),
        "{kind:?}: switch port real0 still has GRO: {features}"
    );
    // Traffic still crosses it (client to real 0, through the director on the two-arm ones).
    ping(Some(&topo.client.ns), &topo.reals[0].ip4.to_string(), 1).unwrap();
}

#[test]
fn director_kthreads_isolated_on_every_topology() {
    if !skip_unless_root("director_kthreads_isolated_on_every_topology") {
        return;
    }
    check(Kind::L2Segment, 1);
    check(Kind::TwoArm, 2);
}

#[test]
fn pass_program_attaches_passes_and_detaches() {
    if !skip_unless_root("pass_program_attaches_passes_and_detaches") {
        return;
    }
    let topo = Topology::build(Kind::L2Segment, 1).unwrap();
    assert!(!xdp_pass::has_program(&topo.switch, "dir").unwrap());
    xdp_pass::attach(&topo.switch, "dir").unwrap();
    assert!(xdp_pass::has_program(&topo.switch, "dir").unwrap());
    assert!(xdp_pass::program_id(&topo.switch, "dir").unwrap().is_some());
    // The director's replies are received by the port with the program: it passes them.
    ping(
        Some(&topo.client.ns),
        &topo.director.client_ip4.to_string(),
        2,
    )
    .unwrap();
    xdp_pass::detach(&topo.switch, "dir").unwrap();
    assert!(!xdp_pass::has_program(&topo.switch, "dir").unwrap());
    assert_eq!(xdp_pass::program_id(&topo.switch, "dir").unwrap(), None);
}
