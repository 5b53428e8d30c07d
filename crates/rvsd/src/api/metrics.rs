//! `GET /metrics`: Prometheus text exposition (format 0.0.4) of the per-service and per-real
//! counters, connection gauges, placement and the engines' outcome counters.

use super::{Shared, lock};
use axum::http::header;
use axum::response::IntoResponse;
use rvs_api::{ServiceId, StatsView};
use rvs_core::engine::Counters;
use std::fmt::Write;

pub async fn metrics(axum::extract::State(d): axum::extract::State<Shared>) -> impl IntoResponse {
    let view = lock(&d).stats_view();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&view),
    )
}

const COUNTERS: [(&str, &str); 5] = [
    ("connections", "Connections scheduled"),
    ("in_packets", "Packets client to real"),
    ("out_packets", "Packets real to client"),
    ("in_bytes", "Bytes client to real"),
    ("out_bytes", "Bytes real to client"),
];

fn values(c: &Counters) -> [u64; 5] {
    [c.conns, c.in_pkts, c.out_pkts, c.in_bytes, c.out_bytes]
}

/// Label values are escaped as the exposition format requires.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family `rvs_real_{name}` of type `kind`, a sample per real of every service.
fn per_real(
    out: &mut String,
    view: &StatsView,
    name: &str,
    help: &str,
    kind: &str,
    get: fn(&rvs_api::RealView) -> u64,
) {
    let _ = writeln!(out, "# HELP rvs_real_{name} {help}.");
    let _ = writeln!(out, "# TYPE rvs_real_{name} {kind}");
    for s in &view.services {
        let sid = esc(&ServiceId(s.key).to_string());
        for r in &s.reals {
            let _ = writeln!(
                out,
                "rvs_real_{name}{{service=\"{sid}\",real=\"{}\"}} {}",
                esc(&r.real.addr.to_string()),
                get(r)
            );
        }
    }
}

/// The whole exposition text.
pub fn render(view: &StatsView) -> String {
    let mut out = String::new();
    for (i, (name, help)) in COUNTERS.iter().enumerate() {
        for scope in ["service", "real"] {
            let _ = writeln!(out, "# HELP rvs_{scope}_{name}_total {help}, per {scope}.");
            let _ = writeln!(out, "# TYPE rvs_{scope}_{name}_total counter");
            for s in &view.services {
                let sid = esc(&ServiceId(s.key).to_string());
                if scope == "service" {
                    let _ = writeln!(
                        out,
                        "rvs_service_{name}_total{{service=\"{sid}\"}} {}",
                        values(&s.counters)[i]
                    );
                    continue;
                }
                for r in &s.reals {
                    let _ = writeln!(
                        out,
                        "rvs_real_{name}_total{{service=\"{sid}\",real=\"{}\"}} {}",
                        esc(&r.real.addr.to_string()),
                        values(&r.stats.counters)[i]
                    );
                }
            }
        }
    }
    type Get = fn(&rvs_api::RealView) -> u64;
    let engine_counters: [(&str, &str, Get); 2] = [
        (
            "connect_failures_total",
            "Failed connects to the real (proxy engine: refused, error, timed out), per real",
            |r| r.stats.connect_failures,
        ),
        (
            "passive_downs_total",
            "Times passive failure detection took the real out (proxy engine: max_fails \
             failed connects within fail_timeout_ms, or a failed probe), per real",
            |r| r.stats.passive_downs,
        ),
    ];
    for (name, help, get) in engine_counters {
        per_real(&mut out, view, name, help, "counter", get);
    }
    type Gauge = fn(&rvs_api::RealView) -> u64;
    let gauges: [(&str, &str, Gauge); 4] = [
        ("active_connections", "ActiveConn column", |r| {
            r.stats.active_conns.into()
        }),
        ("inactive_connections", "InActConn column", |r| {
            r.stats.inactive_conns.into()
        }),
        ("effective_weight", "Weight the schedulers use now", |r| {
            r.effective_weight.into()
        }),
        (
            "passive_out",
            "1 while passive failure detection keeps the real out (proxy engine), else 0",
            |r| u64::from(r.stats.passive_out_ms > 0),
        ),
    ];
    for (name, help, get) in gauges {
        per_real(&mut out, view, name, help, "gauge", get);
    }
    let _ = writeln!(
        out,
        "# HELP rvs_service_served 1 if an engine serves the service, 0 if no engine can."
    );
    let _ = writeln!(out, "# TYPE rvs_service_served gauge");
    for s in &view.services {
        let engine = s
            .engine
            .map(rvs_core::engine::EngineKind::name)
            .unwrap_or("none");
        let _ = writeln!(
            out,
            "rvs_service_served{{service=\"{}\",engine=\"{engine}\"}} {}",
            esc(&ServiceId(s.key).to_string()),
            u8::from(s.engine.is_some())
        );
    }
    let _ = writeln!(
        out,
        "# HELP rvs_outcomes_total Named outcome counters of the engines."
    );
    let _ = writeln!(out, "# TYPE rvs_outcomes_total counter");
    for (name, v) in &view.outcomes {
        let (engine, outcome) = name.split_once('.').unwrap_or(("", name));
        let _ = writeln!(
            out,
            "rvs_outcomes_total{{engine=\"{}\",outcome=\"{}\"}} {v}",
            esc(engine),
            esc(outcome)
        );
    }
    out
}
