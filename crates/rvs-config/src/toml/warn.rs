//! Settings rvs accepts but that have no effect as written, reported as located warnings (as
//! keepalived.conf's keywords rvs does not implement are): the operator meant something by
//! them, and silence would let them believe it happens. Warnings never change what is loaded.
//!
//! Two kinds:
//!
//! * decided by the file alone (`file_warnings`): `local_addresses` on a service without a
//!   FULLNAT real; proxy options or a PROXY header on a service or real the proxy engine never
//!   serves (firewall-mark or SCTP, pinned to the xdp engine, or DR/TUN/NAT reals); scheduler flags of another
//!   scheduler; `one_packet` on TCP/SCTP; the proxy's connect and idle options on UDP;
//!   `fail_timeout_ms` with `max_fails = 0`; `lower_threshold` without `upper_threshold`;
//!   `xdp_icmp_burst` with `xdp_icmp_rate = 0`;
//! * decided by which engines run ([`EngineSetting`], [`engine_warnings`]): the `xdp_*` keys and
//!   `[timeouts.tcp_states]` without the xdp engine, the `proxy_*` keys, `[service.proxy]` and
//!   `proxy_protocol` without the proxy engine. Command-line flags choose the engines and root
//!   is needed for xdp, so rvsd asks once they are started.

use super::convert::Reporter;
use super::raw::{RawDaemon, RawFile, RawFlag, RawProxy, RawService};
use crate::error::{ConfigError, Location};
use rvs_core::engine::EngineKind;
use rvs_core::model::{EnginePin, ForwardMethod, Protocol, SchedulerKind};
use std::collections::BTreeMap;
use std::ops::Range;

/// A setting of the file that only `engine` uses, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSetting {
    pub engine: EngineKind,
    /// How the warning names it (`xdp_nat_conns`, `[service.proxy]`, ...).
    pub key: String,
    pub location: Location,
}

/// The warnings for `settings` whose engine is not running: `not_running(engine)` says why
/// (`None` when it runs).
pub fn engine_warnings(
    settings: &[EngineSetting],
    not_running: impl Fn(EngineKind) -> Option<String>,
) -> Vec<ConfigError> {
    settings
        .iter()
        .filter_map(|s| {
            let why = not_running(s.engine)?;
            Some(ConfigError {
                location: s.location.clone(),
                message: format!(
                    "{} has no effect: the {} engine is not running ({why})",
                    s.key,
                    s.engine.name()
                ),
            })
        })
        .collect()
}

/// What the walk over the file found.
pub(super) struct Found {
    pub warnings: Vec<ConfigError>,
    pub settings: Vec<EngineSetting>,
    /// Where each `[daemon]` key given is.
    pub daemon_keys: BTreeMap<String, Location>,
}

/// Collects both kinds while walking the file.
struct Findings<'r, 'a> {
    rep: &'r Reporter<'a>,
    warnings: Vec<ConfigError>,
    settings: Vec<EngineSetting>,
}

impl Findings<'_, '_> {
    fn location(&self, span: Range<usize>) -> Location {
        self.rep.at(span, String::new()).location
    }

    fn warn(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.warnings.push(self.rep.at(span, message));
    }

    fn engine_only(&mut self, engine: EngineKind, key: &str, span: Range<usize>) {
        let location = self.location(span);
        self.settings.push(EngineSetting {
            engine,
            key: key.to_string(),
            location,
        });
    }
}

/// Both kinds of finding for a file that deserialized (in the order of the file's sections),
/// and where the `[daemon]` keys are.
pub(super) fn file_warnings(raw: &RawFile, rep: &Reporter<'_>) -> Found {
    let mut f = Findings {
        rep,
        warnings: Vec::new(),
        settings: Vec::new(),
    };
    daemon(raw, &mut f);
    for svc in &raw.services {
        service(svc.get_ref(), &mut f);
    }
    Found {
        daemon_keys: daemon_keys(&raw.daemon)
            .into_iter()
            .filter_map(|(k, span)| Some((k.to_string(), f.location(span?))))
            .collect(),
        warnings: f.warnings,
        settings: f.settings,
    }
}

/// The `[daemon]` keys a command-line flag can override, with their values' spans.
fn daemon_keys(d: &RawDaemon) -> [(&'static str, Option<Range<usize>>); 7] {
    [
        ("socket", d.socket.as_ref().map(|v| v.span())),
        ("listen", d.listen.as_ref().map(|v| v.span())),
        ("token_file", d.token_file.as_ref().map(|v| v.span())),
        ("engines", d.engines.as_ref().map(|v| v.span())),
        (
            "xdp_interfaces",
            d.xdp_interfaces.as_ref().map(|v| v.span()),
        ),
        ("proxy_workers", d.proxy_workers.as_ref().map(|v| v.span())),
        ("log_level", d.log_level.as_ref().map(|v| v.span())),
    ]
}

fn daemon(raw: &RawFile, f: &mut Findings<'_, '_>) {
    let d = &raw.daemon;
    let xdp = [
        (
            "xdp_interfaces",
            d.xdp_interfaces.as_ref().map(|v| v.span()),
        ),
        ("xdp_nat_conns", d.xdp_nat_conns.as_ref().map(|v| v.span())),
        ("xdp_icmp_rate", d.xdp_icmp_rate.as_ref().map(|v| v.span())),
        (
            "xdp_icmp_burst",
            d.xdp_icmp_burst.as_ref().map(|v| v.span()),
        ),
        (
            "xdp_keep_on_exit",
            d.xdp_keep_on_exit.as_ref().map(|v| v.span()),
        ),
    ];
    for (key, span) in xdp {
        if let Some(span) = span {
            f.engine_only(EngineKind::Xdp, key, span);
        }
    }
    // the first state in the file (the map is ordered by name)
    if let Some(first) = raw
        .timeouts
        .tcp_states
        .keys()
        .map(|k| k.span())
        .min_by_key(|s| s.start)
    {
        f.engine_only(EngineKind::Xdp, "[timeouts.tcp_states]", first);
    }
    let proxy = [
        ("proxy_workers", d.proxy_workers.as_ref().map(|v| v.span())),
        (
            "proxy_udp_sessions",
            d.proxy_udp_sessions.as_ref().map(|v| v.span()),
        ),
        (
            "proxy_max_conns",
            d.proxy_max_conns.as_ref().map(|v| v.span()),
        ),
        ("proxy_splice", d.proxy_splice.as_ref().map(|v| v.span())),
        ("stop_grace_ms", d.stop_grace_ms.as_ref().map(|v| v.span())),
    ];
    for (key, span) in proxy {
        if let Some(span) = span {
            f.engine_only(EngineKind::Proxy, key, span);
        }
    }
    if let (Some(rate), Some(burst)) = (&d.xdp_icmp_rate, &d.xdp_icmp_burst)
        && *rate.get_ref() == 0
    {
        f.warn(
            burst.span(),
            "xdp_icmp_burst has no effect with xdp_icmp_rate = 0 (no limit at all)",
        );
    }
}

/// Why the proxy engine never serves `svc` as written (`None`: it may).
fn never_on_proxy(svc: &RawService) -> Option<String> {
    match protocol(svc) {
        None => return Some("the proxy engine relays no firewall-mark service".into()),
        Some(Protocol::Sctp) => return Some("the proxy engine relays TCP and UDP only".into()),
        Some(Protocol::Tcp | Protocol::Udp) => {}
    }
    if svc.engine == EnginePin::Xdp {
        return Some("it is pinned to the xdp engine".into());
    }
    svc.reals
        .iter()
        .map(|r| r.get_ref())
        .find(|r| r.method.unwrap_or_default() != ForwardMethod::FullNat)
        .map(|r| {
            format!(
                "its real {} uses {}, which only the xdp engine forwards",
                r.address.get_ref(),
                r.method.unwrap_or_default().short_name()
            )
        })
}

/// The protocol of an address service (`None` for a firewall-mark service).
fn protocol(svc: &RawService) -> Option<Protocol> {
    svc.fwmark
        .is_none()
        .then(|| svc.protocol.unwrap_or(Protocol::Tcp))
}

fn service(svc: &RawService, f: &mut Findings<'_, '_>) {
    let reals = || svc.reals.iter().map(|r| r.get_ref());
    if let Some(list) = &svc.local_addresses
        && !svc.reals.is_empty()
        && reals().all(|r| r.method.unwrap_or_default() != ForwardMethod::FullNat)
    {
        f.warn(
            list.span(),
            "local_addresses has no effect: this service has no FULLNAT real (only FULLNAT \
             rewrites the client's address to a local address)",
        );
    }
    let off_proxy = never_on_proxy(svc);
    if let Some(p) = &svc.proxy {
        match &off_proxy {
            Some(why) => f.warn(
                p.span(),
                format!(
                    "[service.proxy] has no effect: the proxy engine never serves this service \
                     ({why})"
                ),
            ),
            None => {
                f.engine_only(EngineKind::Proxy, "[service.proxy]", p.span());
                proxy_options(p.get_ref(), protocol(svc), f);
            }
        }
    }
    for real in reals() {
        let Some(pp) = &real.proxy_protocol else {
            continue;
        };
        let method = real.method.unwrap_or_default();
        if method != ForwardMethod::FullNat {
            f.warn(
                pp.span(),
                format!(
                    "proxy_protocol has no effect on a {} real: only the proxy engine sends a \
                     PROXY protocol header, and it forwards to FULLNAT reals only",
                    method.short_name()
                ),
            );
        } else if let Some(why) = &off_proxy {
            f.warn(
                pp.span(),
                format!(
                    "proxy_protocol has no effect: only the proxy engine sends a PROXY protocol \
                     header, and it never serves this service ({why})"
                ),
            );
        } else {
            f.engine_only(EngineKind::Proxy, "proxy_protocol", pp.span());
        }
    }
    for real in reals() {
        if let Some(lower) = &real.lower_threshold
            && *lower.get_ref() > 0
            && real.upper_threshold == 0
        {
            f.warn(
                lower.span(),
                "lower_threshold has no effect without upper_threshold (0 = no threshold): \
                 it is where a real above its upper threshold gets new connections again",
            );
        }
    }
    flags(svc, f);
    if let (Some(o), Some(proto @ (Protocol::Tcp | Protocol::Sctp))) =
        (&svc.one_packet, protocol(svc))
        && *o.get_ref()
    {
        f.warn(
            o.span(),
            format!(
                "one_packet has no effect on a {} service: one-packet scheduling is for UDP",
                proto.ipvs_name()
            ),
        );
    }
}

/// Scheduler flags of a scheduler the service does not use.
fn flags(svc: &RawService, f: &mut Findings<'_, '_>) {
    let scheduler = svc.scheduler.unwrap_or_default();
    for flag in &svc.flags {
        let (name, owner) = match flag.get_ref() {
            RawFlag::ShFallback => ("sh-fallback", SchedulerKind::Sh),
            RawFlag::ShPort => ("sh-port", SchedulerKind::Sh),
            RawFlag::MhFallback => ("mh-fallback", SchedulerKind::Mh),
            RawFlag::MhPort => ("mh-port", SchedulerKind::Mh),
        };
        if scheduler != owner {
            f.warn(
                flag.span(),
                format!(
                    "flag {name} has no effect with scheduler \"{}\": it is a flag of scheduler \
                     \"{}\"",
                    scheduler.name(),
                    owner.name()
                ),
            );
        }
    }
}

/// `[service.proxy]` options the service's protocol or other options make moot.
fn proxy_options(p: &RawProxy, protocol: Option<Protocol>, f: &mut Findings<'_, '_>) {
    if protocol == Some(Protocol::Udp) {
        let tcp_only = [
            (
                "connect_timeout_ms",
                p.connect_timeout_ms.as_ref().map(|v| v.span()),
                "the proxy engine connects nothing for UDP",
            ),
            (
                "connect_retries",
                p.connect_retries.as_ref().map(|v| v.span()),
                "the proxy engine connects nothing for UDP",
            ),
            (
                "idle_timeout_ms",
                p.idle_timeout_ms.as_ref().map(|v| v.span()),
                "a UDP session ends after [timeouts] udp",
            ),
        ];
        for (key, span, why) in tcp_only {
            if let Some(span) = span {
                f.warn(
                    span,
                    format!("proxy.{key} has no effect on a UDP service: {why}"),
                );
            }
        }
    }
    if let (Some(0), Some(t)) = (p.max_fails, &p.fail_timeout_ms) {
        f.warn(
            t.span(),
            "proxy.fail_timeout_ms has no effect with max_fails = 0 (passive failure detection \
             is off)",
        );
    }
}
