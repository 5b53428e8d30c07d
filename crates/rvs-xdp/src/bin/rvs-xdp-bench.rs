//! `rvs-xdp-bench`: nanoseconds per packet of the XDP balancer through BPF_PROG_TEST_RUN, for DR
//! and TUN, established and new flows, beside the MAC-swap ceiling and the restore wrapper's own
//! cost. Writes the bench suite's JSON (see bench/README.md).
//!
//! Usage: rvs-xdp-bench [--mode smoke|quick|full] [--repeat N] [--only SCENARIO] [--out FILE]
//! (root). `--only "new flow"` times that scenario of rvs dr and rvs tun alone (e.g. under
//! `perf record`); other scenarios are skipped. `--only` takes "established flow", "new flow"
//! or "new flow, table full".

use rvs_xdp::Balancer;
use rvs_xdp::abi::{self, Config, IcmpBucket, Iface};
use rvs_xdp::bench::{Bench, MAC_SWAP, RESTORE_ONLY, WRAP};
use rvs_xdp::bench_setup::{Results, add_udp_service, set_tables, two_services};
use std::net::Ipv4Addr;

const XDP_DROP: u32 = 1;
const XDP_TX: u32 = 3;
const DIRECT: u32 = abi::RVS_SVC_F_DIRECT as u32;
const NAT: u32 = abi::RVS_SVC_F_NAT as u32;
/// A port's `rvs_vip_ports` bits: DR/TUN table only, both tables.
const PORT_DIRECT: u32 = abi::RVS_PORT_DIRECT as u32;
const BOTH: u32 = (abi::RVS_PORT_DIRECT | abi::RVS_PORT_NAT) as u32;
/// Offset of the IPv4 source address in an Ethernet frame (varied for new flows).
const SRC4_OFFSET: u32 = 14 + 12;
/// Repetitions of a new-flow run: well under the connection table's size, so "new flow" never
/// evicts ("new flow, table full" measures eviction).
const NEW_FLOW_REPEAT: u32 = 50_000;
/// The scenarios timed for rvs dr and rvs tun (what `--only` accepts).
const TIMED: [&str; 3] = ["established flow", "new flow", "new flow, table full"];

/// TCP flags of the frames: a SYN opens a flow (new flow), an ACK is an established flow's.
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

fn frame(dst: Ipv4Addr, flags: u8) -> Vec<u8> {
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
        0x9c, 0x40, 0, 80, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0,
    ];
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xc1, 0x08, 0x00];
    f.extend_from_slice(&ip);
    f.extend_from_slice(&tcp);
    f
}

/// Internet checksum of `data`.
fn csum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 header of `len` bytes in all, `proto`, `src` → `dst`, checksum filled.
fn ip4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> Vec<u8> {
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&len.to_be_bytes());
    ip.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip
}

/// "Fragmentation needed" (MTU 1400) from router 192.168.1.1 to VIP 10.0.0.3, quoting IP + 8
/// bytes of the DR service's reply 10.0.0.3:80 → 192.168.1.10:40001: a flow with no
/// connection entry here (the timed DR flow is from port 40000), so the program sends the
/// error to the real the flow's SYN would get (Maglev) after its per-CPU ICMP limit.
fn icmp_frag_needed() -> Vec<u8> {
    let client = [192, 168, 1, 10];
    let mut quote = ip4([10, 0, 0, 3], client, 6, 40);
    quote.extend_from_slice(&[0, 80, 0x9c, 0x41, 0, 0, 0x03, 0xe8]);
    let mut icmp = vec![3, 4, 0, 0, 0, 0];
    icmp.extend_from_slice(&1400u16.to_be_bytes());
    icmp.extend_from_slice(&quote);
    let c = csum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xfe, 0x08, 0x00];
    f.extend_from_slice(&ip4(
        [192, 168, 1, 1],
        [10, 0, 0, 3],
        1,
        20 + icmp.len() as u16,
    ));
    f.extend_from_slice(&icmp);
    f
}

/// A UDP datagram 192.168.1.10:40000 → 10.0.0.3:53 with a 12-byte payload (no checksum).
fn udp_frame() -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xc1, 0x08, 0x00];
    f.extend_from_slice(&ip4([192, 168, 1, 10], [10, 0, 0, 3], 17, 20 + 8 + 12));
    f.extend_from_slice(&[0x9c, 0x40, 0, 53, 0, 20, 0, 0]);
    f.extend_from_slice(b"query000000\n");
    f
}

/// Service 0: 10.0.0.3:80 DR, service 1: 10.0.0.4:80 TUN, two reals each.
fn setup() -> Result<Balancer, Box<dyn std::error::Error>> {
    let iface = Iface {
        mac: [2, 0, 0, 0, 0, 1],
        mtu: 1500,
        src4: u32::from_ne_bytes([10, 0, 0, 2]),
        src6: [0; 4],
    };
    let methods = [abi::RVS_METHOD_DR as u8, abi::RVS_METHOD_TUN as u8];
    Ok(two_services(
        &iface,
        methods,
        |i| [2, 0, 0, 0, 1, i as u8],
        None,
    )?)
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
    let dr = frame(Ipv4Addr::new(10, 0, 0, 3), SYN);
    let tun = frame(Ipv4Addr::new(10, 0, 0, 4), SYN);
    let dr_ack = frame(Ipv4Addr::new(10, 0, 0, 3), ACK);
    let tun_ack = frame(Ipv4Addr::new(10, 0, 0, 4), ACK);
    let new_repeat = repeat.min(NEW_FLOW_REPEAT);
    let only = arg("--only");
    if let Some(o) = only.as_deref().filter(|o| !TIMED.contains(o)) {
        return Err(format!("--only {o:?}: expected one of {TIMED:?}").into());
    }
    let wanted = |scenario: &str| only.as_deref().is_none_or(|o| o == scenario);
    let forwarded = abi::RVS_OUTCOME_FORWARDED as usize;
    let icmp = icmp_frag_needed();
    let udp = udp_frame();
    let icmp_sent = abi::RVS_OUTCOME_ICMP_NO_CONN_MAGLEV as usize;
    let icmp_limited = abi::RVS_OUTCOME_ICMP_RATE_LIMITED as usize;
    let mut results = Results::default();
    for _ in 0..rounds {
        let t = Bench::load()?.run(MAC_SWAP, &dr, repeat)?;
        check(t.action, XDP_TX, "mac swap")?;
        results.push("ceiling (mac swap)", "any", t.ns);
        for (subject, syn, ack) in [("rvs dr", &dr, &dr_ack), ("rvs tun", &tun, &tun_ack)] {
            // A fresh program and maps every round, so "new flow" starts from an empty table.
            let b = setup()?;
            let mut bench = Bench::load()?;
            bench.set_target(b.program()?)?;
            // The established flow is opened by its SYN, then timed on its ACKs (its entry
            // ESTABLISHED); new flows are SYNs.
            bench.set_frame(syn, 0)?;
            bench.run(WRAP, syn, 1)?;
            let scenarios = [
                (TIMED[0], ack, 0, repeat, 1),
                (TIMED[1], syn, SRC4_OFFSET, new_repeat, 0),
                (
                    TIMED[2],
                    syn,
                    SRC4_OFFSET,
                    new_repeat,
                    abi::RVS_MAX_CONNS as u32 + 1,
                ),
            ];
            for (scenario, f, vary, n, warmup) in scenarios {
                if !wanted(scenario) {
                    continue;
                }
                let run = Run {
                    frame: f,
                    vary,
                    repeat: n,
                    warmup,
                    action: XDP_TX,
                    outcome: forwarded,
                };
                let (w, t) = timed(&mut bench, &b, &run, &format!("{subject} {scenario}"))?;
                if subject == "rvs dr" {
                    results.push("wrapper (restore only)", scenario, w);
                }
                results.push(subject, scenario, t);
            }
        }
        if only.is_some() {
            continue;
        }
        // A UDP flow to a DR service: its first datagram makes the entry, the next are timed.
        let mut b = setup()?;
        add_udp_service(&mut b)?;
        let mut bench = Bench::load()?;
        bench.set_target(b.program()?)?;
        bench.set_frame(&udp, 0)?;
        bench.run(WRAP, &udp, 1)?;
        let run = Run {
            frame: &udp,
            vary: 0,
            repeat,
            warmup: 1,
            action: XDP_TX,
            outcome: forwarded,
        };
        let (_, t) = timed(&mut bench, &b, &run, "rvs dr udp established flow")?;
        results.push("rvs dr", "udp established flow", t);
        // ICMP errors about a DR flow with no entry: the limiter skipped (rate 0), within it
        // (a bucket so big it never empties), and over it (empty, never refilled: dropped).
        let mut b = setup()?;
        let mut bench = Bench::load()?;
        bench.set_target(b.program()?)?;
        for (scenario, limit, action, outcome) in [
            ("icmp no entry, unlimited", None, XDP_TX, icmp_sent),
            (
                "icmp no entry, within limit",
                Some(u32::MAX),
                XDP_TX,
                icmp_sent,
            ),
            ("icmp no entry, over limit", Some(1), XDP_DROP, icmp_limited),
        ] {
            b.set_config(&Config {
                icmp_rate: limit.unwrap_or(0),
                icmp_burst: limit.unwrap_or(1),
                ..Config::default()
            })?;
            if limit == Some(1) {
                b.set_icmp_buckets(&IcmpBucket {
                    tokens: 0,
                    last_ns: u64::MAX,
                })?;
            }
            let run = Run {
                frame: &icmp,
                vary: 0,
                repeat,
                warmup: 0,
                action,
                outcome,
            };
            let (_, t) = timed(&mut bench, &b, &run, &format!("rvs dr {scenario}"))?;
            results.push("rvs dr", scenario, t);
        }
        // DR established on port 80 while its bits say both tables (a service of the port had
        // NAT reals too: an rvs_nat_conns miss first), and after they were narrowed back to
        // DIRECT (what the engine writes once the sweep proved the NAT flows gone).
        for (scenario, steps, bits) in [
            ("established, port mixed", &[DIRECT | NAT][..], BOTH),
            (
                "established, port narrowed",
                &[DIRECT | NAT, DIRECT][..],
                PORT_DIRECT,
            ),
        ] {
            let mut b = setup()?;
            for flags in steps {
                set_tables(&mut b, 0, *flags)?;
            }
            if b.port_tables(80)? != bits {
                return Err(format!("{scenario}: port 80 bits {}", b.port_tables(80)?).into());
            }
            let mut bench = Bench::load()?;
            bench.set_target(b.program()?)?;
            bench.set_frame(&dr, 0)?;
            bench.run(WRAP, &dr, 1)?;
            let run = Run {
                frame: &dr_ack,
                vary: 0,
                repeat,
                warmup: 1,
                action: XDP_TX,
                outcome: forwarded,
            };
            let (_, t) = timed(&mut bench, &b, &run, &format!("rvs dr {scenario}"))?;
            results.push("rvs dr", scenario, t);
        }
    }
    let med = |subject: &str, scenario: &str| results.median(subject, scenario);
    let ceiling = med("ceiling (mac swap)", "any");
    let notes = vec![
        format!("rvs figures are wrapper+program minus the wrapper's own cost measured in the same round (median wrapper: {:.1} ns established, {:.1} ns new flow)", med("wrapper (restore only)", "established flow"), med("wrapper (restore only)", "new flow")),
        "every timed run checked: last action XDP_TX and the forwarded counter grew by exactly the repeat count".to_string(),
        "rvs dr 'udp established flow': a 12-byte UDP datagram of a flow with an entry (made by one datagram before the timed runs) to a DR service on 10.0.0.3:53".to_string(),
        "rvs dr 'icmp no entry, *': an ICMP fragmentation-needed error (v4) about a DR flow with no connection entry, sent by Maglev (outcome icmp_no_conn_maglev, XDP_TX) with the per-CPU limit off (icmp_rate 0: bucket not read), within it (rate and burst 2^32-1: read and written, never empty) and over it (rate 1, bucket empty and never refilled: XDP_DROP, every run counted icmp_rate_limited)".to_string(),
        "rvs dr 'established, port mixed': service 0's port (80) looks up rvs_nat_conns (a miss) before rvs_conns, as a port whose services have NAT/FULLNAT reals too; 'established, port narrowed': its bits written both, then DIRECT again, as the engine does once the sweep proved the port's NAT flows gone (docs/xdp.md); compare with 'established flow' (always DR-only)".to_string(),
        "established flow: opened by one SYN, then timed on its ACKs (entry ESTABLISHED: the program looks the connection up before the service); new flows are SYNs (service looked up first)".to_string(),
        "new flow: the wrapper writes a per-run counter into the IPv4 source address, so every run misses the connection table, hashes, looks up Maglev and inserts an entry; fresh program and maps each round, at most 50,000 runs (table never full)".to_string(),
        "new flow, table full: the same after filling the LRU connection table past its 262,144 entries, so every insert evicts (a SYN flood's steady state)".to_string(),
        format!("goals (issue 5): DR established <= 1.5x ceiling = {:.1} ns; TUN established <= 0.5x Katran 172 ns = 86 ns; new flow <= 0.6x Katran SYN 342 ns = 205 ns", 1.5 * ceiling),
    ];
    for s in &results.series {
        println!(
            "{:<24} {:<18} median {:>7.1} ns  {:?}",
            s.subject,
            s.scenario,
            med(s.subject, s.scenario),
            s.values
        );
    }
    let out = results.to_json(
        "xdp",
        "XDP per-packet cost (BPF_PROG_TEST_RUN, frame restored every run)",
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

/// One timed run: `frame` `repeat` times (with `vary` as in [`Bench::set_frame`]) after
/// `warmup` untimed runs; each must end in `action` and count `outcome` once.
struct Run<'a> {
    frame: &'a [u8],
    vary: u32,
    repeat: u32,
    warmup: u32,
    action: u32,
    outcome: usize,
}

/// Time `run` through the wrapper, checked: the last action is `run.action` and outcome
/// `run.outcome` grew by exactly the repeat count. The wrapper's own cost (restore only) and
/// the program's (wrapper + program minus the wrapper), in ns per packet.
fn timed(
    bench: &mut Bench,
    b: &Balancer,
    run: &Run,
    what: &str,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    bench.set_frame(run.frame, run.vary)?;
    let w = bench.run(RESTORE_ONLY, run.frame, run.repeat)?;
    check(w.action, XDP_TX, "restore only")?;
    if run.warmup > 0 {
        bench.run(WRAP, run.frame, run.warmup)?; // establish the flow / fill the table
    }
    let before = b.outcomes()?[run.outcome];
    let t = bench.run(WRAP, run.frame, run.repeat)?;
    let counted = b.outcomes()?[run.outcome] - before;
    check(t.action, run.action, what)?;
    if counted != u64::from(run.repeat) {
        let name = abi::outcome_name(run.outcome as u32).unwrap_or("?");
        return Err(format!("{what}: {counted} of {} runs counted {name}", run.repeat).into());
    }
    Ok((w.ns, t.ns - w.ns))
}

fn check(action: u32, want: u32, what: &str) -> Result<(), String> {
    if action == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: last run returned action {action}, not {want}"
        ))
    }
}
