//! The `mntrace` binary: live output, clean shutdown on SIGINT, exit codes.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;
use tracer_common::uapi::EBUSY;

/// Start `mntrace trace ARGS`, wait until it says it is tracing.
fn start(args: &[&str]) -> std::process::Child {
    let mut child = Command::new(MNTRACE)
        .arg("trace")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mntrace");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("read stderr");
    assert!(
        line.starts_with("mntrace: tracing"),
        "unexpected start: {line:?}"
    );
    // Keep draining stderr so the process never blocks on it.
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = err.read_to_string(&mut rest);
        eprint!("{rest}");
    });
    child
}

fn stop(child: std::process::Child) -> (i32, String) {
    stop_with(child, libc::SIGINT)
}

fn stop_with(mut child: std::process::Child, sig: i32) -> (i32, String) {
    unsafe { libc::kill(child.id() as i32, sig) };
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read stdout");
    let status = child.wait().expect("wait mntrace");
    (status.code().unwrap_or(-1), out)
}

#[test]
fn json_lines_live_then_clean_exit_on_sigint() {
    require_root();
    let s = scratch();
    let m = p(&[b(s.path()), b"/m"]);
    let f = p(&[b(s.path()), b"/m/f\xff"]);
    let child = start(&["--json", "--comm", "mntrace-fixture"]);
    let fx = Fixture::spawn(&[
        "unshare-mntns".as_ref(), // 1
        "mkdirs".as_ref(),        // 2
        m.as_os_str(),
        "mount-tmpfs".as_ref(), // 3
        m.as_os_str(),
        "write".as_ref(), // 4
        f.as_os_str(),
        "open".as_ref(), // 5
        f.as_os_str(),
        "umount".as_ref(), // 6: EBUSY
        m.as_os_str(),
        "0".as_ref(),
        "mnt-id".as_ref(), // 7
        m.as_os_str(),
        "unlink-raw".as_ref(), // 8
        f.as_os_str(),
    ]);
    let pid = fx.pid;
    let lines = fx.release_and_wait();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, out) = stop(child);
    assert_eq!(code, 0, "exit code after SIGINT");
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let mine: Vec<&Value> = records.iter().filter(|r| r["pid"] == pid).collect();
    let umount = mine
        .iter()
        .find(|r| r["syscall"] == "umount")
        .expect("umount event");
    assert_eq!(umount["schema"], 1);
    assert_eq!(umount["ret"], -i64::from(EBUSY));
    assert_eq!(umount["errno"], "EBUSY");
    assert_eq!(umount["comm"], "mntrace-fixture");
    assert_eq!(umount["args"]["flags"], 0);
    assert_eq!(
        umount["args"]["target"],
        Value::from(m.to_str().expect("utf-8 scratch"))
    );
    let unlink = mine
        .iter()
        .find(|r| r["syscall"] == "unlink")
        .expect("unlink event");
    assert_eq!(unlink["ret"], 0);
    assert_eq!(
        unlink["args"]["pathname_hex"],
        Value::from(mntrace::sink::hex(f.as_encoded_bytes()))
    );
    assert_eq!(unlink["args"]["dir"]["from"], "root");
    let mnt = op(&lines, 7)["mnt_id"].clone();
    let mount = mine
        .iter()
        .find(|r| r["syscall"] == "mount" && r["args"]["fstype"] == "tmpfs")
        .expect("mount");
    assert_eq!(mount["ret"], 0);
    assert!(mnt.is_u64());
    let stats = records.last().expect("records");
    assert_eq!(stats["type"], "stats", "last record is the run summary");
    assert_eq!(stats["lost_total"], 0);
}

#[test]
fn console_lines_are_strace_like() {
    require_root();
    let s = scratch();
    let m = p(&[b(s.path()), b"/m"]);
    let child = start(&["--comm", "mntrace-fixture", "--kind", "umount2"]);
    let fx = Fixture::spawn(&["umount".as_ref(), m.as_os_str(), "2".as_ref()]);
    let pid = fx.pid;
    fx.release_and_wait();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, out) = stop(child);
    assert_eq!(code, 0);
    let want = format!(
        "mntrace-fixture[{pid}/{pid}] umount2(\"{}\", MNT_DETACH) = -ENOENT",
        m.to_str().unwrap()
    );
    assert!(
        out.lines().any(|l| l.ends_with(&want)),
        "no line ending with {want:?} in:\n{out}"
    );
}

#[test]
fn sigterm_detaches_and_exits_cleanly() {
    require_root();
    let child = start(&["--json", "--kind", "rmdir"]);
    let (code, out) = stop_with(child, libc::SIGTERM);
    assert_eq!(code, 0);
    let last: Value = serde_json::from_str(out.lines().last().expect("stats line")).expect("JSON");
    assert_eq!(last["type"], "stats");
}

fn run_in_private_ns(script: &str) -> (i32, String) {
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("MNTRACE", MNTRACE)
        .output()
        .expect("run unshare");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn not_root_exits_4_with_advice() {
    require_root();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            MNTRACE,
            "trace",
        ])
        .output()
        .expect("run setpriv");
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not permitted") && err.contains("CAP_BPF"),
        "{err}"
    );
}

#[test]
fn missing_btf_exits_5() {
    require_root();
    let (code, err) =
        run_in_private_ns("mount -t tmpfs none /sys/kernel/btf && exec \"$MNTRACE\" trace");
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("BTF") && err.contains("/sys/kernel/btf/vmlinux"),
        "{err}"
    );
}

#[test]
fn unmountable_tracefs_exits_6() {
    require_root();
    // An empty read-only /sys/kernel: no tracefs, and nowhere to mount one.
    let (code, err) =
        run_in_private_ns("mount -t tmpfs -o ro none /sys/kernel && exec \"$MNTRACE\" trace");
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("tracefs") && err.contains("mount -t tracefs"),
        "{err}"
    );
}

#[test]
fn tracefs_is_mounted_when_missing() {
    require_root();
    // Hide tracefs behind empty directories: mntrace mounts it itself.
    let (code, err) = run_in_private_ns(
        "mount -t tmpfs none /sys/kernel/tracing && mount -t tmpfs none /sys/kernel/debug && \
         exec \"$MNTRACE\" trace --duration 1 --kind rmdir",
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("mntrace: tracing rmdir"), "{err}");
}

#[test]
fn paths_of_interest_record_plain_deletions_below_them_only() {
    require_root();
    let s = scratch();
    let keep = s.path().join("keep");
    let other = s.path().join("other");
    let child = start(&[
        "--json",
        "--comm",
        "mntrace-fixture",
        "--kind",
        "unlink",
        "--path",
        keep.to_str().unwrap(),
    ]);
    let fx = Fixture::spawn(&[
        "mkdir".as_ref(),
        keep.as_os_str(),
        "mkdir".as_ref(),
        other.as_os_str(),
        "write".as_ref(),
        keep.join("f").as_os_str(),
        "write".as_ref(),
        other.join("g").as_os_str(),
        "unlink-raw".as_ref(),
        keep.join("f").as_os_str(),
        "unlink-raw".as_ref(),
        other.join("g").as_os_str(),
    ]);
    let pid = fx.pid;
    fx.release_and_wait();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, out) = stop(child);
    assert_eq!(code, 0);
    let deleted: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
        .filter(|r| r["type"] == "event" && r["pid"] == pid)
        .map(|r| {
            r["args"]["pathname"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(deleted, vec![keep.join("f").display().to_string()]);
}
