//! The containerd 2.0.0-rc.0 replica (id-mapped lower-layer clones, a held
//! file, plain unmounts, then a Go-style RemoveAll) the race and guard
//! tests share.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;

use tracer_common::uapi::{AT_EMPTY_PATH, MOUNT_ATTR_IDMAP};

use super::*;

/// Files of the lower layer that the race destroys.
pub const LAYER1: &[&str] = &[
    "bin/busybox",
    "bin/sh",
    "etc/passwd",
    "lib/lib with space.so",
];
/// Every entry of layer 1 (files and directories).
pub const LAYER1_ENTRIES: &[&str] = &[
    "bin",
    "bin/busybox",
    "bin/sh",
    "etc",
    "etc/passwd",
    "lib",
    "lib/lib with space.so",
];

/// A scratch tree laid out like /var/lib/containerd.
pub struct Layout {
    _dir: tempfile::TempDir,
    pub l1: PathBuf,
    pub l2: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub rootfs: PathBuf,
    pub tmp: PathBuf,
}

impl Layout {
    pub fn new() -> Layout {
        let dir = scratch();
        let snap = dir
            .path()
            .join("io.containerd.snapshotter.v1.overlayfs/snapshots");
        let l = Layout {
            l1: snap.join("1/fs"),
            l2: snap.join("2/fs"),
            upper: snap.join("3/fs"),
            work: snap.join("3/work"),
            rootfs: dir.path().join("rootfs"),
            tmp: dir.path().join("tmpmounts/ovl-idmapped3141"),
            _dir: dir,
        };
        make_tree(&l.l1, LAYER1);
        make_tree(&l.l2, &["usr/share/doc/README"]);
        for d in [
            &l.upper,
            &l.work,
            &l.rootfs,
            &l.tmp.join("0"),
            &l.tmp.join("1"),
        ] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        l
    }

    pub fn t(&self, i: u32) -> PathBuf {
        self.tmp.join(i.to_string())
    }

    /// containerd's steps up to the unmounts (ops 1..=13, `wait-stdin` is 0):
    /// id-mapped clones of both layers moved under tmpmounts, overlay on top,
    /// and a process holding a file of clone 0 open.
    pub fn setup_ops(&self) -> Vec<OsString> {
        let lower = format!(
            "lowerdir={}:{},upperdir={},workdir={}",
            self.t(0).display(),
            self.t(1).display(),
            self.upper.display(),
            self.work.display()
        );
        let empty_path = format!("{AT_EMPTY_PATH:#x}");
        let idmap = format!("{MOUNT_ATTR_IDMAP:#x}");
        let mut ops: Vec<OsString> = Vec::new();
        let mut push = |v: &[&std::ffi::OsStr]| ops.extend(v.iter().map(|s| s.to_os_string()));
        push(&["unshare-mntns".as_ref()]); // 1
        push(&[
            "open-tree".as_ref(),
            "cwd".as_ref(),
            self.l1.as_os_str(),
            "0x80001".as_ref(),
        ]); // 2
        push(&["userns".as_ref()]); // 3
        push(&[
            "mount-setattr".as_ref(),
            "@2".as_ref(),
            "".as_ref(),
            empty_path.as_ref(),
            idmap.as_ref(),
            "0".as_ref(),
            "0".as_ref(),
            "@3".as_ref(),
        ]); // 4
        push(&[
            "move-mount".as_ref(),
            "@2".as_ref(),
            "".as_ref(),
            "cwd".as_ref(),
            self.t(0).as_os_str(),
            "4".as_ref(),
        ]); // 5
        push(&["close".as_ref(), "@2".as_ref()]); // 6: an open mount fd would pin the mount
        push(&[
            "open-tree".as_ref(),
            "cwd".as_ref(),
            self.l2.as_os_str(),
            "0x80001".as_ref(),
        ]); // 7
        push(&[
            "mount-setattr".as_ref(),
            "@7".as_ref(),
            "".as_ref(),
            empty_path.as_ref(),
            idmap.as_ref(),
            "0".as_ref(),
            "0".as_ref(),
            "@3".as_ref(),
        ]); // 8
        push(&[
            "move-mount".as_ref(),
            "@7".as_ref(),
            "".as_ref(),
            "cwd".as_ref(),
            self.t(1).as_os_str(),
            "4".as_ref(),
        ]); // 9
        push(&["close".as_ref(), "@7".as_ref()]); // 10
        push(&[
            "mount".as_ref(),
            "overlay".as_ref(),
            self.rootfs.as_os_str(),
            "overlay".as_ref(),
            "0".as_ref(),
            lower.as_ref(),
        ]); // 11
        push(&["mnt-id".as_ref(), self.t(0).as_os_str()]); // 12
        push(&["hold".as_ref(), self.t(0).join("bin/busybox").as_os_str()]); // 13
        ops
    }

    /// The bug: plain unmounts, then RemoveAll of the temp dir (ops 14..=17).
    pub fn buggy_ops(&self, linger_ms: u32) -> Vec<OsString> {
        let mut ops = self.setup_ops();
        for a in [
            "umount".into(),
            self.t(0).into_os_string(),
            "0".into(), // 12: EBUSY (held)
            "umount".into(),
            self.t(1).into_os_string(),
            "0".into(), // 13
            "remove-all".into(),
            self.tmp.clone().into_os_string(), // 14
            "sleep-ms".into(),
            linger_ms.to_string().into(), // 15: holder stays alive
        ] {
            ops.push(a);
        }
        ops
    }

    /// The fix: MNT_DETACH, then remove only empty directories.
    pub fn fixed_ops(&self) -> Vec<OsString> {
        let mut ops = self.setup_ops();
        for a in [
            "umount".into(),
            self.t(0).into_os_string(),
            "2".into(), // 12
            "umount".into(),
            self.t(1).into_os_string(),
            "2".into(), // 13
            "rmdir".into(),
            self.t(0).into_os_string(), // 14
            "rmdir".into(),
            self.t(1).into_os_string(), // 15
            "rmdir".into(),
            self.tmp.clone().into_os_string(), // 16
        ] {
            ops.push(a);
        }
        ops
    }

    pub fn layer1_backing(&self) -> BTreeSet<PathBuf> {
        LAYER1_ENTRIES.iter().map(|e| self.l1.join(e)).collect()
    }

    pub fn layer1_left(&self) -> Vec<String> {
        LAYER1
            .iter()
            .filter(|f| self.l1.join(f).exists())
            .map(|f| f.to_string())
            .collect()
    }
}

pub fn check_setup(lines: &[serde_json::Value]) {
    for i in 1..=11 {
        assert_eq!(
            op(lines, i)["errno"],
            0,
            "setup op {i} failed: {}",
            op(lines, i)
        );
    }
}
