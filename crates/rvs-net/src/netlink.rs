//! A synchronous netlink client (rtnetlink on a private single-threaded tokio runtime): links,
//! addresses, routes and the neighbour table.

use crate::error::{NetError, nl};
use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourState,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteType};
use rtnetlink::{Handle, RouteMessageBuilder};
use std::collections::HashMap;
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A link-layer (MAC) address.
pub type Mac = [u8; 6];

/// What rvs needs to know about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub mac: Mac,
    pub mtu: u32,
}

/// The route the kernel would use to reach an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// Outgoing interface index.
    pub oif: u32,
    /// Gateway, when not directly connected.
    pub gateway: Option<IpAddr>,
    /// Preferred source address.
    pub pref_src: Option<IpAddr>,
    /// The address is one of this host's own (a `local` route, e.g. via `lo`).
    pub local: bool,
}

impl RouteInfo {
    /// The address whose MAC a frame to `dst` must carry.
    pub fn next_hop(&self, dst: IpAddr) -> IpAddr {
        self.gateway.unwrap_or(dst)
    }
}

/// One dump of the neighbour table ([`Netlink::neighbour_dump`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NeighbourDump {
    /// Entries whose MAC may be used, by (interface index, address).
    pub usable: HashMap<(u32, IpAddr), Mac>,
    /// Entries the kernel checks again only when traffic it sends uses them: STALE (its MAC
    /// may be out of date) and FAILED (not resolved any more).
    pub unconfirmed: HashSet<(u32, IpAddr)>,
}

/// A netlink connection usable from synchronous code.
pub struct Netlink {
    rt: tokio::runtime::Runtime,
    handle: Handle,
}

fn mac_of(bytes: &[u8]) -> Option<Mac> {
    <[u8; 6]>::try_from(bytes).ok()
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

impl Netlink {
    /// Drive `f` on our runtime. From inside another tokio runtime (where `block_on` would
    /// panic) the work is done on a short-lived helper thread instead.
    fn run<F>(&self, f: F) -> F::Output
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| {
                s.spawn(|| self.rt.block_on(f))
                    .join()
                    .expect("netlink helper thread")
            })
        } else {
            self.rt.block_on(f)
        }
    }

    /// Open a netlink route socket.
    pub fn new() -> Result<Netlink, NetError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(NetError::Socket)?;
        let connect = || {
            rt.block_on(async {
                let (conn, handle, _) = rtnetlink::new_connection().map_err(NetError::Socket)?;
                tokio::spawn(conn);
                Ok::<_, NetError>(handle)
            })
        };
        let handle = if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| s.spawn(connect).join().expect("netlink helper thread"))?
        } else {
            connect()?
        };
        Ok(Netlink { rt, handle })
    }

    /// An interface by name.
    pub fn link(&self, name: &str) -> Result<LinkInfo, NetError> {
        let h = self.handle.clone();
        let msg = self.run(async move {
            h.link()
                .get()
                .match_name(name.to_string())
                .execute()
                .try_next()
                .await
        });
        let msg = match msg {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => return Err(NetError::NoSuchLink(name.to_string())),
        };
        let mut info = LinkInfo {
            index: msg.header.index,
            name: name.to_string(),
            mac: [0; 6],
            mtu: 0,
        };
        for a in &msg.attributes {
            match a {
                LinkAttribute::Address(b) => info.mac = mac_of(b).unwrap_or_default(),
                LinkAttribute::Mtu(m) => info.mtu = *m,
                _ => {}
            }
        }
        Ok(info)
    }

    /// Addresses on interface `index` with their prefix lengths.
    pub fn addresses(&self, index: u32) -> Result<Vec<(IpAddr, u8)>, NetError> {
        let h = self.handle.clone();
        let msgs: Vec<_> = self
            .run(async move {
                h.address()
                    .get()
                    .set_link_index_filter(index)
                    .execute()
                    .try_collect()
                    .await
            })
            .map_err(nl("address dump"))?;
        Ok(msgs
            .iter()
            .flat_map(|m| {
                let plen = m.header.prefix_len;
                m.attributes.iter().filter_map(move |a| match a {
                    AddressAttribute::Address(ip) => Some((*ip, plen)),
                    _ => None,
                })
            })
            .collect())
    }

    /// Add `ip/prefix` to interface `index` (already present is fine).
    pub fn add_address(&self, index: u32, ip: IpAddr, prefix: u8) -> Result<(), NetError> {
        if self.addresses(index)?.contains(&(ip, prefix)) {
            return Ok(());
        }
        let h = self.handle.clone();
        self.run(async move { h.address().add(index, ip, prefix).execute().await })
            .map_err(nl(format!("add address {ip}/{prefix}")))
    }

    /// Remove `ip` from interface `index` (absent is fine): whether it was there.
    pub fn del_address(&self, index: u32, ip: IpAddr) -> Result<bool, NetError> {
        let h = self.handle.clone();
        self.run(async move {
            let msgs: Vec<_> = h
                .address()
                .get()
                .set_link_index_filter(index)
                .set_address_filter(ip)
                .execute()
                .try_collect()
                .await?;
            let found = !msgs.is_empty();
            for m in msgs {
                h.address().del(m).execute().await?;
            }
            Ok(found)
        })
        .map_err(nl(format!("delete address {ip}")))
    }

    /// The route to `dst` (as `ip route get`).
    pub fn route_get(&self, dst: IpAddr) -> Result<RouteInfo, NetError> {
        let prefix = if dst.is_ipv4() { 32 } else { 128 };
        let msg = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst, prefix)
            .map_err(|e| NetError::Invalid(e.to_string()))?
            .build();
        let h = self.handle.clone();
        let route = self
            .run(async move { h.route().get(msg).execute().try_next().await })
            .map_err(|_| NetError::NoRoute(dst))?
            .ok_or(NetError::NoRoute(dst))?;
        let mut info = RouteInfo {
            oif: 0,
            gateway: None,
            pref_src: None,
            local: route.header.kind == RouteType::Local,
        };
        for a in &route.attributes {
            match a {
                RouteAttribute::Oif(i) => info.oif = *i,
                RouteAttribute::Gateway(g) => info.gateway = route_ip(g),
                RouteAttribute::PrefSource(s) => info.pref_src = route_ip(s),
                _ => {}
            }
        }
        Ok(info)
    }

    /// The neighbour table's usable MAC for `ip` on interface `index`, if any.
    pub fn neighbour(&self, index: u32, ip: IpAddr) -> Result<Option<Mac>, NetError> {
        Ok(self.neighbour_table()?.get(&(index, ip)).copied())
    }

    /// Every usable entry of the neighbour table, by (interface index, address): one dump,
    /// for callers that look up many addresses at once.
    pub fn neighbour_table(&self) -> Result<HashMap<(u32, IpAddr), Mac>, NetError> {
        Ok(self.neighbour_dump()?.usable)
    }

    /// One dump of the neighbour table: its usable entries, and the entries that only traffic
    /// through the kernel would check again ([`NeighbourDump::unconfirmed`]).
    pub fn neighbour_dump(&self) -> Result<NeighbourDump, NetError> {
        let h = self.handle.clone();
        let msgs: Vec<_> = self
            .run(async move { h.neighbours().get().execute().try_collect().await })
            .map_err(nl("neighbour dump"))?;
        let mut table = NeighbourDump::default();
        for m in msgs {
            let state = m.header.state;
            let unconfirmed = matches!(state, NeighbourState::Stale | NeighbourState::Failed);
            if !usable(state) && !unconfirmed {
                continue;
            }
            let mut dst = None;
            let mut mac = None;
            for a in &m.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                        dst = Some(IpAddr::V4(*v4))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                        dst = Some(IpAddr::V6(*v6))
                    }
                    NeighbourAttribute::LinkLocalAddress(b) => mac = mac_of(b),
                    _ => {}
                }
            }
            let Some(dst) = dst else { continue };
            if unconfirmed {
                table.unconfirmed.insert((m.header.ifindex, dst));
            }
            if let Some(mac) = mac.filter(|_| usable(state)) {
                table.usable.insert((m.header.ifindex, dst), mac);
            }
        }
        Ok(table)
    }

    /// Tell the kernel that neighbour `ip` on interface `index` is in use, as sending a packet
    /// to it through the kernel would (`NTF_USE`): a STALE entry goes to DELAY and is probed
    /// (its MAC confirmed, or the entry fails), a FAILED or missing one is resolved afresh. A
    /// REACHABLE entry is left alone. For a data plane that bypasses the kernel's neighbour
    /// code (XDP), which would otherwise never make the kernel notice a changed MAC.
    pub fn neighbour_use(&self, index: u32, ip: IpAddr) -> Result<(), NetError> {
        let h = self.handle.clone();
        self.run(async move {
            h.neighbours()
                .add(index, ip)
                .flags(NeighbourFlags::Use)
                .replace()
                .execute()
                .await
        })
        .map_err(nl(format!("neighbour {ip} in use")))
    }

    /// The MAC a frame to `dst` must carry and the interface it leaves by: route lookup, then
    /// the neighbour table; when the next hop is not in the table yet, a datagram to its discard
    /// port makes the kernel resolve it, and the table is polled until `timeout`.
    pub fn resolve(&self, dst: IpAddr, timeout: Duration) -> Result<(Mac, u32), NetError> {
        let route = self.route_get(dst)?;
        let hop = route.next_hop(dst);
        if let Some(mac) = self.neighbour(route.oif, hop)? {
            return Ok((mac, route.oif));
        }
        poke(hop);
        let start = Instant::now();
        while start.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(20));
            if let Some(mac) = self.neighbour(route.oif, hop)? {
                return Ok((mac, route.oif));
            }
        }
        Err(NetError::Unresolved(hop))
    }
}

/// States whose link-layer address may be used.
fn usable(s: NeighbourState) -> bool {
    matches!(
        s,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
            | NeighbourState::Noarp
    )
}

/// Make the kernel resolve `ip` (ARP / neighbour solicitation) by sending it one empty datagram.
fn poke(ip: IpAddr) {
    let bind: std::net::SocketAddr = if ip.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    if let Ok(s) = std::net::UdpSocket::bind(bind) {
        let _ = s.send_to(&[], (ip, 9));
    }
}
