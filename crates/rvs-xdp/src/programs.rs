//! The BPF objects compiled by build.rs from `bpf/*.c`, embedded in the binary, and how any of
//! their XDP programs is attached.

use crate::balancer::AttachMode;
use crate::error::{XdpError, prog_err};
use aya::Ebpf;
use aya::programs::xdp::XdpLinkId;
use aya::programs::{Xdp, XdpMode};

/// The balancer (`SEC("xdp") rvs_lb`).
pub static RVS_LB: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs_lb.o"));
/// The real server's TUN decapsulation program (`rvs_decap`).
pub static RVS_DECAP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs_decap.o"));
/// Benchmark helpers (`rvs_bench_wrap`, `rvs_bench_restore_only`, `rvs_mac_swap`).
pub static RVS_BENCH: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs_bench.o"));
/// The trivial forwarder (`rvs_forward`): the end-to-end DR benchmark's ceiling.
pub static RVS_FORWARD: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rvs_forward.o"));

/// Attach `prog` to `interface`: native (driver) mode first, generic (SKB) mode when native is
/// refused, or generic only when `generic_only`. The mode it got and the link; both refusals
/// in the error.
pub(crate) fn attach(
    prog: &mut Xdp,
    interface: &str,
    generic_only: bool,
) -> Result<(AttachMode, XdpLinkId), XdpError> {
    let native = if generic_only {
        "not tried".to_string()
    } else {
        match prog.attach(interface, XdpMode::Driver) {
            Ok(id) => return Ok((AttachMode::Native, id)),
            Err(e) => e.to_string(),
        }
    };
    match prog.attach(interface, XdpMode::Skb) {
        Ok(id) => Ok((AttachMode::Generic, id)),
        Err(e) => Err(XdpError::Attach {
            interface: interface.into(),
            native,
            generic: e.to_string(),
        }),
    }
}

/// XDP program `name` of `ebpf`.
pub(crate) fn xdp<'a>(ebpf: &'a Ebpf, name: &'static str) -> Result<&'a Xdp, XdpError> {
    ebpf.program(name)
        .ok_or(XdpError::Missing(name))?
        .try_into()
        .map_err(prog_err(name))
}

/// XDP program `name` of `ebpf`, mutable (to load or attach it).
pub(crate) fn xdp_mut<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, XdpError> {
    ebpf.program_mut(name)
        .ok_or(XdpError::Missing(name))?
        .try_into()
        .map_err(prog_err(name))
}

/// Verify and load XDP program `name` of `ebpf` into the kernel.
pub(crate) fn load_xdp(ebpf: &mut Ebpf, name: &'static str) -> Result<(), XdpError> {
    xdp_mut(ebpf, name)?.load().map_err(prog_err(name))
}

/// Run `frame` once through XDP program `name` of `ebpf` with `BPF_PROG_TEST_RUN`: its action
/// and the frame it left (room for `grow` bytes more than the input, for encapsulation).
pub(crate) fn test_run(
    ebpf: &Ebpf,
    name: &'static str,
    frame: &[u8],
    grow: usize,
) -> Result<(u32, Vec<u8>), XdpError> {
    use aya::programs::{TestRun, TestRunOptions};
    let mut out = vec![0u8; frame.len() + grow];
    let r = xdp(ebpf, name)?
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..Default::default()
        })
        .map_err(prog_err(name))?;
    out.truncate(r.data_size_out as usize);
    Ok((r.return_value, out))
}
