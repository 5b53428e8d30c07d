//! Robustness of the keepalived.conf parser: the example configs the crate tests with, mutated by
//! a deterministic generator (lines and tokens deleted, duplicated, swapped; braces dropped;
//! truncation at every offset; junk, long tokens, out-of-range numbers, unknown keywords, deep
//! nesting; include graphs with missing files and cycles), never panic or hang; every error and
//! warning names a line and column that exist in the file it names; the same input gives the
//! same result; and nothing rvs does not understand is accepted without a word.

mod common;

use common::keepalived::{BAD_VALUES, KEYWORD_BLOCKS, ONE_ARG};
use common::{Rng, TempDir, check_location, mutate, run_bounded, shown};
use rvs_config::keepalived::{Includes, KeepalivedConfig, check_file, load, parse_with};
use rvs_config::{ConfigError, ConfigErrors};
use rvs_core::desired::DesiredState;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SEEDS: &[&str] = &[
    include_str!("../src/keepalived/testdata/seed_002.conf"),
    include_str!("../src/keepalived/testdata/conf.d/10-web.conf"),
    include_str!("../src/keepalived/testdata/conf.d/20-dns.conf"),
    include_str!("../src/keepalived/testdata/vrrp_part.inc"),
    include_str!("data/keepalived_full.conf"),
];

const LIMIT: Duration = Duration::from_secs(3);

fn parse(text: &str) -> Result<KeepalivedConfig, ConfigErrors> {
    parse_with(text, Path::new("k.conf"), Includes::Refuse)
}

/// Every finding is located inside `text` (they all name `k.conf`).
fn check_findings(findings: &[ConfigError], text: &str) {
    let lines = common::line_lengths(text);
    for e in findings {
        assert_eq!(e.location.path, Path::new("k.conf"), "{e}");
        common::check_location_in(e, &lines, text);
    }
}

/// An accepted config's state passes the model's own validation when rebuilt edit by edit.
fn check_state(state: &DesiredState, text: &str) {
    let mut again = DesiredState::default();
    for (key, svc) in &state.services {
        again
            .add_service(*key, svc.options)
            .unwrap_or_else(|e| panic!("{e}\n{}", shown(text)));
        for r in svc.reals.values() {
            again
                .add_real(key, *r)
                .unwrap_or_else(|e| panic!("{e}\n{}", shown(text)));
        }
    }
    assert_eq!(&again.services, &state.services);
}

/// Parse twice (determinism) within the time limit and check every invariant.
fn check(text: &str) -> bool {
    let (a, b) = run_bounded(text, LIMIT, || (parse(text), parse(text)));
    assert_eq!(a, b, "two parses differ:\n{}", shown(text));
    match a {
        Ok(cfg) => {
            check_findings(&cfg.warnings, text);
            check_state(&cfg.desired, text);
            true
        }
        Err(e) => {
            assert!(!e.0.is_empty());
            check_findings(&e.0, text);
            false
        }
    }
}

#[test]
fn seeds_are_valid_without_warnings() {
    for s in SEEDS {
        let cfg = parse(s).unwrap_or_else(|e| panic!("{e}\n{s}"));
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }
}

#[test]
fn mutated_configs_keep_the_invariants() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..6_000 {
        let mut text = rng.pick(SEEDS).to_string();
        for _ in 0..1 + rng.below(3) {
            text = mutate(&mut rng, &text);
        }
        if check(&text) {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    assert!(
        accepted > 300 && rejected > 300,
        "{accepted} accepted, {rejected} rejected"
    );
}

#[test]
fn every_truncation_keeps_the_invariants() {
    for seed in SEEDS {
        for at in common::boundaries(seed) {
            check(&seed[..at]);
        }
    }
}

#[test]
fn deep_nesting_and_huge_inputs_are_bounded() {
    let deep = "virtual_server 10.0.0.3 80 {\n".repeat(20_000);
    assert!(!check(&deep));
    assert!(!check(&"{".repeat(200_000)));
    assert!(!check(&"}".repeat(200_000)));
    assert!(!check(&"{}".repeat(100_000)));
    let long = format!("virtual_server 10.0.0.3 {} {{\n}}\n", "9".repeat(1 << 20));
    assert!(!check(&long));
    assert!(!check(&format!("\"{}", "x".repeat(1 << 20))));
}

fn reported_at(text: &str, line: usize, column: usize, errors_only: bool) -> bool {
    let (errors, warnings) = match parse(text) {
        Ok(c) => (Vec::new(), c.warnings),
        Err(e) => (e.0, Vec::new()),
    };
    let at = |e: &ConfigError| (e.location.line, e.location.column) == (line, column);
    errors.iter().any(at) || (!errors_only && warnings.iter().any(at))
}

#[test]
fn nothing_is_accepted_without_a_word() {
    let mut missed = Vec::new();
    for seed in SEEDS {
        let lines: Vec<&str> = seed.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(kw) = line.split_whitespace().next() else {
                continue;
            };
            let edit = |at: usize, new: String, insert: bool| {
                let mut l: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
                if insert {
                    l.insert(at, new);
                } else {
                    l[at] = new;
                }
                l.join("\n")
            };
            let mut expect = |text: String, line: usize, column: usize, errors_only, what| {
                if !reported_at(&text, line, column, errors_only) {
                    missed.push(format!(
                        "{what} not reported at {line}:{column}: {}",
                        text.lines().nth(line - 1).unwrap_or_default()
                    ));
                }
            };
            let col = line.chars().count() + 2;
            if ONE_ARG.contains(&kw) {
                // an extra word after a one-value keyword is an error at the word
                expect(
                    edit(i, format!("{line} zzextra"), false),
                    i + 1,
                    col,
                    true,
                    "extra word",
                );
                // so is a block after it
                expect(
                    edit(i, format!("{line} {{ zz }}"), false),
                    i + 1,
                    col,
                    true,
                    "stray block",
                );
            }
            if KEYWORD_BLOCKS.contains(&kw) && line.trim_end().ends_with('{') {
                // an unknown keyword inside a block rvs knows is an error or a warning
                let text = edit(i + 1, "zzunknown 1 { x }".into(), true);
                expect(text, i + 2, 1, false, "unknown keyword");
                // as is an argument the block keyword does not take
                let (head, _) = line.rsplit_once('{').unwrap();
                let text = edit(i, format!("{head}zzextra {{"), false);
                expect(
                    text,
                    i + 1,
                    head.chars().count() + 1,
                    true,
                    "extra argument",
                );
            }
        }
    }
    assert!(
        missed.is_empty(),
        "{} missed:\n{}",
        missed.len(),
        missed.join("\n")
    );
}

#[test]
fn bad_values_are_errors_on_their_line() {
    let (mut missed, mut tried) = (Vec::new(), 0);
    for seed in SEEDS {
        let lines: Vec<&str> = seed.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let mut words = line.split_whitespace();
            let (Some(kw), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((_, bad)) = BAD_VALUES.iter().find(|(k, _)| *k == kw) else {
                continue;
            };
            for v in *bad {
                let mut l: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
                l[i] = line.replacen(value, v, 1);
                let text = l.join("\n");
                check(&text);
                tried += 1;
                let on_line =
                    matches!(parse(&text), Err(e) if e.0.iter().any(|e| e.location.line == i + 1));
                if !on_line {
                    missed.push(l[i].clone());
                }
            }
        }
    }
    assert!(tried > 150, "only {tried} cases");
    assert!(missed.is_empty(), "accepted: {missed:#?}");
}

#[test]
fn top_level_blocks_defined_twice_are_errors() {
    let mut missed = Vec::new();
    for seed in SEEDS {
        let lines: Vec<&str> = seed.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let top = !line.starts_with(char::is_whitespace) && line.trim_end().ends_with('{');
            if !top || line.starts_with("global_defs") {
                continue;
            }
            let Some(end) = (i..lines.len()).find(|&j| lines[j] == "}") else {
                continue;
            };
            let mut l = lines.clone();
            l.splice(end + 1..end + 1, lines[i..=end].iter().copied());
            let text = l.join("\n");
            if parse(&text).is_ok() {
                missed.push(line.to_string());
            }
        }
    }
    assert!(missed.is_empty(), "accepted twice: {missed:?}");
}

/// Write `files` (name, text) into a fresh directory; `load` the first; check every finding is
/// located in the file it names, and that two loads agree.
fn load_tree(tag: &str, files: &[(&str, String)]) -> (Vec<ConfigError>, Vec<ConfigError>) {
    let dir = TempDir::new(tag);
    for (name, text) in files {
        std::fs::write(dir.0.join(name), text).unwrap();
    }
    // a file that is not UTF-8, for includes to find
    std::fs::write(dir.0.join("bin.conf"), b"virtual_server \xff\xfe 80 {\n}\n").unwrap();
    let main = dir.0.join(files[0].0);
    let shown = format!("{files:?}");
    let (a, b) = run_bounded(&shown, LIMIT, || (check_file(&main), check_file(&main)));
    assert_eq!(a, b, "two loads differ: {shown}");
    assert_eq!(load(&main).is_ok(), a.0.is_empty(), "{shown}");
    for e in a.0.iter().chain(&a.1) {
        let named: PathBuf = e.location.path.clone();
        let text = std::fs::read_to_string(&named)
            .unwrap_or_else(|_| panic!("{e} names a file that cannot be read: {shown}"));
        check_location(e, &text, &shown);
    }
    a
}

#[test]
fn include_cycles_and_missing_files_are_located_errors() {
    let svc = "virtual_server 10.0.0.3 80 {\n real_server 10.0.0.7 80 {\n }\n}\n";
    let (e, _) = load_tree("kself", &[("a.conf", "include a.conf\n".into())]);
    assert!(
        e.iter().any(|e| e.message.contains("includes itself")),
        "{e:?}"
    );
    let (e, _) = load_tree(
        "kpair",
        &[
            ("a.conf", "include b.conf\n".into()),
            ("b.conf", format!("{svc}include a.conf\n")),
        ],
    );
    assert!(
        e.iter().any(|e| e.message.contains("includes itself")),
        "{e:?}"
    );
    // every file includes every file: without cycle detection 6^8 reads
    let all: Vec<(String, String)> = (0..6)
        .map(|i| (format!("f{i}.conf"), "include *.conf\n".to_string()))
        .collect();
    let all: Vec<(&str, String)> = all.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let (e, _) = load_tree("kglob", &all);
    assert!(
        e.iter().any(|e| e.message.contains("includes itself")),
        "{e:?}"
    );
    let (e, _) = load_tree(
        "kmiss",
        &[(
            "a.conf",
            format!("{svc}include nope.conf\ninclude none-*.conf\n"),
        )],
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].location.line, e[0].location.column), (5, 9));
}

#[test]
fn random_include_graphs_keep_the_invariants() {
    let mut rng = Rng(0x00dd_b1a5_e5ca_1e00);
    let names = ["main.conf", "a.conf", "b.conf", "c.inc", "d.conf"];
    let targets = [
        "a.conf",
        "b.conf",
        "c.inc",
        "d.conf",
        "*.conf",
        "*.inc",
        "?.conf",
        "[ab].conf",
        "main.conf",
        "missing.conf",
        "none-*.conf",
        "/dev/zero",
        "/dev/null",
        ".",
        "bin.conf",
    ];
    for round in 0..150 {
        let mut files: Vec<(&str, String)> = Vec::new();
        for name in names {
            let mut text = String::new();
            for _ in 0..rng.below(3) {
                text += &format!("include {}\n", rng.pick(&targets));
            }
            let mut body = rng.pick(SEEDS).to_string();
            if rng.below(2) == 0 {
                body = mutate(&mut rng, &body);
            }
            text += &body;
            files.push((name, text));
        }
        load_tree(&format!("kgraph{round}"), &files);
    }
}

#[test]
fn non_utf8_is_an_error_at_the_first_bad_byte() {
    let dir = TempDir::new("kutf8");
    let path = dir.0.join("k.conf");
    std::fs::write(&path, b"global_defs {\n  router_id l\xe9b\n}\n").unwrap();
    let e = load(&path).unwrap_err().0;
    assert_eq!((e[0].location.line, e[0].location.column), (2, 14), "{e:?}");
    assert!(e[0].message.contains("UTF-8"), "{e:?}");
    std::fs::write(dir.0.join("bad.inc"), b"\xff").unwrap();
    std::fs::write(&path, "include bad.inc\n").unwrap();
    let e = load(&path).unwrap_err().0;
    assert_eq!((e[0].location.line, e[0].location.column), (1, 9), "{e:?}");
}
