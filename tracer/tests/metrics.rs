//! `--metrics`: the real binary serves its counters over 127.0.0.1 while it
//! traces a fixture. Each run is filtered to its fixture's pid, so the
//! counts are exact whatever else runs on the machine.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use tracer_common::uapi::EBUSY;

/// Start `cmd` (an `mntrace … --metrics 127.0.0.1:0` command line) and read
/// its stderr until it says where it serves metrics; that address
/// (`IP:PORT`).
fn served(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("spawn mntrace");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = Vec::new();
    let addr = loop {
        let mut line = String::new();
        if err.read_line(&mut line).expect("read stderr") == 0 {
            let _ = child.kill();
            panic!("mntrace ended before serving metrics; stderr: {seen:?}");
        }
        if let Some(rest) = line
            .trim_end()
            .strip_prefix("mntrace: serving metrics at http://")
        {
            break rest
                .strip_suffix("/metrics")
                .expect("the URL ends with /metrics")
                .to_owned();
        }
        seen.push(line);
    };
    assert!(
        seen.first().is_some_and(
            |l| l.starts_with("mntrace: tracing") || l.starts_with("mntrace: watching")
        ),
        "probes are attached first: {seen:?}"
    );
    // Keep draining stderr so the process never blocks on it.
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = err.read_to_string(&mut rest);
        eprint!("{rest}");
    });
    (child, addr)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// `GET http://ADDR/PATH`: status, Content-Type, body.
fn get(agent: &ureq::Agent, addr: &str, path: &str) -> (u16, String, String) {
    let mut r = agent
        .get(&format!("http://{addr}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"));
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().expect("ASCII content type").to_owned())
        .unwrap_or_default();
    let body = r.body_mut().read_to_string().expect("body");
    (r.status().as_u16(), ct, body)
}

/// The value of `series` (`name` or `name{labels}`) in a scrape.
fn value(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("an integer value"))
}

/// Scrape until `done` holds (or fail after 20 s); the last scrape.
fn scrape_until(agent: &ureq::Agent, addr: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, body) = get(agent, addr, "/metrics");
        assert_eq!(status, 200);
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "timed out; last scrape:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn events(syscall: &str) -> String {
    format!("mntrace_events_total{{syscall=\"{syscall}\"}}")
}

fn failed(syscall: &str) -> String {
    format!("mntrace_events_failed_total{{syscall=\"{syscall}\"}}")
}

fn incidents(cause: &str, severity: &str) -> String {
    format!("mntrace_incidents_total{{cause=\"{cause}\",severity=\"{severity}\"}}")
}

const SYSCALLS: [&str; 11] = [
    "mount",
    "umount",
    "unlink",
    "unlinkat",
    "rmdir",
    "open_tree",
    "move_mount",
    "mount_setattr",
    "fsopen",
    "fsconfig",
    "fsmount",
];

#[test]
fn trace_serves_exact_counts_of_its_events() {
    require_root();
    let s = scratch();
    let m = s.path().join("m");
    let (f1, f2, held) = (m.join("f1"), m.join("f2"), m.join("held"));
    let fx = Fixture::spawn(&[
        "unshare-mntns".as_ref(), // 1: a mount (MS_PRIVATE)
        "mkdirs".as_ref(),        // 2
        m.as_os_str(),
        "mount-tmpfs".as_ref(), // 3: a mount
        m.as_os_str(),
        "write".as_ref(), // 4
        f1.as_os_str(),
        "write".as_ref(), // 5
        f2.as_os_str(),
        "write".as_ref(), // 6
        held.as_os_str(),
        "open".as_ref(), // 7: keeps the mount busy
        held.as_os_str(),
        "umount".as_ref(), // 8: EBUSY
        m.as_os_str(),
        "0".as_ref(),
        "umount".as_ref(), // 9: EBUSY
        m.as_os_str(),
        "0".as_ref(),
        "umount".as_ref(), // 10: EBUSY
        m.as_os_str(),
        "0".as_ref(),
        "open-dir".as_ref(), // 11
        m.as_os_str(),
        "unlinkat".as_ref(), // 12: deleted through the busy mount
        "@11".as_ref(),
        "f1".as_ref(),
        "0".as_ref(),
        "unlinkat".as_ref(), // 13: deleted through the busy mount
        "@11".as_ref(),
        "f2".as_ref(),
        "0".as_ref(),
        "unlinkat".as_ref(), // 14: ENOENT
        "@11".as_ref(),
        "missing".as_ref(),
        "0".as_ref(),
    ]);
    let pid = fx.pid.to_string();
    let (mut child, addr) = served(
        Command::new(MNTRACE)
            .args(["trace", "--metrics", "127.0.0.1:0", "-p", &pid])
            .stdout(Stdio::null()),
    );
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let agent = agent();

    // Before anything happened: every series is there, at 0.
    let (status, ct, body) = get(&agent, &addr, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    for (name, help) in [
        ("mntrace_events_total", "Traced calls, by syscall"),
        ("mntrace_events_failed_total", "Traced calls that failed"),
        (
            "mntrace_kernel_lost_total",
            "Events the kernel side dropped",
        ),
        (
            "mntrace_ebusy_unmounts_total",
            "Unmounts that failed with EBUSY",
        ),
        ("mntrace_incidents_total", "Incidents"),
        ("mntrace_decode_errors_total", "Records from the kernel"),
        ("mntrace_unwritten_records_total", "Records not written"),
    ] {
        let help = format!("# HELP {name} {help}");
        assert!(
            body.lines().any(|l| l.starts_with(&help)),
            "{help}... in:\n{body}"
        );
        let type_line = format!("# TYPE {name} counter");
        assert!(
            body.lines().any(|l| l == type_line),
            "{type_line} in:\n{body}"
        );
    }
    for syscall in SYSCALLS {
        assert_eq!(value(&body, &events(syscall)), Some(0), "{syscall}");
    }
    assert!(
        !body.contains("mntrace_recorder_"),
        "not recording:\n{body}"
    );
    let (status, _, _) = get(&agent, &addr, "/");
    assert_eq!(status, 404);
    let (status, _, _) = get(&agent, &addr, "/metrics/x");
    assert_eq!(status, 404);

    let lines = fx.release_and_wait();
    for i in 8..=10 {
        assert_eq!(op(&lines, i)["errno"], EBUSY, "op {i}: {lines:?}");
    }
    for i in 12..=13 {
        assert_eq!(op(&lines, i)["ret"], 0, "op {i}: {lines:?}");
    }
    assert_eq!(op(&lines, 14)["errno"], libc::ENOENT);

    // The incident closes once its deletions have been quiet for a while.
    let text = scrape_until(&agent, &addr, |t| {
        value(t, &events("unlinkat")) == Some(3)
            && value(t, &incidents("busy_unmount", "warning")) == Some(1)
    });
    let want = |syscall: &str| match syscall {
        "mount" => (2, 0),
        "umount" => (3, 3),
        "unlinkat" => (3, 1),
        _ => (0, 0),
    };
    for syscall in SYSCALLS {
        let got = (
            value(&text, &events(syscall)),
            value(&text, &failed(syscall)),
        );
        let (n, f) = want(syscall);
        assert_eq!(got, (Some(n), Some(f)), "{syscall}:\n{text}");
        for reason in ["ring_full", "slot_full", "scratch"] {
            let series =
                format!("mntrace_kernel_lost_total{{probe=\"{syscall}\",reason=\"{reason}\"}}");
            assert_eq!(value(&text, &series), Some(0), "{series}");
        }
    }
    assert_eq!(value(&text, "mntrace_ebusy_unmounts_total"), Some(3));
    assert_eq!(value(&text, &incidents("busy_unmount", "warning")), Some(1));
    assert_eq!(
        value(&text, &incidents("busy_unmount", "critical")),
        Some(0)
    );
    assert_eq!(value(&text, &incidents("crossing", "warning")), Some(0));
    assert_eq!(value(&text, &incidents("crossing", "critical")), Some(0));
    assert_eq!(value(&text, "mntrace_decode_errors_total"), Some(0));
    for record in ["event", "incident", "loss"] {
        let series = format!("mntrace_unwritten_records_total{{record=\"{record}\"}}");
        assert_eq!(value(&text, &series), Some(0), "{series}");
    }

    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait mntrace");
    assert_eq!(status.code(), Some(0), "exit code after SIGINT");
}

#[test]
fn watch_counts_the_events_it_does_not_show() {
    require_root();
    let s = scratch();
    let m = s.path().join("m");
    let fx = Fixture::spawn(&[
        "unshare-mntns".as_ref(), // 1: a mount
        "mkdirs".as_ref(),        // 2
        m.as_os_str(),
        "mount-tmpfs".as_ref(), // 3: a mount
        m.as_os_str(),
        "umount".as_ref(), // 4: MNT_DETACH, unmounted
        m.as_os_str(),
        "2".as_ref(),
        "umount".as_ref(), // 5: EINVAL, not a mount point any more
        m.as_os_str(),
        "2".as_ref(),
    ]);
    let pid = fx.pid.to_string();
    // `cat` runs until the test closes its stdin.
    let (mut child, addr) = served(
        Command::new(MNTRACE)
            .args(["watch", "--metrics", "127.0.0.1:0", "-p", &pid, "--", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null()),
    );
    let lines = fx.release_and_wait();
    assert_eq!(op(&lines, 4)["ret"], 0, "{lines:?}");
    assert_eq!(op(&lines, 5)["errno"], libc::EINVAL, "{lines:?}");
    let agent = agent();
    let text = scrape_until(&agent, &addr, |t| value(t, &events("umount")) == Some(2));
    assert_eq!(value(&text, &events("mount")), Some(2), "{text}");
    assert_eq!(value(&text, &failed("mount")), Some(0));
    assert_eq!(value(&text, &failed("umount")), Some(1));
    assert_eq!(value(&text, "mntrace_ebusy_unmounts_total"), Some(0));
    drop(child.stdin.take());
    let status = child.wait().expect("wait mntrace");
    assert_eq!(status.code(), Some(0), "the command's status");
}

#[test]
fn an_address_in_use_is_a_start_up_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = taken.local_addr().expect("its address").to_string();
    // (Bounded even if the bind wrongly succeeded.)
    let out = Command::new(MNTRACE)
        .args(["trace", "--metrics", &addr, "--duration", "1"])
        .stdout(Stdio::null())
        .output()
        .expect("run mntrace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}: Address already in use")),
        "names the address and the OS error: {stderr}"
    );
    assert!(
        !stderr.contains("mntrace: tracing"),
        "nothing attached: {stderr}"
    );
}
