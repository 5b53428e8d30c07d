//! The daemon's life: parse and validate everything, start the engines, apply the state, bind
//! the API, then serve until SIGTERM/SIGINT, reloading on SIGHUP and sampling rates.

use crate::api;
use crate::args::Args;
use crate::daemon::Daemon;
use crate::engines::EngineManager;
use crate::health::HealthManager;
use crate::server::{SocketGuard, bind_tcp, bind_unix, check_socket_free};
use crate::sources::{Sources, carry_observed, effective_daemon};
use anyhow::Context;
use rvs_config::keepalived::VirtualServerHealth;
use rvs_config::toml::DaemonConfig;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};

/// How often counters are sampled for rates (IPVS's estimator uses 2 s).
const RATE_INTERVAL: Duration = Duration::from_secs(2);

/// Run the daemon (or `--check`). Returns when it should exit.
pub fn run(args: Args) -> anyhow::Result<()> {
    let sources = Sources::from_args(&args);
    let (config, warnings, health) = match sources.load_all() {
        Ok(l) => (l.config, l.warnings, l.health),
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("rvsd: {e}");
            }
            anyhow::bail!(
                "the configuration has {} error(s); nothing was started",
                errors.0.len()
            );
        }
    };
    let daemon_cfg = effective_daemon(&args, &config.daemon);
    init_logging(args.log_level.as_deref(), &daemon_cfg)?;
    for w in warnings
        .iter()
        .chain(&crate::sources::overridden(&args, &config))
    {
        tracing::warn!("{w}");
    }
    if daemon_cfg.listen.is_some() && daemon_cfg.token_file.is_none() {
        anyhow::bail!("--listen needs --token-file: the TCP API always requires a bearer token");
    }
    let socket = daemon_cfg
        .socket
        .clone()
        .unwrap_or_else(rvs_api::default_socket_path);
    if args.check {
        return check(&config, &daemon_cfg, &health);
    }
    check_socket_free(&socket)?;
    let engines = crate::start::start_engines(&daemon_cfg, false)?;
    for w in engine_warnings(&config, &engines) {
        tracing::warn!("{w}");
    }
    let mut daemon = Daemon::new(engines);
    daemon
        .engines_mut()
        .set_local_addresses(&config.local_addresses);
    let mut state = config.state;
    daemon.health.preset_alpha(&mut state, &health);
    if let Err(e) = daemon.replace(state) {
        daemon.engines_mut().shutdown();
        return Err(e).context("applying the initial configuration");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("rvsd-api")
        .build()?;
    let shared = Arc::new(Mutex::new(daemon));
    let result = rt.block_on(serve(
        shared.clone(),
        sources,
        args,
        daemon_cfg,
        socket,
        health,
    ));
    // Take the engines out before the runtime goes: its tasks still hold the daemon, and an
    // engine with its own runtime must not be dropped inside ours.
    let empty = EngineManager::new(Vec::new(), Default::default());
    let mut engines = std::mem::replace(api::lock(&shared).engines_mut(), empty);
    engines.shutdown();
    drop(rt);
    drop(engines);
    tracing::info!("rvsd stopped");
    result
}

/// Dependencies whose warnings are noise to an operator, with the level they log at unless the
/// filter names them: netlink-packet-route warns about every attribute of a newer kernel it
/// cannot parse (`IFLA_INET6_CONF ... expecting 236, got 240`), at every link dump of the xdp
/// engine's upkeep — every 10 s, forever.
const QUIET_DEPS: &[&str] = &["netlink_packet_route=error"];

/// `spec` (an `EnvFilter` directive list) with [`QUIET_DEPS`] added for the targets it does not
/// mention itself.
fn with_quiet_deps(spec: &str) -> String {
    QUIET_DEPS
        .iter()
        .filter(|d| !spec.contains(d.split('=').next().unwrap_or(d)))
        .fold(spec.to_string(), |acc, d| format!("{acc},{d}"))
}

fn init_logging(flag: Option<&str>, cfg: &DaemonConfig) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter(flag, cfg)?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    Ok(())
}

/// The log filter: `--log-level`, else `[daemon] log_level`, else `RUST_LOG`, else `info`;
/// with [`QUIET_DEPS`].
fn log_filter(
    flag: Option<&str>,
    cfg: &DaemonConfig,
) -> anyhow::Result<tracing_subscriber::EnvFilter> {
    use tracing_subscriber::EnvFilter;
    let env = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let spec = match (flag, cfg.log_level, env) {
        (Some(l), ..) => l.to_string(),
        (None, Some(l), _) => l.as_str().to_string(),
        (None, None, Some(e)) if EnvFilter::try_new(&e).is_ok() => e,
        _ => "info".to_string(),
    };
    EnvFilter::try_new(with_quiet_deps(&spec)).with_context(|| match flag {
        Some(l) => format!("bad --log-level '{l}'"),
        None => format!("bad log filter '{spec}'"),
    })
}
/// `--check`: report what would be served, with the engines this host could run.
fn check(
    config: &rvs_config::toml::Config,
    cfg: &DaemonConfig,
    health: &[VirtualServerHealth],
) -> anyhow::Result<()> {
    let state = &config.state;
    let engines = crate::start::start_engines(cfg, true)?;
    for w in engine_warnings(config, &engines) {
        tracing::warn!("{w}");
    }
    let mut unserved = 0;
    for svc in state.services.values() {
        match engines.place(svc) {
            Ok(k) => println!(
                "{}: {} engine, {} real(s)",
                svc.key,
                k.name(),
                svc.reals.len()
            ),
            Err(why) => {
                unserved += 1;
                println!("{}: NOT SERVED: {why}", svc.key)
            }
        }
        if let Some(line) = fullnat_line(svc, config.local_addresses.get(&svc.key), cfg) {
            println!("{line}");
        }
        for h in health.iter().filter(|h| h.service == svc.key) {
            for line in crate::health::describe(h) {
                println!("{line}");
            }
        }
    }
    if unserved > 0 {
        println!(
            "configuration valid: {} service(s), {unserved} of them not served on this host",
            state.services.len()
        );
        return Err(Unserved(unserved).into());
    }
    println!("configuration OK: {} service(s)", state.services.len());
    Ok(())
}

/// `--check` of a valid configuration with services no engine on this host can serve (each
/// printed with the reason): rvsd exits with status 2, apart from an invalid file's 1.
#[derive(Debug)]
pub struct Unserved(pub usize);

impl std::fmt::Display for Unserved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} service(s) would not be served on this host (see above)",
            self.0
        )
    }
}

impl std::error::Error for Unserved {}

/// The file's settings of an engine that is not running, as located warnings (under `--check`
/// the xdp engine it would attach counts as running).
fn engine_warnings(
    config: &rvs_config::toml::Config,
    engines: &EngineManager,
) -> Vec<rvs_config::ConfigError> {
    rvs_config::toml::engine_warnings(&config.engine_settings, |kind| {
        engines
            .not_running(kind)
            .filter(|why| why != crate::start::NOT_ATTACHED_BY_CHECK)
    })
}

/// `--check`: the local addresses a FULLNAT service would use on the xdp engine.
fn fullnat_line(
    svc: &rvs_core::desired::ServiceConfig,
    own: Option<&Vec<std::net::IpAddr>>,
    cfg: &DaemonConfig,
) -> Option<String> {
    use rvs_core::model::{AddressFamily, ForwardMethod};
    if !svc
        .reals
        .values()
        .any(|r| r.method == ForwardMethod::FullNat)
    {
        return None;
    }
    let family = svc.key.family();
    let (pool, whose) = match own {
        Some(p) => (p.clone(), "its own"),
        None => (cfg.fullnat_local.clone(), "[daemon] fullnat_local"),
    };
    let pool: Vec<String> = pool
        .iter()
        .filter(|a| AddressFamily::of(**a) == family)
        .map(|a| a.to_string())
        .collect();
    Some(if pool.is_empty() {
        format!(
            "  FULLNAT local addresses: none of the VIP's family in {whose}: not on the xdp engine"
        )
    } else {
        format!("  FULLNAT local addresses ({whose}): {}", pool.join(" "))
    })
}

async fn serve(
    shared: api::Shared,
    sources: Sources,
    args: Args,
    cfg: DaemonConfig,
    socket: std::path::PathBuf,
    health_cfg: Vec<VirtualServerHealth>,
) -> anyhow::Result<()> {
    let unix = bind_unix(&socket)?;
    let _guard = SocketGuard(socket.clone());
    tracing::info!(socket = %socket.display(), engines = ?api::lock(&shared).engine_names(), "rvsd ready");
    let unix_app = api::router(shared.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(unix, unix_app).await {
            tracing::error!(error = %e, "unix API server failed");
        }
    });
    if let (Some(addr), Some(token_file)) = (cfg.listen, cfg.token_file.as_ref()) {
        let (tcp, token) = bind_tcp(addr, token_file).await?;
        tracing::info!(%addr, "TCP API listening (bearer token required)");
        let app = api::tcp_router(shared.clone(), token);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(tcp, app).await {
                tracing::error!(error = %e, "TCP API server failed");
            }
        });
    }
    let mut health = HealthManager::default();
    health.sync(&shared, &health_cfg);
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(RATE_INTERVAL);
    let graceful = loop {
        tokio::select! {
            _ = hup.recv() => reload(&shared, &sources, &args, &cfg, &mut health),
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break true; }
            _ = int.recv() => { tracing::info!("SIGINT: exiting now"); break false; }
            _ = tick.tick() => {
                api::lock(&shared).sample(Instant::now());
                health.publish(&shared);
            }
        }
    };
    health.shutdown().await;
    if graceful {
        drain(&shared, stop_grace(&cfg), &mut term, &mut int).await;
    }
    Ok(())
}

/// The graceful stop (SIGTERM): the engines take no new connection, the state is frozen, and
/// the open connections run on until they end, at most `grace` (`[daemon] stop_grace_ms`);
/// SIGTERM or SIGINT again ends the wait. The API answers meanwhile (`/v1/ready` says
/// `stopping`); the xdp engine keeps forwarding until the daemon exits.
async fn drain(
    shared: &api::Shared,
    grace: Duration,
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) {
    let open = api::lock(shared).begin_stop();
    if open == 0 {
        return;
    }
    if grace.is_zero() {
        tracing::info!(open, "closing the open connections now (stop_grace_ms = 0)");
        return;
    }
    tracing::info!(
        open,
        grace_ms = grace.as_millis() as u64,
        "draining: no new connections; waiting for the open ones to end (SIGTERM or SIGINT again: stop now)"
    );
    let deadline = tokio::time::Instant::now() + grace;
    let mut poll = tokio::time::interval(DRAIN_POLL);
    loop {
        tokio::select! {
            _ = poll.tick() => {
                let open = api::lock(shared).engines().open_connections();
                if open == 0 {
                    tracing::info!("drained: every connection ended");
                    return;
                }
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!(open, "stop grace over: closing the connections still open");
                    return;
                }
            }
            _ = term.recv() => { tracing::warn!("SIGTERM again: closing the open connections now"); return; }
            _ = int.recv() => { tracing::warn!("SIGINT: closing the open connections now"); return; }
        }
    }
}

/// How often the graceful stop looks at the count of open connections.
const DRAIN_POLL: Duration = Duration::from_millis(100);

/// `[daemon] stop_grace_ms`, or its default.
fn stop_grace(cfg: &DaemonConfig) -> Duration {
    let ms = cfg
        .stop_grace_ms
        .unwrap_or(rvs_config::toml::DEFAULT_STOP_GRACE_MS);
    Duration::from_millis(ms.into())
}

/// SIGHUP: re-read the sources; apply only the difference; on any error keep everything.
fn reload(
    shared: &api::Shared,
    sources: &Sources,
    args: &Args,
    running: &DaemonConfig,
    health: &mut HealthManager,
) {
    if sources.is_empty() {
        tracing::info!(
            "SIGHUP: no --config, --ipvsadm-rules or --keepalived-conf to reload; the state is unchanged"
        );
        return;
    }
    tracing::info!("SIGHUP: reloading");
    let (mut config, health_cfg) = match sources.load_all() {
        Ok(l) => {
            for w in l
                .warnings
                .iter()
                .chain(&crate::sources::overridden(args, &l.config))
            {
                tracing::warn!("reload: {w}");
            }
            (l.config, l.health)
        }
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!("reload: {e}");
            }
            tracing::error!(
                count = errors.0.len(),
                "reload refused; the running state is unchanged"
            );
            return;
        }
    };
    let new_cfg = effective_daemon(args, &config.daemon);
    let mut d = api::lock(shared);
    for w in engine_warnings(&config, d.engines()) {
        tracing::warn!("reload: {w}");
    }
    carry_observed(d.desired(), &mut config.state);
    crate::health::reset_unchecked(&mut config.state, &health_cfg);
    d.health.retain_checked(&health_cfg);
    d.health.preset_alpha(&mut config.state, &health_cfg);
    let changes = rvs_core::desired::diff(d.desired(), &config.state);
    d.engines_mut().set_local_addresses(&config.local_addresses);
    let applied = d.replace(config.state);
    drop(d);
    match applied {
        Ok(()) => {
            tracing::info!(changes = changes.len(), "reload applied");
            health.sync(shared, &health_cfg);
        }
        Err(e) => tracing::error!(error = %e, "reload refused; the running state is unchanged"),
    }
    let mut keys = running.changed_keys(&new_cfg);
    // Applied at once: whether the xdp engine keeps its flows when rvsd next exits.
    keys.retain(|k| *k != "xdp_keep_on_exit");
    if api::lock(shared)
        .engines_mut()
        .set_keep_on_exit(new_cfg.xdp_keep_on_exit)
    {
        tracing::info!(
            xdp_keep_on_exit = new_cfg.xdp_keep_on_exit,
            "reload: [daemon] xdp_keep_on_exit applies to the next exit"
        );
    }
    if !keys.is_empty() {
        tracing::warn!(
            keys = %keys.join(", "),
            "[daemon] settings changed; they take effect when rvsd restarts"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{log_filter, with_quiet_deps};
    use rvs_config::toml::DaemonConfig;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[test]
    fn quiet_deps_are_added_unless_named() {
        assert_eq!(with_quiet_deps("info"), "info,netlink_packet_route=error");
        assert_eq!(
            with_quiet_deps("debug,netlink_packet_route=warn"),
            "debug,netlink_packet_route=warn"
        );
    }

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(flag: Option<&str>, emit: impl FnOnce()) -> String {
        let sink = Sink::default();
        let out = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(log_filter(flag, &DaemonConfig::default()).unwrap())
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn netlink_attribute_warnings_are_not_logged_at_the_default_level() {
        let emit = || {
            tracing::warn!(target: "netlink_packet_route::link::af_spec::inet6", "IFLA_INET6_CONF expecting 236, got 240");
            tracing::warn!(target: "rvsd::run", "a warning of ours");
            tracing::error!(target: "netlink_packet_route::link", "an error of theirs");
        };
        let out = logged(Some("info"), emit);
        assert!(out.contains("a warning of ours"), "{out}");
        assert!(out.contains("an error of theirs"), "{out}");
        assert!(!out.contains("IFLA_INET6_CONF"), "{out}");
        // An operator who asks for them gets them.
        let out = logged(Some("info,netlink_packet_route=warn"), emit);
        assert!(out.contains("IFLA_INET6_CONF"), "{out}");
        assert!(log_filter(Some("info,=bad=="), &DaemonConfig::default()).is_err());
    }
}
