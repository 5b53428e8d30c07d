//! Where rvsd's control socket is: `--socket`, then `$RVS_SOCKET`, then `/run/rvs/rvsd.sock` as
//! root, `$XDG_RUNTIME_DIR/rvs/rvsd.sock` or `/tmp/rvs-$UID/rvsd.sock` otherwise (as rvs-api
//! documents and rvsd uses).

use std::path::PathBuf;

/// The effective user id, read from `/proc/self/status` (`None` if unreadable).
fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The socket path to use given the `--socket` flag and the environment.
pub fn socket_path(flag: Option<PathBuf>) -> PathBuf {
    if let Some(p) = flag {
        return p;
    }
    if let Some(p) = std::env::var_os("RVS_SOCKET").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let uid = euid().unwrap_or(0);
    if uid == 0 {
        return PathBuf::from(rvs_api::ROOT_SOCKET);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("rvs/rvsd.sock"),
        None => PathBuf::from(format!("/tmp/rvs-{uid}/rvsd.sock")),
    }
}
