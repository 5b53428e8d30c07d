//! `rvsadm realserver setup|teardown --vip ADDR [--vip ADDR ...] [--method dr|tun]
//! [--interface IF]`: prepare (or undo) this host as a real server behind an rvs director, with
//! [`rvs_net::realserver`] (VIP on `lo`, ARP sysctls, `rp_filter` for TUN; originals saved and
//! restored by the last teardown). Needs root.

use rvs_config::ConfigError;
use rvs_net::realserver::{Method, RealServerSetup};
#[cfg(not(feature = "xdp"))]
use rvs_net::realserver::{setup, teardown};
use std::net::IpAddr;

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServerCommand {
    pub teardown: bool,
    pub setup: RealServerSetup,
}

/// Usage of the subcommand.
pub const USAGE: &str = "\
Usage: rvsadm realserver setup|teardown --vip ADDR [--vip ADDR ...] [--method dr|tun] [--interface IF]
  --vip ADDR        virtual address this real server answers for (repeatable, or comma-separated)
  --method dr|tun   how the director forwards to it (default dr)
  --interface IF    interface director traffic arrives on (default: the default route's)
";

fn err(column: usize, message: impl Into<String>) -> ConfigError {
    ConfigError::new("<command line>", 1, column, message)
}

/// Parse the arguments after `realserver` (columns count from `realserver` = 1).
pub fn parse(args: &[String]) -> Result<RealServerCommand, ConfigError> {
    let teardown = match args.first().map(String::as_str) {
        Some("setup") => false,
        Some("teardown") => true,
        Some(other) => {
            return Err(err(
                2,
                format!("unknown action '{other}' (expected setup or teardown)"),
            ));
        }
        None => return Err(err(2, "missing action: setup or teardown")),
    };
    let mut cfg = RealServerSetup {
        vips: vec![],
        method: Method::Dr,
        interface: None,
    };
    let mut i = 1;
    while i < args.len() {
        let column = i + 2;
        let (name, inline) = match args[i].split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (args[i].as_str(), None),
        };
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                args.get(i)
                    .cloned()
                    .ok_or_else(|| err(column, format!("option {name} needs a value")))?
            }
        };
        match name {
            "--vip" => {
                for v in value.split(',') {
                    let ip = v.trim_start_matches('[').trim_end_matches(']');
                    cfg.vips.push(ip.parse::<IpAddr>().map_err(|_| {
                        err(
                            column + 1,
                            format!("bad address '{v}': expected an IP address like 10.0.0.3"),
                        )
                    })?);
                }
            }
            "--method" => {
                cfg.method = match value.as_str() {
                    "dr" => Method::Dr,
                    "tun" => Method::Tun,
                    m => {
                        return Err(err(
                            column + 1,
                            format!("unknown method '{m}' (expected dr or tun)"),
                        ));
                    }
                }
            }
            "--interface" => cfg.interface = Some(value),
            _ => {
                return Err(err(
                    column,
                    format!("unknown option '{name}' (see rvsadm realserver -h)"),
                ));
            }
        }
        i += 1;
    }
    if cfg.vips.is_empty() {
        return Err(err(2, "at least one --vip is required"));
    }
    Ok(RealServerCommand {
        teardown,
        setup: cfg,
    })
}

/// Carry it out, returning what was done, one line per step. With the `xdp` feature (default)
/// a TUN real on a kernel without the ipip module also gets rvs's decapsulation program
/// ([`rvs_xdp::realserver`]); without it, only addresses and sysctls are set and a note says so.
pub fn run(cmd: &RealServerCommand) -> Result<Vec<String>, String> {
    #[cfg(feature = "xdp")]
    {
        let report = if cmd.teardown {
            rvs_xdp::realserver::teardown(&cmd.setup)
        } else {
            rvs_xdp::realserver::setup(&cmd.setup)
        };
        report.map(|r| r.lines).map_err(|e| e.to_string())
    }
    #[cfg(not(feature = "xdp"))]
    {
        let report = if cmd.teardown {
            teardown(&cmd.setup)
        } else {
            setup(&cmd.setup)
        };
        let mut lines = report.map_err(|e| e.to_string())?.lines;
        if cmd.setup.method == Method::Tun && !cmd.teardown {
            lines.push(
                "note: this build has no xdp feature, so rvs's decapsulation program is not \
                 loaded; the kernel's ipip module (or another decapsulator) must receive the \
                 tunnelled packets"
                    .to_string(),
            );
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<RealServerCommand, ConfigError> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn parses_and_rejects() {
        let c = p("setup --vip 10.0.0.3 --vip=2001:db8::3 --method tun --interface eth0").unwrap();
        assert!(!c.teardown);
        assert_eq!(
            c.setup.vips,
            vec![
                "10.0.0.3".parse::<IpAddr>().unwrap(),
                "2001:db8::3".parse().unwrap()
            ]
        );
        assert_eq!(c.setup.method, Method::Tun);
        assert_eq!(c.setup.interface.as_deref(), Some("eth0"));
        let c = p("teardown --vip 10.0.0.3,10.0.0.4").unwrap();
        assert!(c.teardown && c.setup.vips.len() == 2 && c.setup.method == Method::Dr);
        for (bad, msg) in [
            ("", "missing action"),
            ("start --vip 10.0.0.3", "unknown action 'start'"),
            ("setup", "at least one --vip"),
            ("setup --vip", "needs a value"),
            ("setup --vip 10.0.0.300", "bad address '10.0.0.300'"),
            ("setup --vip 10.0.0.3 --method nat", "unknown method 'nat'"),
            ("setup --vip 10.0.0.3 --frob 1", "unknown option '--frob'"),
        ] {
            let e = p(bad).expect_err(bad);
            assert!(e.message.contains(msg), "{bad}: {e}");
        }
    }
}
