//! Per-thread slots, entry → exit: take and fill a thread's slot at entry,
//! give probes its payload, and at exit add the result and hand it to
//! `emit`.
//!
//! A call's slot lives in an LRU hash keyed by tid and is reused across calls,
//! so entry never allocates or zeroes kilobytes. Strings go into fixed regions
//! of the slot (verifier-friendly constant offsets).

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{bpf_get_current_cgroup_id, bpf_ktime_get_boot_ns},
    },
    maps::LruHashMap,
};
use tracer_common::{
    config::CFG_FAILED_ONLY,
    counters::DropReason,
    event::{nstr, payload_len, PAYLOAD_MAX},
    EventKind,
};

use crate::core_access::Task;
use crate::dir_cache;
use crate::emit::{count_drop, emit, scratch};
use crate::filter::wanted;
use crate::maps::CONFIG;
use crate::types::{DeleteState, Slot};

#[inline(always)]
fn tid_tgid() -> (u32, u32) {
    let id = bpf_get_current_pid_tgid();
    (id as u32, (id >> 32) as u32)
}

/// Syscall entry: filter, take this thread's slot and fill the header.
#[inline(always)]
pub fn begin<const N: usize>(
    slots: &LruHashMap<u32, Slot<N>>,
    kind: EventKind,
) -> Option<&'static mut Slot<N>> {
    let slot = take_slot(slots, kind)?;
    // This call overwrites the payload and strings a deletion's walk left.
    dir_cache::forget(&mut slot.del);
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

/// Fill the header of a record that is no call's but of this moment (a
/// guard's action, a walk's top): `ret`, the header's boot time as its
/// time, no duration.
#[inline(always)]
pub fn fill_instant<const N: usize>(slot: &mut Slot<N>, kind: EventKind, ret: i64) {
    fill_header(slot, kind);
    slot.hdr.ret = ret;
    slot.hdr.ts_ns = slot.start_ns;
    slot.hdr.duration_ns = 0;
}

/// The payload of a slot as the kind's argument struct.
#[inline(always)]
pub fn payload<T, const N: usize>(slot: &mut Slot<N>) -> &mut T {
    const { assert!(core::mem::size_of::<T>() <= PAYLOAD_MAX) };
    unsafe { &mut *(slot.payload.as_mut_ptr() as *mut T) }
}

/// This thread's slot when it holds a call of `kind` taken at entry.
#[inline(always)]
pub fn active<const N: usize>(
    slots: &LruHashMap<u32, Slot<N>>,
    kind: EventKind,
) -> Option<&'static mut Slot<N>> {
    let (tid, _) = tid_tgid();
    let slot = unsafe { &mut *slots.get_ptr_mut(tid)? };
    (slot.hdr.kind == kind as u32 && slot.hdr.tid == tid).then_some(slot)
}

/// This thread's slot when it holds a deletion (any delete kind) taken at
/// entry: for the programs that add to it while the call runs (the
/// directory walk reached by tail call, the kernel-function hooks).
#[inline(always)]
pub fn active_deletion<const N: usize>(
    slots: &LruHashMap<u32, Slot<N>>,
) -> Option<&'static mut Slot<N>> {
    let (tid, _) = tid_tgid();
    let slot = unsafe { &mut *slots.get_ptr_mut(tid)? };
    let deleting = EventKind::try_from(slot.hdr.kind).is_ok_and(EventKind::is_delete);
    (slot.hdr.tid == tid && deleting).then_some(slot)
}

/// This thread's slot when it holds a rename (any rename kind) taken at
/// entry: for the new directory's walk reached by tail call.
#[inline(always)]
pub fn active_rename<const N: usize>(
    slots: &LruHashMap<u32, Slot<N>>,
) -> Option<&'static mut Slot<N>> {
    let (tid, _) = tid_tgid();
    let slot = unsafe { &mut *slots.get_ptr_mut(tid)? };
    let renaming = EventKind::try_from(slot.hdr.kind).is_ok_and(EventKind::is_rename);
    (slot.hdr.tid == tid && renaming).then_some(slot)
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
    let Some(slot) = active(slots, kind) else {
        return;
    };
    emit_result(slot, kind, ret, complete);
    // The slot is consumed: a later exit without a new entry emits nothing.
    slot.hdr.kind = 0;
}

/// The call in `slot` returned `ret`: add the result and its time, let
/// `complete` add exit-time facts, and emit the record, unless only failed
/// calls are wanted and it succeeded.
#[inline(always)]
pub fn emit_result<const N: usize>(
    slot: &mut Slot<N>,
    kind: EventKind,
    ret: i64,
    complete: impl FnOnce(&mut Slot<N>, i64),
) {
    let skip = ret >= 0
        && CONFIG
            .get(0)
            .is_some_and(|c| c.flags & CFG_FAILED_ONLY != 0);
    if skip {
        return;
    }
    let now = unsafe { bpf_ktime_get_boot_ns() };
    slot.hdr.ret = ret;
    slot.hdr.ts_ns = now;
    slot.hdr.duration_ns = now.wrapping_sub(slot.start_ns);
    complete(slot, ret);
    emit(slot, kind);
}
