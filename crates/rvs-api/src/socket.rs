//! Where the control socket lives when no path is given: `$RVS_SOCKET` if set, else
//! `/run/rvs/rvsd.sock` as root, else `$XDG_RUNTIME_DIR/rvs/rvsd.sock`, else `/tmp/rvs-$UID/rvsd.sock`.
//! rvsd and every client use this one function, so they meet without flags.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Environment variable that overrides the default socket path (for rvsd and rvsadm alike).
pub const SOCKET_ENV: &str = "RVS_SOCKET";

/// The effective user id of this process (from `/proc/self`; 0 if that cannot be read).
pub fn current_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

/// The default control socket path for this user (see the module docs).
pub fn default_socket_path() -> PathBuf {
    if let Some(p) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let uid = current_uid();
    if uid == 0 {
        return PathBuf::from(crate::ROOT_SOCKET);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("rvs").join("rvsd.sock"),
        None => PathBuf::from(format!("/tmp/rvs-{uid}/rvsd.sock")),
    }
}
