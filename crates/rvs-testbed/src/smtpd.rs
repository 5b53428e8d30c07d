//! OpenSMTPD (Debian's `opensmtpd`) as a real SMTP server for `SMTP_CHECK` tests: it listens on
//! one address, accepts `HELO`/`EHLO` and `QUIT`, and rejects every recipient, so it never
//! delivers or queues mail.
//!
//! smtpd needs root (it drops privileges to its own users and chroots). Its control socket
//! (`/run/smtpd.sock`) and spool (`/var/spool/smtpd`) are fixed at build time, so a second
//! instance on the machine would fail with "control socket already listening": each instance
//! runs in a private mount namespace (`unshare -m`) with its own tmpfs over `/run` and over
//! `/var/spool`, where it makes the spool directory: that keeps the host's spool untouched, and
//! works on a machine where the package's spool directory was never made (smtpd never started).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::error::{Result, TestbedError};
use crate::netns::Process;
use crate::servers::{read, spawn_logged, temp_dir, wait_tcp_listening, write};

/// Where Debian installs smtpd.
pub const SMTPD: &str = "/usr/sbin/smtpd";

/// A running OpenSMTPD, stopped (SIGTERM) when dropped.
#[derive(Debug)]
pub struct Smtpd {
    process: Option<Process>,
    dir: TempDir,
    /// The address it listens on.
    pub listen: SocketAddr,
}

impl Smtpd {
    /// Whether smtpd is installed.
    pub fn installed() -> bool {
        Path::new(SMTPD).exists()
    }

    /// Starts smtpd in the foreground on `listen` and waits until it accepts connections.
    pub fn start(listen: SocketAddr) -> Result<Smtpd> {
        if !Self::installed() {
            return Err(TestbedError::Spawn {
                cmd: SMTPD.into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not installed (apt-get install opensmtpd; scripts/test.sh does)",
                ),
            });
        }
        let dir = temp_dir("smtpd")?;
        let conf = dir.path().join("smtpd.conf");
        write(
            &conf,
            &format!(
                "listen on {} port {}\naction \"none\" mbox\nmatch from any for any reject\n",
                listen.ip(),
                listen.port()
            ),
        )?;
        // sh's "$0" is the config path
        let script = format!(
            "mount -t tmpfs -o mode=0755 rvs-smtpd /run && \
             mount -t tmpfs -o mode=0755 rvs-smtpd /var/spool && mkdir -m 0711 /var/spool/smtpd && \
             exec {SMTPD} -d -f \"$0\""
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private", "sh", "-c", &script])
            .arg(&conf);
        let mut process = spawn_logged(&mut cmd, dir.path())?;
        wait_tcp_listening(None, listen.port(), &mut process, dir.path())?;
        Ok(Smtpd {
            process: Some(process),
            dir,
            listen,
        })
    }

    /// What smtpd logged so far (`-d`: one line per connection and command problem).
    pub fn log(&self) -> String {
        read(&self.dir.path().join("stderr.txt")).unwrap_or_default()
    }

    /// Stops smtpd (SIGTERM, SIGKILL after 5 s); the port refuses connections afterwards.
    pub fn stop(&mut self) {
        if let Some(p) = self.process.take() {
            let _ = p.stop(Duration::from_secs(5));
        }
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        self.stop();
    }
}
