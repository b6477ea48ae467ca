//! io_uring deletions and renames: an `IORING_OP_UNLINKAT` request (unlink,
//! or rmdir with `AT_REMOVEDIR`) never passes the `unlinkat` syscall, nor an
//! `IORING_OP_RENAMEAT` one `renameat2`. At the `io_uring_submit_req`
//! tracepoint, in the submitter's context, the request is already prepared
//! (its names copied into kernel memory): its names, dfds and flags are read
//! and its directories resolved like a syscall's, into a slot keyed by the
//! request. `io_uring_complete` (often in an io-wq worker thread) adds the
//! result and emits the record, of kind `UringUnlinkat` or `UringRenameat`.
//! Every such request is captured, whatever the delete mode: they are rare,
//! and the correlator decides what they were. An unlink feeds the
//! submitting thread's burst of deletions as for `unlinkat`, so a recursive
//! delete through io_uring that crosses into another mount is flagged the
//! same way (`CAP_CROSSING`); a rename gets the EBUSY reasons of the mount
//! its old path starts on, as a syscall rename does.
//!
//! A rename is read, and its two directories walked, by two programs
//! reached by tail call (`uring_rename_submit`, `walk_uring_rename_new`):
//! one walk per program, and `uring_submit` verified as before.
//!
//! Tracepoint layouts (tracefs `format`, stable since 6.1): submit_req has
//! `req` at 16 and `u8 opcode` at 32; complete has `req` at 16 and
//! `int res` at 32.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use tracer_common::{
    config::{DIR_WALK_URING_RENAME, DIR_WALK_URING_RENAME_NEW},
    counters::DropReason,
    event::{DeleteArgs, DirRef, RenameArgs, CAP_ALL},
    uapi::{IORING_OP_RENAMEAT, IORING_OP_UNLINKAT},
    EventKind,
};

use super::field;
use crate::burst;
use crate::capture;
use crate::clock::decision_ns;
use crate::core_access::{Mount, Task, UringReq};
use crate::emit::{count_drop, read_kernel_str, scratch, ABSENT};
use crate::filter::wanted;
use crate::maps::{CONFIG, DIR_WALKS, SLOTS2, URING_SLOTS};
use crate::slot::{emit_result, fill_header, payload, take_slot};
use crate::types::Slot;
use crate::walk::{resolve_at, resolve_slot_dir, start_path, unwalked, DirSource};

const KIND: EventKind = EventKind::UringUnlinkat;
const RENAME: EventKind = EventKind::UringRenameat;

/// A new slot for request `req` of `kind`, seeded from the scratch buffer
/// (every field read later is written first), its header filled.
#[inline(always)]
fn request_slot(req: u64, kind: EventKind) -> Option<&'static mut Slot<5>> {
    let Some(seed) = scratch() else {
        count_drop(kind, DropReason::Scratch);
        return None;
    };
    if URING_SLOTS
        .insert(req, unsafe { &*(seed as *const Slot<5>) }, 0)
        .is_err()
    {
        count_drop(kind, DropReason::SlotFull);
        return None;
    }
    let Some(slot) = URING_SLOTS.get_ptr_mut(req) else {
        count_drop(kind, DropReason::SlotFull);
        return None;
    };
    let slot = unsafe { &mut *slot };
    fill_header(slot, kind);
    Some(slot)
}

#[inline(always)]
fn submitter_wanted() -> bool {
    wanted((bpf_get_current_pid_tgid() >> 32) as u32)
}

#[tracepoint]
pub fn uring_submit(ctx: TracePointContext) -> u32 {
    let opcode = field::<u8>(&ctx, 32);
    if opcode == IORING_OP_RENAMEAT {
        unsafe { DIR_WALKS.tail_call(&ctx, DIR_WALK_URING_RENAME) };
        return 0;
    }
    if opcode != IORING_OP_UNLINKAT || !submitter_wanted() {
        return 0;
    }
    let req = field::<u64>(&ctx, 16);
    let Some((name, dfd, flags)) = UringReq(req).unlink() else {
        return 0;
    };
    let Some(slot) = request_slot(req, KIND) else {
        return 0;
    };
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

/// An `IORING_OP_RENAMEAT` request, reached by tail call from
/// `uring_submit`: its names and flags, and its old directory.
#[tracepoint]
pub fn uring_rename_submit(ctx: TracePointContext) -> u32 {
    if !submitter_wanted() {
        return 0;
    }
    let Some(cfg) = CONFIG.get(0) else {
        return 0;
    };
    let req = field::<u64>(&ctx, 16);
    let Some(r) = UringReq(req).rename() else {
        return 0;
    };
    let Some(slot) = request_slot(req, RENAME) else {
        return 0;
    };
    slot.strs[0] = read_kernel_str(&mut slot.bufs[0], r.old);
    slot.strs[2] = read_kernel_str(&mut slot.bufs[2], r.new);
    // The new directory is walked by `walk_uring_rename_new`.
    slot.strs[3] = ABSENT;
    let task = Task::current();
    let src = DirSource::of(r.old_dfd, slot.bufs[0][0]);
    let start = start_path(task, src);
    let (busy, _) = capture::reasons(cfg, decision_ns(cfg), start);
    let new_dir = unwalked(DirSource::of(r.new_dfd, slot.bufs[2][0]));
    let a: &mut RenameArgs = payload(slot);
    a.olddfd = r.old_dfd;
    a.newdfd = r.new_dfd;
    a.flags = r.flags;
    a.capture = CAP_ALL | busy;
    a.new_dir = new_dir;
    let mut dir = DirRef::default();
    slot.strs[1] = resolve_at(task, src, start, &mut dir, &mut slot.bufs[1]);
    payload::<RenameArgs, 5>(slot).old_dir = dir;
    unsafe { DIR_WALKS.tail_call(&ctx, DIR_WALK_URING_RENAME_NEW) };
    0
}

/// An io_uring rename's new directory, reached by tail call from
/// `uring_rename_submit`.
#[tracepoint]
pub fn walk_uring_rename_new(ctx: TracePointContext) -> u32 {
    let req = field::<u64>(&ctx, 16);
    let Some(slot) = URING_SLOTS.get_ptr_mut(req) else {
        return 0;
    };
    let slot = unsafe { &mut *slot };
    if slot.hdr.kind != RENAME as u32 {
        return 0;
    }
    let newdfd = payload::<RenameArgs, 5>(slot).newdfd;
    payload::<RenameArgs, 5>(slot).new_dir = resolve_slot_dir(slot, newdfd, 2, 3);
    0
}

#[tracepoint]
pub fn uring_complete(ctx: TracePointContext) -> u32 {
    let req = field::<u64>(&ctx, 16);
    let Some(slot) = URING_SLOTS.get_ptr_mut(req) else {
        return 0;
    };
    let slot = unsafe { &mut *slot };
    let ret = i64::from(field::<i32>(&ctx, 32));
    if slot.hdr.kind == KIND as u32 {
        emit_result(slot, KIND, ret, |_, _| {});
    } else if slot.hdr.kind == RENAME as u32 {
        emit_result(slot, RENAME, ret, |_, _| {});
    }
    let _ = URING_SLOTS.remove(req);
    0
}
