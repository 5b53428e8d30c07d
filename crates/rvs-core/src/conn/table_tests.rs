//! Unit tests of the connection table: keys, transitions with accounting, every timeout path.

use super::*;
use crate::desired::Timeouts;
use crate::model::Protocol;
use crate::runtime::RealId;
use crate::time::Timestamp;
use std::collections::HashMap;

fn key(proto: Protocol, client: &str, vaddr: &str) -> ConnKey {
    ConnKey {
        protocol: proto,
        client: client.parse().unwrap(),
        vaddr: vaddr.parse().unwrap(),
    }
}

fn tcp(client: &str) -> ConnKey {
    key(Protocol::Tcp, client, "10.0.0.100:80")
}

fn conn(real: u32) -> NewConn {
    NewConn {
        service: 7,
        real: RealId(real),
        persistent: false,
    }
}

fn secs(s: u64) -> Timestamp {
    Timestamp::from_secs(s)
}

fn flags(bits: u8) -> PacketEvent {
    PacketEvent::Tcp(TcpFlags::from_bits(bits))
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

fn table() -> ConnTable {
    ConnTable::new(ConnTimeouts::default(), 42)
}

fn expire(t: &mut ConnTable, at: Timestamp) -> Vec<Closed> {
    let mut out = Vec::new();
    t.expire(at, &mut out);
    out
}

#[test]
fn entry_is_60_bytes() {
    assert_eq!(ConnTable::ENTRY_BYTES, 60);
}

#[test]
fn insert_get_for_v4_v6_and_mapped_addresses() {
    let mut t = table();
    let keys = [
        tcp("192.0.2.1:1000"),
        key(Protocol::Udp, "192.0.2.1:1000", "10.0.0.100:80"),
        key(Protocol::Tcp, "[::ffff:192.0.2.1]:1000", "10.0.0.100:80"),
        key(Protocol::Sctp, "[2001:db8::1]:5000", "[2001:db8::100]:443"),
        tcp("192.0.2.1:1001"),
    ];
    for (i, k) in keys.iter().enumerate() {
        let v = t.insert(*k, conn(i as u32), secs(0)).unwrap();
        assert_eq!(v.key, *k);
    }
    assert_eq!(t.len(), keys.len());
    for (i, k) in keys.iter().enumerate() {
        let v = t.get(k).unwrap();
        assert_eq!((v.key, v.real, v.service), (*k, RealId(i as u32), 7));
    }
    assert_eq!(
        t.get(&keys[3]).unwrap().state,
        ConnState::Sctp(SctpState::None)
    );
    assert_eq!(t.get(&keys[1]).unwrap().state, ConnState::Udp);
    assert!(t.get(&tcp("192.0.2.2:1000")).is_none());
    assert_eq!(t.iter().count(), keys.len());
}

#[test]
fn duplicate_insert_is_refused() {
    let mut t = table();
    t.insert(tcp("192.0.2.1:1"), conn(0), secs(0)).unwrap();
    let err = t.insert(tcp("192.0.2.1:1"), conn(1), secs(0)).unwrap_err();
    assert_eq!(err, ConnError::Exists(tcp("192.0.2.1:1")));
    assert_eq!(t.get(&tcp("192.0.2.1:1")).unwrap().real, RealId(0));
}

#[test]
fn packet_for_untracked_connection_is_none() {
    let mut t = table();
    assert!(
        t.packet(&tcp("192.0.2.1:1"), Direction::Input, flags(SYN), secs(0))
            .is_none()
    );
}

#[test]
fn tcp_lifecycle_reports_activity_changes() {
    let mut t = table();
    let k = tcp("192.0.2.1:1");
    t.insert(k, conn(3), secs(0)).unwrap();
    let mut step = |dir, bits, want: TcpState| {
        let (v, ch) = t.packet(&k, dir, flags(bits), secs(1)).unwrap();
        assert_eq!(v.state, ConnState::Tcp(want));
        ch
    };
    assert_eq!(step(Direction::Input, SYN, TcpState::SynRecv), None);
    assert_eq!(step(Direction::Output, SYN | ACK, TcpState::SynRecv), None);
    let up = step(Direction::Input, ACK, TcpState::Established).unwrap();
    assert_eq!(
        up,
        ActivityChange {
            service: 7,
            real: RealId(3),
            was_active: false,
            is_active: true
        }
    );
    assert_eq!(step(Direction::Input, ACK, TcpState::Established), None);
    let down = step(Direction::Input, FIN | ACK, TcpState::CloseWait).unwrap();
    assert!(down.was_active && !down.is_active);
    assert_eq!(step(Direction::Output, FIN | ACK, TcpState::TimeWait), None);
}

#[test]
fn each_state_expires_after_its_timeout() {
    let to = ConnTimeouts::default();
    // Drive a fresh connection into each reachable state, then check its deadline.
    let paths: &[(&[(Direction, u8)], TcpState)] = &[
        (&[], TcpState::None),
        (&[(Direction::Input, SYN)], TcpState::SynRecv),
        (
            &[(Direction::Input, SYN), (Direction::Input, ACK)],
            TcpState::Established,
        ),
        (&[(Direction::Output, SYN)], TcpState::SynSent),
        (
            &[
                (Direction::Input, SYN),
                (Direction::Input, ACK),
                (Direction::Output, FIN),
            ],
            TcpState::FinWait,
        ),
        (
            &[(Direction::Input, SYN), (Direction::Input, FIN)],
            TcpState::TimeWait,
        ),
        (&[(Direction::Input, RST)], TcpState::Close),
        (
            &[
                (Direction::Input, SYN),
                (Direction::Input, ACK),
                (Direction::Input, FIN),
            ],
            TcpState::CloseWait,
        ),
    ];
    for (n, (path, want)) in paths.iter().enumerate() {
        let mut t = table();
        let k = tcp(&format!("192.0.2.1:{}", 1000 + n));
        t.insert(k, conn(0), secs(100)).unwrap();
        for &(dir, bits) in *path {
            t.packet(&k, dir, flags(bits), secs(100));
        }
        let state = ConnState::Tcp(*want);
        assert_eq!(t.get(&k).unwrap().state, state);
        let life = u64::from(to.secs(state));
        assert!(
            expire(&mut t, secs(100 + life - 1)).is_empty(),
            "{} expired early",
            want.name()
        );
        let gone = expire(&mut t, secs(100 + life));
        assert_eq!(gone.len(), 1, "{} not expired after {life}s", want.name());
        assert_eq!(gone[0].was_active, state.is_active());
        assert_eq!(gone[0].key, k);
        assert!(t.is_empty());
    }
}

#[test]
fn traffic_pushes_the_deadline_later() {
    let mut t = table();
    let k = tcp("192.0.2.1:1");
    t.insert(k, conn(0), secs(0)).unwrap();
    t.packet(&k, Direction::Input, flags(SYN), secs(0));
    t.packet(&k, Direction::Input, flags(ACK), secs(0));
    for s in (100..=800).step_by(100) {
        t.packet(&k, Direction::Input, flags(ACK), secs(s));
        assert!(expire(&mut t, secs(s)).is_empty());
    }
    assert!(expire(&mut t, secs(1699)).is_empty());
    let gone = expire(&mut t, secs(1700));
    assert_eq!(gone.len(), 1);
    assert!(gone[0].was_active);
}

#[test]
fn a_shorter_state_brings_the_deadline_forward() {
    let mut t = table();
    let k = tcp("192.0.2.1:1");
    t.insert(k, conn(0), secs(0)).unwrap();
    t.packet(&k, Direction::Input, flags(SYN), secs(0));
    t.packet(&k, Direction::Input, flags(ACK), secs(0)); // ESTABLISHED, 900 s
    expire(&mut t, secs(5));
    t.packet(&k, Direction::Input, flags(RST), secs(5)); // CLOSE, 10 s
    assert!(expire(&mut t, secs(14)).is_empty());
    assert_eq!(expire(&mut t, secs(15)).len(), 1);
}

#[test]
fn timeouts_longer_than_the_wheel() {
    let to = ConnTimeouts::from_set(&Timeouts {
        tcp: 3600,
        tcp_fin: 0,
        udp: 0,
        ..Default::default()
    });
    let mut t = ConnTable::new(to, 1);
    let k = tcp("192.0.2.1:1");
    t.insert(k, conn(0), secs(0)).unwrap();
    t.packet(&k, Direction::InputOnly, flags(SYN), secs(0));
    t.packet(&k, Direction::InputOnly, flags(ACK), secs(0));
    for s in (1..3600).step_by(7) {
        assert!(expire(&mut t, secs(s)).is_empty(), "expired at {s}");
    }
    assert_eq!(expire(&mut t, secs(3600)).len(), 1);
}

#[test]
fn a_long_pause_expires_everything_due() {
    let mut t = table();
    for p in 0..100 {
        t.insert(tcp(&format!("192.0.2.1:{p}")), conn(0), secs(10))
            .unwrap();
    }
    let u = key(Protocol::Udp, "192.0.2.9:53", "10.0.0.100:53");
    t.insert(u, conn(0), secs(10)).unwrap();
    expire(&mut t, secs(11));
    let gone = expire(&mut t, secs(10_000));
    assert_eq!(gone.len(), 101);
    assert!(t.is_empty());
}

#[test]
fn never_expires_early_with_millisecond_times() {
    let mut t = table();
    let k = key(Protocol::Udp, "192.0.2.1:1", "10.0.0.100:53");
    t.insert(k, conn(0), Timestamp::from_millis(1_500)).unwrap(); // 300 s → 301.5 s
    assert!(expire(&mut t, Timestamp::from_millis(301_499)).is_empty());
    let gone = expire(&mut t, Timestamp::from_millis(302_000));
    assert_eq!(gone.len(), 1, "at most one second late");
}

#[test]
fn udp_timeout_follows_set_udp() {
    let mut t = ConnTable::new(
        ConnTimeouts::from_set(&Timeouts {
            tcp: 0,
            tcp_fin: 0,
            udp: 5,
            ..Default::default()
        }),
        0,
    );
    let k = key(Protocol::Udp, "192.0.2.1:1", "10.0.0.100:53");
    t.insert(k, conn(0), secs(0)).unwrap();
    let (v, ch) = t
        .packet(&k, Direction::Input, PacketEvent::Udp, secs(3))
        .unwrap();
    assert_eq!((v.state, ch), (ConnState::Udp, None));
    assert!(expire(&mut t, secs(7)).is_empty());
    assert_eq!(expire(&mut t, secs(8)).len(), 1);
}

#[test]
fn remove_reports_and_frees_the_entry() {
    let mut t = table();
    let k = tcp("192.0.2.1:1");
    let p = NewConn {
        service: 1,
        real: RealId(9),
        persistent: true,
    };
    t.insert(k, p, secs(0)).unwrap();
    t.packet(&k, Direction::Input, flags(SYN), secs(0));
    t.packet(&k, Direction::Input, flags(ACK), secs(0));
    let c = t.remove(&k).unwrap();
    assert_eq!(
        c,
        Closed {
            key: k,
            service: 1,
            real: RealId(9),
            persistent: true,
            was_active: true
        }
    );
    assert!(t.remove(&k).is_none());
    assert!(
        expire(&mut t, secs(10_000)).is_empty(),
        "removed entry left the wheel"
    );
    let before = t.memory_bytes();
    t.insert(tcp("192.0.2.1:2"), conn(0), secs(0)).unwrap();
    assert_eq!(t.memory_bytes(), before, "slot reused");
}

#[test]
fn memory_per_connection_is_under_96_bytes() {
    let mut t = table();
    let n = 100_000u32;
    for i in 0..n {
        let client = std::net::SocketAddr::new(
            std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i)).into(),
            (i % 60_000) as u16,
        );
        let k = ConnKey {
            protocol: Protocol::Tcp,
            client,
            vaddr: "[2001:db8::100]:443".parse().unwrap(),
        };
        t.insert(k, conn(0), secs(0)).unwrap();
    }
    let per = t.memory_bytes() as f64 / f64::from(n);
    assert!(per <= 96.0, "{per:.1} bytes per connection");
}

#[test]
fn random_operations_agree_with_a_model() {
    let mut t = ConnTable::with_capacity(ConnTimeouts::default(), 7, 8);
    let mut model: HashMap<ConnKey, (u64, bool)> = HashMap::new(); // deadline secs, active
    let mut x = 99u64;
    let mut now = 0u64;
    for _ in 0..30_000 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let r = (x >> 33) as u32;
        let k = tcp(&format!("192.0.2.{}:{}", r % 7, (r >> 3) % 64));
        match r % 10 {
            0..=3 => {
                let ok = t.insert(k, conn(r % 5), secs(now)).is_ok();
                assert_eq!(ok, !model.contains_key(&k));
                model.entry(k).or_insert((now + 2, false));
            }
            4..=6 => {
                let bits = [SYN, ACK, FIN, RST][(r >> 12) as usize % 4];
                let got = t.packet(&k, Direction::Input, flags(bits), secs(now));
                assert_eq!(got.is_some(), model.contains_key(&k));
                if let Some((v, _)) = got {
                    let life = u64::from(t.timeouts().secs(v.state));
                    model.insert(k, (now + life, v.state.is_active()));
                }
            }
            7 => assert_eq!(t.remove(&k).is_some(), model.remove(&k).is_some()),
            _ => {
                now += u64::from(r % 40);
                let gone = expire(&mut t, secs(now));
                for c in &gone {
                    let (deadline, active) = model.remove(&c.key).expect("expired a tracked key");
                    assert!(deadline <= now, "expired early");
                    assert_eq!(c.was_active, active);
                }
                assert!(
                    model.values().all(|&(d, _)| d > now),
                    "a due entry was kept"
                );
            }
        }
        assert_eq!(t.len(), model.len());
    }
}

#[test]
fn sctp_association_states_and_timeouts() {
    let mut t = table();
    let k = key(Protocol::Sctp, "192.0.2.1:5000", "10.0.0.100:3868");
    t.insert(k, conn(2), secs(0)).unwrap();
    let chunk = |c: u8| PacketEvent::Sctp(SctpChunk::from_type(c));
    let (v, ch) = t.packet(&k, Direction::Input, chunk(1), secs(0)).unwrap(); // INIT
    assert_eq!((v.state, ch), (ConnState::Sctp(SctpState::Init1), None));
    assert!(expire(&mut t, secs(9)).is_empty());
    for (dir, c) in [
        (Direction::Output, 2),
        (Direction::Input, 10),
        (Direction::Output, 11),
    ] {
        t.packet(&k, dir, chunk(c), secs(9));
    }
    let (v, ch) = t.packet(&k, Direction::Input, chunk(0), secs(9)).unwrap(); // DATA
    assert_eq!(v.state, ConnState::Sctp(SctpState::Established));
    assert!(ch.unwrap().is_active);
    assert!(expire(&mut t, secs(908)).is_empty());
    let (_, ch) = t
        .packet(&k, Direction::Output, chunk(6), secs(908))
        .unwrap(); // ABORT
    assert!(ch.unwrap().was_active);
    assert!(expire(&mut t, secs(917)).is_empty(), "CLOSED lives 10 s");
    assert_eq!(expire(&mut t, secs(918)).len(), 1);
}
