//! The daemon's life: startup validation, `--check`, ipvsadm rule files, SIGHUP reload (only
//! the difference applied; a bad reload changes nothing) and SIGTERM (socket removed).

mod common;

use common::*;
use serde_json::json;
use std::net::SocketAddr;
use std::process::Command;

fn vip() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

#[test]
fn sighup_applies_only_the_difference() {
    let (a, b, c) = (backend("a"), backend("b"), backend("c"));
    let (v1, v2) = (vip(), vip());
    let base = fullnat_config(v1, &[a, b]) + &fullnat_config(v2, &[c]);
    let d = Rvsd::start(&base, &[]);
    let (first, second) = (fetch(v1), fetch(v1));
    assert_ne!(first, second, "round robin over a and b");

    // v1 unchanged; v2's real gets weight 5; a DR service appears.
    let new = fullnat_config(v1, &[a, b])
        + &format!(
            "[[service]]\naddress = \"{v2}\"\nscheduler = \"rr\"\n[[service.real]]\naddress = \"{c}\"\nmethod = \"fullnat\"\nweight = 5\n"
        )
        + "[[service]]\naddress = \"10.0.0.3:80\"\n";
    std::fs::write(d.config_path(), new).unwrap();
    d.signal("HUP");
    d.wait_log("reload applied", 1);
    assert!(
        d.log().contains("changes=2"),
        "an edit and an add, nothing else:\n{}",
        d.log()
    );
    let svc = d.get(&format!("/v1/services/tcp:{v1}")).json();
    assert_eq!(
        svc["counters"]["conns"], 2,
        "the unchanged service kept its counters: {svc}"
    );
    let svc2 = d.get(&format!("/v1/services/tcp:{v2}")).json();
    assert_eq!(svc2["reals"][0]["real"]["weight"], 5);
    assert_eq!(d.get("/v1/services").json().as_array().unwrap().len(), 3);
    assert_eq!(fetch(v1), first, "round robin continues where it was");
}

#[test]
fn bad_reload_keeps_the_running_state_and_logs_every_error() {
    let a = backend("a");
    let v = vip();
    let d = Rvsd::start(&fullnat_config(v, &[a]), &[]);
    let before = d.get("/v1/state").json();
    let bad = format!(
        "[[service]]\naddress = \"{v}\"\n[[service.real]]\naddress = \"{a}\"\nweight = 70000\n[[service.real]]\naddress = \"nowhere\"\n"
    );
    std::fs::write(d.config_path(), bad).unwrap();
    d.signal("HUP");
    d.wait_log("reload refused", 1);
    let log = d.log();
    let path = d.config_path().display().to_string();
    assert!(
        log.contains(&format!("{path}:5:10: weight 70000 out of range")),
        "{log}"
    );
    assert!(
        log.contains(&format!("{path}:7:11: bad real address 'nowhere'")),
        "{log}"
    );
    assert_eq!(d.get("/v1/state").json(), before);
    assert_eq!(fetch(v), "a", "still serving");
}

#[test]
fn sigterm_exits_cleanly_and_removes_the_socket() {
    let v = vip();
    let mut d = Rvsd::start(&fullnat_config(v, &[backend("a")]), &[]);
    assert!(d.socket.exists());
    d.signal("TERM");
    let st = d.wait_exit();
    assert!(st.success(), "{st}: {}", d.log());
    assert!(!d.socket.exists(), "socket removed");
    assert!(
        std::net::TcpStream::connect(v).is_err(),
        "the VIP listener is closed"
    );
}

#[test]
fn bad_config_starts_nothing_and_says_where() {
    let text = "[[service]]\naddress = \"10.0.0.3:80\"\nschedular = \"rr\"\n";
    let err = Rvsd::try_start(text, &[]).err().expect("must not start");
    assert!(
        err.contains("rvsd.toml:3:1: unknown field `schedular`"),
        "{err}"
    );
    assert!(err.contains("nothing was started"), "{err}");
}

#[test]
fn check_validates_and_reports_placement() {
    let dir = TempDir::new();
    let good = dir.0.join("good.toml");
    std::fs::write(&good, "[[service]]\naddress = \"10.0.0.3:80\"\n[[service.real]]\naddress = \"10.0.0.7:80\"\nmethod = \"tun\"\n").unwrap();
    let out = Command::new(rvs_testbed::bin_path("rvsd"))
        .arg("--check")
        .arg("--config")
        .arg(&good)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Valid, but not served here (no xdp engine without root and an interface): status 2.
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("NOT SERVED: forwarding method TUN needs the xdp engine"),
        "{stdout}"
    );
    assert!(
        stdout.contains("configuration valid: 1 service(s), 1 of them not served on this host"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("1 service(s) would not be served on this host"),
        "{out:?}"
    );
    let served = dir.0.join("served.toml");
    std::fs::write(&served, "[[service]]\naddress = \"127.0.0.1:8080\"\n[[service.real]]\naddress = \"127.0.0.1:8081\"\nmethod = \"fullnat\"\n").unwrap();
    let out = Command::new(rvs_testbed::bin_path("rvsd"))
        .args(["--check", "--engine", "proxy", "--config"])
        .arg(&served)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("configuration OK: 1 service(s)"),
        "{stdout}"
    );
    let bad = dir.0.join("bad.toml");
    std::fs::write(&bad, "[timeouts]\ntcp = \"x\"\n").unwrap();
    let out = Command::new(rvs_testbed::bin_path("rvsd"))
        .arg("--check")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.toml:2:7:"),
        "{out:?}"
    );
}

#[test]
fn ipvsadm_rules_file_is_loaded() {
    let dir = TempDir::new();
    let rules = dir.0.join("rules");
    std::fs::write(
        &rules,
        "-A -t 10.0.0.3:80 -s wrr\n-a -t 10.0.0.3:80 -r 10.0.0.7:80 -g -w 2\n",
    )
    .unwrap();
    let d = Rvsd::start("", &["--ipvsadm-rules", rules.to_str().unwrap()]);
    let svc = d.get("/v1/services/tcp:10.0.0.3:80").json();
    assert_eq!(svc["options"]["scheduler"], "wrr");
    assert_eq!(
        svc["reals"][0]["real"],
        json!({"addr": "10.0.0.7:80", "method": "dr", "weight": 2,
        "upper_threshold": 0, "lower_threshold": 0, "admin": "enabled", "health": "unknown",
        "dynamic_weight": null, "proxy_protocol": null})
    );
    assert!(
        svc["unsupported"]
            .as_str()
            .unwrap()
            .contains("DR needs the xdp engine")
    );

    std::fs::write(
        &rules,
        "-A -t 10.0.0.3:80 -s wrr\n-a -t 10.0.0.3:80 -r 10.0.0.7:80 -g -w 99999\n",
    )
    .unwrap();
    let err = Rvsd::try_start("", &["--ipvsadm-rules", rules.to_str().unwrap()])
        .err()
        .expect("must fail");
    assert!(err.contains(&format!("{}:2:", rules.display())), "{err}");
}

#[test]
fn examples_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        seen += 1;
        let out = Command::new(rvs_testbed::bin_path("rvsd"))
            .args(["--check", "--engine", "proxy", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // Valid (0), or valid with services the proxy engine cannot serve (2: DR/TUN/NAT
        // examples need the xdp engine), never invalid.
        let want = if stdout.contains("NOT SERVED") { 2 } else { 0 };
        assert_eq!(
            out.status.code(),
            Some(want),
            "{}: {stdout} {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        if path.ends_with("quickstart.toml") {
            assert!(
                stdout.contains("tcp 127.0.0.1:8080: proxy engine, 3 real(s)"),
                "{stdout}"
            );
        }
    }
    assert!(seen >= 1, "no examples found in {dir}");
}

#[test]
fn socket_path_is_guarded() {
    let d = Rvsd::start("", &[]);
    // a second daemon on the same socket is refused, and the first keeps answering
    let out = Command::new(rvs_testbed::bin_path("rvsd"))
        .arg("--socket")
        .arg(&d.socket)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already listening"),
        "{out:?}"
    );
    assert_eq!(d.get("/v1/health").status, 200);
    // a path that is not a socket is never removed
    let dir = TempDir::new();
    let file = dir.0.join("precious");
    std::fs::write(&file, "keep me").unwrap();
    let out = Command::new(rvs_testbed::bin_path("rvsd"))
        .arg("--socket")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a socket"),
        "{out:?}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

#[test]
fn sighup_without_files_keeps_api_state() {
    let dir = TempDir::new();
    let socket = dir.0.join("s.sock");
    let mut child = Command::new(rvs_testbed::bin_path("rvsd"))
        .arg("--socket")
        .arg(&socket)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(std::time::Instant::now() < deadline, "rvsd did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let req = |m: &str, p: &str, b: Option<&str>| {
        http(
            std::os::unix::net::UnixStream::connect(&socket).unwrap(),
            m,
            p,
            b,
            "",
        )
    };
    let svc = r#"{"key": {"kind": "addr", "protocol": "tcp", "addr": "10.0.0.3:80"}}"#;
    assert_eq!(req("POST", "/v1/services", Some(svc)).status, 201);
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        req("GET", "/v1/services/tcp:10.0.0.3:80", None).status,
        200,
        "still there"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn keepalived_conf_services_are_loaded() {
    let dir = TempDir::new();
    let conf = dir.0.join("keepalived.conf");
    std::fs::write(
        &conf,
        "virtual_server 10.0.0.3 80 {\n    delay_loop 6\n    lb_algo wrr\n    lb_kind DR\n    protocol TCP\n    \
         real_server 10.0.0.7 80 {\n        weight 2\n        TCP_CHECK {\n            connect_timeout 3\n        }\n    }\n}\n",
    )
    .unwrap();
    let d = Rvsd::start("", &["--keepalived-conf", conf.to_str().unwrap()]);
    let svc = d.get("/v1/services/tcp:10.0.0.3:80").json();
    assert_eq!(svc["options"]["scheduler"], "wrr", "{svc}");
    assert_eq!(svc["reals"][0]["real"]["weight"], 2, "{svc}");
    assert_eq!(svc["reals"][0]["real"]["method"], "dr", "{svc}");

    std::fs::write(
        &conf,
        "virtual_server 10.0.0.3 80 {\n    lb_algo fastest\n}\n",
    )
    .unwrap();
    let err = Rvsd::try_start("", &["--keepalived-conf", conf.to_str().unwrap()])
        .err()
        .expect("must fail");
    assert!(err.contains(&format!("{}:2:", conf.display())), "{err}");
}

/// `examples/systemd/rvsd.service` passes `systemd-analyze verify` (with its `ExecStart` pointed
/// at the binary under test), and lets a graceful stop finish: `TimeoutStopSec` is longer than
/// the default `stop_grace_ms`.
#[test]
fn the_systemd_unit_example_verifies() {
    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("skipping: systemd-analyze is not installed");
        return;
    };
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/systemd");
    let unit = std::fs::read_to_string(format!("{dir}/rvsd.service")).unwrap();
    let timeout: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .expect("TimeoutStopSec")
        .parse()
        .unwrap();
    assert!(
        timeout * 1000 > u64::from(rvs_config::toml::DEFAULT_STOP_GRACE_MS),
        "TimeoutStopSec={timeout} would cut the default stop grace short"
    );
    let bin = rvs_testbed::bin_path("rvsd");
    let tmp = TempDir::new();
    let copy = tmp.0.join("rvsd.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/rvsd", bin.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}
