//! `mntrace watch --guard kill --fail-on-incident` around the containerd
//! replica, as a load test runs it. Its own test binary: `watch` traces and
//! guards the whole machine, so nothing else of this suite may run beside it
//! (cargo runs test binaries one at a time).

mod common;

use common::replica::*;
use common::*;

#[test]
fn watch_with_the_guard_kills_the_replica_and_fails_the_load_test() {
    require_root();
    let l = Layout::new();
    let out = std::process::Command::new(MNTRACE)
        .args(["watch", "--guard", "kill", "--fail-on-incident", "--"])
        .arg(fixture())
        .args(["sleep-ms", "0"]) // op 0, where the replica's ops expect `wait-stdin`
        .args(l.buggy_ops(0))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run mntrace watch");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(l.layer1_left(), LAYER1, "nothing of the layer was lost");
    let t0 = l.t(0);
    let mp = format!("mountpoint={:?}", t0.to_str().expect("utf-8"));
    let guard_line = stderr
        .lines()
        .find(|line| line.contains("GUARD killed it (SIGKILL) at its listing of fd"))
        .unwrap_or_else(|| panic!("no guard line: {stderr}"));
    assert!(
        guard_line.contains("mntrace-fixture[") && guard_line.contains(&mp),
        "{guard_line}"
    );
    assert!(
        stderr.contains("0 entries deleted through a mount whose unmount failed with EBUSY (PREVENTED by the guard)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("KILLED (SIGKILL) at its listing"),
        "{stderr}"
    );
    assert!(
        stderr.contains("GUARD acted: 0 reported, 0 stopped, 1 killed"),
        "{stderr}"
    );
}
