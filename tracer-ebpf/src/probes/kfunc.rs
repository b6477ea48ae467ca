//! The kernel-function probe set (`--probes kernel`): hooks on functions the
//! deletion and unmount syscalls reach, adding to the call the syscall
//! tracepoints already took (same slot, same record) what those cannot
//! see:
//!
//! - `vfs_unlink(idmap, dir, dentry, ..)` and `vfs_rmdir(idmap, dir,
//!   dentry)`: the inode removed (number, size, link count, mode), before
//!   it goes. The first call of a syscall wins: overlayfs calls them again
//!   on its upper layer from inside the outer one.
//! - `path_umount(path, flags)`: the mount the kernel resolved the target
//!   to (no path lookup by userspace).
//! - `io_unlinkat(req, ..)` entry and return: which io_uring request a
//!   thread (the submitter, an io-wq worker or the SQPOLL thread) is
//!   issuing, so its `vfs_unlink`/`vfs_rmdir` fills that request's slot.
//!
//! The argument positions are the same on every kernel since 5.12 (the
//! first argument's type changed, `user_namespace` then `mnt_idmap`, not its
//! place). Each hook comes as an fentry/fexit program (BPF trampolines) and
//! a kprobe/kretprobe one; userspace attaches one of the two variants
//! (`tracer/src/probes.rs`).

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{fentry, fexit, kprobe, kretprobe},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};
use tracer_common::{
    event::{DeleteArgs, UmountArgs, Victim, VICTIM_RMDIR, VICTIM_SEEN},
    EventKind,
};

use crate::core_access::{Dentry, KPath};
use crate::maps::{SLOTS2, URING_ISSUING, URING_SLOTS};
use crate::slot::{active, active_deletion, payload};
use crate::types::Slot;
use crate::walk::{describe_mount, mount_class};

#[inline(always)]
fn tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

/// `vfs_unlink`/`vfs_rmdir` is removing `dentry`: the deletion this thread
/// is making, a captured syscall deletion in its slot (io_uring's never are:
/// theirs are keyed by request), else the io_uring request it is issuing.
#[inline(always)]
fn on_remove(dentry: u64, rmdir: bool) {
    if let Some(slot) = active_deletion(&SLOTS2) {
        record_victim(slot, dentry, rmdir);
        return;
    }
    let Some(&req) = (unsafe { URING_ISSUING.get(tid()) }) else {
        return;
    };
    let Some(slot) = URING_SLOTS.get_ptr_mut(req) else {
        return;
    };
    let slot = unsafe { &mut *slot };
    if slot.hdr.kind == EventKind::UringUnlinkat as u32 {
        record_victim(slot, dentry, rmdir);
    }
}

/// The inode `dentry` of a deletion in flight in `slot`, into its payload.
#[inline(always)]
fn record_victim<const N: usize>(slot: &mut Slot<N>, dentry: u64, rmdir: bool) {
    let a: &mut DeleteArgs = payload(slot);
    if a.victim.flags & VICTIM_SEEN != 0 {
        return; // a nested call (overlayfs on its upper layer)
    }
    let d = Dentry(dentry);
    let Some(i) = d.inode() else {
        return;
    };
    a.victim = Victim {
        ino: i.ino,
        size: i.size,
        dev: d.dev(),
        nlink: i.nlink,
        mode: i.mode,
        flags: VICTIM_SEEN | if rmdir { VICTIM_RMDIR } else { 0 },
    };
}

/// `path_umount` is unmounting the mount at `path`.
#[inline(always)]
fn on_umount(path: u64) {
    let Some(slot) = active(&SLOTS2, EventKind::Umount) else {
        return;
    };
    let Some(p) = KPath::at(path) else {
        return;
    };
    // Not a mount's root: the unmount fails with EINVAL, there is no mount.
    if p.mnt.root() != Some(p.dentry) {
        return;
    }
    let a: &mut UmountArgs = payload(slot);
    if a.target.flags != 0 {
        return;
    }
    describe_mount(p, p.mnt.id(), mount_class(p.mnt), &mut a.target);
}

#[inline(always)]
fn on_uring_issue(req: u64) {
    let _ = URING_ISSUING.insert(tid(), req, 0);
}

#[inline(always)]
fn on_uring_issued() {
    let _ = URING_ISSUING.remove(tid());
}

#[fentry(function = "vfs_unlink")]
pub fn fentry_vfs_unlink(ctx: FEntryContext) -> u32 {
    on_remove(ctx.arg::<u64>(2), false);
    0
}

#[kprobe]
pub fn kprobe_vfs_unlink(ctx: ProbeContext) -> u32 {
    on_remove(ctx.arg::<u64>(2).unwrap_or(0), false);
    0
}

#[fentry(function = "vfs_rmdir")]
pub fn fentry_vfs_rmdir(ctx: FEntryContext) -> u32 {
    on_remove(ctx.arg::<u64>(2), true);
    0
}

#[kprobe]
pub fn kprobe_vfs_rmdir(ctx: ProbeContext) -> u32 {
    on_remove(ctx.arg::<u64>(2).unwrap_or(0), true);
    0
}

#[fentry(function = "path_umount")]
pub fn fentry_path_umount(ctx: FEntryContext) -> u32 {
    on_umount(ctx.arg::<u64>(0));
    0
}

#[kprobe]
pub fn kprobe_path_umount(ctx: ProbeContext) -> u32 {
    on_umount(ctx.arg::<u64>(0).unwrap_or(0));
    0
}

#[fentry(function = "io_unlinkat")]
pub fn fentry_io_unlinkat(ctx: FEntryContext) -> u32 {
    on_uring_issue(ctx.arg::<u64>(0));
    0
}

#[kprobe]
pub fn kprobe_io_unlinkat(ctx: ProbeContext) -> u32 {
    on_uring_issue(ctx.arg::<u64>(0).unwrap_or(0));
    0
}

#[fexit(function = "io_unlinkat")]
pub fn fexit_io_unlinkat(_ctx: FExitContext) -> u32 {
    on_uring_issued();
    0
}

#[kretprobe]
pub fn kretprobe_io_unlinkat(_ctx: RetProbeContext) -> u32 {
    on_uring_issued();
    0
}
