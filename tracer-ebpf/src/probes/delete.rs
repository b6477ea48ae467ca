//! `unlink(pathname)`, `unlinkat(dfd, pathname, flags)`, `rmdir(pathname)`.
//!
//! The starting directory of the lookup (the fd, the cwd or the root) is
//! resolved at entry to its mount and path: `unlinkat(dirfd, name)` carries
//! only a base name, and this is what says which mount it goes through.
//!
//! In race mode (the default) the capture decision comes first and uses only
//! cheap facts (the mount the directory is on, the BUSY map, the thread's
//! burst state): an ordinary deletion costs a few reads and no copy or walk.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_common::{
    config::{CFG_GUARD_CROSSINGS, DIR_WALK_DELETE, DIR_WALK_DELETE_TOP, GUARD_OFF},
    event::*,
    uapi::AT_FDCWD,
    Config, EventKind,
};

use super::{arg, ret};
use crate::burst::{self, top_pending};
use crate::capture::{
    first_byte, has_slash, mode_reason, mount_reason, node_busy, process_busy, since_last_ebusy,
};
use crate::clock::decision_ns;
use crate::core_access::{Dentry, KPath, Mount, Task};
use crate::dir_cache;
use crate::emit::{emit, read_user_str};
use crate::guard;
use crate::maps::{CONFIG, DIR_WALKS, EXTRA_REC, SLOTS2};
use crate::slot::{active_deletion, fill_header, fill_instant, finish, payload, take_slot};
use crate::types::Slot;
use crate::walk::{mount_class, resolve_known, start_path, unresolved, DirSource};

/// Why this deletion must be captured (`CAP_*`), 0 when it need not be:
/// the delete mode, the EBUSY facts (as `capture::reasons`), and what the
/// thread's burst (see `burst`) says about the mount the lookup starts on.
/// `since_busy` is the time since the node's last EBUSY, `recent` whether
/// it is within the busy window, both at `now`.
#[inline(always)]
fn capture_reasons(
    cfg: &Config,
    slot: &mut Slot<2>,
    start: Option<KPath>,
    now: u64,
    (since_busy, recent): (u64, bool),
) -> u32 {
    // `capture::process_reasons`, written out: with the call in its place
    // (the same tests, as LLVM then arranges them) the verifier goes
    // through 713,000 instructions of `enter_unlinkat` on 6.18 instead of
    // 276,000, too close to 6.1's million.
    let mut cap = mode_reason(cfg);
    if since_busy <= cfg.busy_grace_ns {
        cap |= CAP_AFTER_ANY_EBUSY;
    }
    if recent && process_busy(cfg, now) {
        cap |= CAP_BUSY;
    }
    let Some(start) = start else {
        return cap;
    };
    cap | mount_reason(cfg, now, recent, start)
        | burst::on_deletion(&mut slot.del, start.mnt, now, cfg.burst_gap_ns)
}

#[inline(always)]
fn enter(ctx: &TracePointContext, kind: EventKind, dfd: i32, path: u64, flags: u32) {
    let Some(slot) = take_slot(&SLOTS2, kind) else {
        return;
    };
    let Some(cfg) = CONFIG.get(0) else {
        return;
    };
    let task = Task::current();
    let now = decision_ns(cfg);
    let since_busy = since_last_ebusy(now);
    let recent = since_busy <= cfg.busy_window_ns;
    // Where the lookup starts: the root for an absolute name, else the fd
    // or the cwd. Every deletion is captured in `--deletes all` and every
    // one is looked at while an EBUSY is recent: read the name first. Else
    // (nearly always, in the default mode) a name given with a directory
    // fd is taken as relative to it, as `rm -rf` and `RemoveAll` give them,
    // and not read unless captured: the read is the costliest step of a
    // deletion nothing captures (over a quarter of its programs' samples
    // under `perf` on 6.18; 130 ns a call on an AMD EPYC). An absolute name
    // given with a directory fd then counts in the thread's burst
    // (`burst::on_deletion`) on the fd's mount; its record, if captured,
    // still starts at the root. A name given with `AT_FDCWD` decides
    // between the cwd and the root, and its first byte is read.
    let early = recent || mode_reason(cfg) != 0;
    // Initialised in full: an `Option` left part of a register unwritten
    // on one path, which the verifier refuses to read.
    let mut name = StrRef {
        len: 0,
        flags: STR_ABSENT,
    };
    let first = if early {
        name = read_user_str(&mut slot.bufs[0], path);
        if name.len > 0 {
            slot.bufs[0][0]
        } else {
            0
        }
    } else if dfd == AT_FDCWD {
        first_byte(path)
    } else {
        0
    };
    let mut src = DirSource::of(dfd, first);
    let mut start = start_path(task, src);
    let mut capture = capture_reasons(cfg, slot, start, now, (since_busy, recent));
    if capture & CAP_BUSY != 0 && cfg.guard != GUARD_OFF {
        // The process's unmount failed with EBUSY within the window.
        if let Some(start) = start {
            guard::on_access(cfg, start, GUARD_AT_DELETE, dfd, now);
        }
    }
    if capture == 0 && !recent {
        return;
    }
    if !early {
        // Captured by the burst alone: the name is read now, and an
        // absolute one given with a directory fd starts at the root after
        // all.
        name = read_user_str(&mut slot.bufs[0], path);
        if dfd != AT_FDCWD && name.len > 0 && slot.bufs[0][0] == b'/' {
            src = DirSource::Root;
            start = start_path(task, src);
        }
    }
    if capture == 0 {
        // An EBUSY is recent on the node: a path of several components may
        // go into the busy mount, whoever deletes.
        if !has_slash(&slot.bufs[0], name.len) {
            return;
        }
        capture = CAP_BUSY_PATH;
    }
    fill_header(slot, kind);
    slot.strs[0] = name;
    let origin = slot.del.origin_mnt_id;
    let a: &mut DeleteArgs = payload(slot);
    a.dfd = dfd;
    a.flags = flags;
    a.capture = capture;
    // Filled by `vfs_unlink`/`vfs_rmdir` (kernel probe set).
    a.victim = Default::default();
    // Where the burst began, whenever the capture had a race reason.
    a.origin_mnt_id = if capture & !CAP_ALL != 0 { origin } else { 0 };
    // The directory: reused from the thread's last walk, or walked by the
    // program reached by tail call (which does not return here).
    let Some(start) = start else {
        let mut dir = Default::default();
        slot.strs[1] = unresolved(src, &mut dir);
        payload::<DeleteArgs, 2>(slot).dir = dir;
        dir_cache::forget(&mut slot.del);
        return;
    };
    // The reuse is timed on the records' clock (its limit is a millisecond).
    let now = slot.start_ns;
    let key = dir_cache::key(start);
    if key.is_some_and(|k| dir_cache::hit(&slot.del, &k, now)) {
        let a: &mut DeleteArgs = payload(slot);
        a.dir.flags = (a.dir.flags & !DIR_FROM_ANY) | src.flag() | DIR_REUSED;
        return;
    }
    dir_cache::pending(&mut slot.del, start, key, now, src.flag());
    // Unread until the walk program says otherwise; so it stays if that
    // program is missing (never, once userspace has loaded it): the
    // deletion is still recorded, its directory flagged unread.
    payload::<DeleteArgs, 2>(slot).dir = DirRef {
        flags: src.flag() | DIR_READ_ERR,
        ..Default::default()
    };
    slot.strs[1] = StrRef {
        len: 0,
        flags: STR_ABSENT,
    };
    unsafe { DIR_WALKS.tail_call(ctx, DIR_WALK_DELETE) };
    dir_cache::forget(&mut slot.del);
}

/// The directory walk of a deletion, reached by tail call from `enter`
/// (one copy verified, not one per delete probe): resolves the start path
/// `dir_cache::pending` put in the thread's slot into the payload's `dir`
/// and string 1, and makes it reusable.
#[tracepoint]
pub fn walk_delete_dir(ctx: TracePointContext) -> u32 {
    let Some(slot) = active_deletion(&SLOTS2) else {
        return 0;
    };
    let d = &slot.del;
    let start = KPath {
        mnt: Mount(d.dir_mnt),
        dentry: Dentry(d.dir_dentry),
    };
    // The burst has just looked at this mount (`burst::on_deletion`).
    let (mnt_id, class) = if d.last_mnt == d.dir_mnt {
        (d.last_mnt_id, d.last_class)
    } else {
        (start.mnt.id(), mount_class(start.mnt))
    };
    let from = d.dir_from;
    let mut dir = DirRef::default();
    slot.strs[1] = resolve_known(
        Task::current(),
        from,
        start,
        mnt_id,
        class,
        &mut dir,
        &mut slot.bufs[1],
    );
    let readable = dir.flags & DIR_READ_ERR == 0;
    payload::<DeleteArgs, 2>(slot).dir = dir;
    if readable {
        dir_cache::commit(&mut slot.del);
    }
    if top_pending(&slot.del) {
        unsafe { DIR_WALKS.tail_call(&ctx, DIR_WALK_DELETE_TOP) };
    }
    0
}

/// The top directory of the thread's burst of deletions, recorded
/// (`EventKind::WalkTop`) once the burst has crossed into another mount
/// (`burst::top_pending`), before the record of the deletion that is being
/// made: the first directory the walk listed, walked to its path. Reached
/// by tail call from the deletion's directory walk (a deletion that reuses
/// the thread's last walk leaves it to the next one walked).
#[tracepoint]
pub fn walk_delete_top(_ctx: TracePointContext) -> u32 {
    let Some(slot) = active_deletion(&SLOTS2) else {
        return 0;
    };
    let d = &mut slot.del;
    if !top_pending(d) {
        return 0;
    }
    d.top = 0;
    // The listings went on from the burst's start (a new sequence of
    // listings within the burst would have another top).
    if d.listed_mnt != d.origin_mnt || d.listed_dentry == 0 {
        return 0;
    }
    let top = KPath {
        mnt: Mount(d.listed_mnt),
        dentry: Dentry(d.listed_dentry),
    };
    let origin = d.listed_mnt_id;
    let Some(rec) = EXTRA_REC.get_ptr_mut(0) else {
        return 0;
    };
    let rec = unsafe { &mut *rec };
    fill_instant(rec, EventKind::WalkTop, 0);
    let mut dir = DirRef::default();
    rec.strs[0] = resolve_known(
        Task::current(),
        DIR_FROM_FD,
        top,
        origin,
        mount_class(top.mnt),
        &mut dir,
        &mut rec.bufs[0],
    );
    let a: &mut WalkTopArgs = payload(rec);
    a.dir = dir;
    a.origin_mnt_id = origin;
    emit(rec, EventKind::WalkTop);
    0
}

#[inline(always)]
fn exit(ctx: &TracePointContext, kind: EventKind) {
    finish(&SLOTS2, kind, ret(ctx), |_, _| {});
}

#[tracepoint]
pub fn enter_unlink(ctx: TracePointContext) -> u32 {
    enter(&ctx, EventKind::Unlink, AT_FDCWD, arg(&ctx, 0), 0);
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
        &ctx,
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
    enter(&ctx, EventKind::Rmdir, AT_FDCWD, arg(&ctx, 0), 0);
    0
}

#[tracepoint]
pub fn exit_rmdir(ctx: TracePointContext) -> u32 {
    exit(&ctx, EventKind::Rmdir);
    0
}

/// `getdents64(fd, ...)`: no event; remembers the first mount of the
/// thread's current sequence of directory listings (see `burst`), and is
/// where the guard stops a recursive delete before it deletes anything in
/// the busy mount. Listings are rare next to deletions (one per directory
/// walked).
#[tracepoint]
pub fn enter_getdents64(ctx: TracePointContext) -> u32 {
    let Some(cfg) = CONFIG.get(0) else {
        return 0;
    };
    let fd = arg(&ctx, 0) as i32;
    let now = decision_ns(cfg);
    if cfg.guard != GUARD_OFF && guard::armed(cfg, node_busy(cfg, now), now) {
        if let Some(start) = start_path(Task::current(), DirSource::Fd(fd)) {
            guard::on_access(cfg, start, GUARD_AT_LISTING, fd, now);
        }
    }
    let Some(slot) = take_slot(&SLOTS2, EventKind::Unlinkat) else {
        return 0;
    };
    let walking = burst::on_listing(&mut slot.del, fd, cfg.burst_gap_ns, now);
    if walking && cfg.guard != GUARD_OFF && cfg.flags & CFG_GUARD_CROSSINGS != 0 {
        guard::on_crossing(cfg, &mut slot.del, fd);
    }
    0
}
