//! The control API (the contract is `rvs_api`; the description is `docs/api.md` and
//! `docs/openapi.json`): the router, errors as [`rvs_api::ErrorBody`], JSON and id parsing that
//! answer 400 with a reason, and the bearer-token check for TCP listeners.

mod dups;
mod error;
mod metrics;
mod misc;
mod options;
mod services;
mod strict;

pub use error::ApiError;

use crate::daemon::Daemon;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::{Arc, Mutex};

/// The daemon as the handlers share it.
pub type Shared = Arc<Mutex<Daemon>>;

/// Every route the server answers: (path, methods). Tests check it against `docs/openapi.json`.
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/v1/health", &["GET"]),
    ("/v1/ready", &["GET"]),
    ("/v1/services", &["GET", "POST", "DELETE"]),
    ("/v1/services/{id}", &["GET", "PUT", "DELETE"]),
    ("/v1/services/{id}/reals", &["GET", "POST"]),
    ("/v1/services/{id}/reals/{addr}", &["GET", "PUT", "DELETE"]),
    ("/v1/timeouts", &["GET", "PUT"]),
    ("/v1/state", &["GET", "PUT"]),
    ("/v1/connections", &["GET"]),
    ("/v1/stats", &["GET"]),
    ("/v1/stats/zero", &["POST"]),
    ("/metrics", &["GET"]),
];

/// The API router over the shared daemon.
pub fn router(daemon: Shared) -> Router {
    Router::new()
        .route("/v1/health", get(misc::health))
        .route("/v1/ready", get(misc::ready))
        .route(
            "/v1/services",
            get(services::list)
                .post(services::create)
                .delete(services::clear),
        )
        .route(
            "/v1/services/{id}",
            get(services::show)
                .put(services::edit)
                .delete(services::remove),
        )
        .route(
            "/v1/services/{id}/reals",
            get(services::list_reals).post(services::add_real),
        )
        .route(
            "/v1/services/{id}/reals/{addr}",
            get(services::show_real)
                .put(services::edit_real)
                .delete(services::remove_real),
        )
        .route(
            "/v1/timeouts",
            get(misc::get_timeouts).put(misc::put_timeouts),
        )
        .route(
            "/v1/state",
            get(misc::get_state)
                .put(misc::put_state)
                .layer(DefaultBodyLimit::max(STATE_BODY_LIMIT)),
        )
        .route("/v1/connections", get(misc::connections))
        .route("/v1/stats", get(misc::stats))
        .route("/v1/stats/zero", post(misc::zero))
        .route("/metrics", get(metrics::metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such path") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this path",
            )
        })
        .layer(middleware::map_response(error_body))
        .with_state(daemon)
}

/// Largest body of `PUT /v1/state` (`rvsadm -R`): 64 MiB, about 100,000 services with a real
/// each as `GET /v1/state` writes them (~600 bytes a service). Other bodies keep axum's 2 MB.
pub const STATE_BODY_LIMIT: usize = 64 << 20;

/// Errors raised before a handler runs (axum's rejections: a body over the limit, a path that
/// is not UTF-8) are plain text; they become an [`rvs_api::ErrorBody`] like every other error.
async fn error_body(res: Response) -> Response {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let kind = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::BAD_REQUEST => "bad_request",
        _ => "http_error",
    };
    let text = axum::body::to_bytes(res.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "{text}: at most {} MiB for PUT /v1/state, 2 MiB for other bodies",
            STATE_BODY_LIMIT >> 20
        ),
        _ => text,
    };
    ApiError::new(status, kind, error).into_response()
}

/// The router for a TCP listener: every request needs `Authorization: Bearer <token>`.
pub fn tcp_router(daemon: Shared, token: String) -> Router {
    let token = Arc::new(token);
    router(daemon).layer(middleware::from_fn(move |req: Request, next: Next| {
        let token = token.clone();
        async move { check_token(&token, req, next).await }
    }))
}

async fn check_token(token: &str, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => next.run(req).await,
        _ => {
            let mut res = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required",
            )
            .into_response();
            // RFC 9110 §11.6.1: a 401 names the scheme it wants.
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"rvsd\""),
            );
            res
        }
    }
}

/// The credentials of `Bearer <token>`; the scheme is case-insensitive (RFC 9110 §11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lock the daemon (a poisoned lock is still usable: every edit commits atomically).
pub(crate) fn lock(d: &Shared) -> std::sync::MutexGuard<'_, Daemon> {
    d.lock().unwrap_or_else(|p| p.into_inner())
}
