//! Plain buffer and state types held in the maps: per-thread slots and their
//! deletion-burst state, the record assembly buffer, the dentry walk's
//! buffer. Data only: this module imports nothing from the crate, so `maps`
//! (and everything above it) can depend on it without a cycle.

use tracer_common::{
    event::{Header, StrRef, PAYLOAD_MAX},
    limits::{NAME_MAX, RECORD_MAX, STR_MAX, WALK_PATH_MAX},
};

/// One string region of a slot: a user string (at offset 0) or a walked path.
pub const REGION: usize = STR_MAX + NAME_MAX + 1;

/// Per-thread deletion state, kept in the slot between calls (updated by
/// `burst`).
#[repr(C)]
pub struct DeleteState {
    /// `struct mount *` and id of the last deletion's mount, and its
    /// `CAP_IDMAPPED | CAP_SUBTREE` class (mounts never change either once
    /// attached: the id-mapping can only be set on a detached mount).
    pub last_mnt: u64,
    pub last_mnt_id: u32,
    pub last_class: u32,
    /// Mount the current burst of deletions started on.
    pub origin_mnt: u64,
    pub origin_mnt_id: u32,
    /// The burst has moved between mounts: capture the rest of it.
    pub crossed: u32,
    /// Time of the last deletion.
    pub last_ns: u64,
    /// First mount the thread listed (`getdents64`) in its current sequence
    /// of listings, and the time of its last listing: a recursive delete
    /// lists a directory before deleting in it, so this is where a walk
    /// began even when its first deletion is deep inside another mount.
    pub listed_mnt: u64,
    pub listed_mnt_id: u32,
    /// Whether the burst's top directory (`listed_dentry`) is still to be
    /// recorded: `burst::TOP_KNOWN`, 0 once it is or when there is none.
    pub top: u32,
    pub listed_ns: u64,
    /// The first directory of that sequence (the walk's top), and the mount
    /// the guard last acted on for a crossing of this thread
    /// (`--guard-crossings`: once per mount).
    pub listed_dentry: u64,
    pub crossing_acted_mnt: u64,
    /// The thread's last walked deletion directory (see `dir_cache`): its
    /// start path, the dentry's parent and name hash, when it was walked,
    /// whether the slot's payload and path region hold that walk's result,
    /// and (while the walk is pending in a tail call) the `DIR_FROM_*` flag
    /// and whether the identity was read.
    pub dir_mnt: u64,
    pub dir_dentry: u64,
    pub dir_parent: u64,
    pub dir_hash_len: u64,
    pub dir_ns: u64,
    pub dir_valid: u32,
    pub dir_from: u32,
    pub dir_keyed: u32,
    pub _pad3: u32,
}

impl DeleteState {
    pub const EMPTY: DeleteState = DeleteState {
        last_mnt: 0,
        last_mnt_id: 0,
        last_class: 0,
        origin_mnt: 0,
        origin_mnt_id: 0,
        crossed: 0,
        last_ns: 0,
        listed_mnt: 0,
        listed_mnt_id: 0,
        top: 0,
        listed_ns: 0,
        listed_dentry: 0,
        crossing_acted_mnt: 0,
        dir_mnt: 0,
        dir_dentry: 0,
        dir_parent: 0,
        dir_hash_len: 0,
        dir_ns: 0,
        dir_valid: 0,
        dir_from: 0,
        dir_keyed: 0,
        _pad3: 0,
    };
}

/// A thread's call between entry and exit: the record's header, payload and
/// strings (each in its own fixed region), plus the thread's deletion state.
#[repr(C)]
pub struct Slot<const N: usize> {
    pub hdr: Header,
    pub start_ns: u64,
    pub del: DeleteState,
    pub payload: [u8; PAYLOAD_MAX],
    pub strs: [StrRef; N],
    pub bufs: [[u8; REGION]; N],
}

const SCRATCH_LEN: usize = RECORD_MAX + STR_MAX;

/// A CPU's record assembly buffer (also the seed of a new slot).
#[repr(C)]
pub struct Scratch {
    pub buf: [u8; SCRATCH_LEN],
}

const _: () = {
    // A new slot is seeded from the scratch buffer: it must be large enough.
    assert!(core::mem::size_of::<Slot<5>>() <= SCRATCH_LEN);
    assert!(RECORD_MAX.is_power_of_two());
};

/// A CPU's dentry walk buffer: the path is written backwards, ending at
/// `WALK_PATH_MAX`; the extra `NAME_MAX + 1` bytes let the verifier see that
/// a masked offset plus one name stays inside.
#[repr(C)]
pub struct WalkBuf {
    pub buf: [u8; WALK_PATH_MAX + NAME_MAX + 1],
}

/// A process's unmount that failed with EBUSY, as the guard keeps it: who,
/// in which mount namespace, and the hash of the target's absolute path
/// (`guard::path_hash`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GuardKey {
    pub tgid: u32,
    pub ns: u32,
    pub target: u64,
}

/// When that unmount failed, and whether the guard has acted on it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GuardMark {
    /// On the decisions' clock (`clock::decision_ns`): for the window.
    pub busy_ns: u64,
    /// Boot time: what the guard's record reports.
    pub busy_ts_ns: u64,
    pub acted: u32,
    pub _pad: u32,
}

/// Bytes of [`HashBuf`] a path is assembled in: a cwd of up to
/// `WALK_PATH_MAX` bytes, a `/`, and a user string of up to `STR_MAX - 1`.
pub const HASH_PATH_MAX: usize = WALK_PATH_MAX + STR_MAX;

/// A CPU's buffer for a path being hashed by the guard, and the hash's
/// state (kept here, not on the stack, so the verifier does not follow each
/// iteration's values: see `guard::path_hash`).
#[repr(C)]
pub struct HashBuf {
    /// Bytes of `buf` to hash.
    pub len: u32,
    /// A `..` component was met: the path cannot be compared lexically.
    pub fail: u32,
    /// Hash of the components so far.
    pub h: u64,
    /// Hash and length of the current component, and how many of its first
    /// bytes are dots.
    pub ch: u64,
    pub clen: u32,
    pub dots: u32,
    pub buf: [u8; HASH_PATH_MAX + NAME_MAX + 1],
}
