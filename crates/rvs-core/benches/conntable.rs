//! Connection-table and Maglev benchmarks: insert / lookup / packet / expire at 1M entries,
//! memory per entry (capacity math, see `ConnTable::memory_bytes`), Maglev table build and
//! flow lookup. Run: `cargo bench -p rvs-core --bench conntable`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rvs_core::conn::{ConnKey, ConnTable, ConnTimeouts, Direction, NewConn, PacketEvent, TcpFlags};
use rvs_core::maglev::MaglevTable;
use rvs_core::maglev::hash::flow_hash;
use rvs_core::model::Protocol;
use rvs_core::runtime::RealId;
use rvs_core::time::Timestamp;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

const N: usize = 1_000_000;

fn keys(n: usize, v6: bool) -> Vec<ConnKey> {
    let vaddr: SocketAddr = if v6 {
        "[2001:db8::100]:443"
    } else {
        "10.0.0.100:443"
    }
    .parse()
    .unwrap();
    (0..n as u32)
        .map(|i| {
            let x = i.wrapping_mul(2_654_435_761); // spread the addresses
            let ip: IpAddr = if v6 {
                Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(x)).into()
            } else {
                Ipv4Addr::from(0x6400_0000 | (x >> 8)).into()
            };
            let client = SocketAddr::new(ip, 1024 + (i % 60_000) as u16);
            ConnKey {
                protocol: Protocol::Tcp,
                client,
                vaddr,
            }
        })
        .collect()
}

fn filled(keys: &[ConnKey]) -> ConnTable {
    let mut t = ConnTable::new(ConnTimeouts::default(), 0x1234_5678);
    for (i, k) in keys.iter().enumerate() {
        let now = Timestamp::from_millis(i as u64 / 10); // deadlines spread over 100 s
        t.insert(
            *k,
            NewConn {
                service: 0,
                real: RealId(i as u32 % 16),
                persistent: false,
            },
            now,
        )
        .expect("distinct keys");
    }
    t
}

/// CPU time of this thread in ns (`/proc/thread-self/schedstat`, first field), if available.
/// Wall-clock figures on a shared, oversubscribed machine include time spent descheduled; the
/// CPU time does not.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Per-operation CPU time of `ops` operations done by `f`.
fn cpu_per_op(name: &str, ops: usize, f: impl FnOnce()) {
    let (Some(a), wall) = (cpu_ns(), std::time::Instant::now()) else {
        return f();
    };
    f();
    let (b, wall) = (cpu_ns().unwrap_or(a), wall.elapsed());
    let per = (b - a) as f64 / ops as f64;
    let wall = wall.as_nanos() as f64 / ops as f64;
    println!("cpu-time {name}: {per:.0} ns/op CPU ({wall:.0} ns/op wall)");
}

/// Memory per entry and CPU time per operation at 1M entries (printed, not criterion).
fn report() {
    for v6 in [false, true] {
        let t = filled(&keys(N, v6));
        let per = t.memory_bytes() as f64 / t.len() as f64;
        println!(
            "conntable memory: {} entries ({}), {} bytes allocated, {per:.1} bytes per connection",
            t.len(),
            if v6 { "IPv6" } else { "IPv4" },
            t.memory_bytes()
        );
    }
    let ks = keys(N, false);
    let mut t = None;
    cpu_per_op("insert (1M into an empty table)", N, || {
        t = Some(filled(&ks))
    });
    let mut t = t.expect("filled");
    let sample: Vec<ConnKey> = (0..65_536).map(|j| ks[(j * 7919) % N]).collect();
    let missing = keys(N + 65_536, false).split_off(N);
    cpu_per_op("lookup hit at 1M", 10 * sample.len(), || {
        for _ in 0..10 {
            sample
                .iter()
                .for_each(|k| assert!(black_box(t.get(k)).is_some()));
        }
    });
    cpu_per_op("lookup miss at 1M", 10 * missing.len(), || {
        for _ in 0..10 {
            missing
                .iter()
                .for_each(|k| assert!(black_box(t.get(k)).is_none()));
        }
    });
    let ack = PacketEvent::Tcp(TcpFlags::from_bits(0x10));
    cpu_per_op(
        "packet (state + deadline update) at 1M",
        10 * sample.len(),
        || {
            for r in 0..10u64 {
                for k in &sample {
                    black_box(t.packet(k, Direction::Input, ack, Timestamp::from_secs(r)));
                }
            }
        },
    );
    let mut out = Vec::with_capacity(N);
    cpu_per_op("expire (all 1M due)", N, || {
        t.expire(Timestamp::from_secs(100_000), &mut out)
    });
    assert_eq!(out.len(), N);
    let reals: Vec<(SocketAddr, u32)> = (0..100u32)
        .map(|i| {
            (
                SocketAddr::new(Ipv4Addr::from(0x0a00_0000 | i).into(), 80),
                1,
            )
        })
        .collect();
    let mut table = None;
    cpu_per_op("maglev build 65537 slots, 100 reals", 20, || {
        for _ in 0..20 {
            table = MaglevTable::build(black_box(&reals), 65537).ok();
        }
    });
    let table = table.expect("built");
    let vip: SocketAddr = "10.0.0.100:80".parse().unwrap();
    cpu_per_op("maglev flow_hash + lookup", 1_000_000, || {
        for p in 0..1_000_000u32 {
            let src = SocketAddr::new(Ipv4Addr::from(0xc000_0200 | (p >> 16)).into(), p as u16);
            black_box(table.lookup(flow_hash(src, vip, 6)));
        }
    });
}

fn conntable(c: &mut Criterion) {
    report();
    let ks = keys(N, false);
    let mut g = c.benchmark_group("conntable");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("insert_1M", |b| b.iter(|| black_box(filled(&ks)).len()));

    let table = filled(&ks);
    g.bench_function("expire_all_1M", |b| {
        b.iter_batched(
            || table.clone(),
            |mut t| {
                let mut out = Vec::with_capacity(N);
                t.expire(Timestamp::from_secs(10_000), &mut out);
                assert_eq!(out.len(), N);
                out.len()
            },
            BatchSize::LargeInput,
        )
    });

    g.throughput(Throughput::Elements(1));
    // Probe with a 65,536-key sample (4 MB of keys; their entries and buckets are spread over
    // the whole 77 MB table), not the whole 64 MB key array, so the figure is the table's cost.
    let sample: Vec<ConnKey> = (0..65_536).map(|j| ks[(j * 7919) % N]).collect();
    let mut i = 0usize;
    g.bench_function("lookup_at_1M", |b| {
        b.iter(|| {
            i = (i + 1) % sample.len();
            black_box(table.get(&sample[i]))
        })
    });
    let missing = keys(N + 65_536, false).split_off(N);
    g.bench_function("lookup_miss_at_1M", |b| {
        b.iter(|| {
            i = (i + 1) % missing.len();
            black_box(table.get(&missing[i]))
        })
    });
    let mut t = table.clone();
    let ack = PacketEvent::Tcp(TcpFlags::from_bits(0x10));
    let mut now = 0u64;
    g.bench_function("packet_at_1M", |b| {
        b.iter(|| {
            i = (i + 1) % sample.len();
            now += 1;
            black_box(t.packet(
                &sample[i],
                Direction::Input,
                ack,
                Timestamp::from_millis(now),
            ))
        })
    });
    g.finish();
}

fn maglev(c: &mut Criterion) {
    let mut g = c.benchmark_group("maglev");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for n in [10usize, 100, 1000] {
        let reals: Vec<(SocketAddr, u32)> = (0..n as u32)
            .map(|i| {
                (
                    SocketAddr::new(Ipv4Addr::from(0x0a00_0000 | i).into(), 80),
                    1 + i % 3,
                )
            })
            .collect();
        g.bench_function(format!("build_65537_{n}_reals"), |b| {
            b.iter(|| MaglevTable::build(black_box(&reals), 65537).unwrap())
        });
        let table = MaglevTable::build(&reals, 65537).unwrap();
        let vip: SocketAddr = "10.0.0.100:80".parse().unwrap();
        let mut port = 0u16;
        g.bench_function(format!("flow_hash_and_lookup_{n}_reals"), |b| {
            b.iter(|| {
                port = port.wrapping_add(1);
                let src = SocketAddr::new(Ipv4Addr::new(192, 0, 2, 1).into(), port);
                black_box(table.lookup(flow_hash(src, vip, 6)))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, conntable, maglev);
criterion_main!(benches);
