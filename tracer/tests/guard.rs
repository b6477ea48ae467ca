//! The guard (`--guard`), for real: the containerd 2.0.0-rc.0 replica
//! stopped or killed at its first listing inside the busy clone, with the
//! layer checked on disk; `report` acting on nothing; and the benign
//! sequences that must never be acted on.
//!
//! Every tracer here is filtered to its own fixture (the guard only marks
//! traced processes), so tests running in parallel never act on each
//! other's processes.

mod common;

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;

use common::replica::*;
use common::*;
use mntrace::config::{GuardMode, TraceOptions};
use mntrace::correlate::{Incident, Severity};
use mntrace::enrich::holders::Hold;
use mntrace::model::{Args, Event, Guard, GuardAction, GUARD_ACTIONS};
use tracer_common::event::{
    DIR_IDMAPPED, DIR_RESOLVED, DIR_SUBTREE, GUARD_AT_DELETE, GUARD_AT_LISTING,
};
use tracer_common::uapi::{EBUSY, EPERM, SIGKILL, SIGSTOP};
use tracer_common::EventKind;

/// The live pipeline over a tracer filtered to `pid`, with the guard `mode`.
fn guarded(pid: u32, mode: GuardMode) -> Live {
    Live::start(TraceOptions {
        pids: vec![pid],
        guard: mode,
        ..Default::default()
    })
}

/// [`guarded`], with `--guard-crossings`.
fn guarded_crossings(pid: u32, mode: GuardMode) -> Live {
    Live::start(TraceOptions {
        pids: vec![pid],
        guard: mode,
        guard_crossings: true,
        ..Default::default()
    })
}

/// The guard events among what the pipeline showed.
fn guard_events(live: &Live) -> Vec<(&Event, &Guard)> {
    live.out
        .events
        .iter()
        .filter_map(|e| match &e.args {
            Args::Guard(g) => Some((e, g)),
            _ => None,
        })
        .collect()
}

/// The replica's clone 0 as the fixture saw it (op 12): mount id and
/// 64-bit unique id (none before 6.8: statx has no STATX_MNT_ID_UNIQUE).
fn clone0(fx: &mut Fixture) -> (u32, Option<u64>) {
    let m = fx.wait_for_op(12);
    (u64_of(&m, "mnt_id") as u32, m["mnt_id_unique"].as_u64())
}

/// The guard's record of acting on the replica at its first listing in
/// clone 0, checked field by field against the fixture and its EBUSY.
fn assert_guard_event(
    live: &Live,
    l: &Layout,
    pid: u32,
    clone: (u32, Option<u64>),
    action: GuardAction,
) {
    let gs = guard_events(live);
    assert_eq!(gs.len(), 1, "one action per EBUSY: {gs:#?}");
    let (ev, g) = gs[0];
    assert_eq!(ev.kind, EventKind::Guard);
    assert_eq!((ev.pid, ev.tid), (pid, pid));
    assert_eq!(&ev.comm[..], b"mntrace-fixture");
    assert_eq!(ev.ret, 0, "the signal was sent");
    assert_eq!(g.action, action);
    let signal = match action {
        GuardAction::Stopped => SIGSTOP,
        GuardAction::Killed => SIGKILL,
        GuardAction::Reported | GuardAction::Denied => 0,
    };
    assert_eq!(g.signal, signal);
    assert_eq!(g.trigger, trigger_of(action));
    if action == GuardAction::Denied {
        assert_eq!(g.fd, None, "the LSM hook sees the directory");
    } else {
        assert!(
            g.fd.is_some_and(|fd| fd > 2),
            "the fd RemoveAll opened: {:?}",
            g.fd
        );
    }
    assert_eq!(g.mount.mnt_id, clone.0);
    if let Some(unique) = clone.1 {
        assert_eq!(g.mount.mnt_id_unique, unique);
    }
    assert_eq!(&g.mount.path.bytes[..], b(&l.t(0)));
    assert_eq!(g.mount.mountpoint().as_deref(), Some(b(&l.t(0))));
    let want = DIR_RESOLVED | DIR_IDMAPPED | DIR_SUBTREE;
    assert_eq!(g.mount.flags & want, want, "{:#x}", g.mount.flags);
    let busy = live
        .out
        .events
        .iter()
        .find(|e| e.kind == EventKind::Umount && e.errno() == Some(EBUSY))
        .expect("the EBUSY unmount");
    assert!(
        g.busy_ns <= busy.ts_ns && busy.ts_ns - g.busy_ns < 1_000_000,
        "the mark is the EBUSY's: {} vs {}",
        g.busy_ns,
        busy.ts_ns
    );
    assert!(ev.ts_ns > busy.ts_ns);
    // Nothing went through the clone before the guard acted.
    let first_listing_ns = ev.ts_ns;
    for e in &live.out.events {
        if let Args::Delete { dir, .. } = &e.args {
            if e.ret == 0 && e.ts_ns < first_listing_ns {
                assert_ne!(dir.mnt_id, clone.0, "deleted in the clone: {e:#?}");
            }
        }
    }
}

/// Where the guard acts on the replica: at its first listing in the clone,
/// or (deny) at its first deletion there, the first call the LSM hooks see.
fn trigger_of(action: GuardAction) -> u32 {
    if action == GuardAction::Denied {
        GUARD_AT_DELETE
    } else {
        GUARD_AT_LISTING
    }
}

/// The replica's one incident, prevented: nothing deleted, the action, the
/// clone, where it lives, who held it.
fn assert_prevented(
    inc: &Incident,
    l: &Layout,
    pid: u32,
    clone: (u32, Option<u64>),
    action: GuardAction,
) {
    assert_eq!(inc.count, 0, "{inc:#?}");
    assert!(inc.deletions.is_empty() && inc.deleters.is_empty());
    assert_eq!(inc.prevented.len(), 1, "{inc:#?}");
    let p = &inc.prevented[0];
    assert_eq!(p.action, action);
    assert_eq!(p.by.pid, pid);
    assert_eq!(p.trigger, trigger_of(action));
    assert_eq!(p.result, 0);
    let u = inc.unmount().expect("a busy-unmount incident");
    assert_eq!((u.by.pid, &u.target[..]), (pid, b(&l.t(0))));
    assert!(p.ts_ns > u.ts_ns);
    assert_eq!(inc.mount.mnt_id, clone.0);
    assert_eq!(&inc.mount.mountpoint[..], b(&l.t(0)));
    assert!(inc.mount.idmapped && inc.mount.subtree);
}

/// The replica (lingering `linger_ms` at its end), released under the
/// guard `mode`, once its clone 0 is known.
struct Replica {
    l: Layout,
    fx: Fixture,
    pid: u32,
    live: Live,
    /// Clone 0's mount id and unique id (`clone0`).
    clone: (u32, Option<u64>),
}

fn replica_under(mode: GuardMode, linger_ms: u32) -> Replica {
    let l = Layout::new();
    let mut fx = Fixture::spawn(&l.buggy_ops(linger_ms));
    let pid = fx.pid;
    let live = guarded(pid, mode);
    fx.release();
    let clone = clone0(&mut fx);
    Replica {
        l,
        fx,
        pid,
        live,
        clone,
    }
}

#[test]
fn guard_stop_freezes_the_replica_before_it_deletes_anything() {
    let Replica {
        l,
        mut fx,
        pid,
        mut live,
        clone,
    } = replica_under(GuardMode::Stop, 0);
    let holder = u64_of(&fx.wait_for_op(13), "pid") as u32;
    assert_eq!(fx.wait_for_op(14)["errno"], EBUSY);
    assert_eq!(fx.wait_for_op(15)["errno"], 0);
    wait_stopped(pid);
    // The ground truth while it is frozen: the layer is whole.
    assert_eq!(l.layer1_left(), LAYER1, "nothing of the layer was lost");
    live.pump_and_scan();
    assert_guard_event(&live, &l, pid, clone, GuardAction::Stopped);
    kill(pid);
    let (status, _) = fx.wait_status();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let incidents = live.finish();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let inc = &incidents[0];
    assert_prevented(inc, &l, pid, clone, GuardAction::Stopped);
    // Read while it was frozen: the table and the holder scan.
    assert_eq!(inc.severity, Severity::Critical);
    assert_eq!(inc.root_label.as_deref(), Some("containerd snapshot"));
    assert_eq!(inc.mount.backing_root.as_deref(), Some(b(&l.l1)));
    let holders = inc.holders.as_ref().expect("holders scanned");
    assert!(
        holders
            .holders
            .iter()
            .any(|h| h.pid == holder && h.holds.iter().any(|x| matches!(x, Hold::Fd { .. }))),
        "{holders:#?}"
    );
    assert_eq!(l.layer1_left(), LAYER1, "and still whole once it is gone");
    let saved = inc.prevented[0]
        .saved
        .as_ref()
        .expect("counted while frozen");
    assert_eq!(
        (&saved.under[..], saved.entries, saved.complete),
        (b(&l.l1), LAYER1_ENTRIES.len() as u64, true),
        "what it would have deleted, counted in the layer itself"
    );
    assert_eq!(live.pipeline.stats.guard[GuardAction::Stopped as usize], 1);
    assert_eq!(live.traced.drops().total(), 0);
}

#[test]
fn guard_kill_kills_the_replica_before_it_deletes_anything() {
    let Replica {
        l,
        fx,
        pid,
        mut live,
        clone,
    } = replica_under(GuardMode::Kill, 0);
    let (status, lines) = fx.wait_status();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{lines:?}");
    assert_eq!(op(&lines, 14)["errno"], EBUSY);
    assert!(
        !lines.iter().any(|l| l["i"] == 16),
        "RemoveAll never finished: {lines:?}"
    );
    assert_eq!(l.layer1_left(), LAYER1, "nothing of the layer was lost");
    live.pump();
    assert_guard_event(&live, &l, pid, clone, GuardAction::Killed);
    let incidents = live.finish();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    assert_prevented(&incidents[0], &l, pid, clone, GuardAction::Killed);
    assert_eq!(
        incidents[0].prevented[0].saved, None,
        "its namespace was gone: nothing to count through"
    );
    assert_eq!(live.pipeline.stats.guard[GuardAction::Killed as usize], 1);
}

#[test]
fn guard_report_acts_on_nothing_and_says_what_it_would_have_done() {
    let Replica {
        l,
        mut fx,
        pid,
        mut live,
        clone,
    } = replica_under(GuardMode::Report, 1500);
    fx.wait_for_op(16);
    live.pump(); // the holder is still alive (op 17 sleeps)
    let lines = fx.wait();
    check_setup(&lines);
    assert_eq!(
        l.layer1_left(),
        Vec::<String>::new(),
        "not acted on: the layer is gone"
    );
    assert_guard_event(&live, &l, pid, clone, GuardAction::Reported);
    let incidents = live.finish();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let inc = &incidents[0];
    assert_eq!(inc.count, LAYER1_ENTRIES.len() as u64, "{inc:#?}");
    assert_eq!(inc.prevented.len(), 1);
    assert_eq!(inc.prevented[0].action, GuardAction::Reported);
    assert_eq!(inc.prevented[0].signal, 0);
    let first = inc
        .deletions
        .iter()
        .map(|d| d.ts_ns)
        .min()
        .expect("deletions");
    assert!(
        inc.prevented[0].ts_ns < first,
        "the guard decided before the first deletion in the clone"
    );
}

/// Runs `ops` under `--guard stop` and checks it was not acted on: it
/// exits 0 and no guard record exists. Returns its lines.
fn never_acted_on(ops: &[OsString]) -> (Vec<serde_json::Value>, Live) {
    never_acted_on_with(ops, guarded)
}

/// [`never_acted_on`], the pipeline made by `start` (for the fixture's pid,
/// with `--guard stop`).
fn never_acted_on_with(
    ops: &[OsString],
    start: fn(u32, GuardMode) -> Live,
) -> (Vec<serde_json::Value>, Live) {
    let mut fx = Fixture::spawn(ops);
    let pid = fx.pid;
    let mut live = start(pid, GuardMode::Stop);
    fx.release();
    let (status, lines) = fx.wait_unstopped();
    assert!(status.success(), "acted on? {status:?} {lines:?}");
    live.finish();
    assert!(guard_events(&live).is_empty(), "{:#?}", guard_events(&live));
    assert_eq!(live.pipeline.stats.guard, [0; GUARD_ACTIONS]);
    (lines, live)
}

fn os(v: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    v.iter().map(|s| s.as_ref().to_os_string()).collect()
}

#[test]
fn the_fixed_containerd_sequence_is_never_acted_on() {
    let l = Layout::new();
    let (lines, _) = never_acted_on(&l.fixed_ops());
    check_setup(&lines);
    for i in 14..=18 {
        assert_eq!(op(&lines, i)["errno"], 0, "op {i}: {}", op(&lines, i));
    }
    assert_eq!(l.layer1_left(), LAYER1);
}

#[test]
fn a_successful_retry_then_rm_rf_is_never_acted_on_even_on_a_new_mount_there() {
    // EBUSY, the holder goes, the retry succeeds; a new mount at the same
    // path (same mountpoint hash as the failed target) is then removed
    // recursively: that mount is not the busy one.
    let s = scratch();
    let t = s.path().join("t");
    let m = t.join("0");
    let (lines, _) = never_acted_on(&os(&[
        &"unshare-mntns",
        &"mkdirs",
        &m,
        &"mount-tmpfs",
        &m,
        &"touch-many",
        &m,
        &"20",
        &"hold",
        &m.join("f0"),
        &"umount",
        &m,
        &"0", // 6: EBUSY
        &"release",
        &"@5",
        &"umount",
        &m,
        &"0", // 8: the retry
        &"mount-tmpfs",
        &m,
        &"touch-many",
        &m,
        &"30",
        &"remove-all",
        &t, // 11
    ]));
    assert_eq!(op(&lines, 6)["errno"], EBUSY);
    assert_eq!(op(&lines, 8)["errno"], 0);
    assert_eq!(op(&lines, 11)["errno"], EBUSY, "the new mount's mountpoint");
    assert_eq!(
        op(&lines, 11)["ret"],
        30,
        "every file of the new mount went"
    );
}

#[test]
fn deletions_on_other_mounts_after_an_ebusy_are_never_acted_on() {
    // The process's unmount of `busy` fails; it then removes a large tree
    // on another tmpfs, a tree on the root filesystem, and the parent
    // directory of the busy mount's sibling: none of it is the busy mount.
    let s = scratch();
    let busy = s.path().join("busy");
    let other = s.path().join("other");
    let plain = s.path().join("plain");
    make_tree(&plain, &["a/b/c", "d"]);
    let (lines, live) = never_acted_on(&os(&[
        &"unshare-mntns",
        &"mkdirs",
        &busy,
        &"mkdirs",
        &other.join("big"),
        &"mount-tmpfs",
        &busy,
        &"mount-tmpfs",
        &other,
        &"mkdirs",
        &other.join("big"),
        &"touch-many",
        &other.join("big"),
        &"5000",
        &"hold",
        &busy,
        &"umount",
        &busy,
        &"0", // 9: EBUSY
        &"remove-all",
        &other.join("big"), // 10
        &"remove-all",
        &plain, // 11
    ]));
    assert_eq!(op(&lines, 9)["errno"], EBUSY);
    assert_eq!(op(&lines, 10)["ret"], 5001, "the files and their directory");
    assert_eq!(op(&lines, 10)["errno"], 0);
    assert_eq!(op(&lines, 11)["errno"], 0);
    assert!(!plain.exists());
    // The deletions were seen (the process is marked: all are captured).
    let deleted = live
        .out
        .events
        .iter()
        .filter(|e| e.ret == 0 && matches!(e.args, Args::Delete { .. }))
        .count();
    assert!(deleted >= 5000, "{deleted}");
}

/// Set by `cargo xtask vm-test`, whose guests boot with `bpf` among their
/// active LSMs: there `--guard deny` must start.
const EXPECT_BPF_LSM: &str = "MNTRACE_EXPECT_BPF_LSM";

/// Whether `--guard deny` is refused on this kernel; a refusal is checked:
/// never where vm-test says BPF LSM is on, with the kernel's reason, exit
/// code 7, and `doctor` agreeing that LSM programs are not accepted (this
/// project's hosts refuse even a trivial one).
fn deny_refused() -> bool {
    require_root();
    let Some(err) = mntrace::loader::Tracer::start(&TraceOptions {
        guard: GuardMode::Deny,
        pids: vec![1],
        ..Default::default()
    })
    .err() else {
        return false;
    };
    assert!(
        std::env::var_os(EXPECT_BPF_LSM).is_none(),
        "refused where BPF LSM is active: {err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("--guard deny") && text.contains("lsm/path_unlink"),
        "{text}"
    );
    assert_eq!(err.exit_code(), mntrace::error::exit::REFUSED);
    let doctor = mntrace::doctor::run();
    let lsm = doctor.checks.iter().find(|f| f.id == "lsm").expect("lsm");
    assert_ne!(lsm.state, "accepted", "doctor disagrees: {lsm:?}");
    true
}

/// `--guard deny` on the replica where the kernel accepts BPF LSM programs
/// (the vm-test guests): every deletion it tries in the busy clone returns
/// EPERM, the first is recorded as the denial, the incident is prevented
/// with nothing deleted, and the layer is whole on disk. Where the kernel
/// refuses them, the refusal (`deny_refused`).
#[test]
fn guard_deny_fails_the_replicas_deletions_with_eperm_or_is_refused_with_the_reason() {
    if deny_refused() {
        return;
    }
    let Replica {
        l,
        fx,
        pid,
        mut live,
        clone,
    } = replica_under(GuardMode::Deny, 0);
    let (status, lines) = fx.wait_status();
    assert!(status.success(), "not signalled: {status:?} {lines:?}");
    check_setup(&lines);
    assert_eq!(op(&lines, 14)["errno"], EBUSY);
    let removed = op(&lines, 16);
    assert_eq!(removed["errno"], EPERM, "RemoveAll failed: {removed}");
    assert_eq!(l.layer1_left(), LAYER1, "nothing of the layer was lost");
    live.pump();
    assert_guard_event(&live, &l, pid, clone, GuardAction::Denied);
    // Every deletion it tried in the clone was denied, the first one too.
    let in_clone: Vec<&Event> = live
        .out
        .events
        .iter()
        .filter(|e| matches!(&e.args, Args::Delete { dir, .. } if dir.mnt_id == clone.0))
        .collect();
    assert!(!in_clone.is_empty());
    for e in &in_clone {
        assert_eq!(e.errno(), Some(EPERM), "{e:#?}");
    }
    let incidents = live.finish();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    assert_prevented(&incidents[0], &l, pid, clone, GuardAction::Denied);
    assert_eq!(live.pipeline.stats.guard[GuardAction::Denied as usize], 1);
    assert_eq!(live.traced.drops().total(), 0);
}

/// Go's real `os.RemoveAll` (`go/pods.go`: two pods sharing one layer, an
/// id-mapped clone each, pod 0's clone held busy; both cleaned up in
/// parallel goroutines with a plain `umount2`, then `os.RemoveAll`) under
/// the guard `mode`: acted on at its first listing inside pod 0's clone,
/// with nothing of the layer lost. Returns the guard's events and the
/// incidents.
fn go_remove_all_under(mode: GuardMode) -> (Vec<(Event, Guard)>, Vec<Incident>) {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let s = scratch();
    let layer = s
        .path()
        .join("io.containerd.snapshotter.v1.overlayfs/snapshots/7/fs");
    let files: Vec<String> = (0..500).map(|i| format!("lib/f{i}")).collect();
    let mut all: Vec<&str> = vec!["bin/sh", "etc/passwd"];
    all.extend(files.iter().map(String::as_str));
    make_tree(&layer, &all);
    let tmp = s.path().join("tmpmounts");
    for k in 0..2 {
        std::fs::create_dir_all(tmp.join(format!("ovl-idmapped{k}/0"))).expect("mkdir");
    }
    let tools = scratch();
    let pods = go_build(tools.path(), "pods", include_str!("go/pods.go"));
    // Only the Go program is traced (its comm): tests running in parallel
    // are never acted on by this tracer.
    let mut live = Live::start(TraceOptions {
        comm: Some(b"pods".to_vec()),
        guard: mode,
        ..Default::default()
    });
    let mut child = Command::new("unshare")
        .args(["-m", "--propagation", "private"])
        .arg(&pods)
        .arg(&layer)
        .arg(&tmp)
        .arg("2")
        .arg("bin/sh") // pod 0 is held
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the pods program");
    let pid = child.id();
    let left = || all.iter().filter(|f| layer.join(f).exists()).count();
    if mode == GuardMode::Stop {
        wait_stopped(pid);
        assert_eq!(left(), all.len(), "frozen before any loss");
        live.pump_and_scan();
        kill(pid);
    }
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let mut out = String::new();
    let _ = child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out);
    assert!(!out.contains("\"done\""), "it never finished: {out}");
    assert_eq!(left(), all.len(), "nothing of the layer was lost");
    let incidents = live.finish();
    let guards = guard_events(&live)
        .into_iter()
        .map(|(e, g)| (e.clone(), g.clone()))
        .collect();
    (guards, incidents)
}

/// What both modes must show: one action on the Go program, at its
/// listing of pod 0's clone, in an incident with nothing deleted.
fn assert_go_acted_on(guards: &[(Event, Guard)], incidents: &[Incident], action: GuardAction) {
    assert_eq!(guards.len(), 1, "{guards:#?}");
    let (ev, g) = &guards[0];
    assert_eq!(&ev.comm[..], b"pods");
    assert_eq!(g.action, action);
    assert_eq!(g.trigger, GUARD_AT_LISTING);
    assert!(
        g.mount.path.bytes.ends_with(b"/tmpmounts/ovl-idmapped0/0"),
        "{:?}",
        g.mount.path
    );
    assert_ne!(g.mount.flags & DIR_IDMAPPED, 0);
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let inc = &incidents[0];
    assert_eq!(inc.count, 0);
    assert_eq!(inc.prevented.len(), 1);
    assert_eq!(inc.prevented[0].action, action);
    assert_eq!(inc.prevented[0].by.pid, ev.pid);
    assert_eq!(inc.mount.mnt_id, g.mount.mnt_id);
}

#[test]
fn guard_stop_freezes_gos_real_remove_all_before_any_loss() {
    require_root();
    let (guards, incidents) = go_remove_all_under(GuardMode::Stop);
    assert_go_acted_on(&guards, &incidents, GuardAction::Stopped);
    // The mount table was read while it was frozen.
    let inc = &incidents[0];
    assert_eq!(inc.severity, Severity::Critical);
    assert!(inc
        .mount
        .backing_root
        .as_deref()
        .is_some_and(|r| r.ends_with(b"/snapshots/7/fs")));
    let saved = inc.prevented[0]
        .saved
        .as_ref()
        .expect("counted while frozen");
    assert_eq!(
        saved.entries, 505,
        "bin, bin/sh, etc, etc/passwd, lib and 500 files"
    );
}

#[test]
fn guard_kill_kills_gos_real_remove_all_before_any_loss() {
    require_root();
    let (guards, incidents) = go_remove_all_under(GuardMode::Kill);
    assert_go_acted_on(&guards, &incidents, GuardAction::Killed);
}

/// `mntrace record --guard stop` on the replica: the guard acts, the
/// recorder keeps the guard's record, and triage of the recording gives
/// exactly the incident (prevented, nothing deleted) the live run gave.
#[test]
fn a_recording_with_the_guard_gives_triage_the_prevented_incident() {
    let l = Layout::new();
    let rec = scratch();
    let dir = rec.path().join("rec");
    let mut fx = Fixture::spawn(&l.buggy_ops(0));
    let pid = fx.pid;
    let recorder = start_recording(&dir, pid, &["--json", "--guard", "stop"]);
    fx.release();
    wait_stopped(pid);
    // The recorder reads the frozen process's mount table and holders.
    std::thread::sleep(std::time::Duration::from_millis(700));
    kill(pid);
    let (status, _) = fx.wait_status();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let out = recorder.stop();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(l.layer1_left(), LAYER1, "nothing of the layer was lost");
    let live = incidents_of(&out.stdout);
    assert_eq!(live.len(), 1, "{live:#?}");
    let inc = &live[0];
    assert_eq!(inc["count"], 0);
    assert_eq!(inc["deletions"], serde_json::json!([]));
    assert_eq!(inc["severity"], "critical");
    let p = &inc["prevented"];
    assert_eq!(p.as_array().map(Vec::len), Some(1), "{inc:#}");
    assert_eq!(p[0]["action"], "stopped");
    assert_eq!(p[0]["signal"], "SIGSTOP");
    assert_eq!(p[0]["trigger"], "listing");
    assert_eq!(p[0]["process"]["pid"], pid);
    assert_eq!(p[0]["result"], 0);
    assert_eq!(p[0]["saved"]["entries"], LAYER1_ENTRIES.len());
    assert_eq!(p[0]["saved"]["under"], l.l1.to_str().expect("utf-8"));
    assert_eq!(incidents_of(&replay_json("triage", &dir, &[])), live);
    let guards: Vec<serde_json::Value> = String::from_utf8_lossy(&replay_json(
        "query",
        &dir,
        &["-k".as_ref(), "guard".as_ref()],
    ))
    .lines()
    .map(|l| serde_json::from_str(l).expect("JSON line"))
    .collect();
    assert_eq!(guards.len(), 1, "{guards:#?}");
    assert_eq!(guards[0]["syscall"], "guard");
    assert_eq!(
        guards[0]["args"]["mount"]["path"],
        l.t(0).to_str().expect("utf-8")
    );
}

/// A tmpfs at `dir/m` with `f0`..`f9`, held busy by `f0`, for the ops
/// after `unmount` (given as the ops that unmount it, relative or not).
fn busy_tmpfs(dir: &std::path::Path, unmount: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    let m = dir.join("m");
    let mut v = os(&[
        &"unshare-mntns",
        &"mkdirs",
        &m,
        &"mount-tmpfs",
        &m,
        &"touch-many",
        &m,
        &"10",
        &"hold",
        &m.join("f0"), // op 5
    ]);
    v.extend(os(unmount));
    v
}

/// The files of `dir/m` left, as process `pid` (frozen in its namespace)
/// sees them.
fn left_in(pid: u32, dir: &std::path::Path) -> Vec<String> {
    let root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    let m = root.join(dir.join("m").strip_prefix("/").expect("absolute"));
    let mut v: Vec<String> = std::fs::read_dir(&m)
        .expect("read the busy mount")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_relative_target_with_dots_and_slashes_is_the_same_mount() {
    // umount2("./m/./", 0) from the mount's parent: the kernel side makes
    // it absolute and normalizes it, and the listing of `dir/m` matches.
    let s = scratch();
    let ops = busy_tmpfs(
        s.path(),
        &[
            &"chdir",
            &s.path(),
            &"umount",
            &"./m/./",
            &"0", // 7: EBUSY
            &"remove-all",
            &s.path().join("m"), // 8
        ],
    );
    let mut fx = Fixture::spawn(&ops);
    let pid = fx.pid;
    let mut live = guarded(pid, GuardMode::Stop);
    fx.release();
    assert_eq!(fx.wait_for_op(7)["errno"], EBUSY);
    wait_stopped(pid);
    let all: Vec<String> = (0..10).map(|i| format!("f{i}")).collect();
    assert_eq!(left_in(pid, s.path()), all, "nothing deleted");
    live.pump();
    let gs = guard_events(&live);
    assert_eq!(gs.len(), 1, "{gs:#?}");
    assert_eq!(&gs[0].1.mount.path.bytes[..], b(&s.path().join("m")));
    assert_eq!(gs[0].1.trigger, GUARD_AT_LISTING);
    kill(pid);
}

#[test]
fn a_deletion_by_fd_without_a_listing_is_acted_on_at_that_deletion() {
    // The process opens the busy mount's root and deletes names it knows:
    // the first deletion goes ahead (a signal sent at a syscall's entry is
    // delivered when it returns), nothing after it does.
    let s = scratch();
    let m = s.path().join("m");
    let ops = busy_tmpfs(
        s.path(),
        &[
            &"umount",
            &m,
            &"0", // 6: EBUSY
            &"open-dir",
            &m, // 7
            &"unlinkat",
            &"@7",
            &"f1",
            &"0", // 8
            &"unlinkat",
            &"@7",
            &"f2",
            &"0", // 9
        ],
    );
    let mut fx = Fixture::spawn(&ops);
    let pid = fx.pid;
    let mut live = guarded(pid, GuardMode::Stop);
    fx.release();
    assert_eq!(fx.wait_for_op(6)["errno"], EBUSY);
    let fd = u64_of(&fx.wait_for_op(7), "ret") as i32;
    wait_stopped(pid);
    let mut want: Vec<String> = (0..10)
        .filter(|&i| i != 1)
        .map(|i| format!("f{i}"))
        .collect();
    want.sort();
    assert_eq!(left_in(pid, s.path()), want, "f1 went, then it was stopped");
    live.pump();
    let gs = guard_events(&live);
    assert_eq!(gs.len(), 1, "{gs:#?}");
    let g = gs[0].1;
    assert_eq!(g.trigger, tracer_common::event::GUARD_AT_DELETE);
    assert_eq!(g.fd, Some(fd));
    assert_eq!(&g.mount.path.bytes[..], b(&m));
    kill(pid);
    let (status, lines) = fx.wait_status();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    // Stopped as the first deletion returned: before it could report it.
    assert!(
        !lines.iter().any(|l| l["i"] == 8 || l["i"] == 9),
        "{lines:?}"
    );
}

/// `--guard deny` (where the kernel accepts it) denies every way of
/// removing an entry on the busy mount, the paths the signal guard cannot
/// act on included: a deletion by absolute path (its lookup starts on
/// another mount), renames within the mount (syscall and io_uring), and
/// io_uring unlinks run by an io-wq worker and by a SQPOLL ring's thread;
/// a deletion on another mount goes ahead. One denial is recorded, at the
/// first call.
#[test]
fn guard_deny_denies_deletions_by_path_renames_and_io_uring_on_the_busy_mount() {
    if deny_refused() {
        return;
    }
    let s = scratch();
    let m = s.path().join("m");
    let other = s.path().join("other");
    let ops = busy_tmpfs(
        s.path(),
        &[
            &"mkdirs",
            &other, // 6
            &"umount",
            &m,
            &"0", // 7: EBUSY
            &"unlink",
            &m.join("f1"), // 8
            &"rename",
            &m.join("f2"),
            &m.join("g2"), // 9
            &"open-dir",
            &m, // 10
            &"uring-unlinkat-async",
            &"@10",
            &"f3",
            &"0", // 11
            &"uring-renameat",
            &"@10",
            &"f4",
            &"@10",
            &"g4",
            &"0", // 12
            &"uring-unlinkat-sqpoll",
            &"@10",
            &"f5",
            &"0", // 13
            &"rmdir",
            &other, // 14: another mount
            &"sleep-ms",
            &"3000", // 15: the mount is looked at meanwhile
        ],
    );
    let mut fx = Fixture::spawn(&ops);
    let pid = fx.pid;
    let mut live = guarded(pid, GuardMode::Deny);
    fx.release();
    assert_eq!(fx.wait_for_op(7)["errno"], EBUSY);
    for i in [8, 9, 11, 12, 13] {
        assert_eq!(fx.wait_for_op(i)["errno"], EPERM, "op {i}");
    }
    assert_eq!(fx.wait_for_op(14)["errno"], 0, "another mount: not denied");
    let all: Vec<String> = (0..10).map(|i| format!("f{i}")).collect();
    assert_eq!(left_in(pid, s.path()), all, "nothing removed or renamed");
    assert!(!other.exists());
    let (status, lines) = fx.wait_status();
    assert!(status.success(), "{status:?} {lines:?}");
    live.pump();
    let gs = guard_events(&live);
    assert_eq!(gs.len(), 1, "{gs:#?}");
    let (ev, g) = gs[0];
    assert_eq!((ev.pid, ev.tid), (pid, pid));
    assert_eq!(g.action, GuardAction::Denied);
    assert_eq!(g.trigger, GUARD_AT_DELETE, "the unlink by path");
    assert_eq!((g.fd, g.signal, ev.ret), (None, 0, 0));
    assert_eq!(&g.mount.path.bytes[..], b(&m));
    // The calls as traced: each failed with EPERM, the io_uring ones too.
    let failed = |kind: EventKind| {
        live.out
            .events
            .iter()
            .filter(|e| e.kind == kind && e.pid == pid)
            .map(|e| e.errno())
            .collect::<Vec<_>>()
    };
    // The unlink by path, then the rmdir on the other mount.
    assert_eq!(failed(EventKind::Unlinkat), [Some(EPERM), None]);
    assert_eq!(failed(EventKind::Renameat), [Some(EPERM)]);
    assert_eq!(failed(EventKind::UringUnlinkat), [Some(EPERM), Some(EPERM)]);
    assert_eq!(failed(EventKind::UringRenameat), [Some(EPERM)]);
    let incidents = live.finish();
    let inc = incidents
        .iter()
        .find(|i| !i.prevented.is_empty())
        .expect("the prevented incident");
    assert_eq!(inc.count, 0, "{inc:#?}");
    assert_eq!(inc.prevented[0].action, GuardAction::Denied);
    assert_eq!(live.pipeline.stats.guard[GuardAction::Denied as usize], 1);
}

#[test]
fn a_target_with_dot_dot_is_not_marked() {
    // `..` cannot be resolved lexically without the filesystem (symlinks):
    // no mark, so nothing is acted on; the incident is reported as usual.
    let s = scratch();
    let m = s.path().join("m");
    let dotdot = m.join("../m");
    let (lines, live) = never_acted_on(&busy_tmpfs(
        s.path(),
        &[
            &"umount",
            &dotdot,
            &"0", // 6: EBUSY
            &"remove-all",
            &m, // 7
        ],
    ));
    assert_eq!(op(&lines, 6)["errno"], EBUSY);
    assert_eq!(
        op(&lines, 7)["ret"],
        10,
        "all ten deleted (f0 is held open, its name goes all the same)"
    );
    let _ = live;
}

/// A kubelet pod directory with a live volume-subpath bind of a local PV
/// (kubernetes #72257), for `--guard-crossings`. The PV is at `pv`; the
/// pod's own files are deleted before the walk reaches the bind.
struct PodWithPv {
    dir: tempfile::TempDir,
}

/// The PV's files.
const PV_FILES: &[&str] = &["c", "data/a", "data/b"];

impl PodWithPv {
    /// Fixture ops: in a namespace of its own, the PV on a tmpfs of its own
    /// (another filesystem than the pod's), bound at the mountpoint, then
    /// Go's RemoveAll (the fixture's replica) of the pod directory, then
    /// `after`.
    fn remove_all_ops(&self, after: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
        let disks = self.dir.path().join("disks");
        std::fs::create_dir_all(&disks).expect("mkdir");
        let mut ops = os(&[
            &"unshare-mntns",
            &"mount-tmpfs",
            &disks,
            &"mkdirs",
            &self.pv().join("data"),
        ]);
        for f in PV_FILES {
            ops.extend(os(&[&"write", &self.pv().join(f)]));
        }
        ops.extend(os(&[
            &"bind",
            &self.pv(),
            &self.mountpoint(),
            &"remove-all",
            &self.pod(),
        ]));
        ops.extend(os(after));
        ops
    }

    fn new() -> PodWithPv {
        let p = PodWithPv { dir: scratch() };
        make_tree(&p.pod(), &["etc-hosts", "containers/ctr/0.log"]);
        std::fs::create_dir_all(p.mountpoint()).expect("mkdir mountpoint");
        p
    }
    fn pod(&self) -> std::path::PathBuf {
        self.dir.path().join("kubelet/pods/0b3f-uid")
    }
    fn mountpoint(&self) -> std::path::PathBuf {
        self.pod().join("volume-subpaths/pv-vol/app/0")
    }
    fn pv(&self) -> std::path::PathBuf {
        self.dir.path().join("disks/pv1")
    }
    /// A shell script binding the PV into the pod, then exec'ing `argv`
    /// (so the deleter keeps the shell's pid).
    fn bind_then(&self, argv: &[&std::ffi::OsStr]) -> String {
        let quoted: Vec<String> = argv
            .iter()
            .map(|a| format!("'{}'", a.to_string_lossy()))
            .collect();
        format!(
            "mount --bind '{}' '{}' && exec {}",
            self.pv().display(),
            self.mountpoint().display(),
            quoted.join(" ")
        )
    }
    fn pv_left(&self, root: &std::path::Path) -> usize {
        let pv = root.join(self.pv().strip_prefix("/").expect("absolute"));
        PV_FILES.iter().filter(|f| pv.join(f).exists()).count()
    }
}

/// The live pipeline over a tracer filtered to command name `comm`, with
/// `--guard mode --guard-crossings` (the deleter is a real program started
/// by a shell: its pid is not known in advance).
fn crossings_of_comm(comm: &[u8], mode: GuardMode) -> Live {
    Live::start(TraceOptions {
        comm: Some(comm.to_vec()),
        guard: mode,
        guard_crossings: true,
        ..Default::default()
    })
}

#[test]
fn guard_crossings_stops_a_remove_all_at_its_first_listing_in_a_pv_bind() {
    // The PV is a tmpfs of its own (another filesystem), in the fixture's
    // namespace; the walk starts on the pod directory's filesystem.
    let p = PodWithPv::new();
    let ops = p.remove_all_ops(&[]);
    let mut fx = Fixture::spawn(&ops);
    let pid = fx.pid;
    let mut live = guarded_crossings(pid, GuardMode::Stop);
    fx.release();
    wait_stopped(pid);
    let root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    assert_eq!(p.pv_left(&root), PV_FILES.len(), "the PV is whole");
    live.pump();
    let gs = guard_events(&live);
    assert_eq!(gs.len(), 1, "{gs:#?}");
    let (ev, g) = (gs[0].0.clone(), gs[0].1.clone());
    assert_eq!(ev.pid, pid);
    assert_eq!(g.trigger, tracer_common::event::GUARD_AT_CROSSING);
    assert_eq!(
        (g.action, g.signal, g.busy_ns),
        (GuardAction::Stopped, SIGSTOP, 0)
    );
    assert_eq!(&g.mount.path.bytes[..], b(&p.mountpoint()));
    assert_ne!(g.mount.flags & DIR_SUBTREE, 0, "a bind of a directory");
    assert_ne!(g.origin_mnt_id, 0);
    assert_ne!(g.origin_mnt_id, g.mount.mnt_id);
    kill(pid);
    let incidents = live.finish();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let inc = &incidents[0];
    let w = inc.walk().expect("a crossing incident");
    assert_eq!((w.by.pid, w.origin_mnt_id), (pid, g.origin_mnt_id));
    assert_eq!(inc.count, 0);
    assert_eq!(inc.severity, Severity::Critical);
    assert_eq!(inc.root_label.as_deref(), Some("kubelet volume subpath"));
    assert_eq!(&inc.mount.mountpoint[..], b(&p.mountpoint()));
    assert_eq!(inc.mount.backing_root.as_deref(), Some(b(&p.pv())));
    assert_eq!(inc.prevented.len(), 1);
    assert_eq!(
        inc.prevented[0].trigger,
        tracer_common::event::GUARD_AT_CROSSING
    );
    assert_eq!(inc.prevented[0].action, GuardAction::Stopped);
    let saved = inc.prevented[0]
        .saved
        .as_ref()
        .expect("counted while frozen");
    assert_eq!(
        (&saved.under[..], saved.entries),
        (b(&p.pv()), 4),
        "c, data, data/a, data/b"
    );
}

/// `--guard deny --guard-crossings` (where the kernel accepts it): the walk
/// is decided at its first listing in the PV bind, as `stop` is, and every
/// deletion it then tries there fails with EPERM; the PV is whole and the
/// walk's crossing incident shows the denial with nothing deleted.
#[test]
fn guard_crossings_deny_fails_a_remove_alls_deletions_in_a_pv_bind() {
    if deny_refused() {
        return;
    }
    let p = PodWithPv::new();
    let ops = p.remove_all_ops(&[&"sleep-ms", &"3000"]);
    // unshare-mntns, mount-tmpfs, mkdirs, a write per file, bind, remove-all.
    let remove_all = 5 + PV_FILES.len();
    let mut fx = Fixture::spawn(&ops);
    let pid = fx.pid;
    let mut live = guarded_crossings(pid, GuardMode::Deny);
    fx.release();
    let removed = fx.wait_for_op(remove_all);
    assert_eq!(removed["op"], "remove-all");
    assert_ne!(removed["errno"], 0, "RemoveAll failed: {removed}");
    let root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    assert_eq!(p.pv_left(&root), PV_FILES.len(), "the PV is whole");
    let (status, lines) = fx.wait_status();
    assert!(status.success(), "not signalled: {status:?} {lines:?}");
    live.pump();
    let gs = guard_events(&live);
    assert_eq!(gs.len(), 1, "{gs:#?}");
    let g = gs[0].1.clone();
    assert_eq!(g.trigger, tracer_common::event::GUARD_AT_CROSSING);
    assert_eq!((g.action, g.signal, g.busy_ns), (GuardAction::Denied, 0, 0));
    assert_eq!(&g.mount.path.bytes[..], b(&p.mountpoint()));
    // What it tried in the bind: all denied.
    let in_bind: Vec<&Event> = live
        .out
        .events
        .iter()
        .filter(|e| matches!(&e.args, Args::Delete { dir, .. } if dir.mnt_id == g.mount.mnt_id))
        .collect();
    assert!(!in_bind.is_empty());
    for e in &in_bind {
        assert_eq!(e.errno(), Some(EPERM), "{e:#?}");
    }
    let incidents = live.finish();
    let inc = incidents
        .iter()
        .find(|i| i.walk().is_some())
        .expect("the crossing incident");
    assert_eq!(inc.count, 0, "{inc:#?}");
    assert_eq!(inc.prevented.len(), 1);
    assert_eq!(inc.prevented[0].action, GuardAction::Denied);
}

#[test]
fn guard_crossings_kills_rm_rf_before_it_empties_a_pv_on_the_same_filesystem() {
    // The PV is a directory of the same filesystem as the pod (the scratch
    // tree), bound into the pod in a private namespace; coreutils rm -rf
    // of the pod is killed at its first listing in the bind, and the PV is
    // checked on disk from here.
    require_root();
    let p = PodWithPv::new();
    make_tree(&p.pv(), PV_FILES);
    // Only this test runs `rm` among the guard tests (the tracer is
    // filtered by its name).
    let mut live = crossings_of_comm(b"rm", GuardMode::Kill);
    let script = p.bind_then(&["rm".as_ref(), "-rf".as_ref(), p.pod().as_os_str()]);
    let status = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .status()
        .expect("run rm");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert_eq!(
        p.pv_left(std::path::Path::new("/")),
        PV_FILES.len(),
        "the PV is whole"
    );
    live.finish();
    let gs = guard_events(&live);
    assert_eq!(gs.len(), 1, "{gs:#?}");
    assert_eq!(&gs[0].0.comm[..], b"rm");
    assert_eq!(gs[0].1.action, GuardAction::Killed);
    assert_eq!(&gs[0].1.mount.path.bytes[..], b(&p.mountpoint()));
}

#[test]
fn guard_crossings_never_acts_on_a_bind_from_inside_the_tree_or_a_filesystem_of_its_own() {
    // Removing a tree holding a bind of another of its own directories (the
    // walk deletes that data anyway) and a tmpfs mounted inside it (not a
    // bind of a directory): nothing to prevent.
    let s = scratch();
    let t = s.path().join("tree");
    make_tree(&t, &["a/x", "a/y", "z"]);
    let m = t.join("b/m");
    let tm = t.join("tmp");
    std::fs::create_dir_all(&m).expect("mkdir");
    std::fs::create_dir_all(&tm).expect("mkdir");
    let (lines, _) = never_acted_on_with(
        &os(&[
            &"unshare-mntns",
            &"bind",
            &t.join("a"),
            &m,
            &"mount-tmpfs",
            &tm,
            &"touch-many",
            &tm,
            &"5",
            &"remove-all",
            &t, // 5
        ]),
        guarded_crossings,
    );
    assert_eq!(op(&lines, 5)["errno"], EBUSY, "the mountpoints stay");
}

#[test]
fn guard_crossings_stops_gos_real_remove_all_before_it_empties_a_pv() {
    // Go 1.19's own os.RemoveAll of the pod directory, the PV a directory
    // of the same filesystem bound into the pod in a private namespace:
    // frozen at its first listing in the bind, the PV checked on disk.
    require_root();
    let p = PodWithPv::new();
    make_tree(&p.pv(), PV_FILES);
    let tools = scratch();
    let bin = go_build(
        tools.path(),
        "removeall",
        "package main\nimport (\"fmt\"; \"os\")\nfunc main() { fmt.Println(\"removeall:\", os.RemoveAll(os.Args[1])) }\n",
    );
    let mut live = crossings_of_comm(b"removeall", GuardMode::Stop);
    let script = p.bind_then(&[bin.as_os_str(), p.pod().as_os_str()]);
    // unshare and sh exec: the pid stays the Go program's.
    let mut child = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run removeall");
    let pid = child.id();
    wait_stopped(pid);
    assert_eq!(
        p.pv_left(std::path::Path::new("/")),
        PV_FILES.len(),
        "the PV is whole"
    );
    live.pump();
    let gs = guard_events(&live);
    assert_eq!(gs.len(), 1, "{gs:#?}");
    assert_eq!((gs[0].0.pid, &gs[0].0.comm[..]), (pid, &b"removeall"[..]));
    assert_eq!(gs[0].1.action, GuardAction::Stopped);
    assert_eq!(gs[0].1.trigger, tracer_common::event::GUARD_AT_CROSSING);
    kill(pid);
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_eq!(p.pv_left(std::path::Path::new("/")), PV_FILES.len());
    let incidents = live.finish();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    assert_eq!(incidents[0].count, 0);
    assert_eq!(incidents[0].severity, Severity::Critical);
}

#[test]
fn a_remove_all_that_deletes_through_io_uring_is_stopped_at_its_listing_too() {
    // The replica, its RemoveAll's unlinks submitted through io_uring: the
    // walk still lists with getdents64, where the guard acts.
    let l = Layout::new();
    let ops: Vec<OsString> = l
        .buggy_ops(0)
        .into_iter()
        .map(|a| {
            if a == "remove-all" {
                "remove-all-uring".into()
            } else {
                a
            }
        })
        .collect();
    let mut fx = Fixture::spawn(&ops);
    let pid = fx.pid;
    let mut live = guarded(pid, GuardMode::Stop);
    fx.release();
    assert_eq!(fx.wait_for_op(14)["errno"], EBUSY);
    wait_stopped(pid);
    assert_eq!(l.layer1_left(), LAYER1, "nothing of the layer was lost");
    live.pump();
    let gs = guard_events(&live);
    assert_eq!(gs.len(), 1, "{gs:#?}");
    assert_eq!(gs[0].1.trigger, GUARD_AT_LISTING);
    assert_eq!(&gs[0].1.mount.path.bytes[..], b(&l.t(0)));
    kill(pid);
}
