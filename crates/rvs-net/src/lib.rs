//! Host networking for rvs: a synchronous netlink client ([`netlink`]) for links, addresses,
//! routes and neighbours, neighbour-change notifications ([`neigh_watch`]), sysctls
//! ([`sysctl`]), and real-server preparation for DR and TUN ([`realserver`]).
//!
//! Everything here needs CAP_NET_ADMIN for changes; lookups work unprivileged.

pub mod error;
pub mod neigh_watch;
pub mod netlink;
pub mod realserver;
pub mod sysctl;

pub use error::NetError;
pub use netlink::{LinkInfo, Mac, NeighbourDump, Netlink, RouteInfo};
