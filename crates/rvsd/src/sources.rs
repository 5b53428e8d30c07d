//! Where the desired state comes from: the TOML file and/or an ipvsadm rule file. Everything is
//! parsed and validated here, before anything is bound or applied; every error is collected.

use crate::args::Args;
use rvs_config::toml::{Config, DaemonConfig};
use rvs_config::{ConfigError, ConfigErrors};
use rvs_core::desired::DesiredState;
use rvs_core::engine::EngineKind;
use std::path::{Path, PathBuf};

/// The inputs named on the command line (re-read on SIGHUP).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub config: Option<PathBuf>,
    pub ipvsadm_rules: Option<PathBuf>,
    pub keepalived_conf: Option<PathBuf>,
}

impl Sources {
    pub fn from_args(args: &Args) -> Self {
        Sources {
            config: args.config.clone(),
            ipvsadm_rules: args.ipvsadm_rules.clone(),
            keepalived_conf: args.keepalived_conf.clone(),
        }
    }

    /// Whether there is anything to (re)load: without files the API alone shapes the state.
    pub fn is_empty(&self) -> bool {
        self.config.is_none() && self.ipvsadm_rules.is_none() && self.keepalived_conf.is_none()
    }

    /// Read every source and merge them into one validated configuration, with the warnings
    /// (settings of the TOML file without effect, keywords of keepalived.conf that rvs does not
    /// implement; located).
    pub fn load(&self) -> Result<(Config, Vec<ConfigError>), ConfigErrors> {
        self.load_all().map(|l| (l.config, l.warnings))
    }

    /// [`Sources::load`], with the health-checking settings of keepalived.conf.
    pub fn load_all(&self) -> Result<Loaded, ConfigErrors> {
        let mut config = match &self.config {
            Some(path) => rvs_config::toml::load(path)?,
            None => Config::default(),
        };
        if let Some(path) = &self.ipvsadm_rules {
            let rules = load_ipvsadm_rules(path)?;
            merge(&mut config.state, rules, path)?;
        }
        let mut warnings = std::mem::take(&mut config.warnings);
        let mut health = Vec::new();
        if let Some(path) = &self.keepalived_conf {
            let k = rvs_config::keepalived::load(path)?;
            merge(&mut config.state, k.desired, path)?;
            // a service is defined in one source only, so its pool comes from that one
            config.local_addresses.extend(k.local_addresses);
            warnings.extend(k.warnings);
            health = k.virtual_servers;
        }
        Ok(Loaded {
            config,
            warnings,
            health,
        })
    }
}

/// Everything the sources say.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub config: Config,
    /// Located warnings: settings of the TOML file without effect, keepalived.conf keywords
    /// rvs does not implement. (Settings of an engine that is not running are warned about
    /// once the engines are known: [`rvs_config::toml::engine_warnings`].)
    pub warnings: Vec<ConfigError>,
    /// keepalived.conf's checkers, sorry servers and quorum settings, one per service.
    pub health: Vec<rvs_config::keepalived::VirtualServerHealth>,
}

/// ipvsadm rule files are parsed by the rvsadm grammar in `rvs_config::ipvsadm`.
fn load_ipvsadm_rules(path: &Path) -> Result<DesiredState, ConfigErrors> {
    rvs_config::ipvsadm::load_rules_file(path, DesiredState::default())
}

/// Add the services of `extra` to `state`; a service defined twice is an error.
fn merge(state: &mut DesiredState, extra: DesiredState, path: &Path) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    if extra.timeouts != Default::default() {
        state.timeouts = extra.timeouts;
    }
    for (key, svc) in extra.services {
        if let Err(e) = state.add_service(key, svc.options) {
            errors.push(ConfigError::new(
                path,
                0,
                0,
                format!("{e} (also defined in the config file)"),
            ));
            continue;
        }
        for real in svc.reals.into_values() {
            if let Err(e) = state.add_real(&key, real) {
                errors.push(ConfigError::new(path, 0, 0, e.to_string()));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The daemon settings after command-line flags override the file's `[daemon]` section.
pub fn effective_daemon(args: &Args, file: &DaemonConfig) -> DaemonConfig {
    DaemonConfig {
        socket: args.socket.clone().or_else(|| file.socket.clone()),
        listen: args.listen.or(file.listen),
        token_file: args.token_file.clone().or_else(|| file.token_file.clone()),
        engines: if args.engines.is_empty() {
            file.engines.clone()
        } else {
            Some(first_of_each(&args.engines))
        },
        xdp_interfaces: if args.xdp_interfaces.is_empty() {
            file.xdp_interfaces.clone()
        } else {
            first_of_each(&args.xdp_interfaces)
        },
        xdp_nat_conns: file.xdp_nat_conns,
        xdp_icmp_rate: file.xdp_icmp_rate,
        xdp_icmp_burst: file.xdp_icmp_burst,
        xdp_keep_on_exit: file.xdp_keep_on_exit,
        proxy_workers: args.proxy_workers.or(file.proxy_workers),
        proxy_udp_sessions: file.proxy_udp_sessions,
        proxy_max_conns: file.proxy_max_conns,
        proxy_splice: file.proxy_splice,
        stop_grace_ms: file.stop_grace_ms,
        log_level: file.log_level,
        fullnat_local: file.fullnat_local.clone(),
    }
}

/// The file's `[daemon]` keys that a command-line flag overrides with another value, as located
/// warnings: the file's value has no effect while the flag is given.
pub fn overridden(args: &Args, file: &Config) -> Vec<ConfigError> {
    let d = &file.daemon;
    let sorted = |mut v: Vec<EngineKind>| {
        v.sort();
        v
    };
    let replaced = [
        (
            "socket",
            "--socket",
            args.socket.is_some() && args.socket != d.socket,
        ),
        (
            "listen",
            "--listen",
            args.listen.is_some() && args.listen != d.listen,
        ),
        (
            "token_file",
            "--token-file",
            args.token_file.is_some() && args.token_file != d.token_file,
        ),
        (
            "engines",
            "--engine",
            !args.engines.is_empty()
                && Some(sorted(first_of_each(&args.engines))) != d.engines.clone().map(sorted),
        ),
        (
            "xdp_interfaces",
            "--xdp-interface",
            !args.xdp_interfaces.is_empty()
                && first_of_each(&args.xdp_interfaces) != d.xdp_interfaces,
        ),
        (
            "proxy_workers",
            "--proxy-workers",
            args.proxy_workers.is_some() && args.proxy_workers != d.proxy_workers,
        ),
        (
            "log_level",
            "--log-level",
            args.log_level
                .as_deref()
                .is_some_and(|l| Some(l) != d.log_level.map(|f| f.as_str())),
        ),
    ];
    replaced
        .into_iter()
        .filter(|(_, _, replaced)| *replaced)
        .filter_map(|(key, flag, _)| {
            Some(ConfigError {
                location: file.daemon_keys.get(key)?.clone(),
                message: format!("{key} has no effect: {flag} on the command line overrides it"),
            })
        })
        .collect()
}

/// `list` without repeats (a flag given twice names the same engine or interface once; the
/// config file's lists refuse repeats with a located error instead).
fn first_of_each<T: Clone + PartialEq>(list: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(list.len());
    for x in list {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}

/// Keep what the daemon observed (health, dynamic weights, quorum gating) on reals that a
/// reload keeps, so a reload does not reset the checkers' verdicts.
pub fn carry_observed(old: &DesiredState, new: &mut DesiredState) {
    for (key, svc) in new.services.iter_mut() {
        let Some(osvc) = old.services.get(key) else {
            continue;
        };
        for (addr, real) in svc.reals.iter_mut() {
            if let Some(oreal) = osvc.reals.get(addr) {
                real.health = oreal.health;
                real.dynamic_weight = oreal.dynamic_weight;
                real.quorum_gated = oreal.quorum_gated;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_flag_given_twice_names_its_engine_or_interface_once() {
        let args = Args::parse_from([
            "rvsd",
            "--xdp-interface",
            "eth1",
            "--xdp-interface",
            "eth0",
            "--xdp-interface",
            "eth1",
            "--engine",
            "xdp",
            "--engine",
            "xdp",
        ]);
        let d = effective_daemon(&args, &DaemonConfig::default());
        assert_eq!(d.xdp_interfaces, ["eth1", "eth0"]);
        assert_eq!(d.engines, Some(vec![rvs_core::engine::EngineKind::Xdp]));
    }

    const DAEMON: &str = "[daemon]\nsocket = \"/run/a.sock\"\nengines = [\"xdp\", \"proxy\"]\n\
                          xdp_interfaces = [\"eth0\"]\nproxy_workers = 2\nlog_level = \"info\"\n";

    fn overridden_by(flags: &[&str]) -> Vec<String> {
        let file = rvs_config::toml::parse(DAEMON, Path::new("d.toml")).unwrap();
        let args = Args::parse_from(std::iter::once("rvsd").chain(flags.iter().copied()));
        overridden(&args, &file)
            .iter()
            .map(|w| w.to_string())
            .collect()
    }

    #[test]
    fn daemon_keys_a_flag_overrides_are_located_warnings() {
        assert_eq!(
            overridden_by(&[
                "--socket",
                "/tmp/b.sock",
                "--xdp-interface",
                "eth1",
                "--proxy-workers",
                "4",
                "--log-level",
                "debug",
                "--engine",
                "proxy",
            ]),
            [
                "d.toml:2:10: socket has no effect: --socket on the command line overrides it",
                "d.toml:3:11: engines has no effect: --engine on the command line overrides it",
                "d.toml:4:18: xdp_interfaces has no effect: --xdp-interface on the command line \
                 overrides it",
                "d.toml:5:17: proxy_workers has no effect: --proxy-workers on the command line \
                 overrides it",
                "d.toml:6:13: log_level has no effect: --log-level on the command line overrides it",
            ]
        );
        // no flag, or a flag giving the file's value (engines in another order): nothing
        assert!(overridden_by(&[]).is_empty());
        assert!(
            overridden_by(&[
                "--socket",
                "/run/a.sock",
                "--engine",
                "proxy",
                "--engine",
                "xdp",
                "--xdp-interface",
                "eth0",
                "--proxy-workers",
                "2",
                "--log-level",
                "info",
                // a flag for a key the file leaves out
                "--listen",
                "127.0.0.1:9901",
            ])
            .is_empty()
        );
    }
}
