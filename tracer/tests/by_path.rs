//! Deletions that reach the busy mount by path, not through a directory fd
//! on it: `unlink("/…/mnt/f")` by another process (`xargs rm`), a relative
//! multi-component path (`rm -f mnt/f`), the top directory of `rm -rf
//! mnt/d`, and the process that had the EBUSY itself. The lookup of such a
//! path starts on the root or the cwd, another mount; the kernel captures
//! path-carrying deletions while an EBUSY is recent, and the correlator
//! places them by their parent directory.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use mntrace::config::{DeleteMode, TraceOptions};
use mntrace::correlate::Incident;

/// A scratch node: `src` (files `f0..`, `g0..`, a directory `r0` with
/// files) bound onto `mnt`, a file of which is held open.
struct Busy {
    dir: tempfile::TempDir,
}

const F: usize = 300;
const G: usize = 20;
const R: usize = 30;

impl Busy {
    fn new() -> Busy {
        let b = Busy { dir: scratch() };
        let src = b.src();
        std::fs::create_dir_all(src.join("r0/sub")).expect("mkdir");
        std::fs::create_dir_all(b.mnt()).expect("mkdir");
        for i in 0..F {
            std::fs::write(src.join(format!("f{i}")), b"x").expect("write");
        }
        for i in 0..G {
            std::fs::write(src.join(format!("g{i}")), b"x").expect("write");
        }
        for i in 0..R {
            std::fs::write(src.join(format!("r0/sub/x{i}")), b"x").expect("write");
        }
        std::fs::write(src.join("held"), b"x").expect("write");
        b
    }
    fn src(&self) -> PathBuf {
        self.dir.path().join("src")
    }
    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// Bind, hold, fail the unmount (umount(8): another process than the
    /// deleters), then `delete` (shell); prints `done` and stays in the
    /// namespace until released.
    fn script(&self, delete: &str) -> String {
        let (s, m) = (self.src(), self.mnt());
        format!(
            "set -e; cd '{d}'; mount --bind '{s}' '{m}'; \
             sh -c 'exec 3<\"$0\"; exec sleep 60' '{m}/held' & H=$!; \
             until [ \"$(readlink /proc/$H/fd/3)\" = '{m}/held' ]; do sleep 0.01; done; \
             read go; ! umount '{m}' 2>/dev/null; {delete}; echo done; read end; kill $H",
            d = self.dir.path().display(),
            s = s.display(),
            m = m.display(),
        )
    }

    fn mine(&self, incidents: Vec<Incident>) -> Vec<Incident> {
        incidents
            .into_iter()
            .filter(|i| i.mount.mountpoint.as_ref() == b(&self.mnt()))
            .collect()
    }
}

/// Run `script` in a private mount namespace under the live pipeline; the
/// incidents, correlated while the holder is alive.
fn run(live: &mut Live, script: &str) -> Vec<Incident> {
    let mut child = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn unshare");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("release");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read");
    assert_eq!(line.trim(), "done", "the script failed");
    let incidents = live.finish();
    stdin.write_all(b"end\n").expect("end");
    drop(stdin);
    assert!(child.wait().expect("wait").success());
    incidents
}

fn paths(inc: &Incident) -> BTreeSet<PathBuf> {
    inc.deletions.iter().map(|d| to_path_buf(&d.path)).collect()
}

fn backing(inc: &Incident) -> BTreeSet<PathBuf> {
    inc.deletions
        .iter()
        .map(|d| to_path_buf(d.backing_path.as_deref().expect("backing path")))
        .collect()
}

fn names(dir: &Path, prefix: &str, n: usize) -> BTreeSet<PathBuf> {
    (0..n).map(|i| dir.join(format!("{prefix}{i}"))).collect()
}

fn check(node: &Busy, inc: &Incident, seen: &BTreeSet<PathBuf>) {
    assert_eq!(&paths(inc), seen, "paths as the deleters saw them");
    let lived: BTreeSet<PathBuf> = seen
        .iter()
        .map(|p| {
            node.src()
                .join(p.strip_prefix(node.mnt()).expect("under mnt"))
        })
        .collect();
    assert_eq!(backing(inc), lived, "where the entries really lived");
    assert_eq!(inc.count, seen.len() as u64);
    assert_eq!(inc.mount.backing_root.as_deref(), Some(b(&node.src())));
    assert_eq!(&inc.unmount().expect("busy").target_abs[..], b(&node.mnt()));
    for p in &lived {
        assert!(!p.exists(), "{} really deleted", p.display());
    }
}

#[test]
fn xargs_rm_of_absolute_paths_in_other_processes_is_the_incident() {
    for mode in [DeleteMode::Race, DeleteMode::All] {
        let node = Busy::new();
        let mut live = Live::start(TraceOptions {
            deletes: mode,
            ..Default::default()
        });
        let delete = format!(
            "ls '{s}' | grep '^f' | sed 's|^|{m}/|' | xargs rm -f",
            s = node.src().display(),
            m = node.mnt().display()
        );
        let mine = node.mine(run(&mut live, &node.script(&delete)));
        assert_eq!(mine.len(), 1, "{mode:?}: {mine:#?}");
        check(&node, &mine[0], &names(&node.mnt(), "f", F));
        assert!(
            mine[0].deleters.iter().all(|p| &p.comm[..] == b"rm"),
            "{:?}",
            mine[0].deleters
        );
        assert!(node.src().join("g0").exists(), "only the f files");
    }
}

#[test]
fn relative_paths_and_rm_rf_of_a_directory_by_path_are_the_incident() {
    let node = Busy::new();
    let mut live = Live::start(Default::default());
    // From the scratch dir: `rm -f mnt/g*` (relative, two components) and
    // `rm -rf mnt/r0` (its contents through fds on the mount, then the
    // directory itself by its relative path).
    let script = node.script("rm -f mnt/g* && rm -rf mnt/r0");
    let mine = node.mine(run(&mut live, &script));
    assert_eq!(mine.len(), 1, "{mine:#?}");
    let mut seen = names(&node.mnt(), "g", G);
    let r0 = node.mnt().join("r0");
    seen.extend(names(&r0.join("sub"), "x", R));
    seen.insert(r0.join("sub"));
    seen.insert(r0.clone());
    check(&node, &mine[0], &seen);
    let top = mine[0]
        .deletions
        .iter()
        .find(|d| d.path.as_ref() == b(&r0))
        .expect("rm -rf's top directory");
    assert!(top.is_dir);
    assert_eq!(&top.rel_path[..], b"/r0");
}

/// Under `dir`: `src` holding files `a`, `b` and `held` (to be bound),
/// and an empty `mnt` (to bind it on).
fn source_and_mountpoint(dir: &Path) -> (PathBuf, PathBuf) {
    let (src, mnt) = (dir.join("src"), dir.join("mnt"));
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    for f in ["a", "b", "held"] {
        std::fs::write(src.join(f), b"x").expect("write");
    }
    (src, mnt)
}

#[test]
fn the_process_that_had_the_ebusy_deleting_by_absolute_path_is_in_the_incident() {
    let s = scratch();
    let (src, mnt) = source_and_mountpoint(s.path());
    let ops: Vec<std::ffi::OsString> = vec![
        "unshare-mntns".into(),
        "bind".into(),
        src.clone().into(),
        mnt.clone().into(),
        "hold".into(),
        mnt.join("held").into(),
        "umount".into(),
        mnt.clone().into(),
        "0".into(), // 4: EBUSY
        "unlink".into(),
        mnt.join("a").into(), // 5: unlinkat(AT_FDCWD, "/…/mnt/a")
        "unlink-raw".into(),
        mnt.join("b").into(), // 6: unlink("/…/mnt/b")
    ];
    let mut fx = Fixture::spawn(&ops);
    let pid = fx.pid;
    let mut live = Live::of_pid(pid);
    fx.release();
    let lines = fx.wait();
    assert_eq!(op(&lines, 4)["errno"], 16);
    assert_eq!(op(&lines, 5)["errno"], 0);
    assert_eq!(op(&lines, 6)["errno"], 0);
    let incidents = live.finish();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let inc = &incidents[0];
    let got: Vec<(PathBuf, PathBuf, mntrace::EventKind)> = inc
        .deletions
        .iter()
        .map(|d| {
            (
                to_path_buf(&d.path),
                to_path_buf(d.backing_path.as_deref().expect("backing")),
                d.syscall,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (mnt.join("a"), src.join("a"), mntrace::EventKind::Unlinkat),
            (mnt.join("b"), src.join("b"), mntrace::EventKind::Unlink),
        ]
    );
    assert_eq!(inc.deleters[0].pid, pid);
}

#[test]
fn another_process_deleting_by_directory_fd_on_the_busy_mount_is_the_incident() {
    // A tmpfs (neither id-mapped nor a bind of a subdirectory: nothing about
    // the mount itself makes its deletions interesting), held busy. Right
    // after the EBUSY, `rm -rf d1` from inside it by another process
    // deletes through fds on it: captured because an EBUSY happened on the
    // node a moment ago (before userspace can have found the busy mount).
    // Later, once userspace has seen the EBUSY and told the kernel which
    // mount is busy, `rm -rf d2` is captured for that reason.
    require_root();
    let s = scratch();
    let mnt = s.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let m = mnt.display();
    let script = format!(
        "set -e; mount -t tmpfs none '{m}'; \
         for d in d1 d2; do mkdir -p '{m}/'$d/e; for i in 1 2 3; do echo x > '{m}/'$d/e/f$i; done; done; \
         echo x > '{m}/held'; \
         sh -c 'exec 3<\"$0\"; exec sleep 60' '{m}/held' & H=$!; \
         until [ \"$(readlink /proc/$H/fd/3)\" = '{m}/held' ]; do sleep 0.01; done; \
         read go; ! umount '{m}' 2>/dev/null; (cd '{m}' && rm -rf d1); echo busy; read go; \
         (cd '{m}' && rm -rf d2); echo done; read end; kill $H"
    );
    let mut live = Live::start(Default::default());
    let mut child = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn unshare");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdin.write_all(b"go\n").expect("release");
    out.read_line(&mut line).expect("read");
    assert_eq!(line.trim(), "busy");
    // Userspace processes the EBUSY and arms the kernel (what the live
    // loop does after every chunk of events); then the grace period ends.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while live.pipeline.stats.ebusy_unmounts == 0 {
        live.pump();
        assert!(std::time::Instant::now() < deadline, "no EBUSY seen");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(mntrace::config::BUSY_GRACE * 2);
    stdin.write_all(b"go\n").expect("delete");
    line.clear();
    out.read_line(&mut line).expect("read");
    assert_eq!(line.trim(), "done");
    let mine: Vec<Incident> = live
        .finish()
        .into_iter()
        .filter(|i| i.mount.mountpoint.as_ref() == b(&mnt))
        .collect();
    stdin.write_all(b"end\n").expect("end");
    drop(stdin);
    assert!(child.wait().expect("wait").success());
    assert_eq!(mine.len(), 1, "{mine:#?}");
    let want: BTreeSet<PathBuf> = ["d1", "d1/e", "d1/e/f1", "d1/e/f2", "d1/e/f3"]
        .iter()
        .chain(&["d2", "d2/e", "d2/e/f1", "d2/e/f2", "d2/e/f3"])
        .map(|e| mnt.join(e))
        .collect();
    assert_eq!(paths(&mine[0]), want);
    assert!(mine[0].deleters.iter().all(|p| &p.comm[..] == b"rm"));
    // Why each was captured.
    let reason = |name: &str| {
        live.out
            .events
            .iter()
            .filter(|e| e.ret == 0)
            .find_map(|e| match &e.args {
                mntrace::model::Args::Delete {
                    pathname,
                    capture,
                    dir,
                    ..
                } if pathname.bytes.as_ref() == name.as_bytes()
                    && dir.path.bytes.starts_with(b(&mnt)) =>
                {
                    Some(*capture)
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no deletion of {name}"))
    };
    use tracer_common::event::{CAP_AFTER_ANY_EBUSY, CAP_BUSY_MOUNT};
    assert_ne!(
        reason("d1") & CAP_AFTER_ANY_EBUSY,
        0,
        "d1: right after the EBUSY"
    );
    // (d2 may carry after_any_ebusy too: the tracer sees the whole machine,
    // and other tests' unmounts fail with EBUSY at any moment.)
    assert_ne!(
        reason("d2") & CAP_BUSY_MOUNT,
        0,
        "d2: on the mount found busy"
    );
}

#[test]
fn a_busy_mount_with_a_submount_made_after_it_is_exact() {
    // The mount and its submount are made after mntrace read the table:
    // the busy mount and what lies below it come from the kernel, mount by
    // mount. A deletion by path through the submount is not the busy
    // mount's; one through the busy mount is.
    let s = scratch();
    let (src, mnt) = source_and_mountpoint(s.path());
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    let sub = mnt.join("sub");
    let ops: Vec<std::ffi::OsString> = vec![
        "unshare-mntns".into(),
        "bind".into(),
        src.clone().into(),
        mnt.clone().into(),
        "mount-tmpfs".into(),
        sub.clone().into(), // 3
        "write".into(),
        sub.join("x").into(),
        "mnt-id".into(),
        mnt.clone().into(), // 5
        "hold".into(),
        mnt.join("held").into(),
        "umount".into(),
        mnt.clone().into(),
        "0".into(), // 7: EBUSY
        "unlink".into(),
        sub.join("x").into(), // 8: through the submount
        "unlink".into(),
        mnt.join("a").into(), // 9: through the busy mount
        "wait-stdin".into(),  // 10: alive (and in its namespace) while mntrace looks
    ];
    let mut fx = Fixture::spawn(&ops);
    let pid = fx.pid;
    let mut live = Live::of_pid(pid);
    fx.step();
    fx.wait_for_op(9);
    let incidents = live.finish();
    fx.step();
    let lines = fx.wait();
    assert_eq!(op(&lines, 7)["errno"], 16);
    assert_eq!(op(&lines, 8)["errno"], 0);
    assert_eq!(op(&lines, 9)["errno"], 0);
    let busy_mnt = u64_of(op(&lines, 5), "mnt_id") as u32;
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let inc = &incidents[0];
    assert_eq!(inc.mount.mnt_id, busy_mnt, "{inc:#?}");
    assert_eq!(&inc.mount.mountpoint[..], b(&mnt));
    assert_eq!(inc.mount.backing_root.as_deref(), Some(b(&src)));
    let got: Vec<(PathBuf, PathBuf)> = inc
        .deletions
        .iter()
        .map(|d| {
            (
                to_path_buf(&d.path),
                to_path_buf(d.backing_path.as_deref().expect("backing")),
            )
        })
        .collect();
    assert_eq!(got, vec![(mnt.join("a"), src.join("a"))]);
    assert_eq!(inc.count, 1);
    assert!(!src.join("a").exists() && src.join("b").exists());
}
