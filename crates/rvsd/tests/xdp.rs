//! With root, rvsd runs the xdp engine on the interface it is given and places DR services on
//! it (in a network namespace the test creates and removes). Skips without root.

mod common;

use common::*;
use rvs_testbed::Netns;

#[test]
fn dr_service_is_served_by_the_xdp_engine_when_root() {
    if !rvs_testbed::is_root() {
        eprintln!("skipped: needs root (network namespace, XDP attach)");
        return;
    }
    let director = Netns::new("rvsd-dir").unwrap();
    let real = Netns::new("rvsd-real").unwrap();
    director.veth("eth0", &real, "eth0").unwrap();
    director.add_addr("eth0", "10.211.0.1/24").unwrap();
    real.add_addr("eth0", "10.211.0.7/24").unwrap();
    // GRO on the peer so XDP_TX out of the director's veth is not dropped (DESIGN.md).
    let _ = real.run("ethtool", &["-K", "eth0", "gro", "on"]);
    let port = free_port();
    let config = format!(
        "[[service]]\naddress = \"10.211.0.100:80\"\nscheduler = \"rr\"\n\
         [[service.real]]\naddress = \"10.211.0.7:80\"\nmethod = \"dr\"\n\
         [[service]]\naddress = \"127.0.0.1:{port}\"\n\
         [[service.real]]\naddress = \"127.0.0.1:9\"\nmethod = \"fullnat\"\n"
    );
    let mut d = Rvsd::start_in(&director, &config, &["--xdp-interface", "eth0"]);
    let health = d.get("/v1/health").json();
    assert_eq!(
        health["engines"],
        serde_json::json!(["xdp", "proxy"]),
        "{}",
        d.log()
    );
    let dr = d.get("/v1/services/tcp:10.211.0.100:80").json();
    assert_eq!(dr["engine"], "xdp", "{dr}\n{}", d.log());
    assert_eq!(dr["unsupported"], serde_json::Value::Null);
    let fullnat = d.get(&format!("/v1/services/tcp:127.0.0.1:{port}")).json();
    assert!(
        fullnat["engine"].is_string(),
        "FULLNAT is served by one of the engines: {fullnat}"
    );
    d.signal("TERM");
    assert!(d.wait_exit().success(), "{}", d.log());
    assert!(!d.log().contains("panicked"), "{}", d.log());
    let links = director.ip(&["link", "show", "eth0"]).unwrap();
    assert!(
        !links.contains("xdp"),
        "the program is detached on exit: {links}"
    );
}
