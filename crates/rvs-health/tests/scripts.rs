//! Scripts run as the user and group the configuration names: a notify command written
//! `notify_down "COMMAND" USER GROUP` (keepalived 2.x), a `MISC_CHECK` with `user USER GROUP`,
//! `global_defs`' `script_user`; and a notify command whose user does not exist is not run.
//! Root only (changing user needs it); skipped with a reason otherwise.

mod common;

use common::config;
use rvs_health::HealthSupervisor;
use rvs_health::script::{lookup_group, lookup_user};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// A directory anyone may write to (the scripts run as `nobody`); removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("rvs-scripts-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Wait for `path` to hold a whole line; its text.
async fn read_line(path: &Path, limit: Duration) -> Option<String> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Ok(t) = std::fs::read_to_string(path)
            && t.ends_with('\n')
        {
            return Some(t.trim().to_string());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

fn root_or_skip(test: &str) -> bool {
    let root = rvs_testbed::is_root();
    if !root {
        eprintln!("SKIP scripts::{test}: needs root (running a script as another user)");
    }
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_commands_and_misc_checks_run_as_their_user_and_group() {
    if !root_or_skip("notify_commands_and_misc_checks_run_as_their_user_and_group") {
        return;
    }
    let dir = Dir::new("as");
    let (nobody, _) = lookup_user("nobody").unwrap();
    // not nobody's own group (nogroup), so that the group is seen to come from the config
    let daemon = lookup_group("daemon").unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let ids = |name: &str| {
        format!(
            "id -u > {0}.tmp; id -g >> {0}.tmp; mv {0}.tmp {0}",
            dir.0.join(name).display()
        )
    };
    let text = format!(
        "global_defs {{\n script_user nobody\n}}\n\
         virtual_server 10.255.0.1 80 {{\n delay_loop 0.3\n real_server {} {} {{\n  \
         notify_down \"{}\" nobody daemon\n  notify_up \"{}\" nobody\n  \
         TCP_CHECK {{\n   retry 0\n   warmup 0\n   connect_timeout 0.3\n  }}\n  \
         MISC_CHECK {{\n   misc_path \"/bin/sh -c '{}'\"\n   user nobody daemon\n   warmup 0\n  }}\n  \
         MISC_CHECK {{\n   misc_path \"/bin/sh -c '{}'\"\n   warmup 0\n  }}\n }}\n}}\n",
        addr.ip(),
        addr.port(),
        ids("down"),
        ids("up"),
        ids("misc"),
        ids("misc-default"),
    );
    let cfg = config(&text);
    let (sup, _rx) = HealthSupervisor::start(&cfg.virtual_servers);
    let limit = Duration::from_secs(5);
    let two = |a: u32, b: u32| format!("{a}\n{b}");
    // MISC_CHECK: its own user and group; script_user for the one that names none
    let misc = read_line(&dir.0.join("misc"), limit).await;
    assert_eq!(
        misc,
        Some(two(nobody, daemon)),
        "MISC_CHECK user nobody daemon"
    );
    let (_, nobody_gid) = lookup_user("nobody").unwrap();
    let misc = read_line(&dir.0.join("misc-default"), limit).await;
    assert_eq!(
        misc,
        Some(two(nobody, nobody_gid)),
        "global_defs script_user"
    );
    drop(l);
    let down = read_line(&dir.0.join("down"), limit).await;
    assert_eq!(
        down,
        Some(two(nobody, daemon)),
        "notify_down ... nobody daemon"
    );
    let l = TcpListener::bind(addr).await.unwrap();
    let up = read_line(&dir.0.join("up"), limit).await;
    assert_eq!(
        up,
        Some(two(nobody, nobody_gid)),
        "notify_up ... nobody: the user's group"
    );
    drop(l);
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_command_whose_user_does_not_exist_is_not_run() {
    let dir = Dir::new("nouser");
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let ran = dir.0.join("ran");
    let other = dir.0.join("other");
    // written without quotes: keepalived takes `down` as the user and `web1` as the group
    let text = format!(
        "virtual_server 10.255.0.1 80 {{\n delay_loop 0.3\n real_server {} {} {{\n  \
         notify_down /usr/bin/touch {} web1\n  TCP_CHECK {{\n   retry 0\n   warmup 0\n  }}\n }}\n\
         real_server 127.0.0.1 1 {{\n  notify_down \"/usr/bin/touch {}\"\n  \
         TCP_CHECK {{\n   retry 0\n   warmup 0\n  }}\n }}\n}}\n",
        addr.ip(),
        addr.port(),
        ran.display(),
        other.display(),
    );
    let cfg = config(&text);
    let r = &cfg.virtual_servers[0].reals[0];
    let s = r.notify_down.as_ref().unwrap();
    assert_eq!(
        (s.command.as_str(), s.user.as_deref(), s.group.as_deref()),
        ("/usr/bin/touch", Some(ran.to_str().unwrap()), Some("web1"))
    );
    let (sup, _rx) = HealthSupervisor::start(&cfg.virtual_servers);
    drop(l);
    // the second real (nothing listens on port 1) goes down too; its command runs
    let t0 = Instant::now();
    while !other.exists() && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(other.exists(), "the quoted command ran");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let files: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, vec!["other".to_string()], "nothing else was touched");
    sup.shutdown().await;
}

/// The pids of the processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&cmd)
                .replace('\0', " ")
                .contains(needle)
        {
            out.push(pid);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misc_check_that_times_out_leaves_no_process_behind() {
    // keepalived kills the script's whole process group; killing only the shell it started
    // would leave the hung command running, one more at every check
    let real: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let tag = format!(
        "{}.{}",
        1000 + std::process::id() % 1000,
        std::process::id()
    );
    let c = common::checker(
        real,
        &format!(
            "MISC_CHECK {{\n misc_path \"/bin/sh -c 'sleep {tag}; true'\"\n misc_timeout 0.5\n}}"
        ),
    );
    let e = rvs_health::run_check(&c, real, None, 1).await.unwrap_err();
    assert!(e.to_string().contains("timed out"), "{e}");
    let t0 = Instant::now();
    while !processes_with(&format!("sleep {tag}")).is_empty()
        && t0.elapsed() < Duration::from_secs(3)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = processes_with(&format!("sleep {tag}"));
    for pid in &left {
        let _ = std::process::Command::new("kill")
            .arg("-9")
            .arg(pid.to_string())
            .status();
    }
    assert!(left.is_empty(), "left running: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alpha_real_that_fails_its_first_check_is_announced_down() {
    // keepalived: with alpha a real starts down without a word; the first failed check runs
    // its notify_down (a first success runs notify_up, as any transition to up)
    let dir = Dir::new("alpha");
    let live = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = live.local_addr().unwrap();
    let dead_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let real = |addr: std::net::SocketAddr, name: &str| {
        format!(
            " real_server {} {} {{\n  notify_up \"echo up >> {f}\"\n  notify_down \"echo down >> {f}\"\n  \
             TCP_CHECK {{\n   warmup 0\n   connect_timeout 0.3\n  }}\n }}\n",
            addr.ip(),
            addr.port(),
            f = dir.0.join(name).display()
        )
    };
    let text = format!(
        "virtual_server 10.255.0.1 80 {{\n delay_loop 0.3\n alpha\n{}{}}}\n",
        real(up_addr, "live"),
        real(dead_addr, "dead")
    );
    let cfg = config(&text);
    let (sup, _rx) = HealthSupervisor::start(&cfg.virtual_servers);
    let limit = Duration::from_secs(5);
    assert_eq!(
        read_line(&dir.0.join("dead"), limit).await.as_deref(),
        Some("down")
    );
    assert_eq!(
        read_line(&dir.0.join("live"), limit).await.as_deref(),
        Some("up")
    );
    // once only: later failures of the down real say nothing
    tokio::time::sleep(Duration::from_millis(800)).await;
    let dead = std::fs::read_to_string(dir.0.join("dead")).unwrap();
    assert_eq!(dead, "down\n");
    drop(live);
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misc_check_runs_every_delay_loop_from_the_start_of_the_last_run() {
    // keepalived: the next run of a MISC_CHECK is due delay_loop after the last one started,
    // however long the script took (not delay_loop after it ended)
    let dir = Dir::new("cadence");
    let log = dir.0.join("starts");
    let text = format!(
        "virtual_server 10.255.0.1 80 {{\n delay_loop 1\n real_server 127.0.0.1 7004 {{\n  \
         MISC_CHECK {{\n   misc_path \"date +%s.%N >> {}; sleep 0.6\"\n   warmup 0\n  }}\n }}\n}}",
        log.display()
    );
    let cfg = config(&text);
    let (sup, _rx) = HealthSupervisor::start(&cfg.virtual_servers);
    tokio::time::sleep(Duration::from_millis(3400)).await;
    sup.shutdown().await;
    let starts: Vec<f64> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(starts.len() >= 3, "{starts:?}");
    for w in starts.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            (0.9..1.3).contains(&gap),
            "runs {gap:.2} s apart: {starts:?}"
        );
    }
}
