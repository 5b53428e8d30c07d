//! The BPF objects compiled by build.rs from `bpf/*.c`, embedded in the binary.

/// The balancer (`SEC("xdp") rvs_lb`).
pub static RVS_LB: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs_lb.o"));
/// The real server's TUN decapsulation program (`rvs_decap`).
pub static RVS_DECAP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs_decap.o"));
/// Benchmark helpers (`rvs_bench_wrap`, `rvs_bench_restore_only`, `rvs_mac_swap`).
pub static RVS_BENCH: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs_bench.o"));
/// The trivial forwarder (`rvs_forward`): the end-to-end DR benchmark's ceiling.
pub static RVS_FORWARD: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs_forward.o"));
