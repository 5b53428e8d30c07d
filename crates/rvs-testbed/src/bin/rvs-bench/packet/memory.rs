//! What the director holds for idle connections. `rvs-bench hold` opens N connections from the
//! client through the subject and keeps them open while we read:
//!
//! * nftables (conntrack): the growth of the `nf_conntrack` slab cache (`/proc/slabinfo`,
//!   active objects × object size) and of the director namespace's `nf_conntrack_count`, divided
//!   by the connections held. (NAT extensions live inside that object on current kernels; the
//!   slab is global, so other work on the machine adds noise — the count is exact.)
//! * rvs XDP: BPF maps are preallocated, so holding connections allocates nothing; the honest
//!   figure is the bytes each tracked flow occupies in the per-flow maps (`bpftool map show`:
//!   `bytes_memlock` / `max_entries`, summed over the maps a flow of this method uses) and the
//!   total the director set aside for them whatever the load.

use std::time::Duration;

use rvs_testbed::{Netns, xdp_pass};
use serde_json::Value;

use crate::packet::measure::Ctx;
use crate::record::{LOWER, Recorder};
use crate::{BoxResult, Holder};

/// How the subject keeps per-connection state.
pub enum State<'a> {
    /// The kernel's conntrack (nftables NAT, forwarding with a conntrack rule).
    Conntrack,
    /// rvs's BPF maps: the program attached to `dev`; `flow_maps` are the per-flow maps.
    Bpf {
        /// A director interface the rvs program is attached to.
        dev: &'a str,
        /// Names of the maps holding one entry per flow for this method.
        flow_maps: &'a [&'a str],
    },
}

/// `nf_conntrack` slab: (active objects × object size, object size), in bytes.
fn conntrack_slab() -> BoxResult<(f64, f64)> {
    let text = std::fs::read_to_string("/proc/slabinfo")?;
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("nf_conntrack"))
        .ok_or("no nf_conntrack line in /proc/slabinfo (merged slab?)")?;
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect();
    match f.as_slice() {
        [active, _total, size] => Ok((active * size, *size)),
        _ => Err(format!("cannot parse {line:?}").into()),
    }
}

fn conntrack_count(ns: &Netns) -> BoxResult<f64> {
    Ok(ns
        .run("cat", &["/proc/sys/net/netfilter/nf_conntrack_count"])?
        .trim()
        .parse()?)
}

fn bpftool(args: &[&str]) -> BoxResult<Value> {
    let out = std::process::Command::new("bpftool")
        .args(args)
        .arg("-j")
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "bpftool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// (name, max_entries, bytes_memlock) of every map of the program attached to `dev` in `ns`.
pub fn program_maps(ns: &Netns, dev: &str) -> BoxResult<Vec<(String, f64, f64)>> {
    let id = xdp_pass::program_id(ns, dev)?.ok_or_else(|| format!("no XDP program on {dev}"))?;
    let prog = bpftool(&["prog", "show", "id", &id.to_string()])?;
    let ids = prog["map_ids"].as_array().cloned().unwrap_or_default();
    let mut maps = Vec::new();
    for m in ids {
        let m = bpftool(&["map", "show", "id", &m.to_string()])?;
        maps.push((
            m["name"].as_str().unwrap_or("?").to_string(),
            m["max_entries"].as_f64().unwrap_or(0.0),
            m["bytes_memlock"].as_f64().unwrap_or(f64::NAN),
        ));
    }
    Ok(maps)
}

/// Waits (up to 10 s) until the client has no connection to `target` (ADDR:PORT) in a state
/// before TIME-WAIT; returns how many are left.
fn settle_closed(client: &Netns, target: &str) -> usize {
    let filter = format!("dst {target}");
    let args = [
        "-Htn",
        "state",
        "established",
        "state",
        "fin-wait-1",
        "state",
        "fin-wait-2",
        "state",
        "closing",
        "state",
        "last-ack",
        "state",
        "close-wait",
        &filter,
    ];
    until_none(|| sockets(client, &args))
}

/// Waits (up to 10 s) until no real has an ESTABLISHED connection on port 80 (nothing else
/// runs then, so those are held connections whose reset has not arrived); returns how many are
/// left.
fn settle_reals(reals: &[&Netns]) -> usize {
    let args = ["-Htn", "state", "established", "sport = :80"];
    until_none(|| reals.iter().map(|ns| sockets(ns, &args)).sum())
}

/// How many sockets `ss args` lists in `ns` (0 if `ss` fails).
fn sockets(ns: &Netns, args: &[&str]) -> usize {
    ns.run("ss", args).map(|o| o.lines().count()).unwrap_or(0)
}

/// Polls `count` every 100 ms until it reads 0 or 10 s have passed; returns the last count.
fn until_none(count: impl Fn() -> usize) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let open = count();
        if open == 0 || std::time::Instant::now() > deadline {
            return open;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Connections held: 10,000 (the figure; a director needs no descriptor per
/// connection, unlike a proxy), the plan's smaller number in smoke mode.
pub fn count(plan: &crate::Plan) -> usize {
    if plan.mode == "smoke" {
        plan.idle_connections
    } else {
        10_000
    }
}

/// [`idle_once`], retried once after 5 s; if that fails too, the figures are recorded as
/// missing with the reason in the notes (the comparison's other figures are kept).
pub fn idle(
    ctx: &mut Ctx,
    subject: &str,
    dir_ns: &Netns,
    target: &str,
    state: &State,
) -> BoxResult<()> {
    let first = match idle_once(ctx, subject, dir_ns, target, state) {
        Ok(()) => return Ok(()),
        Err(e) => e.to_string(),
    };
    eprintln!("rvs-bench: {first}; retrying in 5 s");
    std::thread::sleep(Duration::from_secs(5));
    if let Err(e) = idle_once(ctx, subject, dir_ns, target, state) {
        ctx.rec.note(&format!(
            "{subject}: idle-connection figures missing: {e} (first try: {first})"
        ));
        push_memory(ctx.rec, subject, (f64::NAN, f64::NAN));
    }
    Ok(())
}

/// Holds 10,000 connections (smoke: `plan.idle_connections`) to `target` (ADDR:PORT) from the client and
/// records the director's memory per connection (bytes) and in total (MiB).
fn idle_once(
    ctx: &mut Ctx,
    subject: &str,
    dir_ns: &Netns,
    target: &str,
    state: &State,
) -> BoxResult<()> {
    // 10,000 (the figure; a director needs no descriptor per connection, unlike a proxy).
    let n = count(ctx.plan);
    let (slab0, count0) = match state {
        State::Conntrack => (conntrack_slab()?.0, conntrack_count(dir_ns)?),
        State::Bpf { .. } => (0.0, 0.0),
    };
    let holder = Holder::start(ctx.client, target, n)?;
    let (held, line) = (holder.held as f64, holder.line.clone());
    std::thread::sleep(Duration::from_millis(300));
    let result = match state {
        State::Conntrack => {
            let (now, objsize) = conntrack_slab()?;
            let count = conntrack_count(dir_ns)? - count0;
            // Every held connection has an entry; when the count grew by less, older entries
            // (earlier subjects' closed connections) expired meanwhile and freed their objects:
            // add those back so the figure is what the held connections occupy.
            let expired = (held - count).max(0.0);
            let slab = now - slab0 + expired * objsize;
            ctx.rec.note(&format!(
                "{subject}: {held} idle connections held; conntrack entries +{count} (so {expired} older ones expired meanwhile, {objsize} bytes each, added back), nf_conntrack slab +{:.0} KiB",
                (now - slab0) / 1024.0
            ));
            (slab / held, slab / 1024.0 / 1024.0)
        }
        State::Bpf { dev, flow_maps } => {
            let maps = program_maps(dir_ns, dev)?;
            let per_flow: f64 = maps
                .iter()
                .filter(|(name, _, _)| flow_maps.contains(&name.as_str()))
                .map(|(_, entries, bytes)| bytes / entries.max(1.0))
                .sum();
            let total: f64 = maps
                .iter()
                .filter(|(name, _, _)| flow_maps.contains(&name.as_str()))
                .map(|(_, _, bytes)| bytes)
                .sum();
            let all: Vec<String> = maps
                .iter()
                .map(|(name, e, b)| format!("{name} {e:.0} entries {:.1} MiB", b / 1048576.0))
                .collect();
            ctx.rec.note(&format!(
                "{subject}: {held} idle connections held; per-flow maps {flow_maps:?} preallocated; all maps of the program: {}",
                all.join(", ")
            ));
            (per_flow, total / 1024.0 / 1024.0)
        }
    };
    holder.release()?;
    // The holder resets its connections (no TIME-WAIT left on the client, see `abort` in
    // main.rs). Wait until the client has none left open while the subject still runs: an rvs
    // director stopped too early would leave the reals with thousands of open connections
    // (nginx then runs out of worker connections in the next runs).
    let open = settle_closed(ctx.client, target);
    if open > 0 {
        ctx.rec.note(&format!(
            "{subject}: {open} held connections still closing after 10 s"
        ));
    }
    // And on the reals' side: a reset lost on the way would leave them an open socket that a
    // later connection from the same client port meets.
    let stale = settle_reals(&ctx.reals);
    if stale > 0 {
        ctx.rec.note(&format!(
            "{subject}: the reals still had {stale} of the held connections open 10 s after their release (resets lost on the way)"
        ));
    }
    if held == 0.0 {
        let ss = ctx.client.run("ss", &["-s"]).unwrap_or_default();
        let range = ctx
            .client
            .run("cat", &["/proc/sys/net/ipv4/ip_local_port_range"])
            .unwrap_or_default();
        let to_vip = ctx
            .client
            .run("ss", &["-Htan", &format!("dst {target}")])
            .unwrap_or_default();
        let mut states = std::collections::BTreeMap::new();
        for l in to_vip.lines() {
            *states
                .entry(l.split_whitespace().next().unwrap_or("?").to_string())
                .or_insert(0) += 1;
        }
        return Err(format!(
            "{subject}: no idle connection could be opened ({line:?}); client port range {}, sockets to {target} by state {states:?}; {ss}",
            range.trim()
        )
        .into());
    }
    push_memory(ctx.rec, subject, result);
    Ok(())
}

/// Records `subject`'s idle-connection figures: (bytes per connection, MiB set aside).
fn push_memory(rec: &mut Recorder, subject: &str, (per_conn, total): (f64, f64)) {
    let scen = "idle connections";
    rec.push(
        subject,
        scen,
        "memory_per_connection",
        "bytes",
        LOWER,
        per_conn,
    );
    rec.push(subject, scen, "memory_for_connections", "MiB", LOWER, total);
}
