//! `mount(source, target, fstype, flags, data)` and `umount2(target, flags)`.
//!
//! The target is a user path; the caller's cwd (or root, for absolute
//! targets) is resolved so a relative target can be placed. Which mount an
//! unmount hit is resolved by userspace from its mount table.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use tracer_common::{
    event::{MountArgs, UmountArgs},
    uapi::{AT_FDCWD, EBUSY},
    EventKind,
};

use super::{arg, ret};
use crate::clock::decision_ns;
use crate::core_access::Task;
use crate::emit::read_user_str;
use crate::guard;
use crate::maps::{BUSY, CONFIG, LAST_BUSY, SLOTS2, SLOTS5};
use crate::slot::{active, begin, finish, payload};
use crate::walk::{resolve, DirSource};

#[tracepoint]
pub fn enter_mount(ctx: TracePointContext) -> u32 {
    let Some(slot) = begin(&SLOTS5, EventKind::Mount) else {
        return 0;
    };
    slot.strs[0] = read_user_str(&mut slot.bufs[0], arg(&ctx, 0));
    slot.strs[1] = read_user_str(&mut slot.bufs[1], arg(&ctx, 1));
    slot.strs[2] = read_user_str(&mut slot.bufs[2], arg(&ctx, 2));
    slot.strs[3] = read_user_str(&mut slot.bufs[3], arg(&ctx, 4));
    let src = DirSource::of(AT_FDCWD, slot.bufs[1][0]);
    let mut cwd = Default::default();
    slot.strs[4] = resolve(Task::current(), src, &mut cwd, &mut slot.bufs[4]);
    let a: &mut MountArgs = payload(slot);
    a.flags = arg(&ctx, 3);
    a.cwd = cwd;
    0
}

#[tracepoint]
pub fn exit_mount(ctx: TracePointContext) -> u32 {
    finish(&SLOTS5, EventKind::Mount, ret(&ctx), |_, _| {});
    0
}

#[tracepoint]
pub fn enter_umount(ctx: TracePointContext) -> u32 {
    let Some(slot) = begin(&SLOTS2, EventKind::Umount) else {
        return 0;
    };
    slot.strs[0] = read_user_str(&mut slot.bufs[0], arg(&ctx, 0));
    let src = DirSource::of(AT_FDCWD, slot.bufs[0][0]);
    let mut cwd = Default::default();
    slot.strs[1] = resolve(Task::current(), src, &mut cwd, &mut slot.bufs[1]);
    let a: &mut UmountArgs = payload(slot);
    a.flags = arg(&ctx, 1);
    a.cwd = cwd;
    // Filled by `path_umount` (kernel probe set).
    a.target = Default::default();
    0
}

#[tracepoint]
pub fn exit_umount(ctx: TracePointContext) -> u32 {
    let ret = ret(&ctx);
    let Some(cfg) = CONFIG.get(0) else {
        return 0;
    };
    let now = decision_ns(cfg);
    if let Some(slot) = active(&SLOTS2, EventKind::Umount) {
        // Before `BUSY` is set: a success unmarks only a marked process.
        let cwd = payload::<UmountArgs, 2>(slot).cwd;
        guard::on_umount_exit(cfg, slot, cwd.flags, ret, now);
    }
    if ret == -i64::from(EBUSY) {
        // Arm deletion capture for this process before it can delete
        // anything: independent of the filters and of userspace.
        let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        let _ = BUSY.insert(tgid, now, 0);
        if let Some(last) = LAST_BUSY.get_ptr_mut(0) {
            unsafe { *last = now };
        }
    }
    finish(&SLOTS2, EventKind::Umount, ret, |_, _| {});
    0
}
