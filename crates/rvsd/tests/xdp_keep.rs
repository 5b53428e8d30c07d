//! `[daemon] xdp_keep_on_exit = true` (here turned on by a reload): an rvsd restart keeps the
//! xdp engine's FULLNAT flows.
//! In rvs-testbed's FULLNAT topology (the reals have no route to the client) with two nginx
//! reals, a client holds one HTTP keep-alive connection through the VIP; rvsd exits (SIGTERM)
//! keeping the program attached; the connection answers from the same real while no rvsd runs,
//! and after a new rvsd (configured with the reals in the other order and that real drained,
//! so nothing but the adopted entry leads there) has adopted the flows; new connections work;
//! that rvsd, without the key, exits leaving no program and no pins. rvsd runs under
//! `nsenter --net` (`ip netns exec` would remount /sys and hide the host's bpffs). Root only.
#![cfg(feature = "xdp")]

mod common;

use common::*;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

const LOCAL: &str = "10.20.2.100";

/// The TOML: the reals in order (`drained`: that one with weight 0).
fn config(vip: Ipv4Addr, reals: &[SocketAddr], keep: bool, drained: Option<SocketAddr>) -> String {
    let mut c = format!(
        "[daemon]\nxdp_interfaces = [\"eth0\", \"eth1\"]\nfullnat_local = [\"{LOCAL}\"]\n\
         xdp_keep_on_exit = {keep}\n\n[[service]]\naddress = \"{vip}:80\"\n"
    );
    for r in reals {
        let weight = if drained == Some(*r) { 0 } else { 1 };
        c += &format!(
            "[[service.real]]\naddress = \"{r}\"\nmethod = \"fullnat\"\nweight = {weight}\n"
        );
    }
    c
}

#[test]
fn rvsd_restart_keeps_fullnat_flows() {
    if !rvs_testbed::skip_unless_root("rvsd_restart_keeps_fullnat_flows") {
        return;
    }
    let topo = xdp_fullnat_topology(2);
    let d = &topo.director.ns;
    let client = &topo.client.ns;
    let vip = topo.vip4;
    d.ip(&["addr", "add", &format!("{LOCAL}/24"), "dev", "eth1"])
        .unwrap();
    let (reals, _nginx) = nginx_reals(&topo);
    let root = d.in_thread(|| {
        let ino = std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
        PathBuf::from(format!("/sys/fs/bpf/rvs/xdp/{ino}"))
    });

    // Started without the key; a reload turns it on for the next exit (the moment an operator
    // wants it: before the restart it prepares).
    let mut rvsd = Rvsd::start_net_only(d, &config(vip, &reals, false, None), &[]);
    std::fs::write(rvsd.config_path(), config(vip, &reals, true, None)).unwrap();
    rvsd.signal("HUP");
    rvsd.wait_log("xdp_keep_on_exit applies to the next exit", 1);
    assert!(
        !rvsd.log().contains("take effect when rvsd restarts"),
        "{}",
        rvsd.log()
    );
    let to = SocketAddr::new(vip.into(), 80);
    let mut held = client.in_thread(|| {
        let s = TcpStream::connect_timeout(&to, Duration::from_secs(3)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s
    });
    let real = rvs_testbed::http_keepalive_get(&mut held)
        .unwrap_or_else(|e| panic!("first request: {e}\n{}", rvsd.log()));
    rvsd.signal("TERM");
    assert!(rvsd.wait_exit().success(), "{}", rvsd.log());
    assert!(rvsd.log().contains("left attached"), "{}", rvsd.log());
    assert!(topo.director.ns.has_xdp("eth0") && topo.director.ns.has_xdp("eth1"));
    for _ in 0..3 {
        assert_eq!(
            rvs_testbed::http_keepalive_get(&mut held).expect("request while no rvsd runs"),
            real
        );
    }

    let index: usize = real["real".len()..].parse().expect("real's name");
    let reversed: Vec<SocketAddr> = reals.iter().rev().copied().collect();
    let mut rvsd = Rvsd::start_net_only(d, &config(vip, &reversed, false, Some(reals[index])), &[]);
    rvsd.wait_log("adopted the kept state", 1);
    for _ in 0..3 {
        let got = rvs_testbed::http_keepalive_get(&mut held)
            .unwrap_or_else(|e| panic!("request after adoption: {e}\n{}", rvsd.log()));
        assert_eq!(got, real);
    }
    assert!(
        std::fs::read_dir(&root).map_or(0, |d| d.count()) == 0,
        "pins left after adoption"
    );
    let url = format!("http://{vip}/");
    let counts = rvs_testbed::clients::curl_counts(client, &url, 10).expect("curls");
    assert_eq!(counts.get("FAIL"), None, "{counts:?}\n{}", rvsd.log());
    // only the other real takes new flows
    assert_eq!(counts.get(&real), None, "{counts:?}");
    drop(held);
    rvsd.signal("TERM");
    assert!(rvsd.wait_exit().success(), "{}", rvsd.log());
    assert!(!topo.director.ns.has_xdp("eth0") && !topo.director.ns.has_xdp("eth1"));
    assert!(
        std::fs::read_dir(&root).map_or(0, |d| d.count()) == 0,
        "pins after an exit without xdp_keep_on_exit"
    );
    assert!(!root.exists(), "{} left behind", root.display());
    assert!(!rvsd.log().contains("panicked"), "{}", rvsd.log());
    assert_eq!(
        rvsd.log().matches("xdp: adopted").count(),
        1,
        "adoption logged once: {}",
        rvsd.log()
    );
}
