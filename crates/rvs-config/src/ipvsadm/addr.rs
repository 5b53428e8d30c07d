//! Values of ipvsadm options: addresses (`10.0.0.3:80`, `[2001:db8::1]:80`, a bare address),
//! netmasks (`255.255.255.0` or a prefix length), numbers in range, scheduler flags.

use rvs_core::model::{AddressFamily, SchedFlags, SchedulerKind};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Parse `ADDR:PORT`, `[V6]:PORT`, `ADDR` or `[V6]` (a missing port is 0).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa);
    }
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 0));
    }
    Err(format!(
        "bad address '{s}': expected IP:PORT (e.g. 10.0.0.3:80 or [2001:db8::1]:80); host and \
         service names are not resolved"
    ))
}

/// A netmask for `-M`: dotted IPv4 mask (contiguous) or a prefix length.
pub fn parse_netmask(s: &str, family: AddressFamily) -> Result<u8, String> {
    let max = family.max_prefix();
    let bad = || {
        format!(
            "bad netmask '{s}': expected a contiguous mask like 255.255.255.0 or a prefix length 0..{max}"
        )
    };
    let prefix = if let Ok(mask) = s.parse::<Ipv4Addr>() {
        if family != AddressFamily::V4 {
            return Err(format!(
                "bad netmask '{s}': an IPv6 service takes a prefix length 0..128"
            ));
        }
        let bits = u32::from(mask);
        if bits.leading_ones() + bits.trailing_zeros() != 32 {
            return Err(bad());
        }
        bits.leading_ones() as u8
    } else {
        s.trim_start_matches('/').parse::<u8>().map_err(|_| bad())?
    };
    if prefix > max {
        return Err(bad());
    }
    Ok(prefix)
}

/// The dotted form of an IPv4 prefix length (`24` → `255.255.255.0`).
pub fn dotted_mask(prefix: u8) -> Ipv4Addr {
    let bits = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    Ipv4Addr::from(bits)
}

/// An unsigned number within `min..=max`, named `what` in messages.
pub fn parse_u32(s: &str, what: &str, min: u32, max: u32) -> Result<u32, String> {
    let n: u64 = s
        .parse()
        .map_err(|_| format!("bad {what} '{s}': expected an integer {min}..{max}"))?;
    if n < u64::from(min) || n > u64::from(max) {
        return Err(format!("{what} {n} out of range ({min}..{max})"));
    }
    Ok(n as u32)
}

/// A comma-separated scheduler flag list. `flag-1`/`flag-2` mean the fallback/port flag of the
/// service's scheduler (`mh-*` for mh, `sh-*` otherwise), as in the kernel where they share bits.
pub fn parse_sched_flags(s: &str, scheduler: SchedulerKind) -> Result<SchedFlags, String> {
    let mut f = SchedFlags::default();
    let mh = scheduler == SchedulerKind::Mh;
    for name in s.split(',') {
        match name {
            "sh-fallback" => f.sh_fallback = true,
            "sh-port" => f.sh_port = true,
            "mh-fallback" => f.mh_fallback = true,
            "mh-port" => f.mh_port = true,
            "flag-1" if mh => f.mh_fallback = true,
            "flag-1" => f.sh_fallback = true,
            "flag-2" if mh => f.mh_port = true,
            "flag-2" => f.sh_port = true,
            "flag-3" => {}
            _ => {
                return Err(format!(
                    "unknown scheduler flag '{name}' (expected sh-fallback, sh-port, mh-fallback, mh-port)"
                ));
            }
        }
    }
    Ok(f)
}

/// The flag list as `-b` takes it and ipvsadm lists it; empty when no flag is set.
pub fn format_sched_flags(f: &SchedFlags) -> String {
    let names = [
        (f.sh_fallback, "sh-fallback"),
        (f.sh_port, "sh-port"),
        (f.mh_fallback, "mh-fallback"),
        (f.mh_port, "mh-port"),
    ];
    names
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_addr("10.0.0.3:80").unwrap(),
            "10.0.0.3:80".parse().unwrap()
        );
        assert_eq!(
            parse_addr("10.0.0.3").unwrap(),
            "10.0.0.3:0".parse().unwrap()
        );
        assert_eq!(
            parse_addr("[2001:db8::1]:80").unwrap(),
            "[2001:db8::1]:80".parse().unwrap()
        );
        assert_eq!(
            parse_addr("[2001:db8::1]").unwrap(),
            "[2001:db8::1]:0".parse().unwrap()
        );
        assert_eq!(
            parse_addr("2001:db8::1").unwrap(),
            "[2001:db8::1]:0".parse().unwrap()
        );
        for bad in [
            "10.0.0.300:80",
            "10.0.0.3:99999",
            "web01:80",
            "",
            "10.0.0.3:",
        ] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn netmasks() {
        assert_eq!(parse_netmask("255.255.255.0", AddressFamily::V4), Ok(24));
        assert_eq!(parse_netmask("24", AddressFamily::V4), Ok(24));
        assert_eq!(parse_netmask("64", AddressFamily::V6), Ok(64));
        assert!(parse_netmask("255.0.255.0", AddressFamily::V4).is_err());
        assert!(parse_netmask("33", AddressFamily::V4).is_err());
        assert!(parse_netmask("255.255.0.0", AddressFamily::V6).is_err());
        assert_eq!(dotted_mask(24).to_string(), "255.255.255.0");
        assert_eq!(dotted_mask(0).to_string(), "0.0.0.0");
        assert_eq!(dotted_mask(32).to_string(), "255.255.255.255");
    }

    #[test]
    fn numbers_and_flags() {
        assert_eq!(parse_u32("65535", "weight", 0, 65535), Ok(65535));
        assert!(
            parse_u32("65536", "weight", 0, 65535)
                .unwrap_err()
                .contains("out of range")
        );
        assert!(parse_u32("-1", "weight", 0, 65535).is_err());
        let f = parse_sched_flags("sh-fallback,sh-port", SchedulerKind::Sh).unwrap();
        assert!(f.sh_fallback && f.sh_port && !f.mh_port);
        assert_eq!(format_sched_flags(&f), "sh-fallback,sh-port");
        let f = parse_sched_flags("flag-2", SchedulerKind::Mh).unwrap();
        assert!(f.mh_port);
        assert!(parse_sched_flags("sh-x", SchedulerKind::Sh).is_err());
    }
}
