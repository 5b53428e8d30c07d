//! Proxy path: direct (no balancer) vs rvs proxy vs HAProxy `mode tcp` vs nginx `stream`.
//!
//! Everything runs on the loopback of one namespace made for the run: three nginx HTTP reals
//! (one worker each) and an iperf3 server on CPU 0 with wrk / iperf3 / the idle-connection
//! holder; the balancer under test alone on CPU 1, one worker thread each. Rounds interleave the
//! subjects so each round's ratios compare runs made moments apart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rvs_testbed::procstat::{tree_cpu_time_ms, tree_rss_kib};
use rvs_testbed::{
    ConfiguredServer, Iperf3Server, Netns, Nginx, NginxOptions, WrkOptions, iperf3, wrk,
};
use serde_json::json;

use crate::record::{HIGHER, LOWER, Recorder, version_of};
use crate::{BALANCER_CPU, BoxResult, CLIENT_CPU, Holder, Plan};

const REAL_PORTS: [u16; 3] = [18081, 18082, 18083];
const IPERF_PORT: u16 = 15201;
const LOCALHOST: [u8; 4] = [127, 0, 0, 1];

/// One thing wrk goes through: a balancer (with its process) or nothing.
struct Subject {
    name: &'static str,
    http_port: u16,
    bulk_port: u16,
    server: Option<ConfiguredServer>,
}

impl Subject {
    fn cpu_ms(&self) -> Option<f64> {
        self.server
            .as_ref()
            .and_then(|s| tree_cpu_time_ms(s.pid()).ok())
    }
}

fn haproxy(ns: &Netns) -> BoxResult<ConfiguredServer> {
    let servers: String = REAL_PORTS
        .iter()
        .enumerate()
        .map(|(i, p)| format!("  server real{i} 127.0.0.1:{p}\n"))
        .collect();
    let max = rvs_testbed::servers::HAPROXY_MAXCONN;
    let cfg = format!(
        "global\n  nbthread 1\n  maxconn {max}\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 600s\n  \
         timeout server 600s\n  maxconn {max}\n\nlisten vip\n  bind 127.0.0.1:18090\n  balance roundrobin\n{servers}\n\
         listen bulk\n  bind 127.0.0.1:18190\n  server iperf 127.0.0.1:{IPERF_PORT}\n"
    );
    Ok(ConfiguredServer::start(
        Some(ns),
        Some(BALANCER_CPU),
        "haproxy",
        &["-db", "-f"],
        "haproxy.cfg",
        |_| cfg,
        18090,
    )?)
}

fn nginx_stream(ns: &Netns) -> BoxResult<ConfiguredServer> {
    let servers: String = REAL_PORTS
        .iter()
        .map(|p| format!("    server 127.0.0.1:{p};\n"))
        .collect();
    let conf = move |dir: &Path| {
        let d = dir.display();
        format!(
            "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\ndaemon off;\nuser root;\nworker_processes 1;\n\
             worker_rlimit_nofile 20000;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 19990; }}\nstream {{\n  upstream reals {{\n{servers}  }}\n\
             \x20 server {{ listen 127.0.0.1:18091; proxy_pass reals; proxy_timeout 600s; }}\n\
             \x20 server {{ listen 127.0.0.1:18191; proxy_pass 127.0.0.1:{IPERF_PORT}; }}\n}}\n"
        )
    };
    Ok(ConfiguredServer::start(
        Some(ns),
        Some(BALANCER_CPU),
        "nginx",
        &["-c"],
        "nginx.conf",
        conf,
        18091,
    )?)
}

fn rvs_proxy(ns: &Netns, rvsd: &Path) -> BoxResult<ConfiguredServer> {
    let reals: String = REAL_PORTS
        .iter()
        .map(|p| format!("[[service.real]]\naddress = \"127.0.0.1:{p}\"\nmethod = \"fullnat\"\nweight = 1\n\n"))
        .collect();
    // The control socket lives in the server's private directory, removed with it.
    let cfg = move |dir: &Path| {
        format!(
            "[daemon]\nlog_level = \"warn\"\nproxy_workers = 1\nsocket = \"{d}/rvsd.sock\"\n\n\
             [[service]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:18092\"\nscheduler = \"rr\"\n\n{reals}\
             [[service]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:18192\"\nscheduler = \"rr\"\n\n\
             [[service.real]]\naddress = \"127.0.0.1:{IPERF_PORT}\"\nmethod = \"fullnat\"\nweight = 1\n",
            d = dir.display()
        )
    };
    let program = rvsd.to_string_lossy().into_owned();
    let args = ["--engine", "proxy", "--proxy-workers", "1", "--config"];
    Ok(ConfiguredServer::start(
        Some(ns),
        Some(BALANCER_CPU),
        &program,
        &args,
        "rvsd.toml",
        cfg,
        18092,
    )?)
}

/// Runs the proxy comparison into `rec`.
pub fn run(plan: &Plan, rvsd: Result<PathBuf, String>, rec: &mut Recorder) -> BoxResult<()> {
    record_setup(plan, rec);
    let ns = Netns::new("bench-proxy")?;
    let mut reals = Vec::new();
    for (i, port) in REAL_PORTS.iter().enumerate() {
        let mut o = NginxOptions::new(SocketAddr::from((LOCALHOST, *port)), &format!("real{i}"));
        o.cpus = Some(CLIENT_CPU.into());
        reals.push(Nginx::start_with(Some(&ns), &o)?);
    }
    let _iperf =
        Iperf3Server::start_pinned(Some(&ns), (LOCALHOST, IPERF_PORT).into(), Some(CLIENT_CPU))?;

    let mut subjects = vec![Subject {
        name: "direct",
        http_port: REAL_PORTS[0],
        bulk_port: IPERF_PORT,
        server: None,
    }];
    let rvs = match &rvsd {
        Ok(path) => rvs_proxy(&ns, path),
        Err(reason) => Err(reason.clone().into()),
    };
    let started = [
        ("rvs-proxy", 18092, 18192, rvs),
        ("haproxy", 18090, 18190, haproxy(&ns)),
        ("nginx-stream", 18091, 18191, nginx_stream(&ns)),
    ];
    for (name, http_port, bulk_port, r) in started {
        match r {
            Ok(s) => subjects.push(Subject {
                name,
                http_port,
                bulk_port,
                server: Some(s),
            }),
            Err(e) => rec.skip(name, &e.to_string()),
        }
    }

    let names: Vec<&str> = subjects.iter().map(|s| s.name).collect();
    rec.param(
        "order",
        json!(format!(
            "{} in round 1, rotated by one each round",
            names.join(", ")
        )),
    );
    for (scenario, close) in [("keep-alive", false), ("new connection per request", true)] {
        if let Some(w) = plan.warmup {
            for s in &subjects {
                wrk(Some(&ns), &wrk_options(s, plan, w, close))?;
            }
        }
        // The order rotates each round: a subject that always ran right after `direct` (the
        // most connections per second, so the most TIME_WAIT sockets towards the reals left
        // behind) would carry that position's cost in every round.
        for round in 0..plan.rounds {
            for i in 0..subjects.len() {
                let s = &subjects[(i + round) % subjects.len()];
                measure_requests(&ns, s, plan, scenario, close, rec)?;
            }
        }
    }
    for _round in 0..plan.bulk_rounds {
        for s in &subjects {
            // A subject whose bulk run fails keeps its other figures; the report notes why.
            // One retry: an iperf3 run through a proxy occasionally ends without its summary.
            let run = || {
                iperf3(
                    Some(&ns),
                    Some(CLIENT_CPU),
                    "127.0.0.1",
                    s.bulk_port,
                    plan.bulk_secs,
                )
            };
            match run().or_else(|_| run()) {
                Ok(bps) => rec.push(
                    s.name,
                    "bulk (iperf3, 1 stream)",
                    "throughput",
                    "Gbit/s",
                    HIGHER,
                    bps / 1e9,
                ),
                Err(e) => rec.note(&format!("{}: bulk run failed: {e}", s.name)),
            }
        }
    }
    for s in subjects.iter().filter(|s| s.server.is_some()) {
        measure_idle(&ns, s, plan, rec)?;
    }
    for (i, r) in reals.iter().enumerate() {
        rec.note(&format!("real{i} served {} requests", r.requests()?));
    }
    Ok(())
}

fn record_setup(plan: &Plan, rec: &mut Recorder) {
    rec.peer("haproxy", &version_of("haproxy", &["-v"]));
    rec.peer("nginx", &version_of("nginx", &["-v"]));
    rec.peer("wrk", &version_of("wrk", &["-v"]));
    rec.peer("iperf3", &version_of("iperf3", &["-v"]));
    rec.param(
        "wrk",
        json!(format!(
            "-t1 -c{} -d{}s --latency",
            plan.connections,
            plan.duration.as_secs_f64()
        )),
    );
    rec.param("rounds", json!(plan.rounds));
    rec.param("warmup_s", json!(plan.warmup.map(|w| w.as_secs_f64())));
    rec.param("idle_connections", json!(plan.idle_connections));
    rec.param(
        "pinning",
        json!(format!(
            "balancer on CPU {BALANCER_CPU}; reals, wrk, iperf3 on CPU {CLIENT_CPU}"
        )),
    );
    rec.param(
        "reals",
        json!("3 × nginx (1 worker), return 200 with a 6-byte body, on loopback"),
    );
}

fn wrk_options(s: &Subject, plan: &Plan, duration: Duration, close: bool) -> WrkOptions {
    WrkOptions {
        url: format!("http://127.0.0.1:{}/", s.http_port),
        connections: plan.connections,
        threads: 1,
        duration,
        new_connection_per_request: close,
        cpus: Some(CLIENT_CPU.into()),
    }
}

fn measure_requests(
    ns: &Netns,
    s: &Subject,
    plan: &Plan,
    scenario: &str,
    close: bool,
    rec: &mut Recorder,
) -> BoxResult<()> {
    let phase = crate::phases::phase(s.name, scenario);
    let cpu_before = s.cpu_ms();
    let r = wrk(Some(ns), &wrk_options(s, plan, plan.duration, close))?;
    let cpu_after = s.cpu_ms();
    drop(phase);
    if r.requests == 0 {
        return Err(format!("{}: wrk completed no request ({scenario})", s.name).into());
    }
    if r.errors > 0 {
        rec.note(&format!(
            "{} / {scenario}: wrk reported {} errors in {} requests",
            s.name, r.errors, r.requests
        ));
    }
    rec.push(
        s.name,
        scenario,
        "requests_per_sec",
        "req/s",
        HIGHER,
        r.requests_per_sec,
    );
    rec.push(s.name, scenario, "p50_latency", "ms", LOWER, r.p50_ms);
    rec.push(s.name, scenario, "p99_latency", "ms", LOWER, r.p99_ms);
    if let (Some(a), Some(b)) = (cpu_before, cpu_after) {
        rec.push(
            s.name,
            scenario,
            "cpu_per_1000_requests",
            "ms",
            LOWER,
            (b - a) / r.requests as f64 * 1000.0,
        );
    }
    Ok(())
}

/// Opens `plan.idle_connections` connections through the balancer (held by `rvs-bench hold`)
/// and records the balancer's RSS growth per connection.
fn measure_idle(ns: &Netns, s: &Subject, plan: &Plan, rec: &mut Recorder) -> BoxResult<()> {
    let pid = s
        .server
        .as_ref()
        .map(ConfiguredServer::pid)
        .ok_or("no process")?;
    let before = tree_rss_kib(pid)?;
    let holder = Holder::start(
        ns,
        &format!("127.0.0.1:{}", s.http_port),
        plan.idle_connections,
    )?;
    let (held, line) = (holder.held, holder.line.clone());
    std::thread::sleep(Duration::from_millis(1500)); // let the balancer finish its upstream connects
    let after = tree_rss_kib(pid)?;
    holder.release()?;
    if held == 0 {
        return Err(format!("{}: no idle connection could be opened ({line:?})", s.name).into());
    }
    let per_conn_kib = after.saturating_sub(before) as f64 / held as f64;
    rec.push(
        s.name,
        "idle connections",
        "memory_per_connection",
        "KiB",
        LOWER,
        per_conn_kib,
    );
    rec.note(&format!(
        "{}: {held} idle connections held, RSS {before} → {after} KiB",
        s.name
    ));
    std::thread::sleep(Duration::from_millis(1000)); // connections drain before the next subject
    Ok(())
}
