//! `rvs-xdp-nat-bench`: nanoseconds per packet of the XDP balancer's NAT and FULLNAT through
//! BPF_PROG_TEST_RUN (frame restored before every run by the bench wrapper, whose own cost is
//! subtracted), towards the real (established flow, new flow) and back (reply), beside the
//! MAC-swap ceiling. Runs in a network namespace of its own where bpf_fib_lookup succeeds
//! (veth pairs, permanent neighbours), so every packet pays a real FIB lookup and ends in
//! bpf_redirect_map (XDP_REDIRECT). Writes the bench suite's JSON (see bench/README.md).
//!
//! Usage: rvs-xdp-nat-bench [--mode smoke|quick|full] [--repeat N] [--out FILE]   (root)

use rvs_xdp::Balancer;
use rvs_xdp::abi::{self, FlowKey, Iface, addr_of};
use rvs_xdp::bench::{Bench, MAC_SWAP, RESTORE_ONLY, WRAP};
use rvs_xdp::bench_setup::{Results, two_services};
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;
const SRC4_OFFSET: u32 = 14 + 12;
const NEW_FLOW_REPEAT: u32 = 50_000;
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 100);

/// Ethernet + IPv4 + TCP (ACK, no payload) src:sport → dst:dport.
fn frame(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = 0x10;
    tcp[14] = 0xff;
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xc1, 0x08, 0x00];
    f.extend_from_slice(&ip);
    f.extend_from_slice(&tcp);
    f
}

fn sh(args: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let out = Command::new(args[0]).args(&args[1..]).output()?;
    if !out.status.success() {
        return Err(format!("{args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

/// A namespace of our own where 10.0.1.0/24 (reals) and 192.168.1.0/24 (client) sit behind
/// veths with permanent neighbours. Returns the two veths' ifindexes.
fn own_netns() -> Result<Vec<u32>, Box<dyn std::error::Error>> {
    // SAFETY: unshare changes this (still single-threaded) process's network namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!("unshare: {}", std::io::Error::last_os_error()).into());
    }
    sh(&["ip", "link", "set", "lo", "up"])?;
    let mut ifindexes = Vec::new();
    for (dev, peer, addr, neighs) in [
        ("b0", "b1", "10.0.1.1/24", vec!["10.0.1.7", "10.0.1.8"]),
        ("c0", "c1", "192.168.1.1/24", vec!["192.168.1.10"]),
    ] {
        sh(&[
            "ip", "link", "add", dev, "type", "veth", "peer", "name", peer,
        ])?;
        sh(&["ip", "link", "set", dev, "up"])?;
        sh(&["ip", "link", "set", peer, "up"])?;
        sh(&["ip", "addr", "add", addr, "dev", dev])?;
        for n in neighs {
            sh(&[
                "ip",
                "neigh",
                "add",
                n,
                "lladdr",
                "02:00:00:00:01:07",
                "dev",
                dev,
                "nud",
                "permanent",
            ])?;
        }
        let name = std::ffi::CString::new(dev)?;
        // SAFETY: if_nametoindex reads the NUL-terminated name we pass.
        let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if idx == 0 {
            return Err(format!("no interface {dev}").into());
        }
        ifindexes.push(idx);
    }
    std::fs::write("/proc/sys/net/ipv4/conf/all/forwarding", "1")?;
    Ok(ifindexes)
}

/// Service 0: 10.0.0.3:80 NAT, service 1: 10.0.0.4:80 FULLNAT, two reals each (port 8080).
fn setup(ifindexes: &[u32]) -> Result<Balancer, Box<dyn std::error::Error>> {
    let iface = Iface {
        mac: [2, 0, 0, 0, 0, 1],
        mtu: 1500,
        ..Default::default()
    };
    let methods = [abi::RVS_METHOD_NAT as u8, abi::RVS_METHOD_FULLNAT as u8];
    let mut b = two_services(&iface, methods, |_| [2, 0, 0, 0, 1, 7], Some(8080))?;
    for i in ifindexes {
        b.set_tx_port(*i)?;
    }
    b.set_fnat_pool(1, &[IpAddr::V4(LOCAL)])?;
    Ok(b)
}

/// The reply frame of the flow CLIENT:40000 → vip:80 once established.
fn reply_frame(b: &Balancer, vip: Ipv4Addr) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let want_dst = addr_of(IpAddr::V4(vip)).0;
    let (rev, _): (FlowKey, FlowKey) = b
        .nat_rev()?
        .into_iter()
        .find(|(_, o)| o.dst == want_dst)
        .ok_or("flow not established")?;
    let real = Ipv4Addr::from(rev.src[0].to_ne_bytes());
    let dst = Ipv4Addr::from(rev.dst[0].to_ne_bytes());
    Ok(frame(
        real,
        dst,
        u16::from_be(rev.sport),
        u16::from_be(rev.dport),
    ))
}

/// One round of one subject: established, reply, new flow.
fn round(
    results: &mut Results,
    ifindexes: &[u32],
    subject: &'static str,
    vip: Ipv4Addr,
    repeat: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    let b = setup(ifindexes)?;
    let mut bench = Bench::load()?;
    bench.set_target(b.program()?)?;
    let fwd = frame(CLIENT, vip, 40000, 80);
    bench.set_frame(&fwd, 0)?;
    bench.run(WRAP, &fwd, 1)?; // establish the flow
    let reply = reply_frame(&b, vip)?;
    let new_repeat = repeat.min(NEW_FLOW_REPEAT);
    let cases: [(&'static str, &Vec<u8>, u32, u32, u32); 3] = [
        (
            "established flow",
            &fwd,
            0,
            repeat,
            abi::RVS_OUTCOME_NAT_FORWARDED,
        ),
        ("reply", &reply, 0, repeat, abi::RVS_OUTCOME_NAT_REPLY),
        (
            "new flow",
            &fwd,
            SRC4_OFFSET,
            new_repeat,
            abi::RVS_OUTCOME_NAT_FORWARDED,
        ),
    ];
    for (scenario, f, vary, n, outcome) in cases {
        bench.set_frame(f, vary)?;
        let w = bench.run(RESTORE_ONLY, f, n)?;
        if w.action != XDP_TX {
            return Err(format!("restore only returned {}", w.action).into());
        }
        let before = b.outcomes()?;
        let t = bench.run(WRAP, f, n)?;
        let after = b.outcomes()?;
        let moved = after[outcome as usize] - before[outcome as usize];
        if t.action != XDP_REDIRECT || moved != u64::from(n) {
            let other: Vec<String> = (0..after.len())
                .filter(|i| after[*i] != before[*i])
                .map(|i| {
                    let name = abi::outcome_name(i as u32).unwrap_or("?");
                    format!("{name} +{}", after[i] - before[i])
                })
                .collect();
            return Err(format!(
                "{subject} {scenario}: action {} (want XDP_REDIRECT), {moved} of {n} runs \
                 counted; outcomes {other:?}",
                t.action
            )
            .into());
        }
        results.push(subject, scenario, t.ns - w.ns);
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let mode = arg("--mode").unwrap_or_else(|| "quick".into());
    let (rounds, repeat): (usize, u32) = match mode.as_str() {
        "smoke" => (1, 1_000),
        "quick" => (5, 200_000),
        "full" => (10, 1_000_000),
        other => return Err(format!("unknown mode {other}").into()),
    };
    let repeat = arg("--repeat")
        .and_then(|r| r.parse().ok())
        .unwrap_or(repeat);
    let ifindexes = own_netns()?;
    let mut results = Results::default();
    for _ in 0..rounds {
        let f = frame(CLIENT, Ipv4Addr::new(10, 0, 0, 3), 40000, 80);
        let t = Bench::load()?.run(MAC_SWAP, &f, repeat)?;
        if t.action != XDP_TX {
            return Err("mac swap did not return XDP_TX".into());
        }
        results.push("ceiling (mac swap)", "any", t.ns);
        round(
            &mut results,
            &ifindexes,
            "rvs nat",
            Ipv4Addr::new(10, 0, 0, 3),
            repeat,
        )?;
        round(
            &mut results,
            &ifindexes,
            "rvs fullnat",
            Ipv4Addr::new(10, 0, 0, 4),
            repeat,
        )?;
    }
    let ceiling = results.median("ceiling (mac swap)", "any");
    let notes = vec![
        "rvs figures are wrapper+program minus the wrapper's own cost measured in the same round".to_string(),
        "IPv4 TCP; bpf_fib_lookup succeeds (veths with permanent neighbours in a namespace made for the run) and every packet ends in bpf_redirect_map; each timed run checked: XDP_REDIRECT and the nat_forwarded / nat_reply counter grew by exactly the repeat count".to_string(),
        "new flow: a per-run counter in the IPv4 source address, so every run schedules, inserts the connection entry and the reverse entry (FULLNAT: allocates a local port with BPF_NOEXIST); fresh program and maps each round, at most 50,000 runs".to_string(),
        format!("goal (issue 6): <= 2x the ceiling = {:.1} ns", 2.0 * ceiling),
    ];
    for s in &results.series {
        println!(
            "{:<20} {:<18} median {:>7.1} ns  {:?}",
            s.subject,
            s.scenario,
            results.median(s.subject, s.scenario),
            s.values
        );
    }
    let out = results.to_json(
        "xdp_nat",
        "XDP NAT/FULLNAT per-packet cost (BPF_PROG_TEST_RUN, frame restored every run)",
        &mode,
        rounds,
        repeat,
        &notes,
    );
    match arg("--out") {
        Some(path) => std::fs::write(&path, out)?,
        None => print!("{out}"),
    }
    Ok(())
}
