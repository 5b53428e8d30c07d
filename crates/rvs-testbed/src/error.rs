//! The one error type of the test bed: which command failed, how, and what it printed.

use std::io;

/// Everything that can go wrong while building or using a test bed.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// A command could not be started at all (binary missing, not executable, ...).
    #[error("cannot run `{cmd}`: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// Why it could not be started.
        source: io::Error,
    },
    /// A command ran and exited unsuccessfully.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// Its exit status, as text.
        status: String,
        /// What it wrote to stderr (trimmed).
        stderr: String,
    },
    /// Something did not become ready in time (a server's port, a file, ...).
    #[error("timed out after {secs:.1}s waiting for {what}")]
    Timeout {
        /// What we waited for.
        what: String,
        /// How long we waited.
        secs: f64,
    },
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A tool's output did not look as expected.
    #[error("cannot parse output of {tool}: {detail}")]
    Parse {
        /// The tool whose output it was.
        tool: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The caller asked for something impossible (too many reals, bad name, ...).
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// Result with [`TestbedError`].
pub type Result<T, E = TestbedError> = std::result::Result<T, E>;

impl TestbedError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        TestbedError::Io {
            context: context.into(),
            source,
        }
    }
}
