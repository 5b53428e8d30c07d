//! `TCP_CHECK`: the real is up when a TCP connect to it succeeds within `connect_timeout`.

use crate::connect::connect;
use crate::error::CheckError;
use rvs_config::keepalived::Checker;
use std::net::SocketAddr;

/// Connect, then close at once (as keepalived does).
pub async fn check(checker: &Checker, target: SocketAddr) -> Result<(), CheckError> {
    let stream = connect(checker, target).await?;
    // no lingering TIME_WAIT storm on the checker side for 10k reals: reset on close
    let _ = stream.set_zero_linger();
    drop(stream);
    Ok(())
}
