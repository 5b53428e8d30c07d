//! Shared by the robustness tests: a deterministic RNG, text mutations (lines, tokens, braces,
//! truncation, junk), and the checks every located error must pass.

#![allow(dead_code)] // each test binary uses its own subset

pub mod keepalived;

use rvs_config::ConfigError;
use std::time::{Duration, Instant};

/// xorshift64: small, deterministic, good enough to pick mutations.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Things worth inserting anywhere: control and multi-byte characters, quotes, comment starts,
/// braces, numbers at and past every integer limit, an unknown word, a very long token.
pub const JUNK: &[&str] = &[
    "\0",
    "\u{feff}",
    "\u{7f}",
    "\"",
    "\"\"",
    "#",
    "!",
    "é",
    "日本",
    "\t",
    "\r",
    "\r\n",
    "\n",
    " ",
    "{",
    "}",
    "{}",
    "[",
    "]",
    "=",
    ",",
    "0",
    "-1",
    "-0",
    "+1",
    "1.5",
    "1e309",
    "NaN",
    "inf",
    "0x10",
    "255",
    "256",
    "65535",
    "65536",
    "2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "18446744073709551616",
    "99999999999999999999999999999999999999",
    "zzunknown",
    "/dev/zero",
];

/// A very long token (64 KiB).
pub fn long_token() -> String {
    "a".repeat(64 << 10)
}

/// Byte offsets of char boundaries of `s` (including its end).
pub fn boundaries(s: &str) -> Vec<usize> {
    (0..=s.len()).filter(|&i| s.is_char_boundary(i)).collect()
}

/// One random mutation of `text`.
pub fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let n = lines.len();
    match rng.below(12) {
        0 => {
            lines.remove(rng.below(n));
        }
        1 => {
            let i = rng.below(n);
            let l = lines[i].clone();
            lines.insert(i, l);
        }
        2 => {
            let (a, b) = (rng.below(n), rng.below(n));
            lines.swap(a, b);
        }
        3..=5 => {
            let i = rng.below(n);
            let mut toks: Vec<String> = lines[i].split_whitespace().map(String::from).collect();
            if !toks.is_empty() {
                let k = rng.below(toks.len());
                match rng.below(3) {
                    0 => {
                        toks.remove(k);
                    }
                    1 => {
                        let t = toks[k].clone();
                        toks.insert(k, t);
                    }
                    _ => {
                        let j = rng.below(toks.len());
                        toks.swap(k, j);
                    }
                }
            }
            lines[i] = toks.join(" ");
        }
        6 => {
            // drop one brace
            let joined = lines.join("\n");
            let braces: Vec<usize> = joined.match_indices(['{', '}']).map(|(i, _)| i).collect();
            if braces.is_empty() {
                return joined;
            }
            let at = braces[rng.below(braces.len())];
            return format!("{}{}", &joined[..at], &joined[at + 1..]);
        }
        7 => {
            // replace a number with an out-of-range one
            let i = rng.below(n);
            let nums = [
                "0",
                "-1",
                "65536",
                "4294967296",
                "1e309",
                "-0.5",
                "99999999999",
            ];
            lines[i] = lines[i]
                .split(' ')
                .map(|t| {
                    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) && rng.below(2) == 0 {
                        rng.pick(&nums).to_string()
                    } else {
                        t.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ");
        }
        8 => {
            let joined = lines.join("\n");
            let b = boundaries(&joined);
            return joined[..*rng.pick(&b)].to_string();
        }
        9 => {
            let i = rng.below(n);
            let l = &lines[i];
            let b = boundaries(l);
            let at = *rng.pick(&b);
            let junk = if rng.below(50) == 0 {
                long_token()
            } else {
                rng.pick(JUNK).to_string()
            };
            lines[i] = format!("{}{}{}", &l[..at], junk, &l[at..]);
        }
        10 => {
            // several mutations at once
            let mut t = lines.join("\n");
            for _ in 0..2 + rng.below(4) {
                t = mutate(rng, &t);
            }
            return t;
        }
        _ => {
            let i = rng.below(n + 1);
            lines.insert(i, "zzunknown 1".to_string());
        }
    }
    lines.join("\n")
}

/// Lines as an editor numbers them (a final newline opens one more, empty, line).
pub fn editor_lines(text: &str) -> Vec<&str> {
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

/// `input` cut to a size a failure message can show.
pub fn shown(input: &str) -> String {
    if input.len() <= 3000 {
        return format!("{input:?}");
    }
    let mut end = 3000;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes in all)", &input[..end], input.len())
}

/// `e` names a line and column that exist in `text` (column ≤ line length in characters + 1)
/// and says what is wrong.
pub fn check_location(e: &ConfigError, text: &str, input: &str) {
    check_location_in(e, &line_lengths(text), input)
}

/// The length in characters of every line of `text`, as an editor numbers them.
pub fn line_lengths(text: &str) -> Vec<usize> {
    editor_lines(text)
        .iter()
        .map(|l| l.chars().count())
        .collect()
}

/// [`check_location`] with the line lengths already counted (for many errors in one text).
pub fn check_location_in(e: &ConfigError, lines: &[usize], input: &str) {
    let (l, c) = (e.location.line, e.location.column);
    assert!(
        l >= 1 && l <= lines.len(),
        "line {l} of {} lines: {e}\n--- input ---\n{}",
        lines.len(),
        shown(input)
    );
    let len = lines[l - 1];
    assert!(
        c >= 1 && c <= len + 1,
        "column {c} of a {len}-character line: {e}\n--- input ---\n{}",
        shown(input)
    );
    assert!(
        e.message.len() >= 10,
        "message says too little: {e}\n--- input ---\n{}",
        shown(input)
    );
    if std::env::var_os("RVS_SHOW_MESSAGES").is_some() {
        eprintln!("MSG {}", e.message);
    }
}

/// Run `f`, failing with `input` shown if it panics or takes longer than `limit`.
pub fn run_bounded<T>(input: &str, limit: Duration, f: impl FnOnce() -> T) -> T {
    let t0 = Instant::now();
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| panic!("parser panicked on this input:\n{}", shown(input)));
    let took = t0.elapsed();
    assert!(
        took < limit,
        "took {took:?} (limit {limit:?}) on this input:\n{}",
        shown(input)
    );
    out
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("rvs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
