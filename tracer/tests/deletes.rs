//! unlink, unlinkat, rmdir: the starting directory resolved in the kernel to
//! the mount it is on (checked against statx's mount id) and its paths.

mod common;

use common::*;
use mntrace::{config::TraceOptions, model::DirFrom, EventKind};
use tracer_common::{event::*, limits::WALK_REUSE_NS, uapi::AT_REMOVEDIR};

#[test]
fn unlinkat_through_a_dirfd_inside_a_nested_mount() {
    let s = scratch();
    let outer = p(&[b(s.path()), b"/outer"]);
    let inner = p(&[b(s.path()), b"/outer/inner"]);
    let d2 = p(&[b(s.path()), b"/outer/inner/d1/d2"]);
    let f = p(&[b(s.path()), b"/outer/inner/d1/d2/f"]);
    let sub = p(&[b(s.path()), b"/outer/inner/d1/d2/sub"]);
    let removedir = format!("{AT_REMOVEDIR:#x}");
    let run = run_traced(&[
        "unshare-mntns".as_ref(), // 1
        "mkdirs".as_ref(),        // 2
        outer.as_os_str(),
        "mount-tmpfs".as_ref(), // 3
        outer.as_os_str(),
        "mkdirs".as_ref(), // 4
        inner.as_os_str(),
        "mount-tmpfs".as_ref(), // 5
        inner.as_os_str(),
        "mkdirs".as_ref(), // 6
        sub.as_os_str(),
        "write".as_ref(), // 7
        f.as_os_str(),
        "open-dir".as_ref(), // 8
        d2.as_os_str(),
        "fd-mnt-id".as_ref(), // 9
        "@8".as_ref(),
        "unlinkat".as_ref(), // 10
        "@8".as_ref(),
        "f".as_ref(),
        "0".as_ref(),
        "unlinkat".as_ref(), // 11
        "@8".as_ref(),
        "sub".as_ref(),
        removedir.as_ref(),
        "unlinkat".as_ref(), // 12: already gone
        "@8".as_ref(),
        "f".as_ref(),
        "0".as_ref(),
    ]);
    run.assert_no_drops();
    let fd = u64_of(op(&run.lines, 8), "ret") as i32;
    let st = op(&run.lines, 9);
    let ns = u64_of(op(&run.lines, 1), "mnt_ns") as u32;
    let evs = run.of(EventKind::Unlinkat);
    assert_eq!(evs.len(), 3);
    for (e, (name, flags, ret)) in evs.iter().zip([
        (&b"f"[..], 0u32, 0i64),
        (&b"sub"[..], AT_REMOVEDIR, 0),
        (&b"f"[..], 0, -2),
    ]) {
        let mntrace::model::Args::Delete {
            dfd,
            pathname,
            flags: fl,
            dir,
            capture,
            ..
        } = &e.args
        else {
            panic!()
        };
        assert_eq!(
            (*dfd, &pathname.bytes[..], *fl, e.ret),
            (fd, name, flags, ret)
        );
        assert_eq!(
            dir.mnt_id as u64,
            u64_of(st, "mnt_id"),
            "mount id of the dirfd"
        );
        if let Some(u) = st["mnt_id_unique"].as_u64() {
            assert_eq!(dir.mnt_id_unique, u, "unique mount id");
        }
        assert_eq!(dir.ino, u64_of(st, "ino"));
        assert_eq!(dir.dev as u64, u64_of(st, "dev"));
        assert_eq!(
            dir.mnt_ns, ns,
            "the mount belongs to the fixture's namespace"
        );
        assert_eq!(&dir.path.bytes[..], d2.as_encoded_bytes(), "absolute path");
        assert_eq!(
            dir.rel_path().as_deref(),
            Some(&b"/d1/d2"[..]),
            "relative to the inner mount"
        );
        assert_eq!(*capture, CAP_ALL);
        assert_eq!(dir.from(), DirFrom::Fd);
        assert_eq!(
            dir.flags & (DIR_TRUNCATED | DIR_IDMAPPED | DIR_SUBTREE | DIR_BAD_FD),
            0
        );
    }
}

#[test]
fn rmdir_and_unlink_from_cwd_and_root() {
    let s = scratch();
    let r = p(&[b(s.path()), b"/r"]);
    let x = p(&[b(s.path()), b"/r/x"]);
    let u = p(&[b(s.path()), b"/r/u"]);
    let run = run_traced(&[
        "mkdirs".as_ref(), // 1
        x.as_os_str(),
        "write".as_ref(), // 2
        u.as_os_str(),
        "mnt-id".as_ref(), // 3
        r.as_os_str(),
        "mnt-id".as_ref(), // 4
        "/".as_ref(),
        "chdir".as_ref(), // 5
        r.as_os_str(),
        "rmdir-raw".as_ref(), // 6: relative: from the cwd
        "x".as_ref(),
        "unlink-raw".as_ref(), // 7: relative
        "u".as_ref(),
        "chdir".as_ref(), // 8
        "/".as_ref(),
        "rmdir-raw".as_ref(), // 9: absolute: from the root
        r.as_os_str(),
        "rmdir-raw".as_ref(), // 10: gone: ENOENT
        r.as_os_str(),
    ]);
    run.assert_no_drops();
    let r_mnt = u64_of(op(&run.lines, 3), "mnt_id") as u32;
    let root_mnt = u64_of(op(&run.lines, 4), "mnt_id") as u32;
    let rmdirs = run.of(EventKind::Rmdir);
    assert_eq!(rmdirs.len(), 3);
    let (e, d) = (rmdirs[0], delete_dir(rmdirs[0]));
    assert_eq!((pathname(e), e.ret), (&b"x"[..], 0));
    assert_eq!(
        (d.from(), &d.path.bytes[..], d.mnt_id),
        (DirFrom::Cwd, r.as_encoded_bytes(), r_mnt)
    );
    let rel = d.rel_path().expect("rel path");
    assert!(
        d.path.bytes.ends_with(&rel),
        "{rel:?} is the tail of {:?}",
        d.path.bytes
    );
    let unlink = run.one(EventKind::Unlink);
    assert_eq!((pathname(unlink), unlink.ret), (&b"u"[..], 0));
    assert_eq!(&delete_dir(unlink).path.bytes[..], r.as_encoded_bytes());
    for (e, ret) in [(rmdirs[1], 0), (rmdirs[2], -2)] {
        let d = delete_dir(e);
        assert_eq!((pathname(e), e.ret), (r.as_encoded_bytes(), ret));
        assert_eq!(
            (d.from(), &d.path.bytes[..], d.mnt_id),
            (DirFrom::Root, &b"/"[..], root_mnt)
        );
    }
}

#[test]
fn a_closed_dirfd_is_reported_not_guessed() {
    let run = run_traced(&["unlinkat", "77", "f", "0"]);
    let e = run.one(EventKind::Unlinkat);
    assert_eq!(e.ret, -9, "EBADF");
    let d = delete_dir(e);
    assert_eq!(d.flags & (DIR_BAD_FD | DIR_RESOLVED), DIR_BAD_FD);
    assert_eq!(d.from(), DirFrom::Fd);
}

/// One thread's deletions through fds on two directories, alternating, each
/// get their own directory; the cwd and an fd on the same directory each
/// say where the lookup started; a directory renamed between deletions is
/// reported under its new name.
#[test]
fn alternating_directories_the_cwd_and_a_rename_each_give_the_directory_as_it_is() {
    let s = scratch();
    let a = s.path().join("a/d");
    let c = s.path().join("c");
    let renamed = s.path().join("b/d");
    let mut ops: Vec<std::ffi::OsString> = vec![
        "mkdirs".into(), // 1
        a.clone().into(),
        "mkdirs".into(), // 2
        c.clone().into(),
    ];
    for f in ["f1", "f2", "f3", "f4", "g1", "g2"] {
        let (dir, name) = if f.starts_with('f') { (&a, f) } else { (&c, f) };
        ops.push("write".into());
        ops.push(dir.join(name).into());
    } // 3..=8
    ops.extend([
        "open-dir".into(), // 9
        a.clone().into(),
        "open-dir".into(), // 10
        c.clone().into(),
        "unlinkat".into(), // 11
        "@9".into(),
        "f1".into(),
        "0".into(),
        "unlinkat".into(), // 12
        "@10".into(),
        "g1".into(),
        "0".into(),
        "unlinkat".into(), // 13
        "@9".into(),
        "f2".into(),
        "0".into(),
        "chdir".into(), // 14
        a.clone().into(),
        "unlink".into(), // 15: from the cwd, the same directory as @9
        "f3".into(),
        "rename".into(), // 16
        s.path().join("a").into(),
        s.path().join("b").into(),
        "sleep-ms".into(), // 17
        "20".into(),
        "unlinkat".into(), // 18
        "@9".into(),
        "f4".into(),
        "0".into(),
        "unlinkat".into(), // 19
        "@10".into(),
        "g2".into(),
        "0".into(),
    ]);
    let run = run_traced(&ops);
    run.assert_no_drops();
    for i in [11, 12, 13, 15, 16, 18, 19] {
        assert_eq!(op(&run.lines, i)["errno"], 0, "op {i}: {:?}", run.lines);
    }
    let got: Vec<(Vec<u8>, Vec<u8>, DirFrom)> = run
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Unlinkat | EventKind::Unlink))
        .map(|e| {
            let mntrace::model::Args::Delete { pathname, dir, .. } = &e.args else {
                panic!()
            };
            (pathname.bytes.to_vec(), dir.path.bytes.to_vec(), dir.from())
        })
        .collect();
    let (a, c, renamed) = (b(&a).to_vec(), b(&c).to_vec(), b(&renamed).to_vec());
    assert_eq!(
        got,
        vec![
            (b"f1".to_vec(), a.clone(), DirFrom::Fd),
            (b"g1".to_vec(), c.clone(), DirFrom::Fd),
            (b"f2".to_vec(), a.clone(), DirFrom::Fd),
            (b"f3".to_vec(), a.clone(), DirFrom::Cwd),
            (b"f4".to_vec(), renamed, DirFrom::Fd),
            (b"g2".to_vec(), c, DirFrom::Fd),
        ]
    );
}

/// A thread's deletions from one directory reuse its walk (the kernel walks
/// it once per `WALK_REUSE_NS`, not once per deletion), until something
/// changes: another call used the thread's slot (an unmount), or the
/// directory itself was renamed (its parent and name are checked at every
/// deletion, however soon). Every deletion still gets the directory as it
/// is: its path, mount and inode, and how its lookup started.
#[test]
fn deletions_from_one_directory_reuse_its_walk_until_it_changes() {
    let s = scratch();
    let d = s.path().join("a/d");
    let renamed = s.path().join("a/e");
    let other = s.path().join("other");
    let mut ops: Vec<std::ffi::OsString> = vec![
        "mkdirs".into(), // 1
        d.clone().into(),
        "mkdirs".into(), // 2
        other.clone().into(),
    ];
    let names: Vec<String> = (0..40).map(|i| format!("f{i}")).collect();
    for n in &names {
        ops.extend(["write".into(), d.join(n).into()]);
    } // 3..=42
    ops.extend([
        "open-dir".into(), // 43
        d.clone().into(),
        "chdir".into(), // 44: a cwd that is not the directory
        other.clone().into(),
    ]);
    let unlink = |ops: &mut Vec<std::ffi::OsString>, n: &str| {
        ops.extend(["unlinkat".into(), "@43".into(), n.into(), "0".into()])
    };
    for n in &names[..20] {
        unlink(&mut ops, n);
    }
    // An unmount that fails (EINVAL: not a mount) uses the thread's slot.
    ops.extend(["umount".into(), other.clone().into(), "0".into()]);
    unlink(&mut ops, &names[20]);
    unlink(&mut ops, &names[21]);
    ops.extend(["rename".into(), d.clone().into(), renamed.clone().into()]);
    for n in &names[22..] {
        unlink(&mut ops, n);
    }
    let run = run_traced(&ops);
    run.assert_no_drops();
    let pid = run.pid;
    let dels: Vec<&mntrace::model::Event> = run
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Unlinkat && e.pid == pid)
        .collect();
    let got: Vec<&[u8]> = dels.iter().map(|e| pathname(e)).collect();
    let want: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
    assert_eq!(got, want, "every deletion, in order");
    let mnt_id = delete_dir(dels[0]).mnt_id;
    for (i, e) in dels.iter().enumerate() {
        assert_eq!(e.ret, 0, "{i}");
        let dir = delete_dir(e);
        let want = if i < 22 { &d } else { &renamed };
        assert_eq!(&dir.path.bytes[..], b(want), "deletion {i}");
        assert_eq!(dir.from(), DirFrom::Fd, "deletion {i}");
        assert_eq!(dir.mnt_id, mnt_id, "deletion {i}");
        assert!(dir.resolved() && dir.ino != 0, "deletion {i}");
    }
    let reused = |i: usize| delete_dir(dels[i]).flags & DIR_REUSED != 0;
    assert!(!reused(0), "the first deletion walks");
    // The rule, exactly: a deletion from the same directory reuses the last
    // walk when it enters at most `WALK_REUSE_NS` after that walk's
    // deletion entered (both on the records' clock: entry = ts - duration).
    let entry = |i: usize| dels[i].ts_ns - dels[i].duration_ns;
    let mut walked = entry(0);
    let mut gaps = Vec::new();
    for i in 1..20 {
        let since = entry(i) - walked;
        gaps.push(since);
        assert_eq!(
            reused(i),
            since <= WALK_REUSE_NS,
            "deletion {i}, {since} ns after the walk it could reuse"
        );
        if !reused(i) {
            walked = entry(i);
        }
    }
    assert!(
        (1..20).any(reused),
        "deletions from the same fd microseconds apart reuse the walk; these came \
         {gaps:?} ns after the last walk: too slow a machine for this test's premise"
    );
    assert!(!reused(20), "after the unmount used the slot");
    assert!(!reused(22), "after the directory was renamed");
}

/// In the default mode, a deletion nothing captures is decided without
/// reading its name when it is given with a directory fd. Once a burst is
/// captured (here: it crossed into a tmpfs), a name given with the fd that
/// turns out absolute is read and its record starts at the root, not at
/// the fd; the burst goes on being captured.
#[test]
fn an_absolute_name_with_a_dirfd_in_a_captured_burst_starts_at_the_root() {
    let s = scratch();
    let a = s.path().join("a");
    let m = s.path().join("a/m");
    let x = s.path().join("x");
    let h = s.path().join("x/h");
    let mut ops: Vec<std::ffi::OsString> = vec![
        "unshare-mntns".into(), // 1
        "mkdirs".into(),        // 2
        m.clone().into(),
        "mkdirs".into(), // 3
        x.clone().into(),
        "mount-tmpfs".into(), // 4
        m.clone().into(),
    ];
    for f in [a.join("f1"), m.join("g1"), m.join("g2"), h.clone()] {
        ops.extend(["write".into(), f.into()]); // 5..=8
    }
    ops.extend([
        "open-dir".into(), // 9
        a.clone().into(),
        "open-dir".into(), // 10
        m.clone().into(),
        "mnt-id".into(), // 11
        "/".into(),
        "mnt-id".into(), // 12
        m.clone().into(),
        "unlinkat".into(), // 13: the burst begins on the scratch mount
        "@9".into(),
        "f1".into(),
        "0".into(),
        "unlinkat".into(), // 14: and crosses into the tmpfs
        "@10".into(),
        "g1".into(),
        "0".into(),
        "unlinkat".into(), // 15: an absolute name with the tmpfs's fd
        "@10".into(),
        h.clone().into(),
        "0".into(),
        "unlinkat".into(), // 16
        "@10".into(),
        "g2".into(),
        "0".into(),
    ]);
    let run = run_traced_with(&ops, TraceOptions::default());
    run.assert_no_drops();
    for i in 13..=16 {
        assert_eq!(u64_of(op(&run.lines, i), "ret"), 0, "op {i}");
    }
    let root_mnt = u64_of(op(&run.lines, 11), "mnt_id") as u32;
    let m_mnt = u64_of(op(&run.lines, 12), "mnt_id") as u32;
    let fd = u64_of(op(&run.lines, 10), "ret") as i32;
    let m_path = m.as_os_str().as_encoded_bytes().to_vec();
    let evs = run.of(EventKind::Unlinkat);
    let got: Vec<_> = evs
        .iter()
        .map(|e| {
            let d = delete_dir(e);
            let mntrace::model::Args::Delete { dfd, capture, .. } = &e.args else {
                panic!()
            };
            (
                *dfd,
                pathname(e).to_vec(),
                e.ret,
                *capture & CAP_CROSSING,
                d.from(),
                d.path.bytes.to_vec(),
                d.mnt_id,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                fd,
                b"g1".to_vec(),
                0,
                CAP_CROSSING,
                DirFrom::Fd,
                m_path.clone(),
                m_mnt
            ),
            (
                fd,
                h.as_os_str().as_encoded_bytes().to_vec(),
                0,
                CAP_CROSSING,
                DirFrom::Root,
                b"/".to_vec(),
                root_mnt
            ),
            (
                fd,
                b"g2".to_vec(),
                0,
                CAP_CROSSING,
                DirFrom::Fd,
                m_path.clone(),
                m_mnt
            ),
        ],
        "the first deletion (before the crossing) is not captured"
    );
}
