//! Symbolic rendering of raw syscall arguments and return values, in the style
//! of strace: errno numbers become `EBUSY`, negative errno returns become
//! `-EBUSY`, and flag words become `|`-joined constant names in ascending bit
//! order (`MS_BIND|MS_REC`), with any bits this module does not know appended
//! as one hex literal (`MNT_DETACH|0x100`) and a zero word rendered as `0`.
//! All values are the Linux x86_64 UAPI ones (asm-generic/errno*.h,
//! linux/mount.h, linux/fcntl.h); those used by name elsewhere come from
//! `tracer_common::uapi`. The module is pure and uses only `std`.

use tracer_common::uapi::{
    AT_EMPTY_PATH, AT_FDCWD, AT_REMOVEDIR, MNT_DETACH, MOUNT_ATTR_IDMAP, MOUNT_ATTR_RDONLY,
    MS_BIND, MS_MOVE, MS_PRIVATE, MS_REC, MS_REMOUNT, MS_SHARED, MS_SLAVE, MS_UNBINDABLE,
    OPEN_TREE_CLONE, RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT,
};

/// Errno names indexed by number (asm-generic). Empty strings mark numbers
/// with no primary name: 0, 41 (`EWOULDBLOCK` is an alias of `EAGAIN`) and
/// 58 (`EDEADLOCK` is an alias of `EDEADLK`).
const ERRNO_NAMES: [&str; 134] = [
    "",
    "EPERM",
    "ENOENT",
    "ESRCH",
    "EINTR",
    "EIO",
    "ENXIO",
    "E2BIG",
    "ENOEXEC",
    "EBADF",
    "ECHILD", // 10
    "EAGAIN",
    "ENOMEM",
    "EACCES",
    "EFAULT",
    "ENOTBLK",
    "EBUSY",
    "EEXIST",
    "EXDEV",
    "ENODEV",
    "ENOTDIR", // 20
    "EISDIR",
    "EINVAL",
    "ENFILE",
    "EMFILE",
    "ENOTTY",
    "ETXTBSY",
    "EFBIG",
    "ENOSPC",
    "ESPIPE",
    "EROFS", // 30
    "EMLINK",
    "EPIPE",
    "EDOM",
    "ERANGE",
    "EDEADLK",
    "ENAMETOOLONG",
    "ENOLCK",
    "ENOSYS",
    "ENOTEMPTY",
    "ELOOP", // 40
    "",      // 41: EWOULDBLOCK == EAGAIN
    "ENOMSG",
    "EIDRM",
    "ECHRNG",
    "EL2NSYNC",
    "EL3HLT",
    "EL3RST",
    "ELNRNG",
    "EUNATCH",
    "ENOCSI", // 50
    "EL2HLT",
    "EBADE",
    "EBADR",
    "EXFULL",
    "ENOANO",
    "EBADRQC",
    "EBADSLT",
    "", // 58: EDEADLOCK == EDEADLK
    "EBFONT",
    "ENOSTR", // 60
    "ENODATA",
    "ETIME",
    "ENOSR",
    "ENONET",
    "ENOPKG",
    "EREMOTE",
    "ENOLINK",
    "EADV",
    "ESRMNT",
    "ECOMM", // 70
    "EPROTO",
    "EMULTIHOP",
    "EDOTDOT",
    "EBADMSG",
    "EOVERFLOW",
    "ENOTUNIQ",
    "EBADFD",
    "EREMCHG",
    "ELIBACC",
    "ELIBBAD", // 80
    "ELIBSCN",
    "ELIBMAX",
    "ELIBEXEC",
    "EILSEQ",
    "ERESTART",
    "ESTRPIPE",
    "EUSERS",
    "ENOTSOCK",
    "EDESTADDRREQ",
    "EMSGSIZE", // 90
    "EPROTOTYPE",
    "ENOPROTOOPT",
    "EPROTONOSUPPORT",
    "ESOCKTNOSUPPORT",
    "EOPNOTSUPP",
    "EPFNOSUPPORT",
    "EAFNOSUPPORT",
    "EADDRINUSE",
    "EADDRNOTAVAIL",
    "ENETDOWN", // 100
    "ENETUNREACH",
    "ENETRESET",
    "ECONNABORTED",
    "ECONNRESET",
    "ENOBUFS",
    "EISCONN",
    "ENOTCONN",
    "ESHUTDOWN",
    "ETOOMANYREFS",
    "ETIMEDOUT", // 110
    "ECONNREFUSED",
    "EHOSTDOWN",
    "EHOSTUNREACH",
    "EALREADY",
    "EINPROGRESS",
    "ESTALE",
    "EUCLEAN",
    "ENOTNAM",
    "ENAVAIL",
    "EISNAM", // 120
    "EREMOTEIO",
    "EDQUOT",
    "ENOMEDIUM",
    "EMEDIUMTYPE",
    "ECANCELED",
    "ENOKEY",
    "EKEYEXPIRED",
    "EKEYREVOKED",
    "EKEYREJECTED",
    "EOWNERDEAD", // 130
    "ENOTRECOVERABLE",
    "ERFKILL",
    "EHWPOISON",
];

/// Largest magnitude of a negative syscall return that encodes an errno.
const MAX_ERRNO: i64 = 4095;

/// One table entry: `name` is rendered when `value & mask == value_bits`.
/// Single-bit flags have `mask == bits`; multi-bit fields (the atime field of
/// `MOUNT_ATTR_*`, the `MS_MGC_VAL` magic, whole-value enums) use a wider mask.
struct Flag {
    mask: u64,
    bits: u64,
    name: &'static str,
}

/// A single-bit (or fixed bit pattern) flag.
const fn bit(bits: u64, name: &'static str) -> Flag {
    Flag {
        mask: bits,
        bits,
        name,
    }
}

/// A value `bits` of the multi-bit field selected by `mask`.
const fn field(mask: u64, bits: u64, name: &'static str) -> Flag {
    Flag { mask, bits, name }
}

/// The one decoding loop shared by every formatter: walks `table` in order,
/// renders each entry whose field matches the still-undecoded bits, and
/// appends whatever bits remain as a hex literal. Zero renders as `"0"`.
fn flags(value: u64, table: &[Flag]) -> String {
    if value == 0 {
        return "0".to_string();
    }
    let mut rest = value;
    let mut parts: Vec<String> = Vec::new();
    for f in table {
        if f.bits != 0 && rest & f.mask == f.bits {
            parts.push(f.name.to_string());
            rest &= !f.mask;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join("|")
}

const MOUNT_FLAGS: &[Flag] = &[
    // MS_MGC_VAL lives in MS_MGC_MSK (0xffff0000) and is rendered first.
    field(0xffff_0000, 0xc0ed_0000, "MS_MGC_VAL"),
    bit(1, "MS_RDONLY"),
    bit(2, "MS_NOSUID"),
    bit(4, "MS_NODEV"),
    bit(8, "MS_NOEXEC"),
    bit(16, "MS_SYNCHRONOUS"),
    bit(MS_REMOUNT, "MS_REMOUNT"),
    bit(64, "MS_MANDLOCK"),
    bit(128, "MS_DIRSYNC"),
    bit(256, "MS_NOSYMFOLLOW"),
    bit(1024, "MS_NOATIME"),
    bit(2048, "MS_NODIRATIME"),
    bit(MS_BIND, "MS_BIND"),
    bit(MS_MOVE, "MS_MOVE"),
    bit(MS_REC, "MS_REC"),
    bit(32768, "MS_SILENT"),
    bit(1 << 16, "MS_POSIXACL"),
    bit(MS_UNBINDABLE, "MS_UNBINDABLE"),
    bit(MS_PRIVATE, "MS_PRIVATE"),
    bit(MS_SLAVE, "MS_SLAVE"),
    bit(MS_SHARED, "MS_SHARED"),
    bit(1 << 21, "MS_RELATIME"),
    bit(1 << 22, "MS_KERNMOUNT"),
    bit(1 << 23, "MS_I_VERSION"),
    bit(1 << 24, "MS_STRICTATIME"),
    bit(1 << 25, "MS_LAZYTIME"),
    // Kernel-internal flags that linux/mount.h still exports (strace names
    // them too).
    bit(1 << 26, "MS_SUBMOUNT"),
    bit(1 << 27, "MS_NOREMOTELOCK"),
    bit(1 << 28, "MS_NOSEC"),
    bit(1 << 29, "MS_BORN"),
    bit(1 << 30, "MS_ACTIVE"),
    bit(1 << 31, "MS_NOUSER"),
];

const UMOUNT_FLAGS: &[Flag] = &[
    bit(1, "MNT_FORCE"),
    bit(MNT_DETACH as u64, "MNT_DETACH"),
    bit(4, "MNT_EXPIRE"),
    bit(8, "UMOUNT_NOFOLLOW"),
];

const AT_FLAGS: &[Flag] = &[
    bit(0x100, "AT_SYMLINK_NOFOLLOW"),
    bit(AT_REMOVEDIR as u64, "AT_REMOVEDIR"),
    bit(0x400, "AT_SYMLINK_FOLLOW"),
    bit(0x800, "AT_NO_AUTOMOUNT"),
    bit(AT_EMPTY_PATH as u64, "AT_EMPTY_PATH"),
    bit(0x8000, "AT_RECURSIVE"),
];

const OPEN_TREE_FLAGS: &[Flag] = &[
    bit(OPEN_TREE_CLONE as u64, "OPEN_TREE_CLONE"),
    bit(0x100, "AT_SYMLINK_NOFOLLOW"),
    bit(AT_REMOVEDIR as u64, "AT_REMOVEDIR"),
    bit(0x400, "AT_SYMLINK_FOLLOW"),
    bit(0x800, "AT_NO_AUTOMOUNT"),
    bit(AT_EMPTY_PATH as u64, "AT_EMPTY_PATH"),
    bit(0x8000, "AT_RECURSIVE"),
    // O_CLOEXEC == 02000000 on x86_64.
    bit(0x8_0000, "OPEN_TREE_CLOEXEC"),
];

const MOVE_MOUNT_FLAGS: &[Flag] = &[
    bit(0x1, "MOVE_MOUNT_F_SYMLINKS"),
    bit(0x2, "MOVE_MOUNT_F_AUTOMOUNTS"),
    bit(0x4, "MOVE_MOUNT_F_EMPTY_PATH"),
    bit(0x10, "MOVE_MOUNT_T_SYMLINKS"),
    bit(0x20, "MOVE_MOUNT_T_AUTOMOUNTS"),
    bit(0x40, "MOVE_MOUNT_T_EMPTY_PATH"),
    bit(0x100, "MOVE_MOUNT_SET_GROUP"),
    bit(0x200, "MOVE_MOUNT_BENEATH"),
];

const RENAME_FLAGS: &[Flag] = &[
    bit(RENAME_NOREPLACE as u64, "RENAME_NOREPLACE"),
    bit(RENAME_EXCHANGE as u64, "RENAME_EXCHANGE"),
    bit(RENAME_WHITEOUT as u64, "RENAME_WHITEOUT"),
];

/// `MOUNT_ATTR__ATIME`: the atime field of the mount attributes.
const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;

const MOUNT_ATTR_FLAGS: &[Flag] = &[
    bit(MOUNT_ATTR_RDONLY, "MOUNT_ATTR_RDONLY"),
    bit(0x2, "MOUNT_ATTR_NOSUID"),
    bit(0x4, "MOUNT_ATTR_NODEV"),
    bit(0x8, "MOUNT_ATTR_NOEXEC"),
    // MOUNT_ATTR_RELATIME (0) is the default and renders as nothing; other
    // field values are left over and appended as hex.
    field(MOUNT_ATTR_ATIME_MASK, 0x10, "MOUNT_ATTR_NOATIME"),
    field(MOUNT_ATTR_ATIME_MASK, 0x20, "MOUNT_ATTR_STRICTATIME"),
    bit(0x80, "MOUNT_ATTR_NODIRATIME"),
    bit(MOUNT_ATTR_IDMAP, "MOUNT_ATTR_IDMAP"),
    bit(0x20_0000, "MOUNT_ATTR_NOSYMFOLLOW"),
];

/// Whole-value matches: a value is exactly one of these or printed as hex.
const PROPAGATION: &[Flag] = &[
    field(u64::MAX, 1 << 17, "MS_UNBINDABLE"),
    field(u64::MAX, 1 << 18, "MS_PRIVATE"),
    field(u64::MAX, 1 << 19, "MS_SLAVE"),
    field(u64::MAX, 1 << 20, "MS_SHARED"),
];

const FSOPEN_FLAGS: &[Flag] = &[bit(1, "FSOPEN_CLOEXEC")];

const FSMOUNT_FLAGS: &[Flag] = &[bit(1, "FSMOUNT_CLOEXEC")];

/// fsconfig(2) commands indexed by number.
const FSCONFIG_CMDS: [&str; 9] = [
    "FSCONFIG_SET_FLAG",
    "FSCONFIG_SET_STRING",
    "FSCONFIG_SET_BINARY",
    "FSCONFIG_SET_PATH",
    "FSCONFIG_SET_PATH_EMPTY",
    "FSCONFIG_SET_FD",
    "FSCONFIG_CMD_CREATE",
    "FSCONFIG_CMD_RECONFIGURE",
    "FSCONFIG_CMD_CREATE_EXCL",
];

/// The primary name of a positive errno number (`16` → `"EBUSY"`), or `None`
/// for numbers with no name. Aliases resolve to their primary name, so
/// `EWOULDBLOCK` is reported as `EAGAIN`, `EDEADLOCK` as `EDEADLK` and
/// `ENOTSUP` as `EOPNOTSUPP`.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    usize::try_from(errno)
        .ok()
        .and_then(|i| ERRNO_NAMES.get(i))
        .copied()
        .filter(|name| !name.is_empty())
}

/// The errno number of a primary errno name (`"EBUSY"` → `16`); aliases such
/// as `EWOULDBLOCK` are not recognised.
pub fn errno_from_name(name: &str) -> Option<i32> {
    if name.is_empty() {
        return None;
    }
    ERRNO_NAMES
        .iter()
        .position(|&n| n == name)
        .and_then(|i| i32::try_from(i).ok())
}

/// A syscall return value: non-negative values in decimal, errno returns
/// (-4095..=-1) as `-EBUSY`, or as plain decimal (`-999`) when the errno has
/// no name.
pub fn ret(ret: i64) -> String {
    if (-MAX_ERRNO..0).contains(&ret) {
        if let Some(name) = i32::try_from(-ret).ok().and_then(errno_name) {
            return format!("-{name}");
        }
    }
    ret.to_string()
}

/// A signal the guard sends: `SIGSTOP`, `SIGKILL`; `no signal` for 0
/// (`--guard report`).
pub fn signal(sig: u32) -> String {
    use tracer_common::uapi::{SIGCONT, SIGKILL, SIGSTOP};
    match sig {
        0 => "(no signal)".into(),
        SIGSTOP => "SIGSTOP".into(),
        SIGKILL => "SIGKILL".into(),
        SIGCONT => "SIGCONT".into(),
        n => format!("signal {n}"),
    }
}

/// mount(2) `mountflags` (`MS_*`), with the legacy `MS_MGC_VAL` magic in the
/// high 16 bits of the low word rendered first.
pub fn mount_flags(flags: u64) -> String {
    self::flags(flags, MOUNT_FLAGS)
}

/// umount2(2) flags (`MNT_*`, `UMOUNT_NOFOLLOW`).
pub fn umount_flags(flags: u64) -> String {
    self::flags(flags, UMOUNT_FLAGS)
}

/// `AT_*` flags of the *at(2) calls (unlinkat, open_tree, mount_setattr...).
pub fn at_flags(flags: u64) -> String {
    self::flags(flags, AT_FLAGS)
}

/// open_tree(2) flags: `OPEN_TREE_*` plus the `AT_*` flags.
pub fn open_tree_flags(flags: u64) -> String {
    self::flags(flags, OPEN_TREE_FLAGS)
}

/// move_mount(2) flags (`MOVE_MOUNT_*`).
pub fn move_mount_flags(flags: u64) -> String {
    self::flags(flags, MOVE_MOUNT_FLAGS)
}

/// renameat2(2) `RENAME_*` flags.
pub fn rename_flags(flags: u32) -> String {
    self::flags(u64::from(flags), RENAME_FLAGS)
}

/// `MOUNT_ATTR_*` bits (mount_setattr(2) `attr_set`/`attr_clr`, fsmount(2)
/// `attr_flags`). The atime field renders nothing when it holds
/// `MOUNT_ATTR_RELATIME` (0) and as hex when it holds an unknown value.
pub fn mount_attr(flags: u64) -> String {
    self::flags(flags, MOUNT_ATTR_FLAGS)
}

/// mount_setattr(2) `propagation`: `0`, exactly one of `MS_UNBINDABLE`,
/// `MS_PRIVATE`, `MS_SLAVE`, `MS_SHARED`, or hex.
pub fn propagation(value: u64) -> String {
    flags(value, PROPAGATION)
}

/// fsopen(2) flags (`FSOPEN_CLOEXEC`).
pub fn fsopen_flags(flags: u64) -> String {
    self::flags(flags, FSOPEN_FLAGS)
}

/// fsmount(2) flags (`FSMOUNT_CLOEXEC`).
pub fn fsmount_flags(flags: u64) -> String {
    self::flags(flags, FSMOUNT_FLAGS)
}

/// fsconfig(2) command name (`FSCONFIG_*`), or decimal when unknown.
pub fn fsconfig_cmd(cmd: u32) -> String {
    usize::try_from(cmd)
        .ok()
        .and_then(|i| FSCONFIG_CMDS.get(i))
        .map_or_else(|| cmd.to_string(), |name| (*name).to_string())
}

/// A directory file descriptor: `AT_FDCWD` or decimal.
pub fn dirfd(fd: i32) -> String {
    if fd == AT_FDCWD {
        "AT_FDCWD".to_string()
    } else {
        fd.to_string()
    }
}

/// Names of a resolved directory's `DIR_*` flags (those worth showing: how
/// it was found is shown separately). Used by every sink.
pub fn dir_flags(bits: u32) -> Vec<&'static str> {
    use tracer_common::event::*;
    [
        (DIR_IDMAPPED, "idmapped"),
        (DIR_SUBTREE, "subtree"),
        (DIR_DETACHED, "detached"),
        (DIR_OUTSIDE_ROOT, "outside_root"),
        (DIR_NOT_DIR, "not_dir"),
        (DIR_TRUNC_LEN, "truncated_length"),
        (DIR_TRUNC_DEPTH, "truncated_depth"),
        (DIR_READ_ERR, "read_error"),
        (DIR_REL_UNKNOWN, "rel_unknown"),
    ]
    .iter()
    .filter(|(b, _)| bits & b != 0)
    .map(|&(_, n)| n)
    .collect()
}

/// Names of the kernel's capture reasons (`CAP_*` of `tracer_common`).
pub fn capture_reasons(bits: u32) -> Vec<&'static str> {
    use tracer_common::event::{
        CAP_AFTER_ANY_EBUSY, CAP_ALL, CAP_BUSY, CAP_BUSY_MOUNT, CAP_BUSY_PATH, CAP_CROSSING,
        CAP_IDMAPPED, CAP_SUBTREE,
    };
    [
        (CAP_ALL, "all"),
        (CAP_BUSY, "after_ebusy"),
        (CAP_IDMAPPED, "idmapped"),
        (CAP_SUBTREE, "subtree"),
        (CAP_CROSSING, "crossing"),
        (CAP_BUSY_PATH, "path_after_ebusy"),
        (CAP_BUSY_MOUNT, "on_busy_mount"),
        (CAP_AFTER_ANY_EBUSY, "after_any_ebusy"),
    ]
    .iter()
    .filter(|(b, _)| bits & b != 0)
    .map(|&(_, n)| n)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::uapi::{
        EBUSY, FSCONFIG_SET_FD, FSCONFIG_SET_PATH, FSCONFIG_SET_PATH_EMPTY, FSCONFIG_SET_STRING,
    };

    #[test]
    fn mount_flags_render() {
        assert_eq!(mount_flags(MS_BIND | MS_REC), "MS_BIND|MS_REC");
        assert_eq!(mount_flags(0), "0");
        assert_eq!(mount_flags(0xC0ED_0000 | 1), "MS_MGC_VAL|MS_RDONLY");
        assert_eq!(mount_flags(0xC0ED_0000), "MS_MGC_VAL");
        assert_eq!(
            mount_flags(0xC0ED_0000 | MS_REMOUNT | MS_BIND),
            "MS_MGC_VAL|MS_REMOUNT|MS_BIND"
        );
        assert_eq!(
            mount_flags(1 | 2 | 4 | 8),
            "MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC"
        );
        assert_eq!(mount_flags(MS_MOVE), "MS_MOVE");
        assert_eq!(mount_flags(MS_REC | (1 << 18)), "MS_REC|MS_PRIVATE");
        assert_eq!(mount_flags(1 << 25), "MS_LAZYTIME");
        assert_eq!(mount_flags(1 << 31), "MS_NOUSER");
        assert_eq!(mount_flags(512), "0x200");
        assert_eq!(mount_flags(MS_BIND | 512), "MS_BIND|0x200");
        assert_eq!(mount_flags(1 << 32), "0x100000000");
    }

    #[test]
    fn umount_flags_render() {
        assert_eq!(
            umount_flags(u64::from(MNT_DETACH) | 0x100),
            "MNT_DETACH|0x100"
        );
        assert_eq!(
            umount_flags(1 | 2 | 4 | 8),
            "MNT_FORCE|MNT_DETACH|MNT_EXPIRE|UMOUNT_NOFOLLOW"
        );
        assert_eq!(umount_flags(0), "0");
    }

    #[test]
    fn at_flags_render() {
        assert_eq!(at_flags(u64::from(AT_REMOVEDIR)), "AT_REMOVEDIR");
        assert_eq!(
            at_flags(0x100 | u64::from(AT_EMPTY_PATH) | 0x8000),
            "AT_SYMLINK_NOFOLLOW|AT_EMPTY_PATH|AT_RECURSIVE"
        );
        assert_eq!(at_flags(0x400 | 0x800), "AT_SYMLINK_FOLLOW|AT_NO_AUTOMOUNT");
        assert_eq!(at_flags(0), "0");
        assert_eq!(at_flags(1), "0x1");
    }

    #[test]
    fn open_tree_flags_render() {
        let clone = u64::from(OPEN_TREE_CLONE);
        assert_eq!(
            open_tree_flags(clone | 0x80000),
            "OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC"
        );
        assert_eq!(
            open_tree_flags(clone | 0x8000 | 0x80000),
            "OPEN_TREE_CLONE|AT_RECURSIVE|OPEN_TREE_CLOEXEC"
        );
        assert_eq!(open_tree_flags(u64::from(AT_EMPTY_PATH)), "AT_EMPTY_PATH");
        assert_eq!(open_tree_flags(0), "0");
    }

    #[test]
    fn rename_flags_render() {
        assert_eq!(rename_flags(0), "0");
        assert_eq!(
            rename_flags(RENAME_NOREPLACE | RENAME_WHITEOUT),
            "RENAME_NOREPLACE|RENAME_WHITEOUT"
        );
        assert_eq!(rename_flags(RENAME_EXCHANGE | 0x10), "RENAME_EXCHANGE|0x10");
    }

    #[test]
    fn move_mount_flags_render() {
        assert_eq!(
            move_mount_flags(0x4 | 0x40),
            "MOVE_MOUNT_F_EMPTY_PATH|MOVE_MOUNT_T_EMPTY_PATH"
        );
        assert_eq!(
            move_mount_flags(0x100 | 0x200),
            "MOVE_MOUNT_SET_GROUP|MOVE_MOUNT_BENEATH"
        );
        assert_eq!(move_mount_flags(0x8), "0x8");
    }

    #[test]
    fn mount_attr_render() {
        assert_eq!(mount_attr(MOUNT_ATTR_IDMAP), "MOUNT_ATTR_IDMAP");
        assert_eq!(mount_attr(0x10 | 1), "MOUNT_ATTR_RDONLY|MOUNT_ATTR_NOATIME");
        assert_eq!(mount_attr(0x20), "MOUNT_ATTR_STRICTATIME");
        assert_eq!(
            mount_attr(0x8 | 0x80 | 0x200000),
            "MOUNT_ATTR_NOEXEC|MOUNT_ATTR_NODIRATIME|MOUNT_ATTR_NOSYMFOLLOW"
        );
        assert_eq!(mount_attr(0x30), "0x30");
        assert_eq!(mount_attr(0x30 | 2), "MOUNT_ATTR_NOSUID|0x30");
        assert_eq!(mount_attr(0x40 | 0x400), "0x440");
        assert_eq!(mount_attr(0), "0");
    }

    #[test]
    fn propagation_render() {
        assert_eq!(propagation(0), "0");
        assert_eq!(propagation(1 << 17), "MS_UNBINDABLE");
        assert_eq!(propagation(1 << 18), "MS_PRIVATE");
        assert_eq!(propagation(1 << 19), "MS_SLAVE");
        assert_eq!(propagation(1 << 20), "MS_SHARED");
        assert_eq!(propagation((1 << 18) | MS_REC), "0x44000");
        assert_eq!(propagation(3), "0x3");
    }

    #[test]
    fn fs_flags_render() {
        assert_eq!(fsopen_flags(1), "FSOPEN_CLOEXEC");
        assert_eq!(fsopen_flags(0), "0");
        assert_eq!(fsopen_flags(3), "FSOPEN_CLOEXEC|0x2");
        assert_eq!(fsmount_flags(1), "FSMOUNT_CLOEXEC");
        assert_eq!(fsmount_flags(0), "0");
    }

    #[test]
    fn fsconfig_cmd_render() {
        assert_eq!(fsconfig_cmd(0), "FSCONFIG_SET_FLAG");
        assert_eq!(fsconfig_cmd(FSCONFIG_SET_STRING), "FSCONFIG_SET_STRING");
        assert_eq!(fsconfig_cmd(FSCONFIG_SET_PATH), "FSCONFIG_SET_PATH");
        assert_eq!(
            fsconfig_cmd(FSCONFIG_SET_PATH_EMPTY),
            "FSCONFIG_SET_PATH_EMPTY"
        );
        assert_eq!(fsconfig_cmd(FSCONFIG_SET_FD), "FSCONFIG_SET_FD");
        assert_eq!(fsconfig_cmd(6), "FSCONFIG_CMD_CREATE");
        assert_eq!(fsconfig_cmd(7), "FSCONFIG_CMD_RECONFIGURE");
        assert_eq!(fsconfig_cmd(8), "FSCONFIG_CMD_CREATE_EXCL");
        assert_eq!(fsconfig_cmd(9), "9");
        assert_eq!(fsconfig_cmd(u32::MAX), "4294967295");
    }

    #[test]
    fn dirfd_render() {
        assert_eq!(dirfd(AT_FDCWD), "AT_FDCWD");
        assert_eq!(dirfd(3), "3");
        assert_eq!(dirfd(-1), "-1");
    }

    #[test]
    fn ret_render() {
        assert_eq!(ret(-i64::from(EBUSY)), "-EBUSY");
        assert_eq!(ret(3), "3");
        assert_eq!(ret(0), "0");
        assert_eq!(ret(-2), "-ENOENT");
        assert_eq!(ret(-133), "-EHWPOISON");
        assert_eq!(ret(-41), "-41");
        assert_eq!(ret(-999), "-999");
        assert_eq!(ret(-4095), "-4095");
        assert_eq!(ret(-4096), "-4096");
        assert_eq!(ret(i64::MIN), i64::MIN.to_string());
        assert_eq!(ret(i64::MAX), i64::MAX.to_string());
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(EBUSY), Some("EBUSY"));
        let expected = [
            (1, "EPERM"),
            (2, "ENOENT"),
            (7, "E2BIG"),
            (9, "EBADF"),
            (11, "EAGAIN"),
            (12, "ENOMEM"),
            (13, "EACCES"),
            (14, "EFAULT"),
            (16, "EBUSY"),
            (17, "EEXIST"),
            (18, "EXDEV"),
            (19, "ENODEV"),
            (20, "ENOTDIR"),
            (21, "EISDIR"),
            (22, "EINVAL"),
            (24, "EMFILE"),
            (28, "ENOSPC"),
            (30, "EROFS"),
            (35, "EDEADLK"),
            (36, "ENAMETOOLONG"),
            (38, "ENOSYS"),
            (39, "ENOTEMPTY"),
            (40, "ELOOP"),
            (42, "ENOMSG"),
            (57, "EBADSLT"),
            (59, "EBFONT"),
            (95, "EOPNOTSUPP"),
            (116, "ESTALE"),
            (125, "ECANCELED"),
            (133, "EHWPOISON"),
        ];
        for (n, name) in expected {
            assert_eq!(errno_name(n), Some(name), "errno {n}");
            assert_eq!(errno_from_name(name), Some(n), "{name}");
        }
        assert_eq!(errno_name(0), None);
        assert_eq!(errno_name(-EBUSY), None);
        assert_eq!(errno_name(134), None);
        assert_eq!(errno_name(i32::MAX), None);
        assert_eq!(errno_name(i32::MIN), None);
        // Aliases are not names of their own.
        assert_eq!(errno_from_name("EWOULDBLOCK"), None);
        assert_eq!(errno_from_name("EDEADLOCK"), None);
        assert_eq!(errno_from_name("ENOTSUP"), None);
        assert_eq!(errno_from_name(""), None);
        assert_eq!(errno_from_name("ebusy"), None);
        assert_eq!(errno_from_name("EBUSY"), Some(EBUSY));
    }

    #[test]
    fn every_errno_has_a_name() {
        // 41 and 58 are unassigned in asm-generic: their only names
        // (EWOULDBLOCK, EDEADLOCK) are aliases of 11 and 35.
        for n in 1..=133 {
            if n == 41 || n == 58 {
                assert_eq!(errno_name(n), None, "errno {n}");
            } else {
                assert!(errno_name(n).is_some(), "errno {n} has no name");
            }
        }
    }

    #[test]
    fn errno_round_trip() {
        let mut named = 0;
        for n in -10..=200 {
            if let Some(name) = errno_name(n) {
                assert_eq!(errno_from_name(name), Some(n), "{name}");
                named += 1;
            }
        }
        assert_eq!(named, 131);
    }

    #[test]
    fn errno_names_are_unique() {
        for (i, a) in ERRNO_NAMES.iter().enumerate() {
            for b in &ERRNO_NAMES[i + 1..] {
                assert!(a.is_empty() || a != b, "duplicate {a}");
            }
        }
    }
}
