//! Stable event kind ids. Never renumber: recordings store them.

/// One id per traced syscall. `#[repr(u32)]`, decoded with `TryFrom<u32>`, never
/// transmuted.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    Mount = 1,
    Umount = 2,
    Unlink = 3,
    Unlinkat = 4,
    Rmdir = 5,
    OpenTree = 6,
    MoveMount = 7,
    MountSetattr = 8,
    Fsopen = 9,
    Fsconfig = 10,
    Fsmount = 11,
    /// Not a syscall: the guard acted on (or, reporting, would have acted
    /// on) a process walking into a mount whose unmount it saw fail.
    Guard = 12,
    /// Not a syscall: an `IORING_OP_UNLINKAT` request (unlink, or rmdir
    /// with `AT_REMOVEDIR`) submitted through io_uring; its arguments as
    /// `unlinkat`'s, its result from the request's completion.
    UringUnlinkat = 13,
    Rename = 14,
    Renameat = 15,
    Renameat2 = 16,
    /// Not a syscall: an `IORING_OP_RENAMEAT` request submitted through
    /// io_uring; its arguments as `renameat2`'s, its result from the
    /// request's completion.
    UringRenameat = 17,
    /// Not a syscall: the top directory of a recursive delete (the first
    /// directory its thread listed), recorded once per walk, when the walk
    /// first deletes on another mount than its own.
    WalkTop = 18,
}

/// Number of slots indexed by kind id (id 0 is unused).
pub const KIND_SLOTS: usize = 19;

impl EventKind {
    /// The traced syscalls: one entry and one exit program each.
    pub const SYSCALLS: [EventKind; 14] = [
        EventKind::Mount,
        EventKind::Umount,
        EventKind::Unlink,
        EventKind::Unlinkat,
        EventKind::Rmdir,
        EventKind::OpenTree,
        EventKind::MoveMount,
        EventKind::MountSetattr,
        EventKind::Fsopen,
        EventKind::Fsconfig,
        EventKind::Fsmount,
        EventKind::Rename,
        EventKind::Renameat,
        EventKind::Renameat2,
    ];

    /// Every kind: the syscalls, then io_uring deletions and renames, then
    /// the guard's actions and the walks' tops. What records, drop counters
    /// and statistics are kept for.
    pub const ALL: [EventKind; 18] = {
        let mut all = [EventKind::Guard; 18];
        all[14] = EventKind::UringUnlinkat;
        all[15] = EventKind::UringRenameat;
        all[17] = EventKind::WalkTop;
        let mut i = 0;
        while i < Self::SYSCALLS.len() {
            all[i] = Self::SYSCALLS[i];
            i += 1;
        }
        all
    };

    /// The syscall name, as in the tracepoint `sys_enter_<name>` (for
    /// the kinds that are no syscall, `guard` and `walk_top`).
    pub const fn syscall(self) -> &'static str {
        match self {
            EventKind::Mount => "mount",
            EventKind::Umount => "umount",
            EventKind::Unlink => "unlink",
            EventKind::Unlinkat => "unlinkat",
            EventKind::Rmdir => "rmdir",
            EventKind::OpenTree => "open_tree",
            EventKind::MoveMount => "move_mount",
            EventKind::MountSetattr => "mount_setattr",
            EventKind::Fsopen => "fsopen",
            EventKind::Fsconfig => "fsconfig",
            EventKind::Fsmount => "fsmount",
            EventKind::Guard => "guard",
            EventKind::UringUnlinkat => "io_uring_unlinkat",
            EventKind::Rename => "rename",
            EventKind::Renameat => "renameat",
            EventKind::Renameat2 => "renameat2",
            EventKind::UringRenameat => "io_uring_renameat",
            EventKind::WalkTop => "walk_top",
        }
    }

    /// The new mount API: `open_tree`, `move_mount`, `mount_setattr`,
    /// `fsopen`, `fsconfig`, `fsmount`.
    pub const fn is_mount_api(self) -> bool {
        matches!(
            self,
            EventKind::OpenTree
                | EventKind::MoveMount
                | EventKind::MountSetattr
                | EventKind::Fsopen
                | EventKind::Fsconfig
                | EventKind::Fsmount
        )
    }

    /// `unlink`, `unlinkat`, `rmdir`, and io_uring's unlinkat.
    pub const fn is_delete(self) -> bool {
        matches!(
            self,
            EventKind::Unlink | EventKind::Unlinkat | EventKind::Rmdir | EventKind::UringUnlinkat
        )
    }

    /// `rename`, `renameat`, `renameat2`, and io_uring's renameat.
    pub const fn is_rename(self) -> bool {
        matches!(
            self,
            EventKind::Rename
                | EventKind::Renameat
                | EventKind::Renameat2
                | EventKind::UringRenameat
        )
    }
}

impl TryFrom<u32> for EventKind {
    type Error = u32;

    fn try_from(v: u32) -> Result<Self, u32> {
        Ok(match v {
            1 => EventKind::Mount,
            2 => EventKind::Umount,
            3 => EventKind::Unlink,
            4 => EventKind::Unlinkat,
            5 => EventKind::Rmdir,
            6 => EventKind::OpenTree,
            7 => EventKind::MoveMount,
            8 => EventKind::MountSetattr,
            9 => EventKind::Fsopen,
            10 => EventKind::Fsconfig,
            11 => EventKind::Fsmount,
            12 => EventKind::Guard,
            13 => EventKind::UringUnlinkat,
            14 => EventKind::Rename,
            15 => EventKind::Renameat,
            16 => EventKind::Renameat2,
            17 => EventKind::UringRenameat,
            18 => EventKind::WalkTop,
            other => return Err(other),
        })
    }
}
