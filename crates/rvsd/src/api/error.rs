//! API errors: a status and an [`ErrorBody`] with a stable `kind`; parsing helpers for JSON
//! bodies, service ids and real addresses that fail with 400 and say why.

use crate::daemon::UpdateError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rvs_api::{ErrorBody, ServiceId};
use rvs_core::desired::StateError;
use rvs_core::model::ServiceKey;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::net::SocketAddr;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &str, error: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                kind: kind.into(),
            },
        }
    }

    pub fn bad_request(kind: &str, error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        let (status, kind) = match &e {
            StateError::ServiceExists(_) => (StatusCode::CONFLICT, "service_exists"),
            StateError::RealExists { .. } => (StatusCode::CONFLICT, "real_exists"),
            StateError::NoSuchService(_) => (StatusCode::NOT_FOUND, "no_such_service"),
            StateError::NoSuchReal { .. } => (StatusCode::NOT_FOUND, "no_such_real"),
            StateError::WeightOutOfRange(_) => (StatusCode::BAD_REQUEST, "weight_out_of_range"),
            StateError::ThresholdOrder { .. } => (StatusCode::BAD_REQUEST, "threshold_order"),
            StateError::BadNetmask { .. } => (StatusCode::BAD_REQUEST, "bad_netmask"),
            StateError::FamilyMismatch { .. } => (StatusCode::BAD_REQUEST, "family_mismatch"),
            StateError::ZeroFwMark => (StatusCode::BAD_REQUEST, "zero_fwmark"),
            StateError::ZeroPersistence => (StatusCode::BAD_REQUEST, "zero_persistence"),
            StateError::PortZeroWithoutPersistence(_) => {
                (StatusCode::BAD_REQUEST, "port_zero_without_persistence")
            }
        };
        ApiError::new(status, kind, e.to_string())
    }
}

impl From<UpdateError> for ApiError {
    fn from(e: UpdateError) -> Self {
        match e {
            UpdateError::State(s) => s.into(),
            UpdateError::Invalid(v) => ApiError::bad_request("invalid_state", v.join("; ")),
            e @ UpdateError::Stopping => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", e.to_string())
            }
        }
    }
}

/// Parse a JSON body (400 `bad_json` with serde's reason and position otherwise, for a key
/// given twice in one object ([`super::dups`]) and for fields the body type does not have
/// ([`super::strict`])).
pub fn json<T: DeserializeOwned + Serialize>(body: &[u8]) -> Result<T, ApiError> {
    let bad = |e: String| ApiError::bad_request("bad_json", format!("malformed JSON body: {e}"));
    let parsed: T = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let given: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let known = serde_json::to_value(&parsed).map_err(|e| bad(e.to_string()))?;
    let mut unknown = super::dups::duplicate_keys(body).map_err(|e| bad(e.to_string()))?;
    unknown.extend(super::strict::unknown_fields(&given, &known));
    if unknown.is_empty() {
        Ok(parsed)
    } else {
        Err(bad(unknown.join("; ")))
    }
}

/// Parse a `{id}` path segment.
pub fn service_id(s: &str) -> Result<ServiceKey, ApiError> {
    s.parse::<ServiceId>()
        .map(|id| id.0)
        .map_err(|e| ApiError::bad_request("bad_service_id", e.to_string()))
}

/// Parse a `{addr}` path segment.
pub fn real_addr(s: &str) -> Result<SocketAddr, ApiError> {
    s.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_real_addr",
            format!(
                "bad real address '{s}': expected ADDR:PORT such as 10.0.0.7:80 or [2001:db8::7]:80"
            ),
        )
    })
}
