//! What the per-packet benchmark binaries (`rvs-xdp-bench`, `rvs-xdp-nat-bench`) share: the
//! balancer they time (two services, two reals each) and their results in the bench suite's
//! JSON format (see `bench/README.md`); and filling the connection table for the sweep
//! measurement (`examples/sweep_cost.rs`) and tests.

use crate::abi::{self, Config, Conn, FlowKey, Iface, Real, Service, VipKey, addr_of};
use crate::balancer::Balancer;
use crate::error::XdpError;
use std::net::IpAddr;

/// A balancer with interface 0 = `iface`, IPVS's default timeouts, and two TCP services:
/// index 0 = 10.0.0.3:80 with `methods[0]` and reals 0, 1; index 1 = 10.0.0.4:80 with
/// `methods[1]` and reals 2, 3. The reals are 10.0.1.7 and 10.0.1.8 (MAC from `mac(real)`),
/// each service's Maglev table alternating between its two reals. With `real_port`, every real
/// listens on that port (NAT / FULLNAT port mapping).
pub fn two_services(
    iface: &Iface,
    methods: [u8; 2],
    mac: impl Fn(u32) -> [u8; 6],
    real_port: Option<u16>,
) -> Result<Balancer, XdpError> {
    let mut b = Balancer::load()?;
    b.set_iface(0, iface)?;
    b.set_config(&Config::default())?;
    for (svc, method, base) in [(0u32, methods[0], 0u32), (1, methods[1], 2)] {
        let nat = [abi::RVS_METHOD_NAT, abi::RVS_METHOD_FULLNAT].contains(&u64::from(method));
        let tables = if nat {
            abi::RVS_SVC_F_NAT
        } else {
            abi::RVS_SVC_F_DIRECT
        };
        set_tables(&mut b, svc, tables as u32)?;
        for i in 0..2u32 {
            let (addr, family) = addr_of(IpAddr::from([10, 0, 1, 7 + i as u8]));
            let real = Real {
                addr,
                family,
                method,
                flags: abi::RVS_REAL_F_PRESENT as u8,
                has_mac: 1,
                mac: mac(i),
                pad: [0; 2],
            };
            b.set_real(base + i, &real)?;
            if let Some(port) = real_port {
                b.set_real_port(base + i, port)?;
            }
        }
        let table: Vec<u32> = (0..abi::RVS_MAGLEV_SIZE as u32)
            .map(|s| base + s % 2)
            .collect();
        b.set_maglev(svc, &table)?;
    }
    Ok(b)
}

/// Add to a [`two_services`] balancer service index 2: UDP 10.0.0.3:53 with the reals of
/// service 0 (indexes 0 and 1, alternating in its Maglev table), its port marked DIRECT.
pub fn add_udp_service(b: &mut Balancer) -> Result<(), XdpError> {
    let (addr, family) = addr_of(IpAddr::from([10, 0, 0, 3]));
    let key = VipKey {
        addr,
        port: 53u16.to_be(),
        proto: abi::RVS_PROTO_UDP as u8,
        family,
    };
    let table: Vec<u32> = (0..abi::RVS_MAGLEV_SIZE as u32).map(|s| s % 2).collect();
    b.set_maglev(2, &table)?;
    let value = Service {
        index: 2,
        flags: abi::RVS_SVC_F_DIRECT as u32,
        ..Default::default()
    };
    b.set_service(&key, &value)
}

/// Rewrite service `svc` (0 or 1) of [`two_services`] with table flags `flags`
/// (`RVS_SVC_F_DIRECT` / `RVS_SVC_F_NAT`), from which the loader sets its port's
/// `rvs_vip_ports` bits (both services are on port 80): e.g. both, as a port whose reals
/// mix methods has, then one again, as the engine writes once the port is narrowed.
pub fn set_tables(b: &mut Balancer, svc: u32, flags: u32) -> Result<(), XdpError> {
    let vip = [[10, 0, 0, 3], [10, 0, 0, 4]][svc as usize % 2];
    let (addr, family) = addr_of(IpAddr::from(vip));
    let key = VipKey {
        addr,
        port: 80u16.to_be(),
        proto: 6,
        family,
    };
    let value = Service {
        index: svc,
        flags,
        ..Default::default()
    };
    b.set_service(&key, &value)
}

/// The figures of one subject in one scenario, one per round.
pub struct Series {
    pub subject: &'static str,
    pub scenario: &'static str,
    pub values: Vec<f64>,
}

/// Every series of a benchmark run, in the order first recorded.
#[derive(Default)]
pub struct Results {
    pub series: Vec<Series>,
}

impl Results {
    /// Record one figure (ns per packet).
    pub fn push(&mut self, subject: &'static str, scenario: &'static str, v: f64) {
        match self
            .series
            .iter_mut()
            .find(|s| s.subject == subject && s.scenario == scenario)
        {
            Some(s) => s.values.push(v),
            None => self.series.push(Series {
                subject,
                scenario,
                values: vec![v],
            }),
        }
    }

    /// Median of a series (NaN if it has no figures).
    pub fn median(&self, subject: &str, scenario: &str) -> f64 {
        let mut v = self
            .series
            .iter()
            .find(|s| s.subject == subject && s.scenario == scenario)
            .map(|s| s.values.clone())
            .unwrap_or_default();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    /// The result file of comparison `name` (metric `ns_per_packet`, the MAC-swap ceiling as
    /// reference).
    pub fn to_json(
        &self,
        name: &str,
        title: &str,
        mode: &str,
        rounds: usize,
        repeat: u32,
        notes: &[String],
    ) -> String {
        let s: Vec<String> = self
            .series
            .iter()
            .map(|x| {
                let v: Vec<String> = x.values.iter().map(|v| format!("{v:.1}")).collect();
                format!(
                    "{{\"subject\": \"{}\", \"scenario\": \"{}\", \"metric\": \"ns_per_packet\", \"unit\": \"ns\", \"better\": \"lower\", \"values\": [{}]}}",
                    x.subject,
                    x.scenario,
                    v.join(", ")
                )
            })
            .collect();
        let n: Vec<String> = notes
            .iter()
            .map(|n| format!("\"{}\"", n.replace('"', "'")))
            .collect();
        format!(
            "{{\"comparison\": \"{name}\", \"title\": \"{title}\", \"mode\": \"{mode}\", \"references\": [\"ceiling (mac swap)\"], \"peers\": {{}}, \"params\": {{\"rounds\": {rounds}, \"repeat\": {repeat}}}, \"skipped\": {{}}, \"notes\": [{}],\n \"series\": [\n  {}\n ]}}\n",
            n.join(", "),
            s.join(",\n  ")
        )
    }
}

/// The IPv4 flow of client number `i` (10.0.x.y, source port 1024 + i % 256; distinct for
/// every `i` below 2^24) to `dst`:`dport` over `proto` (an `abi::RVS_PROTO_*`), for filling
/// tables in tests and measurements.
pub fn client_flow(i: u32, dst: [u8; 4], dport: u16, proto: u32) -> FlowKey {
    FlowKey {
        src: [(0x0a00_0000 | (i >> 8)).to_be(), 0, 0, 0],
        dst: [u32::from_be_bytes(dst).to_be(), 0, 0, 0],
        sport: (1024 + (i & 0xff) as u16).to_be(),
        dport: dport.to_be(),
        proto: proto as u8,
        family: crate::abi::RVS_FAMILY_V4 as u8,
        pad: [0; 2],
    }
}

/// ESTABLISHED connection entries of clients `from..from + n` ([`client_flow`], TCP to
/// `dst`:80) for real slot `real` of service slot 0, sent with `method` (an `abi::RVS_METHOD_*`,
/// 0: the real's), fresh now: for filling tables in tests and measurements.
pub fn established_conns(
    from: u32,
    n: u32,
    dst: [u8; 4],
    real: u32,
    method: u32,
) -> Vec<(FlowKey, Conn)> {
    let now = crate::engine::monotonic_ns();
    (from..from + n)
        .map(|i| {
            let c = Conn {
                real,
                svc: 0,
                last_ns: now,
                state: abi::RVS_STATE_ESTABLISHED as u8,
                method: method as u8,
                ..Default::default()
            };
            (client_flow(i, dst, 80, abi::RVS_PROTO_TCP as u32), c)
        })
        .collect()
}

/// Insert `entries` into the DR/TUN table `rvs_conns`, spread evenly over the online CPUs (this
/// thread pinned to each in turn, its affinity restored afterwards), as flows arriving on every
/// receive queue would be (each CPU keeps a small local list of free entries of the table's
/// common LRU).
pub fn fill_conns(b: &mut Balancer, entries: &[(FlowKey, Conn)]) -> Result<(), XdpError> {
    fill_spread(b, entries, Balancer::insert_conn)
}

/// [`fill_conns`] for the NAT/FULLNAT table `rvs_nat_conns`.
pub fn fill_nat_conns(b: &mut Balancer, entries: &[(FlowKey, Conn)]) -> Result<(), XdpError> {
    fill_spread(b, entries, Balancer::insert_nat_conn)
}

fn fill_spread(
    b: &mut Balancer,
    entries: &[(FlowKey, Conn)],
    insert: fn(&mut Balancer, &FlowKey, &Conn) -> Result<(), XdpError>,
) -> Result<(), XdpError> {
    let cpus = aya::util::online_cpus().map_err(|(_, e)| XdpError::Invalid(e.to_string()))?;
    let saved = affinity()?;
    let share = entries.len().div_ceil(cpus.len().max(1)).max(1);
    let mut result = Ok(());
    for (cpu, chunk) in cpus.iter().zip(entries.chunks(share)) {
        if *cpu as usize >= libc::CPU_SETSIZE as usize {
            continue;
        }
        pin_thread(*cpu as usize)?;
        result = chunk.iter().try_for_each(|(k, c)| insert(b, k, c));
        if result.is_err() {
            break;
        }
    }
    set_affinity(&saved)?;
    result
}

/// Pins the calling thread to CPU `cpu` (below `CPU_SETSIZE`).
pub fn pin_thread(cpu: usize) -> Result<(), XdpError> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(XdpError::Invalid(format!(
            "CPU {cpu} is beyond CPU_SETSIZE"
        )));
    }
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes a bit within it (the index
    // is below CPU_SETSIZE, checked).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    set_affinity(&set)
}

fn affinity() -> Result<libc::cpu_set_t, XdpError> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Err(XdpError::Invalid(format!(
            "sched_getaffinity: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(set)
}

fn set_affinity(set: &libc::cpu_set_t) -> Result<(), XdpError> {
    // SAFETY: sched_setaffinity reads the set of the size passed.
    let r = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), set) };
    if r != 0 {
        return Err(XdpError::Invalid(format!(
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}
