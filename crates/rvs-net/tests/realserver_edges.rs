//! `realserver::setup` / `teardown` where an operator meets their edges, in a private network
//! namespace of the test thread (no default route, only `lo`): a DR real needs no default
//! route (only TUN's rp_filter names the receiving interface; before, DR setup failed with
//! "no route to 8.8.8.8"); TUN without one says to name the interface and changes nothing;
//! a teardown of a VIP that was never set up says so instead of reporting it removed; a
//! second teardown likewise. Needs root; skips otherwise.

use rvs_net::realserver::{Method, RealServerSetup, setup, teardown};
use rvs_net::{Netlink, sysctl};
use std::net::IpAddr;

fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare only changes this thread's network namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

#[test]
fn setup_and_teardown_edges_without_a_default_route() {
    if !rvs_testbed::skip_unless_root("setup_and_teardown_edges_without_a_default_route") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("rvs-net-edges-{}", std::process::id()));
    // SAFETY: the only test in this binary; set before any thread reads it.
    unsafe { std::env::set_var("RVS_RUN_DIR", &dir) };
    in_new_netns(|| {
        let nl = Netlink::new().unwrap();
        let lo = nl.link("lo").unwrap();
        let vip: IpAddr = "10.0.0.3".parse().unwrap();
        let cfg = |method| RealServerSetup {
            vips: vec![vip],
            method,
            interface: None,
        };

        // TUN must name the interface: refused before anything changes.
        let before = sysctl::get("net.ipv4.conf.all.arp_ignore").unwrap();
        let err = setup(&cfg(Method::Tun)).expect_err("TUN without a default route");
        let msg = err.to_string();
        assert!(
            msg.contains("--interface") && !msg.contains("8.8.8.8") && !msg.contains("  "),
            "{msg}"
        );
        assert_eq!(sysctl::get("net.ipv4.conf.all.arp_ignore").unwrap(), before);
        assert!(!nl.addresses(lo.index).unwrap().contains(&(vip, 32)));

        // DR needs no interface at all.
        let report = setup(&cfg(Method::Dr)).expect("DR setup without a default route");
        assert!(
            report.lines.iter().any(|l| l.contains("10.0.0.3/32")),
            "{report:?}"
        );
        assert!(nl.addresses(lo.index).unwrap().contains(&(vip, 32)));
        assert_eq!(sysctl::get("net.ipv4.conf.all.arp_ignore").unwrap(), "1");

        // A VIP that was never set up: said so, nothing restored while 10.0.0.3 stays.
        let other = RealServerSetup {
            vips: vec!["10.0.0.4".parse().unwrap()],
            ..cfg(Method::Dr)
        };
        let report = teardown(&other).unwrap();
        assert_eq!(report.lines, vec!["10.0.0.4 was not on lo".to_string()]);
        assert_eq!(sysctl::get("net.ipv4.conf.all.arp_ignore").unwrap(), "1");

        // The real teardown, then the same again.
        let report = teardown(&cfg(Method::Dr)).unwrap();
        assert!(
            report
                .lines
                .contains(&"removed 10.0.0.3 from lo".to_string()),
            "{report:?}"
        );
        assert_eq!(sysctl::get("net.ipv4.conf.all.arp_ignore").unwrap(), before);
        let report = teardown(&cfg(Method::Dr)).unwrap();
        assert_eq!(report.lines, vec!["10.0.0.3 was not on lo".to_string()]);
    });
    let _ = std::fs::remove_dir_all(dir);
}
