//! The end-to-end lab of the DR/TUN tests (`e2e.rs`, `e2e_icmp.rs`): rvs-testbed's L2 segment
//! (client, director, three nginx reals whose bodies name them, `real0`..`real2`, on one
//! bridge), the VIP on the director, each real prepared with `rvs_xdp::realserver::setup` from
//! a thread inside its namespace (and torn down on drop).

#![allow(dead_code)]

use rvs_net::realserver::{Method, RealServerSetup};
use rvs_testbed::{Kind, Netns, Nginx, NginxOptions, Topology};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// Run `f` on a thread inside namespace `ns`.
pub fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    ns.in_thread(f)
}

/// The topology, its nginx reals and the pass program on the director's switch port.
pub struct Lab {
    pub topo: Topology,
    _nginx: Vec<Nginx>,
    _peer_prog: rvs_xdp::decap::Decap,
    pub vip: IpAddr,
    method: Method,
}

/// Build the lab for DR or TUN reals (`method`), with an IPv4 or IPv6 (`v6`) VIP.
pub fn lab(method: Method, v6: bool) -> Lab {
    lab_with(method, v6, false)
}

/// [`lab`], with nginx's deferred accept on the reals if `deferred_accept`
/// (`NginxOptions::deferred_accept`).
pub fn lab_with(method: Method, v6: bool, deferred_accept: bool) -> Lab {
    let topo = Topology::build(Kind::L2Segment, 3).expect("topology");
    // XDP_TX out of the director's veth is dropped unless its peer has NAPI. `gro on` at the
    // peer did not enable it on this kernel (6.18; measured: frames never arrive), an XDP
    // program on the peer does: attach the decap program (an empty VIP list passes everything).
    let mut peer_prog = in_ns(&topo.switch, || {
        let mut d = rvs_xdp::decap::Decap::load().expect("load pass program");
        d.attach("dir").expect("attach to the director's peer");
        d
    });
    let _ = &mut peer_prog;
    // veth leaves TCP/UDP checksums to "hardware" (CHECKSUM_PARTIAL); once XDP turns the skb
    // into a frame that state is lost and the real drops the segment. A real NIC computes it:
    // make the client's veth do so too.
    topo.client
        .ns
        .run("ethtool", &["-K", "eth0", "tx", "off"])
        .expect("tx checksum off");
    // The director answers ARP for a VIP on lo, but IPv6 neighbour discovery only for
    // addresses on the receiving interface.
    let (vip, vip_cidr, vip_dev) = if v6 {
        (IpAddr::V6(topo.vip6), format!("{}/128", topo.vip6), "eth0")
    } else {
        (IpAddr::V4(topo.vip4), format!("{}/32", topo.vip4), "lo")
    };
    topo.director
        .ns
        .ip(&["addr", "add", &vip_cidr, "dev", vip_dev])
        .unwrap();
    let listen: SocketAddr = if v6 {
        "[::]:80".parse().unwrap()
    } else {
        "0.0.0.0:80".parse().unwrap()
    };
    let mut nginx = Vec::new();
    for (i, r) in topo.reals.iter().enumerate() {
        let cfg = RealServerSetup {
            vips: vec![vip],
            method,
            interface: Some(r.dev.clone()),
        };
        let report = in_ns(&r.ns, || rvs_xdp::realserver::setup(&cfg)).expect("realserver setup");
        println!("real{i}: {}", report.lines.join("; "));
        let mut o = NginxOptions::new(listen, &format!("real{i}"));
        o.deferred_accept = deferred_accept;
        nginx.push(Nginx::start_with(Some(&r.ns), &o).unwrap());
    }
    Lab {
        topo,
        _nginx: nginx,
        _peer_prog: peer_prog,
        vip,
        method,
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for r in &self.topo.reals {
            let cfg = RealServerSetup {
                vips: vec![self.vip],
                method: self.method,
                interface: Some(r.dev.clone()),
            };
            let _ = in_ns(&r.ns, || rvs_xdp::realserver::teardown(&cfg));
        }
    }
}

/// `n` sequential curls from the client; body → count ("FAIL" for failures).
pub fn curls(lab: &Lab, n: usize) -> BTreeMap<String, usize> {
    let url = format!("http://{}/", SocketAddr::new(lab.vip, 80));
    rvs_testbed::clients::curl_counts(&lab.topo.client.ns, &url, n).expect("curl loop")
}
