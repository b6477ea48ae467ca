//! Linux UAPI values used by name on both sides (x86_64), grouped under the
//! kernel header that defines them. Defined here once: the kernel programs
//! compare against them, userspace renders and correlates with them, and the
//! tests use them instead of bare numbers.
//!
//! Each has the type of the syscall argument or field it is used with:
//! `int` flag words as `u32`, `unsigned long` and `__u64` ones as `u64`,
//! `int` dirfds as `i32`, errnos as positive `i32` (a syscall returns
//! `-errno`).

// ---- asm-generic/errno-base.h ----

/// Operation not permitted: what the guard's `deny` makes a deletion
/// return.
pub const EPERM: i32 = 1;
/// Device or resource busy: an unmount of a mount still in use.
pub const EBUSY: i32 = 16;
/// Invalid argument.
pub const EINVAL: i32 = 22;

// ---- asm-generic/signal.h ----

/// Kill, not catchable (the guard's `kill`).
pub const SIGKILL: u32 = 9;
/// Resume a stopped process.
pub const SIGCONT: u32 = 18;
/// Stop, not catchable (the guard's `stop`).
pub const SIGSTOP: u32 = 19;

// ---- linux/io_uring.h ----

/// The io_uring request opcode of an unlinkat (`enum io_uring_op`, stable
/// UAPI numbering).
pub const IORING_OP_UNLINKAT: u8 = 36;
/// io_uring opcode of a rename (`renameat2`'s arguments).
pub const IORING_OP_RENAMEAT: u8 = 35;

// ---- linux/fcntl.h: the *at() calls ----

/// The "current working directory" dirfd.
pub const AT_FDCWD: i32 = -100;
/// unlinkat(2): remove a directory instead of a file.
pub const AT_REMOVEDIR: u32 = 0x200;
/// renameat2(2) flags.
pub const RENAME_NOREPLACE: u32 = 1 << 0;
pub const RENAME_EXCHANGE: u32 = 1 << 1;
pub const RENAME_WHITEOUT: u32 = 1 << 2;
/// Operate on the dirfd itself when the path is empty.
pub const AT_EMPTY_PATH: u32 = 0x1000;

// ---- linux/stat.h ----

/// Directory, in the `S_IFMT` bits of a mode.
pub const S_IFDIR: u32 = 0o040000;

// ---- linux/mount.h ----

/// mount(2) (`unsigned long` flags): remount an existing mount.
pub const MS_REMOUNT: u64 = 32;
/// mount(2): bind mount.
pub const MS_BIND: u64 = 4096;
/// mount(2): move a mount.
pub const MS_MOVE: u64 = 8192;
/// mount(2): apply recursively (with `MS_BIND` or a propagation change).
pub const MS_REC: u64 = 16384;
/// mount(2) propagation types (also statmount's `propagation` bits).
pub const MS_UNBINDABLE: u64 = 1 << 17;
pub const MS_PRIVATE: u64 = 1 << 18;
pub const MS_SLAVE: u64 = 1 << 19;
pub const MS_SHARED: u64 = 1 << 20;
/// open_tree(2): clone the tree into a new detached mount.
pub const OPEN_TREE_CLONE: u32 = 1;
/// `struct mount_attr` `attr_set`/`attr_clr` (`__u64`): read-only mount.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// `struct mount_attr` `attr_set`/`attr_clr` (`__u64`): id-mapped mount.
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
/// Size of the first version of `struct mount_attr` (mount_setattr(2)'s
/// `size` argument, a `size_t`).
pub const MOUNT_ATTR_SIZE_VER0: u64 = 32;
/// fsconfig(2) `cmd`: set a parameter to a string value.
pub const FSCONFIG_SET_STRING: u32 = 1;
/// fsconfig(2) `cmd`: set a parameter to a path (`aux` is its dirfd).
pub const FSCONFIG_SET_PATH: u32 = 3;
/// fsconfig(2) `cmd`: like `FSCONFIG_SET_PATH`, an empty path allowed.
pub const FSCONFIG_SET_PATH_EMPTY: u32 = 4;
/// fsconfig(2) `cmd`: set a parameter to the object behind fd `aux`.
pub const FSCONFIG_SET_FD: u32 = 5;

// ---- linux/fs.h (not exported to UAPI; glibc's sys/mount.h) ----

/// umount2(2): lazy unmount.
pub const MNT_DETACH: u32 = 2;

// ---- syscalls and ioctls newer than the libc crate's tables ----

/// statmount(2) (Linux 6.8+; the same number on every architecture since
/// the syscall tables were unified).
pub const SYS_STATMOUNT: i64 = 457;
/// listmount(2) (Linux 6.8+; the same number on every architecture).
pub const SYS_LISTMOUNT: i64 = 458;
/// linux/nsfs.h: `_IOR(0xb7, 5, __u64)`, the 64-bit id of a mount
/// namespace from its nsfs fd (Linux 6.11+).
pub const NS_GET_MNTNS_ID: u32 = 0x8008_b705;

#[cfg(test)]
mod tests {
    use super::*;

    /// Checked against libc's definitions, independently of this file.
    #[test]
    fn values_match_libc() {
        assert_eq!(EBUSY, libc::EBUSY);
        assert_eq!(EINVAL, libc::EINVAL);
        assert_eq!(SIGKILL as libc::c_int, libc::SIGKILL);
        assert_eq!(SIGCONT as libc::c_int, libc::SIGCONT);
        assert_eq!(SIGSTOP as libc::c_int, libc::SIGSTOP);
        assert_eq!(AT_FDCWD, libc::AT_FDCWD);
        assert_eq!(AT_REMOVEDIR as libc::c_int, libc::AT_REMOVEDIR);
        assert_eq!(RENAME_NOREPLACE, libc::RENAME_NOREPLACE);
        assert_eq!(RENAME_EXCHANGE, libc::RENAME_EXCHANGE);
        assert_eq!(RENAME_WHITEOUT, libc::RENAME_WHITEOUT);
        assert_eq!(AT_EMPTY_PATH as libc::c_int, libc::AT_EMPTY_PATH);
        assert_eq!(S_IFDIR, libc::S_IFDIR);
        assert_eq!(MS_REMOUNT, libc::MS_REMOUNT);
        assert_eq!(MS_BIND, libc::MS_BIND);
        assert_eq!(MS_MOVE, libc::MS_MOVE);
        assert_eq!(MS_REC, libc::MS_REC);
        assert_eq!(MS_UNBINDABLE, libc::MS_UNBINDABLE);
        assert_eq!(MS_PRIVATE, libc::MS_PRIVATE);
        assert_eq!(MS_SLAVE, libc::MS_SLAVE);
        assert_eq!(MS_SHARED, libc::MS_SHARED);
        assert_eq!(MNT_DETACH as libc::c_int, libc::MNT_DETACH);
        assert_eq!(OPEN_TREE_CLONE, libc::OPEN_TREE_CLONE);
        assert_eq!(MOUNT_ATTR_RDONLY, libc::MOUNT_ATTR_RDONLY);
        assert_eq!(MOUNT_ATTR_IDMAP, libc::MOUNT_ATTR_IDMAP);
        assert_eq!(MOUNT_ATTR_SIZE_VER0, libc::MOUNT_ATTR_SIZE_VER0 as u64);
        assert_eq!(FSCONFIG_SET_STRING, libc::FSCONFIG_SET_STRING);
        assert_eq!(FSCONFIG_SET_PATH, libc::FSCONFIG_SET_PATH);
        assert_eq!(FSCONFIG_SET_PATH_EMPTY, libc::FSCONFIG_SET_PATH_EMPTY);
        assert_eq!(FSCONFIG_SET_FD, libc::FSCONFIG_SET_FD);
    }

    /// `_IOR(type, nr, size)` = read (2) << 30 | size << 16 | type << 8 | nr.
    #[test]
    fn ioctl_numbers_are_their_encoding() {
        assert_eq!(NS_GET_MNTNS_ID, (2 << 30) | (8 << 16) | (0xb7 << 8) | 5);
    }
}
