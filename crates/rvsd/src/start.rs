//! Which engines this daemon can run, decided once at start. Each engine is either started or
//! recorded with the reason it is not running (shown in every service it would have served).

use crate::engines::{EngineManager, ManagedEngine};
use rvs_config::toml::DaemonConfig;
use rvs_core::engine::EngineKind;
use std::collections::BTreeMap;

/// Start the engines the configuration asks for (all that can run, by default). With `dry_run`
/// (`--check`) nothing is attached to the system: the xdp engine is only reported.
pub fn start_engines(cfg: &DaemonConfig, dry_run: bool) -> anyhow::Result<EngineManager> {
    let wanted = |k: EngineKind| cfg.engines.as_ref().is_none_or(|list| list.contains(&k));
    let explicitly = |k: EngineKind| cfg.engines.as_ref().is_some_and(|list| list.contains(&k));
    let mut engines: Vec<Box<dyn ManagedEngine>> = Vec::new();
    let mut not_running = BTreeMap::new();

    let attempts: [(EngineKind, Started); 2] = [
        (
            EngineKind::Xdp,
            if wanted(EngineKind::Xdp) {
                start_xdp(cfg, dry_run)
            } else {
                Err(not_enabled())
            },
        ),
        (
            EngineKind::Proxy,
            if wanted(EngineKind::Proxy) {
                start_proxy(cfg)
            } else {
                Err(not_enabled())
            },
        ),
    ];
    for (kind, attempt) in attempts {
        match attempt {
            Ok(e) => {
                tracing::info!(engine = ?kind, "engine started");
                engines.push(e);
            }
            Err(why) if explicitly(kind) && !dry_run => {
                anyhow::bail!("the {kind:?} engine was asked for but cannot run: {why}")
            }
            Err(why) => {
                tracing::info!(engine = ?kind, reason = %why, "engine not running");
                not_running.insert(kind, why);
            }
        }
    }
    Ok(EngineManager::new(engines, not_running))
}

/// An engine, or why it is not running.
type Started = Result<Box<dyn ManagedEngine>, String>;

fn not_enabled() -> String {
    "not enabled in [daemon] engines / --engine".to_string()
}

/// The proxy engine runs anywhere.
fn start_proxy(cfg: &DaemonConfig) -> Started {
    let config = rvs_proxy::ProxyEngineConfig {
        workers: cfg.proxy_workers.unwrap_or(0) as usize,
        udp_sessions: cfg.proxy_udp_sessions.unwrap_or(0) as usize,
        max_conns: cfg.proxy_max_conns.unwrap_or(0) as usize,
        fullnat_local: cfg.fullnat_local.clone(),
        ..Default::default()
    };
    rvs_proxy::ProxyEngine::start(config)
        .map(|e| Box::new(e) as Box<dyn ManagedEngine>)
        .map_err(|e| format!("the proxy engine failed to start: {e}"))
}

/// The xdp engine needs root and at least one interface to attach to.
#[cfg(feature = "xdp")]
fn start_xdp(cfg: &DaemonConfig, dry_run: bool) -> Started {
    if rvs_api::current_uid() != 0 || cfg.xdp_interfaces.is_empty() {
        return Err("needs root and --xdp-interface".into());
    }
    if dry_run {
        return Err("not attached by --check".into());
    }
    let config = rvs_xdp::XdpConfig {
        interfaces: cfg.xdp_interfaces.clone(),
        fullnat_local: cfg.fullnat_local.clone(),
        nat_conns: cfg
            .xdp_nat_conns
            .unwrap_or(rvs_xdp::XdpConfig::default().nat_conns),
        icmp_rate: cfg
            .xdp_icmp_rate
            .unwrap_or(rvs_xdp::XdpConfig::default().icmp_rate),
        ..Default::default()
    };
    rvs_xdp::XdpEngine::start(config)
        .map(|e| Box::new(e) as Box<dyn ManagedEngine>)
        .map_err(|e| format!("the xdp engine failed to start: {e}"))
}

#[cfg(not(feature = "xdp"))]
fn start_xdp(_: &DaemonConfig, _: bool) -> Started {
    Err("this rvsd was built without the xdp engine (cargo feature `xdp`)".into())
}
