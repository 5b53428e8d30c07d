//! The bpf file system at `/sys/fs/bpf`, where rvs pins what must outlive its process (the
//! decapsulation program of `rvsadm realserver setup`, the links and maps kept over a restart).
//!
//! systemd mounts it at boot, but a machine without systemd (a container, a minimal VM) may
//! have a plain sysfs directory there. Like `bpftool` and `tc`, rvs then mounts one itself
//! ([`ensure`]) — but only in a mount namespace it shares with its ancestors: `ip netns exec`
//! runs its command in a private mount namespace with a fresh `/sys`, and a bpf file system
//! mounted there would vanish with the command, taking the pins (and the program they keep
//! attached) with it. There the caller gets an error that says to use `nsenter --net` instead.

use crate::error::XdpError;
use std::os::unix::fs::MetadataExt;

/// Where pins live.
pub const ROOT: &str = "/sys/fs/bpf";

/// `statfs` `f_type` of a bpf file system.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Whether `/sys/fs/bpf` is a bpf file system.
pub fn mounted() -> bool {
    let path = c"/sys/fs/bpf";
    // SAFETY: statfs writes the struct we pass; path is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(path.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// Makes sure `/sys/fs/bpf` is a bpf file system that outlives this process: mounts one when
/// the directory is a plain one and this process shares the mount namespace of its ancestors;
/// refuses (with the reason) inside a mount namespace made for it, such as `ip netns exec`'s.
pub fn ensure() -> Result<(), XdpError> {
    if mounted() {
        return Ok(());
    }
    if !mount_namespace_is_inherited() {
        return Err(XdpError::Invalid(format!(
            "{ROOT} is not a bpf file system in this mount namespace, and one mounted here \
             could vanish when this process exits (`ip netns exec` runs its command in a \
             private mount namespace with its own /sys: use `nsenter --net=/run/netns/NAME` \
             instead, or mount one on the host: mount -t bpf bpf {ROOT})"
        )));
    }
    // SAFETY: every argument is a NUL-terminated string that outlives the call; the flags are
    // the ones systemd mounts the bpf file system with.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            c"/sys/fs/bpf".as_ptr(),
            c"bpf".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RELATIME,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(XdpError::Invalid(format!(
            "{ROOT} is not a bpf file system and mounting one failed: {e} \
             (mount it by hand: mount -t bpf bpf {ROOT})"
        )));
    }
    log::info!("mounted a bpf file system at {ROOT} (none was there)");
    Ok(())
}

/// Whether every ancestor process that can be inspected (up to PID 1) shares this process's
/// mount namespace: false when an ancestor made a new one for it, as `ip netns exec` does
/// (it unshares and then runs the command in the same process, whose parent is outside). An
/// ancestor whose namespace cannot be read (another user's, a sandbox's init) ends the walk.
fn mount_namespace_is_inherited() -> bool {
    let ns =
        |pid: &str| std::fs::metadata(format!("/proc/{pid}/ns/mnt")).map(|m| (m.dev(), m.ino()));
    let Ok(own) = ns("self") else {
        return false;
    };
    let mut pid = std::os::unix::process::parent_id();
    for _ in 0..4096 {
        if pid == 0 {
            return true;
        }
        match ns(&pid.to_string()) {
            Ok(theirs) if theirs != own => return false,
            Ok(_) => {}
            Err(_) => return true,
        }
        match parent_of(pid) {
            Some(parent) if pid != 1 => pid = parent,
            _ => return true,
        }
    }
    true
}

/// The parent of `pid` from `/proc/<pid>/stat` (the field after the state, which follows the
/// command name's closing parenthesis — the name itself may hold spaces and parentheses).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_of_this_process_is_read_from_proc() {
        assert_eq!(
            parent_of(std::process::id()),
            Some(std::os::unix::process::parent_id())
        );
    }

    /// Whatever this machine has, `ensure` either leaves a bpf file system at the root or says
    /// why not, naming the directory; it never reports success without one.
    #[test]
    fn ensure_never_claims_a_mount_that_is_not_there() {
        match ensure() {
            Ok(()) => assert!(mounted(), "ensure returned Ok but {ROOT} is not bpffs"),
            Err(e) => {
                assert!(!mounted());
                assert!(e.to_string().contains(ROOT), "{e}");
            }
        }
    }
}
