//! `xdp_serve`: runs rvs's xdp engine with services given on the command line, in the current
//! network namespace, until stdin closes — for `rvs-bench` (bench/README.md) where rvsd cannot
//! serve the subject: rvsd has no switch for generic (SKB) attach (the `-generic` subjects of
//! full mode). Everything else in the bench goes through rvsd, as an operator would run it.
//!
//! ```text
//! xdp_serve --interface IF [--interface IF ...] [--local ADDR ...] [--generic]
//!           --service VIP:PORT --method nat|fullnat|dr|tun --real ADDR:PORT [--real ...]
//!           [--service ...]
//! ```
//!
//! Prints `READY` once every service is applied, then waits for stdin to close; on exit prints
//! the outcome counters to stderr and detaches.

use rvs_core::desired::{Change, Timeouts};
use rvs_core::engine::Engine;
use rvs_core::model::{ForwardMethod, RealServer, ServiceKey, ServiceOptions};
use rvs_xdp::{XdpConfig, XdpEngine};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn method(s: &str) -> BoxResult<ForwardMethod> {
    Ok(match s {
        "nat" => ForwardMethod::Nat,
        "fullnat" => ForwardMethod::FullNat,
        "dr" => ForwardMethod::Dr,
        "tun" => ForwardMethod::Tun,
        _ => return Err(format!("unknown method {s:?}").into()),
    })
}

fn main() -> BoxResult<()> {
    let mut config = XdpConfig::default();
    let mut changes = vec![Change::SetTimeouts(Timeouts {
        tcp: 900,
        tcp_fin: 5,
        udp: 300,
        ..Default::default()
    })];
    let mut service: Option<ServiceKey> = None;
    let mut fwd = ForwardMethod::Nat;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--interface" => config.interfaces.push(value()?),
            "--local" => config.fullnat_local.push(value()?.parse::<IpAddr>()?),
            "--generic" => config.force_generic = true,
            "--method" => fwd = method(&value()?)?,
            "--service" => {
                let key = ServiceKey::tcp(value()?.parse::<SocketAddr>()?);
                changes.push(Change::AddService {
                    key,
                    options: ServiceOptions::default(),
                });
                service = Some(key);
            }
            "--real" => {
                let service = service.ok_or("--real before --service")?;
                let addr = value()?.parse::<SocketAddr>()?;
                changes.push(Change::AddReal {
                    service,
                    real: RealServer::new(addr, fwd, 1),
                });
            }
            _ => return Err(format!("unknown argument {a:?}").into()),
        }
    }
    let mut engine = XdpEngine::start(config)?;
    engine.apply(&changes)?;
    println!("READY");
    std::io::stdout().flush()?;
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    eprintln!("xdp_serve: outcomes {:?}", engine.stats().outcomes);
    engine.shutdown();
    Ok(())
}
