//! Correlation: a pure, deterministic state machine over enriched events
//! that turns "an unmount failed with EBUSY, then deletions went through that
//! same mount" into incidents. No I/O, no clock: time comes from the events
//! and from [`Correlator::tick`], so live mode and replays give the same
//! incidents.

pub mod busy_unmount;
pub mod roots;

use bytes::Bytes;
use tracer_common::EventKind;

use crate::enrich::holders::HolderScan;

pub use busy_unmount::{Correlator, CorrelatorConfig};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// A process, as the kernel reported it on one of its calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub comm: Bytes,
    pub cgroup_id: u64,
    pub mnt_ns: u32,
}

/// The unmount that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedUnmount {
    pub ts_ns: u64,
    pub by: Process,
    /// The target as given.
    pub target: Bytes,
    /// The target as an absolute path in the caller's namespace.
    pub target_abs: Bytes,
    pub flags: u64,
}

/// The mount the deletions went through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountFacts {
    pub mnt_id: u32,
    pub mnt_ns: u32,
    pub mountpoint: Bytes,
    /// Root of the mount within its filesystem (mountinfo's `root`), when
    /// the mount table knew the mount.
    pub root: Option<Bytes>,
    /// Where that root really lives, as a path in the namespace.
    pub backing_root: Option<Bytes>,
    pub fstype: Option<String>,
    pub source: Option<Bytes>,
    /// From the kernel at deletion time.
    pub idmapped: bool,
    /// A bind of a subdirectory (from the kernel at deletion time).
    pub subtree: bool,
}

/// One entry deleted through the mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deletion {
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub syscall: EventKind,
    /// `rmdir` or `unlinkat(AT_REMOVEDIR)`.
    pub is_dir: bool,
    /// The path as the deleting process saw it.
    pub path: Bytes,
    /// The path relative to the mount's root.
    pub rel_path: Bytes,
    /// Where the entry really lived (mount's backing root + `rel_path`).
    pub backing_path: Option<Bytes>,
    /// The path (as seen or backing) was cut by the kernel's limits.
    pub truncated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incident {
    /// 1, 2, ... in the order incidents were opened.
    pub id: u64,
    pub severity: Severity,
    /// Label of the snapshot/volume root the backing paths are under.
    pub root_label: Option<String>,
    pub unmount: FailedUnmount,
    pub mount: MountFacts,
    /// Who held the mount, scanned when the EBUSY was seen.
    pub holders: Option<HolderScan>,
    /// Every process that deleted through the mount.
    pub deleters: Vec<Process>,
    /// The deletions, in order (at most `max_deletions` kept).
    pub deletions: Vec<Deletion>,
    /// All successful deletions, including those beyond the kept list.
    pub count: u64,
    /// First deletion's time minus the failed unmount's time.
    pub first_delay_ns: u64,
    pub last_ts_ns: u64,
    /// Kernel-side losses counted while the incident was open: the list of
    /// deletions may be incomplete.
    pub lost_while_open: u64,
}
