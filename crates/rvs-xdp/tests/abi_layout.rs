//! The Rust mirrors in `rvs_xdp::abi` must match `bpf/rvs_abi.h`: this compiles a small C
//! program against the header with the host compiler, prints every struct's size and every
//! field's offset, and compares them with Rust's `size_of` / `offset_of!`. Constants and the
//! outcome enum are generated from the header by build.rs, so they cannot diverge.

use rvs_xdp::abi::*;
use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::process::Command;

macro_rules! layout {
    ($out:ident, $cname:literal, $ty:ty, [$($cf:literal => $rf:ident),* $(,)?]) => {
        $out.push(($cname.to_string(), size_of::<$ty>()));
        $( $out.push((format!("{}.{}", $cname, $cf), offset_of!($ty, $rf))); )*
    };
}

fn rust_layout() -> Vec<(String, usize)> {
    let mut v = Vec::new();
    layout!(v, "rvs_vip_key", VipKey, ["addr" => addr, "port" => port, "proto" => proto, "family" => family]);
    layout!(v, "rvs_service", Service, ["index" => index, "flags" => flags, "persist_timeout" => persist_timeout, "persist_prefix" => persist_prefix]);
    layout!(v, "rvs_real", Real, ["addr" => addr, "family" => family, "method" => method, "flags" => flags, "has_mac" => has_mac, "mac" => mac]);
    layout!(v, "rvs_flow_key", FlowKey, ["src" => src, "dst" => dst, "sport" => sport, "dport" => dport, "proto" => proto, "family" => family]);
    layout!(v, "rvs_conn", Conn, ["real" => real, "svc" => svc, "last_ns" => last_ns, "state" => state, "method" => method, "lport" => lport, "laddr" => laddr, "persist" => persist]);
    layout!(v, "rvs_persist_key", PersistKey, ["svc" => svc, "addr" => addr]);
    layout!(v, "rvs_persist", Persist, ["real" => real, "last_ns" => last_ns]);
    layout!(v, "rvs_iface", Iface, ["mac" => mac, "mtu" => mtu, "src4" => src4, "src6" => src6]);
    layout!(v, "rvs_config", Config, ["timeout_ns" => timeout_ns, "tcp_next" => tcp_next, "icmp_rate" => icmp_rate, "icmp_burst" => icmp_burst]);
    layout!(v, "rvs_icmp_bucket", IcmpBucket, ["tokens" => tokens, "last_ns" => last_ns]);
    layout!(v, "rvs_counters", Counters, ["conns" => conns, "packets" => packets, "bytes" => bytes, "out_packets" => out_packets, "out_bytes" => out_bytes]);
    layout!(v, "rvs_nat_rev", NatRev, ["orig" => orig, "nh_expires_ns" => nh_expires_ns, "nh_ingress" => nh_ingress, "nh_ifindex" => nh_ifindex, "nh_dmac" => nh_dmac, "nh_smac" => nh_smac, "real" => real]);
    layout!(v, "rvs_decap_key", DecapKey, ["addr" => addr, "family" => family]);
    layout!(v, "rvs_bench_frame", BenchFrame, ["len" => len, "vary_offset" => vary_offset, "counter" => counter, "data" => data]);
    layout!(v, "rvs_fnat_pool", FnatPool, ["count" => count, "addrs" => addrs]);
    layout!(v, "rvs_fwd_config", FwdConfig, ["vip" => vip, "port" => port, "own_mac" => own_mac, "count" => count, "macs" => macs]);
    v
}

fn c_program(items: &[(String, usize)]) -> String {
    let mut s = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"rvs_abi.h\"\nint main(void) {\n",
    );
    for (name, _) in items {
        match name.split_once('.') {
            Some((st, field)) => {
                s += &format!("  printf(\"{name} %zu\\n\", offsetof(struct {st}, {field}));\n")
            }
            None => s += &format!("  printf(\"{name} %zu\\n\", sizeof(struct {name}));\n"),
        }
    }
    s + "  return 0;\n}\n"
}

#[test]
fn rust_mirror_matches_c_header() {
    let items = rust_layout();
    let dir = std::env::temp_dir().join(format!("rvs-abi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("check.c");
    let bin = dir.join("check");
    std::fs::write(&src, c_program(&items)).unwrap();
    let bpf = concat!(env!("CARGO_MANIFEST_DIR"), "/bpf");
    let cc = std::env::var("CC").unwrap_or_else(|_| "clang".into());
    let status = Command::new(&cc)
        .arg("-I")
        .arg(bpf)
        .arg(&src)
        .arg("-o")
        .arg(&bin)
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!("compiling the ABI checker with {cc} failed: {other:?}"),
    }
    let out = Command::new(&bin).output().unwrap();
    let c: BTreeMap<String, usize> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    let mut diffs = Vec::new();
    for (name, rust) in &items {
        if c.get(name) != Some(rust) {
            diffs.push(format!("{name}: C {:?}, Rust {rust}", c.get(name)));
        }
    }
    assert!(diffs.is_empty(), "ABI mismatch:\n{}", diffs.join("\n"));
}

#[test]
fn generated_constants_are_consistent() {
    assert_eq!(RVS_STATS_SLOTS, RVS_MAX_SERVICES + RVS_MAX_REALS);
    assert_eq!(OUTCOME_NAMES.len() as u32, RVS_OUTCOME_MAX);
    assert_eq!(outcome_name(RVS_OUTCOME_TOO_BIG), Some("too_big"));
    assert_eq!(RVS_NO_REAL, u64::from(u32::MAX));
}
