//! Errors of the XDP data plane.

/// Something the XDP loader or engine could not do.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// The embedded BPF object could not be loaded (verifier, permissions, kernel support).
    #[error("loading BPF object: {0}")]
    Load(#[from] aya::EbpfError),
    /// A program could not be loaded, attached or run.
    #[error("BPF program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    /// A map operation failed.
    #[error("BPF map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    /// A map or program the object should contain is missing (build mismatch).
    #[error("BPF object has no {0}")]
    Missing(&'static str),
    /// A table is full.
    #[error("{what} full ({limit} entries)")]
    Full { what: &'static str, limit: u64 },
    /// Attaching failed in native and in generic mode.
    #[error("attaching XDP to {interface}: native: {native}; generic: {generic}")]
    Attach {
        interface: String,
        native: String,
        generic: String,
    },
    /// Bad input (e.g. a frame too large for the benchmark wrapper).
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn map_err(name: &'static str) -> impl FnOnce(aya::maps::MapError) -> XdpError {
    move |source| XdpError::Map { name, source }
}

pub(crate) fn prog_err(name: &'static str) -> impl FnOnce(aya::programs::ProgramError) -> XdpError {
    move |source| XdpError::Program { name, source }
}
