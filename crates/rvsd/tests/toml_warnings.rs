//! Settings of the TOML file that have no effect (as written, without their engine, or replaced
//! by a flag) are located warnings in rvsd's log: with `--check`, at start and on SIGHUP, beside
//! keepalived.conf's; the state is loaded all the same.
//! Loopback only, no privileges (the xdp engine is left out with `--engine proxy`).

mod common;

use common::*;
use std::net::SocketAddr;
use std::process::Command;

fn vip() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

#[test]
fn check_prints_file_and_engine_warnings_with_their_place() {
    let dir = TempDir::new();
    let path = dir.0.join("w.toml");
    std::fs::write(
        &path,
        "[daemon]\nxdp_nat_conns = 1000\nengines = [\"xdp\"]\n\n[[service]]\naddress = \"10.0.0.3:80\"\n\
         local_addresses = [\"10.0.2.1\"]\n[[service.real]]\naddress = \"10.0.0.7:80\"\n\
         method = \"dr\"\n",
    )
    .unwrap();
    let out = Command::new(rvs_testbed::bin_path("rvsd"))
        .args(["--check", "--engine", "proxy", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Valid; its DR service is not served by the proxy engine: status 2.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let p = path.display();
    for want in [
        format!(
            "{p}:7:19: local_addresses has no effect: this service has no FULLNAT real (only \
             FULLNAT rewrites the client's address to a local address)"
        ),
        format!(
            "{p}:2:17: xdp_nat_conns has no effect: the xdp engine is not running (not enabled \
             in [daemon] engines / --engine)"
        ),
        format!("{p}:3:11: engines has no effect: --engine on the command line overrides it"),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("configuration valid: 1 service(s), 1 of them not served on this host"),
        "{out:?}"
    );
}

#[test]
fn warnings_are_logged_at_start_and_on_reload_and_change_nothing_loaded() {
    let (vip, real) = (vip(), backend("a"));
    let service = |extra: &str| {
        format!(
            "[[service]]\naddress = \"{vip}\"\nscheduler = \"rr\"\n{extra}\n[[service.real]]\n\
             address = \"{real}\"\nmethod = \"fullnat\"\n"
        )
    };
    let d = Rvsd::start(&service("one_packet = true"), &["--engine", "proxy"]);
    let path = d.config_path();
    let at = |line: usize, col: usize| format!("{}:{line}:{col}: ", path.display());
    d.wait_log(
        &format!(
            "{}one_packet has no effect on a TCP service: one-packet scheduling is for UDP",
            at(4, 14)
        ),
        1,
    );
    // loaded all the same
    assert_eq!(fetch(vip), "a");

    // reload: a flag of another scheduler (the file's) and xdp-only timeouts (the engines')
    let second = format!(
        "{}\n[timeouts.tcp_states]\ntime_wait = 7\n",
        service("flags = [\"sh-port\"]")
    );
    std::fs::write(&path, second).unwrap();
    d.signal("HUP");
    // applied: the service's options (flag in, one_packet out) and the timeouts
    d.wait_log("reload applied changes=2", 1);
    let log = d.log();
    for want in [
        format!(
            "reload: {}flag sh-port has no effect with scheduler \"rr\": it is a flag of \
             scheduler \"sh\"",
            at(4, 10)
        ),
        format!(
            "reload: {}[timeouts.tcp_states] has no effect: the xdp engine is not running (not \
             enabled in [daemon] engines / --engine)",
            at(10, 1)
        ),
    ] {
        assert!(log.contains(&want), "missing {want:?} in:\n{log}");
    }
    assert_eq!(fetch(vip), "a");
}
