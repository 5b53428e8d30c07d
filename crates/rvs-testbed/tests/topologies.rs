//! The test bed tested: each topology is built, traffic crosses it (ping, HTTP from nginx in a
//! real), and after teardown no namespace, link or process is left. Needs root; skips otherwise.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvs_testbed::netns::{list_testbed_namespaces, sweep_stale};
use rvs_testbed::{Kind, Netns, Nginx, Tcpdump, Topology, curl, ping, skip_unless_root};

fn root_links() -> BTreeSet<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Asserts that none of `names` exists any more and that the root namespace has no link with a
/// test-bed device name.
fn assert_gone(names: &[String]) {
    let left = list_testbed_namespaces().unwrap();
    for n in names {
        assert!(!left.contains(n), "namespace {n} still exists");
    }
    let ours = |l: &String| l == "client" || l == "dir" || l == "br0" || l.starts_with("real");
    let stray: Vec<String> = root_links().into_iter().filter(ours).collect();
    assert!(
        stray.is_empty(),
        "test-bed links in the root namespace: {stray:?}"
    );
}

/// Builds `kind`, checks reachability and HTTP, tears down, checks nothing is left.
fn exercise(kind: Kind) {
    let topo = Topology::build(kind, 3).unwrap();
    let names: Vec<String> = topo
        .namespaces()
        .iter()
        .map(|n| n.name().to_string())
        .collect();
    let client = &topo.client.ns;
    let dir = &topo.director;
    let mut webs = Vec::new();
    for (i, real) in topo.reals.iter().enumerate() {
        let listen = SocketAddr::from((real.ip4, 80));
        webs.push(Nginx::start(Some(&real.ns), listen, &format!("real{i}")).unwrap());
        // Every real reaches the director's real-side address.
        ping(Some(&real.ns), &dir.real_ip4.to_string(), 1).unwrap();
    }
    ping(Some(client), &dir.client_ip4.to_string(), 1).unwrap();
    ping(Some(client), &dir.client_ip6.to_string(), 1).unwrap();

    match kind {
        // One segment, and two-arm with routes via the director: the client reaches every real.
        Kind::L2Segment | Kind::TwoArm => {
            for (i, real) in topo.reals.iter().enumerate() {
                ping(Some(client), &real.ip6.to_string(), 1).unwrap();
                let body = curl(Some(client), &format!("http://{}/", real.ip4)).unwrap();
                assert_eq!(body.trim(), format!("real{i}"));
            }
        }
        // FULLNAT: reals have no route back to the client; only the director reaches them.
        Kind::FullNat => {
            assert!(ping(Some(client), &topo.reals[0].ip4.to_string(), 1).is_err());
            for (i, real) in topo.reals.iter().enumerate() {
                let body = curl(Some(&dir.ns), &format!("http://{}/", real.ip4)).unwrap();
                assert_eq!(body.trim(), format!("real{i}"));
            }
        }
    }
    // Each real's access log shows exactly its one request.
    for web in &webs {
        let log = web.access_log().unwrap();
        assert_eq!(log.lines().count(), 1, "access log: {log}");
        assert!(log.contains("\"GET / HTTP/1.1\" 200"), "access log: {log}");
    }
    let pids: Vec<u32> = webs.iter().map(Nginx::pid).collect();
    drop(webs);
    drop(topo);
    assert_gone(&names);
    for pid in pids {
        assert!(!pid_alive(pid), "nginx {pid} still running");
    }
}

#[test]
fn l2_segment_builds_carries_traffic_and_cleans_up() {
    if skip_unless_root("l2_segment_builds_carries_traffic_and_cleans_up") {
        exercise(Kind::L2Segment);
    }
}

#[test]
fn two_arm_builds_carries_traffic_and_cleans_up() {
    if skip_unless_root("two_arm_builds_carries_traffic_and_cleans_up") {
        exercise(Kind::TwoArm);
    }
}

#[test]
fn fullnat_builds_carries_traffic_and_cleans_up() {
    if skip_unless_root("fullnat_builds_carries_traffic_and_cleans_up") {
        exercise(Kind::FullNat);
    }
}

#[test]
fn tcpdump_sees_the_request_with_macs() {
    if !skip_unless_root("tcpdump_sees_the_request_with_macs") {
        return;
    }
    let topo = Topology::build(Kind::L2Segment, 1).unwrap();
    let real = &topo.reals[0];
    let _web = Nginx::start(Some(&real.ns), (real.ip4, 8080).into(), "hello").unwrap();
    let cap = Tcpdump::start(Some(&real.ns), "eth0", "tcp port 8080").unwrap();
    assert_eq!(
        curl(Some(&topo.client.ns), &format!("http://{}:8080/", real.ip4))
            .unwrap()
            .trim(),
        "hello"
    );
    let text = cap.finish().unwrap();
    let client_mac = topo.client.ns.mac("eth0").unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains(&client_mac) && l.contains("Flags [S]")),
        "capture:\n{text}"
    );
}

#[test]
fn namespace_is_removed_after_a_panic() {
    if !skip_unless_root("namespace_is_removed_after_a_panic") {
        return;
    }
    let handle = std::thread::spawn(|| {
        let ns = Netns::new("panics").unwrap();
        let name = ns.name().to_string();
        std::panic::panic_any(name);
    });
    let name = *handle.join().unwrap_err().downcast::<String>().unwrap();
    assert_gone(&[name]);
}

#[test]
fn stale_namespaces_of_dead_processes_are_swept() {
    if !skip_unless_root("stale_namespaces_of_dead_processes_are_swept") {
        return;
    }
    // A pid above the kernel's default pid_max (4194304) is never running.
    let name = "rvs-4194999-0-stale";
    let st = Command::new("ip")
        .args(["netns", "add", name])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(sweep_stale() >= 1);
    assert_gone(&[name.to_string()]);
}

/// Child half of `sigterm_removes_namespaces`: creates a namespace, prints its name, waits.
#[test]
fn signal_child() {
    if std::env::var_os("RVS_TESTBED_SIGNAL_CHILD").is_none() {
        return; // only meaningful when started by the test below
    }
    let ns = Netns::new("signalled").unwrap();
    // libtest may print "test signal_child ... " on the same line first.
    println!("NS {}", ns.name());
    std::thread::sleep(Duration::from_secs(30));
}

#[test]
fn sigterm_removes_namespaces() {
    if !skip_unless_root("sigterm_removes_namespaces") {
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "signal_child", "--nocapture", "--test-threads=1"])
        .env("RVS_TESTBED_SIGNAL_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let name = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split("NS ").nth(1).map(|n| n.trim().to_string()))
        .expect("child printed its namespace");
    assert!(list_testbed_namespaces().unwrap().contains(&name));
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "child did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130), "handler exits with 130");
    assert_gone(&[name]);
}
