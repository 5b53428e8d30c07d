//! Running keepalived's scripts (`MISC_CHECK`, `notify_*`, `quorum_*`) as the user and group
//! the configuration names: names are looked up in the password and group databases when the
//! script is started (so a user created later is found), and the command is spawned with that
//! uid and gid (supplementary groups are dropped when rvsd runs as root). Each script runs in
//! a process group of its own, and a script that outlives its time is stopped with everything
//! it started, as keepalived does: SIGTERM to the group, SIGKILL 2 s later.

use crate::error::CheckError;
use std::time::Duration;
use tokio::process::{Child, Command};

/// How long a script that was sent SIGTERM has before the group gets SIGKILL (keepalived's).
const TERM_GRACE: Duration = Duration::from_secs(2);

/// Start `cmd` in a process group of its own (see [`stop_group`]).
pub fn spawn_in_group(cmd: &mut Command) -> std::io::Result<Child> {
    cmd.process_group(0).spawn()
}

/// Stop a script started by [`spawn_in_group`] and whatever it started: SIGTERM to its process
/// group, SIGKILL to the group once the script has exited or after `TERM_GRACE` (2 s), then reap
/// it.
pub async fn stop_group(child: &mut Child) {
    let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
        return; // already reaped
    };
    signal_group(pid, libc::SIGTERM);
    let _ = tokio::time::timeout(TERM_GRACE, child.wait()).await;
    signal_group(pid, libc::SIGKILL);
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// `kill(-pgid, sig)`; a group that is gone already is not an error.
fn signal_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) takes no pointers; a negative pid names the process group that
        // spawn_in_group made (its leader's pid), never rvsd's own group.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// uid and gid of a user name, from the password database.
pub fn lookup_user(name: &str) -> Result<(u32, u32), CheckError> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok((u.uid.as_raw(), u.gid.as_raw())),
        _ => Err(CheckError::NoSuchUser(name.into())),
    }
}

/// gid of a group name, from the group database.
pub fn lookup_group(name: &str) -> Result<u32, CheckError> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        _ => Err(CheckError::NoSuchGroup(name.into())),
    }
}

/// The uid and gid that `user` and `group` name (`None`: nothing to change). A group without a
/// user is the group of rvsd's own user.
pub fn credentials(
    user: Option<&str>,
    group: Option<&str>,
) -> Result<Option<(Option<u32>, u32)>, CheckError> {
    let gid = group.map(lookup_group).transpose()?;
    match (user, gid) {
        (None, None) => Ok(None),
        (None, Some(g)) => Ok(Some((None, g))),
        (Some(u), g) => {
            let (uid, primary) = lookup_user(u)?;
            Ok(Some((Some(uid), g.unwrap_or(primary))))
        }
    }
}

/// Make `cmd` run as `user` / `group` (an error if either is unknown).
pub fn run_as(
    cmd: &mut Command,
    user: Option<&str>,
    group: Option<&str>,
) -> Result<(), CheckError> {
    if let Some((uid, gid)) = credentials(user, group)? {
        cmd.gid(gid);
        if let Some(uid) = uid {
            cmd.uid(uid);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_to_ids() {
        assert_eq!(lookup_user("root").unwrap(), (0, 0));
        assert!(lookup_user("no-such-user-rvs").is_err());
        assert_eq!(lookup_group("root").unwrap(), 0);
        assert!(lookup_group("no-such-group-rvs").is_err());
        let (nobody, nobody_gid) = lookup_user("nobody").unwrap();
        assert_eq!(
            credentials(Some("nobody"), None).unwrap(),
            Some((Some(nobody), nobody_gid))
        );
        assert_eq!(
            credentials(Some("nobody"), Some("root")).unwrap(),
            Some((Some(nobody), 0))
        );
        assert_eq!(credentials(None, None).unwrap(), None);
        assert!(credentials(Some("nobody"), Some("no-such-group-rvs")).is_err());
    }
}
