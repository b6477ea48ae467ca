//! The new mount API, as containerd 2.0.0-rc.0 uses it with user namespaces:
//! open_tree(OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_IDMAP) + move_mount;
//! and fsopen/fsconfig/fsmount.

mod common;

use common::*;
use mntrace::{model::Args, EventKind};
use tracer_common::event::*;
use tracer_common::uapi::{
    AT_EMPTY_PATH, AT_FDCWD, FSCONFIG_SET_STRING, MOUNT_ATTR_IDMAP, MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_SIZE_VER0, OPEN_TREE_CLONE,
};

#[test]
fn idmapped_clone_of_a_layer() {
    let s = scratch();
    let layer = p(&[b(s.path()), b"/snapshots/1/fs"]);
    let f = p(&[b(s.path()), b"/snapshots/1/fs/bin"]);
    let clone = p(&[b(s.path()), b"/tmpmounts/ovl-idmapped1/0"]);
    let empty_path = format!("{AT_EMPTY_PATH:#x}");
    let idmap = format!("{MOUNT_ATTR_IDMAP:#x}");
    let run = run_traced(&[
        "unshare-mntns".as_ref(), // 1
        "mkdirs".as_ref(),        // 2
        layer.as_os_str(),
        "mount-tmpfs".as_ref(), // 3 (tmpfs supports id-mapped mounts)
        layer.as_os_str(),
        "write".as_ref(), // 4
        f.as_os_str(),
        "mkdirs".as_ref(), // 5
        clone.as_os_str(),
        "open-tree".as_ref(), // 6: OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
        "cwd".as_ref(),
        layer.as_os_str(),
        "0x80001".as_ref(),
        "userns".as_ref(),        // 7
        "mount-setattr".as_ref(), // 8: AT_EMPTY_PATH, MOUNT_ATTR_IDMAP
        "@6".as_ref(),
        "".as_ref(),
        empty_path.as_ref(),
        idmap.as_ref(),
        "0".as_ref(),
        "0".as_ref(),
        "@7".as_ref(),
        "move-mount".as_ref(), // 9: MOVE_MOUNT_F_EMPTY_PATH
        "@6".as_ref(),
        "".as_ref(),
        "cwd".as_ref(),
        clone.as_os_str(),
        "4".as_ref(),
        "mnt-id".as_ref(), // 10: the clone, now attached
        clone.as_os_str(),
        "mnt-id".as_ref(), // 11: the layer
        layer.as_os_str(),
        "mnt-id".as_ref(), // 12: the namespace's root
        "/".as_ref(),
    ]);
    run.assert_no_drops();
    for i in [6, 7, 8, 9] {
        assert_eq!(
            op(&run.lines, i)["errno"],
            0,
            "op {i}: {}",
            op(&run.lines, i)
        );
    }
    let tree_fd = u64_of(op(&run.lines, 6), "ret") as i64;
    let userns_fd = u64_of(op(&run.lines, 7), "ret");
    let userns_ino = u64_of(op(&run.lines, 7), "userns_ino");
    let clone_mnt = u64_of(op(&run.lines, 10), "mnt_id") as u32;
    let layer_mnt = u64_of(op(&run.lines, 11), "mnt_id") as u32;
    let root_mnt = u64_of(op(&run.lines, 12), "mnt_id") as u32;
    assert_ne!(clone_mnt, layer_mnt);

    let ot = run.one(EventKind::OpenTree);
    let Args::OpenTree {
        dfd,
        pathname,
        flags,
        dir,
        result,
    } = &ot.args
    else {
        panic!()
    };
    assert_eq!(
        (*dfd, &pathname.bytes[..], *flags, ot.ret),
        (
            AT_FDCWD,
            layer.as_encoded_bytes(),
            u64::from(OPEN_TREE_CLONE) | 0x8_0000, // | OPEN_TREE_CLOEXEC
            tree_fd
        )
    );
    // An absolute path: the lookup starts at the caller's root.
    assert_eq!(
        (dir.from(), &dir.path.bytes[..]),
        (mntrace::model::DirFrom::Root, &b"/"[..])
    );
    let result = result.as_ref().expect("returned fd resolved");
    assert_eq!(
        result.mnt_id, clone_mnt,
        "the clone's mount id, known before it is attached"
    );
    assert_ne!(result.flags & DIR_DETACHED, 0, "{:#x}", result.flags);

    let sa = run.one(EventKind::MountSetattr);
    let Args::MountSetattr {
        dfd,
        pathname,
        at_flags,
        size,
        attr,
        dir,
    } = &sa.args
    else {
        panic!()
    };
    assert_eq!(
        (*dfd as i64, &pathname.bytes[..], *at_flags, *size, sa.ret),
        (tree_fd, &b""[..], AT_EMPTY_PATH, MOUNT_ATTR_SIZE_VER0, 0)
    );
    let attr = attr.as_ref().expect("mount_attr read");
    assert_eq!(
        (attr.attr_set, attr.attr_clr, attr.propagation),
        (MOUNT_ATTR_IDMAP, 0, 0)
    );
    assert_eq!((attr.userns_fd, attr.userns_ino), (userns_fd, userns_ino));
    assert_eq!(dir.mnt_id, clone_mnt);

    let mm = run.one(EventKind::MoveMount);
    let Args::MoveMount {
        from_dfd,
        from_path,
        to_dfd,
        to_path,
        flags,
        from,
        to,
    } = &mm.args
    else {
        panic!()
    };
    assert_eq!(
        (
            *from_dfd as i64,
            &from_path.bytes[..],
            *to_dfd,
            &to_path.bytes[..],
            *flags,
            mm.ret
        ),
        (tree_fd, &b""[..], AT_FDCWD, clone.as_encoded_bytes(), 4, 0)
    );
    assert_eq!(from.mnt_id, clone_mnt);
    assert_eq!(
        from.flags & (DIR_DETACHED | DIR_IDMAPPED),
        DIR_DETACHED | DIR_IDMAPPED
    );
    // An absolute target: its lookup starts at the root (the mount table
    // places the target path).
    assert_eq!(
        (to.from(), &to.path.bytes[..], to.mnt_id),
        (mntrace::model::DirFrom::Root, &b"/"[..], root_mnt)
    );
}

#[test]
fn fsopen_fsconfig_fsmount() {
    let s = scratch();
    let target = p(&[b(s.path()), b"/fs"]);
    let set_string = FSCONFIG_SET_STRING.to_string();
    let run = run_traced(&[
        "unshare-mntns".as_ref(), // 1
        "mkdirs".as_ref(),        // 2
        target.as_os_str(),
        "fsopen".as_ref(), // 3: FSOPEN_CLOEXEC
        "tmpfs".as_ref(),
        "1".as_ref(),
        "fsconfig".as_ref(), // 4: FSCONFIG_SET_STRING size=1m
        "@3".as_ref(),
        set_string.as_ref(),
        "size".as_ref(),
        "1m".as_ref(),
        "0".as_ref(),
        "fsconfig".as_ref(), // 5: FSCONFIG_CMD_CREATE
        "@3".as_ref(),
        "6".as_ref(),
        "-".as_ref(),
        "-".as_ref(),
        "0".as_ref(),
        "fsmount".as_ref(), // 6: FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV
        "@3".as_ref(),
        "1".as_ref(),
        "4".as_ref(),
        "move-mount".as_ref(), // 7
        "@6".as_ref(),
        "".as_ref(),
        "cwd".as_ref(),
        target.as_os_str(),
        "4".as_ref(),
        "mnt-id".as_ref(), // 8
        target.as_os_str(),
    ]);
    run.assert_no_drops();
    let fs_fd = u64_of(op(&run.lines, 3), "ret") as i64;
    let mnt_fd = u64_of(op(&run.lines, 6), "ret") as i64;
    let new_mnt = u64_of(op(&run.lines, 8), "mnt_id") as u32;

    let fo = run.one(EventKind::Fsopen);
    let Args::Fsopen { fs_name, flags } = &fo.args else {
        panic!()
    };
    assert_eq!(
        (&fs_name.bytes[..], *flags, fo.ret),
        (&b"tmpfs"[..], 1, fs_fd)
    );

    let fc: Vec<_> = run
        .of(EventKind::Fsconfig)
        .iter()
        .map(|e| match &e.args {
            Args::Fsconfig {
                fd,
                cmd,
                key,
                value,
                aux,
                aux_dir,
            } => (
                *fd as i64,
                *cmd,
                key.value().map(<[u8]>::to_vec),
                value.value().map(<[u8]>::to_vec),
                *aux,
                aux_dir.is_some(),
                e.ret,
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        fc,
        vec![
            (
                fs_fd,
                FSCONFIG_SET_STRING,
                Some(b"size".to_vec()),
                Some(b"1m".to_vec()),
                0,
                false,
                0
            ),
            (fs_fd, 6, None, None, 0, false, 0),
        ]
    );

    let fm = run.one(EventKind::Fsmount);
    let Args::Fsmount {
        fs_fd: f,
        flags,
        attr_flags,
        result,
    } = &fm.args
    else {
        panic!()
    };
    assert_eq!(
        (*f as i64, *flags, *attr_flags, fm.ret),
        (fs_fd, 1, 4, mnt_fd)
    );
    let result = result.as_ref().expect("mount fd resolved");
    assert_eq!(result.mnt_id, new_mnt);
    assert_ne!(result.flags & DIR_DETACHED, 0);

    let mm = run.one(EventKind::MoveMount);
    let Args::MoveMount { from, .. } = &mm.args else {
        panic!()
    };
    assert_eq!((from.mnt_id, mm.ret), (new_mnt, 0));
}

/// The same three calls with what every kernel since 5.12 accepts on tmpfs
/// (id-mapped tmpfs mounts need 6.3): `mount_setattr(MOUNT_ATTR_RDONLY)`,
/// and the clone attached below a directory fd, so `move_mount`'s target
/// is resolved from the fd. Both directories are walked, each in its own
/// program (`walk_move_mount_to`): what 6.1's verifier accepts.
#[test]
fn read_only_clone_attached_below_a_directory_fd() {
    let s = scratch();
    let layer = p(&[b(s.path()), b"/snapshots/2/fs"]);
    let parent = p(&[b(s.path()), b"/tmpmounts"]);
    let dst = p(&[b(s.path()), b"/tmpmounts/ro"]);
    let empty_path = format!("{AT_EMPTY_PATH:#x}");
    let rdonly = format!("{MOUNT_ATTR_RDONLY:#x}");
    let run = run_traced(&[
        "unshare-mntns".as_ref(), // 1
        "mkdirs".as_ref(),        // 2
        layer.as_os_str(),
        "mount-tmpfs".as_ref(), // 3
        layer.as_os_str(),
        "mkdirs".as_ref(), // 4
        dst.as_os_str(),
        "open-tree".as_ref(), // 5: OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
        "cwd".as_ref(),
        layer.as_os_str(),
        "0x80001".as_ref(),
        "mount-setattr".as_ref(), // 6: AT_EMPTY_PATH, MOUNT_ATTR_RDONLY
        "@5".as_ref(),
        "".as_ref(),
        empty_path.as_ref(),
        rdonly.as_ref(),
        "0".as_ref(),
        "0".as_ref(),
        "0".as_ref(),
        "open-dir".as_ref(), // 7
        parent.as_os_str(),
        "move-mount".as_ref(), // 8: MOVE_MOUNT_F_EMPTY_PATH, to "ro" below fd 7
        "@5".as_ref(),
        "".as_ref(),
        "@7".as_ref(),
        "ro".as_ref(),
        "4".as_ref(),
        "mnt-id".as_ref(), // 9: the clone, now attached
        dst.as_os_str(),
        "mnt-id".as_ref(), // 10: the mount the target directory is on
        parent.as_os_str(),
    ]);
    run.assert_no_drops();
    for i in [5, 6, 7, 8] {
        assert_eq!(
            op(&run.lines, i)["errno"],
            0,
            "op {i}: {}",
            op(&run.lines, i)
        );
    }
    let tree_fd = u64_of(op(&run.lines, 5), "ret") as i64;
    let dir_fd = u64_of(op(&run.lines, 7), "ret") as i32;
    let clone_mnt = u64_of(op(&run.lines, 9), "mnt_id") as u32;
    let parent_mnt = u64_of(op(&run.lines, 10), "mnt_id") as u32;
    assert_ne!(clone_mnt, parent_mnt);

    let sa = run.one(EventKind::MountSetattr);
    let Args::MountSetattr {
        dfd,
        pathname,
        at_flags,
        attr,
        dir,
        ..
    } = &sa.args
    else {
        panic!()
    };
    assert_eq!(
        (*dfd as i64, &pathname.bytes[..], *at_flags, sa.ret),
        (tree_fd, &b""[..], AT_EMPTY_PATH, 0)
    );
    let attr = attr.as_ref().expect("mount_attr read");
    assert_eq!(
        (
            attr.attr_set,
            attr.attr_clr,
            attr.propagation,
            attr.userns_ino
        ),
        (MOUNT_ATTR_RDONLY, 0, 0, 0)
    );
    assert_eq!(
        (dir.from(), dir.mnt_id, dir.flags & DIR_DETACHED),
        (mntrace::model::DirFrom::Fd, clone_mnt, DIR_DETACHED)
    );

    let mm = run.one(EventKind::MoveMount);
    let Args::MoveMount {
        from_dfd,
        from_path,
        to_dfd,
        to_path,
        flags,
        from,
        to,
    } = &mm.args
    else {
        panic!()
    };
    assert_eq!(
        (
            *from_dfd as i64,
            &from_path.bytes[..],
            *to_dfd,
            &to_path.bytes[..],
            *flags,
            mm.ret
        ),
        (tree_fd, &b""[..], dir_fd, &b"ro"[..], 4, 0)
    );
    assert_eq!(
        (from.from(), from.mnt_id, from.flags & DIR_DETACHED),
        (mntrace::model::DirFrom::Fd, clone_mnt, DIR_DETACHED)
    );
    // The target's directory, walked by the program reached by tail call.
    assert_eq!(
        (
            to.from(),
            &to.path.bytes[..],
            to.mnt_id,
            to.flags & (DIR_RESOLVED | DIR_READ_ERR)
        ),
        (
            mntrace::model::DirFrom::Fd,
            parent.as_encoded_bytes(),
            parent_mnt,
            DIR_RESOLVED
        )
    );
}
