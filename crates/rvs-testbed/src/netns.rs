//! Network namespaces that always go away: on `Drop`, after a panic (unwinding runs `Drop`), on
//! Ctrl-C / SIGTERM / SIGHUP (a handler deletes every namespace this process registered, then
//! exits), and — for processes killed hard — by a sweep at the first namespace a process creates,
//! which deletes every `rvs-<pid>-*` namespace whose `<pid>` is no longer running.
//!
//! Names are `rvs-<pid>-<seq>-<role>`, unique per process and per namespace, so tests run in
//! parallel (threads or processes) without colliding. Nothing is created in the root namespace:
//! veth pairs are created directly inside their namespaces and bridges live in a namespace of
//! their own, so deleting the namespaces removes every link.
//!
//! Deleting a namespace first kills every process still inside it (`ip netns pids`), so servers
//! started there never outlive the test.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use crate::cmd::{self, describe};
use crate::error::{Result, TestbedError};

/// Prefix of every namespace the test bed creates.
pub const PREFIX: &str = "rvs-";

static REGISTRY: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
static SEQ: AtomicU32 = AtomicU32::new(0);
static INIT: Once = Once::new();

/// A named network namespace (`ip netns`), deleted with everything inside it on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Whether an XDP program is attached to `dev` in this namespace (`ip link show`).
    pub fn has_xdp(&self, dev: &str) -> bool {
        self.ip(&["link", "show", dev])
            .is_ok_and(|out| out.contains("xdp"))
    }

    /// Creates a namespace whose name ends in `role` (letters, digits, `-`; at most 20 chars),
    /// with its loopback up.
    pub fn new(role: &str) -> Result<Netns> {
        if role.is_empty()
            || role.len() > 20
            || !role.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(TestbedError::Invalid(format!("namespace role {role:?}")));
        }
        INIT.call_once(init_process);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{seq}-{role}", std::process::id());
        cmd::ip(&["netns", "add", &name])?;
        lock_registry().insert(name.clone());
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        // No duplicate-address detection: addresses (link-local ones included, which neighbour
        // discovery uses) are usable at once instead of ~1 s later.
        ns.run(
            "sysctl",
            &[
                "-qw",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ],
        )?;
        Ok(ns)
    }

    /// The namespace's name (as `ip netns list` shows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on a new thread that has entered this namespace (`setns`), and returns its
    /// result — for in-process work that must happen inside the namespace (loading an XDP
    /// program on its interfaces, netlink calls). Panics inside `f` propagate to the caller.
    pub fn in_thread<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|s| {
            let handle = s.spawn(|| {
                let file =
                    std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                // SAFETY: setns with a valid namespace fd changes only this thread's network
                // namespace; the thread ends when `f` returns.
                let rc = unsafe {
                    libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET)
                };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                f()
            });
            match handle.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// A [`Command`] that runs `program` inside this namespace (`ip netns exec`). Add arguments
    /// and run it as usual; [`Netns::spawn`] keeps a background process tied to its lifetime.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Like [`Netns::command`], pinned to the given CPUs with `taskset -c` (e.g. `"0"`).
    pub fn command_pinned(&self, cpus: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, "taskset", "-c", cpus, program]);
        c
    }

    /// Runs `program args...` inside the namespace to completion; returns its stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        let out = cmd::run(self.command(program).args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `ip -n <ns> args...`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        cmd::ip(&full)
    }

    /// Sets a sysctl inside the namespace, e.g. `("net.ipv4.ip_forward", "1")`.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.run("sysctl", &["-qw", &format!("{key}={value}")])
            .map(drop)
    }

    /// Creates a veth pair: `dev` here and `peer_dev` in `peer`, both up.
    pub fn veth(&self, dev: &str, peer: &Netns, peer_dev: &str) -> Result<()> {
        self.ip(&[
            "link", "add", dev, "type", "veth", "peer", "name", peer_dev, "netns", &peer.name,
        ])?;
        self.link_up(dev)?;
        peer.link_up(peer_dev)
    }

    /// Creates a bridge device `name` here, up.
    pub fn bridge(&self, name: &str) -> Result<()> {
        self.ip(&["link", "add", name, "type", "bridge"])?;
        self.link_up(name)
    }

    /// Enslaves `dev` to the bridge `bridge` (both in this namespace).
    pub fn attach(&self, dev: &str, bridge: &str) -> Result<()> {
        self.ip(&["link", "set", dev, "master", bridge]).map(drop)
    }

    /// Sets a link up.
    pub fn link_up(&self, dev: &str) -> Result<()> {
        self.ip(&["link", "set", dev, "up"]).map(drop)
    }

    /// Adds an address in CIDR form (`10.0.0.1/24`, `fd00::1/64`) to `dev`.
    pub fn add_addr(&self, dev: &str, cidr: &str) -> Result<()> {
        // `nodad`: IPv6 addresses are usable at once instead of after duplicate detection.
        if cidr.contains(':') {
            self.ip(&["addr", "add", cidr, "dev", dev, "nodad"])
                .map(drop)
        } else {
            self.ip(&["addr", "add", cidr, "dev", dev]).map(drop)
        }
    }

    /// Adds a route: `dest` (`default`, `10.1.0.0/24`) via the gateway `via`.
    pub fn add_route(&self, dest: &str, via: &str) -> Result<()> {
        self.ip(&["route", "add", dest, "via", via]).map(drop)
    }

    /// The MAC address of `dev`.
    pub fn mac(&self, dev: &str) -> Result<String> {
        let out = self.ip(&["-o", "link", "show", dev])?;
        out.split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .map(str::to_string)
            .ok_or_else(|| TestbedError::Parse {
                tool: "ip link",
                detail: out.clone(),
            })
    }

    /// Prepares `dev` for the director-cost method of DESIGN.md: GRO on, TSO off, threaded NAPI
    /// on. Returns the pids of the NAPI kthreads this created (`napi/<dev>-<napi id>`), found as
    /// the `napi/<dev>-*` kthreads that appeared meanwhile — the kernel exposes no napi id in
    /// sysfs. (Calls are serialised within a process; another process enabling threaded NAPI on a
    /// device of the same name at the same instant could be mistaken for ours.)
    pub fn threaded_napi(&self, dev: &str) -> Result<Vec<u32>> {
        static NAPI_LOCK: Mutex<()> = Mutex::new(());
        let _guard = NAPI_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let prefix = format!("napi/{dev}-");
        let before = crate::procstat::pids_by_comm(|c| c.starts_with(&prefix))?;
        self.run("ethtool", &["-K", dev, "gro", "on", "tso", "off"])?;
        self.run(
            "sh",
            &["-c", &format!("echo 1 > /sys/class/net/{dev}/threaded")],
        )?;
        let after = crate::procstat::pids_by_comm(|c| c.starts_with(&prefix))?;
        Ok(after.into_iter().filter(|p| !before.contains(p)).collect())
    }

    /// Pids of the processes inside this namespace.
    pub fn pids(&self) -> Result<Vec<u32>> {
        let out = cmd::ip(&["netns", "pids", &self.name])?;
        Ok(out
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }

    /// Starts `cmd` in the background (stdout/stderr discarded unless the caller set them);
    /// the returned [`Process`] is killed when dropped.
    pub fn spawn(&self, mut cmd: Command) -> Result<Process> {
        Process::spawn(&mut cmd)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete(&self.name);
        lock_registry().remove(&self.name);
    }
}

/// A background process (a server, tcpdump, ...) killed and reaped when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    what: String,
}

impl Process {
    /// Spawns `cmd`; stdin is closed, stdout/stderr go to /dev/null unless already set.
    pub fn spawn(cmd: &mut Command) -> Result<Process> {
        let what = describe(cmd);
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .map_err(|source| TestbedError::Spawn {
                cmd: what.clone(),
                source,
            })?;
        Ok(Process { child, what })
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits up to `grace` for it to exit (then SIGKILL). Use this when the
    /// process must flush something on exit (tcpdump's capture file).
    pub fn stop(mut self, grace: Duration) -> Result<std::process::ExitStatus> {
        signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    return self
                        .child
                        .wait()
                        .map_err(|e| TestbedError::io(&self.what, e));
                }
                Err(e) => return Err(TestbedError::io(&self.what, e)),
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(pid, sig) };
    }
}

fn lock_registry() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Kills every process in namespace `name`, then deletes it. Errors are ignored: this runs in
/// `Drop` and in the signal handler, where there is nobody to report to.
fn delete(name: &str) {
    if let Ok(out) = cmd::ip(&["netns", "pids", name]) {
        for pid in out.split_whitespace().filter_map(|p| p.parse().ok()) {
            signal(pid, libc::SIGKILL);
        }
    }
    let _ = cmd::ip(&["netns", "del", name]);
}

/// Deletes every namespace this process created and has not dropped yet.
pub fn cleanup_all() {
    let names: Vec<String> = std::mem::take(&mut *lock_registry()).into_iter().collect();
    for name in names {
        delete(&name);
    }
}

/// Names of all test-bed namespaces on the machine (any process).
pub fn list_testbed_namespaces() -> Result<Vec<String>> {
    let out = cmd::ip(&["netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_string)
        .collect())
}

/// Deletes `rvs-<pid>-*` namespaces whose creating process is gone. Returns how many.
pub fn sweep_stale() -> usize {
    let Ok(names) = list_testbed_namespaces() else {
        return 0;
    };
    let mut swept = 0;
    for name in names {
        let pid = name[PREFIX.len()..]
            .split('-')
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            delete(&name);
            swept += 1;
        }
    }
    swept
}

fn init_process() {
    let swept = sweep_stale();
    if swept > 0 {
        eprintln!("rvs-testbed: removed {swept} stale namespace(s) left by dead processes");
    }
    // Another handler may already be installed (by the program under test); then we rely on
    // Drop and the stale sweep.
    let _ = ctrlc::set_handler(|| {
        eprintln!("rvs-testbed: signal received, removing namespaces");
        cleanup_all();
        std::process::exit(130);
    });
}
