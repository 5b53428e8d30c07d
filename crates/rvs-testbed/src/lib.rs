//! # rvs-testbed — what end-to-end tests and benchmarks stand on
//!
//! * [`bin_path`] — where the workspace's binaries under test are.
#![allow(clippy::new_without_default)]

use std::path::PathBuf;

/// Path of a binary of this workspace (`rvsd`, `rvsadm`, ...), built by `cargo build` into the
/// same target directory as the running test. Panics with a clear message if it is missing.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("test binary in target/<profile>/deps");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not found: build the workspace binaries first (`cargo build --workspace --bins`, as scripts/test.sh does)",
        p.display()
    );
    p
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
