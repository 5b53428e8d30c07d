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

/// Run `cmd`: talk to rvsd through `client`, read rules from `input`, print to `out`.
pub fn run(
    cmd: Command,
    client: &Client,
    input: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<(), RunError> {
    match cmd {
        Command::AddService { key, options } => {
            client.send(Method::POST, "/v1/services", &NewService { key, options })?
        }
        Command::EditService { key, mut options } => {
            let cur: ServiceView = client.get(&service_path(&key))?;
            options.engine = cur.options.engine;
            options.proxy = cur.options.proxy;
            client.send(Method::PUT, &service_path(&key), &options)?
        }
        Command::DeleteService { key } => client
            .request(Method::DELETE, &service_path(&key), None)
            .map(|_| ())?,
        Command::AddReal { service, real } => client.send(
            Method::POST,
            &format!("{}/reals", service_path(&service)),
            &real,
        )?,
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
            client.send(Method::PUT, &real_path(&service, &real.addr), &real)?
        }
        Command::DeleteReal { service, addr } => client
            .request(Method::DELETE, &real_path(&service, &addr), None)
            .map(|_| ())?,
        Command::Clear => client
            .request(Method::DELETE, "/v1/services", None)
            .map(|_| ())?,
        Command::Restore => restore(client, input)?,
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
/// the rules `--set` them, and the rvs-only settings of services and reals that stay), and replace the daemon's state in one `PUT /v1/state`.
fn restore(client: &Client, input: &mut dyn Read) -> Result<(), RunError> {
    let mut text = String::new();
    input.read_to_string(&mut text)?;
    let current: DesiredState = client.get("/v1/state")?;
    let base = DesiredState {
        timeouts: current.timeouts,
        ..Default::default()
    };
    let mut state = ipvsadm::apply_rules(&text, Path::new("-"), base)?;
    ipvsadm::carry_unexpressed(&current, &mut state);
    client.send(Method::PUT, "/v1/state", &state)?;
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
