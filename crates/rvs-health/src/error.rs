//! Why a check failed.

use std::io;
use std::time::Duration;

/// A failed check, with enough detail for `last_error` in listings.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connect failed: {0}")]
    Connect(io::Error),
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("bad HTTP response: {0}")]
    BadResponse(String),
    #[error("HTTP status {got} not accepted for {path}")]
    Status { path: String, got: u16 },
    #[error("digest mismatch for {path}: got {got}, expected {expected}")]
    Digest {
        path: String,
        got: String,
        expected: String,
    },
    #[error("unexpected reply: {0}")]
    Reply(String),
    #[error("port unreachable")]
    Unreachable,
    #[error("DNS: {0}")]
    Dns(String),
    #[error("script exited with status {0}")]
    ScriptExit(i32),
    #[error("script killed by signal")]
    ScriptSignal,
    #[error("cannot run script: {0}")]
    Spawn(io::Error),
    #[error("no such user '{0}'")]
    NoSuchUser(String),
    #[error("no such group '{0}'")]
    NoSuchGroup(String),
    #[error("SMTP: {0}")]
    Smtp(String),
    #[error("ICMP: {0}")]
    Icmp(String),
}

/// Run `fut` with a deadline, mapping expiry to [`CheckError::Timeout`].
pub async fn with_timeout<T>(
    limit: Duration,
    fut: impl Future<Output = Result<T, CheckError>>,
) -> Result<T, CheckError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(CheckError::Timeout(limit)),
    }
}
