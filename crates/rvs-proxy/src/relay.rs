//! Moving bytes between a client and a real, with no per-connection buffer:
//!
//! * small reads (requests, responses) are copied through one buffer per worker thread and
//!   written straight on (a heap buffer is only taken if the destination cannot take it all);
//! * once a read fills that buffer the direction is bulk and switches to `splice(2)` through a
//!   pipe borrowed from a per-worker pool while data is in flight (HAProxy's "splice-auto");
//!   it switches back when reads get small again. `splice = false` disables splicing. When no
//!   pipe can be made (out of descriptors), that chunk is copied instead and the connection
//!   goes on (counted in `splice_fallback`).
//!
//! A copy read shorter than the buffer means the socket is drained: its readiness is cleared then
//! (tokio's tick-checked `clear_ready`, which cannot lose a wake-up, and never clears the
//! read-closed state, so a FIN that came with the data is still seen), saving the `EAGAIN` read
//! that would otherwise follow every message. When the source's FIN is already in, its EOF is
//! read at once, and the last bytes are written with `MSG_MORE` so the FIN passed on right after
//! leaves in the same segment (a real's answer and close usually arrive together: a segment less
//! per connection); a reset found by that read is returned after the bytes went out.
//!
//! A direction ends at EOF by shutting down the write side of the other socket, so a client's
//! FIN reaches the real while the real's reply still flows back (half-close).

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use tokio::io::unix::AsyncFd;

/// A non-blocking TCP socket registered with the worker's reactor.
pub type Sock = AsyncFd<TcpStream>;

/// Bytes moved per splice call (the default pipe capacity).
const SPLICE_CHUNK: usize = 64 * 1024;
/// The per-worker copy buffer; a read that fills it makes the direction bulk (spliced).
const COPY_BUF: usize = 16 * 1024;
/// Pipes kept in each worker's pool.
const POOL_MAX: usize = 64;

/// A pipe used as splice's in-kernel buffer.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid two-element array for pipe2 to fill.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        unsafe {
            Ok(Pipe {
                read: OwnedFd::from_raw_fd(fds[0]),
                write: OwnedFd::from_raw_fd(fds[1]),
            })
        }
    }
}

thread_local! {
    /// Each worker is one thread with a current-thread runtime: its pool needs no lock.
    static PIPES: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
    /// The worker's copy buffer (never borrowed across an await).
    static COPY: RefCell<Box<[u8]>> = RefCell::new(vec![0; COPY_BUF].into_boxed_slice());
}

fn take_pipe() -> io::Result<Pipe> {
    match PIPES.with(|p| p.borrow_mut().pop()) {
        Some(p) => Ok(p),
        None => Pipe::new(),
    }
}

/// Returns an empty pipe to the pool (a pipe that still holds data must be dropped instead).
fn put_pipe(p: Pipe) {
    PIPES.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_MAX {
            pool.push(p);
        }
    });
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain syscall on descriptors the caller keeps open; null offsets (streams).
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Called with the size of every chunk read from the source.
pub trait OnChunk {
    fn chunk(&self, bytes: usize);
    /// A bulk chunk went through the copy buffer because no pipe could be made for it.
    fn splice_fallback(&self) {}
}

/// Relays `src` → `dst` until EOF on `src` or an error. At EOF the FIN is passed on with
/// `shutdown(SHUT_WR)` on `dst` — unless `other_done` says the opposite direction has already
/// ended, in which case the caller closes both sockets at once and `close` sends the FIN.
pub async fn pump(
    src: &Sock,
    dst: &Sock,
    use_splice: bool,
    on: &impl OnChunk,
    other_done: impl FnOnce() -> bool,
) -> io::Result<()> {
    let mut bulk = false;
    loop {
        let spliced = match bulk {
            true => splice_once(src, dst).await?,
            false => None,
        };
        let moved = match spliced {
            Some(moved) => moved,
            None if bulk => {
                // No pipe (out of descriptors): this chunk goes through the copy buffer, and
                // the connection goes on.
                on.splice_fallback();
                copy_once(src, dst).await?
            }
            None => copy_once(src, dst).await?,
        };
        match moved {
            Moved::Eof => break,
            Moved::Last { n } => {
                on.chunk(n);
                break;
            }
            Moved::Bytes { n, full } => {
                on.chunk(n);
                bulk = use_splice && full;
            }
            Moved::Nothing => {}
        }
    }
    if other_done() {
        return Ok(());
    }
    // Half-close: pass the FIN on; ENOTCONN means the peer is already gone.
    match socket2::SockRef::from(dst.get_ref()).shutdown(Shutdown::Write) {
        Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
        _ => Ok(()),
    }
}

/// What one read moved.
enum Moved {
    /// The source reached EOF.
    Eof,
    /// `n` bytes went through, the last before the source's EOF (already read): the FIN is to
    /// be passed on at once (they wait for it in the send queue, `MSG_MORE`).
    Last { n: usize },
    /// `n` bytes went through; `full` if the read filled the copy buffer (bulk data).
    Bytes { n: usize, full: bool },
    /// A spurious wake-up.
    Nothing,
}

/// One read through the worker's buffer, written straight on.
async fn copy_once(src: &Sock, dst: &Sock) -> io::Result<Moved> {
    let mut ready = src.readable().await?;
    // Read and try to write in one synchronous step: the thread's buffer is free again after.
    let step = COPY.with(|buf| {
        let mut buf = buf.borrow_mut();
        let mut n = match ready.try_io(|s| s.get_ref().read(&mut buf)) {
            Ok(Ok(0)) => return Ok((Moved::Eof, Vec::new(), None)),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => return Ok((Moved::Nothing, Vec::new(), None)),
        };
        // What follows these bytes, when the read drained a source whose FIN is already in
        // (epoll said read-closed): the EOF read is made now instead of next round. A clean
        // EOF makes them the last bytes: sent with MSG_MORE they wait in the send queue for
        // the FIN that pump passes on right after, and leave in one segment with it — a
        // segment less per connection when a real answers and closes. A reset instead (the
        // read fails) is returned only after the bytes went out as usual, so the other side
        // still gets them before the reset, as it would without the early read.
        let mut last = false;
        let mut failed = None;
        if n < buf.len() {
            // A short read drained the source: the EAGAIN read is skipped (readiness cleared)
            // — unless the early read found more bytes, which a FIN already in should rule
            // out; then the next round reads again rather than wait for an edge that may
            // never come (the FIN is in, no new data will arrive to wake it).
            let mut drained = true;
            if ready.ready().is_read_closed() {
                match src.get_ref().read(&mut buf[n..]) {
                    Ok(0) => last = true,
                    Ok(more) => {
                        n += more;
                        drained = false;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => failed = Some(e),
                }
            }
            if drained {
                ready.clear_ready();
            }
        }
        let sent = match last {
            true => socket2::SockRef::from(dst.get_ref())
                .send_with_flags(&buf[..n], libc::MSG_MORE | libc::MSG_NOSIGNAL),
            false => dst.get_ref().write(&buf[..n]),
        };
        let written = match sent {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        let rest = buf[written..n].to_vec(); // empty (no allocation) in the common case
        let moved = match last {
            true => Moved::Last { n },
            false => Moved::Bytes {
                n,
                full: n == buf.len(),
            },
        };
        Ok((moved, rest, failed))
    });
    let (moved, rest, failed) = step?;
    if !rest.is_empty() {
        write_all(dst, &rest).await?;
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(moved),
    }
}

/// One `splice` from the source into a pooled pipe, then out of it into the destination.
/// `None` if no pipe could be made (`EMFILE`, `ENFILE`, ...): nothing was read, the source is
/// still readable, and the caller copies instead.
async fn splice_once(src: &Sock, dst: &Sock) -> io::Result<Option<Moved>> {
    let mut ready = src.readable().await?;
    let Ok(pipe) = take_pipe() else {
        return Ok(None);
    };
    let wfd = pipe.write.as_raw_fd();
    let n = match ready.try_io(|s| splice(s.as_raw_fd(), wfd, SPLICE_CHUNK)) {
        Ok(Ok(0)) => {
            put_pipe(pipe);
            return Ok(Some(Moved::Eof));
        }
        Ok(Ok(n)) => n,
        Ok(Err(e)) => return Err(e),
        Err(_would_block) => {
            put_pipe(pipe);
            return Ok(Some(Moved::Nothing));
        }
    };
    // No "short read means drained" here: splice stops when the pipe's slots are full, which
    // can be well under SPLICE_CHUNK with data still queued; only EAGAIN says it is drained.
    drop(ready);
    let rfd = pipe.read.as_raw_fd();
    let mut left = n;
    while left > 0 {
        // Optimistic first: the destination is usually writable.
        match splice(rfd, dst.as_raw_fd(), left) {
            Ok(m) => left -= m,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut w = dst.writable().await?;
                match w.try_io(|s| splice(rfd, s.as_raw_fd(), left)) {
                    Ok(Ok(m)) => left -= m,
                    Ok(Err(e)) => return Err(e), // the pipe still holds data: dropped, not pooled
                    Err(_would_block) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
    put_pipe(pipe);
    Ok(Some(Moved::Bytes {
        n,
        full: n >= COPY_BUF,
    }))
}

/// Writes all of `data` to `dst`.
pub async fn write_all(dst: &Sock, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let mut w = dst.writable().await?;
        match w.try_io(|s| s.get_ref().write(data)) {
            Ok(Ok(m)) => data = &data[m..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
    Ok(())
}

/// Registers an owned socket with the current worker's reactor.
pub fn register<T: AsRawFd + OwnsFd>(inner: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: `T` owns its descriptor (std sockets): it stays open and the same for as long as
    // the `AsyncFd` holds it, which is what `register` requires.
    unsafe { Ok(AsyncFd::register(inner)?) }
}

/// Types that own the descriptor they return from `as_raw_fd` (never swap or close it).
pub trait OwnsFd {}
impl OwnsFd for TcpStream {}
impl OwnsFd for std::net::TcpListener {}
