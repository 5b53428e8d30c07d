//! Per-packet timing through BPF_PROG_TEST_RUN with the frame restored before every repetition
//! (`bpf/rvs_bench.c`): the wrapper copies the original frame back (optionally giving every run a
//! new flow) and tail-calls the program under test; its own cost is measured on its own
//! (`rvs_bench_restore_only`) so it can be subtracted. Used by the `rvs-xdp-bench` binary.

use crate::abi::{BenchFrame, RVS_BENCH_FRAME_MAX};
use crate::error::{XdpError, map_err, prog_err};
use aya::Ebpf;
use aya::maps::{Array, MapData, ProgramArray};
use aya::programs::{TestRun, TestRunOptions, Xdp};

/// The programs of the benchmark object.
pub const WRAP: &str = "rvs_bench_wrap";
/// The wrapper without the program under test (its own cost).
pub const RESTORE_ONLY: &str = "rvs_bench_restore_only";
/// The ceiling: swap MACs, XDP_TX.
pub const MAC_SWAP: &str = "rvs_mac_swap";

/// One timed run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// XDP action of the last repetition.
    pub action: u32,
    /// Mean nanoseconds per repetition.
    pub ns: f64,
}

/// The loaded benchmark object.
pub struct Bench {
    ebpf: Ebpf,
}

impl Bench {
    /// Load the wrapper, restore-only and MAC-swap programs.
    pub fn load() -> Result<Bench, XdpError> {
        let mut ebpf = Ebpf::load(crate::programs::RVS_BENCH)?;
        for name in [WRAP, RESTORE_ONLY, MAC_SWAP] {
            crate::programs::load_xdp(&mut ebpf, name)?;
        }
        Ok(Bench { ebpf })
    }

    /// The program the wrapper tail-calls.
    pub fn set_target(&mut self, target: &Xdp) -> Result<(), XdpError> {
        let fd = target.fd().map_err(prog_err("target"))?;
        let mut arr: ProgramArray<&mut MapData> = ProgramArray::try_from(
            self.ebpf
                .map_mut("rvs_bench_progs")
                .ok_or(XdpError::Missing("rvs_bench_progs"))?,
        )
        .map_err(map_err("rvs_bench_progs"))?;
        arr.set(0, fd, 0).map_err(map_err("rvs_bench_progs"))
    }

    /// The frame the wrapper restores; `vary_offset` (0 = none) names 4 bytes replaced by a
    /// per-run counter.
    pub fn set_frame(&mut self, frame: &[u8], vary_offset: u32) -> Result<(), XdpError> {
        if frame.len() > RVS_BENCH_FRAME_MAX as usize {
            return Err(XdpError::Invalid(format!(
                "frame of {} bytes is above {RVS_BENCH_FRAME_MAX}",
                frame.len()
            )));
        }
        let mut f = BenchFrame {
            len: frame.len() as u32,
            vary_offset,
            counter: 0,
            data: [0; RVS_BENCH_FRAME_MAX as usize],
        };
        f.data[..frame.len()].copy_from_slice(frame);
        let mut arr: Array<&mut MapData, BenchFrame> = Array::try_from(
            self.ebpf
                .map_mut("rvs_bench_frames")
                .ok_or(XdpError::Missing("rvs_bench_frames"))?,
        )
        .map_err(map_err("rvs_bench_frames"))?;
        arr.set(0, f, 0).map_err(map_err("rvs_bench_frames"))
    }

    /// Run `program` (one of [`WRAP`], [`RESTORE_ONLY`], [`MAC_SWAP`]) `repeat` times on `frame`.
    pub fn run(
        &self,
        program: &'static str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<Timing, XdpError> {
        let p: &Xdp = crate::programs::xdp(&self.ebpf, program)?;
        time(p, program, frame, repeat)
    }
}

/// Run any XDP program `repeat` times on `frame` (no restoring).
pub fn time(p: &Xdp, name: &'static str, frame: &[u8], repeat: u32) -> Result<Timing, XdpError> {
    let mut out = vec![0u8; frame.len() + 512];
    let r = p
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat,
            ..Default::default()
        })
        .map_err(prog_err(name))?;
    Ok(Timing {
        action: r.return_value,
        ns: r.duration.as_nanos() as f64,
    })
}
