//! `unlink(pathname)`, `unlinkat(dfd, pathname, flags)`, `rmdir(pathname)`.
//!
//! The starting directory of the lookup (the fd, the cwd or the root) is
//! resolved at entry to its mount and path: `unlinkat(dirfd, name)` carries
//! only a base name, and this is what says which mount it goes through.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_common::{event::DeleteArgs, EventKind};

use super::{arg, ret};
use crate::core_access::Task;
use crate::emit::{begin, finish, payload, read_user_str};
use crate::maps::SLOTS2;
use crate::walk::{resolve, DirSource, AT_FDCWD};

#[inline(always)]
fn enter(kind: EventKind, dfd: i32, path: u64, flags: u32) {
    let Some(slot) = begin(&SLOTS2, kind) else {
        return;
    };
    slot.strs[0] = read_user_str(&mut slot.bufs[0], path);
    let src = DirSource::of(dfd, slot.bufs[0][0]);
    let a: &mut DeleteArgs = payload(slot);
    a.dfd = dfd;
    a.flags = flags;
    let mut dir = Default::default();
    slot.strs[1] = resolve(Task::current(), src, &mut dir, &mut slot.bufs[1]);
    payload::<DeleteArgs, 2>(slot).dir = dir;
}

#[inline(always)]
fn exit(ctx: &TracePointContext, kind: EventKind) {
    finish(&SLOTS2, kind, ret(ctx), |_, _| {});
}

#[tracepoint]
pub fn enter_unlink(ctx: TracePointContext) -> u32 {
    enter(EventKind::Unlink, AT_FDCWD, arg(&ctx, 0), 0);
    0
}

#[tracepoint]
pub fn exit_unlink(ctx: TracePointContext) -> u32 {
    exit(&ctx, EventKind::Unlink);
    0
}

#[tracepoint]
pub fn enter_unlinkat(ctx: TracePointContext) -> u32 {
    enter(
        EventKind::Unlinkat,
        arg(&ctx, 0) as i32,
        arg(&ctx, 1),
        arg(&ctx, 2) as u32,
    );
    0
}

#[tracepoint]
pub fn exit_unlinkat(ctx: TracePointContext) -> u32 {
    exit(&ctx, EventKind::Unlinkat);
    0
}

#[tracepoint]
pub fn enter_rmdir(ctx: TracePointContext) -> u32 {
    enter(EventKind::Rmdir, AT_FDCWD, arg(&ctx, 0), 0);
    0
}

#[tracepoint]
pub fn exit_rmdir(ctx: TracePointContext) -> u32 {
    exit(&ctx, EventKind::Rmdir);
    0
}
