//! Carrying out one parsed [`Command`] against rvsd's control API and printing the result.

use crate::client::{Client, ClientError};
use hyper::Method;
use rvs_api::{ConnectionInfo, DesiredState, NewService, ServiceId, ServiceView, Timeouts};
use rvs_config::ipvsadm::{self, Command, ListOptions};
use rvs_config::{ConfigError, ConfigErrors};
use rvs_core::model::ServiceKey;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad arguments.
    #[error("{0}")]
    Usage(#[from] ConfigError),
    /// A rules file (`-R`) with errors: every one is printed.
    #[error("{0}")]
    Rules(#[from] ConfigErrors),
    /// The daemon refused or could not be reached.
    #[error("{0}")]
    Client(#[from] ClientError),
    /// Reading stdin or writing stdout failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Something asked for does not exist.
    #[error("{0}")]
    NotFound(String),
}

impl RunError {
    /// Exit status: 2 for usage errors (as ipvsadm), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// Percent-encode the characters of ids and addresses that may not appear raw in a URI.
fn enc(s: &str) -> String {
    s.replace('%', "%25")
        .replace('[', "%5B")
        .replace(']', "%5D")
}

fn service_path(key: &ServiceKey) -> String {
    format!("/v1/services/{}", enc(&ServiceId(*key).to_string()))
}

fn real_path(key: &ServiceKey, addr: &SocketAddr) -> String {
    format!("{}/reals/{}", service_path(key), enc(&addr.to_string()))
}

fn print(out: &mut dyn Write, text: &str) -> Result<(), RunError> {
    out.write_all(text.as_bytes())?;
    Ok(())
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

/// The service's view now, if it exists (before a change: a missing service is the change's
/// own error to report).
fn current(client: &Client, key: &ServiceKey) -> Option<ServiceView> {
    client.get(&service_path(key)).ok()
}

/// Tell the operator on `err` what a change did to the placement of service `key` (`before`:
/// its view before the change). The change was applied either way (exit status 0, as ipvsadm):
/// - no running engine serves the service: a warning after every change of it — the
///   service is kept and listed, but carries no traffic (adding a DR or NAT real to a service
///   while only the proxy engine runs takes the whole service off the proxy);
/// - a placement note (e.g. a scheduler the xdp engine does not apply) that the change
///   brought or altered.
fn report_placement(
    client: &Client,
    key: &ServiceKey,
    before: Option<&ServiceView>,
    err: &mut dyn Write,
) -> Result<(), RunError> {
    let Some(after) = current(client, key) else {
        return Ok(());
    };
    report_view(&after, before, err)
}

fn report_view(
    after: &ServiceView,
    before: Option<&ServiceView>,
    err: &mut dyn Write,
) -> Result<(), RunError> {
    let key = after.key;
    if let Some(why) = &after.unsupported {
        let was = before.is_some_and(|b| b.engine.is_some());
        let verb = if was {
            "is no longer served"
        } else {
            "is not served"
        };
        writeln!(err, "rvsadm: warning: {key} {verb}: {why}")?;
    } else if let Some(note) = &after.note
        && before.and_then(|b| b.note.as_ref()) != Some(note)
    {
        writeln!(err, "rvsadm: note: {key}: {note}")?;
    }
    Ok(())
}

/// Run `cmd`: talk to rvsd through `client`, read rules from `input`, print to `out`, and
/// warnings about the result (a service left unserved, see [`report_placement`]) to `err`.
pub fn run(
    cmd: Command,
    client: &Client,
    input: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), RunError> {
    match cmd {
        Command::AddService { key, options } => {
            client.send(Method::POST, "/v1/services", &NewService { key, options })?;
            report_placement(client, &key, None, err)?
        }
        Command::EditService { key, mut options } => {
            let cur: ServiceView = client.get(&service_path(&key))?;
            options.engine = cur.options.engine;
            options.proxy = cur.options.proxy;
            client.send(Method::PUT, &service_path(&key), &options)?;
            report_placement(client, &key, Some(&cur), err)?
        }
        Command::DeleteService { key } => client
            .request(Method::DELETE, &service_path(&key), None)
            .map(|_| ())?,
        Command::AddReal { service, real } => {
            let before = current(client, &service);
            client.send(
                Method::POST,
                &format!("{}/reals", service_path(&service)),
                &real,
            )?;
            report_placement(client, &service, before.as_ref(), err)?
        }
        Command::EditReal { service, mut real } => {
            let cur: ServiceView = client.get(&service_path(&service))?;
            let old = cur
                .reals
                .iter()
                .find(|r| r.real.addr == real.addr)
                .ok_or_else(|| {
                    RunError::NotFound(format!(
                        "no such real server {} in service {service}",
                        real.addr
                    ))
                })?;
            real.admin = old.real.admin;
            real.health = old.real.health;
            real.dynamic_weight = old.real.dynamic_weight;
            real.proxy_protocol = old.real.proxy_protocol;
            client.send(Method::PUT, &real_path(&service, &real.addr), &real)?;
            report_placement(client, &service, Some(&cur), err)?
        }
        Command::DeleteReal { service, addr } => {
            let before = current(client, &service);
            client.request(Method::DELETE, &real_path(&service, &addr), None)?;
            report_placement(client, &service, before.as_ref(), err)?
        }
        Command::Clear => client
            .request(Method::DELETE, "/v1/services", None)
            .map(|_| ())?,
        Command::Restore => restore(client, input, err)?,
        Command::Save { .. } => {
            let state: DesiredState = client.get("/v1/state")?;
            print(out, &ipvsadm::save(&state))?
        }
        Command::List(opts) => list(client, &opts, out)?,
        Command::Zero { service } => {
            let path = match service {
                Some(k) => format!("/v1/stats/zero?service={}", enc(&ServiceId(k).to_string())),
                None => "/v1/stats/zero".to_string(),
            };
            client.request(Method::POST, &path, None).map(|_| ())?
        }
        Command::SetTimeouts(update) => {
            let cur: Timeouts = client.get("/v1/timeouts")?;
            client.send(Method::PUT, "/v1/timeouts", &update.apply_to(cur))?
        }
        Command::Help => print(out, crate::help::USAGE)?,
        Command::Version => print(
            out,
            &format!(
                "rvsadm {} (ipvsadm v1.31 syntax)\n",
                env!("CARGO_PKG_VERSION")
            ),
        )?,
    }
    Ok(())
}

/// `-R`: read rules from `input`, build the whole new state (keeping the daemon's timeouts unless
/// the rules `--set` them, and the rvs-only settings of services and reals that stay), and
/// replace the daemon's state in one `PUT /v1/state`; then report the placement of every
/// service (see [`report_placement`]).
fn restore(client: &Client, input: &mut dyn Read, err: &mut dyn Write) -> Result<(), RunError> {
    let mut text = String::new();
    input.read_to_string(&mut text)?;
    let before: Vec<ServiceView> = client.get("/v1/services")?;
    let current: DesiredState = client.get("/v1/state")?;
    let base = DesiredState {
        timeouts: current.timeouts,
        ..Default::default()
    };
    let mut state = ipvsadm::apply_rules(&text, Path::new("-"), base)?;
    ipvsadm::carry_unexpressed(&current, &mut state);
    client.send(Method::PUT, "/v1/state", &state)?;
    let after: Vec<ServiceView> = client.get("/v1/services")?;
    for view in &after {
        report_view(view, before.iter().find(|b| b.key == view.key), err)?;
    }
    Ok(())
}

fn list(client: &Client, opts: &ListOptions, out: &mut dyn Write) -> Result<(), RunError> {
    if opts.timeout {
        let t: Timeouts = client.get("/v1/timeouts")?;
        return print(
            out,
            &if opts.json {
                json(&t)
            } else {
                ipvsadm::list_timeouts(&t)
            },
        );
    }
    if opts.connections {
        let mut conns: Vec<ConnectionInfo> = client.get("/v1/connections")?;
        if let Some(ServiceKey::Addr { protocol, addr }) = opts.service {
            conns.retain(|c| c.protocol == protocol && c.virtual_addr == addr);
        }
        return print(
            out,
            &if opts.json {
                json(&conns)
            } else {
                ipvsadm::list_connections(&conns)
            },
        );
    }
    let services: Vec<ServiceView> = match opts.service {
        Some(key) => vec![client.get(&service_path(&key)).map_err(|e| match e {
            ClientError::Api { status: 404, .. } => {
                RunError::NotFound(format!("no such service: {key}"))
            }
            e => e.into(),
        })?],
        None => client.get("/v1/services")?,
    };
    print(
        out,
        &if opts.json {
            json(&services)
        } else {
            ipvsadm::list_services(&services, opts)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::report_view;
    use rvs_api::ServiceView;
    use rvs_core::engine::EngineKind;
    use rvs_core::model::{Protocol, ServiceKey, ServiceOptions};

    fn view(
        engine: Option<EngineKind>,
        unsupported: Option<&str>,
        note: Option<&str>,
    ) -> ServiceView {
        ServiceView {
            key: ServiceKey::Addr {
                protocol: Protocol::Tcp,
                addr: "10.0.0.3:80".parse().unwrap(),
            },
            options: ServiceOptions::default(),
            engine,
            unsupported: unsupported.map(String::from),
            note: note.map(String::from),
            counters: Default::default(),
            rates: Default::default(),
            reals: Vec::new(),
        }
    }

    fn said(after: &ServiceView, before: Option<&ServiceView>) -> String {
        let mut err = Vec::new();
        report_view(after, before, &mut err).unwrap();
        String::from_utf8(err).unwrap()
    }

    #[test]
    fn notes_are_said_when_the_change_brings_them() {
        let xdp = Some(EngineKind::Xdp);
        let note = "on the xdp engine: new flows are placed by weighted Maglev hashing";
        let plain = view(xdp, None, None);
        let noted = view(xdp, None, Some(note));
        let expect = format!("rvsadm: note: tcp 10.0.0.3:80: {note}\n");
        assert_eq!(said(&noted, None), expect, "a new service");
        assert_eq!(
            said(&noted, Some(&plain)),
            expect,
            "a change that brings it"
        );
        assert_eq!(said(&noted, Some(&noted)), "", "unchanged: not repeated");
        assert_eq!(said(&plain, Some(&noted)), "", "gone: nothing to say");
        let other = view(
            xdp,
            None,
            Some("on the xdp engine: not applied: scheduler lc"),
        );
        assert!(
            said(&other, Some(&noted)).contains("scheduler lc"),
            "altered"
        );
    }

    #[test]
    fn unserved_wins_over_a_note_and_says_whether_it_was_served() {
        let why = "forwarding method DR needs the xdp engine";
        let unserved = view(None, Some(why), None);
        let served = view(Some(EngineKind::Proxy), None, None);
        assert_eq!(
            said(&unserved, Some(&served)),
            format!("rvsadm: warning: tcp 10.0.0.3:80 is no longer served: {why}\n")
        );
        assert_eq!(
            said(&unserved, Some(&unserved)),
            format!("rvsadm: warning: tcp 10.0.0.3:80 is not served: {why}\n")
        );
        assert_eq!(
            said(&unserved, None),
            format!("rvsadm: warning: tcp 10.0.0.3:80 is not served: {why}\n")
        );
    }
}
