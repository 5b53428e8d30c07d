//! Reading a process's cost from `/proc`: CPU time (`stat` utime + stime, including its
//! threads), scheduler runtime (`schedstat`, for kernel threads such as NAPI pollers) and resident
//! memory. These are the figures the benchmarks report per 1,000 requests.

use std::fs;

use crate::error::{Result, TestbedError};

fn read(path: &str) -> Result<String> {
    fs::read_to_string(path).map_err(|e| TestbedError::io(format!("reading {path}"), e))
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// User + system CPU time of process `pid` (all its threads), in milliseconds.
pub fn cpu_time_ms(pid: u32) -> Result<f64> {
    let stat = read(&format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| TestbedError::Parse {
            tool: "/proc/pid/stat",
            detail: stat.clone(),
        })?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let parse = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| TestbedError::Parse {
                tool: "/proc/pid/stat",
                detail: stat.clone(),
            })
    };
    Ok((parse(11)? + parse(12)?) * 1000.0 / ticks_per_second())
}

/// Time process or thread `pid` spent on a CPU (`/proc/<pid>/schedstat`, first field), in
/// nanoseconds. Works for kernel threads.
pub fn sched_runtime_ns(pid: u32) -> Result<u64> {
    let s = read(&format!("/proc/{pid}/schedstat"))?;
    s.split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| TestbedError::Parse {
            tool: "/proc/pid/schedstat",
            detail: s.clone(),
        })
}

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let s = read(&format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| TestbedError::Parse {
            tool: "/proc/pid/status",
            detail: "no VmRSS".into(),
        })
}

/// Pids of all processes whose `comm` satisfies `pred`.
pub fn pids_by_comm(pred: impl Fn(&str) -> bool) -> Result<Vec<u32>> {
    let dir = fs::read_dir("/proc").map_err(|e| TestbedError::io("reading /proc", e))?;
    let mut pids = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(comm) = fs::read_to_string(format!("/proc/{pid}/comm"))
            && pred(comm.trim_end())
        {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

/// `pid` and all its descendants (children, grandchildren, ...), e.g. nginx's master and workers.
pub fn process_tree(pid: u32) -> Result<Vec<u32>> {
    let dir = fs::read_dir("/proc").map_err(|e| TestbedError::io("reading /proc", e))?;
    let mut parent_of = Vec::new();
    for entry in dir.flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Field 4 (ppid) is the second field after the command name.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((p, ppid));
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parent_of
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    Ok(tree)
}

/// User + system CPU time of `pid` and its descendants, in milliseconds. Processes that exit
/// in between are skipped.
pub fn tree_cpu_time_ms(pid: u32) -> Result<f64> {
    let mut total = cpu_time_ms(pid)?;
    for p in process_tree(pid)?.into_iter().skip(1) {
        total += cpu_time_ms(p).unwrap_or(0.0);
    }
    Ok(total)
}

/// Resident memory of `pid` and its descendants, in KiB.
pub fn tree_rss_kib(pid: u32) -> Result<u64> {
    let mut total = rss_kib(pid)?;
    for p in process_tree(pid)?.into_iter().skip(1) {
        total += rss_kib(p).unwrap_or(0);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_figures_are_readable() {
        let pid = std::process::id();
        // Burn a little CPU so the figure is not trivially zero on a coarse clock.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_time_ms(pid).unwrap() >= 0.0);
        assert!(sched_runtime_ns(pid).unwrap() > 0);
        assert!(rss_kib(pid).unwrap() > 100);
    }

    #[test]
    fn process_tree_finds_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let tree = process_tree(std::process::id()).unwrap();
        assert_eq!(tree[0], std::process::id());
        assert!(tree.contains(&child.id()));
        // Until the child has exec'd, its memory may read as none (`VmRSS` is missing while
        // exec swaps it): wait for `sleep`'s own.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while read(&format!("/proc/{}/comm", child.id())).unwrap_or_default() != "sleep\n"
            || rss_kib(child.id()).unwrap_or(0) == 0
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never ran sleep"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(tree_rss_kib(std::process::id()).unwrap() > rss_kib(std::process::id()).unwrap());
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn missing_process_is_an_error() {
        assert!(cpu_time_ms(u32::MAX).is_err());
    }
}
