//! rvsd started from a TOML file serves FULLNAT services through the xdp engine with the local
//! addresses the file gives: `[daemon] fullnat_local` for one service, a service's own
//! `local_addresses` for the other, and a SIGHUP that changes that service's pool. In
//! rvs-testbed's FULLNAT topology (the reals have no route to the client, so only a rewritten
//! source gets replies back) with two nginx reals; nginx's access log must show the local
//! address every request came from, and `rvsadm -Ln --json` must show both services on the
//! xdp engine. Root only. And, without root, `rvsd --check` lists the local addresses each
//! FULLNAT service would use, from the TOML file and from keepalived.conf.
#![cfg(feature = "xdp")]

mod common;

use common::*;
use rvs_testbed::{Nginx, Topology};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

/// Requests per service and step (short: this runs in CI on 2 cores).
const REQUESTS: usize = 20;
/// Local addresses on the director's real-side interface.
const LOCAL: [&str; 3] = ["10.20.2.100", "10.20.2.101", "10.20.2.102"];

fn config(vip: Ipv4Addr, reals: &[SocketAddr], own_pool: &str) -> String {
    let mut c = format!(
        "[daemon]\nxdp_interfaces = [\"eth0\", \"eth1\"]\n\
         fullnat_local = [\"{}\", \"fd00:20:2::100\"]\n",
        LOCAL[0]
    );
    for (port, pool) in [(80, None), (81, Some(own_pool))] {
        c += &format!("\n[[service]]\naddress = \"{vip}:{port}\"\nscheduler = \"rr\"\n");
        if let Some(p) = pool {
            c += &format!("local_addresses = [\"{p}\"]\n");
        }
        for r in reals {
            c += &format!("[[service.real]]\naddress = \"{r}\"\nmethod = \"fullnat\"\n");
        }
    }
    c
}

/// `n` curls from the client to `vip:port`; each line is a real's name or FAIL.
fn curls(topo: &Topology, vip: Ipv4Addr, port: u16, n: usize) -> BTreeMap<String, usize> {
    rvs_testbed::clients::curl_counts(&topo.client.ns, &format!("http://{vip}:{port}/"), n)
        .expect("curl loop")
}

/// Source addresses in the reals' access logs, counted.
fn sources(nginx: &[Nginx]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for n in nginx {
        for line in n.access_log().unwrap().lines() {
            // "addr:port ..."
            let first = line.split_whitespace().next().unwrap_or("");
            let addr = first.rsplit_once(':').map_or(first, |(a, _)| a);
            *out.entry(addr.to_string()).or_insert(0) += 1;
        }
    }
    out
}

fn assert_served(counts: &BTreeMap<String, usize>, log: &str) {
    assert_eq!(
        counts.get("FAIL"),
        None,
        "failed requests: {counts:?}\n{log}"
    );
    assert_eq!(counts.values().sum::<usize>(), REQUESTS, "{counts:?}");
    assert_eq!(counts.len(), 2, "both reals answer (rr): {counts:?}");
}

#[test]
fn rvsd_serves_fullnat_through_xdp_with_configured_local_addresses() {
    if !rvs_testbed::skip_unless_root(
        "rvsd_serves_fullnat_through_xdp_with_configured_local_addresses",
    ) {
        return;
    }
    let topo = xdp_fullnat_topology(2);
    let d = &topo.director.ns;
    let vip = topo.vip4;
    for l in LOCAL {
        d.ip(&["addr", "add", &format!("{l}/24"), "dev", "eth1"])
            .unwrap();
    }
    let (reals, nginx) = nginx_reals(&topo);

    let mut rvsd = Rvsd::start_in(d, &config(vip, &reals, LOCAL[1]), &[]);
    let listing = Command::new(rvs_testbed::bin_path("rvsadm"))
        .args(["-Ln", "--json", "--socket"])
        .arg(&rvsd.socket)
        .output()
        .expect("rvsadm");
    let listing: serde_json::Value = serde_json::from_slice(&listing.stdout)
        .unwrap_or_else(|e| panic!("rvsadm --json ({e}): {listing:?}"));
    let services = listing.as_array().expect("a list of services");
    assert_eq!(services.len(), 2, "{listing}");
    for s in services {
        assert_eq!(s["engine"], "xdp", "{s}\n{}", rvsd.log());
    }

    assert_served(&curls(&topo, vip, 80, REQUESTS), &rvsd.log());
    assert_served(&curls(&topo, vip, 81, REQUESTS), &rvsd.log());
    let want = BTreeMap::from([
        (LOCAL[0].to_string(), REQUESTS),
        (LOCAL[1].to_string(), REQUESTS),
    ]);
    assert_eq!(sources(&nginx), want, "the reals see the local addresses");
    // The reals' replies count in the out direction, all the way to `rvsadm -Ln --stats`
    // (IPVS's OutPkts/OutBytes; a DR/TUN director's stay 0).
    let stats = Command::new(rvs_testbed::bin_path("rvsadm"))
        .args(["-Ln", "--stats", "--exact", "--socket"])
        .arg(&rvsd.socket)
        .output()
        .expect("rvsadm");
    let stats = String::from_utf8_lossy(&stats.stdout).into_owned();
    println!("{stats}");
    for port in [80, 81] {
        let name = format!("{vip}:{port} ");
        let line = stats
            .lines()
            .find(|l| l.starts_with("TCP") && l.contains(&name))
            .unwrap_or_else(|| panic!("no line for {name}in\n{stats}"));
        // Conns InPkts OutPkts InBytes OutBytes
        let n: Vec<u64> = line
            .split_whitespace()
            .skip(2)
            .map(|x| x.parse().unwrap())
            .collect();
        let r = REQUESTS as u64;
        assert!(n[0] >= r && n[1] >= 5 * r && n[2] >= 4 * r, "{stats}");
        assert!(n[4] >= 40 * n[2], "{stats}");
    }

    // SIGHUP with another pool for :81: applied to the running service
    std::fs::write(rvsd.config_path(), config(vip, &reals, LOCAL[2])).unwrap();
    rvsd.signal("HUP");
    rvsd.wait_log("reload applied", 1);
    assert_served(&curls(&topo, vip, 81, REQUESTS), &rvsd.log());
    let got = sources(&nginx);
    assert_eq!(got.get(LOCAL[2]), Some(&REQUESTS), "after reload: {got:?}");
    assert_eq!(got.get(LOCAL[1]), Some(&REQUESTS), "{got:?}");

    rvsd.signal("TERM");
    assert!(rvsd.wait_exit().success(), "{}", rvsd.log());
    assert!(!rvsd.log().contains("panicked"), "{}", rvsd.log());
}

#[test]
fn check_lists_the_local_addresses_of_each_fullnat_service() {
    let dir = TempDir::new();
    let toml = dir.0.join("rvsd.toml");
    let keepalived = dir.0.join("keepalived.conf");
    std::fs::write(
        &toml,
        "[daemon]\nfullnat_local = [\"10.0.2.100\", \"fd00:2::100\"]\n\
         [[service]]\naddress = \"10.0.0.4:80\"\n\
         [[service.real]]\naddress = \"10.0.2.7:80\"\nmethod = \"fullnat\"\n\
         [[service]]\naddress = \"10.0.0.4:81\"\nlocal_addresses = [\"10.0.2.101\"]\n\
         [[service.real]]\naddress = \"10.0.2.7:80\"\nmethod = \"fullnat\"\n",
    )
    .unwrap();
    std::fs::write(
        &keepalived,
        "local_address_group g1 {\n 10.0.2.110-111\n}\n\
         virtual_server 10.0.0.4 82 {\n lb_kind FNAT\n laddr_group_name g1\n\
          real_server 10.0.2.7 80 {\n weight 1\n }\n}\n\
         virtual_server 2001:db8::4 80 {\n lb_kind FNAT\n\
          real_server 2001:db8::7 80 {\n weight 1\n }\n}\n",
    )
    .unwrap();
    let out = Command::new(rvs_testbed::bin_path("rvsd"))
        .arg("--check")
        .arg("--config")
        .arg(&toml)
        .arg("--keepalived-conf")
        .arg(&keepalived)
        .arg("--socket")
        .arg(dir.0.join("s.sock"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // Valid; FULLNAT is served only where the xdp engine could run (status 2 elsewhere).
    let want = if text.contains("NOT SERVED") { 2 } else { 0 };
    assert_eq!(
        out.status.code(),
        Some(want),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = |svc: &str| -> String {
        let mut lines = text.lines().skip_while(|l| !l.starts_with(svc));
        lines
            .next()
            .unwrap_or_else(|| panic!("{svc} not listed: {text}"));
        lines.next().unwrap_or_default().trim().to_string()
    };
    assert_eq!(
        after("tcp 10.0.0.4:80:"),
        "FULLNAT local addresses ([daemon] fullnat_local): 10.0.2.100"
    );
    assert_eq!(
        after("tcp 10.0.0.4:81:"),
        "FULLNAT local addresses (its own): 10.0.2.101"
    );
    assert_eq!(
        after("tcp 10.0.0.4:82:"),
        "FULLNAT local addresses (its own): 10.0.2.110 10.0.2.111"
    );
    assert_eq!(
        after("tcp [2001:db8::4]:80:"),
        "FULLNAT local addresses ([daemon] fullnat_local): fd00:2::100"
    );
}
