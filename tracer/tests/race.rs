//! The race itself, for real: containerd 2.0.0-rc.0's id-mapped lower-layer
//! sequence with a failed unmount and a Go-style RemoveAll, and the
//! sequences that must not raise an incident.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;

use common::replica::*;
use common::*;
use mntrace::{config::TraceOptions, correlate::Severity, enrich::holders::Hold, model::Args};
use tracer_common::{event::CAP_BUSY, uapi::EBUSY};

/// The one incident of a buggy run, checked field by field.
/// `table`: the namespace was still alive when userspace processed the
/// EBUSY, so the mount table knew the mount (its mountinfo `root` is set).
fn assert_race_incident(
    l: &Layout,
    inc: &mntrace::correlate::Incident,
    fixture_pid: u32,
    clone_mnt: u32,
    table: bool,
) {
    assert_eq!(inc.severity, Severity::Critical);
    assert_eq!(inc.root_label.as_deref(), Some("containerd snapshot"));
    assert_eq!(inc.unmount().expect("busy unmount").by.pid, fixture_pid);
    assert_eq!(&inc.unmount().expect("busy unmount").target[..], b(&l.t(0)));
    assert_eq!(inc.unmount().expect("busy unmount").flags, 0);
    assert_eq!(inc.mount.mnt_id, clone_mnt);
    assert_eq!(&inc.mount.mountpoint[..], b(&l.t(0)));
    assert!(inc.mount.idmapped, "the clone is id-mapped");
    assert!(inc.mount.subtree, "the clone's root is the layer directory");
    assert_eq!(
        inc.mount.backing_root.as_deref(),
        Some(b(&l.l1)),
        "backing root is the snapshot"
    );
    if table {
        assert_eq!(inc.mount.root.as_deref(), Some(b(&l.l1)));
        assert_eq!(inc.mount.fstype.as_deref(), Some("ext4"));
    }
    let backing: BTreeSet<PathBuf> = inc
        .deletions
        .iter()
        .map(|d| to_path_buf(d.backing_path.as_deref().expect("backing path")))
        .collect();
    assert_eq!(
        backing,
        l.layer1_backing(),
        "every entry of the layer, by its real path"
    );
    let seen: BTreeSet<PathBuf> = inc.deletions.iter().map(|d| to_path_buf(&d.path)).collect();
    let want_seen: BTreeSet<PathBuf> = LAYER1_ENTRIES.iter().map(|e| l.t(0).join(e)).collect();
    assert_eq!(seen, want_seen, "paths as the deleting process saw them");
    assert_eq!(inc.count, LAYER1_ENTRIES.len() as u64);
    assert_eq!(inc.deletions.iter().filter(|d| d.is_dir).count(), 3);
    assert_eq!(
        inc.deleters.iter().map(|p| p.pid).collect::<Vec<_>>(),
        vec![fixture_pid]
    );
    assert!(
        inc.first_delay_ns > 0 && inc.first_delay_ns < 1_000_000_000,
        "{}",
        inc.first_delay_ns
    );
    assert_eq!(inc.lost_while_open, 0);
}

#[test]
fn containerd_idmapped_lowerdir_race_is_one_critical_incident() {
    let l = Layout::new();
    let mut fx = Fixture::spawn(&l.buggy_ops(3000));
    let pid = fx.pid;
    let mut live = Live::of_pid(pid);
    fx.release();
    let holder = u64_of(&fx.wait_for_op(13), "pid") as u32;
    let busy = fx.wait_for_op(14);
    assert_eq!(busy["errno"], EBUSY, "umount of the held clone");
    assert_eq!(
        fx.wait_for_op(15)["errno"],
        0,
        "umount of the other clone succeeds"
    );
    fx.wait_for_op(16);
    live.pump(); // the holder is still alive (op 17 sleeps)
    let lines = fx.wait();
    check_setup(&lines);
    let clone_mnt = u64_of(op(&lines, 12), "mnt_id") as u32;
    let incidents = live.finish();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let inc = &incidents[0];
    assert_race_incident(&l, inc, pid, clone_mnt, true);
    let holders = inc.holders.as_ref().expect("holders scanned at the EBUSY");
    let h = holders
        .holders
        .iter()
        .find(|h| h.pid == holder)
        .unwrap_or_else(|| panic!("holder {holder} not in {holders:#?}"));
    assert!(h.holds.iter().any(|x| matches!(x, Hold::Fd { path, .. } if path.starts_with(b(&l.t(0).join("bin/busybox"))))), "{h:#?}");
    assert_eq!(
        l.layer1_left(),
        Vec::<String>::new(),
        "the race really destroyed the layer"
    );
    assert_eq!(live.traced.drops().total(), 0);
}

#[test]
fn the_fixed_sequence_raises_nothing_and_keeps_the_layer() {
    let l = Layout::new();
    let mut fx = Fixture::spawn(&l.fixed_ops());
    let pid = fx.pid;
    let mut live = Live::of_pid(pid);
    fx.release();
    let lines = fx.wait();
    check_setup(&lines);
    for i in 14..=18 {
        assert_eq!(op(&lines, i)["errno"], 0, "op {i}: {}", op(&lines, i));
    }
    let incidents = live.finish();
    assert!(incidents.is_empty(), "{incidents:#?}");
    assert_eq!(l.layer1_left().len(), LAYER1.len());
    assert_eq!(live.pipeline.stats.ebusy_unmounts, 0);
}

#[test]
fn plain_rm_rf_of_ordinary_trees_raises_nothing() {
    require_root();
    let s = scratch();
    make_tree(
        s.path(),
        &["a/b/c/f1", "a/b/f2", "a/f3", "d/e/f4", "g h/\u{e9}/f5"],
    );
    // `read` pauses the shell until the tracer is attached; `exec` keeps the pid.
    let mut child = std::process::Command::new("sh")
        .args([
            "-c",
            "read x; exec rm -rf \"$0\"",
            s.path().to_str().expect("utf-8 scratch"),
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let mut live = Live::start(TraceOptions {
        pids: vec![child.id()],
        ..all_deletes()
    });
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), b"go\n").expect("release");
    assert!(child.wait().expect("wait rm").success());
    let incidents = live.finish();
    assert!(incidents.is_empty(), "{incidents:#?}");
    let deletes = live
        .out
        .events
        .iter()
        .filter(|e| e.kind.is_delete())
        .count();
    assert!(deletes >= 12, "rm's deletions were traced ({deletes})");
    assert!(!s.path().exists());
}

#[test]
fn ebusy_on_one_mount_and_deletions_on_another_raise_nothing() {
    let s = scratch();
    let a = s.path().join("a");
    let bdir = s.path().join("b");
    let ops: Vec<OsString> = vec![
        "unshare-mntns".into(), // 1
        "mkdirs".into(),
        a.clone().into(), // 2
        "mkdirs".into(),
        bdir.clone().into(), // 3
        "mount-tmpfs".into(),
        a.clone().into(), // 4
        "mount-tmpfs".into(),
        bdir.clone().into(), // 5
        "write".into(),
        a.join("f").into(), // 6
        "mkdirs".into(),
        bdir.join("d/e").into(), // 7
        "write".into(),
        bdir.join("d/e/x").into(), // 8
        "write".into(),
        bdir.join("d/y").into(), // 9
        "hold".into(),
        a.join("f").into(), // 10
        "umount".into(),
        a.clone().into(),
        "0".into(), // 11: EBUSY
        "remove-all".into(),
        bdir.join("d").into(), // 12: inside b, which is fine
    ];
    let mut fx = Fixture::spawn(&ops);
    let pid = fx.pid;
    let mut live = Live::of_pid(pid);
    fx.release();
    let lines = fx.wait();
    assert_eq!(op(&lines, 11)["errno"], EBUSY);
    assert_eq!(
        u64_of(op(&lines, 12), "ret"),
        4,
        "x, e, y, d removed: {}",
        op(&lines, 12)
    );
    let incidents = live.finish();
    assert!(incidents.is_empty(), "{incidents:#?}");
    // The deletions were captured (the process had an EBUSY), and judged unrelated.
    let busy_captured = live
        .out
        .events
        .iter()
        .filter(|e| {
            matches!(e.args, Args::Delete { capture, .. } if capture & CAP_BUSY != 0) && e.ret == 0
        })
        .count();
    assert_eq!(busy_captured, 4, "{:#?}", live.out.events);
}

#[test]
fn deletions_while_the_reader_is_held_back_are_still_caught() {
    // Nothing in userspace runs between the EBUSY and the deletions: the
    // tracer is not drained until the fixture has exited.
    let l = Layout::new();
    let mut fx = Fixture::spawn(&l.buggy_ops(0));
    let pid = fx.pid;
    let mut live = Live::of_pid(pid);
    fx.release();
    let lines = fx.wait();
    check_setup(&lines);
    let clone_mnt = u64_of(op(&lines, 12), "mnt_id") as u32;
    let incidents = live.finish();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    assert_race_incident(&l, &incidents[0], pid, clone_mnt, false);
    for e in live
        .out
        .events
        .iter()
        .filter(|e| e.kind.is_delete() && e.ret == 0)
    {
        let Args::Delete { capture, .. } = e.args else {
            unreachable!()
        };
        assert_ne!(
            capture & CAP_BUSY,
            0,
            "captured because of the in-kernel EBUSY mark: {e:?}"
        );
    }
}

#[test]
fn fifty_replicas_in_parallel_are_fifty_incidents() {
    const N: usize = 50;
    let layouts: Vec<Layout> = (0..N).map(|_| Layout::new()).collect();
    let mut fxs: Vec<Fixture> = layouts
        .iter()
        .map(|l| Fixture::spawn(&l.buggy_ops(0)))
        .collect();
    let pids: Vec<u32> = fxs.iter().map(|f| f.pid).collect();
    let mut live = Live::start(TraceOptions {
        pids: pids.clone(),
        ..Default::default()
    });
    for f in &mut fxs {
        f.release();
    }
    let results: Vec<Vec<serde_json::Value>> = fxs.into_iter().map(|f| f.wait()).collect();
    let incidents = live.finish();
    assert_eq!(
        incidents.len(),
        N,
        "{:#?}",
        incidents
            .iter()
            .map(|i| (i.unmount().map_or(0, |u| u.by.pid), i.count))
            .collect::<Vec<_>>()
    );
    for (i, l) in layouts.iter().enumerate() {
        check_setup(&results[i]);
        let clone_mnt = u64_of(op(&results[i], 12), "mnt_id") as u32;
        let inc = incidents
            .iter()
            .find(|inc| inc.unmount().expect("busy unmount").by.pid == pids[i])
            .unwrap_or_else(|| panic!("no incident for replica {i}"));
        assert_race_incident(l, inc, pids[i], clone_mnt, false);
    }
    assert_eq!(live.traced.drops().total(), 0);
}

/// `mntrace record --dir DIR -p PID [EXTRA]`, once it says it is recording.
/// `mntrace record` during the race, killed with SIGKILL a little after it:
/// what it flushed (at least every second) is on disk, every segment stands
/// alone, and the raw kernel records, replayed through the same decoder and
/// pipeline, give the incident with the layer's backing paths.
#[test]
fn a_recording_killed_with_sigkill_keeps_the_race() {
    use mntrace::recording::format::{End, Reader, RecordKind};
    use mntrace::recording::writer::segments;

    let l = Layout::new();
    let rec = scratch();
    let dir = rec.path().join("rec");
    let mut fx = Fixture::spawn(&l.buggy_ops(0));
    let pid = fx.pid;
    let mntrace = start_recording(&dir, pid, &[]);
    fx.release();
    let lines = fx.wait();
    check_setup(&lines);
    // More than the flush interval: everything before is on disk.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    mntrace.kill();

    let segs = segments(&dir).expect("segments");
    assert_eq!(segs.len(), 1, "{segs:?}");
    let (_, path, compressed) = &segs[0];
    assert!(!compressed, "killed before it could close the segment");
    let mut reader = Reader::open(path).expect("readable");
    let records: Vec<_> = reader.by_ref().collect();
    assert_eq!(reader.end(), Some(&End::Clean));
    assert_eq!(records[0].kind, RecordKind::Segment);
    let header: serde_json::Value = serde_json::from_slice(&records[0].payload).expect("JSON");
    for key in [
        "host",
        "kernel",
        "boot_id",
        "clock",
        "settings",
        "mount_tables",
    ] {
        assert!(
            !header[key].is_null(),
            "segment header lacks {key}: {header}"
        );
    }
    assert_eq!(header["settings"]["pids"], serde_json::json!([pid]));
    assert!(!header["mount_tables"]
        .as_array()
        .expect("tables")
        .is_empty());

    // Replay: the raw records through the decoder and the pipeline.
    let mut pipeline = mntrace::pipeline::Pipeline::new(Default::default(), Default::default());
    let mut out = Collect::default();
    let mut kernel = 0;
    for r in records.iter().filter(|r| r.kind == RecordKind::Kernel) {
        let ev = mntrace::decode::decode(r.payload.clone()).expect("a kernel record");
        assert_eq!(ev.pid, pid);
        pipeline.event(&ev, &mut out).expect("pipeline");
        kernel += 1;
    }
    pipeline.finish(&mut out).expect("finish");
    assert!(kernel >= 20, "{kernel} kernel records");
    assert_eq!(out.incidents.len(), 1, "{:#?}", out.incidents);
    let clone_mnt = u64_of(op(&lines, 12), "mnt_id") as u32;
    assert_race_incident(&l, &out.incidents[0], pid, clone_mnt, false);

    // The same through the triage command: the incident with the layer's
    // backing paths.
    let found = incidents_of(&replay_json("triage", &dir, &[]));
    assert_eq!(found.len(), 1, "{found:#?}");
    let backing: BTreeSet<PathBuf> = found[0]["deletions"]
        .as_array()
        .expect("deletions")
        .iter()
        .map(|d| PathBuf::from(d["backing_path"].as_str().expect("backing path")))
        .collect();
    assert_eq!(backing, l.layer1_backing());
    assert_eq!(found[0]["severity"], "critical");

    // A torn tail (a crash in the middle of a write) is detected, and every
    // record before it is still read.
    let bytes = std::fs::read(path).expect("read");
    std::fs::write(path, &bytes[..bytes.len() - 3]).expect("cut");
    let mut reader = Reader::open(path).expect("readable");
    assert_eq!(reader.by_ref().count(), records.len() - 1);
    assert!(
        matches!(reader.end(), Some(End::Torn { .. })),
        "{:?}",
        reader.end()
    );
}

/// `mntrace triage` of a recording gives exactly the incidents the live run
/// gave (same decoder, same pipeline; the recorded facts stand in for the
/// system): the race replica recorded with its incidents on stdout, then
/// replayed.
#[test]
fn triage_of_a_recording_gives_exactly_the_live_incidents() {
    let l = Layout::new();
    let rec = scratch();
    let dir = rec.path().join("rec");
    let mut fx = Fixture::spawn(&l.buggy_ops(1500));
    let pid = fx.pid;
    let live = start_recording(&dir, pid, &["--json"]);
    fx.release();
    let lines = fx.wait();
    check_setup(&lines);
    let out = live.stop();
    assert!(out.status.success(), "{:?}", out.status);
    let live_incidents = incidents_of(&out.stdout);
    assert_eq!(live_incidents.len(), 1, "{live_incidents:#?}");
    let holders = &live_incidents[0]["holders"]["processes"];
    assert_eq!(
        holders.as_array().map(Vec::len),
        Some(1),
        "holders scanned live"
    );

    assert_eq!(
        incidents_of(&replay_json("triage", &dir, &[])),
        live_incidents
    );

    // The forensic question: what removed something from the layer,
    // whichever mount it went through? And from the clone, as seen?
    let query = |args: &[&std::ffi::OsStr]| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&replay_json("query", &dir, args))
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    };
    let field = |evs: &[serde_json::Value], key: &str| -> BTreeSet<PathBuf> {
        evs.iter()
            .map(|e| PathBuf::from(e[key].as_str().expect(key)))
            .collect()
    };
    let by_layer = query(&["--ok".as_ref(), "--path".as_ref(), l.l1.as_os_str()]);
    assert_eq!(field(&by_layer, "backing_path"), l.layer1_backing());
    assert!(by_layer.iter().all(|e| e["pid"] == pid && e["ret"] == 0));
    let seen: BTreeSet<PathBuf> = by_layer
        .iter()
        .map(|e| {
            PathBuf::from(e["args"]["dir"]["path"].as_str().expect("dir"))
                .join(e["args"]["pathname"].as_str().expect("name"))
        })
        .collect();
    let want_seen: BTreeSet<PathBuf> = LAYER1_ENTRIES.iter().map(|e| l.t(0).join(e)).collect();
    assert_eq!(seen, want_seen);
    let by_clone = query(&["--ok".as_ref(), "--path".as_ref(), l.t(0).as_os_str()]);
    assert_eq!(
        by_clone, by_layer,
        "the same deletions, as seen through the clone"
    );
    let busy = query(&["--failed".as_ref(), "-k".as_ref(), "umount".as_ref()]);
    assert_eq!(busy.len(), 1, "{busy:#?}");
    assert_eq!(busy[0]["errno"], "EBUSY");
}
