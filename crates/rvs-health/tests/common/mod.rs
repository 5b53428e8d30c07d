//! Shared helpers: checkers built from keepalived.conf text, and small loopback servers.
#![allow(dead_code)]

use rvs_config::keepalived::{Checker, Includes, KeepalivedConfig, parse_with};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Parse a config (panics with the located errors: a test bug).
pub fn config(text: &str) -> KeepalivedConfig {
    parse_with(text, Path::new("test.conf"), Includes::Refuse).unwrap_or_else(|e| panic!("{e}"))
}

/// The single checker of a one-real config whose real is `real` and whose checker block is
/// `block` (keepalived syntax).
pub fn checker(real: SocketAddr, block: &str) -> Checker {
    let vip = if real.is_ipv6() {
        "fd00::1"
    } else {
        "10.255.0.1"
    };
    let text = format!(
        "virtual_server {vip} 80 {{\n real_server {} {} {{\n{block}\n }}\n}}\n",
        real.ip(),
        real.port()
    );
    config(&text).virtual_servers[0].reals[0].checkers[0].clone()
}

#[allow(unused_imports)] // not every test binary uses it
pub use rvs_testbed::free_port;

/// An HTTP/1.0 server on loopback answering every request with `status` and the current body.
pub async fn http_server(
    body: Arc<Mutex<String>>,
    status: u16,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let h = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let body = body.lock().unwrap().clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut req = Vec::new();
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let resp = format!(
                    "HTTP/1.0 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    (addr, h)
}
