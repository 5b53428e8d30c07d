//! The three test-bed topologies, one per family of forwarding methods.
//!
//! Every host is a namespace of its own; bridges live in a separate "switch" namespace. The same
//! address plan is used by every test (namespaces are isolated, so parallel tests never clash):
//!
//! | kind | client | director | reals (i = 0..n) | suggested VIP |
//! | --- | --- | --- | --- | --- |
//! | [`Kind::L2Segment`] (DR, TUN) | 10.10.0.2, fd00:10::2 | 10.10.0.3, fd00:10::3 | 10.10.0.(11+i), fd00:10::(11+i) | 10.10.0.100, fd00:10::100 |
//! | [`Kind::TwoArm`] (NAT) | 10.20.1.2, fd00:20:1::2 | 10.20.1.1 / 10.20.2.1 (+ v6 ::1) | 10.20.2.(11+i), fd00:20:2::(11+i) | 10.20.1.100, fd00:20:1::100 |
//! | [`Kind::FullNat`] | as TwoArm | as TwoArm | as TwoArm | as TwoArm |
//!
//! * L2 segment: client, director and reals on one bridge (/24, /64); no routes needed.
//! * Two-arm: client ↔ director by a veth pair (client net), director ↔ reals by a bridge (real
//!   net); the director forwards (IPv4 and IPv6); the client's and the reals' default routes
//!   point at the director — what NAT needs.
//! * FULLNAT: the same wiring, but the reals have no route beyond their own subnet: replies can
//!   only return because the director rewrote the source.
//!
//! The VIP is not configured anywhere: the engine under test (or the test) does that.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{Result, TestbedError};
use crate::netns::Netns;

/// Which topology to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One L2 segment: client, director, reals on one bridge (DR, TUN).
    L2Segment,
    /// Director with a client arm and a real arm; reals route via the director (NAT).
    TwoArm,
    /// Two arms; reals have no route back to the client (FULLNAT).
    FullNat,
}

/// A host: a namespace with one interface.
#[derive(Debug)]
pub struct Host {
    /// Its namespace.
    pub ns: Netns,
    /// Its interface (`eth0`).
    pub dev: String,
    /// IPv4 address on `dev`.
    pub ip4: Ipv4Addr,
    /// IPv6 address on `dev`.
    pub ip6: Ipv6Addr,
}

impl Host {
    /// Its IPv6 address if `v6`, else its IPv4 address.
    pub fn ip(&self, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(self.ip6)
        } else {
            IpAddr::V4(self.ip4)
        }
    }
}

/// The director: one interface on an L2 segment (then `client_*` and `real_*` are the same), or
/// two arms.
#[derive(Debug)]
pub struct Director {
    /// Its namespace.
    pub ns: Netns,
    /// Interface facing the client.
    pub client_dev: String,
    /// IPv4 address facing the client.
    pub client_ip4: Ipv4Addr,
    /// IPv6 address facing the client.
    pub client_ip6: Ipv6Addr,
    /// Interface facing the reals.
    pub real_dev: String,
    /// IPv4 address facing the reals.
    pub real_ip4: Ipv4Addr,
    /// IPv6 address facing the reals.
    pub real_ip6: Ipv6Addr,
}

/// A built topology; dropping it removes every namespace, link and process in it.
#[derive(Debug)]
pub struct Topology {
    /// Which kind it is.
    pub kind: Kind,
    /// The client host.
    pub client: Host,
    /// The director.
    pub director: Director,
    /// The real servers.
    pub reals: Vec<Host>,
    /// Suggested IPv4 VIP (not configured).
    pub vip4: Ipv4Addr,
    /// Suggested IPv6 VIP (not configured).
    pub vip6: Ipv6Addr,
    /// The namespace holding the bridge.
    pub switch: Netns,
}

/// Most reals a topology accepts.
pub const MAX_REALS: usize = 100;

impl Topology {
    /// Builds a topology of `kind` with `reals` real servers (1..=[`MAX_REALS`]).
    pub fn build(kind: Kind, reals: usize) -> Result<Topology> {
        if reals == 0 || reals > MAX_REALS {
            return Err(TestbedError::Invalid(format!(
                "{reals} reals (1..={MAX_REALS})"
            )));
        }
        match kind {
            Kind::L2Segment => build_l2(reals),
            Kind::TwoArm | Kind::FullNat => build_two_arm(kind, reals),
        }
    }

    /// Every namespace of the topology (client, director, reals, switch).
    pub fn namespaces(&self) -> Vec<&Netns> {
        let mut v = vec![&self.client.ns, &self.director.ns];
        v.extend(self.reals.iter().map(|r| &r.ns));
        v.push(&self.switch);
        v
    }
}

/// Creates host namespace `role` with `eth0` plugged into bridge `br0` of `switch`.
fn plug_host(switch: &Netns, role: &str, ip4: Ipv4Addr, p4: u8, ip6: Ipv6Addr) -> Result<Host> {
    let ns = Netns::new(role)?;
    ns.veth("eth0", switch, role)?;
    switch.attach(role, "br0")?;
    ns.add_addr("eth0", &format!("{ip4}/{p4}"))?;
    ns.add_addr("eth0", &format!("{ip6}/64"))?;
    Ok(Host {
        ns,
        dev: "eth0".into(),
        ip4,
        ip6,
    })
}

fn real_role(i: usize) -> String {
    format!("real{i}")
}

fn build_l2(n: usize) -> Result<Topology> {
    let switch = Netns::new("sw")?;
    switch.bridge("br0")?;
    let v4 = |h: u8| Ipv4Addr::new(10, 10, 0, h);
    let v6 = |h: u16| Ipv6Addr::new(0xfd00, 0x10, 0, 0, 0, 0, 0, h);
    let client = plug_host(&switch, "client", v4(2), 24, v6(2))?;
    let dir = plug_host(&switch, "dir", v4(3), 24, v6(3))?;
    let mut reals = Vec::with_capacity(n);
    for i in 0..n {
        let h = 11 + i as u8;
        reals.push(plug_host(
            &switch,
            &real_role(i),
            v4(h),
            24,
            v6(u16::from(h)),
        )?);
    }
    let director = Director {
        ns: dir.ns,
        client_dev: dir.dev.clone(),
        client_ip4: dir.ip4,
        client_ip6: dir.ip6,
        real_dev: dir.dev,
        real_ip4: dir.ip4,
        real_ip6: dir.ip6,
    };
    Ok(Topology {
        kind: Kind::L2Segment,
        client,
        director,
        reals,
        vip4: v4(100),
        vip6: v6(0x100),
        switch,
    })
}

fn build_two_arm(kind: Kind, n: usize) -> Result<Topology> {
    let cnet4 = |h: u8| Ipv4Addr::new(10, 20, 1, h);
    let rnet4 = |h: u8| Ipv4Addr::new(10, 20, 2, h);
    let cnet6 = |h: u16| Ipv6Addr::new(0xfd00, 0x20, 1, 0, 0, 0, 0, h);
    let rnet6 = |h: u16| Ipv6Addr::new(0xfd00, 0x20, 2, 0, 0, 0, 0, h);

    let switch = Netns::new("sw")?;
    switch.bridge("br0")?;
    let dns = Netns::new("dir")?;

    // Client arm: a direct veth pair.
    let cns = Netns::new("client")?;
    cns.veth("eth0", &dns, "eth0")?;
    cns.add_addr("eth0", &format!("{}/24", cnet4(2)))?;
    cns.add_addr("eth0", &format!("{}/64", cnet6(2)))?;
    dns.add_addr("eth0", &format!("{}/24", cnet4(1)))?;
    dns.add_addr("eth0", &format!("{}/64", cnet6(1)))?;
    cns.add_route("default", &cnet4(1).to_string())?;
    cns.add_route("default", &cnet6(1).to_string())?;
    let client = Host {
        ns: cns,
        dev: "eth0".into(),
        ip4: cnet4(2),
        ip6: cnet6(2),
    };

    // Real arm: the director's eth1 on the bridge.
    dns.veth("eth1", &switch, "dir")?;
    switch.attach("dir", "br0")?;
    dns.add_addr("eth1", &format!("{}/24", rnet4(1)))?;
    dns.add_addr("eth1", &format!("{}/64", rnet6(1)))?;

    // After the interfaces exist: `all.forwarding` is copied to the interfaces present now.
    dns.sysctl("net.ipv4.ip_forward", "1")?;
    dns.sysctl("net.ipv6.conf.all.forwarding", "1")?;

    let mut reals = Vec::with_capacity(n);
    for i in 0..n {
        let h = 11 + i as u8;
        let real = plug_host(&switch, &real_role(i), rnet4(h), 24, rnet6(u16::from(h)))?;
        if kind == Kind::TwoArm {
            real.ns.add_route("default", &rnet4(1).to_string())?;
            real.ns.add_route("default", &rnet6(1).to_string())?;
        }
        reals.push(real);
    }
    let director = Director {
        ns: dns,
        client_dev: "eth0".into(),
        client_ip4: cnet4(1),
        client_ip6: cnet6(1),
        real_dev: "eth1".into(),
        real_ip4: rnet4(1),
        real_ip6: rnet6(1),
    };
    Ok(Topology {
        kind,
        client,
        director,
        reals,
        vip4: cnet4(100),
        vip6: cnet6(0x100),
        switch,
    })
}
