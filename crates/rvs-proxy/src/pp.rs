//! PROXY protocol headers (v1 text, v2 binary) that tell a real the client's address, built with
//! the `ppp` crate.

use rvs_core::ProxyProtocol;
use std::net::SocketAddr;

/// The header to send to a real before any client byte, or `None` for [`ProxyProtocol::None`].
///
/// `client` is the client's address, `vaddr` the virtual address it connected to. Mixed
/// families (impossible for a proxied connection, which stays in one family) give `UNKNOWN` /
/// an unspecified-address v2 header, as the specification asks.
pub fn header(kind: ProxyProtocol, client: SocketAddr, vaddr: SocketAddr) -> Option<Vec<u8>> {
    match kind {
        ProxyProtocol::None => None,
        ProxyProtocol::V1 => {
            let addrs = ppp::v1::Addresses::from((client, vaddr));
            Some(addrs.to_string().into_bytes())
        }
        ProxyProtocol::V2 => {
            use ppp::v2::{Builder, Command, Protocol, Version};
            let addrs = ppp::v2::Addresses::from((client, vaddr));
            // Building into a Vec cannot fail; fall back to a LOCAL header if it ever did.
            Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, addrs)
                .build()
                .ok()
                .or_else(|| Builder::new(Version::Two | Command::Local, 0).build().ok())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_round_trip() {
        let c: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let v: SocketAddr = "198.51.100.1:80".parse().unwrap();
        let h1 = header(ProxyProtocol::V1, c, v).unwrap();
        assert_eq!(h1, b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 80\r\n");
        let h2 = header(ProxyProtocol::V2, c, v).unwrap();
        let parsed = ppp::v2::Header::try_from(h2.as_slice()).unwrap();
        assert_eq!(parsed.addresses, ppp::v2::Addresses::from((c, v)));
        assert_eq!(parsed.command, ppp::v2::Command::Proxy);
        let c6: SocketAddr = "[2001:db8::7]:40000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        let h6 = header(ProxyProtocol::V1, c6, v6).unwrap();
        assert_eq!(h6, b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n");
        assert!(header(ProxyProtocol::None, c, v).is_none());
    }
}
