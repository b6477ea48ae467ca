//! `mntrace watch`: the load-test mode, through the real binary. One test
//! function: watch traces the whole machine, and cargo runs test binaries
//! one at a time, so nothing else produces incidents meanwhile.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

/// A docker-style volume bind-mounted elsewhere, held busy, unmounted
/// (EBUSY), then its parent removed recursively: the volume's files go.
fn volume_race(s: &std::path::Path) -> Vec<std::ffi::OsString> {
    let data = s.join("docker/volumes/v1/_data");
    let mnt = s.join("mnt/v");
    make_tree(&data, &["db/a.dat", "db/b.dat"]);
    std::fs::create_dir_all(&mnt).expect("mkdir");
    vec![
        "unshare-mntns".into(),
        "bind".into(),
        data.into(),
        mnt.clone().into(),
        "hold".into(),
        mnt.join("db/a.dat").into(),
        "umount".into(),
        mnt.clone().into(),
        "0".into(),
        "remove-all".into(),
        s.join("mnt").into(),
        "sleep-ms".into(),
        "500".into(),
    ]
}

#[test]
fn watch_fails_on_incident_passes_output_through_and_propagates_exit_codes() {
    require_root();

    // 1. The race under `watch --fail-on-incident`: exit 3, incident block.
    let s = scratch();
    let out = Command::new(MNTRACE)
        .args([
            "watch",
            "--fail-on-incident",
            "--comm",
            "mntrace-fixture",
            "--",
        ])
        .arg(fixture())
        .args(volume_race(s.path()))
        .output()
        .expect("run mntrace watch");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{stderr}");
    assert!(
        stdout.contains("\"op\":\"remove-all\""),
        "the command's stdout passes through: {stdout}"
    );
    assert!(
        stderr.contains("!!! INCIDENT #1 CRITICAL (docker volume): 3 entries deleted"),
        "{stderr}"
    );
    let data = s.path().join("docker/volumes/v1/_data");
    let want = format!("file \"{}\"", data.join("db/b.dat").display());
    assert!(stderr.contains(&want), "backing path {want} in:\n{stderr}");
    assert!(
        stderr.contains("held by   mntrace-fixture["),
        "holder listed:\n{stderr}"
    );
    assert!(
        stderr.contains("incidents: 1 critical, 0 warning"),
        "{stderr}"
    );
    assert!(
        !data.join("db/b.dat").exists(),
        "the volume really lost its files"
    );

    // 2. The same in JSON Lines to a file.
    let s = scratch();
    let file = s.path().join("out.jsonl");
    let out = Command::new(MNTRACE)
        .args(["watch", "--json", "--comm", "mntrace-fixture", "-o"])
        .arg(&file)
        .arg("--")
        .arg(fixture())
        .args(volume_race(s.path()))
        .output()
        .expect("run mntrace watch --json");
    assert_eq!(
        out.status.code(),
        Some(0),
        "no --fail-on-incident: the command's status"
    );
    let text = std::fs::read_to_string(&file).expect("output file");
    let recs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let inc = recs
        .iter()
        .find(|r| r["type"] == "incident")
        .expect("incident record");
    assert_eq!(inc["severity"], "critical");
    assert_eq!(inc["root_label"], "docker volume");
    assert_eq!(inc["count"], 3);
    assert_eq!(inc["mount"]["subtree"], true);
    let vdata = s.path().join("docker/volumes/v1/_data");
    assert_eq!(
        inc["mount"]["backing_root"],
        Value::from(vdata.to_str().unwrap())
    );
    let backing: Vec<&str> = inc["deletions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["backing_path"].as_str().unwrap())
        .collect();
    let p = |r: &str| vdata.join(r).display().to_string();
    assert_eq!(
        backing.last().copied(),
        Some(p("db").as_str()),
        "the directory goes last"
    );
    let mut files = backing[..2].to_vec();
    files.sort();
    assert_eq!(
        files,
        vec![p("db/a.dat"), p("db/b.dat")],
        "in directory order"
    );
    assert_eq!(inc["unmount"]["process"]["comm"], "mntrace-fixture");
    assert!(inc["holders"]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["holds"][0]["how"] == "fd"));
    let stats = recs.last().unwrap();
    assert_eq!(
        (
            stats["type"].as_str(),
            stats["incidents"]["critical"].as_u64()
        ),
        (Some("stats"), Some(1))
    );

    // 3. No incident: the command's own exit status comes back.
    let out = Command::new(MNTRACE)
        .args([
            "watch",
            "--fail-on-incident",
            "--",
            "sh",
            "-c",
            "echo hello; exit 7",
        ])
        .output()
        .expect("run mntrace watch");
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("incidents: 0 critical, 0 warning"));
}
