//! io_uring deletions: an `IORING_OP_UNLINKAT` request (unlink, or rmdir
//! with `AT_REMOVEDIR`) never passes the `unlinkat` syscall. At the
//! `io_uring_submit_req` tracepoint, in the submitter's context, the request
//! is already prepared (its name copied into kernel memory): its name, dfd
//! and flags are read and its directory resolved like a syscall deletion's,
//! into a slot keyed by the request. `io_uring_complete` (often in an io-wq
//! worker thread) adds the result and emits the record, of kind
//! `UringUnlinkat`. Every such request is captured, whatever the delete
//! mode: they are rare, and the correlator decides what they were. The
//! submitting thread's burst of deletions is fed as for `unlinkat`, so a
//! recursive delete through io_uring that crosses into another mount is
//! flagged the same way (`CAP_CROSSING`).
//!
//! Tracepoint layouts (tracefs `format`, stable since 6.1): submit_req has
//! `req` at 16 and `u8 opcode` at 32; complete has `req` at 16 and
//! `int res` at 32.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use tracer_common::{
    counters::DropReason,
    event::{DeleteArgs, DirRef, CAP_ALL},
    uapi::IORING_OP_UNLINKAT,
    EventKind,
};

use super::field;
use crate::burst;
use crate::clock::decision_ns;
use crate::core_access::{Mount, Task, UringReq};
use crate::emit::{count_drop, read_kernel_str, scratch};
use crate::filter::wanted;
use crate::maps::{CONFIG, SLOTS2, URING_SLOTS};
use crate::slot::{emit_result, fill_header, payload, take_slot};
use crate::types::Slot;
use crate::walk::{resolve_at, start_path, DirSource};

const KIND: EventKind = EventKind::UringUnlinkat;

#[tracepoint]
pub fn uring_submit(ctx: TracePointContext) -> u32 {
    let opcode = field::<u8>(&ctx, 32);
    if opcode != IORING_OP_UNLINKAT {
        return 0;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !wanted(tgid) {
        return 0;
    }
    let req = field::<u64>(&ctx, 16);
    let Some((name, dfd, flags)) = UringReq(req).unlink() else {
        return 0;
    };
    // A new slot seeded from the scratch buffer: every field read later is
    // written first.
    let Some(seed) = scratch() else {
        count_drop(KIND, DropReason::Scratch);
        return 0;
    };
    if URING_SLOTS
        .insert(req, unsafe { &*(seed as *const Slot<2>) }, 0)
        .is_err()
    {
        count_drop(KIND, DropReason::SlotFull);
        return 0;
    }
    let Some(slot) = URING_SLOTS.get_ptr_mut(req) else {
        count_drop(KIND, DropReason::SlotFull);
        return 0;
    };
    let slot = unsafe { &mut *slot };
    fill_header(slot, KIND);
    slot.strs[0] = read_kernel_str(&mut slot.bufs[0], name);
    let task = Task::current();
    let src = DirSource::of(dfd, slot.bufs[0][0]);
    let start = start_path(task, src);
    let (race, origin) = start.map_or((0, 0), |s| thread_burst(s.mnt));
    let mut dir = DirRef::default();
    slot.strs[1] = resolve_at(task, src, start, &mut dir, &mut slot.bufs[1]);
    let a: &mut DeleteArgs = payload(slot);
    a.dfd = dfd;
    a.flags = flags;
    a.capture = CAP_ALL | race;
    // Where the burst began, whenever the capture had a race reason.
    a.origin_mnt_id = if race != 0 { origin } else { 0 };
    a.dir = dir;
    // Filled by `vfs_unlink`/`vfs_rmdir` (kernel probe set).
    a.victim = Default::default();
    0
}

/// The submitting thread's burst of deletions (`burst`), kept in its
/// syscall slot, fed with this deletion through `mnt`: the race reasons it
/// gives (`CAP_IDMAPPED`, `CAP_SUBTREE`, `CAP_CROSSING`) and the mount the
/// burst began on. A walk that lists directories with `getdents64` and
/// deletes through io_uring is one burst, as with `unlinkat`.
#[inline(always)]
fn thread_burst(mnt: Mount) -> (u32, u32) {
    let Some(cfg) = CONFIG.get(0) else {
        return (0, 0);
    };
    // The thread is in io_uring_enter (or is a SQPOLL thread): its slot
    // holds no call in flight.
    let Some(slot) = take_slot(&SLOTS2, EventKind::Unlinkat) else {
        return (0, 0);
    };
    let now = decision_ns(cfg);
    let cap = burst::on_deletion(&mut slot.del, mnt, now, cfg.burst_gap_ns);
    (cap, slot.del.origin_mnt_id)
}

#[tracepoint]
pub fn uring_complete(ctx: TracePointContext) -> u32 {
    let req = field::<u64>(&ctx, 16);
    let Some(slot) = URING_SLOTS.get_ptr_mut(req) else {
        return 0;
    };
    let slot = unsafe { &mut *slot };
    if slot.hdr.kind == KIND as u32 {
        let ret = i64::from(field::<i32>(&ctx, 32));
        emit_result(slot, KIND, ret, |_, _| {});
    }
    let _ = URING_SLOTS.remove(req);
    0
}
