//! Binding the control API: the unix socket (mode 0600, parent directory created 0700, a stale
//! socket from a dead daemon replaced, a live one refused) and the optional TCP listener.

use anyhow::Context;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::net::{TcpListener, UnixListener};

/// Check before anything is started that the socket path is free (no live daemon on it).
pub fn check_socket_free(path: &Path) -> anyhow::Result<()> {
    if path.exists() && std::os::unix::net::UnixStream::connect(path).is_ok() {
        anyhow::bail!("another rvsd is already listening on {}", path.display());
    }
    Ok(())
}

/// Bind the unix socket with mode 0600.
pub fn bind_unix(path: &Path) -> anyhow::Result<UnixListener> {
    check_socket_free(path)?;
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting the mode of {}", dir.display()))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            anyhow::bail!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing stale socket {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(listener)
}

/// Bind the TCP listener and read its bearer token.
pub async fn bind_tcp(
    addr: std::net::SocketAddr,
    token_file: &Path,
) -> anyhow::Result<(TcpListener, String)> {
    let token = std::fs::read_to_string(token_file)
        .with_context(|| format!("reading the token file {}", token_file.display()))?
        .trim()
        .to_string();
    if token.is_empty() {
        anyhow::bail!("the token file {} is empty", token_file.display());
    }
    let l = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    Ok((l, token))
}

/// Removes the socket file when dropped (clean exit).
pub struct SocketGuard(pub PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            tracing::warn!(path = %self.0.display(), error = %e, "could not remove the socket");
        }
    }
}
