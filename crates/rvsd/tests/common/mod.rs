//! Test harness: start the real `rvsd` binary on a temporary socket, talk HTTP/1.1 to it over
//! the unix socket (a deliberately tiny client: one request per connection), send it signals,
//! and run trivial TCP backends that name themselves.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("rvsd-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A response: status and body text.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `kind` of an ErrorBody.
    pub fn kind(&self) -> String {
        self.json()["kind"].as_str().unwrap_or_default().to_string()
    }
}

/// One HTTP request over any stream; `extra` headers are raw lines.
pub fn http(
    mut s: impl Read + Write,
    method: &str,
    path: &str,
    body: Option<&str>,
    extra: &str,
) -> Resp {
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: rvsd\r\nConnection: close\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("bad response: {text}"));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Resp { status, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// A running rvsd.
pub struct Rvsd {
    pub child: Child,
    pub dir: TempDir,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Rvsd {
    /// Start rvsd with `config` (TOML text) and extra arguments; waits for the socket.
    pub fn start(config: &str, extra: &[&str]) -> Rvsd {
        Self::try_start(config, extra).unwrap_or_else(|log| panic!("rvsd did not start:\n{log}"))
    }

    /// Like [`Rvsd::start`], but returns rvsd's log if it exits or never listens.
    pub fn try_start(config: &str, extra: &[&str]) -> Result<Rvsd, String> {
        Self::try_start_in(None, config, extra)
    }

    /// Start rvsd inside a network namespace (its socket is still a file here).
    pub fn start_in(ns: &rvs_testbed::Netns, config: &str, extra: &[&str]) -> Rvsd {
        Self::try_start_in(Some(ns), config, extra)
            .unwrap_or_else(|log| panic!("rvsd did not start:\n{log}"))
    }

    /// Like [`Rvsd::start_in`], but entering only the namespace's network (`nsenter --net`):
    /// `ip netns exec` remounts /sys, which hides the host's bpffs at /sys/fs/bpf (where the
    /// xdp engine keeps its state across restarts).
    pub fn start_net_only(ns: &rvs_testbed::Netns, config: &str, extra: &[&str]) -> Rvsd {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", ns.name()))
            .arg(rvs_testbed::bin_path("rvsd"));
        Self::try_spawn(cmd, config, extra)
            .unwrap_or_else(|log| panic!("rvsd did not start:\n{log}"))
    }

    fn try_start_in(
        ns: Option<&rvs_testbed::Netns>,
        config: &str,
        extra: &[&str],
    ) -> Result<Rvsd, String> {
        let bin = rvs_testbed::bin_path("rvsd");
        let cmd = match ns {
            Some(ns) => ns.command(bin.to_str().unwrap()),
            None => Command::new(bin),
        };
        Self::try_spawn(cmd, config, extra)
    }

    fn try_spawn(mut cmd: Command, config: &str, extra: &[&str]) -> Result<Rvsd, String> {
        let dir = TempDir::new();
        let socket = dir.0.join("rvsd.sock");
        let cfg = dir.0.join("rvsd.toml");
        let log = dir.0.join("rvsd.log");
        std::fs::write(&cfg, config).unwrap();
        let mut child = cmd
            .arg("--config")
            .arg(&cfg)
            .arg("--socket")
            .arg(&socket)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if UnixStream::connect(&socket).is_ok() {
                return Ok(Rvsd {
                    child,
                    dir,
                    socket,
                    log,
                });
            }
            if let Some(st) = child.try_wait().unwrap() {
                return Err(format!(
                    "exit {st}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(std::fs::read_to_string(&log).unwrap_or_default())
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.0.join("rvsd.toml")
    }

    pub fn req(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        http(
            UnixStream::connect(&self.socket).unwrap(),
            method,
            path,
            body,
            "",
        )
    }

    pub fn get(&self, path: &str) -> Resp {
        self.req("GET", path, None)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Wait until the log contains `needle` `count` times (or panic after 10 s).
    pub fn wait_log(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log().matches(needle).count() >= count {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("log never showed {needle:?} x{count}:\n{}", self.log());
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("rvsd did not exit:\n{}", self.log());
    }
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(unused_imports)] // not every test binary uses it
pub use rvs_testbed::free_port;

/// rvsd also serving its API on TCP (`--listen` on a free loopback port) with the bearer token
/// `s3cret` (`--token-file` in the returned directory); the port.
pub fn start_with_token() -> (Rvsd, TempDir, u16) {
    let dir = TempDir::new();
    let token = dir.0.join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let port = free_port();
    let d = Rvsd::start(
        "",
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--token-file",
            token.to_str().unwrap(),
        ],
    );
    (d, dir, port)
}

/// A TCP backend that answers every connection with `name\n` and closes (runs until the test
/// process exits).
pub fn backend(name: &str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let name = name.to_string();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(format!("{name}\n").as_bytes());
        }
    });
    addr
}

/// Connect to `vip`, read everything (the backend's name).
pub fn fetch(vip: SocketAddr) -> String {
    let mut s = TcpStream::connect(vip).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.trim().to_string()
}

/// A TOML config with one FULLNAT service on `vip` and the given reals.
pub fn fullnat_config(vip: SocketAddr, reals: &[SocketAddr]) -> String {
    let mut s = format!("[[service]]\naddress = \"{vip}\"\nscheduler = \"rr\"\n");
    for r in reals {
        s += &format!("[[service.real]]\naddress = \"{r}\"\nmethod = \"fullnat\"\n");
    }
    s
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// The FULLNAT topology (`Kind::FullNat`, `reals` reals) made ready for the xdp engine on the
/// director: checksum offload off on the senders and GRO on the peers (a frame XDP sends out of
/// a veth is dropped unless the peer has GRO — DESIGN.md), and the VIP on the director's `lo`.
pub fn xdp_fullnat_topology(reals: usize) -> rvs_testbed::Topology {
    let topo = rvs_testbed::Topology::build(rvs_testbed::Kind::FullNat, reals).expect("topology");
    let client = &topo.client.ns;
    client.run("ethtool", &["-K", "eth0", "tx", "off"]).unwrap();
    client.run("ethtool", &["-K", "eth0", "gro", "on"]).unwrap();
    topo.switch
        .run("ethtool", &["-K", "dir", "gro", "on"])
        .unwrap();
    for r in &topo.reals {
        r.ns.run("ethtool", &["-K", "eth0", "tx", "off"]).unwrap();
    }
    let vip = topo.vip4;
    topo.director
        .ns
        .ip(&["addr", "add", &format!("{vip}/32"), "dev", "lo"])
        .unwrap();
    topo
}

/// nginx on port 8080 in every real of `topo` (each answering its name, `real0`, `real1`, ...):
/// the reals' addresses and the servers (stopped when dropped).
pub fn nginx_reals(topo: &rvs_testbed::Topology) -> (Vec<SocketAddr>, Vec<rvs_testbed::Nginx>) {
    let listen: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    topo.reals
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let addr = SocketAddr::new(r.ip4.into(), 8080);
            let nginx =
                rvs_testbed::Nginx::start(Some(&r.ns), listen, &format!("real{i}")).unwrap();
            (addr, nginx)
        })
        .unzip()
}
