//! Support of the restart tests (`keep_flows*.rs`, which hold a keep-alive connection with
//! `rvs_testbed::http_keepalive_get` across an engine's exit): where an engine keeps its state.

#![allow(dead_code)]

use rvs_testbed::Netns;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// `/sys/fs/bpf/rvs/xdp/<inode of namespace ns>`: where an engine there keeps its state.
pub fn kept_root(ns: &Netns) -> PathBuf {
    let ino = ns.in_thread(|| {
        std::fs::metadata("/proc/thread-self/ns/net")
            .expect("netns")
            .ino()
    });
    PathBuf::from(format!("/sys/fs/bpf/rvs/xdp/{ino}"))
}

/// How many pins are left under `root` (0 when it is gone).
pub fn pins(root: &std::path::Path) -> usize {
    std::fs::read_dir(root).map_or(0, |d| d.count())
}
