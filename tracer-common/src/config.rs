//! Filter settings written by userspace into the `CONFIG` array map before the
//! programs are attached. Filtering happens at syscall entry, before any path
//! is copied or walked.

/// Only trace processes whose tgid is in the `PIDS` map.
pub const CFG_PID_FILTER: u32 = 1 << 0;
/// Only trace processes whose comm equals `Config::comm`.
pub const CFG_COMM_FILTER: u32 = 1 << 1;
/// Only emit calls that returned an error.
pub const CFG_FAILED_ONLY: u32 = 1 << 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub flags: u32,
    /// tgid of the tracer itself: its own calls are never traced.
    pub self_tgid: u32,
    pub comm: [u8; crate::limits::COMM_LEN],
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for Config {}
