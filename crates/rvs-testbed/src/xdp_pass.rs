//! A pass-through XDP program (`return XDP_PASS`) for the *peer* end of a veth that an XDP
//! balancer sends frames out of. On this kernel a frame that XDP transmits (`XDP_TX`,
//! `XDP_REDIRECT`) out of a veth is only received if the peer veth has an XDP program attached
//! in native mode (see docs/xdp.md); this one does nothing else. Compiled once per process with
//! `clang -target bpf` (which building rvs's own XDP program needs anyway) and attached with
//! iproute2 (`ip link set dev DEV xdpdrv obj FILE sec xdp`); the attachment goes away with the
//! namespace, or with [`detach`].

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::cmd;
use crate::error::{Result, TestbedError};
use crate::netns::Netns;

/// The program: no headers needed (2 = `XDP_PASS`).
const SOURCE: &str = "__attribute__((section(\"xdp\"), used)) int rvs_testbed_pass(void *ctx) { return 2; }\n\
char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n";

/// Path of the compiled object (built on first use, kept for the process's lifetime).
fn object() -> Result<PathBuf> {
    static OBJECT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    OBJECT
        .get_or_init(|| {
            let dir =
                std::env::temp_dir().join(format!("rvs-testbed-xdp-pass-{}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            let src = dir.join("pass.c");
            let obj = dir.join("pass.o");
            std::fs::write(&src, SOURCE).map_err(|e| format!("writing {}: {e}", src.display()))?;
            cmd::run_args(
                "clang",
                &[
                    "-O2",
                    "-target",
                    "bpf",
                    "-c",
                    &src.to_string_lossy(),
                    "-o",
                    &obj.to_string_lossy(),
                ],
            )
            .map_err(|e| e.to_string())?;
            Ok(obj)
        })
        .clone()
        .map_err(|e| TestbedError::Invalid(format!("building the pass-through XDP program: {e}")))
}

/// Attaches the pass-through program to `dev` in `ns` in native (driver) mode.
pub fn attach(ns: &Netns, dev: &str) -> Result<()> {
    let obj = object()?;
    ns.ip(&[
        "link",
        "set",
        "dev",
        dev,
        "xdpdrv",
        "obj",
        &obj.to_string_lossy(),
        "sec",
        "xdp",
    ])?;
    Ok(())
}

/// Detaches whatever native XDP program `dev` in `ns` has.
pub fn detach(ns: &Netns, dev: &str) -> Result<()> {
    ns.ip(&["link", "set", "dev", dev, "xdpdrv", "off"])?;
    Ok(())
}

/// Whether `dev` in `ns` has an XDP program attached (any mode), from `ip link show`.
pub fn has_program(ns: &Netns, dev: &str) -> Result<bool> {
    let out = ns.ip(&["link", "show", "dev", dev])?;
    Ok(out.contains("prog/xdp"))
}

/// Id of the XDP program attached to `dev` in `ns`, if any.
pub fn program_id(ns: &Netns, dev: &str) -> Result<Option<u32>> {
    let out = ns.ip(&["link", "show", "dev", dev])?;
    Ok(out
        .split("prog/xdp id ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|id| id.parse().ok()))
}
