//! Echo reals and clients for churn tests: TCP and UDP echo servers on a fixed loopback port
//! that tag what they send with their id, can crash (nothing listens on the port any more,
//! connections cut) and come back on the same port; a TCP session and a UDP client that check
//! every byte they get back; the count of the events that may cut a client's connection; a
//! small random number generator.

use socket2::{Domain, SockRef, Socket, Type};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Largest message a TCP session sends (the echo must fit the sockets' buffers: the client
/// writes a whole message before it reads).
pub const MAX_MSG: usize = 48 * 1024;
/// Requests a UDP client socket makes before the client takes a new one (a new session).
pub const PER_SOCKET: u64 = 200;
/// Tries of one UDP request, each waiting [`TRY_WAIT`] for the reply.
pub const TRIES: u32 = 10;
pub const TRY_WAIT: Duration = Duration::from_millis(100);

/// xorshift64*: enough randomness for sizes, payloads and the mutator's choices.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Counts events that may legitimately cut a client's connection (a real crashing, an
/// operator reset): odd while one is under way. A failure is excused only if a cut began or
/// ended between the session's start and the moment the cut under way then, if any, ended.
#[derive(Default)]
pub struct Cuts(AtomicU64);

impl Cuts {
    pub fn begin(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    pub fn end(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    pub fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    /// The count once no cut is under way.
    pub fn settled(&self) -> u64 {
        loop {
            let n = self.now();
            if n.is_multiple_of(2) {
                return n;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// What the client threads did.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: u64,
    /// Failed while a crash or reset overlapped.
    pub excused: u64,
    pub bytes: u64,
    pub per_real: [u64; 3],
}

/// Starts `n` client threads that run `session` (client index, its random numbers, its tally)
/// until `stop`; a session's `Err` is excused if a cut overlapped it, else kept with the state
/// in `snap` at the time.
pub fn clients<F>(
    n: usize,
    cuts: &Arc<Cuts>,
    stop: &Arc<AtomicBool>,
    snap: &Arc<Mutex<String>>,
    session: F,
) -> Vec<thread::JoinHandle<(Tally, Vec<String>)>>
where
    F: Fn(usize, &mut Rng, &mut Tally) -> Result<u8, String> + Send + Clone + 'static,
{
    (0..n)
        .map(|i| {
            let (cuts, stop, snap) = (Arc::clone(cuts), Arc::clone(stop), Arc::clone(snap));
            let session = session.clone();
            thread::spawn(move || {
                let mut rng = Rng(0x1234_5678 + i as u64 * 0x9e37_79b9);
                let mut t = Tally::default();
                let mut failures = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let before = cuts.now();
                    match session(i, &mut rng, &mut t) {
                        Ok(id) => {
                            t.ok += 1;
                            t.per_real[id as usize] += 1;
                        }
                        // A crash or reset may have cut it: one that caused it began after
                        // `before` was read, or was under way then and has ended since
                        // (settled waits for the one under way now).
                        Err(_) if cuts.settled() != before => t.excused += 1,
                        Err(why) => failures.push(format!("{why} [{}]", snap.lock().unwrap())),
                    }
                }
                (t, failures)
            })
        })
        .collect()
}

/// Joins the client threads: their tallies summed, and every unexcused failure.
pub fn join(handles: Vec<thread::JoinHandle<(Tally, Vec<String>)>>) -> (Tally, Vec<String>) {
    let mut total = Tally::default();
    let mut failures = Vec::new();
    for h in handles {
        let (t, f) = h.join().expect("client thread");
        total.ok += t.ok;
        total.excused += t.excused;
        total.bytes += t.bytes;
        for i in 0..3 {
            total.per_real[i] += t.per_real[i];
        }
        failures.extend(f);
    }
    (total, failures)
}

/// An echo real on a fixed loopback port that tags what it sends with its id (0, 1, 2), can
/// crash (nothing listens on the port any more; TCP connections reset) and come back on the
/// same port: [`TcpEchoReal`] greets each connection with its id byte, then echoes;
/// [`UdpEchoReal`] answers each datagram with its id byte and the datagram.
pub struct EchoReal<K: Kind> {
    id: u8,
    addr: SocketAddr,
    running: Mutex<Option<Running>>,
    /// While crashed: the socket that keeps the port ours (see [`Kind::reserve`]).
    reserve: Mutex<Option<Socket>>,
    kind: std::marker::PhantomData<K>,
}

pub type TcpEchoReal = EchoReal<Tcp>;
pub type UdpEchoReal = EchoReal<Udp>;

struct Running {
    stop: Arc<AtomicBool>,
    /// TCP: the connections accepted, to reset at a crash.
    conns: Arc<Mutex<Vec<TcpStream>>>,
    thread: thread::JoinHandle<()>,
}

/// What an [`EchoReal`] serves.
pub trait Kind: Sized {
    type Socket: Send + 'static;
    /// The serving socket on `addr` (port 0: a free one).
    fn bind(addr: SocketAddr) -> std::io::Result<Self::Socket>;
    fn local_addr(s: &Self::Socket) -> SocketAddr;
    /// Serve on `s` until `stop`; accepted TCP connections go to `conns`.
    fn serve(id: u8, s: Self::Socket, stop: Arc<AtomicBool>, conns: Arc<Mutex<Vec<TcpStream>>>);
    /// A socket that holds the port while the real is down, made before the serving socket
    /// closes, without serving: otherwise another process's socket (a client's ephemeral port
    /// on a busy test machine) could take the port, and the real could never come back.
    fn reserve(addr: SocketAddr) -> std::io::Result<Socket>;
    /// The serving socket again, from the reserve.
    fn resume(reserve: Socket, addr: SocketAddr) -> std::io::Result<Self::Socket>;
}

pub struct Tcp;
pub struct Udp;

impl Kind for Tcp {
    type Socket = TcpListener;
    /// With SO_REUSEPORT, so that the reserve can be bound beside it.
    fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
        let s = Self::reserve(addr)?;
        s.listen(1024)?;
        Ok(s.into())
    }
    /// Bound, not listening: a SYN to the port finds no listener and is refused.
    fn reserve(addr: SocketAddr) -> std::io::Result<Socket> {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        s.set_reuse_port(true)?;
        s.bind(&addr.into())?;
        Ok(s)
    }
    fn resume(reserve: Socket, _: SocketAddr) -> std::io::Result<TcpListener> {
        reserve.listen(1024)?;
        Ok(reserve.into())
    }
    fn local_addr(s: &TcpListener) -> SocketAddr {
        s.local_addr().unwrap()
    }
    fn serve(
        id: u8,
        listener: TcpListener,
        stop: Arc<AtomicBool>,
        conns: Arc<Mutex<Vec<TcpStream>>>,
    ) {
        listener.set_nonblocking(true).unwrap();
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    conns.lock().unwrap().push(stream.try_clone().unwrap());
                    thread::spawn(move || echo(id, stream));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
        // The listener closes here: connects are refused from now on.
    }
}

impl Kind for Udp {
    type Socket = UdpSocket;
    /// With SO_REUSEADDR, so that the reserve can share the port.
    fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        Ok(s.into())
    }
    /// Connected to the discard port: a datagram from anyone else matches no socket and draws
    /// ICMP port unreachable, as if nothing were bound.
    fn reserve(addr: SocketAddr) -> std::io::Result<Socket> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        s.connect(&SocketAddr::from(([127, 0, 0, 1], 9)).into())?;
        Ok(s)
    }
    /// A serving socket beside the reserve, then the reserve goes.
    fn resume(reserve: Socket, addr: SocketAddr) -> std::io::Result<UdpSocket> {
        let s = Self::bind(addr)?;
        drop(reserve);
        Ok(s)
    }
    fn local_addr(s: &UdpSocket) -> SocketAddr {
        s.local_addr().unwrap()
    }
    fn serve(id: u8, socket: UdpSocket, stop: Arc<AtomicBool>, _: Arc<Mutex<Vec<TcpStream>>>) {
        socket
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let mut buf = vec![0u8; 2048];
        while !stop.load(Ordering::SeqCst) {
            // An error is a timeout, or the ICMP error of an earlier reply.
            if let Ok((n, from)) = socket.recv_from(&mut buf[1..]) {
                buf[0] = id;
                let _ = socket.send_to(&buf[..n + 1], from);
            }
        }
        // The socket closes here: datagrams to the port draw ICMP port unreachable.
    }
}

impl<K: Kind> EchoReal<K> {
    /// A real tagged `id` on a free port of 127.0.0.1, serving.
    pub fn new(id: u8) -> Arc<EchoReal<K>> {
        let socket = K::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let real = Arc::new(EchoReal {
            id,
            addr: K::local_addr(&socket),
            running: Mutex::new(None),
            reserve: Mutex::new(None),
            kind: std::marker::PhantomData,
        });
        real.serve(socket);
        real
    }

    fn serve(&self, socket: K::Socket) {
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (id, s, c) = (self.id, Arc::clone(&stop), Arc::clone(&conns));
        let thread = thread::spawn(move || K::serve(id, socket, s, c));
        *self.running.lock().unwrap() = Some(Running {
            stop,
            conns,
            thread,
        });
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn id(&self) -> u8 {
        self.id
    }

    pub fn is_up(&self) -> bool {
        self.running.lock().unwrap().is_some()
    }

    /// Nothing listens on the port any more; every TCP connection is reset.
    pub fn crash(&self) {
        let mut running = self.running.lock().unwrap();
        let Some(r) = running.take() else {
            return;
        };
        let reserve = K::reserve(self.addr)
            .unwrap_or_else(|e| panic!("reserve {} while down: {e}", self.addr));
        *self.reserve.lock().unwrap() = Some(reserve);
        r.stop.store(true, Ordering::SeqCst);
        r.thread.join().unwrap();
        for s in r.conns.lock().unwrap().drain(..) {
            let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Back on the same port (nothing if it is up).
    pub fn restart(&self) {
        if self.is_up() {
            return;
        }
        let reserve = self
            .reserve
            .lock()
            .unwrap()
            .take()
            .expect("crashed: port reserved");
        let socket = K::resume(reserve, self.addr)
            .unwrap_or_else(|e| panic!("serve {} again: {e}", self.addr));
        self.serve(socket);
    }

    /// Forget TCP connections that have ended (keeps the crash list short).
    pub fn prune(&self) {
        if let Some(r) = self.running.lock().unwrap().as_ref() {
            r.conns
                .lock()
                .unwrap()
                .retain(|s| s.peer_addr().is_ok() && s.take_error().is_ok());
        }
    }
}

/// One connection of a real: the id byte, then everything echoed until the client's FIN,
/// answered with ours.
fn echo(id: u8, mut s: TcpStream) {
    // Without it Nagle holds each echoed chunk after the first until the proxy's delayed ACK.
    s.set_nodelay(true).unwrap();
    if s.write_all(&[id]).is_err() {
        return;
    }
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => {
                let _ = s.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// One client session: connect, read the real's id, 1-4 messages echoed exactly, our FIN,
/// then the real's FIN and nothing else. Err(reason) if the session did not complete; a
/// corrupted byte panics at once (never excusable).
pub fn tcp_session(
    vip: SocketAddr,
    from: IpAddr,
    rng: &mut Rng,
    bytes: &mut u64,
) -> Result<u8, String> {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    // The port is picked at connect, unique per destination, as for an unbound socket: a
    // port picked at bind must be free of every socket (TIME_WAIT ones included), and a few
    // thousand sessions a second from one address run out of them.
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on an open socket with a pointer to a c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "IP_BIND_ADDRESS_NO_PORT: {}",
        std::io::Error::last_os_error()
    );
    sock.bind(&SocketAddr::new(from, 0).into()).unwrap();
    sock.connect(&vip.into())
        .map_err(|e| format!("connect: {e}"))?;
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut id = [0u8];
    s.read_exact(&mut id)
        .map_err(|e| format!("greeting: {e}"))?;
    assert!(id[0] < 3, "greeting {} is no real's id", id[0]);
    for _ in 0..1 + rng.below(4) {
        let len = 1 + rng.below(MAX_MSG as u64) as usize;
        let mut out = vec![0u8; len];
        rng.fill(&mut out);
        s.write_all(&out).map_err(|e| format!("write: {e}"))?;
        let mut back = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match s.read(&mut back[got..]) {
                Ok(0) => return Err(format!("EOF after {got} of {len} echoed bytes")),
                Ok(n) => {
                    assert_eq!(
                        back[got..got + n],
                        out[got..got + n],
                        "echo differs from what was sent (bytes {got}..{} of {len})",
                        got + n
                    );
                    got += n;
                }
                Err(e) => return Err(format!("read after {got} of {len}: {e}")),
            }
        }
        *bytes += len as u64;
    }
    s.shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut rest = [0u8; 64];
    match s.read(&mut rest) {
        Ok(0) => Ok(id[0]),
        Ok(n) => panic!("{n} bytes nobody sent arrived after the echo"),
        Err(e) => Err(format!("final read: {e}")),
    }
}

/// The datagram of request `seq` of client `client`: its index, the sequence number, and up to
/// 1,200 bytes that follow from both (so any reply can be checked against what was sent).
pub fn udp_request(client: u8, seq: u64) -> Vec<u8> {
    let mut rng = Rng((u64::from(client) << 56) ^ seq ^ 0x5851_f42d_4c95_7f2d);
    let mut d = vec![0u8; 9 + rng.below(1201) as usize];
    d[0] = client;
    d[1..9].copy_from_slice(&seq.to_le_bytes());
    rng.fill(&mut d[9..]);
    d
}

/// One client: a socket, and the number of its next request.
pub struct UdpClient {
    index: u8,
    socket: Option<UdpSocket>,
    seq: u64,
}

impl UdpClient {
    pub fn new(index: u8) -> UdpClient {
        UdpClient {
            index,
            socket: None,
            seq: 0,
        }
    }

    /// One request answered: sent (again after each TRY_WAIT without its reply, TRIES times
    /// at most); returns the id of the real that answered. Every reply that arrives is checked
    /// (an altered or foreign one panics); late replies to earlier requests are skipped.
    pub fn ask(&mut self, vip: SocketAddr, bytes: &mut u64) -> Result<u8, String> {
        if self.seq.is_multiple_of(PER_SOCKET) {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(TRY_WAIT)).unwrap();
            self.socket = Some(s);
        }
        let s = self.socket.as_ref().unwrap();
        let seq = self.seq;
        self.seq += 1;
        let out = udp_request(self.index, seq);
        let mut buf = vec![0u8; 2048];
        for _ in 0..TRIES {
            // A send may fail with the ICMP error of an earlier datagram: the next try resends.
            let _ = s.send_to(&out, vip);
            loop {
                let (n, from) = match s.recv_from(&mut buf) {
                    Ok(r) => r,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        break;
                    }
                    Err(_) => break,
                };
                assert_eq!(from, vip, "a reply not from the VIP");
                assert!(
                    n >= 10 && buf[0] < 3,
                    "a reply of {n} bytes tagged {}",
                    buf[0]
                );
                let got = &buf[1..n];
                assert_eq!(got[0], self.index, "another client's reply arrived here");
                let got_seq = u64::from_le_bytes(got[1..9].try_into().unwrap());
                assert!(got_seq <= seq, "a reply to request {got_seq} not yet sent");
                assert!(
                    got == udp_request(self.index, got_seq),
                    "the reply to request {got_seq} differs from the request"
                );
                if got_seq == seq {
                    *bytes += out.len() as u64;
                    return Ok(buf[0]);
                }
            }
        }
        Err(format!("request {seq}: no reply to {TRIES} tries"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Down, a TCP real refuses connects and a UDP real's port answers with port unreachable
    /// (ECONNREFUSED on a connected socket), while the port stays theirs; back, both serve.
    #[test]
    fn crashed_reals_refuse_and_come_back_on_their_port() {
        let (tcp, udp) = (TcpEchoReal::new(1), UdpEchoReal::new(2));
        let mut rng = Rng(1);
        let mut bytes = 0;
        let lo: IpAddr = [127, 0, 0, 1].into();
        assert_eq!(tcp_session(tcp.addr(), lo, &mut rng, &mut bytes), Ok(1));
        assert_eq!(UdpClient::new(0).ask(udp.addr(), &mut bytes), Ok(2));
        tcp.crash();
        udp.crash();
        let refused = TcpStream::connect(tcp.addr()).expect_err("refused while down");
        assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.connect(udp.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c.send(b"x").unwrap();
        let err = c.recv(&mut [0u8; 16]).expect_err("no answer while down");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
        // The ports are still ours: nobody else can bind them.
        assert!(TcpListener::bind(tcp.addr()).is_err());
        assert!(UdpSocket::bind(udp.addr()).is_err());
        tcp.restart();
        udp.restart();
        assert_eq!(tcp_session(tcp.addr(), lo, &mut rng, &mut bytes), Ok(1));
        assert_eq!(UdpClient::new(1).ask(udp.addr(), &mut bytes), Ok(2));
    }
}
