//! Deletions through io_uring (`IORING_OP_UNLINKAT`), which never pass the
//! `unlinkat` syscall: seen at the request's submission (its name, dirfd,
//! flags and directory, resolved like a syscall deletion's) and reported
//! with its completion's result, as `io_uring_unlinkat` events; and a race
//! whose deleter submits its unlinks through io_uring is an incident. The
//! same for renames (`IORING_OP_RENAMEAT`, `io_uring_renameat` events).

mod common;

use common::*;
use mntrace::config::TraceOptions;
use mntrace::model::Args;
use mntrace::EventKind;
use tracer_common::event::{CAP_ALL, DIR_FROM_CWD, DIR_FROM_FD, DIR_FROM_ROOT};
use tracer_common::uapi::{AT_FDCWD, AT_REMOVEDIR, EBUSY, RENAME_NOREPLACE};

/// What a deletion event says: name, dirfd, flags, result, `DIR_FROM_*`,
/// directory path.
type Seen = (Vec<u8>, i32, u32, i64, u32, Vec<u8>);

#[test]
fn io_uring_unlinks_and_rmdirs_are_deletions_with_their_directory_and_result() {
    let s = scratch();
    let d = s.path().join("d");
    make_tree(&d, &["a", "b", "c", "e", "sub/x"]);
    std::fs::remove_file(d.join("sub/x")).expect("empty sub");
    let run = run_traced_with(
        &[
            "open-dir".as_ref(),
            d.as_os_str(), // 1
            "uring-unlinkat".as_ref(),
            "@1".as_ref(),
            "a".as_ref(),
            "0".as_ref(), // 2
            "uring-unlinkat".as_ref(),
            "@1".as_ref(),
            "nope".as_ref(),
            "0".as_ref(), // 3
            "uring-unlinkat".as_ref(),
            "@1".as_ref(),
            "sub".as_ref(),
            "0x200".as_ref(), // 4
            "uring-unlinkat".as_ref(),
            "cwd".as_ref(),
            d.join("b").as_os_str(), // 5
            "0".as_ref(),
            "uring-unlinkat-async".as_ref(),
            "@1".as_ref(),
            "e".as_ref(),
            "0".as_ref(), // 6: IOSQE_ASYNC, run by an io-wq worker
            "uring-unlinkat-sqpoll".as_ref(),
            "@1".as_ref(),
            "c".as_ref(),
            "0".as_ref(), // 7
        ],
        // The default mode: io_uring deletions are captured whatever it is.
        TraceOptions::default(),
    );
    run.assert_no_drops();
    let fd = u64_of(op(&run.lines, 1), "ret") as i32;
    for i in [2, 4, 5, 6, 7] {
        assert_eq!(op(&run.lines, i)["errno"], 0, "op {i}");
    }
    assert_eq!(op(&run.lines, 3)["errno"], 2, "ENOENT");
    let mut evs = run.of(EventKind::UringUnlinkat);
    assert_eq!(evs.len(), 6, "{evs:#?}");
    // A SQPOLL ring: its kernel thread (`iou-sqp-PID`, a thread of the
    // process) submitted the last one, resolved in the process's fd table.
    let sqp = evs.pop().expect("the SQPOLL request");
    assert_eq!(sqp.pid, run.pid);
    assert_ne!(sqp.tid, run.pid);
    assert!(sqp.comm.starts_with(b"iou-sqp-"), "{:?}", sqp.comm);
    assert_eq!(sqp.ret, 0);
    let Args::Delete { pathname, dir, .. } = &sqp.args else {
        panic!("{sqp:?}")
    };
    assert_eq!(
        (&pathname.bytes[..], &dir.path.bytes[..]),
        (&b"c"[..], b(&d))
    );
    assert!(
        run.of(EventKind::Unlinkat).is_empty(),
        "no unlinkat syscall"
    );
    let got: Vec<Seen> = evs
        .iter()
        .map(|e| {
            let Args::Delete {
                pathname,
                dfd,
                flags,
                dir,
                capture,
                ..
            } = &e.args
            else {
                panic!("{e:?}")
            };
            assert_eq!((e.pid, e.tid), (run.pid, run.pid), "the submitter");
            assert_eq!(*capture, CAP_ALL);
            assert!(dir.resolved(), "{dir:?}");
            (
                pathname.bytes.to_vec(),
                *dfd,
                *flags,
                e.ret,
                dir.flags & (DIR_FROM_FD | DIR_FROM_CWD | DIR_FROM_ROOT),
                dir.path.bytes.to_vec(),
            )
        })
        .collect();
    let dp = b(&d).to_vec();
    assert_eq!(
        got,
        vec![
            (b"a".to_vec(), fd, 0, 0, DIR_FROM_FD, dp.clone()),
            (b"nope".to_vec(), fd, 0, -2, DIR_FROM_FD, dp.clone()),
            (
                b"sub".to_vec(),
                fd,
                AT_REMOVEDIR,
                0,
                DIR_FROM_FD,
                dp.clone()
            ),
            (
                b(&d.join("b")).to_vec(),
                AT_FDCWD,
                0,
                0,
                DIR_FROM_ROOT,
                b"/".to_vec()
            ),
            (b"e".to_vec(), fd, 0, 0, DIR_FROM_FD, dp.clone()),
        ]
    );
    for f in ["a", "b", "c", "e", "sub"] {
        assert!(!d.join(f).exists(), "{f}");
    }
}

#[test]
fn a_race_whose_deleter_uses_io_uring_is_an_incident_with_exact_paths() {
    // The failed unmount, then the files deleted through the busy mount by
    // io_uring requests on a dirfd of it.
    let s = scratch();
    let m = s.path().join("m");
    std::fs::create_dir_all(&m).expect("mkdir");
    let mut ops: Vec<std::ffi::OsString> = ["unshare-mntns", "mount-tmpfs"]
        .iter()
        .map(Into::into)
        .collect();
    ops.push(m.clone().into()); // 2
    for a in ["touch-many".into(), m.clone().into(), "3".into()] {
        ops.push(a); // 3
    }
    ops.extend(["hold".into(), m.join("f0").into()]); // 4
    ops.extend(["umount".into(), m.clone().into(), "0".into()]); // 5: EBUSY
    ops.extend(["open-dir".into(), m.clone().into()]); // 6
    for f in ["f1", "f2"] {
        ops.extend(["uring-unlinkat".into(), "@6".into(), f.into(), "0".into()]);
        // 7, 8
    }
    ops.extend(["sleep-ms".into(), "300".into()]); // 9: the namespace stays
    let mut fx = Fixture::spawn(&ops);
    let pid = fx.pid;
    let mut live = Live::of_pid(pid);
    fx.release();
    assert_eq!(fx.wait_for_op(5)["errno"], EBUSY);
    fx.wait_for_op(8);
    live.pump();
    let lines = fx.wait();
    assert_eq!(op(&lines, 7)["errno"], 0);
    assert_eq!(op(&lines, 8)["errno"], 0);
    let incidents = live.finish();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let inc = &incidents[0];
    assert_eq!(&inc.mount.mountpoint[..], b(&m));
    assert_eq!(inc.count, 2);
    let got: Vec<(EventKind, Vec<u8>, Vec<u8>)> = inc
        .deletions
        .iter()
        .map(|d| (d.syscall, d.path.to_vec(), d.rel_path.to_vec()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                EventKind::UringUnlinkat,
                b(&m.join("f1")).to_vec(),
                b"/f1".to_vec()
            ),
            (
                EventKind::UringUnlinkat,
                b(&m.join("f2")).to_vec(),
                b"/f2".to_vec()
            ),
        ]
    );
    assert_eq!(inc.deleters[0].pid, pid);
    assert_eq!(live.traced.drops().total(), 0);
}

#[test]
fn io_uring_renames_through_a_busy_mount_join_its_incident_with_both_directories() {
    // The failed unmount, then two entries of the busy mount moved by
    // IORING_OP_RENAMEAT requests on dirfds of it, one run by an io-wq
    // worker (IOSQE_ASYNC).
    let s = scratch();
    let m = s.path().join("m");
    std::fs::create_dir_all(&m).expect("mkdir");
    let noreplace = RENAME_NOREPLACE.to_string();
    let ops: Vec<std::ffi::OsString> = vec![
        "unshare-mntns".into(), // 1
        "mount-tmpfs".into(),
        m.clone().into(), // 2
        "touch-many".into(),
        m.clone().into(),
        "3".into(), // 3: f0 f1 f2
        "mkdir".into(),
        m.join("t").into(), // 4
        "hold".into(),
        m.join("f0").into(), // 5
        "umount".into(),
        m.clone().into(),
        "0".into(), // 6: EBUSY
        "open-dir".into(),
        m.clone().into(), // 7
        "open-dir".into(),
        m.join("t").into(), // 8
        "uring-renameat".into(),
        "@7".into(),
        "f1".into(),
        "@8".into(),
        "f1x".into(),
        "0".into(), // 9
        "uring-renameat-async".into(),
        "@7".into(),
        "f2".into(),
        "@7".into(),
        "f2y".into(),
        noreplace.into(), // 10
        "mnt-id".into(),
        m.clone().into(), // 11
        "sleep-ms".into(),
        "300".into(), // 12: the namespace stays
    ];
    let mut fx = Fixture::spawn(&ops);
    let pid = fx.pid;
    let mut live = Live::of_pid(pid);
    fx.release();
    assert_eq!(fx.wait_for_op(6)["errno"], EBUSY);
    fx.wait_for_op(11);
    live.pump();
    let lines = fx.wait();
    assert_eq!(op(&lines, 9)["errno"], 0, "{}", op(&lines, 9));
    assert_eq!(op(&lines, 10)["errno"], 0, "{}", op(&lines, 10));
    let (fd_m, fd_t) = (
        u64_of(op(&lines, 7), "ret") as i32,
        u64_of(op(&lines, 8), "ret") as i32,
    );
    let mnt = u64_of(op(&lines, 11), "mnt_id") as u32;
    let incidents = live.finish();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let inc = &incidents[0];
    assert_eq!((&inc.mount.mountpoint[..], inc.mount.mnt_id), (b(&m), mnt));
    assert_eq!(inc.count, 2);
    let got: Vec<_> = inc
        .deletions
        .iter()
        .map(|d| {
            (
                d.syscall,
                d.path.to_vec(),
                d.rel_path.to_vec(),
                d.renamed_to.as_deref().map(<[u8]>::to_vec),
            )
        })
        .collect();
    let p = |rel: &str| {
        if rel.is_empty() {
            b(&m).to_vec()
        } else {
            b(&m.join(rel)).to_vec()
        }
    };
    assert_eq!(
        got,
        vec![
            (
                EventKind::UringRenameat,
                p("f1"),
                b"/f1".to_vec(),
                Some(p("t/f1x"))
            ),
            (
                EventKind::UringRenameat,
                p("f2"),
                b"/f2".to_vec(),
                Some(p("f2y"))
            ),
        ]
    );
    assert_eq!(inc.deleters[0].pid, pid);
    // The events: the submitter's, both directories resolved at submission.
    let evs: Vec<_> = live
        .out
        .events
        .iter()
        .filter(|e| e.kind == EventKind::UringRenameat)
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
                (e.pid, e.ret),
                (
                    *olddfd,
                    oldpath.bytes.to_vec(),
                    *newdfd,
                    newpath.bytes.to_vec(),
                ),
                (*flags, capture & CAP_ALL),
                (
                    old_dir.flags & DIR_FROM_FD,
                    old_dir.path.bytes.to_vec(),
                    old_dir.mnt_id,
                ),
                (
                    new_dir.flags & DIR_FROM_FD,
                    new_dir.path.bytes.to_vec(),
                    new_dir.mnt_id,
                ),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        evs,
        vec![
            (
                (pid, 0),
                (fd_m, b"f1".to_vec(), fd_t, b"f1x".to_vec()),
                (0, CAP_ALL),
                (DIR_FROM_FD, p(""), mnt),
                (DIR_FROM_FD, p("t"), mnt),
            ),
            (
                (pid, 0),
                (fd_m, b"f2".to_vec(), fd_m, b"f2y".to_vec()),
                (RENAME_NOREPLACE, CAP_ALL),
                (DIR_FROM_FD, p(""), mnt),
                (DIR_FROM_FD, p(""), mnt),
            ),
        ]
    );
    assert_eq!(live.traced.drops().total(), 0);
}

#[test]
fn an_io_uring_rename_through_a_sqpoll_ring_is_the_processs_with_both_directories() {
    // A SQPOLL ring's kernel thread (`iou-sqp-PID`, a thread of the
    // process) submits the request: resolved in the process's fd table.
    let s = scratch();
    let d = s.path().join("d");
    make_tree(&d, &["x", "sub/keep"]);
    let run = run_traced_with(
        &[
            "open-dir".as_ref(),
            d.as_os_str(), // 1
            "open-dir".as_ref(),
            d.join("sub").as_os_str(), // 2
            "uring-renameat-sqpoll".as_ref(),
            "@1".as_ref(),
            "x".as_ref(),
            "@2".as_ref(),
            "y".as_ref(),
            "0".as_ref(), // 3
        ],
        // The default mode: io_uring renames are captured whatever it is.
        TraceOptions::default(),
    );
    run.assert_no_drops();
    assert_eq!(op(&run.lines, 3)["errno"], 0, "{}", op(&run.lines, 3));
    assert!(!d.join("x").exists() && d.join("sub/y").exists());
    let (fd, sub_fd) = (
        u64_of(op(&run.lines, 1), "ret") as i32,
        u64_of(op(&run.lines, 2), "ret") as i32,
    );
    let e = run.one(EventKind::UringRenameat);
    assert_eq!((e.pid, e.ret), (run.pid, 0));
    assert_ne!(e.tid, run.pid);
    assert!(e.comm.starts_with(b"iou-sqp-"), "{:?}", e.comm);
    let Args::Rename {
        olddfd,
        oldpath,
        newdfd,
        newpath,
        old_dir,
        new_dir,
        ..
    } = &e.args
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (
            *olddfd,
            &oldpath.bytes[..],
            *newdfd,
            &newpath.bytes[..],
            &old_dir.path.bytes[..],
            &new_dir.path.bytes[..]
        ),
        (fd, &b"x"[..], sub_fd, &b"y"[..], b(&d), b(&d.join("sub")))
    );
    assert!(
        run.of(EventKind::Renameat2).is_empty(),
        "no renameat2 syscall"
    );
}

#[test]
fn a_crossing_whose_deleter_uses_io_uring_is_flagged_with_exact_paths() {
    // kubelet's orphaned-pod cleanup (kubernetes #72257) with Go's
    // RemoveAll walk (getdents64 listings) whose unlinks go through
    // io_uring: it crosses into a live volume-subpath bind of a local PV (a
    // tmpfs of its own) and empties it.
    use std::collections::BTreeSet;
    let s = scratch();
    let pod = s.path().join("kubelet/pods/0b3f-uid");
    let mp = pod.join("volume-subpaths/pv-vol/app/0");
    let disks = s.path().join("disks");
    let pv = disks.join("pv1");
    make_tree(&pod, &["etc-hosts"]);
    std::fs::create_dir_all(&mp).expect("mkdir");
    std::fs::create_dir_all(&disks).expect("mkdir");
    let mut ops: Vec<std::ffi::OsString> = vec![
        "unshare-mntns".into(),
        "mount-tmpfs".into(),
        disks.clone().into(),
        "mkdirs".into(),
        pv.join("data").into(),
        "write".into(),
        pv.join("c").into(),
        "write".into(),
        pv.join("data/a").into(),
        "bind".into(),
        pv.clone().into(),
        mp.clone().into(),
        "remove-all-uring".into(),
        pod.clone().into(), // 7
    ];
    for f in ["c", "data/a"] {
        ops.extend(["mnt-id".into(), pv.join(f).into()]); // 8, 9: gone?
    }
    ops.extend(["sleep-ms".into(), "300".into()]);
    let mut fx = Fixture::spawn(&ops);
    let pid = fx.pid;
    let mut live = Live::of_pid(pid);
    fx.release();
    fx.wait_for_op(9);
    live.pump();
    let lines = fx.wait();
    assert_eq!(op(&lines, 8)["errno"], 2, "the PV really lost its files");
    assert_eq!(op(&lines, 9)["errno"], 2);
    assert!(
        live.out
            .events
            .iter()
            .filter(|e| e.ret == 0 && e.kind.is_delete())
            .all(|e| e.kind == EventKind::UringUnlinkat),
        "every deletion went through io_uring"
    );
    let incidents = live.finish();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let inc = &incidents[0];
    let w = inc.walk().expect("a crossing");
    assert_eq!(w.by.pid, pid);
    assert_eq!(w.root.as_deref(), Some(b(&pod)), "the walk's top directory");
    assert_eq!(&inc.mount.mountpoint[..], b(&mp));
    assert_eq!(inc.mount.backing_root.as_deref(), Some(b(&pv)));
    assert_eq!(inc.severity, mntrace::correlate::Severity::Critical);
    let backing: BTreeSet<std::path::PathBuf> = inc
        .deletions
        .iter()
        .map(|d| {
            assert_eq!(d.syscall, EventKind::UringUnlinkat);
            to_path_buf(d.backing_path.as_deref().expect("backing"))
        })
        .collect();
    let want: BTreeSet<std::path::PathBuf> =
        ["c", "data", "data/a"].iter().map(|e| pv.join(e)).collect();
    assert_eq!(backing, want, "every PV entry by its real path");
    assert_eq!(live.traced.drops().total(), 0);
}
