//! `rvs-xdp-forward`: attaches the trivial XDP forwarder ([`rvs_xdp::forward`]) to one interface
//! of the current network namespace — the ceiling of the end-to-end DR benchmark (`packet_dr`,
//! subject `xdp-forward`, bench/README.md). Root.
//!
//! ```text
//! rvs-xdp-forward --interface IF --vip IPV4 --port PORT --real-mac MAC [--real-mac MAC ...]
//!                 [--generic]
//! ```
//!
//! The source MAC of forwarded frames is the interface's own. Attaches in native mode (generic
//! when native is refused, or only generic with `--generic`), prints `READY` on stdout, then
//! waits for signals: SIGUSR1 prints `forwarded N` (packets forwarded so far, all CPUs) on
//! stdout; SIGTERM or SIGINT prints the same line, detaches and exits.

use rvs_xdp::forward::Forwarder;
use std::io::Write;
use std::net::Ipv4Addr;

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const USAGE: &str = "usage: rvs-xdp-forward --interface IF --vip IPV4 --port PORT \
                     --real-mac MAC [--real-mac MAC ...] [--generic]";

struct Args {
    interface: String,
    vip: Ipv4Addr,
    port: u16,
    reals: Vec<[u8; 6]>,
    generic: bool,
}

fn parse_mac(s: &str) -> BoxResult<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("bad MAC {s:?} (expected aa:bb:cc:dd:ee:ff)").into());
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("bad MAC {s:?}"))?;
    }
    Ok(mac)
}

fn parse_args() -> BoxResult<Args> {
    let (mut interface, mut vip, mut port) = (None, None, None);
    let (mut reals, mut generic) = (Vec::new(), false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--interface" => interface = Some(value()?),
            "--vip" => vip = Some(value()?.parse::<Ipv4Addr>()?),
            "--port" => port = Some(value()?.parse::<u16>()?),
            "--real-mac" => reals.push(parse_mac(&value()?)?),
            "--generic" => generic = true,
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument {a:?}\n{USAGE}").into()),
        }
    }
    Ok(Args {
        interface: interface.ok_or(USAGE)?,
        vip: vip.ok_or(USAGE)?,
        port: port.ok_or(USAGE)?,
        reals,
        generic,
    })
}

/// Blocks SIGTERM, SIGINT and SIGUSR1 for this (only) thread, so that [`next_signal`] receives
/// them instead of their default actions.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset/pthread_sigmask get valid pointers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGUSR1] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn next_signal(set: &libc::sigset_t) -> i32 {
    let mut sig = 0;
    // SAFETY: set is an initialised sigset_t, sig a valid out pointer.
    unsafe { libc::sigwait(set, &mut sig) };
    sig
}

fn report(fwd: &Forwarder) -> BoxResult<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "forwarded {}", fwd.forwarded()?)?;
    out.flush()?;
    Ok(())
}

fn main() -> BoxResult<()> {
    let signals = block_signals();
    let args = parse_args()?;
    let own_mac = rvs_net::Netlink::new()?.link(&args.interface)?.mac;
    let mut fwd = Forwarder::load()?;
    fwd.configure(args.vip, args.port, own_mac, &args.reals)?;
    let (mode, _link) = fwd.attach(&args.interface, args.generic)?;
    eprintln!(
        "rvs-xdp-forward: {}:{} over {} reals on {} ({mode:?})",
        args.vip,
        args.port,
        args.reals.len(),
        args.interface
    );
    println!("READY");
    std::io::stdout().flush()?;
    loop {
        let sig = next_signal(&signals);
        report(&fwd)?;
        if sig != libc::SIGUSR1 {
            break;
        }
    }
    drop(fwd);
    Ok(())
}
