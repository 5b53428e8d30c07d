//! The SYN prober's task: takes probe requests from a channel, sends each batch with one
//! `sendmmsg` per address family, reads replies with `recvmmsg` until `EAGAIN`, and fails the
//! probes whose `connect_timeout` passed. A probe's identity is in its ISN: `(slot << 16 | epoch)
//! ^ secret`, so the reply's `ack - 1` finds the pending probe in O(1); the source port is a
//! function of the slot. Replies that match no pending probe (late, duplicate, forged) are
//! counted and ignored.

use super::filter;
use super::mmsg::{self, OutMsg, RecvBatch};
use super::packet::{SYN_LEN, Segment, Syn, parse_ipv4};
use super::ports::PortBlock;
use super::route::SourceCache;
use crate::error::CheckError;
use socket2::{Domain, Protocol, Socket, Type};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot};

/// Most probes in flight at once (the slot is 16 bits of the ISN).
const SLOTS: usize = 1 << 16;
/// Packets per `recvmmsg`.
const RECV_BATCH: usize = 64;
/// Receive buffer of the raw sockets (bursts of replies at 10,000 checks/s).
const RCVBUF: usize = 4 << 20;

/// One probe asked of the task.
pub(super) struct Request {
    pub target: SocketAddr,
    pub src: Option<IpAddr>,
    pub timeout: Duration,
    pub reply: oneshot::Sender<Result<(), CheckError>>,
}

/// Counters of the prober (see [`super::SynStats`]).
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub sent: AtomicU64,
    pub open: AtomicU64,
    pub refused: AtomicU64,
    pub timeouts: AtomicU64,
    pub unmatched: AtomicU64,
    pub send_errors: AtomicU64,
}

/// A raw socket of one family, or none when the family is not available.
pub(super) fn raw_socket(v6: bool, ports: &PortBlock) -> io::Result<Socket> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::RAW, Some(Protocol::TCP))?;
    let prog = if v6 {
        filter::ipv6(ports.first(), ports.last())
    } else {
        filter::ipv4(ports.first(), ports.last())
    };
    s.attach_filter(&filter::to_sock_filter(&prog))?;
    let _ = s.set_recv_buffer_size(RCVBUF);
    s.set_nonblocking(true)?;
    // anything queued before the filter was attached
    let mut drain = RecvBatch::new(RECV_BATCH);
    while drain.recv(s.as_raw_fd()).is_ok_and(|n| n > 0) {}
    Ok(s)
}

/// Register a raw socket with the runtime's reactor.
pub(super) fn register(s: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: the socket owns its descriptor, which stays open and unchanged until the AsyncFd
    // (which owns the socket) is dropped.
    Ok(unsafe { AsyncFd::register(s) }?)
}

/// The raw sockets, one per family (`None`: family not available).
struct Sockets {
    v4: Option<AsyncFd<Socket>>,
    v6: Option<AsyncFd<Socket>>,
}

impl Sockets {
    fn of(&self, v6: bool) -> Option<&AsyncFd<Socket>> {
        if v6 {
            self.v6.as_ref()
        } else {
            self.v4.as_ref()
        }
    }
}

struct Live {
    target: SocketAddr,
    src_port: u16,
    timeout: Duration,
    reply: oneshot::Sender<Result<(), CheckError>>,
}

#[derive(Default)]
struct Slot {
    epoch: u16,
    live: Option<Live>,
}

pub(super) struct Driver {
    sockets: Option<Sockets>,
    has: [bool; 2],
    ports: PortBlock,
    counters: Arc<Counters>,
    secret: u32,
    slots: Vec<Slot>,
    free: Vec<u16>,
    deadlines: BinaryHeap<Reverse<(Instant, u16, u16)>>,
    sources: SourceCache,
}

/// Wait until `fd` (if any) is readable; never returns for a missing family.
async fn readable(
    fd: &Option<AsyncFd<Socket>>,
) -> io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, Socket>> {
    match fd {
        Some(f) => f.readable().await,
        None => std::future::pending().await,
    }
}

impl Driver {
    pub fn new(
        v4: Option<AsyncFd<Socket>>,
        v6: Option<AsyncFd<Socket>>,
        ports: PortBlock,
        counters: Arc<Counters>,
        secret: u32,
    ) -> Driver {
        Driver {
            has: [v4.is_some(), v6.is_some()],
            sockets: Some(Sockets { v4, v6 }),
            ports,
            counters,
            secret,
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
            free: (0..SLOTS as u32).rev().map(|s| s as u16).collect(),
            deadlines: BinaryHeap::new(),
            sources: SourceCache::default(),
        }
    }

    /// Run until every handle is dropped.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Request>) {
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        let mut batch: Vec<Request> = Vec::new();
        let mut recv = RecvBatch::new(RECV_BATCH);
        let socks = self.sockets.take().expect("run once");
        loop {
            let next = self.deadlines.peek().map(|Reverse((at, _, _))| *at);
            if next != armed {
                if let Some(at) = next {
                    sleep.as_mut().reset(at.into());
                }
                armed = next;
            }
            tokio::select! {
                biased;
                r = readable(&socks.v4) => {
                    if let Ok(mut g) = r {
                        self.drain(g.get_ref().get_ref(), false, &mut recv);
                        g.clear_ready();
                    }
                }
                r = readable(&socks.v6) => {
                    if let Ok(mut g) = r {
                        self.drain(g.get_ref().get_ref(), true, &mut recv);
                        g.clear_ready();
                    }
                }
                req = rx.recv() => {
                    let Some(req) = req else { return };
                    batch.push(req);
                    // everything due in this timer tick is queued by now: one batch
                    while let Ok(r) = rx.try_recv() {
                        batch.push(r);
                    }
                    self.send_batch(&socks, &mut batch).await;
                }
                () = &mut sleep, if armed.is_some() => {
                    self.expire(Instant::now());
                    armed = None;
                }
            }
        }
    }

    fn isn(&self, slot: u16, epoch: u16) -> u32 {
        ((u32::from(slot) << 16) | u32::from(epoch)) ^ self.secret
    }

    fn src_port(&self, slot: u16) -> u16 {
        self.ports.first() + slot % self.ports.len()
    }

    /// Take a slot for `req`; `None` (and the request answered) when it cannot be sent.
    fn admit(&mut self, req: Request, now: Instant) -> Option<(Syn, u16)> {
        if !self.has[usize::from(req.target.is_ipv6())] {
            let e = io::Error::new(io::ErrorKind::Unsupported, "no raw socket for this family");
            let _ = req.reply.send(Err(CheckError::Connect(e)));
            return None;
        }
        let src = match req.src {
            Some(s) => s,
            None => match self.sources.source_for(req.target.ip(), now) {
                Ok(s) => s,
                Err(e) => {
                    let _ = req.reply.send(Err(CheckError::Connect(e)));
                    return None;
                }
            },
        };
        let Some(slot) = self.free.pop() else {
            let e = io::Error::other("too many SYN probes in flight");
            let _ = req.reply.send(Err(CheckError::Connect(e)));
            return None;
        };
        let s = &mut self.slots[usize::from(slot)];
        s.epoch = s.epoch.wrapping_add(1);
        let epoch = s.epoch;
        let src_port = self.src_port(slot);
        let syn = Syn {
            src,
            dst: req.target.ip(),
            src_port,
            dst_port: req.target.port(),
            isn: self.isn(slot, epoch),
        };
        self.slots[usize::from(slot)].live = Some(Live {
            target: req.target,
            src_port,
            timeout: req.timeout,
            reply: req.reply,
        });
        self.deadlines
            .push(Reverse((now + req.timeout, slot, epoch)));
        Some((syn, slot))
    }

    /// Answer the probe in `slot` and free it.
    fn finish(&mut self, slot: u16, result: Result<(), CheckError>) {
        if let Some(live) = self.slots[usize::from(slot)].live.take() {
            let _ = live.reply.send(result);
            self.free.push(slot);
        }
    }

    async fn send_batch(&mut self, socks: &Sockets, batch: &mut Vec<Request>) {
        let now = Instant::now();
        let mut out: [Vec<(Syn, u16, [u8; SYN_LEN])>; 2] = [Vec::new(), Vec::new()];
        for req in batch.drain(..) {
            if let Some((syn, slot)) = self.admit(req, now) {
                let mut buf = [0u8; SYN_LEN];
                syn.emit(&mut buf);
                out[usize::from(syn.dst.is_ipv6())].push((syn, slot, buf));
            }
        }
        for (family, pkts) in out.iter().enumerate() {
            let mut done = 0;
            while done < pkts.len() {
                let Some(fd) = socks.of(family == 1) else {
                    break;
                };
                let msgs: Vec<OutMsg<'_>> = pkts[done..]
                    .iter()
                    .map(|(syn, _, buf)| OutMsg {
                        payload: buf,
                        dst: syn.dst,
                        src: syn.src,
                    })
                    .collect();
                match mmsg::send(fd.get_ref().as_raw_fd(), &msgs) {
                    Ok(0) => {
                        // cannot happen for a non-empty batch; do not spin on it
                        let e = io::Error::other("sendmmsg sent nothing");
                        self.finish(pkts[done].1, Err(CheckError::Connect(e)));
                        done += 1;
                    }
                    Ok(n) => {
                        self.counters.sent.fetch_add(n as u64, Relaxed);
                        done += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if let Ok(mut g) = fd.writable().await {
                            g.clear_ready();
                        }
                    }
                    Err(e) => {
                        // the first of the rest failed (bad bindto, no route, ...): fail it alone
                        self.counters.send_errors.fetch_add(1, Relaxed);
                        let slot = pkts[done].1;
                        self.finish(slot, Err(CheckError::Connect(e)));
                        done += 1;
                    }
                }
            }
        }
    }

    /// Read and match every queued reply of one family.
    fn drain(&mut self, fd: &Socket, v6: bool, recv: &mut RecvBatch) {
        loop {
            let n = match recv.recv(fd.as_raw_fd()) {
                Ok(n) => n,
                // EAGAIN: all read; anything else (ENOBUFS...) is retried on the next readiness
                Err(_) => return,
            };
            for i in 0..n {
                let pkt = recv.packet(i);
                let parsed = if v6 {
                    Segment::parse(pkt).map(|s| (IpAddr::V6(recv.source_v6(i)), s))
                } else {
                    parse_ipv4(pkt)
                        .and_then(|(src, _, tcp)| Some((IpAddr::V4(src), Segment::parse(tcp)?)))
                };
                match parsed {
                    Some((from, seg)) => self.on_reply(from, seg),
                    None => {
                        self.counters.unmatched.fetch_add(1, Relaxed);
                    }
                }
            }
        }
    }

    /// A SYN-ACK or RST from `from`: answer the probe it belongs to, if any.
    fn on_reply(&mut self, from: IpAddr, seg: Segment) {
        let open = seg.is_syn_ack();
        // an RST that answers a SYN acknowledges it; one without ACK cannot be matched
        let refused = seg.is_rst() && seg.flags & super::packet::FLAG_ACK != 0;
        let v = seg.ack.wrapping_sub(1) ^ self.secret;
        let (slot, epoch) = ((v >> 16) as u16, v as u16);
        let s = &self.slots[usize::from(slot)];
        let matches = (open || refused)
            && s.epoch == epoch
            && s.live.as_ref().is_some_and(|l| {
                l.target == SocketAddr::new(from, seg.src_port) && l.src_port == seg.dst_port
            });
        if !matches {
            self.counters.unmatched.fetch_add(1, Relaxed);
            return;
        }
        if open {
            self.counters.open.fetch_add(1, Relaxed);
            self.finish(slot, Ok(()));
        } else {
            self.counters.refused.fetch_add(1, Relaxed);
            let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
            self.finish(slot, Err(CheckError::Connect(e)));
        }
    }

    /// Fail every probe whose deadline passed.
    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((at, slot, epoch))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let s = &self.slots[usize::from(slot)];
            if s.epoch == epoch && s.live.is_some() {
                self.counters.timeouts.fetch_add(1, Relaxed);
                let limit = s.live.as_ref().map_or(Duration::ZERO, |l| l.timeout);
                self.finish(slot, Err(CheckError::Timeout(limit)));
            }
        }
    }
}
