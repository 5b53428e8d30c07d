//! Reading keyword arguments: numbers, seconds, addresses, ports, flags, command lines — each
//! with a located error naming what was expected.

use super::lex::{Node, Word};
use super::model::Script;
use crate::error::ConfigError;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// Errors and warnings collected while building the model.
#[derive(Debug, Default)]
pub struct Ctx {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

impl Ctx {
    /// A keyword rvs does not read here: warned about, with where it is, never silently
    /// dropped; the warning says where a known keyword belongs, or which one a typo meant.
    pub fn unsupported(&mut self, node: &Node, within: &str) {
        let w = &node.keyword;
        self.warnings
            .push(w.error(super::keywords::ignored(&w.text, within)));
    }

    /// A located error.
    pub fn error(&mut self, at: &Word, message: impl Into<String>) {
        self.errors.push(at.error(message));
    }

    /// Argument `i` of `node`, or an error naming what was expected.
    pub fn arg<'a>(&mut self, node: &'a Node, i: usize, what: &str) -> Option<&'a Word> {
        let got = node.args.get(i);
        if got.is_none() {
            let kw = &node.keyword;
            let at = node.args.last().unwrap_or(kw);
            let column = at.end_column;
            self.errors.push(ConfigError::new(
                at.path.to_path_buf(),
                at.line,
                column,
                format!("expected {what} after '{}'", kw.text),
            ));
        }
        got
    }

    /// A value parsed from argument `i`.
    pub fn parse<T: FromStr>(&mut self, node: &Node, i: usize, what: &str) -> Option<T> {
        let w = self.arg(node, i, what)?;
        match w.text.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                self.error(
                    w,
                    format!(
                        "expected {what} for '{}', found '{}'",
                        node.keyword.text, w.text
                    ),
                );
                None
            }
        }
    }

    /// A keyword that takes values, not a block: a `{` after it is an error.
    pub fn no_block(&mut self, node: &Node) {
        if let Some(b) = &node.brace {
            self.error(
                b,
                format!(
                    "unexpected '{{': '{}' takes a value, not a block",
                    node.keyword.text
                ),
            );
        }
    }

    /// The one argument of a keyword that takes exactly one (more is an error, as is a block).
    pub fn one<'a>(&mut self, node: &'a Node, what: &str) -> Option<&'a Word> {
        self.at_most(node, 1);
        self.no_block(node);
        self.arg(node, 0, what)
    }

    /// The one argument as an owned string (names, interfaces, paths).
    pub fn word(&mut self, node: &Node, what: &str) -> Option<String> {
        self.one(node, what).map(|w| w.text.clone())
    }

    /// The one argument as a number.
    pub fn num<T: FromStr>(&mut self, node: &Node, what: &str) -> Option<T> {
        self.at_most(node, 1);
        self.no_block(node);
        self.parse(node, 0, what)
    }

    /// At most one argument as a number: `Ok(None)` when there is none, `Err` after a located
    /// error.
    pub fn num_or_none<T: FromStr>(&mut self, node: &Node, what: &str) -> Result<Option<T>, ()> {
        if node.args.is_empty() {
            self.no_block(node);
            return Ok(None);
        }
        let before = self.errors.len();
        let v = self.num(node, what);
        if self.errors.len() > before {
            return Err(());
        }
        Ok(v)
    }

    /// The one argument as seconds (decimals allowed, as keepalived accepts `0.5`).
    pub fn secs(&mut self, node: &Node) -> Option<Duration> {
        let w = self.one(node, "a number of seconds")?;
        match w.text.parse::<f64>() {
            Ok(s) if s.is_finite() && (0.0..=1e9).contains(&s) => Some(Duration::from_secs_f64(s)),
            _ => {
                self.error(
                    w,
                    format!(
                        "expected a number of seconds for '{}', found '{}'",
                        node.keyword.text, w.text
                    ),
                );
                None
            }
        }
    }

    /// Seconds that must be more than 0: a period or time limit (0 would check back to back, or
    /// fail every check at once).
    pub fn period(&mut self, node: &Node) -> Option<Duration> {
        let d = self.secs(node)?;
        if d.is_zero() {
            self.error(
                &node.args[0],
                format!(
                    "expected more than 0 seconds for '{}', found '{}'",
                    node.keyword.text, node.args[0].text
                ),
            );
            return None;
        }
        Some(d)
    }

    /// An IP address from a word.
    pub fn ip(&mut self, w: &Word, what: &str) -> Option<IpAddr> {
        match w.text.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.error(
                    w,
                    format!(
                        "expected {what} (an IPv4 or IPv6 address), found '{}'",
                        w.text
                    ),
                );
                None
            }
        }
    }

    /// A port from a word.
    pub fn port(&mut self, w: &Word) -> Option<u16> {
        match w.text.parse() {
            Ok(p) => Some(p),
            Err(_) => {
                self.error(w, format!("expected a port (0-65535), found '{}'", w.text));
                None
            }
        }
    }

    /// A flag keyword: no argument means on; keepalived also accepts `on/off`, `yes/no`, `true/false`.
    pub fn flag(&mut self, node: &Node) -> bool {
        self.at_most(node, 1);
        self.no_block(node);
        match node.args.first().map(|w| w.text.to_ascii_lowercase()) {
            None => true,
            Some(s) if matches!(s.as_str(), "on" | "yes" | "true" | "1") => true,
            Some(s) if matches!(s.as_str(), "off" | "no" | "false" | "0") => false,
            Some(_) => {
                let w = &node.args[0];
                self.error(
                    w,
                    format!(
                        "expected nothing or on/off after '{}', found '{}'",
                        node.keyword.text, w.text
                    ),
                );
                false
            }
        }
    }

    /// The arguments joined by spaces (command lines, names); an error if there are none.
    pub fn rest(&mut self, node: &Node, what: &str) -> Option<String> {
        self.no_block(node);
        self.arg(node, 0, what)?;
        Some(
            node.args
                .iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        )
    }

    /// A notify command: `COMMAND [USER [GROUP]]` (keepalived 2.x; a command line with
    /// arguments is quoted, so it is one word).
    pub fn script(&mut self, node: &Node) -> Option<Script> {
        self.no_block(node);
        let command = self.arg(node, 0, "a command")?.text.clone();
        if let Some(w) = node.args.get(3) {
            self.error(
                w,
                format!(
                    "unexpected '{}': '{}' takes a command, then at most a user and a group \
                     (quote a command line that has arguments)",
                    w.text, node.keyword.text
                ),
            );
        }
        Some(Script {
            command,
            user: node.args.get(1).map(|w| w.text.clone()),
            group: node.args.get(2).map(|w| w.text.clone()),
        })
    }

    /// Reject extra arguments after the first `n`.
    pub fn at_most(&mut self, node: &Node, n: usize) {
        if let Some(w) = node.args.get(n) {
            self.error(
                w,
                format!(
                    "unexpected '{}': '{}' takes {n} argument(s)",
                    w.text, node.keyword.text
                ),
            );
        }
    }

    /// The block of a node that must have one.
    pub fn block<'a>(&mut self, node: &'a Node) -> &'a [Node] {
        match &node.block {
            Some(b) => b,
            None => {
                let w = &node.keyword;
                self.error(w, format!("expected '{{' to open the '{}' block", w.text));
                &[]
            }
        }
    }
}

/// Hex bytes of one word (`payload`, `require_reply`): pairs of hex digits, optional `0x`.
pub fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // two digits a byte; an odd last digit is a byte of its own (keepalived's read_hex_str)
    s.as_bytes()
        .chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
        .collect()
}
