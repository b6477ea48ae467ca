//! The `mntrace` binary: live output, clean shutdown on SIGINT, exit codes.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;
use tracer_common::uapi::EBUSY;

/// Start `mntrace trace ARGS`, wait until it says it is tracing.
fn start(args: &[&str]) -> Tracing {
    start_in(Path::new("/"), args)
}

/// A running `mntrace trace`, killed when the test ends without stopping it
/// (a failed assertion), so no tracer outlives its test.
struct Tracing(Option<std::process::Child>);

impl Tracing {
    fn id(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }
    fn take(mut self) -> std::process::Child {
        self.0.take().expect("running")
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `start` from directory `cwd`.
fn start_in(cwd: &Path, args: &[&str]) -> Tracing {
    let mut child = Command::new(MNTRACE)
        .current_dir(cwd)
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
    Tracing(Some(child))
}

fn stop(child: Tracing) -> (i32, String) {
    stop_with(child, libc::SIGINT)
}

fn stop_with(child: Tracing, sig: i32) -> (i32, String) {
    let mut child = child.take();
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
    paths_of_interest(false);
}

#[test]
fn a_relative_path_of_interest_is_taken_from_the_current_directory() {
    paths_of_interest(true);
}

fn paths_of_interest(relative: bool) {
    require_root();
    let s = scratch();
    let keep = s.path().join("keep");
    let other = s.path().join("other");
    let path = if relative {
        "keep".to_owned()
    } else {
        keep.to_str().unwrap().to_owned()
    };
    let child = start_in(
        s.path(),
        &[
            "--json",
            "--comm",
            "mntrace-fixture",
            "--kind",
            "unlink",
            "--path",
            &path,
        ],
    );
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

/// The BPF link and program ids a process holds, from its fdinfo.
fn bpf_ids(pid: u32) -> (Vec<u32>, Vec<u32>) {
    let (mut links, mut progs) = (Vec::new(), Vec::new());
    let dir = format!("/proc/{pid}/fdinfo");
    for entry in std::fs::read_dir(&dir).expect("fdinfo") {
        let Ok(text) = std::fs::read_to_string(entry.expect("fdinfo entry").path()) else {
            continue;
        };
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse::<u32>().ok())
        };
        if let Some(id) = field("link_id:") {
            links.push(id);
            progs.extend(field("prog_id:"));
        }
    }
    (links, progs)
}

/// After `mntrace` has exited on a stop signal, none of its links (and so
/// none of its programs) is left in the kernel.
fn assert_all_detached(sig: i32) {
    let child = start(&["--json", "--comm", "no-such-comm-x"]);
    let (links, progs) = bpf_ids(child.id());
    assert_eq!(
        links.len(),
        mntrace::probes::probes(&mntrace::EventKind::SYSCALLS).len()
            + mntrace::probes::uring_probes(std::path::Path::new(mntrace::preflight::TRACEFS))
                .expect("this kernel's io_uring tracepoints")
                .len(),
        "one link per probe, all attached while tracing"
    );
    let (code, out) = stop_with(child, sig);
    assert_eq!(code, 0);
    assert!(out.lines().last().is_some_and(|l| l.contains("\"stats\"")));
    let live_links: std::collections::BTreeSet<u32> = aya::programs::loaded_links()
        .filter_map(Result::ok)
        .map(|l| l.id())
        .collect();
    let left: Vec<&u32> = links.iter().filter(|id| live_links.contains(id)).collect();
    assert!(left.is_empty(), "links still attached after exit: {left:?}");
    let live_progs: std::collections::BTreeSet<u32> = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|p| p.id())
        .collect();
    let left: Vec<&u32> = progs.iter().filter(|id| live_progs.contains(id)).collect();
    assert!(
        left.is_empty(),
        "programs still loaded after exit: {left:?}"
    );
}

#[test]
fn every_probe_is_detached_after_sigint() {
    require_root();
    assert_all_detached(libc::SIGINT);
}

/// SIGHUP (the terminal or session went away) stops like SIGTERM: the
/// summary is written, every probe detached, exit 0.
#[test]
fn sighup_stops_cleanly_with_the_summary() {
    require_root();
    assert_all_detached(libc::SIGHUP);
}

/// With `-o FILE`, the console summary goes to the file (after the lines),
/// not to stderr.
#[test]
fn console_summary_goes_to_the_output_file() {
    require_root();
    let s = scratch();
    let file = s.path().join("out.txt");
    let mut child = Command::new(MNTRACE)
        .args(["trace", "--comm", "no-such-comm-y", "-o"])
        .arg(&file)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mntrace");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("read stderr");
    assert!(line.starts_with("mntrace: tracing"), "{line:?}");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut rest = String::new();
    err.read_to_string(&mut rest).expect("read stderr");
    assert_eq!(child.wait().expect("wait").code(), Some(0), "{rest}");
    let text = std::fs::read_to_string(&file).expect("output file");
    assert_eq!(
        text,
        "mntrace: 0 events\nmntrace: 0 unmounts failed with EBUSY; incidents: 0 critical, 0 warning\n\
         mntrace: no events lost\n"
    );
    assert!(!rest.contains("events"), "no summary on stderr: {rest}");
}

/// `-o FILE` on a full filesystem (a 512 KiB tmpfs in a private mount
/// namespace, filled but for 16 KiB first): the file holds whole JSON
/// records only, the warning names the file, the records not written are
/// counted in the summary (written + not written = the events it counts),
/// and writing resumes once there is room again. The room made (the filler
/// removed) takes every event still to come, however far behind mntrace is.
#[test]
fn full_output_disk_keeps_whole_records_and_counts_the_rest() {
    require_root();
    let s = scratch();
    let small = s.path().join("small");
    std::fs::create_dir(&small).expect("mkdir");
    let copy = s.path().join("copy.jsonl");
    // Failing umount2 calls (ENOENT), ~500 bytes of JSON each: 400 of them
    // overflow the 16 KiB left; all fit in the room made later.
    let absent = s.path().join("absent");
    let umounts = |n: usize| -> Vec<std::ffi::OsString> {
        (0..n)
            .flat_map(|_| ["umount".into(), absent.clone().into_os_string(), "0".into()])
            .collect()
    };
    let fill = Fixture::spawn(&umounts(400));
    let after = Fixture::spawn(&umounts(8));
    let (fill_pid, after_pid) = (fill.pid, after.pid);
    let script = r#"mount -t tmpfs -o size=512k none "$D" && head -c 507904 /dev/zero > "$D/filler" || exit 99
"$MNTRACE" trace --json -o "$D/out.jsonl" --kind umount2 -p "$P1" -p "$P2" &
echo "$!"
wait "$!"; code=$?
cp "$D/out.jsonl" "$COPY" || exit 98
exit "$code""#;
    let mut sh = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("MNTRACE", MNTRACE)
        .env("D", &small)
        .env("COPY", &copy)
        .env("P1", fill_pid.to_string())
        .env("P2", after_pid.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run unshare");
    let mut pid_line = String::new();
    BufReader::new(sh.stdout.take().expect("stdout"))
        .read_line(&mut pid_line)
        .expect("mntrace pid");
    let mntrace: u32 = pid_line.trim().parse().expect("a pid");
    // A failing test does not leave it running.
    struct KillOnDrop(Option<u32>);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if let Some(pid) = self.0 {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
    let mut guard = KillOnDrop(Some(mntrace));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let err = BufReader::new(sh.stderr.take().expect("stderr"));
    std::thread::spawn(move || {
        for l in err.lines().map_while(Result::ok) {
            eprintln!("{l}");
            let _ = tx.send(l);
        }
    });
    let mut stderr = Vec::new();
    let mut wait_line = |pred: &dyn Fn(&str) -> bool, what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !stderr.iter().any(|l: &String| pred(l)) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => stderr.push(l),
                Err(_) => panic!("no {what} on stderr: {stderr:?}"),
            }
        }
    };
    wait_line(&|l| l.starts_with("mntrace: tracing"), "start");
    fill.release_and_wait();
    wait_line(&|l| l.contains("cannot write to"), "warning");
    // Make room (through mntrace's own mount namespace), then more events.
    let inside = |p: &str| {
        PathBuf::from(format!("/proc/{mntrace}/root"))
            .join(small.strip_prefix("/").unwrap().join(p))
    };
    std::fs::remove_file(inside("filler")).expect("remove the filler");
    after.release_and_wait();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let tag = format!("\"pid\":{after_pid},");
    while !std::fs::read_to_string(inside("out.jsonl")).is_ok_and(|t| t.contains(&tag)) {
        assert!(
            std::time::Instant::now() < deadline,
            "output did not resume after room was made: {:?}",
            std::fs::read_to_string(inside("out.jsonl")).map(|t| t.len())
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    unsafe { libc::kill(mntrace as i32, libc::SIGTERM) };
    let status = sh.wait().expect("wait unshare");
    guard.0 = None;
    std::thread::sleep(std::time::Duration::from_millis(100));
    stderr.extend(rx.try_iter());
    assert_eq!(status.code(), Some(0), "{stderr:?}");

    let file = small.join("out.jsonl");
    let warning = stderr
        .iter()
        .find(|l| l.contains("cannot write to"))
        .expect("warning");
    assert!(
        warning.contains(file.to_str().unwrap()) && warning.contains("No space left on device"),
        "{warning}"
    );
    assert_eq!(
        stderr
            .iter()
            .filter(|l| l.contains("cannot write to"))
            .count(),
        1,
        "warned once: {stderr:?}"
    );
    let text = std::fs::read_to_string(&copy).expect("copy of the output");
    assert!(text.ends_with('\n'));
    let records: Vec<Value> = text
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a whole record: {e}: {l:?}"))
        })
        .collect();
    let stats = records.last().expect("records");
    assert_eq!(stats["type"], "stats", "{stats}");
    let u = &stats["unwritten"];
    assert_eq!(u["file"], Value::from(file.to_str().unwrap()), "{stats}");
    assert!(
        u["error"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{u}"
    );
    let not_written = u["events"].as_u64().expect("unwritten events");
    assert!(not_written > 0, "{u}");
    assert_eq!(
        u["records"],
        u["events"].as_u64().unwrap()
            + u["incidents"].as_u64().unwrap()
            + u["losses"].as_u64().unwrap()
    );
    let written = records.iter().filter(|r| r["type"] == "event").count() as u64;
    let counted = stats["events"]["umount"].as_u64().expect("umount count");
    assert_eq!(counted, 408, "every event counted: {stats}");
    assert_eq!(written + not_written, counted, "{stats}");
    let resumed = records
        .iter()
        .filter(|r| r["type"] == "event" && r["pid"] == after_pid)
        .count();
    assert_eq!(resumed, 8, "all the events after room was made are written");
    let records_unwritten = u["records"].as_u64().expect("unwritten records");
    let noun = if records_unwritten == 1 {
        "record"
    } else {
        "records"
    };
    let line = format!("mntrace: {records_unwritten} {noun} not written to");
    assert!(
        stderr.iter().any(|l| l.starts_with(&line)),
        "the count on stderr too: {stderr:?}"
    );
}

#[test]
fn filters_that_match_nothing_are_refused() {
    for (args, says) in [
        (&["-p", "0"][..], "0 is not a process id"),
        (&["-c", ""][..], "an empty command name matches no process"),
        (&["--path", ""][..], "a value is required for '--path"),
        (&["--busy-window", "0"][..], "--busy-window"),
        (&["--loss-interval", "0"][..], "--loss-interval"),
        (&["--deletes", "some"][..], "--deletes"),
    ] {
        let out = Command::new(MNTRACE)
            .arg("trace")
            .args(args)
            .output()
            .expect("run mntrace");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
