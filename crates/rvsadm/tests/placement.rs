//! rvsadm warns when a change leaves a service unserved. rvsd keeps a service no running
//! engine can serve (listed with `# not served`), so a change such as adding a NAT real while
//! only the proxy engine runs is applied (exit 0, as ipvsadm) but takes the whole service off
//! the proxy: the command says so on stderr, every time it leaves the service unserved. Runs
//! without root (rvsd on loopback, proxy engine only, no xdp engine).

mod common;

use common::{Daemon, free_port, rvsadm, rvsadm_with_input, start};

/// Run `line`, require exit 0, return its stderr.
fn stderr_of(d: &Daemon, line: &str) -> String {
    let args: Vec<&str> = line.split_whitespace().collect();
    let o = rvsadm(d, &args);
    assert_eq!(o.code, 0, "rvsadm {line}: {}", o.stderr);
    o.stderr
}

const NAT_NEEDS_XDP: &str = "forwarding method NAT needs the xdp engine, which is not running";

#[test]
fn a_change_that_leaves_a_service_unserved_is_warned() {
    let d = start(false);
    let vip = format!("127.0.0.1:{}", free_port());
    let backend = format!("127.0.0.1:{}", free_port());
    let other = format!("127.0.0.1:{}", free_port());

    // Served by the proxy engine: nothing to say.
    assert_eq!(stderr_of(&d, &format!("-A -t {vip} -s rr")), "");
    assert_eq!(stderr_of(&d, &format!("-a -t {vip} -r {backend} -b")), "");

    // A NAT real: applied, but the service is no longer served.
    let err = stderr_of(&d, &format!("-a -t {vip} -r {other} -m"));
    assert_eq!(err.lines().count(), 1, "one warning line expected: {err}");
    assert!(
        err.starts_with(&format!(
            "rvsadm: warning: tcp {vip} is no longer served: {NAT_NEEDS_XDP}"
        )),
        "{err}"
    );
    let listing = rvsadm(&d, &["-Ln", "-t", &vip]).stdout;
    assert!(listing.contains("  # not served: "), "{listing}");

    // Still unserved after another change of it: said again (not "no longer").
    let err = stderr_of(&d, &format!("-e -t {vip} -r {backend} -b -w 3"));
    assert!(
        err.starts_with(&format!(
            "rvsadm: warning: tcp {vip} is not served: {NAT_NEEDS_XDP}"
        )),
        "{err}"
    );

    // Removing the NAT real puts it back on the proxy: silent again.
    assert_eq!(stderr_of(&d, &format!("-d -t {vip} -r {other}")), "");
    let listing = rvsadm(&d, &["-Ln", "-t", &vip]).stdout;
    assert!(!listing.contains("# not served"), "{listing}");

    // -R: one warning per service the new state leaves unserved, none for the others.
    let vip2 = format!("127.0.0.1:{}", free_port());
    let rules = format!(
        "-A -t {vip} -s rr\n-a -t {vip} -r {backend} -b\n\
         -A -t {vip2} -s rr\n-a -t {vip2} -r {other} -g\n"
    );
    let o = rvsadm_with_input(&d, &["-R"], &rules);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stderr,
        format!(
            "rvsadm: warning: tcp {vip2} is not served: forwarding method DR needs the xdp \
             engine, which is not running (needs root and --xdp-interface)\n"
        )
    );
}
