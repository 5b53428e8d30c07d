//! `rvs-bench` — the comparisons of the benchmark suite (driven by `bench/*.sh`, documented in
//! `bench/README.md`). Each comparison writes one JSON result file that `bench/report.py` turns
//! into tables and charts.
//!
//! ```text
//! rvs-bench proxy --mode smoke|quick|full --out FILE.json [--rvsd PATH]
//! rvs-bench packet-nat --mode smoke|quick|full --out FILE.json   # two-arm: nftables, rvs NAT/FULLNAT
//! rvs-bench packet-dr  --mode smoke|quick|full --out FILE.json   # L2 segment: direct, xdp-forward, rvs DR/TUN
//! rvs-bench hold ADDR N      # internal: hold N idle TCP connections until stdin closes
//! ```

mod packet;
mod phases;
mod proxy;
mod record;

use std::io::{BufRead, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use record::Recorder;

/// Errors at the binary's edge.
pub type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// CPU of the balancer (or the director's NAPI kthreads).
pub const BALANCER_CPU: &str = "1";
/// CPU of everything else (clients, reals).
pub const CLIENT_CPU: &str = "0";

/// How long and how often to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `smoke`, `quick` or `full`.
    pub mode: String,
    /// Length of one measured wrk run.
    pub duration: Duration,
    /// Warm-up run before the rounds (none in smoke mode).
    pub warmup: Option<Duration>,
    /// Measured rounds; the report gives the median.
    pub rounds: usize,
    /// wrk connections.
    pub connections: u32,
    /// Seconds of one iperf3 run.
    pub bulk_secs: u32,
    /// Rounds with a bulk (iperf3) run: the first `bulk_rounds` of the `rounds`.
    pub bulk_rounds: usize,
    /// Connections held for the memory figure.
    pub idle_connections: usize,
}

impl Plan {
    fn for_mode(mode: &str) -> BoxResult<Plan> {
        let (secs, warm, rounds, bulk, idle) = match mode {
            "smoke" => (1.0, None, 1, 1, 200),
            "quick" => (2.0, Some(1.0), 3, 1, 9_900),
            "full" => (10.0, Some(3.0), 5, 10, 9_900),
            _ => return Err(format!("unknown mode {mode:?} (smoke, quick, full)").into()),
        };
        Ok(Plan {
            mode: mode.into(),
            duration: Duration::from_secs_f64(secs),
            warmup: warm.map(Duration::from_secs_f64),
            rounds,
            connections: 50,
            bulk_secs: bulk,
            // Quick mode: one bulk run per subject (keeps it under five minutes).
            bulk_rounds: if mode == "quick" { 1 } else { rounds },
            idle_connections: idle,
        })
    }
}

fn usage() -> String {
    "usage: rvs-bench <proxy|packet-nat|packet-dr> --mode smoke|quick|full --out FILE.json [--rvsd PATH]\n       rvs-bench hold ADDR N".into()
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("rvs-bench: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        return Err(usage().into());
    };
    if cmd == "hold" {
        let addr = args.get(1).ok_or_else(usage)?;
        let n: usize = args.get(2).ok_or_else(usage)?.parse()?;
        return hold(addr, n);
    }
    let (mut mode, mut out, mut rvsd) = (None, None, None);
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--mode" => mode = Some(value()?),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--rvsd" => rvsd = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown argument {a:?}\n{}", usage()).into()),
        }
    }
    let plan = Plan::for_mode(mode.as_deref().unwrap_or("quick"))?;
    let out = out.ok_or("--out FILE.json is required")?;
    if !rvs_testbed::is_root() {
        return Err("needs root (network namespaces, CPU pinning of kernel threads)".into());
    }
    // `bench/run.sh` sets RVS_BENCH_NO_RVSD when rvsd failed to build, so that a stale binary
    // is not measured in its place.
    let rvsd = match std::env::var("RVS_BENCH_NO_RVSD") {
        Ok(reason) => Err(reason),
        Err(_) => rvsd
            .or_else(default_rvsd)
            .ok_or_else(|| "rvsd binary not found (cargo build -p rvsd)".to_string()),
    };
    let mut rec = Recorder::default();
    match cmd.as_str() {
        "proxy" => {
            proxy::run(&plan, rvsd, &mut rec)?;
            let title = "Proxy path: rvs proxy vs HAProxy (mode tcp) vs nginx stream vs direct";
            rec.write(
                &out,
                "proxy",
                title,
                &["haproxy", "nginx-stream", "direct"],
                &plan.mode,
            )?;
        }
        "packet-nat" | "packet-dr" => {
            let bins = packet::balancer::Binaries {
                rvsd,
                dir: std::env::current_exe()?
                    .parent()
                    .ok_or("no directory of rvs-bench")?
                    .to_path_buf(),
            };
            let (name, title, pairs) = if cmd == "packet-nat" {
                packet::nat::run(&plan, &bins, &mut rec)?;
                (
                    "packet_nat",
                    "Packet path end to end, two-arm (NAT): rvs XDP NAT/FULLNAT vs nftables DNAT (+ masquerade) vs plain forwarding",
                    packet::nat::PAIRS,
                )
            } else {
                packet::dr::run(&plan, &bins, &mut rec)?;
                (
                    "packet_dr",
                    "Packet path end to end, one L2 segment (DR/TUN): rvs XDP DR and TUN vs wrk straight to the reals",
                    packet::dr::PAIRS,
                )
            };
            rec.pairs(pairs);
            rec.write(&out, name, title, &[], &plan.mode)?;
        }
        _ => return Err(usage().into()),
    }
    eprintln!("rvs-bench: wrote {}", out.display());
    Ok(())
}

/// `rvsd` beside this binary (same target directory), or `$RVSD`.
fn default_rvsd() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RVSD") {
        return Some(PathBuf::from(p));
    }
    let p = std::env::current_exe().ok()?.parent()?.join("rvsd");
    p.exists().then_some(p)
}

/// A `rvs-bench hold` child process holding idle connections (see [`hold`]).
pub struct Holder {
    child: std::process::Child,
    /// How many connections it holds.
    pub held: usize,
    /// Its `READY` line as printed (for error messages).
    pub line: String,
}

impl Holder {
    /// Starts `rvs-bench hold target n` in `ns` on the client CPU and waits for its `READY`.
    pub fn start(ns: &rvs_testbed::Netns, target: &str, n: usize) -> BoxResult<Holder> {
        let exe = std::env::current_exe()?;
        let mut child = ns
            .command_pinned(CLIENT_CPU, &exe.to_string_lossy())
            .args(["hold", target, &n.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("holder stdout")?;
        let line = std::io::BufReader::new(stdout)
            .lines()
            .next()
            .transpose()?
            .unwrap_or_default();
        let held = line
            .strip_prefix("READY ")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Ok(Holder { child, held, line })
    }

    /// Closes the held connections and waits for the child to exit.
    pub fn release(mut self) -> BoxResult<()> {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"done\n");
        }
        self.child.wait()?;
        Ok(())
    }
}

/// Opens `n` connections to `addr`, prints `READY <opened>`, and holds them until stdin closes
/// or a line arrives; then resets them (see [`abort`]).
fn hold(addr: &str, n: usize) -> BoxResult<()> {
    let mut conns = Vec::with_capacity(n);
    let mut failures = 0;
    while conns.len() < n && failures < 50 {
        match TcpStream::connect(addr) {
            Ok(c) => conns.push(c),
            Err(e) => {
                failures += 1;
                eprintln!("hold: connect {addr}: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    println!("READY {}", conns.len());
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    // Paced: 10,000 resets at once overflow the test bed's veth rings (256 frames each); a
    // lost reset leaves the real an ESTABLISHED socket for that client port until nginx's
    // idle timeout, and a later wrk connection reusing the port through the VIP then meets
    // it (challenge ACK, client reset, SYN resent) — VIP subjects only, not direct runs.
    while !conns.is_empty() {
        let rest = conns.len().saturating_sub(RELEASE_BATCH);
        for c in conns.drain(rest..) {
            abort(&c);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Held connections reset per 2 ms by `hold` (see there).
const RELEASE_BATCH: usize = 100;

/// Makes closing `c` send a reset (`SO_LINGER` 0) instead of a FIN. A FIN would leave the
/// client a TIME-WAIT socket per held connection for 60 s: 10,000 of them per subject, and
/// the next subjects' wrk runs to the same VIP:port then find the client's 28,232 ephemeral
/// ports nearly all taken (`connect` slows to a crawl: new-connection runs fell from ~20,000
/// to ~400 requests/s in the first round after the idle figures).
fn abort(c: &TcpStream) {
    let _ = socket2::SockRef::from(c).set_linger(Some(Duration::ZERO));
}
