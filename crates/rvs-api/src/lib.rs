//! # rvs-api — the control API contract between `rvsd` and its clients
//!
//! HTTP + JSON over a unix socket (`/run/rvs/rvsd.sock` as root, `$XDG_RUNTIME_DIR/rvs/rvsd.sock`
//! or `/tmp/rvs-$UID/rvsd.sock` otherwise), optionally TCP with a bearer token. This crate holds
//! only the paths and bodies, so the daemon and every client agree on one definition.
//!
//! | method | path | body → response |
//! | --- | --- | --- |
//! | GET | `/v1/health` | → [`Health`] (liveness) |
//! | GET | `/v1/ready` | → [`Health`], 503 until the first config is applied |
//! | GET | `/v1/services` | → `[ServiceView]` |
//! | POST | `/v1/services` | [`NewService`] → 201 `ServiceView`; 409 if it exists |
//! | DELETE | `/v1/services` | clear all (`-C`) → 204 |
//! | GET / PUT / DELETE | `/v1/services/{id}` | PUT [`ServiceOptions`] (`-E`) |
//! | POST | `/v1/services/{id}/reals` | [`RealServer`] (`-a`) → 201 |
//! | PUT / DELETE | `/v1/services/{id}/reals/{addr}` | PUT [`RealServer`] (`-e`); DELETE `?reset=true` also cuts its connections |
//! | GET / PUT | `/v1/timeouts` | [`Timeouts`] (`--set`) |
//! | GET / PUT | `/v1/state` | [`DesiredState`]: PUT replaces everything atomically (`-R`) |
//! | GET | `/v1/connections` | → `[ConnectionInfo]` (`-Lc`) |
//! | GET | `/v1/stats` | → [`StatsView`] |
//! | POST | `/v1/stats/zero` | `?service={id}` optional (`-Z`) → 204 |
//! | GET | `/metrics` | Prometheus text |
//!
//! `{id}` is a [`ServiceId`] in its text form: `tcp:10.0.0.3:80`, `udp:[2001:db8::1]:53`,
//! `sctp:10.0.0.3:9`, `fwmark:1`, `fwmark6:1`. `{addr}` is `10.0.0.7:80` or `[2001:db8::7]:80`.
//! Every error is a 4xx/5xx with an [`ErrorBody`].

mod id;
mod socket;
mod view;

pub use id::*;
pub use socket::*;
pub use view::*;

pub use rvs_core::desired::{DesiredState, Timeouts};
pub use rvs_core::engine::{ConnectionInfo, Counters, EngineKind, Rates, RealStats};
pub use rvs_core::model::{RealServer, ServiceKey, ServiceOptions};

/// API version prefix.
pub const PREFIX: &str = "/v1";
/// Socket path when running as root.
pub const ROOT_SOCKET: &str = "/run/rvs/rvsd.sock";
