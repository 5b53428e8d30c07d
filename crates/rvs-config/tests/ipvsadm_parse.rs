//! ipvsadm grammar: every flag, long forms, bundling, and every bad-input case.

use rvs_config::ipvsadm::{Command, ListOptions, TimeoutUpdate, parse_args};
use rvs_core::model::{
    AddressFamily, ForwardMethod, Persistence, Protocol, RealServer, SchedulerKind, ServiceKey,
    ServiceOptions,
};

fn p(line: &str) -> Command {
    let args: Vec<&str> = line.split_whitespace().collect();
    parse_args(&args).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// The error message and column (argument position) of a bad command line.
fn bad(line: &str) -> (usize, String) {
    let args: Vec<&str> = line.split_whitespace().collect();
    let e = parse_args(&args).expect_err(line);
    assert_eq!(e.location.path.to_str(), Some("<command line>"));
    (e.location.column, e.message)
}

/// Every (line, column, message part) is refused there with that message.
fn assert_all_bad(cases: &[(&str, usize, &str)]) {
    for (line, col, msg) in cases {
        let (c, m) = bad(line);
        assert!(m.contains(msg), "{line}: got '{m}', expected '{msg}'");
        assert_eq!(c, *col, "{line}: column of '{m}'");
    }
}

fn tcp(s: &str) -> ServiceKey {
    ServiceKey::tcp(s.parse().unwrap())
}

#[test]
fn seed_commands() {
    assert_eq!(p("-C"), Command::Clear);
    assert_eq!(
        p("--set 30 5 60"),
        Command::SetTimeouts(TimeoutUpdate {
            tcp: 30,
            tcp_fin: 5,
            udp: 60
        })
    );
    let mut options = ServiceOptions {
        scheduler: SchedulerKind::Wrr,
        ..Default::default()
    };
    options.persistence = Some(Persistence {
        timeout: 20,
        prefix_len: 32,
    });
    assert_eq!(
        p("-A -t 10.0.0.3:80 -s wrr -p 20"),
        Command::AddService {
            key: tcp("10.0.0.3:80"),
            options
        }
    );
    let real = RealServer::new("10.0.0.7:80".parse().unwrap(), ForwardMethod::Dr, 1);
    assert_eq!(
        p("-a -t 10.0.0.3:80 -r 10.0.0.7:80 -g -w 1"),
        Command::AddReal {
            service: tcp("10.0.0.3:80"),
            real
        }
    );
    let Command::List(l) = p("-ln --stats") else {
        panic!()
    };
    assert!(l.numeric && l.stats && !l.rate);
    assert_eq!(p("-S -n"), Command::Save { numeric: true });
    assert_eq!(p("-R"), Command::Restore);
}

#[test]
fn long_forms_match_short_ones() {
    let pairs = [
        (
            "-A -t 10.0.0.3:80 -s rr",
            "--add-service --tcp-service 10.0.0.3:80 --scheduler rr",
        ),
        (
            "-E -u 10.0.0.3:53 -s sh -b sh-port",
            "--edit-service --udp-service=10.0.0.3:53 --scheduler=sh --sched-flags sh-port",
        ),
        ("-D -f 7", "--delete-service --fwmark-service 7"),
        (
            "-a -t 10.0.0.3:80 -r 10.0.0.7 -m -w 3 -x 10 -y 5",
            "--add-server --tcp-service 10.0.0.3:80 --real-server 10.0.0.7 --masquerading --weight 3 --u-threshold 10 --l-threshold 5",
        ),
        (
            "-e -t 10.0.0.3:80 -r 10.0.0.7:80 -i",
            "--edit-server -t 10.0.0.3:80 --real-server 10.0.0.7:80 --ipip",
        ),
        (
            "-a -t 10.0.0.3:80 -r 10.0.0.7:80 -b",
            "-a -t 10.0.0.3:80 -r 10.0.0.7:80 --fullnat",
        ),
        (
            "-d -t 10.0.0.3:80 -r 10.0.0.7:80",
            "--delete-server -t 10.0.0.3:80 -r 10.0.0.7:80",
        ),
        ("-C", "--clear"),
        ("-R", "--restore"),
        ("-S -n", "--save --numeric"),
        ("-Z", "--zero"),
        ("-L -n -c", "--list --numeric --connection"),
        ("-Lnc", "-l -n -c"),
        (
            "-A -t 10.0.0.3:80 -o -p",
            "-A --tcp-service 10.0.0.3:80 --ops --persistent",
        ),
        ("-h", "--help"),
        ("-v", "--version"),
    ];
    for (short, long) in pairs {
        assert_eq!(p(short), p(long), "{short} vs {long}");
    }
}

#[test]
fn every_service_option() {
    let Command::AddService { key, options } =
        p("-A --sctp-service [2001:db8::1]:9 -s mh -b mh-fallback,mh-port -p 60 -M 64 -o")
    else {
        panic!()
    };
    assert_eq!(
        key,
        ServiceKey::Addr {
            protocol: Protocol::Sctp,
            addr: "[2001:db8::1]:9".parse().unwrap()
        }
    );
    assert_eq!(options.scheduler, SchedulerKind::Mh);
    assert!(options.flags.mh_fallback && options.flags.mh_port);
    assert_eq!(
        options.persistence,
        Some(Persistence {
            timeout: 60,
            prefix_len: 64
        })
    );
    assert!(options.one_packet);
    // -p without a value: 300 s; -M dotted; default scheduler wlc
    let Command::AddService { options, .. } = p("-A -t 10.0.0.3:80 -p -M 255.255.255.0") else {
        panic!()
    };
    assert_eq!(
        options.persistence,
        Some(Persistence {
            timeout: 300,
            prefix_len: 24
        })
    );
    assert_eq!(options.scheduler, SchedulerKind::Wlc);
    // attached values and bundles
    let Command::AddService { options, .. } = p("-A -t10.0.0.3:80 -swrr -p20") else {
        panic!()
    };
    assert_eq!(options.persistence.unwrap().timeout, 20);
    assert_eq!(options.scheduler, SchedulerKind::Wrr);
    // persistent service may have port 0
    assert!(matches!(p("-A -t 10.0.0.3 -p"), Command::AddService { .. }));
    // fwmark v6
    let Command::AddService { key, .. } = p("-A -f 5 -6 -s rr") else {
        panic!()
    };
    assert_eq!(
        key,
        ServiceKey::FwMark {
            mark: 5,
            family: AddressFamily::V6
        }
    );
}

#[test]
fn every_real_option() {
    for (flag, m) in [
        ("-g", ForwardMethod::Dr),
        ("-i", ForwardMethod::Tun),
        ("-m", ForwardMethod::Nat),
        ("-b", ForwardMethod::FullNat),
        ("", ForwardMethod::Dr),
    ] {
        let Command::AddReal { real, .. } =
            p(&format!("-a -t 10.0.0.3:80 -r 10.0.0.7:8080 {flag} -w 5"))
        else {
            panic!()
        };
        assert_eq!(real.method, m);
        assert_eq!(real.weight, 5);
        // DR and TUN reals take the service's port (dr_and_tun_reals_take_the_services_port)
        let port = if matches!(m, ForwardMethod::Dr | ForwardMethod::Tun) {
            80
        } else {
            8080
        };
        assert_eq!(real.addr, format!("10.0.0.7:{port}").parse().unwrap());
    }
    // real without port takes the service's port; weight defaults to 1
    let Command::AddReal { real, .. } = p("-a -t 10.0.0.3:80 -r 10.0.0.7") else {
        panic!()
    };
    assert_eq!(real.addr, "10.0.0.7:80".parse().unwrap());
    assert_eq!(real.weight, 1);
    let Command::AddReal { real, .. } = p("-a -t 10.0.0.3:80 -r 10.0.0.7 -x 100 -y 50") else {
        panic!()
    };
    assert_eq!((real.upper_threshold, real.lower_threshold), (100, 50));
    assert_eq!(
        p("-d -u [2001:db8::3]:53 -r [2001:db8::7]"),
        Command::DeleteReal {
            service: ServiceKey::udp("[2001:db8::3]:53".parse().unwrap()),
            addr: "[2001:db8::7]:53".parse().unwrap()
        }
    );
}

#[test]
fn every_list_option() {
    let Command::List(l) = p("-L -n --rate --exact --sort --json -t 10.0.0.3:80") else {
        panic!()
    };
    assert_eq!(
        l,
        ListOptions {
            service: Some(tcp("10.0.0.3:80")),
            numeric: true,
            rate: true,
            exact: true,
            sort: true,
            json: true,
            ..Default::default()
        }
    );
    for (flag, check) in [
        (
            "--thresholds",
            (|l: &ListOptions| l.thresholds) as fn(&ListOptions) -> bool,
        ),
        ("--persistent-conn", |l| l.persistent_conn),
        ("--timeout", |l| l.timeout),
        ("-c", |l| l.connections),
        ("--stats", |l| l.stats),
    ] {
        let Command::List(l) = p(&format!("-Ln {flag}")) else {
            panic!()
        };
        assert!(check(&l), "{flag}");
    }
    assert_eq!(
        p("-Z -t 10.0.0.3:80"),
        Command::Zero {
            service: Some(tcp("10.0.0.3:80"))
        }
    );
    assert_eq!(
        p("--set 0 0 10"),
        Command::SetTimeouts(TimeoutUpdate {
            tcp: 0,
            tcp_fin: 0,
            udp: 10
        })
    );
}

#[test]
fn bad_input_is_named_and_located() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "-A -t 10.0.0.3:80 --frobnicate",
            4,
            "unknown option '--frobnicate'",
        ),
        ("-Lnq", 1, "unknown option '-q'"),
        ("-A -t", 2, "needs a value"),
        ("-a -t 10.0.0.3:80 -r", 4, "needs a value"),
        ("-A -t 10.0.0.300:80", 3, "bad address '10.0.0.300:80'"),
        ("-a -t 10.0.0.3:80 -r web01:80", 5, "bad address 'web01:80'"),
        (
            "-a -t 10.0.0.3:80 -r 10.0.0.7:80 -w 70000",
            7,
            "weight 70000 out of range (0..65535)",
        ),
        (
            "-a -t 10.0.0.3:80 -r 10.0.0.7:80 -w -1",
            7,
            "bad weight '-1'",
        ),
        ("-a -t 10.0.0.3:80 -r 10.0.0.7:80 -w x", 7, "bad weight 'x'"),
        ("-A -t 10.0.0.3:80 -s foo", 5, "unknown scheduler 'foo'"),
        (
            "-A -t 10.0.0.3:80 -w 1",
            4,
            "option -w is not allowed with -A (add-service)",
        ),
        (
            "-A -t 10.0.0.3:80 -a",
            4,
            "only one command at a time: -A and -a",
        ),
        ("-t 10.0.0.3:80", 1, "no command given"),
        ("-A", 1, "-A needs a service"),
        ("-a -t 10.0.0.3:80", 1, "-a needs a real server"),
        ("-A -t 10.0.0.3:80 -s rr -s wrr", 6, "option -s given twice"),
        (
            "-A -t 10.0.0.3:0",
            1,
            "zero port specified for non-persistent service",
        ),
        (
            "-A -t 10.0.0.3:80 -M 255.255.255.0",
            4,
            "-M (netmask) needs -p",
        ),
        ("-A -t 10.0.0.3:80 -p 20 -M 255.0.255.0", 7, "bad netmask"),
        ("-A -t 10.0.0.3:80 -p x", 5, "bad persistence timeout 'x'"),
        (
            "-A -t 10.0.0.3:80 -b",
            4,
            "-b on a service needs scheduler flags",
        ),
        (
            "-a -t 10.0.0.3:80 -r 10.0.0.7:80 -g -m",
            7,
            "only one forwarding method",
        ),
        (
            "-a -t 10.0.0.3:80 -r 10.0.0.7:80 -b sh-port",
            7,
            "-b on a real server means FULLNAT",
        ),
        (
            "-a -t 10.0.0.3:80 -r 10.0.0.7:80 -x 5 -y 10",
            9,
            "lower threshold 10 is above upper threshold 5",
        ),
        ("-A -t 10.0.0.3:80 -u 10.0.0.3:53", 4, "only one of -t, -u"),
        (
            "-A -t 10.0.0.3:80 -6",
            4,
            "-6 applies only to a firewall-mark service",
        ),
        ("-A -f 0", 3, "firewall mark 0 out of range"),
        ("--set 30 5", 1, "--set needs three values"),
        ("--set 30 x 60", 3, "bad tcpfin timeout 'x'"),
        (
            "-Ln --stats --rate",
            3,
            "--stats and --rate cannot be combined",
        ),
        ("-C extra", 2, "unexpected argument 'extra'"),
        ("-C --clear=1", 2, "takes no value"),
    ];
    assert_all_bad(cases);
}

/// ipvsadm options rvs does not implement are named as such, with why, not "unknown"; the
/// harmless ones (`-X`, `--nosort`, `--tun-type ipip`) are accepted.
#[test]
fn ipvsadm_options_rvs_lacks_say_why() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "--start-daemon master --mcast-interface eth0",
            1,
            "option '--start-daemon' is not supported: rvs has no IPVS connection-sync daemon",
        ),
        ("--stop-daemon master", 1, "connection-sync daemon"),
        ("-L --daemon", 2, "option '--daemon' is not supported"),
        (
            "-A -t 10.0.0.3:5060 -p --pe sip",
            5,
            "option '--pe' is not supported: persistence engines",
        ),
        (
            "-a -t 10.0.0.3:80 -r 10.0.0.7 -i --tun-type gue",
            8,
            "tunnel type 'gue' is not supported: rvs tunnels with IPIP only",
        ),
        (
            "-a -t 10.0.0.3:80 -r 10.0.0.7 -i --tun-type gre",
            8,
            "tunnel type 'gre' is not supported",
        ),
        (
            "-a -t 10.0.0.3:80 -r 10.0.0.7 -g --tun-type ipip",
            7,
            "--tun-type applies to tunnelling (-i)",
        ),
        (
            "-a -t 10.0.0.3:80 -r 10.0.0.7 -i --tun-port 6080",
            7,
            "option '--tun-port' is not supported: rvs tunnels (-i) with IPIP only",
        ),
        (
            "-a -t 10.0.0.3:80 -r 10.0.0.7 -i --tun-nocsum",
            7,
            "GUE and GRE",
        ),
        ("-Ln --sort --nosort", 3, "--sort and --nosort contradict"),
        (
            "-A -t 10.0.0.3:80 --nosort",
            4,
            "option --nosort is not allowed with -A",
        ),
    ];
    assert_all_bad(cases);
    assert_eq!(
        p("-a -t 10.0.0.3:80 -r 10.0.0.7 -i --tun-type ipip -w 2"),
        p("-a -t 10.0.0.3:80 -r 10.0.0.7 -i -w 2")
    );
    assert_eq!(
        p("-a -t 10.0.0.3:80 -r 10.0.0.7 -i --tun-type=IPIP"),
        p("-a -t 10.0.0.3:80 -r 10.0.0.7 -i")
    );
    let Command::List(l) = p("-LnX") else {
        panic!()
    };
    assert!(l.exact);
    assert_eq!(p("-Ln --nosort"), p("-Ln"));
}

/// As ipvsadm: a DR or TUN real of an address service takes the service's port (neither method
/// rewrites ports); NAT and FULLNAT keep theirs (port mapping), and so does any real of a
/// firewall-mark service.
#[test]
fn dr_and_tun_reals_take_the_services_port() {
    let real_of = |line: &str| match p(line) {
        Command::AddReal { real, .. } | Command::EditReal { real, .. } => real.addr.to_string(),
        other => panic!("{line}: {other:?}"),
    };
    assert_eq!(
        real_of("-a -t 10.0.0.3:80 -r 10.0.0.7:8080 -g"),
        "10.0.0.7:80"
    );
    assert_eq!(
        real_of("-e -t 10.0.0.3:80 -r 10.0.0.7:8080 -i -w 2"),
        "10.0.0.7:80"
    );
    assert_eq!(real_of("-a -t 10.0.0.3:80 -r 10.0.0.7:8080"), "10.0.0.7:80");
    assert_eq!(
        real_of("-a -u [2001:db8::3]:53 -r [2001:db8::7]:5353 -g"),
        "[2001:db8::7]:53"
    );
    assert_eq!(
        real_of("-a -t 10.0.0.3:80 -r 10.0.0.7:8080 -m"),
        "10.0.0.7:8080"
    );
    assert_eq!(
        real_of("-a -t 10.0.0.3:80 -r 10.0.0.7:8080 -b"),
        "10.0.0.7:8080"
    );
    assert_eq!(real_of("-a -f 1 -r 10.0.0.7:8080 -g"), "10.0.0.7:8080");
}
