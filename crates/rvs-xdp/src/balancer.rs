//! The loaded balancer program (`rvs_lb`) and typed access to its maps: the only code that
//! touches them. The [`crate::engine::XdpEngine`] decides what goes in; this module only puts
//! it there, reads counters back, runs frames through `BPF_PROG_TEST_RUN`, and attaches.
//! Whole hash maps are read (and bulk-deleted from) with the kernel's batch commands
//! (`crate::whole_map`), entry by entry on kernels without them.

use crate::abi::{
    self, Config, Conn, Counters, FlowKey, IcmpBucket, Iface, Persist, PersistKey, Real, Service,
    VipKey,
};
use crate::error::{XdpError, map_err};
use crate::whole_map;
use aya::Ebpf;
use aya::maps::{Array, HashMap, MapData, PerCpuArray, PerCpuValues};
use aya::programs::Xdp;

const PROG: &str = "rvs_lb";
/// DR/TUN flows (an LRU).
pub(crate) const CONNS: &str = "rvs_conns";
/// NAT/FULLNAT flows (a plain hash: never evicted).
pub(crate) const NAT_CONNS: &str = "rvs_nat_conns";

/// How the program ended up attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// Driver (native) mode.
    Native,
    /// Generic (SKB) mode: native was refused.
    Generic,
}

/// The `rvs_vip_ports` bits of a service with flags `flags`: `RVS_PORT_NAT` when it has
/// NAT/FULLNAT reals, `RVS_PORT_DIRECT` when it has DR/TUN reals or no NAT/FULLNAT real.
fn port_tables(flags: u32) -> u64 {
    let nat = flags & abi::RVS_SVC_F_NAT as u32 != 0;
    let direct = flags & abi::RVS_SVC_F_DIRECT as u32 != 0 || !nat;
    (if direct { abi::RVS_PORT_DIRECT } else { 0 } | if nat { abi::RVS_PORT_NAT } else { 0 })
}

/// The balancer program loaded into the kernel, with its maps.
pub struct Balancer {
    ebpf: Ebpf,
    /// Whole-map reads and bulk deletes with the batch commands (else entry by entry).
    batch_ops: bool,
    /// The program's links, by interface (so they can be pinned: `crate::keep`).
    pub(crate) links: Vec<(String, aya::programs::xdp::XdpLinkId)>,
}

impl Balancer {
    /// Load and verify the embedded program (not attached anywhere yet). Needs CAP_BPF /
    /// root; Linux ≥ 5.18 (bpf_xdp_store_bytes is only used by the bench object).
    pub fn load() -> Result<Balancer, XdpError> {
        Balancer::load_sized(abi::RVS_MAX_NAT_CONNS as u32)
    }

    /// [`Balancer::load`] with room for `nat_conns` NAT/FULLNAT flows (the size of their
    /// connection table `rvs_nat_conns` and of the reverse table `rvs_nat_rev`; a full table is
    /// the outcome `table_full`). DR/TUN flows have `rvs_conns` (`RVS_MAX_CONNS`), so they
    /// never evict NAT/FULLNAT flows.
    pub fn load_sized(nat_conns: u32) -> Result<Balancer, XdpError> {
        Balancer::load_tables(abi::RVS_MAX_CONNS as u32, nat_conns)
    }

    /// [`Balancer::load_sized`] with `conns` entries in the DR/TUN table `rvs_conns` (an LRU:
    /// the least recently used DR/TUN flow goes when it is full). Small tables for tests.
    pub fn load_tables(conns: u32, nat_conns: u32) -> Result<Balancer, XdpError> {
        let mut ebpf = aya::EbpfLoader::new()
            .map_max_entries("rvs_nat_rev", nat_conns.max(1))
            .map_max_entries(NAT_CONNS, nat_conns.max(1))
            .map_max_entries(CONNS, conns.max(1))
            .load(crate::programs::RVS_LB)?;
        crate::programs::load_xdp(&mut ebpf, PROG)?;
        Ok(Balancer {
            ebpf,
            batch_ops: true,
            links: Vec::new(),
        })
    }

    pub(crate) fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }

    pub(crate) fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    pub(crate) fn prog_mut(&mut self) -> Result<&mut Xdp, XdpError> {
        crate::programs::xdp_mut(&mut self.ebpf, PROG)
    }

    fn prog(&self) -> Result<&Xdp, XdpError> {
        crate::programs::xdp(&self.ebpf, PROG)
    }

    /// The program itself (e.g. to put its fd in a benchmark's program array).
    pub fn program(&self) -> Result<&Xdp, XdpError> {
        self.prog()
    }

    fn hash<K: aya::Pod, V: aya::Pod>(
        &mut self,
        name: &'static str,
    ) -> Result<HashMap<&mut MapData, K, V>, XdpError> {
        HashMap::try_from(self.ebpf.map_mut(name).ok_or(XdpError::Missing(name))?)
            .map_err(map_err(name))
    }

    /// Read whole maps and delete many entries with `BPF_MAP_LOOKUP_BATCH` /
    /// `BPF_MAP_DELETE_BATCH` (`true`, the default; kernels without them are read entry by
    /// entry anyway) or always entry by entry (`false`: what kernels before 5.6 get; for
    /// comparisons and tests of that path).
    pub fn set_batch_ops(&mut self, on: bool) {
        self.batch_ops = on;
    }

    /// Every entry of hash map `name`.
    pub(crate) fn read_hash<K: aya::Pod, V: aya::Pod>(
        &self,
        name: &'static str,
    ) -> Result<Vec<(K, V)>, XdpError> {
        let map = self.ebpf.map(name).ok_or(XdpError::Missing(name))?;
        whole_map::read(map, name, self.batch_ops)
    }

    /// Delete `keys` from hash map `name` (keys already gone are skipped); how many went.
    pub(crate) fn delete_keys<K: aya::Pod, V: aya::Pod>(
        &mut self,
        name: &'static str,
        keys: &[K],
    ) -> Result<usize, XdpError> {
        let map = self.ebpf.map_mut(name).ok_or(XdpError::Missing(name))?;
        whole_map::delete::<K, V>(map, name, self.batch_ops, keys)
    }

    /// Insert `entries` into hash map `name` with update flags `flags`; with `BPF_NOEXIST` (1)
    /// keys already there keep their value.
    pub(crate) fn insert_entries<K: aya::Pod, V: aya::Pod>(
        &mut self,
        name: &'static str,
        entries: &[(K, V)],
        flags: u64,
    ) -> Result<(), XdpError> {
        let mut h = self.hash::<K, V>(name)?;
        for (k, v) in entries {
            match h.insert(k, v, flags) {
                Ok(()) => {}
                Err(aya::maps::MapError::SyscallError(e))
                    if flags == 1 && e.io_error.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(map_err(name)(e)),
            }
        }
        Ok(())
    }

    /// Whether whole maps are read with the batch commands ([`Balancer::set_batch_ops`]).
    pub(crate) fn batch_ops(&self) -> bool {
        self.batch_ops
    }

    fn array<V: aya::Pod>(
        &mut self,
        name: &'static str,
    ) -> Result<Array<&mut MapData, V>, XdpError> {
        Array::try_from(self.ebpf.map_mut(name).ok_or(XdpError::Missing(name))?)
            .map_err(map_err(name))
    }

    /// Connection timeouts.
    pub fn set_config(&mut self, cfg: &Config) -> Result<(), XdpError> {
        self.array::<Config>("rvs_config")?
            .set(0, cfg, 0)
            .map_err(map_err("rvs_config"))
    }

    /// Set every CPU's token bucket of untracked ICMP errors to `bucket` (tests: e.g. empty
    /// with `last_ns` a second ago, or full with `last_ns` far ahead so nothing refills).
    pub fn set_icmp_buckets(&mut self, bucket: &IcmpBucket) -> Result<(), XdpError> {
        const NAME: &str = "rvs_icmp_bucket";
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| XdpError::Invalid(e.to_string()))?;
        let values = PerCpuValues::try_from(vec![*bucket; cpus])
            .map_err(|e| XdpError::Invalid(e.to_string()))?;
        let mut map: PerCpuArray<&mut MapData, IcmpBucket> =
            PerCpuArray::try_from(self.ebpf.map_mut(NAME).ok_or(XdpError::Missing(NAME))?)
                .map_err(map_err(NAME))?;
        map.set(0, values, 0).map_err(map_err(NAME))
    }

    /// Every CPU's token bucket of untracked ICMP errors.
    pub fn icmp_buckets(&self) -> Result<Vec<IcmpBucket>, XdpError> {
        const NAME: &str = "rvs_icmp_bucket";
        let map: PerCpuArray<&MapData, IcmpBucket> =
            PerCpuArray::try_from(self.ebpf.map(NAME).ok_or(XdpError::Missing(NAME))?)
                .map_err(map_err(NAME))?;
        Ok(map
            .get(&0, 0)
            .map_err(map_err(NAME))?
            .iter()
            .copied()
            .collect())
    }

    /// Our MAC, MTU and tunnel source addresses on `ifindex` (0 = any interface).
    /// An ifindex at or above `RVS_MAX_IFACES` is refused (the default slot 0 covers it).
    pub fn set_iface(&mut self, ifindex: u32, iface: &Iface) -> Result<(), XdpError> {
        if u64::from(ifindex) >= abi::RVS_MAX_IFACES {
            return Err(XdpError::Invalid(format!(
                "ifindex {ifindex} at or above {}",
                abi::RVS_MAX_IFACES
            )));
        }
        self.array::<Iface>("rvs_ifaces")?
            .set(ifindex, iface, 0)
            .map_err(map_err("rvs_ifaces"))
    }

    /// Add or replace a service (and mark its port in `rvs_vip_ports`).
    pub fn set_service(&mut self, key: &VipKey, svc: &Service) -> Result<(), XdpError> {
        self.hash::<VipKey, Service>("rvs_services")?
            .insert(key, svc, 0)
            .map_err(map_err("rvs_services"))?;
        self.sync_vip_port(key.port)
    }

    /// Remove a service (missing is fine); its port stays marked while another service has it.
    pub fn remove_service(&mut self, key: &VipKey) -> Result<(), XdpError> {
        match self.hash::<VipKey, Service>("rvs_services")?.remove(key) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(e) => return Err(map_err("rvs_services")(e)),
        }
        self.sync_vip_port(key.port)
    }

    /// Rewrite the `rvs_vip_ports` word of `port` (network order) from the services present:
    /// for each port, whether its flows may be in `rvs_conns` (`RVS_PORT_DIRECT`: a service
    /// with DR/TUN reals, or with no NAT/FULLNAT real) and in `rvs_nat_conns` (`RVS_PORT_NAT`).
    fn sync_vip_port(&mut self, port: u16) -> Result<(), XdpError> {
        let word = u32::from(port >> 5);
        let mut bits = 0u64;
        let services = self.hash::<VipKey, Service>("rvs_services")?;
        for (k, s) in services.iter().filter_map(Result::ok) {
            if k.port >> 5 == port >> 5 {
                bits |= port_tables(s.flags) << ((k.port & 31) * 2);
            }
        }
        self.array::<u64>("rvs_vip_ports")?
            .set(word, bits, 0)
            .map_err(map_err("rvs_vip_ports"))
    }

    /// The `rvs_vip_ports` bits of `port` (host order): `RVS_PORT_DIRECT` / `RVS_PORT_NAT`,
    /// 0 when no service has it.
    pub fn port_tables(&self, port: u16) -> Result<u32, XdpError> {
        const NAME: &str = "rvs_vip_ports";
        let map: Array<&MapData, u64> =
            Array::try_from(self.ebpf.map(NAME).ok_or(XdpError::Missing(NAME))?)
                .map_err(map_err(NAME))?;
        let port = port.to_be();
        let word = map.get(&u32::from(port >> 5), 0).map_err(map_err(NAME))?;
        Ok(((word >> ((port & 31) * 2)) & (abi::RVS_PORT_DIRECT | abi::RVS_PORT_NAT)) as u32)
    }

    /// Remove the connection entries of service slot `index` (when the service goes: the
    /// program follows a live entry without looking the service up). Returns how many.
    pub fn remove_service_conns(&mut self, index: u32) -> Result<usize, XdpError> {
        self.remove_conns(|c| c.svc == index)
    }

    /// Remove the connection entries (both tables) naming real slot `index` (when the real
    /// goes: the program follows a live entry to whatever real holds its slot, and the slot is
    /// reused by the next real added, maybe of another service). Returns how many.
    pub fn remove_real_conns(&mut self, index: u32) -> Result<usize, XdpError> {
        self.remove_conns(|c| c.real == index)
    }

    fn remove_conns(&mut self, doomed: impl Fn(&Conn) -> bool) -> Result<usize, XdpError> {
        let mut n = 0;
        for table in [CONNS, NAT_CONNS] {
            let keys: Vec<FlowKey> = self
                .read_hash::<FlowKey, Conn>(table)?
                .into_iter()
                .filter(|(_, c)| doomed(c))
                .map(|(k, _)| k)
                .collect();
            self.delete_keys::<FlowKey, Conn>(table, &keys)?;
            n += keys.len();
        }
        Ok(n)
    }

    /// Remove the persistence templates of service `index` (when the service goes: its index
    /// is reused by the next service added). Returns how many.
    pub fn remove_service_templates(&mut self, index: u32) -> Result<usize, XdpError> {
        self.remove_templates(|k, _| k.svc == index)
    }

    /// Remove the persistence templates naming real slot `index` (when the real goes: its
    /// slot is reused later, maybe by another service's real). Returns how many.
    pub fn remove_real_templates(&mut self, index: u32) -> Result<usize, XdpError> {
        self.remove_templates(|_, v| v.real == index)
    }

    fn remove_templates(
        &mut self,
        doomed: impl Fn(&PersistKey, &Persist) -> bool,
    ) -> Result<usize, XdpError> {
        let keys: Vec<PersistKey> = self
            .persist_templates()?
            .into_iter()
            .filter(|(k, v)| doomed(k, v))
            .map(|(k, _)| k)
            .collect();
        self.delete_keys::<PersistKey, Persist>("rvs_persist", &keys)?;
        Ok(keys.len())
    }

    /// Write real slot `index`.
    pub fn set_real(&mut self, index: u32, real: &Real) -> Result<(), XdpError> {
        self.array::<Real>("rvs_reals")?
            .set(index, real, 0)
            .map_err(map_err("rvs_reals"))
    }

    /// Write the Maglev table of service `index` (`RVS_MAGLEV_SIZE` real indexes).
    pub fn set_maglev(&mut self, index: u32, table: &[u32]) -> Result<(), XdpError> {
        let size = abi::RVS_MAGLEV_SIZE as u32;
        if table.len() != size as usize || u64::from(index) >= abi::RVS_MAX_SERVICES {
            return Err(XdpError::Invalid(format!(
                "bad Maglev table for service {index}"
            )));
        }
        let mut map = self.array::<u32>("rvs_maglev")?;
        for (slot, real) in table.iter().enumerate() {
            map.set(index * size + slot as u32, real, 0)
                .map_err(map_err("rvs_maglev"))?;
        }
        Ok(())
    }

    /// Write some slots `(slot, real index)` of service `index`'s Maglev table.
    pub fn set_maglev_slots(&mut self, index: u32, slots: &[(u32, u32)]) -> Result<(), XdpError> {
        let size = abi::RVS_MAGLEV_SIZE as u32;
        let mut map = self.array::<u32>("rvs_maglev")?;
        for (slot, real) in slots {
            if *slot >= size {
                return Err(XdpError::Invalid(format!(
                    "Maglev slot {slot} out of range"
                )));
            }
            map.set(index * size + slot, real, 0)
                .map_err(map_err("rvs_maglev"))?;
        }
        Ok(())
    }

    /// Persistence templates.
    pub fn persist_templates(&self) -> Result<Vec<(PersistKey, Persist)>, XdpError> {
        self.read_hash("rvs_persist")
    }

    /// Zero all outcome counters.
    pub fn zero_outcomes(&mut self) -> Result<(), XdpError> {
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| XdpError::Invalid(e.to_string()))?;
        let mut map: PerCpuArray<&mut MapData, u64> = PerCpuArray::try_from(
            self.ebpf
                .map_mut("rvs_outcomes")
                .ok_or(XdpError::Missing("rvs_outcomes"))?,
        )
        .map_err(map_err("rvs_outcomes"))?;
        for i in 0..abi::RVS_OUTCOME_MAX {
            let zeros = PerCpuValues::try_from(vec![0u64; cpus])
                .map_err(|e| XdpError::Invalid(e.to_string()))?;
            map.set(i, zeros, 0).map_err(map_err("rvs_outcomes"))?;
        }
        Ok(())
    }

    /// Tracked connections: DR/TUN flows (`rvs_conns`), then NAT/FULLNAT flows
    /// (`rvs_nat_conns`).
    pub fn conns(&self) -> Result<Vec<(FlowKey, Conn)>, XdpError> {
        let mut all = self.read_hash(CONNS)?;
        all.extend(self.read_hash::<FlowKey, Conn>(NAT_CONNS)?);
        Ok(all)
    }

    /// NAT/FULLNAT connections only (`rvs_nat_conns`).
    pub fn nat_conns(&self) -> Result<Vec<(FlowKey, Conn)>, XdpError> {
        self.read_hash(NAT_CONNS)
    }

    /// Insert a DR/TUN connection entry (tests; connection sync).
    pub fn insert_conn(&mut self, key: &FlowKey, conn: &Conn) -> Result<(), XdpError> {
        self.hash::<FlowKey, Conn>(CONNS)?
            .insert(key, conn, 0)
            .map_err(map_err(CONNS))
    }

    /// Insert a NAT/FULLNAT connection entry (tests; connection sync).
    pub fn insert_nat_conn(&mut self, key: &FlowKey, conn: &Conn) -> Result<(), XdpError> {
        self.hash::<FlowKey, Conn>(NAT_CONNS)?
            .insert(key, conn, 0)
            .map_err(map_err(NAT_CONNS))
    }

    /// Remove a connection entry from both tables, if present (tests; connection sync).
    pub fn remove_conn(&mut self, key: &FlowKey) -> Result<(), XdpError> {
        for table in [CONNS, NAT_CONNS] {
            let mut h = self.hash::<FlowKey, Conn>(table)?;
            // Only where it is: aya reports a missing key as a failed syscall.
            if h.get(key, 0).is_ok() {
                match h.remove(key) {
                    Err(aya::maps::MapError::KeyNotFound) | Ok(()) => {}
                    Err(e) => return Err(map_err(table)(e)),
                }
            }
        }
        Ok(())
    }

    /// Counters of slot `slot` (services first, then `RVS_MAX_SERVICES + real`), all CPUs.
    pub fn counters(&self, slot: u32) -> Result<Counters, XdpError> {
        let map: PerCpuArray<&MapData, Counters> = PerCpuArray::try_from(
            self.ebpf
                .map("rvs_stats")
                .ok_or(XdpError::Missing("rvs_stats"))?,
        )
        .map_err(map_err("rvs_stats"))?;
        let per_cpu = map.get(&slot, 0).map_err(map_err("rvs_stats"))?;
        Ok(per_cpu.iter().fold(Counters::default(), |a, c| Counters {
            conns: a.conns + c.conns,
            packets: a.packets + c.packets,
            bytes: a.bytes + c.bytes,
            out_packets: a.out_packets + c.out_packets,
            out_bytes: a.out_bytes + c.out_bytes,
        }))
    }

    /// Reset counter slot `slot`.
    pub fn zero_counters(&mut self, slot: u32) -> Result<(), XdpError> {
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| XdpError::Invalid(e.to_string()))?;
        let zeros = PerCpuValues::try_from(vec![Counters::default(); cpus])
            .map_err(|e| XdpError::Invalid(e.to_string()))?;
        let mut map: PerCpuArray<&mut MapData, Counters> = PerCpuArray::try_from(
            self.ebpf
                .map_mut("rvs_stats")
                .ok_or(XdpError::Missing("rvs_stats"))?,
        )
        .map_err(map_err("rvs_stats"))?;
        map.set(slot, zeros, 0).map_err(map_err("rvs_stats"))
    }

    /// Outcome counters summed over CPUs, indexed by `rvs_outcome`.
    pub fn outcomes(&self) -> Result<Vec<u64>, XdpError> {
        let map: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(
            self.ebpf
                .map("rvs_outcomes")
                .ok_or(XdpError::Missing("rvs_outcomes"))?,
        )
        .map_err(map_err("rvs_outcomes"))?;
        (0..abi::RVS_OUTCOME_MAX)
            .map(|i| {
                Ok(map
                    .get(&i, 0)
                    .map_err(map_err("rvs_outcomes"))?
                    .iter()
                    .sum())
            })
            .collect()
    }

    /// Run one frame through the program (`BPF_PROG_TEST_RUN`): the XDP action and the frame
    /// as the program left it.
    pub fn test_run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), XdpError> {
        crate::programs::test_run(&self.ebpf, PROG, frame, 512)
    }

    /// Attach to `interface` in generic (SKB) mode only.
    pub fn attach_generic(&mut self, interface: &str) -> Result<AttachMode, XdpError> {
        self.attach_mode(interface, true)
    }

    /// Attach to `interface` in native mode, falling back to generic mode.
    pub fn attach(&mut self, interface: &str) -> Result<AttachMode, XdpError> {
        self.attach_mode(interface, false)
    }

    /// Attach to `interface` again after it was re-created (same name, new ifindex): its old
    /// link went with the old device, so it is dropped (detaching it fails quietly), then the
    /// program is attached as by [`Balancer::attach`] (or generic only).
    pub fn reattach(
        &mut self,
        interface: &str,
        generic_only: bool,
    ) -> Result<AttachMode, XdpError> {
        let prog: &mut Xdp = crate::programs::xdp_mut(&mut self.ebpf, PROG)?;
        let (stale, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.links)
            .into_iter()
            .partition(|(n, _)| n == interface);
        self.links = kept;
        for (_, id) in stale {
            let _ = prog.detach(id);
        }
        self.attach_mode(interface, generic_only)
    }

    fn attach_mode(&mut self, interface: &str, generic_only: bool) -> Result<AttachMode, XdpError> {
        let prog: &mut Xdp = crate::programs::xdp_mut(&mut self.ebpf, PROG)?;
        let (mode, id) = crate::programs::attach(prog, interface, generic_only)?;
        self.links.push((interface.to_string(), id));
        Ok(mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_entries(b: &Balancer, name: &str) -> u32 {
        match b.ebpf().map(name) {
            Some(aya::maps::Map::LruHashMap(d)) | Some(aya::maps::Map::HashMap(d)) => {
                d.info().expect("map info").max_entries()
            }
            other => panic!("{name}: {other:?}"),
        }
    }

    /// `nat_conns` sizes the NAT/FULLNAT tables (`rvs_nat_conns`, `rvs_nat_rev`) and only
    /// those: the DR/TUN table keeps its own size.
    #[test]
    fn the_nat_size_sizes_the_nat_tables_only() {
        if !rvs_testbed::is_root() {
            eprintln!("skipping: loading the balancer needs root");
            return;
        }
        let b = Balancer::load_sized(300_000).expect("load");
        assert_eq!(max_entries(&b, "rvs_nat_rev"), 300_000);
        assert_eq!(max_entries(&b, NAT_CONNS), 300_000);
        assert_eq!(max_entries(&b, CONNS), abi::RVS_MAX_CONNS as u32);
        let b = Balancer::load_tables(64, 1_000).expect("load");
        assert_eq!(max_entries(&b, "rvs_nat_rev"), 1_000);
        assert_eq!(max_entries(&b, NAT_CONNS), 1_000);
        assert_eq!(max_entries(&b, CONNS), 64);
    }

    #[test]
    fn port_bits_say_which_tables_a_service_uses() {
        let (d, n) = (abi::RVS_SVC_F_DIRECT as u32, abi::RVS_SVC_F_NAT as u32);
        assert_eq!(port_tables(0), abi::RVS_PORT_DIRECT, "no reals yet");
        assert_eq!(port_tables(d), abi::RVS_PORT_DIRECT);
        assert_eq!(port_tables(n), abi::RVS_PORT_NAT);
        assert_eq!(port_tables(d | n), abi::RVS_PORT_DIRECT | abi::RVS_PORT_NAT);
    }
}
