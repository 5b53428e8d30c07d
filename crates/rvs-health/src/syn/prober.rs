//! The SYN prober's task: takes probe requests from a channel, sends each batch with one
//! `sendmmsg` per address family, reads replies with `recvmmsg` until `EAGAIN`, and fails the
//! probes whose `connect_timeout` passed. A probe's identity is in its ISN: `(slot << 16 | epoch)
//! ^ secret`, so the reply's `ack - 1` finds the pending probe in O(1); the source port is a
//! function of the slot. Replies that match no pending probe (late, duplicate, forged) are
//! counted and ignored — except that a SYN-ACK to our ports that matches nothing is answered
//! with an RST of our own: it is a real retransmitting because the kernel's RST did not reach it
//! (the kernel drops its RSTs when their queue is full), and it would otherwise hold the
//! half-open connection for its ~30 s of SYN-ACK retries. An unanswered SYN is sent again after 1 s, then 2 s, 4 s, ... while the
//! timeout allows (the kernel's initial RTO for a connect), so one lost packet does not fail a
//! check with a `connect_timeout` above 1 s — as it would not with a connect.

use super::filter;
use super::mmsg::{self, OutMsg, RecvBatch};
use super::packet::{RST_LEN, SYN_LEN, Segment, Syn, emit_rst, parse_ipv4};
use super::ports::PortBlock;
use super::route::SourceCache;
use crate::error::CheckError;
use socket2::{Domain, Protocol, Socket, Type};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
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
/// First retransmission of an unanswered SYN (Linux's initial RTO, RFC 6298 §2.1); doubled
/// after each.
const FIRST_RTO: Duration = Duration::from_secs(1);

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
    pub retransmits: AtomicU64,
    pub unmatched: AtomicU64,
    pub send_errors: AtomicU64,
    pub local_drops: AtomicU64,
    pub resets: AtomicU64,
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
    if !v6 {
        mmsg::set_dont_fragment(s.as_raw_fd())?;
    }
    // above rmem_max when permitted (CAP_NET_ADMIN), else as much as rmem_max allows
    if mmsg::force_recv_buffer(s.as_raw_fd(), RCVBUF).is_err() {
        let _ = s.set_recv_buffer_size(RCVBUF);
    }
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
    /// The SYN, for retransmission.
    syn: Syn,
    deadline: Instant,
    /// Wait before the next retransmission.
    rto: Duration,
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
    /// Wake-ups (retransmission or timeout) of probes in flight: (when, slot, epoch). The
    /// first wake-up of a probe whose timeout is at least [`FIRST_RTO`] is always now + 1 s,
    /// so those arrive in time order and a queue holds them; the others go to the heap.
    first_wakes: VecDeque<(Instant, u16, u16)>,
    deadlines: BinaryHeap<Reverse<(Instant, u16, u16)>>,
    sources: SourceCache,
    /// RSTs to send after the current receive batch: (our address, the real's, segment).
    resets: Vec<(IpAddr, IpAddr, [u8; RST_LEN])>,
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
            first_wakes: VecDeque::new(),
            deadlines: BinaryHeap::new(),
            sources: SourceCache::default(),
            resets: Vec::new(),
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
            let next = self.next_wake();
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
                    let again = self.expire(Instant::now());
                    armed = None;
                    if !again.is_empty() {
                        self.counters.retransmits.fetch_add(again.len() as u64, Relaxed);
                        self.transmit(&socks, &again).await;
                    }
                }
            }
        }
    }

    /// The earliest wake-up of either kind.
    fn next_wake(&self) -> Option<Instant> {
        let a = self.first_wakes.front().map(|w| w.0);
        let b = self.deadlines.peek().map(|Reverse(w)| w.0);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Take the earliest wake-up if it is due at `now`.
    fn pop_wake(&mut self, now: Instant) -> Option<(Instant, u16, u16)> {
        let first = self.first_wakes.front().copied().filter(|w| w.0 <= now);
        let heap = self
            .deadlines
            .peek()
            .map(|Reverse(w)| *w)
            .filter(|w| w.0 <= now);
        match (first, heap) {
            (Some(f), Some(h)) if h.0 < f.0 => self.deadlines.pop().map(|Reverse(w)| w),
            (Some(_), _) => self.first_wakes.pop_front(),
            (None, Some(_)) => self.deadlines.pop().map(|Reverse(w)| w),
            (None, None) => None,
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
            syn,
            deadline: now + req.timeout,
            rto: FIRST_RTO,
            reply: req.reply,
        });
        // the first wake-up: a retransmission, or the end if the timeout comes first
        if req.timeout >= FIRST_RTO {
            self.first_wakes.push_back((now + FIRST_RTO, slot, epoch));
        } else {
            self.deadlines
                .push(Reverse((now + req.timeout, slot, epoch)));
        }
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
        let syns: Vec<(Syn, u16)> = batch
            .drain(..)
            .filter_map(|req| self.admit(req, now))
            .collect();
        self.transmit(socks, &syns).await;
    }

    /// Send SYNs (one `sendmmsg` per family while the socket buffer takes them).
    async fn transmit(&mut self, socks: &Sockets, syns: &[(Syn, u16)]) {
        let mut out: [Vec<(Syn, u16, [u8; SYN_LEN])>; 2] = [Vec::new(), Vec::new()];
        for &(syn, slot) in syns {
            let mut buf = [0u8; SYN_LEN];
            syn.emit(&mut buf);
            out[usize::from(syn.dst.is_ipv6())].push((syn, slot, buf));
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
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        // the local queue dropped it (a full qdisc): the probe stays in flight
                        // and its retransmission timer sends it again
                        self.counters.local_drops.fetch_add(1, Relaxed);
                        done += 1;
                    }
                    Err(e) => {
                        // the first of the rest failed (bad bindto, no route, ...): fail it alone
                        self.counters.send_errors.fetch_add(1, Relaxed);
                        tracing::debug!(error = %e, "SYN not sent");
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
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // EAGAIN: all read; anything else (ENOBUFS...) is retried on the next readiness
                Err(_) => return,
            };
            for i in 0..n {
                let pkt = recv.packet(i);
                let parsed = if v6 {
                    // a raw IPv6 socket gives no destination: ours is the route's source
                    Segment::parse(pkt).map(|s| (IpAddr::V6(recv.source_v6(i)), None, s))
                } else {
                    parse_ipv4(pkt).and_then(|(src, dst, tcp)| {
                        Some((IpAddr::V4(src), Some(IpAddr::V4(dst)), Segment::parse(tcp)?))
                    })
                };
                match parsed {
                    Some((from, to, seg)) => self.on_reply(from, to, seg),
                    None => {
                        self.counters.unmatched.fetch_add(1, Relaxed);
                    }
                }
            }
            self.send_resets(fd);
        }
    }

    /// Send the RSTs collected while reading (best effort: a lost one is answered again when the
    /// real retransmits its SYN-ACK).
    fn send_resets(&mut self, fd: &Socket) {
        if self.resets.is_empty() {
            return;
        }
        let msgs: Vec<OutMsg<'_>> = self
            .resets
            .iter()
            .map(|(src, dst, buf)| OutMsg {
                payload: buf,
                dst: *dst,
                src: *src,
            })
            .collect();
        if let Ok(n) = mmsg::send(fd.as_raw_fd(), &msgs) {
            self.counters.resets.fetch_add(n as u64, Relaxed);
        }
        self.resets.clear();
    }

    /// A SYN-ACK or RST from `from`: answer the probe it belongs to, if any.
    fn on_reply(&mut self, from: IpAddr, to: Option<IpAddr>, seg: Segment) {
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
            if open {
                let ours = to.or_else(|| self.sources.source_for(from, Instant::now()).ok());
                if let Some(ours) = ours {
                    let mut buf = [0u8; RST_LEN];
                    emit_rst(ours, from, seg.dst_port, seg.src_port, seg.ack, &mut buf);
                    self.resets.push((ours, from, buf));
                }
            }
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

    /// Fail every probe whose deadline passed; return the SYNs due for retransmission.
    fn expire(&mut self, now: Instant) -> Vec<(Syn, u16)> {
        let mut again = Vec::new();
        while let Some((_, slot, epoch)) = self.pop_wake(now) {
            let s = &mut self.slots[usize::from(slot)];
            let Some(live) = s.live.as_mut().filter(|_| s.epoch == epoch) else {
                continue; // answered meanwhile
            };
            if now >= live.deadline {
                self.counters.timeouts.fetch_add(1, Relaxed);
                let limit = live.timeout;
                self.finish(slot, Err(CheckError::Timeout(limit)));
            } else {
                again.push((live.syn, slot));
                let wake = (now + live.rto).min(live.deadline);
                live.rto *= 2;
                self.deadlines.push(Reverse((wake, slot, epoch)));
            }
        }
        again
    }
}
