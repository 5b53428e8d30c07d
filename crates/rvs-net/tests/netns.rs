//! rvs-net against a real kernel, inside a private network namespace of the test thread
//! (unshare(CLONE_NEWNET)), so the host is never touched. Needs root; skips otherwise.

use rvs_net::realserver::{Method, RealServerSetup, setup, teardown};
use rvs_net::{Netlink, sysctl};
use std::net::IpAddr;
use std::time::Duration;

fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare only changes this thread's network namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        f()
    })
    .join()
    .unwrap()
}

#[test]
fn netlink_and_realserver_in_a_namespace() {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root for a network namespace");
        return;
    }
    let dir = std::env::temp_dir().join(format!("rvs-net-test-{}", std::process::id()));
    // SAFETY: the only test in this binary; set before any thread reads it.
    unsafe { std::env::set_var("RVS_RUN_DIR", &dir) };
    in_new_netns(|| {
        let nl = Netlink::new().unwrap();
        let lo = nl.link("lo").unwrap();
        assert_eq!(lo.mtu, 65536);
        assert!(matches!(
            nl.link("nope0"),
            Err(rvs_net::NetError::NoSuchLink(_))
        ));

        let vip: IpAddr = "10.0.0.3".parse().unwrap();
        let vip6: IpAddr = "fd00::3".parse().unwrap();
        let cfg = RealServerSetup {
            vips: vec![vip, vip6],
            method: Method::Tun,
            interface: Some("lo".into()),
        };
        let before = sysctl::get("net.ipv4.conf.all.arp_ignore").unwrap();
        let report = setup(&cfg).unwrap();
        assert!(
            report.lines.iter().any(|l| l.contains("10.0.0.3/32")),
            "{report:?}"
        );
        let addrs = nl.addresses(lo.index).unwrap();
        assert!(
            addrs.contains(&(vip, 32)) && addrs.contains(&(vip6, 128)),
            "{addrs:?}"
        );
        assert_eq!(sysctl::get("net.ipv4.conf.all.arp_ignore").unwrap(), "1");
        assert_eq!(sysctl::get("net.ipv4.conf.lo.arp_announce").unwrap(), "2");
        assert_eq!(sysctl::get("net.ipv4.conf.all.rp_filter").unwrap(), "0");
        setup(&cfg).unwrap(); // idempotent

        // Neighbour table: a permanent entry is found through netlink.
        let st = std::process::Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(st.success());
        // Loopback has no neighbours; the lookup must answer None, not fail.
        assert_eq!(
            nl.neighbour(lo.index, "10.9.9.9".parse().unwrap()).unwrap(),
            None
        );
        assert!(
            nl.resolve("10.9.9.9".parse().unwrap(), Duration::from_millis(50))
                .is_err()
        );

        teardown(&cfg).unwrap();
        let addrs = nl.addresses(lo.index).unwrap();
        assert!(
            !addrs.iter().any(|(ip, _)| *ip == vip || *ip == vip6),
            "{addrs:?}"
        );
        assert_eq!(sysctl::get("net.ipv4.conf.all.arp_ignore").unwrap(), before);
    });
    let _ = std::fs::remove_dir_all(dir);
}
