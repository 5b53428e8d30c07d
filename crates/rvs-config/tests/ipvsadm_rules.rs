//! Rules files: parse, apply to a desired state with every error located, save and read back.

use rvs_config::ipvsadm::{apply_rules, save};
use rvs_core::desired::{DesiredState, Timeouts};
use std::path::Path;

const SEED_SAVE: &str = "-A -t 10.0.0.3:80 -s wrr -p 20\n\
-a -t 10.0.0.3:80 -r 10.0.0.7:80 -g -w 1\n\
-a -t 10.0.0.3:80 -r 10.0.0.8:80 -g -w 1\n";

#[test]
fn seed_rules_round_trip() {
    let s = apply_rules(SEED_SAVE, Path::new("ipvs.txt"), DesiredState::default()).unwrap();
    assert_eq!(s.services.len(), 1);
    let svc = s.services.values().next().unwrap();
    assert_eq!(svc.reals.len(), 2);
    assert_eq!(svc.options.persistence.unwrap().timeout, 20);
    assert_eq!(save(&s), SEED_SAVE);
}

#[test]
fn every_expressible_option_round_trips() {
    let text = "\
# a comment, then a blank line

ipvsadm -A -t 10.0.0.3:80 -s sh -b sh-fallback,sh-port -p 60 -M 255.255.255.0
-a -t 10.0.0.3:80 -r 10.0.0.7:8080 -m -w 3 -x 100 -y 50
-a -t 10.0.0.3:80 -r 10.0.0.8:80 -b -w 0
-A -u [2001:db8::3]:53 -s rr -p 30 -M 64 -o
-a -u [2001:db8::3]:53 -r [2001:db8::7]:53 -i -w 2
-A --sctp-service 10.0.0.4:9 -s mh -b mh-port
-A -f 7 -s wlc
-a -f 7 -r 10.0.0.9:0 -g -w 1
-A -f 8 -6 -s lc
--set 30 5 60
";
    let s = apply_rules(text, Path::new("r"), DesiredState::default()).unwrap();
    assert_eq!(
        s.timeouts,
        Timeouts {
            tcp: 30,
            tcp_fin: 5,
            udp: 60,
            ..Default::default()
        }
    );
    let saved = save(&s);
    let again = apply_rules(
        &saved,
        Path::new("r2"),
        DesiredState {
            timeouts: s.timeouts,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(again, s);
    assert_eq!(save(&again), saved);
    assert!(
        saved.contains("-A -t 10.0.0.3:80 -s sh -b sh-fallback,sh-port -p 60 -M 255.255.255.0\n")
    );
    assert!(saved.contains("-a -t 10.0.0.3:80 -r 10.0.0.7:8080 -m -w 3 -x 100 -y 50\n"));
    assert!(saved.contains("-A -u [2001:db8::3]:53 -s rr -p 30 -M 64 -o\n"));
    assert!(saved.contains("-A -f 8 -6 -s lc\n"));
}

#[test]
fn every_error_is_reported_with_line_and_column() {
    let text = "\
-A -t 10.0.0.3:80 -s wrr
-A -t 10.0.0.3:80 -s wrr
-a -t 10.0.0.9:80 -r 10.0.0.7:80
  -a -t 10.0.0.3:80 -r 10.0.0.7:80 -w 99999
-a -t 10.0.0.3:80 -r [2001:db8::7]:80 -g
-L -n
-A -t 10.0.0.3:80 -s nope
";
    let errs = apply_rules(text, Path::new("rules.txt"), DesiredState::default()).unwrap_err();
    let got: Vec<String> = errs.0.iter().map(|e| e.to_string()).collect();
    let want = [
        "rules.txt:2:1: service tcp 10.0.0.3:80 already exists",
        "rules.txt:3:1: no such service: tcp 10.0.0.9:80",
        "rules.txt:4:39: weight 99999 out of range (0..65535)",
        "rules.txt:5:1: real server [2001:db8::7]:80 is not of the service's address family (V4)",
        "rules.txt:6:1: only -A -E -D -a -e -d -C --set may appear in a rules file",
        "rules.txt:7:22: unknown scheduler 'nope'",
    ];
    for (g, w) in got.iter().zip(want.iter()) {
        assert!(g.starts_with(w), "got '{g}', want '{w}'");
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
}

#[test]
fn set_zero_keeps_timeouts_and_clear_empties() {
    let base = DesiredState::default();
    let s = apply_rules("--set 0 7 0\n-A -t 10.0.0.3:80\n-C\n", Path::new("-"), base).unwrap();
    assert_eq!(
        s.timeouts,
        Timeouts {
            tcp: 900,
            tcp_fin: 7,
            udp: 300,
            ..Default::default()
        }
    );
    assert!(s.services.is_empty());
}

#[test]
fn restore_keeps_what_ipvsadm_cannot_express() {
    use rvs_core::model::{AdminState, EnginePin};
    let mut old = apply_rules(SEED_SAVE, Path::new("a"), DesiredState::default()).unwrap();
    let svc = old.services.values_mut().next().unwrap();
    svc.options.engine = EnginePin::Proxy;
    svc.reals.values_mut().next().unwrap().admin = AdminState::Drain;
    let text = format!("{}-A -u 10.0.0.3:53\n", save(&old));
    let mut new = apply_rules(&text, Path::new("b"), DesiredState::default()).unwrap();
    rvs_config::ipvsadm::carry_unexpressed(&old, &mut new);
    let svc = new.services.values().next().unwrap();
    assert_eq!(svc.options.engine, EnginePin::Proxy);
    assert_eq!(svc.reals.values().next().unwrap().admin, AdminState::Drain);
    assert_eq!(
        svc.reals.values().nth(1).unwrap().admin,
        AdminState::Enabled
    );
    assert_eq!(
        new.services.values().nth(1).unwrap().options.engine,
        EnginePin::Auto
    );
}
