//! Rules files in the `ipvsadm-save` format (one ipvsadm command line per line, `#` comments,
//! an optional leading `ipvsadm` word) and applying them to a [`DesiredState`].
//!
//! Every line is parsed and applied in order; every problem is collected, so one run reports all
//! of them with `path:line:column`. The caller applies the result only when there is none.

use super::build::build;
use super::command::Command;
use super::lex::{Word, lex};
use crate::error::{ConfigError, ConfigErrors};
use rvs_core::desired::{DesiredState, StateError};
use std::path::Path;

/// Split a line into words with their 1-based character columns.
fn words_of(line: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let chars: Vec<char> = line.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                out.push(Word {
                    text: chars[s..i].iter().collect(),
                    column: s + 1,
                });
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(Word {
            text: chars[s..].iter().collect(),
            column: s + 1,
        });
    }
    out
}

/// Parse rvsadm's arguments (without the program name). Errors point at the argument's
/// 1-based position, with path `<command line>`.
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Command, ConfigError> {
    let words: Vec<Word> = args
        .iter()
        .enumerate()
        .map(|(i, a)| Word {
            text: a.as_ref().to_string(),
            column: i + 1,
        })
        .collect();
    parse_words(&words).map_err(|(c, m)| ConfigError::new("<command line>", 1, c, m))
}

/// Parse one line of a rules file; `Ok(None)` for blank and comment lines.
pub fn parse_line(line: &str, path: &Path, line_no: usize) -> Result<Option<Command>, ConfigError> {
    let mut words = words_of(line);
    if words.first().is_none_or(|w| w.text.starts_with('#')) {
        return Ok(None);
    }
    if words[0].text == "ipvsadm" || words[0].text == "rvsadm" {
        words.remove(0);
    }
    parse_words(&words)
        .map(Some)
        .map_err(|(c, m)| ConfigError::new(path, line_no, c, m))
}

fn parse_words(words: &[Word]) -> Result<Command, (usize, String)> {
    let uses = lex(words)?;
    build(uses)
}

/// Parse a whole rules file into its commands with their line numbers; every error is reported.
pub fn parse_rules(text: &str, path: &Path) -> Result<Vec<(usize, Command)>, ConfigErrors> {
    let mut cmds = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_line(line, path, i + 1) {
            Ok(Some(c)) => cmds.push((i + 1, c)),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(cmds)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Apply one state-changing command to `state`. `Ok(false)` for commands that do not change the
/// desired state (`-L`, `-S`, `-Z`, ...): a rules file may not contain those.
pub fn apply_command(state: &mut DesiredState, cmd: &Command) -> Result<bool, StateError> {
    match cmd {
        Command::AddService { key, options } => state.add_service(*key, *options)?,
        Command::EditService { key, options } => {
            // keep what ipvsadm cannot express (engine pin, proxy options)
            let mut o = *options;
            if let Some(old) = state.services.get(key) {
                o.engine = old.options.engine;
                o.proxy = old.options.proxy;
            }
            state.edit_service(*key, o)?
        }
        Command::DeleteService { key } => state.remove_service(key).map(|_| ())?,
        Command::AddReal { service, real } => state.add_real(service, *real)?,
        Command::EditReal { service, real } => {
            let mut r = *real;
            if let Some(old) = state
                .services
                .get(service)
                .and_then(|s| s.reals.get(&real.addr))
            {
                r.admin = old.admin;
                r.health = old.health;
                r.dynamic_weight = old.dynamic_weight;
                r.proxy_protocol = old.proxy_protocol;
            }
            state.edit_real(service, r)?
        }
        Command::DeleteReal { service, addr } => state.remove_real(service, addr).map(|_| ())?,
        Command::Clear => state.clear(),
        Command::SetTimeouts(t) => state.timeouts = t.apply_to(state.timeouts),
        _ => return Ok(false),
    }
    Ok(true)
}

/// Build the state a rules file describes, starting from `base` (usually empty services and the
/// current timeouts). Every line is checked; all errors are returned together.
pub fn apply_rules(
    text: &str,
    path: &Path,
    base: DesiredState,
) -> Result<DesiredState, ConfigErrors> {
    let mut state = base;
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let cmd = match parse_line(line, path, line_no) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let column = words_of(line)
            .iter()
            .find(|w| w.text != "ipvsadm" && w.text != "rvsadm")
            .map_or(1, |w| w.column);
        match apply_command(&mut state, &cmd) {
            Ok(true) => {}
            Ok(false) => errors.push(ConfigError::new(
                path,
                line_no,
                column,
                "only -A -E -D -a -e -d -C --set may appear in a rules file",
            )),
            Err(e) => errors.push(ConfigError::new(path, line_no, column, e.to_string())),
        }
    }
    if errors.is_empty() {
        Ok(state)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Copy what the ipvsadm format cannot express — a service's engine pin and proxy options, a
/// real's drain/disable intent and PROXY-protocol setting — from `old` into `new`, for services
/// and reals present in both. `-R` uses it so restoring `-S` output keeps those settings.
pub fn carry_unexpressed(old: &DesiredState, new: &mut DesiredState) {
    for (key, svc) in new.services.iter_mut() {
        let Some(prev) = old.services.get(key) else {
            continue;
        };
        svc.options.engine = prev.options.engine;
        svc.options.proxy = prev.options.proxy;
        for (addr, real) in svc.reals.iter_mut() {
            if let Some(p) = prev.reals.get(addr) {
                real.admin = p.admin;
                real.proxy_protocol = p.proxy_protocol;
            }
        }
    }
}

/// Read and apply a rules file from disk (see [`apply_rules`]).
pub fn load_rules_file(path: &Path, base: DesiredState) -> Result<DesiredState, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(path, 0, 0, format!("cannot read rules file: {e}")))?;
    apply_rules(&text, path, base)
}
