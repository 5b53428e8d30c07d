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

/// Deepest include nesting accepted (guards against include loops).
const MAX_INCLUDE_DEPTH: usize = 8;
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

/// Tokenize one text.
fn tokenize(text: &str, path: &Rc<Path>) -> Vec<Tok> {
    let mut out = Vec::new();
    for (lineno, line) in text.lines().enumerate() {
        let mut chars = line.char_indices().peekable();
        while let Some(&(i, c)) = chars.peek() {
            let word = |t: String| Word {
                text: t,
                path: path.clone(),
                line: lineno + 1,
                column: col(line, i),
            };
            match c {
                c if c.is_whitespace() => {
                    chars.next();
                }
                '#' | '!' => break,
                '{' => {
                    chars.next();
                    out.push(Tok::Open(word("{".into())));
                }
                '}' => {
                    chars.next();
                    out.push(Tok::Close(word("}".into())));
                }
                '"' => {
                    chars.next();
                    let mut s = String::new();
                    for (_, c) in chars.by_ref() {
                        if c == '"' {
                            break;
                        }
                        s.push(c);
                    }
                    out.push(Tok::Word(word(s)));
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
                    out.push(Tok::Word(word(s)));
                }
            }
        }
        out.push(Tok::Newline);
    }
    out
}

/// 1-based column in characters of byte offset `i`.
fn col(line: &str, i: usize) -> usize {
    line[..i].chars().count() + 1
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
    expand(text, path, includes, 0, &mut toks, errors);
    let mut pos = 0;
    parse_block(&toks, &mut pos, None, 0, errors)
}

/// Tokenize `text` and splice in the tokens of included files.
fn expand(
    text: &str,
    path: &Path,
    includes: Includes,
    depth: usize,
    out: &mut Vec<Tok>,
    errors: &mut Vec<ConfigError>,
) {
    let rc: Rc<Path> = Rc::from(path);
    let toks = tokenize(text, &rc);
    let mut i = 0;
    while i < toks.len() {
        let at_line_start = i == 0 || toks[i - 1] == Tok::Newline;
        match &toks[i] {
            Tok::Word(w) if at_line_start && w.text == "include" => {
                match toks.get(i + 1) {
                    Some(Tok::Word(pat)) => include(pat, path, includes, depth, out, errors),
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
}

fn include(
    pat: &Word,
    from: &Path,
    includes: Includes,
    depth: usize,
    out: &mut Vec<Tok>,
    errors: &mut Vec<ConfigError>,
) {
    if includes == Includes::Refuse {
        errors.push(pat.error("'include' is not allowed here (no file system access)"));
        return;
    }
    if depth >= MAX_INCLUDE_DEPTH {
        errors.push(pat.error(format!(
            "includes nested deeper than {MAX_INCLUDE_DEPTH} (an include loop?)"
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
        match read_limited(&file) {
            Ok(text) => expand(&text, &file, includes, depth + 1, out, errors),
            Err(e) => {
                errors.push(pat.error(format!("cannot read included file {}: {e}", file.display())))
            }
        }
    }
}

/// Read a regular file of bounded size.
pub fn read_limited(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    let bytes = std::fs::read(path)?;
    String::from_utf8(bytes).map_err(|_| std::io::Error::other("not valid UTF-8"))
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
                        last.block = Some(block)
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
                };
                if let Some(Tok::Open(o)) = toks.get(*pos) {
                    *pos += 1;
                    let o = o.clone();
                    node.block = Some(parse_block(toks, pos, Some(&o), depth + 1, errors));
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
