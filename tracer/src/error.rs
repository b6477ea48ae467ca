//! Start-up errors and the process exit codes (documented in the README).

use thiserror::Error;

/// Exit codes of `mntrace`.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Unexpected runtime error (I/O on the output, the ring buffer, ...).
    pub const FAILURE: i32 = 1;
    /// Bad command line (clap's own code).
    pub const USAGE: i32 = 2;
    /// `watch --fail-on-incident`: an incident was detected.
    pub const INCIDENT: i32 = 3;
    /// Not root and missing CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN).
    pub const NOT_PERMITTED: i32 = 4;
    /// The kernel exposes no BTF (/sys/kernel/btf/vmlinux).
    pub const NO_BTF: i32 = 5;
    /// tracefs is not mounted and could not be mounted.
    pub const NO_TRACEFS: i32 = 6;
    /// The kernel refused to load or attach a program or map.
    pub const REFUSED: i32 = 7;
}

#[derive(Debug, Error)]
pub enum StartError {
    #[error(
        "not permitted: mntrace needs root, or CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN); \
         run it with sudo or grant those capabilities"
    )]
    NotPermitted,
    #[error(
        "this kernel exposes no BTF at {0}: mntrace reads kernel structures with CO-RE and \
         needs a kernel built with CONFIG_DEBUG_INFO_BTF=y"
    )]
    NoBtf(String),
    #[error(
        "tracefs is not available ({0}); mount it with `mount -t tracefs nodev /sys/kernel/tracing`"
    )]
    NoTracefs(String),
    #[error("the kernel refused {what}: {detail}")]
    Refused { what: String, detail: String },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl StartError {
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::NotPermitted => exit::NOT_PERMITTED,
            StartError::NoBtf(_) => exit::NO_BTF,
            StartError::NoTracefs(_) => exit::NO_TRACEFS,
            StartError::Refused { .. } => exit::REFUSED,
            StartError::Other(_) => exit::FAILURE,
        }
    }
}
