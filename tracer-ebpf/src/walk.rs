//! Resolve a directory (an fd, the task's cwd or root) to its mount and its
//! path, inside the kernel, at the moment of the call.
//!
//! The path is built like the kernel's `d_path`: from the dentry up through
//! `d_parent`, crossing to `mnt_parent` at each mount root (via
//! `mnt_mountpoint`), until the task's root. Components are written
//! backwards into a per-CPU buffer. The walk keeps at most
//! `WALK_MAX_COMPONENTS` components in `WALK_PATH_MAX` bytes and crosses at
//! most `WALK_MAX_MOUNTS` mount boundaries; a directory beyond any of these
//! limits keeps the components nearest it and is flagged truncated.

use aya_ebpf::helpers::generated::{bpf_loop, bpf_probe_read_kernel};
use core::ffi::c_void;
use tracer_common::{
    event::*,
    limits::{NAME_MAX, WALK_MAX_COMPONENTS, WALK_MAX_MOUNTS, WALK_PATH_MAX},
    uapi::{AT_FDCWD, S_IFDIR},
};

use crate::core_access::{Dentry, FsPath, KPath, Mount, Task};
use crate::maps::WALKBUF;
use crate::types::{Slot, REGION};

/// Where a lookup starts.
#[derive(Clone, Copy)]
pub enum DirSource {
    Fd(i32),
    Cwd,
    Root,
}

impl DirSource {
    /// The starting directory of a `*at()` lookup of a path whose first byte
    /// is `first`: the root for absolute paths, else the cwd or the fd.
    #[inline(always)]
    pub fn of(dfd: i32, first: u8) -> DirSource {
        if first == b'/' {
            DirSource::Root
        } else if dfd == AT_FDCWD {
            DirSource::Cwd
        } else {
            DirSource::Fd(dfd)
        }
    }

    /// Its `DIR_FROM_*` flag.
    #[inline(always)]
    pub fn flag(self) -> u32 {
        match self {
            DirSource::Fd(_) => DIR_FROM_FD,
            DirSource::Cwd => DIR_FROM_CWD,
            DirSource::Root => DIR_FROM_ROOT,
        }
    }
}

/// What a walk's steps change from one step to the next (the pointers
/// aside): see `walk_into_buf` for why it is set through a helper.
#[repr(C)]
#[derive(Clone, Copy)]
struct WalkState {
    pos: u32,
    rel_pos: u32,
    flags: u32,
    crossed: u32,
    done: u32,
    /// Components prepended so far.
    components: u32,
    /// Mount boundaries crossed so far.
    mounts: u32,
}

#[repr(C)]
struct WalkCtx {
    mnt: u64,
    dentry: u64,
    mnt_root: u64,
    root_mnt: u64,
    root_dentry: u64,
    caller_ns: u32,
    st: WalkState,
}

/// `bpf_loop` iterations of a walk: every step prepends a component (at most
/// `WALK_MAX_COMPONENTS`), crosses a mount boundary (at most
/// `WALK_MAX_MOUNTS`) or stops, so the walk always stops within this many
/// steps. The limits count components and crossings, not steps: the root is
/// found on the step after the last component, so a budget of
/// `WALK_MAX_COMPONENTS` steps would flag a path of exactly that many.
const WALK_STEPS: u32 = WALK_MAX_COMPONENTS + WALK_MAX_MOUNTS + 1;

impl WalkCtx {
    #[inline(always)]
    fn stop(&mut self, flags: u32) -> i64 {
        self.st.flags |= flags;
        self.st.done = 1;
        1
    }
    #[inline(always)]
    fn mark_mount_boundary(&mut self) {
        if self.st.crossed == 0 {
            self.st.rel_pos = self.st.pos;
            self.st.crossed = 1;
        }
    }
}

/// One step of the walk: prepend one component or cross one mount.
extern "C" fn walk_step(_index: u64, ctx: *mut c_void) -> i64 {
    let c = unsafe { &mut *(ctx as *mut WalkCtx) };
    let Some(wb) = WALKBUF.get_ptr_mut(0) else {
        return c.stop(DIR_READ_ERR);
    };
    if c.dentry == c.root_dentry && c.mnt == c.root_mnt {
        if c.st.crossed == 0 && c.dentry != c.mnt_root {
            // Chrooted below this mount's root: the mount-relative part would
            // need the path above the task's root.
            return c.stop(DIR_REL_UNKNOWN);
        }
        c.mark_mount_boundary();
        return c.stop(0);
    }
    if c.dentry == c.mnt_root {
        c.mark_mount_boundary();
        let m = Mount(c.mnt);
        let Some(parent) = m.parent() else {
            return c.stop(DIR_READ_ERR);
        };
        if parent.0 == c.mnt {
            // Top of a mount tree without meeting the task's root.
            let ns = m.ns();
            let flag = if ns != 0 && ns == c.caller_ns {
                DIR_OUTSIDE_ROOT
            } else {
                DIR_DETACHED
            };
            return c.stop(flag);
        }
        if c.st.mounts >= WALK_MAX_MOUNTS {
            return c.stop(DIR_TRUNC_DEPTH);
        }
        c.st.mounts += 1;
        let (Some(mp), Some(proot)) = (m.mountpoint(), parent.root()) else {
            return c.stop(DIR_READ_ERR);
        };
        c.mnt = parent.0;
        c.dentry = mp.0;
        c.mnt_root = proot.0;
        return 0;
    }
    let d = Dentry(c.dentry);
    let (Some(parent), Some((name, len))) = (d.parent(), d.name()) else {
        return c.stop(DIR_READ_ERR);
    };
    if parent.0 == c.dentry {
        // A filesystem root that is not the mount's root: a disconnected
        // dentry. Nothing above it can be named.
        c.mark_mount_boundary();
        return c.stop(DIR_DETACHED);
    }
    if c.st.components >= WALK_MAX_COMPONENTS {
        // One more component above the ones kept.
        return c.stop(DIR_TRUNC_DEPTH);
    }
    let len = len as usize;
    if len > NAME_MAX {
        return c.stop(DIR_READ_ERR);
    }
    if len + 1 > c.st.pos as usize {
        return c.stop(DIR_TRUNC_LEN);
    }
    c.st.pos -= (len + 1) as u32;
    let at = c.st.pos as usize & (WALK_PATH_MAX - 1);
    unsafe {
        let buf = (*wb).buf.as_mut_ptr();
        *buf.add(at) = b'/';
        bpf_probe_read_kernel(
            buf.add(at + 1) as *mut c_void,
            (len & NAME_MAX) as u32,
            name as *const c_void,
        );
    }
    c.dentry = parent.0;
    c.st.components += 1;
    0
}

/// The starting directory of a lookup, without any path work.
#[inline(always)]
pub fn start_path(task: Task, src: DirSource) -> Option<KPath> {
    match src {
        DirSource::Fd(fd) => task.fd_file(fd).and_then(|f| f.path()),
        DirSource::Cwd => task.fs_path(FsPath::Cwd),
        DirSource::Root => task.fs_path(FsPath::Root),
    }
}

/// Resolve `src` for `task` into `dir`, writing its path to `region` (from
/// offset 0). Returns the path's string entry.
#[inline(always)]
pub fn resolve(task: Task, src: DirSource, dir: &mut DirRef, region: &mut [u8; REGION]) -> StrRef {
    resolve_at(task, src, start_path(task, src), dir, region)
}

/// The directory where the lookup of the slot's name `name` (a string
/// region already read) starts, from `dfd`, resolved for the current task
/// into string `path` of the slot: for the programs, reached by tail call,
/// that walk one directory of a call each.
#[inline(always)]
pub fn resolve_slot_dir<const N: usize>(
    slot: &mut Slot<N>,
    dfd: i32,
    name: usize,
    path: usize,
) -> DirRef {
    let mut dir = DirRef::default();
    if name < N && path < N {
        let src = DirSource::of(dfd, slot.bufs[name][0]);
        slot.strs[path] = resolve(Task::current(), src, &mut dir, &mut slot.bufs[path]);
    }
    dir
}

/// The directory of a lookup starting at `src` before its walk (done by a
/// program reached by tail call): flagged unread, so it stays that if the
/// walk never runs (its program missing, which it is not once userspace
/// has loaded it).
#[inline(always)]
pub fn unwalked(src: DirSource) -> DirRef {
    DirRef {
        flags: src.flag() | DIR_READ_ERR,
        ..Default::default()
    }
}

/// [`resolve`] with the starting directory already looked up.
#[inline(always)]
pub fn resolve_at(
    task: Task,
    src: DirSource,
    start: Option<KPath>,
    dir: &mut DirRef,
    region: &mut [u8; REGION],
) -> StrRef {
    let Some(start) = start else {
        return unresolved(src, dir);
    };
    resolve_known(
        task,
        src.flag(),
        start,
        start.mnt.id(),
        mount_class(start.mnt),
        dir,
        region,
    )
}

/// A starting directory that could not be looked up: `dir` says why, and
/// there is no path.
#[inline(always)]
pub fn unresolved(src: DirSource, dir: &mut DirRef) -> StrRef {
    *dir = DirRef::default();
    dir.flags = src.flag()
        | if let DirSource::Fd(_) = src {
            DIR_BAD_FD
        } else {
            DIR_READ_ERR
        };
    StrRef {
        len: 0,
        flags: STR_ABSENT,
    }
}

/// Resolve `start` (its lookup started from `from`, a `DIR_FROM_*` flag),
/// whose mount's id and class (`mount_class`) the caller already has.
#[inline(always)]
pub fn resolve_known(
    task: Task,
    from: u32,
    start: KPath,
    mnt_id: u32,
    class: u32,
    dir: &mut DirRef,
    region: &mut [u8; REGION],
) -> StrRef {
    *dir = DirRef::default();
    dir.flags = from;
    describe_mount(start, mnt_id, class, dir);
    idmapped_before_6_3(start.mnt, class, dir);
    walk(task, start, dir, region)
}

/// Before 6.3 the class cannot say id-mapped (see `Mount::idmapped`); a
/// record can, off the capture decision's path: `DIR_IDMAPPED` in `dir`
/// when mount `m` of class `class` is id-mapped by its user namespace.
#[inline(always)]
pub fn idmapped_before_6_3(m: Mount, class: u32, dir: &mut DirRef) {
    if class & CAP_IDMAPPED == 0 && m.idmapped_by_userns() {
        dir.flags |= DIR_IDMAPPED;
    }
}

/// `CAP_IDMAPPED` / `CAP_SUBTREE` class of a mount.
#[inline(always)]
pub fn mount_class(m: Mount) -> u32 {
    let mut class = 0;
    if m.idmapped() == Some(true) {
        class |= CAP_IDMAPPED;
    }
    if let Some(root) = m.root() {
        if root.sb_root() != Some(root) {
            class |= CAP_SUBTREE;
        }
    }
    class
}

/// Mount identity and properties of `p` (no path); `mnt_id` and `class`
/// are its mount's id and `mount_class`.
#[inline(always)]
pub fn describe_mount(p: KPath, mnt_id: u32, class: u32, dir: &mut DirRef) {
    let m = p.mnt;
    dir.mnt_id = mnt_id;
    dir.mnt_id_unique = m.id_unique();
    dir.mnt_ns = m.ns();
    dir.dev = p.dentry.dev();
    dir.ino = p.dentry.ino();
    dir.flags |= DIR_RESOLVED;
    let fmt = p.dentry.mode_fmt();
    if fmt != 0 && fmt != S_IFDIR {
        dir.flags |= DIR_NOT_DIR;
    }
    if class & CAP_IDMAPPED != 0 {
        dir.flags |= DIR_IDMAPPED;
    }
    if class & CAP_SUBTREE != 0 {
        dir.flags |= DIR_SUBTREE;
    }
}

/// Where a walk left its path in `WALKBUF`: `buf[pos..WALK_PATH_MAX]`.
#[derive(Clone, Copy)]
pub struct Walked {
    pub pos: u32,
    /// `DIR_*` flags the walk raised.
    pub flags: u32,
    /// `pos` where the walk crossed its first mount boundary.
    rel_pos: u32,
    crossed: u32,
}

/// Walk `start` up to `task`'s root, writing its path into this CPU's
/// `WALKBUF` (see the module's doc).
#[inline(always)]
pub fn walk_into_buf(task: Task, start: KPath) -> Walked {
    let root = task.fs_path(FsPath::Root);
    let mut c = WalkCtx {
        mnt: start.mnt.0,
        dentry: start.dentry.0,
        mnt_root: start.mnt.root().map(|d| d.0).unwrap_or(0),
        root_mnt: root.map(|r| r.mnt.0).unwrap_or(0),
        root_dentry: root.map(|r| r.dentry.0).unwrap_or(0),
        caller_ns: task.mnt_ns(),
        st: WalkState {
            pos: 0,
            rel_pos: 0,
            flags: 0,
            crossed: 0,
            done: 0,
            components: 0,
            mounts: 0,
        },
    };
    // The state's first values are set through a helper, so the verifier
    // does not know them. Kernels before 6.7 verify a `bpf_loop` callback
    // as if it ran at most once, from the state before the loop: 6.1's
    // verifier took `crossed` for the constant 0 it was set to, and
    // hard-wired `mark_mount_boundary`'s test as always true (its first
    // crossing was overwritten by every later one: no mount-relative path
    // there); likewise the component and mount limits.
    let first = WalkState {
        pos: WALK_PATH_MAX as u32,
        rel_pos: WALK_PATH_MAX as u32,
        flags: 0,
        crossed: 0,
        done: 0,
        components: 0,
        mounts: 0,
    };
    unsafe {
        bpf_probe_read_kernel(
            &mut c.st as *mut WalkState as *mut c_void,
            core::mem::size_of::<WalkState>() as u32,
            &first as *const WalkState as *const c_void,
        )
    };
    unsafe {
        bpf_loop(
            WALK_STEPS,
            walk_step as *mut c_void,
            &mut c as *mut WalkCtx as *mut c_void,
            0,
        )
    };
    if c.st.done == 0 {
        // Not reached (see `WALK_STEPS`); flagged rather than passed as whole.
        c.st.flags |= DIR_TRUNC_DEPTH;
    }
    Walked {
        pos: c.st.pos,
        flags: c.st.flags,
        rel_pos: c.st.rel_pos,
        crossed: c.st.crossed,
    }
}

#[inline(always)]
fn walk(task: Task, start: KPath, dir: &mut DirRef, region: &mut [u8; REGION]) -> StrRef {
    let c = walk_into_buf(task, start);
    dir.flags |= c.flags;
    let pos = c.pos as usize;
    if pos > WALK_PATH_MAX {
        return StrRef {
            len: 0,
            flags: STR_ABSENT,
        };
    }
    let len = WALK_PATH_MAX - pos;
    let sflags = if c.flags & DIR_TRUNCATED != 0 {
        STR_TRUNCATED
    } else {
        0
    };
    if len == 0 {
        region[0] = b'/';
        return StrRef {
            len: 1,
            flags: sflags,
        };
    }
    if c.crossed != 0 && c.rel_pos as usize >= pos {
        dir.rel_off = c.rel_pos - c.pos;
    }
    let Some(wb) = WALKBUF.get_ptr(0) else {
        return StrRef {
            len: 0,
            flags: STR_ABSENT,
        };
    };
    // `len` is at most `WALK_PATH_MAX` already; bounded again where the
    // helper takes it, from a fresh load: 6.1's verifier loses the bound
    // of a value kept on the stack across the branches above and refused
    // the mount-API exit programs ("R2 min value is negative").
    let n = unsafe { core::ptr::read_volatile(&len) } as u32;
    let n = if n > WALK_PATH_MAX as u32 {
        WALK_PATH_MAX as u32
    } else {
        n
    };
    unsafe {
        bpf_probe_read_kernel(
            region.as_mut_ptr() as *mut c_void,
            n,
            (*wb).buf.as_ptr().add(pos) as *const c_void,
        )
    };
    StrRef {
        len: len as u16,
        flags: sflags,
    }
}

/// The mount behind an fd, without a path walk (for fds whose path is
/// reported elsewhere).
#[inline(always)]
pub fn fd_ino(task: Task, fd: i32) -> u64 {
    task.fd_file(fd).map(|f| f.ino()).unwrap_or(0)
}
