//! Record layout: fixed header, kind-specific payload, string table, strings.

use crate::limits::COMM_LEN;

/// First bytes of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// [`crate::EventKind`] id.
    pub kind: u32,
    /// Total record length in bytes, header included.
    pub len: u32,
    /// `CLOCK_BOOTTIME` nanoseconds at syscall exit.
    pub ts_ns: u64,
    /// Syscall entry to exit.
    pub duration_ns: u64,
    /// Raw return value: `>= 0` success, `-errno` failure.
    pub ret: i64,
    pub cgroup_id: u64,
    /// Thread-group id (what userspace calls the pid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// tgid of the real parent.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Inode of the caller's mount namespace.
    pub mnt_ns: u32,
    pub comm: [u8; COMM_LEN],
    /// Bytes of payload right after the header.
    pub payload_len: u16,
    /// Entries in the string table right after the payload.
    pub nstr: u16,
    pub _pad: u32,
}

/// One string of the record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StrRef {
    /// Bytes that follow for this string (no terminator).
    pub len: u16,
    /// `STR_*` flags.
    pub flags: u16,
}

/// The string was longer than the kernel side keeps: bytes are a prefix
/// (user strings) or a suffix (walked paths, see [`DIR_TRUNC_LEN`]).
pub const STR_TRUNCATED: u16 = 1 << 0;
/// The user pointer could not be read (`EFAULT`-like).
pub const STR_FAULT: u16 = 1 << 1;
/// The user pointer was NULL.
pub const STR_NULL: u16 = 1 << 2;
/// The argument was not read (not meaningful for this call).
pub const STR_ABSENT: u16 = 1 << 3;

/// A directory or mount, resolved inside the kernel from an fd, the task's
/// cwd, or its root. Its absolute path (as the process sees it, walked up to
/// the task's root) is one of the record's strings; `path[rel_off..]` is the
/// same path relative to the root of the mount it is on.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirRef {
    /// Mount id as in `/proc/<pid>/mountinfo`; 0 when not resolved.
    pub mnt_id: u32,
    /// `DIR_*` flags.
    pub flags: u32,
    /// 64-bit unique mount id (`statx` `STATX_MNT_ID_UNIQUE`); 0 where the
    /// kernel has none (before 6.8).
    pub mnt_id_unique: u64,
    /// Inode number of the directory.
    pub ino: u64,
    /// Device of its filesystem, kernel encoding `major << 20 | minor`.
    pub dev: u32,
    /// Inode of the mount namespace the mount belongs to; 0 when detached.
    pub mnt_ns: u32,
    /// Bytes of the path above the mount's root.
    pub rel_off: u32,
    pub _pad: u32,
}

/// Resolution succeeded (mount id, device and inode are set).
pub const DIR_RESOLVED: u32 = 1 << 0;
/// Resolved from a directory fd argument.
pub const DIR_FROM_FD: u32 = 1 << 1;
/// Resolved from the task's cwd (`AT_FDCWD` with a relative path).
pub const DIR_FROM_CWD: u32 = 1 << 2;
/// Resolved from the task's root (the path argument is absolute).
pub const DIR_FROM_ROOT: u32 = 1 << 3;
/// The fd is not open in the caller.
pub const DIR_BAD_FD: u32 = 1 << 4;
/// The path was longer than [`crate::limits::WALK_PATH_MAX`]: its head is cut.
pub const DIR_TRUNC_LEN: u32 = 1 << 5;
/// The directory is deeper than [`crate::limits::WALK_MAX_COMPONENTS`], or
/// below more than [`crate::limits::WALK_MAX_MOUNTS`] mount boundaries: its
/// head is cut.
pub const DIR_TRUNC_DEPTH: u32 = 1 << 6;
/// The walk ended at a mount attached nowhere (an `open_tree` clone or an
/// `fsmount` result before `move_mount`): the path is relative to it.
pub const DIR_DETACHED: u32 = 1 << 7;
/// The directory is not below the task's root (e.g. an fd from outside a
/// chroot): the path is from the namespace's root.
pub const DIR_OUTSIDE_ROOT: u32 = 1 << 8;
/// A kernel structure could not be read: fields may be partial.
pub const DIR_READ_ERR: u32 = 1 << 9;
/// The walk stopped at the task's root inside a mount, so the part relative
/// to that mount's root is not known (`rel_off` is 0).
pub const DIR_REL_UNKNOWN: u32 = 1 << 10;
/// The mount is id-mapped (`MOUNT_ATTR_IDMAP`).
pub const DIR_IDMAPPED: u32 = 1 << 11;
/// The mount's root is not its filesystem's root (a bind of a subdirectory).
pub const DIR_SUBTREE: u32 = 1 << 12;
/// The fd refers to something that is not a directory (e.g. a file or an
/// `O_PATH` fd of a file); mount fields are still set.
pub const DIR_NOT_DIR: u32 = 1 << 13;
/// The directory's path and mount were not walked for this call: they are
/// those walked for the same thread's previous deletion from the same
/// directory, at most [`crate::limits::WALK_REUSE_NS`] earlier.
pub const DIR_REUSED: u32 = 1 << 14;
/// The `DIR_FROM_*` flags.
pub const DIR_FROM_ANY: u32 = DIR_FROM_FD | DIR_FROM_CWD | DIR_FROM_ROOT;

/// Either truncation flag.
pub const DIR_TRUNCATED: u32 = DIR_TRUNC_LEN | DIR_TRUNC_DEPTH;

/// `mount(2)`. Strings: source, target, fstype, data, cwd path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountArgs {
    pub flags: u64,
    /// The caller's cwd (relative targets) or root (absolute targets).
    pub cwd: DirRef,
}

/// `umount2(2)`. Strings: target, cwd path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UmountArgs {
    pub flags: u64,
    pub cwd: DirRef,
    /// (Kernel probe set) The mount the kernel resolved the target to, at
    /// `path_umount`: `mnt_id`, `mnt_id_unique`, `mnt_ns` and the class
    /// flags, `dev` and `ino` of its root; no path. `flags` 0 when not seen
    /// (syscall probe set, or the lookup of the target failed).
    pub target: DirRef,
}

/// The inode a deletion removed, read where the kernel removes it
/// (`vfs_unlink`, `vfs_rmdir`: kernel probe set only), before it is gone.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Victim {
    pub ino: u64,
    /// `i_size` in bytes.
    pub size: u64,
    /// Device of its filesystem, kernel encoding `major << 20 | minor`.
    pub dev: u32,
    /// Link count before the deletion (1: its last link went; a directory
    /// has 2 when empty).
    pub nlink: u32,
    /// `i_mode`: type and permission bits.
    pub mode: u32,
    /// `VICTIM_*` flags.
    pub flags: u32,
}

/// The fields are set: the kernel removed (or was about to remove) this
/// inode.
pub const VICTIM_SEEN: u32 = 1 << 0;
/// Seen at `vfs_rmdir` (a directory), else at `vfs_unlink`.
pub const VICTIM_RMDIR: u32 = 1 << 1;

/// `unlink`, `unlinkat`, `rmdir`. Strings: pathname, dir path.
/// For `unlink` and `rmdir`, `dfd` is `AT_FDCWD` and `flags` 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeleteArgs {
    pub dfd: i32,
    pub flags: u32,
    /// Why the kernel captured it: `CAP_*` bits.
    pub capture: u32,
    /// Mount id where the thread's current burst of deletions (one
    /// recursive delete) began: where it began listing directories, else its
    /// first deletion's mount; set whenever the deletion was captured for a
    /// race reason (not only `CAP_ALL`), else 0.
    pub origin_mnt_id: u32,
    /// Where the lookup of `pathname` starts: `dfd`, the cwd, or the root.
    pub dir: DirRef,
    /// (Kernel probe set) The inode removed; `flags` 0 when not seen.
    pub victim: Victim,
}

/// Captured because every deletion is (`DELETES_ALL`).
pub const CAP_ALL: u32 = 1 << 0;
/// The process's unmount failed with EBUSY within the busy window.
pub const CAP_BUSY: u32 = 1 << 1;
/// Through an id-mapped mount.
pub const CAP_IDMAPPED: u32 = 1 << 2;
/// Through a mount whose root is a subdirectory of its filesystem.
pub const CAP_SUBTREE: u32 = 1 << 3;
/// The thread's burst of deletions (one recursive delete: deletions less
/// than `burst_gap_ns` apart) has moved between mounts; every deletion of
/// the burst from that point on is captured.
pub const CAP_CROSSING: u32 = 1 << 4;
/// An EBUSY unmount happened on the node within the busy window and the
/// deletion's path has several components (or is absolute): it may cross
/// into the busy mount, whoever deletes (`xargs rm /…/mnt/f`, `rm -rf
/// mnt/d`). Userspace decides from the path and the mount table.
pub const CAP_BUSY_PATH: u32 = 1 << 5;
/// An EBUSY unmount happened on the node within the busy window and the
/// deletion's directory is on a mount userspace found busy (`BUSY_MNTS`):
/// another process deleting through it by directory fd.
pub const CAP_BUSY_MOUNT: u32 = 1 << 6;
/// An unmount failed with EBUSY anywhere on the node less than the grace
/// period ago: until userspace has told the kernel which mount is busy
/// (`CAP_BUSY_MOUNT`), every deletion is captured, so another process's
/// deletions through the busy mount milliseconds after the EBUSY are not
/// missed.
pub const CAP_AFTER_ANY_EBUSY: u32 = 1 << 7;

/// `rename`, `renameat`, `renameat2`. Strings: oldpath, old dir path,
/// newpath, new dir path. Captured like a deletion (`capture`): both paths
/// are on one mount (the kernel refuses others with `EXDEV`), so a rename
/// through a busy mount moves or replaces entries of what it holds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RenameArgs {
    pub olddfd: i32,
    pub newdfd: i32,
    /// `renameat2`'s `RENAME_*` flags (0 for the others).
    pub flags: u32,
    /// Why the kernel captured it: `CAP_*` bits.
    pub capture: u32,
    /// Where the lookup of `oldpath` starts: `olddfd`, the cwd, or the root.
    pub old_dir: DirRef,
    /// Where the lookup of `newpath` starts.
    pub new_dir: DirRef,
}

/// `open_tree`. Strings: pathname, dir path, result path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenTreeArgs {
    pub dfd: i32,
    pub _pad: u32,
    pub flags: u64,
    pub dir: DirRef,
    /// The mount behind the returned fd (resolved at exit; for
    /// `OPEN_TREE_CLONE` the new detached clone).
    pub result: DirRef,
}

/// `move_mount`. Strings: from_path, to_path, from dir path, to dir path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MoveMountArgs {
    pub from_dfd: i32,
    pub to_dfd: i32,
    pub flags: u64,
    pub from: DirRef,
    pub to: DirRef,
}

/// `mount_setattr`. Strings: pathname, dir path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountSetattrArgs {
    pub dfd: i32,
    pub at_flags: u32,
    pub size: u64,
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
    /// Inode of the user namespace behind `userns_fd` (id-mapped mounts); 0
    /// when not requested or not resolvable.
    pub userns_ino: u64,
    /// 0: `struct mount_attr` read; otherwise it could not be read.
    pub attr_status: i32,
    pub _pad: u32,
    pub dir: DirRef,
}

/// `fsopen`. Strings: fs name.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsopenArgs {
    pub flags: u64,
}

/// `fsconfig`. Strings: key, value, aux dir path.
/// `value` is read as a string for `SET_STRING`, `SET_PATH`, `SET_PATH_EMPTY`;
/// `aux_dir` resolves `aux` for `SET_FD`, `SET_PATH` and `SET_PATH_EMPTY`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsconfigArgs {
    pub fd: i32,
    pub cmd: u32,
    pub aux: i32,
    pub _pad: u32,
    pub aux_dir: DirRef,
}

/// `fsmount`. Strings: result path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsmountArgs {
    pub fs_fd: i32,
    pub flags: u32,
    pub attr_flags: u64,
    /// The new detached mount behind the returned fd (resolved at exit).
    pub result: DirRef,
}

/// A guard action. Strings: the mountpoint of the mount walked into, as
/// the process sees it. The header is the acted-on process's; `ret` is what
/// sending the signal returned (0 when it was sent, when reporting, and
/// when denying). A denial is recorded once, at the first call denied (or,
/// for a crossing, at the listing that decided it); the calls themselves
/// are the deletions and renames that returned `EPERM`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardArgs {
    /// `GUARD_REPORT`, `GUARD_STOP`, `GUARD_KILL` or `GUARD_DENY`
    /// (`config`).
    pub action: u32,
    /// `GUARD_AT_*`: the call the process was making.
    pub trigger: u32,
    /// The directory fd listed or deleted from (-100 for the cwd;
    /// `GUARD_FD_UNKNOWN` for a denial, which sees the directory, not the
    /// fd).
    pub fd: i32,
    /// The signal sent (0 when reporting or denying).
    pub signal: u32,
    /// `CLOCK_BOOTTIME` of the unmount that failed with EBUSY (0 for a
    /// crossing).
    pub busy_ns: u64,
    /// The mount walked into: identity of its root (`mnt_id`, `dev`, `ino`
    /// are the mount's root's).
    pub mount: DirRef,
    /// Mount where the process's walk began (where it began listing
    /// directories): for a crossing; 0 otherwise.
    pub origin_mnt_id: u32,
    pub _pad: u32,
}

/// The process listed a directory (`getdents64`) on the busy mount: nothing
/// in it has been deleted by this walk yet.
pub const GUARD_AT_LISTING: u32 = 1;
/// The process deleted an entry of a directory on the busy mount without
/// listing it first: that one deletion goes ahead (a signal sent at a
/// syscall's entry is delivered when it returns). Under `--guard deny`: its
/// first deletion on the busy mount, denied (listings are not).
pub const GUARD_AT_DELETE: u32 = 2;

/// (`--guard-crossings`) The process, in a recursive delete (a sequence of
/// listings) that began on another mount, listed a directory on a bind of a
/// directory, or an id-mapped mount, whose root is outside the tree it is
/// deleting: nothing in that mount has been deleted by this walk yet.
pub const GUARD_AT_CROSSING: u32 = 3;
/// (`--guard deny`) The process renamed an entry of a directory on the busy
/// mount (out of it, or within it): the rename was denied.
pub const GUARD_AT_RENAME: u32 = 4;

/// `GuardArgs::fd` of a denial: the kernel's security hook is given the
/// directory, not the fd the call named.
pub const GUARD_FD_UNKNOWN: i32 = -1;

/// The top directory of a recursive delete that crossed into another mount
/// (`EventKind::WalkTop`): the first directory the thread listed in the
/// walk, which is where the walk began; the kernel keeps it from the
/// listing on and records it once, when the walk first deletes on another
/// mount, before that deletion's own record. The deletions the kernel
/// captures start there, so without it the top would be inferred from the
/// captured ones, and may be deeper than the real one. One string: the
/// directory's path (as `dir`'s).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkTopArgs {
    /// The directory, as a deletion's (`DIR_FROM_FD`: a listed fd).
    pub dir: DirRef,
    /// Mount id where the walk began (`DeleteArgs::origin_mnt_id` of its
    /// deletions).
    pub origin_mnt_id: u32,
    pub _pad: u32,
}

/// Number of strings each kind carries, in order (see each payload's doc).
pub const fn nstr(kind: crate::EventKind) -> usize {
    use crate::EventKind::*;
    match kind {
        Mount => 5,
        Umount => 2,
        Unlink | Unlinkat | Rmdir | UringUnlinkat => 2,
        OpenTree => 3,
        MoveMount => 4,
        MountSetattr => 2,
        Fsopen => 1,
        Fsconfig => 3,
        Fsmount => 1,
        Guard => 1,
        WalkTop => 1,
        Rename | Renameat | Renameat2 | UringRenameat => 4,
    }
}

/// Payload size of each kind.
pub const fn payload_len(kind: crate::EventKind) -> usize {
    use crate::EventKind::*;
    match kind {
        Mount => core::mem::size_of::<MountArgs>(),
        Umount => core::mem::size_of::<UmountArgs>(),
        Unlink | Unlinkat | Rmdir | UringUnlinkat => core::mem::size_of::<DeleteArgs>(),
        OpenTree => core::mem::size_of::<OpenTreeArgs>(),
        MoveMount => core::mem::size_of::<MoveMountArgs>(),
        MountSetattr => core::mem::size_of::<MountSetattrArgs>(),
        Fsopen => core::mem::size_of::<FsopenArgs>(),
        Fsconfig => core::mem::size_of::<FsconfigArgs>(),
        Fsmount => core::mem::size_of::<FsmountArgs>(),
        Guard => core::mem::size_of::<GuardArgs>(),
        WalkTop => core::mem::size_of::<WalkTopArgs>(),
        Rename | Renameat | Renameat2 | UringRenameat => core::mem::size_of::<RenameArgs>(),
    }
}

/// Payload size of `kind` in recordings made before fields were appended
/// to it (`UmountArgs::target`, `DeleteArgs::victim`): such a payload is
/// read as the current one with the appended fields zero (not seen).
pub const fn payload_len_before_kernel_probes(kind: crate::EventKind) -> Option<usize> {
    use crate::EventKind::*;
    match kind {
        Umount => Some(core::mem::size_of::<UmountArgs>() - core::mem::size_of::<DirRef>()),
        Unlink | Unlinkat | Rmdir | UringUnlinkat => {
            Some(core::mem::size_of::<DeleteArgs>() - core::mem::size_of::<Victim>())
        }
        _ => None,
    }
}

/// Largest payload.
pub const PAYLOAD_MAX: usize = 192;

const _: () = {
    use core::mem::size_of;
    assert!(size_of::<Header>() == 88);
    assert!(size_of::<StrRef>() == 4);
    assert!(size_of::<DirRef>() == 40);
    assert!(size_of::<MountArgs>() == 48);
    assert!(size_of::<UmountArgs>() == 88);
    assert!(size_of::<Victim>() == 32);
    assert!(size_of::<DeleteArgs>() == 88);
    assert!(size_of::<OpenTreeArgs>() == 96);
    assert!(size_of::<MoveMountArgs>() == 96);
    assert!(size_of::<MountSetattrArgs>() == 104);
    assert!(size_of::<FsconfigArgs>() == 56);
    assert!(size_of::<FsmountArgs>() == 56);
    assert!(size_of::<GuardArgs>() == 72);
    assert!(size_of::<WalkTopArgs>() == 48);
    assert!(size_of::<RenameArgs>() == 96);
    let mut i = 0;
    while i < crate::EventKind::ALL.len() {
        assert!(payload_len(crate::EventKind::ALL[i]) <= PAYLOAD_MAX);
        assert!(payload_len(crate::EventKind::ALL[i]).is_multiple_of(8));
        assert!(nstr(crate::EventKind::ALL[i]) <= crate::limits::MAX_STRS);
        i += 1;
    }
    assert!(
        size_of::<Header>()
            + PAYLOAD_MAX
            + 4 * crate::limits::MAX_STRS
            + crate::limits::MAX_STRS * crate::limits::STR_MAX
            <= crate::limits::RECORD_MAX
    );
};

#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for Header {}
    unsafe impl aya::Pod for StrRef {}
    unsafe impl aya::Pod for DirRef {}
}
