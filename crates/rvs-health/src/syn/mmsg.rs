//! `sendmmsg` / `recvmmsg` on a raw socket: a batch of SYNs out in one syscall (each with its
//! source address in an `IP_PKTINFO` / `IPV6_PKTINFO` control message, so it matches the
//! checksum), and replies read many at a time. The only unsafe code of the prober.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::fd::RawFd;

/// One datagram to send.
pub struct OutMsg<'a> {
    pub payload: &'a [u8],
    pub dst: IpAddr,
    pub src: IpAddr,
}

/// Room for one `in6_pktinfo` control message (the larger of the two).
const CMSG_ROOM: usize = 64;

fn sockaddr(ip: IpAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let sa = socket2::SockAddr::from(SocketAddr::new(ip, 0));
    // SAFETY: sockaddr_storage is plain data; the copy is bounded by `sa.len()` ≤ its size.
    let mut out: libc::sockaddr_storage = unsafe { zeroed() };
    let len = sa.len();
    unsafe {
        std::ptr::copy_nonoverlapping(
            sa.as_ptr().cast::<u8>(),
            (&mut out as *mut libc::sockaddr_storage).cast::<u8>(),
            len as usize,
        );
    }
    (out, len)
}

/// Write the pktinfo control message for source `src` into `room`; returns its length.
fn pktinfo(room: &mut [u8; CMSG_ROOM], src: IpAddr) -> usize {
    // SAFETY: `room` is large enough for one cmsg of either pktinfo (CMSG_SPACE checked below);
    // the header and data are written inside it with unaligned writes.
    unsafe {
        let (level, kind, data_len) = match src {
            IpAddr::V4(_) => (
                libc::SOL_IP,
                libc::IP_PKTINFO,
                size_of::<libc::in_pktinfo>(),
            ),
            IpAddr::V6(_) => (
                libc::SOL_IPV6,
                libc::IPV6_PKTINFO,
                size_of::<libc::in6_pktinfo>(),
            ),
        };
        let space = libc::CMSG_SPACE(data_len as u32) as usize;
        assert!(space <= CMSG_ROOM);
        room[..space].fill(0);
        let hdr = libc::cmsghdr {
            cmsg_len: libc::CMSG_LEN(data_len as u32) as _,
            cmsg_level: level,
            cmsg_type: kind,
        };
        std::ptr::write_unaligned(room.as_mut_ptr().cast::<libc::cmsghdr>(), hdr);
        let data = room.as_mut_ptr().add(libc::CMSG_LEN(0) as usize);
        match src {
            IpAddr::V4(a) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.octets()),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                std::ptr::write_unaligned(data.cast::<libc::in_pktinfo>(), info);
            }
            IpAddr::V6(a) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: a.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                std::ptr::write_unaligned(data.cast::<libc::in6_pktinfo>(), info);
            }
        }
        space
    }
}

/// Send `msgs` with one `sendmmsg` (non-blocking). Returns how many went out: fewer than all
/// when the socket buffer filled up or the first unsent one failed (send it alone to get its
/// error). An error means the first message failed.
pub fn send(fd: RawFd, msgs: &[OutMsg<'_>]) -> io::Result<usize> {
    if msgs.is_empty() {
        return Ok(0);
    }
    let mut names: Vec<(libc::sockaddr_storage, libc::socklen_t)> =
        msgs.iter().map(|m| sockaddr(m.dst)).collect();
    let mut ctl: Vec<[u8; CMSG_ROOM]> = vec![[0u8; CMSG_ROOM]; msgs.len()];
    let ctl_lens: Vec<usize> = msgs
        .iter()
        .zip(ctl.iter_mut())
        .map(|(m, room)| pktinfo(room, m.src))
        .collect();
    let mut iov: Vec<libc::iovec> = msgs
        .iter()
        .map(|m| libc::iovec {
            iov_base: m.payload.as_ptr() as *mut libc::c_void,
            iov_len: m.payload.len(),
        })
        .collect();
    let mut hdrs: Vec<libc::mmsghdr> = (0..msgs.len())
        .map(|i| {
            // SAFETY: msghdr is plain data; every pointer set below outlives the call.
            let mut h: libc::msghdr = unsafe { zeroed() };
            h.msg_name = (&mut names[i].0 as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = names[i].1;
            h.msg_iov = &mut iov[i];
            h.msg_iovlen = 1;
            h.msg_control = ctl[i].as_mut_ptr().cast();
            h.msg_controllen = ctl_lens[i] as _;
            libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            }
        })
        .collect();
    // SAFETY: `hdrs` holds msgs.len() valid headers whose buffers live until after the call.
    let n = unsafe {
        libc::sendmmsg(
            fd,
            hdrs.as_mut_ptr(),
            hdrs.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Bytes kept of each received packet (the socket filter cuts them to this anyway).
pub const RECV_LEN: usize = 128;

/// Buffers for one `recvmmsg`.
pub struct RecvBatch {
    bufs: Vec<[u8; RECV_LEN]>,
    names: Vec<libc::sockaddr_in6>,
    lens: Vec<usize>,
}

impl RecvBatch {
    /// Room for `n` packets.
    pub fn new(n: usize) -> RecvBatch {
        RecvBatch {
            bufs: vec![[0u8; RECV_LEN]; n],
            // SAFETY: sockaddr_in6 is plain data, all-zero is valid.
            names: vec![unsafe { zeroed() }; n],
            lens: vec![0; n],
        }
    }

    /// Read up to the batch's size without blocking; returns how many (`WouldBlock` when none).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let n = self.bufs.len();
        let mut iov: Vec<libc::iovec> = self
            .bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: RECV_LEN,
            })
            .collect();
        let mut hdrs: Vec<libc::mmsghdr> = (0..n)
            .map(|i| {
                // SAFETY: plain data; pointers into self and `iov`, alive across the call.
                let mut h: libc::msghdr = unsafe { zeroed() };
                h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_in6).cast();
                h.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
                h.msg_iov = &mut iov[i];
                h.msg_iovlen = 1;
                libc::mmsghdr {
                    msg_hdr: h,
                    msg_len: 0,
                }
            })
            .collect();
        // SAFETY: `hdrs` holds n valid headers pointing into buffers that outlive the call.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        for (len, h) in self.lens.iter_mut().zip(&hdrs).take(got as usize) {
            *len = (h.msg_len as usize).min(RECV_LEN);
        }
        Ok(got as usize)
    }

    /// Packet `i` of the last `recv`.
    pub fn packet(&self, i: usize) -> &[u8] {
        &self.bufs[i][..self.lens[i]]
    }

    /// The IPv6 source of packet `i` (raw IPv6 sockets deliver no IP header).
    pub fn source_v6(&self, i: usize) -> Ipv6Addr {
        Ipv6Addr::from(self.names[i].sin6_addr.s6_addr)
    }
}

/// Set `IP_MTU_DISCOVER` to `IP_PMTUDISC_PROBE` on a raw IPv4 socket: DF on every packet (a
/// SYN is never fragmented), so the kernel gives it IP ID 0 instead of running its hashed ID
/// generator per packet.
pub fn set_dont_fragment(fd: RawFd) -> io::Result<()> {
    set_int_option(
        fd,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_PROBE,
    )
}

/// `SO_RCVBUFFORCE` (needs `CAP_NET_ADMIN`): a receive buffer above `net.core.rmem_max`.
pub fn force_recv_buffer(fd: RawFd, bytes: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    set_int_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, v)
}

/// `setsockopt` of an `int` option.
fn set_int_option(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a valid int option value and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
