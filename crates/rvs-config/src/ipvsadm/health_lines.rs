//! rvs addition to `-L -n`: what the health checkers (keepalived.conf) observed.
//!
//! ipvsadm under keepalived never lists a real that its checkers took down (keepalived removes
//! it from IPVS) unless `inhibit_on_failure` keeps it at weight 0. rvsadm does the same — a
//! down real without `inhibit_on_failure` gets no `  ->` line — and, after a service's reals,
//! adds one comment line per down real and one for an active sorry server:
//!
//! ```text
//!   # down: 10.0.0.8:80 since 2026-11-21T20:17:58Z: connect failed: Connection refused
//!   # sorry_server: 10.0.0.9:80 serves (no real up / quorum lost)
//! ```
//!
//! Scripts that parse ipvsadm output match lines that start with a protocol or `  ->`, so they
//! skip these.

use rvs_api::RealView;
use rvs_core::model::Health;
use std::fmt::Write;

/// Whether `-L` shows this real's `  ->` line.
pub fn listed(r: &RealView) -> bool {
    r.health
        .as_ref()
        .is_none_or(|h| h.state != Health::Down || h.inhibit)
}

/// The comment lines for a service's reals.
pub fn comments(out: &mut String, reals: &[&RealView]) {
    for r in reals {
        let Some(h) = &r.health else { continue };
        if h.state == Health::Down {
            let _ = write!(
                out,
                "  # down: {} since {}",
                r.real.addr,
                utc(h.since_unix_ms)
            );
            if let Some(e) = &h.last_error {
                let _ = write!(out, ": {}", e.replace('\n', " "));
            }
            if h.inhibit {
                out.push_str(" (inhibit_on_failure: listed at weight 0)");
            }
            out.push('\n');
        }
        if h.sorry_server {
            let _ = writeln!(
                out,
                "  # sorry_server: {} serves (no real up / quorum lost)",
                r.real.addr
            );
        }
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // civil date from days since 1970-01-01 (Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_api::{RealHealthView, RealView};
    use rvs_core::model::{ForwardMethod, RealServer};

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_292_278_763), "2026-11-21T20:17:58Z");
    }

    fn view(state: Health, inhibit: bool) -> RealView {
        RealView {
            real: RealServer::new("10.0.0.8:80".parse().unwrap(), ForwardMethod::Dr, 1),
            effective_weight: 0,
            stats: Default::default(),
            rates: Default::default(),
            health: Some(RealHealthView {
                state,
                since_unix_ms: 0,
                last_error: Some("refused".into()),
                inhibit,
                sorry_server: false,
                quorum_gated: false,
            }),
        }
    }

    #[test]
    fn down_reals_are_hidden_unless_inhibited() {
        assert!(!listed(&view(Health::Down, false)));
        assert!(listed(&view(Health::Down, true)));
        assert!(listed(&view(Health::Up, false)));
        let mut out = String::new();
        comments(
            &mut out,
            &[&view(Health::Down, false), &view(Health::Up, false)],
        );
        assert_eq!(
            out,
            "  # down: 10.0.0.8:80 since 1970-01-01T00:00:00Z: refused\n"
        );
    }
}
