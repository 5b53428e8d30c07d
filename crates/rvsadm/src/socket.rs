//! Where rvsd's control socket is: `--socket`, else [`rvs_api::default_socket_path`]
//! (`$RVS_SOCKET`, `/run/rvs/rvsd.sock` as root, `$XDG_RUNTIME_DIR/rvs/rvsd.sock` or
//! `/tmp/rvs-$UID/rvsd.sock`), the same function rvsd uses.

use std::path::PathBuf;

/// The socket path to use given the `--socket` flag.
pub fn socket_path(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(rvs_api::default_socket_path)
}
