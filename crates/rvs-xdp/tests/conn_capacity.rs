//! The connection table holds its configured number of flows however they spread over CPUs.
//! With per-CPU LRU lists (`BPF_F_NO_COMMON_LRU`) each CPU would own only `size / possible
//! CPUs` entries, so flows arriving on one CPU (one receive queue, skewed RSS) would be evicted
//! long before the table is full; rvs_conns and rvs_persist use the common LRU instead.
//! Needs root (loads the balancer; skips with a message otherwise).

use rvs_xdp::Balancer;
use rvs_xdp::abi::{self, Config, Conn, FlowKey};
use rvs_xdp::bench_setup::{client_flow, pin_thread};

fn key(i: u32) -> FlowKey {
    client_flow(i, [10, 0, 0, 3], 80, abi::RVS_PROTO_TCP as u32)
}

#[test]
fn flows_inserted_on_one_cpu_fill_the_whole_table() {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: loading the balancer needs root");
        return;
    }
    let cpus = aya::util::nr_cpus().expect("possible cpus"); // possible, not online
    if cpus < 2 {
        eprintln!("skipping: one possible CPU, per-CPU and common LRU lists are the same");
        return;
    }
    let mut b = Balancer::load().expect("load");
    b.set_config(&Config::default()).expect("config");
    // 90 % of the table, all from CPU 0: more than twice what one CPU's share would hold with
    // two possible CPUs, and room left for free nodes parked in other CPUs' local lists.
    let n = (abi::RVS_MAX_CONNS * 9 / 10) as u32;
    assert!(n as usize > abi::RVS_MAX_CONNS as usize / cpus);
    pin_thread(0).expect("pin to CPU 0");
    let conn = Conn {
        real: 1,
        svc: 0,
        last_ns: 1,
        state: abi::RVS_STATE_ESTABLISHED as u8,
        ..Default::default()
    };
    for i in 0..n {
        b.insert_conn(&key(i), &conn).expect("insert");
    }
    let held = b.conns().expect("read").len();
    assert_eq!(held, n as usize, "flows evicted before the table was full");
}
