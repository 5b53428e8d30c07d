//! Notify commands (`notify_up`, `notify_down`, `quorum_up`, `quorum_down`): which one an
//! event runs, a warning at start for those whose user or group does not exist, and running one
//! through `/bin/sh -c` as its user and group, stopped (with what it started) after 30 s.

use rvs_config::keepalived::{Script, VirtualServerHealth};
use rvs_core::health::NotifyEvent;
use std::net::SocketAddr;
use std::time::Duration;

/// Longest a notify command may run before it is stopped.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// The command configured for an event, if any.
pub(crate) fn notify_command(
    cfg: &VirtualServerHealth,
    real: Option<SocketAddr>,
    event: NotifyEvent,
) -> Option<Script> {
    let r = real.and_then(|a| cfg.reals.iter().find(|r| r.addr == a));
    match event {
        NotifyEvent::RealUp => r?.notify_up.clone(),
        NotifyEvent::RealDown => r?.notify_down.clone(),
        NotifyEvent::QuorumUp => cfg.quorum_up.clone(),
        NotifyEvent::QuorumDown => cfg.quorum_down.clone(),
    }
}

/// Every notify command of a virtual server, named by its keyword (and real).
fn notify_commands(cfg: &VirtualServerHealth) -> Vec<(String, &Script)> {
    let mut out: Vec<(String, &Script)> = Vec::new();
    out.extend(cfg.quorum_up.iter().map(|s| ("quorum_up".to_string(), s)));
    out.extend(
        cfg.quorum_down
            .iter()
            .map(|s| ("quorum_down".to_string(), s)),
    );
    for r in &cfg.reals {
        out.extend(
            r.notify_up
                .iter()
                .map(|s| (format!("notify_up of {}", r.addr), s)),
        );
        out.extend(
            r.notify_down
                .iter()
                .map(|s| (format!("notify_down of {}", r.addr), s)),
        );
    }
    out
}

/// Say at start which notify commands will not run because their user or group does not
/// exist (keepalived ignores such a script; a command line written without quotes has its
/// arguments taken as user and group).
pub(crate) fn warn_unrunnable(cfg: &VirtualServerHealth) {
    for (what, s) in notify_commands(cfg) {
        if let Err(e) = crate::script::credentials(s.user.as_deref(), s.group.as_deref()) {
            tracing::warn!(service = %cfg.service, command = %s.command, error = %e,
                "{what} will not run (keepalived reads COMMAND [USER [GROUP]]: quote a command \
                 line that has arguments)");
        }
    }
}

/// Run a notify command through `/bin/sh -c` as its user and group, killed after
/// [`NOTIFY_TIMEOUT`].
pub(crate) async fn run_notify(script: Script) {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&script.command)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Err(e) = crate::script::run_as(&mut cmd, script.user.as_deref(), script.group.as_deref())
    {
        tracing::error!(command = %script.command, error = %e, "notify command not run");
        return;
    }
    match crate::script::spawn_in_group(&mut cmd) {
        Ok(mut child) => {
            if tokio::time::timeout(NOTIFY_TIMEOUT, child.wait())
                .await
                .is_err()
            {
                tracing::warn!(command = %script.command, "notify command timed out; stopped");
                crate::script::stop_group(&mut child).await;
            }
        }
        Err(e) => {
            tracing::error!(command = %script.command, error = %e, "notify command not run")
        }
    }
}
