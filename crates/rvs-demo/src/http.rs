//! Minimal keep-alive HTTP/1.1 server: reads a request head (and a `Content-Length` body, if
//! any), answers `200 OK` with `<name> (<addr>)\n`, and loops until the client closes or asks
//! for `Connection: close`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use crate::DemoError;

/// A bound demo HTTP server.
pub struct HttpServer {
    listener: TcpListener,
    body: Arc<str>,
}

impl HttpServer {
    /// Binds `addr` (port 0 picks a free port); the reply body is `<name> (<bound addr>)\n`.
    pub fn bind(addr: SocketAddr, name: &str) -> Result<Self, DemoError> {
        let listener =
            TcpListener::bind(addr).map_err(|source| DemoError::Bind { addr, source })?;
        let local = listener.local_addr()?;
        let body: Arc<str> = format!("{name} ({local})\n").into();
        Ok(Self { listener, body })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Accepts connections forever, one thread each. A failed accept (e.g. out of file
    /// descriptors) rests 10 ms instead of spinning on the still-pending connection.
    pub fn serve_forever(self) {
        for stream in self.listener.incoming() {
            let Ok(stream) = stream else {
                thread::sleep(std::time::Duration::from_millis(10));
                continue;
            };
            let body = Arc::clone(&self.body);
            thread::spawn(move || {
                let _ = handle_connection(stream, &body);
            });
        }
    }
}

/// Binds and serves on a background thread; returns the bound address.
pub fn serve_http(addr: SocketAddr, name: &str) -> Result<SocketAddr, DemoError> {
    let server = HttpServer::bind(addr, name)?;
    let local = server.local_addr();
    thread::spawn(move || server.serve_forever());
    Ok(local)
}

fn handle_connection(stream: TcpStream, body: &str) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        // Request line.
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line.trim().is_empty() {
            continue; // tolerate stray CRLF between requests
        }
        let http10 = line.trim_end().ends_with("HTTP/1.0");
        let mut close = http10;
        let mut content_length = 0usize;
        // Header lines up to the empty line.
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let v = v.trim();
                if k.eq_ignore_ascii_case("content-length") {
                    content_length = v.parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("connection") {
                    close = v.eq_ignore_ascii_case("close")
                        || (http10 && !v.eq_ignore_ascii_case("keep-alive"));
                }
            }
        }
        if content_length > 0 {
            std::io::copy(
                &mut (&mut reader).take(content_length as u64),
                &mut std::io::sink(),
            )?;
        }
        let conn = if close { "close" } else { "keep-alive" };
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {conn}\r\n\r\n{body}",
            body.len()
        );
        writer.write_all(resp.as_bytes())?;
        if close {
            return Ok(());
        }
    }
}
