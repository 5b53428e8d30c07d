//! Listings of live traffic: a FULLNAT service on loopback (served by the proxy engine, no root
//! needed) carries a real connection; `-Lnc`, `-Ln` and `-Ln --stats` show it in ipvsadm's
//! columns, read back here the way scripts read ipvsadm output (split on whitespace).

mod common;

use common::{free_port, ok, start};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A backend on 127.0.0.1 that echoes what it reads, one thread per connection.
fn echo_backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// The whitespace-separated fields of the listing line that starts with `prefix`.
fn fields(listing: &str, prefix: &str) -> Vec<String> {
    let line = listing.lines().find(|l| l.starts_with(prefix));
    let line = line.unwrap_or_else(|| panic!("no line starting with '{prefix}' in:\n{listing}"));
    line.split_whitespace().map(String::from).collect()
}

fn eventually(what: &str, mut f: impl FnMut() -> Option<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn live_connection_in_lnc_ln_and_stats() {
    let d = start(false);
    let backend = echo_backend();
    let vport = free_port();
    let vip = format!("127.0.0.1:{vport}");
    let rip = format!("127.0.0.1:{backend}");
    let real_prefix = format!("  -> {rip} ");
    ok(&d, &format!("-A -t {vip} -s rr"));
    ok(&d, &format!("-a -t {vip} -r {rip} -b -w 1"));
    let listing = ok(&d, "-Ln");
    assert!(
        !listing.contains("# not served"),
        "FULLNAT must be served by the proxy engine:\n{listing}"
    );

    let mut client = TcpStream::connect(&vip).expect("connect to the virtual service");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    let caddr = client.local_addr().unwrap().to_string();

    // -Lnc: pro expire state source virtual destination
    let conns = eventually("the connection in -Lnc", || {
        let out = ok(&d, "-Lnc");
        out.lines().any(|l| l.contains(&caddr)).then_some(out)
    });
    let row = fields(&conns, "TCP ");
    assert_eq!(row.len(), 6, "{conns}");
    assert_eq!(
        (
            row[2].as_str(),
            row[3].as_str(),
            row[4].as_str(),
            row[5].as_str()
        ),
        ("ESTABLISHED", caddr.as_str(), vip.as_str(), rip.as_str())
    );
    assert!(
        row[1].len() == 5 && row[1].as_bytes()[2] == b':',
        "expire mm:ss: {}",
        row[1]
    );

    // -Ln: "->" addr Forward Weight ActiveConn InActConn
    let listing = ok(&d, "-Ln");
    assert_eq!(
        fields(&listing, &real_prefix)[2..],
        ["FullNat", "1", "1", "0"].map(String::from)[..],
        "{listing}"
    );

    // after close: --stats counts one connection and the bytes both ways
    drop(client);
    let stats = eventually("the closed connection in --stats", || {
        let out = ok(&d, "-Ln --stats");
        (fields(&out, &real_prefix).get(2).map(String::as_str) == Some("1")).then_some(out)
    });
    let svc = fields(&stats, "TCP ");
    let real = fields(&stats, &real_prefix);
    assert_eq!(
        svc[2..],
        real[2..],
        "service and its only real count the same:\n{stats}"
    );
    let in_bytes: u64 = real[5].parse().unwrap();
    let out_bytes: u64 = real[6].parse().unwrap();
    assert!(in_bytes >= 5 && out_bytes >= 5, "{stats}");
    ok(&d, "-Z");
    let zeroed = ok(&d, "-Ln --stats");
    assert_eq!(
        fields(&zeroed, &real_prefix)[2..],
        ["0", "0", "0", "0", "0"].map(String::from)[..],
        "{zeroed}"
    );
}
