//! ipvsadm's command-line grammar, rules files (`ipvsadm-save` / `-S` / `-R`) and listings.
//!
//! * [`parse_args`] — rvsadm's argv → [`Command`] (errors at `<command line>:1:ARGPOS`);
//! * [`parse_line`], [`parse_rules`], [`apply_rules`], [`load_rules_file`] — rules files →
//!   commands → [`rvs_core::desired::DesiredState`] (every error, with `path:line:column`);
//! * [`list_services`], [`list_connections`], [`list_timeouts`] — ipvsadm's listings from the
//!   control API's views, column for column;
//! * [`save`] — a desired state → `-S` text that [`apply_rules`] reads back to the same state;
//!
//! The grammar follows ipvsadm 1.31 (short options bundle, `-p [timeout]`, `--set tcp tcpfin
//! udp`, long forms) with one difference: `-b` alone on a real server selects FULLNAT; `-b FLAGS`
//! (or `--sched-flags FLAGS`) on a service sets scheduler flags as in ipvsadm. See docs/rvsadm.md.

mod addr;
mod build;
mod command;
mod health_lines;
mod lex;
mod list;
mod rules;
mod save;
mod spec;

pub use addr::{dotted_mask, format_sched_flags, parse_addr};
pub use command::{Command, ListLayout, ListOptions, TimeoutUpdate};
pub use list::{VERSION_LINE, list_connections, list_services, list_timeouts, service_name};
pub use rules::{
    apply_command, apply_rules, carry_unexpressed, load_rules_file, parse_args, parse_line,
    parse_rules,
};
pub use save::{add_real_rule, add_service_rule, save, service_rule};
