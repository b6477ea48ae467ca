//! Renames: traced with both directories resolved in the kernel, and part
//! of a busy unmount's incident when they go through the busy mount (both
//! paths of a rename are on one mount: it moves or replaces what that mount
//! holds).

mod common;

use std::ffi::OsString;

use common::*;
use mntrace::correlate::Cause;
use mntrace::model::{Args, DirFrom};
use mntrace::EventKind;
use tracer_common::event::*;
use tracer_common::uapi::{AT_FDCWD, EBUSY, RENAME_NOREPLACE};

#[test]
fn renames_through_a_busy_mount_are_part_of_its_incident() {
    let s = scratch();
    let src = s.path().join("src");
    let m = s.path().join("m");
    let noreplace = RENAME_NOREPLACE.to_string();
    let ops: Vec<OsString> = vec![
        "unshare-mntns".into(), // 1
        "mkdirs".into(),
        src.join("bin").into(), // 2
        "mkdirs".into(),
        src.join("etc").into(), // 3
        "mkdirs".into(),
        src.join("trash").into(), // 4
        "write".into(),
        src.join("bin/sh").into(), // 5
        "write".into(),
        src.join("etc/conf").into(), // 6
        "mkdirs".into(),
        m.clone().into(), // 7
        "bind".into(),
        src.clone().into(),
        m.clone().into(), // 8
        "hold".into(),
        m.join("bin/sh").into(), // 9
        "umount".into(),
        m.clone().into(),
        "0".into(), // 10: EBUSY
        "rename".into(),
        m.join("bin/sh").into(),
        m.join("trash/sh").into(), // 11: by absolute paths
        "open-dir".into(),
        m.join("etc").into(), // 12
        "renameat2".into(),
        "@12".into(),
        "conf".into(),
        "@12".into(),
        "conf.old".into(),
        noreplace.clone().into(), // 13: by a directory fd on the busy mount
        "mnt-id".into(),
        m.clone().into(), // 14
        "sleep-ms".into(),
        "300".into(), // 15: the namespace stays while the EBUSY is looked at
    ];
    let mut fx = Fixture::spawn(&ops);
    let pid = fx.pid;
    let mut live = Live::of_pid(pid);
    fx.release();
    fx.wait_for_op(14);
    live.pump();
    let lines = fx.wait();
    assert_eq!(op(&lines, 10)["errno"], EBUSY);
    for i in [11, 12, 13] {
        assert_eq!(op(&lines, i)["errno"], 0, "op {i}: {}", op(&lines, i));
    }
    let dir_fd = u64_of(op(&lines, 12), "ret") as i32;
    let bind_mnt = u64_of(op(&lines, 14), "mnt_id") as u32;
    // The ground truth: the layer itself changed.
    assert!(!src.join("bin/sh").exists() && src.join("trash/sh").exists());
    assert!(!src.join("etc/conf").exists() && src.join("etc/conf.old").exists());

    let incidents = live.finish();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let inc = &incidents[0];
    assert!(matches!(inc.cause, Cause::BusyUnmount(_)), "{inc:#?}");
    assert_eq!(inc.unmount().expect("busy unmount").by.pid, pid);
    assert_eq!(inc.mount.mnt_id, bind_mnt);
    assert_eq!(inc.mount.backing_root.as_deref(), Some(b(&src)));
    assert_eq!(inc.count, 2);
    let got: Vec<_> = inc
        .deletions
        .iter()
        .map(|d| {
            (
                d.syscall,
                d.is_dir,
                to_path_buf(&d.path),
                to_path_buf(&d.rel_path),
                d.backing_path.as_deref().map(to_path_buf),
                d.renamed_to.as_deref().map(to_path_buf),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                EventKind::Renameat,
                false,
                m.join("bin/sh"),
                "/bin/sh".into(),
                Some(src.join("bin/sh")),
                Some(m.join("trash/sh")),
            ),
            (
                EventKind::Renameat2,
                false,
                m.join("etc/conf"),
                "/etc/conf".into(),
                Some(src.join("etc/conf")),
                Some(m.join("etc/conf.old")),
            ),
        ]
    );

    // The events themselves: captured because the process's own unmount
    // failed, each with both directories.
    let renames: Vec<_> = live
        .out
        .events
        .iter()
        .filter(|e| e.kind.is_rename())
        .collect();
    assert_eq!(renames.len(), 2, "{renames:#?}");
    let Args::Rename {
        olddfd,
        oldpath,
        newdfd,
        newpath,
        flags,
        old_dir,
        new_dir,
        capture,
    } = &renames[1].args
    else {
        panic!("{:?}", renames[1])
    };
    assert_eq!(
        (
            *olddfd,
            &oldpath.bytes[..],
            *newdfd,
            &newpath.bytes[..],
            *flags
        ),
        (
            dir_fd,
            &b"conf"[..],
            dir_fd,
            &b"conf.old"[..],
            RENAME_NOREPLACE
        )
    );
    assert_ne!(capture & CAP_BUSY, 0, "{capture:#x}");
    for d in [old_dir, new_dir] {
        assert_eq!(
            (d.from(), to_path_buf(&d.path.bytes), d.mnt_id),
            (DirFrom::Fd, m.join("etc"), bind_mnt)
        );
        assert_eq!(d.rel_path().as_deref(), Some(&b"/etc"[..]));
    }
}

#[test]
fn renameat2_between_directory_fds_resolves_both_directories() {
    let s = scratch();
    let a = s.path().join("a");
    let bdir = s.path().join("b\nc");
    let ops: Vec<OsString> = vec![
        "unshare-mntns".into(), // 1
        "mkdirs".into(),
        a.clone().into(), // 2
        "mkdirs".into(),
        bdir.clone().into(), // 3
        "write".into(),
        a.join("x").into(), // 4
        "open-dir".into(),
        a.clone().into(), // 5
        "open-dir".into(),
        bdir.clone().into(), // 6
        "renameat2".into(),
        "@5".into(),
        "x".into(),
        "@6".into(),
        "y".into(),
        "0".into(), // 7
        "renameat2".into(),
        "@5".into(),
        "missing".into(),
        "@6".into(),
        "z".into(),
        RENAME_NOREPLACE.to_string().into(), // 8: ENOENT
        "mnt-id".into(),
        a.clone().into(), // 9
        "rename-raw".into(),
        bdir.join("y").into(),
        a.join("back").into(), // 10: the legacy syscall, absolute paths
    ];
    let run = run_traced(&ops);
    run.assert_no_drops();
    let (fa, fb) = (
        u64_of(op(&run.lines, 5), "ret") as i32,
        u64_of(op(&run.lines, 6), "ret") as i32,
    );
    let mnt = u64_of(op(&run.lines, 9), "mnt_id") as u32;
    // y was moved back by op 10 (checked below).
    let got: Vec<_> = run
        .of(EventKind::Renameat2)
        .iter()
        .map(|e| match &e.args {
            Args::Rename {
                olddfd,
                oldpath,
                newdfd,
                newpath,
                flags,
                old_dir,
                new_dir,
                capture,
            } => (
                (
                    *olddfd,
                    oldpath.bytes.to_vec(),
                    *newdfd,
                    newpath.bytes.to_vec(),
                ),
                // Node-wide reasons (another test's EBUSY) may be added.
                (*flags, capture & CAP_ALL, e.ret),
                (
                    old_dir.from(),
                    to_path_buf(&old_dir.path.bytes),
                    old_dir.mnt_id,
                ),
                (
                    new_dir.from(),
                    to_path_buf(&new_dir.path.bytes),
                    new_dir.mnt_id,
                ),
                new_dir.flags & (DIR_RESOLVED | DIR_READ_ERR),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    let row = |old: &[u8], new: &[u8], flags, ret| {
        (
            (fa, old.to_vec(), fb, new.to_vec()),
            (flags, CAP_ALL, ret),
            (DirFrom::Fd, a.clone(), mnt),
            (DirFrom::Fd, bdir.clone(), mnt),
            DIR_RESOLVED,
        )
    };
    assert_eq!(
        got,
        vec![
            row(b"x", b"y", 0, 0),
            row(b"missing", b"z", RENAME_NOREPLACE, -i64::from(libc::ENOENT)),
        ]
    );
    // `rename(2)`: both lookups start at the root for absolute paths.
    let legacy = run.one(EventKind::Rename);
    let Args::Rename {
        olddfd,
        oldpath,
        newdfd,
        newpath,
        old_dir,
        new_dir,
        ..
    } = &legacy.args
    else {
        panic!("{legacy:?}")
    };
    assert_eq!(
        (
            *olddfd,
            to_path_buf(&oldpath.bytes),
            *newdfd,
            to_path_buf(&newpath.bytes),
            legacy.ret
        ),
        (AT_FDCWD, bdir.join("y"), AT_FDCWD, a.join("back"), 0)
    );
    for d in [old_dir, new_dir] {
        assert_eq!((d.from(), &d.path.bytes[..]), (DirFrom::Root, &b"/"[..]));
    }
    assert!(a.join("back").exists());
}
