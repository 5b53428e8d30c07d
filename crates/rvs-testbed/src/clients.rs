//! Clients run inside a namespace (or the current one with `None`): curl for one request, wrk
//! for load with its latency distribution, iperf3 for bulk throughput, ping for reachability.

use std::time::Duration;

use crate::cmd;
use crate::error::{Result, TestbedError};
use crate::netns::Netns;
use crate::servers::command_in;

/// `curl -sS` of `url` with a 5-second limit; returns the body.
pub fn curl(ns: Option<&Netns>, url: &str) -> Result<String> {
    let out = cmd::run(command_in(ns, None, "curl").args(["-sS", "--max-time", "5", url]))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `n` sequential curls of `url` (2-second limit each) in one shell inside `ns`; counts each
/// distinct body (trimmed), with `"FAIL"` for a request that failed. For end-to-end tests that
/// check how requests spread over reals whose bodies name them.
pub fn curl_counts(
    ns: &Netns,
    url: &str,
    n: usize,
) -> Result<std::collections::BTreeMap<String, usize>> {
    let script = format!("for i in $(seq 1 {n}); do curl -s --max-time 2 {url} || echo FAIL; done");
    let out = ns.run("sh", &["-c", &script])?;
    let mut counts = std::collections::BTreeMap::new();
    for line in out.lines() {
        *counts.entry(line.trim().to_string()).or_insert(0) += 1;
    }
    Ok(counts)
}

/// Sends `count` pings to `addr` (0.2 s apart, 1 s deadline each); errors unless all replies come.
pub fn ping(ns: Option<&Netns>, addr: &str, count: u32) -> Result<()> {
    let c = count.to_string();
    cmd::run(
        command_in(ns, None, "ping").args(["-n", "-q", "-c", &c, "-i", "0.2", "-W", "1", addr]),
    )
    .map(drop)
}

/// A wrk load run.
#[derive(Debug, Clone)]
pub struct WrkOptions {
    /// URL to fetch.
    pub url: String,
    /// Concurrent connections (`-c`).
    pub connections: u32,
    /// Threads (`-t`).
    pub threads: u32,
    /// Duration (`-d`), whole seconds (at least 1).
    pub duration: Duration,
    /// New connection per request (`-H 'Connection: close'`) instead of keep-alive.
    pub new_connection_per_request: bool,
    /// CPUs to pin wrk to.
    pub cpus: Option<String>,
}

/// What wrk measured.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkResult {
    /// Completed requests.
    pub requests: u64,
    /// Requests per second.
    pub requests_per_sec: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th-percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Socket errors (connect + read + write + timeout) plus non-2xx/3xx responses.
    pub errors: u64,
}

/// Runs wrk with `--latency` and parses its report. Killed 30 s after its duration (wrk's
/// initial test connect blocks through every SYN retry, about two minutes, when nothing answers).
pub fn wrk(ns: Option<&Netns>, o: &WrkOptions) -> Result<WrkResult> {
    let mut c = command_in(ns, o.cpus.as_deref(), "timeout");
    let limit = o.duration.as_secs().max(1) + 30;
    c.args([
        "--kill-after=5",
        &format!("{limit}s"),
        "wrk",
        "--latency",
        "-t",
        &o.threads.to_string(),
        "-c",
        &o.connections.to_string(),
    ]);
    // wrk takes whole seconds (no "ms" unit).
    c.args(["-d", &format!("{}s", o.duration.as_secs().max(1))]);
    if o.new_connection_per_request {
        c.args(["-H", "Connection: close"]);
    }
    c.arg(&o.url);
    let out = cmd::run(&mut c)?;
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// Parses a wrk duration such as `1.23ms`, `512.00us`, `1.01s`, `2.00m` into milliseconds.
fn parse_duration_ms(s: &str) -> Option<f64> {
    let (num, factor) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * factor)
}

/// Parses wrk's `--latency` report.
pub fn parse_wrk(text: &str) -> Result<WrkResult> {
    let bad = |detail: &str| TestbedError::Parse {
        tool: "wrk",
        detail: format!("{detail} in:\n{text}"),
    };
    let mut r = WrkResult {
        requests: 0,
        requests_per_sec: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        errors: 0,
    };
    let mut saw_requests = false;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => {
                r.requests_per_sec = v.parse().map_err(|_| bad("Requests/sec"))?
            }
            ["50%", v] => r.p50_ms = parse_duration_ms(v).ok_or_else(|| bad("50%"))?,
            ["99%", v] => r.p99_ms = parse_duration_ms(v).ok_or_else(|| bad("99%"))?,
            [n, "requests", "in", ..] => {
                r.requests = n.parse().map_err(|_| bad("request count"))?;
                saw_requests = true;
            }
            ["Socket", "errors:", rest @ ..] => {
                r.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                r.errors += n.parse::<u64>().map_err(|_| bad("Non-2xx"))?
            }
            _ => {}
        }
    }
    if !saw_requests || r.requests_per_sec.is_nan() {
        return Err(bad("no request count or rate"));
    }
    Ok(r)
}

/// Runs an iperf3 client against `server:port` for `secs` seconds; returns the received
/// throughput in bits per second.
pub fn iperf3(
    ns: Option<&Netns>,
    cpus: Option<&str>,
    server: &str,
    port: u16,
    secs: u32,
) -> Result<f64> {
    let out = cmd::run(command_in(ns, cpus, "iperf3").args([
        "-c",
        server,
        "-p",
        &port.to_string(),
        "-t",
        &secs.to_string(),
        "-J",
    ]))?;
    parse_iperf3(&String::from_utf8_lossy(&out.stdout))
}

/// Extracts `end.sum_received.bits_per_second` from iperf3's JSON report.
pub fn parse_iperf3(json: &str) -> Result<f64> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| TestbedError::Parse {
        tool: "iperf3",
        detail: e.to_string(),
    })?;
    if let Some(err) = v["error"].as_str() {
        return Err(TestbedError::Parse {
            tool: "iperf3",
            detail: format!("iperf3 reported: {err}"),
        });
    }
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .ok_or_else(|| {
            let mut end = v["end"].to_string();
            end.truncate(300);
            TestbedError::Parse {
                tool: "iperf3",
                detail: format!("no end.sum_received.bits_per_second; end = {end}"),
            }
        })
}

/// One HTTP/1.1 keep-alive `GET /` on an open connection `s` (the connection stays open for
/// the next): the response body, trimmed (a demo real's or nginx test page's name).
pub fn http_keepalive_get(s: &mut std::net::TcpStream) -> std::io::Result<String> {
    std::io::Write::write_all(s, b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = std::io::Read::read(s, &mut chunk)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 1s test @ http://127.0.0.1:8080/
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   210.00us  100.00us   2.00ms   90.00%
  Latency Distribution
     50%  180.00us
     75%  220.00us
     90%  300.00us
     99%    1.20ms
  41234 requests in 1.00s, 6.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 1
  Non-2xx or 3xx responses: 2
Requests/sec:  41200.50
Transfer/sec:      6.00MB
";

    #[test]
    fn parses_wrk_report() {
        let r = parse_wrk(WRK).unwrap();
        assert_eq!(r.requests, 41234);
        assert!((r.requests_per_sec - 41200.5).abs() < 1e-9);
        assert!((r.p50_ms - 0.18).abs() < 1e-9);
        assert!((r.p99_ms - 1.2).abs() < 1e-9);
        assert_eq!(r.errors, 6);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_wrk("unable to connect to 127.0.0.1:1 Connection refused").is_err());
        assert!(parse_iperf3("{}").is_err());
        assert!(parse_iperf3("not json").is_err());
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration_ms("2.00s"), Some(2000.0));
        assert_eq!(parse_duration_ms("1.50m"), Some(90_000.0));
        assert_eq!(parse_duration_ms("7"), None);
    }

    #[test]
    fn parses_iperf3_json() {
        let bps = parse_iperf3(r#"{"end":{"sum_received":{"bits_per_second":1.5e10}}}"#).unwrap();
        assert_eq!(bps, 1.5e10);
    }
}
