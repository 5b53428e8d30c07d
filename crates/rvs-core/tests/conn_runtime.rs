//! The connection table and a service runtime together, as an engine drives them: schedule,
//! track, feed activity changes and expiries back, and check the per-real counts match the
//! table at every step.

use rvs_core::conn::{ConnKey, ConnTable, ConnTimeouts, Direction, NewConn, PacketEvent, TcpFlags};
use rvs_core::model::{
    ForwardMethod, Persistence, Protocol, RealServer, SchedulerKind, ServiceOptions,
};
use rvs_core::persistence::TemplateKey;
use rvs_core::runtime::{ConnRef, ServiceRuntime};
use rvs_core::scheduler::{PickRequest, SchedulerParams};
use rvs_core::time::Timestamp;
use std::collections::HashMap;
use std::net::IpAddr;

const PREFIX: u8 = 24;

struct Director {
    rt: ServiceRuntime,
    table: ConnTable,
}

impl Director {
    fn new(reals: &[RealServer]) -> Self {
        let options = ServiceOptions {
            scheduler: SchedulerKind::Rr,
            persistence: Some(Persistence {
                timeout: 60,
                prefix_len: PREFIX,
            }),
            ..Default::default()
        };
        let mut rt = ServiceRuntime::new(options, SchedulerParams::default());
        rt.set_reals(reals).unwrap();
        Director {
            rt,
            table: ConnTable::new(ConnTimeouts::default(), 5),
        }
    }

    /// A packet from the client: a new connection is scheduled on its SYN.
    fn client_packet(&mut self, key: ConnKey, bits: u8, now: Timestamp) {
        let ev = PacketEvent::Tcp(TcpFlags::from_bits(bits));
        if self.table.get(&key).is_none() {
            let req = PickRequest {
                protocol: key.protocol,
                client: key.client,
                dest: key.vaddr,
                now,
            };
            let s = self.rt.schedule(&req).unwrap();
            let nc = NewConn {
                service: 0,
                real: s.conn.real,
                persistent: s.conn.template.is_some(),
            };
            self.table.insert(key, nc, now).unwrap();
            self.rt.conn_opened(s.conn, false, now);
        }
        self.packet(key, Direction::Input, ev, now);
    }

    fn packet(&mut self, key: ConnKey, dir: Direction, ev: PacketEvent, now: Timestamp) {
        let (_, change) = self.table.packet(&key, dir, ev, now).unwrap();
        if let Some(ch) = change {
            self.rt.conn_changed(ch.real, ch.was_active, ch.is_active);
        }
    }

    fn tick(&mut self, now: Timestamp) {
        let mut gone = Vec::new();
        self.table.expire(now, &mut gone);
        for c in gone {
            let template = c
                .persistent
                .then(|| TemplateKey::new(c.key.client.ip(), PREFIX));
            self.rt.conn_closed(
                ConnRef {
                    real: c.real,
                    template,
                },
                c.was_active,
                now,
            );
        }
        self.rt.expire(now);
    }

    /// Per-real (active, inactive) from the runtime must equal a recount of the table.
    fn check_counts(&self) {
        let mut recount: HashMap<u32, (u32, u32)> = HashMap::new();
        for v in self.table.iter() {
            let e = recount.entry(v.real.0).or_default();
            if v.state.is_active() {
                e.0 += 1
            } else {
                e.1 += 1
            }
        }
        for r in self.rt.reals() {
            let want = recount.get(&r.id.0).copied().unwrap_or_default();
            assert_eq!((r.active, r.inactive), want, "counts of {}", r.server.addr);
        }
    }
}

fn key(client: &str) -> ConnKey {
    ConnKey {
        protocol: Protocol::Tcp,
        client: client.parse().unwrap(),
        vaddr: "10.0.0.100:80".parse().unwrap(),
    }
}

fn real(n: u8) -> RealServer {
    RealServer::new(
        format!("10.0.1.{n}:80").parse().unwrap(),
        ForwardMethod::Dr,
        1,
    )
}

#[test]
fn counts_and_templates_follow_the_table() {
    let mut d = Director::new(&[real(1), real(2), real(3)]);
    let s = Timestamp::from_secs;
    // 30 clients in 3 subnets, each opening 2 connections; DR: input-only.
    for i in 0..30u32 {
        for c in 0..2 {
            let k = key(&format!("192.0.{}.{}:{}", i % 3, i, 1000 + c));
            d.client_packet(k, 0x02, s(0)); // SYN
        }
    }
    d.check_counts();
    assert_eq!(d.rt.template_count(), 3, "one template per /24");
    // Every connection of a subnet went to one real.
    let mut by_subnet: HashMap<u8, u32> = HashMap::new();
    for v in d.table.iter() {
        let IpAddr::V4(ip) = v.key.client.ip() else {
            unreachable!()
        };
        let r = *by_subnet.entry(ip.octets()[2]).or_insert(v.real.0);
        assert_eq!(r, v.real.0);
    }
    // Half of them complete the handshake.
    for i in (0..30u32).step_by(2) {
        d.client_packet(key(&format!("192.0.{}.{}:1000", i % 3, i)), 0x10, s(1));
    }
    d.check_counts();
    let active: u32 = d.rt.reals().map(|r| r.active).sum();
    assert_eq!(active, 15);
    // SYN_RECV lives 60 s: at 61 s only the established ones remain.
    d.tick(s(61));
    d.check_counts();
    assert_eq!(d.table.len(), 15);
    assert_eq!(
        d.rt.template_count(),
        3,
        "templates live while connections do"
    );
    // Established ones expire after 900 s; templates 60 s after that.
    d.tick(s(901));
    d.check_counts();
    assert!(d.table.is_empty());
    assert_eq!(d.rt.template_count(), 3);
    d.tick(s(961));
    assert_eq!(d.rt.template_count(), 0);
    assert!(
        d.rt.reals()
            .all(|r| r.active + r.inactive + r.persistent == 0)
    );
}

#[test]
fn removed_real_keeps_its_connections_until_they_expire() {
    let mut d = Director::new(&[real(1), real(2)]);
    let s = Timestamp::from_secs;
    d.client_packet(key("192.0.2.1:1"), 0x02, s(0));
    d.client_packet(key("192.0.2.1:1"), 0x10, s(0));
    let id = d.table.get(&key("192.0.2.1:1")).unwrap().real;
    let addr = d.rt.real_info(id).unwrap().server.addr;
    let keep: Vec<_> = [real(1), real(2)]
        .into_iter()
        .filter(|r| r.addr != addr)
        .collect();
    d.rt.set_reals(&keep).unwrap();
    assert!(d.rt.real_info(id).unwrap().removed);
    // The same client now goes to the remaining real (its template's real is gone).
    d.client_packet(key("192.0.2.1:2"), 0x02, s(1));
    assert_ne!(d.table.get(&key("192.0.2.1:2")).unwrap().real, id);
    d.check_counts();
    d.tick(s(1000));
    assert!(
        d.rt.real_info(id).is_none(),
        "tombstone freed after its last connection"
    );
}
