//! Errors of host networking operations.

use std::net::IpAddr;

/// A host networking operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Opening the netlink socket or the runtime failed.
    #[error("netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The kernel refused a netlink request.
    #[error("netlink {what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    /// No interface of that name.
    #[error("no interface named {0}")]
    NoSuchLink(String),
    /// No route to the address.
    #[error("no route to {0}")]
    NoRoute(IpAddr),
    /// The neighbour did not resolve in time.
    #[error("no link-layer address for {0} (neighbour unresolved)")]
    Unresolved(IpAddr),
    /// Reading or writing a sysctl failed.
    #[error("sysctl {key}: {source}")]
    Sysctl {
        key: String,
        #[source]
        source: std::io::Error,
    },
    /// Bad argument.
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let what = what.into();
    move |source| NetError::Netlink { what, source }
}
