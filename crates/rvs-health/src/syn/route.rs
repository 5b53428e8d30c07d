//! Which source address the kernel would use towards a real: the TCP checksum covers it, so the
//! prober must know it before it sends. Found by connecting a UDP socket to the real (a route
//! lookup, no packet sent) and reading its local address; cached per destination for
//! [`SOURCE_TTL`], so a route change is picked up within that time.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// How long a looked-up source address is trusted.
pub const SOURCE_TTL: Duration = Duration::from_secs(60);

/// A multiply-xorshift hasher for the cache's keys: looked up once per check, and the keys
/// come from the configuration, so SipHash's flooding resistance buys nothing here.
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

/// Source addresses by destination.
#[derive(Default)]
pub struct SourceCache {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    map: HashMap<IpAddr, (IpAddr, Instant), BuildHasherDefault<AddrHasher>>,
}

impl SourceCache {
    /// The source address for `dst` (cached, or looked up now).
    pub fn source_for(&mut self, dst: IpAddr, now: Instant) -> io::Result<IpAddr> {
        if let Some((src, at)) = self.map.get(&dst)
            && now.saturating_duration_since(*at) < SOURCE_TTL
        {
            return Ok(*src);
        }
        let sock = match dst {
            IpAddr::V4(_) => &mut self.v4,
            IpAddr::V6(_) => &mut self.v6,
        };
        if sock.is_none() {
            let any: IpAddr = match dst {
                IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
            };
            *sock = Some(UdpSocket::bind(SocketAddr::new(any, 0))?);
        }
        let s = sock.as_ref().expect("just created");
        s.connect(SocketAddr::new(dst, 9))?;
        let src = s.local_addr()?.ip();
        if self.map.len() > 100_000 {
            // never grows without bound on a churning config
            self.map
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < SOURCE_TTL);
        }
        self.map.insert(dst, (src, now));
        Ok(src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_destination_has_a_loopback_source_and_is_cached() {
        let mut c = SourceCache::default();
        let now = Instant::now();
        let dst: IpAddr = Ipv4Addr::new(127, 3, 4, 5).into();
        assert!(c.source_for(dst, now).unwrap().is_loopback());
        assert_eq!(c.map.len(), 1);
        let src = c.source_for(dst, now + Duration::from_secs(1)).unwrap();
        assert!(src.is_loopback());
        assert_eq!(c.map[&dst].1, now, "served from the cache");
        c.source_for(dst, now + SOURCE_TTL).unwrap();
        assert_eq!(c.map[&dst].1, now + SOURCE_TTL, "looked up again");
    }
}
