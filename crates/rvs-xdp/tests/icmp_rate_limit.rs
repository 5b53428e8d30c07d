//! Packet fixtures for the per-CPU limit on ICMP errors about DR/TUN flows with no connection
//! entry (bpf/icmp_limit.h): with rate R and burst B, B errors pass at once and the rest are
//! dropped, counted `icmp_rate_limited`; the bucket refills at R per second; errors about a
//! tracked flow are never limited; rate 0 is unlimited.
//!
//! Time is simulated through the bucket map: `last_ns` far ahead means "no refill", `last_ns`
//! some time ago means "that long since". The thread is pinned to one CPU so every run meets
//! the same per-CPU bucket. Same runner as `fixtures.rs`. Needs root; skips otherwise.

mod common;

use common::frames::{self, ACK, Ip4, SYN, TCP};
use common::lab::*;
use rvs_xdp::abi::{self, Config, IcmpBucket};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

const DR: u8 = abi::RVS_METHOD_DR as u8;
const TUN: u8 = abi::RVS_METHOD_TUN as u8;
const SVC: u32 = 0;
const TUN_SVC: u32 = 1;
const TOKEN: u64 = abi::RVS_ICMP_TOKEN;
const ROUTER4: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);

fn setup() -> Lab {
    let mut lab = Lab::new();
    for i in 0..3u32 {
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7 + i as u8));
        lab.add_real(i, ip, [0x02, 0, 0, 0, 0, 0x40 + i as u8], DR);
    }
    lab.add_real(
        3,
        IpAddr::V4(Ipv4Addr::new(10, 0, 1, 7)),
        [0x02, 0, 0, 0, 0, 0x43],
        TUN,
    );
    let vip = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)), 80);
    lab.add_service(SVC, vip, TCP, &[(0, 1), (1, 1), (2, 1)], None);
    let tun_vip = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 4)), 80);
    lab.add_service(TUN_SVC, tun_vip, TCP, &[(3, 1)], None);
    lab
}

/// Program configuration with the ICMP limit `rate` / `burst`.
fn limit(lab: &mut Lab, rate: u32, burst: u32) {
    let cfg = Config {
        icmp_rate: rate,
        icmp_burst: burst,
        ..Config::default()
    };
    lab.b.set_config(&cfg).unwrap();
}

fn set_bucket(lab: &mut Lab, tokens: u64, last_ns: u64) {
    lab.b
        .set_icmp_buckets(&IcmpBucket { tokens, last_ns })
        .unwrap();
}

fn client(n: u32) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(192, 168, 2, (n % 250) as u8 + 1)),
        20000 + n as u16,
    )
}

/// "Fragmentation needed" from a router about the real's reply VIP -> `client` of `svc`.
fn frag_needed(lab: &Lab, svc: u32, client: SocketAddr) -> Vec<u8> {
    let s = lab.svc(svc);
    let IpAddr::V4(vip) = s.vip.ip() else {
        panic!("v4 service")
    };
    let IpAddr::V4(c) = client.ip() else {
        panic!("v4 client")
    };
    let seg = frames::l4(TCP, s.vip.port(), client.port(), ACK, &[0x5a; 1380]);
    let reply = Ip4::new(vip, c, TCP).build(&seg);
    let msg = frames::icmp4(3, 4, [0, 0, 0x05, 0x78], &reply[..28]);
    let outer = Ip4::new(ROUTER4, vip, 1).build(&msg);
    frames::eth(DIR_MAC, CLIENT_MAC, frames::ETH_IP4, &outer)
}

/// An error about `client`'s untracked flow of `svc` that must be sent to its Maglev real.
fn sent(lab: &mut Lab, desc: String, svc: u32, client: SocketAddr) {
    assert!(conn_of(lab, svc, client).is_none(), "{desc}: has an entry");
    let input = frag_needed(lab, svc, client);
    let output = lab.forwarded(&input, lab.maglev_real(svc, client));
    lab.run(Fixture {
        desc,
        input,
        action: XDP_TX,
        output,
        outcome: "icmp_no_conn_maglev",
    });
}

/// An error about `client`'s untracked flow of `svc` that must be dropped by the limit.
fn limited(lab: &mut Lab, desc: String, svc: u32, client: SocketAddr) {
    let input = frag_needed(lab, svc, client);
    lab.run(Fixture {
        desc,
        output: input.clone(),
        input,
        action: XDP_DROP,
        outcome: "icmp_rate_limited",
    });
}

/// Rate 1/s, burst 5, a full bucket that never refills: exactly 5 pass, then all are dropped
/// (DR and TUN alike: one bucket for every service).
fn burst_then_drop(lab: &mut Lab) {
    limit(lab, 1, 5);
    set_bucket(lab, 5 * TOKEN, u64::MAX);
    for n in 0..5 {
        sent(lab, format!("burst 5: error {n} sent"), SVC, client(n));
    }
    for n in 5..15 {
        limited(
            lab,
            format!("burst 5: error {n} over the burst"),
            SVC,
            client(n),
        );
    }
    limited(
        lab,
        "burst 5: TUN service, same bucket".into(),
        TUN_SVC,
        client(15),
    );
    let b = lab.b.icmp_buckets().unwrap();
    assert!(
        b.iter().any(|b| b.tokens == 0 && b.last_ns == u64::MAX),
        "{b:?}"
    );
}

/// The bucket refills at the rate since `last_ns`, up to the burst.
fn refill(lab: &mut Lab) {
    // 2 errors/s, empty 1.25 s ago: 2.5 tokens -> 2 sent (a quarter second of slack for a
    // slow run, and the coarse clock's tick the other way).
    limit(lab, 2, 5);
    let now = rvs_xdp::engine::monotonic_ns();
    set_bucket(lab, 0, now - 1_250_000_000);
    for n in 20..22 {
        sent(
            lab,
            format!("rate 2, 1.25 s: error {n} sent"),
            SVC,
            client(n),
        );
    }
    limited(
        lab,
        "rate 2, 1.25 s: third error dropped".into(),
        SVC,
        client(22),
    );
    // Idle for 100 s at 1/s: refilled to the burst (5), not to 100.
    limit(lab, 1, 5);
    let now = rvs_xdp::engine::monotonic_ns();
    set_bucket(lab, 0, now - 100_000_000_000);
    for n in 30..35 {
        sent(
            lab,
            format!("idle 100 s, burst 5: error {n} sent"),
            SVC,
            client(n),
        );
    }
    limited(
        lab,
        "idle 100 s, burst 5: sixth dropped".into(),
        SVC,
        client(35),
    );
    // A fresh bucket (never used, last_ns 0) starts full.
    set_bucket(lab, 0, 0);
    for n in 40..45 {
        sent(lab, format!("fresh bucket: error {n} sent"), SVC, client(n));
    }
    limited(lab, "fresh bucket: sixth dropped".into(), SVC, client(45));
}

/// Errors about a flow with an entry follow it, whatever the bucket holds.
fn tracked_unlimited(lab: &mut Lab) {
    limit(lab, 1, 1);
    set_bucket(lab, 0, u64::MAX);
    limited(
        lab,
        "empty bucket: untracked error dropped".into(),
        SVC,
        client(50),
    );
    let c = client(51);
    let real = lab.maglev_real(SVC, c);
    let syn = lab.client_packet(SVC, c, SYN, b"");
    let f = fwd(lab, format!("flow opened on real {real}"), syn, real);
    lab.run(f);
    for i in 0..50 {
        let input = frag_needed(lab, SVC, c);
        lab.run(Fixture {
            desc: format!("empty bucket: error {i} about a tracked flow sent"),
            output: lab.forwarded(&input, real),
            input,
            action: XDP_TX,
            outcome: "icmp_forwarded",
        });
    }
    assert_eq!(
        lab.b
            .icmp_buckets()
            .unwrap()
            .iter()
            .map(|b| b.tokens)
            .sum::<u64>(),
        0
    );
}

/// Rate 0: no limit, even with an empty bucket that never refills.
fn rate_zero(lab: &mut Lab) {
    limit(lab, 0, 1);
    set_bucket(lab, 0, u64::MAX);
    for n in 100..400 {
        sent(lab, format!("rate 0: error {n} sent"), SVC, client(n));
    }
}

#[test]
fn icmp_rate_limit_fixtures() {
    if skip_unless_root() {
        return;
    }
    rvs_xdp::bench_setup::pin_thread(0).expect("pin to CPU 0");
    let mut lab = setup();
    burst_then_drop(&mut lab);
    refill(&mut lab);
    tracked_unlimited(&mut lab);
    rate_zero(&mut lab);
    println!("{} fixtures passed", lab.ran.len());
    assert_eq!(lab.ran.len(), 383, "fixtures run");
}
