//! A keyword that takes one value given twice in one block (`delay_loop 5` ... `delay_loop 10`,
//! or `lb_kind DR` and its alias `lvs_method NAT`): keepalived keeps the last without a word,
//! and so does rvs, but the first was almost certainly meant to count too (a copy-paste, an
//! edit in the wrong place). A located warning points at the later one and says where the
//! earlier one is.
//!
//! Only keywords rvs reads in the block ([`super::keywords::of`]) and that open no block are
//! checked: blocks repeat by design (`real_server`, `url`, several checkers on one real), an
//! unknown keyword already has its own warning, and `status_code` adds to its list.

use super::keywords;
use super::lex::{Node, Word};
use crate::error::ConfigError;
use std::collections::HashMap;

/// Keywords that may be given more than once in their block (each adds to a list).
const ADDS_UP: &[&str] = &["status_code"];

/// The name both spellings of a keyword count under.
fn canonical(keyword: &str) -> &str {
    match keyword {
        "lvs_sched" => "lb_algo",
        "lvs_method" => "lb_kind",
        "nb_get_retry" => "retry",
        k => k,
    }
}

/// Warns (into `warnings`) about every keyword given twice in one block of `tree`.
pub fn warn(tree: &[Node], warnings: &mut Vec<ConfigError>) {
    for n in tree {
        if let Some(block) = &n.block {
            walk(block, &n.keyword.text, warnings);
        }
    }
}

fn walk(nodes: &[Node], block: &str, warnings: &mut Vec<ConfigError>) {
    let mut seen: HashMap<&str, &Word> = HashMap::new();
    for n in nodes {
        let kw = n.keyword.text.as_str();
        if let Some(inner) = &n.block {
            walk(inner, kw, warnings);
            continue;
        }
        if ADDS_UP.contains(&kw) || !keywords::of(block).any(|k| k == kw) {
            continue;
        }
        if let Some(first) = seen.insert(canonical(kw), &n.keyword) {
            let at = match first.path == n.keyword.path {
                true => format!("{}:{}", first.line, first.column),
                false => format!("{}:{}:{}", first.path.display(), first.line, first.column),
            };
            let same = match first.text == kw {
                true => String::new(),
                false => format!(" (as '{}')", first.text),
            };
            warnings.push(n.keyword.error(format!(
                "'{kw}' is given twice in this {block} (also at {at}{same}): the last one \
                 counts, as in keepalived"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::keepalived::parse_str;
    use std::path::Path;

    fn repeats(text: &str) -> Vec<String> {
        let c = parse_str(text, Path::new("k.conf")).unwrap();
        c.warnings
            .iter()
            .map(|w| w.to_string())
            .filter(|w| w.contains("given twice"))
            .collect()
    }

    #[test]
    fn a_value_given_twice_is_warned_at_the_second_and_the_last_counts() {
        let text = "virtual_server 10.0.0.3 80 {\n  delay_loop 5\n  lb_algo rr\n  delay_loop 10\n  real_server 10.0.0.7 80 {\n    weight 1\n    TCP_CHECK {\n      connect_timeout 3\n    }\n  }\n}\n";
        assert_eq!(
            repeats(text),
            [
                "k.conf:4:3: 'delay_loop' is given twice in this virtual_server (also at 2:3): \
              the last one counts, as in keepalived"
            ]
        );
        let c = parse_str(text, Path::new("k.conf")).unwrap();
        assert_eq!(
            c.virtual_servers[0].delay_loop,
            std::time::Duration::from_secs(10),
            "the last counts"
        );
    }

    #[test]
    fn aliases_count_as_one_keyword() {
        let text = "virtual_server 10.0.0.3 80 {\n  lb_kind DR\n  lvs_method NAT\n  lvs_sched rr\n  lb_algo wrr\n  real_server 10.0.0.7 80 {\n    weight 1\n  }\n}\n";
        let w = repeats(text);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("k.conf:3:3: 'lvs_method' is given twice in this virtual_server (also at 2:3 (as 'lb_kind'))"),
            "{w:?}"
        );
        assert!(w[1].starts_with("k.conf:5:3: 'lb_algo'"), "{w:?}");
    }

    #[test]
    fn blocks_lists_and_separate_blocks_are_not_repeats() {
        // two checkers on one real, two url blocks, status_code twice (it adds up), the same
        // keyword in two reals and in nested blocks
        let text = "virtual_server 10.0.0.3 80 {\n  delay_loop 5\n  real_server 10.0.0.7 80 {\n    weight 1\n    TCP_CHECK {\n      connect_timeout 3\n    }\n    HTTP_GET {\n      connect_timeout 3\n      url {\n        path /a\n        status_code 200\n        status_code 301-302\n      }\n      url {\n        path /b\n      }\n    }\n  }\n  real_server 10.0.0.8 80 {\n    weight 2\n  }\n}\n";
        assert_eq!(repeats(text), Vec::<String>::new());
    }

    #[test]
    fn every_repeat_is_found_also_in_vrrp_and_checker_blocks() {
        let text = "vrrp_instance VI {\n  priority 100\n  priority 90\n  authentication {\n    auth_type PASS\n    auth_type PASS\n  }\n}\nvirtual_server 10.0.0.3 80 {\n  real_server 10.0.0.7 80 {\n    weight 1\n    TCP_CHECK {\n      retry 2\n      nb_get_retry 3\n    }\n  }\n}\n";
        let w = repeats(text);
        let at: Vec<&str> = w.iter().map(|w| &w[..w.find(": ").unwrap()]).collect();
        assert_eq!(at, ["k.conf:3:3", "k.conf:6:5", "k.conf:14:7"], "{w:?}");
    }
}
