//! # rvs-core — the pure core of rvs
//!
//! Everything the director decides, with no IO, no clock and no async runtime:
//!
//! * [`model`] — virtual services, real servers, forwarding methods, operator intent vs. health;
//! * [`scheduler`] — the IPVS schedulers, one file each, behind the [`scheduler::Scheduler`] trait;
//! * [`desired`] — the desired state of the director and the diff between two states;
//! * [`engine`] — the trait every data plane implements, and the counters it reports;
//! * [`time`] — the [`time::Timestamp`] that callers pass in (the core never reads a clock).
//!
//! Callers pass `now` and events in; the core returns decisions and changes out.
#![forbid(unsafe_code)]

pub mod conn;
pub mod desired;
pub mod engine;
pub mod health;
pub mod maglev;
pub mod model;
pub mod passive;
pub mod persistence;
pub mod runtime;
pub mod scheduler;
pub mod time;

pub use model::*;
pub use time::Timestamp;
