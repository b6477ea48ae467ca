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
}

/// Number of slots indexed by kind id (id 0 is unused).
pub const KIND_SLOTS: usize = 14;

impl EventKind {
    /// The traced syscalls: one entry and one exit program each.
    pub const SYSCALLS: [EventKind; 11] = [
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
    ];

    /// Every kind: the syscalls, then io_uring deletions, then the guard's
    /// actions. What records, drop counters and statistics are kept for.
    pub const ALL: [EventKind; 13] = {
        let mut all = [EventKind::Guard; 13];
        all[11] = EventKind::UringUnlinkat;
        let mut i = 0;
        while i < Self::SYSCALLS.len() {
            all[i] = Self::SYSCALLS[i];
            i += 1;
        }
        all
    };

    /// The syscall name, as in the tracepoint `sys_enter_<name>` (for
    /// [`EventKind::Guard`], which is no syscall, `guard`).
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
            other => return Err(other),
        })
    }
}
