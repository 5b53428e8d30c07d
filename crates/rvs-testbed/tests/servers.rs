//! The servers and clients of the test bed, on the loopback of a namespace: HAProxy in front of
//! two nginx reals, nginx with PROXY protocol, wrk, iperf3. Needs root; skips otherwise.

use std::net::SocketAddr;
use std::time::Duration;

use rvs_testbed::procstat::{cpu_time_ms, tree_rss_kib};
use rvs_testbed::{
    Haproxy, Iperf3Server, Netns, Nginx, NginxOptions, WrkOptions, curl, iperf3, skip_unless_root,
    wrk,
};

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn haproxy_balances_over_nginx_reals_and_wrk_measures_it() {
    if !skip_unless_root("haproxy_balances_over_nginx_reals_and_wrk_measures_it") {
        return;
    }
    let ns = Netns::new("srv-haproxy").unwrap();
    let a = Nginx::start(Some(&ns), local(8001), "alpha").unwrap();
    let b = Nginx::start(Some(&ns), local(8002), "beta").unwrap();
    let lb = Haproxy::start(Some(&ns), local(8000), &[local(8001), local(8002)], 1, None).unwrap();
    let bodies: Vec<String> = (0..4)
        .map(|_| curl(Some(&ns), "http://127.0.0.1:8000/").unwrap())
        .collect();
    assert!(bodies.iter().any(|b| b.trim() == "alpha"), "{bodies:?}");
    assert!(bodies.iter().any(|b| b.trim() == "beta"), "{bodies:?}");

    let cpu_before = cpu_time_ms(lb.pid()).unwrap();
    let o = WrkOptions {
        url: "http://127.0.0.1:8000/".into(),
        connections: 4,
        threads: 1,
        duration: Duration::from_secs(1),
        new_connection_per_request: true,
        cpus: None,
    };
    let r = wrk(Some(&ns), &o).unwrap();
    assert!(r.requests > 0 && r.requests_per_sec > 0.0, "{r:?}");
    assert!(r.p50_ms <= r.p99_ms, "{r:?}");
    assert_eq!(r.errors, 0, "{r:?}");
    assert!(
        cpu_time_ms(lb.pid()).unwrap() > cpu_before,
        "HAProxy used no CPU for {} requests",
        r.requests
    );
    // Every request reached a real and was logged there (the curls plus wrk's).
    let logged = a.requests().unwrap() + b.requests().unwrap();
    assert!(
        logged as u64 >= r.requests + 4,
        "logged {logged}, wrk {}",
        r.requests
    );
    assert!(tree_rss_kib(a.pid()).unwrap() > 0);
}

#[test]
fn nginx_logs_the_client_address_from_proxy_protocol() {
    if !skip_unless_root("nginx_logs_the_client_address_from_proxy_protocol") {
        return;
    }
    let ns = Netns::new("srv-pp").unwrap();
    let mut o = NginxOptions::new(local(8080), "pp");
    o.proxy_protocol = true;
    let web = Nginx::start_with(Some(&ns), &o).unwrap();
    // curl sends a PROXY v1 header carrying its own addresses.
    let body = ns
        .run(
            "curl",
            &[
                "-sS",
                "--max-time",
                "5",
                "--haproxy-protocol",
                "http://127.0.0.1:8080/",
            ],
        )
        .unwrap();
    assert_eq!(body.trim(), "pp");
    let log = web.access_log().unwrap();
    let line = log.lines().next().expect("one request logged");
    let proxy_field = line.split_whitespace().nth(1).unwrap();
    assert!(
        proxy_field.starts_with("127.0.0.1:") && proxy_field.len() > "127.0.0.1:".len(),
        "{line}"
    );
}

#[test]
fn nginx_with_deferred_accept_makes_the_socket_at_the_first_data() {
    if !skip_unless_root("nginx_with_deferred_accept_makes_the_socket_at_the_first_data") {
        return;
    }
    let ns = Netns::new("srv-defer").unwrap();
    let plain = Nginx::start(Some(&ns), local(8081), "plain").unwrap();
    let mut o = NginxOptions::new(local(8082), "deferred");
    o.deferred_accept = true;
    let deferred = Nginx::start_with(Some(&ns), &o).unwrap();
    // One silent connection to each: the deferred one stays a request socket (SYN-RECV on the
    // server's side) until data arrives, the plain one is established at once.
    let waiting = |port: u16| {
        let out = ns
            .run(
                "ss",
                &[
                    "-Htn",
                    "state",
                    "syn-recv",
                    "sport",
                    "=",
                    &format!(":{port}"),
                ],
            )
            .unwrap();
        out.lines().count()
    };
    ns.in_thread(|| {
        let mut a = std::net::TcpStream::connect(plain.listen).unwrap();
        let mut b = std::net::TcpStream::connect(deferred.listen).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(waiting(8081), 0, "plain listener");
        assert_eq!(waiting(8082), 1, "deferred listener");
        // The first request makes the socket and is answered.
        use std::io::{Read, Write};
        for s in [&mut a, &mut b] {
            s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let mut reply = String::new();
            s.read_to_string(&mut reply).unwrap();
            assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        }
        assert_eq!(waiting(8082), 0, "deferred listener after the request");
    });
}

#[test]
fn iperf3_measures_throughput() {
    if !skip_unless_root("iperf3_measures_throughput") {
        return;
    }
    let ns = Netns::new("srv-iperf").unwrap();
    let _server = Iperf3Server::start(Some(&ns), local(5201)).unwrap();
    let bps = iperf3(Some(&ns), None, "127.0.0.1", 5201, 1).unwrap();
    assert!(bps > 1e6, "{bps} bit/s");
}

#[test]
fn a_server_that_cannot_start_reports_why() {
    if !skip_unless_root("a_server_that_cannot_start_reports_why") {
        return;
    }
    let ns = Netns::new("srv-fail").unwrap();
    // 192.0.2.1 is not an address of this namespace: nginx cannot bind it.
    let err = Nginx::start(Some(&ns), SocketAddr::from(([192, 0, 2, 1], 80)), "x").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("bind") || text.contains("assign"), "{text}");
}
