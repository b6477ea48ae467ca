//! Golden tests for the sinks (console text and JSON Lines), and conformance
//! of the JSON output to docs/json-schema.md. Everything is built by hand:
//! no kernel, no eBPF, no mounts, no root, no /proc of other processes (the
//! only files read at run time are the golden files; the schema doc is
//! compiled in).
//!
//! - Console expectations are inline, next to each case.
//! - JSON expectations are files `tests/golden/<case>.json`, compared as
//!   `serde_json::Value`s. After a deliberate change of the output, rewrite
//!   them with `MNTRACE_BLESS=1 cargo test -p tracer --test sinks` and
//!   review the diff.
//! - The schema test parses the doc's tables and lists (see [`schema`]) and
//!   checks, over the whole corpus, that every documented field (and
//!   documented value of an enumerated string field) appears in some output
//!   and that no output has an undocumented field, recursively.
//!
//! Times: the console shows local time, so the tests set `TZ=UTC0` before
//! anything is formatted (every test goes through [`clock`]); every case uses
//! a fixed `BootClock::with_offset`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Once;

use bytes::Bytes;
use serde_json::{json, Value};

use mntrace::correlate::{
    Cause, Deletion, FailedUnmount, Incident, MountFacts, Prevention, Process, Severity, Walk,
};
use mntrace::drops::Drops;
use mntrace::enrich::clock::BootClock;
use mntrace::enrich::holders::{Hold, Holder, HolderScan};
use mntrace::model::{Args, Dir, Event, GuardAction, MountAttr, Str};
use mntrace::sink::console::{self, Console};
use mntrace::sink::jsonl::JsonLines;
use mntrace::sink::Sink;
use mntrace::stats::{Stats, Unwritten};
use mntrace::EventKind;
use tracer_common::event::*;
use tracer_common::uapi::{
    AT_EMPTY_PATH, AT_FDCWD, AT_REMOVEDIR, EBUSY, EINVAL, FSCONFIG_SET_FD, FSCONFIG_SET_PATH,
    FSCONFIG_SET_STRING, MNT_DETACH, MOUNT_ATTR_IDMAP, MS_BIND, MS_REC, OPEN_TREE_CLONE,
};
use tracer_common::DropReason;

// ---- fixed time --------------------------------------------------------------

/// Boot time 0 is 2027-01-15T08:00:00Z.
const OFFSET_NS: i128 = 1_800_000_000_000_000_000;

/// Boot time of second `s` after the offset, plus 123456789 ns: shown as
/// `08:00:SS.123456` on the console (microseconds, cut, not rounded) and
/// `2027-01-15T08:00:SS.123456789Z` in JSON.
const fn at(s: u64) -> u64 {
    s * 1_000_000_000 + 123_456_789
}

/// The tests' clock. Sets `TZ=UTC0` first (the console formats local time);
/// every test calls this before formatting anything, and every test sets the
/// same value, so the order of threads does not matter.
fn clock() -> BootClock {
    static TZ: Once = Once::new();
    TZ.call_once(|| std::env::set_var("TZ", "UTC0"));
    BootClock::with_offset(OFFSET_NS)
}

// ---- builders ----------------------------------------------------------------

fn s(b: &'static [u8]) -> Str {
    Str::new(Bytes::from_static(b))
}
fn str_flags(b: &'static [u8], flags: u16) -> Str {
    Str {
        bytes: Bytes::from_static(b),
        flags,
    }
}
fn null() -> Str {
    str_flags(b"", STR_NULL)
}
fn fault() -> Str {
    str_flags(b"", STR_FAULT)
}
fn absent() -> Str {
    str_flags(b"", STR_ABSENT)
}
fn b(x: &'static [u8]) -> Bytes {
    Bytes::from_static(x)
}

const NS: u32 = 4026531841;

/// A resolved directory: `from` is one of `DIR_FROM_*` (or 0), `extra` more
/// `DIR_*` flags; `rel_off` bytes of `path` are above the mount's root.
fn dir(from: u32, mnt_id: u32, path: &'static [u8], rel_off: u32, extra: u32) -> Dir {
    Dir {
        mnt_id,
        mnt_id_unique: 0x8000_0000 + mnt_id as u64,
        mnt_ns: NS,
        dev: (8 << 20) | 1,
        ino: 1000 + mnt_id as u64,
        flags: DIR_RESOLVED | from | extra,
        path: s(path),
        rel_off,
    }
}

/// A detached mount (`open_tree` clone, `fsmount` result): `mnt_ns` 0.
fn detached(from: u32, mnt_id: u32, extra: u32) -> Dir {
    Dir {
        mnt_ns: 0,
        dev: 45,
        ino: 1,
        ..dir(from, mnt_id, b"/", 0, DIR_DETACHED | extra)
    }
}

fn event(kind: EventKind, ts_ns: u64, ret: i64, comm: &'static [u8], args: Args) -> Event {
    Event {
        kind,
        ts_ns,
        duration_ns: 8_123,
        ret,
        pid: 4242,
        tid: 4243,
        ppid: 4241,
        uid: 1000,
        gid: 1001,
        mnt_ns: NS,
        cgroup_id: 7,
        comm: Bytes::from_static(comm),
        args,
    }
}

fn process(pid: u32, ppid: u32, comm: &'static [u8]) -> Process {
    Process {
        pid,
        tid: pid,
        ppid,
        uid: 0,
        comm: b(comm),
        cgroup_id: 1,
        mnt_ns: NS,
    }
}

fn deletion(
    ts_ns: u64,
    kind: EventKind,
    is_dir: bool,
    path: &'static [u8],
    rel: &'static [u8],
    backing: Option<&'static [u8]>,
) -> Deletion {
    Deletion {
        ts_ns,
        pid: 300,
        tid: 301,
        syscall: kind,
        is_dir,
        path: b(path),
        rel_path: b(rel),
        backing_path: backing.map(b),
        truncated: false,
        inode: None,
        renamed_to: None,
    }
}

fn drops(entries: &[(EventKind, DropReason, u64)]) -> Drops {
    let mut d = Drops::default();
    for &(k, r, n) in entries {
        d.0[k as usize][r as usize] = n;
    }
    d
}

// ---- the corpus --------------------------------------------------------------

enum Item {
    Event(Event),
    Incident(Incident),
    /// `delta`, `total`.
    Loss(Drops, Drops),
    Stats(Stats),
}

/// One golden case: the input and its exact console rendering (an event
/// line without its newline; an incident block; the loss line; the
/// summary). The JSON is in `tests/golden/<name>.json`.
struct Case {
    name: &'static str,
    item: Item,
    console: &'static str,
}

fn event_cases() -> Vec<Case> {
    use EventKind::*;
    let case = |name, ev, console| Case {
        name,
        item: Item::Event(ev),
        console,
    };
    vec![
        // ---- mount
        case(
            "mount_bind",
            event(
                Mount,
                at(1),
                0,
                b"mount",
                Args::Mount {
                    source: s(b"/srv/data"),
                    target: s(b"/mnt/data"),
                    fstype: null(),
                    data: null(),
                    flags: MS_BIND | MS_REC,
                    cwd: dir(DIR_FROM_ROOT, 1, b"/", 0, 0),
                },
            ),
            // An absolute target: the resolved cwd (here the root) is not shown.
            r#"08:00:01.123456 mount[4242/4243] mount("/srv/data", "/mnt/data", NULL, MS_BIND|MS_REC, NULL) = 0"#,
        ),
        case(
            "mount_relative_failed",
            event(
                Mount,
                at(2),
                -1,
                b"mount",
                Args::Mount {
                    source: s(b"tmpfs"),
                    target: s(b"sub dir/m"),
                    fstype: s(b"tmpfs"),
                    data: str_flags(b"size=1m", STR_TRUNCATED),
                    flags: 2 | 4 | 0x200,
                    cwd: dir(DIR_FROM_CWD, 23, b"/home/u", 5, 0),
                },
            ),
            r#"08:00:02.123456 mount[4242/4243] mount("tmpfs", "sub dir/m", "tmpfs", MS_NOSUID|MS_NODEV|0x200, "size=1m"...) = -EPERM  cwd="/home/u" mnt=23 rel="/u""#,
        ),
        case(
            "mount_unreadable",
            event(
                Mount,
                at(3),
                -14,
                b"mount",
                Args::Mount {
                    source: fault(),
                    target: s(b"/mnt/x"),
                    fstype: s(b"ext4"),
                    data: s(b""),
                    flags: 0xc0ed_0000 | 1,
                    cwd: dir(DIR_FROM_ROOT, 1, b"/", 0, 0),
                },
            ),
            r#"08:00:03.123456 mount[4242/4243] mount(<unreadable>, "/mnt/x", "ext4", MS_MGC_VAL|MS_RDONLY, "") = -EFAULT"#,
        ),
        // ---- umount
        case(
            "umount_ebusy",
            event(
                Umount,
                at(4),
                -i64::from(EBUSY),
                b"umount",
                Args::Umount {
                    target: s(b"/mnt/data"),
                    flags: 0,
                    cwd: dir(DIR_FROM_ROOT, 1, b"/", 0, 0),
                    // Kernel probe set: the mount at path_umount.
                    target_mount: Some(Dir {
                        mnt_id: 60,
                        mnt_id_unique: 0x8000_003c,
                        mnt_ns: 4026531841,
                        dev: 8 << 20 | 1,
                        ino: 2,
                        flags: DIR_RESOLVED | DIR_SUBTREE,
                        ..Dir::default()
                    }),
                },
            ),
            r#"08:00:04.123456 umount[4242/4243] umount2("/mnt/data", 0) = -EBUSY  target mnt=60 [subtree]"#,
        ),
        case(
            "umount_relative_unresolved",
            event(
                Umount,
                at(5),
                -i64::from(EINVAL),
                b"umount",
                Args::Umount {
                    target: s(b"m"),
                    flags: u64::from(MNT_DETACH) | 8,
                    // The kernel could not read the cwd.
                    cwd: Dir {
                        flags: DIR_FROM_CWD | DIR_READ_ERR,
                        path: absent(),
                        ..Dir::default()
                    },
                    target_mount: None,
                },
            ),
            r#"08:00:05.123456 umount[4242/4243] umount2("m", MNT_DETACH|UMOUNT_NOFOLLOW) = -EINVAL  cwd=<unresolved>"#,
        ),
        // ---- deletions
        case(
            "unlink_newline_and_invalid_utf8",
            event(
                Unlink,
                at(6),
                0,
                b"rm",
                Args::Delete {
                    dfd: AT_FDCWD,
                    pathname: s(b"a\nb\xff.txt"),
                    flags: 0,
                    dir: dir(DIR_FROM_CWD, 30, b"/tmp/x", 4, DIR_IDMAPPED | DIR_SUBTREE),
                    // Every reason at once.
                    capture: CAP_ALL
                        | CAP_BUSY
                        | CAP_IDMAPPED
                        | CAP_SUBTREE
                        | CAP_CROSSING
                        | CAP_BUSY_PATH
                        | CAP_BUSY_MOUNT
                        | CAP_AFTER_ANY_EBUSY,
                    origin_mnt_id: 29,
                    victim: None,
                },
            ),
            r#"08:00:06.123456 rm[4242/4243] unlink("a\nb\xff.txt") = 0  dir="/tmp/x" mnt=30 rel="/x" [idmapped,subtree]"#,
        ),
        case(
            "unlink_kernel_probe_set_inode",
            event(
                Unlink,
                at(6),
                0,
                b"rm",
                Args::Delete {
                    dfd: AT_FDCWD,
                    pathname: s(b"f"),
                    flags: 0,
                    dir: dir(DIR_FROM_CWD, 30, b"/tmp/x", 4, 0),
                    capture: CAP_ALL,
                    origin_mnt_id: 0,
                    victim: Some(mntrace::model::Victim {
                        ino: 1234,
                        size: 4096,
                        dev: 254 << 20 | 1,
                        nlink: 1,
                        mode: 0o100640,
                        rmdir: false,
                    }),
                },
            ),
            r#"08:00:06.123456 rm[4242/4243] unlink("f") = 0  dir="/tmp/x" mnt=30 rel="/x"  inode=1234 file size=4096 nlink=1 (last link)"#,
        ),
        case(
            "unlinkat_removedir_idmapped_subtree",
            event(
                Unlinkat,
                at(7),
                0,
                b"containerd",
                Args::Delete {
                    dfd: 7,
                    pathname: s(b"etc"),
                    flags: AT_REMOVEDIR,
                    dir: dir(
                        DIR_FROM_FD,
                        66,
                        b"/run/c/0/bin",
                        8,
                        DIR_IDMAPPED | DIR_SUBTREE,
                    ),
                    capture: CAP_BUSY
                        | CAP_IDMAPPED
                        | CAP_SUBTREE
                        | CAP_BUSY_MOUNT
                        | CAP_AFTER_ANY_EBUSY,
                    origin_mnt_id: 66,
                    victim: Some(mntrace::model::Victim {
                        ino: 4242,
                        size: 60,
                        dev: 0x2d,
                        nlink: 2,
                        mode: 0o040755,
                        rmdir: true,
                    }),
                },
            ),
            r#"08:00:07.123456 containerd[4242/4243] unlinkat(7, "etc", AT_REMOVEDIR) = 0  dir="/run/c/0/bin" mnt=66 rel="/bin" [idmapped,subtree]  inode=4242 dir size=60 nlink=2 (last link)"#,
        ),
        case(
            "rmdir_kernel_probe_set_inode",
            event(
                Rmdir,
                at(7),
                0,
                b"rmdir",
                Args::Delete {
                    dfd: AT_FDCWD,
                    pathname: s(b"/srv/empty"),
                    flags: 0,
                    dir: dir(DIR_FROM_ROOT, 1, b"/", 0, 0),
                    capture: CAP_ALL,
                    origin_mnt_id: 0,
                    victim: Some(mntrace::model::Victim {
                        ino: 77,
                        size: 4096,
                        dev: 8 << 20 | 2,
                        nlink: 2,
                        mode: 0o040700,
                        rmdir: true,
                    }),
                },
            ),
            r#"08:00:07.123456 rmdir[4242/4243] rmdir("/srv/empty") = 0  dir="/" mnt=1  inode=77 dir size=4096 nlink=2 (last link)"#,
        ),
        case(
            "unlinkat_bad_fd",
            event(
                Unlinkat,
                at(8),
                -9,
                b"rm",
                Args::Delete {
                    dfd: 99,
                    pathname: s(b"x"),
                    flags: 0,
                    dir: Dir {
                        flags: DIR_FROM_FD | DIR_BAD_FD,
                        path: absent(),
                        ..Dir::default()
                    },
                    capture: CAP_ALL,
                    origin_mnt_id: 0,
                    victim: None,
                },
            ),
            r#"08:00:08.123456 rm[4242/4243] unlinkat(99, "x", 0) = -EBADF  dir=<bad fd>"#,
        ),
        case(
            "unlinkat_crossing_escapes_and_flags",
            event(
                Unlinkat,
                at(9),
                0,
                b"rm",
                Args::Delete {
                    dfd: 5,
                    pathname: s(b"q\"\t\\"),
                    flags: 0,
                    dir: Dir {
                        // Before 6.8: no unique mount id.
                        mnt_id_unique: 0,
                        ..dir(
                            DIR_FROM_FD,
                            77,
                            b"/srv/\xe9t\xe9",
                            4,
                            DIR_OUTSIDE_ROOT | DIR_NOT_DIR | DIR_READ_ERR,
                        )
                    },
                    capture: CAP_ALL | CAP_CROSSING,
                    origin_mnt_id: 41,
                    victim: None,
                },
            ),
            r#"08:00:09.123456 rm[4242/4243] unlinkat(5, "q\"\t\\", 0) = 0  dir="/srv/\xe9t\xe9" mnt=77 rel="/\xe9t\xe9" [outside_root,not_dir,read_error]"#,
        ),
        case(
            "rmdir_truncated_dir",
            event(
                Rmdir,
                at(10),
                -39,
                b"rm",
                Args::Delete {
                    dfd: AT_FDCWD,
                    pathname: s(b"deep"),
                    flags: 0,
                    dir: Dir {
                        path: str_flags(b"/c/d", STR_TRUNCATED),
                        ..dir(
                            DIR_FROM_CWD,
                            41,
                            b"",
                            2,
                            DIR_IDMAPPED | DIR_SUBTREE | DIR_TRUNC_LEN | DIR_TRUNC_DEPTH,
                        )
                    },
                    capture: CAP_ALL
                        | CAP_BUSY
                        | CAP_IDMAPPED
                        | CAP_SUBTREE
                        | CAP_CROSSING
                        | CAP_BUSY_PATH
                        | CAP_BUSY_MOUNT
                        | CAP_AFTER_ANY_EBUSY,
                    origin_mnt_id: 40,
                    victim: None,
                },
            ),
            r#"08:00:10.123456 rm[4242/4243] rmdir("deep") = -ENOTEMPTY  dir=..."/c/d" mnt=41 rel="/d" [idmapped,subtree,truncated_length,truncated_depth]"#,
        ),
        case(
            "unlinkat_rel_unknown_unnamed_errno",
            event(
                Unlinkat,
                at(11),
                -512,
                b"rm",
                Args::Delete {
                    dfd: AT_FDCWD,
                    pathname: s(b"/f"),
                    flags: 0,
                    // No DIR_FROM_* bit (the kernel always sets one): from "unknown".
                    dir: dir(0, 12, b"/", 0, DIR_REL_UNKNOWN),
                    capture: CAP_BUSY | CAP_BUSY_PATH,
                    origin_mnt_id: 12,
                    victim: None,
                },
            ),
            r#"08:00:11.123456 rm[4242/4243] unlinkat(AT_FDCWD, "/f", 0) = -512  dir="/" mnt=12 [rel_unknown]"#,
        ),
        // ---- new mount API
        case(
            "open_tree_clone",
            event(
                OpenTree,
                at(12),
                3,
                b"containerd",
                Args::OpenTree {
                    dfd: AT_FDCWD,
                    pathname: s(b"/var/lib/x/snapshots/7/fs"),
                    flags: u64::from(OPEN_TREE_CLONE) | 0x8000 | 0x8_0000,
                    dir: dir(DIR_FROM_ROOT, 44, b"/", 0, 0),
                    result: Some(detached(DIR_FROM_FD, 66, 0)),
                },
            ),
            r#"08:00:12.123456 containerd[4242/4243] open_tree(AT_FDCWD, "/var/lib/x/snapshots/7/fs", OPEN_TREE_CLONE|AT_RECURSIVE|OPEN_TREE_CLOEXEC) = 3  dir="/" mnt=44  -> mnt=66 [detached]"#,
        ),
        case(
            "open_tree_failed",
            event(
                OpenTree,
                at(13),
                -2,
                b"containerd",
                Args::OpenTree {
                    dfd: 4,
                    pathname: s(b""),
                    flags: u64::from(AT_EMPTY_PATH),
                    // The fd is a mount's root: rel "/".
                    dir: dir(DIR_FROM_FD, 50, b"/mnt/a", 6, 0),
                    result: None,
                },
            ),
            r#"08:00:13.123456 containerd[4242/4243] open_tree(4, "", AT_EMPTY_PATH) = -ENOENT  dir="/mnt/a" mnt=50 rel="/""#,
        ),
        case(
            "move_mount",
            event(
                MoveMount,
                at(14),
                0,
                b"containerd",
                Args::MoveMount {
                    from_dfd: 3,
                    from_path: s(b""),
                    to_dfd: AT_FDCWD,
                    to_path: s(b"/mnt/t"),
                    flags: 0x4,
                    from: detached(DIR_FROM_FD, 66, DIR_IDMAPPED),
                    to: dir(DIR_FROM_ROOT, 44, b"/", 0, 0),
                },
            ),
            r#"08:00:14.123456 containerd[4242/4243] move_mount(3, "", AT_FDCWD, "/mnt/t", MOVE_MOUNT_F_EMPTY_PATH) = 0  from="/" mnt=66 [idmapped,detached]  to="/" mnt=44"#,
        ),
        case(
            "rename_absolute",
            event(
                Rename,
                at(14) + 500,
                0,
                b"mv",
                Args::Rename {
                    olddfd: AT_FDCWD,
                    oldpath: s(b"/mnt/t/bin/sh"),
                    newdfd: AT_FDCWD,
                    newpath: s(b"/mnt/t/trash/sh"),
                    flags: 0,
                    old_dir: dir(DIR_FROM_ROOT, 1, b"/", 0, 0),
                    new_dir: dir(DIR_FROM_ROOT, 1, b"/", 0, 0),
                    capture: CAP_BUSY,
                },
            ),
            r#"08:00:14.123457 mv[4242/4243] rename("/mnt/t/bin/sh", "/mnt/t/trash/sh") = 0  from="/" mnt=1  to="/" mnt=1"#,
        ),
        case(
            "renameat_cwd_relative",
            event(
                Renameat,
                at(14) + 600,
                0,
                b"python3",
                Args::Rename {
                    olddfd: AT_FDCWD,
                    oldpath: s(b"db.tmp"),
                    newdfd: AT_FDCWD,
                    newpath: s(b"db"),
                    flags: 0,
                    old_dir: dir(DIR_FROM_CWD, 70, b"/mnt/t/var", 6, 0),
                    new_dir: dir(DIR_FROM_CWD, 70, b"/mnt/t/var", 6, 0),
                    capture: CAP_BUSY_MOUNT,
                },
            ),
            r#"08:00:14.123457 python3[4242/4243] renameat(AT_FDCWD, "db.tmp", AT_FDCWD, "db") = 0  from="/mnt/t/var" mnt=70 rel="/var"  to="/mnt/t/var" mnt=70 rel="/var""#,
        ),
        case(
            "io_uring_renameat_async",
            event(
                UringRenameat,
                at(14) + 800,
                0,
                b"iou-wrk-4243",
                Args::Rename {
                    olddfd: 9,
                    oldpath: s(b"sh"),
                    newdfd: 10,
                    newpath: s(b"sh.bak"),
                    flags: 2,
                    old_dir: dir(DIR_FROM_FD, 66, b"/run/c/0/bin", 8, DIR_IDMAPPED),
                    new_dir: dir(DIR_FROM_FD, 66, b"/run/c/0/tmp", 8, DIR_IDMAPPED),
                    capture: CAP_ALL | CAP_AFTER_ANY_EBUSY,
                },
            ),
            r#"08:00:14.123457 iou-wrk-4243[4242/4243] io_uring_renameat(9, "sh", 10, "sh.bak", RENAME_EXCHANGE) = 0  from="/run/c/0/bin" mnt=66 rel="/bin" [idmapped]  to="/run/c/0/tmp" mnt=66 rel="/tmp" [idmapped]"#,
        ),
        case(
            "renameat2_fds_noreplace_failed",
            event(
                Renameat2,
                at(14) + 700,
                -17,
                b"containerd",
                Args::Rename {
                    olddfd: 5,
                    oldpath: s(b"conf"),
                    newdfd: 6,
                    newpath: s(b"conf\nold"),
                    flags: 1,
                    old_dir: dir(DIR_FROM_FD, 70, b"/mnt/t/etc", 6, 0),
                    new_dir: dir(DIR_FROM_FD, 70, b"/mnt/t/old", 6, 0),
                    capture: CAP_ALL | CAP_BUSY_MOUNT,
                },
            ),
            r#"08:00:14.123457 containerd[4242/4243] renameat2(5, "conf", 6, "conf\nold", RENAME_NOREPLACE) = -EEXIST  from="/mnt/t/etc" mnt=70 rel="/etc"  to="/mnt/t/old" mnt=70 rel="/old""#,
        ),
        case(
            "mount_setattr_idmap",
            event(
                MountSetattr,
                at(15),
                0,
                b"containerd",
                Args::MountSetattr {
                    dfd: 3,
                    pathname: s(b""),
                    at_flags: AT_EMPTY_PATH | 0x8000,
                    size: 32,
                    attr: Some(MountAttr {
                        attr_set: 1 | MOUNT_ATTR_IDMAP,
                        attr_clr: 2,
                        propagation: 1 << 18,
                        userns_fd: 4,
                        userns_ino: 4026532178,
                    }),
                    dir: detached(DIR_FROM_FD, 66, 0),
                },
            ),
            r#"08:00:15.123456 containerd[4242/4243] mount_setattr(3, "", AT_EMPTY_PATH|AT_RECURSIVE, {attr_set=MOUNT_ATTR_RDONLY|MOUNT_ATTR_IDMAP, attr_clr=MOUNT_ATTR_NOSUID, propagation=MS_PRIVATE, userns_fd=4 (userns 4026532178)}, 32) = 0  mount="/" mnt=66 [detached]"#,
        ),
        case(
            "mount_setattr_no_userns",
            event(
                MountSetattr,
                at(16),
                0,
                b"mount",
                Args::MountSetattr {
                    dfd: AT_FDCWD,
                    pathname: s(b"/mnt/a"),
                    at_flags: 0,
                    size: 32,
                    attr: Some(MountAttr {
                        attr_set: 0,
                        attr_clr: 0x10,
                        propagation: 1 << 20,
                        userns_fd: u64::MAX,
                        userns_ino: 0,
                    }),
                    dir: dir(DIR_FROM_ROOT, 44, b"/", 0, 0),
                },
            ),
            r#"08:00:16.123456 mount[4242/4243] mount_setattr(AT_FDCWD, "/mnt/a", 0, {attr_set=0, attr_clr=MOUNT_ATTR_NOATIME, propagation=MS_SHARED, userns_fd=-1}, 32) = 0  mount="/" mnt=44"#,
        ),
        case(
            "mount_setattr_unreadable_attr",
            event(
                MountSetattr,
                at(17),
                -14,
                b"mount",
                Args::MountSetattr {
                    dfd: AT_FDCWD,
                    pathname: s(b"/mnt/a"),
                    at_flags: 0,
                    size: 32,
                    attr: None,
                    dir: dir(DIR_FROM_ROOT, 44, b"/", 0, 0),
                },
            ),
            r#"08:00:17.123456 mount[4242/4243] mount_setattr(AT_FDCWD, "/mnt/a", 0, <unreadable>, 32) = -EFAULT  mount="/" mnt=44"#,
        ),
        case(
            "fsopen",
            event(
                Fsopen,
                at(18),
                5,
                b"mount",
                Args::Fsopen {
                    fs_name: s(b"tmpfs"),
                    flags: 1,
                },
            ),
            r#"08:00:18.123456 mount[4242/4243] fsopen("tmpfs", FSOPEN_CLOEXEC) = 5"#,
        ),
        case(
            "fsopen_null_comm_not_utf8",
            event(
                Fsopen,
                at(19),
                -14,
                b"fs\xffopen",
                Args::Fsopen {
                    fs_name: null(),
                    flags: 0,
                },
            ),
            "08:00:19.123456 fs\u{fffd}open[4242/4243] fsopen(NULL, 0) = -EFAULT",
        ),
        case(
            "fsconfig_set_string",
            event(
                Fsconfig,
                at(20),
                0,
                b"mount",
                Args::Fsconfig {
                    fd: 5,
                    cmd: FSCONFIG_SET_STRING,
                    key: s(b"size"),
                    value: s(b"1m"),
                    aux: 0,
                    aux_dir: None,
                },
            ),
            r#"08:00:20.123456 mount[4242/4243] fsconfig(5, FSCONFIG_SET_STRING, "size", "1m", 0) = 0"#,
        ),
        case(
            "fsconfig_cmd_create",
            event(
                Fsconfig,
                at(21),
                0,
                b"mount",
                Args::Fsconfig {
                    fd: 5,
                    cmd: 6,
                    key: null(),
                    value: absent(),
                    aux: 0,
                    aux_dir: None,
                },
            ),
            r#"08:00:21.123456 mount[4242/4243] fsconfig(5, FSCONFIG_CMD_CREATE, NULL, NULL, 0) = 0"#,
        ),
        case(
            "fsconfig_set_fd",
            event(
                Fsconfig,
                at(22),
                0,
                b"mount",
                Args::Fsconfig {
                    fd: 5,
                    cmd: FSCONFIG_SET_FD,
                    key: s(b"source"),
                    value: absent(),
                    aux: 7,
                    // A block device: not a directory.
                    aux_dir: Some(dir(DIR_FROM_FD, 22, b"/dev/loop0", 4, DIR_NOT_DIR)),
                },
            ),
            r#"08:00:22.123456 mount[4242/4243] fsconfig(5, FSCONFIG_SET_FD, "source", NULL, 7) = 0  aux="/dev/loop0" mnt=22 rel="/loop0" [not_dir]"#,
        ),
        case(
            "fsconfig_set_path_failed",
            event(
                Fsconfig,
                at(23),
                -2,
                b"mount",
                Args::Fsconfig {
                    fd: 5,
                    cmd: FSCONFIG_SET_PATH,
                    key: s(b"lowerdir"),
                    value: s(b"rel/lower"),
                    aux: AT_FDCWD,
                    aux_dir: Some(dir(DIR_FROM_CWD, 30, b"/work", 0, 0)),
                },
            ),
            // `aux` is printed as a number even when it is AT_FDCWD.
            r#"08:00:23.123456 mount[4242/4243] fsconfig(5, FSCONFIG_SET_PATH, "lowerdir", "rel/lower", -100) = -ENOENT  aux="/work" mnt=30"#,
        ),
        case(
            "fsconfig_unknown_cmd_absent_key",
            event(
                Fsconfig,
                at(24),
                -95,
                b"mount",
                Args::Fsconfig {
                    fd: 5,
                    cmd: 99,
                    key: absent(),
                    value: absent(),
                    aux: 0,
                    aux_dir: None,
                },
            ),
            r#"08:00:24.123456 mount[4242/4243] fsconfig(5, 99, ?, NULL, 0) = -EOPNOTSUPP"#,
        ),
        case(
            "fsmount",
            event(
                Fsmount,
                at(25),
                6,
                b"mount",
                Args::Fsmount {
                    fs_fd: 5,
                    flags: 1,
                    attr_flags: 1 | 0x10,
                    result: Some(detached(DIR_FROM_FD, 67, 0)),
                },
            ),
            r#"08:00:25.123456 mount[4242/4243] fsmount(5, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY|MOUNT_ATTR_NOATIME) = 6  -> mnt=67 [detached]"#,
        ),
        case(
            "fsmount_failed",
            event(
                Fsmount,
                at(26),
                -i64::from(EINVAL),
                b"mount",
                Args::Fsmount {
                    fs_fd: 5,
                    flags: 0,
                    attr_flags: 0x40,
                    result: None,
                },
            ),
            r#"08:00:26.123456 mount[4242/4243] fsmount(5, 0, 0x40) = -EINVAL"#,
        ),
        // ---- io_uring
        case(
            "io_uring_unlinkat",
            event(
                UringUnlinkat,
                at(26) + 500_000,
                0,
                b"tokio-runtime-w",
                Args::Delete {
                    dfd: 9,
                    pathname: s(b"old.log"),
                    flags: 0,
                    dir: dir(DIR_FROM_FD, 41, b"/var/log/app", 8, 0),
                    capture: CAP_ALL,
                    origin_mnt_id: 0,
                    victim: Some(mntrace::model::Victim {
                        ino: 31337,
                        size: 1048576,
                        dev: 8 << 20 | 1,
                        nlink: 1,
                        mode: 0o100600,
                        rmdir: false,
                    }),
                },
            ),
            r#"08:00:26.123956 tokio-runtime-w[4242/4243] io_uring_unlinkat(9, "old.log", 0) = 0  dir="/var/log/app" mnt=41 rel="/app"  inode=31337 file size=1048576 nlink=1 (last link)"#,
        ),
        // ---- guard
        case(
            "guard_stopped",
            event(
                EventKind::Guard,
                at(27),
                0,
                b"containerd",
                Args::Guard(mntrace::model::Guard {
                    action: GuardAction::Stopped,
                    trigger: tracer_common::event::GUARD_AT_LISTING,
                    fd: Some(7),
                    signal: tracer_common::uapi::SIGSTOP,
                    busy_ns: at(27) - 1_500_000,
                    mount: dir(0, 66, b"/run/c/0", 8, DIR_IDMAPPED | DIR_SUBTREE),
                    origin_mnt_id: 0,
                }),
            ),
            r#"08:00:27.123456 containerd[4242/4243] GUARD stopped it (SIGSTOP) at its listing of fd 7, 1.5ms after its unmount of this mount failed with EBUSY = 0  mountpoint="/run/c/0" mnt=66 [idmapped,subtree]"#,
        ),
        case(
            "guard_reported_at_deletion",
            event(
                EventKind::Guard,
                at(28),
                0,
                b"rm",
                Args::Guard(mntrace::model::Guard {
                    action: GuardAction::Reported,
                    trigger: tracer_common::event::GUARD_AT_DELETE,
                    fd: Some(4),
                    signal: 0,
                    busy_ns: at(28) - 400_000,
                    mount: dir(0, 70, b"/mnt/t", 6, 0),
                    origin_mnt_id: 0,
                }),
            ),
            r#"08:00:28.123456 rm[4242/4243] GUARD would stop it (--guard report) at its deletion of fd 4, 400µs after its unmount of this mount failed with EBUSY = 0  mountpoint="/mnt/t" mnt=70"#,
        ),
        case(
            "guard_killed_at_a_crossing",
            event(
                EventKind::Guard,
                at(29),
                0,
                b"kubelet",
                Args::Guard(mntrace::model::Guard {
                    action: GuardAction::Killed,
                    trigger: tracer_common::event::GUARD_AT_CROSSING,
                    fd: Some(12),
                    signal: tracer_common::uapi::SIGKILL,
                    busy_ns: 0,
                    mount: dir(0, 81, b"/var/lib/k/pods/0b3f/vol/0", 26, DIR_SUBTREE),
                    origin_mnt_id: 45,
                }),
            ),
            r#"08:00:29.123456 kubelet[4242/4243] GUARD killed it (SIGKILL) at its listing of fd 12 inside a bind from outside the tree it is deleting (its walk began on mnt 45) = 0  mountpoint="/var/lib/k/pods/0b3f/vol/0" mnt=81 [subtree]"#,
        ),
        case(
            "guard_denied_at_deletion",
            event(
                EventKind::Guard,
                at(30),
                0,
                b"containerd",
                Args::Guard(mntrace::model::Guard {
                    action: GuardAction::Denied,
                    trigger: tracer_common::event::GUARD_AT_DELETE,
                    fd: None,
                    signal: 0,
                    busy_ns: at(30) - 2_000_000,
                    mount: dir(0, 66, b"/run/c/0", 8, DIR_IDMAPPED | DIR_SUBTREE),
                    origin_mnt_id: 0,
                }),
            ),
            r#"08:00:30.123456 containerd[4242/4243] GUARD denied its deletions and renames on this mount (EPERM) at its deletion, 2.0ms after its unmount of this mount failed with EBUSY = 0  mountpoint="/run/c/0" mnt=66 [idmapped,subtree]"#,
        ),
        // ---- a recursive delete's top
        case(
            "walk_top",
            event(
                EventKind::WalkTop,
                at(31),
                0,
                b"rm",
                Args::WalkTop {
                    dir: dir(DIR_FROM_FD, 45, b"/var/lib/k/pods/0b3f", 0, 0),
                    origin_mnt_id: 45,
                },
            ),
            r#"08:00:31.123456 rm[4242/4243] WALK TOP its recursive delete began here, and now crossed into another mount = 0  dir="/var/lib/k/pods/0b3f" mnt=45"#,
        ),
    ]
}

fn busy_unmount(ts_ns: u64, target: &'static [u8], flags: u64) -> Cause {
    Cause::BusyUnmount(FailedUnmount {
        ts_ns,
        by: process(300, 299, b"containerd"),
        target: b(target),
        target_abs: b(target),
        flags,
    })
}

fn mount_facts(mnt_id: u32, mountpoint: &'static [u8]) -> MountFacts {
    MountFacts {
        mnt_id,
        mnt_ns: NS,
        mountpoint: b(mountpoint),
        root: Some(b(b"/")),
        backing_root: None,
        fstype: Some("tmpfs".into()),
        source: Some(b(b"tmpfs")),
        idmapped: false,
        subtree: false,
    }
}

/// A busy-unmount incident through a tmpfs at `/mnt/t`, one deletion.
fn small_busy(id: u64, holders: Option<HolderScan>) -> Incident {
    Incident {
        id,
        severity: Severity::Warning,
        root_label: None,
        cause: busy_unmount(at(42), b"/mnt/t", 8),
        mount: mount_facts(70, b"/mnt/t"),
        holders,
        deleters: vec![process(300, 299, b"containerd")],
        deletions: vec![deletion(
            at(43),
            EventKind::Unlinkat,
            false,
            b"/mnt/t/f",
            b"/f",
            None,
        )],
        count: 1,
        removed: Default::default(),
        first_delay_ns: 2_500_000,
        last_ts_ns: at(43),
        lost_while_open: 0,
        prevented: Vec::new(),
    }
}

fn incident_cases() -> Vec<Case> {
    let case = |name, inc, console| Case {
        name,
        item: Item::Incident(inc),
        console,
    };
    let snap: &'static [u8] = b"/var/lib/ctr/snapshots/7/fs";
    let mut many = small_busy(
        6,
        Some(HolderScan {
            holders: vec![],
            processes_scanned: 97,
            complete: true,
        }),
    );
    many.severity = Severity::Critical;
    many.root_label = Some("configured root".into());
    many.mount.backing_root = Some(b(b"/data/t"));
    many.deletions = (0..25)
        .map(|i| Deletion {
            ts_ns: at(43) + i,
            path: Bytes::from(format!("/mnt/t/f{i:02}")),
            rel_path: Bytes::from(format!("/f{i:02}")),
            backing_path: Some(Bytes::from(format!("/data/t/f{i:02}"))),
            // One path was cut by the kernel's limits.
            truncated: i == 24,
            inode: None,
            ..deletion(at(43), EventKind::Unlinkat, false, b"", b"", None)
        })
        .collect();
    // 30 deletions, the first 25 kept.
    many.count = 30;
    many.first_delay_ns = 1_234_567_890;
    many.last_ts_ns = at(44);

    vec![
        case(
            "incident_busy_unmount_holders",
            Incident {
                id: 1,
                severity: Severity::Critical,
                root_label: Some("containerd snapshot".into()),
                cause: busy_unmount(at(40), b"/run/c/0", 0),
                mount: MountFacts {
                    mnt_id: 66,
                    mnt_ns: NS,
                    mountpoint: b(b"/run/c/0"),
                    root: Some(b(b"/snapshots/7/fs")),
                    backing_root: Some(b(snap)),
                    fstype: Some("ext4".into()),
                    source: Some(b(b"/dev/sda1")),
                    idmapped: true,
                    subtree: true,
                },
                holders: Some(HolderScan {
                    holders: vec![
                        Holder {
                            pid: 310,
                            comm: b(b"sh"),
                            holds: vec![
                                Hold::Fd {
                                    fd: 8,
                                    path: b(b"/run/c/0/bin/sh (deleted)"),
                                },
                                Hold::Cwd {
                                    path: b(b"/run/c/0"),
                                },
                            ],
                        },
                        Holder {
                            pid: 311,
                            comm: b(b"sleep"),
                            holds: vec![
                                Hold::Root {
                                    path: b(b"/run/c/0"),
                                },
                                Hold::Map {
                                    path: b(b"/run/c/0/lib/libc\xff.so"),
                                },
                            ],
                        },
                    ],
                    processes_scanned: 812,
                    complete: true,
                }),
                deleters: vec![process(300, 299, b"containerd"), process(305, 300, b"rm")],
                deletions: vec![
                    deletion(
                        at(40) + 405_000,
                        EventKind::Unlinkat,
                        false,
                        b"/run/c/0/etc/passwd",
                        b"/etc/passwd",
                        Some(b"/var/lib/ctr/snapshots/7/fs/etc/passwd"),
                    ),
                    deletion(
                        at(40) + 500_000,
                        EventKind::Rmdir,
                        true,
                        b"/run/c/0/etc",
                        b"/etc",
                        Some(b"/var/lib/ctr/snapshots/7/fs/etc"),
                    ),
                    Deletion {
                        inode: Some(mntrace::model::Victim {
                            ino: 99,
                            size: 5,
                            dev: 0,
                            nlink: 1,
                            mode: 0o100644,
                            rmdir: false,
                        }),
                        ..deletion(
                            at(41),
                            EventKind::Unlink,
                            false,
                            b"/run/c/0/caf\xe9",
                            b"/caf\xe9",
                            Some(b"/var/lib/ctr/snapshots/7/fs/caf\xe9"),
                        )
                    },
                ],
                count: 3,
                removed: mntrace::correlate::incident::Removed {
                    seen: 1,
                    last_links: 1,
                    bytes: 5,
                },
                first_delay_ns: 405_000,
                last_ts_ns: at(41),
                lost_while_open: 0,
                prevented: Vec::new(),
            },
            r#"!!! INCIDENT #1 CRITICAL (containerd snapshot): 3 entries deleted through a mount whose unmount failed with EBUSY
    unmount   08:00:40.123456 containerd[300] umount2("/run/c/0", 0) = -EBUSY
    mount     mnt 66 on "/run/c/0" (ext4, idmapped, bind of a subdirectory)
    lives at  "/var/lib/ctr/snapshots/7/fs"
    inodes    1 file lost their last link (5 bytes); the kernel reported 1 of the deletions
    deleted   2 files, 1 directory by containerd[300] (ppid 299, uid 0, cgroup 1), rm[305] (ppid 300, uid 0, cgroup 1), first 405µs after the EBUSY
      file "/var/lib/ctr/snapshots/7/fs/etc/passwd"  (seen as "/run/c/0/etc/passwd")
      dir  "/var/lib/ctr/snapshots/7/fs/etc"  (seen as "/run/c/0/etc")
      file "/var/lib/ctr/snapshots/7/fs/caf\xe9"  (seen as "/run/c/0/caf\xe9")
    held by   sh[310]: fd 8 "/run/c/0/bin/sh (deleted)", cwd "/run/c/0"
    held by   sleep[311]: root "/run/c/0", mmap "/run/c/0/lib/libc\xff.so"
"#,
        ),
        case(
            "incident_busy_unmount_scan_incomplete",
            small_busy(
                2,
                Some(HolderScan {
                    holders: vec![Holder {
                        pid: 400,
                        comm: b(b"bash"),
                        holds: vec![Hold::Cwd { path: b(b"/mnt/t") }],
                    }],
                    processes_scanned: 200,
                    complete: false,
                }),
            ),
            r#"!!! INCIDENT #2 WARNING: 1 entry deleted through a mount whose unmount failed with EBUSY
    unmount   08:00:42.123456 containerd[300] umount2("/mnt/t", UMOUNT_NOFOLLOW) = -EBUSY
    mount     mnt 70 on "/mnt/t" (tmpfs)
    root      "/" (within its filesystem)
    deleted   1 file, 0 directories by containerd[300] (ppid 299, uid 0, cgroup 1), first 2.5ms after the EBUSY
      file "/mnt/t/f"  (seen as "/mnt/t/f")
    held by   bash[400]: cwd "/mnt/t"
    held by   (scan incomplete: time budget exceeded)
"#,
        ),
        case(
            "incident_busy_unmount_renamed",
            {
                let mut inc = small_busy(8, None);
                inc.deletions.push(Deletion {
                    renamed_to: Some(b(b"/mnt/t/old/g")),
                    ..deletion(
                        at(43) + 1_000,
                        EventKind::Renameat2,
                        false,
                        b"/mnt/t/g",
                        b"/g",
                        None,
                    )
                });
                inc.count = 2;
                inc
            },
            r#"!!! INCIDENT #8 WARNING: 2 entries deleted or renamed through a mount whose unmount failed with EBUSY
    unmount   08:00:42.123456 containerd[300] umount2("/mnt/t", UMOUNT_NOFOLLOW) = -EBUSY
    mount     mnt 70 on "/mnt/t" (tmpfs)
    root      "/" (within its filesystem)
    deleted   1 file, 0 directories, 1 entry renamed by containerd[300] (ppid 299, uid 0, cgroup 1), first 2.5ms after the EBUSY
      file "/mnt/t/f"  (seen as "/mnt/t/f")
      moved "/mnt/t/g"  (seen as "/mnt/t/g") to "/mnt/t/old/g"
    held by   ? (not scanned: mount not in the table at the EBUSY, or scan rate limit)
"#,
        ),
        case(
            "incident_busy_unmount_nobody_incomplete",
            small_busy(
                3,
                Some(HolderScan {
                    holders: vec![],
                    processes_scanned: 812,
                    complete: false,
                }),
            ),
            r#"!!! INCIDENT #3 WARNING: 1 entry deleted through a mount whose unmount failed with EBUSY
    unmount   08:00:42.123456 containerd[300] umount2("/mnt/t", UMOUNT_NOFOLLOW) = -EBUSY
    mount     mnt 70 on "/mnt/t" (tmpfs)
    root      "/" (within its filesystem)
    deleted   1 file, 0 directories by containerd[300] (ppid 299, uid 0, cgroup 1), first 2.5ms after the EBUSY
      file "/mnt/t/f"  (seen as "/mnt/t/f")
    held by   nobody found (scanned 812 processes, incomplete)
"#,
        ),
        case(
            "incident_busy_unmount_not_scanned_lost",
            Incident {
                mount: MountFacts {
                    root: None,
                    backing_root: None,
                    fstype: None,
                    source: None,
                    ..mount_facts(70, b"/mnt/t")
                },
                lost_while_open: 1200,
                ..small_busy(4, None)
            },
            r#"!!! INCIDENT #4 WARNING: 1 entry deleted through a mount whose unmount failed with EBUSY
    unmount   08:00:42.123456 containerd[300] umount2("/mnt/t", UMOUNT_NOFOLLOW) = -EBUSY
    mount     mnt 70 on "/mnt/t" (fs ?)
    lives at  ? (mount not in the mount table)
    deleted   1 file, 0 directories by containerd[300] (ppid 299, uid 0, cgroup 1), first 2.5ms after the EBUSY
      file "/mnt/t/f"  (seen as "/mnt/t/f")
    held by   ? (not scanned: mount not in the table at the EBUSY, or scan rate limit)
    WARNING   1200 events were lost in the kernel while this incident was open: the list may be incomplete
"#,
        ),
        case(
            "incident_crossing",
            Incident {
                id: 5,
                severity: Severity::Critical,
                root_label: Some("bind of a directory outside the deleted tree".into()),
                cause: Cause::Crossing(Walk {
                    by: process(500, 1, b"kubelet"),
                    origin_mnt_id: 44,
                    root: Some(b(b"/var/lib/k/pods/0b3f")),
                    root_mnt_id: Some(45),
                    start_ts_ns: at(50),
                    mountpoint_ebusy_ts_ns: Some(at(51)),
                }),
                mount: MountFacts {
                    mnt_id: 66,
                    mnt_ns: NS,
                    mountpoint: b(b"/var/lib/k/pods/0b3f/vol/0"),
                    root: Some(b(b"/pv1")),
                    backing_root: Some(b(b"/var/lib/k/disks/pv1")),
                    fstype: None,
                    source: None,
                    idmapped: false,
                    subtree: true,
                },
                holders: None,
                deleters: vec![process(500, 1, b"kubelet")],
                deletions: vec![
                    Deletion {
                        pid: 500,
                        tid: 500,
                        ..deletion(
                            at(50),
                            EventKind::Unlinkat,
                            false,
                            b"/var/lib/k/pods/0b3f/vol/0/db",
                            b"/db",
                            Some(b"/var/lib/k/disks/pv1/db"),
                        )
                    },
                    Deletion {
                        pid: 500,
                        tid: 500,
                        ..deletion(
                            at(50) + 10_000,
                            EventKind::Unlinkat,
                            true,
                            b"/var/lib/k/pods/0b3f/vol/0/d",
                            b"/d",
                            Some(b"/var/lib/k/disks/pv1/d"),
                        )
                    },
                ],
                count: 2,
                removed: Default::default(),
                first_delay_ns: 0,
                last_ts_ns: at(50) + 10_000,
                lost_while_open: 0,
                prevented: Vec::new(),
            },
            r#"!!! INCIDENT #5 CRITICAL (bind of a directory outside the deleted tree): 2 entries deleted by a recursive delete that crossed into another mount
    walk      08:00:50.123456 kubelet[500] removing "/var/lib/k/pods/0b3f", from mnt 45
    then      08:00:51.123456 removing the mountpoint failed with EBUSY
    mount     mnt 66 on "/var/lib/k/pods/0b3f/vol/0" (fs ?, bind of a subdirectory)
    lives at  "/var/lib/k/disks/pv1"
    deleted   1 file, 1 directory by kubelet[500] (ppid 1, uid 0, cgroup 1), first 0µs after the walk's first captured deletion
      file "/var/lib/k/disks/pv1/db"  (seen as "/var/lib/k/pods/0b3f/vol/0/db")
      dir  "/var/lib/k/disks/pv1/d"  (seen as "/var/lib/k/pods/0b3f/vol/0/d")
"#,
        ),
        case(
            "incident_crossing_unseen_root_lost",
            Incident {
                id: 7,
                severity: Severity::Warning,
                root_label: None,
                cause: Cause::Crossing(Walk {
                    by: process(501, 1, b"rm"),
                    origin_mnt_id: 44,
                    root: None,
                    root_mnt_id: None,
                    start_ts_ns: at(52),
                    mountpoint_ebusy_ts_ns: None,
                }),
                holders: None,
                deleters: vec![process(501, 1, b"rm")],
                deletions: vec![Deletion {
                    pid: 501,
                    tid: 501,
                    truncated: true,
                    inode: None,
                    ..deletion(
                        at(52) + 999_400,
                        EventKind::Rmdir,
                        true,
                        b"/t/m/x",
                        b"/x",
                        None,
                    )
                }],
                count: 1,
                removed: Default::default(),
                first_delay_ns: 999_400,
                last_ts_ns: at(52) + 999_400,
                lost_while_open: 7,
                ..small_busy(0, None)
            },
            r#"!!! INCIDENT #7 WARNING: 1 entry deleted by a recursive delete that crossed into another mount
    walk      08:00:52.123456 rm[501] removing ? (its top directory was not seen), from mnt 44
    mount     mnt 70 on "/mnt/t" (tmpfs)
    root      "/" (within its filesystem)
    deleted   0 files, 1 directory by rm[501] (ppid 1, uid 0, cgroup 1), first 999µs after the walk's first captured deletion
      dir  "/t/m/x"  (seen as "/t/m/x")
    WARNING   7 events were lost in the kernel while this incident was open: the list may be incomplete
"#,
        ),
        case(
            "incident_more_deletions_than_shown",
            many,
            r#"!!! INCIDENT #6 CRITICAL (configured root): 30 entries deleted through a mount whose unmount failed with EBUSY
    unmount   08:00:42.123456 containerd[300] umount2("/mnt/t", UMOUNT_NOFOLLOW) = -EBUSY
    mount     mnt 70 on "/mnt/t" (tmpfs)
    lives at  "/data/t"
    deleted   30 entries, the first 25 kept (25 files, 0 directories) by containerd[300] (ppid 299, uid 0, cgroup 1), first 1234.6ms after the EBUSY
      file "/data/t/f00"  (seen as "/mnt/t/f00")
      file "/data/t/f01"  (seen as "/mnt/t/f01")
      file "/data/t/f02"  (seen as "/mnt/t/f02")
      file "/data/t/f03"  (seen as "/mnt/t/f03")
      file "/data/t/f04"  (seen as "/mnt/t/f04")
      file "/data/t/f05"  (seen as "/mnt/t/f05")
      file "/data/t/f06"  (seen as "/mnt/t/f06")
      file "/data/t/f07"  (seen as "/mnt/t/f07")
      file "/data/t/f08"  (seen as "/mnt/t/f08")
      file "/data/t/f09"  (seen as "/mnt/t/f09")
      file "/data/t/f10"  (seen as "/mnt/t/f10")
      file "/data/t/f11"  (seen as "/mnt/t/f11")
      file "/data/t/f12"  (seen as "/mnt/t/f12")
      file "/data/t/f13"  (seen as "/mnt/t/f13")
      file "/data/t/f14"  (seen as "/mnt/t/f14")
      file "/data/t/f15"  (seen as "/mnt/t/f15")
      file "/data/t/f16"  (seen as "/mnt/t/f16")
      file "/data/t/f17"  (seen as "/mnt/t/f17")
      file "/data/t/f18"  (seen as "/mnt/t/f18")
      file "/data/t/f19"  (seen as "/mnt/t/f19")
      ... and 5 more (in --json)
      ... and 5 more not kept (only the first 25 are kept)
    held by   nobody found (scanned 97 processes)
"#,
        ),
        case(
            "incident_prevented_by_the_guard",
            {
                let mut inc = small_busy(
                    8,
                    Some(HolderScan {
                        holders: vec![Holder {
                            pid: 310,
                            comm: b(b"sh"),
                            holds: vec![Hold::Cwd { path: b(b"/mnt/t") }],
                        }],
                        processes_scanned: 90,
                        complete: true,
                    }),
                );
                inc.deletions.clear();
                inc.deleters.clear();
                inc.count = 0;
                inc.first_delay_ns = 1_500_000;
                inc.prevented = vec![Prevention {
                    ts_ns: at(42) + 1_500_000,
                    by: process(300, 299, b"containerd"),
                    action: GuardAction::Stopped,
                    signal: tracer_common::uapi::SIGSTOP,
                    trigger: tracer_common::event::GUARD_AT_LISTING,
                    fd: Some(7),
                    result: 0,
                    saved: Some(mntrace::enrich::saved::Saved {
                        under: b(b"/data/t"),
                        entries: 1234,
                        complete: true,
                    }),
                }];
                inc
            },
            r#"!!! INCIDENT #8 WARNING: 0 entries deleted through a mount whose unmount failed with EBUSY (PREVENTED by the guard)
    unmount   08:00:42.123456 containerd[300] umount2("/mnt/t", UMOUNT_NOFOLLOW) = -EBUSY
    mount     mnt 70 on "/mnt/t" (tmpfs)
    root      "/" (within its filesystem)
    guard     08:00:42.124956 containerd[300] STOPPED (SIGSTOP) at its listing of fd 7, 1.5ms after the EBUSY; 1234 entries saved under "/data/t"; it is frozen: inspect it, then end it with `kill -KILL 300`, or unmount the mount first and resume it with `kill -CONT 300`
    deleted   nothing
    held by   sh[310]: cwd "/mnt/t"
"#,
        ),
        case(
            "incident_prevented_by_the_guards_denial",
            {
                let mut inc = small_busy(
                    8,
                    Some(HolderScan {
                        holders: vec![Holder {
                            pid: 310,
                            comm: b(b"sh"),
                            holds: vec![Hold::Cwd { path: b(b"/mnt/t") }],
                        }],
                        processes_scanned: 90,
                        complete: true,
                    }),
                );
                inc.deletions.clear();
                inc.deleters.clear();
                inc.count = 0;
                inc.first_delay_ns = 1_500_000;
                inc.prevented = vec![Prevention {
                    ts_ns: at(42) + 1_500_000,
                    by: process(300, 299, b"containerd"),
                    action: GuardAction::Denied,
                    signal: 0,
                    trigger: tracer_common::event::GUARD_AT_DELETE,
                    fd: None,
                    result: 0,
                    saved: Some(mntrace::enrich::saved::Saved {
                        under: b(b"/data/t"),
                        entries: 1234,
                        complete: true,
                    }),
                }];
                inc
            },
            r#"!!! INCIDENT #8 WARNING: 0 entries deleted through a mount whose unmount failed with EBUSY (PREVENTED by the guard)
    unmount   08:00:42.123456 containerd[300] umount2("/mnt/t", UMOUNT_NOFOLLOW) = -EBUSY
    mount     mnt 70 on "/mnt/t" (tmpfs)
    root      "/" (within its filesystem)
    guard     08:00:42.124956 containerd[300] DENIED (EPERM) at its deletion, 1.5ms after the EBUSY; 1234 entries saved under "/data/t"; its deletions and renames on this mount fail for the rest of the busy window: unmount the mount (or end what holds it) before deleting again
    deleted   nothing
    held by   sh[310]: cwd "/mnt/t"
"#,
        ),
    ]
}

/// The losses of the loss case; also the run's total in the stats case.
fn loss_total() -> Drops {
    drops(&[
        (EventKind::Mount, DropReason::Scratch, 1),
        (EventKind::Unlinkat, DropReason::RingFull, 1200),
        (EventKind::Rmdir, DropReason::SlotFull, 3),
    ])
}

fn other_cases() -> Vec<Case> {
    let delta = drops(&[
        (EventKind::Unlinkat, DropReason::RingFull, 1200),
        (EventKind::Rmdir, DropReason::SlotFull, 3),
    ]);
    // The stats of the event and incident corpus, plus losses and decode
    // errors.
    let mut full = Stats::default();
    for c in event_cases() {
        if let Item::Event(ev) = &c.item {
            full.record(ev);
        }
    }
    for c in incident_cases() {
        if let Item::Incident(inc) = &c.item {
            full.incidents[inc.severity as usize] += 1;
        }
    }
    full.drops = loss_total();
    full.decode_errors = 2;
    full.last_decode_error = Some("record too short".into());
    full.unwritten = Some(Unwritten {
        file: "/var/log/mntrace/out.jsonl".into(),
        events: 55,
        incidents: 2,
        losses: 0,
        summary: 0,
        error: "No space left on device (os error 28)".into(),
    });
    vec![
        Case {
            name: "loss",
            item: Item::Loss(delta, loss_total()),
            console: "mntrace: LOST 1203 events in the kernel (unlinkat:ring_full=1200 rmdir:slot_full=3); total 1204",
        },
        Case {
            name: "stats",
            item: Item::Stats(full),
            console: "mntrace: 38 events: mount 3 (2 failed), umount 2 (2 failed), unlink 2, unlinkat 4 (2 failed), rmdir 2 (1 failed), open_tree 2 (1 failed), move_mount 1, mount_setattr 3 (1 failed), fsopen 2 (1 failed), fsconfig 5 (2 failed), fsmount 2 (1 failed), rename 1, renameat 1, renameat2 1 (1 failed), io_uring_unlinkat 1, io_uring_renameat 1, guard 4, walk_top 1
mntrace: 1 unmount failed with EBUSY; incidents: 3 critical, 7 warning
mntrace: GUARD acted: 1 reported, 1 stopped, 1 killed, 1 denied
mntrace: LOST 1204 events in the kernel (mount:scratch=1 unlinkat:ring_full=1200 rmdir:slot_full=3)
mntrace: 57 records not written to \"/var/log/mntrace/out.jsonl\" (events 55, incidents 2): No space left on device (os error 28)
mntrace: 2 malformed records skipped (last: record too short)",
        },
        Case {
            name: "stats_empty",
            item: Item::Stats(Stats::default()),
            console: "mntrace: 0 events
mntrace: 0 unmounts failed with EBUSY; incidents: 0 critical, 0 warning
mntrace: no events lost",
        },
    ]
}

fn all_cases() -> Vec<Case> {
    let mut v = event_cases();
    v.extend(incident_cases());
    v.extend(other_cases());
    v
}

// ---- rendering ---------------------------------------------------------------

/// The console text of a case, through the same functions the sink uses.
fn console_text(item: &Item) -> String {
    let clock = clock();
    match item {
        Item::Event(ev) => console::line(ev, &clock),
        Item::Incident(inc) => console::incident_block(inc, &clock),
        Item::Loss(delta, total) => console::loss_line(delta, total),
        Item::Stats(st) => console::summary(st),
    }
}

/// The JSON of a case, written by the `JsonLines` sink: exactly one line.
/// The `time` of a loss record is the wall time of the report: checked to
/// be RFC 3339 UTC with nanoseconds, then replaced by `"<now>"`.
fn json_record(item: &Item) -> Value {
    let mut buf = Vec::new();
    {
        let mut sink = JsonLines::new(&mut buf, clock());
        match item {
            Item::Event(ev) => sink.event(ev),
            Item::Incident(inc) => sink.incident(inc),
            Item::Loss(delta, total) => sink.losses(delta, total),
            Item::Stats(st) => sink.finish(st),
        }
        .expect("write to a Vec");
    }
    let text = String::from_utf8(buf).expect("JSON is UTF-8");
    let line = text
        .strip_suffix('\n')
        .expect("a record ends with a newline");
    assert!(!line.contains('\n'), "one record, one line: {text:?}");
    let mut v: Value = serde_json::from_str(line).expect("valid JSON");
    if let Item::Loss(..) = item {
        let t = v["time"].as_str().expect("loss time").to_owned();
        let parsed = chrono::DateTime::parse_from_rfc3339(&t).expect("RFC 3339");
        assert_eq!(parsed.offset().local_minus_utc(), 0, "{t}");
        assert!(
            t.ends_with('Z') && t.len() == "2027-01-15T08:00:00.000000000Z".len(),
            "{t}"
        );
        v["time"] = json!("<now>");
    }
    v
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn blessing() -> bool {
    std::env::var_os("MNTRACE_BLESS").is_some_and(|v| v == "1")
}

// ---- console -----------------------------------------------------------------

fn check_console(cases: &[Case]) {
    let mut bad = Vec::new();
    for c in cases {
        let got = console_text(&c.item);
        if got != c.console {
            bad.push(format!(
                "{}:\n  want {:?}\n  got  {:?}",
                c.name, c.console, got
            ));
        }
    }
    assert!(bad.is_empty(), "console mismatches:\n{}", bad.join("\n"));
}

#[test]
fn console_event_lines() {
    let cases = event_cases();
    let kinds: BTreeSet<&str> = cases
        .iter()
        .filter_map(|c| match &c.item {
            Item::Event(ev) => Some(ev.kind.syscall()),
            _ => None,
        })
        .collect();
    let all: BTreeSet<&str> = EventKind::ALL.iter().map(|k| k.syscall()).collect();
    assert_eq!(kinds, all, "every event kind has a case");
    check_console(&cases);
}

#[test]
fn console_incident_blocks() {
    check_console(&incident_cases());
}

#[test]
fn console_loss_line_and_summary() {
    check_console(&other_cases());
}

/// The `Console` sink writes each event line with a newline and each
/// incident block as is, to its writer; losses and the summary go to
/// stderr, not to it.
#[test]
fn console_sink_writes_lines_and_blocks() {
    check_console_output(false);
}

/// With `-o FILE` (`summary_in_output`), the summary goes to the writer too,
/// after the lines and blocks, each followed by a newline; loss reports
/// still go to stderr.
#[test]
fn console_summary_goes_to_the_output_file() {
    check_console_output(true);
}

/// Every case through a `Console` sink: what its writer got.
fn check_console_output(summary_in_output: bool) {
    let mut buf = Vec::new();
    let mut want = String::new();
    {
        let sink = Console::new(&mut buf, clock());
        let mut sink = if summary_in_output {
            sink.summary_in_output()
        } else {
            sink
        };
        for c in all_cases() {
            match &c.item {
                Item::Event(ev) => {
                    sink.event(ev).unwrap();
                    want.push_str(c.console);
                    want.push('\n');
                }
                Item::Incident(inc) => {
                    sink.incident(inc).unwrap();
                    want.push_str(c.console);
                }
                Item::Loss(delta, total) => sink.losses(delta, total).unwrap(),
                Item::Stats(st) => {
                    sink.finish(st).unwrap();
                    if summary_in_output {
                        want.push_str(c.console);
                        want.push('\n');
                    }
                }
            }
        }
        sink.flush().unwrap();
    }
    assert_eq!(String::from_utf8(buf).unwrap(), want);
}

// ---- JSON --------------------------------------------------------------------

#[test]
fn json_golden() {
    let dir = golden_dir();
    let bless = blessing();
    if bless {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut bad = Vec::new();
    let mut names = BTreeSet::new();
    for c in all_cases() {
        assert!(names.insert(c.name), "duplicate case {}", c.name);
        let got = json_record(&c.item);
        let path = dir.join(format!("{}.json", c.name));
        if bless {
            let mut text = serde_json::to_string_pretty(&got).unwrap();
            text.push('\n');
            std::fs::write(&path, text).unwrap();
            continue;
        }
        let want: Value = match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            Err(e) => {
                bad.push(format!(
                    "{}: {e} (MNTRACE_BLESS=1 writes it)",
                    path.display()
                ));
                continue;
            }
        };
        if got != want {
            bad.push(format!(
                "{}:\nwant {}\ngot  {}",
                c.name,
                serde_json::to_string(&want).unwrap(),
                serde_json::to_string(&got).unwrap()
            ));
        }
    }
    // No stale golden files.
    for entry in std::fs::read_dir(&dir).into_iter().flatten() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let stem = name.strip_suffix(".json").unwrap_or(&name);
        if !names.contains(stem) {
            bad.push(format!("golden file {name} has no case"));
        }
    }
    assert!(bad.is_empty(), "JSON mismatches:\n{}", bad.join("\n"));
}

/// The byte-string rules of the schema, spelled out on a few cases (the
/// golden files hold the rest).
#[test]
fn json_byte_strings() {
    let cases = all_cases();
    let get = |name: &str| {
        let c = cases.iter().find(|c| c.name == name).expect(name);
        json_record(&c.item)
    };

    // Invalid UTF-8: lossy string plus exact hex; a newline is just a
    // character of the JSON string.
    let v = get("unlink_newline_and_invalid_utf8");
    assert_eq!(v["args"]["pathname"], json!("a\nb\u{fffd}.txt"));
    assert_eq!(v["args"]["pathname_hex"], json!("610a62ff2e747874"));
    assert_eq!(v["args"]["dir"]["path"], json!("/tmp/x"));
    assert!(v["args"]["dir"].get("path_hex").is_none());
    let v = get("unlinkat_bad_fd");
    assert!(v["args"].get("origin_mnt_id").is_none(), "0: omitted");

    let v = get("unlinkat_crossing_escapes_and_flags");
    assert_eq!(v["args"]["pathname"], json!("q\"\t\\"));
    assert_eq!(v["args"]["dir"]["path"], json!("/srv/\u{fffd}t\u{fffd}"));
    assert_eq!(v["args"]["dir"]["path_hex"], json!("2f7372762fe974e9"));
    assert_eq!(v["args"]["dir"]["rel_path_hex"], json!("2fe974e9"));
    assert!(
        v["args"]["dir"].get("mnt_id_unique").is_none(),
        "0: omitted"
    );
    assert_eq!(v["args"]["capture"], json!(["all", "crossing"]));

    let v = get("fsopen_null_comm_not_utf8");
    assert_eq!(v["comm"], json!("fs\u{fffd}open"));
    assert_eq!(v["comm_hex"], json!("6673ff6f70656e"));
    assert_eq!(v["args"]["fs_name"], Value::Null);
    assert!(v["args"].get("fs_name_unreadable").is_none());

    // Unreadable: null plus X_unreadable; truncated: X_truncated.
    let v = get("mount_unreadable");
    assert_eq!(v["args"]["source"], Value::Null);
    assert_eq!(v["args"]["source_unreadable"], json!(true));
    let v = get("mount_relative_failed");
    assert_eq!(v["args"]["data"], json!("size=1m"));
    assert_eq!(v["args"]["data_truncated"], json!(true));

    // Absent: no field at all.
    let v = get("fsconfig_cmd_create");
    assert_eq!(v["args"]["key"], Value::Null);
    assert!(v["args"].as_object().unwrap().get("value").is_none());
    assert!(v["args"].as_object().unwrap().get("aux_dir").is_none());

    // Incident byte strings.
    let v = get("incident_busy_unmount_holders");
    assert_eq!(v["deletions"][2]["path"], json!("/run/c/0/caf\u{fffd}"));
    assert_eq!(
        v["deletions"][2]["path_hex"],
        json!("2f72756e2f632f302f636166e9")
    );
    assert_eq!(v["deletions"][2]["rel_path_hex"], json!("2f636166e9"));
    assert_eq!(
        v["holders"]["processes"][1]["holds"][1]["path_hex"],
        json!("2f72756e2f632f302f6c69622f6c696263ff2e736f")
    );
}

#[test]
fn json_times_are_utc_with_nanoseconds() {
    let cases = all_cases();
    let ev = cases.iter().find(|c| c.name == "fsopen").unwrap();
    let v = json_record(&ev.item);
    assert_eq!(v["time"], json!("2027-01-15T08:00:18.123456789Z"));
    assert_eq!(v["ts_boot_ns"], json!(at(18)));
    let inc = cases
        .iter()
        .find(|c| c.name == "incident_crossing")
        .unwrap();
    let v = json_record(&inc.item);
    assert_eq!(v["walk"]["time"], json!("2027-01-15T08:00:50.123456789Z"));
    assert_eq!(
        v["walk"]["mountpoint_ebusy_time"],
        json!("2027-01-15T08:00:51.123456789Z")
    );
    assert_eq!(v["last_time"], json!("2027-01-15T08:00:50.123466789Z"));
}

// ---- the documented schema ---------------------------------------------------

/// A small parser for docs/json-schema.md and a checker of JSON records
/// against what it documents.
///
/// How the doc is read:
/// - every object has the fields named in the sentence "Every object has
///   ..."; a byte-string field `X` may have the companions `X_<suffix>` named
///   in "Byte strings" (`X_hex`, `X_truncated`, `X_unreadable`);
/// - tables (`| field | ... | meaning |`): the first cell names one or more
///   fields; the last cell may document the field's own fields or values;
/// - the `args` list: `- `kind`, ...: <fields>`, one item per syscall;
/// - "Process objects: <fields>"; the loss example's keys and "Reasons:
///   <values>"; the stats paragraph "Last line of a run: <fields>".
///
/// A list of fields (or values) is a sequence of backticked names separated
/// by `,`, `/`, `or`, `and`, each optionally followed by a parenthesis (a
/// remark, ignored, except that a remark starting with the word `dir` marks
/// a `dir` object) and by `:` plus either a nested list (the field's own
/// fields or values, to the end of the clause) or prose (an explanation).
/// Clauses are separated by `;` outside parentheses. A text holds a list when
/// it starts with a backticked name, or after a `:` that follows prose
/// without backticks ("list of: ...", "Process objects: ..."); a list that
/// runs into prose is not one (e.g. "...: `path` holds its last components").
/// `null`, `true` and `false` are values, never names.
mod schema {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::{Map, Value};

    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Field {
        /// Documented fields of the object (or objects) it holds, or the
        /// documented values of the string (or strings) it holds.
        pub children: Fields,
        /// It holds a `dir` object (or null).
        pub dir: bool,
    }

    pub type Fields = BTreeMap<String, Field>;

    #[derive(Debug)]
    pub struct Doc {
        pub common: Fields,
        pub suffixes: BTreeSet<String>,
        pub event: Fields,
        pub dir: Fields,
        /// By syscall name.
        pub args: BTreeMap<String, Fields>,
        pub incident: Fields,
        pub process: Fields,
        pub loss: Fields,
        pub reasons: BTreeSet<String>,
        pub stats: Fields,
        /// The JSON examples (`json` code blocks, one object per line).
        pub examples: Vec<Value>,
    }

    #[derive(Clone, Debug, PartialEq)]
    enum Tok {
        Tick(String),
        Text(String),
        /// A parenthesis' inside, raw.
        Paren(String),
    }

    fn tokens(text: &str) -> Vec<Tok> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut chars = text.chars();
        let flush = |cur: &mut String, out: &mut Vec<Tok>| {
            if !cur.is_empty() {
                out.push(Tok::Text(std::mem::take(cur)));
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '`' => {
                    flush(&mut cur, &mut out);
                    let t: String = chars.by_ref().take_while(|&c| c != '`').collect();
                    out.push(Tok::Tick(t));
                }
                '(' => {
                    flush(&mut cur, &mut out);
                    let (mut depth, mut tick, mut inner) = (1, false, String::new());
                    for c in chars.by_ref() {
                        match c {
                            '`' => tick = !tick,
                            '(' if !tick => depth += 1,
                            ')' if !tick => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        inner.push(c);
                    }
                    assert_eq!(depth, 0, "unbalanced parenthesis in {text:?}");
                    out.push(Tok::Paren(inner));
                }
                c => cur.push(c),
            }
        }
        flush(&mut cur, &mut out);
        out
    }

    fn is_name(t: &Tok) -> bool {
        match t {
            Tok::Tick(n) => {
                !matches!(n.as_str(), "null" | "true" | "false")
                    && n.starts_with(|c: char| c.is_ascii_lowercase())
                    && n.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            }
            _ => false,
        }
    }

    /// Split at `sep` in text outside parentheses and backticks.
    fn split_text(toks: &[Tok], sep: char) -> Vec<Vec<Tok>> {
        let mut out = vec![Vec::new()];
        for t in toks {
            match t {
                Tok::Text(s) if s.contains(sep) => {
                    let mut parts = s.split(sep);
                    let first = parts.next().unwrap();
                    out.last_mut().unwrap().push(Tok::Text(first.into()));
                    for p in parts {
                        out.push(vec![Tok::Text(p.into())]);
                    }
                }
                t => out.last_mut().unwrap().push(t.clone()),
            }
        }
        out
    }

    fn blank(t: Option<&Tok>) -> bool {
        matches!(t, Some(Tok::Text(s)) if s.trim().is_empty())
    }

    /// A list of names from `toks[0]` to the end of the clause (see the
    /// module doc); `None` if `toks` does not hold one.
    fn list(toks: &[Tok]) -> Option<Fields> {
        let mut out = Fields::new();
        let mut i = 0;
        loop {
            let Some(Tok::Tick(name)) = toks.get(i).filter(|t| is_name(t)) else {
                return None;
            };
            let mut f = Field::default();
            i += 1;
            let mut j = i;
            while blank(toks.get(j)) {
                j += 1;
            }
            if let Some(Tok::Paren(p)) = toks.get(j) {
                let p = p.trim_start();
                f.dir = p.starts_with("dir") && !p[3..].starts_with(|c: char| c.is_alphanumeric());
                i = j + 1;
            }
            let rest = toks.get(i);
            let t = match rest {
                None => "",
                Some(Tok::Text(t)) => t.trim(),
                Some(_) => return None,
            };
            let at_end = rest.is_none() || (i + 1 == toks.len() && (t.is_empty() || t == "."));
            if at_end {
                out.insert(name.clone(), f);
                return Some(out);
            }
            if let Some(after) = t.strip_prefix(':') {
                if after.trim().is_empty() && toks.get(i + 1).is_some_and(is_name) {
                    f.children = list(&toks[i + 1..])?;
                }
                // Else prose: the field's explanation, to the end.
                out.insert(name.clone(), f);
                return Some(out);
            }
            let sep = matches!(t, "," | "/" | "or" | ", or" | "and" | ", and");
            if !sep || !toks.get(i + 1).is_some_and(is_name) {
                return None;
            }
            out.insert(name.clone(), f);
            i += 1;
        }
    }

    /// The list a clause holds, if any.
    fn clause(toks: &[Tok]) -> Option<Fields> {
        let start = toks.iter().position(|t| !blank(Some(t)))?;
        let toks = &toks[start..];
        if is_name(&toks[0]) {
            return list(toks);
        }
        // "prose: list", the prose without backticks.
        for (i, t) in toks.iter().enumerate() {
            match t {
                Tok::Tick(_) => return None,
                Tok::Text(s) if s.contains(':') => {
                    let after = &s[s.find(':').unwrap() + 1..];
                    let mut rest = Vec::new();
                    if !after.trim().is_empty() {
                        rest.push(Tok::Text(after.into()));
                    }
                    rest.extend_from_slice(&toks[i + 1..]);
                    let k = rest.iter().position(|t| !blank(Some(t)))?;
                    return list(&rest[k..]);
                }
                _ => {}
            }
        }
        None
    }

    /// Every list in a text, merged (clauses split at `;`).
    fn fields_of(text: &str) -> Fields {
        let mut out = Fields::new();
        for c in split_text(&tokens(text), ';') {
            if let Some(f) = clause(&c) {
                out.extend(f);
            }
        }
        out
    }

    /// The body of the section whose heading contains `title`, up to the next
    /// heading of any level.
    fn section<'a>(doc: &'a str, title: &str) -> &'a str {
        let start = doc
            .match_indices('#')
            .map(|(i, _)| i)
            .find(|&i| {
                (i == 0 || doc.as_bytes()[i - 1] == b'\n')
                    && doc[i..].lines().next().unwrap().contains(title)
            })
            .unwrap_or_else(|| panic!("no section {title:?} in the schema doc"));
        let body = &doc[start..];
        let body = &body[body.find('\n').unwrap() + 1..];
        match body.find("\n#") {
            Some(end) => &body[..end],
            None => body,
        }
    }

    /// Paragraphs and list items, each joined into one line (code blocks and
    /// tables left out).
    fn paragraphs(text: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut open = false;
        let mut code = false;
        for line in text.lines() {
            if line.starts_with("```") {
                code = !code;
                open = false;
                continue;
            }
            if code || line.trim().is_empty() || line.starts_with('|') {
                open = false;
                continue;
            }
            if open && !line.starts_with("- ") {
                let last = out.last_mut().unwrap();
                last.push(' ');
                last.push_str(line.trim());
            } else {
                out.push(line.trim().to_owned());
                open = true;
            }
        }
        out
    }

    /// Cells of a table row, split at `|` outside backticks.
    fn cells(row: &str) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut tick = false;
        for c in row.trim().trim_matches('|').chars() {
            match c {
                '`' => {
                    tick = !tick;
                    out.last_mut().unwrap().push(c);
                }
                '|' if !tick => out.push(String::new()),
                c => out.last_mut().unwrap().push(c),
            }
        }
        out
    }

    /// The fields of the (first) table in `text`.
    fn table(text: &str) -> Fields {
        let mut out = Fields::new();
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with('|')).collect();
        assert!(rows.len() > 2, "no table in {text:.60}");
        for row in &rows[2..] {
            let c = cells(row);
            let names = list(&tokens(c[0].trim())).unwrap_or_else(|| panic!("no field in {row}"));
            let children = fields_of(c.last().unwrap());
            for name in names.into_keys() {
                let f = Field {
                    children: children.clone(),
                    dir: false,
                };
                assert!(out.insert(name.clone(), f).is_none(), "{name} twice");
            }
        }
        out
    }

    fn starting<'a>(paras: &'a [String], prefix: &str) -> &'a str {
        paras
            .iter()
            .find_map(|p| p.find(prefix).map(|i| &p[i..]))
            .unwrap_or_else(|| panic!("no paragraph with {prefix:?}"))
    }

    pub fn parse(doc: &str) -> Doc {
        let intro = paragraphs(section(doc, "schema, version"));
        let common = tokens(starting(&intro, "Every object has"))
            .into_iter()
            .filter_map(|t| match t {
                Tok::Tick(n) => {
                    let n = n
                        .split(':')
                        .next()
                        .unwrap()
                        .trim()
                        .trim_matches('"')
                        .to_owned();
                    Some((n, Field::default()))
                }
                _ => None,
            })
            .collect();

        let suffixes = tokens(section(doc, "Byte strings"))
            .into_iter()
            .filter_map(|t| match t {
                Tok::Tick(n) => n.strip_prefix('X').map(|s| {
                    s.chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect::<String>()
                }),
                _ => None,
            })
            .filter(|s| s.starts_with('_'))
            .collect();

        let mut args = BTreeMap::new();
        for item in paragraphs(section(doc, "`args` per syscall")) {
            let Some(item) = item.strip_prefix("- ") else {
                continue;
            };
            let colon = item.find("`:").expect("- `kind`: fields") + 1;
            let kinds = list(&tokens(&item[..colon])).expect("kind names");
            let fields = fields_of(&item[colon + 1..]);
            for k in kinds.into_keys() {
                assert!(
                    args.insert(k.clone(), fields.clone()).is_none(),
                    "{k} twice"
                );
            }
        }

        let incident_text = section(doc, r#"`"type": "incident"`"#);
        let process = fields_of(starting(&paragraphs(incident_text), "Process objects:"));

        let loss_text = section(doc, r#"`"type": "loss"`"#);
        let examples: Vec<Value> = doc
            .split("```json\n")
            .skip(1)
            .flat_map(|b| b[..b.find("```").unwrap()].lines())
            .map(|l| serde_json::from_str(l).expect("an example is JSON"))
            .collect();
        let loss = examples
            .iter()
            .find(|e| e["type"] == "loss")
            .expect("a loss example")
            .as_object()
            .unwrap()
            .keys()
            .map(|k| (k.clone(), Field::default()))
            .collect();
        let reasons = fields_of(starting(&paragraphs(loss_text), "Reasons:"))
            .into_keys()
            .collect();
        let stats = fields_of(starting(
            &paragraphs(section(doc, r#"`"type": "stats"`"#)),
            "Last line of a run:",
        ));

        Doc {
            common,
            suffixes,
            event: table(section(doc, r#"`"type": "event"`"#)),
            dir: table(section(doc, "Resolved directories")),
            args,
            incident: table(incident_text),
            process,
            loss,
            reasons,
            stats,
            examples,
        }
    }

    /// Checks records against a [`Doc`], remembering what it saw.
    pub struct Checker<'a> {
        doc: &'a Doc,
        /// Documented paths seen (see [`Checker::documented`]).
        pub seen: BTreeSet<String>,
        pub errors: Vec<String>,
    }

    impl<'a> Checker<'a> {
        pub fn new(doc: &'a Doc) -> Self {
            Checker {
                doc,
                seen: BTreeSet::new(),
                errors: Vec::new(),
            }
        }

        /// Every documented path: `<type>.<field>[.<field or value>...]` for
        /// the four record types, `args.<syscall>.<field>...`,
        /// `dir.<field>...`, `process.<field>`, `reason.<reason>`,
        /// `suffix.<suffix>`.
        pub fn documented(&self) -> BTreeSet<String> {
            fn walk(prefix: &str, fields: &Fields, out: &mut BTreeSet<String>) {
                for (k, f) in fields {
                    let p = format!("{prefix}.{k}");
                    walk(&p, &f.children, out);
                    out.insert(p);
                }
            }
            let d = self.doc;
            let mut out = BTreeSet::new();
            for (t, fields) in self.types() {
                walk(t, &d.common, &mut out);
                walk(t, fields, &mut out);
            }
            for (k, fields) in &d.args {
                walk(&format!("args.{k}"), fields, &mut out);
            }
            walk("dir", &d.dir, &mut out);
            walk("process", &d.process, &mut out);
            out.extend(d.reasons.iter().map(|r| format!("reason.{r}")));
            out.extend(d.suffixes.iter().map(|s| format!("suffix.{s}")));
            out
        }

        fn types(&self) -> [(&'static str, &'a Fields); 4] {
            let d = self.doc;
            [
                ("event", &d.event),
                ("incident", &d.incident),
                ("loss", &d.loss),
                ("stats", &d.stats),
            ]
        }

        /// Check one record.
        pub fn record(&mut self, v: &Value) {
            let Some(obj) = v.as_object() else {
                return self.errors.push(format!("not an object: {v}"));
            };
            let ty = obj.get("type").and_then(Value::as_str).unwrap_or("");
            let Some((t, fields)) = self.types().into_iter().find(|(t, _)| *t == ty) else {
                return self.errors.push(format!("undocumented type {ty:?}"));
            };
            if obj.get("schema") != Some(&Value::from(1)) {
                self.errors.push(format!("{t}: schema is not 1"));
            }
            let mut all = self.doc.common.clone();
            all.extend(fields.clone());
            self.object(t, obj, &all);
        }

        fn object(&mut self, path: &str, obj: &Map<String, Value>, fields: &Fields) {
            for (k, v) in obj {
                let p = format!("{path}.{k}");
                match fields.get(k) {
                    Some(f) => {
                        self.seen.insert(p.clone());
                        self.value(&p, k, v, f, obj);
                    }
                    None => self.companion(&p, k, v, obj, fields),
                }
            }
        }

        /// `X_hex` and the like, next to a documented byte string `X`.
        fn companion(
            &mut self,
            p: &str,
            k: &str,
            v: &Value,
            obj: &Map<String, Value>,
            fields: &Fields,
        ) {
            let found = self.doc.suffixes.iter().find(|s| {
                k.strip_suffix(s.as_str())
                    .is_some_and(|base| fields.contains_key(base) && obj.contains_key(base))
            });
            match found {
                Some(s) => {
                    let base = &obj[&k[..k.len() - s.len()]];
                    let ok = match s.as_str() {
                        "_hex" => base.is_string() && v.is_string(),
                        "_truncated" => base.is_string() && v == &Value::Bool(true),
                        "_unreadable" => base.is_null() && v == &Value::Bool(true),
                        _ => true,
                    };
                    if !ok {
                        self.errors.push(format!("{p}: {v} next to {base}"));
                    }
                    self.seen.insert(format!("suffix.{s}"));
                }
                None => self.errors.push(format!("undocumented field {p}")),
            }
        }

        fn value(&mut self, p: &str, k: &str, v: &Value, f: &Field, parent: &Map<String, Value>) {
            let doc = self.doc;
            match v {
                Value::Null => {}
                Value::Object(o) if f.dir => self.object("dir", o, &doc.dir),
                Value::Object(o) if p == "event.args" => {
                    let sc = parent.get("syscall").and_then(Value::as_str).unwrap_or("");
                    match doc.args.get(sc) {
                        Some(fields) => self.object(&format!("args.{sc}"), o, fields),
                        None => self.errors.push(format!("no documented args for {sc:?}")),
                    }
                }
                Value::Object(o) if k == "process" && f.children.is_empty() => {
                    self.object("process", o, &doc.process)
                }
                // Counts by syscall (and reason).
                Value::Object(o)
                    if matches!(
                        p,
                        "stats.events" | "stats.failed" | "stats.lost" | "loss.lost"
                    ) =>
                {
                    let syscalls = &doc.event["syscall"].children;
                    for (sc, n) in o {
                        if !syscalls.contains_key(sc) {
                            self.errors.push(format!("{p}: undocumented syscall {sc}"));
                        }
                        match (k, n) {
                            ("lost", Value::Object(by_reason)) => {
                                for (r, n) in by_reason {
                                    if doc.reasons.contains(r) && n.is_u64() {
                                        self.seen.insert(format!("reason.{r}"));
                                    } else {
                                        self.errors.push(format!("{p}.{sc}: {r}: {n}"));
                                    }
                                }
                            }
                            ("events" | "failed", n) if n.is_u64() => {}
                            _ => self.errors.push(format!("{p}.{sc}: {n}")),
                        }
                    }
                }
                Value::Object(o) if !f.children.is_empty() => self.object(p, o, &f.children),
                Value::String(s) if !f.children.is_empty() => self.enumerated(p, s, f),
                Value::Array(items) => {
                    for item in items {
                        match item {
                            Value::Object(o) if !f.children.is_empty() => {
                                self.object(p, o, &f.children)
                            }
                            Value::String(s) if !f.children.is_empty() => self.enumerated(p, s, f),
                            Value::Object(_) | Value::Array(_) => self
                                .errors
                                .push(format!("{p}: undocumented contents {item}")),
                            _ => {}
                        }
                    }
                }
                Value::Object(_) => self
                    .errors
                    .push(format!("{p}: an object with no documented fields")),
                _ => {}
            }
        }

        fn enumerated(&mut self, p: &str, s: &str, f: &Field) {
            if f.children.contains_key(s) {
                self.seen.insert(format!("{p}.{s}"));
            } else {
                self.errors.push(format!("{p}: undocumented value {s:?}"));
            }
        }
    }
}

const SCHEMA_DOC: &str = include_str!("../../docs/json-schema.md");

/// The parser reads what the doc says (a guard against a parser that finds
/// nothing, which would make the conformance test pass vacuously), and the
/// doc's enumerations match the code's name tables.
#[test]
fn schema_doc_parses() {
    let doc = schema::parse(SCHEMA_DOC);
    let names = |f: &schema::Fields| f.keys().cloned().collect::<Vec<_>>();
    let kinds: Vec<String> = EventKind::ALL
        .iter()
        .map(|k| k.syscall().to_owned())
        .collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(names(&doc.common), ["schema", "type"]);
    assert_eq!(
        doc.suffixes,
        ["_hex", "_truncated", "_unreadable"]
            .map(String::from)
            .into()
    );
    assert_eq!(doc.args.keys().cloned().collect::<Vec<_>>(), sorted);
    assert_eq!(names(&doc.event["syscall"].children), sorted);
    assert_eq!(
        names(&doc.args["unlinkat"]),
        [
            "capture",
            "dfd",
            "dir",
            "flags",
            "flags_str",
            "inode",
            "origin_mnt_id",
            "pathname"
        ]
    );
    assert!(doc.args["unlinkat"]["dir"].dir);
    assert!(!doc.args["unlinkat"]["pathname"].dir);
    assert_eq!(
        names(&doc.args["mount_setattr"]["attr"].children),
        [
            "attr_clr",
            "attr_clr_str",
            "attr_set",
            "attr_set_str",
            "propagation",
            "propagation_str",
            "userns_fd",
            "userns_ino"
        ]
    );
    assert_eq!(
        names(&doc.incident["holders"].children["processes"].children["holds"].children),
        ["fd", "how", "path"]
    );
    assert_eq!(
        names(&doc.stats["incidents"].children),
        ["critical", "warning"]
    );
    assert_eq!(
        names(&doc.stats["unwritten"].children),
        ["error", "events", "file", "incidents", "losses", "records"]
    );
    assert_eq!(
        names(&doc.incident["kind"].children),
        ["busy_unmount", "crossing"]
    );
    assert_eq!(
        names(&doc.incident["severity"].children),
        ["critical", "warning"]
    );
    assert_eq!(
        names(&doc.dir["from"].children),
        ["cwd", "fd", "root", "unknown"]
    );
    assert_eq!(names(&doc.dir["error"].children), ["bad_fd", "unresolved"]);
    assert!(
        doc.dir["truncated"].children.is_empty(),
        "prose is not a list"
    );
    assert!(
        doc.dir["rel_path"].children.is_empty(),
        "null is not a name"
    );
    assert_eq!(
        names(&doc.loss),
        ["lost", "lost_total", "schema", "time", "type"]
    );
    assert_eq!(doc.examples.len(), 2);

    // Enumerations: the doc lists exactly the names the code can write.
    let set = |v: Vec<&str>| v.into_iter().map(String::from).collect::<BTreeSet<_>>();
    assert_eq!(
        doc.dir["flags"]
            .children
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        set(mntrace::names::dir_flags(u32::MAX))
    );
    assert_eq!(
        doc.args["unlinkat"]["capture"]
            .children
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        set(mntrace::names::capture_reasons(u32::MAX))
    );
    assert_eq!(
        doc.reasons,
        set(DropReason::ALL.iter().map(|r| r.name()).collect())
    );
}

/// Every output of the corpus has only documented fields (and documented
/// values where the doc enumerates them), and every documented field and
/// value appears in some output.
#[test]
fn schema_conformance() {
    let doc = schema::parse(SCHEMA_DOC);
    let mut checker = schema::Checker::new(&doc);
    for c in all_cases() {
        let before = checker.errors.len();
        checker.record(&json_record(&c.item));
        for e in &mut checker.errors[before..] {
            *e = format!("{}: {e}", c.name);
        }
    }
    assert!(
        checker.errors.is_empty(),
        "undocumented output:\n{}",
        checker.errors.join("\n")
    );
    let documented = checker.documented();
    let missing: Vec<&String> = documented.difference(&checker.seen).collect();
    assert!(
        missing.is_empty(),
        "documented but never written: {missing:?}"
    );
    let extra: Vec<&String> = checker.seen.difference(&documented).collect();
    assert!(
        extra.is_empty(),
        "checker bug: seen but not documented: {extra:?}"
    );
}

/// The doc's own examples follow the doc.
#[test]
fn schema_doc_examples_conform() {
    let doc = schema::parse(SCHEMA_DOC);
    let mut checker = schema::Checker::new(&doc);
    for e in &doc.examples {
        checker.record(e);
    }
    assert!(checker.errors.is_empty(), "{}", checker.errors.join("\n"));
}
