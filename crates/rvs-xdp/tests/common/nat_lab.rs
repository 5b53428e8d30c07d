//! The lab of the NAT/FULLNAT end-to-end tests (`e2e_nat.rs`, `keep_flows.rs`): rvs-testbed's
//! two-arm topology (NAT) or FULLNAT topology with three nginx reals on port 8080 (bodies
//! `real0`..`real2`), the VIP on the director (on `lo` for IPv4, on the client-side `eth0` for
//! IPv6: neighbour discovery answers only for addresses on the receiving interface), FULLNAT's
//! local addresses on `eth1`, and pass programs on the veth peers the director transmits to.

#![allow(dead_code)]

use rvs_testbed::{Kind, Netns, Nginx, NginxOptions, Topology};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 20, 2, 100);
pub const LOCAL6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x20, 2, 0, 0, 0, 0, 0x100);

pub struct Lab {
    pub topo: Topology,
    pub vip: IpAddr,
    pub nginx: Vec<Nginx>,
    _peers: Vec<rvs_xdp::decap::Decap>,
}

/// A pass-everything XDP program on `dev` in `ns`: redirected / XDP_TX frames out of a veth
/// are dropped unless its peer has NAPI, which an XDP program there provides.
fn peer_prog(ns: &Netns, dev: &str) -> rvs_xdp::decap::Decap {
    ns.in_thread(|| {
        let mut d = rvs_xdp::decap::Decap::load().expect("load pass program");
        d.attach(dev).expect("attach to a peer");
        d
    })
}

/// Build the lab of `kind` (two-arm NAT or FULLNAT) with an IPv4 or IPv6 (`v6`) VIP.
pub fn lab(kind: Kind, v6: bool) -> Lab {
    lab_with(kind, v6, false)
}

/// [`lab`], with nginx's deferred accept on the reals if `deferred_accept`
/// (`NginxOptions::deferred_accept`).
pub fn lab_with(kind: Kind, v6: bool, deferred_accept: bool) -> Lab {
    let topo = Topology::build(kind, 3).expect("topology");
    let peers = vec![
        peer_prog(&topo.switch, "dir"),
        peer_prog(&topo.client.ns, "eth0"),
    ];
    // veth leaves checksums to "hardware"; frames that went through XDP lose that state.
    topo.client
        .ns
        .run("ethtool", &["-K", "eth0", "tx", "off"])
        .unwrap();
    for r in &topo.reals {
        r.ns.run("ethtool", &["-K", "eth0", "tx", "off"]).unwrap();
    }
    let d = &topo.director.ns;
    // IPv6 neighbour discovery answers only for addresses on the receiving interface.
    let vip = if v6 {
        let cidr = format!("{}/128", topo.vip6);
        d.ip(&["addr", "add", &cidr, "dev", "eth0", "nodad"])
            .unwrap();
        IpAddr::V6(topo.vip6)
    } else {
        d.ip(&["addr", "add", &format!("{}/32", topo.vip4), "dev", "lo"])
            .unwrap();
        IpAddr::V4(topo.vip4)
    };
    if kind == Kind::FullNat {
        d.ip(&["addr", "add", &format!("{LOCAL}/24"), "dev", "eth1"])
            .unwrap();
        d.ip(&[
            "addr",
            "add",
            &format!("{LOCAL6}/64"),
            "dev",
            "eth1",
            "nodad",
        ])
        .unwrap();
    }
    let listen: SocketAddr = if v6 { "[::]:8080" } else { "0.0.0.0:8080" }
        .parse()
        .unwrap();
    let nginx = (0..topo.reals.len())
        .map(|i| {
            let mut o = NginxOptions::new(listen, &format!("real{i}"));
            o.deferred_accept = deferred_accept;
            Nginx::start_with(Some(&topo.reals[i].ns), &o).unwrap()
        })
        .collect();
    Lab {
        topo,
        vip,
        nginx,
        _peers: peers,
    }
}
