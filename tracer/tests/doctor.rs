//! `mntrace doctor`, through the real binary (as root, like every kernel
//! test). This project's machines are all alike (shared/PLATFORM.md: kernel
//! 6.18, BTF, lockdown integrity; tracepoints, raw_tp and tp_btf load;
//! fentry, fexit and LSM programs are refused with EPERM; no kprobes;
//! io_uring enabled), so the statuses are asserted exactly. What cannot be
//! changed on the host (BTF, tracefs, lockdown) is hidden or faked only
//! inside private mount namespaces (`unshare -m`), and the JSON output is
//! checked against its section of docs/json-schema.md.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

const SCHEMA_DOC: &str = include_str!("../../docs/json-schema.md");

fn doctor(args: &[&str]) -> Output {
    require_root();
    Command::new(MNTRACE)
        .arg("doctor")
        .args(args)
        .current_dir("/")
        .output()
        .expect("run mntrace doctor")
}

/// `sh -c SCRIPT` in a private mount namespace; `$MNTRACE` is the binary.
fn in_private_ns(script: &str) -> Output {
    require_root();
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("MNTRACE", MNTRACE)
        .current_dir("/")
        .output()
        .expect("run unshare")
}

fn json_of(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let v: Value = serde_json::from_str(lines.next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {text}\nstderr: {}", stderr(out)));
    assert_eq!(lines.next(), None, "one line only: {text}");
    v
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The check `id` of a report.
fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {report:#}"))
}

/// (id, status, state, errno) of every check, in order.
fn statuses(report: &Value) -> Vec<(String, String, String, Option<String>)> {
    let s = |v: &Value| v.as_str().unwrap_or("?").to_string();
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                s(&c["id"]),
                s(&c["status"]),
                s(&c["state"]),
                c["errno"].as_str().map(String::from),
            )
        })
        .collect()
}

fn expect(
    rows: &[(&str, &str, &str, Option<&str>)],
) -> Vec<(String, String, String, Option<String>)> {
    rows.iter()
        .map(|(i, s, t, e)| {
            (
                i.to_string(),
                s.to_string(),
                t.to_string(),
                e.map(String::from),
            )
        })
        .collect()
}

/// What this project's machines must say (PLATFORM.md).
const THIS_MACHINE: [(&str, &str, &str, Option<&str>); 15] = [
    ("capabilities", "ok", "complete", None),
    ("tracefs", "ok", "ready", None),
    ("btf", "ok", "present", None),
    ("lockdown", "ok", "integrity", None),
    ("tracepoints", "ok", "accepted", None),
    ("bpf_loop", "ok", "available", None),
    ("raw_tp", "ok", "accepted", None),
    ("tp_btf", "ok", "accepted", None),
    ("fentry", "warn", "refused", Some("EPERM")),
    ("fexit", "warn", "refused", Some("EPERM")),
    ("kprobes", "warn", "absent", None),
    ("lsm", "warn", "refused", Some("EPERM")),
    ("unique_mount_id", "ok", "available", None),
    ("statmount", "ok", "available", None),
    ("io_uring", "warn", "enabled", None),
];

#[test]
fn this_machine_can_run_mntrace_and_says_which_probe_sets_load() {
    let out = doctor(&["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json_of(&out);
    assert_eq!(statuses(&r), expect(&THIS_MACHINE), "{r:#}");
    assert_eq!(r["type"], "doctor");
    assert_eq!(r["schema"], 1);
    assert_eq!(r["can_run"], true);
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["blocking"], Value::Null);
    assert_eq!(r["warnings"], 5);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(r["kernel_release"], release.trim());

    // The reasons, in plain words.
    let found = |id: &str| check(&r, id)["found"].as_str().unwrap().to_string();
    for id in ["fentry", "fexit", "lsm"] {
        let f = found(id);
        assert!(
            f.contains("EPERM (Operation not permitted)")
                && f.contains("not for want of a capability")
                && f.contains("refuses this program type"),
            "{id}: {f}"
        );
    }
    assert!(
        found("lsm").contains("bpf is an active LSM"),
        "{}",
        found("lsm")
    );
    assert!(
        found("kprobes").contains("kprobes are not built into this kernel (CONFIG_KPROBES is off)"),
        "{}",
        found("kprobes")
    );
    assert!(
        found("io_uring").contains("blind spot"),
        "{}",
        found("io_uring")
    );
    assert!(found("tracepoints").contains("all 29 syscall tracepoint programs"));
    for c in r["checks"].as_array().unwrap() {
        assert_eq!(c["exit_code"], Value::Null, "{c}");
        assert!(!c["fix"].as_str().unwrap().is_empty(), "{c}");
        if c["status"] == "ok" {
            assert_eq!(c["fix"], "nothing to do", "{c}");
        }
    }
}

/// The text report says the same, one block per check and a verdict.
#[test]
fn text_report_has_a_status_line_and_a_fix_line_per_check() {
    let out = doctor(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("mntrace doctor: kernel "), "{text}");
    assert_eq!(lines.len(), 1 + 2 * THIS_MACHINE.len() + 1, "{text}");
    for (i, (id, status, _, _)) in THIS_MACHINE.iter().enumerate() {
        let head: Vec<&str> = lines[1 + 2 * i].split_whitespace().take(2).collect();
        assert_eq!(head, [*status, *id], "{text}");
        assert!(lines[2 + 2 * i].trim_start().starts_with("-> "), "{text}");
    }
    assert_eq!(
        lines.last().copied(),
        Some("mntrace can run here (5 warnings): exit 0")
    );
}

#[test]
fn root_without_capabilities_exits_4_with_the_capability_check_failing() {
    require_root();
    let out = Command::new("setpriv")
        .args(["--inh-caps=-all", "--bounding-set=-all", "--"])
        .arg(MNTRACE)
        .args(["doctor", "--json"])
        .current_dir("/")
        .output()
        .expect("run setpriv");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let r = json_of(&out);
    assert_eq!(r["can_run"], false);
    assert_eq!(r["exit_code"], 4);
    assert_eq!(r["blocking"], "capabilities");
    let caps = check(&r, "capabilities");
    assert_eq!(caps["status"], "fail", "{caps}");
    assert_eq!(caps["state"], "missing");
    assert_eq!(caps["exit_code"], 4);
    let found = caps["found"].as_str().unwrap();
    assert!(
        found
            .starts_with("uid 0, effective capabilities: none; missing CAP_BPF (or CAP_SYS_ADMIN)")
            && found.contains("CAP_PERFMON (or CAP_SYS_ADMIN)"),
        "{found}"
    );
    assert!(caps["fix"]
        .as_str()
        .unwrap()
        .contains("AmbientCapabilities="));
    // Nothing is loaded without the capabilities to: not tried, not refused.
    for id in ["tracepoints", "raw_tp", "tp_btf", "fentry", "fexit", "lsm"] {
        let c = check(&r, id);
        assert_eq!(
            (c["status"].as_str(), c["state"].as_str()),
            (Some("warn"), Some("not_tried")),
            "{c}"
        );
    }
    // Root still owns tracefs, and the BTF is world-readable.
    assert_eq!(check(&r, "tracefs")["status"], "ok");
    assert_eq!(check(&r, "btf")["status"], "ok");
    // Without CAP_SYS_ADMIN securityfs cannot be mounted privately to look.
    assert_eq!(check(&r, "lockdown")["state"], "unknown");

    let text = Command::new("setpriv")
        .args(["--inh-caps=-all", "--bounding-set=-all", "--"])
        .arg(MNTRACE)
        .arg("doctor")
        .output()
        .expect("run setpriv");
    assert_eq!(text.status.code(), Some(4));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.ends_with(
            "mntrace cannot run here: 1 failing check, the first is capabilities: exit 4\n"
        ),
        "{text}"
    );
}

/// No BTF (hidden under a tmpfs in a private namespace): exit 5, and no
/// program is tried.
#[test]
fn without_btf_exits_5() {
    let out = in_private_ns("mount -t tmpfs none /sys/kernel/btf && exec $MNTRACE doctor --json");
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let r = json_of(&out);
    assert_eq!(r["blocking"], "btf");
    let btf = check(&r, "btf");
    assert_eq!(
        (btf["state"].as_str(), btf["exit_code"].as_i64()),
        (Some("missing"), Some(5))
    );
    assert!(btf["found"]
        .as_str()
        .unwrap()
        .contains("CONFIG_DEBUG_INFO_BTF"));
    assert_eq!(check(&r, "tracepoints")["state"], "not_tried");
}

/// Lockdown in confidentiality mode (a faked securityfs file, in a private
/// namespace): the kernel would refuse mntrace's programs: exit 7.
#[test]
fn lockdown_confidentiality_exits_7() {
    let s = scratch();
    let fake = s.path().join("lockdown");
    std::fs::write(&fake, "none integrity [confidentiality]\n").unwrap();
    let out = in_private_ns(&format!(
        "mount -t securityfs securityfs /sys/kernel/security && \
         mount --bind {} /sys/kernel/security/lockdown && exec $MNTRACE doctor --json",
        fake.display()
    ));
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let r = json_of(&out);
    assert_eq!(r["blocking"], "lockdown");
    let l = check(&r, "lockdown");
    assert_eq!(
        (l["status"].as_str(), l["state"].as_str()),
        (Some("fail"), Some("confidentiality"))
    );
    assert!(
        l["found"]
            .as_str()
            .unwrap()
            .contains("bpf_probe_read_kernel"),
        "{l}"
    );
    // Read where it is mounted, not through a mount of its own.
    assert!(
        !l["found"].as_str().unwrap().contains("private mount"),
        "{l}"
    );
}

/// tracefs mounted nowhere (hidden under tmpfs): doctor looks through a
/// private mount of its own, says mntrace will mount it, and leaves the
/// caller's mounts as they were.
#[test]
fn tracefs_not_mounted_is_a_warning_for_root_and_is_looked_at_privately() {
    let out = in_private_ns(
        "mount -t tmpfs none /sys/kernel/tracing && mount -t tmpfs none /sys/kernel/debug && \
         $MNTRACE doctor --json; code=$?; \
         [ \"$(stat -f -c %T /sys/kernel/tracing)\" = tmpfs ] || exit 99; exit $code",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json_of(&out);
    let t = check(&r, "tracefs");
    assert_eq!(
        (t["status"].as_str(), t["state"].as_str()),
        (Some("warn"), Some("not_mounted")),
        "{t}"
    );
    let found = t["found"].as_str().unwrap();
    assert!(
        found.contains("a tmpfs is mounted there")
            && found.contains("mntrace mounts it on /sys/kernel/tracing when it starts")
            && found.contains("mounted privately to look: all 29 syscall tracepoints"),
        "{found}"
    );
    // tracefs was seen, so kprobe_events was looked for there too.
    assert!(check(&r, "kprobes")["found"]
        .as_str()
        .unwrap()
        .contains("no kprobe_events in tracefs"));
}

/// A user other than root with the required capabilities, tracefs mounted
/// nowhere: it cannot mount it: exit 6, as `mntrace trace` would.
#[test]
fn non_root_without_tracefs_exits_6() {
    // The binary where user 65534 can run it: the build's own if every
    // directory above it is searchable by others, else a copy.
    use std::os::unix::fs::PermissionsExt;
    let path = std::path::PathBuf::from(MNTRACE);
    let reachable = path.ancestors().all(|a| {
        a.as_os_str().is_empty()
            || std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
    });
    let s = scratch();
    let exe = if reachable {
        path
    } else {
        std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = s.path().join("mntrace");
        std::fs::copy(MNTRACE, &copy).expect("copy mntrace");
        copy
    };
    let out = in_private_ns(&format!(
        "mount -t tmpfs none /sys/kernel/tracing && mount -t tmpfs none /sys/kernel/debug && \
         exec setpriv --reuid=65534 --regid=65534 --clear-groups \
         --inh-caps=-all,+bpf,+perfmon,+dac_read_search \
         --ambient-caps=+bpf,+perfmon,+dac_read_search -- {} doctor --json",
        exe.display()
    ));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let r = json_of(&out);
    assert_eq!(r["blocking"], "tracefs");
    let t = check(&r, "tracefs");
    assert_eq!(t["exit_code"], 6);
    assert!(
        t["found"]
            .as_str()
            .unwrap()
            .contains("cannot mount it without CAP_SYS_ADMIN"),
        "{t}"
    );
    assert_eq!(check(&r, "capabilities")["state"], "partial");
}

// ---- the JSON output against docs/json-schema.md -------------------------------

/// The doc's doctor section: its three tables (top-level fields, check
/// fields, checks with their states).
struct DoctorDoc {
    fields: BTreeSet<String>,
    check_fields: BTreeSet<String>,
    states: Vec<(String, BTreeSet<String>)>,
}

/// Names in backticks, outside parentheses.
fn names(cell: &str) -> Vec<String> {
    let mut depth = 0;
    let mut outside = String::new();
    for c in cell.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if depth == 0 => outside.push(c),
            _ => {}
        }
    }
    outside
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.trim_matches('"').to_string())
        .collect()
}

fn doctor_doc() -> DoctorDoc {
    let start = SCHEMA_DOC
        .find("\n## `mntrace doctor --json`")
        .expect("a doctor section in docs/json-schema.md");
    let body = &SCHEMA_DOC[start + 1..];
    let body = &body[body.find('\n').unwrap()..];
    let body = match body.find("\n## ") {
        Some(end) => &body[..end],
        None => body,
    };
    let mut tables: Vec<Vec<Vec<&str>>> = Vec::new();
    let mut open = false;
    for line in body.lines() {
        if line.starts_with('|') {
            if !open {
                tables.push(Vec::new());
                open = true;
            }
            tables
                .last_mut()
                .unwrap()
                .push(line.trim().trim_matches('|').split('|').collect());
        } else {
            open = false;
        }
    }
    assert_eq!(tables.len(), 3, "three tables in the doctor section");
    let first = |t: &Vec<Vec<&str>>| -> BTreeSet<String> {
        t[2..].iter().flat_map(|row| names(row[0])).collect()
    };
    DoctorDoc {
        fields: first(&tables[0]),
        check_fields: first(&tables[1]),
        states: tables[2][2..]
            .iter()
            .map(|row| {
                let id = names(row[0]);
                assert_eq!(id.len(), 1, "{row:?}");
                (id[0].clone(), names(row[1]).into_iter().collect())
            })
            .collect(),
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

#[test]
fn json_has_every_documented_field_and_no_other() {
    let doc = doctor_doc();
    assert_eq!(
        doc.fields,
        [
            "blocking",
            "can_run",
            "checks",
            "exit_code",
            "kernel_release",
            "schema",
            "type",
            "warnings"
        ]
        .map(String::from)
        .into(),
        "the doc parses"
    );
    assert_eq!(doc.states.len(), THIS_MACHINE.len());
    let statuses: BTreeSet<String> = ["ok", "warn", "fail"].map(String::from).into();

    // This machine, without capabilities, with no BTF: every status seen.
    let reports = [
        json_of(&doctor(&["--json"])),
        json_of(
            &Command::new("setpriv")
                .args(["--inh-caps=-all", "--bounding-set=-all", "--"])
                .arg(MNTRACE)
                .args(["doctor", "--json"])
                .output()
                .expect("run setpriv"),
        ),
        json_of(&in_private_ns(
            "mount -t tmpfs none /sys/kernel/btf && exec $MNTRACE doctor --json",
        )),
    ];
    for r in &reports {
        assert_eq!(keys(r), doc.fields, "{r:#}");
        let checks = r["checks"].as_array().unwrap();
        let ids: Vec<&str> = checks.iter().map(|c| c["id"].as_str().unwrap()).collect();
        let documented: Vec<&str> = doc.states.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, documented, "the documented checks, in order");
        for (c, (_, states)) in checks.iter().zip(&doc.states) {
            assert_eq!(keys(c), doc.check_fields, "{c}");
            assert!(statuses.contains(c["status"].as_str().unwrap()), "{c}");
            assert!(
                states.contains(c["state"].as_str().unwrap()),
                "undocumented state: {c}"
            );
            assert_eq!(c["status"] == "fail", c["exit_code"].is_i64(), "{c}");
        }
        assert_eq!(
            r["warnings"].as_u64().unwrap() as usize,
            checks.iter().filter(|c| c["status"] == "warn").count()
        );
    }
}
