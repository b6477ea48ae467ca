//! `mntrace floor` (hidden, the benchmark's floor): each `--hooks` value
//! attaches as many empty programs as it must, they are really attached in
//! the kernel (the links in the process's own fds, each to a program named
//! `floor_*`), and SIGTERM detaches them all and exits 0. Root.
//!
//! Other tests load programs at the same time: only this process's links,
//! and the programs they name by id, are looked at.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use mntrace::{config::TraceOptions, probes::probes};

/// One bpf link among the fds of a process: its `link_type` and the id of
/// its program (from `/proc/PID/fdinfo/N`).
#[derive(Debug)]
struct Link {
    link_type: String,
    prog_id: u32,
}

/// The bpf links held by the fds of `pid`.
fn links_of(pid: u32) -> Vec<Link> {
    let mut links = Vec::new();
    let dir = format!("/proc/{pid}/fdinfo");
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let Ok(info) = std::fs::read_to_string(entry.expect("fdinfo entry").path()) else {
            continue; // closed meanwhile
        };
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_owned())
        };
        if let (Some(link_type), Some(_), Some(prog_id)) =
            (field("link_type"), field("link_id"), field("prog_id"))
        {
            links.push(Link {
                link_type,
                prog_id: prog_id.parse().expect("prog_id"),
            });
        }
    }
    links
}

/// The programs of `ids` still loaded: id, the name the kernel keeps (15
/// bytes at most) and the program type (`BPF_PROG_TYPE_*`).
fn loaded(ids: &BTreeSet<u32>) -> Vec<(u32, String, String)> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| ids.contains(&p.id()))
        .map(|p| {
            (
                p.id(),
                String::from_utf8_lossy(p.name()).into_owned(),
                format!("{:?}", p.program_type()),
            )
        })
        .collect()
}

/// `mntrace floor --hooks HOOKS`, once it has said it is attached: the
/// process and the number of programs it says it attached.
fn start(hooks: &str) -> (Child, usize) {
    let mut child = Command::new(MNTRACE)
        .args(["floor", "--hooks", hooks])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mntrace floor");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("read stderr");
    let n = line
        .strip_prefix("mntrace floor: ")
        .and_then(|l| l.strip_suffix(&format!(" programs attached ({hooks})\n")))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected start: {line:?}"));
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = err.read_to_string(&mut rest);
        eprint!("{rest}");
    });
    (child, n)
}

/// Attach, check the links and programs, stop with SIGTERM, check that
/// nothing remains. `link_type`: what the kernel calls these links;
/// `prog_type`: the programs' type.
fn floor(hooks: &str, expected: usize, link_type: &str, prog_type: &str) {
    require_root();
    let (mut child, n) = start(hooks);
    let pid = child.id();
    assert_eq!(n, expected, "{hooks}: programs attached");

    let links = links_of(pid);
    assert_eq!(links.len(), n, "{hooks}: links among its fds: {links:?}");
    assert!(
        links.iter().all(|l| l.link_type == link_type),
        "{hooks}: every link is a {link_type} link: {links:?}"
    );
    let ids: BTreeSet<u32> = links.iter().map(|l| l.prog_id).collect();
    let programs = loaded(&ids);
    assert_eq!(
        programs.len(),
        ids.len(),
        "{hooks}: every program is loaded"
    );
    assert!(
        programs
            .iter()
            .all(|(_, name, t)| name.starts_with("floor_") && t == prog_type),
        "{hooks}: only floor_* programs of type {prog_type}: {programs:?}"
    );

    // SAFETY: a signal to our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait mntrace floor") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "{hooks}: no exit 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{hooks}: exit status");
    // Freed once the last reference goes (an RCU callback): not always at
    // the exit itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = loaded(&ids);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{hooks}: floor programs still loaded 10 s after the exit: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tracepoints_are_the_default_trace_list() {
    let expected = probes(&TraceOptions::default().attached_kinds()).len();
    floor("tracepoints", expected, "perf", "BPF_PROG_TYPE_TRACEPOINT");
}

#[test]
fn raw_tp_on_sys_enter_and_sys_exit() {
    floor(
        "raw-tp",
        2,
        "raw_tracepoint",
        "BPF_PROG_TYPE_RAW_TRACEPOINT",
    );
}

#[test]
fn tp_btf_on_sys_enter_and_sys_exit() {
    // A tp_btf program is attached through the raw tracepoint interface
    // too: only its program type tells them apart.
    floor("tp-btf", 2, "raw_tracepoint", "BPF_PROG_TYPE_TRACING");
}

/// Without the capabilities to load programs (root with every capability
/// dropped), the same message and exit code as `trace`: 4.
#[test]
fn not_permitted_without_capabilities() {
    require_root();
    let out = Command::new("setpriv")
        .args(["--inh-caps=-all", "--bounding-set=-all", "--", MNTRACE])
        .args(["floor", "--hooks", "raw-tp"])
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.starts_with("mntrace: not permitted: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
