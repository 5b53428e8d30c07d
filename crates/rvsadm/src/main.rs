//! `rvsadm`: ipvsadm's command set and output, driving rvsd over its control API.
//!
//! `rvsadm [--socket PATH] <ipvsadm arguments>`; with no arguments it lists (`-L`), as ipvsadm.
//! `rvsadm realserver ...` prepares a real server (see docs/rvsadm.md).
//! `rvsadm --check-config FILE` checks a keepalived.conf like `keepalived -t` (docs/keepalived.md).

mod check_config;
mod client;
mod help;
mod realserver;
mod run;
mod socket;

use std::path::PathBuf;
use std::process::ExitCode;

/// Take `--socket PATH` / `--socket=PATH` out of the arguments.
fn take_socket_flag(args: &mut Vec<String>) -> Result<Option<PathBuf>, String> {
    let Some(i) = args
        .iter()
        .position(|a| a == "--socket" || a.starts_with("--socket="))
    else {
        return Ok(None);
    };
    let a = args.remove(i);
    if let Some(v) = a.strip_prefix("--socket=") {
        return Ok(Some(PathBuf::from(v)));
    }
    if i < args.len() {
        return Ok(Some(PathBuf::from(args.remove(i))));
    }
    Err("<command line>:1:".to_string() + &(i + 1).to_string() + ": option --socket needs a path")
}

/// `rvsadm realserver ...`.
fn realserver_main(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", realserver::USAGE);
        return ExitCode::SUCCESS;
    }
    let cmd = match realserver::parse(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rvsadm: realserver: {e}");
            eprint!("{}", realserver::USAGE);
            return ExitCode::from(2);
        }
    };
    match realserver::run(&cmd) {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rvsadm: realserver: {e}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let socket = match take_socket_flag(&mut args) {
        Ok(s) => s,
        Err(m) => {
            eprintln!("rvsadm: {m}");
            return ExitCode::from(2);
        }
    };
    if let Some(file) = check_config::requested(&args) {
        return match file {
            Ok(f) => check_config::run(std::path::Path::new(f)),
            Err(m) => {
                eprintln!("rvsadm: {m}\n{}", check_config::USAGE);
                ExitCode::from(2)
            }
        };
    }
    if args.first().map(String::as_str) == Some("realserver") {
        return realserver_main(&args[1..]);
    }
    if args.is_empty() {
        args.push("-L".to_string());
    }
    let cmd = match rvs_config::ipvsadm::parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rvsadm: {e}");
            eprintln!("Try 'rvsadm -h' for more information.");
            return ExitCode::from(2);
        }
    };
    let path = socket::socket_path(socket);
    let result = client::Client::new(&path)
        .map_err(run::RunError::from)
        .and_then(|c| {
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            run::run(
                cmd,
                &c,
                &mut std::io::stdin(),
                &mut stdout.lock(),
                &mut stderr.lock(),
            )
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // the reader went away (`rvsadm -Ln | head -1`): as quiet as ipvsadm killed by SIGPIPE
        Err(run::RunError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("rvsadm: {line}");
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::take_socket_flag;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn socket_flag_is_taken_anywhere() {
        let mut a = args("-Ln --socket /x.sock --stats");
        assert_eq!(take_socket_flag(&mut a), Ok(Some("/x.sock".into())));
        assert_eq!(a, args("-Ln --stats"));
        let mut a = args("--socket=/y.sock -C");
        assert_eq!(take_socket_flag(&mut a), Ok(Some("/y.sock".into())));
        assert_eq!(a, args("-C"));
        let mut a = args("-C");
        assert_eq!(take_socket_flag(&mut a), Ok(None));
        let mut a = args("-C --socket");
        assert!(
            take_socket_flag(&mut a)
                .unwrap_err()
                .contains("--socket needs a path")
        );
    }
}
