//! The new mount API: `open_tree`, `move_mount`, `mount_setattr`, `fsopen`,
//! `fsconfig`, `fsmount`. Every fd argument that names a mount or directory
//! is resolved in the kernel; the fds returned by `open_tree` and `fsmount`
//! are resolved at exit to the (detached) mount they hold.

use aya_ebpf::{
    helpers::generated::bpf_probe_read_user, macros::tracepoint, programs::TracePointContext,
};
use core::ffi::c_void;
use tracer_common::{
    config::DIR_WALK_MOVE_MOUNT_TO,
    event::{FsconfigArgs, FsmountArgs, FsopenArgs, MountSetattrArgs, MoveMountArgs, OpenTreeArgs},
    uapi::{
        EINVAL, FSCONFIG_SET_FD, FSCONFIG_SET_PATH, FSCONFIG_SET_PATH_EMPTY, FSCONFIG_SET_STRING,
        MOUNT_ATTR_IDMAP, MOUNT_ATTR_SIZE_VER0,
    },
    EventKind,
};

use super::{arg, ret};
use crate::core_access::Task;
use crate::emit::{read_user_str, ABSENT};
use crate::maps::{DIR_WALKS, SLOTS2, SLOTS5};
use crate::slot::{active, begin, finish, payload};
use crate::walk::{fd_ino, resolve, resolve_slot_dir, unwalked, DirSource};

// ---- open_tree(dfd, filename, flags) -------------------------------------

#[tracepoint]
pub fn enter_open_tree(ctx: TracePointContext) -> u32 {
    let Some(slot) = begin(&SLOTS5, EventKind::OpenTree) else {
        return 0;
    };
    let dfd = arg(&ctx, 0) as i32;
    slot.strs[0] = read_user_str(&mut slot.bufs[0], arg(&ctx, 1));
    let src = DirSource::of(dfd, slot.bufs[0][0]);
    let mut dir = Default::default();
    slot.strs[1] = resolve(Task::current(), src, &mut dir, &mut slot.bufs[1]);
    slot.strs[2] = ABSENT;
    let a: &mut OpenTreeArgs = payload(slot);
    a.dfd = dfd;
    a.flags = arg(&ctx, 2);
    a.dir = dir;
    a.result = Default::default();
    0
}

#[tracepoint]
pub fn exit_open_tree(ctx: TracePointContext) -> u32 {
    finish(&SLOTS5, EventKind::OpenTree, ret(&ctx), |slot, ret| {
        if ret >= 0 {
            let mut result = Default::default();
            let fd = DirSource::Fd(ret as i32);
            slot.strs[2] = resolve(Task::current(), fd, &mut result, &mut slot.bufs[2]);
            payload::<OpenTreeArgs, 5>(slot).result = result;
        }
    });
    0
}

// ---- move_mount(from_dfd, from_path, to_dfd, to_path, flags) --------------

/// Resolves the source here and the target in `walk_move_mount_to`, reached
/// by tail call: one walk per program (see `DIR_WALK_MOVE_MOUNT_TO`).
#[tracepoint]
pub fn enter_move_mount(ctx: TracePointContext) -> u32 {
    let Some(slot) = begin(&SLOTS5, EventKind::MoveMount) else {
        return 0;
    };
    let (from_dfd, to_dfd) = (arg(&ctx, 0) as i32, arg(&ctx, 2) as i32);
    slot.strs[0] = read_user_str(&mut slot.bufs[0], arg(&ctx, 1));
    slot.strs[1] = read_user_str(&mut slot.bufs[1], arg(&ctx, 3));
    // The target is walked by `walk_move_mount_to`.
    slot.strs[3] = ABSENT;
    let to = unwalked(DirSource::of(to_dfd, slot.bufs[1][0]));
    let a: &mut MoveMountArgs = payload(slot);
    a.from_dfd = from_dfd;
    a.to_dfd = to_dfd;
    a.flags = arg(&ctx, 4);
    a.to = to;
    let mut from = Default::default();
    let from_src = DirSource::of(from_dfd, slot.bufs[0][0]);
    slot.strs[2] = resolve(Task::current(), from_src, &mut from, &mut slot.bufs[2]);
    payload::<MoveMountArgs, 5>(slot).from = from;
    unsafe { DIR_WALKS.tail_call(&ctx, DIR_WALK_MOVE_MOUNT_TO) };
    0
}

/// `move_mount`'s target directory, reached by tail call from
/// `enter_move_mount`.
#[tracepoint]
pub fn walk_move_mount_to(_ctx: TracePointContext) -> u32 {
    let Some(slot) = active(&SLOTS5, EventKind::MoveMount) else {
        return 0;
    };
    let to_dfd = payload::<MoveMountArgs, 5>(slot).to_dfd;
    payload::<MoveMountArgs, 5>(slot).to = resolve_slot_dir(slot, to_dfd, 1, 3);
    0
}

#[tracepoint]
pub fn exit_move_mount(ctx: TracePointContext) -> u32 {
    finish(&SLOTS5, EventKind::MoveMount, ret(&ctx), |_, _| {});
    0
}

// ---- mount_setattr(dfd, path, flags, uattr, usize) -------------------------

/// `struct mount_attr`, version 0.
#[repr(C)]
#[derive(Default)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

#[tracepoint]
pub fn enter_mount_setattr(ctx: TracePointContext) -> u32 {
    let Some(slot) = begin(&SLOTS2, EventKind::MountSetattr) else {
        return 0;
    };
    let task = Task::current();
    let dfd = arg(&ctx, 0) as i32;
    let (uattr, usize_) = (arg(&ctx, 3), arg(&ctx, 4));
    slot.strs[0] = read_user_str(&mut slot.bufs[0], arg(&ctx, 1));
    let mut attr = MountAttr::default();
    let status = if usize_ < MOUNT_ATTR_SIZE_VER0 || uattr == 0 {
        -i64::from(EINVAL) // what the kernel answers
    } else {
        unsafe {
            bpf_probe_read_user(
                &mut attr as *mut MountAttr as *mut c_void,
                core::mem::size_of::<MountAttr>() as u32,
                uattr as *const c_void,
            )
        }
    };
    let userns_ino = if status == 0 && attr.attr_set & MOUNT_ATTR_IDMAP != 0 {
        fd_ino(task, attr.userns_fd as i32)
    } else {
        0
    };
    let a: &mut MountSetattrArgs = payload(slot);
    a.dfd = dfd;
    a.at_flags = arg(&ctx, 2) as u32;
    a.size = usize_;
    a.attr_set = attr.attr_set;
    a.attr_clr = attr.attr_clr;
    a.propagation = attr.propagation;
    a.userns_fd = attr.userns_fd;
    a.userns_ino = userns_ino;
    a.attr_status = status as i32;
    // The walk comes last, with no branch after it: 6.1's verifier explores
    // every path out of it again through each later branch, and gave up on
    // this program at a million instructions when the walk came first.
    let src = DirSource::of(dfd, slot.bufs[0][0]);
    let mut dir = Default::default();
    slot.strs[1] = resolve(task, src, &mut dir, &mut slot.bufs[1]);
    payload::<MountSetattrArgs, 2>(slot).dir = dir;
    0
}

#[tracepoint]
pub fn exit_mount_setattr(ctx: TracePointContext) -> u32 {
    finish(&SLOTS2, EventKind::MountSetattr, ret(&ctx), |_, _| {});
    0
}

// ---- fsopen(fs_name, flags) -------------------------------------------------

#[tracepoint]
pub fn enter_fsopen(ctx: TracePointContext) -> u32 {
    let Some(slot) = begin(&SLOTS2, EventKind::Fsopen) else {
        return 0;
    };
    slot.strs[0] = read_user_str(&mut slot.bufs[0], arg(&ctx, 0));
    payload::<FsopenArgs, 2>(slot).flags = arg(&ctx, 1);
    0
}

#[tracepoint]
pub fn exit_fsopen(ctx: TracePointContext) -> u32 {
    finish(&SLOTS2, EventKind::Fsopen, ret(&ctx), |_, _| {});
    0
}

// ---- fsconfig(fd, cmd, key, value, aux) --------------------------------------

#[tracepoint]
pub fn enter_fsconfig(ctx: TracePointContext) -> u32 {
    let Some(slot) = begin(&SLOTS5, EventKind::Fsconfig) else {
        return 0;
    };
    let cmd = arg(&ctx, 1) as u32;
    let aux = arg(&ctx, 4) as i32;
    slot.strs[0] = read_user_str(&mut slot.bufs[0], arg(&ctx, 2));
    let value_is_str = matches!(
        cmd,
        FSCONFIG_SET_STRING | FSCONFIG_SET_PATH | FSCONFIG_SET_PATH_EMPTY
    );
    slot.strs[1] = if value_is_str {
        read_user_str(&mut slot.bufs[1], arg(&ctx, 3))
    } else {
        ABSENT
    };
    let mut aux_dir = Default::default();
    slot.strs[2] = match cmd {
        FSCONFIG_SET_FD => resolve(
            Task::current(),
            DirSource::Fd(aux),
            &mut aux_dir,
            &mut slot.bufs[2],
        ),
        FSCONFIG_SET_PATH | FSCONFIG_SET_PATH_EMPTY => {
            let src = DirSource::of(aux, slot.bufs[1][0]);
            resolve(Task::current(), src, &mut aux_dir, &mut slot.bufs[2])
        }
        _ => ABSENT,
    };
    let a: &mut FsconfigArgs = payload(slot);
    a.fd = arg(&ctx, 0) as i32;
    a.cmd = cmd;
    a.aux = aux;
    a.aux_dir = aux_dir;
    0
}

#[tracepoint]
pub fn exit_fsconfig(ctx: TracePointContext) -> u32 {
    finish(&SLOTS5, EventKind::Fsconfig, ret(&ctx), |_, _| {});
    0
}

// ---- fsmount(fs_fd, flags, attr_flags) ---------------------------------------

#[tracepoint]
pub fn enter_fsmount(ctx: TracePointContext) -> u32 {
    let Some(slot) = begin(&SLOTS2, EventKind::Fsmount) else {
        return 0;
    };
    slot.strs[0] = ABSENT;
    let a: &mut FsmountArgs = payload(slot);
    a.fs_fd = arg(&ctx, 0) as i32;
    a.flags = arg(&ctx, 1) as u32;
    a.attr_flags = arg(&ctx, 2);
    a.result = Default::default();
    0
}

#[tracepoint]
pub fn exit_fsmount(ctx: TracePointContext) -> u32 {
    finish(&SLOTS2, EventKind::Fsmount, ret(&ctx), |slot, ret| {
        if ret >= 0 {
            let mut result = Default::default();
            let fd = DirSource::Fd(ret as i32);
            slot.strs[0] = resolve(Task::current(), fd, &mut result, &mut slot.bufs[0]);
            payload::<FsmountArgs, 2>(slot).result = result;
        }
    });
    0
}
