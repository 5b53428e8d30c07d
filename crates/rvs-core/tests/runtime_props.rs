//! Property tests of `ServiceRuntime` under random operation sequences: per-real counts always
//! equal a model of the open connections, ids of open connections stay valid across
//! `set_reals`, and a weight-0 or overloaded real is never given a new connection.

use proptest::prelude::*;
use rvs_core::model::{
    ForwardMethod, Persistence, Protocol, RealServer, SchedulerKind, ServiceOptions,
};
use rvs_core::runtime::{ConnRef, ServiceRuntime};
use rvs_core::scheduler::{PickRequest, SchedulerParams};
use rvs_core::time::Timestamp;
use std::collections::HashMap;
use std::net::SocketAddr;

#[derive(Debug, Clone)]
enum Op {
    /// Replace the reals with a subset of 6 candidates (bit mask) and weights.
    SetReals(u8, [u32; 6], u32),
    /// Schedule and open a connection from client number `c`.
    Open(u8),
    /// Toggle active/inactive of open connection number `i` (mod count).
    Toggle(usize),
    /// Close open connection number `i` (mod count).
    Close(usize),
    /// Let time pass (seconds) and expire templates.
    Wait(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (any::<u8>(), prop::array::uniform6(0u32..4), 0u32..4).prop_map(|(m, w, x)| Op::SetReals(m, w, x)),
        4 => any::<u8>().prop_map(Op::Open),
        2 => any::<usize>().prop_map(Op::Toggle),
        2 => any::<usize>().prop_map(Op::Close),
        1 => any::<u16>().prop_map(|s| Op::Wait(s % 400)),
    ]
}

fn candidate(i: usize, weight: u32, upper: u32) -> RealServer {
    let mut r = RealServer::new(
        format!("10.0.0.{}:80", i + 1).parse().unwrap(),
        ForwardMethod::Nat,
        weight,
    );
    r.upper_threshold = upper;
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn counts_match_open_connections(
        ops in prop::collection::vec(op(), 1..200),
        persistent in any::<bool>(),
        kind in prop::sample::select(vec![SchedulerKind::Rr, SchedulerKind::Wrr, SchedulerKind::Wlc, SchedulerKind::Lc]),
    ) {
        let persistence = persistent.then_some(Persistence { timeout: 120, prefix_len: 24 });
        let options = ServiceOptions { scheduler: kind, persistence, ..Default::default() };
        let mut rt = ServiceRuntime::new(options, SchedulerParams::default());
        // Open connections: (ref, active, real address).
        let mut open: Vec<(ConnRef, bool, SocketAddr)> = Vec::new();
        let mut now = Timestamp::ZERO;
        for op in ops {
            match op {
                Op::SetReals(mask, w, upper) => {
                    let reals: Vec<_> = (0..6).filter(|i| mask & (1 << i) != 0).map(|i| candidate(i, w[i], upper)).collect();
                    rt.set_reals(&reals).unwrap();
                }
                Op::Open(c) => {
                    let client: SocketAddr = format!("192.0.{}.{}:{}", c % 4, c, 1000 + u16::from(c)).parse().unwrap();
                    let req = PickRequest { protocol: Protocol::Tcp, client, dest: "10.9.9.9:80".parse().unwrap(), now };
                    let avail: Vec<SocketAddr> = rt.states().iter().filter(|s| s.available()).map(|s| s.addr).collect();
                    match rt.schedule(&req) {
                        Ok(s) => {
                            // A persistence template still leads to a drained or overloaded
                            // real (IPVS's default); any other pick is an available real.
                            prop_assert!(avail.contains(&s.addr) || s.from_template, "{} not available (weight 0 or overloaded)", s.addr);
                            rt.conn_opened(s.conn, false, now);
                            open.push((s.conn, false, s.addr));
                        }
                        Err(_) => prop_assert!(avail.is_empty(), "refused with {avail:?} available"),
                    }
                }
                Op::Toggle(i) if !open.is_empty() => {
                    let i = i % open.len();
                    let (c, a, _) = open[i];
                    rt.conn_changed(c.real, a, !a);
                    open[i].1 = !a;
                }
                Op::Close(i) if !open.is_empty() => {
                    let (c, a, _) = open.swap_remove(i % open.len());
                    rt.conn_closed(c, a, now);
                }
                Op::Wait(s) => {
                    now = now + std::time::Duration::from_secs(u64::from(s));
                    rt.expire(now);
                }
                _ => {}
            }
            // Every open connection's id still names its real, and counts match the model.
            let mut model: HashMap<SocketAddr, (u32, u32)> = HashMap::new();
            for &(c, a, addr) in &open {
                let info = rt.real_info(c.real);
                prop_assert!(info.is_some_and(|i| i.server.addr == addr), "id of {addr} lost");
                let e = model.entry(addr).or_default();
                if a { e.0 += 1 } else { e.1 += 1 }
            }
            for info in rt.reals() {
                let want = model.get(&info.server.addr).copied().unwrap_or_default();
                prop_assert_eq!((info.active, info.inactive), want, "{}", info.server.addr);
                prop_assert!(!info.removed || want.0 + want.1 > 0, "idle tombstone {}", info.server.addr);
            }
            for (pos, st) in rt.states().iter().enumerate() {
                let info = rt.real_info(rt.id_at(pos).unwrap()).unwrap();
                prop_assert_eq!((st.active, st.inactive, st.overloaded), (info.active, info.inactive, info.overloaded));
            }
        }
    }
}
