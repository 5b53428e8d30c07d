//! Running commands: checked exit status, captured output, errors that show the command line.

use std::process::{Command, Output, Stdio};

use crate::error::{Result, TestbedError};

/// The command line of `cmd`, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion, capturing its output; an unsuccessful exit is an error that carries
/// the command line and its stderr.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| TestbedError::Spawn {
            cmd: describe(cmd),
            source,
        })?;
    if !out.status.success() {
        return Err(TestbedError::Failed {
            cmd: describe(cmd),
            status: out.status.to_string(),
            stderr: failure_text(&out),
        });
    }
    Ok(out)
}

/// What a failed command said: its stderr, or (when that is empty) the end of its stdout.
fn failure_text(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !err.is_empty() {
        return err;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let text = text.trim();
    let start = text.char_indices().rev().nth(1999).map_or(0, |(i, _)| i);
    text[start..].to_string()
}

/// Runs a program with arguments; returns its stdout as text.
pub fn run_args(program: &str, args: &[&str]) -> Result<String> {
    let out = run(Command::new(program).args(args))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip <args>` (iproute2) in the current namespace.
pub fn ip(args: &[&str]) -> Result<String> {
    run_args("ip", args)
}
