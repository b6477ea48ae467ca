//! Size limits shared by the kernel side and the decoder.

/// Bytes kept of one user string (path, fs type, mount data), terminator
/// included: the kernel's own `PATH_MAX`. Longer strings are cut and flagged
/// [`crate::STR_TRUNCATED`].
pub const STR_MAX: usize = 4096;

/// Bytes kept of a path built by the in-kernel dentry walk. A deeper or longer
/// path keeps its last components (those nearest the directory) and is flagged
/// [`crate::DIR_TRUNC_LEN`].
pub const WALK_PATH_MAX: usize = 4096;

/// Path components the in-kernel walk visits at most (mount crossings
/// included). A deeper directory is flagged [`crate::DIR_TRUNC_DEPTH`].
pub const WALK_MAX_COMPONENTS: u32 = 1024;

/// Longest dentry name the kernel allows (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// Largest record the kernel emits (header, payload, string table, strings).
pub const RECORD_MAX: usize = 32 * 1024;

/// Most strings one record carries.
pub const MAX_STRS: usize = 5;

/// `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;
