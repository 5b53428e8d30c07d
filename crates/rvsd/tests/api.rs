//! Every endpoint of the control API against the real rvsd binary, errors included; the state
//! is checked unchanged after every refused request.

mod common;

use common::*;
use serde_json::{Value, json};

const SVC: &str = "tcp:10.0.0.3:80";

fn dr_service() -> String {
    json!({"key": {"kind": "addr", "protocol": "tcp", "addr": "10.0.0.3:80"},
           "options": {"scheduler": "wrr"}})
    .to_string()
}

fn state(d: &Rvsd) -> Value {
    let r = d.get("/v1/state");
    assert_eq!(r.status, 200);
    r.json()
}

#[test]
fn services_crud_and_errors() {
    let d = Rvsd::start("", &[]);
    let r = d.req("POST", "/v1/services", Some(&dr_service()));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["options"]["scheduler"], "wrr");
    let before = state(&d);

    let r = d.req("POST", "/v1/services", Some(&dr_service()));
    assert_eq!(
        (r.status, r.kind().as_str()),
        (409, "service_exists"),
        "{}",
        r.body
    );
    let r = d.req("POST", "/v1/services", Some("{\"key\": "));
    assert_eq!(
        (r.status, r.kind().as_str()),
        (400, "bad_json"),
        "{}",
        r.body
    );
    assert!(
        r.json()["error"].as_str().unwrap().contains("line 1"),
        "{}",
        r.body
    );
    let r = d.req(
        "POST",
        "/v1/services",
        Some(r#"{"key": {"kind": "addr", "protocol": "icmp", "addr": "1.2.3.4:1"}}"#),
    );
    assert_eq!(
        (r.status, r.kind().as_str()),
        (400, "bad_json"),
        "{}",
        r.body
    );
    let r = d.get("/v1/services/tcp:10.0.0.3");
    assert_eq!(
        (r.status, r.kind().as_str()),
        (400, "bad_service_id"),
        "{}",
        r.body
    );
    let r = d.get("/v1/services/tcp:10.0.0.9:80");
    assert_eq!(
        (r.status, r.kind().as_str()),
        (404, "no_such_service"),
        "{}",
        r.body
    );
    let r = d.req(
        "PUT",
        "/v1/services/tcp:10.0.0.3:80",
        Some(r#"{"scheduler": "rr", "persistence": {"timeout": 5, "prefix_len": 40}}"#),
    );
    assert_eq!(
        (r.status, r.kind().as_str()),
        (400, "bad_netmask"),
        "{}",
        r.body
    );
    // The rules ipvsadm and the kernel apply, whichever way a service comes in.
    for (body, kind) in [
        (
            r#"{"key": {"kind": "fwmark", "mark": 0, "family": "v4"}}"#,
            "zero_fwmark",
        ),
        (
            r#"{"key": {"kind": "addr", "protocol": "tcp", "addr": "10.0.0.4:0"}}"#,
            "port_zero_without_persistence",
        ),
        (
            r#"{"key": {"kind": "addr", "protocol": "tcp", "addr": "10.0.0.4:80"},
                "options": {"scheduler": "rr",
                            "persistence": {"timeout": 0, "prefix_len": 32}}}"#,
            "zero_persistence",
        ),
    ] {
        let r = d.req("POST", "/v1/services", Some(body));
        assert_eq!((r.status, r.kind().as_str()), (400, kind), "{}", r.body);
    }
    let r = d.req(
        "PUT",
        "/v1/services/tcp:10.0.0.3:80",
        Some(r#"{"scheduler": "rr", "persistence": {"timeout": 0, "prefix_len": 32}}"#),
    );
    assert_eq!(
        (r.status, r.kind().as_str()),
        (400, "zero_persistence"),
        "{}",
        r.body
    );
    assert_eq!(
        state(&d),
        before,
        "refused requests leave the state unchanged"
    );

    let r = d.req(
        "PUT",
        &format!("/v1/services/{SVC}"),
        Some(r#"{"scheduler": "sh", "one_packet": true}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = d.get(&format!("/v1/services/{SVC}"));
    assert_eq!(
        (
            r.json()["options"]["scheduler"].as_str(),
            r.json()["options"]["one_packet"].as_bool()
        ),
        (Some("sh"), Some(true))
    );
    let list = d.get("/v1/services").json();
    assert_eq!(list.as_array().unwrap().len(), 1);

    let r = d.req("DELETE", &format!("/v1/services/{SVC}"), None);
    assert_eq!(r.status, 204);
    let r = d.req("DELETE", &format!("/v1/services/{SVC}"), None);
    assert_eq!((r.status, r.kind().as_str()), (404, "no_such_service"));

    d.req("POST", "/v1/services", Some(&dr_service()));
    let r = d.req("DELETE", "/v1/services", None);
    assert_eq!(r.status, 204);
    assert_eq!(d.get("/v1/services").json(), json!([]));
}

#[test]
fn reals_crud_and_errors() {
    let d = Rvsd::start("", &[]);
    d.req("POST", "/v1/services", Some(&dr_service()));
    let reals = format!("/v1/services/{SVC}/reals");
    let real = |w: u32| json!({"addr": "10.0.0.7:80", "method": "dr", "weight": w}).to_string();

    let r = d.req("POST", "/v1/services/tcp:10.0.0.9:80/reals", Some(&real(1)));
    assert_eq!(
        (r.status, r.kind().as_str()),
        (404, "no_such_service"),
        "{}",
        r.body
    );
    let r = d.req("POST", &reals, Some(&real(70000)));
    assert_eq!(
        (r.status, r.kind().as_str()),
        (400, "weight_out_of_range"),
        "{}",
        r.body
    );
    let r = d.req(
        "POST",
        &reals,
        Some(r#"{"addr": "[2001:db8::1]:80", "method": "nat", "weight": 1}"#),
    );
    assert_eq!(
        (r.status, r.kind().as_str()),
        (400, "family_mismatch"),
        "{}",
        r.body
    );
    let r = d.req("POST", &reals, Some(r#"{"addr": "10.0.0.7:80", "method": "dr", "weight": 1, "upper_threshold": 5, "lower_threshold": 9}"#));
    assert_eq!(
        (r.status, r.kind().as_str()),
        (400, "threshold_order"),
        "{}",
        r.body
    );
    assert_eq!(d.get(&reals).json(), json!([]), "nothing was added");

    let r = d.req("POST", &reals, Some(&real(3)));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["effective_weight"], 3);
    let before = state(&d);
    let r = d.req("POST", &reals, Some(&real(3)));
    assert_eq!((r.status, r.kind().as_str()), (409, "real_exists"));

    let one = format!("{reals}/10.0.0.7:80");
    let r = d.req("PUT", &one, Some(&real(70000)));
    assert_eq!((r.status, r.kind().as_str()), (400, "weight_out_of_range"));
    let r = d.req("PUT", &format!("{reals}/10.0.0.8:80"), Some(&real(2)));
    assert_eq!((r.status, r.kind().as_str()), (400, "addr_mismatch"));
    let r = d.req(
        "PUT",
        &format!("{reals}/10.0.0.8:80"),
        Some(r#"{"addr": "10.0.0.8:80", "method": "dr", "weight": 2}"#),
    );
    assert_eq!((r.status, r.kind().as_str()), (404, "no_such_real"));
    let r = d.get(&format!("{reals}/10.0.0.7"));
    assert_eq!((r.status, r.kind().as_str()), (400, "bad_real_addr"));
    assert_eq!(state(&d), before);

    let r = d.req(
        "PUT",
        &one,
        Some(r#"{"addr": "10.0.0.7:80", "method": "dr", "weight": 0, "admin": "drain"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = d.get(&one);
    assert_eq!(
        (
            r.json()["real"]["weight"].as_u64(),
            r.json()["effective_weight"].as_u64()
        ),
        (Some(0), Some(0))
    );

    let r = d.req("DELETE", &format!("{one}?reset=maybe"), None);
    assert_eq!((r.status, r.kind().as_str()), (400, "bad_query"));
    let r = d.req("DELETE", &one, None);
    assert_eq!(r.status, 204);
    let r = d.req("DELETE", &one, None);
    assert_eq!((r.status, r.kind().as_str()), (404, "no_such_real"));
}

#[test]
fn dr_service_without_xdp_is_kept_and_listed_with_reason() {
    let d = Rvsd::start(
        "[[service]]\naddress = \"10.0.0.3:80\"\n[[service.real]]\naddress = \"10.0.0.7:80\"\nmethod = \"dr\"\n",
        &["--engine", "proxy"],
    );
    let svc = d.get(&format!("/v1/services/{SVC}")).json();
    assert_eq!(svc["engine"], Value::Null);
    let why = svc["unsupported"].as_str().unwrap();
    assert!(
        why.contains("forwarding method DR needs the xdp engine, which is not running"),
        "{why}"
    );
    assert_eq!(
        svc["reals"].as_array().unwrap().len(),
        1,
        "the real is kept"
    );
    let m = d.get("/metrics").body;
    assert!(
        m.contains("rvs_service_served{service=\"tcp:10.0.0.3:80\",engine=\"none\"} 0"),
        "{m}"
    );
}

#[test]
fn timeouts_state_health_and_unknown_paths() {
    let d = Rvsd::start("[timeouts]\ntcp = 100\n", &[]);
    assert_eq!(
        d.get("/v1/timeouts").json(),
        json!({"tcp": 100, "tcp_fin": 120, "udp": 300})
    );
    let r = d.req(
        "PUT",
        "/v1/timeouts",
        Some(r#"{"tcp": 50, "tcp_fin": 10, "udp": 20}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(d.get("/v1/timeouts").json()["tcp"], 50);
    let r = d.req("PUT", "/v1/timeouts", Some(r#"{"tcp": -1}"#));
    assert_eq!((r.status, r.kind().as_str()), (400, "bad_json"));
    // 0 would end every connection at once: refused with the field, nothing changed.
    let r = d.req(
        "PUT",
        "/v1/timeouts",
        Some(r#"{"tcp": 0, "tcp_fin": 10, "udp": 0}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("timeouts.tcp must be at least 1 second")
            && r.body.contains("timeouts.udp must be"),
        "{}",
        r.body
    );
    assert_eq!(d.get("/v1/timeouts").json()["tcp"], 50);
    // per-state timeouts: set, shown, checked
    let r = d.req(
        "PUT",
        "/v1/timeouts",
        Some(r#"{"tcp": 50, "tcp_fin": 10, "udp": 20, "tcp_states": {"time_wait": 7}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        d.get("/v1/timeouts").json(),
        json!({"tcp": 50, "tcp_fin": 10, "udp": 20, "tcp_states": {"time_wait": 7}})
    );
    let r = d.req(
        "PUT",
        "/v1/timeouts",
        Some(r#"{"tcp": 50, "tcp_fin": 10, "udp": 20, "tcp_states": {"timewait": 7}}"#),
    );
    assert_eq!(
        (r.status, r.kind().as_str()),
        (400, "bad_json"),
        "{}",
        r.body
    );
    let r = d.req(
        "PUT",
        "/v1/timeouts",
        Some(r#"{"tcp": 50, "tcp_fin": 10, "udp": 20, "tcp_states": {"close": 0}}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body
            .contains("timeouts.tcp_states.close must be at least 1 second"),
        "{}",
        r.body
    );
    assert_eq!(d.get("/v1/timeouts").json()["tcp_states"]["time_wait"], 7);
    let r = d.req(
        "PUT",
        "/v1/timeouts",
        Some(r#"{"tcp": 50, "tcp_fin": 10, "udp": 20}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(d.get("/v1/timeouts").json()["tcp_states"], json!(null));

    // whole-state replace: valid, then invalid (nothing changes, every error reported)
    let mut s = state(&d);
    d.req("POST", "/v1/services", Some(&dr_service()));
    s["timeouts"]["udp"] = json!(77);
    let r = d.req("PUT", "/v1/state", Some(&s.to_string()));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        state(&d),
        s,
        "replaced atomically: the API-added service is gone"
    );
    // observed health is the daemon's: a replace cannot set it on a real
    let mut forged = s.clone();
    forged["services"] = json!([{"key": {"kind": "addr", "protocol": "tcp", "addr": "10.0.0.5:80"},
        "options": {"scheduler": "rr"},
        "reals": {"10.0.0.9:80": {"addr": "10.0.0.9:80", "method": "dr", "weight": 3,
                  "health": "down", "dynamic_weight": 1, "quorum_gated": true}}}]);
    let r = d.req("PUT", "/v1/state", Some(&forged.to_string()));
    assert_eq!(r.status, 200, "{}", r.body);
    let real = &state(&d)["services"][0]["reals"]["10.0.0.9:80"];
    assert_eq!(
        (
            &real["health"],
            &real["dynamic_weight"],
            &real["quorum_gated"]
        ),
        (&json!("unknown"), &json!(null), &json!(null)),
        "{real}"
    );
    let r = d.req("PUT", "/v1/state", Some(&s.to_string()));
    assert_eq!(r.status, 200, "{}", r.body);
    let bad = json!({"timeouts": {"tcp": 1, "tcp_fin": 0, "udp": 1}, "services": [
        {"key": {"kind": "addr", "protocol": "tcp", "addr": "10.0.0.3:80"},
         "options": {"scheduler": "rr"},
         "reals": {"10.0.0.7:80": {"addr": "10.0.0.7:80", "method": "dr", "weight": 70000},
                   "10.0.0.8:80": {"addr": "10.0.0.8:80", "method": "dr", "weight": 1, "upper_threshold": 1, "lower_threshold": 2}}}]});
    let r = d.req("PUT", "/v1/state", Some(&bad.to_string()));
    assert_eq!(
        (r.status, r.kind().as_str()),
        (400, "invalid_state"),
        "{}",
        r.body
    );
    let e = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        e.contains("weight 70000")
            && e.contains("threshold")
            && e.contains("timeouts.tcp_fin must be at least 1 second"),
        "every error reported: {e}"
    );
    let mut twice = s.clone();
    let one = json!({"key": {"kind": "addr", "protocol": "tcp", "addr": "10.0.0.4:80"}, "options": {"scheduler": "rr"}, "reals": {}});
    twice["services"] = json!([one.clone(), one]);
    let r = d.req("PUT", "/v1/state", Some(&twice.to_string()));
    assert_eq!(
        (r.status, r.kind().as_str()),
        (400, "bad_json"),
        "{}",
        r.body
    );
    assert_eq!(state(&d), s, "invalid replace changed nothing");

    let h = d.get("/v1/health");
    assert_eq!((h.status, h.json()["status"].as_str()), (200, Some("ok")));
    assert!(
        h.json()["engines"]
            .as_array()
            .unwrap()
            .contains(&json!("proxy"))
    );
    assert_eq!(d.get("/v1/ready").status, 200);
    let r = d.get("/v1/nothing");
    assert_eq!((r.status, r.kind().as_str()), (404, "not_found"));
    let r = d.req("PATCH", "/v1/services", None);
    assert_eq!((r.status, r.kind().as_str()), (405, "method_not_allowed"));
}

#[test]
fn traffic_stats_connections_zero_metrics_and_reset() {
    let (a, b) = (backend("a"), backend("b"));
    let vip: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let d = Rvsd::start(&fullnat_config(vip, &[a, b]), &[]);
    let got: Vec<String> = (0..4).map(|_| fetch(vip)).collect();
    assert_eq!(got.iter().filter(|s| *s == "a").count(), 2, "{got:?}");
    assert_eq!(got.iter().filter(|s| *s == "b").count(), 2, "{got:?}");
    let id = format!("tcp:{vip}");
    let stats = d.get("/v1/stats").json();
    let svc = &stats["services"][0];
    assert_eq!(svc["engine"], "proxy");
    assert_eq!(svc["counters"]["conns"], 4, "{svc}");
    assert!(svc["counters"]["out_bytes"].as_u64().unwrap() >= 8);
    assert!(stats["outcomes"].is_object());
    let m = d.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.body.contains(&format!(
            "rvs_service_connections_total{{service=\"{id}\"}} 4"
        )),
        "{}",
        m.body
    );
    assert!(
        m.body.contains(&format!(
            "rvs_real_connections_total{{service=\"{id}\",real=\"{a}\"}} 2"
        )),
        "{}",
        m.body
    );
    let c = d.get("/v1/connections");
    assert_eq!(c.status, 200);
    assert!(c.json().is_array());

    // rates come from the 2-second sampler: keep traffic going until one shows up
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    let cps = loop {
        fetch(vip);
        let cps = d.get("/v1/stats").json()["services"][0]["rates"]["cps"]
            .as_u64()
            .unwrap();
        if cps > 0 || std::time::Instant::now() > deadline {
            break cps;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(cps > 0, "a rate was sampled");

    let r = d.req("POST", "/v1/stats/zero?service=tcp:10.9.9.9:1", None);
    assert_eq!((r.status, r.kind().as_str()), (404, "no_such_service"));
    let r = d.req("POST", "/v1/stats/zero?service=nonsense", None);
    assert_eq!((r.status, r.kind().as_str()), (400, "bad_service_id"));
    assert_eq!(
        d.req("POST", &format!("/v1/stats/zero?service={id}"), None)
            .status,
        204
    );
    assert_eq!(
        d.get("/v1/stats").json()["services"][0]["counters"]["conns"],
        0
    );
    assert_eq!(d.req("POST", "/v1/stats/zero", None).status, 204);

    // removing a real with ?reset=true asks the proxy engine to cut its connections
    let r = d.req(
        "DELETE",
        &format!("/v1/services/{id}/reals/{a}?reset=true"),
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(fetch(vip), "b");
}

#[test]
fn tcp_listener_requires_the_bearer_token() {
    let (d, _dir, port) = start_with_token();
    let tcp = || std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let r = http(tcp(), "GET", "/v1/services", None, "");
    assert_eq!((r.status, r.kind().as_str()), (401, "unauthorized"));
    let r = http(
        tcp(),
        "GET",
        "/v1/services",
        None,
        "Authorization: Bearer wrong\r\n",
    );
    assert_eq!(r.status, 401);
    let r = http(
        tcp(),
        "GET",
        "/v1/services",
        None,
        "Authorization: Bearer s3cret\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        d.get("/v1/services").status,
        200,
        "the unix socket needs no token"
    );
}

#[test]
fn unix_socket_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let d = Rvsd::start("", &[]);
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_refusing_real_shows_its_failed_connects_in_stats_and_metrics() {
    let live = backend("live");
    let dead: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let vip: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let d = Rvsd::start(&fullnat_config(vip, &[dead, live]), &[]);
    for _ in 0..6 {
        assert_eq!(
            fetch(vip),
            "live",
            "a refused connect is retried on the live real"
        );
    }
    let stats = d.get("/v1/stats").json();
    let refused = stats["outcomes"]["proxy.connect_refused"].as_u64().unwrap();
    assert!(refused >= 1, "{stats}");
    let reals = stats["services"][0]["reals"].as_array().unwrap().clone();
    let failures = |addr: std::net::SocketAddr| {
        reals
            .iter()
            .find(|r| r["real"]["addr"] == addr.to_string())
            .unwrap_or_else(|| panic!("{addr} in {reals:?}"))["stats"]["connect_failures"]
            .as_u64()
    };
    assert_eq!(failures(dead), Some(refused), "{reals:?}");
    assert_eq!(failures(live), Some(0), "{reals:?}");
    // Passive failure detection (on by default, max_fails 1) took it out after its first
    // failure: no more connects to it, and the stats say so.
    assert_eq!(refused, 1, "{stats}");
    let dead_stats = &reals
        .iter()
        .find(|r| r["real"]["addr"] == dead.to_string())
        .unwrap()["stats"];
    assert_eq!(dead_stats["passive_downs"], 1, "{dead_stats}");
    assert!(
        dead_stats["passive_out_ms"].as_u64().unwrap() > 0,
        "{dead_stats}"
    );
    assert_eq!(stats["outcomes"]["proxy.passive_down"], 1, "{stats}");
    let id = format!("tcp:{vip}");
    let m = d.get("/metrics").body;
    assert!(
        m.contains(&format!(
            "rvs_real_connect_failures_total{{service=\"{id}\",real=\"{dead}\"}} {refused}"
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "rvs_real_connect_failures_total{{service=\"{id}\",real=\"{live}\"}} 0"
        )),
        "{m}"
    );
    for line in [
        format!("rvs_real_passive_downs_total{{service=\"{id}\",real=\"{dead}\"}} 1"),
        format!("rvs_real_passive_out{{service=\"{id}\",real=\"{dead}\"}} 1"),
        format!("rvs_real_passive_out{{service=\"{id}\",real=\"{live}\"}} 0"),
    ] {
        assert!(m.contains(&line), "{line} in {m}");
    }
}

#[test]
fn metrics_is_well_formed_exposition_text() {
    let d = Rvsd::start(
        "[[service]]\naddress = \"10.0.0.3:80\"\n[[service.real]]\naddress = \"10.0.0.7:80\"\n",
        &[],
    );
    let m = d.get("/metrics");
    assert_eq!(m.status, 200);
    let mut typed = std::collections::BTreeSet::new();
    for line in m.body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            typed.insert(it.next().unwrap().to_string());
            assert!(matches!(it.next(), Some("counter" | "gauge")), "{line}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let name = series.split('{').next().unwrap();
        assert!(typed.contains(name), "{name} has a TYPE line before it");
        assert!(series.ends_with('}'), "{line}");
        if name.starts_with("rvs_service_") || name.starts_with("rvs_real_") {
            assert!(series.contains("service=\"tcp:10.0.0.3:80\""), "{line}");
        }
    }
    assert!(
        m.body.contains(
            "rvs_real_effective_weight{service=\"tcp:10.0.0.3:80\",real=\"10.0.0.7:80\"} 1"
        )
    );
}
