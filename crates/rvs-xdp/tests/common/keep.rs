//! Support of the restart tests (`keep_flows*.rs`): a keep-alive HTTP client held across an
//! engine's exit, where the engine keeps its state, and whether a program is attached.

#![allow(dead_code)]

use rvs_testbed::Netns;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// One keep-alive request on `s`: the body (the real's name).
pub fn get(s: &mut TcpStream) -> std::io::Result<String> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                return Ok(body[..len].trim().to_string());
            }
        }
    }
}

/// `/sys/fs/bpf/rvs/xdp/<inode of namespace ns>`: where an engine there keeps its state.
pub fn kept_root(ns: &Netns) -> PathBuf {
    let ino = ns.in_thread(|| {
        std::fs::metadata("/proc/thread-self/ns/net")
            .expect("netns")
            .ino()
    });
    PathBuf::from(format!("/sys/fs/bpf/rvs/xdp/{ino}"))
}

/// Whether an XDP program is attached to `dev` in `ns`.
pub fn has_xdp(ns: &Netns, dev: &str) -> bool {
    ns.ip(&["link", "show", dev]).unwrap().contains("xdp")
}

/// How many pins are left under `root` (0 when it is gone).
pub fn pins(root: &std::path::Path) -> usize {
    std::fs::read_dir(root).map_or(0, |d| d.count())
}
