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

/// Why the xdp engine is "not running" under `--check`, which attaches nothing: it would run.
pub const NOT_ATTACHED_BY_CHECK: &str = "not attached by --check";

fn not_enabled() -> String {
    "not enabled in [daemon] engines / --engine".to_string()
}

/// The proxy engine runs anywhere.
fn start_proxy(cfg: &DaemonConfig) -> Started {
    rvs_proxy::ProxyEngine::start(proxy_config(cfg))
        .map(|e| Box::new(e) as Box<dyn ManagedEngine>)
        .map_err(|e| format!("the proxy engine failed to start: {e}"))
}

/// The proxy engine's configuration from `[daemon]`.
fn proxy_config(cfg: &DaemonConfig) -> rvs_proxy::ProxyEngineConfig {
    let defaults = rvs_proxy::ProxyEngineConfig::default();
    rvs_proxy::ProxyEngineConfig {
        workers: cfg.proxy_workers.unwrap_or(0) as usize,
        udp_sessions: cfg.proxy_udp_sessions.unwrap_or(0) as usize,
        max_conns: cfg.proxy_max_conns.unwrap_or(0) as usize,
        fullnat_local: cfg.fullnat_local.clone(),
        // `proxy_splice = true` cannot turn splice on where the kernel has none.
        splice: defaults.splice && cfg.proxy_splice.unwrap_or(true),
        ..defaults
    }
}

/// The xdp engine needs root and at least one interface to attach to.
#[cfg(feature = "xdp")]
fn start_xdp(cfg: &DaemonConfig, dry_run: bool) -> Started {
    if rvs_api::current_uid() != 0 || cfg.xdp_interfaces.is_empty() {
        return Err("needs root and --xdp-interface".into());
    }
    if dry_run {
        return Err(NOT_ATTACHED_BY_CHECK.into());
    }
    rvs_xdp::XdpEngine::start(xdp_config(cfg))
        .map(|e| Box::new(e) as Box<dyn ManagedEngine>)
        .map_err(|e| format!("the xdp engine failed to start: {e}"))
}

/// What the xdp engine is started with: `[daemon]`'s `xdp_*` keys (and `--xdp-interface`),
/// the engine's defaults for those left out.
#[cfg(feature = "xdp")]
fn xdp_config(cfg: &DaemonConfig) -> rvs_xdp::XdpConfig {
    let d = rvs_xdp::XdpConfig::default();
    rvs_xdp::XdpConfig {
        interfaces: cfg.xdp_interfaces.clone(),
        fullnat_local: cfg.fullnat_local.clone(),
        nat_conns: cfg.xdp_nat_conns.unwrap_or(d.nat_conns),
        icmp_rate: cfg.xdp_icmp_rate.unwrap_or(d.icmp_rate),
        icmp_burst: cfg.xdp_icmp_burst.unwrap_or(d.icmp_burst),
        keep_on_exit: cfg.xdp_keep_on_exit,
        ..d
    }
}

#[cfg(not(feature = "xdp"))]
fn start_xdp(_: &DaemonConfig, _: bool) -> Started {
    Err("this rvsd was built without the xdp engine (cargo feature `xdp`)".into())
}

#[cfg(all(test, feature = "xdp"))]
mod tests {
    use super::*;
    use crate::sources::effective_daemon;
    use clap::Parser;

    /// The file's `[daemon]` through the command line's overrides to the xdp engine's config.
    fn xdp_of(toml: &str) -> rvs_xdp::XdpConfig {
        let file = rvs_config::toml::parse(toml, std::path::Path::new("t.toml")).unwrap();
        let args = crate::args::Args::parse_from(["rvsd", "--xdp-interface", "eth9"]);
        xdp_config(&effective_daemon(&args, &file.daemon))
    }

    #[test]
    fn xdp_keys_reach_the_xdp_engine() {
        let c = xdp_of(
            "[daemon]\nxdp_interfaces = [\"eth0\"]\nxdp_nat_conns = 4096\n\
             xdp_icmp_rate = 50\nxdp_icmp_burst = 7\nfullnat_local = [\"10.0.2.1\"]\n",
        );
        assert_eq!(c.interfaces, ["eth9"]); // the flag overrides the file
        assert_eq!((c.nat_conns, c.icmp_rate, c.icmp_burst), (4096, 50, 7));
        assert_eq!(
            c.fullnat_local,
            ["10.0.2.1".parse::<std::net::IpAddr>().unwrap()]
        );
        // left out: the engine's defaults (1,000/s, burst 200)
        let d = rvs_xdp::XdpConfig::default();
        let c = xdp_of("");
        assert_eq!(
            (c.nat_conns, c.icmp_rate, c.icmp_burst),
            (d.nat_conns, d.icmp_rate, d.icmp_burst)
        );
        assert_eq!((d.icmp_rate, d.icmp_burst), (1000, 200));
        // the burst alone
        let c = xdp_of("[daemon]\nxdp_icmp_burst = 1\n");
        assert_eq!((c.icmp_rate, c.icmp_burst), (1000, 1));
        // keeping the program on exit: off unless asked for
        assert!(!d.keep_on_exit && !c.keep_on_exit);
        assert!(xdp_of("[daemon]\nxdp_keep_on_exit = true\n").keep_on_exit);
        assert!(!xdp_of("[daemon]\nxdp_keep_on_exit = false\n").keep_on_exit);
    }
}

#[cfg(test)]
mod proxy_tests {
    use super::*;
    use crate::sources::effective_daemon;
    use clap::Parser;

    /// The file's `[daemon]` to the proxy engine's config.
    fn proxy_of(toml: &str) -> rvs_proxy::ProxyEngineConfig {
        let file = rvs_config::toml::parse(toml, std::path::Path::new("t.toml")).unwrap();
        let args = crate::args::Args::parse_from(["rvsd"]);
        proxy_config(&effective_daemon(&args, &file.daemon))
    }

    #[test]
    fn proxy_keys_reach_the_proxy_engine() {
        let c = proxy_of(
            "[daemon]\nproxy_workers = 3\nproxy_udp_sessions = 40\nproxy_max_conns = 70\n\
             proxy_splice = false\n",
        );
        assert_eq!((c.workers, c.udp_sessions, c.max_conns), (3, 40, 70));
        assert!(!c.splice);
        // left out or true: the engine's default (on where the kernel has splice)
        let d = rvs_proxy::ProxyEngineConfig::default();
        assert_eq!(d.splice, cfg!(target_os = "linux"));
        assert_eq!(proxy_of("").splice, d.splice);
        assert_eq!(proxy_of("[daemon]\nproxy_splice = true\n").splice, d.splice);
        assert_eq!((proxy_of("").workers, proxy_of("").max_conns), (0, 0));
    }
}
