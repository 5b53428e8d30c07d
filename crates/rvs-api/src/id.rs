//! The text form of a service key used in URLs: `tcp:10.0.0.3:80`, `fwmark:1`, `fwmark6:1`.

use rvs_core::model::{AddressFamily, Protocol, ServiceKey};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// A [`ServiceKey`] that prints and parses in URL form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceId(pub ServiceKey);

/// A service id that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad service id '{0}': expected tcp:ADDR:PORT, udp:ADDR:PORT, sctp:ADDR:PORT, fwmark:N or fwmark6:N"
)]
pub struct BadServiceId(pub String);

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ServiceKey::Addr { protocol, addr } => {
                let p = match protocol {
                    Protocol::Tcp => "tcp",
                    Protocol::Udp => "udp",
                    Protocol::Sctp => "sctp",
                };
                write!(f, "{p}:{addr}")
            }
            ServiceKey::FwMark {
                mark,
                family: AddressFamily::V4,
            } => write!(f, "fwmark:{mark}"),
            ServiceKey::FwMark {
                mark,
                family: AddressFamily::V6,
            } => write!(f, "fwmark6:{mark}"),
        }
    }
}

impl FromStr for ServiceId {
    type Err = BadServiceId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadServiceId(s.to_string());
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        let addr = || rest.parse::<SocketAddr>().map_err(|_| bad());
        let key = match kind {
            "tcp" => ServiceKey::Addr {
                protocol: Protocol::Tcp,
                addr: addr()?,
            },
            "udp" => ServiceKey::Addr {
                protocol: Protocol::Udp,
                addr: addr()?,
            },
            "sctp" => ServiceKey::Addr {
                protocol: Protocol::Sctp,
                addr: addr()?,
            },
            "fwmark" => ServiceKey::FwMark {
                mark: rest.parse().map_err(|_| bad())?,
                family: AddressFamily::V4,
            },
            "fwmark6" => ServiceKey::FwMark {
                mark: rest.parse().map_err(|_| bad())?,
                family: AddressFamily::V6,
            },
            _ => return Err(bad()),
        };
        Ok(ServiceId(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [
            "tcp:10.0.0.3:80",
            "udp:[2001:db8::1]:53",
            "sctp:10.0.0.3:9",
            "fwmark:1",
            "fwmark6:7",
        ] {
            let id: ServiceId = s.parse().unwrap();
            assert_eq!(id.to_string(), s);
        }
        assert!("tcp:10.0.0.3".parse::<ServiceId>().is_err());
        assert!("icmp:10.0.0.3:1".parse::<ServiceId>().is_err());
        assert!("fwmark:x".parse::<ServiceId>().is_err());
    }
}
