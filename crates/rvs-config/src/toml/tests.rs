//! One test per error class, plus the full tree of a complete file.

use super::*;
use rvs_core::desired::Timeouts;
use rvs_core::model::*;

fn p(text: &str) -> Result<Config, ConfigErrors> {
    parse(text, Path::new("test.toml"))
}

fn errs(text: &str) -> Vec<String> {
    p(text)
        .expect_err("should fail")
        .0
        .iter()
        .map(|e| e.to_string())
        .collect()
}

pub(super) const FULL: &str = r#"
[daemon]
socket = "/tmp/x.sock"
listen = "127.0.0.1:9901"
token_file = "/etc/rvs/token"
engines = ["proxy"]
xdp_nat_conns = 1000000
xdp_icmp_rate = 0
proxy_workers = 2
proxy_udp_sessions = 4000
proxy_max_conns = 7000
proxy_splice = false
stop_grace_ms = 0
log_level = "debug"

[timeouts]
tcp = 100

[[service]]
protocol = "tcp"
address = "10.0.0.3:80"
scheduler = "sh"
flags = ["sh-port", "sh-fallback"]
persistence = { timeout = 60, prefix_len = 24 }
engine = "proxy"
proxy = { connect_retries = 5, proxy_protocol = "v2" }

[[service.real]]
address = "10.0.0.7:80"
method = "fullnat"
weight = 3
upper_threshold = 10
lower_threshold = 5
admin = "drain"
proxy_protocol = "v1"

[[service]]
fwmark = 7
family = "v6"
"#;

#[test]
fn full_file_gives_the_whole_tree() {
    let c = p(FULL).unwrap();
    assert_eq!(c.daemon.socket.as_deref(), Some(Path::new("/tmp/x.sock")));
    assert_eq!(c.daemon.listen, Some("127.0.0.1:9901".parse().unwrap()));
    assert_eq!(c.daemon.engines, Some(vec![EngineKind::Proxy]));
    assert_eq!(c.daemon.proxy_workers, Some(2));
    assert_eq!(c.daemon.xdp_nat_conns, Some(1_000_000));
    assert_eq!(c.daemon.xdp_icmp_rate, Some(0));
    assert_eq!(c.daemon.proxy_udp_sessions, Some(4000));
    assert_eq!(c.daemon.proxy_max_conns, Some(7000));
    assert_eq!(c.daemon.proxy_splice, Some(false));
    assert_eq!(c.daemon.stop_grace_ms, Some(0));
    assert_eq!(c.daemon.log_level, Some(LogLevel::Debug));
    assert_eq!(
        c.state.timeouts,
        Timeouts {
            tcp: 100,
            ..Timeouts::default()
        }
    );
    let key = ServiceKey::tcp("10.0.0.3:80".parse().unwrap());
    let svc = &c.state.services[&key];
    assert_eq!(svc.options.scheduler, SchedulerKind::Sh);
    assert!(
        svc.options.flags.sh_port && svc.options.flags.sh_fallback && !svc.options.flags.mh_port
    );
    assert_eq!(
        svc.options.persistence,
        Some(Persistence {
            timeout: 60,
            prefix_len: 24
        })
    );
    assert_eq!(svc.options.engine, EnginePin::Proxy);
    assert_eq!(svc.options.proxy.connect_retries, 5);
    assert_eq!(
        svc.options.proxy.connect_timeout_ms,
        ProxyOptions::default().connect_timeout_ms
    );
    assert_eq!(svc.options.proxy.proxy_protocol, ProxyProtocol::V2);
    let real = svc.reals.values().next().unwrap();
    assert_eq!(real.method, ForwardMethod::FullNat);
    assert_eq!(
        (real.weight, real.upper_threshold, real.lower_threshold),
        (3, 10, 5)
    );
    assert_eq!(real.admin, AdminState::Drain);
    assert_eq!(real.proxy_protocol, Some(ProxyProtocol::V1));
    let fw = ServiceKey::FwMark {
        mark: 7,
        family: AddressFamily::V6,
    };
    assert_eq!(c.state.services[&fw].options.scheduler, SchedulerKind::Wlc);
}

#[test]
fn empty_file_is_an_empty_state() {
    let c = p("").unwrap();
    assert!(c.state.services.is_empty());
    assert_eq!(c.state.timeouts, Timeouts::default());
}

#[test]
fn syntax_error_is_located() {
    let e = errs("[daemon]\nsocket = \n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("test.toml:2:"), "{e:?}");
}

#[test]
fn unknown_key_is_an_error_with_location() {
    let e = errs("[[service]]\naddress = \"10.0.0.3:80\"\nschedular = \"rr\"\n");
    assert!(e[0].starts_with("test.toml:3:1:"), "{e:?}");
    assert!(e[0].contains("unknown field `schedular`"), "{e:?}");
    assert!(e[0].contains("scheduler"), "lists what was expected: {e:?}");
}

#[test]
fn wrong_type_and_unknown_variant() {
    let e = errs("[[service]]\naddress = \"10.0.0.3:80\"\nscheduler = \"fastest\"\n");
    assert!(
        e[0].starts_with("test.toml:3:13:") && e[0].contains("wrr"),
        "{e:?}"
    );
    let e = errs("[timeouts]\ntcp = \"long\"\n");
    assert!(e[0].starts_with("test.toml:2:7:"), "{e:?}");
    let e = errs(
        "[[service]]\naddress = \"10.0.0.3:80\"\n[[service.real]]\naddress = \"10.0.0.7:80\"\nweight = -1\n",
    );
    assert!(e[0].starts_with("test.toml:5:10:"), "{e:?}");
}

#[test]
fn every_validation_error_is_reported_with_its_place() {
    let text = r#"
[[service]]
address = "10.0.0.3:80"

[[service.real]]
address = "10.0.0.7:80"
weight = 70000

[[service.real]]
address = "10.0.0.8"

[[service.real]]
address = "[2001:db8::1]:80"
method = "nat"

[[service]]
address = "10.0.0.3:80"

[[service]]
address = "10.0.0.4:80"
persistence = { prefix_len = 40 }

[[service]]
address = "10.0.0.5:80"
[[service.real]]
address = "10.0.0.9:80"
upper_threshold = 5
lower_threshold = 8
"#;
    let e = errs(text);
    assert_eq!(e.len(), 6, "{e:#?}");
    assert!(
        e[0].starts_with("test.toml:7:10:") && e[0].contains("weight 70000 out of range"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("test.toml:10:11:") && e[1].contains("expected ADDR:PORT"),
        "{e:?}"
    );
    assert!(
        e[2].starts_with("test.toml:13:11:") && e[2].contains("address family"),
        "{e:?}"
    );
    assert!(
        e[3].starts_with("test.toml:16:1:") && e[3].contains("already exists"),
        "{e:?}"
    );
    assert!(
        e[4].starts_with("test.toml:21:15:") && e[4].contains("netmask /40"),
        "{e:?}"
    );
    assert!(
        e[5].starts_with("test.toml:25:1:") && e[5].contains("threshold"),
        "{e:?}"
    );
}

#[test]
fn duplicate_real_and_bad_service_key() {
    let e = errs(
        "[[service]]\naddress = \"10.0.0.3:80\"\n[[service.real]]\naddress = \"10.0.0.7:80\"\n[[service.real]]\naddress = \"10.0.0.7:80\"\n",
    );
    assert!(
        e[0].starts_with("test.toml:5:1:") && e[0].contains("already exists"),
        "{e:?}"
    );
    let e = errs("[[service]]\nscheduler = \"rr\"\n");
    assert!(e[0].contains("needs address"), "{e:?}");
    let e = errs("[[service]]\naddress = \"10.0.0.3:80\"\nfwmark = 1\n");
    assert!(e[0].contains("not both"), "{e:?}");
}

#[test]
fn daemon_section_is_checked() {
    let e = errs("[daemon]\nlisten = \"127.0.0.1:9901\"\n");
    assert!(e[0].contains("token_file"), "{e:?}");
    let e = errs("[daemon]\nlisten = \"localhost\"\ntoken_file = \"/t\"\nproxy_workers = 0\n");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("test.toml:2:10:"), "{e:?}");
    let e = errs("[daemon]\nxdp_nat_conns = 0\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("test.toml:2:17:") && e[0].contains("xdp_nat_conns must be at least 1"),
        "{e:?}"
    );
    let e = errs("[daemon]\nxdp_icmp_rate = 10000001\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("test.toml:2:17:") && e[0].contains("xdp_icmp_rate must be at most"),
        "{e:?}"
    );
    let e = errs("[daemon]\nxdp_icmp_rate = -1\n");
    assert!(e[0].starts_with("test.toml:2:17:"), "{e:?}");
    for bad in ["0", "10000001"] {
        let e = errs(&format!("[daemon]\nxdp_icmp_burst = {bad}\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("test.toml:2:18:")
                && e[0].contains("xdp_icmp_burst must be 1 to 10000000 errors"),
            "{e:?}"
        );
    }
    let e = errs("[daemon]\nxdp_icmp_burst = -1\n");
    assert!(e[0].starts_with("test.toml:2:18:"), "{e:?}");
    let burst = |v: &str| {
        p(&format!("[daemon]\nxdp_icmp_burst = {v}\n"))
            .unwrap()
            .daemon
            .xdp_icmp_burst
    };
    assert_eq!(burst("1"), Some(1));
    assert_eq!(burst("10000000"), Some(10_000_000));
    assert_eq!(p("").unwrap().daemon.xdp_icmp_burst, None);
    let e = errs("[daemon]\nproxy_udp_sessions = 0\n");
    assert!(
        e[0].starts_with("test.toml:2:22:")
            && e[0].contains("proxy_udp_sessions must be at least 1"),
        "{e:?}"
    );
    let e = errs("[daemon]\nproxy_max_conns = 0\n");
    assert!(
        e[0].starts_with("test.toml:2:19:") && e[0].contains("proxy_max_conns must be at least 1"),
        "{e:?}"
    );
    let e = errs("[daemon]\nstop_grace_ms = 86400001\n");
    assert!(
        e[0].starts_with("test.toml:2:17:") && e[0].contains("stop_grace_ms must be at most"),
        "{e:?}"
    );
    let e = errs("[daemon]\nengines = [\"turbo\"]\n");
    assert!(e[0].contains("proxy"), "{e:?}");
    let e = errs("[daemon]\nlog_level = \"loud\"\n");
    assert!(e[0].contains("info"), "{e:?}");
}

#[test]
fn unreadable_file_is_an_error() {
    let e = load(Path::new("/nonexistent/rvs.toml")).unwrap_err();
    assert!(e.to_string().contains("cannot read"), "{e}");
}

#[test]
fn fullnat_local_addresses_default_and_per_service() {
    let c = p(r#"
[daemon]
fullnat_local = ["10.0.0.5", "fd00::5", "10.0.0.6"]

[[service]]
address = "[2001:db8::1]:80"
local_addresses = ["fd00::7", "fd00::8"]

[[service]]
fwmark = 3
local_addresses = ["10.0.0.9"]

[[service]]
address = "10.0.0.3:80"
"#)
    .unwrap();
    let ips =
        |v: &[&str]| -> Vec<std::net::IpAddr> { v.iter().map(|s| s.parse().unwrap()).collect() };
    assert_eq!(
        c.daemon.fullnat_local,
        ips(&["10.0.0.5", "fd00::5", "10.0.0.6"])
    );
    let v6 = ServiceKey::tcp("[2001:db8::1]:80".parse().unwrap());
    let fw = ServiceKey::FwMark {
        mark: 3,
        family: AddressFamily::V4,
    };
    assert_eq!(c.local_addresses.len(), 2, "{:?}", c.local_addresses);
    assert_eq!(c.local_addresses[&v6], ips(&["fd00::7", "fd00::8"]));
    assert_eq!(c.local_addresses[&fw], ips(&["10.0.0.9"]));
    assert_eq!(
        p("").unwrap().daemon.fullnat_local,
        Vec::<std::net::IpAddr>::new()
    );
}

#[test]
fn bad_local_addresses_are_located() {
    let nine: Vec<String> = (1..=9).map(|i| format!("\"10.0.0.{i}\"")).collect();
    let text = format!(
        r#"[daemon]
fullnat_local = ["10.0.0.5", "10.0.0.5", "fd00::5", "nope"]

[[service]]
address = "10.0.0.3:80"
local_addresses = ["10.0.0.7", "fd00::7", "0.0.0.0"]

[[service]]
address = "10.0.0.4:80"
local_addresses = []

[[service]]
address = "10.0.0.5:80"
local_addresses = [{}]
"#,
        nine.join(", ")
    );
    let e = errs(&text);
    assert_eq!(e.len(), 6, "{e:#?}");
    assert!(
        e[0].starts_with("test.toml:2:30:") && e[0].contains("10.0.0.5 appears twice"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("test.toml:2:53:") && e[1].contains("bad local address 'nope'"),
        "{e:?}"
    );
    assert!(
        e[2].starts_with("test.toml:6:32:") && e[2].contains("fd00::7 is not IPv4"),
        "{e:?}"
    );
    assert!(
        e[3].starts_with("test.toml:6:43:") && e[3].contains("unicast"),
        "{e:?}"
    );
    assert!(
        e[4].starts_with("test.toml:10:19:") && e[4].contains("local_addresses is empty"),
        "{e:?}"
    );
    assert!(
        e[5].starts_with("test.toml:14:19:")
            && e[5].contains("9 IPv4 local addresses")
            && e[5].contains("at most 8"),
        "{e:?}"
    );
}

#[test]
fn tcp_state_timeouts_are_read_and_checked() {
    let c =
        p("[timeouts]\ntcp = 60\n\n[timeouts.tcp_states]\ntime_wait = 7\nsyn_recv = 30\n").unwrap();
    let t = c.state.timeouts;
    assert_eq!(
        (t.tcp, t.tcp_states.time_wait, t.tcp_states.syn_recv),
        (60, Some(7), Some(30))
    );
    assert_eq!(t.tcp_states.close, None, "unset states keep IPVS's default");
    let conn = rvs_core::conn::ConnTimeouts::from_set(&t);
    use rvs_core::conn::{ConnState, TcpState};
    assert_eq!(conn.secs(ConnState::Tcp(TcpState::TimeWait)), 7);
    assert_eq!(conn.secs(ConnState::Tcp(TcpState::SynRecv)), 30);
    assert_eq!(conn.secs(ConnState::Tcp(TcpState::Close)), 10);

    let e = errs("[timeouts.tcp_states]\ntime_wait = 0\nestablished = 5\ntimewait = 3\n");
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(
        e.iter().any(|m| m.starts_with("test.toml:3:1:")
            && m.contains("unknown TCP state `established`")
            && m.contains("timeouts.tcp")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|m| m.starts_with("test.toml:4:1:")
            && m.contains("`timewait`")
            && m.contains("time_wait")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|m| m.starts_with("test.toml:2:13:")
            && m.contains("timeouts.tcp_states.time_wait must be at least 1")),
        "{e:?}"
    );
}

#[test]
fn zero_timeouts_are_located_errors() {
    let text = "[timeouts]\ntcp = 0\ntcp_fin = 5\nudp = 0\n\n[[service]]\naddress = \"10.0.0.3:80\"\n\
                proxy = { connect_timeout_ms = 0, idle_timeout_ms = 0 }\n";
    let e = errs(text);
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(
        e[0].starts_with("test.toml:2:7:") && e[0].contains("timeouts.tcp must be at least 1"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("test.toml:4:7:") && e[1].contains("timeouts.udp must be at least 1"),
        "{e:?}"
    );
    assert!(
        e[2].starts_with("test.toml:8:32:") && e[2].contains("connect_timeout_ms"),
        "{e:?}"
    );
    assert!(
        e[3].starts_with("test.toml:8:53:") && e[3].contains("idle_timeout_ms"),
        "{e:?}"
    );
    // 1 is the smallest value taken.
    let c = p("[timeouts]\ntcp = 1\ntcp_fin = 1\nudp = 1\n").unwrap();
    assert_eq!(
        c.state.timeouts,
        Timeouts {
            tcp: 1,
            tcp_fin: 1,
            udp: 1,
            ..Default::default()
        }
    );
}

#[test]
fn passive_failure_detection_options_default_set_and_located_errors() {
    let svc = |c: &Config| c.state.services.values().next().unwrap().options.proxy;
    // nginx's defaults: max_fails 1, fail_timeout 10 s.
    let c = p("[[service]]\naddress = \"10.0.0.3:80\"\n").unwrap();
    assert_eq!((svc(&c).max_fails, svc(&c).fail_timeout_ms), (1, 10_000));
    let c = p("[[service]]\naddress = \"10.0.0.3:80\"\n\
               proxy = { max_fails = 3, fail_timeout_ms = 300 }\n")
    .unwrap();
    assert_eq!((svc(&c).max_fails, svc(&c).fail_timeout_ms), (3, 300));
    // 0 turns it off.
    let c = p("[[service]]\naddress = \"10.0.0.3:80\"\nproxy = { max_fails = 0 }\n").unwrap();
    assert_eq!(svc(&c).max_fails, 0);
    // A zero window is an error at its place; so is a negative count (the parser's type check).
    let e = errs("[[service]]\naddress = \"10.0.0.3:80\"\nproxy = { fail_timeout_ms = 0 }\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("test.toml:3:29:") && e[0].contains("max_fails = 0"),
        "{e:?}"
    );
    let e = errs("[[service]]\naddress = \"10.0.0.3:80\"\nproxy = { max_fails = -1 }\n");
    assert!(e[0].starts_with("test.toml:3:"), "{e:?}");
}

#[test]
fn zero_persistence_and_fwmark_are_located_errors() {
    // found by tests/toml_robust.rs: both were accepted (ipvsadm and keepalived refuse them)
    let e = errs("[[service]]\naddress = \"10.0.0.3:80\"\npersistence = { timeout = 0 }\n");
    assert!(
        e[0].starts_with("test.toml:3:27:") && e[0].contains("persistence.timeout"),
        "{e:?}"
    );
    let e = errs("[[service]]\nfwmark = 0\n");
    assert!(
        e[0].starts_with("test.toml:2:10:") && e[0].contains("fwmark"),
        "{e:?}"
    );
}

#[test]
fn listen_without_token_is_located_at_listen() {
    let e = errs("\n[daemon]\nlisten = \"127.0.0.1:9901\"\n");
    assert!(
        e[0].starts_with("test.toml:3:10:") && e[0].contains("token_file"),
        "{e:?}"
    );
}

#[test]
fn many_errors_are_located_in_linear_time() {
    // found by tests/toml_robust.rs: each error counted lines from the start of the file
    let text = "[[service]]\n".repeat(50_000);
    let t0 = std::time::Instant::now();
    let e = p(&text).unwrap_err().0;
    assert_eq!(e.len(), 50_000);
    assert_eq!(
        (e[49_999].location.line, e[49_999].location.column),
        (50_000, 1)
    );
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn a_file_that_is_not_utf8_is_located_at_the_first_bad_byte() {
    let path = std::env::temp_dir().join(format!("rvs-toml-utf8-{}.toml", std::process::id()));
    std::fs::write(&path, b"[daemon]\nlog_level = \"inf\xf6\"\n").unwrap();
    let e = load(&path).unwrap_err().0;
    std::fs::remove_file(&path).unwrap();
    assert_eq!((e[0].location.line, e[0].location.column), (2, 17), "{e:?}");
    assert!(e[0].message.contains("UTF-8"), "{e:?}");
}

#[test]
fn a_byte_order_mark_is_no_column() {
    let e = errs("\u{feff}[daemon]\nlog_level = 1\n");
    assert!(e[0].starts_with("test.toml:2:13:"), "{e:?}");
    let e = errs("\u{feff}x = 1\n");
    assert!(e[0].starts_with("test.toml:1:1:"), "{e:?}");
}

#[test]
fn an_empty_engine_list_is_an_error() {
    // accepted before: rvsd then ran no engine and served nothing
    let e = errs("[daemon]\nengines = []\n");
    assert!(
        e[0].starts_with("test.toml:2:11:") && e[0].contains("engines is empty"),
        "{e:?}"
    );
}

#[test]
fn port_zero_needs_persistence() {
    let e = errs("[[service]]\naddress = \"10.0.0.3:0\"\n");
    assert!(
        e[0].starts_with("test.toml:2:11:") && e[0].contains("port 0"),
        "{e:?}"
    );
    // Reported once, at the address (the model's own check said it again at 1:1).
    assert_eq!(e.len(), 1, "{e:?}");
    p("[[service]]\naddress = \"10.0.0.3:0\"\npersistence = {}\n").unwrap();
}

#[test]
fn an_engine_or_interface_listed_twice_is_an_error() {
    let e = errs("[daemon]\nengines = [\"proxy\", \"xdp\", \"proxy\"]\n");
    assert!(
        e[0].starts_with("test.toml:2:28:") && e[0].contains("already listed in engines"),
        "{e:?}"
    );
    let e = errs("[daemon]\nxdp_interfaces = [\"eth0\", \"eth0\"]\n");
    assert!(
        e[0].starts_with("test.toml:2:27:") && e[0].contains("already listed in xdp_interfaces"),
        "{e:?}"
    );
    let e = errs("[daemon]\nxdp_interfaces = [\"\"]\n");
    assert!(
        e[0].starts_with("test.toml:2:19:") && e[0].contains("interface name"),
        "{e:?}"
    );
    let c = p("[daemon]\nengines = [\"xdp\", \"proxy\"]\nxdp_interfaces = [\"eth0\", \"eth1\"]\n")
        .unwrap();
    assert_eq!(c.daemon.xdp_interfaces, ["eth0", "eth1"]);
    assert_eq!(
        c.daemon.engines,
        Some(vec![EngineKind::Xdp, EngineKind::Proxy])
    );
}

#[test]
fn changed_daemon_keys_are_named() {
    let a = p("[daemon]\nproxy_workers = 2\nxdp_keep_on_exit = false\n")
        .unwrap()
        .daemon;
    let b = p("[daemon]\nlog_level = \"debug\"\nproxy_workers = 3\nxdp_keep_on_exit = true\n")
        .unwrap()
        .daemon;
    assert_eq!(
        a.changed_keys(&b),
        ["xdp_keep_on_exit", "proxy_workers", "log_level"]
    );
    assert_eq!(b.changed_keys(&a), a.changed_keys(&b));
    assert!(a.changed_keys(&a).is_empty());
    let full = p(FULL).unwrap().daemon;
    assert!(
        full.changed_keys(&DaemonConfig::default())
            .contains(&"socket")
    );
}
