//! The probe sets (`--probes`): which one runs is what the kernel accepts,
//! said in one line; with the kernel set, deletions carry the inode the
//! kernel removed and unmounts the mount their target resolved to.
//!
//! The selection tests run on every kernel. The kernel set's own tests need
//! a kernel that accepts fentry or kprobes: where it refuses both (this
//! project's development machines, see shared/PLATFORM.md) they say so on
//! stderr and return; `cargo xtask vm-test` runs them on Debian's stock
//! kernels under qemu, where they run for real.

mod common;

use common::*;
use mntrace::{
    config::{ProbeSet, TraceOptions},
    loader::Tracer,
    model::{Args, Victim},
    EventKind,
};
use tracer_common::uapi::{AT_REMOVEDIR, EBUSY};

fn start(probes: ProbeSet) -> Result<Tracer, mntrace::error::StartError> {
    require_root();
    Tracer::start(&TraceOptions {
        probes,
        kinds: vec![EventKind::Umount],
        ..Default::default()
    })
}

/// Every deletion captured, with the kernel set (whatever `MNTRACE_PROBES`
/// says: `vm-test` runs this file under both).
fn kernel_set_all_deletes() -> TraceOptions {
    TraceOptions {
        probes: ProbeSet::Kernel,
        ..all_deletes()
    }
}

/// Whether this kernel accepts the kernel probe set; says why not.
fn kernel_set_runs(test: &str) -> bool {
    match start(ProbeSet::Kernel) {
        Ok(_) => true,
        Err(e) => {
            eprintln!(
                "{test}: not run on this kernel, which refuses the kernel probe set ({e}); \
                 `cargo xtask vm-test` runs it on kernels that accept it"
            );
            false
        }
    }
}

#[test]
fn auto_runs_the_kernel_set_exactly_where_the_kernel_accepts_it() {
    let syscall = start(ProbeSet::Syscall).expect("the syscall set starts everywhere");
    assert_eq!(syscall.probes.set, ProbeSet::Syscall);
    assert_eq!(syscall.probes.variant, None);
    assert_eq!(
        syscall.probes.line(),
        "probes: syscall (syscall tracepoints): asked for (--probes syscall)"
    );
    drop(syscall);

    let auto = start(ProbeSet::Auto).expect("auto starts everywhere");
    let kernel = start(ProbeSet::Kernel);
    match (&auto.probes.variant, &kernel) {
        (Some(v), Ok(k)) => {
            assert_eq!(auto.probes.set, ProbeSet::Kernel);
            assert_eq!(k.probes.variant, Some(*v), "both pick the same variant");
            assert!(
                auto.probes.line().starts_with(&format!(
                    "probes: kernel ({} and syscall tracepoints): --probes auto, the kernel \
                     accepts them",
                    v.name()
                )),
                "{}",
                auto.probes.line()
            );
        }
        (None, Err(e)) => {
            assert_eq!(auto.probes.set, ProbeSet::Syscall);
            // The same refusals, both variants named, in both messages.
            let line = auto.probes.line();
            let refusals = line
                .split_once("the kernel refuses kernel-function hooks (")
                .and_then(|(_, r)| r.strip_suffix(')'))
                .unwrap_or_else(|| panic!("auto does not say why: {line}"));
            assert!(refusals.contains("fentry/fexit on vfs_unlink: "), "{line}");
            assert!(refusals.contains("kprobes on vfs_unlink: "), "{line}");
            let mntrace::error::StartError::Refused { what, detail } = e else {
                panic!("--probes kernel fails otherwise: {e}")
            };
            assert_eq!(what, "the kernel probe set (--probes kernel)");
            assert!(detail.starts_with(refusals), "{detail} vs {refusals}");
            assert!(detail.contains("Use --probes syscall"), "{detail}");
        }
        (auto_variant, kernel) => panic!(
            "auto chose {auto_variant:?} but --probes kernel gave {:?}",
            kernel
                .as_ref()
                .map(|k| k.probes.clone())
                .map_err(|e| e.to_string())
        ),
    }
}

#[test]
fn the_binary_says_which_set_runs_and_exits_7_when_kernel_is_refused() {
    require_root();
    let run = |probes: &str| {
        std::process::Command::new(MNTRACE)
            .args([
                "trace",
                "-k",
                "umount",
                "--duration",
                "1",
                "--probes",
                probes,
            ])
            .env_remove(mntrace::config::PROBES_ENV)
            .output()
            .expect("run mntrace")
    };
    let auto = run("auto");
    let stderr = String::from_utf8_lossy(&auto.stderr);
    assert_eq!(auto.status.code(), Some(0), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("mntrace: probes: "))
        .unwrap_or_else(|| panic!("no probes line: {stderr}"));
    let kernel = run("kernel");
    let kstderr = String::from_utf8_lossy(&kernel.stderr);
    if line.starts_with("mntrace: probes: kernel (") {
        assert_eq!(kernel.status.code(), Some(0), "{kstderr}");
        assert!(kstderr.contains("mntrace: probes: kernel ("), "{kstderr}");
    } else {
        assert!(line.starts_with("mntrace: probes: syscall ("), "{line}");
        assert_eq!(kernel.status.code(), Some(7), "{kstderr}");
        assert!(
            kstderr.contains("the kernel refused the kernel probe set (--probes kernel)"),
            "{kstderr}"
        );
    }
    // The environment sets the default (and a bad value is an error).
    let bad = std::process::Command::new(MNTRACE)
        .args(["trace", "--duration", "1"])
        .env(mntrace::config::PROBES_ENV, "kprobes")
        .output()
        .expect("run mntrace");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid value 'kprobes'"));
}

fn victim(e: &mntrace::model::Event) -> Option<Victim> {
    match &e.args {
        Args::Delete { victim, .. } => *victim,
        other => panic!("not a deletion: {other:?}"),
    }
}

fn deleted_name(e: &mntrace::model::Event) -> &[u8] {
    match &e.args {
        Args::Delete { pathname, .. } => &pathname.bytes,
        other => panic!("not a deletion: {other:?}"),
    }
}

/// What the fixture's `mnt-id` said of a path: its inode and device.
fn ino_dev(line: &serde_json::Value) -> (u64, u32) {
    (u64_of(line, "ino"), u64_of(line, "dev") as u32)
}

#[test]
fn deletions_carry_the_inode_they_removed() {
    if !kernel_set_runs("deletions_carry_the_inode_they_removed") {
        return;
    }
    let s = scratch();
    let d = p(&[b(s.path()), b"/d"]);
    let f = p(&[b(s.path()), b"/d/f"]);
    let g = p(&[b(s.path()), b"/d/g"]);
    let sub = p(&[b(s.path()), b"/d/sub"]);
    let u = p(&[b(s.path()), b"/d/u"]);
    let w = p(&[b(s.path()), b"/d/w"]);
    let x = p(&[b(s.path()), b"/d/x"]);
    let full = p(&[b(s.path()), b"/d/full/x"]);
    let removedir = format!("{AT_REMOVEDIR:#x}");
    let run = run_traced_with(
        &[
            "unshare-mntns".as_ref(), // 1
            "mkdirs".as_ref(),        // 2
            d.as_os_str(),
            "mount-tmpfs".as_ref(), // 3
            d.as_os_str(),
            "write".as_ref(), // 4: 2 bytes
            f.as_os_str(),
            "link".as_ref(), // 5: f and g, one inode
            f.as_os_str(),
            g.as_os_str(),
            "mkdirs".as_ref(), // 6
            sub.as_os_str(),
            "write".as_ref(), // 7
            u.as_os_str(),
            "write".as_ref(), // 8
            w.as_os_str(),
            "write".as_ref(), // 9
            x.as_os_str(),
            "mnt-id".as_ref(), // 10
            f.as_os_str(),
            "mnt-id".as_ref(), // 11
            sub.as_os_str(),
            "mnt-id".as_ref(), // 12
            u.as_os_str(),
            "mnt-id".as_ref(), // 13
            w.as_os_str(),
            "mnt-id".as_ref(), // 14
            x.as_os_str(),
            "open-dir".as_ref(), // 15
            d.as_os_str(),
            "unlinkat".as_ref(), // 16: a link of two
            "@15".as_ref(),
            "f".as_ref(),
            "0".as_ref(),
            "unlinkat".as_ref(), // 17: the last link
            "@15".as_ref(),
            "g".as_ref(),
            "0".as_ref(),
            "unlinkat".as_ref(), // 18: a directory
            "@15".as_ref(),
            "sub".as_ref(),
            removedir.as_ref(),
            "unlinkat".as_ref(), // 19: gone already: nothing removed
            "@15".as_ref(),
            "f".as_ref(),
            "0".as_ref(),
            "uring-unlinkat".as_ref(), // 20: io_uring, inline
            "@15".as_ref(),
            "u".as_ref(),
            "0".as_ref(),
            "uring-unlinkat-async".as_ref(), // 21: io_uring, in an io-wq worker
            "@15".as_ref(),
            "w".as_ref(),
            "0".as_ref(),
            "unlink-raw".as_ref(), // 22: the legacy unlink(2)
            x.as_os_str(),
            "mkdirs".as_ref(), // 23
            full.as_os_str(),
            "unlinkat".as_ref(), // 24: ENOTEMPTY, found in vfs_rmdir
            "@15".as_ref(),
            "full".as_ref(),
            removedir.as_ref(),
        ],
        kernel_set_all_deletes(),
    );
    run.assert_no_drops();
    for i in 2..=23 {
        assert!(
            op(&run.lines, i)["ret"].as_i64().unwrap_or(-1) >= 0 || i == 19,
            "op {i} failed: {}",
            op(&run.lines, i)
        );
    }
    let (f_ino, dev) = ino_dev(op(&run.lines, 10));
    let (sub_ino, _) = ino_dev(op(&run.lines, 11));
    let (u_ino, _) = ino_dev(op(&run.lines, 12));
    let (w_ino, _) = ino_dev(op(&run.lines, 13));
    let (x_ino, _) = ino_dev(op(&run.lines, 14));
    let file = |ino, nlink| Victim {
        ino,
        size: 2,
        dev,
        nlink,
        mode: 0o100644,
        rmdir: false,
    };

    let at = run.of(EventKind::Unlinkat);
    let got: Vec<(&[u8], Option<Victim>)> =
        at.iter().map(|e| (deleted_name(e), victim(e))).collect();
    let sub_victim = got[2].1.expect("the directory's inode");
    assert_eq!(
        got,
        [
            (&b"f"[..], Some(file(f_ino, 2))),
            (&b"g"[..], Some(file(f_ino, 1))),
            (
                &b"sub"[..],
                Some(Victim {
                    ino: sub_ino,
                    size: sub_victim.size,
                    dev,
                    nlink: 2,
                    mode: 0o040755,
                    rmdir: true,
                })
            ),
            (&b"f"[..], None),
            (&b"full"[..], None),
        ]
    );
    assert_eq!(at[3].ret, -2, "ENOENT: nothing was removed");
    assert_eq!(at[4].ret, -39, "ENOTEMPTY: nothing was removed");
    let (two, one) = (got[0].1.unwrap(), got[1].1.unwrap());
    assert!(!two.last_link() && one.last_link() && sub_victim.last_link());
    assert_eq!(one.file_type(), "file");
    assert_eq!(sub_victim.file_type(), "dir");

    let uring = run.of(EventKind::UringUnlinkat);
    let got: Vec<(&[u8], Option<Victim>)> =
        uring.iter().map(|e| (deleted_name(e), victim(e))).collect();
    assert_eq!(
        got,
        [
            (&b"u"[..], Some(file(u_ino, 1))),
            (&b"w"[..], Some(file(w_ino, 1))),
        ]
    );
    let legacy = run.one(EventKind::Unlink);
    assert_eq!(victim(legacy), Some(file(x_ino, 1)));
}

#[test]
fn through_overlayfs_the_inode_is_the_one_the_caller_deleted() {
    if !kernel_set_runs("through_overlayfs_the_inode_is_the_one_the_caller_deleted") {
        return;
    }
    // A file created through the overlay lives in its upper layer; deleting
    // it through the overlay makes overlayfs call vfs_unlink again on the
    // upper layer, from inside the first call. The record keeps the first:
    // the overlay's inode, on the overlay's device.
    let s = scratch();
    let base = p(&[b(s.path()), b"/o"]);
    let lower = p(&[b(s.path()), b"/o/lower"]);
    let upper = p(&[b(s.path()), b"/o/upper"]);
    let work = p(&[b(s.path()), b"/o/work"]);
    let merged = p(&[b(s.path()), b"/o/merged"]);
    let file = p(&[b(s.path()), b"/o/merged/f"]);
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.to_string_lossy(),
        upper.to_string_lossy(),
        work.to_string_lossy()
    );
    let run = run_traced_with(
        &[
            "unshare-mntns".as_ref(), // 1
            "mkdirs".as_ref(),        // 2
            base.as_os_str(),
            "mount-tmpfs".as_ref(), // 3
            base.as_os_str(),
            "mkdirs".as_ref(), // 4
            lower.as_os_str(),
            "mkdirs".as_ref(), // 5
            upper.as_os_str(),
            "mkdirs".as_ref(), // 6
            work.as_os_str(),
            "mkdirs".as_ref(), // 7
            merged.as_os_str(),
            "mount".as_ref(), // 8
            "overlay".as_ref(),
            merged.as_os_str(),
            "overlay".as_ref(),
            "0".as_ref(),
            data.as_ref(),
            "write".as_ref(), // 9
            file.as_os_str(),
            "mnt-id".as_ref(), // 10: the file as the overlay shows it
            file.as_os_str(),
            "mnt-id".as_ref(), // 11: the upper layer's filesystem
            upper.as_os_str(),
            "unlink".as_ref(), // 12
            file.as_os_str(),
        ],
        kernel_set_all_deletes(),
    );
    run.assert_no_drops();
    assert_eq!(
        op(&run.lines, 12)["ret"].as_i64(),
        Some(0),
        "{:?}",
        run.lines
    );
    let (ino, dev) = ino_dev(op(&run.lines, 10));
    let (_, upper_dev) = ino_dev(op(&run.lines, 11));
    assert_ne!(dev, upper_dev, "the overlay has a device of its own");
    let e = run.one(EventKind::Unlinkat);
    let v = victim(e).expect("the inode removed");
    assert_eq!((v.ino, v.dev, v.nlink, v.size), (ino, dev, 1, 2));
}

fn target_mount(e: &mntrace::model::Event) -> Option<mntrace::model::Dir> {
    match &e.args {
        Args::Umount { target_mount, .. } => target_mount.clone(),
        other => panic!("not an unmount: {other:?}"),
    }
}

#[test]
fn an_unmount_names_the_mount_the_kernel_resolved_its_target_to() {
    if !kernel_set_runs("an_unmount_names_the_mount_the_kernel_resolved_its_target_to") {
        return;
    }
    let s = scratch();
    let m = p(&[b(s.path()), b"/m"]);
    let plain = p(&[b(s.path()), b"/m/plain"]);
    let run = run_traced_with(
        &[
            "unshare-mntns".as_ref(), // 1
            "mkdirs".as_ref(),        // 2
            m.as_os_str(),
            "mount-tmpfs".as_ref(), // 3
            m.as_os_str(),
            "mkdirs".as_ref(), // 4
            plain.as_os_str(),
            "mnt-id".as_ref(), // 5
            m.as_os_str(),
            "chdir".as_ref(), // 6: the cwd holds the mount busy
            plain.as_os_str(),
            "umount".as_ref(), // 7: EBUSY, by a relative path
            "..".as_ref(),
            "0".as_ref(),
            "umount".as_ref(), // 8: not a mountpoint: EINVAL, no mount
            plain.as_os_str(),
            "0".as_ref(),
            "chdir".as_ref(), // 9
            "/".as_ref(),
            "umount".as_ref(), // 10: done
            m.as_os_str(),
            "0".as_ref(),
        ],
        TraceOptions {
            probes: ProbeSet::Kernel,
            kinds: vec![EventKind::Umount],
            ..Default::default()
        },
    );
    run.assert_no_drops();
    let st = op(&run.lines, 5);
    let ns = u64_of(op(&run.lines, 1), "mnt_ns") as u32;
    let evs = run.of(EventKind::Umount);
    let rets: Vec<i64> = evs.iter().map(|e| e.ret).collect();
    assert_eq!(rets, [-i64::from(EBUSY), -22, 0]);
    for i in [0, 2] {
        let t = target_mount(evs[i]).expect("the kernel resolved the target");
        assert_eq!(t.mnt_id as u64, u64_of(st, "mnt_id"), "mount id");
        if let Some(u) = st["mnt_id_unique"].as_u64() {
            assert_eq!(t.mnt_id_unique, u, "unique mount id");
        }
        assert_eq!(
            (t.ino, t.dev as u64),
            (u64_of(st, "ino"), u64_of(st, "dev"))
        );
        assert_eq!(t.mnt_ns, ns);
    }
    assert_eq!(target_mount(evs[1]), None, "EINVAL: not a mount's root");
}
