//! Golden tests of the ipvsadm listings and the save format, printed from constructed views.
//! `seed_stats.txt` is the table of the seed document (step 07) typed in by hand; the others
//! were checked column by column against ipvsadm 1.31's printf formats. Set `UPDATE_GOLDEN=1`
//! to rewrite them after an intended change (then review the diff).

use rvs_api::{ConnectionInfo, Counters, EngineKind, Rates, RealStats, RealView, ServiceView};
use rvs_config::ipvsadm::{
    ListOptions, apply_rules, list_connections, list_services, list_timeouts, save,
};
use rvs_core::desired::{DesiredState, Timeouts};
use rvs_core::model::{
    AddressFamily, ForwardMethod, Persistence, Protocol, RealServer, SchedFlags, SchedulerKind,
    ServiceKey, ServiceOptions,
};
use std::path::{Path, PathBuf};

fn golden(name: &str, got: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(got, want, "output differs from {}:\n{got}", path.display());
}

fn counters(base: u64) -> Counters {
    Counters {
        conns: base,
        in_pkts: base * 10,
        out_pkts: base * 9,
        in_bytes: base * 1500,
        out_bytes: base * 90_000,
    }
}

fn real(addr: &str, method: ForwardMethod, weight: u32, base: u64) -> RealView {
    let mut r = RealServer::new(addr.parse().unwrap(), method, weight);
    r.upper_threshold = base as u32 * 2;
    r.lower_threshold = base as u32;
    RealView {
        real: r,
        effective_weight: weight,
        stats: RealStats {
            counters: counters(base),
            active_conns: base as u32,
            inactive_conns: base as u32 / 2,
            persistent_conns: 3,
            connect_failures: 0,
            passive_downs: 0,
            passive_out_ms: 0,
        },
        rates: Rates {
            cps: base,
            in_pps: base * 3,
            out_pps: base * 2,
            in_bps: base * 4000,
            out_bps: base * 150_000,
        },
        health: None,
    }
}

fn service(key: ServiceKey, options: ServiceOptions, reals: Vec<RealView>) -> ServiceView {
    let total = reals
        .iter()
        .fold(Counters::default(), |a, r| a + r.stats.counters);
    let rates = reals.iter().fold(Rates::default(), |a, r| Rates {
        cps: a.cps + r.rates.cps,
        in_pps: a.in_pps + r.rates.in_pps,
        out_pps: a.out_pps + r.rates.out_pps,
        in_bps: a.in_bps + r.rates.in_bps,
        out_bps: a.out_bps + r.rates.out_bps,
    });
    ServiceView {
        key,
        options,
        engine: Some(EngineKind::Xdp),
        unsupported: None,
        note: None,
        counters: total,
        rates,
        reals,
    }
}

fn views() -> Vec<ServiceView> {
    let web = ServiceOptions {
        scheduler: SchedulerKind::Wrr,
        persistence: Some(Persistence {
            timeout: 20,
            prefix_len: 32,
        }),
        ..Default::default()
    };
    let dns = ServiceOptions {
        scheduler: SchedulerKind::Rr,
        one_packet: true,
        ..Default::default()
    };
    let mark = ServiceOptions {
        scheduler: SchedulerKind::Sh,
        flags: SchedFlags {
            sh_fallback: true,
            sh_port: true,
            ..Default::default()
        },
        persistence: Some(Persistence {
            timeout: 300,
            prefix_len: 24,
        }),
        ..Default::default()
    };
    let mut v6 = service(
        ServiceKey::tcp("[2001:db8::3]:443".parse().unwrap()),
        ServiceOptions::default(),
        vec![real("[2001:db8::7]:443", ForwardMethod::Dr, 100, 0)],
    );
    v6.engine = None;
    v6.unsupported = Some("DR needs the xdp engine, which is not running (needs root)".into());
    vec![
        service(
            ServiceKey::tcp("10.0.0.3:80".parse().unwrap()),
            web,
            vec![
                real("10.0.0.7:80", ForwardMethod::Dr, 1, 12),
                real("10.0.0.8:80", ForwardMethod::Dr, 1, 250_000),
            ],
        ),
        v6,
        service(
            ServiceKey::udp("10.0.0.3:53".parse().unwrap()),
            dns,
            vec![real("10.0.0.9:5353", ForwardMethod::Nat, 65535, 7)],
        ),
        service(
            ServiceKey::FwMark {
                mark: 7,
                family: AddressFamily::V4,
            },
            mark,
            vec![
                real("10.0.0.10:0", ForwardMethod::FullNat, 2, 1),
                real("10.0.0.11:0", ForwardMethod::Tun, 0, 2),
            ],
        ),
    ]
}

fn list(opts: ListOptions) -> String {
    list_services(
        &views(),
        &ListOptions {
            numeric: true,
            ..opts
        },
    )
}

#[test]
fn seed_table_is_printed_exactly() {
    let rules = "-A -t 10.0.0.3:80 -s wrr -p 20\n-a -t 10.0.0.3:80 -r 10.0.0.7:80 -g -w 1\n-a -t 10.0.0.3:80 -r 10.0.0.8:80 -g -w 1\n";
    let state = apply_rules(rules, Path::new("seed"), DesiredState::default()).unwrap();
    let views: Vec<ServiceView> = state
        .services
        .values()
        .map(|s| ServiceView {
            key: s.key,
            options: s.options,
            engine: None,
            unsupported: None,
            note: None,
            counters: Counters::default(),
            rates: Rates::default(),
            reals: s
                .reals
                .values()
                .map(|r| RealView {
                    real: *r,
                    effective_weight: r.weight,
                    stats: RealStats::default(),
                    rates: Rates::default(),
                    health: None,
                })
                .collect(),
        })
        .collect();
    golden(
        "seed_stats.txt",
        &list_services(
            &views,
            &ListOptions {
                numeric: true,
                stats: true,
                ..Default::default()
            },
        ),
    );
}

#[test]
fn plain_listing() {
    golden("list_n.txt", &list(ListOptions::default()));
}

#[test]
fn stats_listing() {
    golden(
        "list_n_stats.txt",
        &list(ListOptions {
            stats: true,
            ..Default::default()
        }),
    );
    golden(
        "list_n_stats_exact.txt",
        &list(ListOptions {
            stats: true,
            exact: true,
            ..Default::default()
        }),
    );
}

#[test]
fn rate_listing() {
    golden(
        "list_n_rate.txt",
        &list(ListOptions {
            rate: true,
            ..Default::default()
        }),
    );
}

#[test]
fn thresholds_and_persistent_conn_listings() {
    golden(
        "list_n_thresholds.txt",
        &list(ListOptions {
            thresholds: true,
            ..Default::default()
        }),
    );
    golden(
        "list_n_persistent_conn.txt",
        &list(ListOptions {
            persistent_conn: true,
            ..Default::default()
        }),
    );
}

#[test]
fn sorted_listing_orders_services_and_reals() {
    let mut v = views();
    v.reverse();
    v[0].reals.reverse();
    let sorted = list_services(
        &v,
        &ListOptions {
            numeric: true,
            sort: true,
            ..Default::default()
        },
    );
    assert_eq!(sorted, list(ListOptions::default()));
}

#[test]
fn connection_listing() {
    let c = |p, client: &str, vip: &str, rip: &str, state: &str, ms| ConnectionInfo {
        protocol: p,
        client: client.parse().unwrap(),
        virtual_addr: vip.parse().unwrap(),
        real: rip.parse().unwrap(),
        state: state.into(),
        expires_ms: ms,
    };
    let conns = vec![
        c(
            Protocol::Tcp,
            "192.168.1.5:54321",
            "10.0.0.3:80",
            "10.0.0.7:80",
            "ESTABLISHED",
            899_999,
        ),
        c(
            Protocol::Tcp,
            "192.168.1.6:40000",
            "10.0.0.3:80",
            "10.0.0.8:80",
            "FIN_WAIT",
            4_000,
        ),
        c(
            Protocol::Udp,
            "192.168.1.5:5353",
            "10.0.0.3:53",
            "10.0.0.9:5353",
            "UDP",
            59_500,
        ),
        c(
            Protocol::Tcp,
            "[2001:db8::99]:1234",
            "[2001:db8::3]:443",
            "[2001:db8::7]:443",
            "SYN_RECV",
            6_000_000,
        ),
    ];
    golden("list_nc.txt", &list_connections(&conns));
}

#[test]
fn timeout_listing() {
    assert_eq!(
        list_timeouts(&Timeouts {
            tcp: 30,
            tcp_fin: 5,
            udp: 60,
            ..Default::default()
        }),
        "Timeout (tcp tcpfin udp): 30 5 60\n"
    );
}

#[test]
fn save_format() {
    let mut state = DesiredState::default();
    for v in views() {
        state.add_service(v.key, v.options).unwrap();
        for r in v.reals {
            state.add_real(&v.key, r.real).unwrap();
        }
    }
    let text = save(&state);
    golden("save_n.txt", &text);
    let back = apply_rules(&text, Path::new("save_n.txt"), DesiredState::default()).unwrap();
    assert_eq!(back, state);
}

/// A placement note (why the proxy serves a service although the xdp engine runs, or which
/// options the xdp engine does not apply) is listed as a comment under the service (and
/// nothing for services without one).
#[test]
fn proxy_placement_note_is_listed() {
    let key = ServiceKey::tcp("10.0.0.1:80".parse().unwrap());
    let mut with = service(key, ServiceOptions::default(), vec![]);
    with.note = Some(
        "on the proxy engine, not the xdp engine: FULLNAT needs a local address of the VIP's family"
            .into(),
    );
    let text = list_services(std::slice::from_ref(&with), &ListOptions::default());
    assert!(
        text.contains(
            "  # on the proxy engine, not the xdp engine: FULLNAT needs a local address of the VIP's family\n"
        ),
        "{text}"
    );
    with.note = None;
    let text = list_services(&[with], &ListOptions::default());
    assert!(!text.contains("on the proxy engine"), "{text}");
}
