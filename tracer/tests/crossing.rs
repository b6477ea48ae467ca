//! Recursive deletes that cross into a live mount with no unmount at all
//! (kubernetes #72257: kubelet's orphaned-pod cleanup walked into a live
//! volume-subpath bind of a local PV).

mod common;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use mntrace::correlate::{Incident, Severity};
use tracer_common::uapi::EBUSY;

/// Files of the local PV, relative to it.
const PV_FILES: &[&str] = &["c", "data/a", "data/b"];
/// Every entry of the PV, as deleted.
const PV_ENTRIES: &[&str] = &["c", "data", "data/a", "data/b"];

struct Pod {
    dir: tempfile::TempDir,
}

impl Pod {
    fn new() -> Pod {
        let p = Pod::bare();
        make_tree(
            &p.pod(),
            &[
                "etc-hosts",
                "containers/ctr/0.log",
                "volumes/kubernetes.io~empty-dir/cache/x",
            ],
        );
        p
    }
    /// A pod directory holding nothing but the volume subpath's mountpoint.
    fn bare() -> Pod {
        let dir = scratch();
        let p = Pod { dir };
        std::fs::create_dir_all(p.mountpoint()).expect("mkdir mountpoint");
        std::fs::create_dir_all(p.disks()).expect("mkdir disks");
        p
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn pod(&self) -> PathBuf {
        self.root().join("kubelet/pods/0b3f-uid")
    }
    fn mountpoint(&self) -> PathBuf {
        self.pod().join("volume-subpaths/pv-vol/app/0")
    }
    /// A tmpfs for the local PV (a device of its own, as a real disk is).
    fn disks(&self) -> PathBuf {
        self.root().join("disks")
    }
    fn pv(&self) -> PathBuf {
        self.disks().join("pv1")
    }
    /// Fixture ops reporting, from inside its namespace (where the PV's
    /// tmpfs is), whether each PV file is still there (`errno` 0) or gone (2).
    fn check_ops(&self) -> Vec<OsString> {
        PV_FILES
            .iter()
            .flat_map(|f| ["mnt-id".into(), self.pv().join(f).into()])
            .collect()
    }

    /// PV files left, from the results of `check_ops` (the last ops).
    fn pv_left(lines: &[serde_json::Value]) -> usize {
        lines
            .iter()
            .rev()
            .take(PV_FILES.len())
            .filter(|l| l["op"] == "mnt-id" && l["errno"] == 0)
            .count()
    }

    /// The fixture ops that set the PV up and bind it under volume-subpaths.
    fn setup_ops(&self) -> Vec<OsString> {
        let mut ops: Vec<OsString> = vec![
            "unshare-mntns".into(),
            "mount-tmpfs".into(),
            self.disks().into(),
        ];
        for f in PV_FILES {
            let p = self.pv().join(f);
            ops.extend([
                "mkdirs".into(),
                p.parent().expect("parent").into(),
                "write".into(),
                p.into(),
            ]);
        }
        ops.extend(["bind".into(), self.pv().into(), self.mountpoint().into()]);
        ops
    }

    /// A shell script doing the same with coreutils, then `rm -rf ARGS POD`.
    fn rm_script(&self, rm_args: &str, target: &str) -> String {
        self.script(&format!("rm -rf {rm_args} {target}"))
    }

    /// The PV set-up in shell, then `delete` (a shell command).
    fn script(&self, delete: &str) -> String {
        let mut s = format!("mount -t tmpfs none '{}' && ", self.disks().display());
        for f in PV_FILES {
            let p = self.pv().join(f);
            s += &format!(
                "mkdir -p '{}' && echo x > '{}' && ",
                p.parent().unwrap().display(),
                p.display()
            );
        }
        s += &format!(
            "read go && mount --bind '{}' '{}' && {delete}; echo done $(find '{}' -type f | wc -l); sleep 2",
            self.pv().display(),
            self.mountpoint().display(),
            self.pv().display()
        );
        s
    }

    /// This test's incidents: those whose walk started in its scratch tree.
    fn mine(&self, incidents: Vec<Incident>) -> Vec<Incident> {
        incidents
            .into_iter()
            .filter(|i| i.mount.mountpoint.starts_with(b(self.root())))
            .collect()
    }

    fn assert_pv_incident(&self, inc: &Incident) {
        let w = inc.walk().expect("a crossing incident");
        assert_eq!(
            w.root.as_deref(),
            Some(b(&self.pod())),
            "the walk's top directory"
        );
        assert!(
            w.mountpoint_ebusy_ts_ns.is_some(),
            "removing the mountpoint failed with EBUSY"
        );
        assert_eq!(inc.severity, Severity::Critical);
        assert_eq!(inc.root_label.as_deref(), Some("kubelet volume subpath"));
        assert_eq!(&inc.mount.mountpoint[..], b(&self.mountpoint()));
        assert!(inc.mount.subtree, "a bind of a directory");
        assert_eq!(inc.mount.backing_root.as_deref(), Some(b(&self.pv())));
        let backing: BTreeSet<PathBuf> = inc
            .deletions
            .iter()
            .map(|d| to_path_buf(d.backing_path.as_deref().expect("backing")))
            .collect();
        let want: BTreeSet<PathBuf> = PV_ENTRIES.iter().map(|e| self.pv().join(e)).collect();
        assert_eq!(backing, want, "every PV entry by its real path");
        assert_eq!(inc.count, PV_ENTRIES.len() as u64);
        assert_eq!(inc.deletions.iter().filter(|d| d.is_dir).count(), 1);
    }
}

/// Run a shell script in a private mount namespace: it pauses on `read`
/// until the tracer is attached, and says `done [N]` before lingering (so
/// its namespace is alive while the test processes the events). Returns N.
fn run_script(live: &mut Live, script: &str) -> Option<usize> {
    run_script_draining(live, script, false)
}

/// [`run_script`], processing events every 50 ms while the script runs
/// when `drain` (else only once it said `done`).
fn run_script_draining(live: &mut Live, script: &str, drain: bool) -> Option<usize> {
    run_script_pumping(script, |done| {
        if drain || done {
            live.pump();
        }
    })
}

/// [`run_script`] with `pump(false)` called every 50 ms until it says
/// `done`, then `pump(true)` while it lingers.
fn run_script_pumping(script: &str, mut pump: impl FnMut(bool)) -> Option<usize> {
    let mut child = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn unshare");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("release");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = loop {
        pump(false);
        match rx.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(line) => break line,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(e) => panic!("script output: {e}"),
        }
    };
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("done"), "{line:?}");
    pump(true);
    assert!(child.wait().expect("wait").success());
    words.next().map(|n| n.parse().expect("a count"))
}

#[test]
fn go_removeall_of_a_pod_dir_with_a_live_pv_bind_is_critical() {
    let pod = Pod::new();
    let mut ops = pod.setup_ops();
    ops.extend(["remove-all".into(), pod.pod().into()]);
    ops.extend(pod.check_ops());
    let mut fx = Fixture::spawn(&ops);
    let mut live = Live::start(Default::default());
    fx.release();
    let lines = fx.wait();
    let mine = pod.mine(live.finish());
    assert_eq!(mine.len(), 1, "{mine:#?}");
    pod.assert_pv_incident(&mine[0]);
    assert_eq!(mine[0].walk().unwrap().by.pid, fx_pid(&lines));
    assert_eq!(Pod::pv_left(&lines), 0, "the PV really lost its files");
}

/// kubelet's cleanup of orphaned pods: `RemoveAll` of one pod directory
/// after the other, on one thread, less than the kernel's burst gap apart
/// (one burst, one walk of two trees): an incident per pod, each with its
/// own pod directory as the walk's root.
#[test]
fn removing_two_pod_directories_in_one_burst_is_an_incident_each() {
    let pods = [Pod::bare(), Pod::new()];
    let mut ops = pods[0].setup_ops();
    // One mount namespace for both.
    ops.extend(pods[1].setup_ops().into_iter().skip(1));
    for p in &pods {
        ops.extend(["remove-all".into(), p.pod().into()]);
    }
    for p in &pods {
        ops.extend(p.check_ops());
    }
    let mut fx = Fixture::spawn(&ops);
    let mut live = Live::start(Default::default());
    fx.release();
    let lines = fx.wait();
    let all = live.finish();
    for p in &pods {
        let mine = p.mine(all.clone());
        assert_eq!(mine.len(), 1, "{mine:#?}");
        p.assert_pv_incident(&mine[0]);
        assert_eq!(mine[0].walk().unwrap().by.pid, fx_pid(&lines));
    }
    let left = lines
        .iter()
        .rev()
        .take(2 * PV_FILES.len())
        .filter(|l| l["op"] == "mnt-id" && l["errno"] == 0)
        .count();
    assert_eq!(left, 0, "both PVs really lost their files");
}

fn fx_pid(lines: &[serde_json::Value]) -> u32 {
    u64_of(&lines[0], "pid") as u32
}

/// coreutils `rm -rf POD` under `live`: the PV's incident, checked (and
/// that the PV really lost its files).
fn rm_rf_pod(pod: &Pod, live: &mut Live) -> Incident {
    let target = format!("'{}'", pod.pod().display());
    let left = run_script(live, &pod.rm_script("", &target));
    let mut mine = pod.mine(live.finish());
    assert_eq!(mine.len(), 1, "{mine:#?}");
    pod.assert_pv_incident(&mine[0]);
    assert_eq!(&mine[0].deleters[0].comm[..], b"rm");
    assert_eq!(left, Some(0), "the PV really lost its files");
    mine.remove(0)
}

#[test]
fn rm_rf_of_the_same_pod_dir_is_the_same_incident() {
    rm_rf_pod(&Pod::new(), &mut Live::start(Default::default()));
}

/// The walk's top comes from the kernel, not from the deletions it
/// captured: here `rm` deletes nothing in the pod directory or above the
/// mountpoint (there is nothing else, and it does not try the directories
/// above the mountpoint it could not remove), so every captured deletion is
/// at or below the mountpoint. Without the top's record the incident named
/// the mountpoint as the walk's top.
#[test]
fn the_walk_top_is_the_directory_rm_began_at_when_it_deletes_nothing_there() {
    let pod = Pod::bare();
    let mut live = Live::start(Default::default());
    let inc = rm_rf_pod(&pod, &mut live);
    // The kernel's record of the top: once, from the walking `rm`, before
    // any deletion of the walk, on the mount the walk began on.
    let walk = inc.walk().expect("a crossing");
    let tops: Vec<&mntrace::model::Event> = live
        .out
        .events
        .iter()
        .filter(|e| e.kind == tracer_common::EventKind::WalkTop && e.tid == walk.by.tid)
        .collect();
    assert_eq!(tops.len(), 1, "{tops:#?}");
    let top = tops[0];
    let mntrace::model::Args::WalkTop { dir, origin_mnt_id } = &top.args else {
        panic!("{top:#?}");
    };
    assert_eq!(&top.comm[..], b"rm");
    assert_eq!(top.ret, 0);
    assert_eq!(&dir.path.bytes[..], b(&pod.pod()));
    assert!(dir.resolved() && !dir.truncated(), "{dir:#?}");
    assert_eq!(dir.from(), mntrace::model::DirFrom::Fd);
    assert_eq!(*origin_mnt_id, walk.origin_mnt_id);
    assert_eq!(dir.mnt_id, walk.origin_mnt_id);
    assert_eq!(walk.root_mnt_id, Some(walk.origin_mnt_id));
    let first_deletion = live
        .out
        .events
        .iter()
        .filter(|e| e.kind.is_delete() && e.tid == walk.by.tid)
        .map(|e| e.ts_ns)
        .min()
        .expect("captured deletions");
    assert!(top.ts_ns < first_deletion, "the top comes first");
}

/// `rm -rf other POD`: one walk of two trees, whose first listing (the
/// kernel's top) is `other`. The mount is not below it: the incident is
/// still raised, its root from the deletions (the walk deletes nothing in
/// the bare pod directory, so that is the mountpoint).
#[test]
fn a_walk_of_two_trees_still_reports_the_mount_in_the_second() {
    let pod = Pod::bare();
    let other = pod.root().join("kubelet/pods/a0-other");
    make_tree(&other, &["etc-hosts", "containers/ctr/0.log"]);
    let mut live = Live::start(Default::default());
    let target = format!("'{}' '{}'", other.display(), pod.pod().display());
    let left = run_script(&mut live, &pod.rm_script("", &target));
    assert_eq!(left, Some(0), "the PV really lost its files");
    assert!(!other.exists(), "the first tree is gone");
    let mine = pod.mine(live.finish());
    assert_eq!(mine.len(), 1, "{mine:#?}");
    let inc = &mine[0];
    assert_eq!(&inc.mount.mountpoint[..], b(&pod.mountpoint()));
    assert_eq!(inc.count, PV_ENTRIES.len() as u64);
    let w = inc.walk().expect("a crossing");
    assert_eq!(w.root.as_deref(), Some(b(&pod.mountpoint())));
    // The kernel did record the walk's top: the first tree.
    let tops: Vec<&[u8]> = live
        .out
        .events
        .iter()
        .filter(|e| e.tid == w.by.tid)
        .filter_map(|e| match &e.args {
            mntrace::model::Args::WalkTop { dir, .. } => Some(&dir.path.bytes[..]),
            _ => None,
        })
        .collect();
    assert_eq!(tops, [b(&other)]);
}

/// A recording keeps the walk's top: `triage` names the same top as the
/// live run, and `query --kind walk_top` finds the record. coreutils `rm`
/// under a name of its own (the recorder follows that command only), over
/// a pod directory that holds nothing but the mountpoint, as above.
#[test]
fn a_recording_keeps_the_walk_top_for_triage_and_query() {
    let pod = Pod::bare();
    let rm = pod.root().join("rm-walk-top");
    std::fs::copy("/usr/bin/rm", &rm).expect("copy rm");
    let rec = scratch();
    let dir = rec.path().join("rec");
    let recording = start_recording_with(&dir, &["--comm", "rm-walk-top", "--json"]);
    let delete = format!("'{}' -rf '{}'", rm.display(), pod.pod().display());
    let left = run_script_pumping(&pod.script(&delete), |_| {});
    let out = recording.stop();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(left, Some(0), "the PV really lost its files");
    let live = incidents_of(&out.stdout);
    assert_eq!(live.len(), 1, "{live:#?}");
    let pod_path = pod.pod().to_str().expect("UTF-8 scratch").to_owned();
    let walk = &live[0]["walk"];
    assert_eq!(walk["root"], pod_path.as_str(), "{:#}", live[0]);
    assert_eq!(incidents_of(&replay_json("triage", &dir, &[])), live);
    let tops: Vec<serde_json::Value> = String::from_utf8_lossy(&replay_json(
        "query",
        &dir,
        &["--kind".as_ref(), "walk_top".as_ref()],
    ))
    .lines()
    .map(|l| serde_json::from_str(l).expect("JSON line"))
    .collect();
    assert_eq!(tops.len(), 1, "{tops:#?}");
    let t = &tops[0];
    assert_eq!(
        (&t["syscall"], &t["comm"], &t["ret"], &t["pid"]),
        (
            &"walk_top".into(),
            &"rm-walk-top".into(),
            &0.into(),
            &walk["process"]["pid"]
        )
    );
    assert_eq!(t["args"]["dir"]["path"], pod_path.as_str());
    assert_eq!(t["args"]["dir"]["from"], "fd");
    assert_eq!(t["args"]["dir"]["mnt_id"], walk["origin_mnt_id"]);
    assert_eq!(t["args"]["origin_mnt_id"], walk["origin_mnt_id"]);
}

#[test]
fn rm_rf_one_file_system_skips_the_mount_and_raises_nothing() {
    let pod = Pod::new();
    let mut live = Live::start(Default::default());
    let target = format!("'{}'", pod.pod().display());
    let left = run_script(&mut live, &pod.rm_script("--one-file-system", &target));
    let mine = pod.mine(live.finish());
    assert!(mine.is_empty(), "{mine:#?}");
    assert_eq!(left, Some(PV_FILES.len()), "nothing on the PV was deleted");
}

#[test]
fn deleting_inside_a_tmpfs_from_its_own_mountpoint_is_no_crossing() {
    require_root();
    let s = scratch();
    let x = s.path().join("mnt/x");
    std::fs::create_dir_all(&x).expect("mkdir");
    let script = format!(
        "mount -t tmpfs none '{x}' && mkdir -p '{x}/a/b' '{x}/c' && echo 1 > '{x}/a/b/f' && echo 2 > '{x}/c/g' && echo 3 > '{x}/h' && \
         read go && rm -rf '{x}'/*; echo done; sleep 2",
        x = x.display()
    );
    let mut live = Live::start(Default::default());
    run_script(&mut live, &script);
    let mine: Vec<Incident> = live
        .finish()
        .into_iter()
        .filter(|i| i.mount.mountpoint.starts_with(b(s.path())))
        .collect();
    assert!(mine.is_empty(), "{mine:#?}");
}

#[test]
fn a_recursive_delete_over_an_empty_mount_raises_nothing() {
    let pod = Pod::new();
    let empty = pod.root().join("disks/empty");
    let ops: Vec<OsString> = vec![
        "unshare-mntns".into(),
        "mount-tmpfs".into(),
        pod.disks().into(),
        "mkdirs".into(),
        empty.clone().into(),
        "bind".into(),
        empty.into(),
        pod.mountpoint().into(),
        "remove-all".into(),
        pod.pod().into(),
    ];
    let mut fx = Fixture::spawn(&ops);
    let mut live = Live::start(Default::default());
    fx.release();
    let lines = fx.wait();
    assert_eq!(
        op(&lines, 5)["errno"],
        EBUSY,
        "RemoveAll ends on the busy mountpoint: {}",
        op(&lines, 5)
    );
    let mine = pod.mine(live.finish());
    assert!(mine.is_empty(), "{mine:#?}");
}

#[test]
fn ten_crossings_in_parallel_are_ten_incidents() {
    const N: usize = 10;
    let pods: Vec<Pod> = (0..N).map(|_| Pod::new()).collect();
    let mut fxs: Vec<Fixture> = pods
        .iter()
        .map(|p| {
            let mut ops = p.setup_ops();
            ops.extend(["remove-all".into(), p.pod().into()]);
            ops.extend(p.check_ops());
            Fixture::spawn(&ops)
        })
        .collect();
    let mut live = Live::start(Default::default());
    for f in &mut fxs {
        f.release();
    }
    let results: Vec<Vec<serde_json::Value>> = fxs.into_iter().map(|f| f.wait()).collect();
    let all = live.finish();
    for (i, p) in pods.iter().enumerate() {
        let mine = p.mine(all.clone());
        assert_eq!(mine.len(), 1, "replica {i}: {mine:#?}");
        p.assert_pv_incident(&mine[0]);
        assert_eq!(mine[0].walk().unwrap().by.pid, fx_pid(&results[i]));
        assert_eq!(Pod::pv_left(&results[i]), 0);
    }
}

/// A program calling Go's real `os.RemoveAll`.
fn go_removeall(dir: &Path) -> PathBuf {
    go_build(
        dir,
        "removeall",
        "package main\nimport (\"fmt\"; \"os\")\nfunc main() { fmt.Println(\"removeall:\", os.RemoveAll(os.Args[1])) }\n",
    )
}

#[test]
fn real_go_os_removeall_of_the_pod_dir_is_the_same_incident() {
    let pod = Pod::new();
    let tools = scratch();
    let bin = go_removeall(tools.path());
    let mut live = Live::start(Default::default());
    let delete = format!("'{}' '{}' > /dev/null", bin.display(), pod.pod().display());
    let left = run_script(&mut live, &pod.script(&delete));
    let mine = pod.mine(live.finish());
    assert_eq!(mine.len(), 1, "{mine:#?}");
    pod.assert_pv_incident(&mine[0]);
    assert_eq!(&mine[0].deleters[0].comm[..], b"removeall");
    assert_eq!(left, Some(0), "the PV really lost its files");
}

#[test]
fn rm_rf_whose_first_deletion_is_inside_a_tmpfs_is_captured_in_full() {
    // The pod directory holds nothing but a tmpfs: rm's very first deletion
    // is inside the other mount. The kernel knows the walk began on the
    // pod's mount from where rm began listing, so all of it is captured.
    require_root();
    let s = scratch();
    let pod = s.path().join("kubelet/pods/0c4a-uid");
    let cache = pod.join("x/cache");
    std::fs::create_dir_all(&cache).expect("mkdir");
    let script = format!(
        "mount -t tmpfs none '{c}' && mkdir -p '{c}/sub' && echo 1 > '{c}/a' && echo 2 > '{c}/b' && echo 3 > '{c}/sub/c' && \
         read go && rm -rf '{p}'; echo done $(find '{c}' -type f | wc -l); sleep 2",
        c = cache.display(),
        p = pod.display()
    );
    let mut live = Live::start(Default::default());
    let left = run_script(&mut live, &script);
    assert_eq!(left, Some(0));
    let mine: Vec<Incident> = live
        .finish()
        .into_iter()
        .filter(|i| i.mount.mountpoint.starts_with(b(s.path())))
        .collect();
    assert_eq!(mine.len(), 1, "{mine:#?}");
    let i = &mine[0];
    assert_eq!(
        (i.severity, i.root_label.as_deref()),
        (Severity::Warning, None),
        "a filesystem of its own inside the tree"
    );
    assert_eq!(&i.mount.mountpoint[..], b(&cache));
    assert_eq!(i.mount.fstype.as_deref(), Some("tmpfs"));
    let seen: BTreeSet<PathBuf> = i.deletions.iter().map(|d| to_path_buf(&d.path)).collect();
    let want: BTreeSet<PathBuf> = ["a", "b", "sub", "sub/c"]
        .iter()
        .map(|e| cache.join(e))
        .collect();
    assert_eq!(seen, want, "every entry, including the very first deletion");
    assert!(i.walk().unwrap().mountpoint_ebusy_ts_ns.is_some());
}

/// What enrichment added to the events of thread `tid`, in order.
fn enrichments_of(
    facts: &[mntrace::enrich::facts::Fact],
    tid: u32,
) -> impl Iterator<Item = &mntrace::enrich::Enrichment> {
    facts.iter().filter_map(move |f| match f {
        mntrace::enrich::facts::Fact::Enrichment { tid: t, en, .. } if *t == tid => Some(&**en),
        _ => None,
    })
}

/// The kernel reuses a 32-bit mount id as soon as its mount is gone. A
/// bind of one directory is seen through a deletion, unmounted, and the
/// PV's bind on the same mountpoint gets its id: a deletion through it must
/// be enriched with the PV's bind, not the first one. Mount churn does not
/// reread the table; such a deletion's mount is asked for by its 64-bit
/// id, which the kernel never reuses. mntrace processes each phase before
/// the next (as it keeps up on a node), so the first bind is in its table.
#[test]
fn a_reused_mount_id_is_the_new_mount() {
    // The kernel gives a freed 32-bit id to the next mount made anywhere:
    // a test running beside this one may take it first.
    for attempt in 1..=5 {
        match reused_mount_id_attempt() {
            Some(true) => return,
            Some(false) => eprintln!("attempt {attempt}: the 32-bit mount id was not reused"),
            None => {
                // What this test is about does not exist there: mntrace
                // cannot tell a reused 32-bit id from the mount that had it
                // (the README says so).
                eprintln!(
                    "not run: this kernel has no 64-bit mount ids (STATX_MNT_ID_UNIQUE, 6.8+)"
                );
                return;
            }
        }
    }
    panic!("the kernel did not reuse the 32-bit mount id in 5 attempts");
}

/// One run of [`a_reused_mount_id_is_the_new_mount`]; `Some(false)` when
/// the kernel gave the freed id to another mount (nothing was checked),
/// `None` when it has no 64-bit mount ids.
fn reused_mount_id_attempt() -> Option<bool> {
    let pod = Pod::new();
    let (mp, other, pv) = (pod.mountpoint(), pod.disks().join("other"), pod.pv());
    let o = |p: &Path| OsString::from(p);
    let s = |x: &str| OsString::from(x);
    // Op 0 is Fixture::spawn's own wait-stdin.
    let resolved: Vec<OsString> = vec![
        s("unshare-mntns"), // 1
        s("mount-tmpfs"),
        o(&pod.disks()), // 2
        s("mkdirs"),
        o(&other), // 3
        s("write"),
        o(&other.join("f")), // 4
        s("mkdirs"),
        o(&pv), // 5
        s("write"),
        o(&pv.join("c")), // 6
        s("bind"),
        o(&other),
        o(&mp), // 7
        s("mnt-id"),
        o(&mp), // 8
        s("open-dir"),
        o(&mp), // 9
        s("unlinkat"),
        s("@9"),
        s("f"),
        s("0"), // 10
        s("close"),
        s("@9"),         // 11
        s("wait-stdin"), // 12
        s("umount"),
        o(&mp),
        s("0"), // 13
        s("bind"),
        o(&pv),
        o(&mp), // 14
        s("mnt-id"),
        o(&mp), // 15
        s("open-dir"),
        o(&mp), // 16
        s("unlinkat"),
        s("@16"),
        s("c"),
        s("0"), // 17
        s("close"),
        s("@16"), // 18
    ];
    let mut live = Live::start(Default::default());
    live.pipeline.record_facts();
    let mut fx = Fixture::spawn(&resolved);
    fx.step();
    fx.wait_for_op(11);
    live.pump();
    let first: Vec<_> = live.pipeline.take_facts();
    fx.step();
    let pid = fx.pid;
    let lines = fx.wait();
    live.pump();
    let second: Vec<_> = live.pipeline.take_facts();
    let mnt_ids: Vec<&serde_json::Value> = lines.iter().filter(|l| l["op"] == "mnt-id").collect();
    assert_eq!(mnt_ids.len(), 2, "{lines:?}");
    if mnt_ids.iter().any(|l| l["mnt_id_unique"].is_null()) {
        live.finish();
        return None;
    }
    let ids: Vec<(u64, u64)> = mnt_ids
        .iter()
        .map(|l| (u64_of(l, "mnt_id"), u64_of(l, "mnt_id_unique")))
        .collect();
    if ids[0].0 != ids[1].0 {
        // Another test's mount took the freed id first: try again.
        live.finish();
        return Some(false);
    }
    assert_ne!(ids[0].1, ids[1].1, "never the 64-bit one: {ids:?}");
    for l in lines.iter().filter(|l| l["op"] == "unlinkat") {
        assert_eq!(l["errno"], 0, "{l}");
    }
    // The enrichment of the deletion through the mount, in each phase:
    // where its entries really live. (By the time the second is processed
    // the fixture and its namespace are gone: what the bind event said is
    // all there is, and the first bind's entry must not stand in for it.)
    let backing_of = |facts: &[mntrace::enrich::facts::Fact]| -> Vec<PathBuf> {
        enrichments_of(facts, pid)
            .filter_map(|en| en.backing_root.as_deref().map(to_path_buf))
            .collect()
    };
    assert_eq!(backing_of(&first), vec![other.clone()], "{first:?}");
    assert_eq!(backing_of(&second), vec![pv.clone()], "{second:?}");
    live.finish();
    Some(true)
}

/// Mount events do not reread the table, so a bind made after it was read
/// is asked about alone (statmount), and the mount showing the bound
/// directory (the PV's disk, mounted after the read too) is not in the
/// table: the bind's root must still be resolved to the PV, not to the
/// bind's own mountpoint. mntrace processes the first phase (a tmpfs in
/// the fresh namespace: its table is read then) before the disk is
/// mounted, as it does when it keeps up on a node.
#[test]
fn a_bind_of_a_disk_mounted_after_the_table_was_read_is_its_directory() {
    let pod = Pod::new();
    let (mp, pv, early) = (pod.mountpoint(), pod.pv(), pod.root().join("early"));
    std::fs::create_dir_all(&early).expect("mkdir early");
    let o = |p: &Path| OsString::from(p);
    let s = |x: &str| OsString::from(x);
    // Op 0 is Fixture::spawn's own wait-stdin.
    let ops: Vec<OsString> = vec![
        s("unshare-mntns"), // 1
        s("mount-tmpfs"),
        o(&early),       // 2
        s("wait-stdin"), // 3
        s("mount-tmpfs"),
        o(&pod.disks()), // 4
        s("mkdirs"),
        o(&pv), // 5
        s("write"),
        o(&pv.join("c")), // 6
        s("bind"),
        o(&pv),
        o(&mp), // 7
        s("open-dir"),
        o(&mp), // 8
        s("unlinkat"),
        s("@8"),
        s("c"),
        s("0"),          // 9
        s("wait-stdin"), // 10
    ];
    let mut live = Live::start(Default::default());
    live.pipeline.record_facts();
    let mut fx = Fixture::spawn(&ops);
    fx.step();
    fx.wait_for_op(2);
    live.pump();
    fx.step();
    fx.wait_for_op(9);
    live.pump();
    let pid = fx.pid;
    let facts = live.pipeline.take_facts();
    fx.step();
    let lines = fx.wait();
    assert_eq!(op(&lines, 9)["errno"], 0, "{lines:?}");
    let enriched: Vec<_> = enrichments_of(&facts, pid)
        .filter_map(|en| {
            en.mount
                .as_ref()
                .map(|m| (m.mountpoint.clone(), en.backing_root.clone()))
        })
        .collect();
    assert_eq!(
        enriched,
        vec![(
            bytes::Bytes::copy_from_slice(b(&mp)),
            Some(bytes::Bytes::copy_from_slice(b(&pv)))
        )],
        "{facts:?}"
    );
    live.finish();
}

/// A node with thousands of mounts, under mount churn: while another
/// process binds and unmounts 2,000 times in the same namespace, which
/// holds 2,000 more mounts, the crossing is one exact incident (the PV's
/// mount, its directory, every entry), and nothing is lost (drained while
/// the script runs, as live mode does: the ring is the whole machine's).
#[test]
fn a_crossing_during_mount_churn_among_thousands_of_mounts_is_exact() {
    let pod = Pod::new();
    let mut live = Live::start(Default::default());
    let many = pod.root().join("many");
    let count = pod.root().join("count");
    let (many, count, fx, top) = (many.display(), count.display(), fixture(), pod.pod());
    let (fx, top) = (fx.display(), top.display());
    let churn = format!(
        "mkdir -p '{many}/src' '{many}/dst' && i=0 && \
         while [ $i -lt 2000 ]; do mkdir '{many}/m'$i && mount -t tmpfs -o size=64k m '{many}/m'$i && i=$((i+1)); done && \
         grep -c . /proc/self/mountinfo > '{count}' && \
         set -- && i=0 && \
         while [ $i -lt 2000 ]; do set -- \"$@\" bind '{many}/src' '{many}/dst' umount '{many}/dst' 0; i=$((i+1)); done && \
         ('{fx}' \"$@\" > /dev/null &) && rm -rf '{top}'"
    );
    let left = run_script_draining(&mut live, &pod.script(&churn), true);
    let mounts: usize = std::fs::read_to_string(pod.root().join("count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(mounts > 2_000, "{mounts} mounts in the namespace");
    let mine = pod.mine(live.finish());
    assert_eq!(mine.len(), 1, "{mine:#?}");
    pod.assert_pv_incident(&mine[0]);
    assert_eq!(left, Some(0), "the PV really lost its files");
    assert_eq!(live.traced.drops().total(), 0, "nothing lost");
}
