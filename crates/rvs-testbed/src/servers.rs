//! Servers run inside a namespace (or in the current one with `None`): nginx as an HTTP real
//! (a distinct body per real, an access log the test can read, optional PROXY protocol),
//! HAProxy in `mode tcp`, an iperf3 server and tcpdump. Each handle stops its process when
//! dropped; each `start` waits until the server is ready.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{Result, TestbedError};
use crate::netns::{Netns, Process};

/// A command for `program`, inside `ns` when given, pinned to `cpus` (`taskset -c`) when given.
pub fn command_in(ns: Option<&Netns>, cpus: Option<&str>, program: &str) -> Command {
    match (ns, cpus) {
        (Some(ns), Some(c)) => ns.command_pinned(c, program),
        (Some(ns), None) => ns.command(program),
        (None, Some(c)) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", c, program]);
            cmd
        }
        (None, None) => Command::new(program),
    }
}

pub(crate) fn temp_dir(what: &str) -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("rvs-testbed-{what}-"))
        .tempdir()
        .map_err(|e| TestbedError::io("creating a temporary directory", e))
}

pub(crate) fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text)
        .map_err(|e| TestbedError::io(format!("writing {}", path.display()), e))
}

pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| TestbedError::io(format!("reading {}", path.display()), e))
}

/// Spawns `cmd` with stderr going to `dir/stderr.txt`.
pub(crate) fn spawn_logged(cmd: &mut Command, dir: &Path) -> Result<Process> {
    let path = dir.join("stderr.txt");
    let f = std::fs::File::create(&path)
        .map_err(|e| TestbedError::io(format!("creating {}", path.display()), e))?;
    Process::spawn(cmd.stdout(Stdio::null()).stderr(f))
}

/// Waits until something listens on TCP `port` in `ns` (checked with `ss`), failing early with
/// the server's stderr if it exits.
pub fn wait_tcp_listening(
    ns: Option<&Netns>,
    port: u16,
    proc: &mut Process,
    dir: &Path,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let filter = format!("sport = :{port}");
    loop {
        let out = command_in(ns, None, "ss").args(["-Hltn", &filter]).output();
        if let Ok(out) = out
            && !out.stdout.is_empty()
        {
            return Ok(());
        }
        if !proc.is_running() {
            let stderr = read(&dir.join("stderr.txt")).unwrap_or_default();
            return Err(TestbedError::Failed {
                cmd: format!("server for port {port}"),
                status: "exited before listening".into(),
                stderr: stderr.trim().to_string(),
            });
        }
        if Instant::now() > deadline {
            return Err(TestbedError::Timeout {
                what: format!("a listener on port {port}"),
                secs: 10.0,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server started from a config text the caller wrote (nginx `stream`, a custom HAProxy, ...).
#[derive(Debug)]
pub struct ConfiguredServer {
    process: Process,
    dir: TempDir,
}

impl ConfiguredServer {
    /// Writes `config(dir)` to `dir/<file>`, runs `program args... <that path>` (in `ns`, pinned
    /// to `cpus`) and waits until TCP `ready_port` listens. `config` gets the server's private
    /// directory, for pid files, logs and temp paths.
    pub fn start(
        ns: Option<&Netns>,
        cpus: Option<&str>,
        program: &str,
        args: &[&str],
        file: &str,
        config: impl FnOnce(&Path) -> String,
        ready_port: u16,
    ) -> Result<ConfiguredServer> {
        let name = Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        let dir = temp_dir(name.as_deref().unwrap_or("server"))?;
        let path = dir.path().join(file);
        write(&path, &config(dir.path()))?;
        let mut cmd = command_in(ns, cpus, program);
        cmd.args(args).arg(&path);
        let mut process = spawn_logged(&mut cmd, dir.path())?;
        wait_tcp_listening(ns, ready_port, &mut process, dir.path())?;
        Ok(ConfiguredServer { process, dir })
    }

    /// Pid of the process started (e.g. nginx's master).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The server's private directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// How to run an nginx HTTP real.
#[derive(Debug, Clone)]
pub struct NginxOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Body returned for every request (`return 200`), followed by a newline.
    pub body: String,
    /// Worker processes.
    pub workers: u32,
    /// CPUs to pin to (`taskset -c`), e.g. `"0"`.
    pub cpus: Option<String>,
    /// Expect a PROXY protocol (v1 or v2) header on each connection; the access log then shows
    /// the client address it carried.
    pub proxy_protocol: bool,
    /// `listen ... deferred` (`TCP_DEFER_ACCEPT`): the kernel makes the connection's socket when
    /// its first data arrives, not at the handshake's ACK. Off by default: connections that never
    /// send stay half-open request sockets, bounded by the listen backlog. Tests that open many
    /// short connections turn it on to avoid a race in the real's kernel (6.18), where an ACK
    /// and the first request handled on two CPUs at once drew a reset (docs/xdp.md, "under
    /// churn").
    pub deferred_accept: bool,
}

impl NginxOptions {
    /// One worker, no pinning, no PROXY protocol, no deferred accept.
    pub fn new(listen: SocketAddr, body: &str) -> NginxOptions {
        NginxOptions {
            listen,
            body: body.to_string(),
            workers: 1,
            cpus: None,
            proxy_protocol: false,
            deferred_accept: false,
        }
    }
}

/// A running nginx HTTP server.
#[derive(Debug)]
pub struct Nginx {
    process: Process,
    dir: TempDir,
    /// The address it listens on.
    pub listen: SocketAddr,
}

impl Nginx {
    /// Starts nginx with `body` on `listen` (one worker), in `ns` or the current namespace.
    pub fn start(ns: Option<&Netns>, listen: SocketAddr, body: &str) -> Result<Nginx> {
        Nginx::start_with(ns, &NginxOptions::new(listen, body))
    }

    /// Starts nginx with full options.
    pub fn start_with(ns: Option<&Netns>, o: &NginxOptions) -> Result<Nginx> {
        let dir = temp_dir("nginx")?;
        let d = dir.path().display();
        let pp = if o.proxy_protocol {
            " proxy_protocol"
        } else {
            ""
        };
        let deferred = if o.deferred_accept { " deferred" } else { "" };
        let body = o.body.replace('\\', "\\\\").replace('"', "\\\"");
        let conf = format!(
            "daemon off;\nmaster_process on;\nuser root;\nworker_processes {w};\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nworker_rlimit_nofile 8192;\n\
             events {{ worker_connections 8000; }}\n\
             http {{\n  log_format rvs '$remote_addr:$remote_port $proxy_protocol_addr:$proxy_protocol_port \"$request\" $status';\n\
             \x20 access_log {d}/access.log rvs;\n  keepalive_requests 1000000;\n  keepalive_timeout 300s;\n\
             \x20 client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
             \x20 uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  default_type text/plain;\n\
             \x20 server {{\n    listen {l}{pp} reuseport{deferred};\n    location / {{ return 200 \"{body}\\n\"; }}\n  }}\n}}\n",
            w = o.workers,
            l = o.listen,
        );
        let conf_path = dir.path().join("nginx.conf");
        write(&conf_path, &conf)?;
        let conf_arg = conf_path.to_string_lossy().into_owned();
        let mut cmd = command_in(ns, o.cpus.as_deref(), "nginx");
        cmd.args(["-e", &format!("{d}/error.log"), "-c", &conf_arg]);
        let mut process = spawn_logged(&mut cmd, dir.path())?;
        wait_tcp_listening(ns, o.listen.port(), &mut process, dir.path())?;
        Ok(Nginx {
            process,
            dir,
            listen: o.listen,
        })
    }

    /// The access log so far, one line per request:
    /// `client_addr:port proxy_addr:proxy_port "GET / HTTP/1.1" 200` (the proxy fields are empty
    /// without PROXY protocol).
    pub fn access_log(&self) -> Result<String> {
        read(&self.dir.path().join("access.log")).or_else(|_| Ok(String::new()))
    }

    /// Number of requests logged so far.
    pub fn requests(&self) -> Result<usize> {
        Ok(self.access_log()?.lines().count())
    }

    /// Pid of the nginx master (workers are its children).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Directory holding its config and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// HAProxy's `maxconn`: each connection needs two descriptors and the open-files limit here is
/// 20,000 (see DESIGN.md), so a little under 10,000.
pub const HAPROXY_MAXCONN: u32 = 9_960;

/// A running HAProxy in `mode tcp`, round robin over `backends`.
#[derive(Debug)]
pub struct Haproxy {
    process: Process,
    _dir: TempDir,
}

impl Haproxy {
    /// Starts HAProxy listening on `listen`, balancing TCP round robin over `backends` with
    /// `threads` threads, pinned to `cpus` when given.
    pub fn start(
        ns: Option<&Netns>,
        listen: SocketAddr,
        backends: &[SocketAddr],
        threads: u32,
        cpus: Option<&str>,
    ) -> Result<Haproxy> {
        let dir = temp_dir("haproxy")?;
        let mut conf = format!(
            "global\n  nbthread {threads}\n  maxconn {HAPROXY_MAXCONN}\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  \
             timeout client 300s\n  timeout server 300s\n  maxconn {HAPROXY_MAXCONN}\n\nlisten vip\n  bind {listen}\n  balance roundrobin\n"
        );
        for (i, b) in backends.iter().enumerate() {
            conf.push_str(&format!("  server real{i} {b}\n"));
        }
        let conf_path = dir.path().join("haproxy.cfg");
        write(&conf_path, &conf)?;
        let mut cmd = command_in(ns, cpus, "haproxy");
        cmd.args(["-db", "-f", &conf_path.to_string_lossy()]);
        let mut process = spawn_logged(&mut cmd, dir.path())?;
        wait_tcp_listening(ns, listen.port(), &mut process, dir.path())?;
        Ok(Haproxy { process, _dir: dir })
    }

    /// Pid of the HAProxy process.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// A running `iperf3 -s`.
#[derive(Debug)]
pub struct Iperf3Server {
    process: Process,
    _dir: TempDir,
}

impl Iperf3Server {
    /// Starts an iperf3 server bound to `listen`.
    pub fn start(ns: Option<&Netns>, listen: SocketAddr) -> Result<Iperf3Server> {
        Iperf3Server::start_pinned(ns, listen, None)
    }

    /// Starts an iperf3 server bound to `listen`, pinned to `cpus` when given.
    pub fn start_pinned(
        ns: Option<&Netns>,
        listen: SocketAddr,
        cpus: Option<&str>,
    ) -> Result<Iperf3Server> {
        let dir = temp_dir("iperf3")?;
        let mut cmd = command_in(ns, cpus, "iperf3");
        cmd.args([
            "-s",
            "-B",
            &listen.ip().to_string(),
            "-p",
            &listen.port().to_string(),
        ]);
        let mut process = spawn_logged(&mut cmd, dir.path())?;
        wait_tcp_listening(ns, listen.port(), &mut process, dir.path())?;
        Ok(Iperf3Server { process, _dir: dir })
    }

    /// Pid of the server.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// A running tcpdump writing a capture file.
#[derive(Debug)]
pub struct Tcpdump {
    process: Process,
    dir: TempDir,
}

impl Tcpdump {
    /// Starts capturing on `dev` with the BPF `filter` (e.g. `"tcp port 80"`); returns once
    /// tcpdump reports it is listening.
    pub fn start(ns: Option<&Netns>, dev: &str, filter: &str) -> Result<Tcpdump> {
        let dir = temp_dir("tcpdump")?;
        let pcap = dir.path().join("capture.pcap");
        let mut cmd = command_in(ns, None, "tcpdump");
        cmd.args([
            "-i",
            dev,
            "-n",
            "-U",
            "--immediate-mode",
            "-w",
            &pcap.to_string_lossy(),
        ]);
        cmd.args(filter.split_whitespace());
        let mut process = spawn_logged(&mut cmd, dir.path())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !read(&dir.path().join("stderr.txt"))
            .unwrap_or_default()
            .contains("listening on")
        {
            if !process.is_running() || Instant::now() > deadline {
                let stderr = read(&dir.path().join("stderr.txt")).unwrap_or_default();
                return Err(TestbedError::Failed {
                    cmd: "tcpdump".into(),
                    status: "not listening".into(),
                    stderr,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Tcpdump { process, dir })
    }

    /// Stops the capture and returns its packets as `tcpdump -nn -e -r` prints them (one line per
    /// packet, link-layer header included).
    pub fn finish(self) -> Result<String> {
        self.process.stop(Duration::from_secs(3))?;
        let pcap: PathBuf = self.dir.path().join("capture.pcap");
        let out = crate::cmd::run(Command::new("tcpdump").args([
            "-nn",
            "-e",
            "-r",
            &pcap.to_string_lossy(),
        ]))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
