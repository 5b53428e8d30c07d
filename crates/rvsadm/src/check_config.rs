//! `rvsadm --check-config FILE`: check a keepalived.conf the way `keepalived -t -f FILE` does,
//! without a daemon. Every error and warning is printed with `file:line[:column]`; the exit
//! status is 0 when the file is valid (warnings allowed), 1 when it has errors, 2 for bad usage.

use std::path::Path;
use std::process::ExitCode;

/// Usage line for this mode.
pub const USAGE: &str =
    "usage: rvsadm --check-config FILE   (check a keepalived.conf, like keepalived -t)";

/// The file named by `--check-config FILE` / `--check-config=FILE`, if that is the command.
pub fn requested(args: &[String]) -> Option<Result<&str, String>> {
    let first = args.first()?;
    if let Some(v) = first.strip_prefix("--check-config=") {
        return Some(only(args, v));
    }
    if first != "--check-config" {
        return None;
    }
    Some(match args.get(1) {
        Some(v) => only(&args[1..], v),
        None => Err("option --check-config needs a file".into()),
    })
}

fn only<'a>(args: &[String], v: &'a str) -> Result<&'a str, String> {
    match args.get(1) {
        Some(extra) => Err(format!("unexpected argument after --check-config: {extra}")),
        None if v.is_empty() => Err("option --check-config needs a file".into()),
        None => Ok(v),
    }
}

/// Check `path`; print the findings (errors and warnings to stderr, the summary to stdout).
pub fn run(path: &Path) -> ExitCode {
    let (errors, warnings) = rvs_config::keepalived::check_file(path);
    for w in &warnings {
        eprintln!("rvsadm: warning: {w}");
    }
    for e in &errors {
        eprintln!("rvsadm: error: {e}");
    }
    if !errors.is_empty() {
        eprintln!(
            "rvsadm: {}: {} error(s), {} warning(s): configuration NOT valid",
            path.display(),
            errors.len(),
            warnings.len()
        );
        return ExitCode::from(1);
    }
    match rvs_config::keepalived::load(path) {
        Ok(cfg) => {
            let reals: usize = cfg.desired.services.values().map(|s| s.reals.len()).sum();
            let checkers: usize = cfg
                .virtual_servers
                .iter()
                .flat_map(|v| &v.reals)
                .map(|r| r.checkers.len())
                .sum();
            println!(
                "{}: configuration OK: {} virtual server(s), {} real server(s), {} checker(s), {} vrrp_instance(s), {} warning(s)",
                path.display(),
                cfg.desired.services.len(),
                reals,
                checkers,
                cfg.vrrp.instances.len(),
                warnings.len()
            );
            ExitCode::SUCCESS
        }
        // check_file found nothing but loading failed (the file changed meanwhile)
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("rvsadm: error: {e}");
            }
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::requested;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn recognises_both_spellings_and_bad_usage() {
        assert_eq!(requested(&args("-Ln")), None);
        assert_eq!(
            requested(&args("--check-config /k.conf")),
            Some(Ok("/k.conf"))
        );
        assert_eq!(
            requested(&args("--check-config=/k.conf")),
            Some(Ok("/k.conf"))
        );
        assert!(requested(&args("--check-config")).unwrap().is_err());
        assert!(requested(&args("--check-config a b")).unwrap().is_err());
        assert!(requested(&args("--check-config=")).unwrap().is_err());
    }
}
