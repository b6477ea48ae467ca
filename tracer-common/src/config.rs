//! Filter settings written by userspace into the `CONFIG` array map before the
//! programs are attached. Filtering happens at syscall entry, before any path
//! is copied or walked.

/// Only trace processes whose tgid is in the `PIDS` map.
pub const CFG_PID_FILTER: u32 = 1 << 0;
/// Only trace processes whose comm equals `Config::comm`.
pub const CFG_COMM_FILTER: u32 = 1 << 1;
/// Only emit calls that returned an error.
pub const CFG_FAILED_ONLY: u32 = 1 << 2;
/// The guard also acts on a recursive delete crossing into a bind of a
/// directory (or an id-mapped mount) from outside the tree it is deleting,
/// at its first listing there (`--guard-crossings`).
pub const CFG_GUARD_CROSSINGS: u32 = 1 << 3;

/// Which deletions are captured (mount-family calls always are).
pub const DELETES_ALL: u32 = 0;
/// Only deletions that can be part of the race (see `CAP_*` in `event`):
/// by a process whose unmount failed with EBUSY within `busy_window_ns`,
/// through an id-mapped mount or a bind of a subdirectory, or on another
/// mount than the one the thread's current burst of deletions started on.
/// Everything else is dropped at syscall entry, before any copy or walk.
pub const DELETES_RACE: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub flags: u32,
    /// tgid of the tracer itself: its own calls are never traced.
    pub self_tgid: u32,
    pub comm: [u8; crate::limits::COMM_LEN],
    /// `DELETES_ALL` or `DELETES_RACE`.
    pub delete_mode: u32,
    /// `GUARD_*`: what the kernel does to a process walking into a mount
    /// whose unmount it just saw fail with EBUSY.
    pub guard: u32,
    /// How long after an EBUSY unmount the process's deletions are captured.
    pub busy_window_ns: u64,
    /// A thread's deletions separated by less than this form one burst (one
    /// recursive delete) for crossing detection.
    pub burst_gap_ns: u64,
    /// For this long after an EBUSY unmount anywhere on the node, every
    /// deletion is captured (`CAP_AFTER_ANY_EBUSY`): the time userspace
    /// needs to tell the kernel which mount is busy (`BUSY_MNTS`).
    pub busy_grace_ns: u64,
    /// Nanoseconds per kernel tick (jiffy), measured by userspace: the
    /// capture decisions' clock is `bpf_jiffies64() * tick_ns`, a read of
    /// a counter instead of the TSC that `bpf_ktime_get_boot_ns` reads on
    /// every deletion. 0 when it could not be measured: the decisions then
    /// use boot time.
    pub tick_ns: u64,
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for Config {}

/// Index, in the `DIR_WALKS` program array, of the program that walks a
/// deletion's directory: the delete probes reach it by tail call, so the
/// walk is verified once, not once per probe; userspace loads it and puts
/// it there before attaching them.
pub const DIR_WALK_DELETE: u32 = 0;

/// Index, in `DIR_WALKS`, of the program that resolves `move_mount`'s
/// target directory: `enter_move_mount` resolves the source and reaches it
/// by tail call, so no program holds two walks (6.1's verifier explores
/// every path out of the first walk again through the second, and gives up
/// at a million instructions).
pub const DIR_WALK_MOVE_MOUNT_TO: u32 = 1;

/// Index, in `DIR_WALKS`, of the program that resolves a rename's old
/// directory: the entry programs decide and copy the names, and reach it
/// by tail call (6.1's verifier gave up on an entry program that also held
/// the walk).
pub const DIR_WALK_RENAME_OLD: u32 = 2;

/// Index, in `DIR_WALKS`, of the program that resolves a rename's new
/// directory, reached by tail call from the one above.
pub const DIR_WALK_RENAME_NEW: u32 = 3;

/// Index, in `DIR_WALKS`, of the program that reads an io_uring rename
/// request and walks its old directory: `uring_submit` reaches it by tail
/// call, so its own verification stays that of the unlink requests.
pub const DIR_WALK_URING_RENAME: u32 = 4;

/// Index, in `DIR_WALKS`, of the program that walks an io_uring rename
/// request's new directory (reached by tail call from the one above).
pub const DIR_WALK_URING_RENAME_NEW: u32 = 5;

/// Index, in `DIR_WALKS`, of the program that walks and records the top
/// directory of a recursive delete (`EventKind::WalkTop`), reached by tail
/// call from a deletion's entry or directory walk, once per walk.
pub const DIR_WALK_DELETE_TOP: u32 = 6;

/// Entries of `DIR_WALKS`.
pub const DIR_WALKS_LEN: u32 = 7;

/// The guard is off: nothing is acted on and nothing is marked.
pub const GUARD_OFF: u32 = 0;
/// The guard decides as for `GUARD_STOP` and records what it would have
/// done, without sending anything.
pub const GUARD_REPORT: u32 = 1;
/// The guard stops the process (`SIGSTOP`): frozen for inspection.
pub const GUARD_STOP: u32 = 2;
/// The guard kills the process (`SIGKILL`).
pub const GUARD_KILL: u32 = 3;
/// The guard makes the process's deletions and renames on the busy mount
/// fail with `EPERM` (BPF LSM programs on `path_unlink`, `path_rmdir`,
/// `path_rename`), for the rest of the busy window; nothing is sent.
pub const GUARD_DENY: u32 = 4;
