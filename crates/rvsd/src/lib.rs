//! # rvsd — the rvs daemon
//!
//! Reads the desired state ([`sources`]: native TOML, ipvsadm rule files), validates all of it
//! before binding anything, starts the engines ([`start`]) and places every service on one of
//! them ([`engines`]), applies the state as diffs ([`daemon`]), and serves the control API
//! ([`api`], bound by [`server`]) until SIGTERM; SIGHUP reloads ([`run`]).

pub mod api;
pub mod args;
pub mod daemon;
pub mod engines;
pub mod health;
pub mod run;
pub mod server;
pub mod sources;
pub mod start;
