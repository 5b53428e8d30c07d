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
