//! The API matches its description in `docs/openapi.json`: every route the server has is
//! documented and every documented operation exists; every answer to a set of requests that
//! exercises every operation (successes and errors) has a documented status; methods that are
//! not documented on a path answer 405.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

fn spec() -> Value {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn documented(spec: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((path.clone(), m.to_uppercase()));
            }
        }
    }
    out
}

/// The template a concrete path matches (`/v1/services/tcp:1.2.3.4:80` → `/v1/services/{id}`).
fn template(spec: &Value, path: &str) -> String {
    let path = path.split('?').next().unwrap();
    let segs: Vec<&str> = path.split('/').collect();
    spec["paths"]
        .as_object()
        .unwrap()
        .keys()
        .find(|t| {
            let ts: Vec<&str> = t.split('/').collect();
            ts.len() == segs.len()
                && ts
                    .iter()
                    .zip(&segs)
                    .all(|(t, s)| t.starts_with('{') || t == s)
        })
        .unwrap_or_else(|| panic!("{path} matches no documented path"))
        .clone()
}

#[test]
fn server_routes_and_documented_paths_agree() {
    let doc = documented(&spec());
    let server: BTreeSet<(String, String)> = rvsd::api::ROUTES
        .iter()
        .flat_map(|(p, ms)| ms.iter().map(move |m| (p.to_string(), m.to_string())))
        .collect();
    assert_eq!(server, doc, "rvsd::api::ROUTES vs docs/openapi.json");
}

#[test]
fn every_answer_has_a_documented_status() {
    let spec = spec();
    let (a, b) = (backend("a"), backend("b"));
    let vip = format!("127.0.0.1:{}", free_port());
    let d = Rvsd::start(&fullnat_config(vip.parse().unwrap(), &[a, b]), &[]);
    let s = format!("/v1/services/tcp:{vip}");
    let svc = r#"{"key": {"kind": "addr", "protocol": "tcp", "addr": "10.0.0.3:80"}}"#;
    let real = r#"{"addr": "10.0.0.7:80", "method": "dr", "weight": 1}"#;
    let state = d.get("/v1/state").body;
    let requests: Vec<(&str, String, Option<&str>)> = vec![
        ("GET", "/v1/health".into(), None),
        ("GET", "/v1/ready".into(), None),
        ("GET", "/v1/services".into(), None),
        ("POST", "/v1/services".into(), Some(svc)),
        ("POST", "/v1/services".into(), Some(svc)),
        ("POST", "/v1/services".into(), Some("{")),
        ("GET", s.clone(), None),
        ("GET", "/v1/services/bogus".into(), None),
        ("GET", "/v1/services/tcp:10.9.9.9:1".into(), None),
        (
            "PUT",
            "/v1/services/tcp:10.0.0.3:80".into(),
            Some(r#"{"scheduler": "rr"}"#),
        ),
        (
            "PUT",
            "/v1/services/tcp:10.9.9.9:1".into(),
            Some(r#"{"scheduler": "rr"}"#),
        ),
        ("PUT", "/v1/services/tcp:10.0.0.3:80".into(), Some("[]")),
        ("GET", format!("{s}/reals"), None),
        ("GET", "/v1/services/tcp:10.9.9.9:1/reals".into(), None),
        (
            "POST",
            "/v1/services/tcp:10.0.0.3:80/reals".into(),
            Some(real),
        ),
        (
            "POST",
            "/v1/services/tcp:10.0.0.3:80/reals".into(),
            Some(real),
        ),
        (
            "POST",
            "/v1/services/tcp:10.9.9.9:1/reals".into(),
            Some(real),
        ),
        (
            "POST",
            "/v1/services/tcp:10.0.0.3:80/reals".into(),
            Some(r#"{"addr": "10.0.0.8:80", "method": "dr", "weight": 65536}"#),
        ),
        (
            "GET",
            "/v1/services/tcp:10.0.0.3:80/reals/10.0.0.7:80".into(),
            None,
        ),
        (
            "GET",
            "/v1/services/tcp:10.0.0.3:80/reals/10.0.0.9:80".into(),
            None,
        ),
        (
            "GET",
            "/v1/services/tcp:10.0.0.3:80/reals/nope".into(),
            None,
        ),
        (
            "PUT",
            "/v1/services/tcp:10.0.0.3:80/reals/10.0.0.7:80".into(),
            Some(r#"{"addr": "10.0.0.7:80", "method": "dr", "weight": 4}"#),
        ),
        (
            "PUT",
            "/v1/services/tcp:10.0.0.3:80/reals/10.0.0.7:80".into(),
            Some(real.replace("10.0.0.7", "10.0.0.6").leak()),
        ),
        (
            "DELETE",
            "/v1/services/tcp:10.0.0.3:80/reals/10.0.0.7:80?reset=true".into(),
            None,
        ),
        (
            "DELETE",
            "/v1/services/tcp:10.0.0.3:80/reals/10.0.0.7:80".into(),
            None,
        ),
        ("DELETE", "/v1/services/tcp:10.0.0.3:80".into(), None),
        ("DELETE", "/v1/services/tcp:10.0.0.3:80".into(), None),
        ("GET", "/v1/timeouts".into(), None),
        (
            "PUT",
            "/v1/timeouts".into(),
            Some(r#"{"tcp": 10, "tcp_fin": 10, "udp": 10}"#),
        ),
        ("PUT", "/v1/timeouts".into(), Some(r#"{"tcp": "x"}"#)),
        ("GET", "/v1/state".into(), None),
        (
            "PUT",
            "/v1/state".into(),
            Some(state.as_str().to_owned().leak()),
        ),
        ("PUT", "/v1/state".into(), Some("null")),
        ("GET", "/v1/connections".into(), None),
        ("GET", "/v1/stats".into(), None),
        ("POST", "/v1/stats/zero".into(), None),
        ("POST", format!("/v1/stats/zero?service=tcp:{vip}"), None),
        ("POST", "/v1/stats/zero?service=tcp:10.9.9.9:1".into(), None),
        ("POST", "/v1/stats/zero?service=x".into(), None),
        ("GET", "/metrics".into(), None),
        ("DELETE", "/v1/services".into(), None),
    ];
    let mut exercised = BTreeSet::new();
    for (method, path, body) in &requests {
        let t = template(&spec, path);
        let op = &spec["paths"][&t][method.to_lowercase()];
        assert!(op.is_object(), "{method} {t} is not documented");
        let r = d.req(method, path, *body);
        let documented: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
        assert!(
            documented.iter().any(|c| **c == r.status.to_string()),
            "{method} {path} answered {} ({}), documented: {documented:?}",
            r.status,
            r.body
        );
        exercised.insert((t, method.to_string()));
    }
    assert_eq!(
        exercised,
        documented(&spec),
        "every documented operation is exercised"
    );

    // Undocumented methods on documented paths do not exist.
    for (path, item) in spec["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", "tcp:10.0.0.3:80")
            .replace("{addr}", "10.0.0.7:80");
        for m in METHODS.iter().filter(|m| item.get(**m).is_none()) {
            let r = d.req(&m.to_uppercase(), &concrete, None);
            assert_eq!(r.status, 405, "{m} {path}: {}", r.body);
        }
    }
}
