//! Runs the proxy engine alone, without rvsd — for benchmarks and quick experiments.
//!
//! ```text
//! cargo run --release -p rvs-proxy --example standalone -- \
//!     --listen 127.0.0.1:8080 --real 127.0.0.1:9001 --real 127.0.0.1:9002 \
//!     [--workers 1] [--udp] [--scheduler rr] [--no-splice] [--proxy-protocol v1|v2]
//! ```
//!
//! Prints the counters every `--stats-every` seconds (0 = never) and runs until killed.

use rvs_core::desired::Change;
use rvs_core::engine::Engine;
use rvs_core::{
    ForwardMethod, ProxyProtocol, RealServer, SchedulerKind, ServiceKey, ServiceOptions,
};
use rvs_proxy::{ProxyEngine, ProxyEngineConfig};
use std::net::SocketAddr;
use std::time::Duration;

struct Args {
    listen: SocketAddr,
    reals: Vec<SocketAddr>,
    udp: bool,
    config: ProxyEngineConfig,
    options: ServiceOptions,
    stats_every: u64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        listen: "127.0.0.1:8080".parse().unwrap(),
        reals: Vec::new(),
        udp: false,
        config: ProxyEngineConfig::default(),
        options: ServiceOptions {
            scheduler: SchedulerKind::Rr,
            ..Default::default()
        },
        stats_every: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => a.listen = val()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--real" => a
                .reals
                .push(val()?.parse().map_err(|e| format!("--real: {e}"))?),
            "--workers" => {
                a.config.workers = val()?.parse().map_err(|e| format!("--workers: {e}"))?
            }
            "--scheduler" => {
                a.options.scheduler = val()?.parse().map_err(|e| format!("--scheduler: {e}"))?
            }
            "--proxy-protocol" => {
                a.options.proxy.proxy_protocol = match val()?.as_str() {
                    "v1" => ProxyProtocol::V1,
                    "v2" => ProxyProtocol::V2,
                    other => return Err(format!("--proxy-protocol {other}: expected v1 or v2")),
                }
            }
            "--stats-every" => a.stats_every = val()?.parse().map_err(|e| format!("{e}"))?,
            "--udp" => a.udp = true,
            "--no-splice" => a.config.splice = false,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.reals.is_empty() {
        return Err("at least one --real is needed".into());
    }
    Ok(a)
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("standalone: {e}");
            std::process::exit(2);
        }
    };
    let mut engine = ProxyEngine::start(args.config.clone()).unwrap_or_else(|e| {
        eprintln!("standalone: {e}");
        std::process::exit(1);
    });
    let key = if args.udp {
        ServiceKey::udp(args.listen)
    } else {
        ServiceKey::tcp(args.listen)
    };
    let mut changes = vec![Change::AddService {
        key,
        options: args.options,
    }];
    for r in &args.reals {
        let real = RealServer::new(*r, ForwardMethod::FullNat, 1);
        changes.push(Change::AddReal { service: key, real });
    }
    if let Err(e) = engine.apply(&changes) {
        eprintln!("standalone: {e}");
        std::process::exit(1);
    }
    eprintln!(
        "proxying {key} to {:?} with {} workers",
        args.reals,
        engine.workers()
    );
    loop {
        std::thread::sleep(Duration::from_secs(args.stats_every.max(1)));
        if args.stats_every > 0 {
            eprintln!(
                "{:?}",
                engine.stats().services.get(&key).map(|s| s.counters)
            );
        }
    }
}
