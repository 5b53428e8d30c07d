//! Services and their reals: ipvsadm's `-A -E -D -C -a -e -d` as resources.

use super::error::{json, real_addr, service_id};
use super::options::option_errors;
use super::{ApiError, Shared, lock};
use crate::daemon::{Daemon, RemoveRealError, UpdateError};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rvs_api::{NewService, RealView, ServiceView};
use rvs_core::desired::StateError;
use rvs_core::model::{Health, RealServer, ServiceKey, ServiceOptions};
use serde::Deserialize;
use std::net::SocketAddr;

fn view(d: &Daemon, key: &ServiceKey) -> Result<ServiceView, ApiError> {
    let svc = d
        .desired()
        .services
        .get(key)
        .ok_or(StateError::NoSuchService(*key))?;
    let (stats, _) = d.engines().stats();
    Ok(d.service_view(svc, &stats))
}

fn real_view(d: &Daemon, key: &ServiceKey, addr: &SocketAddr) -> Result<RealView, ApiError> {
    view(d, key)?
        .reals
        .into_iter()
        .find(|r| r.real.addr == *addr)
        .ok_or_else(|| {
            StateError::NoSuchReal {
                service: *key,
                real: *addr,
            }
            .into()
        })
}

fn checked_options(key: &ServiceKey, options: &ServiceOptions) -> Result<(), ApiError> {
    let errors = option_errors(key, options);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(UpdateError::Invalid(errors).into())
    }
}

pub async fn list(State(d): State<Shared>) -> Json<Vec<ServiceView>> {
    Json(lock(&d).stats_view().services)
}

pub async fn create(State(d): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let new: NewService = json(&body)?;
    checked_options(&new.key, &new.options)?;
    let mut d = lock(&d);
    d.update(|s| Ok(s.add_service(new.key, new.options)?))?;
    Ok((StatusCode::CREATED, Json(view(&d, &new.key)?)).into_response())
}

pub async fn clear(State(d): State<Shared>) -> Result<StatusCode, ApiError> {
    lock(&d).update(|s| {
        s.clear();
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn show(
    State(d): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<ServiceView>, ApiError> {
    let key = service_id(&id)?;
    Ok(Json(view(&lock(&d), &key)?))
}

pub async fn edit(
    State(d): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<ServiceView>, ApiError> {
    let key = service_id(&id)?;
    let options: ServiceOptions = json(&body)?;
    checked_options(&key, &options)?;
    let mut d = lock(&d);
    d.update(|s| Ok(s.edit_service(key, options)?))?;
    Ok(Json(view(&d, &key)?))
}

pub async fn remove(
    State(d): State<Shared>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key = service_id(&id)?;
    lock(&d).update(|s| Ok(s.remove_service(&key).map(|_| ())?))?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_reals(
    State(d): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Vec<RealView>>, ApiError> {
    let key = service_id(&id)?;
    Ok(Json(view(&lock(&d), &key)?.reals))
}

pub async fn add_real(
    State(d): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = service_id(&id)?;
    let mut real: RealServer = json(&body)?;
    // Observed health is the daemon's to set, never the operator's.
    real.health = Health::Unknown;
    real.dynamic_weight = None;
    real.quorum_gated = false;
    let mut d = lock(&d);
    d.update(|s| Ok(s.add_real(&key, real)?))?;
    Ok((StatusCode::CREATED, Json(real_view(&d, &key, &real.addr)?)).into_response())
}

pub async fn show_real(
    State(d): State<Shared>,
    Path((id, addr)): Path<(String, String)>,
) -> Result<Json<RealView>, ApiError> {
    let key = service_id(&id)?;
    let addr = real_addr(&addr)?;
    Ok(Json(real_view(&lock(&d), &key, &addr)?))
}

pub async fn edit_real(
    State(d): State<Shared>,
    Path((id, addr)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<RealView>, ApiError> {
    let key = service_id(&id)?;
    let addr = real_addr(&addr)?;
    let mut real: RealServer = json(&body)?;
    if real.addr != addr {
        return Err(ApiError::bad_request(
            "addr_mismatch",
            format!(
                "the body's addr {} differs from the path's {addr}",
                real.addr
            ),
        ));
    }
    let mut d = lock(&d);
    d.update(|s| {
        let svc = s.services.get(&key).ok_or(StateError::NoSuchService(key))?;
        let old = svc.reals.get(&addr).ok_or(StateError::NoSuchReal {
            service: key,
            real: addr,
        })?;
        real.health = old.health;
        real.dynamic_weight = old.dynamic_weight;
        real.quorum_gated = old.quorum_gated;
        Ok(s.edit_real(&key, real)?)
    })?;
    Ok(Json(real_view(&d, &key, &addr)?))
}

/// `?reset=true`. Another parameter is a 400: a typo such as `?rest=true` would otherwise
/// remove the real without cutting its connections.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetQuery {
    #[serde(default)]
    reset: bool,
}

pub async fn remove_real(
    State(d): State<Shared>,
    Path((id, addr)): Path<(String, String)>,
    query: Result<Query<ResetQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let key = service_id(&id)?;
    let addr = real_addr(&addr)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let mut d = lock(&d);
    // Check it exists before asking an engine to cut anything.
    real_view(&d, &key, &addr)?;
    d.remove_real(&key, &addr, q.reset).map_err(|e| match e {
        RemoveRealError::Update(e) => e.into(),
        RemoveRealError::ResetUnsupported(why) => {
            ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_supported", why)
        }
    })?;
    Ok(StatusCode::NO_CONTENT)
}
