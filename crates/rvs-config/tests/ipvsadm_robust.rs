//! Robustness of the ipvsadm grammar: thousands of random command lines built from every flag,
//! good and bad values and junk never panic; every state they build saves to rules that read
//! back to the same state. (A deterministic generator, so a failure reproduces.)

use rvs_config::ipvsadm::{Command, apply_command, apply_rules, parse_args, parse_line, save};
use rvs_core::desired::DesiredState;
use std::path::Path;

const WORDS: &[&str] = &[
    "-A",
    "-E",
    "-D",
    "-C",
    "-R",
    "-S",
    "-a",
    "-e",
    "-d",
    "-L",
    "-l",
    "-Z",
    "--set",
    "-h",
    "-v",
    "-t",
    "-u",
    "--sctp-service",
    "-f",
    "-6",
    "-s",
    "-p",
    "-M",
    "-o",
    "-r",
    "-g",
    "-i",
    "-m",
    "-b",
    "--sched-flags",
    "-w",
    "-x",
    "-y",
    "-n",
    "-c",
    "--stats",
    "--rate",
    "--timeout",
    "--exact",
    "--thresholds",
    "--persistent-conn",
    "--sort",
    "--json",
    "-Ln",
    "-Lnc",
    "-p20",
    "-w1",
    "--weight=3",
    "--tcp-service=10.0.0.3:80",
    "10.0.0.3:80",
    "10.0.0.3",
    "10.0.0.7:80",
    "10.0.0.8",
    "[2001:db8::3]:443",
    "[2001:db8::7]",
    "2001:db8::9",
    "0.0.0.0:80",
    "7",
    "0",
    "20",
    "300",
    "65535",
    "65536",
    "4294967296",
    "-1",
    "rr",
    "wrr",
    "sh",
    "mh",
    "nope",
    "sh-fallback,sh-port",
    "mh-port",
    "flag-1",
    "255.255.255.0",
    "24",
    "64",
    "255.0.255.0",
    "",
    "-",
    "--",
    "---",
    "-=",
    "--=",
    "é",
    "-é",
    "--é",
    "10.0.0.3:",
    ":80",
    "[",
    "]",
    "[::1",
    "--set=1",
    "-Aa",
    "-tt",
    "#",
    "ipvsadm",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A plausible `-A`, `-a` or `-e` line: a known service and a random choice of its options.
fn structured(rng: &mut Rng) -> Vec<String> {
    const SERVICES: [&str; 6] = [
        "-t 10.0.0.3:80",
        "-u 10.0.0.3:53",
        "-f 7",
        "-f 8 -6",
        "-t [2001:db8::3]:443",
        "--sctp-service 10.0.0.4:9",
    ];
    const SVC_OPTS: [&str; 10] = [
        "-s rr",
        "-s sh",
        "-s mh",
        "-p",
        "-p 60",
        "-M 255.255.255.0",
        "-M 64",
        "-o",
        "-b sh-port",
        "--sched-flags mh-fallback",
    ];
    const REALS: [&str; 4] = ["10.0.0.7", "10.0.0.8:8080", "[2001:db8::7]:443", "10.0.0.9"];
    const REAL_OPTS: [&str; 8] = ["-g", "-i", "-m", "-b", "-w 0", "-w 5", "-x 100", "-y 50"];
    let mut line = String::new();
    let svc = SERVICES[rng.below(SERVICES.len())];
    let opts: &[&str] = match rng.below(3) {
        0 => {
            line += &format!("-A {svc}");
            &SVC_OPTS
        }
        k => {
            let cmd = if k == 1 { "-a" } else { "-e" };
            line += &format!("{cmd} {svc} -r {}", REALS[rng.below(REALS.len())]);
            &REAL_OPTS
        }
    };
    for _ in 0..rng.below(4) {
        line += " ";
        line += opts[rng.below(opts.len())];
    }
    line.split_whitespace().map(String::from).collect()
}

#[test]
fn random_command_lines_never_panic_and_states_round_trip() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut state = DesiredState::default();
    let mut accepted = 0;
    for _ in 0..30_000 {
        let args: Vec<String> = if rng.below(2) == 0 {
            structured(&mut rng)
        } else {
            let len = rng.below(9);
            (0..len)
                .map(|_| WORDS[rng.below(WORDS.len())].to_string())
                .collect()
        };
        let parsed = parse_args(&args);
        let _ = parse_line(&args.join(" "), Path::new("r"), 1);
        match parsed {
            Ok(
                cmd @ (Command::AddService { .. }
                | Command::AddReal { .. }
                | Command::EditReal { .. }),
            ) => {
                if apply_command(&mut state, &cmd) == Ok(true) {
                    accepted += 1;
                }
            }
            Ok(_) => {}
            Err(e) => {
                assert!(!e.message.is_empty());
                assert!(e.location.column <= args.len().max(1), "{args:?}: {e}");
            }
        }
    }
    assert!(
        accepted > 500,
        "the generator should build some state (built {accepted})"
    );
    let text = save(&state);
    let back = apply_rules(&text, Path::new("saved"), DesiredState::default())
        .unwrap_or_else(|e| panic!("saved rules do not read back:\n{e}\n{text}"));
    assert_eq!(back, state, "{text}");
    assert_eq!(save(&back), text);
}
