//! Checker blocks inside `real_server`: `TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `UDP_CHECK`,
//! `DNS_CHECK`, `MISC_CHECK`, `PING_CHECK`, `SMTP_CHECK`, with the parameters they share.
//!
//! `SMTP_CHECK` may still hold keepalived 1.x `host { ... }` blocks (deprecated there, in favour
//! of one `SMTP_CHECK` per host): each becomes a checker of its own, with the block's connection
//! options over those written before it (as keepalived 2.x copies them), so the real is up only
//! when every host answers — what keepalived does with its host list.

use super::lex::Node;
use super::model::*;
use super::values::{Ctx, hex_bytes};
use std::time::Duration;

/// What a checker inherits (keepalived 2.x): an option the checker block does not set comes from
/// its `real_server`, then its `virtual_server`, then the checker kind's default
/// ([`kind_defaults`]).
#[derive(Debug, Clone)]
pub struct Inherited {
    /// `delay_loop` (the virtual server's default is 60 s).
    pub delay_loop: Duration,
    pub alpha: bool,
    pub retry: Option<u32>,
    pub delay_before_retry: Option<Duration>,
    pub warmup: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    /// The real server's `virtualhost` (`HTTP_GET`/`SSL_GET` Host header, under the checker's
    /// own and over the virtual server's).
    pub virtualhost: Option<String>,
}

impl Inherited {
    /// `self` (a real server's settings) over `outer` (its virtual server's).
    pub fn over(self, outer: &Inherited) -> Inherited {
        Inherited {
            delay_loop: self.delay_loop,
            alpha: self.alpha,
            retry: self.retry.or(outer.retry),
            delay_before_retry: self.delay_before_retry.or(outer.delay_before_retry),
            warmup: self.warmup.or(outer.warmup),
            connect_timeout: self.connect_timeout.or(outer.connect_timeout),
            virtualhost: self.virtualhost.or_else(|| outer.virtualhost.clone()),
        }
    }
}

/// keepalived's defaults by checker kind: `retry`, and `delay_before_retry` (`None`: the
/// checker's `delay_loop`). `HTTP_GET`/`SSL_GET` wait 3 s before a retry, `MISC_CHECK` does not
/// retry, `DNS_CHECK` retries 3 times `delay_loop` apart; the others retry once after 1 s.
pub fn kind_defaults(kind: &CheckKind) -> (u32, Option<Duration>) {
    match kind {
        CheckKind::Http(_) | CheckKind::Ssl(_) => (DEFAULT_RETRY, Some(Duration::from_secs(3))),
        CheckKind::Misc(_) => (0, Some(DEFAULT_DELAY_BEFORE_RETRY)),
        CheckKind::Dns(_) => (3, None),
        _ => (DEFAULT_RETRY, Some(DEFAULT_DELAY_BEFORE_RETRY)),
    }
}

/// Whether `keyword` names a checker block.
pub fn is_checker(keyword: &str) -> bool {
    matches!(
        keyword,
        "TCP_CHECK"
            | "HTTP_GET"
            | "SSL_GET"
            | "UDP_CHECK"
            | "DNS_CHECK"
            | "MISC_CHECK"
            | "PING_CHECK"
            | "SMTP_CHECK"
    )
}

/// Parse one checker block: one checker, or one per `host` block of an `SMTP_CHECK`.
pub fn parse_checker(ctx: &mut Ctx, node: &Node, inh: &Inherited) -> Vec<Checker> {
    let mut kind = match node.keyword.text.as_str() {
        "HTTP_GET" => CheckKind::Http(HttpCheck::default()),
        "SSL_GET" => CheckKind::Ssl(HttpCheck::default()),
        "UDP_CHECK" => CheckKind::Udp(UdpCheck::default()),
        "DNS_CHECK" => CheckKind::Dns(DnsCheck {
            qtype: DnsType::Soa,
            name: ".".into(),
        }),
        "MISC_CHECK" => CheckKind::Misc(MiscCheck {
            path: String::new(),
            timeout: None,
            dynamic: false,
            user: None,
            group: None,
        }),
        "PING_CHECK" => CheckKind::Ping,
        "SMTP_CHECK" => CheckKind::Smtp(SmtpCheck {
            helo_name: DEFAULT_SMTP_HELO.into(),
        }),
        _ => CheckKind::Tcp,
    };
    let (default_retry, default_delay_before_retry) = kind_defaults(&kind);
    let mut c = Checker {
        kind: CheckKind::Tcp,
        connect_ip: None,
        connect_port: None,
        bindto: None,
        bind_port: None,
        connect_timeout: inh.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        retry: inh.retry.unwrap_or(default_retry),
        delay_before_retry: DEFAULT_DELAY_BEFORE_RETRY,
        delay_loop: inh.delay_loop,
        warmup: inh.delay_loop,
        alpha: inh.alpha,
    };
    let mut warmup = None;
    let mut delay_before_retry = None;
    let mut hosts = Vec::new();
    let within = node.keyword.text.clone();
    ctx.at_most(node, 0);
    for n in ctx.block(node).iter() {
        let kw = n.keyword.text.as_str();
        if connect_option(ctx, &mut c, n) {
            continue;
        }
        match kw {
            // keepalived 2.x: a host starts from the options written before its block
            "host" if matches!(kind, CheckKind::Smtp(_)) => hosts.push(smtp_host(ctx, &c, n)),
            "retry" | "nb_get_retry" => c.retry = ctx.num(n, "a retry count").unwrap_or(c.retry),
            "delay_before_retry" => delay_before_retry = ctx.secs(n).or(delay_before_retry),
            "delay_loop" => c.delay_loop = ctx.period(n).unwrap_or(c.delay_loop),
            "warmup" => warmup = ctx.secs(n).or(warmup),
            "alpha" => c.alpha = ctx.flag(n),
            _ => {
                if !kind_keyword(ctx, &mut kind, n) {
                    ctx.unsupported(n, &within);
                }
            }
        }
    }
    c.warmup = warmup.or(inh.warmup).unwrap_or(c.delay_loop);
    c.delay_before_retry = delay_before_retry
        .or(inh.delay_before_retry)
        .or(default_delay_before_retry)
        .unwrap_or(c.delay_loop);
    if let CheckKind::Http(h) | CheckKind::Ssl(h) = &mut kind
        && h.virtualhost.is_none()
    {
        h.virtualhost = inh.virtualhost.clone();
    }
    if let CheckKind::Misc(m) = &kind
        && m.path.is_empty()
    {
        ctx.error(&node.keyword, "MISC_CHECK needs 'misc_path'");
    }
    if let CheckKind::Http(h) | CheckKind::Ssl(h) = &kind
        && h.urls.is_empty()
    {
        // keepalived drops such a checker ("has no urls specified - ignoring")
        ctx.warnings.push(node.keyword.error(format!(
            "{within} without a 'url' block checks nothing; ignored (as keepalived does)"
        )));
        return Vec::new();
    }
    c.kind = kind;
    if hosts.is_empty() {
        hosts.push(c.clone());
    }
    hosts
        .into_iter()
        .map(|h| {
            let mut out = c.clone();
            (out.connect_ip, out.connect_port) = (h.connect_ip, h.connect_port);
            (out.bindto, out.bind_port) = (h.bindto, h.bind_port);
            out.connect_timeout = h.connect_timeout;
            if matches!(out.kind, CheckKind::Smtp(_)) && out.connect_port.is_none() {
                out.connect_port = Some(DEFAULT_SMTP_PORT);
            }
            out
        })
        .collect()
}

/// The connection options every checker (and an `SMTP_CHECK` `host` block) takes; false if
/// `n` is not one of them.
fn connect_option(ctx: &mut Ctx, c: &mut Checker, n: &Node) -> bool {
    match n.keyword.text.as_str() {
        "connect_ip" => {
            c.connect_ip = ctx
                .one(n, "an address")
                .and_then(|w| ctx.ip(w, "connect_ip"))
        }
        "connect_port" => c.connect_port = ctx.one(n, "a port").and_then(|w| ctx.port(w)),
        "bindto" => c.bindto = ctx.one(n, "an address").and_then(|w| ctx.ip(w, "bindto")),
        "bind_port" => c.bind_port = ctx.one(n, "a port").and_then(|w| ctx.port(w)),
        "connect_timeout" => c.connect_timeout = ctx.period(n).unwrap_or(c.connect_timeout),
        _ => return false,
    }
    true
}

/// One `host { connect_ip ...; connect_port ...; ... }` of an `SMTP_CHECK`: the connection
/// options of the enclosing block so far, with the block's own over them.
fn smtp_host(ctx: &mut Ctx, outer: &Checker, node: &Node) -> Checker {
    ctx.warnings.push(node.keyword.error(
        "SMTP_CHECK host blocks are deprecated by keepalived (write one SMTP_CHECK per host); \
         rvs checks each host as an SMTP_CHECK of its own",
    ));
    let mut c = outer.clone();
    ctx.at_most(node, 0);
    for n in ctx.block(node).iter() {
        if !connect_option(ctx, &mut c, n) {
            ctx.unsupported(n, "host");
        }
    }
    c
}

/// `helo_name`: one word that can follow `HELO ` on an SMTP command line.
fn helo_name(ctx: &mut Ctx, n: &Node) -> Option<String> {
    let w = ctx.one(n, "a host name")?;
    let ok =
        !w.text.is_empty() && w.text.len() <= 255 && w.text.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        ctx.error(
            w,
            format!(
                "expected a HELO name (1-255 printable ASCII characters, no spaces), found '{}'",
                w.text.escape_debug()
            ),
        );
        return None;
    }
    Some(w.text.clone())
}

/// A keyword specific to the checker kind; false if the kind does not know it.
fn kind_keyword(ctx: &mut Ctx, kind: &mut CheckKind, n: &Node) -> bool {
    let kw = n.keyword.text.as_str();
    match kind {
        CheckKind::Http(h) | CheckKind::Ssl(h) => match kw {
            "url" => h.urls.push(parse_url(ctx, n)),
            "virtualhost" => h.virtualhost = ctx.word(n, "a host name"),
            "enable_sni" => h.enable_sni = ctx.flag(n),
            "tls_verify" => h.tls_verify = ctx.flag(n),
            _ => return false,
        },
        CheckKind::Udp(u) => match kw {
            "payload" => u.payload = hex_arg(ctx, n).unwrap_or_default(),
            // alone: any reply will do (keepalived); with bytes, the reply must start with them
            "require_reply" if n.args.is_empty() => {
                ctx.no_block(n);
                u.require_reply = Some(Vec::new());
            }
            "require_reply" => u.require_reply = hex_arg(ctx, n),
            "min_reply_length" => u.min_reply_length = ctx.num(n, "a length"),
            "max_reply_length" => u.max_reply_length = ctx.num(n, "a length"),
            _ => return false,
        },
        CheckKind::Dns(d) => match kw {
            "type" => {
                if let Some(w) = ctx.one(n, "a query type") {
                    match DnsType::parse(&w.text) {
                        Some(t) => d.qtype = t,
                        None => ctx.error(
                            w,
                            format!(
                                "expected a DNS type (A NS CNAME SOA MX TXT AAAA), found '{}'",
                                w.text
                            ),
                        ),
                    }
                }
            }
            "name" => {
                d.name = ctx
                    .word(n, "a domain name")
                    .unwrap_or_else(|| d.name.clone())
            }
            _ => return false,
        },
        CheckKind::Misc(m) => match kw {
            "misc_path" => m.path = ctx.rest(n, "a command line").unwrap_or_default(),
            "misc_timeout" => m.timeout = ctx.period(n),
            "misc_dynamic" => m.dynamic = ctx.flag(n),
            "user" => {
                ctx.at_most(n, 2);
                ctx.no_block(n);
                if let Some(u) = ctx.arg(n, 0, "a user name") {
                    m.user = Some(u.text.clone());
                    m.group = n.args.get(1).map(|w| w.text.clone());
                }
            }
            _ => return false,
        },
        CheckKind::Smtp(s) => match kw {
            "helo_name" => {
                if let Some(name) = helo_name(ctx, n) {
                    s.helo_name = name;
                }
            }
            _ => return false,
        },
        CheckKind::Tcp | CheckKind::Ping => return false,
    }
    true
}

/// Hex bytes, as keepalived reads them: the words of the line (spaces allowed, `0a 1b2c` or
/// `0a1b2c`), two digits a byte, a lone digit before a space or the end a byte of its own.
fn hex_arg(ctx: &mut Ctx, n: &Node) -> Option<Vec<u8>> {
    ctx.no_block(n);
    ctx.arg(n, 0, "hex bytes")?;
    let mut out = Vec::new();
    for w in &n.args {
        match hex_bytes(&w.text) {
            Some(b) => out.extend(b),
            None => {
                ctx.error(
                    w,
                    format!("expected hex bytes (like 0a1b2c), found '{}'", w.text),
                );
                return None;
            }
        }
    }
    Some(out)
}

/// `url { path ...; digest ...; status_code ...; virtualhost ... }`.
fn parse_url(ctx: &mut Ctx, node: &Node) -> UrlCheck {
    let mut u = UrlCheck {
        path: String::new(),
        digest: None,
        status: Vec::new(),
        virtualhost: None,
    };
    ctx.at_most(node, 0);
    for n in ctx.block(node).iter() {
        match n.keyword.text.as_str() {
            "path" => u.path = ctx.word(n, "a URL path").unwrap_or_default(),
            "digest" => {
                if let Some(w) = ctx.one(n, "an MD5 digest") {
                    if w.text.len() == 32 && w.text.bytes().all(|b| b.is_ascii_hexdigit()) {
                        u.digest = Some(w.text.to_ascii_lowercase());
                    } else {
                        ctx.error(
                            w,
                            format!("expected 32 hex digits (an MD5 digest), found '{}'", w.text),
                        );
                    }
                }
            }
            "status_code" => {
                ctx.no_block(n);
                for w in &n.args {
                    match parse_status(&w.text) {
                        Some(r) => u.status.push(r),
                        None => ctx.error(
                            w,
                            format!(
                                "expected a status code or range (100-599), found '{}'",
                                w.text
                            ),
                        ),
                    }
                }
                if n.args.is_empty() {
                    ctx.arg(n, 0, "a status code");
                }
            }
            "virtualhost" => u.virtualhost = ctx.word(n, "a host name"),
            _ => ctx.unsupported(n, "url"),
        }
    }
    if u.path.is_empty() {
        ctx.error(&node.keyword, "url block needs 'path'");
    }
    u
}

/// `200` or `200-299`.
fn parse_status(s: &str) -> Option<(u16, u16)> {
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => {
            let v = s.parse().ok()?;
            (v, v)
        }
    };
    ((100..=599).contains(&lo) && (lo..=599).contains(&hi)).then_some((lo, hi))
}
