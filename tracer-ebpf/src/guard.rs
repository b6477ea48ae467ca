//! The guard: stop a process before it deletes through a mount whose
//! unmount it has just seen fail with EBUSY.
//!
//! The kernel does not say at the unmount's exit which mount the target
//! named, so the guard keeps the target's absolute path, normalized
//! lexically and hashed (`path_hash`), as a mark of the process
//! (`GUARDS`). When a marked process lists a directory (`getdents64`) or
//! deletes from a directory fd, the mount that directory is on is walked to
//! its mountpoint (the path the process sees it at, in the same mount
//! namespace), hashed the same way and looked up among the process's marks:
//! the mount at the unmounted target is the mount the unmount found busy.
//! A match acts at once, in the kernel, with `bpf_send_signal`: the signal
//! is delivered when the call returns, so a listing is stopped before
//! anything in the directory is deleted. A target with `..` or a cut path
//! leaves no mark (it cannot be compared lexically), nor does one through a
//! symlink match (its mount's path differs): both are said in the README.
//!
//! A successful unmount of the same target by the process removes its mark;
//! so does the busy window passing. Each mark is acted on once.
//!
//! With `--guard-crossings`, a recursive delete (a thread's sequence of
//! listings, see `burst`) that lists a directory on a bind of a directory,
//! or an id-mapped mount, other than the one it began on, whose root lies
//! outside the tree it is deleting (another filesystem, or not below the
//! walk's first directory), is acted on there too: no EBUSY is needed.
//!
//! `--guard deny` acts in BPF LSM programs instead (`probes/lsm.rs`, on
//! `security_path_unlink`, `_rmdir` and `_rename`), which are given the
//! directory the call removes from: `deny` decides there, with the same
//! marks, and a matching call returns `EPERM` rather than the process being
//! signalled. Listings are not denied (nothing is lost by listing); every
//! deletion and rename on the busy mount is, for the rest of the busy
//! window, and the first one is recorded. A crossing is decided at the
//! listing as above, and the thread's deletions on that mount are denied
//! while its walk goes on.

use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid,
    generated::{bpf_ktime_get_boot_ns, bpf_loop, bpf_probe_read_kernel, bpf_send_signal},
};
use core::ffi::c_void;
use tracer_common::{
    config::{Config, CFG_GUARD_CROSSINGS, GUARD_DENY, GUARD_KILL, GUARD_OFF, GUARD_STOP},
    event::{
        DirRef, GuardArgs, StrRef, CAP_IDMAPPED, CAP_SUBTREE, DIR_DETACHED, DIR_OUTSIDE_ROOT,
        DIR_READ_ERR, DIR_REL_UNKNOWN, DIR_TRUNCATED, GUARD_AT_CROSSING, GUARD_FD_UNKNOWN,
        STR_TRUNCATED,
    },
    limits::{STR_MAX, WALK_PATH_MAX},
    uapi::{EBUSY, SIGKILL, SIGSTOP},
    EventKind,
};

use crate::capture::{node_busy, process_busy};
use crate::core_access::{Dentry, KPath, Mount, Task};
use crate::emit::emit;
use crate::maps::{BUSY, EXTRA_REC, GUARDS, GUARD_SEEN, HASHBUF, SLOTS2, WALKBUF};
use crate::slot::{fill_instant, payload};
use crate::types::{DeleteState, GuardKey, GuardMark, Slot, HASH_PATH_MAX, REGION};
use crate::walk::{
    describe_mount, idmapped_before_6_3, mount_class, start_path, walk_into_buf, DirSource,
};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// One byte of the path (a `/` past its end closes the last component).
extern "C" fn hash_step(i: u64, _ctx: *mut c_void) -> i64 {
    let Some(c) = HASHBUF.get_ptr_mut(0) else {
        return 1;
    };
    let c = unsafe { &mut *c };
    let i = i as usize;
    let byte = if i < c.len as usize {
        c.buf[i & (HASH_PATH_MAX - 1)]
    } else {
        b'/'
    };
    if byte != b'/' {
        if byte == b'.' && c.dots == c.clen {
            c.dots += 1;
        }
        c.ch = (c.ch ^ byte as u64).wrapping_mul(FNV_PRIME);
        c.clen += 1;
        return 0;
    }
    // The end of a component: empty ones (`//`, a trailing `/`) and `.`
    // change nothing; `..` cannot be resolved without the filesystem.
    let only_dots = c.dots == c.clen;
    if c.clen == 2 && only_dots {
        c.fail = 1;
        return 1;
    }
    if c.clen != 0 && !(c.clen == 1 && only_dots) {
        c.h = (c.h ^ c.ch).wrapping_mul(FNV_PRIME);
        c.h = (c.h ^ c.clen as u64).wrapping_mul(FNV_PRIME);
    }
    c.ch = FNV_OFFSET;
    c.clen = 0;
    c.dots = 0;
    0
}

/// Hash of the path in `HASHBUF[..len]`, as a sequence of components (so
/// `/a//b/./c/` and `/a/b/c` hash alike); `None` for a path with `..`.
/// The state lives in the map, so the verifier checks the step once
/// rather than following up to `HASH_PATH_MAX` iterations.
#[inline(always)]
fn path_hash(len: u32) -> Option<u64> {
    let c = HASHBUF.get_ptr_mut(0)?;
    unsafe {
        (*c).len = len;
        (*c).fail = 0;
        (*c).h = FNV_OFFSET;
        (*c).ch = FNV_OFFSET;
        (*c).clen = 0;
        (*c).dots = 0;
        bpf_loop(len + 1, hash_step as *mut c_void, core::ptr::null_mut(), 0);
        ((*c).fail == 0).then_some((*c).h)
    }
}

/// The hash of an unmount's target made absolute: the walked cwd (or root)
/// in the slot's string 1, then `/`, then the target as given (string 0).
/// `None` when either was cut or not read, or the cwd was not walked whole.
#[inline(always)]
fn target_hash(slot: &Slot<2>, cwd_flags: u32) -> Option<u64> {
    let bad = DIR_TRUNCATED | DIR_DETACHED | DIR_OUTSIDE_ROOT | DIR_READ_ERR;
    if cwd_flags & bad != 0 || slot.strs[0].flags != 0 || slot.strs[1].flags != 0 {
        return None;
    }
    let cwd = slot.strs[1].len as usize;
    let target = slot.strs[0].len as usize;
    if cwd >= WALK_PATH_MAX || target >= STR_MAX || target == 0 {
        return None;
    }
    // Masks the verifier can follow (both bounds were just checked): the
    // lengths are read again, so the compiler cannot drop the masks.
    let cwd = unsafe { core::ptr::read_volatile(&slot.strs[1].len) } as usize & (WALK_PATH_MAX - 1);
    let target = unsafe { core::ptr::read_volatile(&slot.strs[0].len) } as usize & (STR_MAX - 1);
    let b = HASHBUF.get_ptr_mut(0)?;
    unsafe {
        let buf = (*b).buf.as_mut_ptr();
        bpf_probe_read_kernel(
            buf as *mut c_void,
            cwd as u32,
            slot.bufs[1].as_ptr() as *const c_void,
        );
        *buf.add(cwd) = b'/';
        bpf_probe_read_kernel(
            buf.add(cwd + 1) as *mut c_void,
            target as u32,
            slot.bufs[0].as_ptr() as *const c_void,
        );
    }
    path_hash((cwd + 1 + target) as u32)
}

#[inline(always)]
fn tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

/// An unmount of the thread's slot returned `ret` at `now` (the
/// decisions' clock, `clock::decision_ns`, as every `now` here): mark the
/// process on EBUSY, unmark it when the same target is unmounted.
#[inline(always)]
pub fn on_umount_exit(cfg: &Config, slot: &Slot<2>, cwd_flags: u32, ret: i64, now: u64) {
    if cfg.guard == GUARD_OFF {
        return;
    }
    let busy = ret == -i64::from(EBUSY);
    let tgid = tgid();
    if !busy && (ret != 0 || unsafe { BUSY.get(tgid) }.is_none()) {
        return;
    }
    let Some(target) = target_hash(slot, cwd_flags) else {
        return;
    };
    let key = GuardKey {
        tgid,
        ns: Task::current().mnt_ns(),
        target,
    };
    if busy {
        let mark = GuardMark {
            busy_ns: now,
            busy_ts_ns: unsafe { bpf_ktime_get_boot_ns() },
            acted: 0,
            _pad: 0,
        };
        let _ = GUARDS.insert(key, mark, 0);
    } else {
        let _ = GUARDS.remove(key);
    }
    // What was seen before may match the new mark, or no longer the old.
    let _ = GUARD_SEEN.remove(tgid);
}

/// The process, marked (its `BUSY` time is within the window), is about to
/// list (`trigger` `GUARD_AT_LISTING`) or delete in a directory on mount
/// `start.mnt` at `now`: act if that mount is at a target whose unmount
/// failed. Under `deny` the LSM programs decide (`deny`), not this.
#[inline(always)]
pub fn on_access(cfg: &Config, start: KPath, trigger: u32, fd: i32, now: u64) {
    if cfg.guard == GUARD_DENY {
        return;
    }
    let tgid = tgid();
    let mnt = start.mnt;
    if unsafe { GUARD_SEEN.get(tgid) }.is_some_and(|&m| m == mnt.0) {
        return;
    }
    let _ = GUARD_SEEN.insert(tgid, mnt.0, 0);
    // `marked_mount`'s steps, written out: through that call (or any
    // helper returning the mark) 6.18's verifier went through 20,000 more
    // instructions for each deletion entry program (188,000 -> 209,000 for
    // `enter_unlinkat`), whose headroom on 6.1 is thin.
    let Some(root) = mnt.root() else {
        return;
    };
    let mount = KPath { mnt, dentry: root };
    let Some(len) = mountpoint_into_hashbuf(mount) else {
        return;
    };
    let Some(target) = path_hash(len) else {
        return;
    };
    let key = GuardKey {
        tgid,
        ns: mnt.ns(),
        target,
    };
    let Some(mark) = GUARDS.get_ptr_mut(key) else {
        return;
    };
    let mark = unsafe { &mut *mark };
    if mark.acted != 0 || now.wrapping_sub(mark.busy_ns) > cfg.busy_window_ns {
        return;
    }
    mark.acted = 1;
    act(cfg, trigger, fd, mark.busy_ts_ns, 0, mount, len);
}

/// The process `tgid`'s mark of the target mount `mnt` is mounted at, when
/// it has one within the busy window at `now`; with the mount (at its root)
/// and the length of its mountpoint, walked into `HASHBUF`.
#[inline(always)]
fn marked_mount(
    cfg: &Config,
    tgid: u32,
    mnt: Mount,
    now: u64,
) -> Option<(&'static mut GuardMark, KPath, u32)> {
    let root = mnt.root()?;
    let mount = KPath { mnt, dentry: root };
    let len = mountpoint_into_hashbuf(mount)?;
    let target = path_hash(len)?;
    let key = GuardKey {
        tgid,
        ns: mnt.ns(),
        target,
    };
    let mark = unsafe { &mut *GUARDS.get_ptr_mut(key)? };
    if now.wrapping_sub(mark.busy_ns) > cfg.busy_window_ns {
        return None;
    }
    Some((mark, mount, len))
}

/// `--guard deny`: whether the current thread's call removing an entry of
/// directory `dir` (`trigger`: a deletion or a rename) at `now` must fail
/// with `EPERM`: `dir` is on a mount at a target whose unmount the process
/// saw fail with EBUSY within the busy window, or on the mount this
/// thread's recursive delete crossed into (`--guard-crossings`, decided at
/// its listing by `on_crossing`) while that walk goes on. The first denial
/// of a mark is recorded.
#[inline(always)]
pub fn deny(cfg: &Config, dir: KPath, trigger: u32, now: u64) -> bool {
    let mnt = dir.mnt;
    if cfg.flags & CFG_GUARD_CROSSINGS != 0 {
        let tid = bpf_get_current_pid_tgid() as u32;
        if let Some(slot) = unsafe { SLOTS2.get(tid) } {
            let d = &slot.del;
            let walking = now.wrapping_sub(d.listed_ns) <= cfg.burst_gap_ns
                || now.wrapping_sub(d.last_ns) <= cfg.burst_gap_ns;
            if d.crossing_acted_mnt == mnt.0 && walking {
                return true;
            }
        }
    }
    if !armed(cfg, node_busy(cfg, now), now) {
        return false;
    }
    let tgid = tgid();
    if unsafe { GUARD_SEEN.get(tgid) }.is_some_and(|&m| m == mnt.0) {
        return false;
    }
    let Some((mark, mount, len)) = marked_mount(cfg, tgid, mnt, now) else {
        // Not a marked mount: not looked at again until a mark changes.
        let _ = GUARD_SEEN.insert(tgid, mnt.0, 0);
        return false;
    };
    if mark.acted == 0 {
        mark.acted = 1;
        act(
            cfg,
            trigger,
            GUARD_FD_UNKNOWN,
            mark.busy_ts_ns,
            0,
            mount,
            len,
        );
    }
    true
}

/// Send the configured signal to the current process (none when
/// reporting) and emit the guard's record: `mount` is the mount walked
/// into, its mountpoint in `HASHBUF[..len]`; `busy_ns` the boot time of
/// the EBUSY it acts on (0: none).
#[inline(always)]
fn act(
    cfg: &Config,
    trigger: u32,
    fd: i32,
    busy_ns: u64,
    origin_mnt_id: u32,
    mount: KPath,
    len: u32,
) {
    let signal = match cfg.guard {
        GUARD_STOP => SIGSTOP,
        GUARD_KILL => SIGKILL,
        _ => 0,
    };
    let ret = if signal != 0 {
        unsafe { bpf_send_signal(signal) }
    } else {
        0
    };
    record(
        GuardArgs {
            action: cfg.guard,
            trigger,
            fd,
            signal,
            busy_ns,
            mount: DirRef::default(),
            origin_mnt_id,
            _pad: 0,
        },
        mount,
        len,
        ret,
    );
}

/// Parents looked at, at most, to tell whether a bind's root is inside the
/// tree a walk is deleting; deeper is not acted on.
const ANCESTORS_MAX: u32 = 64;

/// Whether directory `root` (a bind's root) is outside the tree under
/// `top`: on another filesystem, or not below it. `false` when it cannot
/// tell (unreadable, deeper than `ANCESTORS_MAX`).
#[inline(always)]
fn outside_tree(root: Dentry, top: Dentry) -> bool {
    if root.dev() != top.dev() {
        return true;
    }
    let mut d = root;
    let mut i = 0;
    while i < ANCESTORS_MAX {
        if d == top {
            return false;
        }
        let Some(p) = d.parent() else {
            return false;
        };
        if p == d {
            return true; // the filesystem's root, without meeting `top`
        }
        d = p;
        i += 1;
    }
    false
}

/// `--guard-crossings`: the thread, in a sequence of listings that began on
/// another mount (`d.listed_*`: a recursive delete), lists directory `fd`
/// now: act when its mount is a bind of a directory, or id-mapped,
/// whose root is outside the tree the walk is deleting. Once per mount
/// and walk.
#[inline(always)]
pub fn on_crossing(cfg: &Config, d: &mut DeleteState, fd: i32) {
    let Some(p) = start_path(Task::current(), DirSource::Fd(fd)) else {
        return;
    };
    let mnt = p.mnt;
    if mnt.0 == d.listed_mnt || mnt.0 == d.crossing_acted_mnt {
        return;
    }
    if mount_class(mnt) & (CAP_SUBTREE | CAP_IDMAPPED) == 0 {
        return;
    }
    let Some(root) = mnt.root() else {
        return;
    };
    if !outside_tree(root, Dentry(d.listed_dentry)) {
        return;
    }
    d.crossing_acted_mnt = mnt.0;
    let mount = KPath { mnt, dentry: root };
    let len = mountpoint_into_hashbuf(mount).unwrap_or(0);
    act(cfg, GUARD_AT_CROSSING, fd, 0, d.listed_mnt_id, mount, len);
}

/// Walk `mount` (a mount's root) to its mountpoint, as the process sees
/// it, into `HASHBUF`; `None` when the path is not whole or not in the
/// process's view.
#[inline(always)]
fn mountpoint_into_hashbuf(mount: KPath) -> Option<u32> {
    let w = walk_into_buf(Task::current(), mount);
    let bad = DIR_TRUNCATED | DIR_DETACHED | DIR_OUTSIDE_ROOT | DIR_READ_ERR | DIR_REL_UNKNOWN;
    let pos = w.pos as usize;
    if w.flags & bad != 0 || pos > WALK_PATH_MAX {
        return None;
    }
    // Masked where it is used: the verifier of older kernels (6.1) loses
    // the bound checked above once the value is spilled to the stack (read
    // again, so the compiler keeps the mask).
    let len = WALK_PATH_MAX - pos;
    let len = unsafe { core::ptr::read_volatile(&len) } & (2 * WALK_PATH_MAX - 1);
    let wb = WALKBUF.get_ptr(0)?;
    let hb = HASHBUF.get_ptr_mut(0)?;
    unsafe {
        bpf_probe_read_kernel(
            (*hb).buf.as_mut_ptr() as *mut c_void,
            len as u32,
            (*wb).buf.as_ptr().add(pos) as *const c_void,
        )
    };
    Some(len as u32)
}

/// Emit the guard's record: the process's header, `args` with the mount's
/// identity, and its mountpoint (in `HASHBUF[..len]`).
#[inline(always)]
fn record(args: GuardArgs, mount: KPath, len: u32, ret: i64) {
    let Some(slot) = EXTRA_REC.get_ptr_mut(0) else {
        return;
    };
    let slot = unsafe { &mut *slot };
    let Some(hb) = HASHBUF.get_ptr(0) else {
        return;
    };
    let len = len as usize;
    let n = if len > REGION - 1 { REGION - 1 } else { len };
    if n == 0 {
        slot.bufs[0][0] = b'/';
    } else {
        unsafe {
            bpf_probe_read_kernel(
                slot.bufs[0].as_mut_ptr() as *mut c_void,
                n as u32,
                (*hb).buf.as_ptr() as *const c_void,
            )
        };
    }
    slot.strs[0] = StrRef {
        len: n.max(1) as u16,
        flags: if n < len { STR_TRUNCATED } else { 0 },
    };
    fill_instant(slot, EventKind::Guard, ret);
    let a: &mut GuardArgs = payload(slot);
    *a = args;
    let class = mount_class(mount.mnt);
    describe_mount(mount, mount.mnt.id(), class, &mut a.mount);
    idmapped_before_6_3(mount.mnt, class, &mut a.mount);
    // The whole path is the mountpoint: the part inside the mount is `/`.
    a.mount.rel_off = n as u32;
    emit(slot, EventKind::Guard);
}

/// Whether the guard has anything to decide for this process: it is on, an
/// EBUSY is `recent` on the node, and this process had one within the busy
/// window. The probes ask this before resolving anything for the guard.
#[inline(always)]
pub fn armed(cfg: &Config, recent: bool, now: u64) -> bool {
    cfg.guard != GUARD_OFF && recent && process_busy(cfg, now)
}
