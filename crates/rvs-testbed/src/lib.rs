//! # rvs-testbed — what end-to-end tests and benchmarks stand on
//!
//! * [`bin_path`] — where the workspace's binaries under test are; [`is_root`] /
//!   [`skip_unless_root`] — root-only tests skip with a printed reason.
//! * [`Netns`] — a network namespace that always goes away (on drop, after a panic, on
//!   Ctrl-C/SIGTERM, and stale ones of dead processes at the next start), with helpers for veth
//!   pairs, bridges, addresses, routes, sysctls, threaded NAPI and running commands inside.
//! * [`Topology`] — the three topologies ([`Kind::L2Segment`] for DR/TUN, [`Kind::TwoArm`] for
//!   NAT, [`Kind::FullNat`]) with a fixed address plan (see [`topology`]).
//! * [`Nginx`], [`Haproxy`], [`Iperf3Server`], [`Tcpdump`] — servers inside a namespace, stopped
//!   on drop; [`curl`], [`ping`], [`wrk`], [`iperf3`] — clients. [`Smtpd`] — OpenSMTPD on a
//!   loopback port, for `SMTP_CHECK`.
//! * [`echo`] — crashable TCP and UDP echo reals on loopback and the clients that check their
//!   echoes, for churn tests.
//! * [`procstat`] — CPU time, scheduler runtime and RSS of a process, for cost per request.
//! * [`director_cost`] — the director-cost method (threaded NAPI, pinned kthreads);
//!   [`xdp_pass`] — a pass-through XDP program for the peer end of a veth an XDP balancer sends on.
//!
//! Implementation: iproute2 (`ip netns`, `ip link`, ...) and the usual tools (`ss`, `ethtool`,
//! `sysctl`, `taskset`), run as child processes. Minimum kernel: Linux 5.10 (named namespaces and
//! veth since long before; `/sys/class/net/<dev>/threaded` for threaded NAPI since 5.12 — only
//! [`Netns::threaded_napi`] needs it). Root is required for everything that creates namespaces.
//!
//! ## Example
//!
//! ```no_run
//! use rvs_testbed::{curl, Kind, Nginx, Topology};
//!
//! # fn main() -> Result<(), rvs_testbed::TestbedError> {
//! if !rvs_testbed::skip_unless_root("my_e2e_test") {
//!     return Ok(());
//! }
//! let topo = Topology::build(Kind::TwoArm, 2)?;
//! let real = &topo.reals[0];
//! let _web = Nginx::start(Some(&real.ns), (real.ip4, 80).into(), "real0")?;
//! let body = curl(Some(&topo.client.ns), &format!("http://{}/", real.ip4))?;
//! assert_eq!(body.trim(), "real0");
//! # Ok(())
//! # } // dropping `topo` and `_web` removes every namespace and stops nginx
//! ```

pub mod bins;
pub mod clients;
pub mod cmd;
pub mod director_cost;
pub mod echo;
pub mod error;
pub mod netns;
pub mod procstat;
pub mod servers;
pub mod smtpd;
pub mod topology;
pub mod xdp_pass;

pub use bins::bin_path;
pub use clients::{WrkOptions, WrkResult, curl, http_keepalive_get, iperf3, ping, wrk};
pub use error::{Result, TestbedError};
pub use netns::{Netns, Process};
pub use servers::{ConfiguredServer, Haproxy, Iperf3Server, Nginx, NginxOptions, Tcpdump};
pub use smtpd::Smtpd;
pub use topology::{Director, Host, Kind, Topology};

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago (bound, then released): for
/// a VIP or a backend on loopback, or a port where nothing answers.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}

/// True when running as root (tests that need root skip with a printed reason otherwise).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Returns true when root; otherwise prints `SKIP <test>: needs root ...` and returns false.
/// Use as `if !skip_unless_root("name") { return; }`.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        true
    } else {
        eprintln!("SKIP {test}: needs root (network namespaces); run as root, as CI does");
        false
    }
}
