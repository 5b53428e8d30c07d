//! The director's desired state, the validated edits an operator makes to it (ipvsadm's
//! `-A -E -D -a -e -d -C --set`), and the [`diff`] between two states that engines apply.

use crate::model::{
    AddressFamily, ForwardMethod, MAX_WEIGHT, RealServer, ServiceKey, ServiceOptions,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

mod timeouts;
pub use timeouts::{TcpStateTimeouts, Timeouts};

/// One virtual service with its reals, keyed by real address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceConfig {
    /// What identifies the service.
    pub key: ServiceKey,
    /// Scheduler, persistence and other options.
    pub options: ServiceOptions,
    /// Real servers, keyed by address.
    pub reals: BTreeMap<SocketAddr, RealServer>,
}

impl ServiceConfig {
    /// A service with no reals.
    pub fn new(key: ServiceKey, options: ServiceOptions) -> Self {
        ServiceConfig {
            key,
            options,
            reals: BTreeMap::new(),
        }
    }
}

/// Everything the director should be doing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DesiredState {
    /// Virtual services by key (a JSON list of services: JSON map keys must be strings).
    #[serde(with = "services_as_list")]
    pub services: BTreeMap<ServiceKey, ServiceConfig>,
    /// Connection timeouts.
    pub timeouts: Timeouts,
}

/// Serializes the services map as a list (each service carries its key); a list with a key
/// twice does not deserialize.
mod services_as_list {
    use super::{ServiceConfig, ServiceKey};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<ServiceKey, ServiceConfig>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.values())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<ServiceKey, ServiceConfig>, D::Error> {
        let list = Vec::<ServiceConfig>::deserialize(d)?;
        let mut map = BTreeMap::new();
        for svc in list {
            let key = svc.key;
            if map.insert(key, svc).is_some() {
                return Err(D::Error::custom(format!("service {key} is listed twice")));
            }
        }
        Ok(map)
    }
}

/// Why an edit of the desired state was refused. The state is unchanged when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum StateError {
    #[error("service {0} already exists")]
    ServiceExists(ServiceKey),
    #[error("no such service: {0}")]
    NoSuchService(ServiceKey),
    #[error("real server {real} already exists in service {service}")]
    RealExists {
        service: ServiceKey,
        real: SocketAddr,
    },
    #[error("no such real server {real} in service {service}")]
    NoSuchReal {
        service: ServiceKey,
        real: SocketAddr,
    },
    #[error("weight {0} out of range (0..=65535)")]
    WeightOutOfRange(u32),
    #[error("lower threshold {lower} is above upper threshold {upper}")]
    ThresholdOrder { upper: u32, lower: u32 },
    #[error("persistence netmask /{prefix} is too long for {family:?}")]
    BadNetmask { prefix: u8, family: AddressFamily },
    #[error("real server {real} is not of the service's address family ({family:?})")]
    FamilyMismatch {
        real: SocketAddr,
        family: AddressFamily,
    },
    #[error("firewall mark 0 cannot identify a service (marks start at 1)")]
    ZeroFwMark,
    #[error("persistence timeout 0 (persistence needs a timeout of at least 1 s)")]
    ZeroPersistence,
    #[error("service {0} has port 0, which is only allowed with persistence (-p)")]
    PortZeroWithoutPersistence(ServiceKey),
}

/// One change an engine applies. [`diff`] produces them in an order that is safe to apply one by
/// one (removals first, then additions, then edits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// New connection timeouts.
    SetTimeouts(Timeouts),
    /// Remove a real from a service (its existing connections may finish).
    RemoveReal {
        service: ServiceKey,
        addr: SocketAddr,
    },
    /// Remove a service and all its reals.
    RemoveService(ServiceKey),
    /// Add a service (its reals follow as `AddReal`).
    AddService {
        key: ServiceKey,
        options: ServiceOptions,
    },
    /// Change a service's options.
    EditService {
        key: ServiceKey,
        options: ServiceOptions,
    },
    /// Add a real to a service.
    AddReal {
        service: ServiceKey,
        real: RealServer,
    },
    /// Change a real's weight, thresholds, intent or observed health.
    EditReal {
        service: ServiceKey,
        real: RealServer,
    },
}

/// The changes that turn `old` into `new`: only the difference.
pub fn diff(old: &DesiredState, new: &DesiredState) -> Vec<Change> {
    let mut out = Vec::new();
    if old.timeouts != new.timeouts {
        out.push(Change::SetTimeouts(new.timeouts));
    }
    // removals: reals of surviving services, then whole services
    for (key, osvc) in &old.services {
        match new.services.get(key) {
            None => out.push(Change::RemoveService(*key)),
            Some(nsvc) => {
                for addr in osvc.reals.keys().filter(|a| !nsvc.reals.contains_key(a)) {
                    out.push(Change::RemoveReal {
                        service: *key,
                        addr: *addr,
                    });
                }
            }
        }
    }
    for (key, nsvc) in &new.services {
        match old.services.get(key) {
            None => {
                out.push(Change::AddService {
                    key: *key,
                    options: nsvc.options,
                });
                out.extend(nsvc.reals.values().map(|r| Change::AddReal {
                    service: *key,
                    real: *r,
                }));
            }
            Some(osvc) => {
                if osvc.options != nsvc.options {
                    out.push(Change::EditService {
                        key: *key,
                        options: nsvc.options,
                    });
                }
                for (addr, nreal) in &nsvc.reals {
                    match osvc.reals.get(addr) {
                        None => out.push(Change::AddReal {
                            service: *key,
                            real: *nreal,
                        }),
                        Some(oreal) if oreal != nreal => out.push(Change::EditReal {
                            service: *key,
                            real: *nreal,
                        }),
                        Some(_) => {}
                    }
                }
            }
        }
    }
    out
}

impl DesiredState {
    /// Apply one change, validating it first; on error the state is untouched.
    pub fn apply(&mut self, change: &Change) -> Result<(), StateError> {
        match change {
            Change::SetTimeouts(t) => {
                self.timeouts = *t;
                Ok(())
            }
            Change::AddService { key, options } => self.add_service(*key, *options),
            Change::EditService { key, options } => self.edit_service(*key, *options),
            Change::RemoveService(key) => self.remove_service(key).map(|_| ()),
            Change::AddReal { service, real } => self.add_real(service, *real),
            Change::EditReal { service, real } => self.edit_real(service, *real),
            Change::RemoveReal { service, addr } => self.remove_real(service, addr).map(|_| ()),
        }
    }

    /// `-A`: add a service.
    pub fn add_service(
        &mut self,
        key: ServiceKey,
        options: ServiceOptions,
    ) -> Result<(), StateError> {
        if self.services.contains_key(&key) {
            return Err(StateError::ServiceExists(key));
        }
        validate_options(&key, &options)?;
        self.services.insert(key, ServiceConfig::new(key, options));
        Ok(())
    }

    /// `-E`: edit a service's options.
    pub fn edit_service(
        &mut self,
        key: ServiceKey,
        options: ServiceOptions,
    ) -> Result<(), StateError> {
        validate_options(&key, &options)?;
        let svc = self
            .services
            .get_mut(&key)
            .ok_or(StateError::NoSuchService(key))?;
        svc.options = options;
        Ok(())
    }

    /// `-D`: delete a service, returning it.
    pub fn remove_service(&mut self, key: &ServiceKey) -> Result<ServiceConfig, StateError> {
        self.services
            .remove(key)
            .ok_or(StateError::NoSuchService(*key))
    }

    /// `-a`: add a real to a service.
    pub fn add_real(&mut self, service: &ServiceKey, real: RealServer) -> Result<(), StateError> {
        let svc = self
            .services
            .get_mut(service)
            .ok_or(StateError::NoSuchService(*service))?;
        if svc.reals.contains_key(&real.addr) {
            return Err(StateError::RealExists {
                service: *service,
                real: real.addr,
            });
        }
        validate_real(service, &real)?;
        svc.reals.insert(real.addr, real);
        Ok(())
    }

    /// `-e`: edit a real.
    pub fn edit_real(&mut self, service: &ServiceKey, real: RealServer) -> Result<(), StateError> {
        let svc = self
            .services
            .get_mut(service)
            .ok_or(StateError::NoSuchService(*service))?;
        validate_real(service, &real)?;
        let slot = svc
            .reals
            .get_mut(&real.addr)
            .ok_or(StateError::NoSuchReal {
                service: *service,
                real: real.addr,
            })?;
        *slot = real;
        Ok(())
    }

    /// `-d`: remove a real, returning it.
    pub fn remove_real(
        &mut self,
        service: &ServiceKey,
        addr: &SocketAddr,
    ) -> Result<RealServer, StateError> {
        let svc = self
            .services
            .get_mut(service)
            .ok_or(StateError::NoSuchService(*service))?;
        svc.reals.remove(addr).ok_or(StateError::NoSuchReal {
            service: *service,
            real: *addr,
        })
    }

    /// `-C`: remove every service.
    pub fn clear(&mut self) {
        self.services.clear();
    }
}

/// The rules ipvsadm and the kernel apply to a service: a firewall mark of at least 1, a
/// persistence timeout of at least 1 s, port 0 only with persistence, a netmask that fits.
fn validate_options(key: &ServiceKey, options: &ServiceOptions) -> Result<(), StateError> {
    match key {
        ServiceKey::FwMark { mark: 0, .. } => return Err(StateError::ZeroFwMark),
        ServiceKey::Addr { addr, .. } if addr.port() == 0 && options.persistence.is_none() => {
            return Err(StateError::PortZeroWithoutPersistence(*key));
        }
        _ => {}
    }
    if let Some(p) = options.persistence {
        if p.timeout == 0 {
            return Err(StateError::ZeroPersistence);
        }
        let family = key.family();
        if p.prefix_len > family.max_prefix() {
            return Err(StateError::BadNetmask {
                prefix: p.prefix_len,
                family,
            });
        }
    }
    Ok(())
}

fn validate_real(service: &ServiceKey, real: &RealServer) -> Result<(), StateError> {
    if real.weight > MAX_WEIGHT {
        return Err(StateError::WeightOutOfRange(real.weight));
    }
    if real.lower_threshold > real.upper_threshold && real.upper_threshold != 0 {
        return Err(StateError::ThresholdOrder {
            upper: real.upper_threshold,
            lower: real.lower_threshold,
        });
    }
    // TUN may carry IPv4 in IPv6 and back; every other method needs the service's family.
    let family = service.family();
    if real.method != ForwardMethod::Tun && AddressFamily::of(real.addr.ip()) != family {
        return Err(StateError::FamilyMismatch {
            real: real.addr,
            family,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Persistence;

    fn key() -> ServiceKey {
        ServiceKey::tcp("10.0.0.3:80".parse().unwrap())
    }

    fn real(last: u8, w: u32) -> RealServer {
        RealServer::new(
            format!("10.0.0.{last}:80").parse().unwrap(),
            ForwardMethod::Dr,
            w,
        )
    }

    #[test]
    fn edits_validate_and_leave_state_untouched_on_error() {
        let mut s = DesiredState::default();
        s.add_service(key(), ServiceOptions::default()).unwrap();
        assert_eq!(
            s.add_service(key(), ServiceOptions::default()),
            Err(StateError::ServiceExists(key()))
        );
        s.add_real(&key(), real(7, 1)).unwrap();
        let before = s.clone();
        assert!(matches!(
            s.add_real(&key(), real(7, 1)),
            Err(StateError::RealExists { .. })
        ));
        assert_eq!(
            s.add_real(&key(), real(8, 70000)),
            Err(StateError::WeightOutOfRange(70000))
        );
        let v6 = RealServer::new("[2001:db8::1]:80".parse().unwrap(), ForwardMethod::Dr, 1);
        assert!(matches!(
            s.add_real(&key(), v6),
            Err(StateError::FamilyMismatch { .. })
        ));
        let other = ServiceKey::udp("10.0.0.3:53".parse().unwrap());
        assert_eq!(
            s.add_real(&other, real(9, 1)),
            Err(StateError::NoSuchService(other))
        );
        assert_eq!(s, before);
    }

    #[test]
    fn services_follow_ipvsadm_rules() {
        let mut s = DesiredState::default();
        let persist = |timeout| ServiceOptions {
            persistence: Some(Persistence {
                timeout,
                prefix_len: 32,
            }),
            ..ServiceOptions::default()
        };
        let mark0 = ServiceKey::FwMark {
            mark: 0,
            family: AddressFamily::V4,
        };
        assert_eq!(
            s.add_service(mark0, ServiceOptions::default()),
            Err(StateError::ZeroFwMark)
        );
        let any_port = ServiceKey::tcp("10.0.0.3:0".parse().unwrap());
        assert_eq!(
            s.add_service(any_port, ServiceOptions::default()),
            Err(StateError::PortZeroWithoutPersistence(any_port))
        );
        assert_eq!(
            s.add_service(key(), persist(0)),
            Err(StateError::ZeroPersistence)
        );
        assert_eq!(s, DesiredState::default());
        s.add_service(any_port, persist(60)).unwrap();
        s.add_service(key(), persist(1)).unwrap();
        // Taking persistence off a port-0 service would leave it invalid.
        assert_eq!(
            s.edit_service(any_port, ServiceOptions::default()),
            Err(StateError::PortZeroWithoutPersistence(any_port))
        );
    }

    #[test]
    fn diff_is_only_the_difference_and_replays() {
        let mut old = DesiredState::default();
        old.add_service(key(), ServiceOptions::default()).unwrap();
        old.add_real(&key(), real(7, 1)).unwrap();
        old.add_real(&key(), real(8, 1)).unwrap();
        let mut new = old.clone();
        new.remove_real(&key(), &"10.0.0.7:80".parse().unwrap())
            .unwrap();
        new.edit_real(&key(), real(8, 3)).unwrap();
        new.add_real(&key(), real(9, 1)).unwrap();
        let changes = diff(&old, &new);
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert!(matches!(changes[0], Change::RemoveReal { .. }));
        let mut replay = old.clone();
        for c in &changes {
            replay.apply(c).unwrap();
        }
        assert_eq!(replay, new);
        assert!(diff(&new, &new).is_empty());
    }
}
