//! # rvs-config — text in, model out (and back)
//!
//! Parsers turn text into the [`rvs_core`] model and report every problem as a [`ConfigError`]
//! with `path:line:column` before anything is applied; printers turn the model back into text.
//!
//! * [`toml`] — rvs's native configuration file (`docs/config.md`);
//! * [`ipvsadm`] — ipvsadm's command-line grammar (rvsadm's argv and `-S`/`-R` rule files) and
//!   ipvsadm's listing layouts (`-Ln`, `--stats`, `--rate`, `-c`, ...);
//! * [`keepalived`] — `keepalived.conf`;
//! * [`local_addr`] — the rules FULLNAT local addresses follow in both files.

pub mod error;
pub mod ipvsadm;
pub mod keepalived;
pub mod local_addr;
pub mod toml;

pub use error::{ConfigError, ConfigErrors, Location};
