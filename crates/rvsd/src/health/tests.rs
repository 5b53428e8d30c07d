//! Unit tests of [`super`] and its manager: events applied to a daemon without engines.

use super::manager::same_checks;
use super::*;
use crate::api;
use crate::engines::EngineManager;
use rvs_health::HealthEvent;

const CONF: &str = "virtual_server 10.0.0.3 80 {\n    lb_kind NAT\n    sorry_server 10.0.0.9 80\n    \
    real_server 10.0.0.7 80 {\n        weight 4\n        TCP_CHECK {\n            connect_timeout 1\n        }\n    }\n    \
    real_server 10.0.0.8 80 {\n        weight 2\n        TCP_CHECK {\n            connect_timeout 1\n        }\n    }\n}\n";

fn parse(text: &str) -> rvs_config::keepalived::KeepalivedConfig {
    rvs_config::keepalived::parse_str(text, std::path::Path::new("k.conf")).unwrap()
}

fn daemon() -> (Daemon, ServiceKey) {
    let cfg = parse(CONF);
    let mut d = Daemon::new(EngineManager::new(Vec::new(), Default::default()));
    d.replace(cfg.desired).unwrap();
    (d, cfg.virtual_servers[0].service)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn real_event(
    service: ServiceKey,
    real: &str,
    health: Health,
    dynamic: Option<u32>,
) -> SupervisorEvent {
    SupervisorEvent::Real(HealthEvent {
        service,
        real: addr(real),
        health,
        dynamic_weight: dynamic,
        inhibit: false,
        since: SystemTime::now(),
        last_error: (health == Health::Down).then(|| "refused".to_string()),
    })
}

fn weight(d: &Daemon, key: &ServiceKey, real: &str) -> Option<u32> {
    d.desired().services[key]
        .reals
        .get(&addr(real))
        .map(|r| r.effective_weight())
}

fn outcome(d: &Daemon, name: &str) -> u64 {
    d.health
        .outcomes()
        .find(|(k, _)| k == name)
        .map_or(0, |(_, v)| v)
}

#[test]
fn transitions_change_effective_weights_and_are_counted_after_the_initial_state() {
    let (mut d, key) = daemon();
    apply_event(&mut d, real_event(key, "10.0.0.7:80", Health::Up, None));
    assert_eq!(
        outcome(&d, "health.real_up"),
        0,
        "the initial state is not a transition"
    );
    apply_event(&mut d, real_event(key, "10.0.0.7:80", Health::Down, None));
    assert_eq!(weight(&d, &key, "10.0.0.7:80"), Some(0));
    assert_eq!(
        d.desired().services[&key].reals[&addr("10.0.0.7:80")].weight,
        4
    );
    let v = d.health.view(&key, &addr("10.0.0.7:80")).unwrap();
    assert_eq!(
        (v.state, v.last_error.as_deref()),
        (Health::Down, Some("refused"))
    );
    assert_eq!(outcome(&d, "health.real_down"), 1);
    apply_event(&mut d, real_event(key, "10.0.0.7:80", Health::Up, Some(9)));
    assert_eq!(weight(&d, &key, "10.0.0.7:80"), Some(9));
    assert_eq!(outcome(&d, "health.real_up"), 1);
    assert_eq!(outcome(&d, "health.dynamic_weight_changed"), 1);
    assert!(d.health.view(&key, &addr("10.0.0.1:80")).is_none());
}

#[test]
fn sorry_server_gates_the_live_reals_and_survives_a_whole_state_replace() {
    let (mut d, key) = daemon();
    apply_event(&mut d, real_event(key, "10.0.0.7:80", Health::Down, None));
    apply_event(&mut d, real_event(key, "10.0.0.8:80", Health::Up, None));
    let sorry = |active| SupervisorEvent::SorryServer {
        service: key,
        addr: addr("10.0.0.9:80"),
        active,
        inhibit: false,
        method: None,
    };
    apply_event(&mut d, sorry(true));
    assert_eq!(weight(&d, &key, "10.0.0.9:80"), Some(1));
    assert_eq!(
        weight(&d, &key, "10.0.0.8:80"),
        Some(0),
        "gated while the sorry server serves"
    );
    assert!(
        d.health
            .view(&key, &addr("10.0.0.8:80"))
            .unwrap()
            .quorum_gated
    );
    let gated = d.desired().services[&key].reals[&addr("10.0.0.8:80")];
    assert!(
        gated.quorum_gated && gated.is_down(),
        "down for persistence, as keepalived removes it"
    );
    assert_eq!(gated.dynamic_weight, None, "the checker's weight is kept");
    assert!(
        d.health
            .view(&key, &addr("10.0.0.9:80"))
            .unwrap()
            .sorry_server
    );
    let sorry_method = d.desired().services[&key].reals[&addr("10.0.0.9:80")].method;
    assert_eq!(sorry_method, rvs_core::model::ForwardMethod::Nat);

    // a replace from the original file (no sorry server, health unknown) changes none of it
    d.replace(parse(CONF).desired).unwrap();
    assert_eq!(weight(&d, &key, "10.0.0.9:80"), Some(1));
    assert_eq!(weight(&d, &key, "10.0.0.8:80"), Some(0));
    assert_eq!(weight(&d, &key, "10.0.0.7:80"), Some(0));

    apply_event(&mut d, sorry(false));
    assert_eq!(weight(&d, &key, "10.0.0.9:80"), None, "removed again");
    assert_eq!(weight(&d, &key, "10.0.0.8:80"), Some(2));
    assert!(!d.desired().services[&key].reals[&addr("10.0.0.8:80")].is_down());
    assert_eq!(
        (
            outcome(&d, "health.sorry_server_on"),
            outcome(&d, "health.sorry_server_off")
        ),
        (1, 1)
    );
}

#[test]
fn inhibited_sorry_server_stays_listed_at_weight_0_when_not_needed() {
    let (mut d, key) = daemon();
    let sorry = |active| SupervisorEvent::SorryServer {
        service: key,
        addr: addr("10.0.0.9:80"),
        active,
        inhibit: true,
        method: None,
    };
    apply_event(&mut d, real_event(key, "10.0.0.7:80", Health::Up, None));
    apply_event(&mut d, real_event(key, "10.0.0.8:80", Health::Up, None));
    // at start with quorum held: listed at weight 0, nothing gated, not counted as a switch
    apply_event(&mut d, sorry(false));
    assert_eq!(weight(&d, &key, "10.0.0.9:80"), Some(0));
    assert_eq!(weight(&d, &key, "10.0.0.7:80"), Some(4));
    assert_eq!(outcome(&d, "health.sorry_server_off"), 0);
    apply_event(&mut d, real_event(key, "10.0.0.7:80", Health::Down, None));
    apply_event(&mut d, real_event(key, "10.0.0.8:80", Health::Down, None));
    apply_event(&mut d, sorry(true));
    assert_eq!(weight(&d, &key, "10.0.0.9:80"), Some(1), "enabled");
    apply_event(&mut d, real_event(key, "10.0.0.8:80", Health::Up, None));
    assert_eq!(weight(&d, &key, "10.0.0.8:80"), Some(0), "gated");
    // a whole-state replace keeps the inhibited sorry server too
    d.replace(parse(CONF).desired).unwrap();
    assert_eq!(weight(&d, &key, "10.0.0.9:80"), Some(1));
    apply_event(&mut d, sorry(false));
    assert_eq!(
        weight(&d, &key, "10.0.0.9:80"),
        Some(0),
        "disabled, not removed"
    );
    assert_eq!(weight(&d, &key, "10.0.0.8:80"), Some(2), "gating lifted");
    d.replace(parse(CONF).desired).unwrap();
    assert_eq!(weight(&d, &key, "10.0.0.9:80"), Some(0));
    assert!(
        !d.health
            .view(&key, &addr("10.0.0.8:80"))
            .unwrap()
            .quorum_gated
    );
    assert_eq!(
        (
            outcome(&d, "health.sorry_server_on"),
            outcome(&d, "health.sorry_server_off")
        ),
        (1, 1)
    );
}

#[test]
fn reload_keeps_checks_only_when_weights_cannot_matter() {
    let base = parse(CONF).virtual_servers.remove(0);
    let with = |from: &str, to: &str| parse(&CONF.replace(from, to)).virtual_servers.remove(0);
    assert!(same_checks(&base, &base.clone()));
    assert!(same_checks(&base, &with("weight 4", "weight 7")));
    assert!(!same_checks(&base, &with("weight 4", "weight 0")));
    assert!(!same_checks(
        &base,
        &with("lb_kind NAT", "lb_kind NAT\n    quorum 3")
    ));
    assert!(!same_checks(
        &base,
        &with(
            "connect_timeout 1\n        }\n    }\n    real_server 10.0.0.8",
            "connect_timeout 2\n        }\n    }\n    real_server 10.0.0.8"
        )
    ));
}

#[test]
fn services_no_longer_checked_lose_their_verdicts() {
    let (mut d, key) = daemon();
    apply_event(&mut d, real_event(key, "10.0.0.7:80", Health::Down, None));
    d.health.retain_checked(&[]);
    let mut state = d.desired().clone();
    reset_unchecked(&mut state, &[]);
    d.replace(state).unwrap();
    assert_eq!(weight(&d, &key, "10.0.0.7:80"), Some(4));
    assert!(d.health.view(&key, &addr("10.0.0.7:80")).is_none());
}

#[tokio::test]
async fn restarting_a_services_checks_takes_out_the_sorry_server_it_added() {
    // closed loopback ports: the checks fail, nothing leaves the host
    let conf = CONF.replace("10.0.0.", "127.0.0.").replace(" 80", " 9");
    let cfg = parse(&conf);
    let key = cfg.virtual_servers[0].service;
    let mut d = Daemon::new(EngineManager::new(Vec::new(), Default::default()));
    d.replace(cfg.desired.clone()).unwrap();
    let shared: api::Shared = std::sync::Arc::new(std::sync::Mutex::new(d));
    let mut m = HealthManager::default();
    m.sync(&shared, &cfg.virtual_servers);
    assert_eq!(m.services(), vec![key]);
    let prober = m.tcp_prober().expect("TCP_CHECKs configured");
    if rvs_testbed::is_root() {
        assert!(prober.starts_with("SYN prober"), "{prober}");
    }
    let sorry = addr("127.0.0.9:9");
    let on = SupervisorEvent::SorryServer {
        service: key,
        addr: sorry,
        active: true,
        inhibit: false,
        method: None,
    };
    apply_event(&mut api::lock(&shared), on);
    assert!(
        api::lock(&shared).desired().services[&key]
            .reals
            .contains_key(&sorry)
    );

    let changed = parse(&conf.replace("connect_timeout 1", "connect_timeout 2"));
    m.sync(&shared, &changed.virtual_servers);
    assert!(
        !api::lock(&shared).desired().services[&key]
            .reals
            .contains_key(&sorry)
    );
    m.sync(&shared, &[]);
    assert!(m.services().is_empty());
    m.shutdown().await;
}

#[test]
fn alpha_reals_start_down_until_checked() {
    let cfg = parse(&CONF.replace(
        "connect_timeout 1\n        }\n    }\n    real_server 10.0.0.8",
        "connect_timeout 1\n            alpha\n        }\n    }\n    real_server 10.0.0.8",
    ));
    let key = cfg.virtual_servers[0].service;
    let mut state = cfg.desired.clone();
    let mut d = Daemon::new(EngineManager::new(Vec::new(), Default::default()));
    d.health.preset_alpha(&mut state, &cfg.virtual_servers);
    d.replace(state).unwrap();
    assert_eq!(
        weight(&d, &key, "10.0.0.7:80"),
        Some(0),
        "alpha: down first"
    );
    assert_eq!(weight(&d, &key, "10.0.0.8:80"), Some(2));
    apply_event(&mut d, real_event(key, "10.0.0.7:80", Health::Up, None));
    let mut again = cfg.desired.clone();
    d.health.preset_alpha(&mut again, &cfg.virtual_servers);
    d.replace(again).unwrap();
    assert_eq!(
        weight(&d, &key, "10.0.0.7:80"),
        Some(4),
        "a verdict wins over alpha"
    );
}

#[test]
fn sorry_server_lvs_method_sets_the_sorry_servers_forwarding_method() {
    let text = CONF.replace(
        "sorry_server 10.0.0.9 80\n",
        "sorry_server 10.0.0.9 80\n    sorry_server_lvs_method DR\n",
    );
    let cfg = parse(&text);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let vs = &cfg.virtual_servers[0];
    assert_eq!(vs.sorry_server_method, Some(ForwardMethod::Dr));
    let (mut d, key) = daemon();
    apply_event(&mut d, real_event(key, "10.0.0.7:80", Health::Down, None));
    apply_event(&mut d, real_event(key, "10.0.0.8:80", Health::Down, None));
    let on = SupervisorEvent::SorryServer {
        service: key,
        addr: addr("10.0.0.9:80"),
        active: true,
        inhibit: false,
        method: vs.sorry_server_method,
    };
    apply_event(&mut d, on);
    let method = |d: &Daemon| d.desired().services[&key].reals[&addr("10.0.0.9:80")].method;
    assert_eq!(method(&d), ForwardMethod::Dr, "the reals are NAT");
    // kept by a whole-state replace, as the sorry server itself
    d.replace(parse(CONF).desired).unwrap();
    assert_eq!(method(&d), ForwardMethod::Dr);
}
