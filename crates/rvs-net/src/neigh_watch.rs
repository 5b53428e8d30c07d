//! Neighbour-table change notifications (the RTNLGRP_NEIGH multicast group, like
//! `ip monitor neigh`), delivered on a channel from a background thread.

use crate::error::NetError;
use crate::netlink::Mac;
use futures::StreamExt;
use rtnetlink::MulticastGroup;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use std::net::IpAddr;
use std::sync::mpsc;

/// One change in the neighbour table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourEvent {
    pub ifindex: u32,
    pub ip: IpAddr,
    /// The new link-layer address; `None` when the entry went away or has none.
    pub mac: Option<Mac>,
}

fn event(m: &NeighbourMessage, deleted: bool) -> Option<NeighbourEvent> {
    let mut ip = None;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                ip = Some(IpAddr::V4(*v4))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                ip = Some(IpAddr::V6(*v6))
            }
            NeighbourAttribute::LinkLocalAddress(b) => mac = <[u8; 6]>::try_from(b.as_slice()).ok(),
            _ => {}
        }
    }
    Some(NeighbourEvent {
        ifindex: m.header.ifindex,
        ip: ip?,
        mac: if deleted { None } else { mac },
    })
}

/// Start watching; events arrive on the returned receiver until it is dropped (the thread
/// ends at the next event after that).
pub fn watch() -> Result<mpsc::Receiver<NeighbourEvent>, NetError> {
    let (tx, rx) = mpsc::channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(NetError::Socket)?;
    let (conn, _handle, mut messages) = {
        let _guard = rt.enter();
        rtnetlink::new_multicast_connection(&[MulticastGroup::Neigh]).map_err(NetError::Socket)?
    };
    std::thread::Builder::new()
        .name("rvs-neigh-watch".into())
        .spawn(move || {
            rt.block_on(async move {
                tokio::spawn(conn);
                while let Some((msg, _)) = messages.next().await {
                    let ev = match msg.payload {
                        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(m)) => {
                            event(&m, false)
                        }
                        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelNeighbour(m)) => {
                            event(&m, true)
                        }
                        _ => None,
                    };
                    if let Some(ev) = ev
                        && tx.send(ev).is_err()
                    {
                        break;
                    }
                }
            })
        })
        .map_err(NetError::Socket)?;
    Ok(rx)
}
