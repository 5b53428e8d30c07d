//! `rvs_xdp::realserver` (what `rvsadm realserver` runs) on a real without a default route: a
//! TUN teardown that cannot tell the receiving interface fails before it undoes anything
//! (before, it removed the VIP and restored the sysctls, then failed, leaving the
//! decapsulation program attached); given the interface, TUN setup and teardown work, and a
//! second teardown is harmless. In a namespace of its own. Root only.

use rvs_net::Netlink;
use rvs_net::realserver::{Method, RealServerSetup};
use rvs_testbed::Netns;
use std::net::IpAddr;

#[test]
fn tun_teardown_without_an_interface_changes_nothing() {
    if !rvs_testbed::skip_unless_root("tun_teardown_without_an_interface_changes_nothing") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("rvs-xdp-rs-edges-{}", std::process::id()));
    // SAFETY: the only test in this binary; set before any thread reads it.
    unsafe { std::env::set_var("RVS_RUN_DIR", &dir) };
    let (real, peer) = (Netns::new("rste").unwrap(), Netns::new("rstp").unwrap());
    real.veth("eth0", &peer, "eth0").unwrap();
    real.add_addr("eth0", "10.77.0.2/24").unwrap();
    let vip: IpAddr = "10.77.0.100".parse().unwrap();
    let cfg = |interface: Option<&str>| RealServerSetup {
        vips: vec![vip],
        method: Method::Tun,
        interface: interface.map(String::from),
    };
    real.in_thread(|| {
        let nl = Netlink::new().unwrap();
        let lo = nl.link("lo").unwrap();
        let report = rvs_xdp::realserver::setup(&cfg(Some("eth0"))).expect("TUN setup");
        assert!(
            report.lines.iter().any(|l| l.contains("decapsulation")),
            "{report:?}"
        );
        let err = rvs_xdp::realserver::teardown(&cfg(None)).expect_err("no interface");
        assert!(err.to_string().contains("--interface"), "{err}");
        assert!(
            nl.addresses(lo.index).unwrap().contains(&(vip, 32)),
            "the VIP stays when the teardown is refused"
        );
        assert_eq!(
            rvs_net::sysctl::get("net.ipv4.conf.all.rp_filter").unwrap(),
            "0"
        );
        let report = rvs_xdp::realserver::teardown(&cfg(Some("eth0"))).expect("teardown");
        assert!(
            report
                .lines
                .contains(&"removed 10.77.0.100 from lo".to_string())
                && report
                    .lines
                    .iter()
                    .any(|l| l.contains("detached from eth0")),
            "{report:?}"
        );
        let report = rvs_xdp::realserver::teardown(&cfg(Some("eth0"))).expect("again");
        assert_eq!(report.lines, vec!["10.77.0.100 was not on lo".to_string()]);
    });
    let link = real.ip(&["link", "show", "eth0"]).unwrap();
    assert!(!link.contains("xdp"), "decap detached: {link}");
    let _ = std::fs::remove_dir_all(dir);
}
