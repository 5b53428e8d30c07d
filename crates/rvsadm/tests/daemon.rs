//! rvsadm against a running rvsd (started here on a private socket): the seed's commands
//! (steps 04–08), the `-S` → `-C` → `-R` → `-S` round trip, every edit command, and bad input
//! that must leave the daemon's state unchanged.
//!
//! As on the seed's director (step 01: `ip addr add 10.0.0.3/24 dev eth0`), the VIPs must be
//! local for an engine to listen on them, so as root rvsd runs inside a network namespace made
//! here, with the tests' VIPs on its `lo`. Without root these tests skip with a printed reason.
//! Services no running engine can serve (DR without the xdp engine) are kept and flagged with a
//! `# not served` line; the tests check that line against the API's `unsupported` field.

mod common;

use common::{Daemon, ok, rvsadm, rvsadm_with_input, start_or_skip};
use std::process::Command;

/// The daemon's whole state as rvsadm shows it.
fn snapshot(d: &Daemon) -> String {
    ok(d, "-S -n") + &ok(d, "-L --timeout") + &ok(d, "-Ln")
}

const SEED_RULES: &str = "-A -t 10.0.0.3:80 -s wrr -p 20\n\
-a -t 10.0.0.3:80 -r 10.0.0.7:80 -g -w 1\n\
-a -t 10.0.0.3:80 -r 10.0.0.8:80 -g -w 1\n";

fn seed_setup(d: &Daemon) {
    ok(d, "-C");
    ok(d, "--set 30 5 60");
    ok(d, "-A -t 10.0.0.3:80 -s wrr -p 20");
    ok(d, "-a -t 10.0.0.3:80 -r 10.0.0.7:80 -g -w 1");
    ok(d, "-a -t 10.0.0.3:80 -r 10.0.0.8:80 -g -w 1");
}

/// Lines of a listing without rvs's `# not served` comment lines.
fn ipvsadm_lines(listing: &str) -> String {
    listing
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn seed_steps_04_to_08() {
    let Some(d) = start_or_skip("seed_steps_04_to_08") else {
        return;
    };
    seed_setup(&d);
    assert_eq!(
        ok(&d, "-L --timeout"),
        "Timeout (tcp tcpfin udp): 30 5 60\n"
    );
    // step 07: the seed's table
    let table = ok(&d, "-ln --stats");
    let seed_table = include_str!("../../rvs-config/tests/golden/seed_stats.txt");
    assert_eq!(ipvsadm_lines(&table), seed_table, "{table}");
    let views: serde_json::Value = serde_json::from_str(&ok(&d, "-L --json")).unwrap();
    let unserved = !views[0]["unsupported"].is_null();
    assert_eq!(
        table.contains("  # not served: "),
        unserved,
        "{table}\n{views}"
    );
    // step 08: ipvsadm-save -n / ipvsadm-restore
    let saved = ok(&d, "-S -n");
    assert_eq!(saved, SEED_RULES);
    let o = rvsadm_with_input(&d, &["-R"], &saved);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(ok(&d, "-S -n"), SEED_RULES);
    assert_eq!(ipvsadm_lines(&ok(&d, "-ln --stats")), seed_table);
    assert_eq!(
        ok(&d, "-L --timeout"),
        "Timeout (tcp tcpfin udp): 30 5 60\n"
    );
}

#[test]
fn save_clear_restore_save_is_identical() {
    let Some(d) = start_or_skip("save_clear_restore_save_is_identical") else {
        return;
    };
    for line in [
        "-A -t 10.0.0.3:80 -s wrr -p 20",
        "-a -t 10.0.0.3:80 -r 10.0.0.7:80 -g -w 1",
        "-a -t 10.0.0.3:80 -r 10.0.0.8:8080 -m -w 3 -x 100 -y 50",
        "-a -t 10.0.0.3:80 -r 10.0.0.9:80 -i -w 0",
        "-A -t 127.0.0.1:18080 -s rr",
        "-a -t 127.0.0.1:18080 -r 127.0.0.1:18081 -b -w 2",
        "-A -u 10.0.0.3:53 -s sh -b sh-fallback,sh-port -o",
        "-a -u 10.0.0.3:53 -r 10.0.0.10:53 -m",
        "-A -f 7 -s lc -p 60 -M 255.255.255.0",
        "-a -f 7 -r 10.0.0.11 -g -w 5",
        "-A -t [2001:db8::3]:443 -s mh -b mh-port",
        "-a -t [2001:db8::3]:443 -r [2001:db8::7]:443 -g",
    ] {
        ok(&d, line);
    }
    let first = ok(&d, "-S");
    assert_eq!(first.lines().count(), 12, "{first}");
    ok(&d, "-C");
    assert_eq!(ok(&d, "-S"), "");
    let o = rvsadm_with_input(&d, &["-R"], &first);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(ok(&d, "-S"), first);
}

#[test]
fn edit_delete_zero_and_listings() {
    let Some(d) = start_or_skip("edit_delete_zero_and_listings") else {
        return;
    };
    seed_setup(&d);
    ok(&d, "-E -t 10.0.0.3:80 -s rr");
    ok(&d, "-e -t 10.0.0.3:80 -r 10.0.0.7:80 -g -w 9");
    ok(&d, "-d -t 10.0.0.3:80 -r 10.0.0.8:80");
    assert_eq!(
        ok(&d, "-S"),
        "-A -t 10.0.0.3:80 -s rr\n-a -t 10.0.0.3:80 -r 10.0.0.7:80 -g -w 9\n"
    );
    let listing = ok(&d, "-Ln -t 10.0.0.3:80");
    assert!(listing.contains("TCP  10.0.0.3:80 rr\n"), "{listing}");
    assert!(
        listing.contains("  -> 10.0.0.7:80                  Route   9      0          0"),
        "{listing}"
    );
    ok(&d, "-Z");
    ok(&d, "-Z -t 10.0.0.3:80");
    let json: serde_json::Value = serde_json::from_str(&ok(&d, "-L --json")).unwrap();
    assert_eq!(json[0]["options"]["scheduler"], "rr", "{json}");
    assert_eq!(json[0]["reals"][0]["real"]["weight"], 9, "{json}");
    assert!(ok(&d, "-Lnc").starts_with("IPVS connection entries\npro expire state"));
    ok(&d, "--set 0 7 0");
    assert_eq!(
        ok(&d, "-L --timeout"),
        "Timeout (tcp tcpfin udp): 30 7 60\n"
    );
    // no arguments lists, as ipvsadm does
    let o = rvsadm(&d, &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, ok(&d, "-Ln"));
    ok(&d, "-D -t 10.0.0.3:80");
    assert_eq!(ok(&d, "-S"), "");
}

#[test]
fn bad_input_leaves_state_unchanged() {
    let Some(d) = start_or_skip("bad_input_leaves_state_unchanged") else {
        return;
    };
    seed_setup(&d);
    let before = snapshot(&d);
    let cases: &[(&str, i32, &str)] = &[
        ("-A -t 10.0.0.3:80 --bogus", 2, "unknown option '--bogus'"),
        ("-a -t 10.0.0.3:80 -r", 2, "option -r needs a value"),
        (
            "-A -t 10.0.0.300:80 -s rr",
            2,
            "bad address '10.0.0.300:80'",
        ),
        ("-A -t 10.0.0.3:80 -s wrr", 1, "already exists"),
        ("-a -t 10.0.0.9:80 -r 10.0.0.7:80 -g", 1, "no such service"),
        (
            "-a -t 10.0.0.3:80 -r 10.0.0.9:80 -w 70000",
            2,
            "weight 70000 out of range",
        ),
        (
            "-a -t 10.0.0.3:80 -r 10.0.0.7:80 -g -w 1",
            1,
            "already exists",
        ),
        (
            "-d -t 10.0.0.3:80 -r 10.0.0.99:80",
            1,
            "no such real server",
        ),
        ("-E -t 10.0.0.4:80 -s rr", 1, "no such service"),
        ("-L -t 10.0.0.4:80", 1, "no such service"),
        (
            "-A -t 10.0.0.4:80 -s nosuch",
            2,
            "unknown scheduler 'nosuch'",
        ),
    ];
    for (line, code, msg) in cases {
        let args: Vec<&str> = line.split_whitespace().collect();
        let o = rvsadm(&d, &args);
        assert_eq!(o.code, *code, "rvsadm {line}: {}", o.stderr);
        assert!(
            o.stderr.contains(msg),
            "rvsadm {line}: stderr '{}' lacks '{msg}'",
            o.stderr
        );
        assert_eq!(snapshot(&d), before, "rvsadm {line} changed the state");
    }
    // -R with errors: every error reported with line:column, nothing applied
    let bad_rules = "-C\n-A -t 10.0.0.5:80 -s wrr\n-a -t 10.0.0.5:80 -r 10.0.0.7:80 -w 99999\n-a -t 10.0.0.6:80 -r 10.0.0.7:80\n";
    let o = rvsadm_with_input(&d, &["-R"], bad_rules);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("-:3:37: weight 99999 out of range"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("-:4:1: no such service: tcp 10.0.0.6:80"),
        "{}",
        o.stderr
    );
    assert_eq!(snapshot(&d), before, "a bad -R changed the state");
}

#[test]
fn daemon_not_running_is_a_clear_error() {
    let o = Command::new(env!("CARGO_BIN_EXE_rvsadm"))
        .args(["--socket", "/nonexistent/rvsd.sock", "-Ln"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot reach rvsd at /nonexistent/rvsd.sock"),
        "{err}"
    );
}
