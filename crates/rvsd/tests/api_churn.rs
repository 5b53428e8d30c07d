//! API churn (loopback, proxy engine, no privileges): four threads change one service through
//! the HTTP API at once — a real's weight, a real deleted (sometimes with `?reset=true`) and
//! added back, the scheduler, the whole state replaced with `PUT /v1/state` — while clients
//! exchange checked echoes through the VIP. Real 0 is in every state any thread writes, with a
//! weight, so some real can always take a connection. What must hold:
//!
//! * every API call is answered, 2xx or the 4xx that a concurrent change explains (404 for a
//!   real another thread removed, 409 for one another thread added), never a 5xx;
//! * a session fails only if a `?reset=true` delete overlapped it;
//! * afterwards the state the API reports, the reals the engine lists and where connections
//!   go agree with the last writes.

mod common;

use common::*;
use rvs_testbed::echo::{Cuts, Rng, TcpEchoReal, clients, join, tcp_session};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const CHURN: Duration = Duration::from_secs(6);

fn real_json(addr: SocketAddr, weight: u32) -> String {
    format!(r#"{{"addr": "{addr}", "method": "fullnat", "weight": {weight}}}"#)
}

/// A whole state: the service over real 0 (weight 1..=3) and each other real with a
/// probability (weight 0..=2), scheduler rr or wlc.
fn state_json(vip: SocketAddr, reals: &[SocketAddr], rng: &mut Rng) -> String {
    let sched = if rng.below(2) == 0 { "rr" } else { "wlc" };
    let mut entries = vec![(reals[0], 1 + rng.below(3) as u32)];
    for r in &reals[1..] {
        if rng.below(2) == 0 {
            entries.push((*r, rng.below(3) as u32));
        }
    }
    state_of(vip, sched, &entries)
}

/// `PUT /v1/state` body: the one service with `entries` (address, weight).
fn state_of(vip: SocketAddr, sched: &str, entries: &[(SocketAddr, u32)]) -> String {
    let reals: Vec<String> = entries
        .iter()
        .map(|(a, w)| format!(r#""{a}": {}"#, real_json(*a, *w)))
        .collect();
    format!(
        r#"{{"services": [{{"key": {{"kind": "addr", "protocol": "tcp", "addr": "{vip}"}}, "options": {{"scheduler": "{sched}"}}, "reals": {{{}}}}}], "timeouts": {{"tcp": 900, "tcp_fin": 120, "udp": 300}}}}"#,
        reals.join(", ")
    )
}

#[test]
fn concurrent_api_changes_are_answered_and_cost_clients_nothing() {
    let echo: Vec<Arc<TcpEchoReal>> = (0..3).map(TcpEchoReal::new).collect();
    let reals: Vec<SocketAddr> = echo.iter().map(|r| r.addr()).collect();
    let vip: SocketAddr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let d = Arc::new(Rvsd::start(
        &fullnat_config(vip, &reals),
        &["--engine", "proxy"],
    ));
    let svc = format!("/v1/services/tcp:{vip}");
    let from: IpAddr = Ipv4Addr::LOCALHOST.into();

    let cuts = Arc::new(Cuts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let snap: Arc<Mutex<String>> = Arc::default();
    let handles = clients(4, &cuts, &stop, &snap, move |_, rng, t| {
        tcp_session(vip, from, rng, &mut t.bytes)
    });

    // The API threads; each call's status is checked against what concurrency explains.
    let unexpected: Arc<Mutex<Vec<String>>> = Arc::default();
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let t0 = Instant::now();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (d, cuts, unexpected, calls) = (
                Arc::clone(&d),
                Arc::clone(&cuts),
                Arc::clone(&unexpected),
                Arc::clone(&calls),
            );
            let (svc, reals) = (svc.clone(), reals.clone());
            thread::spawn(move || {
                let mut rng = Rng(0xdead_beef + w as u64);
                while t0.elapsed() < CHURN {
                    thread::sleep(Duration::from_millis(5 + rng.below(20)));
                    let r = reals[1 + rng.below(2) as usize];
                    let (what, resp, allowed): (String, Resp, &[u16]) = match (w, rng.below(3)) {
                        // A weight of real 1 or 2 (404: removed by another thread).
                        (0, _) => {
                            let body = real_json(r, rng.below(4) as u32);
                            let p = format!("{svc}/reals/{r}");
                            (
                                format!("PUT {p}"),
                                d.req("PUT", &p, Some(&body)),
                                &[200, 404],
                            )
                        }
                        // Delete (sometimes resetting its connections) or add back.
                        (1, 0) => {
                            let p = format!("{svc}/reals/{r}?reset=true");
                            cuts.begin();
                            let resp = d.req("DELETE", &p, None);
                            cuts.end();
                            (format!("DELETE {p}"), resp, &[204, 404])
                        }
                        (1, 1) => {
                            let p = format!("{svc}/reals/{r}");
                            (
                                format!("DELETE {p}"),
                                d.req("DELETE", &p, None),
                                &[204, 404],
                            )
                        }
                        (1, _) => {
                            let p = format!("{svc}/reals");
                            let body = real_json(r, 1);
                            (
                                format!("POST {p}"),
                                d.req("POST", &p, Some(&body)),
                                &[201, 409],
                            )
                        }
                        // The scheduler.
                        (2, n) => {
                            let s = ["rr", "wlc", "wrr"][n as usize];
                            let body = format!(r#"{{"scheduler": "{s}"}}"#);
                            (
                                format!("PUT {svc}"),
                                d.req("PUT", &svc, Some(&body)),
                                &[200],
                            )
                        }
                        // Everything at once (a replaced real's connections finish).
                        _ => {
                            let body = state_json(vip, &reals, &mut rng);
                            (
                                "PUT /v1/state".into(),
                                d.req("PUT", "/v1/state", Some(&body)),
                                &[200],
                            )
                        }
                    };
                    calls.fetch_add(1, Ordering::SeqCst);
                    if !allowed.contains(&resp.status) {
                        unexpected
                            .lock()
                            .unwrap()
                            .push(format!("{what}: {} {}", resp.status, resp.body));
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("API thread");
    }
    stop.store(true, Ordering::SeqCst);
    let (total, failures) = join(handles);
    let (ok, excused) = (total.ok, total.excused);
    let unexpected = unexpected.lock().unwrap().clone();
    println!(
        "api churn: {} API calls, {} unexpected answers; {ok} sessions, {excused} cut by a \
         reset, {} failed otherwise",
        calls.load(Ordering::SeqCst),
        unexpected.len(),
        failures.len()
    );
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");
    assert!(
        failures.is_empty(),
        "{} sessions failed with no reset meanwhile, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(ok > 500, "{ok} sessions");

    // Quiet: a known state written last; the API's state, the engine's listing and the
    // traffic agree with it.
    let last = state_of(vip, "rr", &[(reals[0], 1), (reals[2], 1)]);
    assert_eq!(d.req("PUT", "/v1/state", Some(&last)).status, 200);
    let state = d.get("/v1/state").json();
    let in_state: Vec<&String> = state["services"][0]["reals"]
        .as_object()
        .expect("reals")
        .keys()
        .collect();
    assert_eq!(in_state.len(), 2, "{state}");
    let listed: Vec<String> = d.get(&svc).json()["reals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["real"]["addr"].as_str().unwrap().to_string())
        .collect();
    let mut want = vec![reals[0].to_string(), reals[2].to_string()];
    want.sort();
    let mut got = listed.clone();
    got.sort();
    assert_eq!(got, want, "the service's reals as the engine lists them");
    let mut rng = Rng(7);
    let mut served = [0u32; 3];
    let mut bytes = 0;
    for i in 0..40 {
        match tcp_session(vip, from, &mut rng, &mut bytes) {
            Ok(id) => served[id as usize] += 1,
            Err(why) => panic!("session {i} after the churn: {why}"),
        }
    }
    assert_eq!(served[1], 0, "the removed real gets nothing: {served:?}");
    assert!(
        served[0] >= 15 && served[2] >= 15,
        "round robin over the two: {served:?}"
    );
}
