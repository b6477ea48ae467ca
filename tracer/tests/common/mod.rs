//! Harness for the kernel tests (root): run the fixture driver paused, attach
//! a tracer filtered to its pid, release it, and collect exactly its events.
//!
//! Hermetic by construction: every mount is made by the fixture inside its
//! own private mount namespace (op `unshare-mntns`), so mounts vanish with
//! the process even when a test fails; scratch trees are `TempDir`s under
//! /tmp. Tests run in parallel and each sees only its fixture's pid.

#![allow(dead_code)]

pub mod replica;

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aya::maps::{MapData, RingBuf};
use bytes::BytesMut;
use mntrace::{
    config::TraceOptions,
    drops::Drops,
    loader::Tracer,
    model::{Args, Dir, Event},
    reader::drain_ring,
    EventKind,
};
use serde_json::Value;

/// The test driver `mntrace-fixture`, a binary of its own package (so cargo
/// sets no `CARGO_BIN_EXE_` for it here): `$MNTRACE_FIXTURE` if set, else the
/// one in this test's target profile dir (tests run from
/// `<target>/<profile>/deps/`).
pub fn fixture() -> PathBuf {
    let path = match std::env::var_os("MNTRACE_FIXTURE") {
        Some(path) => PathBuf::from(path),
        None => {
            let exe = std::env::current_exe().expect("path of the running test");
            exe.parent()
                .and_then(Path::parent)
                .expect("the test runs from <target>/<profile>/deps/")
                .join("mntrace-fixture")
        }
    };
    assert!(
        path.is_file(),
        "test driver {} missing: build it with `cargo build -p mntrace-fixture`; \
         `cargo xtask test` does (or point MNTRACE_FIXTURE at it)",
        path.display()
    );
    path
}

pub const MNTRACE: &str = env!("CARGO_BIN_EXE_mntrace");

pub fn require_root() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the kernel tests load eBPF programs and mount filesystems: run them as root"
    );
}

pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mntrace-test-")
        .tempdir_in("/tmp")
        .expect("create scratch dir under /tmp")
}

/// Concatenate path pieces as bytes.
pub fn p(parts: &[&[u8]]) -> OsString {
    let mut v = Vec::new();
    for part in parts {
        v.extend_from_slice(part);
    }
    OsString::from(std::ffi::OsStr::from_bytes(&v))
}

pub fn b(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

/// A started fixture process, paused on its first op (`wait-stdin`).
pub struct Fixture {
    child: Child,
    pub pid: u32,
    lines: Option<std::io::Lines<BufReader<std::process::ChildStdout>>>,
    pub seen: Vec<Value>,
}

impl Fixture {
    pub fn spawn<S: AsRef<OsStr>>(ops: &[S]) -> Fixture {
        let child = Command::new(fixture())
            .arg("wait-stdin")
            .args(ops)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn mntrace-fixture");
        let pid = child.id();
        Fixture {
            child,
            pid,
            lines: None,
            seen: Vec::new(),
        }
    }

    /// Let it run its ops up to the next `wait-stdin` (stdin stays open).
    pub fn step(&mut self) {
        self.child
            .stdin
            .as_mut()
            .expect("stdin still open")
            .write_all(b"go\n")
            .expect("step fixture");
        if self.lines.is_none() {
            let out = self.child.stdout.take().expect("fixture stdout");
            self.lines = Some(BufReader::new(out).lines());
        }
    }

    /// Let it run its ops.
    pub fn release(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            stdin.write_all(b"go\n").expect("release fixture");
        }
        let out = self.child.stdout.take().expect("fixture stdout");
        self.lines = Some(BufReader::new(out).lines());
    }

    /// Read result lines until op `i` has reported (it may still be running
    /// later ops, e.g. a final `sleep-ms` that keeps holders alive).
    pub fn wait_for_op(&mut self, i: usize) -> Value {
        while !self.seen.iter().any(|l| l["i"] == i) {
            let line = self
                .lines
                .as_mut()
                .and_then(|l| l.next())
                .unwrap_or_else(|| panic!("fixture ended before op {i}: {:?}", self.seen))
                .expect("fixture output");
            self.seen
                .push(serde_json::from_str(&line).expect("fixture JSON"));
        }
        op(&self.seen, i).clone()
    }

    /// Wait for the end, however it ends; its exit status and all its JSON
    /// result lines.
    pub fn wait_status(mut self) -> (std::process::ExitStatus, Vec<Value>) {
        if let Some(lines) = self.lines.as_mut() {
            for l in lines {
                self.seen
                    .push(serde_json::from_str(&l.expect("fixture output")).expect("fixture JSON"));
            }
        }
        let status = self.child.wait().expect("wait fixture");
        (status, std::mem::take(&mut self.seen))
    }

    /// [`Fixture::wait_status`], failing (after killing it) if the process
    /// gets stopped (`SIGSTOP`) instead of ending. Its output must fit in
    /// the pipe: it is read once the process has ended.
    pub fn wait_unstopped(mut self) -> (std::process::ExitStatus, Vec<Value>) {
        loop {
            if self.child.try_wait().expect("wait fixture").is_some() {
                return self.wait_status();
            }
            if process_state(self.pid) == Some('T') {
                kill(self.pid);
                panic!("process {} was stopped", self.pid);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait for the end; all its JSON result lines.
    pub fn wait(mut self) -> Vec<Value> {
        if let Some(lines) = self.lines.as_mut() {
            for l in lines {
                self.seen
                    .push(serde_json::from_str(&l.expect("fixture output")).expect("fixture JSON"));
            }
        }
        let status = self.child.wait().expect("wait fixture");
        assert!(
            status.success(),
            "fixture failed: {status}; output: {:?}",
            self.seen
        );
        std::mem::take(&mut self.seen)
    }

    /// Let it run its ops and wait for it; its JSON result lines.
    pub fn release_and_wait(mut self) -> Vec<Value> {
        self.release();
        self.wait()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The result line of op `i` (the `wait-stdin` op is 0, the test's ops start at 1).
pub fn op(lines: &[Value], i: usize) -> &Value {
    lines
        .iter()
        .find(|l| l["i"] == i)
        .unwrap_or_else(|| panic!("no result for op {i} in {lines:?}"))
}

pub fn u64_of(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// An attached tracer that the test drains itself.
pub struct Traced {
    pub tracer: Tracer,
    ring: RingBuf<MapData>,
    buf: BytesMut,
}

impl Traced {
    pub fn start(opts: TraceOptions) -> Traced {
        require_root();
        let mut tracer = Tracer::start(&opts).unwrap_or_else(|e| panic!("tracer start: {e}"));
        // What mntrace would print at start (a probe not attached, ...):
        // in the test's output, where a failure is read.
        for w in &tracer.warnings {
            eprintln!("mntrace: warning: {w}");
        }
        let ring = tracer.ring().expect("ring buffer");
        Traced {
            tracer,
            ring,
            buf: BytesMut::new(),
        }
    }

    /// Everything available now.
    pub fn drain(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        let (_, errors) = drain_ring(&mut self.ring, &mut self.buf, &mut out);
        assert!(errors.is_empty(), "malformed records: {errors:?}");
        out
    }

    /// Drain until `pred` holds for the collected events, or fail after 10 s.
    pub fn collect_until(&mut self, mut pred: impl FnMut(&[Event]) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut all = Vec::new();
        loop {
            all.extend(self.drain());
            if pred(&all) {
                return all;
            }
            assert!(Instant::now() < deadline, "timed out; collected: {all:#?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn drops(&self) -> Drops {
        self.tracer.drops().expect("read drop counters")
    }
}

/// Result of one traced fixture run.
pub struct Run {
    pub pid: u32,
    pub lines: Vec<Value>,
    pub events: Vec<Event>,
    pub drops: Drops,
}

/// Run `ops` in a fixture traced by a tracer filtered to its pid. All of the
/// fixture's events are in the ring when it has exited (they are emitted at
/// syscall exit), so one drain after the exit collects them all.
/// Every deletion is captured (`DeleteMode::All`).
pub fn run_traced<S: AsRef<OsStr>>(ops: &[S]) -> Run {
    run_traced_with(ops, all_deletes())
}

pub fn all_deletes() -> TraceOptions {
    TraceOptions {
        deletes: mntrace::config::DeleteMode::All,
        ..Default::default()
    }
}

pub fn run_traced_with<S: AsRef<OsStr>>(ops: &[S], mut opts: TraceOptions) -> Run {
    require_root();
    let fx = Fixture::spawn(ops);
    let pid = fx.pid;
    opts.pids = vec![pid];
    let mut t = Traced::start(opts);
    let lines = fx.release_and_wait();
    let events = t.drain();
    for e in &events {
        assert_eq!(e.pid, pid, "pid filter let through {e:?}");
    }
    let drops = t.drops();
    Run {
        pid,
        lines,
        events,
        drops,
    }
}

impl Run {
    /// Events of one kind, in order.
    pub fn of(&self, kind: EventKind) -> Vec<&Event> {
        self.events.iter().filter(|e| e.kind == kind).collect()
    }
    /// The only event of `kind`.
    pub fn one(&self, kind: EventKind) -> &Event {
        let v = self.of(kind);
        assert_eq!(v.len(), 1, "expected exactly one {kind:?}, got {v:#?}");
        v[0]
    }
    pub fn assert_no_drops(&self) {
        assert_eq!(self.drops.total(), 0, "kernel-side drops: {:?}", self.drops);
    }
}

/// Wait until process `pid` is stopped (state `T` in `/proc/PID/stat`),
/// or fail after 10 s.
pub fn wait_stopped(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = process_state(pid);
        if state == Some('T') {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} was not stopped: state {state:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The state letter of process `pid` (`/proc/PID/stat`), when it exists.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S ...`: the state follows the last `)`.
    stat.rsplit_once(')')
        .and_then(|(_, r)| r.trim_start().chars().next())
}

/// SIGKILL process `pid` (a test's own child).
pub fn kill(pid: u32) {
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

/// The resolved directory of a delete event.
pub fn delete_dir(e: &Event) -> &Dir {
    match &e.args {
        Args::Delete { dir, .. } => dir,
        other => panic!("not a delete: {other:?}"),
    }
}

pub fn pathname(e: &Event) -> &[u8] {
    match &e.args {
        Args::Delete { pathname, .. } => &pathname.bytes,
        other => panic!("not a delete: {other:?}"),
    }
}

pub fn to_path_buf(v: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(v))
}

/// A sink that keeps what it is given.
#[derive(Default)]
pub struct Collect {
    pub events: Vec<Event>,
    pub incidents: Vec<mntrace::correlate::Incident>,
}

impl mntrace::sink::Sink for Collect {
    fn event(&mut self, ev: &Event) -> std::io::Result<()> {
        self.events.push(ev.clone());
        Ok(())
    }
    fn incident(&mut self, inc: &mntrace::correlate::Incident) -> std::io::Result<()> {
        self.incidents.push(inc.clone());
        Ok(())
    }
    fn losses(&mut self, _: &Drops, _: &Drops) -> std::io::Result<()> {
        Ok(())
    }
    fn finish(&mut self, _: &mntrace::stats::Stats) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The live pipeline (enrich → correlate) run in-process over a tracer the
/// test drains itself.
pub struct Live {
    pub traced: Traced,
    pub pipeline: mntrace::pipeline::Pipeline,
    pub out: Collect,
}

impl Live {
    pub fn start(opts: TraceOptions) -> Live {
        Live {
            traced: Traced::start(opts),
            pipeline: mntrace::pipeline::Pipeline::new(
                Default::default(),
                mntrace::config::Display {
                    show_events: true,
                    ..Default::default()
                },
            ),
            out: Collect::default(),
        }
    }

    /// The pipeline over a tracer filtered to process `pid` (a fixture).
    pub fn of_pid(pid: u32) -> Live {
        Live::start(TraceOptions {
            pids: vec![pid],
            ..Default::default()
        })
    }

    /// Process everything available now.
    pub fn pump(&mut self) {
        for ev in self.traced.drain() {
            self.pipeline.event(&ev, &mut self.out).expect("pipeline");
        }
        self.pipeline.holders_ready();
        for mnt_id in self.pipeline.take_busy_mounts() {
            self.traced
                .tracer
                .arm_busy_mount(mnt_id)
                .expect("arm a busy mount");
        }
        self.pipeline.losses(self.traced.drops().total());
    }

    /// Drain, and wait until every holder scan asked for so far has
    /// answered (before the holders go away), or fail after 10 s.
    pub fn pump_and_scan(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.pump();
            if self.pipeline.enricher.scanner.pending() == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "holder scans did not answer");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Drain, then close every open incident.
    pub fn finish(&mut self) -> Vec<mntrace::correlate::Incident> {
        self.pump();
        self.pipeline
            .finish(&mut self.out)
            .expect("pipeline finish");
        std::mem::take(&mut self.out.incidents)
    }
}

/// Fixture ops for a docker-style volume race: the volume's directory
/// bind-mounted elsewhere, held busy by an open file, unmounted (EBUSY),
/// then the bind's parent removed recursively (the volume's files go); the
/// fixture lingers `linger_ms` after.
pub fn volume_race(s: &Path, linger_ms: u32) -> Vec<OsString> {
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
        linger_ms.to_string().into(),
    ]
}

/// Write `files` (relative paths) under `dir`, creating directories.
pub fn make_tree(dir: &Path, files: &[&str]) {
    for f in files {
        let p = dir.join(f);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, b"layer data").expect("write");
    }
}

/// Build the Go program `source` (Debian's Go 1.19, no modules) into
/// `dir/name`.
pub fn go_build(dir: &Path, name: &str, source: &str) -> PathBuf {
    let src = dir.join(format!("{name}.go"));
    std::fs::write(&src, source).expect("write the Go source");
    let bin = dir.join(name);
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(&src)
        .env("GOCACHE", dir.join("gocache"))
        .env("HOME", dir)
        .env("GO111MODULE", "off")
        .output()
        .expect("run go build (golang-go is installed by cargo xtask setup)");
    assert!(
        out.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// A running `mntrace record`, killed when the test ends without stopping
/// it (a failed assertion), so no recorder outlives its test.
pub struct Recording(Option<Child>);

impl Recording {
    pub fn id(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }
    /// SIGINT, then its exit status and output.
    pub fn stop(mut self) -> std::process::Output {
        let child = self.0.take().expect("running");
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        child.wait_with_output().expect("mntrace record")
    }
    /// SIGKILL, and reap it.
    pub fn kill(mut self) {
        let mut child = self.0.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `mntrace record --dir DIR -p PID EXTRA...`, once it says it records
/// (its stderr is drained from then on).
pub fn start_recording(dir: &std::path::Path, pid: u32, extra: &[&str]) -> Recording {
    let pid = pid.to_string();
    start_recording_with(dir, &[&["-p", &pid][..], extra].concat())
}

/// `mntrace record --dir DIR ARGS`, once it says it is recording.
pub fn start_recording_with(dir: &std::path::Path, args: &[&str]) -> Recording {
    let mut child = std::process::Command::new(MNTRACE)
        .args(["record", "--dir"])
        .arg(dir)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn mntrace record");
    let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).expect("read stderr");
    assert!(line.starts_with("mntrace: recording"), "{line:?}");
    // Keep draining stderr so the recorder never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    Recording(Some(child))
}

/// The incident objects of JSON Lines output.
pub fn incidents_of(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .filter(|v| v["type"] == "incident")
        .collect()
}

/// `mntrace CMD --json DIR ARGS` (triage, query): its JSON lines' stdout.
pub fn replay_json(cmd: &str, dir: &std::path::Path, args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let out = std::process::Command::new(MNTRACE)
        .args([cmd, "--json"])
        .arg(dir)
        .args(args)
        .output()
        .expect("run mntrace");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
