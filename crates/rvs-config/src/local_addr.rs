//! FULLNAT local addresses: the source addresses the director uses towards the reals of a
//! FULLNAT service (LVS's "local address", DPVS's `local_address_group`). Both the native file
//! (`[daemon] fullnat_local`, a service's `local_addresses`) and keepalived.conf
//! (`local_address_group` + `laddr_group_name`) are checked here by the same rules, so the two
//! report the same problems.

use rvs_core::model::AddressFamily;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Most local addresses of one family a FULLNAT service can use: `RVS_MAX_LADDRS` of the xdp
/// engine's program (rvsd's tests check the two agree).
pub const MAX_PER_FAMILY: usize = 8;

/// Per-service FULLNAT local addresses (only addresses of the service's family).
pub type ServicePools = BTreeMap<rvs_core::model::ServiceKey, Vec<IpAddr>>;

/// What is wrong with one address of a pool, or with the pool as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("local address {0} appears twice")]
    Duplicate(IpAddr),
    #[error(
        "local address {addr} is not {}: a FULLNAT service uses local addresses of its VIP's family",
        family_name(*family)
    )]
    WrongFamily { addr: IpAddr, family: AddressFamily },
    #[error("{0} cannot be a local address (it must be a unicast address of this director)")]
    NotUnicast(IpAddr),
    #[error(
        "{count} {} local addresses; the xdp engine uses at most {MAX_PER_FAMILY} per family",
        family_name(*family)
    )]
    TooMany { family: AddressFamily, count: usize },
}

/// `IPv4` / `IPv6`, for messages.
pub fn family_name(family: AddressFamily) -> &'static str {
    match family {
        AddressFamily::V4 => "IPv4",
        AddressFamily::V6 => "IPv6",
    }
}

/// Check one address against those before it (`seen`) and the service's family (`None` for
/// the default pool, which serves both families).
pub fn check_addr(
    ip: IpAddr,
    seen: &[IpAddr],
    family: Option<AddressFamily>,
) -> Result<(), PoolError> {
    if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) {
        return Err(PoolError::NotUnicast(ip));
    }
    if let Some(f) = family
        && AddressFamily::of(ip) != f
    {
        return Err(PoolError::WrongFamily {
            addr: ip,
            family: f,
        });
    }
    if seen.contains(&ip) {
        return Err(PoolError::Duplicate(ip));
    }
    Ok(())
}

/// Check the size of a pool: at most [`MAX_PER_FAMILY`] addresses of each family.
pub fn check_counts(addrs: &[IpAddr]) -> Result<(), PoolError> {
    for family in [AddressFamily::V4, AddressFamily::V6] {
        let count = addrs
            .iter()
            .filter(|a| AddressFamily::of(**a) == family)
            .count();
        if count > MAX_PER_FAMILY {
            return Err(PoolError::TooMany { family, count });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_rule_has_its_error() {
        let v4 = Some(AddressFamily::V4);
        assert_eq!(check_addr(ip("10.0.0.5"), &[], v4), Ok(()));
        assert_eq!(
            check_addr(ip("10.0.0.5"), &[ip("10.0.0.5")], v4),
            Err(PoolError::Duplicate(ip("10.0.0.5")))
        );
        assert!(matches!(
            check_addr(ip("fd00::5"), &[], v4),
            Err(PoolError::WrongFamily { .. })
        ));
        assert_eq!(check_addr(ip("fd00::5"), &[], None), Ok(()));
        for bad in ["0.0.0.0", "::", "224.0.0.1", "255.255.255.255", "ff02::1"] {
            assert_eq!(
                check_addr(ip(bad), &[], None),
                Err(PoolError::NotUnicast(ip(bad)))
            );
        }
    }

    #[test]
    fn at_most_the_program_limit_per_family() {
        let mut v: Vec<IpAddr> = (1..=MAX_PER_FAMILY as u8)
            .map(|i| IpAddr::from([10, 0, 0, i]))
            .collect();
        v.push(ip("fd00::1"));
        assert_eq!(check_counts(&v), Ok(()));
        v.push(ip("10.0.0.200"));
        assert_eq!(
            check_counts(&v),
            Err(PoolError::TooMany {
                family: AddressFamily::V4,
                count: MAX_PER_FAMILY + 1
            })
        );
    }
}
