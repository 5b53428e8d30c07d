//! ipvsadm's option syntax: short options that bundle (`-Ln`, `-Lnc`), values attached or
//! separate (`-w1`, `-w 1`, `--weight=1`), `-p`'s optional timeout, `--set`'s three values, and
//! `-b`'s optional scheduler-flag list. Turns words into located [`OptUse`]s; what they mean is
//! decided in `build`.

/// A word of input and the column it starts at (argv: the argument's 1-based position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub column: usize,
}

/// Every option ipvsadm (and rvsadm) knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Opt {
    AddService,
    EditService,
    DeleteService,
    Clear,
    Restore,
    Save,
    AddServer,
    EditServer,
    DeleteServer,
    List,
    Zero,
    Set,
    Help,
    Version,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Ipv6,
    Scheduler,
    Persistent,
    Netmask,
    Ops,
    Real,
    Gatewaying,
    Ipip,
    Masquerading,
    /// `-b`: FULLNAT for a real, scheduler flags (with a value) for a service.
    FullNatOrFlags,
    SchedFlags,
    Weight,
    UpperThreshold,
    LowerThreshold,
    Numeric,
    Connection,
    Stats,
    Rate,
    Timeout,
    Exact,
    Thresholds,
    PersistentConn,
    Sort,
    /// `--nosort`: the daemon's order (ipvsadm's opposite of `--sort`).
    NoSort,
    /// `--tun-type TYPE` on a tunnelled real: only `ipip` (rvs's one encapsulation).
    TunType,
    Json,
}

/// How many values an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arity {
    None,
    One,
    /// `-p [timeout]`: the next word if it does not start with `-`.
    Optional,
    /// `-b [flags]`: the next word if it is a list of scheduler flags.
    OptionalFlags,
    /// `--set tcp tcpfin udp`.
    Three,
}

/// (short letter, long name, option, arity).
const TABLE: &[(Option<char>, &str, Opt, Arity)] = &[
    (Some('A'), "add-service", Opt::AddService, Arity::None),
    (Some('E'), "edit-service", Opt::EditService, Arity::None),
    (Some('D'), "delete-service", Opt::DeleteService, Arity::None),
    (Some('C'), "clear", Opt::Clear, Arity::None),
    (Some('R'), "restore", Opt::Restore, Arity::None),
    (Some('S'), "save", Opt::Save, Arity::None),
    (Some('a'), "add-server", Opt::AddServer, Arity::None),
    (Some('e'), "edit-server", Opt::EditServer, Arity::None),
    (Some('d'), "delete-server", Opt::DeleteServer, Arity::None),
    (Some('L'), "list", Opt::List, Arity::None),
    (Some('l'), "list", Opt::List, Arity::None),
    (Some('Z'), "zero", Opt::Zero, Arity::None),
    (None, "set", Opt::Set, Arity::Three),
    (Some('h'), "help", Opt::Help, Arity::None),
    (Some('v'), "version", Opt::Version, Arity::None),
    (Some('t'), "tcp-service", Opt::Tcp, Arity::One),
    (Some('u'), "udp-service", Opt::Udp, Arity::One),
    (None, "sctp-service", Opt::Sctp, Arity::One),
    (Some('f'), "fwmark-service", Opt::Fwmark, Arity::One),
    (Some('6'), "ipv6", Opt::Ipv6, Arity::None),
    (Some('s'), "scheduler", Opt::Scheduler, Arity::One),
    (Some('p'), "persistent", Opt::Persistent, Arity::Optional),
    (Some('M'), "netmask", Opt::Netmask, Arity::One),
    (Some('o'), "ops", Opt::Ops, Arity::None),
    (Some('r'), "real-server", Opt::Real, Arity::One),
    (Some('g'), "gatewaying", Opt::Gatewaying, Arity::None),
    (Some('i'), "ipip", Opt::Ipip, Arity::None),
    (Some('m'), "masquerading", Opt::Masquerading, Arity::None),
    (
        Some('b'),
        "fullnat",
        Opt::FullNatOrFlags,
        Arity::OptionalFlags,
    ),
    (None, "sched-flags", Opt::SchedFlags, Arity::One),
    (Some('w'), "weight", Opt::Weight, Arity::One),
    (Some('x'), "u-threshold", Opt::UpperThreshold, Arity::One),
    (Some('y'), "l-threshold", Opt::LowerThreshold, Arity::One),
    (Some('n'), "numeric", Opt::Numeric, Arity::None),
    (Some('c'), "connection", Opt::Connection, Arity::None),
    (None, "stats", Opt::Stats, Arity::None),
    (None, "rate", Opt::Rate, Arity::None),
    (None, "timeout", Opt::Timeout, Arity::None),
    (Some('X'), "exact", Opt::Exact, Arity::None),
    (None, "thresholds", Opt::Thresholds, Arity::None),
    (None, "persistent-conn", Opt::PersistentConn, Arity::None),
    (None, "sort", Opt::Sort, Arity::None),
    (None, "nosort", Opt::NoSort, Arity::None),
    (None, "tun-type", Opt::TunType, Arity::One),
    (None, "json", Opt::Json, Arity::None),
];

const SYNC: &str = "rvs has no IPVS connection-sync daemon: connection synchronisation between \
                    directors is not implemented";
const TUN: &str = "rvs tunnels (-i) with IPIP only (IPv6-in-IPv6 for IPv6 reals): GUE and GRE \
                   encapsulation and their options are not supported";

/// ipvsadm options rvs knows but does not implement, with why: an error that says so instead of
/// "unknown option" (long name, reason).
const UNSUPPORTED: &[(&str, &str)] = &[
    ("start-daemon", SYNC),
    ("stop-daemon", SYNC),
    ("daemon", SYNC),
    ("syncid", SYNC),
    ("sync-maxlen", SYNC),
    ("mcast-interface", SYNC),
    ("mcast-group", SYNC),
    ("mcast-port", SYNC),
    ("mcast-ttl", SYNC),
    ("tun-port", TUN),
    ("tun-nocsum", TUN),
    ("tun-csum", TUN),
    ("tun-remcsum", TUN),
    (
        "pe",
        "persistence engines (--pe, e.g. sip) are not supported: persistence (-p, -M) is by \
         client address",
    ),
];

/// The error for an option that is not in [`TABLE`].
fn unknown_long(name: &str, column: usize) -> LexError {
    match UNSUPPORTED.iter().find(|(n, _)| *n == name) {
        Some((_, why)) => (column, format!("option '--{name}' is not supported: {why}")),
        None => (column, format!("unknown option '--{name}'")),
    }
}

/// Scheduler flag names `-b`/`--sched-flags` accept.
pub const SCHED_FLAG_NAMES: [&str; 7] = [
    "sh-fallback",
    "sh-port",
    "mh-fallback",
    "mh-port",
    "flag-1",
    "flag-2",
    "flag-3",
];

/// The spelling used in messages: `-w` or `--stats`.
pub fn spelling(opt: Opt) -> String {
    let (short, long, ..) = TABLE
        .iter()
        .find(|e| e.2 == opt)
        .expect("every option is in TABLE");
    match short {
        Some(c) => format!("-{c}"),
        None => format!("--{long}"),
    }
}

/// One option as given, with its values and the column where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptUse {
    pub opt: Opt,
    pub values: Vec<Word>,
    pub column: usize,
}

/// A lexing error: column and message.
pub type LexError = (usize, String);

fn is_flag_list(s: &str) -> bool {
    !s.is_empty() && s.split(',').all(|f| SCHED_FLAG_NAMES.contains(&f))
}

/// Split words into option uses.
pub fn lex(words: &[Word]) -> Result<Vec<OptUse>, LexError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        i += 1;
        if let Some(long) = w.text.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let (_, _, opt, arity) = TABLE
                .iter()
                .find(|e| e.1 == name)
                .ok_or_else(|| unknown_long(name, w.column))?;
            let inline = inline.map(|v| Word {
                text: v.to_string(),
                column: w.column,
            });
            let values = take_values(*opt, *arity, inline, words, &mut i, w.column)?;
            out.push(OptUse {
                opt: *opt,
                values,
                column: w.column,
            });
        } else if w.text.len() > 1 && w.text.starts_with('-') {
            lex_short_cluster(w, words, &mut i, &mut out)?;
        } else {
            return Err((
                w.column,
                format!("unexpected argument '{}' (expected an option)", w.text),
            ));
        }
    }
    Ok(out)
}

fn lex_short_cluster(
    w: &Word,
    words: &[Word],
    i: &mut usize,
    out: &mut Vec<OptUse>,
) -> Result<(), LexError> {
    let body = &w.text[1..];
    for (pos, c) in body.char_indices() {
        let (_, _, opt, arity) = TABLE
            .iter()
            .find(|e| e.0 == Some(c))
            .ok_or_else(|| (w.column, format!("unknown option '-{c}'")))?;
        let rest = &body[pos + c.len_utf8()..];
        if *arity == Arity::None {
            out.push(OptUse {
                opt: *opt,
                values: vec![],
                column: w.column,
            });
            continue;
        }
        // An option with a value ends the cluster: the rest of the word is its value.
        let inline = (!rest.is_empty()).then(|| Word {
            text: rest.to_string(),
            column: w.column,
        });
        let values = take_values(*opt, *arity, inline, words, i, w.column)?;
        out.push(OptUse {
            opt: *opt,
            values,
            column: w.column,
        });
        return Ok(());
    }
    Ok(())
}

fn take_values(
    opt: Opt,
    arity: Arity,
    inline: Option<Word>,
    words: &[Word],
    i: &mut usize,
    column: usize,
) -> Result<Vec<Word>, LexError> {
    let next_plain = |i: usize| {
        words
            .get(i)
            .filter(|n| !n.text.starts_with('-') || n.text == "-")
    };
    match arity {
        Arity::None => match inline {
            Some(_) => Err((column, format!("option {} takes no value", spelling(opt)))),
            None => Ok(vec![]),
        },
        Arity::One => {
            if let Some(v) = inline {
                return Ok(vec![v]);
            }
            let v = words.get(*i).ok_or_else(|| {
                (
                    column,
                    format!(
                        "option {} needs a value ({})",
                        spelling(opt),
                        value_hint(opt)
                    ),
                )
            })?;
            *i += 1;
            Ok(vec![v.clone()])
        }
        Arity::Optional | Arity::OptionalFlags => {
            if let Some(v) = inline {
                return Ok(vec![v]);
            }
            match next_plain(*i) {
                Some(v) if arity == Arity::Optional || is_flag_list(&v.text) => {
                    *i += 1;
                    Ok(vec![v.clone()])
                }
                _ => Ok(vec![]),
            }
        }
        Arity::Three => {
            let mut vals: Vec<Word> = inline.into_iter().collect();
            while vals.len() < 3 {
                let v = next_plain(*i).ok_or_else(|| {
                    (
                        column,
                        "option --set needs three values: tcp tcpfin udp (seconds)".to_string(),
                    )
                })?;
                vals.push(v.clone());
                *i += 1;
            }
            Ok(vals)
        }
    }
}

/// What value an option expects (for messages).
pub fn value_hint(opt: Opt) -> &'static str {
    match opt {
        Opt::Tcp | Opt::Udp | Opt::Sctp => "a virtual address ADDR:PORT",
        Opt::Fwmark => "a firewall mark, a positive integer",
        Opt::Scheduler => "a scheduler: rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos",
        Opt::Persistent => "a timeout in seconds",
        Opt::Netmask => "a netmask like 255.255.255.0 or a prefix length",
        Opt::Real => "a real server address ADDR[:PORT]",
        Opt::SchedFlags | Opt::FullNatOrFlags => {
            "scheduler flags: sh-fallback,sh-port,mh-fallback,mh-port"
        }
        Opt::Weight => "a weight 0..65535",
        Opt::UpperThreshold | Opt::LowerThreshold => "a connection count",
        _ => "a value",
    }
}
