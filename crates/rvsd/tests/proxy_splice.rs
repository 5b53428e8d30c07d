//! `[daemon] proxy_splice`: the proxy engine splices bulk TCP data through pipes by default and
//! copies it with `proxy_splice = false`. Seen from outside: the bytes arrive intact either
//! way, and after a bulk transfer the worker's pipe pool holds pipes only when it spliced.
//! Linux only (splice, /proc); no root needed.

#![cfg(target_os = "linux")]

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

const BULK: usize = 4 << 20;

/// A real that reads a connection to its end and answers with the byte count and a checksum.
fn counting_real() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let (mut n, mut sum) = (0usize, 0u64);
                let mut buf = vec![0; 64 * 1024];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => {
                            n += k;
                            sum = buf[..k].iter().fold(sum, |a, &b| a.wrapping_add(b as u64));
                        }
                    }
                }
                let _ = s.write_all(format!("{n} {sum}\n").as_bytes());
            });
        }
    });
    addr
}

/// Sends `BULK` patterned bytes through `vip`; what the real counted.
fn send_bulk(vip: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = loop {
        match TcpStream::connect(vip) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("connect {vip}: {e}"),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let data: Vec<u8> = (0..BULK).map(|i| (i % 251) as u8).collect();
    s.write_all(&data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply.trim().to_string()
}

/// Pipes among the process's open descriptors.
fn pipes(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|t| t.to_string_lossy().starts_with("pipe:"))
        .count()
}

/// rvsd with `splice_line` in `[daemon]` relays `BULK` bytes to a counting real: the real's
/// answer, and how many pipe descriptors rvsd holds afterwards that it did not hold before
/// (it may hold one from elsewhere: the process that started it).
fn run(splice_line: &str) -> (String, usize) {
    let real = counting_real();
    let vip: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = format!(
        "[daemon]\nengines = [\"proxy\"]\nproxy_workers = 1\n{splice_line}\n{}",
        fullnat_config(vip, &[real])
    );
    let mut d = Rvsd::start(&config, &[]);
    let before = pipes(d.child.id());
    let reply = send_bulk(vip);
    let after = pipes(d.child.id());
    let _ = d.child.kill();
    let _ = d.child.wait();
    (reply, after - before)
}

#[test]
fn bulk_data_is_spliced_by_default_and_copied_with_proxy_splice_false() {
    let want: u64 = (0..BULK).map(|i| (i % 251) as u64).sum();
    let want = format!("{BULK} {want}");
    let (reply, spliced_pipes) = run("");
    assert_eq!(reply, want, "spliced");
    // The pool keeps the worker's pipe (two descriptors) once the transfer is over.
    assert!(
        spliced_pipes >= 2,
        "new pipes after a spliced transfer: {spliced_pipes}"
    );
    let (reply, copied_pipes) = run("proxy_splice = false");
    assert_eq!(reply, want, "copied");
    assert_eq!(copied_pipes, 0, "new pipes after a copied transfer");
}
