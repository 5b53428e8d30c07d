//! One check of one real, whatever its kind.

use crate::error::CheckError;
use crate::{dns, http, misc, ping, smtp, tcp, udp};
use rvs_config::keepalived::{CheckKind, Checker};
use std::net::SocketAddr;

/// Run `checker` once against the real at `real` (its `connect_ip`/`connect_port` applied).
/// `vs_host` is the virtual server's `virtualhost`; `seq` varies per run (DNS id, ICMP seq).
/// Ok carries a `misc_dynamic` weight when the script set one.
pub async fn run_check(
    checker: &Checker,
    real: SocketAddr,
    vs_host: Option<&str>,
    seq: u16,
) -> Result<Option<u32>, CheckError> {
    let target = checker.target(real);
    match &checker.kind {
        CheckKind::Tcp => tcp::check(checker, target).await.map(|_| None),
        CheckKind::Http(h) => http::check(checker, h, target, false, vs_host)
            .await
            .map(|_| None),
        CheckKind::Ssl(h) => http::check(checker, h, target, true, vs_host)
            .await
            .map(|_| None),
        CheckKind::Udp(u) => udp::check(checker, u, target).await.map(|_| None),
        CheckKind::Dns(d) => dns::check(checker, d, target, seq).await.map(|_| None),
        CheckKind::Misc(m) => misc::check(checker, m).await,
        CheckKind::Ping => ping::check(checker, target, seq).await.map(|_| None),
        CheckKind::Smtp(s) => smtp::check(checker, s, target).await.map(|_| None),
    }
}
