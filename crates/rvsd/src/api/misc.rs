//! Health, timeouts, the whole state, connections, stats and `-Z`.

use super::error::{json, service_id};
use super::{ApiError, Shared, lock};
use crate::daemon::UpdateError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rvs_api::{ConnectionInfo, Health, StatsView};
use rvs_core::desired::{DesiredState, StateError, Timeouts};
use rvs_core::engine::EngineKind;
use serde::Deserialize;

fn health_body(status: &str, engines: Vec<EngineKind>) -> Health {
    Health {
        status: status.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        engines,
    }
}

pub async fn health(State(d): State<Shared>) -> Json<Health> {
    Json(health_body("ok", lock(&d).engines().running()))
}

pub async fn ready(State(d): State<Shared>) -> Response {
    let d = lock(&d);
    let status = match (d.is_stopping(), d.is_ready()) {
        (false, true) => return Json(health_body("ok", d.engines().running())).into_response(),
        (true, _) => "stopping",
        (false, false) => "starting",
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(health_body(status, d.engines().running())),
    )
        .into_response()
}

pub async fn get_timeouts(State(d): State<Shared>) -> Json<Timeouts> {
    Json(lock(&d).desired().timeouts)
}

pub async fn put_timeouts(
    State(d): State<Shared>,
    body: Bytes,
) -> Result<Json<Timeouts>, ApiError> {
    let t: Timeouts = json(&body)?;
    let zero = zero_timeouts(&t);
    if !zero.is_empty() {
        return Err(UpdateError::Invalid(zero).into());
    }
    let mut d = lock(&d);
    d.update(|s| {
        s.timeouts = t;
        Ok(())
    })?;
    Ok(Json(d.desired().timeouts))
}

pub async fn get_state(State(d): State<Shared>) -> Json<DesiredState> {
    Json(lock(&d).desired().clone())
}

/// `-R`: replace everything atomically. The body is rebuilt through the validating edit methods
/// so every problem is reported, and nothing changes unless all of it is valid.
pub async fn put_state(
    State(d): State<Shared>,
    body: Bytes,
) -> Result<Json<DesiredState>, ApiError> {
    let given: DesiredState = json(&body)?;
    let mut rebuilt = validated(given).map_err(|v| ApiError::from(UpdateError::Invalid(v)))?;
    let mut d = lock(&d);
    crate::sources::carry_observed(d.desired(), &mut rebuilt);
    d.replace(rebuilt)?;
    Ok(Json(d.desired().clone()))
}

/// A timeout of 0 would end every connection at once (ipvsadm's `--set 0` means "leave it";
/// rvsadm sends the current value then): one error per zero field.
fn zero_timeouts(t: &Timeouts) -> Vec<String> {
    t.zero_keys()
        .into_iter()
        .map(|name| format!("timeouts.{name} must be at least 1 second"))
        .collect()
}

fn validated(given: DesiredState) -> Result<DesiredState, Vec<String>> {
    let mut out = DesiredState {
        timeouts: given.timeouts,
        ..Default::default()
    };
    let mut errors = zero_timeouts(&out.timeouts);
    for (key, svc) in given.services {
        if svc.key != key {
            errors.push(format!(
                "service entry {key} holds a service keyed {}",
                svc.key
            ));
            continue;
        }
        errors.extend(super::options::option_errors(&key, &svc.options));
        if let Err(e) = out.add_service(key, svc.options) {
            errors.push(e.to_string());
            continue;
        }
        for (addr, mut real) in svc.reals {
            // Observed health is the daemon's to set, never the operator's (as for `POST
            // .../reals`): reals kept from the current state get theirs back afterwards.
            real.health = rvs_core::model::Health::Unknown;
            real.dynamic_weight = None;
            real.quorum_gated = false;
            if real.addr != addr {
                errors.push(format!(
                    "real entry {addr} of {key} holds a real at {}",
                    real.addr
                ));
            } else if let Err(e) = out.add_real(&key, real) {
                errors.push(e.to_string());
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

pub async fn connections(State(d): State<Shared>) -> Json<Vec<ConnectionInfo>> {
    Json(lock(&d).engines().connections())
}

pub async fn stats(State(d): State<Shared>) -> Json<StatsView> {
    Json(lock(&d).stats_view())
}

/// `?service={id}`. Another parameter is a 400: a typo such as `?servce=...` would otherwise
/// zero every service's counters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroQuery {
    service: Option<String>,
}

pub async fn zero(
    State(d): State<Shared>,
    query: Result<Query<ZeroQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let key = q.service.as_deref().map(service_id).transpose()?;
    let mut d = lock(&d);
    if let Some(k) = key.filter(|k| !d.desired().services.contains_key(k)) {
        return Err(StateError::NoSuchService(k).into());
    }
    d.zero(key.as_ref());
    Ok(StatusCode::NO_CONTENT)
}
