//! `rvsadm realserver setup|teardown` inside a network namespace the test creates (needs root;
//! skips otherwise): the VIP lands on `lo` as /32, the ARP sysctls are set, and teardown removes
//! the VIP and restores the sysctls.

use rvs_testbed::Netns;

#[test]
fn realserver_setup_and_teardown_in_a_namespace() {
    if !rvs_testbed::is_root() {
        eprintln!(
            "skipping realserver_setup_and_teardown_in_a_namespace: needs root for a network namespace"
        );
        return;
    }
    let ns = Netns::new("rvsadm-rs").expect("create namespace");
    let run_dir = std::env::temp_dir().join(format!("rvsadm-rs-{}", std::process::id()));
    let rvsadm = |action: &str| {
        let out = ns
            .command(env!("CARGO_BIN_EXE_rvsadm"))
            .env("RVS_RUN_DIR", &run_dir)
            .args([
                "realserver",
                action,
                "--vip",
                "10.0.0.3",
                "--method",
                "dr",
                "--interface",
                "lo",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "realserver {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let sysctl = |k: &str| ns.run("sysctl", &["-n", k]).unwrap().trim().to_string();
    let before = sysctl("net.ipv4.conf.all.arp_ignore");

    let report = rvsadm("setup");
    assert!(report.contains("address 10.0.0.3/32 on lo"), "{report}");
    assert!(
        ns.ip(&["addr", "show", "dev", "lo"])
            .unwrap()
            .contains("inet 10.0.0.3/32")
    );
    assert_eq!(sysctl("net.ipv4.conf.all.arp_ignore"), "1");
    assert_eq!(sysctl("net.ipv4.conf.all.arp_announce"), "2");

    rvsadm("teardown");
    assert!(
        !ns.ip(&["addr", "show", "dev", "lo"])
            .unwrap()
            .contains("10.0.0.3")
    );
    assert_eq!(sysctl("net.ipv4.conf.all.arp_ignore"), before);
    let _ = std::fs::remove_dir_all(&run_dir);
}

#[test]
fn realserver_bad_arguments() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rvsadm"))
        .args(["realserver", "setup", "--vip", "10.0.0.300"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad address '10.0.0.300'"));
}

/// Under `ip netns exec` (a private mount namespace with its own `/sys`, so no bpf file system
/// that outlives the command), TUN setup on a kernel without ipip refuses before it changes
/// anything, and says to use `nsenter --net`: no VIP on `lo`, no program on the interface.
#[test]
fn tun_setup_under_ip_netns_exec_refuses_and_changes_nothing() {
    if !rvs_testbed::is_root() {
        eprintln!("skipping tun_setup_under_ip_netns_exec_refuses_and_changes_nothing: needs root");
        return;
    }
    if std::path::Path::new("/sys/module/ipip").exists() {
        eprintln!(
            "skipping tun_setup_under_ip_netns_exec_refuses_and_changes_nothing: this kernel has \
             ipip, so TUN setup attaches no program and pins nothing"
        );
        return;
    }
    let (ns, peer) = (
        Netns::new("rvsadm-bpffs").unwrap(),
        Netns::new("rvsadm-bpffp").unwrap(),
    );
    ns.veth("eth0", &peer, "eth0").unwrap();
    let run_dir = std::env::temp_dir().join(format!("rvsadm-bpffs-{}", std::process::id()));
    let out = ns
        .command(env!("CARGO_BIN_EXE_rvsadm"))
        .env("RVS_RUN_DIR", &run_dir)
        .args([
            "realserver",
            "setup",
            "--vip",
            "10.0.0.3",
            "--method",
            "tun",
        ])
        .args(["--interface", "eth0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "setup succeeded: {stderr}");
    assert!(stderr.contains("nsenter --net"), "{stderr}");
    let lo = ns.run("ip", &["-o", "addr", "show", "dev", "lo"]).unwrap();
    assert!(!lo.contains("10.0.0.3"), "the VIP was left on lo: {lo}");
    let link = ns
        .run("ip", &["-d", "link", "show", "dev", "eth0"])
        .unwrap();
    assert!(!link.contains("xdp"), "a program was left on eth0: {link}");
    let _ = std::fs::remove_dir_all(&run_dir);
}
