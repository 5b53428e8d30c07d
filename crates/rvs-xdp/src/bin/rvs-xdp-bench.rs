//! `rvs-xdp-bench`: nanoseconds per packet of the XDP balancer through BPF_PROG_TEST_RUN, for DR
//! and TUN, established and new flows, beside the MAC-swap ceiling and the restore wrapper's own
//! cost. Writes the bench suite's JSON (see bench/README.md).
//!
//! Usage: rvs-xdp-bench [--mode smoke|quick|full] [--repeat N] [--out FILE]   (root)

use rvs_xdp::Balancer;
use rvs_xdp::abi::{self, Config, Iface, Real, Service, VipKey, addr_of};
use rvs_xdp::bench::{Bench, MAC_SWAP, RESTORE_ONLY, WRAP};
use std::net::{IpAddr, Ipv4Addr};

const XDP_TX: u32 = 3;
/// Offset of the IPv4 source address in an Ethernet frame (varied for new flows).
const SRC4_OFFSET: u32 = 14 + 12;
/// Repetitions of a new-flow run: well under the connection table's size, so "new flow" never
/// evicts ("new flow, table full" measures eviction).
const NEW_FLOW_REPEAT: u32 = 50_000;

fn frame(dst: Ipv4Addr) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&[192, 168, 1, 10]);
    ip.extend_from_slice(&dst.octets());
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let tcp = [
        0x9c, 0x40, 0, 80, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xc1, 0x08, 0x00];
    f.extend_from_slice(&ip);
    f.extend_from_slice(&tcp);
    f
}

fn setup() -> Result<Balancer, Box<dyn std::error::Error>> {
    let mut b = Balancer::load()?;
    b.set_iface(
        0,
        &Iface {
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
            src4: u32::from_ne_bytes([10, 0, 0, 2]),
            src6: [0; 4],
        },
    )?;
    let s = 1_000_000_000;
    b.set_config(&Config {
        tcp_timeout_ns: 900 * s,
        tcp_fin_timeout_ns: 120 * s,
        udp_timeout_ns: 300 * s,
    })?;
    for (svc, vip, method, base) in [
        (0u32, [10, 0, 0, 3], abi::RVS_METHOD_DR, 0u32),
        (1, [10, 0, 0, 4], abi::RVS_METHOD_TUN, 2),
    ] {
        let (addr, family) = addr_of(IpAddr::from(vip));
        b.set_service(
            &VipKey {
                addr,
                port: 80u16.to_be(),
                proto: 6,
                family,
            },
            &Service {
                index: svc,
                ..Default::default()
            },
        )?;
        for i in 0..2u32 {
            let (addr, family) = addr_of(IpAddr::from([10, 0, 1, 7 + i as u8]));
            let r = Real {
                addr,
                family,
                method: method as u8,
                flags: abi::RVS_REAL_F_PRESENT as u8,
                has_mac: 1,
                mac: [2, 0, 0, 0, 1, i as u8],
                pad: [0; 2],
            };
            b.set_real(base + i, &r)?;
        }
        let table: Vec<u32> = (0..abi::RVS_MAGLEV_SIZE as u32)
            .map(|s| base + s % 2)
            .collect();
        b.set_maglev(svc, &table)?;
    }
    Ok(b)
}

struct Series {
    subject: &'static str,
    scenario: &'static str,
    values: Vec<f64>,
}

fn json(mode: &str, rounds: usize, repeat: u32, series: &[Series], notes: &[String]) -> String {
    let s: Vec<String> = series
        .iter()
        .map(|x| {
            let v: Vec<String> = x.values.iter().map(|v| format!("{v:.1}")).collect();
            format!(
                "{{\"subject\": \"{}\", \"scenario\": \"{}\", \"metric\": \"ns_per_packet\", \"unit\": \"ns\", \"better\": \"lower\", \"values\": [{}]}}",
                x.subject, x.scenario, v.join(", ")
            )
        })
        .collect();
    let n: Vec<String> = notes
        .iter()
        .map(|n| format!("\"{}\"", n.replace('"', "'")))
        .collect();
    format!(
        "{{\"comparison\": \"xdp\", \"title\": \"XDP per-packet cost (BPF_PROG_TEST_RUN, frame restored every run)\", \"mode\": \"{mode}\", \"references\": [\"ceiling (mac swap)\"], \"peers\": {{}}, \"params\": {{\"rounds\": {rounds}, \"repeat\": {repeat}}}, \"skipped\": {{}}, \"notes\": [{}],\n \"series\": [\n  {}\n ]}}\n",
        n.join(", "),
        s.join(",\n  ")
    )
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
    let dr = frame(Ipv4Addr::new(10, 0, 0, 3));
    let tun = frame(Ipv4Addr::new(10, 0, 0, 4));
    let new_repeat = repeat.min(NEW_FLOW_REPEAT);
    let mut series: Vec<Series> = Vec::new();
    let mut push = |subject, scenario, v: f64| match series
        .iter_mut()
        .find(|s| s.subject == subject && s.scenario == scenario)
    {
        Some(s) => s.values.push(v),
        None => series.push(Series {
            subject,
            scenario,
            values: vec![v],
        }),
    };
    for _ in 0..rounds {
        let t = Bench::load()?.run(MAC_SWAP, &dr, repeat)?;
        check(t.action, "mac swap")?;
        push("ceiling (mac swap)", "any", t.ns);
        for (subject, f) in [("rvs dr", &dr), ("rvs tun", &tun)] {
            // A fresh program and maps every round, so "new flow" starts from an empty table.
            let b = setup()?;
            let mut bench = Bench::load()?;
            bench.set_target(b.program()?)?;
            let scenarios = [
                ("established flow", 0, repeat, 1),
                ("new flow", SRC4_OFFSET, new_repeat, 0),
                (
                    "new flow, table full",
                    SRC4_OFFSET,
                    new_repeat,
                    abi::RVS_MAX_CONNS as u32 + 1,
                ),
            ];
            for (scenario, vary, n, warmup) in scenarios {
                bench.set_frame(f, vary)?;
                let w = bench.run(RESTORE_ONLY, f, n)?;
                check(w.action, "restore only")?;
                if subject == "rvs dr" {
                    push("wrapper (restore only)", scenario, w.ns);
                }
                if warmup > 0 {
                    bench.run(WRAP, f, warmup)?; // establish the flow / fill the table
                }
                let before = b.outcomes()?[abi::RVS_OUTCOME_FORWARDED as usize];
                let t = bench.run(WRAP, f, n)?;
                let forwarded = b.outcomes()?[abi::RVS_OUTCOME_FORWARDED as usize] - before;
                check(t.action, subject)?;
                if forwarded != u64::from(n) {
                    return Err(
                        format!("{subject} {scenario}: {forwarded} of {n} runs forwarded").into(),
                    );
                }
                push(subject, scenario, t.ns - w.ns);
            }
        }
    }
    let med = |subject: &str, scenario: &str| {
        let mut v = series
            .iter()
            .find(|s| s.subject == subject && s.scenario == scenario)
            .map(|s| s.values.clone())
            .unwrap_or_default();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let ceiling = med("ceiling (mac swap)", "any");
    let notes = vec![
        format!("rvs figures are wrapper+program minus the wrapper's own cost measured in the same round (median wrapper: {:.1} ns established, {:.1} ns new flow)", med("wrapper (restore only)", "established flow"), med("wrapper (restore only)", "new flow")),
        "every timed run checked: last action XDP_TX and the forwarded counter grew by exactly the repeat count".to_string(),
        "new flow: the wrapper writes a per-run counter into the IPv4 source address, so every run misses the connection table, hashes, looks up Maglev and inserts an entry; fresh program and maps each round, at most 50,000 runs (table never full)".to_string(),
        "new flow, table full: the same after filling the LRU connection table past its 262,144 entries, so every insert evicts (a SYN flood's steady state)".to_string(),
        format!("goals (issue 5): DR established <= 1.5x ceiling = {:.1} ns; TUN established <= 0.5x Katran 172 ns = 86 ns; new flow <= 0.6x Katran SYN 342 ns = 205 ns", 1.5 * ceiling),
    ];
    for s in &series {
        println!(
            "{:<24} {:<18} median {:>7.1} ns  {:?}",
            s.subject,
            s.scenario,
            med(s.subject, s.scenario),
            s.values
        );
    }
    let out = json(&mode, rounds, repeat, &series, &notes);
    match arg("--out") {
        Some(path) => std::fs::write(&path, out)?,
        None => print!("{out}"),
    }
    Ok(())
}

fn check(action: u32, what: &str) -> Result<(), String> {
    if action == XDP_TX {
        Ok(())
    } else {
        Err(format!(
            "{what}: last run returned action {action}, not XDP_TX"
        ))
    }
}
