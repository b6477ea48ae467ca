//! `rename(old, new)`, `renameat(olddfd, old, newdfd, new)`,
//! `renameat2(olddfd, old, newdfd, new, flags)`.
//!
//! Both paths of a rename are on one mount (the kernel refuses others with
//! `EXDEV`), so a rename through a mount whose unmount failed moves or
//! replaces what that mount holds: it is captured like a deletion, on the
//! EBUSY facts (`capture::reasons`) of the mount the old path's lookup
//! starts on, and on the old path's shape when an EBUSY is recent
//! (`CAP_BUSY_PATH`), or always with `--deletes all`. Renames are no part
//! of a recursive delete's burst, and the guard does not act on them.
//!
//! The entry programs decide and copy the names; the old directory is
//! walked by a program they reach by tail call (`walk_rename_old`), which
//! reaches the new one's (`walk_rename_new`): one walk per program, as 6.1's
//! verifier needs.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_common::{
    config::{DIR_WALK_RENAME_NEW, DIR_WALK_RENAME_OLD},
    event::{RenameArgs, CAP_BUSY_PATH},
    uapi::AT_FDCWD,
    EventKind,
};

use super::{arg, ret};
use crate::capture::{self, first_byte, has_slash, mode_reason};
use crate::clock::decision_ns;
use crate::core_access::Task;
use crate::emit::{read_user_str, ABSENT};
use crate::maps::{CONFIG, DIR_WALKS, SLOTS5};
use crate::slot::{active_rename, fill_header, finish, payload, take_slot};
use crate::walk::{resolve_slot_dir, start_path, unwalked, DirSource};

#[inline(always)]
fn enter(
    ctx: &TracePointContext,
    kind: EventKind,
    olddfd: i32,
    old: u64,
    newdfd: i32,
    new: u64,
    flags: u32,
) {
    let Some(cfg) = CONFIG.get(0) else {
        return;
    };
    let Some(slot) = take_slot(&SLOTS5, kind) else {
        return;
    };
    let task = Task::current();
    // A value the compiler cannot see: with `rename`'s constant `AT_FDCWD`
    // it dropped the `Fd` case and spilled the enum's unset payload, which
    // the verifier refuses ("R4 !read_ok").
    let olddfd = unsafe { core::ptr::read_volatile(&olddfd) };
    let old_src = DirSource::of(olddfd, first_byte(old));
    let start = start_path(task, old_src);
    let (busy, recent) = capture::reasons(cfg, decision_ns(cfg), start);
    let mut capture = busy | mode_reason(cfg);
    if capture == 0 && !recent {
        return;
    }
    let old_name = read_user_str(&mut slot.bufs[0], old);
    if capture == 0 {
        // An EBUSY is recent on the node: an old path of several components
        // may go into the busy mount, whoever renames. (Its shape alone
        // says: the new path is on the same mount, or the rename fails.)
        if !has_slash(&slot.bufs[0], old_name.len) {
            return;
        }
        capture = CAP_BUSY_PATH;
    }
    let new_name = read_user_str(&mut slot.bufs[2], new);
    fill_header(slot, kind);
    slot.strs[0] = old_name;
    slot.strs[2] = new_name;
    // Both directories are walked by the programs reached by tail call.
    slot.strs[1] = ABSENT;
    slot.strs[3] = ABSENT;
    let new_dir = unwalked(DirSource::of(newdfd, slot.bufs[2][0]));
    let a: &mut RenameArgs = payload(slot);
    a.olddfd = olddfd;
    a.newdfd = newdfd;
    a.flags = flags;
    a.capture = capture;
    a.old_dir = unwalked(old_src);
    a.new_dir = new_dir;
    unsafe { DIR_WALKS.tail_call(ctx, DIR_WALK_RENAME_OLD) };
}

/// A rename's old directory, reached by tail call from the entry programs
/// (one walk per program, none in them: 6.1's verifier gave up on an entry
/// program holding the walk), and reaching the new one's.
#[tracepoint]
pub fn walk_rename_old(ctx: TracePointContext) -> u32 {
    let Some(slot) = active_rename(&SLOTS5) else {
        return 0;
    };
    let olddfd = payload::<RenameArgs, 5>(slot).olddfd;
    payload::<RenameArgs, 5>(slot).old_dir = resolve_slot_dir(slot, olddfd, 0, 1);
    unsafe { DIR_WALKS.tail_call(&ctx, DIR_WALK_RENAME_NEW) };
    0
}

/// A rename's new directory, reached by tail call from `walk_rename_old`.
#[tracepoint]
pub fn walk_rename_new(_ctx: TracePointContext) -> u32 {
    let Some(slot) = active_rename(&SLOTS5) else {
        return 0;
    };
    let newdfd = payload::<RenameArgs, 5>(slot).newdfd;
    payload::<RenameArgs, 5>(slot).new_dir = resolve_slot_dir(slot, newdfd, 2, 3);
    0
}

#[inline(always)]
fn exit(ctx: &TracePointContext, kind: EventKind) {
    finish(&SLOTS5, kind, ret(ctx), |_, _| {});
}

#[tracepoint]
pub fn enter_rename(ctx: TracePointContext) -> u32 {
    let (old, new) = (arg(&ctx, 0), arg(&ctx, 1));
    enter(&ctx, EventKind::Rename, AT_FDCWD, old, AT_FDCWD, new, 0);
    0
}

#[tracepoint]
pub fn exit_rename(ctx: TracePointContext) -> u32 {
    exit(&ctx, EventKind::Rename);
    0
}

#[tracepoint]
pub fn enter_renameat(ctx: TracePointContext) -> u32 {
    let (olddfd, old) = (arg(&ctx, 0) as i32, arg(&ctx, 1));
    let (newdfd, new) = (arg(&ctx, 2) as i32, arg(&ctx, 3));
    enter(&ctx, EventKind::Renameat, olddfd, old, newdfd, new, 0);
    0
}

#[tracepoint]
pub fn exit_renameat(ctx: TracePointContext) -> u32 {
    exit(&ctx, EventKind::Renameat);
    0
}

#[tracepoint]
pub fn enter_renameat2(ctx: TracePointContext) -> u32 {
    let (olddfd, old) = (arg(&ctx, 0) as i32, arg(&ctx, 1));
    let (newdfd, new) = (arg(&ctx, 2) as i32, arg(&ctx, 3));
    let flags = arg(&ctx, 4) as u32;
    enter(&ctx, EventKind::Renameat2, olddfd, old, newdfd, new, flags);
    0
}

#[tracepoint]
pub fn exit_renameat2(ctx: TracePointContext) -> u32 {
    exit(&ctx, EventKind::Renameat2);
    0
}
