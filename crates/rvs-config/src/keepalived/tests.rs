//! Parser tests: the seed's file, every keyword, includes, and bad input.

use super::*;
use rvs_core::model::*;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

fn parse(text: &str) -> Result<KeepalivedConfig, ConfigErrors> {
    parse_with(text, Path::new("/t/k.conf"), Includes::Refuse)
}

fn ok(text: &str) -> KeepalivedConfig {
    match parse(text) {
        Ok(c) => c,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

fn errs(text: &str) -> Vec<ConfigError> {
    match parse(text) {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) => e.0,
    }
}

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/keepalived/testdata")
        .join(name)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The persistence of the configuration's first service.
fn first_persistence(c: &KeepalivedConfig) -> Option<Persistence> {
    c.desired
        .services
        .values()
        .next()
        .unwrap()
        .options
        .persistence
}

fn vs(body: &str) -> String {
    format!("virtual_server 10.0.0.3 80 {{\n{body}\n real_server 10.0.0.7 80 {{ weight 1 }}\n}}\n")
}

#[test]
fn seed_file_yields_the_services_reals_checkers_and_vrrp_it_describes() {
    let cfg = load(&testdata("seed_002.conf")).unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert_eq!(cfg.global.router_id.as_deref(), Some("lb01"));
    let key = ServiceKey::tcp(sa("10.0.0.3:80"));
    let svc = &cfg.desired.services[&key];
    assert_eq!(cfg.desired.services.len(), 1);
    assert_eq!(svc.options.scheduler, SchedulerKind::Wrr);
    assert_eq!(
        svc.options.persistence,
        Some(Persistence {
            timeout: 20,
            prefix_len: 32
        })
    );
    let addrs: Vec<_> = svc.reals.keys().copied().collect();
    assert_eq!(addrs, vec![sa("10.0.0.7:80"), sa("10.0.0.8:80")]);
    for r in svc.reals.values() {
        assert_eq!((r.method, r.weight), (ForwardMethod::Dr, 1));
    }
    let h = &cfg.virtual_servers[0];
    assert_eq!(h.service, key);
    assert_eq!(h.delay_loop, Duration::from_secs(6));
    assert_eq!(h.reals.len(), 2);
    for r in &h.reals {
        assert_eq!(r.checkers.len(), 1);
        let c = &r.checkers[0];
        assert_eq!(c.kind, CheckKind::Tcp);
        assert_eq!(c.connect_timeout, Duration::from_secs(8));
        assert_eq!(c.retry, 3);
        assert_eq!(c.delay_before_retry, Duration::from_secs(3));
        assert_eq!(c.connect_port, Some(80));
        assert_eq!(
            c.delay_loop,
            Duration::from_secs(6),
            "inherited from the virtual server"
        );
    }
    let vi = &cfg.vrrp.instances[0];
    assert_eq!(vi.name, "VI_1");
    assert_eq!(vi.state, Some(VrrpState::Master));
    assert_eq!(vi.interface.as_deref(), Some("eth0"));
    assert_eq!((vi.virtual_router_id, vi.priority), (Some(51), 100));
    assert_eq!(vi.advert_int, Duration::from_secs(1));
    assert_eq!(
        (vi.auth_type.as_deref(), vi.auth_pass.as_deref()),
        (Some("PASS"), Some("1111"))
    );
    let vip = &vi.virtual_ipaddress[0];
    assert_eq!(
        (vip.addr.to_string(), vip.prefix_len),
        ("10.0.0.3".to_string(), 24)
    );
    assert_eq!(
        (vip.dev.as_deref(), vip.label.as_deref()),
        (Some("eth0"), Some("eth0:0"))
    );
}

#[test]
fn seed_as_printed_with_glued_braces_parses_the_same() {
    // the seed prints `TCP_CHECK{` with no space; `{`/`}` glued to words are still tokens
    let glued = "virtual_server 10.0.0.3 80 {delay_loop 6\nlb_kind DR\nreal_server 10.0.0.7 80 {weight 1\nTCP_CHECK{connect_timeout 8\nconnect_port 80}}\n}";
    let c = ok(glued);
    let r = &c.virtual_servers[0].reals[0];
    assert_eq!(r.checkers[0].connect_timeout, Duration::from_secs(8));
    assert_eq!(r.checkers[0].connect_port, Some(80));
}

#[test]
fn defaults_follow_keepalived() {
    let c = ok("virtual_server 10.0.0.3 80 {\n real_server 10.0.0.7 80 {\n TCP_CHECK {\n }\n }\n}");
    let svc = c.desired.services.values().next().unwrap();
    assert_eq!(svc.options.scheduler, SchedulerKind::Wlc);
    assert_eq!(
        svc.reals[&sa("10.0.0.7:80")].method,
        ForwardMethod::Nat,
        "keepalived's lb_kind default is NAT"
    );
    assert_eq!(svc.reals[&sa("10.0.0.7:80")].weight, 1);
    let h = &c.virtual_servers[0];
    assert_eq!(
        (h.delay_loop, h.quorum, h.hysteresis),
        (Duration::from_secs(60), 1, 0)
    );
    let ch = &h.reals[0].checkers[0];
    assert_eq!(
        (ch.connect_timeout, ch.retry, ch.delay_before_retry),
        (Duration::from_secs(5), 1, Duration::from_secs(1))
    );
    assert_eq!(ch.warmup, Duration::from_secs(60));
    assert_eq!(ch.target(sa("10.0.0.7:80")), sa("10.0.0.7:80"));
}

#[test]
fn virtual_server_keywords() {
    let c = ok(&vs(
        "lb_algo sh\nlb_kind TUN\npersistence_timeout 30\npersistence_granularity 255.255.255.0\nprotocol UDP\ndelay_loop 2.5\nquorum 3\nhysteresis 1\nsorry_server 10.0.0.99 8080\nsorry_server_inhibit\nalpha\nomega\ninhibit_on_failure\nvirtualhost www.example.com\nquorum_up \"/bin/up arg\"\nquorum_down /bin/down\nops\nreal_server 10.0.0.8 80 { weight 5 }",
    ));
    let key = ServiceKey::udp(sa("10.0.0.3:80"));
    let svc = &c.desired.services[&key];
    assert_eq!(svc.options.scheduler, SchedulerKind::Sh);
    assert!(svc.options.one_packet);
    assert_eq!(
        svc.options.persistence,
        Some(Persistence {
            timeout: 30,
            prefix_len: 24
        })
    );
    assert_eq!(svc.reals[&sa("10.0.0.7:80")].method, ForwardMethod::Tun);
    let h = &c.virtual_servers[0];
    assert_eq!(h.delay_loop, Duration::from_millis(2500));
    assert_eq!(
        (h.quorum, h.hysteresis, h.alpha, h.omega),
        (3, 1, true, true)
    );
    assert!(h.inhibit_on_failure && h.reals[0].inhibit_on_failure && h.sorry_server_inhibit);
    assert_eq!(h.sorry_server, Some(sa("10.0.0.99:8080")));
    assert_eq!(h.virtualhost.as_deref(), Some("www.example.com"));
    assert_eq!(
        h.quorum_up.as_ref().map(|s| s.command.as_str()),
        Some("/bin/up arg")
    );
    assert_eq!(
        h.quorum_down.as_ref().map(|s| s.command.as_str()),
        Some("/bin/down")
    );
}

#[test]
fn lb_kinds_including_fullnat() {
    for (word, m) in [
        ("NAT", ForwardMethod::Nat),
        ("DR", ForwardMethod::Dr),
        ("TUN", ForwardMethod::Tun),
        ("FNAT", ForwardMethod::FullNat),
        ("FULLNAT", ForwardMethod::FullNat),
    ] {
        let c = ok(&vs(&format!("lb_kind {word}")));
        let svc = c.desired.services.values().next().unwrap();
        assert_eq!(svc.reals.values().next().unwrap().method, m, "{word}");
    }
}

#[test]
fn fwmark_and_groups() {
    let c = ok("virtual_server fwmark 7 {\n real_server 10.0.0.7 0 { weight 2 }\n}");
    let key = ServiceKey::FwMark {
        mark: 7,
        family: AddressFamily::V4,
    };
    assert_eq!(c.desired.services[&key].reals[&sa("10.0.0.7:0")].weight, 2);

    let text = "virtual_server_group G {\n 10.0.0.1-3 80\n 10.0.1.1 443\n fwmark 9\n}\nvirtual_server group G {\n lb_kind DR\n real_server 10.0.0.7 80 { }\n}";
    let c = ok(text);
    let keys: Vec<_> = c.desired.services.keys().copied().collect();
    assert_eq!(keys.len(), 5);
    assert!(keys.contains(&ServiceKey::tcp(sa("10.0.0.2:80"))));
    assert!(keys.contains(&ServiceKey::tcp(sa("10.0.1.1:443"))));
    assert!(keys.contains(&ServiceKey::FwMark {
        mark: 9,
        family: AddressFamily::V4
    }));
    assert_eq!(c.virtual_servers.len(), 5);
    assert!(c.desired.services.values().all(|s| s.reals.len() == 1));
}

#[test]
fn every_checker_and_its_parameters() {
    let text = r#"virtual_server 10.0.0.3 80 {
  delay_loop 10
  virtualhost vs.example
  real_server 10.0.0.7 80 {
    weight 5
    inhibit_on_failure
    notify_up "/bin/echo up"
    notify_down /bin/down
    uthreshold 100
    lthreshold 50
    TCP_CHECK {
      connect_ip 10.0.0.70
      connect_port 81
      bindto 10.0.0.5
      bind_port 5000
      connect_timeout 2
      retry 4
      delay_before_retry 0.5
      delay_loop 3
      warmup 1
      alpha
    }
    HTTP_GET {
      url {
        path /a
        digest 9E107D9D372BB6826BD81D3542A419D6
        status_code 200 300-302
        virtualhost u.example
      }
      url { path /b }
      virtualhost h.example
    }
    SSL_GET {
      url { path /s }
      enable_sni
      tls_verify
    }
    UDP_CHECK {
      payload 0a0b
      require_reply 0x0c
      min_reply_length 1
      max_reply_length 9
    }
    DNS_CHECK {
      type aaaa
      name example.org
    }
    MISC_CHECK {
      misc_path "/bin/check 1 2"
      misc_timeout 4
      misc_dynamic
      user nobody
    }
    PING_CHECK { }
  }
}"#;
    let c = ok(text);
    let r = &c.virtual_servers[0].reals[0];
    let real = c.desired.services.values().next().unwrap().reals[&sa("10.0.0.7:80")];
    assert_eq!(
        (real.weight, real.upper_threshold, real.lower_threshold),
        (5, 100, 50)
    );
    assert!(r.inhibit_on_failure);
    assert_eq!(
        r.notify_up.as_ref().map(|s| s.command.as_str()),
        Some("/bin/echo up")
    );
    assert_eq!(
        r.notify_down.as_ref().map(|s| s.command.as_str()),
        Some("/bin/down")
    );
    let names: Vec<_> = r.checkers.iter().map(|c| c.kind.name()).collect();
    assert_eq!(
        names,
        [
            "TCP_CHECK",
            "HTTP_GET",
            "SSL_GET",
            "UDP_CHECK",
            "DNS_CHECK",
            "MISC_CHECK",
            "PING_CHECK"
        ]
    );
    let t = &r.checkers[0];
    assert_eq!(t.target(sa("10.0.0.7:80")), sa("10.0.0.70:81"));
    assert_eq!(
        (t.bindto, t.bind_port),
        (Some("10.0.0.5".parse().unwrap()), Some(5000))
    );
    assert_eq!(
        (t.connect_timeout, t.retry, t.delay_before_retry),
        (Duration::from_secs(2), 4, Duration::from_millis(500))
    );
    assert_eq!(
        (t.delay_loop, t.warmup, t.alpha),
        (Duration::from_secs(3), Duration::from_secs(1), true)
    );
    let CheckKind::Http(h) = &r.checkers[1].kind else {
        panic!()
    };
    assert_eq!(
        h.urls[0].digest.as_deref(),
        Some("9e107d9d372bb6826bd81d3542a419d6")
    );
    assert!(h.urls[0].accepts(301) && !h.urls[0].accepts(204) && h.urls[1].accepts(204));
    assert_eq!(h.urls[0].virtualhost.as_deref(), Some("u.example"));
    assert_eq!(h.virtualhost.as_deref(), Some("h.example"));
    let CheckKind::Ssl(s) = &r.checkers[2].kind else {
        panic!()
    };
    assert!(s.enable_sni && s.tls_verify);
    let CheckKind::Udp(u) = &r.checkers[3].kind else {
        panic!()
    };
    assert_eq!(
        (u.payload.as_slice(), u.require_reply.as_deref()),
        (&[10u8, 11][..], Some(&[12u8][..]))
    );
    assert_eq!((u.min_reply_length, u.max_reply_length), (Some(1), Some(9)));
    let CheckKind::Dns(d) = &r.checkers[4].kind else {
        panic!()
    };
    assert_eq!((d.qtype, d.name.as_str()), (DnsType::Aaaa, "example.org"));
    let CheckKind::Misc(m) = &r.checkers[5].kind else {
        panic!()
    };
    assert_eq!(m.path, "/bin/check 1 2");
    assert_eq!(
        (m.timeout, m.dynamic, m.user.as_deref()),
        (Some(Duration::from_secs(4)), true, Some("nobody"))
    );
    assert_eq!(r.checkers[6].delay_loop, Duration::from_secs(10));
}

#[test]
fn vrrp_blocks() {
    let text = r#"vrrp_script chk {
  script "/bin/true x"
  interval 2
  timeout 1
  weight -20
  fall 3
  rise 2
}
vrrp_instance VI_2 {
  state BACKUP
  interface veth0
  virtual_router_id 52
  priority 90
  advert_int 0.5
  nopreempt
  preempt_delay 5
  unicast_src_ip 10.0.0.5
  unicast_peer { 10.0.0.6 10.0.0.9 }
  virtual_ipaddress {
    10.0.0.4
    2001:db8::4/64 dev veth0
  }
  track_interface { veth0 }
  track_script { chk }
  notify_master /bin/m
  notify_backup /bin/b
  notify_fault /bin/f
  notify /bin/n
}
vrrp_sync_group SG {
  group { VI_2 }
  notify_master /bin/sm
}
"#;
    // unicast_peer lines: one address per line in keepalived; accept one per line here
    let text = text.replace(
        "unicast_peer { 10.0.0.6 10.0.0.9 }",
        "unicast_peer {\n10.0.0.6\n10.0.0.9\n}",
    );
    let c = ok(&text);
    let s = &c.vrrp.scripts[0];
    assert_eq!(
        (
            s.name.as_str(),
            s.script.as_deref(),
            s.weight,
            s.fall,
            s.rise
        ),
        ("chk", Some("/bin/true x"), -20, 3, 2)
    );
    assert_eq!(
        (s.interval, s.timeout),
        (Duration::from_secs(2), Some(Duration::from_secs(1)))
    );
    let v = &c.vrrp.instances[0];
    assert_eq!(
        (v.state, v.priority, v.nopreempt),
        (Some(VrrpState::Backup), 90, true)
    );
    assert_eq!(
        (v.advert_int, v.preempt_delay),
        (Duration::from_millis(500), Some(Duration::from_secs(5)))
    );
    assert_eq!(v.unicast_peer.len(), 2);
    assert_eq!(v.unicast_src_ip, Some("10.0.0.5".parse().unwrap()));
    assert_eq!(v.virtual_ipaddress.len(), 2);
    assert_eq!(v.virtual_ipaddress[0].prefix_len, 32);
    assert_eq!(v.virtual_ipaddress[1].prefix_len, 64);
    assert_eq!(
        (v.track_interface.clone(), v.track_script.clone()),
        (vec!["veth0".to_string()], vec!["chk".to_string()])
    );
    assert_eq!(
        (v.notify_master.as_deref(), v.notify.as_deref()),
        (Some("/bin/m"), Some("/bin/n"))
    );
    let g = &c.vrrp.sync_groups[0];
    assert_eq!(
        (g.name.as_str(), g.group.clone(), g.notify_master.as_deref()),
        ("SG", vec!["VI_2".to_string()], Some("/bin/sm"))
    );
}

#[test]
fn comments_and_brace_on_its_own_line() {
    let c = ok(
        "# hash comment\n! bang comment\nvirtual_server 10.0.0.3 80 # trailing\n{\n  lb_algo rr ! trailing too\n}\n",
    );
    assert_eq!(
        c.desired
            .services
            .values()
            .next()
            .unwrap()
            .options
            .scheduler,
        SchedulerKind::Rr
    );
}

#[test]
fn unsupported_keywords_are_located_warnings() {
    let c = ok(
        "global_defs {\n  router_id x\n  notification_email { a@b }\n}\nstatic_ipaddress { 1.2.3.4 }\n",
    );
    let w: Vec<_> = c
        .warnings
        .iter()
        .map(|w| (w.location.line, w.message.clone()))
        .collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(w[0].0, 3);
    assert!(w[0].1.contains("notification_email") && w[0].1.contains("global_defs"));
    assert_eq!(w[1].0, 5);
    assert_eq!(c.warnings[0].location.path, PathBuf::from("/t/k.conf"));
}

#[test]
fn includes_with_globs_relative_to_the_including_file() {
    let cfg = load(&testdata("main_with_includes.conf")).unwrap();
    assert_eq!(cfg.global.router_id.as_deref(), Some("incl"));
    assert_eq!(
        cfg.desired.services.len(),
        2,
        "both conf.d/*.conf, not README.txt"
    );
    assert!(
        cfg.desired
            .services
            .contains_key(&ServiceKey::udp(sa("192.0.2.1:53")))
    );
    assert_eq!(cfg.vrrp.scripts[0].name, "chk_web");
    let CheckKind::Http(h) = &cfg.virtual_servers[0].reals[0].checkers[0].kind else {
        panic!()
    };
    assert_eq!(h.urls[0].path, "/health");
}

#[test]
fn include_errors_name_the_included_file_and_line() {
    let dir = std::env::temp_dir().join(format!("rvs-kincl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("main.conf"),
        "include sub.conf\ninclude missing.conf\ninclude none-*.conf\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("sub.conf"),
        "\nvirtual_server 10.0.0.3 80 {\n  lb_algo nope\n}\n",
    )
    .unwrap();
    let (errors, _) = check_file(&dir.join("main.conf"));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!((errors[0].location.line, errors[0].location.column), (2, 9));
    assert!(errors[0].message.contains("missing.conf"));
    assert!(errors[1].location.path.ends_with("sub.conf"));
    assert_eq!(
        (errors[1].location.line, errors[1].location.column),
        (3, 11)
    );
    assert!(errors[1].message.contains("unknown scheduler"));
}

#[test]
fn include_loops_stop() {
    let dir = std::env::temp_dir().join(format!("rvs-kloop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.conf"), "include a.conf\n").unwrap();
    // a chain without a cycle, deeper than the limit: c0 -> c1 -> ... -> c11
    for i in 0..12 {
        std::fs::write(
            dir.join(format!("c{i}.conf")),
            format!("include c{}.conf\n", i + 1),
        )
        .unwrap();
    }
    std::fs::write(dir.join("c12.conf"), "").unwrap();
    let (cycle, _) = check_file(&dir.join("a.conf"));
    let (deep, _) = check_file(&dir.join("c0.conf"));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(cycle.len(), 1, "{cycle:?}");
    assert!(cycle[0].message.contains("includes itself"), "{cycle:?}");
    assert_eq!(deep.len(), 1, "{deep:?}");
    assert!(deep[0].message.contains("nested deeper"), "{deep:?}");
    assert!(deep[0].location.path.ends_with("c8.conf"), "{deep:?}");
}

#[test]
fn syntax_errors_have_line_column_and_expectation() {
    let e = errs("virtual_server 10.0.0.3 80 {\n  lb_algo rr\n");
    assert_eq!((e[0].location.line, e[0].location.column), (1, 28));
    assert!(e[0].message.contains("expected '}'"));
    let e = errs("}\n");
    assert!(e[0].message.contains("unexpected '}'"));
    let e = errs("{ }\n");
    assert!(e[0].message.contains("unexpected '{'"));
    let e = errs("virtual_server 10.0.0.3 80 {\n  delay_loop\n}");
    assert_eq!((e[0].location.line, e[0].location.column), (2, 13));
    assert!(e[0].message.contains("expected a number of seconds"));
    let e = errs("virtual_server 10.0.0.300 80 {\n}");
    assert_eq!(e[0].location.column, 16);
    let e = errs("virtual_server 10.0.0.3 80 {\n real_server 10.0.0.7 80 {\n weight 70000\n }\n}");
    assert!(e[0].message.contains("out of range"));
    let e = errs(&"{".repeat(100));
    assert!(e.iter().any(|e| e.message.contains("nested deeper")));
    assert!(
        !errs("include x.conf").is_empty(),
        "includes refused without a file system"
    );
}

#[test]
fn bad_values_are_errors() {
    for (body, needle) in [
        ("lb_kind XYZ", "expected NAT, DR, TUN or FNAT"),
        ("protocol ICMP", "expected TCP, UDP or SCTP"),
        ("persistence_granularity 255.0.255.0", "netmask"),
        ("sorry_server 10.0.0.9", "expected a port"),
        ("quorum many", "expected a weight sum"),
    ] {
        let e = errs(&vs(body));
        assert!(e[0].message.contains(needle), "{body}: {}", e[0]);
    }
    for (checker, needle) in [
        ("MISC_CHECK { }", "misc_path"),
        (
            "HTTP_GET { url {\n digest 123\n path /\n }\n }",
            "32 hex digits",
        ),
        (
            "HTTP_GET { url {\n status_code 99\n path /\n }\n }",
            "status code",
        ),
        ("HTTP_GET { url { } }", "needs 'path'"),
        ("UDP_CHECK { payload xyz }", "hex bytes"),
        ("DNS_CHECK { type BOGUS }", "DNS type"),
        ("TCP_CHECK { connect_port 70000 }", "port"),
        ("TCP_CHECK { alpha maybe }", "on/off"),
    ] {
        let text = format!(
            "virtual_server 10.0.0.3 80 {{\n real_server 10.0.0.7 80 {{\n {checker}\n }}\n}}"
        );
        let e = errs(&text);
        assert!(
            e.iter().any(|e| e.message.contains(needle)),
            "{checker}: {e:?}"
        );
    }
    let e = errs(
        "virtual_server 10.0.0.3 80 {\n real_server 10.0.0.7 80 { }\n real_server 10.0.0.7 80 { }\n}",
    );
    assert!(e[0].message.contains("already exists"));
    assert_eq!(e[0].location.line, 3);
    let e = errs("virtual_server group NOPE {\n}");
    assert!(e[0].message.contains("no virtual_server_group"));
}

#[test]
fn arbitrary_bytes_never_panic() {
    let samples = [
        "\"unterminated",
        "virtual_server",
        "virtual_server fwmark",
        "real_server 1.2.3.4 80 {",
        "}}}{{{",
        "virtual_server_group G { 10.0.0.250-9 80 }",
        "virtual_server_group G { ::1-ffff 80 }",
        "\u{feff}ü { }",
    ];
    for s in samples {
        let _ = parse(s);
    }
}

#[test]
fn local_address_groups_give_fullnat_services_their_local_addresses() {
    let c = ok(r#"
local_address_group laddr_g1 {
    192.168.100.200 dpdk0
    192.168.100.201-203
    fd00::200
}
virtual_server 192.168.100.254 80 {
    lb_kind FNAT
    laddr_group_name laddr_g1
    real_server 192.168.100.2 80 { weight 1 }
}
virtual_server 2001:db8::1 80 {
    lb_kind FNAT
    laddr_group_name laddr_g1
    real_server 2001:db8::2 80 { weight 1 }
}
virtual_server 192.168.100.254 443 {
    lb_kind DR
    laddr_group_name laddr_g1
    real_server 192.168.100.2 443 { weight 1 }
}
"#);
    let ips =
        |v: &[&str]| -> Vec<std::net::IpAddr> { v.iter().map(|s| s.parse().unwrap()).collect() };
    let v4 = ServiceKey::tcp(sa("192.168.100.254:80"));
    let v6 = ServiceKey::tcp(sa("[2001:db8::1]:80"));
    assert_eq!(c.local_addresses.len(), 2, "{:?}", c.local_addresses);
    assert_eq!(
        c.local_addresses[&v4],
        ips(&[
            "192.168.100.200",
            "192.168.100.201",
            "192.168.100.202",
            "192.168.100.203"
        ])
    );
    assert_eq!(c.local_addresses[&v6], ips(&["fd00::200"]));
    let warnings: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].starts_with("/t/k.conf:3:21:") && warnings[0].contains("'dpdk0'"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].starts_with("/t/k.conf:19:22:") && warnings[1].contains("only used by FNAT"),
        "{warnings:?}"
    );
}

#[test]
fn bad_local_address_groups_are_located_errors() {
    let e = errs(
        r#"local_address_group g1 {
    10.0.0.5
    10.0.0.5
    10.0.0.10-20
    nope
}
local_address_group g1 {
    10.0.0.6
}
local_address_group only6 {
    fd00::5
}
virtual_server 10.0.0.3 80 {
    lb_kind FNAT
    laddr_group_name missing
    real_server 10.0.0.7 80 { weight 1 }
}
virtual_server 10.0.0.3 81 {
    lb_kind FNAT
    laddr_group_name only6
    real_server 10.0.0.7 80 { weight 1 }
}
"#,
    );
    let got: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    assert_eq!(got.len(), 6, "{got:#?}");
    assert!(
        got[0].starts_with("/t/k.conf:3:5:") && got[0].contains("appears twice"),
        "{got:?}"
    );
    assert!(
        got[1].starts_with("/t/k.conf:5:5:") && got[1].contains("'nope'"),
        "{got:?}"
    );
    assert!(
        got[2].starts_with("/t/k.conf:1:21:") && got[2].contains("12 IPv4 local addresses"),
        "{got:?}"
    );
    assert!(
        got[3].starts_with("/t/k.conf:7:21:") && got[3].contains("defined twice"),
        "{got:?}"
    );
    assert!(
        got[4].starts_with("/t/k.conf:15:22:")
            && got[4].contains("no local_address_group named 'missing'"),
        "{got:?}"
    );
    assert!(
        got[5].starts_with("/t/k.conf:20:22:")
            && got[5].contains("no IPv4 address for tcp 10.0.0.3:81"),
        "{got:?}"
    );
}

#[test]
fn extra_arguments_and_stray_blocks_are_errors_not_skipped() {
    // found by tests/keepalived_robust.rs: each was accepted, the extra part dropped silently
    for (text, at, needle) in [
        (vs("delay_loop 6 7"), (2, 14), "takes 1 argument"),
        (vs("lb_kind DR NAT"), (2, 12), "takes 1 argument"),
        (
            vs("virtualhost a.example b.example"),
            (2, 23),
            "takes 1 argument",
        ),
        (vs("family inet6 x"), (2, 14), "takes 1 argument"),
        (
            vs("sorry_server 10.0.0.9 80 81"),
            (2, 26),
            "takes 2 argument",
        ),
        (
            vs("lb_algo rr { x }"),
            (2, 12),
            "takes a value, not a block",
        ),
        (
            "global_defs x {\n}\n".to_string(),
            (1, 13),
            "takes 0 argument",
        ),
        (
            "virtual_server 10.0.0.3 80 x {\n}\n".to_string(),
            (1, 28),
            "takes 2 argument",
        ),
        (
            "virtual_server 10.0.0.3 80 {\n real_server 10.0.0.7 80 {\n TCP_CHECK x {\n }\n }\n}"
                .to_string(),
            (3, 12),
            "takes 0 argument",
        ),
        (
            "virtual_server 10.0.0.3 80 {\n real_server 10.0.0.7 80 {\n weight 1 {\n }\n }\n}"
                .to_string(),
            (3, 11),
            "not a block",
        ),
        (
            "vrrp_instance V {\n unicast_peer {\n 10.0.0.6 10.0.0.9\n }\n}".to_string(),
            (3, 11),
            "takes 0 argument",
        ),
        (
            "vrrp_instance V {\n interface eth0 eth1\n}".to_string(),
            (2, 17),
            "takes 1 argument",
        ),
    ] {
        let e = errs(&text);
        assert!(
            e.iter()
                .any(|e| (e.location.line, e.location.column) == at && e.message.contains(needle)),
            "{text}\n{e:?}"
        );
    }
}

#[test]
fn track_weight_is_a_warning_not_a_script_name() {
    let c = ok("vrrp_script chk {\n}\nvrrp_instance V {\n track_script {\n chk weight 10\n }\n}");
    assert_eq!(c.vrrp.instances[0].track_script, vec!["chk".to_string()]);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert_eq!(
        (c.warnings[0].location.line, c.warnings[0].location.column),
        (5, 6)
    );
}

#[test]
fn out_of_range_values_are_errors() {
    let e = errs(&vs("persistence_timeout 0"));
    assert!(e[0].message.contains("at least 1 second"), "{e:?}");
    for (body, needle) in [
        ("auth_type NONE", "PASS or AH"),
        ("priority 0", "priority (1-255)"),
        ("virtual_router_id 0", "router id (1-255)"),
    ] {
        let text = format!("vrrp_instance V {{\n authentication {{\n {body}\n }}\n}}");
        let text = if body.starts_with("auth") {
            text
        } else {
            format!("vrrp_instance V {{\n {body}\n}}")
        };
        let e = errs(&text);
        assert!(e[0].message.contains(needle), "{body}: {e:?}");
    }
    // granularity without persistence: persistent for keepalived's 360 s, said so
    let c = ok(&vs("persistence_granularity 255.255.255.0"));
    assert_eq!(
        c.warnings[0].message,
        "persistence_granularity without persistence_timeout: persistent for 360 s \
         (keepalived's default)"
    );
    let p = first_persistence(&c);
    assert_eq!(
        p,
        Some(Persistence {
            timeout: 360,
            prefix_len: 24
        })
    );
    // the keyword alone: keepalived's default too, without a word
    let c = ok(&vs("persistence_timeout"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let p = first_persistence(&c);
    assert_eq!(p.map(|p| p.timeout), Some(360));
}

#[test]
fn unterminated_quote_is_an_error() {
    let e = errs(&vs("quorum_up \"/bin/up arg"));
    assert_eq!((e[0].location.line, e[0].location.column), (2, 11));
    assert!(e[0].message.contains("never closed"), "{e:?}");
}

#[test]
fn fwmark_zero_is_an_error() {
    let e = errs("virtual_server fwmark 0 {\n real_server 10.0.0.7 0 { }\n}");
    assert_eq!((e[0].location.line, e[0].location.column), (1, 23), "{e:?}");
    let e = errs("virtual_server_group G {\n fwmark 0\n}\nvirtual_server group G {\n}");
    assert_eq!((e[0].location.line, e[0].location.column), (2, 9), "{e:?}");
}

#[test]
fn many_tokens_on_one_line_are_located_in_linear_time() {
    // found by tests/keepalived_robust.rs: each token's column was counted from the line's start
    let text = "{}".repeat(100_000);
    let t0 = std::time::Instant::now();
    let e = errs(&text);
    assert_eq!(e.len(), 100_000);
    assert_eq!(e[99_999].location.column, 199_999);
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn named_blocks_defined_twice_are_errors() {
    // found by tests/keepalived_robust.rs: the second virtual_server_group replaced the first,
    // and two vrrp_instance / vrrp_script / vrrp_sync_group of one name were both kept
    for block in [
        "virtual_server_group G {\n 10.0.0.1 80\n}",
        "vrrp_instance V {\n}",
        "vrrp_script S {\n}",
        "vrrp_sync_group Y {\n}",
    ] {
        let e = errs(&format!("{block}\n{block}\n"));
        assert!(e[0].message.contains("defined twice"), "{e:?}");
        assert_eq!(e[0].location.line, block.lines().count() + 1, "{e:?}");
    }
}

#[test]
fn include_takes_one_pattern_and_a_bom_is_not_a_keyword() {
    // 'include a.conf b.conf' read a.conf and dropped b.conf silently
    let e = errs("include a.conf b.conf\n");
    assert_eq!((e[0].location.line, e[0].location.column), (1, 16), "{e:?}");
    assert!(e[0].message.contains("one file name"), "{e:?}");
    // a BOM made the first keyword '\u{feff}global_defs', ignored with a warning
    let c = ok("\u{feff}global_defs {\n router_id x\n}\n");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.global.router_id.as_deref(), Some("x"));
    let e = errs("\u{feff}virtual_server 10.0.0.300 80 {\n}");
    assert_eq!(e[0].location.column, 16, "columns as an editor shows them");
}

#[test]
fn zero_periods_are_errors() {
    // delay_loop 0 ran checks back to back, connect_timeout 0 failed every check at once
    for (kw, in_checker) in [
        ("delay_loop", false),
        ("delay_loop", true),
        ("connect_timeout", true),
    ] {
        let text = if in_checker {
            format!(
                "virtual_server 10.0.0.3 80 {{\n real_server 10.0.0.7 80 {{\n TCP_CHECK {{\n {kw} 0\n }}\n }}\n}}"
            )
        } else {
            vs(&format!("{kw} 0.0"))
        };
        let e = errs(&text);
        assert!(e[0].message.contains("more than 0 seconds"), "{kw}: {e:?}");
    }
    let e = errs("vrrp_instance V {\n advert_int 0\n}");
    assert_eq!((e[0].location.line, e[0].location.column), (2, 13), "{e:?}");
    let c = ok(&vs("delay_loop 0.5"));
    assert_eq!(c.virtual_servers[0].delay_loop, Duration::from_millis(500));
}

#[test]
fn missing_argument_is_located_after_a_quoted_word_and_family_must_match() {
    // the column was the quoted text's length after its start: inside the quotes
    let e = errs(&vs("sorry_server \"10.0.0.9\""));
    assert_eq!((e[0].location.line, e[0].location.column), (2, 24), "{e:?}");
    // family was ignored silently for an address service of the other family
    let e = errs(&vs("family inet6"));
    assert_eq!((e[0].location.line, e[0].location.column), (2, 8), "{e:?}");
    assert!(e[0].message.contains("does not match"), "{e:?}");
    ok(&vs("family inet"));
}

#[test]
fn vrrp_references_to_nothing_are_located_warnings() {
    // accepted silently before: a typo in a track_script or sync group member did nothing
    let c = ok(
        "vrrp_script chk {\n}\nvrrp_instance V {\n track_script {\n chk\n chkk\n }\n}\nvrrp_sync_group G {\n group {\n V W\n }\n}",
    );
    assert_eq!(c.vrrp.instances[0].track_script, vec!["chk".to_string()]);
    assert_eq!(c.vrrp.sync_groups[0].group, vec!["V".to_string()]);
    let at: Vec<_> = c
        .warnings
        .iter()
        .map(|w| (w.location.line, w.location.column))
        .collect();
    assert_eq!(at, vec![(6, 2), (11, 4)], "{:?}", c.warnings);
}

#[test]
fn port_zero_needs_persistence() {
    let e = errs("virtual_server 10.0.0.3 0 {\n}");
    assert_eq!((e[0].location.line, e[0].location.column), (1, 25), "{e:?}");
    assert!(e[0].message.contains("port 0"), "{e:?}");
    ok("virtual_server 10.0.0.3 0 {\n persistence_timeout 60\n}");
}

/// `SMTP_CHECK` inside one real `10.0.0.7 80`.
fn smtp(block: &str) -> String {
    format!("virtual_server 10.0.0.3 80 {{\n real_server 10.0.0.7 80 {{\n{block}\n }}\n}}\n")
}

#[test]
fn smtp_check_defaults_to_port_25_and_keepalived_helo_name() {
    let c = ok(&smtp("SMTP_CHECK {\n}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let ch = &c.virtual_servers[0].reals[0].checkers[0];
    assert_eq!(
        ch.kind,
        CheckKind::Smtp(SmtpCheck {
            helo_name: "smtpchecker.keepalived.org".into()
        })
    );
    assert_eq!(ch.kind.name(), "SMTP_CHECK");
    assert_eq!(ch.target(sa("10.0.0.7:80")), sa("10.0.0.7:25"));
    assert_eq!(ch.connect_timeout, DEFAULT_CONNECT_TIMEOUT);

    let c = ok(&smtp(
        "SMTP_CHECK {\n helo_name \"mx.example.org\"\n connect_ip 10.0.0.8\n connect_port 2525\n bindto 10.0.0.1\n bind_port 4000\n connect_timeout 3\n retry 2\n delay_before_retry 4\n delay_loop 9\n warmup 1\n alpha\n}",
    ));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let ch = &c.virtual_servers[0].reals[0].checkers[0];
    let CheckKind::Smtp(s) = &ch.kind else {
        panic!("{:?}", ch.kind)
    };
    assert_eq!(s.helo_name, "mx.example.org");
    assert_eq!(ch.target(sa("10.0.0.7:80")), sa("10.0.0.8:2525"));
    assert_eq!(ch.bindto, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(ch.bind_port, Some(4000));
    assert_eq!(ch.connect_timeout, Duration::from_secs(3));
    assert_eq!(ch.retry, 2);
    assert_eq!(ch.delay_before_retry, Duration::from_secs(4));
    assert_eq!(ch.delay_loop, Duration::from_secs(9));
    assert_eq!(ch.warmup, Duration::from_secs(1));
    assert!(ch.alpha);
}

#[test]
fn smtp_check_host_blocks_become_one_checker_each_with_a_warning() {
    let c = ok(&smtp(
        "SMTP_CHECK {\n helo_name h.example\n connect_timeout 2\n host {\n connect_ip 10.0.0.8\n }\n host {\n connect_ip 10.0.0.9\n connect_port 587\n connect_timeout 1\n }\n}",
    ));
    let checkers = &c.virtual_servers[0].reals[0].checkers;
    assert_eq!(checkers.len(), 2, "{checkers:?}");
    let real = sa("10.0.0.7:80");
    assert_eq!(checkers[0].target(real), sa("10.0.0.8:25"));
    assert_eq!(checkers[0].connect_timeout, Duration::from_secs(2));
    assert_eq!(checkers[1].target(real), sa("10.0.0.9:587"));
    assert_eq!(checkers[1].connect_timeout, Duration::from_secs(1));
    for ch in checkers {
        assert!(matches!(&ch.kind, CheckKind::Smtp(s) if s.helo_name == "h.example"));
    }
    let w: Vec<_> = c
        .warnings
        .iter()
        .map(|w| (w.location.line, w.message.as_str()))
        .collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(w[0].0, 6);
    assert!(w[0].1.contains("deprecated"), "{w:?}");
    assert_eq!(w[1].0, 9);

    // a host starts from the connection options written before it (keepalived 2.x), while the
    // other options apply wherever they are
    let c = ok(&smtp(
        "SMTP_CHECK {\n connect_port 2525\n host {\n connect_ip 10.0.0.8\n }\n connect_timeout 7\n bindto 10.0.0.1\n retry 4\n helo_name late.example\n host {\n connect_ip 10.0.0.9\n }\n}",
    ));
    let checkers = &c.virtual_servers[0].reals[0].checkers;
    assert_eq!(checkers[0].target(real), sa("10.0.0.8:2525"));
    assert_eq!(checkers[0].connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    assert_eq!(checkers[0].bindto, None);
    assert_eq!(checkers[1].target(real), sa("10.0.0.9:2525"));
    assert_eq!(checkers[1].connect_timeout, Duration::from_secs(7));
    assert_eq!(checkers[1].bindto, Some("10.0.0.1".parse().unwrap()));
    for ch in checkers {
        assert_eq!(ch.retry, 4);
        assert!(matches!(&ch.kind, CheckKind::Smtp(s) if s.helo_name == "late.example"));
    }

    // only connection options belong in a host block
    let c = ok(&smtp("SMTP_CHECK {\n host {\n retry 3\n }\n}"));
    assert!(
        c.warnings
            .iter()
            .any(|w| w.location.line == 5 && w.message.contains("'retry' does not belong in host")),
        "{:?}",
        c.warnings
    );
    // and `host` is SMTP_CHECK's alone
    let c = ok(&smtp("TCP_CHECK {\n host {\n connect_ip 10.0.0.8\n }\n}"));
    assert!(
        c.warnings
            .iter()
            .any(|w| w.location.line == 4 && w.message.contains("'host'")),
        "{:?}",
        c.warnings
    );
    assert_eq!(c.virtual_servers[0].reals[0].checkers.len(), 1);
}

#[test]
fn bad_smtp_check_values_are_located_errors() {
    for (block, line, column, needle) in [
        ("SMTP_CHECK {\n helo_name\n}", 4, 11, "expected a host name"),
        (
            "SMTP_CHECK {\n helo_name \"two words\"\n}",
            4,
            12,
            "expected a HELO name",
        ),
        (
            "SMTP_CHECK {\n helo_name \"\"\n}",
            4,
            12,
            "expected a HELO name",
        ),
        ("SMTP_CHECK {\n helo_name a b\n}", 4, 14, "takes 1 argument"),
        (
            "SMTP_CHECK {\n connect_port 99999\n}",
            4,
            15,
            "expected a port",
        ),
        ("SMTP_CHECK {\n connect_timeout 0\n}", 4, 18, "more than 0"),
        (
            "SMTP_CHECK {\n host {\n connect_ip nowhere\n }\n}",
            5,
            13,
            "connect_ip",
        ),
        ("SMTP_CHECK {\n host\n}", 4, 2, "expected '{'"),
        ("SMTP_CHECK mail {\n}", 3, 12, "takes 0 argument"),
    ] {
        let e = errs(&smtp(block));
        assert!(
            e.iter().any(|e| e.message.contains(needle)
                && (e.location.line, e.location.column) == (line, column)),
            "{block}: {e:?}"
        );
    }
    let long = "a".repeat(256);
    let e = errs(&smtp(&format!("SMTP_CHECK {{\n helo_name {long}\n}}")));
    assert!(e[0].message.contains("1-255"), "{e:?}");
}
