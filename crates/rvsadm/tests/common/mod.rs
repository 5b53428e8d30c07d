//! Shared by the integration tests: a private rvsd and running rvsadm against it.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rvs_testbed::Netns;

/// A private rvsd (in its own network namespace when root), killed on drop (before the
/// namespace goes).
pub struct Daemon {
    child: Child,
    dir: PathBuf,
    pub socket: PathBuf,
    _netns: Option<Netns>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// VIPs the tests use, put on the namespace's `lo` (seed step 01).
const LOCAL_VIPS: [&str; 2] = ["10.0.0.3/32", "2001:db8::3/128"];

/// Start a daemon, or `None` (after printing why) when not root.
pub fn start_or_skip(test: &str) -> Option<Daemon> {
    if !rvs_testbed::is_root() {
        eprintln!(
            "skipping {test}: needs root to put the seed's VIPs on an interface (in a namespace)"
        );
        return None;
    }
    Some(start(true))
}

/// Output of one rvsadm run.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Start rvsd on a private socket; inside a new namespace with [`LOCAL_VIPS`] on `lo` if
/// `in_netns`, else in this process's namespace (loopback VIPs only).
pub fn start(in_netns: bool) -> Daemon {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rvsadm-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("rvsd.sock");
    let netns = in_netns.then(|| {
        let ns = Netns::new("rvsadm").expect("create namespace");
        for vip in LOCAL_VIPS {
            ns.add_addr("lo", vip).expect("add VIP to lo");
        }
        ns
    });
    let rvsd = rvs_testbed::bin_path("rvsd");
    let mut cmd = match &netns {
        Some(ns) => ns.command(rvsd.to_str().unwrap()),
        None => Command::new(rvsd),
    };
    let child = cmd
        .arg("--socket")
        .arg(&socket)
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start rvsd");
    let d = Daemon {
        child,
        dir,
        socket,
        _netns: netns,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if d.socket.exists() && rvsadm(&d, &["-L", "--timeout"]).code == 0 {
            return d;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("rvsd did not answer on {} within 20 s", d.socket.display());
}

pub fn rvsadm_with_input(d: &Daemon, args: &[&str], input: &str) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rvsadm"))
        .arg("--socket")
        .arg(&d.socket)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rvsadm");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub fn rvsadm(d: &Daemon, args: &[&str]) -> Out {
    rvsadm_with_input(d, args, "")
}

/// Run a command line that must succeed; returns its stdout.
pub fn ok(d: &Daemon, line: &str) -> String {
    let args: Vec<&str> = line.split_whitespace().collect();
    let o = rvsadm(d, &args);
    assert_eq!(o.code, 0, "rvsadm {line} failed: {}", o.stderr);
    o.stdout
}

#[allow(unused_imports)] // not every test binary uses it
pub use rvs_testbed::free_port;
