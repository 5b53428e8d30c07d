//! How the engine turns the desired state's changes into map writes: services (their entry,
//! Maglev table as diffs, FULLNAT pool), reals (entry, port, MAC), and their removal; the
//! order of the writes is [`crate::service_writes`]'s. Also the insertion of connection
//! entries made elsewhere (connection sync, adoption of a kept state), which widens their
//! ports' table bits first.

use super::{Inner, io_err};
use crate::abi;
use crate::balancer::Balancer;
use crate::error::XdpError;
use crate::service_writes::{self, Target};
use crate::state::{RealSlot, SvcSlot, config_abi, one_packet_real, vip_key, with_icmp_limit};
use rvs_core::desired::Change;
use rvs_core::engine::{EngineError, Unsupported};
use rvs_core::model::{ForwardMethod, RealServer, ServiceKey, ServiceOptions};
use std::collections::BTreeMap;
use std::net::SocketAddr;

impl Inner {
    /// ActiveConn / InActConn per real slot. Counted afresh from the connection table while
    /// the upkeep's last pass read at most [`crate::sweep::SLICE_BUDGET`] entries (a read of
    /// that many costs ~13 ms); above that, the counts of the last completed pass, so stats
    /// and `-Ln` cost the same at any table size and lag by up to one pass (ceil(entries /
    /// budget) upkeep rounds).
    pub fn live_counts(&self) -> crate::sweep::LiveCounts {
        match &self.live_pass {
            Some((live, entries)) if *entries > crate::sweep::SLICE_BUDGET => live.clone(),
            _ => crate::upkeep::live_counts(self),
        }
    }

    pub(crate) fn balancer(&mut self) -> Result<&mut Balancer, EngineError> {
        self.balancer.as_mut().ok_or_else(|| EngineError::Io {
            context: "xdp engine".into(),
            source: std::io::Error::other("engine was shut down"),
        })
    }

    pub(crate) fn svc(&mut self, key: &ServiceKey) -> Result<&mut SvcSlot, EngineError> {
        self.services
            .get_mut(key)
            .ok_or(EngineError::UnknownService(*key))
    }

    /// Resolve a real's next hop and MAC (unresolved is not an error: upkeep retries).
    pub(crate) fn resolve(&self, slot: &mut RealSlot) {
        let wait = self
            .resolve_until
            .map(|t| t.saturating_duration_since(std::time::Instant::now()))
            .unwrap_or_default();
        // One of the director's own addresses (IPVS's local node): no next hop to resolve.
        if let Ok(route) = self.netlink.route_get(slot.real.addr.ip())
            && route.local
        {
            if !slot.local {
                log::info!(
                    "xdp: real {} is an address of this director: DR/TUN packets to it go to \
                     the director's own stack (local node)",
                    slot.real.addr
                );
            }
            slot.local = true;
            return;
        }
        slot.local = false;
        match self.netlink.resolve(slot.real.addr.ip(), wait) {
            Ok((mac, oif)) => {
                let hop = self
                    .netlink
                    .route_get(slot.real.addr.ip())
                    .map(|r| r.next_hop(slot.real.addr.ip()));
                slot.next_hop = Some((hop.unwrap_or(slot.real.addr.ip()), oif));
                slot.mac = Some(mac);
            }
            // Said once when the real is configured; the upkeep retries quietly.
            Err(e) if self.resolve_until.is_some() => log::warn!(
                "xdp: real {}: {e}; retrying in the background",
                slot.real.addr
            ),
            Err(e) => log::debug!("xdp: real {}: {e}", slot.real.addr),
        }
    }

    pub(crate) fn write_config(&mut self) -> Result<(), EngineError> {
        let cfg = with_icmp_limit(
            config_abi(&self.state_timeouts, &self.timeouts),
            self.icmp_limit,
        );
        self.balancer()?
            .set_config(&cfg)
            .map_err(io_err("timeouts"))
    }

    pub(crate) fn write_service(&mut self, key: &ServiceKey) -> Result<(), EngineError> {
        self.write_with(key, service_writes::write_service)
    }

    /// Run `write` (a [`service_writes`] order) on a copy of service `key`'s slot and keep the
    /// copy when it succeeded.
    pub(crate) fn write_with(
        &mut self,
        key: &ServiceKey,
        write: impl FnOnce(&mut Balancer, &Target, &mut SvcSlot) -> Result<(), XdpError>,
    ) -> Result<(), EngineError> {
        let vk =
            vip_key(key).ok_or_else(|| unsupported(key, "only TCP and UDP address services"))?;
        let mut svc = self.svc(key)?.clone();
        let pool = self.fullnat.for_service(key);
        let target = Target {
            vk,
            key,
            pool: &pool,
            now: super::monotonic_ns(),
        };
        write(self.balancer()?, &target, &mut svc).map_err(io_err(format!("service {key}")))?;
        self.services.insert(*key, svc);
        Ok(())
    }

    /// Narrow the table bits of every service by what sweep pass `pass` proved
    /// ([`crate::narrow`]); a service whose entry cannot be rewritten keeps its bits (and is
    /// tried again after the next pass).
    pub(crate) fn narrow_tables(&mut self, pass: &crate::sweep::PortsSeen) {
        let keys: Vec<ServiceKey> = self
            .services
            .iter()
            .filter(|(_, s)| s.unneeded != Default::default())
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let mut narrowed = false;
            let done = self.write_with(&key, |b, t, svc| {
                narrowed = service_writes::narrow(b, t, svc, pass)?;
                Ok(())
            });
            match done {
                Ok(()) if narrowed => {
                    let tables = self.services.get(&key).map_or(0, |s| s.tables);
                    log::info!("xdp: service {key}: connection tables narrowed to {tables:#x}");
                }
                Ok(()) => {}
                Err(e) => log::warn!("xdp: narrowing the connection tables of {key}: {e}"),
            }
        }
    }

    /// Widen the table bits of the service with slot `index` (if any) by `flags` before
    /// entries of those kinds are inserted from outside the program.
    pub(crate) fn widen_tables(&mut self, index: u32, flags: u32) -> Result<(), EngineError> {
        let Some(key) = self
            .services
            .iter()
            .find(|(_, s)| s.index == index)
            .map(|(k, _)| *k)
        else {
            return Ok(());
        };
        self.write_with(&key, |b, t, svc| service_writes::widen(b, t, svc, flags))
    }

    pub(crate) fn add_service(
        &mut self,
        key: ServiceKey,
        options: ServiceOptions,
    ) -> Result<(), EngineError> {
        if self.services.contains_key(&key) {
            return self.edit_service(key, options);
        }
        let index = self
            .slots
            .service()
            .map_err(io_err(format!("service {key}")))?;
        // A reused index: nothing of the service that had it before.
        self.balancer()?
            .zero_counters(index)
            .map_err(io_err(format!("counters of {key}")))?;
        self.services.insert(
            key,
            SvcSlot {
                index,
                options,
                reals: BTreeMap::new(),
                table: Vec::new(),
                tables: 0,
                unneeded: Default::default(),
            },
        );
        self.write_service(&key)
    }

    pub(crate) fn edit_service(
        &mut self,
        key: ServiceKey,
        options: ServiceOptions,
    ) -> Result<(), EngineError> {
        self.svc(&key)?.options = options;
        self.write_service(&key)?;
        self.write_one_packet_reals(&key)
    }

    /// Rewrite the program's entries of `key`'s reals whose one-packet flag (`-o` on a UDP
    /// service, DR/TUN real) no longer matches the service's options.
    pub(crate) fn write_one_packet_reals(&mut self, key: &ServiceKey) -> Result<(), EngineError> {
        let svc = self.svc(key)?;
        let options = svc.options;
        let mut changed = Vec::new();
        for slot in svc.reals.values_mut() {
            let on = one_packet_real(key, &options, &slot.real);
            if slot.one_packet != on {
                slot.one_packet = on;
                changed.push((slot.index, slot.real.addr, slot.abi()));
            }
        }
        let b = self.balancer()?;
        for (index, addr, value) in changed {
            b.set_real(index, &value)
                .map_err(io_err(format!("real {addr}")))?;
        }
        Ok(())
    }

    pub(crate) fn remove_service(&mut self, key: ServiceKey) -> Result<(), EngineError> {
        let svc = self
            .services
            .remove(&key)
            .ok_or(EngineError::UnknownService(key))?;
        let b = self.balancer()?;
        if let Some(vk) = vip_key(&key) {
            b.remove_service(&vk)
                .map_err(io_err(format!("service {key}")))?;
        }
        let empty = vec![abi::RVS_NO_REAL as u32; abi::RVS_MAGLEV_SIZE as usize];
        b.set_maglev(svc.index, &empty)
            .map_err(io_err(format!("service {key}")))?;
        for r in svc.reals.values() {
            b.set_real(r.index, &abi::Real::default())
                .map_err(io_err(format!("real {}", r.real.addr)))?;
        }
        // The program follows a live entry without looking its service up; templates are
        // keyed by the service's index, which the next service added reuses.
        b.remove_service_conns(svc.index)
            .map_err(io_err(format!("connections of {key}")))?;
        b.remove_service_templates(svc.index)
            .map_err(io_err(format!("persistence templates of {key}")))?;
        for r in svc.reals.values() {
            self.slots.free_real(r.index);
        }
        self.slots.free_service(svc.index);
        Ok(())
    }

    pub(crate) fn put_real(
        &mut self,
        key: ServiceKey,
        real: RealServer,
    ) -> Result<(), EngineError> {
        check_method(&key, real.method)?;
        let existing = self.svc(&key)?.reals.get(&real.addr).cloned();
        let mut slot = match existing {
            Some(mut s) => {
                // IPVS (__ip_vs_update_dest): no upper threshold any more, or a higher one,
                // clears the overload at once; the upkeep re-judges it from live counts.
                let (old, new) = (s.real.upper_threshold, real.upper_threshold);
                if new == 0 || new > old {
                    s.overloaded = false;
                }
                s.real = real;
                s
            }
            None => {
                let index = self
                    .slots
                    .real()
                    .map_err(io_err(format!("real {}", real.addr)))?;
                self.balancer()?
                    .zero_counters(abi::RVS_MAX_SERVICES as u32 + index)
                    .map_err(io_err(format!("counters of real {}", real.addr)))?;
                RealSlot {
                    index,
                    real,
                    next_hop: None,
                    mac: None,
                    overloaded: false,
                    one_packet: false,
                    local: false,
                }
            }
        };
        slot.one_packet = one_packet_real(&key, &self.svc(&key)?.options, &slot.real);
        if slot.mac.is_none() {
            self.resolve(&mut slot);
        }
        let port = crate::nat_engine::real_port(&real);
        self.write_with(&key, |b, t, svc| {
            service_writes::write_real(b, t, svc, slot, port)
        })
    }

    pub(crate) fn remove_real(
        &mut self,
        key: ServiceKey,
        addr: SocketAddr,
    ) -> Result<(), EngineError> {
        let slot = self
            .svc(&key)?
            .reals
            .remove(&addr)
            .ok_or(EngineError::UnknownService(key))?;
        self.write_service(&key)?;
        let b = self.balancer()?;
        b.set_real(slot.index, &abi::Real::default())
            .map_err(io_err(format!("real {addr}")))?;
        // Its clients' templates and its flows' entries would lead to whatever real takes the
        // slot next. (A NAT/FULLNAT flow's reverse entry is keyed by this real's address and
        // port, so no other real matches it; the sweep reclaims it, its flow being gone.)
        b.remove_real_templates(slot.index)
            .map_err(io_err(format!("persistence templates of real {addr}")))?;
        b.remove_real_conns(slot.index)
            .map_err(io_err(format!("connections of real {addr}")))?;
        self.slots.free_real(slot.index);
        Ok(())
    }

    pub(crate) fn apply_one(&mut self, change: &Change) -> Result<(), EngineError> {
        match change {
            Change::SetTimeouts(t) => {
                self.timeouts = *t;
                self.write_config()
            }
            Change::AddService { key, options } => self.add_service(*key, *options),
            Change::EditService { key, options } => self.edit_service(*key, *options),
            Change::RemoveService(key) => self.remove_service(*key),
            Change::AddReal { service, real } | Change::EditReal { service, real } => {
                self.put_real(*service, *real)
            }
            Change::RemoveReal { service, addr } => self.remove_real(*service, *addr),
        }
    }
}

pub(crate) fn unsupported(key: &ServiceKey, why: &str) -> EngineError {
    EngineError::Unsupported {
        service: *key,
        reason: Unsupported(why.to_string()),
    }
}

pub(crate) fn check_method(_key: &ServiceKey, m: ForwardMethod) -> Result<(), EngineError> {
    match m {
        ForwardMethod::Dr | ForwardMethod::Tun | ForwardMethod::Nat | ForwardMethod::FullNat => {
            Ok(())
        }
    }
}

impl Inner {
    /// See [`super::XdpEngine::insert_conns`]; `flags` of the map update (`BPF_NOEXIST`: entries
    /// already there stay).
    pub(crate) fn insert_conn_entries(
        &mut self,
        entries: &[(abi::FlowKey, abi::Conn)],
        flags: u64,
    ) -> Result<(), XdpError> {
        let inner = self;
        let methods: std::collections::HashMap<u32, u8> = inner
            .services
            .values()
            .flat_map(|s| s.reals.values())
            .map(|r| (r.index, r.abi().method))
            .collect();
        let mut kinds: BTreeMap<u32, u32> = BTreeMap::new();
        let entries: Vec<(abi::FlowKey, abi::Conn)> = entries
            .iter()
            .map(|(k, c)| {
                let mut c = *c;
                if c.method == 0 {
                    c.method = methods.get(&c.real).copied().unwrap_or(0);
                }
                *kinds.entry(c.svc).or_default() |= if crate::state::is_nat_method(c.method) {
                    abi::RVS_SVC_F_NAT
                } else {
                    abi::RVS_SVC_F_DIRECT
                } as u32;
                (*k, c)
            })
            .collect();
        for (svc, flags) in kinds {
            inner
                .widen_tables(svc, flags)
                .map_err(|e| XdpError::Invalid(e.to_string()))?;
        }
        let b = inner
            .balancer
            .as_mut()
            .ok_or(XdpError::Missing("balancer"))?;
        let (nat, direct): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|(_, c)| crate::state::is_nat_method(c.method));
        b.insert_entries(crate::balancer::NAT_CONNS, &nat, flags)?;
        b.insert_entries(crate::balancer::CONNS, &direct, flags)
    }
}
