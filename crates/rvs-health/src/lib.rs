//! # rvs-health — keepalived's health checkers, and the supervisor that runs them
//!
//! Checkers, one file each: [`tcp`] (`TCP_CHECK` by connect) and [`syn`] (`TCP_CHECK` by a SYN
//! on a shared raw socket, the default when permitted), [`http`] (`HTTP_GET`, and `SSL_GET` over
//! [`tls`]), [`udp`] (`UDP_CHECK`), [`dns`] (`DNS_CHECK`), [`misc`] (`MISC_CHECK`), [`ping`]
//! (`PING_CHECK`), [`smtp`] (`SMTP_CHECK`). [`run::run_check`] runs any of them once; [`script`]
//! runs scripts as the configured user and group. Their
//! configuration is the keepalived model in [`rvs_config::keepalived`]; the decisions (retries,
//! thresholds, quorum, sorry server) are the pure state machines of [`rvs_core::health`].
//!
//! ## Using it from the daemon
//!
//! ```no_run
//! # async fn demo(path: &std::path::Path) {
//! use rvs_health::{HealthSupervisor, SupervisorEvent};
//! let cfg = rvs_config::keepalived::load(path).unwrap();
//! // inside a tokio runtime:
//! let (supervisor, mut events) = HealthSupervisor::start(&cfg.virtual_servers);
//! while let Some(ev) = events.recv().await {
//!     match ev {
//!         // set RealServer::health / dynamic_weight on the desired state, then diff + apply;
//!         // `inhibit` = keep the real listed at weight 0 while down (inhibit_on_failure)
//!         SupervisorEvent::Real(h) => { let _ = (h.service, h.real, h.health, h.dynamic_weight); }
//!         // add (active) / remove the sorry server as a real of the service
//!         // (inhibit: keep it at weight 0 instead of removing it)
//!         // (method: sorry_server_lvs_method, None = the service's)
//!         SupervisorEvent::SorryServer { service, addr, active, inhibit, method } => { let _ = (service, addr, active, inhibit, method); }
//!         // informational (quorum_up / quorum_down commands are already run)
//!         SupervisorEvent::Quorum { .. } => {}
//!     }
//! }
//! // listings: supervisor.status() gives health, since, last_error per real
//! supervisor.shutdown().await; // runs omega notifications
//! # }
//! ```
//!
//! * Events arrive on an unbounded channel: the initial state of every real at start, then one
//!   [`HealthEvent`] per transition or dynamic-weight change.
//! * Notify commands (`notify_up`, `notify_down`, `quorum_up`, `quorum_down`) run through
//!   `/bin/sh -c` as their user and group (if given), detached, killed after 30 s.
//! * [`HealthSupervisor::stats`] gives checks run, failures, transitions and the lateness of
//!   check starts against their schedule (p50/p99/max).

pub mod connect;
pub mod dns;
pub mod error;
pub mod http;
pub mod misc;
mod notify;
pub mod ping;
pub mod run;
pub mod script;
pub mod smtp;
pub mod stats;
pub mod supervisor;
pub mod syn;
pub mod tcp;
pub mod tls;
pub mod udp;

pub use error::CheckError;
pub use run::run_check;
pub use stats::StatsSnapshot;
pub use supervisor::{HealthEvent, HealthSupervisor, RealStatus, SupervisorEvent};
pub use syn::{SynProber, SynStats, TcpProber};
