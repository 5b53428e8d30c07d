//! Where the workspace's binaries under test are (`rvsd`, `rvsadm`, ...): in the same target
//! directory and profile as the running test (`target/<profile>/deps/<test>` →
//! `target/<profile>/<name>`).
//!
//! `cargo test -p <crate>` builds only that crate's own binaries, so a test of one crate that
//! runs another crate's binary would find nothing in a fresh target directory. The first call
//! that finds a binary missing builds them all (`cargo build --workspace --bins` with the test's
//! profile and target directory, once per test process; concurrent test processes wait on
//! cargo's lock), then panics with a clear message only if that failed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Path of a binary of this workspace, built on first need (see the module docs).
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("test binary in target/<profile>/deps");
    let p = profile_dir.join(name);
    if !p.exists() {
        build_once(profile_dir);
    }
    assert!(
        p.exists(),
        "{} not found after building the workspace binaries (`cargo build --workspace --bins`)",
        p.display()
    );
    p
}

/// Builds every binary of the workspace into `profile_dir` (at most once per process).
fn build_once(profile_dir: &Path) {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if *built {
        return;
    }
    *built = true;
    let (Some(target_dir), Some(profile)) = (
        profile_dir.parent(),
        profile_dir.file_name().and_then(|n| n.to_str()),
    ) else {
        return;
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--workspace", "--bins", "--quiet"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    eprintln!("building the workspace binaries for this test: {cmd:?}");
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!("cargo build --workspace --bins failed: {s}"),
        Err(e) => eprintln!("cannot run cargo: {e}"),
    }
}
