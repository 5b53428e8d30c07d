//! Every keyword rvs reads in keepalived.conf, by the block it belongs in. Used only to word the
//! warning for a keyword rvs ignores: a known keyword in the wrong block says where it belongs,
//! and a near miss of a keyword of the block suggests it ("did you mean"), so a typo such as
//! `delay_lop` does not pass as "not supported". The parsers' `match` arms are the truth; the
//! test `every_listed_keyword_is_read_in_its_block` keeps this table in step with them.

/// Keywords of every checker block (keepalived's common checker options).
const CHECKER: &[&str] = &[
    "connect_ip",
    "connect_port",
    "bindto",
    "bind_port",
    "connect_timeout",
    "retry",
    "nb_get_retry",
    "delay_before_retry",
    "delay_loop",
    "warmup",
    "alpha",
];

/// (block, its own keywords); checker blocks also take [`CHECKER`].
pub const BLOCKS: &[(&str, &[&str])] = &[
    (
        "the top level",
        &[
            "global_defs",
            "virtual_server_group",
            "local_address_group",
            "virtual_server",
            "vrrp_instance",
            "vrrp_sync_group",
            "vrrp_script",
        ],
    ),
    ("global_defs", &["router_id", "script_user"]),
    (
        "virtual_server",
        &[
            "real_server",
            "lb_algo",
            "lvs_sched",
            "lb_kind",
            "lvs_method",
            "persistence_timeout",
            "persistence_granularity",
            "laddr_group_name",
            "protocol",
            "ip_family",
            "family",
            "ops",
            "sh-port",
            "sh-fallback",
            "mh-port",
            "mh-fallback",
            "flag-1",
            "flag-2",
            "delay_loop",
            "retry",
            "delay_before_retry",
            "warmup",
            "connect_timeout",
            "weight",
            "quorum",
            "hysteresis",
            "alpha",
            "omega",
            "inhibit_on_failure",
            "sorry_server",
            "sorry_server_inhibit",
            "sorry_server_lvs_method",
            "virtualhost",
            "quorum_up",
            "quorum_down",
        ],
    ),
    (
        "real_server",
        &[
            "weight",
            "inhibit_on_failure",
            "notify_up",
            "notify_down",
            "delay_loop",
            "retry",
            "delay_before_retry",
            "warmup",
            "alpha",
            "connect_timeout",
            "virtualhost",
            "uthreshold",
            "lthreshold",
            "lb_kind",
            "lvs_method",
            "TCP_CHECK",
            "HTTP_GET",
            "SSL_GET",
            "UDP_CHECK",
            "DNS_CHECK",
            "MISC_CHECK",
            "PING_CHECK",
            "SMTP_CHECK",
        ],
    ),
    ("TCP_CHECK", &[]),
    ("PING_CHECK", &[]),
    (
        "HTTP_GET",
        &["url", "virtualhost", "enable_sni", "tls_verify"],
    ),
    (
        "SSL_GET",
        &["url", "virtualhost", "enable_sni", "tls_verify"],
    ),
    (
        "UDP_CHECK",
        &[
            "payload",
            "require_reply",
            "min_reply_length",
            "max_reply_length",
        ],
    ),
    ("DNS_CHECK", &["type", "name"]),
    (
        "MISC_CHECK",
        &["misc_path", "misc_timeout", "misc_dynamic", "user"],
    ),
    ("SMTP_CHECK", &["helo_name", "host"]),
    // keepalived 1.x's `host` blocks inside SMTP_CHECK: connection options only
    (
        "host",
        &[
            "connect_ip",
            "connect_port",
            "bindto",
            "bind_port",
            "connect_timeout",
        ],
    ),
    ("url", &["path", "digest", "status_code", "virtualhost"]),
    (
        "vrrp_instance",
        &[
            "state",
            "interface",
            "virtual_router_id",
            "priority",
            "advert_int",
            "nopreempt",
            "preempt_delay",
            "authentication",
            "virtual_ipaddress",
            "unicast_src_ip",
            "unicast_peer",
            "track_interface",
            "track_script",
            "notify_master",
            "notify_backup",
            "notify_fault",
            "notify",
        ],
    ),
    ("authentication", &["auth_type", "auth_pass"]),
    (
        "vrrp_sync_group",
        &[
            "group",
            "notify_master",
            "notify_backup",
            "notify_fault",
            "notify",
        ],
    ),
    (
        "vrrp_script",
        &["script", "interval", "timeout", "weight", "fall", "rise"],
    ),
];

fn is_checker(block: &str) -> bool {
    block.ends_with("_CHECK") || block.ends_with("_GET")
}

/// The keywords rvs reads in `block`.
pub fn of(block: &str) -> impl Iterator<Item = &'static str> {
    let own = BLOCKS
        .iter()
        .filter(move |(b, _)| *b == block)
        .flat_map(|(_, k)| k.iter().copied());
    let common = CHECKER.iter().copied().filter(move |_| is_checker(block));
    own.chain(common)
}

/// The blocks other than `block` where rvs reads `keyword`.
fn elsewhere(keyword: &str, block: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = BLOCKS
        .iter()
        .map(|(b, _)| *b)
        .filter(|b| *b != block && of(b).any(|k| k == keyword))
        .collect();
    // The common checker keywords: one name for all checker blocks (and SMTP_CHECK's `host`).
    if !is_checker(block) && CHECKER.contains(&keyword) {
        out.retain(|b| !is_checker(b) && *b != "host");
        out.push("a checker block");
    }
    out
}

/// The warning for `keyword`, which rvs does not read in `block`.
pub fn ignored(keyword: &str, block: &str) -> String {
    let places = elsewhere(keyword, block);
    if !places.is_empty() {
        return format!(
            "keyword '{keyword}' does not belong in {block} (rvs reads it in {}); ignored",
            places.join(", ")
        );
    }
    // The distance is at least the difference in length: skipping the others first keeps a
    // 64 KiB junk word from costing a distance computation per keyword.
    let nearest = of(block)
        .filter(|k| keyword.len().abs_diff(k.len()) <= 2)
        .map(|k| (strsim::damerau_levenshtein(keyword, k), k))
        .filter(|(d, k)| *d <= 2 && *d < k.len() / 2)
        .min();
    match nearest {
        Some((_, k)) => {
            format!("unknown keyword '{keyword}' in {block} (did you mean '{k}'?); ignored")
        }
        None => format!("keyword '{keyword}' in {block} is not supported by rvs; ignored"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kw` alone on a line in `block`, wrapped in the blocks around it.
    fn placed(block: &str, kw: &str) -> String {
        let rs = |body: String| {
            format!("virtual_server 10.0.0.1 80 {{\nreal_server 10.0.0.2 80 {{\n{body}\n}}\n}}\n")
        };
        match block {
            "the top level" => format!("{kw}\n"),
            "virtual_server" => {
                // a scheduler flag needs its scheduler
                let algo = match kw {
                    k if k.starts_with("sh-") || k.starts_with("flag-") => "lb_algo sh\n",
                    k if k.starts_with("mh-") => "lb_algo mh\n",
                    _ => "",
                };
                format!("virtual_server 10.0.0.1 80 {{\n{algo}{kw}\n}}\n")
            }
            "real_server" => rs(kw.to_string()),
            "url" => rs(format!("HTTP_GET {{\nurl {{\n{kw}\n}}\n}}")),
            "host" => rs(format!("SMTP_CHECK {{\nhost {{\n{kw}\n}}\n}}")),
            "authentication" => format!("vrrp_instance VI {{\nauthentication {{\n{kw}\n}}\n}}\n"),
            "vrrp_instance" | "vrrp_sync_group" | "vrrp_script" => {
                format!("{block} N {{\n{kw}\n}}\n")
            }
            b if is_checker(b) => rs(format!("{b} {{\n{kw}\n}}")),
            b => format!("{b} {{\n{kw}\n}}\n"),
        }
    }

    #[test]
    fn every_listed_keyword_is_read_in_its_block() {
        for (block, _) in BLOCKS {
            for kw in of(block) {
                let text = placed(block, kw);
                let (_, ctx) = crate::keepalived::run(
                    &text,
                    std::path::Path::new("/t/k.conf"),
                    crate::keepalived::Includes::Refuse,
                );
                let quoted = format!("'{kw}'");
                let ignored: Vec<_> = ctx
                    .warnings
                    .iter()
                    .filter(|w| w.to_string().contains(&quoted))
                    .collect();
                assert!(ignored.is_empty(), "{block}: {kw}: {ignored:?}\n{text}");
            }
        }
        // And the test itself sees an ignored keyword.
        let (_, ctx) = crate::keepalived::run(
            &placed("real_server", "delay_lop"),
            std::path::Path::new("/t/k.conf"),
            crate::keepalived::Includes::Refuse,
        );
        assert!(
            ctx.warnings
                .iter()
                .any(|w| w.to_string().contains("'delay_lop'")),
            "{:?}",
            ctx.warnings
        );
    }

    #[test]
    fn a_known_keyword_in_the_wrong_block_says_where_it_belongs() {
        assert_eq!(
            ignored("weight", "url"),
            "keyword 'weight' does not belong in url (rvs reads it in virtual_server, \
             real_server, vrrp_script); ignored"
        );
        assert_eq!(
            ignored("connect_port", "real_server"),
            "keyword 'connect_port' does not belong in real_server (rvs reads it in a \
             checker block); ignored"
        );
    }

    #[test]
    fn a_typo_gets_a_suggestion_and_a_stranger_does_not() {
        assert_eq!(
            ignored("delay_lop", "virtual_server"),
            "unknown keyword 'delay_lop' in virtual_server (did you mean 'delay_loop'?); ignored"
        );
        assert_eq!(
            ignored("conect_timeout", "HTTP_GET"),
            "unknown keyword 'conect_timeout' in HTTP_GET (did you mean 'connect_timeout'?); \
             ignored"
        );
        assert_eq!(
            ignored("lvs_sync_daemon_interface", "global_defs"),
            "keyword 'lvs_sync_daemon_interface' in global_defs is not supported by rvs; ignored"
        );
        // Short keywords need a close match, not any two-letter word.
        assert!(ignored("ab", "vrrp_script").contains("not supported"));
    }
}
