//! The DR lab of seed 002 (`shared/seeds/002_e76882874f8bec05.txt`), reproduced exactly in
//! network namespaces: director lb01 10.0.0.5 with the VIP 10.0.0.3 added as in the seed
//! (`ip addr add 10.0.0.3/24 dev eth0 label eth0:0`), reals web01 10.0.0.7 and web02 10.0.0.8
//! running nginx (bodies lvs-01 / lvs-02), prepared with `rvsadm realserver setup` (VIP on lo as
//! /32, arp_ignore=1 / arp_announce=2 on all and lo), the seed's ipvsadm commands run through
//! `rvsadm` against `rvsd --xdp-interface eth0`, and a client on the same segment.
//! Expected, as in the seed: `curl -H host:lvs.tom.com 10.0.0.3` answers with a real's page
//! (persistently the same one, `-p 20`), and `-ln --stats` counts the connections with no
//! outgoing packets. Needs root and the workspace binaries (`cargo build --bins`).

use rvs_testbed::{Netns, Nginx, Process, bin_path};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

fn host(switch: &Netns, role: &str, cidr: &str) -> Netns {
    let ns = Netns::new(role).unwrap();
    ns.veth("eth0", switch, role).unwrap();
    switch.attach(role, "br0").unwrap();
    ns.add_addr("eth0", cidr).unwrap();
    ns
}

/// Run `f` on a thread inside namespace `ns`.
fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    ns.in_thread(f)
}

fn rvsadm(socket: &str, args: &[&str]) -> String {
    let out = Command::new(bin_path("rvsadm"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run rvsadm");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "rvsadm {args:?}: {}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    println!("# ipvsadm {}\n{text}", args.join(" "));
    text
}

#[test]
fn seed_002_dr_lab() {
    if !rvs_testbed::is_root() {
        eprintln!("skipping: needs root (namespaces, XDP)");
        return;
    }
    let switch = Netns::new("sw").unwrap();
    switch.bridge("br0").unwrap();
    let lb01 = host(&switch, "lb01", "10.0.0.5/24");
    let web01 = host(&switch, "web01", "10.0.0.7/24");
    let web02 = host(&switch, "web02", "10.0.0.8/24");
    let client = host(&switch, "client", "10.0.0.10/24");
    // Test-bed plumbing (not part of the seed): an XDP program on the director's veth peer so
    // XDP_TX is delivered, and checksums computed by the client's veth (see tests/e2e.rs).
    let _peer = in_ns(&switch, || {
        let mut d = rvs_xdp::decap::Decap::load().unwrap();
        d.attach("lb01").unwrap();
        d
    });
    client.run("ethtool", &["-K", "eth0", "tx", "off"]).unwrap();

    // Seed step 01: the VIP on the director.
    lb01.ip(&[
        "addr",
        "add",
        "10.0.0.3/24",
        "dev",
        "eth0",
        "label",
        "eth0:0",
    ])
    .unwrap();
    // Real servers: VIP on lo as /32 and the ARP sysctls, via rvsadm realserver.
    let mut servers = Vec::new();
    for (ns, body) in [(&web01, "lvs-01"), (&web02, "lvs-02")] {
        let out = ns
            .run(
                bin_path("rvsadm").to_str().unwrap(),
                &[
                    "realserver",
                    "setup",
                    "--vip",
                    "10.0.0.3",
                    "--method",
                    "dr",
                    "--interface",
                    "eth0",
                ],
            )
            .unwrap();
        println!("{}: {out}", ns.name());
        assert!(
            ns.ip(&["addr", "show", "lo"])
                .unwrap()
                .contains("10.0.0.3/32")
        );
        assert_eq!(
            ns.run("sysctl", &["-n", "net.ipv4.conf.all.arp_ignore"])
                .unwrap()
                .trim(),
            "1"
        );
        assert_eq!(
            ns.run("sysctl", &["-n", "net.ipv4.conf.lo.arp_announce"])
                .unwrap()
                .trim(),
            "2"
        );
        servers.push(Nginx::start(Some(ns), SocketAddr::from(([0, 0, 0, 0], 80)), body).unwrap());
    }

    let dir = std::env::temp_dir().join(format!("rvs-seed002-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("rvsd.sock");
    let socket_s = socket.to_str().unwrap().to_string();
    let mut cmd = lb01.command(bin_path("rvsd").to_str().unwrap());
    cmd.args([
        "--socket",
        &socket_s,
        "--xdp-interface",
        "eth0",
        "--engine",
        "xdp",
    ]);
    let rvsd: Process = lb01.spawn(cmd).unwrap();
    let start = Instant::now();
    while !socket.exists() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(socket.exists(), "rvsd did not create its socket");

    // Seed steps 02–07, as written.
    rvsadm(&socket_s, &["-ln"]);
    rvsadm(&socket_s, &["-C"]);
    rvsadm(&socket_s, &["--set", "30", "5", "60"]);
    rvsadm(
        &socket_s,
        &["-A", "-t", "10.0.0.3:80", "-s", "wrr", "-p", "20"],
    );
    rvsadm(
        &socket_s,
        &[
            "-a",
            "-t",
            "10.0.0.3:80",
            "-r",
            "10.0.0.7:80",
            "-g",
            "-w",
            "1",
        ],
    );
    rvsadm(
        &socket_s,
        &[
            "-a",
            "-t",
            "10.0.0.3:80",
            "-r",
            "10.0.0.8:80",
            "-g",
            "-w",
            "1",
        ],
    );
    let listing = rvsadm(&socket_s, &["-ln", "--stats"]);
    assert!(
        listing.contains("10.0.0.3:80")
            && listing.contains("10.0.0.7:80")
            && listing.contains("10.0.0.8:80"),
        "{listing}"
    );

    // The seed's check: curl -H host:lvs.tom.com 10.0.0.3 → a real's page; with -p 20 the same
    // real every time.
    let mut bodies = Vec::new();
    for _ in 0..10 {
        let out = client
            .run(
                "curl",
                &[
                    "-sS",
                    "--max-time",
                    "3",
                    "-H",
                    "host:lvs.tom.com",
                    "10.0.0.3",
                ],
            )
            .expect("curl through the VIP");
        bodies.push(out.trim().to_string());
    }
    println!("bodies: {bodies:?}");
    assert!(bodies[0] == "lvs-01" || bodies[0] == "lvs-02", "{bodies:?}");
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "persistence -p 20 keeps the client on one real: {bodies:?}"
    );

    let stats = rvsadm(&socket_s, &["-ln", "--stats"]);
    let line = stats
        .lines()
        .find(|l| l.contains("TCP") && l.contains("10.0.0.3:80"))
        .expect("service line");
    let cols: Vec<u64> = line
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect();
    // Conns InPkts OutPkts InBytes OutBytes
    assert!(cols.len() >= 5, "{line}");
    assert!(cols[0] >= 10, "10 connections counted: {line}");
    assert_eq!(cols[2], 0, "DR: replies never pass the director: {line}");
    let conns = rvsadm(&socket_s, &["-lnc"]);
    assert!(
        conns.contains("10.0.0.10") && conns.contains("NONE"),
        "connections and the persistence template: {conns}"
    );

    rvsd.stop(Duration::from_secs(5)).unwrap();
    for ns in [&web01, &web02] {
        ns.run(
            bin_path("rvsadm").to_str().unwrap(),
            &[
                "realserver",
                "teardown",
                "--vip",
                "10.0.0.3",
                "--method",
                "dr",
                "--interface",
                "eth0",
            ],
        )
        .unwrap();
    }
    let _ = std::fs::remove_dir_all(dir);
}
