//! Errors and warnings with the place in the input they refer to.

use std::fmt;
use std::path::PathBuf;

/// A place in an input file (1-based line and column). `path` is `-` for standard input and
/// `<command line>` for arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

/// One problem in an input, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ConfigError {
    pub location: Location,
    /// What is wrong and what was expected.
    pub message: String,
}

impl ConfigError {
    /// An error at `path:line:column`.
    pub fn new(
        path: impl Into<PathBuf>,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            location: Location {
                path: path.into(),
                line,
                column,
            },
            message: message.into(),
        }
    }
}

/// Line and column (1-based, in characters) of the first byte of `bytes` that is not UTF-8,
/// for reporting a file that is not text at the place an editor would show.
pub(crate) fn utf8_error_location(bytes: &[u8], e: &std::str::Utf8Error) -> (usize, usize) {
    let good = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
    let line_start = good.rfind('\n').map_or(0, |i| i + 1);
    (
        good.matches('\n').count() + 1,
        good[line_start..].chars().count() + 1,
    )
}

/// Every error found in one input (parsers report all of them, not just the first).
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}
