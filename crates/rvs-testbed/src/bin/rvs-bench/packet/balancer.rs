//! The rvs subjects of the packet-path comparisons: the director runs `rvsd` (built with the
//! default `xdp` feature) with a TOML configuration, as an operator would — or, for what rvsd
//! cannot configure (generic attach), the `xdp_serve` example of `crates/rvs-xdp`, which drives
//! the same engine through the library. The ceiling subject `xdp-forward` of `packet_dr` runs
//! `rvs-xdp-forward` (the trivial XDP forwarder of `crates/rvs-xdp`) the same way. Started before a
//! subject's runs and stopped after them, so the other subjects never pay for an attached
//! program; stopping checks that the director's interfaces are left without XDP.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use rvs_testbed::{Netns, curl, xdp_pass};

use crate::{BoxResult, CLIENT_CPU};

/// How to start an rvs director.
#[derive(Debug, Clone)]
pub enum Launch {
    /// `rvsd --config FILE` with this TOML (the control socket is added).
    Rvsd(String),
    /// `xdp_serve ARGS...` (see `crates/rvs-xdp/examples/xdp_serve.rs`).
    XdpServe(Vec<String>),
    /// `rvs-xdp-forward ARGS...`, the trivial forwarder (see
    /// `crates/rvs-xdp/src/bin/rvs-xdp-forward.rs`): stopped by SIGTERM, reports its packet count
    /// on SIGUSR1 ([`Running::forwarded`]).
    Forward(Vec<String>),
}

/// Where the binaries are: `rvsd`, `rvsadm` and `rvs-xdp-forward` beside `rvs-bench`,
/// `xdp_serve` in `examples/`.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// rvsd, or why it cannot be used.
    pub rvsd: Result<PathBuf, String>,
    /// The directory of the built binaries.
    pub dir: PathBuf,
}

impl Binaries {
    /// Path of `xdp_serve`, or why it is missing.
    pub fn xdp_serve(&self) -> Result<PathBuf, String> {
        let p = self.dir.join("examples").join("xdp_serve");
        if p.exists() {
            Ok(p)
        } else {
            Err(format!(
                "{} missing (cargo build -p rvs-xdp --example xdp_serve)",
                p.display()
            ))
        }
    }

    /// Path of `rvs-xdp-forward`, or why it is missing.
    pub fn xdp_forward(&self) -> Result<PathBuf, String> {
        let p = self.dir.join("rvs-xdp-forward");
        if p.exists() {
            Ok(p)
        } else {
            Err(format!(
                "{} missing (cargo build -p rvs-xdp --bin rvs-xdp-forward)",
                p.display()
            ))
        }
    }

    /// Path of `rvsadm`, or why it is missing.
    pub fn rvsadm(&self) -> Result<PathBuf, String> {
        let p = self.dir.join("rvsadm");
        if p.exists() {
            Ok(p)
        } else {
            Err(format!("{} missing (cargo build -p rvsadm)", p.display()))
        }
    }

    /// Whether `launch` can run here (the binary it needs exists).
    pub fn check(&self, launch: &Launch) -> Result<(), String> {
        match launch {
            Launch::Rvsd(_) => self.rvsd.as_ref().map(|_| ()).map_err(Clone::clone),
            Launch::XdpServe(_) => self.xdp_serve().map(|_| ()),
            Launch::Forward(_) => self.xdp_forward().map(|_| ()),
        }
    }
}

/// A running rvs director.
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The director's stdout after its `READY` line (xdp_serve, rvs-xdp-forward).
    stdout: Option<std::io::Lines<BufReader<ChildStdout>>>,
    /// Whether it answers SIGUSR1 with its packet count (rvs-xdp-forward).
    counts: bool,
    dir: tempfile::TempDir,
    devs: Vec<String>,
}

impl Running {
    /// Starts `launch` in the director namespace (pinned with everything else to the client
    /// CPU: the director's cost is its NAPI kthreads), waits until the program is attached to
    /// every one of `devs` and `probe_url` answers from the client namespace.
    pub fn start(
        bins: &Binaries,
        launch: &Launch,
        dir_ns: &Netns,
        devs: &[&str],
        client_ns: &Netns,
        probe_url: &str,
    ) -> BoxResult<Running> {
        let tmp = tempfile::Builder::new()
            .prefix("rvs-bench-director-")
            .tempdir()?;
        let stderr = std::fs::File::create(tmp.path().join("stderr.txt"))?;
        let mut child = match launch {
            Launch::Rvsd(toml) => {
                let path = tmp.path().join("rvsd.toml");
                let sock = tmp.path().join("rvsd.sock");
                std::fs::write(
                    &path,
                    toml.replace(
                        "[daemon]\n",
                        &format!("[daemon]\nsocket = \"{}\"\n", sock.display()),
                    ),
                )?;
                let rvsd = bins.rvsd.clone()?;
                dir_ns
                    .command_pinned(CLIENT_CPU, &rvsd.to_string_lossy())
                    .arg("--config")
                    .arg(&path)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(stderr)
                    .spawn()?
            }
            Launch::XdpServe(args) => {
                let exe = bins.xdp_serve()?;
                dir_ns
                    .command_pinned(CLIENT_CPU, &exe.to_string_lossy())
                    .args(args)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(stderr)
                    .spawn()?
            }
            Launch::Forward(args) => {
                let exe = bins.xdp_forward()?;
                dir_ns
                    .command_pinned(CLIENT_CPU, &exe.to_string_lossy())
                    .args(args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(stderr)
                    .spawn()?
            }
        };
        let stdin = child.stdin.take();
        let mut running = Running {
            child,
            stdin,
            stdout: None,
            counts: matches!(launch, Launch::Forward(_)),
            dir: tmp,
            devs: devs.iter().map(|d| d.to_string()).collect(),
        };
        if let Some(out) = running.child.stdout.take() {
            let mut lines = BufReader::new(out).lines();
            let line = lines.next().transpose()?.unwrap_or_default();
            if line.trim() != "READY" {
                return Err(format!("director did not start: {}", running.stderr()).into());
            }
            // Kept open: the director may write more (rvs-xdp-forward's counts).
            running.stdout = Some(lines);
        }
        running.wait_ready(dir_ns, client_ns, probe_url)?;
        Ok(running)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.txt"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn wait_ready(&mut self, dir_ns: &Netns, client_ns: &Netns, url: &str) -> BoxResult<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last = String::new();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("director exited ({status}): {}", self.stderr()).into());
            }
            let attached = self
                .devs
                .iter()
                .all(|d| xdp_pass::has_program(dir_ns, d).unwrap_or(false));
            if attached {
                match curl(Some(client_ns), url) {
                    Ok(_) => return Ok(()),
                    Err(e) => last = e.to_string(),
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "director not ready after 15 s (attached: {attached}; probe {url}: {last}); stderr: {}",
                    self.stderr()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Run time of every thread of the director process so far, in milliseconds (its
    /// userspace: netlink, upkeep), from each thread's `/proc/<pid>/task/<tid>/schedstat` (exact,
    /// unlike the tick-sampled utime/stime).
    pub fn cpu_ms(&self) -> f64 {
        let dir = format!("/proc/{}/task", self.child.id());
        let Ok(tasks) = std::fs::read_dir(&dir) else {
            return f64::NAN;
        };
        let ns: u64 = tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| {
                s.split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .sum();
        ns as f64 / 1e6
    }

    /// Packets the trivial forwarder (`Launch::Forward`) has forwarded so far, all CPUs: it
    /// prints `forwarded N` when sent SIGUSR1.
    pub fn forwarded(&mut self) -> BoxResult<u64> {
        if !self.counts {
            return Err("only rvs-xdp-forward reports a packet count".into());
        }
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGUSR1) };
        let line = self
            .stdout
            .as_mut()
            .and_then(|l| l.next())
            .transpose()?
            .unwrap_or_default();
        line.trim()
            .strip_prefix("forwarded ")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("rvs-xdp-forward answered {line:?}: {}", self.stderr()).into())
    }

    /// Stops the director (SIGTERM for rvsd and rvs-xdp-forward, stdin closed for xdp_serve),
    /// waits for it, and checks that the director's interfaces carry no XDP program any more.
    pub fn stop(mut self, dir_ns: &Netns) -> BoxResult<()> {
        match self.stdin.take() {
            Some(mut s) => {
                let _ = s.write_all(b"\n");
                drop(s);
            }
            None => {
                // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
                unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err("director did not exit within 10 s of being asked".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for d in &self.devs {
            if xdp_pass::has_program(dir_ns, d)? {
                return Err(
                    format!("{d} still has an XDP program after the director exited").into(),
                );
            }
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
