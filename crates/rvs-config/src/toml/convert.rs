//! From the file as written ([`super::raw`]) to the typed tree: every value checked, every edit
//! of the desired state made through [`DesiredState`]'s validating methods, and every problem
//! collected with its `path:line:column` (not only the first).

use super::raw::{RawDaemon, RawFile, RawFlag, RawReal, RawService};
use super::{Config, DaemonConfig};
use crate::error::{ConfigError, ConfigErrors};
use crate::local_addr::{self, ServicePools};
use ::toml::Spanned;
use rvs_core::desired::{DesiredState, StateError, TcpStateTimeouts, Timeouts};
use rvs_core::engine::EngineKind;
use rvs_core::model::{
    AddressFamily, Persistence, ProxyOptions, RealServer, SchedFlags, ServiceKey, ServiceOptions,
};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::Path;

/// Turns byte offsets into 1-based line:column and collects errors.
pub(super) struct Reporter<'a> {
    path: &'a Path,
    text: &'a str,
    /// Byte offset where each line starts (counted once: a file with many errors stays linear).
    line_starts: Vec<usize>,
    pub errors: Vec<ConfigError>,
}

impl<'a> Reporter<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Reporter {
            path,
            text,
            line_starts,
            errors: Vec::new(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        // the last line starting at or before `offset`
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let mut start = self.line_starts[line - 1];
        if start == 0 && self.text.starts_with('\u{feff}') && offset >= 3 {
            start = 3; // a byte order mark is no column an editor shows
        }
        (line, self.text[start..offset].chars().count() + 1)
    }

    /// `message`, located at the start of `span` (an error or a warning).
    pub fn at(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let (line, column) = self.line_col(span.start);
        ConfigError::new(self.path, line, column, message)
    }

    pub fn error_at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let e = self.at(span, message);
        self.errors.push(e);
    }

    pub fn finish(self) -> ConfigErrors {
        ConfigErrors(self.errors)
    }
}

/// Everything after deserialization succeeded.
pub(super) fn convert(raw: RawFile, rep: &mut Reporter<'_>) -> Config {
    let daemon = convert_daemon(raw.daemon, rep);
    let defaults = Timeouts::default();
    let t = raw.timeouts;
    let mut state = DesiredState {
        timeouts: Timeouts {
            tcp: positive(t.tcp, "timeouts.tcp", "seconds", rep).unwrap_or(defaults.tcp),
            tcp_fin: positive(t.tcp_fin, "timeouts.tcp_fin", "seconds", rep)
                .unwrap_or(defaults.tcp_fin),
            udp: positive(t.udp, "timeouts.udp", "seconds", rep).unwrap_or(defaults.udp),
            tcp_states: tcp_states(t.tcp_states, rep),
        },
        ..DesiredState::default()
    };
    let mut local_addresses = ServicePools::new();
    for svc in raw.services {
        add_service(&mut state, &mut local_addresses, svc, rep);
    }
    Config {
        daemon,
        state,
        local_addresses,
        ..Config::default()
    }
}

/// `[timeouts.tcp_states]`: every key a TCP state `ipvsadm --set` does not reach, every value
/// at least 1 second.
fn tcp_states(
    raw: BTreeMap<Spanned<String>, Spanned<u32>>,
    rep: &mut Reporter<'_>,
) -> TcpStateTimeouts {
    let mut out = TcpStateTimeouts::default();
    for (key, secs) in raw {
        let name = format!("timeouts.tcp_states.{}", key.get_ref());
        let Some(secs) = positive(Some(secs), &name, "seconds", rep) else {
            continue;
        };
        if !out.set(key.get_ref(), Some(secs)) {
            let known: Vec<&str> = out.entries().iter().map(|(_, k, _)| *k).collect();
            let hint = match key.get_ref().as_str() {
                "established" => "; ESTABLISHED is timeouts.tcp".to_string(),
                "fin_wait" => "; FIN_WAIT is timeouts.tcp_fin".to_string(),
                _ => String::new(),
            };
            rep.error_at(
                key.span(),
                format!(
                    "unknown TCP state `{}` in timeouts.tcp_states: expected one of {}{hint}",
                    key.get_ref(),
                    known.join(", ")
                ),
            );
        }
    }
    out
}

/// A timeout that must be at least 1 (`unit`): 0 is reported at its place — it would end every
/// connection at once (leave the key out for the default).
fn positive(
    value: Option<Spanned<u32>>,
    name: &str,
    unit: &str,
    rep: &mut Reporter<'_>,
) -> Option<u32> {
    let v = value?;
    if *v.get_ref() == 0 {
        rep.error_at(
            v.span(),
            format!(
                "{name} must be at least 1 ({unit}): 0 would end every connection at once; \
                 leave it out for the default"
            ),
        );
        return None;
    }
    Some(v.into_inner())
}

/// `proxy.fail_timeout_ms`: at least 1 (passive failure detection is turned off with
/// `max_fails = 0`, not with a zero window).
fn fail_timeout(value: Option<Spanned<u32>>, rep: &mut Reporter<'_>) -> Option<u32> {
    let v = value?;
    if *v.get_ref() == 0 {
        rep.error_at(
            v.span(),
            "proxy.fail_timeout_ms must be at least 1 (milliseconds): it is how long a failing \
             real stays out; to turn passive failure detection off set max_fails = 0"
                .to_string(),
        );
        return None;
    }
    Some(v.into_inner())
}

fn convert_daemon(raw: RawDaemon, rep: &mut Reporter<'_>) -> DaemonConfig {
    let listen_span = raw.listen.as_ref().map(|l| l.span());
    let listen = raw.listen.and_then(|l| {
        let span = l.span();
        match l.into_inner().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                rep.error_at(
                    span,
                    "bad listen address: expected ADDR:PORT such as 127.0.0.1:9901",
                );
                None
            }
        }
    });
    if let (Some(_), Some(span), None) = (listen, listen_span, &raw.token_file) {
        rep.error_at(
            span,
            "[daemon] listen needs token_file: the TCP API always requires a bearer token",
        );
    }
    let proxy_workers = raw.proxy_workers.and_then(|w| {
        if *w.get_ref() == 0 {
            rep.error_at(w.span(), "proxy_workers must be at least 1");
            None
        } else {
            Some(w.into_inner())
        }
    });
    let xdp_nat_conns = raw.xdp_nat_conns.and_then(|n| {
        if *n.get_ref() == 0 {
            rep.error_at(n.span(), "xdp_nat_conns must be at least 1");
            None
        } else {
            Some(n.into_inner())
        }
    });
    let xdp_icmp_rate = raw.xdp_icmp_rate.and_then(|n| {
        if *n.get_ref() > super::MAX_XDP_ICMP_RATE {
            rep.error_at(
                n.span(),
                format!(
                    "xdp_icmp_rate must be at most {} errors per second (0 = unlimited)",
                    super::MAX_XDP_ICMP_RATE
                ),
            );
            None
        } else {
            Some(n.into_inner())
        }
    });
    let xdp_icmp_burst = raw.xdp_icmp_burst.and_then(|n| {
        if !(1..=super::MAX_XDP_ICMP_BURST).contains(n.get_ref()) {
            rep.error_at(
                n.span(),
                format!(
                    "xdp_icmp_burst must be 1 to {} errors (a bucket of 0 would drop every \
                     error; leave it out for the default, 200)",
                    super::MAX_XDP_ICMP_BURST
                ),
            );
            None
        } else {
            Some(n.into_inner())
        }
    });
    let proxy_udp_sessions = raw.proxy_udp_sessions.and_then(|n| {
        if *n.get_ref() == 0 {
            rep.error_at(
                n.span(),
                "proxy_udp_sessions must be at least 1 (leave it out for the automatic cap)",
            );
            None
        } else {
            Some(n.into_inner())
        }
    });
    let stop_grace_ms = raw.stop_grace_ms.and_then(|n| {
        if *n.get_ref() > super::MAX_STOP_GRACE_MS {
            rep.error_at(
                n.span(),
                format!(
                    "stop_grace_ms must be at most {} (a day; 0 closes open connections at once)",
                    super::MAX_STOP_GRACE_MS
                ),
            );
            None
        } else {
            Some(n.into_inner())
        }
    });
    let proxy_max_conns = raw.proxy_max_conns.and_then(|n| {
        if *n.get_ref() == 0 {
            rep.error_at(
                n.span(),
                "proxy_max_conns must be at least 1 (leave it out for the automatic cap)",
            );
            None
        } else {
            Some(n.into_inner())
        }
    });
    let engines = raw.engines.and_then(|e| {
        if e.get_ref().is_empty() {
            rep.error_at(
                e.span(),
                "engines is empty: name at least one of \"proxy\", \"xdp\", or leave it out to run \
                 every engine that can run here",
            );
            return None;
        }
        let list = e.into_inner();
        let mut out: Vec<EngineKind> = Vec::with_capacity(list.len());
        for k in list {
            if out.contains(k.get_ref()) {
                rep.error_at(k.span(), "this engine is already listed in engines");
            } else {
                out.push(k.into_inner());
            }
        }
        Some(out)
    });
    let raw_interfaces = raw
        .xdp_interfaces
        .map(Spanned::into_inner)
        .unwrap_or_default();
    let mut xdp_interfaces: Vec<String> = Vec::with_capacity(raw_interfaces.len());
    for name in raw_interfaces {
        if name.get_ref().is_empty() {
            rep.error_at(name.span(), "expected an interface name, found \"\"");
        } else if xdp_interfaces.contains(name.get_ref()) {
            rep.error_at(
                name.span(),
                "this interface is already listed in xdp_interfaces",
            );
        } else {
            xdp_interfaces.push(name.into_inner());
        }
    }
    let fullnat_local = raw
        .fullnat_local
        .and_then(|list| local_addresses(list, None, rep))
        .unwrap_or_default();
    DaemonConfig {
        socket: raw.socket.map(Spanned::into_inner),
        listen,
        token_file: raw.token_file.map(Spanned::into_inner),
        engines,
        xdp_interfaces,
        xdp_nat_conns,
        xdp_icmp_rate,
        xdp_icmp_burst,
        xdp_keep_on_exit: raw.xdp_keep_on_exit.is_some_and(|v| *v.get_ref()),
        proxy_workers,
        proxy_udp_sessions,
        proxy_max_conns,
        proxy_splice: raw.proxy_splice.map(Spanned::into_inner),
        stop_grace_ms,
        log_level: raw.log_level.map(Spanned::into_inner),
        fullnat_local,
    }
}

/// `fullnat_local` / `local_addresses`: every address parsed and checked by the rules of
/// [`crate::local_addr`] (`family` is the VIP's; `None` for the default pool, which serves
/// both families). `None` if anything is wrong (each problem reported at its element).
fn local_addresses(
    list: Spanned<Vec<Spanned<String>>>,
    family: Option<AddressFamily>,
    rep: &mut Reporter<'_>,
) -> Option<Vec<IpAddr>> {
    let span = list.span();
    let list = list.into_inner();
    if list.is_empty() && family.is_some() {
        rep.error_at(
            span,
            "local_addresses is empty: list the service's FULLNAT local addresses, or remove \
             the key to use [daemon] fullnat_local",
        );
        return None;
    }
    let errors = rep.errors.len();
    let mut out: Vec<IpAddr> = Vec::with_capacity(list.len());
    for item in &list {
        let ip = match item.get_ref().parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => {
                rep.error_at(
                    item.span(),
                    format!(
                        "bad local address '{}': expected an IP address such as 10.0.0.5 or fd00::5",
                        item.get_ref()
                    ),
                );
                continue;
            }
        };
        match local_addr::check_addr(ip, &out, family) {
            Ok(()) => out.push(ip),
            Err(e) => rep.error_at(item.span(), e.to_string()),
        }
    }
    if let Err(e) = local_addr::check_counts(&out) {
        rep.error_at(span, e.to_string());
    }
    (rep.errors.len() == errors).then_some(out)
}

fn parse_addr(s: &Spanned<String>, what: &str, rep: &mut Reporter<'_>) -> Option<SocketAddr> {
    match s.get_ref().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            rep.error_at(
                s.span(),
                format!(
                    "bad {what} '{}': expected ADDR:PORT such as 10.0.0.3:80 or [2001:db8::1]:80",
                    s.get_ref()
                ),
            );
            None
        }
    }
}

fn service_key(svc: &RawService, span: Range<usize>, rep: &mut Reporter<'_>) -> Option<ServiceKey> {
    match (&svc.address, svc.fwmark.clone()) {
        (Some(_), Some(_)) => {
            rep.error_at(span, "a service has either address or fwmark, not both");
            None
        }
        (None, None) => {
            rep.error_at(
                span,
                "a service needs address = \"ADDR:PORT\" (with protocol) or fwmark = N",
            );
            None
        }
        (Some(a), None) => {
            if svc.family.is_some() {
                rep.error_at(
                    a.span(),
                    "family is only for fwmark services (an address has its own)",
                );
            }
            let addr = parse_addr(a, "service address", rep)?;
            let protocol = svc.protocol.unwrap_or(rvs_core::model::Protocol::Tcp);
            Some(ServiceKey::Addr { protocol, addr })
        }
        (None, Some(mark)) => {
            let mark_span = mark.span();
            let mark = mark.into_inner();
            if mark == 0 {
                // as ipvsadm: a mark of 0 is no mark (every unmarked packet has it)
                rep.error_at(
                    mark_span,
                    "fwmark must be at least 1 (0 is the mark of unmarked packets)",
                );
                return None;
            }
            if svc.protocol.is_some() {
                rep.error_at(
                    span,
                    "protocol is not used with fwmark (the mark selects the packets)",
                );
            }
            Some(ServiceKey::FwMark {
                mark,
                family: svc.family.unwrap_or(AddressFamily::V4),
            })
        }
    }
}

fn service_options(svc: &RawService, key: &ServiceKey, rep: &mut Reporter<'_>) -> ServiceOptions {
    let mut flags = SchedFlags::default();
    for f in &svc.flags {
        match f.get_ref() {
            RawFlag::ShFallback => flags.sh_fallback = true,
            RawFlag::ShPort => flags.sh_port = true,
            RawFlag::MhFallback => flags.mh_fallback = true,
            RawFlag::MhPort => flags.mh_port = true,
        }
    }
    let persistence = svc.persistence.as_ref().map(|p| {
        let timeout = match &p.get_ref().timeout {
            Some(t) if *t.get_ref() == 0 => {
                // as ipvsadm -p and keepalived's persistence_timeout
                rep.error_at(
                    t.span(),
                    "persistence.timeout must be at least 1 (seconds); leave persistence out \
                     for a service without it",
                );
                Persistence::DEFAULT_TIMEOUT
            }
            Some(t) => *t.get_ref(),
            None => Persistence::DEFAULT_TIMEOUT,
        };
        Persistence {
            timeout,
            prefix_len: p.get_ref().prefix_len.unwrap_or(key.family().max_prefix()),
        }
    });
    let d = ProxyOptions::default();
    let proxy = match svc.proxy.as_ref().map(Spanned::get_ref) {
        None => d,
        Some(p) => ProxyOptions {
            connect_timeout_ms: positive(
                p.connect_timeout_ms.clone(),
                "proxy.connect_timeout_ms",
                "milliseconds",
                rep,
            )
            .unwrap_or(d.connect_timeout_ms),
            connect_retries: p
                .connect_retries
                .as_ref()
                .map_or(d.connect_retries, |r| *r.get_ref()),
            idle_timeout_ms: positive(
                p.idle_timeout_ms.clone(),
                "proxy.idle_timeout_ms",
                "milliseconds",
                rep,
            )
            .or(d.idle_timeout_ms),
            proxy_protocol: p.proxy_protocol.unwrap_or(d.proxy_protocol),
            max_fails: p.max_fails.unwrap_or(d.max_fails),
            fail_timeout_ms: fail_timeout(p.fail_timeout_ms.clone(), rep)
                .unwrap_or(d.fail_timeout_ms),
        },
    };
    ServiceOptions {
        scheduler: svc.scheduler.unwrap_or_default(),
        flags,
        persistence,
        one_packet: svc.one_packet.as_ref().is_some_and(|o| *o.get_ref()),
        engine: svc.engine,
        proxy,
    }
}

fn add_service(
    state: &mut DesiredState,
    pools: &mut ServicePools,
    mut svc: Spanned<RawService>,
    rep: &mut Reporter<'_>,
) {
    let span = svc.span();
    let list = svc.get_mut().local_addresses.take();
    let svc = svc.into_inner();
    let Some(key) = service_key(&svc, span.clone(), rep) else {
        return;
    };
    if let Some(pool) = list.and_then(|l| local_addresses(l, Some(key.family()), rep)) {
        pools.insert(key, pool);
    }
    let options = service_options(&svc, &key, rep);
    let port_zero = matches!(key, ServiceKey::Addr { addr, .. } if addr.port() == 0)
        && options.persistence.is_none();
    if let (true, Some(a)) = (port_zero, &svc.address) {
        // as ipvsadm and keepalived: port 0 means every port, which only persistence uses
        rep.error_at(
            a.span(),
            "port 0 (every port) needs persistence, as with ipvsadm: give a port or \
             persistence = { ... }",
        );
    }
    if let Err(e) = state.add_service(key, options) {
        let at = match (&e, &svc.persistence) {
            (StateError::BadNetmask { .. }, Some(p)) => p.span(),
            _ => span,
        };
        // Port 0 without persistence is reported above, at the address, with the fix.
        if !(port_zero && matches!(e, StateError::PortZeroWithoutPersistence(_))) {
            rep.error_at(at, e.to_string());
        }
        // A duplicate keeps the first definition; its reals are still checked against it.
        if !matches!(e, StateError::ServiceExists(_)) {
            return;
        }
    }
    for real in svc.reals {
        add_real(state, &key, real, rep);
    }
}

fn add_real(
    state: &mut DesiredState,
    key: &ServiceKey,
    real: Spanned<RawReal>,
    rep: &mut Reporter<'_>,
) {
    let span = real.span();
    let real = real.into_inner();
    let Some(addr) = parse_addr(&real.address, "real address", rep) else {
        return;
    };
    let weight_span = real.weight.as_ref().map(|w| w.span());
    let mut rs = RealServer::new(
        addr,
        real.method.unwrap_or_default(),
        real.weight.map(|w| w.into_inner()).unwrap_or(1),
    );
    rs.upper_threshold = real.upper_threshold;
    rs.lower_threshold = real.lower_threshold.as_ref().map_or(0, |l| *l.get_ref());
    rs.proxy_protocol = real.proxy_protocol.as_ref().map(|p| *p.get_ref());
    rs.admin = real.admin;
    if let Err(e) = state.add_real(key, rs) {
        let at = match &e {
            StateError::WeightOutOfRange(_) => weight_span.unwrap_or(span),
            StateError::FamilyMismatch { .. } => real.address.span(),
            _ => span,
        };
        rep.error_at(at, e.to_string());
    }
}
