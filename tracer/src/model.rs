//! Owned, typed events: what the decoder produces and every later stage
//! (enrichment, correlation, sinks) consumes. Byte strings stay bytes
//! (`bytes::Bytes`, sliced from the record without copying).

use bytes::Bytes;
use tracer_common::{event::*, EventKind};

/// A copy of `b` that does not keep alive the record it was sliced from:
/// for what outlives its event (busy mounts, bursts, incidents), so that a
/// few kept bytes never pin a whole ring-buffer chunk or recording segment.
pub fn detach(b: &Bytes) -> Bytes {
    Bytes::copy_from_slice(b)
}

/// A string argument or path, byte-exact, with how it was captured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Str {
    pub bytes: Bytes,
    /// `STR_*` flags from the kernel.
    pub flags: u16,
}

impl Str {
    pub fn new(bytes: impl Into<Bytes>) -> Str {
        Str {
            bytes: bytes.into(),
            flags: 0,
        }
    }
    pub fn truncated(&self) -> bool {
        self.flags & STR_TRUNCATED != 0
    }
    pub fn is_null(&self) -> bool {
        self.flags & STR_NULL != 0
    }
    pub fn faulted(&self) -> bool {
        self.flags & STR_FAULT != 0
    }
    pub fn absent(&self) -> bool {
        self.flags & STR_ABSENT != 0
    }
    /// The bytes, when the argument was captured at all.
    pub fn value(&self) -> Option<&[u8]> {
        if self.flags & (STR_NULL | STR_FAULT | STR_ABSENT) != 0 {
            None
        } else {
            Some(&self.bytes)
        }
    }
}

/// A directory or mount resolved in the kernel (see [`DirRef`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dir {
    pub mnt_id: u32,
    pub mnt_id_unique: u64,
    pub mnt_ns: u32,
    pub dev: u32,
    pub ino: u64,
    /// `DIR_*` flags.
    pub flags: u32,
    /// Absolute path as the process sees it.
    pub path: Str,
    /// Bytes of `path` above the mount's root.
    pub rel_off: u32,
}

/// The inode a deletion removed, as the kernel saw it just before (see
/// [`tracer_common::event::Victim`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Victim {
    pub ino: u64,
    pub size: u64,
    pub dev: u32,
    /// Link count before the deletion.
    pub nlink: u32,
    /// `i_mode`: type and permission bits.
    pub mode: u32,
    /// Removed by `vfs_rmdir` (a directory).
    pub rmdir: bool,
}

impl Victim {
    /// Whether this deletion removed the inode's last name: a directory, or
    /// a file with one link (its data goes once no one has it open).
    pub fn last_link(&self) -> bool {
        self.rmdir || self.nlink <= 1
    }

    /// The inode's type, from `S_IFMT` of its mode.
    pub fn file_type(&self) -> &'static str {
        match self.mode & 0o170000 {
            0o100000 => "file",
            0o040000 => "dir",
            0o120000 => "symlink",
            0o020000 => "char",
            0o060000 => "block",
            0o010000 => "fifo",
            0o140000 => "socket",
            _ => "unknown",
        }
    }
}

/// How a [`Dir`] was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirFrom {
    Fd,
    Cwd,
    Root,
    Unknown,
}

impl Dir {
    pub fn resolved(&self) -> bool {
        self.flags & DIR_RESOLVED != 0
    }
    pub fn truncated(&self) -> bool {
        self.flags & DIR_TRUNCATED != 0
    }
    pub fn from(&self) -> DirFrom {
        if self.flags & DIR_FROM_FD != 0 {
            DirFrom::Fd
        } else if self.flags & DIR_FROM_CWD != 0 {
            DirFrom::Cwd
        } else if self.flags & DIR_FROM_ROOT != 0 {
            DirFrom::Root
        } else {
            DirFrom::Unknown
        }
    }
    /// The path relative to the root of the mount it is on (`/` for the
    /// mount's root itself); `None` when the kernel could not tell.
    pub fn rel_path(&self) -> Option<Bytes> {
        if !self.resolved() || self.flags & DIR_REL_UNKNOWN != 0 {
            return None;
        }
        let off = (self.rel_off as usize).min(self.path.bytes.len());
        let rel = self.path.bytes.slice(off..);
        Some(if rel.is_empty() {
            Bytes::from_static(b"/")
        } else {
            rel
        })
    }
    /// Mountpoint of the mount the directory is on, as the process sees it
    /// (`path[..rel_off]`), when the kernel could tell.
    pub fn mountpoint(&self) -> Option<Bytes> {
        if !self.resolved() || self.flags & (DIR_REL_UNKNOWN | DIR_TRUNCATED) != 0 {
            return None;
        }
        let off = self.rel_off as usize;
        if off > self.path.bytes.len() {
            return None;
        }
        Some(if off == 0 {
            Bytes::from_static(b"/")
        } else {
            self.path.bytes.slice(..off)
        })
    }

    /// The same directory, detached from its record ([`detach`]).
    pub fn detached(&self) -> Dir {
        Dir {
            path: Str {
                bytes: detach(&self.path.bytes),
                flags: self.path.flags,
            },
            ..self.clone()
        }
    }

    /// `major:minor` of the filesystem's device.
    pub fn dev_str(&self) -> String {
        dev_str(self.dev)
    }
}

/// `major:minor` of a device in the kernel's encoding (`major << 20 | minor`).
pub fn dev_str(dev: u32) -> String {
    format!("{}:{}", dev >> 20, dev & 0xfffff)
}

/// Kind-specific arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Args {
    Mount {
        source: Str,
        target: Str,
        fstype: Str,
        data: Str,
        flags: u64,
        cwd: Dir,
    },
    Umount {
        target: Str,
        flags: u64,
        cwd: Dir,
        /// (Kernel probe set) The mount the kernel resolved the target to
        /// (no path): `None` with the syscall set, or when the target's
        /// lookup failed.
        target_mount: Option<Dir>,
    },
    /// `unlink`, `unlinkat`, `rmdir` (the event's kind tells which).
    Delete {
        dfd: i32,
        pathname: Str,
        flags: u32,
        dir: Dir,
        /// Why the kernel captured it (`CAP_*`).
        capture: u32,
        /// With `CAP_CROSSING`: the mount the thread's burst began on.
        origin_mnt_id: u32,
        /// (Kernel probe set) The inode the kernel removed: `None` with the
        /// syscall set, or when the deletion failed before reaching it.
        victim: Option<Victim>,
    },
    /// `rename`, `renameat`, `renameat2` (the event's kind tells which):
    /// both paths are on one mount.
    Rename {
        olddfd: i32,
        oldpath: Str,
        newdfd: i32,
        newpath: Str,
        /// `renameat2`'s `RENAME_*` flags.
        flags: u32,
        old_dir: Dir,
        new_dir: Dir,
        /// Why the kernel captured it (`CAP_*`).
        capture: u32,
    },
    OpenTree {
        dfd: i32,
        pathname: Str,
        flags: u64,
        dir: Dir,
        /// The mount behind the returned fd (success only).
        result: Option<Dir>,
    },
    MoveMount {
        from_dfd: i32,
        from_path: Str,
        to_dfd: i32,
        to_path: Str,
        flags: u64,
        from: Dir,
        to: Dir,
    },
    MountSetattr {
        dfd: i32,
        pathname: Str,
        at_flags: u32,
        size: u64,
        /// `None` when `struct mount_attr` could not be read.
        attr: Option<MountAttr>,
        dir: Dir,
    },
    Fsopen {
        fs_name: Str,
        flags: u64,
    },
    Fsconfig {
        fd: i32,
        cmd: u32,
        key: Str,
        value: Str,
        aux: i32,
        aux_dir: Option<Dir>,
    },
    Fsmount {
        fs_fd: i32,
        flags: u32,
        attr_flags: u64,
        result: Option<Dir>,
    },
    /// Not a syscall: the guard acted (the event's `ret` is what sending
    /// the signal returned).
    Guard(Guard),
    /// Not a syscall: the top directory of a recursive delete that crossed
    /// into another mount (the first directory its thread listed),
    /// recorded before the crossing deletion.
    WalkTop {
        dir: Dir,
        /// Mount id where the walk began (its deletions' `origin_mnt_id`).
        origin_mnt_id: u32,
    },
}

/// Number of [`GuardAction`]s: the size of the per-action counters.
pub const GUARD_ACTIONS: usize = 4;

/// What the guard did to a process walking into a busy mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardAction {
    /// Nothing: `--guard report` says what `stop` would have done.
    Reported = 0,
    Stopped = 1,
    Killed = 2,
    /// `--guard deny`: its deletions and renames on the mount fail with
    /// EPERM (BPF LSM) for the rest of the busy window.
    Denied = 3,
}

impl GuardAction {
    pub fn from_kernel(v: u32) -> Option<GuardAction> {
        use tracer_common::config::*;
        match v {
            GUARD_REPORT => Some(GuardAction::Reported),
            GUARD_STOP => Some(GuardAction::Stopped),
            GUARD_KILL => Some(GuardAction::Killed),
            GUARD_DENY => Some(GuardAction::Denied),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            GuardAction::Reported => "reported",
            GuardAction::Stopped => "stopped",
            GuardAction::Killed => "killed",
            GuardAction::Denied => "denied",
        }
    }
    pub const ALL: [GuardAction; GUARD_ACTIONS] = [
        GuardAction::Reported,
        GuardAction::Stopped,
        GuardAction::Killed,
        GuardAction::Denied,
    ];
}

/// A guard action (see `tracer_common::event::GuardArgs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guard {
    pub action: GuardAction,
    /// `GUARD_AT_*`.
    pub trigger: u32,
    /// The directory fd listed or deleted from; none for a denial, whose
    /// hook sees the directory, not the fd (the kernel's
    /// `GUARD_FD_UNKNOWN`, turned into `None` at decode).
    pub fd: Option<i32>,
    /// The signal sent (0 when reporting or denying).
    pub signal: u32,
    /// When the unmount failed with EBUSY (`CLOCK_BOOTTIME`).
    pub busy_ns: u64,
    /// The mount walked into; its path is the mountpoint.
    pub mount: Dir,
    /// A crossing: the mount where the walk began (0 otherwise).
    pub origin_mnt_id: u32,
}

impl Guard {
    /// `listing`, `deletion` (after an EBUSY), `crossing` (a listing in a
    /// bind from outside the tree being deleted) or `rename` (denied).
    pub fn trigger_name(&self) -> &'static str {
        trigger_name(self.trigger)
    }
}

/// The name of a guard trigger (`GUARD_AT_*`): `listing`, `deletion`,
/// `crossing`, `rename`.
pub fn trigger_name(trigger: u32) -> &'static str {
    match trigger {
        tracer_common::event::GUARD_AT_LISTING => "listing",
        tracer_common::event::GUARD_AT_DELETE => "deletion",
        tracer_common::event::GUARD_AT_CROSSING => "crossing",
        tracer_common::event::GUARD_AT_RENAME => "rename",
        _ => "unknown",
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
    /// Inode of the user namespace behind `userns_fd` when `MOUNT_ATTR_IDMAP`
    /// is set (0 when it could not be resolved).
    pub userns_ino: u64,
}

/// One traced syscall: entry arguments plus exit result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// `CLOCK_BOOTTIME` at exit, nanoseconds.
    pub ts_ns: u64,
    pub duration_ns: u64,
    pub ret: i64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub mnt_ns: u32,
    pub cgroup_id: u64,
    pub comm: Bytes,
    pub args: Args,
}

impl Args {
    /// The entry the call takes from its place, and the directory its
    /// lookup started in: a deletion's pathname, a rename's old path.
    pub fn taken_entry(&self) -> Option<(&Str, &Dir)> {
        match self {
            Args::Delete { pathname, dir, .. } => Some((pathname, dir)),
            Args::Rename {
                oldpath, old_dir, ..
            } => Some((oldpath, old_dir)),
            _ => None,
        }
    }
}

impl Event {
    pub fn failed(&self) -> bool {
        self.ret < 0
    }
    /// The errno of a failed call.
    pub fn errno(&self) -> Option<i32> {
        (self.ret < 0 && self.ret >= -4095).then_some((-self.ret) as i32)
    }
}
