//! End-to-end DR and TUN through the XDP engine in network namespaces (rvs-testbed's L2
//! segment: client, director, three nginx reals with distinct bodies on one bridge). The engine
//! runs in this process, on a thread that has entered the director's namespace; each real is
//! prepared with `rvs_xdp::realserver::setup` from a thread inside its namespace. Root only.
//! Also: an ICMP "fragmentation needed" about a DR flow the director has no entry for reaches
//! the real that flow then gets.

mod common;

use rvs_core::desired::Change;
use rvs_core::engine::Engine;
use rvs_core::model::{ForwardMethod, RealServer, ServiceKey, ServiceOptions};
use rvs_net::realserver::{Method, RealServerSetup};
use rvs_testbed::{Kind, Netns, Nginx, Topology};
use rvs_xdp::{XdpConfig, XdpEngine};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Run `f` on a thread inside namespace `ns`.
fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    ns.in_thread(f)
}

struct Lab {
    topo: Topology,
    _nginx: Vec<Nginx>,
    _peer_prog: rvs_xdp::decap::Decap,
    vip: IpAddr,
    method: Method,
}

fn lab(method: Method, v6: bool) -> Lab {
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
        nginx.push(Nginx::start(Some(&r.ns), listen, &format!("real{i}")).unwrap());
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
fn curls(lab: &Lab, n: usize) -> BTreeMap<String, usize> {
    let url = format!("http://{}/", SocketAddr::new(lab.vip, 80));
    rvs_testbed::clients::curl_counts(&lab.topo.client.ns, &url, n).expect("curl loop")
}

fn run_method(method: Method, fwd: ForwardMethod, v6: bool, default_requests: usize) {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root for namespaces and XDP");
        return;
    }
    let lab = lab(method, v6);
    let weights = [1u32, 2, 3];
    let key = ServiceKey::tcp(SocketAddr::new(lab.vip, 80));
    in_ns(&lab.topo.director.ns, || {
        let mut engine = XdpEngine::start(XdpConfig {
            interfaces: vec!["eth0".into()],
            ..Default::default()
        })
        .expect("engine");
        println!("attached: {:?}", engine.attachments());
        let mut changes = vec![Change::AddService {
            key,
            options: ServiceOptions::default(),
        }];
        for (r, w) in lab.topo.reals.iter().zip(weights) {
            let ip = if v6 {
                IpAddr::V6(r.ip6)
            } else {
                IpAddr::V4(r.ip4)
            };
            let addr = SocketAddr::new(ip, 80);
            changes.push(Change::AddReal {
                service: key,
                real: RealServer::new(addr, fwd, w),
            });
        }
        engine.apply(&changes).expect("apply");
        let before = engine.stats();
        let n: usize = std::env::var("RVS_E2E_REQUESTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default_requests);
        let dumps: Vec<_> = if std::env::var("RVS_E2E_DEBUG").is_ok() {
            lab.topo
                .reals
                .iter()
                .map(|r| rvs_testbed::Tcpdump::start(Some(&r.ns), "eth0", "").unwrap())
                .chain(std::iter::once(
                    rvs_testbed::Tcpdump::start(Some(&lab.topo.client.ns), "eth0", "").unwrap(),
                ))
                .collect()
        } else {
            Vec::new()
        };
        let counts = curls(&lab, n);
        if std::env::var("RVS_E2E_DEBUG").is_ok() {
            println!(
                "{}",
                lab.topo
                    .director
                    .ns
                    .run("ethtool", &["-S", "eth0"])
                    .unwrap_or_default()
            );
            println!(
                "{}",
                lab.topo
                    .switch
                    .run("ethtool", &["-k", "dir"])
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains("receive-offload"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            println!(
                "{}",
                lab.topo
                    .director
                    .ns
                    .run("ip", &["neigh"])
                    .unwrap_or_default()
            );
            println!(
                "{}",
                lab.topo
                    .switch
                    .run("ethtool", &["-S", "dir"])
                    .unwrap_or_default()
            );
            println!(
                "{}",
                lab.topo
                    .switch
                    .run("ip", &["-s", "link", "show", "dir"])
                    .unwrap_or_default()
            );
            println!(
                "{}",
                lab.topo
                    .switch
                    .run("bridge", &["fdb", "show", "br", "br0"])
                    .unwrap_or_default()
            );
            let r0 = &lab.topo.reals[0].ns;
            println!(
                "{}",
                r0.run("ip", &["addr", "show", "lo"]).unwrap_or_default()
            );
            println!("{}", r0.run("ss", &["-ltn"]).unwrap_or_default());
            println!("{}", r0.run("sh", &["-c", "nstat -az | grep -v ' 0 ' ; sysctl net.ipv4.conf.all.rp_filter net.ipv4.conf.eth0.rp_filter net.ipv4.conf.all.arp_ignore"]).unwrap_or_default());
        }
        for d in dumps {
            println!("--- tcpdump\n{}", d.finish().unwrap_or_default());
        }
        println!("{method:?}: {counts:?}");
        let after = engine.stats();
        println!("outcomes: {:?}", after.outcomes);
        assert_eq!(counts.get("FAIL"), None, "failed requests: {counts:?}");
        let total: usize = counts.values().sum();
        assert_eq!(total, n);
        let wsum: u32 = weights.iter().sum();
        for (i, w) in weights.iter().enumerate() {
            let got = *counts.get(&format!("real{i}")).unwrap_or(&0) as f64 / n as f64;
            let want = f64::from(*w) / f64::from(wsum);
            assert!(
                (got - want).abs() <= 0.05,
                "real{i}: {got:.3} of requests, weight share {want:.3}"
            );
        }
        let d = |name: &str| after.outcomes[name] - before.outcomes.get(name).copied().unwrap_or(0);
        let svc = &after.services[&key];
        println!(
            "service counters: {:?}; forwarded +{}, not_vip +{}",
            svc.counters,
            d("forwarded"),
            d("not_vip")
        );
        assert!(svc.counters.conns >= n as u64, "{:?}", svc.counters);
        assert!(
            d("forwarded") >= 5 * n as u64,
            "each request is at least SYN, ACK, data, FIN, ACK"
        );
        // Replies (to the client, not a VIP: at least 4 segments per request) would show up as
        // not_vip if they reached us; only IPv6 router solicitations and MLD reports do.
        assert!(
            d("not_vip") < (n / 20) as u64,
            "replies passed through the director: not_vip +{}",
            d("not_vip")
        );
        assert_eq!(svc.counters.out_pkts, 0);
        // A real's MAC changes: the kernel's neighbour entry changes (here set by hand, as a
        // gratuitous ARP would), the engine hears it over netlink and rewrites the real; new
        // requests to that real keep working.
        let r0 = &lab.topo.reals[0];
        if v6 {
            engine.shutdown();
            return;
        }
        r0.ns
            .ip(&[
                "link",
                "set",
                "dev",
                &r0.dev,
                "address",
                "02:00:00:00:aa:01",
            ])
            .unwrap();
        lab.topo
            .director
            .ns
            .ip(&[
                "neigh",
                "replace",
                &r0.ip4.to_string(),
                "lladdr",
                "02:00:00:00:aa:01",
                "dev",
                "eth0",
            ])
            .unwrap();
        std::thread::sleep(std::time::Duration::from_secs(2));
        let after_change = curls(&lab, 60);
        println!("after real0's MAC changed: {after_change:?}");
        assert_eq!(after_change.get("FAIL"), None, "{after_change:?}");
        assert!(
            after_change.get("real0").copied().unwrap_or(0) > 0,
            "{after_change:?}"
        );
        let conns = engine.connections();
        assert!(
            conns.len() >= n / 2,
            "connection table has {} entries",
            conns.len()
        );
        engine.shutdown();
    });
    // Detached: the director's interface carries no XDP program any more.
    let link = lab.topo.director.ns.ip(&["link", "show", "eth0"]).unwrap();
    assert!(!link.contains("xdp"), "still attached: {link}");
}

#[test]
fn dr_1000_requests_by_weight() {
    run_method(Method::Dr, ForwardMethod::Dr, false, 1000);
}

#[test]
fn tun_1000_requests_by_weight() {
    run_method(Method::Tun, ForwardMethod::Tun, false, 1000);
}

#[test]
fn dr_ipv6_1000_requests_by_weight() {
    run_method(Method::Dr, ForwardMethod::Dr, true, 1000);
}

#[test]
fn tun_ipv6_1000_requests_by_weight() {
    run_method(Method::Tun, ForwardMethod::Tun, true, 1000);
}

/// `IcmpInDestUnreachs` of the namespace's kernel (/proc/net/snmp).
fn dest_unreachs(ns: &Netns) -> u64 {
    let snmp = ns
        .run("cat", &["/proc/net/snmp"])
        .expect("read /proc/net/snmp");
    let mut icmp = snmp.lines().filter(|l| l.starts_with("Icmp:"));
    let (names, values) = (icmp.next().unwrap(), icmp.next().unwrap());
    let i = names
        .split_whitespace()
        .position(|n| n == "InDestUnreachs")
        .expect("InDestUnreachs");
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

/// From inside `ns` (a raw ICMP socket: the kernel adds the IP header), send an ICMP
/// "fragmentation needed" (MTU 1400) to `vip` about the reply `vip`:80 -> `client`.
fn send_frag_needed(ns: &Netns, vip: Ipv4Addr, client: SocketAddr) {
    use common::frames::{self, ACK, Ip4, TCP};
    let IpAddr::V4(cip) = client.ip() else {
        panic!("v4 client")
    };
    let reply = Ip4::new(vip, cip, TCP).build(&frames::tcp(80, client.port(), ACK, &[0; 1400]));
    let msg = frames::icmp4(3, 4, [0, 0, 0x05, 0x78], &reply[..28]);
    let sent = in_ns(ns, || {
        // SAFETY: plain socket calls on a descriptor this block owns; `addr` and `msg` outlive
        // the calls that borrow them.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
            assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(vip.octets()),
                },
                sin_zero: [0; 8],
            };
            let n = libc::sendto(
                fd,
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            libc::close(fd);
            n
        }
    });
    assert_eq!(sent, msg.len() as isize, "sendto");
}

/// DR behind ECMP: a router's "fragmentation needed" about a real's reply (VIP:80 -> client)
/// reaches a director without an entry for the flow (here: sent before the flow's first
/// packet). It must reach the real the flow's connection then gets: exactly one real's kernel
/// counts an ICMP destination unreachable, and a request from that client port is answered by
/// that real.
#[test]
fn dr_frag_needed_without_entry_reaches_the_flows_real() {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root for namespaces and XDP");
        return;
    }
    let lab = lab(Method::Dr, false);
    let key = ServiceKey::tcp(SocketAddr::new(lab.vip, 80));
    let client = &lab.topo.client;
    let url = format!("http://{}/", SocketAddr::new(lab.vip, 80));
    in_ns(&lab.topo.director.ns, || {
        let mut engine = XdpEngine::start(XdpConfig {
            interfaces: vec!["eth0".into()],
            ..Default::default()
        })
        .expect("engine");
        let mut changes = vec![Change::AddService {
            key,
            options: ServiceOptions::default(),
        }];
        for r in &lab.topo.reals {
            let addr = SocketAddr::new(IpAddr::V4(r.ip4), 80);
            changes.push(Change::AddReal {
                service: key,
                real: RealServer::new(addr, ForwardMethod::Dr, 1),
            });
        }
        engine.apply(&changes).expect("apply");
        // Warm up ARP on every side so the counters below see only the test's packets.
        assert_eq!(curls(&lab, 6).get("FAIL"), None);
        let mut hit_reals = BTreeSet::new();
        for port in 42000..42006u16 {
            let outcome = |e: &XdpEngine| e.stats().outcomes.get("icmp_no_conn_maglev").copied();
            let (before, o0) = (
                lab.topo
                    .reals
                    .iter()
                    .map(|r| dest_unreachs(&r.ns))
                    .collect::<Vec<_>>(),
                outcome(&engine).unwrap_or(0),
            );
            let c = SocketAddr::new(IpAddr::V4(client.ip4), port);
            send_frag_needed(&client.ns, lab.topo.vip4, c);
            std::thread::sleep(std::time::Duration::from_millis(300));
            let hit: Vec<usize> = (0..before.len())
                .filter(|i| dest_unreachs(&lab.topo.reals[*i].ns) > before[*i])
                .collect();
            assert_eq!(
                hit.len(),
                1,
                "port {port}: reals that got the error: {hit:?}"
            );
            assert_eq!(
                outcome(&engine),
                Some(o0 + 1),
                "port {port}: icmp_no_conn_maglev"
            );
            let port_s = port.to_string();
            let body = client
                .ns
                .run(
                    "curl",
                    &["-s", "--max-time", "5", "--local-port", &port_s, &url],
                )
                .expect("curl");
            assert_eq!(body.trim(), format!("real{}", hit[0]), "port {port}");
            println!("port {port}: error and connection both on real{}", hit[0]);
            hit_reals.insert(hit[0]);
        }
        assert!(
            hit_reals.len() > 1,
            "every flow on one real, nothing proven"
        );
        engine.shutdown();
    });
}
