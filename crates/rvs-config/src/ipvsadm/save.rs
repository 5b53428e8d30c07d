//! The `ipvsadm-save -n` / `rvsadm -S` format: one `-A` line per service followed by one `-a`
//! line per real, in the desired state's order. [`super::apply_rules`] reads it back to the
//! same state (for everything ipvsadm can express).

use super::addr::{dotted_mask, format_sched_flags};
use rvs_core::desired::{DesiredState, ServiceConfig};
use rvs_core::model::{AddressFamily, Protocol, RealServer, ServiceKey};
use std::fmt::Write;

/// The service part of a rule: `-t 10.0.0.3:80`, `-f 1`, `-f 1 -6`.
pub fn service_rule(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { protocol, addr } => {
            let flag = match protocol {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
                Protocol::Sctp => "--sctp-service",
            };
            format!("{flag} {addr}")
        }
        ServiceKey::FwMark {
            mark,
            family: AddressFamily::V4,
        } => format!("-f {mark}"),
        ServiceKey::FwMark {
            mark,
            family: AddressFamily::V6,
        } => format!("-f {mark} -6"),
    }
}

/// The `-A` line of a service.
pub fn add_service_rule(svc: &ServiceConfig) -> String {
    let o = &svc.options;
    let mut s = format!("-A {} -s {}", service_rule(&svc.key), o.scheduler);
    let flags = format_sched_flags(&o.flags);
    if !flags.is_empty() {
        let _ = write!(s, " -b {flags}");
    }
    if let Some(p) = o.persistence {
        let _ = write!(s, " -p {}", p.timeout);
        let family = svc.key.family();
        if p.prefix_len != family.max_prefix() {
            match family {
                AddressFamily::V4 => {
                    let _ = write!(s, " -M {}", dotted_mask(p.prefix_len));
                }
                AddressFamily::V6 => {
                    let _ = write!(s, " -M {}", p.prefix_len);
                }
            }
        }
    }
    if o.one_packet {
        s.push_str(" -o");
    }
    s
}

/// The `-a` line of a real.
pub fn add_real_rule(key: &ServiceKey, r: &RealServer) -> String {
    let mut s = format!(
        "-a {} -r {} {} -w {}",
        service_rule(key),
        r.addr,
        r.method.flag(),
        r.weight
    );
    if r.upper_threshold != 0 {
        let _ = write!(s, " -x {}", r.upper_threshold);
    }
    if r.lower_threshold != 0 {
        let _ = write!(s, " -y {}", r.lower_threshold);
    }
    s
}

/// The whole state as rules (`-S`). Addresses are always numeric (`-n` is implied).
/// Timeouts are not part of ipvsadm's save format and are not printed.
pub fn save(state: &DesiredState) -> String {
    let mut out = String::new();
    for svc in state.services.values() {
        out.push_str(&add_service_rule(svc));
        out.push('\n');
        for r in svc.reals.values() {
            out.push_str(&add_real_rule(&svc.key, r));
            out.push('\n');
        }
    }
    out
}
