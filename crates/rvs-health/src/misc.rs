//! `MISC_CHECK`: run `misc_path` through `/bin/sh -c` with `misc_timeout` (default: the
//! checker's `delay_loop`). Exit 0 = up; with `misc_dynamic`, exit 2..=255 = up with weight
//! `code - 2` (keepalived's rule; exit 0 then puts the configured weight back, which the
//! supervisor does) and exit 1 = down; without it any non-zero exit = down. A
//! script that outlives its timeout is stopped with everything it started (SIGTERM to its
//! process group, SIGKILL 2 s later) and counts as down. `user USER [GROUP]` (or
//! `global_defs`' `script_user`) runs it as that user and group ([`crate::script`]).

use crate::error::CheckError;
use rvs_config::keepalived::{Checker, MiscCheck};
use std::process::Stdio;
use tokio::process::Command;

/// What a passing script said about the weight.
pub type DynamicWeight = Option<u32>;

/// Map an exit status to the check's verdict.
pub fn judge(code: Option<i32>, dynamic: bool) -> Result<DynamicWeight, CheckError> {
    match code {
        None => Err(CheckError::ScriptSignal),
        Some(0) => Ok(None),
        Some(c @ 2..=255) if dynamic => Ok(Some((c - 2) as u32)),
        Some(c) => Err(CheckError::ScriptExit(c)),
    }
}

/// Run the script.
pub async fn check(checker: &Checker, misc: &MiscCheck) -> Result<DynamicWeight, CheckError> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&misc.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.kill_on_drop(true);
    crate::script::run_as(&mut cmd, misc.user.as_deref(), misc.group.as_deref())?;
    let mut child = crate::script::spawn_in_group(&mut cmd).map_err(CheckError::Spawn)?;
    let limit = misc.timeout.unwrap_or(checker.delay_loop);
    let status = match tokio::time::timeout(limit, child.wait()).await {
        Ok(r) => r?,
        Err(_) => {
            // the script and everything it started (keepalived kills the process group)
            crate::script::stop_group(&mut child).await;
            return Err(CheckError::Timeout(limit));
        }
    };
    judge(status.code(), misc.dynamic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(judge(Some(0), true).unwrap(), None);
        assert!(judge(Some(1), true).is_err());
        assert_eq!(judge(Some(2), true).unwrap(), Some(0));
        assert_eq!(judge(Some(12), true).unwrap(), Some(10));
        assert_eq!(judge(Some(255), true).unwrap(), Some(253));
        assert!(judge(Some(12), false).is_err());
        assert!(judge(None, false).is_err());
    }
}
