//! Robustness of rvs's TOML configuration: the example configs (examples/*.toml and every
//! ```toml block of docs/config.md), mutated by a deterministic generator — lines and tokens
//! deleted, duplicated, swapped; truncation at every offset; junk; values replaced by
//! out-of-range numbers and wrong types; services and reals duplicated; unknown keys — never
//! panic or hang; every error names a line and column inside the file; the same input gives the
//! same result; an accepted file holds only values rvs accepts. (There is no TOML writer, so no
//! round trip: the state is checked by rebuilding it through the model's validating edits.)

mod common;

use common::{Rng, check_location_in, line_lengths, mutate, run_bounded, shown};
use rvs_config::ConfigErrors;
use rvs_config::toml::{Config, parse};
use rvs_core::desired::DesiredState;
use rvs_core::model::MAX_WEIGHT;
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(3);

/// The example files and the ```toml blocks of docs/config.md.
fn seeds() -> Vec<String> {
    let mut out = vec![
        include_str!("../../../examples/director.toml").to_string(),
        include_str!("../../../examples/quickstart.toml").to_string(),
        include_str!("data/rvs_full.toml").to_string(),
    ];
    let doc = include_str!("../../../docs/config.md");
    for block in doc.split("```toml\n").skip(1) {
        out.push(block.split("```").next().unwrap_or_default().to_string());
    }
    out
}

fn p(text: &str) -> Result<Config, ConfigErrors> {
    parse(text, Path::new("rvs.toml"))
}

/// What an accepted file must hold whatever was written.
fn check_accepted(c: &Config, text: &str) {
    let t = &c.state.timeouts;
    assert!(
        t.tcp >= 1 && t.tcp_fin >= 1 && t.udp >= 1,
        "{}",
        shown(text)
    );
    let d = &c.daemon;
    assert!(
        d.xdp_icmp_rate
            .is_none_or(|r| r <= rvs_config::toml::MAX_XDP_ICMP_RATE)
            && d.xdp_icmp_burst
                .is_none_or(|b| (1..=rvs_config::toml::MAX_XDP_ICMP_BURST).contains(&b))
            && d.stop_grace_ms
                .is_none_or(|g| g <= rvs_config::toml::MAX_STOP_GRACE_MS),
        "{}",
        shown(text)
    );
    // warnings and the engine-only settings are located inside the file, as errors are
    let lines = line_lengths(text);
    for w in &c.warnings {
        check_location_in(w, &lines, text);
    }
    for s in &c.engine_settings {
        let as_error = rvs_config::ConfigError {
            location: s.location.clone(),
            message: s.key.clone(),
        };
        check_location_in(&as_error, &lines, text);
    }
    let mut again = DesiredState::default();
    for (key, svc) in &c.state.services {
        if let rvs_core::model::ServiceKey::FwMark { mark, .. } = key {
            assert!(*mark >= 1, "fwmark 0 accepted: {}", shown(text));
        }
        let o = &svc.options;
        if let Some(p) = o.persistence {
            assert!(
                p.timeout >= 1,
                "persistence timeout 0 accepted: {}",
                shown(text)
            );
        }
        let px = &o.proxy;
        assert!(px.connect_timeout_ms >= 1 && px.fail_timeout_ms >= 1);
        assert!(px.idle_timeout_ms.is_none_or(|v| v >= 1));
        again
            .add_service(*key, *o)
            .expect("service passes validation");
        for r in svc.reals.values() {
            assert!(r.weight <= MAX_WEIGHT);
            again.add_real(key, *r).expect("real passes validation");
        }
    }
    assert_eq!(again.services, c.state.services);
}

/// Parse twice within the time limit; check every invariant; whether it was accepted.
fn check(text: &str) -> bool {
    let (a, b) = run_bounded(text, LIMIT, || (p(text), p(text)));
    assert_eq!(a, b, "two parses differ:\n{}", shown(text));
    match a {
        Ok(c) => {
            check_accepted(&c, text);
            true
        }
        Err(e) => {
            assert!(!e.0.is_empty());
            let lines = line_lengths(text);
            for err in &e.0 {
                assert_eq!(err.location.path, Path::new("rvs.toml"));
                check_location_in(err, &lines, text);
            }
            false
        }
    }
}

#[test]
fn seeds_are_valid() {
    let seeds = seeds();
    assert!(seeds.len() >= 6, "examples and docs/config.md blocks");
    for s in &seeds {
        p(s).unwrap_or_else(|e| panic!("{e}\n{s}"));
    }
}

/// Values that are wrong for any integer key, and more for some keys.
const BAD_ANY_INT: &[&str] = &[
    "-1",
    "4294967296",
    "1.5",
    "\"7\"",
    "true",
    "[]",
    "{}",
    "nan",
];

/// Keys whose 0 is an error.
const NOT_ZERO: &[&str] = &[
    "tcp",
    "tcp_fin",
    "udp",
    "time_wait",
    "proxy_workers",
    "xdp_nat_conns",
    "xdp_icmp_burst",
    "proxy_udp_sessions",
    "proxy_max_conns",
    "connect_timeout_ms",
    "idle_timeout_ms",
    "fail_timeout_ms",
    "timeout",
    "fwmark",
];

/// Replace the value of key `key` in `line` (`key = v`, or `key = v` inside an inline table).
fn replace_value(line: &str, key: &str, new: &str) -> Option<String> {
    let start = line.find(&format!("{key} = "))?;
    if start > 0 && !matches!(line.as_bytes()[start - 1], b' ' | b'{' | b',') {
        return None;
    }
    let vstart = start + key.len() + 3;
    let rest = &line[vstart..];
    let vend = rest.find([',', '}', ' ', '#']).unwrap_or(rest.len());
    Some(format!("{}{new}{}", &line[..vstart], &rest[vend..]))
}

#[test]
fn out_of_range_and_wrongly_typed_values_are_located_errors() {
    let int_keys = [
        "tcp",
        "tcp_fin",
        "udp",
        "time_wait",
        "weight",
        "upper_threshold",
        "fwmark",
        "connect_timeout_ms",
        "connect_retries",
        "max_fails",
        "fail_timeout_ms",
        "timeout",
        "prefix_len",
        "proxy_workers",
        "xdp_nat_conns",
        "xdp_icmp_rate",
        "xdp_icmp_burst",
        "stop_grace_ms",
    ];
    let (mut missed, mut tried) = (Vec::new(), 0);
    for seed in seeds() {
        let lines: Vec<&str> = seed.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            for key in int_keys {
                let mut bad: Vec<&str> = BAD_ANY_INT.to_vec();
                if NOT_ZERO.contains(&key) {
                    bad.push("0");
                }
                match key {
                    "weight" => bad.push("65536"),
                    "connect_retries" => bad.push("256"),
                    "prefix_len" => bad.push("129"),
                    "xdp_icmp_rate" | "xdp_icmp_burst" => bad.push("10000001"),
                    "stop_grace_ms" => bad.push("86400001"),
                    _ => {}
                }
                for v in bad {
                    let Some(new) = replace_value(line, key, v) else {
                        continue;
                    };
                    let mut l: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
                    l[i] = new.clone();
                    let text = l.join("\n");
                    check(&text);
                    tried += 1;
                    let on_line = match p(&text) {
                        Ok(_) => false,
                        Err(e) => e.0.iter().any(|e| e.location.line == i + 1),
                    };
                    if !on_line {
                        missed.push(format!("line {}: {new}", i + 1));
                    }
                }
            }
        }
    }
    assert!(tried > 250, "only {tried} cases");
    assert!(
        missed.is_empty(),
        "{} accepted or located elsewhere:\n{}",
        missed.len(),
        missed.join("\n")
    );
}

/// The `[[service]]` (or `[[service.real]]`) sections of `text` as line ranges.
fn sections(lines: &[&str], header: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim_start().starts_with(header) {
            let end = (i + 1..lines.len())
                .find(|&j| lines[j].trim_start().starts_with('['))
                .unwrap_or(lines.len());
            out.push((i, end));
        }
    }
    out
}

#[test]
fn duplicate_services_and_reals_and_unknown_keys_are_errors() {
    let mut missed = Vec::new();
    for seed in seeds() {
        let lines: Vec<&str> = seed.lines().collect();
        for header in ["[[service]]", "[[service.real]]"] {
            for (start, end) in sections(&lines, header) {
                // a [[service]] section alone duplicates the service (its reals stay behind)
                let mut l: Vec<&str> = lines.clone();
                let copy: Vec<&str> = lines[start..end].to_vec();
                for (k, c) in copy.iter().enumerate() {
                    l.insert(end + k, c);
                }
                let text = l.join("\n");
                check(&text);
                if p(&text).is_ok() {
                    missed.push(format!("duplicate {header} at line {}", start + 1));
                }
            }
        }
        for (i, l) in lines.iter().enumerate() {
            if l.trim_start().starts_with('[') && !l.contains("tcp_states") {
                let mut v: Vec<&str> = lines.clone();
                v.insert(i + 1, "zzunknown = 1");
                let text = v.join("\n");
                check(&text);
                let ok = matches!(p(&text), Err(e) if e.0.iter().any(|e| e.location.line == i + 2));
                if !ok {
                    missed.push(format!("unknown key after line {}: {l}", i + 1));
                }
            }
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

#[test]
fn mutated_configs_keep_the_invariants() {
    let seeds = seeds();
    let mut rng = Rng(0x5851_f42d_4c95_7f2d);
    let (mut accepted, mut rejected) = (0, 0);
    let values = [
        "0",
        "-1",
        "65536",
        "4294967296",
        "1e400",
        "\"x\"",
        "true",
        "[]",
        "{}",
    ];
    for _ in 0..4_000 {
        let mut text = rng.pick(&seeds).clone();
        for _ in 0..1 + rng.below(2) {
            text = if rng.below(3) == 0 {
                // a value replaced by one of the wrong range or type
                let lines: Vec<&str> = text.lines().collect();
                let i = rng.below(lines.len());
                let l = match lines.get(i).and_then(|l| l.split_once(" = ")) {
                    Some((k, _)) => format!("{k} = {}", rng.pick(&values)),
                    None => continue,
                };
                let mut v: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
                v[i] = l;
                v.join("\n")
            } else {
                mutate(&mut rng, &text)
            };
        }
        if check(&text) {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    assert!(
        accepted > 200 && rejected > 200,
        "{accepted} accepted, {rejected} rejected"
    );
}

#[test]
fn every_truncation_keeps_the_invariants() {
    for seed in seeds() {
        for at in common::boundaries(&seed) {
            check(&seed[..at]);
        }
    }
}

#[test]
fn huge_and_deep_inputs_are_bounded() {
    assert!(!check(&"[".repeat(100_000)));
    assert!(!check(&format!("x = {}", "[".repeat(100_000))));
    assert!(!check(&format!("x = {}", "{a=".repeat(50_000))));
    assert!(!check(&format!(
        "[daemon]\nsocket = \"{}",
        "x".repeat(1 << 20)
    )));
    assert!(!check(&"[[service]]\n".repeat(20_000)));
}
