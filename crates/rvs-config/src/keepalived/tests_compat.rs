//! keepalived 2.x as operators write it: checker options on the `real_server` or
//! `virtual_server`, the defaults that differ by checker kind, `ip_family`, keepalived's
//! corrections of `quorum` and `hysteresis`, the scheduler flag keywords, `UDP_CHECK`'s bare
//! `require_reply` and spaced hex.

use super::*;
use rvs_core::model::*;
use std::path::Path;
use std::time::Duration;

fn ok(text: &str) -> KeepalivedConfig {
    match parse_with(text, Path::new("/t/k.conf"), Includes::Refuse) {
        Ok(c) => c,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

const S: fn(u64) -> Duration = Duration::from_secs;

/// (delay_loop, retry, delay_before_retry, warmup, connect_timeout, alpha) of a checker.
fn timing(c: &Checker) -> (Duration, u32, Duration, Duration, Duration, bool) {
    (
        c.delay_loop,
        c.retry,
        c.delay_before_retry,
        c.warmup,
        c.connect_timeout,
        c.alpha,
    )
}

#[test]
fn checker_options_on_the_real_and_virtual_server_are_inherited_without_warnings() {
    let c = ok("virtual_server 10.0.0.3 80 {
    delay_loop 10
    retry 4
    delay_before_retry 2
    warmup 7
    connect_timeout 6
    weight 3
    real_server 10.0.0.7 80 {
        delay_loop 3
        retry 2
        delay_before_retry 0.5
        warmup 1
        connect_timeout 2
        alpha
        TCP_CHECK {
        }
        TCP_CHECK {
            retry 9
            connect_timeout 1
        }
    }
    real_server 10.0.0.8 80 {
        weight 5
        TCP_CHECK {
        }
    }
}
");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let h = &c.virtual_servers[0];
    let a = &h.reals[0].checkers;
    assert_eq!(timing(&a[0]), (S(3), 2, S(1) / 2, S(1), S(2), true));
    // the checker's own options over the real's
    assert_eq!(timing(&a[1]), (S(3), 9, S(1) / 2, S(1), S(1), true));
    // the virtual server's, for a real that sets none
    let b = &h.reals[1].checkers[0];
    assert_eq!(timing(b), (S(10), 4, S(2), S(7), S(6), false));
    // a virtual server's weight is the weight of a real that sets none
    let svc = c.desired.services.values().next().unwrap();
    let weights: Vec<_> = svc.reals.values().map(|r| r.weight).collect();
    assert_eq!(weights, vec![3, 5]);
    assert_eq!((h.reals[0].weight, h.reals[1].weight), (3, 5));
}

#[test]
fn the_real_server_options_count_wherever_they_are_written_in_it() {
    // keepalived applies them after the whole block is read
    let c = ok("virtual_server 10.0.0.3 80 {
    real_server 10.0.0.7 80 {
        HTTP_GET {
            url {
                path /
            }
        }
        delay_loop 2
        retry 5
        virtualhost www.example.com
    }
}
");
    let ch = &c.virtual_servers[0].reals[0].checkers[0];
    assert_eq!((ch.delay_loop, ch.retry, ch.warmup), (S(2), 5, S(2)));
    let CheckKind::Http(http) = &ch.kind else {
        panic!("{ch:?}")
    };
    assert_eq!(http.virtualhost.as_deref(), Some("www.example.com"));
}

#[test]
fn retry_defaults_differ_by_checker_kind_as_in_keepalived() {
    let c = ok("virtual_server 10.0.0.3 80 {
    delay_loop 6
    real_server 10.0.0.7 80 {
        HTTP_GET {
            url {
                path /
            }
        }
        SSL_GET {
            url {
                path /
            }
        }
        MISC_CHECK {
            misc_path /bin/true
        }
        DNS_CHECK {
        }
        TCP_CHECK {
        }
        SMTP_CHECK {
        }
    }
}
");
    let got: Vec<_> = c.virtual_servers[0].reals[0]
        .checkers
        .iter()
        .map(|c| (c.kind.name(), c.retry, c.delay_before_retry))
        .collect();
    assert_eq!(
        got,
        vec![
            ("HTTP_GET", 1, S(3)),
            ("SSL_GET", 1, S(3)),
            ("MISC_CHECK", 0, S(1)),
            ("DNS_CHECK", 3, S(6)),
            ("TCP_CHECK", 1, S(1)),
            ("SMTP_CHECK", 1, S(1)),
        ]
    );
    // a retry written on the virtual server counts for every kind
    let c = ok(
        "virtual_server 10.0.0.3 80 {\n retry 2\n real_server 10.0.0.7 80 {\n MISC_CHECK {\n misc_path /bin/true\n }\n }\n}",
    );
    assert_eq!(c.virtual_servers[0].reals[0].checkers[0].retry, 2);
}

#[test]
fn ip_family_chooses_the_family_of_a_fwmark_service() {
    let c = ok(
        "virtual_server fwmark 7 {\n ip_family inet6\n real_server fd00::7 80 {\n weight 1\n }\n}",
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let key = *c.desired.services.keys().next().unwrap();
    assert_eq!(
        key,
        ServiceKey::FwMark {
            mark: 7,
            family: AddressFamily::V6
        }
    );
}

#[test]
fn an_unreachable_quorum_and_a_hysteresis_not_below_it_are_corrected_with_warnings() {
    let c = ok("virtual_server 10.0.0.3 80 {
    quorum 5
    hysteresis 4
    real_server 10.0.0.7 80 {
        weight 1
    }
    real_server 10.0.0.8 80 {
        weight 2
    }
}
");
    let h = &c.virtual_servers[0];
    assert_eq!((h.quorum, h.hysteresis), (3, 2));
    let w: Vec<_> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        vec![
            "/t/k.conf:2:5: quorum 5 exceeds the summed weight of the real servers (3); using 3 \
             (as keepalived does)",
            "/t/k.conf:3:5: hysteresis 4 is not below quorum 3; using 2 (as keepalived does)",
        ]
    );
    // reachable values are kept, without a word
    let c = ok(
        "virtual_server 10.0.0.3 80 {\n quorum 2\n hysteresis 1\n real_server 10.0.0.7 80 {\n weight 2\n }\n}",
    );
    let h = &c.virtual_servers[0];
    assert_eq!((h.quorum, h.hysteresis, c.warnings.len()), (2, 1, 0));
}

#[test]
fn scheduler_flag_keywords_set_the_service_flags() {
    let flags = |body: &str| {
        let c = ok(&format!(
            "virtual_server 10.0.0.3 80 {{\n{body}\n real_server 10.0.0.7 80 {{\n weight 1\n }}\n}}"
        ));
        let svc = c.desired.services.values().next().unwrap();
        let w: Vec<_> = c.warnings.iter().map(|w| w.to_string()).collect();
        (svc.options.flags, w)
    };
    // written before lb_algo: the scheduler is known once the block is read
    let (f, w) = flags(" sh-port\n sh-fallback\n lb_algo sh");
    assert!(
        f.sh_port && f.sh_fallback && !f.mh_port && !f.mh_fallback,
        "{f:?}"
    );
    assert!(w.is_empty(), "{w:?}");
    let (f, _) = flags(" lb_algo mh\n mh-port\n flag-1");
    assert!(
        f.mh_port && f.mh_fallback && !f.sh_port && !f.sh_fallback,
        "{f:?}"
    );
    let (f, _) = flags(" lb_algo sh\n flag-2");
    assert!(f.sh_port && !f.sh_fallback, "{f:?}");
    // another scheduler's flag: a warning, as keepalived ("only applies to sh scheduler")
    let (f, w) = flags(" lb_algo wrr\n sh-port");
    assert_eq!(f, Default::default());
    assert_eq!(
        w,
        vec!["/t/k.conf:3:2: 'sh-port' only applies to the sh scheduler, not wrr; ignored"]
    );
}

#[test]
fn udp_check_require_reply_alone_and_hex_with_spaces() {
    let c = ok("virtual_server 10.0.0.3 53 {
    protocol UDP
    real_server 10.0.0.7 53 {
        UDP_CHECK {
            payload 0a 1b2c 3
        }
        UDP_CHECK {
            require_reply
        }
        UDP_CHECK {
            require_reply 0x504f4e47
        }
    }
}
");
    let udp: Vec<_> = c.virtual_servers[0].reals[0]
        .checkers
        .iter()
        .map(|c| match &c.kind {
            CheckKind::Udp(u) => (u.payload.clone(), u.require_reply.clone()),
            k => panic!("{k:?}"),
        })
        .collect();
    assert_eq!(
        udp,
        vec![
            (vec![0x0a, 0x1b, 0x2c, 0x03], None),
            (vec![], Some(vec![])),
            (vec![], Some(b"PONG".to_vec())),
        ]
    );
}

#[test]
fn an_http_checker_without_a_url_is_dropped_with_a_warning() {
    let c = ok("virtual_server 10.0.0.3 80 {
    real_server 10.0.0.7 80 {
        HTTP_GET {
            connect_timeout 3
        }
        TCP_CHECK {
        }
    }
}
");
    let kinds: Vec<_> = c.virtual_servers[0].reals[0]
        .checkers
        .iter()
        .map(|c| c.kind.name())
        .collect();
    assert_eq!(kinds, vec!["TCP_CHECK"]);
    let w: Vec<_> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        vec![
            "/t/k.conf:3:9: HTTP_GET without a 'url' block checks nothing; ignored (as \
             keepalived does)"
        ]
    );
}

#[test]
fn a_real_without_a_port_takes_the_virtual_servers_port() {
    let c = ok("virtual_server 10.0.0.3 80 {
    lb_kind DR
    real_server 10.0.0.7 {
        TCP_CHECK {
        }
    }
    real_server 10.0.0.8 8080 {
        TCP_CHECK {
        }
    }
    real_server 10.0.0.9 8080 {
        lvs_method NAT
        TCP_CHECK {
        }
    }
}
virtual_server fwmark 1 {
    lb_kind DR
    persistence_timeout 60
    real_server 10.0.0.7 {
        weight 1
    }
}
");
    let ports: Vec<_> = c.virtual_servers[0]
        .reals
        .iter()
        .map(|r| r.addr.port())
        .collect();
    // as keepalived: no port = the virtual server's; DR keeps the destination port, so its
    // real is set to 80; NAT may map the port
    assert_eq!(ports, vec![80, 80, 8080]);
    let svc = &c.desired.services[&ServiceKey::tcp("10.0.0.3:80".parse().unwrap())];
    let mut desired: Vec<_> = svc.reals.keys().map(|a| a.port()).collect();
    desired.sort();
    assert_eq!(desired, vec![80, 80, 8080]);
    let w: Vec<_> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        vec![
            "/t/k.conf:7:26: a DR real server receives the virtual server's port 80, not 8080; \
             using 80 (as keepalived does)"
        ]
    );
    // a fwmark service's reals keep no port
    assert_eq!(c.virtual_servers[1].reals[0].addr.port(), 0);
}

#[test]
fn a_checker_that_would_connect_to_port_0_is_a_warning() {
    let c = ok("virtual_server fwmark 1 {
    lb_kind DR
    persistence_timeout 60
    real_server 10.0.0.7 {
        TCP_CHECK {
        }
    }
    real_server 10.0.0.8 {
        TCP_CHECK {
            connect_port 80
        }
        MISC_CHECK {
            misc_path /bin/true
        }
    }
}
");
    let w: Vec<_> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        vec![
            "/t/k.conf:4:5: real_server 10.0.0.7 has no port, so its TCP_CHECK connects to port \
             0 and fails every check; give the checker a connect_port"
        ]
    );
}
