//! Maps shared by all programs.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
};
use tracer_common::{config::DIR_WALKS_LEN, counters::DROP_SLOTS, Config};

use crate::types::{GuardKey, GuardMark, HashBuf, Scratch, Slot, WalkBuf};

/// Records to userspace. Sized by userspace at load time (`--ring-size`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Drops per (kind, reason): see `tracer_common::counters`.
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DROP_SLOTS as u32, 0);

/// Filter settings, index 0.
#[map]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// tgids traced when `CFG_PID_FILTER` is set.
#[map]
pub static PIDS: HashMap<u32, u8> = HashMap::with_max_entries(1024, 0);

/// tgid → `CLOCK_BOOTTIME` of its last unmount that failed with EBUSY. Set
/// in the kernel at umount exit, so the deletions that follow microseconds
/// later are captured without anything armed from userspace.
#[map]
pub static BUSY: LruHashMap<u32, u64> = LruHashMap::with_max_entries(4096, 0);

/// Index 0: `CLOCK_BOOTTIME` of the latest EBUSY unmount on the machine, so
/// deletions skip the `BUSY` lookup when no EBUSY happened recently.
#[map]
pub static LAST_BUSY: Array<u64> = Array::with_max_entries(1, 0);

/// Mount id → `CLOCK_BOOTTIME` of an unmount of it that failed with EBUSY,
/// written by userspace once it has found which mount was at the target
/// (milliseconds after the EBUSY): while the EBUSY is recent, deletions
/// through these mounts are captured whoever deletes.
#[map]
pub static BUSY_MNTS: LruHashMap<u32, u64> = LruHashMap::with_max_entries(1024, 0);

/// Per-thread slots for calls with at most 2 strings, keyed by tid. Slots are
/// kept between calls (no per-call allocation or zeroing); LRU eviction
/// reclaims those of threads that are gone.
#[map]
pub static SLOTS2: LruHashMap<u32, Slot<2>> = LruHashMap::with_max_entries(1024, 0);

/// Per-thread slots for calls with up to 5 strings (the mount family).
#[map]
pub static SLOTS5: LruHashMap<u32, Slot<5>> = LruHashMap::with_max_entries(256, 0);

/// Record assembly buffers, one per CPU, indexed by CPU id. A plain array:
/// per-CPU map values are limited to 32 KiB. Userspace sets max_entries to
/// the number of possible CPUs.
#[map]
pub static SCRATCH: Array<Scratch> = Array::with_max_entries(1, 0);

/// Per-CPU buffer of the dentry walk.
#[map]
pub static WALKBUF: PerCpuArray<WalkBuf> = PerCpuArray::with_max_entries(1, 0);

/// Programs reached by tail call, at the `DIR_WALK_*` indices: each walks
/// one directory of a call (a deletion's, `move_mount`'s target, a
/// rename's two; an io_uring rename's request is read there too), so no
/// program holds two walks. Filled by userspace.
#[map]
pub static DIR_WALKS: ProgramArray = ProgramArray::with_max_entries(DIR_WALKS_LEN, 0);

/// The guard's marks (see `guard`): one per EBUSY unmount of a traced
/// process while the guard is on, until the busy window passes, the mount
/// is unmounted, or the guard acts.
#[map]
pub static GUARDS: LruHashMap<GuardKey, GuardMark> = LruHashMap::with_max_entries(4096, 0);

/// tgid → the last mount the guard looked at for it and needs not look at
/// again (no mark matches it, or the guard has acted on it). Forgotten when
/// the process gets a new mark.
#[map]
pub static GUARD_SEEN: LruHashMap<u32, u64> = LruHashMap::with_max_entries(4096, 0);

/// Per-CPU buffer where the guard assembles a path to hash.
#[map]
pub static HASHBUF: PerCpuArray<HashBuf> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU slot where a record besides a call's own is assembled: the
/// guard's, a walk's top (a syscall's own slot holds that call's record).
#[map]
pub static EXTRA_REC: PerCpuArray<Slot<1>> = PerCpuArray::with_max_entries(1, 0);

/// io_uring deletions between their submission and their completion, keyed
/// by the request (`struct io_kiocb *`): the completion often runs in an
/// io-wq worker, another thread than the submitter's (see `probes::uring`).
#[map]
pub static URING_SLOTS: LruHashMap<u64, Slot<5>> = LruHashMap::with_max_entries(256, 0);

/// tid → the io_uring request (`struct io_kiocb *`) the thread is issuing
/// an unlinkat for, between `io_unlinkat`'s entry and return (kernel probe
/// set): how `vfs_unlink`/`vfs_rmdir`, which get no request, find the
/// request's slot in `URING_SLOTS`.
#[map]
pub static URING_ISSUING: LruHashMap<u32, u64> = LruHashMap::with_max_entries(1024, 0);
