//! `bench/profile_report.py` (used by `bench/profile.sh`) on a synthetic profile: samples are
//! split by the phase log, sorted into categories by their stacks, stray processes and idle
//! time are left out, and the shares are applied to the run's measured cost.

use std::io::Write;
use std::process::{Command, Stdio};

/// One `perf script -F comm,time,period,ip,sym` sample: `frames` innermost first.
fn sample(comm: &str, t: f64, frames: &[(&str, &str)]) -> String {
    let mut s = format!("{comm} {t:.6}: 1000000000\n");
    for (addr, sym) in frames {
        s += &format!("\t{addr} {sym}+0x10\n");
    }
    s + "\n"
}

fn report(kind: &str, phases: &str, json: &str, script: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (p, j) = (dir.path().join("phases"), dir.path().join("r.json"));
    std::fs::write(&p, phases).unwrap();
    std::fs::write(&j, json).unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/profile_report.py");
    let mut child = Command::new("python3")
        .arg(root)
        .arg(kind)
        .arg(&p)
        .arg(&j)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The part of `out` from `heading` to the next heading.
fn section<'a>(out: &'a str, heading: &str) -> &'a str {
    let start = out
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading} in {out}"));
    let rest = &out[start + heading.len()..];
    &out[start..start + heading.len() + rest.find("\n## ").unwrap_or(rest.len())]
}

const NAPI: (&str, &str) = ("ffffffff81000100", "napi_threaded_poll");

#[test]
fn packet_samples_are_split_by_run_and_sorted_by_stack() {
    // Run A from 10 s to 20 s, run B from 30 s to 40 s (CLOCK_MONOTONIC ns).
    let phases = "start 10000000000 rvs / keep-alive\nend 20000000000 rvs / keep-alive\n\
                  start 30000000000 nft / keep-alive\nend 40000000000 nft / keep-alive\n";
    let json = r#"{"series": [{"subject": "rvs", "scenario": "keep-alive",
        "metric": "director_cpu_per_request", "values": [4.0, 4.0, 5.0]}]}"#;
    let mut script = String::new();
    // Run A: a wake-up, an unnamed JIT frame (the XDP program), a veth copy, a stray process.
    script += &sample(
        "kthreadd",
        11.0,
        &[("ffffffff81000200", "__napi_schedule"), NAPI],
    );
    script += &sample(
        "kthreadd",
        12.0,
        &[
            ("ffffffff81000300", "htab_map_hash"),
            ("ffffffffc0012345", "[unknown]"),
            NAPI,
        ],
    );
    script += &sample(
        "napi/eth0-1",
        13.0,
        &[("ffffffff81000400", "skb_pp_cow_data"), NAPI],
    );
    script += &sample(
        "kthreadd",
        14.0,
        &[("ffffffff81000500", "__napi_schedule"), NAPI],
    );
    script += &sample(
        "python3",
        15.0,
        &[("55d0000001", "_PyEval_EvalFrameDefault")],
    );
    // Between the runs (not counted) and in run B: idle, and netfilter.
    script += &sample(
        "kthreadd",
        25.0,
        &[("ffffffff81000200", "__napi_schedule"), NAPI],
    );
    script += &sample("swapper", 31.0, &[("ffffffff81000600", "do_idle")]);
    script += &sample(
        "kthreadd",
        32.0,
        &[("ffffffff81000700", "nf_conntrack_in"), NAPI],
    );
    let out = report("packet-nat", phases, json, &script);
    let a = section(&out, "## rvs / keep-alive");
    assert!(
        a.contains("4.00 s sampled; left out (other processes on CPU 1): 1.00 s"),
        "{a}"
    );
    assert!(a.contains("measured cost 4 µs per request"), "{a}");
    assert!(
        a.contains("| waking the next hop's NAPI thread (other CPU) | 50.0% | 2 |"),
        "{a}"
    );
    assert!(
        a.contains("| XDP program with its helpers and maps | 25.0% | 1 |"),
        "{a}"
    );
    assert!(
        a.contains("| veth: copying cloned frames for XDP | 25.0% | 1 |"),
        "{a}"
    );
    let b = section(&out, "## nft / keep-alive");
    assert!(
        b.contains("| netfilter (conntrack, NAT) | 100.0% | – |"),
        "{b}"
    );
    assert!(b.contains("1.00 s sampled"), "{b}");
}

#[test]
fn proxy_samples_are_sorted_into_user_and_kernel_work() {
    let phases = "start 1000000000 rvs-proxy / keep-alive\nend 9000000000 rvs-proxy / keep-alive\n";
    let json = r#"{"series": [{"subject": "rvs-proxy", "scenario": "keep-alive",
        "metric": "cpu_per_1000_requests", "values": [8.0]}]}"#;
    let syscall = ("ffffffff81f00000", "entry_SYSCALL_64_after_hwframe");
    let mut script = String::new();
    script += &sample("rvsd", 2.0, &[("55d0000001", "rvs_proxy::relay::pump")]);
    // A wake-up inside a send counts as the wake-up.
    script += &sample(
        "rvsd",
        3.0,
        &[
            ("ffffffff81000100", "try_to_wake_up"),
            ("ffffffff81000200", "sock_def_readable"),
            ("ffffffff81000300", "tcp_sendmsg_locked"),
            syscall,
        ],
    );
    script += &sample(
        "rvsd",
        4.0,
        &[
            ("ffffffff81000400", "tcp_write_xmit"),
            ("ffffffff81000300", "tcp_sendmsg_locked"),
            syscall,
        ],
    );
    script += &sample(
        "rvsd",
        5.0,
        &[("ffffffff81000500", "tcp_recvmsg_locked"), syscall],
    );
    script += &sample("perf", 6.0, &[("ffffffff81000600", "perf_poll")]);
    let out = report("proxy", phases, json, &script);
    assert!(
        out.contains("left out (other processes on CPU 1): 1.00 s"),
        "{out}"
    );
    assert!(
        out.contains("measured cost 8 ms per 1,000 requests"),
        "{out}"
    );
    assert!(out.contains("| userspace | 25.0% | 2 |"), "{out}");
    assert!(
        out.contains("| waking the peer process (other CPU) | 25.0% | 2 |"),
        "{out}"
    );
    assert!(
        out.contains("| TCP send (with loopback delivery to the peer) | 25.0% | 2 |"),
        "{out}"
    );
    assert!(out.contains("| TCP receive | 25.0% | 2 |"), "{out}");
}
