//! Nothing slow sits on the path that drains the ring buffer: a busy
//! unmount fails, and a 200,000-file tree is deleted through the busy mount
//! right away, while the pipeline behind the reader resolves the mount,
//! scans for holders and builds the incident. With the default ring size
//! the kernel must drop nothing, and the incident must count every deletion.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

const DIRS: usize = 200;
const PER_DIR: usize = 1000;

#[test]
fn a_200k_file_delete_right_after_the_ebusy_loses_nothing() {
    require_root();
    let s = scratch();
    let src = s.path().join("src");
    let mnt = s.path().join("mnt");
    let tree = src.join("tree");
    std::fs::create_dir(&src).expect("mkdir src");
    std::fs::create_dir(&mnt).expect("mkdir mnt");
    // The tree lives on a tmpfs of the fixture's own namespace (creating
    // 200,000 files is quick there), bound onto mnt.
    let mut ops: Vec<std::ffi::OsString> = vec![
        "unshare-mntns".into(),
        "mount-tmpfs".into(),
        src.clone().into(),
    ];
    for d in 0..DIRS {
        let dir = tree.join(format!("d{d}"));
        ops.extend(["mkdirs".into(), dir.clone().into()]);
        ops.extend(["touch-many".into(), dir.into(), PER_DIR.to_string().into()]);
    }
    ops.extend(["write".into(), src.join("held").into()]);
    ops.extend(["bind".into(), src.clone().into(), mnt.clone().into()]);
    ops.extend(["hold".into(), mnt.join("held").into()]);
    ops.extend(["umount".into(), mnt.clone().into(), "0".into()]);
    ops.extend(["remove-all".into(), mnt.join("tree").into()]);
    let out = s.path().join("out.jsonl");
    let run = Command::new(MNTRACE)
        .args(["watch", "--json", "-o"])
        .arg(&out)
        .arg("--")
        .arg(fixture())
        .args(&ops)
        .output()
        .expect("run mntrace watch");
    assert!(run.status.success(), "{:?}", run.status);
    let results: Vec<Value> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("fixture JSON"))
        .collect();
    let last = results.len() - 1;
    let umount = &results[last - 1];
    assert_eq!(
        (&umount["op"], &umount["errno"]),
        (&"umount".into(), &16.into())
    );
    let entries = (DIRS * PER_DIR + DIRS + 1) as u64; // files, dirs, the tree
    let removed = &results[last];
    assert_eq!(removed["op"], "remove-all");
    assert_eq!(
        removed["ret"], entries,
        "the tree was really deleted: {removed}"
    );

    let text = std::fs::read_to_string(&out).expect("read output");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let stats = lines
        .iter()
        .find(|l| l["type"] == "stats")
        .expect("final stats");
    assert_eq!(stats["lost_total"], 0, "kernel-side drops: {stats}");
    assert!(lines.iter().all(|l| l["type"] != "loss"), "no loss record");
    // The tracer sees the whole machine: this test's incident is the one
    // through its mount.
    let mp = mnt.to_str().expect("utf-8");
    let incidents: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "incident" && l["mount"]["mountpoint"] == mp)
        .collect();
    assert_eq!(incidents.len(), 1, "one incident");
    let inc = incidents[0];
    assert_eq!(inc["count"], entries, "every deletion counted");
    assert_eq!(inc["lost_while_open"], 0);
    let kept = inc["deletions"].as_array().expect("deletions");
    assert_eq!(kept.len(), 100_000, "the first 100,000 kept, in order");
    for d in kept {
        let path = d["path"].as_str().expect("path");
        assert!(path.starts_with(&format!("{mp}/tree/d")), "{d}");
        let backing = d["backing_path"].as_str().expect("backing");
        assert_eq!(
            backing.strip_prefix(src.to_str().expect("utf-8")),
            path.strip_prefix(mp),
            "{d}"
        );
    }
}
