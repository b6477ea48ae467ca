//! `mntrace watch`: the load-test mode, through the real binary. The
//! incident checks are one test function: watch traces the whole machine,
//! and cargo runs test binaries one at a time, so nothing else produces
//! incidents meanwhile (the other tests here run commands that delete
//! nothing).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

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
        .args(volume_race(s.path(), 500))
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
        .args(volume_race(s.path(), 500))
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

/// SIGHUP (the terminal or session went away) stops `watch` like SIGTERM:
/// the summary, then the command's own status once it ends.
#[test]
fn sighup_stops_watch_with_the_summary_and_the_command_status() {
    require_root();
    let out = Command::new(MNTRACE)
        .args(["watch", "--kind", "rmdir", "--comm", "no-such-comm-w", "--"])
        .args(["sh", "-c", "kill -HUP $PPID; sleep 0.5; exit 5"])
        .output()
        .expect("run mntrace watch");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{:?}\n{stderr}", out.status);
    assert!(
        stderr.contains("mntrace: 0 events\nmntrace: 0 unmounts failed with EBUSY"),
        "{stderr}"
    );
}

/// The processes whose parent is `ppid`.
fn children(ppid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parens.
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        if after.split_whitespace().nth(1) == Some(&ppid.to_string()) {
            out.push(pid);
        }
    }
    out
}

/// `pid` still runs as `comm` (not gone, not a zombie).
fn running(pid: u32, comm: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        stat.contains(&format!("({comm})")) && after.split_whitespace().next() != Some("Z")
    })
}

/// SIGKILL of mntrace takes the command with it (parent-death signal): it
/// is not left running, reparented to init.
#[test]
fn sigkill_of_watch_ends_the_command() {
    require_root();
    let mut watch = Command::new(MNTRACE)
        .args(["watch", "--kind", "rmdir", "--comm", "no-such-comm-k", "--"])
        .args(["sleep", "60"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mntrace watch");
    let mut err = BufReader::new(watch.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("read stderr");
    assert!(line.starts_with("mntrace: watching"), "{line:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let sleep = loop {
        if let Some(&pid) = children(watch.id()).first() {
            if running(pid, "sleep") {
                break pid;
            }
        }
        assert!(Instant::now() < deadline, "the command did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    // (Its stderr is not read to the end: the command holds it too.)
    drop(err);
    watch.kill().expect("SIGKILL mntrace");
    watch.wait().expect("wait mntrace");
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(sleep, "sleep") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = running(sleep, "sleep");
    if left {
        unsafe { libc::kill(sleep as i32, libc::SIGKILL) };
    }
    assert!(!left, "the command outlived mntrace's SIGKILL");
}
