//! Which engines this daemon can run, decided once at start. Adding an engine is a few lines in
//! [`start_engines`]: start it, or record why it is not running (shown in every service it
//! would have served).

use crate::engines::EngineManager;
use rvs_config::toml::DaemonConfig;
use rvs_core::engine::{Engine, EngineKind};
use std::collections::BTreeMap;

/// Start the engines the configuration asks for (all that can run, by default).
pub fn start_engines(cfg: &DaemonConfig) -> anyhow::Result<EngineManager> {
    let wanted = |k: EngineKind| cfg.engines.as_ref().is_none_or(|list| list.contains(&k));
    let explicitly = |k: EngineKind| cfg.engines.as_ref().is_some_and(|list| list.contains(&k));
    let mut engines: Vec<Box<dyn Engine>> = Vec::new();
    let mut not_running = BTreeMap::new();

    // xdp: root, Linux, and at least one interface to attach to.
    let xdp_missing = if !wanted(EngineKind::Xdp) {
        "not enabled in [daemon] engines / --engine".to_string()
    } else if rvs_api::current_uid() != 0 || cfg.xdp_interfaces.is_empty() {
        "needs root and --xdp-interface".to_string()
    } else {
        "the xdp engine is not built into this rvsd yet".to_string()
    };
    if explicitly(EngineKind::Xdp) && engines.iter().all(|e| e.kind() != EngineKind::Xdp) {
        anyhow::bail!("the xdp engine was asked for but cannot run: {xdp_missing}");
    }
    not_running.insert(EngineKind::Xdp, xdp_missing);

    // proxy: runs anywhere.
    let proxy_missing = if !wanted(EngineKind::Proxy) {
        "not enabled in [daemon] engines / --engine".to_string()
    } else {
        let config = rvs_proxy::ProxyEngineConfig {
            workers: cfg.proxy_workers.unwrap_or(0) as usize,
            ..Default::default()
        };
        match rvs_proxy::ProxyEngine::start(config) {
            Ok(e) => {
                engines.push(Box::new(e));
                String::new()
            }
            Err(e) => format!("the proxy engine failed to start: {e}"),
        }
    };
    if explicitly(EngineKind::Proxy) && engines.iter().all(|e| e.kind() != EngineKind::Proxy) {
        anyhow::bail!("the proxy engine was asked for but cannot run: {proxy_missing}");
    }
    not_running.insert(EngineKind::Proxy, proxy_missing);

    for e in &engines {
        not_running.remove(&e.kind());
        tracing::info!(engine = ?e.kind(), "engine started");
    }
    for (k, why) in &not_running {
        tracing::info!(engine = ?k, reason = %why, "engine not running");
    }
    Ok(EngineManager::new(engines, not_running))
}
