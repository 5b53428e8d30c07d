//! Helpers for the keepalived.conf health tests: a stoppable HTTP backend that counts client
//! requests apart from health checks, waiting on a real's health in the API, and requests
//! through the virtual service.
#![allow(dead_code)]

use super::common::{Rvsd, TempDir};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// rvsd (proxy engine) on a keepalived.conf of `text`, written in a directory that lives as
/// long as the returned [`TempDir`] (keep it with the daemon); also the file's path, to rewrite
/// it before a reload.
pub fn start_keepalived(text: &str) -> (Rvsd, TempDir, PathBuf) {
    let dir = TempDir::new();
    let path = write_conf(&dir, text);
    let d = Rvsd::start(
        "",
        &[
            "--keepalived-conf",
            path.to_str().unwrap(),
            "--engine",
            "proxy",
        ],
    );
    (d, dir, path)
}

/// An HTTP/1.0 backend on loopback answering `<name>\n`; it can be stopped (connections are
/// then refused) and restarted on the same port. Requests for `/client` are counted apart from
/// the others (the checkers').
pub struct Web {
    pub addr: SocketAddr,
    pub name: String,
    pub client_hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Web {
    pub fn start(name: &str) -> Web {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut w = Web {
            addr: l.local_addr().unwrap(),
            name: name.to_string(),
            client_hits: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
        };
        w.serve(l);
        w
    }

    fn serve(&mut self, l: TcpListener) {
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        self.stop = stop.clone();
        let hits = self.client_hits.clone();
        let body = format!("{}\n", self.name);
        self.thread = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => answer(s, &body, &hits),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
    }

    /// Stop listening: connections are refused from now on.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    /// Listen again on the same port.
    pub fn restart(&mut self) {
        let l = TcpListener::bind(self.addr).unwrap();
        self.serve(l);
    }

    pub fn hits(&self) -> usize {
        self.client_hits.load(Ordering::SeqCst)
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        self.stop();
    }
}

fn answer(mut s: TcpStream, body: &str, hits: &AtomicUsize) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    if req.starts_with(b"GET /client ") {
        hits.fetch_add(1, Ordering::SeqCst);
    }
    let _ = write!(
        s,
        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// One client request through the virtual service: the answering backend's name, or `None`
/// if the connection failed.
pub fn fetch(vip: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&vip, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET /client HTTP/1.0\r\nHost: t\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200")
        .then(|| body.trim().to_string())
}

/// `n` requests; the answering names (failed ones as `"-"`).
pub fn fetch_many(vip: SocketAddr, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| fetch(vip).unwrap_or_else(|| "-".into()))
        .collect()
}

/// The API's view of real `real` in service `vip` (TCP).
pub fn real_view(d: &Rvsd, vip: SocketAddr, real: SocketAddr) -> Option<Value> {
    let r = d.get(&format!("/v1/services/tcp:{vip}"));
    if r.status != 200 {
        return None;
    }
    r.json()["reals"]
        .as_array()?
        .iter()
        .find(|v| v["real"]["addr"] == real.to_string())
        .cloned()
}

/// The observed health of a real (`up`, `down`, `unknown`), `None` if not listed.
pub fn health(d: &Rvsd, vip: SocketAddr, real: SocketAddr) -> Option<String> {
    real_view(d, vip, real).and_then(|v| v["real"]["health"].as_str().map(String::from))
}

/// Poll (every 20 ms) until `cond` holds; the time it took, or panic after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if cond() {
            return t0.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what}: not within {limit:?}");
}

/// `-L -n` as rvsadm prints it, from the daemon's services.
pub fn listing(d: &Rvsd) -> String {
    let services: Vec<rvs_api::ServiceView> =
        serde_json::from_str(&d.get("/v1/services").body).unwrap();
    let opts = rvs_config::ipvsadm::ListOptions::default();
    rvs_config::ipvsadm::list_services(&services, &opts)
}

/// The `  -> addr ...` line of `real` in a listing, if listed.
pub fn listed_line(listing: &str, real: SocketAddr) -> Option<String> {
    let needle = format!("  -> {real} ");
    listing
        .lines()
        .find(|l| l.starts_with(&needle))
        .map(String::from)
}

/// Write a keepalived.conf into the test's directory; its path.
pub fn write_conf(d: &super::common::TempDir, text: &str) -> std::path::PathBuf {
    let p = d.0.join("keepalived.conf");
    std::fs::write(&p, text).unwrap();
    p
}

/// A free loopback port for the virtual service.
pub fn vip() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], super::common::free_port()))
}
