//! The typed result of parsing one ipvsadm command line: what to do, on which service, with
//! which options. Produced by [`super::parse_args`] (rvsadm's argv) and [`super::parse_line`]
//! (one line of an `ipvsadm-save` rules file).

use rvs_core::desired::Timeouts;
use rvs_core::model::{RealServer, ServiceKey, ServiceOptions};
use std::net::SocketAddr;

/// One ipvsadm command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `-A`: add a virtual service.
    AddService {
        key: ServiceKey,
        options: ServiceOptions,
    },
    /// `-E`: replace a virtual service's options (ipvsadm semantics: options not given fall back
    /// to their defaults, e.g. scheduler `wlc`, no persistence).
    EditService {
        key: ServiceKey,
        options: ServiceOptions,
    },
    /// `-D`: delete a virtual service.
    DeleteService { key: ServiceKey },
    /// `-a`: add a real server to a service.
    AddReal {
        service: ServiceKey,
        real: RealServer,
    },
    /// `-e`: edit a real server (weight defaults to 1 and method to `-g`, as in ipvsadm).
    EditReal {
        service: ServiceKey,
        real: RealServer,
    },
    /// `-d`: delete a real server.
    DeleteReal {
        service: ServiceKey,
        addr: SocketAddr,
    },
    /// `-C`: clear every service.
    Clear,
    /// `-R`: restore rules read from standard input.
    Restore,
    /// `-S`: print the rules in the format `-R` reads.
    Save { numeric: bool },
    /// `-L` / `-l`: list.
    List(ListOptions),
    /// `-Z`: zero counters of one service or all.
    Zero { service: Option<ServiceKey> },
    /// `--set tcp tcpfin udp`.
    SetTimeouts(TimeoutUpdate),
    /// `-h`.
    Help,
    /// `-v`.
    Version,
}

/// `--set tcp tcpfin udp`: a value of 0 leaves that timeout unchanged (as in ipvsadm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeoutUpdate {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

impl TimeoutUpdate {
    /// The timeouts after this update is applied to `current`.
    pub fn apply_to(self, current: Timeouts) -> Timeouts {
        let pick = |new: u32, old: u32| if new == 0 { old } else { new };
        Timeouts {
            tcp: pick(self.tcp, current.tcp),
            tcp_fin: pick(self.tcp_fin, current.tcp_fin),
            udp: pick(self.udp, current.udp),
            tcp_states: current.tcp_states,
        }
    }
}

/// What `-L` prints and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListOptions {
    /// `-L -t ADDR` lists only this service.
    pub service: Option<ServiceKey>,
    /// `-n`: numeric output (rvsadm never resolves names, so this is always the case).
    pub numeric: bool,
    /// `-c`: connection entries instead of services.
    pub connections: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--thresholds`.
    pub thresholds: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--timeout`: print the timeouts only.
    pub timeout: bool,
    /// `--exact`: exact numbers instead of K/M/G/T abbreviations.
    pub exact: bool,
    /// `--sort`: sort services and reals by address.
    pub sort: bool,
    /// `--json`: machine-readable output.
    pub json: bool,
}

impl ListOptions {
    /// Which layout a service listing uses.
    pub fn layout(&self) -> ListLayout {
        if self.stats {
            ListLayout::Stats
        } else if self.rate {
            ListLayout::Rate
        } else if self.thresholds {
            ListLayout::Thresholds
        } else if self.persistent_conn {
            ListLayout::PersistentConn
        } else {
            ListLayout::Plain
        }
    }
}

/// The service listing layouts of ipvsadm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListLayout {
    /// `-L -n`: scheduler, flags, forward method, weight, connections.
    Plain,
    /// `--stats`: counters.
    Stats,
    /// `--rate`: per-second rates.
    Rate,
    /// `--thresholds`: upper/lower thresholds.
    Thresholds,
    /// `--persistent-conn`: with the persistence template count.
    PersistentConn,
}
