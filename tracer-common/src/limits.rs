//! Size limits shared by the kernel side and the decoder.

/// Bytes kept of one user string (path, fs type, mount data), terminator
/// included: the kernel's own `PATH_MAX`. Longer strings are cut and flagged
/// [`crate::STR_TRUNCATED`].
pub const STR_MAX: usize = 4096;

/// Bytes kept of a path built by the in-kernel dentry walk. A longer path
/// keeps its last components (those nearest the directory) and is flagged
/// [`crate::DIR_TRUNC_LEN`].
pub const WALK_PATH_MAX: usize = 4096;

/// Path components the in-kernel walk keeps at most, counted from the task's
/// root as the path is shown: a directory exactly this deep comes back whole
/// and unflagged; a deeper one keeps this many components (those nearest the
/// directory) and is flagged [`crate::DIR_TRUNC_DEPTH`]. Mount boundaries on
/// the way do not count here: they have their own limit,
/// [`WALK_MAX_MOUNTS`]. `/` has no component; the path-length limit
/// ([`WALK_PATH_MAX`]) can cut a path of fewer, longer components first.
pub const WALK_MAX_COMPONENTS: u32 = 1024;

/// Mount boundaries the in-kernel walk crosses at most: each mount between
/// the directory and the task's root takes one step of the walk and adds no
/// component (a stack of mounts on one mountpoint takes one each). A
/// directory below more is flagged [`crate::DIR_TRUNC_DEPTH`] and keeps the
/// components below the last boundary crossed. With [`WALK_MAX_COMPONENTS`]
/// this bounds the walk's loop at `WALK_MAX_COMPONENTS + WALK_MAX_MOUNTS + 1`
/// steps (the last finds the root).
pub const WALK_MAX_MOUNTS: u32 = 256;

/// How long a thread's walked deletion directory is reused (ns): a deletion
/// starting from the same mount and dentry, whose parent and name are
/// unchanged, takes the path walked at most this long ago instead of
/// walking again (a recursive delete deletes thousands of entries per
/// directory). A rename of an ancestor within this time is seen at the
/// next walk; the record is flagged [`crate::DIR_REUSED`].
pub const WALK_REUSE_NS: u64 = 1_000_000;

/// Longest dentry name the kernel allows (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// Largest record the kernel emits (header, payload, string table, strings).
pub const RECORD_MAX: usize = 32 * 1024;

/// Records wake the ring buffer's reader only when this many bytes are
/// waiting (or for an unmount that failed with EBUSY, which userspace acts
/// on at once); otherwise the reader drains the ring every
/// `RING_DRAIN_MS`. A wakeup is work for the traced process (irq_work, a
/// scheduler wakeup): one per record under churn, now one per this many
/// bytes.
pub const RING_WAKEUP_BYTES: u64 = 256 * 1024;

/// How often the reader drains the ring buffer with no wakeup (ms): the
/// most a record waits before userspace sees it.
pub const RING_DRAIN_MS: i32 = 20;

/// Most strings one record carries.
pub const MAX_STRS: usize = 5;

/// `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;
