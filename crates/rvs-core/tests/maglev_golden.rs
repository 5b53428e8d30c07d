//! Golden tests: Maglev tables for fixed sets of reals, stored in `tests/golden/` and compared
//! byte for byte, so that any change of the hash or the population order is caught (two
//! directors, or a director and its upgraded self, must build identical tables).
//!
//! File format: `#` comment lines naming the reals and size, then the slots, one character per
//! slot (the real's index in base 36), 64 slots per line.
//! To regenerate after an intended change: `RVS_BLESS=1 cargo test -p rvs-core --test maglev_golden`.

use rvs_core::maglev::MaglevTable;
use rvs_core::maglev::hash::flow_hash;
use std::net::SocketAddr;
use std::path::PathBuf;

fn render(reals: &[(SocketAddr, u32)], size: u32) -> String {
    let table = MaglevTable::build(reals, size).expect("valid table");
    let mut out = format!("# Maglev table, size {size}\n");
    for (i, (addr, w)) in reals.iter().enumerate() {
        out += &format!("# real {i}: {addr} weight {w}\n");
    }
    for row in table.slots().chunks(64) {
        out.extend(
            row.iter()
                .map(|&s| char::from_digit(s, 36).expect("index below 36")),
        );
        out.push('\n');
    }
    out
}

fn check(name: &str, reals: &[(SocketAddr, u32)], size: u32) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let got = render(reals, size);
    if std::env::var_os("RVS_BLESS").is_some() {
        std::fs::write(&path, &got).expect("write golden file");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with RVS_BLESS=1 to create it)",
            path.display()
        )
    });
    assert!(
        got.as_bytes() == want.as_bytes(),
        "{} differs from the built table",
        path.display()
    );
}

fn parse(reals: &[(&str, u32)]) -> Vec<(SocketAddr, u32)> {
    reals
        .iter()
        .map(|&(a, w)| (a.parse().unwrap(), w))
        .collect()
}

#[test]
fn ipv4_weighted_65537() {
    let reals = parse(&[
        ("10.0.0.1:80", 1),
        ("10.0.0.2:80", 1),
        ("10.0.0.3:80", 2),
        ("10.0.0.4:8080", 3),
        ("10.0.0.5:80", 5),
        ("10.0.0.6:80", 0),
    ]);
    check("maglev_ipv4_65537.txt", &reals, 65537);
}

#[test]
fn ipv6_equal_251() {
    let reals = parse(&[
        ("[2001:db8::10]:443", 1),
        ("[2001:db8::11]:443", 1),
        ("[2001:db8::12]:443", 1),
    ]);
    check("maglev_ipv6_251.txt", &reals, 251);
}

#[test]
fn flow_hash_values_are_pinned() {
    // The XDP program's test compares against these same values.
    let v4 = flow_hash(
        "192.0.2.1:40000".parse().unwrap(),
        "10.0.0.100:80".parse().unwrap(),
        6,
    );
    let v6 = flow_hash(
        "[2001:db8::1]:40000".parse().unwrap(),
        "[2001:db8::100]:443".parse().unwrap(),
        17,
    );
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/flow_hash.txt");
    let got = format!(
        "192.0.2.1:40000 -> 10.0.0.100:80 proto 6 = {v4:#010x}\n\
         [2001:db8::1]:40000 -> [2001:db8::100]:443 proto 17 = {v6:#010x}\n"
    );
    if std::env::var_os("RVS_BLESS").is_some() {
        std::fs::write(&path, &got).expect("write golden file");
        return;
    }
    assert_eq!(
        got,
        std::fs::read_to_string(&path).expect("golden flow_hash.txt")
    );
}
