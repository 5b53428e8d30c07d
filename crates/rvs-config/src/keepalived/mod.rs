//! keepalived.conf as a first-class configuration.
//!
//! [`load`] reads a file (expanding `include` globs relative to the including file), [`parse_str`]
//! parses text; both return a [`KeepalivedConfig`] — the services and reals as a
//! [`DesiredState`], the checkers per real, the VRRP blocks, and the warnings — or every error,
//! each with `path:line:column` and what was expected. [`check_file`] is `keepalived -t`.
//!
//! Stages: [`lex`] (text → located statement tree, includes spliced in), then `build`
//! (tree → model; `vs`, `real`, `checker`, `vrrp` and `laddr` for their blocks). A keyword rvs does not
//! implement is a warning with its location, never silently skipped.
//!
//! Defaults follow keepalived: `lb_kind` NAT, `lb_algo` wlc, `protocol` TCP, `delay_loop` 60 s,
//! `connect_timeout` 5 s, `retry` 1 (`MISC_CHECK` 0, `DNS_CHECK` 3), `delay_before_retry` 1 s
//! (`HTTP_GET`/`SSL_GET` 3 s, `DNS_CHECK` its `delay_loop`), `warmup` = `delay_loop`,
//! `quorum` 1, `persistence_granularity` /32 (/128). As in keepalived 2.x, a checker option
//! not written in the checker comes from its `real_server`, then its `virtual_server`.

mod build;
mod checker;
mod glob;
mod keywords;
mod laddr;
pub mod lex;
pub mod model;
mod real;
mod repeats;
mod values;
mod vrrp;
mod vs;

pub use lex::Includes;
pub use model::*;

use crate::error::{ConfigError, ConfigErrors};
use rvs_core::desired::DesiredState;
use std::path::Path;

/// A parsed keepalived.conf.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeepalivedConfig {
    /// Services and reals (with operator weights; health starts `Unknown`).
    pub desired: DesiredState,
    /// `global_defs`.
    pub global: GlobalDefs,
    /// Health settings and checkers, one entry per service.
    pub virtual_servers: Vec<VirtualServerHealth>,
    /// FULLNAT local addresses of the services with `laddr_group_name` (those of the VIP's
    /// family, from the named `local_address_group`).
    pub local_addresses: crate::local_addr::ServicePools,
    /// `vrrp_instance`, `vrrp_sync_group`, `vrrp_script`.
    pub vrrp: VrrpConfig,
    /// Keywords rvs does not implement, and other things worth a look; located.
    pub warnings: Vec<ConfigError>,
}

/// Parse `text` read from `path`, resolving includes as `includes` says.
pub fn parse_with(
    text: &str,
    path: &Path,
    includes: Includes,
) -> Result<KeepalivedConfig, ConfigErrors> {
    let (mut cfg, ctx) = run(text, path, includes);
    if !ctx.errors.is_empty() {
        return Err(ConfigErrors(ctx.errors));
    }
    cfg.warnings = ctx.warnings;
    Ok(cfg)
}

/// Both stages; the model is partial when there are errors.
fn run(text: &str, path: &Path, includes: Includes) -> (KeepalivedConfig, values::Ctx) {
    let mut errors = Vec::new();
    let tree = lex::parse_tree(text, path, includes, &mut errors);
    let mut ctx = values::Ctx {
        errors,
        warnings: Vec::new(),
    };
    let cfg = build::build(&mut ctx, &tree);
    repeats::warn(&tree, &mut ctx.warnings);
    (cfg, ctx)
}

/// Parse `text` read from `path`; includes are read from the file system relative to `path`.
pub fn parse_str(text: &str, path: &Path) -> Result<KeepalivedConfig, ConfigErrors> {
    parse_with(text, path, Includes::FileSystem)
}

/// Read and parse a keepalived.conf.
pub fn load(path: &Path) -> Result<KeepalivedConfig, ConfigErrors> {
    match lex::read_limited(path) {
        Ok(text) => parse_str(&text, path),
        Err(e) => Err(e.located(path).into()),
    }
}

/// Check a file as `keepalived -t` does: every error and every warning, located. The file is
/// valid when the first list is empty.
pub fn check_file(path: &Path) -> (Vec<ConfigError>, Vec<ConfigError>) {
    match lex::read_limited(path) {
        Ok(text) => {
            let (_, ctx) = run(&text, path, Includes::FileSystem);
            (ctx.errors, ctx.warnings)
        }
        Err(e) => (vec![e.located(path)], Vec::new()),
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_compat;
#[cfg(test)]
mod tests_scripts;
