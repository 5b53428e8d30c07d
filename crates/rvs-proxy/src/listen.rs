//! Listening sockets: one per worker and service, all bound to the VIP with `SO_REUSEPORT` so
//! the kernel spreads clients over the workers.

use socket2::{Domain, Protocol as SockProto, Socket, Type};
use std::io;
use std::net::SocketAddr;

fn new_socket(addr: SocketAddr, ty: Type, proto: SockProto) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// A bound, listening TCP socket.
pub fn tcp(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    let s = new_socket(addr, Type::STREAM, SockProto::TCP)?;
    s.listen(backlog)?;
    Ok(s.into())
}

/// A bound UDP socket.
pub fn udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    Ok(new_socket(addr, Type::DGRAM, SockProto::UDP)?.into())
}
