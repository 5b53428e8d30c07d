//! Moving bytes between a client and a real: `splice(2)` through a pipe borrowed from a
//! per-worker pool (only while data is in flight, so idle connections hold no pipe and no
//! buffer), or a plain read/write copy with a small buffer where splice is unavailable.
//!
//! A direction ends at EOF by shutting down the write side of the other socket, so a client's
//! FIN reaches the real while the real's reply still flows back (half-close).

use std::cell::RefCell;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes moved per splice call (the default pipe capacity).
const SPLICE_CHUNK: usize = 64 * 1024;
/// Buffer of the copy fallback (allocated when data first arrives).
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
}

/// Relays `src` → `dst` until EOF on `src` (then shuts down `dst`'s write side) or an error.
pub async fn pump(
    src: &TcpStream,
    dst: &TcpStream,
    use_splice: bool,
    on: &impl OnChunk,
) -> io::Result<()> {
    if use_splice {
        pump_splice(src, dst, on).await?;
    } else {
        pump_copy(src, dst, on).await?;
    }
    // Half-close: pass the FIN on; ENOTCONN means the peer is already gone.
    match socket2::SockRef::from(dst).shutdown(Shutdown::Write) {
        Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
        _ => Ok(()),
    }
}

async fn pump_splice(src: &TcpStream, dst: &TcpStream, on: &impl OnChunk) -> io::Result<()> {
    let (src_fd, dst_fd) = (src.as_raw_fd(), dst.as_raw_fd());
    loop {
        src.readable().await?;
        let pipe = take_pipe()?;
        let wfd = pipe.write.as_raw_fd();
        let n = match src.try_io(Interest::READABLE, || splice(src_fd, wfd, SPLICE_CHUNK)) {
            Ok(0) => {
                put_pipe(pipe);
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                put_pipe(pipe);
                continue;
            }
            Err(e) => return Err(e),
        };
        on.chunk(n);
        let rfd = pipe.read.as_raw_fd();
        let mut left = n;
        while left > 0 {
            dst.writable().await?;
            match dst.try_io(Interest::WRITABLE, || splice(rfd, dst_fd, left)) {
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e), // the pipe still holds data: dropped, not pooled
            }
        }
        put_pipe(pipe);
    }
}

async fn pump_copy(src: &TcpStream, dst: &TcpStream, on: &impl OnChunk) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        src.readable().await?;
        if buf.is_empty() {
            buf.resize(COPY_BUF, 0);
        }
        let n = match src.try_read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        on.chunk(n);
        write_all(dst, &buf[..n]).await?;
    }
}

/// Writes all of `data` to a shared `&TcpStream`.
pub async fn write_all(dst: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        dst.writable().await?;
        match dst.try_write(data) {
            Ok(m) => data = &data[m..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
