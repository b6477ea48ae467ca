//! Per-thread slots (entry → exit), record assembly, and drop counting.
//!
//! A call's slot lives in an LRU hash keyed by tid and is reused across calls,
//! so entry never allocates or zeroes kilobytes. Strings go into fixed regions
//! of the slot (verifier-friendly constant offsets). At exit the used bytes
//! are packed into a per-CPU scratch buffer and copied once into the ring
//! buffer with their exact length.

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{
            bpf_get_current_cgroup_id, bpf_get_smp_processor_id, bpf_ktime_get_boot_ns,
            bpf_probe_read_kernel, bpf_probe_read_user, bpf_probe_read_user_str,
        },
    },
    maps::LruHashMap,
};
use core::ffi::c_void;
use tracer_common::{
    config::{CFG_COMM_FILTER, CFG_FAILED_ONLY, CFG_PID_FILTER},
    counters::DropReason,
    event::{nstr, payload_len, Header, StrRef, PAYLOAD_MAX, STR_FAULT, STR_NULL, STR_TRUNCATED},
    limits::{NAME_MAX, RECORD_MAX, STR_MAX},
    EventKind,
};

use crate::core_access::Task;
use crate::maps::{CONFIG, DROPS, EVENTS, PIDS, SCRATCH};

/// One string region of a slot: a user string (at offset 0) or a walked path.
pub const REGION: usize = STR_MAX + NAME_MAX + 1;

/// Per-thread deletion state, kept in the slot between calls.
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
    pub _pad2: u32,
    pub listed_ns: u64,
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
        _pad2: 0,
        listed_ns: 0,
    };
}

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

#[repr(C)]
pub struct Scratch {
    pub buf: [u8; SCRATCH_LEN],
}

const _: () = {
    // A new slot is seeded from the scratch buffer: it must be large enough.
    assert!(core::mem::size_of::<Slot<5>>() <= SCRATCH_LEN);
    assert!(RECORD_MAX.is_power_of_two());
};

/// This CPU's scratch buffer.
#[inline(always)]
fn scratch() -> Option<*mut Scratch> {
    SCRATCH.get_ptr_mut(unsafe { bpf_get_smp_processor_id() })
}

#[inline(always)]
pub fn count_drop(kind: EventKind, reason: DropReason) {
    if let Some(c) = DROPS.get_ptr_mut(DropReason::index(kind as u32, reason)) {
        unsafe { *c += 1 };
    }
}

#[inline(always)]
fn tid_tgid() -> (u32, u32) {
    let id = bpf_get_current_pid_tgid();
    (id as u32, (id >> 32) as u32)
}

/// Whether the configured filters let this task through.
#[inline(always)]
fn wanted(tgid: u32) -> bool {
    let Some(cfg) = CONFIG.get(0) else {
        return true;
    };
    if tgid == cfg.self_tgid {
        return false;
    }
    if cfg.flags & CFG_PID_FILTER != 0 && unsafe { PIDS.get(tgid) }.is_none() {
        return false;
    }
    if cfg.flags & CFG_COMM_FILTER != 0 {
        let Ok(comm) = bpf_get_current_comm() else {
            return false;
        };
        let mut i = 0;
        while i < comm.len() {
            if comm[i] != cfg.comm[i] {
                return false;
            }
            if comm[i] == 0 {
                break;
            }
            i += 1;
        }
    }
    true
}

/// Syscall entry: filter, take this thread's slot and fill the header.
#[inline(always)]
pub fn begin<const N: usize>(
    slots: &LruHashMap<u32, Slot<N>>,
    kind: EventKind,
) -> Option<&'static mut Slot<N>> {
    let slot = take_slot(slots, kind)?;
    fill_header(slot, kind);
    Some(slot)
}

/// Filter and take this thread's slot, without filling anything: callers
/// that may still decide not to capture the call do that first.
#[inline(always)]
pub fn take_slot<const N: usize>(
    slots: &LruHashMap<u32, Slot<N>>,
    kind: EventKind,
) -> Option<&'static mut Slot<N>> {
    let (tid, tgid) = tid_tgid();
    if !wanted(tgid) {
        return None;
    }
    let (slot, fresh) = match slots.get_ptr_mut(tid) {
        Some(p) => (p, false),
        None => {
            // Seed a new slot from the scratch buffer: its bytes are
            // irrelevant, every field read later is written first.
            let seed = scratch()? as *const Slot<N>;
            if slots.insert(tid, unsafe { &*seed }, 0).is_err() {
                count_drop(kind, DropReason::SlotFull);
                return None;
            }
            let Some(p) = slots.get_ptr_mut(tid) else {
                count_drop(kind, DropReason::SlotFull);
                return None;
            };
            (p, true)
        }
    };
    let slot = unsafe { &mut *slot };
    // A new slot, or a recycled tid: no deletion history.
    if fresh || slot.hdr.tid != tid {
        slot.del = DeleteState::EMPTY;
        slot.hdr.tid = tid;
    }
    // Not active until the header is filled.
    slot.hdr.kind = 0;
    Some(slot)
}

/// Fill the header of a call that will be captured, and mark it active.
#[inline(always)]
pub fn fill_header<const N: usize>(slot: &mut Slot<N>, kind: EventKind) {
    let (tid, tgid) = tid_tgid();
    let task = Task::current();
    let ugid = bpf_get_current_uid_gid();
    let h = &mut slot.hdr;
    h.kind = kind as u32;
    h.pid = tgid;
    h.tid = tid;
    h.uid = ugid as u32;
    h.gid = (ugid >> 32) as u32;
    h.ppid = task.ppid();
    h.mnt_ns = task.mnt_ns();
    h.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    h.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    h.payload_len = payload_len(kind) as u16;
    h.nstr = nstr(kind) as u16;
    slot.start_ns = unsafe { bpf_ktime_get_boot_ns() };
}

/// The payload of a slot as the kind's argument struct.
#[inline(always)]
pub fn payload<T, const N: usize>(slot: &mut Slot<N>) -> &mut T {
    const { assert!(core::mem::size_of::<T>() <= PAYLOAD_MAX) };
    unsafe { &mut *(slot.payload.as_mut_ptr() as *mut T) }
}

/// Copy a NUL-terminated user string into `region`, flagging NULL, unreadable
/// and truncated strings.
#[inline(always)]
pub fn read_user_str(region: &mut [u8; REGION], ptr: u64) -> StrRef {
    if ptr == 0 {
        return StrRef {
            len: 0,
            flags: STR_NULL,
        };
    }
    let src = ptr as *const c_void;
    let r =
        unsafe { bpf_probe_read_user_str(region.as_mut_ptr() as *mut c_void, STR_MAX as u32, src) };
    if r <= 0 {
        return StrRef {
            len: 0,
            flags: STR_FAULT,
        };
    }
    let mut flags = 0;
    if r as usize >= STR_MAX {
        // The buffer filled up: the string was cut unless its last kept byte
        // really was its terminator.
        let mut last = 0u8;
        let at = (ptr + STR_MAX as u64 - 1) as *const c_void;
        let rr = unsafe { bpf_probe_read_user(&mut last as *mut u8 as *mut c_void, 1, at) };
        if rr == 0 && last != 0 {
            flags |= STR_TRUNCATED;
        }
    }
    StrRef {
        len: (r - 1) as u16,
        flags,
    }
}

/// Syscall exit: find the slot, let `complete` add exit-time facts, and emit
/// the record. Exits whose entry was filtered out or not seen emit nothing.
#[inline(always)]
pub fn finish<const N: usize>(
    slots: &LruHashMap<u32, Slot<N>>,
    kind: EventKind,
    ret: i64,
    complete: impl FnOnce(&mut Slot<N>, i64),
) {
    let (tid, _) = tid_tgid();
    let Some(slot) = slots.get_ptr_mut(tid) else {
        return;
    };
    let slot = unsafe { &mut *slot };
    if slot.hdr.kind != kind as u32 || slot.hdr.tid != tid {
        return;
    }
    let skip = ret >= 0
        && CONFIG
            .get(0)
            .is_some_and(|c| c.flags & CFG_FAILED_ONLY != 0);
    if !skip {
        let now = unsafe { bpf_ktime_get_boot_ns() };
        slot.hdr.ret = ret;
        slot.hdr.ts_ns = now;
        slot.hdr.duration_ns = now.wrapping_sub(slot.start_ns);
        complete(slot, ret);
        emit(slot, kind);
    }
    // The slot is consumed: a later exit without a new entry emits nothing.
    slot.hdr.kind = 0;
}

#[inline(always)]
fn emit<const N: usize>(slot: &mut Slot<N>, kind: EventKind) {
    let Some(scratch) = scratch() else {
        count_drop(kind, DropReason::Scratch);
        return;
    };
    let base = unsafe { (*scratch).buf.as_mut_ptr() };
    let plen = payload_len(kind);
    let n = nstr(kind);
    let hdr_len = core::mem::size_of::<Header>();
    let table = hdr_len + plen;
    let mut off = table + n * core::mem::size_of::<StrRef>();
    let mut i = 0;
    while i < N {
        if i < n {
            let mut len = slot.strs[i].len as usize;
            if len > STR_MAX {
                len = STR_MAX;
                slot.strs[i].len = STR_MAX as u16;
            }
            if len > 0 {
                unsafe {
                    bpf_probe_read_kernel(
                        base.add(off & (RECORD_MAX - 1)) as *mut c_void,
                        len as u32,
                        slot.bufs[i].as_ptr() as *const c_void,
                    )
                };
            }
            off += len;
        }
        i += 1;
    }
    let total = off & (RECORD_MAX - 1);
    slot.hdr.len = total as u32;
    unsafe {
        bpf_probe_read_kernel(
            base as *mut c_void,
            hdr_len as u32,
            &slot.hdr as *const Header as *const c_void,
        );
        bpf_probe_read_kernel(
            base.add(hdr_len) as *mut c_void,
            plen as u32,
            slot.payload.as_ptr() as *const c_void,
        );
        bpf_probe_read_kernel(
            base.add(table) as *mut c_void,
            (n * core::mem::size_of::<StrRef>()) as u32,
            slot.strs.as_ptr() as *const c_void,
        );
    }
    if total < hdr_len {
        return;
    }
    let record = unsafe { core::slice::from_raw_parts(base as *const u8, total) };
    if EVENTS.output::<[u8]>(record, 0).is_err() {
        count_drop(kind, DropReason::RingFull);
    }
}
