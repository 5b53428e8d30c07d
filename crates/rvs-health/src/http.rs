//! `HTTP_GET` and `SSL_GET`: fetch every `url`'s path with HTTP/1.0, accept the status codes it
//! lists (default 2xx) and, when it has a `digest`, compare the MD5 of the body as keepalived's
//! `genhash` computes it (lower-case hex of MD5 over the bytes after the header block).

use crate::connect::connect;
use crate::error::CheckError;
use crate::tls;
use md5::{Digest, Md5};
use rvs_config::keepalived::{Checker, HttpCheck, UrlCheck};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest header block accepted.
const MAX_HEADER: usize = 64 * 1024;

/// Run the HTTP (or, with `tls`, HTTPS) check against `target`; `vs_host` is the virtual
/// server's `virtualhost`, the fallback for the Host header.
pub async fn check(
    checker: &Checker,
    http: &HttpCheck,
    target: SocketAddr,
    tls_on: bool,
    vs_host: Option<&str>,
) -> Result<(), CheckError> {
    for url in &http.urls {
        let host = url
            .virtualhost
            .as_deref()
            .or(http.virtualhost.as_deref())
            .or(vs_host);
        let tcp = connect(checker, target).await?;
        let fut = async {
            if tls_on {
                let sni = if http.enable_sni { host } else { None };
                let stream = tls::connect(tcp, target, sni, http.tls_verify).await?;
                fetch(stream, url, host, target).await
            } else {
                fetch(tcp, url, host, target).await
            }
        };
        crate::error::with_timeout(checker.connect_timeout, fut).await?;
    }
    Ok(())
}

/// One GET: send the request, read the whole response, check status and digest.
async fn fetch<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    url: &UrlCheck,
    host: Option<&str>,
    target: SocketAddr,
) -> Result<(), CheckError> {
    let host = match host {
        Some(h) => h.to_string(),
        None if target.is_ipv6() => format!("[{}]:{}", target.ip(), target.port()),
        None => target.to_string(),
    };
    let req = format!(
        "GET {} HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        url.path
    );
    stream.write_all(req.as_bytes()).await?;
    stream.flush().await?;
    let (code, mut body_start) = read_head(&mut stream).await?;
    if !url.accepts(code) {
        return Err(CheckError::Status {
            path: url.path.clone(),
            got: code,
        });
    }
    let Some(expected) = &url.digest else {
        return Ok(());
    };
    let mut md5 = Md5::new();
    md5.update(&body_start);
    body_start.clear();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => md5.update(&buf[..n]),
            // TLS peers often close without close_notify; the body is complete anyway
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
    }
    let got = hex(&md5.finalize());
    if &got != expected {
        return Err(CheckError::Digest {
            path: url.path.clone(),
            got,
            expected: expected.clone(),
        });
    }
    Ok(())
}

/// Read up to the end of the header block; returns the status code and the body bytes read
/// past it.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(u16, Vec<u8>), CheckError> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = find(&head, b"\r\n\r\n") {
            break i + 4;
        }
        if head.len() > MAX_HEADER {
            return Err(CheckError::BadResponse("header block too long".into()));
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(CheckError::BadResponse(
                "connection closed before the end of the headers".into(),
            ));
        }
        head.extend_from_slice(&buf[..n]);
    };
    let code = status_code(&head[..end])?;
    Ok((code, head[end..].to_vec()))
}

/// The status code of `HTTP/1.x NNN reason`.
fn status_code(head: &[u8]) -> Result<u16, CheckError> {
    let line_end = find(head, b"\r\n").unwrap_or(head.len());
    let line = String::from_utf8_lossy(&head[..line_end]);
    let mut parts = line.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => Ok(code),
        _ => Err(CheckError::BadResponse(format!("bad status line '{line}'"))),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// MD5 of `body` as keepalived's `genhash` prints it (for tests and tooling).
pub fn digest_of(body: &[u8]) -> String {
    hex(&Md5::digest(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genhash_digest_is_lower_hex_md5() {
        assert_eq!(digest_of(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            digest_of(b"The quick brown fox jumps over the lazy dog"),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            status_code(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap(),
            204
        );
        assert_eq!(status_code(b"HTTP/1.0 500\r\n\r\n").unwrap(), 500);
        assert!(status_code(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }
}
