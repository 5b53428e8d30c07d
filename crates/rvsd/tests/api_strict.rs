//! What a script or a UI gets wrong is refused, never half-understood: unknown query
//! parameters and unknown JSON fields are 400s that change nothing (as unknown TOML keys are
//! errors), values the TOML config refuses are refused by the API too, and errors raised before
//! a handler runs (a body too large, a path that is not UTF-8) are `ErrorBody`s like the rest;
//! the TCP listener takes the bearer scheme in any case and names it when it refuses.

mod common;

use common::*;
use serde_json::{Value, json};

fn state(d: &Rvsd) -> Value {
    let r = d.get("/v1/state");
    assert_eq!(r.status, 200);
    r.json()
}

fn service_with_two_reals() -> (Rvsd, String) {
    let (a, b) = (backend("a"), backend("b"));
    let vip = format!("127.0.0.1:{}", free_port());
    let d = Rvsd::start(&fullnat_config(vip.parse().unwrap(), &[a, b]), &[]);
    (d, format!("/v1/services/tcp:{vip}"))
}

fn assert_error(r: &Resp, status: u16, kind: &str, needle: &str) {
    assert_eq!((r.status, r.kind().as_str()), (status, kind), "{}", r.body);
    let error = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains(needle), "{needle:?} not in {error:?}");
}

#[test]
fn unknown_query_parameters_are_refused() {
    let (d, svc) = service_with_two_reals();
    let real = d.get(&format!("{svc}/reals")).json()[0]["real"]["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let before = state(&d);

    // `?rest=true` (a typo of reset) removed the real without cutting its connections.
    let r = d.req("DELETE", &format!("{svc}/reals/{real}?rest=true"), None);
    assert_error(&r, 400, "bad_query", "rest");
    assert_eq!(state(&d), before, "a refused DELETE changes nothing");

    // `?servce=...` (a typo of service) zeroed every service's counters.
    fetch(
        d.get(&svc).json()["key"]["addr"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
    );
    let r = d.req("POST", "/v1/stats/zero?servce=tcp:10.9.9.9:1", None);
    assert_error(&r, 400, "bad_query", "servce");
    assert_eq!(
        d.get(&svc).json()["counters"]["conns"],
        1,
        "a refused zero keeps the counters"
    );

    // The right spellings still work.
    let r = d.req(
        "POST",
        &format!("/v1/stats/zero?service={}", &svc[13..]),
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(d.get(&svc).json()["counters"]["conns"], 0);
    let r = d.req("DELETE", &format!("{svc}/reals/{real}?reset=true"), None);
    assert_eq!(r.status, 204, "{}", r.body);
}

#[test]
fn unknown_json_fields_are_refused_and_change_nothing() {
    let (d, svc) = service_with_two_reals();
    let real = d.get(&format!("{svc}/reals")).json()[0]["real"].clone();
    let addr = real["addr"].as_str().unwrap().to_string();
    let options = d.get(&svc).json()["options"].clone();
    let before = state(&d);

    let mut typo = real.clone();
    typo["addr"] = json!("127.0.0.1:1");
    typo["upper_treshold"] = json!(100);
    let r = d.req("POST", &format!("{svc}/reals"), Some(&typo.to_string()));
    assert_error(&r, 400, "bad_json", "unknown field `upper_treshold`");
    assert!(
        r.body.contains("`upper_threshold`"),
        "lists the fields: {}",
        r.body
    );

    let mut typo = real.clone();
    typo["wieght"] = json!(5);
    let r = d.req(
        "PUT",
        &format!("{svc}/reals/{addr}"),
        Some(&typo.to_string()),
    );
    assert_error(&r, 400, "bad_json", "unknown field `wieght`");

    let mut typo = options.clone();
    typo["proxy"]["max_fail"] = json!(0);
    let r = d.req("PUT", &svc, Some(&typo.to_string()));
    assert_error(&r, 400, "bad_json", "unknown field `max_fail` in `proxy`");

    let body = json!({"key": {"kind": "addr", "protocol": "tcp", "addr": "10.0.0.3:80"},
                      "optoins": {"scheduler": "rr"}});
    let r = d.req("POST", "/v1/services", Some(&body.to_string()));
    assert_error(&r, 400, "bad_json", "unknown field `optoins`");
    let body = json!({"key": {"kind": "fwmark", "mark": 3, "family": "v4", "addr": "10.0.0.3:80"}});
    let r = d.req("POST", "/v1/services", Some(&body.to_string()));
    assert_error(&r, 400, "bad_json", "unknown field `addr` in `key`");

    let r = d.req(
        "PUT",
        "/v1/timeouts",
        Some(r#"{"tcp": 900, "tcp_fin": 120, "udp": 300, "tcpfin": 7}"#),
    );
    assert_error(&r, 400, "bad_json", "unknown field `tcpfin`");

    let mut typo = before.clone();
    let reals = typo["services"][0]["reals"].as_object_mut().unwrap();
    reals.values_mut().next().unwrap()["admn"] = json!("drain");
    let r = d.req("PUT", "/v1/state", Some(&typo.to_string()));
    assert_error(
        &r,
        400,
        "bad_json",
        "unknown field `admn` in `services.reals.",
    );

    assert_eq!(state(&d), before, "every refused request changed nothing");
}

#[test]
fn documented_bodies_in_any_order_and_spelling_are_accepted() {
    let d = Rvsd::start("", &[]);
    // Two services listed against the server's order, reals keyed by non-canonical IPv6
    // addresses, fields the server leaves out at their default given explicitly.
    let body = json!({
        "services": [
            {"key": {"kind": "addr", "protocol": "udp", "addr": "[2001:db8:0::1]:53"},
             "options": {"scheduler": "rr"},
             "reals": {"[2001:db8:0::7]:53": {"addr": "[2001:db8::7]:53", "method": "dr",
                                               "weight": 1, "quorum_gated": false}}},
            {"key": {"kind": "addr", "protocol": "tcp", "addr": "10.0.0.3:80"},
             "options": {"scheduler": "wrr", "persistence": {"timeout": 60, "prefix_len": 24}},
             "reals": {}}
        ],
        "timeouts": {"tcp": 900, "tcp_fin": 120, "udp": 300, "tcp_states": {}}
    });
    let r = d.req("PUT", "/v1/state", Some(&body.to_string()));
    assert_eq!(r.status, 200, "{}", r.body);
    // What GET answers is accepted back as it is.
    let got = state(&d);
    let r = d.req("PUT", "/v1/state", Some(&got.to_string()));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(state(&d), got);
    let real = json!({"addr": "[2001:db8::8]:53", "method": "dr", "weight": 2,
                      "health": "unknown", "dynamic_weight": null, "proxy_protocol": null});
    let r = d.req(
        "POST",
        "/v1/services/udp:[2001:db8::1]:53/reals",
        Some(&real.to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn zero_proxy_timeouts_are_refused_as_in_the_toml_config() {
    let (d, svc) = service_with_two_reals();
    let before = state(&d);
    let mut options = d.get(&svc).json()["options"].clone();
    options["proxy"]["connect_timeout_ms"] = json!(0);
    options["proxy"]["idle_timeout_ms"] = json!(0);
    options["proxy"]["fail_timeout_ms"] = json!(0);
    let r = d.req("PUT", &svc, Some(&options.to_string()));
    assert_error(
        &r,
        400,
        "invalid_state",
        "proxy.connect_timeout_ms must be at least 1",
    );
    for field in ["idle_timeout_ms", "fail_timeout_ms"] {
        assert!(
            r.body.contains(&format!("proxy.{field} must be")),
            "{}",
            r.body
        );
    }

    let body = json!({"key": {"kind": "addr", "protocol": "tcp", "addr": "10.0.0.3:80"},
                      "options": options});
    let r = d.req("POST", "/v1/services", Some(&body.to_string()));
    assert_error(
        &r,
        400,
        "invalid_state",
        "tcp 10.0.0.3:80: proxy.connect_timeout_ms",
    );

    let mut whole = before.clone();
    whole["services"][0]["options"]["proxy"]["idle_timeout_ms"] = json!(0);
    let r = d.req("PUT", "/v1/state", Some(&whole.to_string()));
    assert_error(
        &r,
        400,
        "invalid_state",
        "proxy.idle_timeout_ms must be at least 1",
    );
    assert_eq!(state(&d), before, "nothing changed");

    // max_fails = 0 is how passive failure detection is turned off: accepted.
    let mut options = d.get(&svc).json()["options"].clone();
    options["proxy"]["max_fails"] = json!(0);
    let r = d.req("PUT", &svc, Some(&options.to_string()));
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A JSON body may leave out any service option, as the TOML config may leave out any key:
/// ipvsadm's defaults apply (`{}` is wlc without persistence), and a partial `proxy` object
/// keeps the defaults of the fields it leaves out.
#[test]
fn options_left_out_take_their_defaults() {
    let (d, svc) = service_with_two_reals();
    let r = d.req("PUT", &svc, Some(r#"{"proxy": {"max_fails": 0}}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    let o = d.get(&svc).json()["options"].clone();
    assert_eq!(o["scheduler"], json!("wlc"), "{o}");
    assert_eq!(o["persistence"], Value::Null, "{o}");
    assert_eq!(o["proxy"]["max_fails"], json!(0), "{o}");
    assert_eq!(o["proxy"]["connect_timeout_ms"], json!(3000), "{o}");
    assert_eq!(o["proxy"]["fail_timeout_ms"], json!(10000), "{o}");

    let r = d.req("PUT", &svc, Some("{}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        d.get(&svc).json()["options"]["proxy"]["max_fails"],
        json!(1)
    );

    let body = json!({"key": {"kind": "addr", "protocol": "tcp", "addr": "10.0.0.3:80"},
                      "options": {"scheduler": "rr", "proxy": {"idle_timeout_ms": 5000}}});
    let r = d.req("POST", "/v1/services", Some(&body.to_string()));
    assert_eq!(r.status, 201, "{}", r.body);
    let o = r.json()["options"].clone();
    assert_eq!(o["proxy"]["idle_timeout_ms"], json!(5000), "{o}");
    assert_eq!(o["proxy"]["connect_retries"], json!(2), "{o}");
    // Still strict about what it does not know, inside the partial object too.
    let r = d.req("PUT", &svc, Some(r#"{"proxy": {"max_fail": 0}}"#));
    assert_error(&r, 400, "bad_json", "max_fail");
}

/// A request whose body is `len` spaces (the server stops reading it at its limit, so the
/// write may fail), answered over the unix socket.
fn oversized_request(d: &Rvsd, head: &str, len: usize) -> Resp {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    let req = format!(
        "{head} HTTP/1.1\r\nHost: rvsd\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let _ = s.write_all(&vec![b' '; len]);
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    Resp {
        status: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        body: body.to_string(),
    }
}

#[test]
fn a_large_state_round_trips_and_errors_before_the_handler_are_error_bodies() {
    let d = Rvsd::start("", &[]);
    // 5,000 services with a real each: what GET /v1/state answers (~3 MB) is taken back by PUT
    // (`rvsadm -S` then `-R`); it was a plain-text 413 over axum's 2 MB default.
    let services: Vec<Value> = (0..5000)
        .map(|i| {
            let real = format!("10.200.{}.{}:80", i / 250, i % 250);
            json!({"key": {"kind": "addr", "protocol": "tcp",
                           "addr": format!("10.{}.{}.1:80", i / 250, i % 250)},
                   "options": {"scheduler": "wlc"},
                   "reals": {real.clone(): {"addr": real, "method": "dr", "weight": 1}}})
        })
        .collect();
    let body = json!({"services": services, "timeouts": {"tcp": 900, "tcp_fin": 120, "udp": 300}});
    let r = d.req("PUT", "/v1/state", Some(&body.to_string()));
    assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(300)]);
    let got = d.get("/v1/state").body;
    assert!(
        got.len() > 2 << 20,
        "the state is over 2 MiB: {}",
        got.len()
    );
    let r = d.req("PUT", "/v1/state", Some(&got));
    assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(300)]);
    assert_eq!(d.get("/v1/services").json().as_array().unwrap().len(), 5000);

    // Over the limits: an ErrorBody, and nothing changed.
    let r = oversized_request(&d, "PUT /v1/state", 65 << 20);
    assert_error(&r, 413, "body_too_large", "64 MiB");
    let r = oversized_request(&d, "POST /v1/services", 3 << 20);
    assert_error(&r, 413, "body_too_large", "length limit exceeded");
    // A path that does not decode to UTF-8.
    let r = d.get("/v1/services/tcp:%ff");
    assert_error(&r, 400, "bad_request", "UTF-8");
    assert_eq!(d.get("/v1/services").json().as_array().unwrap().len(), 5000);
}

#[test]
fn the_bearer_scheme_is_case_insensitive_and_a_refusal_says_www_authenticate() {
    let (_d, _dir, port) = start_with_token();
    let tcp = || std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    // RFC 9110 §11.1: the scheme is case-insensitive (`bearer` from some clients).
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth = format!("Authorization: {scheme} s3cret\r\n");
        let r = http(tcp(), "GET", "/v1/services", None, &auth);
        assert_eq!(r.status, 200, "{scheme}: {}", r.body);
    }
    for wrong in [
        "bearer S3CRET",
        "Basic s3cret",
        "Bearers3cret",
        "Bearer  s3cret",
    ] {
        let auth = format!("Authorization: {wrong}\r\n");
        let r = http(tcp(), "GET", "/v1/services", None, &auth);
        assert_eq!(r.status, 401, "{wrong}");
    }
}

#[test]
fn keys_given_twice_are_refused() {
    let (d, svc) = service_with_two_reals();
    let before = state(&d);
    // One real listed twice in PUT /v1/state, in two spellings of one address: one of the two
    // definitions was silently lost.
    let body = r#"{"services": [{"key": {"kind": "addr", "protocol": "tcp", "addr": "[2001:db8::1]:80"},
        "options": {"scheduler": "rr"},
        "reals": {"[2001:db8::7]:80": {"addr": "[2001:db8::7]:80", "method": "dr", "weight": 1},
                  "[2001:db8:0::7]:80": {"addr": "[2001:db8::7]:80", "method": "dr", "weight": 9}}}],
        "timeouts": {"tcp": 900, "tcp_fin": 120, "udp": 300}}"#;
    let r = d.req("PUT", "/v1/state", Some(body));
    assert_error(
        &r,
        400,
        "bad_json",
        "`[2001:db8:0::7]:80` given twice in `services.reals`",
    );
    let r = d.req(
        "POST",
        &format!("{svc}/reals"),
        Some(r#"{"addr": "127.0.0.1:1", "method": "fullnat", "weight": 1, "weight": 0}"#),
    );
    // (serde refuses a struct's field twice itself.)
    assert_error(&r, 400, "bad_json", "duplicate field `weight`");
    assert_eq!(state(&d), before, "nothing changed");
}
