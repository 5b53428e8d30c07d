//! keepalived.conf text → a tree of located statements.
//!
//! keepalived's grammar is line based: a statement is a keyword and its arguments on one line;
//! a `{` opens a block belonging to the statement before it (on the same line, or alone on the
//! next line), `}` closes it. `{` and `}` are tokens even when glued to a word (`TCP_CHECK{`).
//! `#` and `!` at the start of a token begin a comment to the end of the line. `"..."` is one
//! token. `include PATTERN` (glob, relative to the including file) is expanded here, so later
//! stages see one tree whose every token still knows its own file, line and column.

use crate::error::ConfigError;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Deepest include nesting accepted.
const MAX_INCLUDE_DEPTH: usize = 8;
/// Most files read through `include` in all (guards against a glob including a wide tree many
/// times over; cycles are refused outright).
const MAX_INCLUDED_FILES: usize = 1000;
/// Largest file read (guards against `include /dev/zero` and the like).
const MAX_FILE_BYTES: u64 = 16 << 20;
/// Deepest block nesting accepted (keeps the recursive parser's stack bounded).
const MAX_NESTING: usize = 32;

/// A word with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub path: Rc<Path>,
    pub line: usize,
    pub column: usize,
    /// The column just after the token as written (after the closing `"` of a quoted word).
    pub end_column: usize,
}

impl Word {
    /// An error located at this word.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.path.to_path_buf(), self.line, self.column, message)
    }
}

/// One statement: keyword, arguments, and a block if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub keyword: Word,
    pub args: Vec<Word>,
    pub block: Option<Vec<Node>>,
    /// The `{` that opened `block`.
    pub brace: Option<Word>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(Word),
    Open(Word),
    Close(Word),
    Newline,
}

/// Whether and how `include` is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Includes {
    /// Read included files from the file system.
    FileSystem,
    /// Report `include` as an error (for text without a file, and for fuzzing).
    Refuse,
}

/// Tokenize one text; an unterminated `"` is an error (the string runs to the end of its line).
fn tokenize(text: &str, path: &Rc<Path>, errors: &mut Vec<ConfigError>) -> Vec<Tok> {
    let mut out = Vec::new();
    // a byte order mark (editors on Windows write one) is not part of the first keyword
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (lineno, line) in text.lines().enumerate() {
        // (column in characters, char); columns counted as we go, not from the line's start
        let mut chars = line.chars().enumerate().map(|(i, c)| (i + 1, c)).peekable();
        let after_line = line.chars().count() + 1;
        while let Some(&(column, c)) = chars.peek() {
            let word = |t: String, end_column: usize| Word {
                text: t,
                path: path.clone(),
                line: lineno + 1,
                column,
                end_column,
            };
            match c {
                c if c.is_whitespace() => {
                    chars.next();
                }
                '#' | '!' => break,
                '{' => {
                    chars.next();
                    out.push(Tok::Open(word("{".into(), column + 1)));
                }
                '}' => {
                    chars.next();
                    out.push(Tok::Close(word("}".into(), column + 1)));
                }
                '"' => {
                    chars.next();
                    let mut s = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '"' {
                            closed = true;
                            break;
                        }
                        s.push(c);
                    }
                    let end = chars.peek().map_or(after_line, |&(c, _)| c);
                    let w = word(s, end);
                    if !closed {
                        errors.push(w.error(
                            "this '\"' is never closed (expected '\"' before the end of the line)",
                        ));
                    }
                    out.push(Tok::Word(w));
                }
                _ => {
                    let mut s = String::new();
                    while let Some(&(_, c)) = chars.peek() {
                        if c.is_whitespace() || c == '{' || c == '}' {
                            break;
                        }
                        s.push(c);
                        chars.next();
                    }
                    let end = chars.peek().map_or(after_line, |&(c, _)| c);
                    out.push(Tok::Word(word(s, end)));
                }
            }
        }
        out.push(Tok::Newline);
    }
    out
}

/// Parse `text` (from `path`) into statements, expanding includes as `includes` says.
/// Every syntax error is collected; the tree holds what could be made of the rest.
pub fn parse_tree(
    text: &str,
    path: &Path,
    includes: Includes,
    errors: &mut Vec<ConfigError>,
) -> Vec<Node> {
    let mut toks = Vec::new();
    let mut seen = Expansion::default();
    expand(text, path, includes, &mut seen, &mut toks, errors);
    let mut pos = 0;
    parse_block(&toks, &mut pos, None, 0, errors)
}

/// The files being expanded (the include chain, for cycles) and how many were read in all.
#[derive(Default)]
struct Expansion {
    chain: Vec<PathBuf>,
    files: usize,
}

/// Tokenize `text` and splice in the tokens of included files.
fn expand(
    text: &str,
    path: &Path,
    includes: Includes,
    seen: &mut Expansion,
    out: &mut Vec<Tok>,
    errors: &mut Vec<ConfigError>,
) {
    let rc: Rc<Path> = Rc::from(path);
    let toks = tokenize(text, &rc, errors);
    seen.chain
        .push(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()));
    let mut i = 0;
    while i < toks.len() {
        let at_line_start = i == 0 || toks[i - 1] == Tok::Newline;
        match &toks[i] {
            Tok::Word(w) if at_line_start && w.text == "include" => {
                match (toks.get(i + 1), toks.get(i + 2)) {
                    (
                        Some(Tok::Word(_)),
                        Some(Tok::Word(extra) | Tok::Open(extra) | Tok::Close(extra)),
                    ) => errors.push(extra.error(format!(
                        "unexpected '{}': 'include' takes one file name or glob pattern",
                        extra.text
                    ))),
                    (Some(Tok::Word(pat)), _) => include(pat, path, includes, seen, out, errors),
                    _ => {
                        errors.push(w.error("expected a file name or glob pattern after 'include'"))
                    }
                }
                while i < toks.len() && toks[i] != Tok::Newline {
                    i += 1;
                }
            }
            t => {
                out.push(t.clone());
                i += 1;
            }
        }
    }
    seen.chain.pop();
}

fn include(
    pat: &Word,
    from: &Path,
    includes: Includes,
    seen: &mut Expansion,
    out: &mut Vec<Tok>,
    errors: &mut Vec<ConfigError>,
) {
    if includes == Includes::Refuse {
        errors.push(pat.error("'include' is not allowed here (no file system access)"));
        return;
    }
    if seen.chain.len() > MAX_INCLUDE_DEPTH {
        errors.push(pat.error(format!(
            "includes nested deeper than {MAX_INCLUDE_DEPTH} (expected at most {MAX_INCLUDE_DEPTH} levels)"
        )));
        return;
    }
    let base = from.parent().unwrap_or(Path::new("."));
    let full = if Path::new(&pat.text).is_absolute() {
        PathBuf::from(&pat.text)
    } else {
        base.join(&pat.text)
    };
    let files = super::glob::glob(&full);
    // keepalived: a glob matching nothing is fine; a plain name that does not exist is not
    let is_glob = pat.text.contains(['*', '?', '[']);
    if files.is_empty() && !is_glob {
        errors.push(pat.error(format!("included file {} not found", full.display())));
    }
    for file in files {
        let canonical = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
        if seen.chain.contains(&canonical) {
            errors.push(pat.error(format!(
                "include cycle: {} includes itself (expected a file not already being read)",
                file.display()
            )));
            continue;
        }
        if seen.files >= MAX_INCLUDED_FILES {
            errors.push(pat.error(format!(
                "more than {MAX_INCLUDED_FILES} files included in all (expected fewer)"
            )));
            return;
        }
        seen.files += 1;
        match read_limited(&file) {
            Ok(text) => expand(&text, &file, includes, seen, out, errors),
            Err(e) => {
                errors.push(pat.error(format!("cannot read included file {}: {e}", file.display())))
            }
        }
    }
}

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not valid UTF-8 at line {line}, column {column} (expected UTF-8 text)")]
    NotUtf8 { line: usize, column: usize },
}

impl ReadError {
    /// The error located in `path` (at the bad byte for [`ReadError::NotUtf8`]).
    pub fn located(&self, path: &Path) -> ConfigError {
        match self {
            ReadError::Io(e) => ConfigError::new(path, 0, 0, format!("cannot read: {e}")),
            ReadError::NotUtf8 { line, column } => ConfigError::new(
                path,
                *line,
                *column,
                "not valid UTF-8 (expected UTF-8 text)",
            ),
        }
    }
}

/// Read a regular file of bounded size holding UTF-8 text.
pub fn read_limited(path: &Path) -> Result<String, ReadError> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file").into());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!("larger than {MAX_FILE_BYTES} bytes")).into());
    }
    let bytes = std::fs::read(path)?;
    String::from_utf8(bytes).map_err(|e| {
        let (line, column) = crate::error::utf8_error_location(e.as_bytes(), &e.utf8_error());
        ReadError::NotUtf8 { line, column }
    })
}

/// Statements up to the `}` matching `open` (or the end, at top level).
fn parse_block(
    toks: &[Tok],
    pos: &mut usize,
    open: Option<&Word>,
    depth: usize,
    errors: &mut Vec<ConfigError>,
) -> Vec<Node> {
    if let Some(o) = open
        && depth > MAX_NESTING
    {
        errors.push(o.error(format!("blocks nested deeper than {MAX_NESTING}")));
        skip_block(toks, pos);
        return Vec::new();
    }
    let mut nodes: Vec<Node> = Vec::new();
    // whether the last node may still take a `{` (it ended at a newline without a block)
    let mut can_take_block = false;
    while *pos < toks.len() {
        match &toks[*pos] {
            Tok::Newline => *pos += 1,
            Tok::Close(w) => {
                *pos += 1;
                if open.is_some() {
                    return nodes;
                }
                errors.push(w.error("unexpected '}' (no block is open here)"));
                can_take_block = false;
                continue;
            }
            Tok::Open(w) => {
                *pos += 1;
                let block = parse_block(toks, pos, Some(w), depth + 1, errors);
                match nodes.last_mut() {
                    Some(last) if can_take_block && last.block.is_none() => {
                        last.block = Some(block);
                        last.brace = Some(w.clone());
                    }
                    _ => errors.push(w.error("unexpected '{' (expected a keyword before it)")),
                }
                can_take_block = false;
                continue;
            }
            Tok::Word(w) => {
                let keyword = w.clone();
                *pos += 1;
                let mut args = Vec::new();
                while let Some(Tok::Word(a)) = toks.get(*pos) {
                    args.push(a.clone());
                    *pos += 1;
                }
                let mut node = Node {
                    keyword,
                    args,
                    block: None,
                    brace: None,
                };
                if let Some(Tok::Open(o)) = toks.get(*pos) {
                    *pos += 1;
                    let o = o.clone();
                    node.block = Some(parse_block(toks, pos, Some(&o), depth + 1, errors));
                    node.brace = Some(o);
                    can_take_block = false;
                } else {
                    can_take_block = true;
                }
                nodes.push(node);
                continue;
            }
        }
    }
    if let Some(o) = open {
        errors.push(o.error("this '{' is never closed (expected '}' before the end of the input)"));
    }
    nodes
}

/// Skip to just after the `}` that closes the block whose `{` was just consumed.
fn skip_block(toks: &[Tok], pos: &mut usize) {
    let mut open = 1usize;
    while *pos < toks.len() && open > 0 {
        match toks[*pos] {
            Tok::Open(_) => open += 1,
            Tok::Close(_) => open -= 1,
            _ => {}
        }
        *pos += 1;
    }
}
