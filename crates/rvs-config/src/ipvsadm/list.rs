//! ipvsadm 1.31's listings, column for column: `-L -n` and its `--stats`, `--rate`,
//! `--thresholds`, `--persistent-conn` layouts, `-c` connection entries and `--timeout`.
//! They print from the control API's views ([`ServiceView`], [`ConnectionInfo`], [`Timeouts`]).
//!
//! rvs addition: a service that no engine serves gets one extra line after its reals,
//! `  # not served: <reason>` — a comment line that ipvsadm-parsing scripts (which match lines
//! starting with a protocol name or `  ->`) skip. Health (keepalived.conf checkers): a down real
//! without `inhibit_on_failure` is not listed, as under keepalived; comment lines say which are
//! down and why (see `health_lines`).

use super::addr::{dotted_mask, format_sched_flags};
use super::command::{ListLayout, ListOptions};
use rvs_api::{ConnectionInfo, RealView, ServiceView, Timeouts};
use rvs_core::model::{AddressFamily, ServiceKey};
use std::fmt::Write;

/// ipvsadm's first line (the kernel's IPVS version and connection-table size).
pub const VERSION_LINE: &str = "IP Virtual Server version 1.2.1 (size=4096)";

/// ipvsadm's `print_largenum`: 9 columns, abbreviated with K/M/G/T past 8 digits unless exact.
fn largenum(out: &mut String, n: u64, exact: bool) {
    let _ = if exact {
        let len = n.to_string().len();
        let width = if len <= 8 { 9 } else { len + 1 };
        write!(out, "{n:>width$}")
    } else if n < 100_000_000 {
        write!(out, "{n:>9}")
    } else if n < 1_000_000_000 {
        write!(out, "{:>8}K", n / 1_000)
    } else if n < 100_000_000_000 {
        write!(out, "{:>8}M", n / 1_000_000)
    } else if n < 100_000_000_000_000 {
        write!(out, "{:>8}G", n / 1_000_000_000)
    } else {
        write!(out, "{:>8}T", n / 1_000_000_000_000)
    };
}

/// The service column: `TCP  10.0.0.3:80`, `FWM  7`, `FWM  7 IPv6`.
pub fn service_name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { protocol, addr } => format!("{}  {}", protocol.ipvs_name(), addr),
        ServiceKey::FwMark {
            mark,
            family: AddressFamily::V4,
        } => format!("FWM  {mark}"),
        ServiceKey::FwMark {
            mark,
            family: AddressFamily::V6,
        } => format!("FWM  {mark} IPv6"),
    }
}

fn title(layout: ListLayout) -> &'static str {
    match layout {
        ListLayout::Stats => {
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\n"
        }
        ListLayout::Rate => {
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n  -> RemoteAddress:Port\n"
        }
        ListLayout::Thresholds => {
            "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn\n  -> RemoteAddress:Port\n"
        }
        ListLayout::PersistentConn => {
            "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn\n  -> RemoteAddress:Port\n"
        }
        ListLayout::Plain => {
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        }
    }
}

fn service_line(out: &mut String, s: &ServiceView, layout: ListLayout, exact: bool) {
    let name = service_name(&s.key);
    match layout {
        ListLayout::Stats | ListLayout::Rate => {
            let _ = write!(out, "{name:<33}");
            let c = &s.counters;
            let r = &s.rates;
            let nums = if layout == ListLayout::Stats {
                [c.conns, c.in_pkts, c.out_pkts, c.in_bytes, c.out_bytes]
            } else {
                [r.cps, r.in_pps, r.out_pps, r.in_bps, r.out_bps]
            };
            for n in nums {
                largenum(out, n, exact);
            }
        }
        _ => {
            let o = &s.options;
            let _ = write!(out, "{name} {}", o.scheduler);
            let flags = format_sched_flags(&o.flags);
            if !flags.is_empty() {
                let _ = write!(out, " ({flags})");
            }
            if let Some(p) = o.persistence {
                let _ = write!(out, " persistent {}", p.timeout);
                let family = s.key.family();
                if p.prefix_len != family.max_prefix() {
                    let _ = match family {
                        AddressFamily::V4 => write!(out, " mask {}", dotted_mask(p.prefix_len)),
                        AddressFamily::V6 => write!(out, " mask {}", p.prefix_len),
                    };
                }
            }
            if o.one_packet {
                out.push_str(" ops");
            }
        }
    }
    out.push('\n');
}

fn real_line(out: &mut String, r: &RealView, layout: ListLayout, exact: bool) {
    let name = r.real.addr.to_string();
    let st = &r.stats;
    let _ = match layout {
        ListLayout::Stats => {
            let _ = write!(out, "  -> {name:<28}");
            let c = &st.counters;
            for n in [c.conns, c.in_pkts, c.out_pkts, c.in_bytes, c.out_bytes] {
                largenum(out, n, exact);
            }
            writeln!(out)
        }
        ListLayout::Rate => {
            let q = &r.rates;
            let _ = write!(
                out,
                "  -> {name:<28} {:>8} {:>8} {:>8}",
                q.cps, q.in_pps, q.out_pps
            );
            largenum(out, q.in_bps, exact);
            largenum(out, q.out_bps, exact);
            writeln!(out)
        }
        ListLayout::Thresholds => writeln!(
            out,
            "  -> {name:<28} {:<10} {:<10} {:<10} {:<10}",
            r.real.upper_threshold, r.real.lower_threshold, st.active_conns, st.inactive_conns
        ),
        ListLayout::PersistentConn => writeln!(
            out,
            "  -> {name:<28} {:<9} {:<11} {:<10} {:<10}",
            r.effective_weight, st.persistent_conns, st.active_conns, st.inactive_conns
        ),
        ListLayout::Plain => writeln!(
            out,
            "  -> {name:<28} {:<7} {:<6} {:<10} {:<10}",
            r.real.method.ipvs_name(),
            r.effective_weight,
            st.active_conns,
            st.inactive_conns
        ),
    };
}

/// `-L` (with `-n` implied) in the layout `opts` selects; `services` should already be limited
/// to the one asked for with `-L -t ...`. `--sort` sorts services by key and reals by address.
pub fn list_services(services: &[ServiceView], opts: &ListOptions) -> String {
    let layout = opts.layout();
    let mut out = String::new();
    out.push_str(VERSION_LINE);
    out.push('\n');
    out.push_str(title(layout));
    let mut order: Vec<&ServiceView> = services.iter().collect();
    if opts.sort {
        order.sort_by_key(|s| s.key);
    }
    for s in order {
        service_line(&mut out, s, layout, opts.exact);
        let mut reals: Vec<&RealView> = s.reals.iter().collect();
        if opts.sort {
            reals.sort_by_key(|r| r.real.addr);
        }
        for r in reals.iter().filter(|r| super::health_lines::listed(r)) {
            real_line(&mut out, r, layout, opts.exact);
        }
        super::health_lines::comments(&mut out, &reals);
        if let Some(reason) = &s.unsupported {
            let _ = writeln!(out, "  # not served: {reason}");
        }
        if let Some(note) = &s.note {
            let _ = writeln!(out, "  # {note}");
        }
    }
    out
}

/// `-L -c`: connection entries (`expire` as mm:ss).
pub fn list_connections(conns: &[ConnectionInfo]) -> String {
    let mut out = String::from("IPVS connection entries\n");
    out.push_str("pro expire state       source             virtual            destination\n");
    for c in conns {
        let secs = c.expires_ms / 1000;
        let _ = writeln!(
            out,
            "{:<3} {:02}:{:02}  {:<11} {:<18} {:<18} {}",
            c.protocol.ipvs_name(),
            secs / 60,
            secs % 60,
            c.state,
            c.client.to_string(),
            c.virtual_addr.to_string(),
            c.real
        );
    }
    out
}

/// `-L --timeout`.
pub fn list_timeouts(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcp_fin, t.udp
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largenum_matches_ipvsadm() {
        let f = |n, exact| {
            let mut s = String::new();
            largenum(&mut s, n, exact);
            s
        };
        assert_eq!(f(0, false), "        0");
        assert_eq!(f(99_999_999, false), " 99999999");
        assert_eq!(f(123_456_789, false), "  123456K");
        assert_eq!(f(12_345_678_901, false), "   12345M");
        assert_eq!(f(123_456_789_012, false), "     123G");
        assert_eq!(f(123_456_789_012_345, false), "     123T");
        assert_eq!(f(123_456_789, true), " 123456789");
        assert_eq!(f(5, true), "        5");
    }
}
