//! From lexed options to a [`Command`]: exactly one command, only the options that command
//! takes (ipvsadm's option/command table), every value parsed and range-checked.

use super::addr::{parse_addr, parse_u32};
use super::command::{Command, ListOptions, TimeoutUpdate};
use super::lex::{Opt, OptUse, spelling};
use super::spec::{real_addr, real_spec, service_spec};
use rvs_core::model::{AddressFamily, Protocol, ServiceKey};
use std::collections::BTreeMap;

/// A build error: column and message.
pub type BuildError = (usize, String);

const COMMANDS: [Opt; 14] = [
    Opt::AddService,
    Opt::EditService,
    Opt::DeleteService,
    Opt::Clear,
    Opt::Restore,
    Opt::Save,
    Opt::AddServer,
    Opt::EditServer,
    Opt::DeleteServer,
    Opt::List,
    Opt::Zero,
    Opt::Set,
    Opt::Help,
    Opt::Version,
];

const SERVICE: [Opt; 5] = [Opt::Tcp, Opt::Udp, Opt::Sctp, Opt::Fwmark, Opt::Ipv6];

/// The options a command accepts besides itself.
fn allowed(cmd: Opt) -> Vec<Opt> {
    use Opt::*;
    let with_service = |extra: &[Opt]| SERVICE.iter().chain(extra).copied().collect();
    match cmd {
        AddService | EditService => with_service(&[
            Scheduler,
            Persistent,
            Netmask,
            Ops,
            FullNatOrFlags,
            SchedFlags,
        ]),
        DeleteService | Zero => with_service(&[]),
        AddServer | EditServer => with_service(&[
            Real,
            Gatewaying,
            Ipip,
            Masquerading,
            FullNatOrFlags,
            TunType,
            Weight,
            UpperThreshold,
            LowerThreshold,
        ]),
        DeleteServer => with_service(&[Real]),
        Save => vec![Numeric],
        List => with_service(&[
            Numeric,
            Connection,
            Stats,
            Rate,
            Timeout,
            Exact,
            Thresholds,
            PersistentConn,
            Sort,
            NoSort,
            Json,
        ]),
        _ => vec![],
    }
}

/// A long name for the command in messages.
fn command_name(cmd: Opt) -> &'static str {
    match cmd {
        Opt::AddService => "add-service",
        Opt::EditService => "edit-service",
        Opt::DeleteService => "delete-service",
        Opt::Clear => "clear",
        Opt::Restore => "restore",
        Opt::Save => "save",
        Opt::AddServer => "add-server",
        Opt::EditServer => "edit-server",
        Opt::DeleteServer => "delete-server",
        Opt::List => "list",
        Opt::Zero => "zero",
        Opt::Set => "set",
        Opt::Help => "help",
        _ => "version",
    }
}

/// The options of one command line, by option.
pub(super) struct Uses {
    pub(super) by_opt: BTreeMap<Opt, OptUse>,
    pub(super) cmd: OptUse,
}

impl Uses {
    pub(super) fn has(&self, o: Opt) -> bool {
        self.by_opt.contains_key(&o)
    }
    pub(super) fn value(&self, o: Opt) -> Option<(&str, usize)> {
        self.by_opt
            .get(&o)
            .and_then(|u| u.values.first())
            .map(|w| (w.text.as_str(), w.column))
    }
}

/// Check the options and build the command.
pub fn build(uses: Vec<OptUse>) -> Result<Command, BuildError> {
    let mut by_opt = BTreeMap::new();
    let mut cmd: Option<OptUse> = None;
    for u in uses {
        if COMMANDS.contains(&u.opt) {
            if let Some(c) = &cmd {
                return Err((
                    u.column,
                    format!(
                        "only one command at a time: {} and {}",
                        spelling(c.opt),
                        spelling(u.opt)
                    ),
                ));
            }
            cmd = Some(u);
            continue;
        }
        if by_opt.contains_key(&u.opt) {
            return Err((u.column, format!("option {} given twice", spelling(u.opt))));
        }
        by_opt.insert(u.opt, u);
    }
    let cmd = cmd.ok_or((
        1,
        "no command given (expected one of -A -E -D -C -R -S -a -e -d -L -Z --set; -h for help)"
            .to_string(),
    ))?;
    let ok = allowed(cmd.opt);
    if let Some(u) = by_opt.values().find(|u| !ok.contains(&u.opt)) {
        return Err((
            u.column,
            format!(
                "option {} is not allowed with {} ({})",
                spelling(u.opt),
                spelling(cmd.opt),
                command_name(cmd.opt)
            ),
        ));
    }
    let u = Uses { by_opt, cmd };
    build_command(&u)
}

fn build_command(u: &Uses) -> Result<Command, BuildError> {
    let col = u.cmd.column;
    Ok(match u.cmd.opt {
        Opt::AddService => {
            let (key, options) = service_spec(u)?;
            Command::AddService { key, options }
        }
        Opt::EditService => {
            let (key, options) = service_spec(u)?;
            Command::EditService { key, options }
        }
        Opt::DeleteService => Command::DeleteService {
            key: required_key(u)?,
        },
        Opt::AddServer => {
            let (service, real) = real_spec(u)?;
            Command::AddReal { service, real }
        }
        Opt::EditServer => {
            let (service, real) = real_spec(u)?;
            Command::EditReal { service, real }
        }
        Opt::DeleteServer => {
            let service = required_key(u)?;
            let addr = real_addr(u, &service)?;
            Command::DeleteReal { service, addr }
        }
        Opt::Clear => Command::Clear,
        Opt::Restore => Command::Restore,
        Opt::Save => Command::Save {
            numeric: u.has(Opt::Numeric),
        },
        Opt::List => Command::List(list_options(u)?),
        Opt::Zero => Command::Zero {
            service: service_key(u)?,
        },
        Opt::Set => Command::SetTimeouts(timeouts(u, col)?),
        Opt::Help => Command::Help,
        _ => Command::Version,
    })
}

/// The service given by `-t`/`-u`/`--sctp-service`/`-f` (and `-6`), if any.
fn service_key(u: &Uses) -> Result<Option<ServiceKey>, BuildError> {
    let given: Vec<&OptUse> = [Opt::Tcp, Opt::Udp, Opt::Sctp, Opt::Fwmark]
        .iter()
        .filter_map(|o| u.by_opt.get(o))
        .collect();
    if given.len() > 1 {
        return Err((
            given[1].column,
            "only one of -t, -u, --sctp-service, -f may be given".into(),
        ));
    }
    let Some(g) = given.first() else {
        if let Some(six) = u.by_opt.get(&Opt::Ipv6) {
            return Err((
                six.column,
                "-6 applies only to a firewall-mark service (-f)".into(),
            ));
        }
        return Ok(None);
    };
    let w = &g.values[0];
    let protocol = match g.opt {
        Opt::Tcp => Protocol::Tcp,
        Opt::Udp => Protocol::Udp,
        Opt::Sctp => Protocol::Sctp,
        _ => {
            let mark =
                parse_u32(&w.text, "firewall mark", 1, u32::MAX).map_err(|m| (w.column, m))?;
            let family = if u.has(Opt::Ipv6) {
                AddressFamily::V6
            } else {
                AddressFamily::V4
            };
            return Ok(Some(ServiceKey::FwMark { mark, family }));
        }
    };
    if let Some(six) = u.by_opt.get(&Opt::Ipv6) {
        return Err((
            six.column,
            "-6 applies only to a firewall-mark service (-f)".into(),
        ));
    }
    let addr = parse_addr(&w.text).map_err(|m| (w.column, m))?;
    if addr.ip().is_unspecified() {
        return Err((
            w.column,
            format!("bad virtual address '{}': unspecified address", w.text),
        ));
    }
    Ok(Some(ServiceKey::Addr { protocol, addr }))
}

pub(super) fn required_key(u: &Uses) -> Result<ServiceKey, BuildError> {
    service_key(u)?.ok_or((
        u.cmd.column,
        format!(
            "{} needs a service: -t|-u|--sctp-service ADDR:PORT or -f MARK",
            spelling(u.cmd.opt)
        ),
    ))
}

fn list_options(u: &Uses) -> Result<ListOptions, BuildError> {
    let o = ListOptions {
        service: service_key(u)?,
        numeric: u.has(Opt::Numeric),
        connections: u.has(Opt::Connection),
        stats: u.has(Opt::Stats),
        rate: u.has(Opt::Rate),
        thresholds: u.has(Opt::Thresholds),
        persistent_conn: u.has(Opt::PersistentConn),
        timeout: u.has(Opt::Timeout),
        exact: u.has(Opt::Exact),
        sort: u.has(Opt::Sort),
        json: u.has(Opt::Json),
    };
    let layouts = [
        Opt::Stats,
        Opt::Rate,
        Opt::Thresholds,
        Opt::Timeout,
        Opt::Connection,
    ];
    if let (Some(_), Some(n)) = (u.by_opt.get(&Opt::Sort), u.by_opt.get(&Opt::NoSort)) {
        return Err((n.column, "--sort and --nosort contradict each other".into()));
    }
    let given: Vec<&OptUse> = layouts.iter().filter_map(|l| u.by_opt.get(l)).collect();
    if given.len() > 1 {
        return Err((
            given[1].column,
            format!(
                "{} and {} cannot be combined",
                spelling(given[0].opt),
                spelling(given[1].opt)
            ),
        ));
    }
    Ok(o)
}

fn timeouts(u: &Uses, col: usize) -> Result<TimeoutUpdate, BuildError> {
    let vals = &u.cmd.values;
    let n = |i: usize, what: &str| -> Result<u32, BuildError> {
        let w = vals
            .get(i)
            .ok_or((col, "--set needs three values: tcp tcpfin udp".to_string()))?;
        parse_u32(&w.text, what, 0, u32::MAX / 1000).map_err(|m| (w.column, m))
    };
    Ok(TimeoutUpdate {
        tcp: n(0, "tcp timeout")?,
        tcp_fin: n(1, "tcpfin timeout")?,
        udp: n(2, "udp timeout")?,
    })
}
