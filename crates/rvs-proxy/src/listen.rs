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

/// Bind an outgoing socket to local address `local` (a FULLNAT local address), leaving the port
/// to `connect` (Linux: `IP_BIND_ADDRESS_NO_PORT`, so a port is unique per destination rather
/// than per local address, as the kernel does for unbound sockets).
pub fn bind_local(sock: &Socket, local: std::net::IpAddr) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads sizeof(c_int) bytes from a live c_int on an open socket.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    sock.bind(&SocketAddr::new(local, 0).into())
}
