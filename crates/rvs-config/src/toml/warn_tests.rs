//! Settings without effect: one test per warning, each with its place and message; files
//! without such settings (the examples, docs/config.md's blocks) give none.

use super::*;
use rvs_core::model::ServiceKey;

fn p(text: &str) -> Config {
    parse(text, Path::new("w.toml")).expect("should load")
}

/// The file's own warnings as `line:col: message`.
fn warnings(text: &str) -> Vec<String> {
    p(text)
        .warnings
        .iter()
        .map(|w| {
            assert_eq!(w.location.path, Path::new("w.toml"));
            format!("{}:{}: {}", w.location.line, w.location.column, w.message)
        })
        .collect()
}

/// Exactly one warning, at `line:col`, whose message contains `part`.
fn one(text: &str, at: (usize, usize), part: &str) {
    let w = warnings(text);
    assert_eq!(w.len(), 1, "{w:?}");
    let prefix = format!("{}:{}: ", at.0, at.1);
    assert!(w[0].starts_with(&prefix) && w[0].contains(part), "{w:?}");
}

const DR_REAL: &str = "[[service.real]]\naddress = \"10.0.0.7:80\"\nmethod = \"dr\"\n";
const FULLNAT_REAL: &str = "[[service.real]]\naddress = \"10.0.0.7:80\"\nmethod = \"fullnat\"\n";

#[test]
fn local_addresses_without_a_fullnat_real() {
    let svc = "[[service]]\naddress = \"10.0.0.3:80\"\nlocal_addresses = [\"10.0.2.1\"]\n";
    one(
        &format!("{svc}{DR_REAL}"),
        (3, 19),
        "local_addresses has no effect: this service has no FULLNAT real",
    );
    // a FULLNAT real uses them; a service without reals yet may get FULLNAT ones by the API
    assert!(warnings(&format!("{svc}{FULLNAT_REAL}")).is_empty());
    assert!(warnings(svc).is_empty());
    // the addresses are still loaded
    let c = p(&format!("{svc}{DR_REAL}"));
    let key = ServiceKey::tcp("10.0.0.3:80".parse().unwrap());
    assert_eq!(
        c.local_addresses[&key],
        vec!["10.0.2.1".parse::<IpAddr>().unwrap()]
    );
}

#[test]
fn proxy_options_of_a_service_the_proxy_never_serves() {
    // DR real: inline table, located at its `{`
    one(
        &format!("[[service]]\naddress = \"10.0.0.3:80\"\nproxy = {{ max_fails = 3 }}\n{DR_REAL}"),
        (3, 9),
        "[service.proxy] has no effect: the proxy engine never serves this service (its real \
         10.0.0.7:80 uses DR, which only the xdp engine forwards)",
    );
    // pinned to xdp: a [service.proxy] table
    let text = format!(
        "[[service]]\naddress = \"10.0.0.3:80\"\nengine = \"xdp\"\n\n[service.proxy]\n\
         max_fails = 3\n\n{FULLNAT_REAL}"
    );
    let w = warnings(&text);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("(it is pinned to the xdp engine)") && w[0].starts_with("5:1: "),
        "{w:?}"
    );
    // firewall-mark and SCTP services
    one(
        "[[service]]\nfwmark = 3\nproxy = { max_fails = 3 }\n",
        (3, 9),
        "(the proxy engine relays no firewall-mark service)",
    );
    one(
        &format!(
            "[[service]]\nprotocol = \"sctp\"\naddress = \"10.0.0.3:80\"\n{FULLNAT_REAL}\
             proxy_protocol = \"v1\"\n"
        ),
        (7, 18),
        "proxy_protocol has no effect: only the proxy engine sends a PROXY protocol header, and \
         it never serves this service (the proxy engine relays TCP and UDP only)",
    );
    // the options are still loaded
    let key = ServiceKey::tcp("10.0.0.3:80".parse().unwrap());
    assert_eq!(p(&text).state.services[&key].options.proxy.max_fails, 3);
}

#[test]
fn proxy_protocol_of_a_real_the_proxy_never_serves() {
    one(
        "[[service]]\naddress = \"10.0.0.3:80\"\n[[service.real]]\naddress = \"10.0.0.7:80\"\n\
         method = \"nat\"\nproxy_protocol = \"v2\"\n",
        (6, 18),
        "proxy_protocol has no effect on a NAT real: only the proxy engine sends a PROXY \
         protocol header, and it forwards to FULLNAT reals only",
    );
    // a FULLNAT real of a service that also has a TUN real (method left out: DR)
    let w = warnings(
        "[[service]]\naddress = \"10.0.0.3:80\"\n[[service.real]]\naddress = \"10.0.0.7:80\"\n\
         method = \"fullnat\"\nproxy_protocol = \"v1\"\n[[service.real]]\n\
         address = \"10.0.0.8:80\"\n",
    );
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("6:18: proxy_protocol has no effect: only the proxy engine sends")
            && w[0].contains("its real 10.0.0.8:80 uses DR"),
        "{w:?}"
    );
}

#[test]
fn scheduler_flags_of_another_scheduler() {
    let w = warnings(
        "[[service]]\naddress = \"10.0.0.3:80\"\nscheduler = \"mh\"\n\
         flags = [\"mh-port\", \"sh-port\"]\n",
    );
    assert_eq!(
        w,
        [
            "4:21: flag sh-port has no effect with scheduler \"mh\": it is a flag of scheduler \"sh\""
        ]
    );
    // the default scheduler (wlc) uses neither
    let w = warnings("[[service]]\naddress = \"10.0.0.3:80\"\nflags = [\"mh-fallback\"]\n");
    assert_eq!(
        w,
        [
            "3:10: flag mh-fallback has no effect with scheduler \"wlc\": it is a flag of \
             scheduler \"mh\""
        ]
    );
    let c = p("[[service]]\naddress = \"10.0.0.3:80\"\nflags = [\"mh-fallback\"]\n");
    let key = ServiceKey::tcp("10.0.0.3:80".parse().unwrap());
    assert!(c.state.services[&key].options.flags.mh_fallback);
}

#[test]
fn one_packet_on_tcp_and_sctp() {
    one(
        "[[service]]\naddress = \"10.0.0.3:80\"\none_packet = true\n",
        (3, 14),
        "one_packet has no effect on a TCP service: one-packet scheduling is for UDP",
    );
    one(
        "[[service]]\nprotocol = \"sctp\"\naddress = \"10.0.0.3:80\"\none_packet = true\n",
        (4, 14),
        "on a SCTP service",
    );
    assert!(
        warnings("[[service]]\nprotocol = \"udp\"\naddress = \"10.0.0.3:53\"\none_packet = true\n")
            .is_empty()
    );
    assert!(warnings("[[service]]\naddress = \"10.0.0.3:80\"\none_packet = false\n").is_empty());
    assert!(warnings("[[service]]\nfwmark = 3\none_packet = true\n").is_empty());
}

#[test]
fn tcp_only_proxy_options_on_udp() {
    let w = warnings(
        "[[service]]\nprotocol = \"udp\"\naddress = \"10.0.0.3:53\"\n[service.proxy]\n\
         connect_timeout_ms = 100\nconnect_retries = 1\nidle_timeout_ms = 5\nmax_fails = 2\n",
    );
    assert_eq!(
        w,
        [
            "5:22: proxy.connect_timeout_ms has no effect on a UDP service: the proxy engine \
             connects nothing for UDP",
            "6:19: proxy.connect_retries has no effect on a UDP service: the proxy engine \
             connects nothing for UDP",
            "7:19: proxy.idle_timeout_ms has no effect on a UDP service: a UDP session ends \
             after [timeouts] udp",
        ]
    );
}

#[test]
fn fail_timeout_with_max_fails_zero() {
    one(
        "[[service]]\naddress = \"10.0.0.3:80\"\n\
         proxy = { max_fails = 0, fail_timeout_ms = 5000 }\n",
        (3, 44),
        "proxy.fail_timeout_ms has no effect with max_fails = 0",
    );
    assert!(
        warnings(
            "[[service]]\naddress = \"10.0.0.3:80\"\nproxy = { max_fails = 1, fail_timeout_ms = 5000 }\n"
        )
        .is_empty()
    );
}

#[test]
fn lower_threshold_without_upper() {
    one(
        "[[service]]\naddress = \"10.0.0.3:80\"\n[[service.real]]\naddress = \"10.0.0.7:80\"\n\
         lower_threshold = 5\n",
        (5, 19),
        "lower_threshold has no effect without upper_threshold",
    );
    assert!(
        warnings(
            "[[service]]\naddress = \"10.0.0.3:80\"\n[[service.real]]\naddress = \"10.0.0.7:80\"\n\
             lower_threshold = 0\n"
        )
        .is_empty()
    );
}

#[test]
fn icmp_burst_without_a_rate_limit() {
    one(
        "[daemon]\nxdp_icmp_rate = 0\nxdp_icmp_burst = 50\n",
        (3, 18),
        "xdp_icmp_burst has no effect with xdp_icmp_rate = 0 (no limit at all)",
    );
    assert!(warnings("[daemon]\nxdp_icmp_rate = 10\nxdp_icmp_burst = 50\n").is_empty());
    assert_eq!(
        p("[daemon]\nxdp_icmp_rate = 0\nxdp_icmp_burst = 50\n")
            .daemon
            .xdp_icmp_burst,
        Some(50)
    );
}

const ENGINE_KEYS: &str = r#"[daemon]
xdp_interfaces = ["eth0"]
xdp_nat_conns = 1000
xdp_icmp_rate = 10
xdp_icmp_burst = 5
proxy_workers = 2
proxy_udp_sessions = 10
proxy_max_conns = 10
stop_grace_ms = 500
xdp_keep_on_exit = true
proxy_splice = false

[timeouts.tcp_states]
time_wait = 7
close = 3

[[service]]
address = "10.0.0.3:80"

[service.proxy]
max_fails = 2

[[service.real]]
address = "10.0.0.7:80"
method = "fullnat"
proxy_protocol = "v1"
"#;

#[test]
fn settings_of_one_engine_are_located_and_warned_only_without_it() {
    let c = p(ENGINE_KEYS);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let found: Vec<(EngineKind, &str, usize, usize)> = c
        .engine_settings
        .iter()
        .map(|s| (s.engine, s.key.as_str(), s.location.line, s.location.column))
        .collect();
    use EngineKind::{Proxy, Xdp};
    assert_eq!(
        found,
        [
            (Xdp, "xdp_interfaces", 2, 18),
            (Xdp, "xdp_nat_conns", 3, 17),
            (Xdp, "xdp_icmp_rate", 4, 17),
            (Xdp, "xdp_icmp_burst", 5, 18),
            (Xdp, "xdp_keep_on_exit", 10, 20),
            (Xdp, "[timeouts.tcp_states]", 14, 1),
            (Proxy, "proxy_workers", 6, 17),
            (Proxy, "proxy_udp_sessions", 7, 22),
            (Proxy, "proxy_max_conns", 8, 19),
            (Proxy, "proxy_splice", 11, 16),
            (Proxy, "stop_grace_ms", 9, 17),
            (Proxy, "[service.proxy]", 20, 1),
            (Proxy, "proxy_protocol", 26, 18),
        ]
    );
    // both engines run: nothing
    assert!(engine_warnings(&c.engine_settings, |_| None).is_empty());
    // only the proxy runs: the xdp settings, located
    let w = engine_warnings(&c.engine_settings, |k| {
        (k == EngineKind::Xdp).then(|| "needs root and --xdp-interface".to_string())
    });
    let shown: Vec<String> = w.iter().map(|e| e.to_string()).collect();
    assert_eq!(shown.len(), 6, "{shown:?}");
    assert_eq!(
        shown[0],
        "w.toml:2:18: xdp_interfaces has no effect: the xdp engine is not running (needs root \
         and --xdp-interface)"
    );
    assert!(shown[4].starts_with("w.toml:10:20: xdp_keep_on_exit has no effect"));
    assert!(shown[5].starts_with("w.toml:14:1: [timeouts.tcp_states] has no effect"));
    // only the xdp engine runs: the proxy settings
    let w = engine_warnings(&c.engine_settings, |k| {
        (k == EngineKind::Proxy).then(|| "not enabled".to_string())
    });
    let keys: Vec<&str> = w
        .iter()
        .map(|e| e.message.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "proxy_workers",
            "proxy_udp_sessions",
            "proxy_max_conns",
            "proxy_splice",
            "stop_grace_ms",
            "[service.proxy]",
            "proxy_protocol"
        ]
    );
    assert!(
        w[4].message
            .ends_with("the proxy engine is not running (not enabled)")
    );
}

#[test]
fn files_without_such_settings_give_no_warning() {
    let mut files = vec![
        include_str!("../../../../examples/director.toml").to_string(),
        include_str!("../../../../examples/quickstart.toml").to_string(),
        include_str!("../../tests/data/rvs_full.toml").to_string(),
        super::tests::FULL.to_string(),
    ];
    let doc = include_str!("../../../../docs/config.md");
    for block in doc.split("```toml\n").skip(1) {
        files.push(block.split("```").next().unwrap_or_default().to_string());
    }
    assert!(files.len() >= 7, "{}", files.len());
    for (i, text) in files.iter().enumerate() {
        match parse(text, Path::new("w.toml")) {
            Ok(c) => assert!(c.warnings.is_empty(), "{text}\n{:?}", c.warnings),
            // docs/config.md shows a few fragments that are errors on purpose
            Err(e) => assert!(i >= 4, "{text}\n{e}"),
        }
    }
}
