//! rvs's XDP data plane: the C packet program in `bpf/` (compiled by build.rs and embedded), its
//! one ABI (`bpf/rvs_abi.h`, mirrored in [`abi`]), the aya loader ([`balancer`]) and the
//! [`Engine`](rvs_core::engine::Engine) implementation.
//!
//! Minimum kernel: 5.18 (bpf_xdp_store_bytes in the benchmark wrapper; the balancer itself needs
//! 4.18+ for bpf_xdp_adjust_tail). Needs root (CAP_BPF + CAP_NET_ADMIN).

pub mod abi;
pub mod balancer;
pub mod bench;
pub mod bench_setup;
pub mod bpffs;
pub mod conntrack;
pub mod decap;
pub mod engine;
pub mod error;
pub mod flow_hash;
pub mod forward;
mod keep;
mod map_batch;
mod narrow;
pub mod nat;
mod nat_engine;
pub mod programs;
pub mod realserver;
mod service_writes;
mod state;
mod sweep;
mod upkeep;
mod whole_map;

pub use balancer::{AttachMode, Balancer};
pub use engine::{XdpConfig, XdpEngine};
pub use error::XdpError;
pub use sweep::{PortsSeen, Round, SLICE_BUDGET, Sweeper};
