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
    /// A required capability or permission is missing, for root and
    /// non-root alike: CAP_BPF, CAP_PERFMON, or read access to tracefs
    /// (CAP_DAC_READ_SEARCH when it is root's only). The message names them.
    pub const NOT_PERMITTED: i32 = 4;
    /// The kernel exposes no BTF (/sys/kernel/btf/vmlinux).
    pub const NO_BTF: i32 = 5;
    /// No syscall tracepoints: tracefs is not mounted and could not be
    /// mounted, or the kernel has none (CONFIG_FTRACE_SYSCALLS).
    pub const NO_TRACEFS: i32 = 6;
    /// The kernel refused to load or attach a program or map.
    pub const REFUSED: i32 = 7;
}

#[derive(Debug, Error)]
pub enum StartError {
    /// What is missing and how to grant it (see [`crate::preflight`]).
    #[error("not permitted: {0}")]
    NotPermitted(String),
    #[error(
        "this kernel exposes no BTF at {0}: mntrace reads kernel structures with CO-RE and \
         needs a kernel built with CONFIG_DEBUG_INFO_BTF=y"
    )]
    NoBtf(String),
    /// Why there are no syscall tracepoints, and what to do.
    #[error("{0}")]
    NoTracefs(String),
    #[error("the kernel refused {what}: {detail}")]
    Refused { what: String, detail: String },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl StartError {
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::NotPermitted(_) => exit::NOT_PERMITTED,
            StartError::NoBtf(_) => exit::NO_BTF,
            StartError::NoTracefs(_) => exit::NO_TRACEFS,
            StartError::Refused { .. } => exit::REFUSED,
            StartError::Other(_) => exit::FAILURE,
        }
    }
}
