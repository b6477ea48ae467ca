//! mount(2) and umount2(2), for real, in the fixture's private mount namespace.

mod common;

use common::*;
use mntrace::{model::Args, EventKind};
use tracer_common::uapi::{EBUSY, EINVAL, MNT_DETACH, MS_BIND};

/// source (or `<null>`), target, fstype, flags, data.
type MountView<'a> = (&'a [u8], &'a [u8], Option<&'a [u8]>, u64, Option<&'a [u8]>);

fn mount_args(e: &mntrace::model::Event) -> MountView<'_> {
    match &e.args {
        Args::Mount {
            source,
            target,
            fstype,
            flags,
            data,
            ..
        } => (
            source.value().unwrap_or(b"<null>"),
            &target.bytes,
            fstype.value(),
            *flags,
            data.value(),
        ),
        other => panic!("not a mount: {other:?}"),
    }
}

#[test]
fn tmpfs_mount_and_its_errno() {
    let s = scratch();
    let m = p(&[b(s.path()), b"/m"]);
    let missing = p(&[b(s.path()), b"/missing"]);
    let run = run_traced(&[
        "unshare-mntns".as_ref(),
        "mkdirs".as_ref(),
        m.as_os_str(),
        "mount-tmpfs".as_ref(),
        m.as_os_str(),
        "mount-tmpfs".as_ref(),
        missing.as_os_str(),
    ]);
    run.assert_no_drops();
    let ns = u64_of(op(&run.lines, 1), "mnt_ns") as u32;
    let mounts = run.of(EventKind::Mount);
    assert_eq!(mounts.len(), 3, "{mounts:#?}");
    // unshare-mntns makes everything private first: mount(NULL, "/", NULL, MS_REC|MS_PRIVATE).
    assert_eq!(
        mount_args(mounts[0]),
        (&b"<null>"[..], &b"/"[..], None, 16384 | (1 << 18), None)
    );
    assert_eq!(mounts[0].ret, 0);
    let ok = mounts[1];
    assert_eq!(
        mount_args(ok),
        (
            &b"tmpfs"[..],
            m.as_encoded_bytes(),
            Some(&b"tmpfs"[..]),
            0,
            Some(&b"size=16m"[..])
        )
    );
    assert_eq!(ok.ret, 0);
    assert_eq!((ok.pid, ok.tid, ok.uid, ok.gid), (run.pid, run.pid, 0, 0));
    assert_eq!(&ok.comm[..], b"mntrace-fixture");
    assert_eq!(
        ok.mnt_ns, ns,
        "event carries the caller's (new) mount namespace"
    );
    assert!(ok.ts_ns > 0 && ok.duration_ns > 0);
    let failed = mounts[2];
    assert_eq!(failed.ret, -2, "ENOENT for a missing mountpoint");
    assert_eq!(failed.errno(), Some(2));
    assert_eq!(mount_args(failed).1, missing.as_encoded_bytes());
}

#[test]
fn bind_mount() {
    let s = scratch();
    let src = p(&[b(s.path()), b"/src"]);
    let dst = p(&[b(s.path()), b"/dst"]);
    let run = run_traced(&[
        "unshare-mntns".as_ref(),
        "mkdirs".as_ref(),
        src.as_os_str(),
        "mkdirs".as_ref(),
        dst.as_os_str(),
        "bind".as_ref(),
        src.as_os_str(),
        dst.as_os_str(),
    ]);
    let mounts = run.of(EventKind::Mount);
    assert_eq!(mounts.len(), 2);
    assert_eq!(
        mount_args(mounts[1]),
        (
            src.as_encoded_bytes(),
            dst.as_encoded_bytes(),
            None,
            MS_BIND,
            None
        )
    );
    assert_eq!(mounts[1].ret, 0);
}

#[test]
fn umount_success_ebusy_and_detach() {
    let s = scratch();
    let m = p(&[b(s.path()), b"/m"]);
    let f = p(&[b(s.path()), b"/m/f"]);
    let detach = MNT_DETACH.to_string();
    let run = run_traced(&[
        "unshare-mntns".as_ref(), // 1
        "mkdirs".as_ref(),        // 2
        m.as_os_str(),
        "mount-tmpfs".as_ref(), // 3
        m.as_os_str(),
        "write".as_ref(), // 4
        f.as_os_str(),
        "open".as_ref(), // 5: hold a file open inside the mount
        f.as_os_str(),
        "umount".as_ref(), // 6: EBUSY
        m.as_os_str(),
        "0".as_ref(),
        "umount".as_ref(), // 7: MNT_DETACH succeeds while busy
        m.as_os_str(),
        detach.as_ref(),
        "mount-tmpfs".as_ref(), // 8
        m.as_os_str(),
        "umount".as_ref(), // 9: plain success
        m.as_os_str(),
        "0".as_ref(),
        "umount".as_ref(), // 10: nothing mounted any more: EINVAL
        m.as_os_str(),
        "0".as_ref(),
    ]);
    run.assert_no_drops();
    assert_eq!(op(&run.lines, 6)["errno"], EBUSY);
    let got: Vec<(Vec<u8>, u64, i64)> = run
        .of(EventKind::Umount)
        .iter()
        .map(|e| match &e.args {
            Args::Umount { target, flags, .. } => (target.bytes.to_vec(), *flags, e.ret),
            other => panic!("{other:?}"),
        })
        .collect();
    let t = m.as_encoded_bytes().to_vec();
    assert_eq!(
        got,
        vec![
            (t.clone(), 0, -i64::from(EBUSY)),
            (t.clone(), u64::from(MNT_DETACH), 0),
            (t.clone(), 0, 0),
            (t, 0, -i64::from(EINVAL))
        ]
    );
}
