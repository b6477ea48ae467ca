//! What `mntrace` needs, through the real binary run by `setpriv`: root with
//! capabilities dropped, and an unprivileged user (65534) given ambient
//! capabilities. Every exit code is exact and every message says what is
//! really missing. Nothing global changes: tracefs is hidden or made
//! unreadable only inside private mount namespaces (`unshare -m`).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::*;
use serde_json::Value;

/// Required to trace as a user other than root (tracefs is root's, 0700).
const REQUIRED: &str = "bpf,perfmon,dac_read_search";
/// Required plus what complete incidents need (the README's set).
const RECOMMENDED: &str = "bpf,perfmon,dac_read_search,sys_ptrace,checkpoint_restore";

/// `+a,+b` from `a,b` for setpriv.
fn plus(caps: &str) -> String {
    caps.split(',')
        .filter(|c| !c.is_empty())
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The binary, where user 65534 can run it: the build's own if every
/// directory above it is searchable by others, else a copy under /tmp.
fn exe() -> &'static Path {
    static EXE: OnceLock<(Option<tempfile::TempDir>, PathBuf)> = OnceLock::new();
    let (_, path) = EXE.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let path = PathBuf::from(MNTRACE);
        let reachable = path.ancestors().all(|a| {
            a.as_os_str().is_empty()
                || std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
        });
        if reachable {
            return (None, path);
        }
        let dir = scratch();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod scratch");
        let copy = dir.path().join("mntrace");
        std::fs::copy(&path, &copy).expect("copy mntrace");
        (Some(dir), copy)
    });
    path
}

/// `setpriv` arguments: as user 65534 with exactly `caps` (ambient).
fn as_nobody(caps: &str) -> Vec<String> {
    let mut v: Vec<String> = ["--reuid=65534", "--regid=65534", "--clear-groups"]
        .map(String::from)
        .to_vec();
    let p = plus(caps);
    if p.is_empty() {
        v.push("--inh-caps=-all".into());
    } else {
        v.push(format!("--inh-caps=-all,{p}"));
        v.push(format!("--ambient-caps={p}"));
    }
    v
}

/// `setpriv` arguments: as root, but with exactly `caps` (bounding set).
fn as_root_with(caps: &str) -> Vec<String> {
    let p = plus(caps);
    if p.is_empty() {
        return vec!["--inh-caps=-all".into(), "--bounding-set=-all".into()];
    }
    vec![
        format!("--inh-caps=-all,{p}"),
        format!("--ambient-caps={p}"),
        format!("--bounding-set=-all,{p}"),
    ]
}

fn run(setpriv: &[String], args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(setpriv)
        .arg("--")
        .arg(exe())
        .args(args)
        .current_dir("/")
        .output()
        .expect("run setpriv")
}

/// `sh -c SCRIPT` in a private mount namespace, where tracefs is mounted
/// at /sys/kernel/tracing first if it is not; `$RUN` runs mntrace there,
/// through `setpriv SETPRIV` if given.
fn run_in_private_ns(script: &str, setpriv: Option<&[String]>) -> Output {
    let exe = exe().to_str().expect("UTF-8 path");
    let run = match setpriv {
        Some(args) => format!("setpriv {} -- {exe}", args.join(" ")),
        None => exe.to_string(),
    };
    let script = format!(
        "{{ [ \"$(stat -f -c %T /sys/kernel/tracing)\" = tracefs ] || \
         mount -t tracefs nodev /sys/kernel/tracing; }} && {script}"
    );
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env("RUN", run)
        .current_dir("/")
        .output()
        .expect("run unshare")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Advice to mount tracefs only where it is not mounted.
fn assert_no_mount_advice(err: &str) {
    assert!(
        !err.contains("mount -t tracefs") && !err.contains("mount it"),
        "tracefs is mounted, yet the message says to mount it:\n{err}"
    );
}

#[test]
fn root_without_capabilities_exits_4_naming_them() {
    require_root();
    let out = run(&as_root_with(""), &["trace", "--duration", "1"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.starts_with(
            "mntrace: not permitted: missing CAP_BPF (or CAP_SYS_ADMIN), \
             CAP_PERFMON (or CAP_SYS_ADMIN) (uid 0, effective capabilities: none)"
        ),
        "{err}"
    );
    assert!(err.contains("AmbientCapabilities="), "{err}");
    assert!(!err.contains("refused"), "{err}");
}

#[test]
fn root_with_cap_bpf_alone_exits_4_naming_cap_perfmon() {
    require_root();
    let out = run(&as_root_with("bpf"), &["watch", "--", "true"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.starts_with(
            "mntrace: not permitted: missing CAP_PERFMON (or CAP_SYS_ADMIN) (uid 0, \
             effective capabilities: CAP_BPF)"
        ),
        "{err}"
    );
}

#[test]
fn root_with_cap_sys_admin_alone_traces() {
    require_root();
    // CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON; uid 0 owns tracefs.
    let out = run(
        &as_root_with("sys_admin"),
        &["trace", "--duration", "1", "--kind", "rmdir"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.starts_with("mntrace: tracing rmdir"), "{err}");
    assert!(err.contains("warning: without CAP_SYS_PTRACE"), "{err}");
}

#[test]
fn non_root_without_capabilities_exits_4_naming_all_three() {
    require_root();
    let out = run(&as_nobody(""), &["trace", "--duration", "1"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.starts_with(
            "mntrace: not permitted: missing CAP_BPF (or CAP_SYS_ADMIN), \
             CAP_PERFMON (or CAP_SYS_ADMIN), CAP_DAC_READ_SEARCH (or CAP_DAC_OVERRIDE) \
             (uid 65534, effective capabilities: none)"
        ),
        "{err}"
    );
    assert_no_mount_advice(&err);
}

#[test]
fn non_root_with_bpf_and_perfmon_exits_4_naming_dac_read_search() {
    require_root();
    // tracefs as the kernel makes it: root's, mode 0700.
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/sys/kernel/tracing").expect("/sys/kernel/tracing");
    assert!(
        Path::new("/sys/kernel/tracing/events/syscalls").is_dir()
            && root.uid() == 0
            && root.mode() & 0o005 == 0,
        "this test expects tracefs mounted at /sys/kernel/tracing, root's and closed to \
         others (found mode {:o}, uid {})",
        root.mode(),
        root.uid()
    );
    let out = run(&as_nobody("bpf,perfmon"), &["trace", "--duration", "1"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.starts_with(
            "mntrace: not permitted: missing CAP_DAC_READ_SEARCH (or CAP_DAC_OVERRIDE) \
             (uid 65534, effective capabilities: CAP_PERFMON, CAP_BPF)"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "tracefs is mounted at /sys/kernel/tracing but not accessible: reading \
             /sys/kernel/tracing: Permission denied"
        ),
        "{err}"
    );
    assert_no_mount_advice(&err);
}

#[test]
fn tracefs_closed_to_root_without_dac_capabilities_exits_4() {
    require_root();
    // Root's own tracefs is readable without CAP_DAC_*: close its events
    // directory with a tmpfs of another user's, mode 0700, in a private
    // namespace.
    let out = run_in_private_ns(
        "mount -t tmpfs -o mode=0700,uid=65534 none /sys/kernel/tracing/events && \
         mount -t tmpfs none /sys/kernel/debug && exec $RUN trace --duration 1",
        Some(&as_root_with("bpf,perfmon")),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.starts_with(
            "mntrace: not permitted: missing CAP_DAC_READ_SEARCH (or CAP_DAC_OVERRIDE) \
             (uid 0, effective capabilities: CAP_PERFMON, CAP_BPF)"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "tracefs is mounted at /sys/kernel/tracing but not accessible: reading \
             /sys/kernel/tracing/events/syscalls: Permission denied (os error 13) \
             (/sys/kernel/tracing/events is mode 0700, owner uid 65534"
        ),
        "{err}"
    );
    assert_no_mount_advice(&err);
}

#[test]
fn tracefs_without_syscall_events_exits_6() {
    require_root();
    let out = run_in_private_ns(
        "mount -t tmpfs none /sys/kernel/tracing/events && \
         mount -t tmpfs none /sys/kernel/debug && exec $RUN trace --duration 1",
        None,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains(
            "tracefs is mounted at /sys/kernel/tracing but has no events/syscalls: \
             this kernel has no syscall tracepoints (built without CONFIG_FTRACE_SYSCALLS)"
        ),
        "{err}"
    );
    assert_no_mount_advice(&err);
}

#[test]
fn non_root_cannot_mount_tracefs_exits_6_naming_cap_sys_admin() {
    require_root();
    let out = run_in_private_ns(
        "mount -t tmpfs none /sys/kernel/tracing && mount -t tmpfs none /sys/kernel/debug && \
         exec $RUN trace --duration 1",
        Some(&as_nobody(REQUIRED)),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains(
            "tracefs is not mounted at /sys/kernel/tracing (a tmpfs is mounted there) nor \
             at /sys/kernel/debug/tracing, and mounting it on /sys/kernel/tracing failed: \
             Operation not permitted (os error 1) (mounting needs CAP_SYS_ADMIN); mount it \
             as root with `mount -t tracefs nodev /sys/kernel/tracing`"
        ),
        "{err}"
    );
}

#[test]
fn non_root_with_the_required_set_traces_and_watches_with_warnings() {
    require_root();
    let out = run(
        &as_nobody(REQUIRED),
        &["trace", "--duration", "1", "--kind", "rmdir"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.starts_with("mntrace: tracing rmdir"), "{err}");
    assert!(
        err.contains("mntrace: warning: without CAP_SYS_PTRACE")
            && err.contains("mntrace: warning: without CAP_CHECKPOINT_RESTORE")
            && err.contains("incidents are still detected"),
        "{err}"
    );
    assert!(!err.contains("without CAP_DAC_READ_SEARCH"), "{err}");

    let out = run(
        &as_nobody(REQUIRED),
        &["watch", "--kind", "rmdir", "--", "sh", "-c", "exit 5"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "the command's status: {err}");
    assert!(err.starts_with("mntrace: watching rmdir"), "{err}");
}

/// `watch` does not hand mntrace's ambient capabilities to its command: a
/// non-root mntrace given CAP_BPF etc. runs the command with none.
#[test]
fn non_root_watch_gives_its_command_no_capabilities() {
    require_root();
    let out = run(
        &as_nobody(REQUIRED),
        &[
            "watch",
            "--kind",
            "rmdir",
            "--",
            "sh",
            "-c",
            "grep -E '^Cap(Prm|Eff|Amb):' /proc/self/status",
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let caps = String::from_utf8_lossy(&out.stdout);
    for set in ["CapPrm", "CapEff", "CapAmb"] {
        assert!(
            caps.contains(&format!("{set}:\t0000000000000000")),
            "{set} of the command:\n{caps}"
        );
    }
}

#[test]
fn non_root_with_the_recommended_set_traces_without_warnings() {
    require_root();
    let out = run(
        &as_nobody(RECOMMENDED),
        &["trace", "--duration", "1", "--kind", "rmdir"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.starts_with("mntrace: tracing rmdir"), "{err}");
    assert!(!err.contains("mntrace: warning"), "{err}");
}

/// `mntrace ARGS` as user 65534 with `caps`, once it says it traces (its
/// stderr is passed on from then on).
fn trace_as_nobody(caps: &str, args: &[&str]) -> std::process::Child {
    let mut tracer = Command::new("setpriv")
        .args(as_nobody(caps))
        .arg("--")
        .arg(exe())
        .args(args)
        .current_dir("/")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mntrace");
    let mut err = BufReader::new(tracer.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("read stderr");
    assert!(line.starts_with("mntrace: tracing"), "{line}");
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = err.read_to_string(&mut rest);
        eprint!("{rest}");
    });
    tracer
}

/// SIGINT `tracer`; its JSON records once it exited 0.
fn stop_json(mut tracer: std::process::Child) -> Vec<Value> {
    unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) };
    let mut out = String::new();
    tracer
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read stdout");
    assert_eq!(tracer.wait().expect("wait").code(), Some(0));
    out.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
        .collect()
}

/// The race by a root process, traced by user 65534 with `caps`: the
/// incident record.
fn race_seen_by_nobody_with(caps: &str) -> Value {
    let s = scratch();
    let fx = Fixture::spawn(&volume_race(s.path(), 300));
    let pid = fx.pid.to_string();
    let tracer = trace_as_nobody(
        caps,
        &["trace", "--json", "--pid", &pid, "--duration", "30"],
    );
    fx.release_and_wait();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let records = stop_json(tracer);
    records
        .into_iter()
        .find(|r| r["type"] == "incident")
        .unwrap_or_else(|| panic!("no incident"))
}

/// The deployment's user (65534 with the required capabilities, as the
/// systemd unit runs it) can guard: the kernel sends the signal, so killing
/// a root process needs no CAP_KILL.
#[test]
fn the_guard_kills_a_root_process_for_the_unprivileged_deployment_user() {
    use std::os::unix::process::ExitStatusExt;
    require_root();
    let s = scratch();
    let mut fx = Fixture::spawn(&volume_race(s.path(), 300));
    let pid = fx.pid.to_string();
    let tracer = trace_as_nobody(
        REQUIRED,
        &[
            "trace",
            "--json",
            "--pid",
            &pid,
            "--guard",
            "kill",
            "--duration",
            "30",
        ],
    );
    fx.release();
    let (status, _) = fx.wait_status();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let data = s.path().join("docker/volumes/v1/_data/db");
    assert!(
        data.join("a.dat").exists() && data.join("b.dat").exists(),
        "the volume is whole"
    );
    let records = stop_json(tracer);
    let guards: Vec<&Value> = records.iter().filter(|r| r["syscall"] == "guard").collect();
    assert_eq!(guards.len(), 1, "{records:#?}");
    assert_eq!(guards[0]["args"]["action"], "killed");
    assert_eq!(guards[0]["ret"], 0, "the signal was sent");
}

#[test]
fn recommended_set_gives_complete_incidents_required_set_detects_them() {
    require_root();
    let full = race_seen_by_nobody_with(RECOMMENDED);
    assert_eq!(full["severity"], "critical", "{full:#}");
    assert_eq!(full["root_label"], "docker volume");
    assert_eq!(full["count"], 3);
    assert!(
        full["mount"]["fstype"].is_string(),
        "mount table read: {full:#}"
    );
    assert!(
        full["holders"]["processes"]
            .as_array()
            .is_some_and(|p| p.iter().any(|h| h["holds"][0]["how"] == "fd")),
        "holders scanned: {full:#}"
    );

    // Without CAP_SYS_PTRACE: the same incident, without what /proc of a
    // root process would have told.
    let part = race_seen_by_nobody_with(REQUIRED);
    assert_eq!(part["severity"], "critical", "{part:#}");
    assert_eq!(part["count"], 3);
    assert!(part["mount"]["fstype"].is_null(), "{part:#}");
    assert!(part["holders"].is_null(), "{part:#}");
}
