//! `mntrace doctor`: can mntrace run on this node, and what to fix.
//!
//! Every check says ok, warn or fail, what it found and what to do, in plain
//! words. The capability, tracefs and BTF checks are the start-up checks'
//! own ([`preflight`]); the others read what the kernel exposes (securityfs,
//! sysctls, the kernel release) and ask the kernel directly: the syscall
//! tracepoint programs mntrace attaches, and one trivial program of each
//! other type (`tracer-ebpf/src/probe_test.rs`), are loaded (never
//! attached) and the kernel's answer, errno included, is reported.
//!
//! Nothing on the host changes. What is not mounted (securityfs, tracefs) is
//! looked at through a private mount namespace of a thread of its own (its
//! mounts never propagate out, and go with the thread), and only with
//! CAP_SYS_ADMIN. The loaded programs are closed before the report.
//!
//! The exit code is that of the first failing check, in the order shown,
//! which is the order in which `mntrace trace` meets them at start: 4 (not
//! permitted), 5 (no BTF), 6 (no tracefs or syscall tracepoints), 7 (the
//! kernel refuses mntrace's programs); 0 when mntrace can run.
//!
//! The parsers and the findings built from what was read are pure, for the
//! unit tests: the system is only read in [`run`] and the `read_*` and
//! `try_*` functions it calls.

use std::io;
use std::path::Path;

use aya::programs::{BtfTracePoint, FEntry, FExit, Lsm, ProgramError, RawTracePoint};
use aya::{Btf, Ebpf};
use serde_json::{json, Value};

use crate::config::TraceOptions;
use crate::error::exit;
use crate::loader;
use crate::names::errno_name;
use crate::preflight::{
    self, cap, BtfState, CapsCheck, Finding, Status, Tracefs, TracefsFound, TRACEFS,
};
use crate::probes::probes;
use crate::EventKind;

/// Where securityfs is normally mounted.
pub const SECURITYFS: &str = "/sys/kernel/security";
const SECURITYFS_MAGIC: i64 = 0x7363_6673;
/// The kprobe PMU: present when the kernel has kprobes (CONFIG_KPROBES).
pub const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe";
pub const IO_URING_DISABLED: &str = "/proc/sys/kernel/io_uring_disabled";
pub const OSRELEASE: &str = "/proc/sys/kernel/osrelease";

/// Attach targets of the trivial programs in `tracer-ebpf/src/probe_test.rs`
/// (the same names are in their section names there).
const TP_BTF_TARGET: &str = "sys_enter";
const FUNCTION_TARGET: &str = "vfs_unlink";
const LSM_HOOK: &str = "path_unlink";

// ---- parsing (pure) ---------------------------------------------------------

/// Kernel lockdown mode (`/sys/kernel/security/lockdown`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lockdown {
    None,
    Integrity,
    Confidentiality,
}

impl Lockdown {
    pub fn name(self) -> &'static str {
        match self {
            Lockdown::None => "none",
            Lockdown::Integrity => "integrity",
            Lockdown::Confidentiality => "confidentiality",
        }
    }
}

/// The bracketed mode of `none [integrity] confidentiality`.
pub fn parse_lockdown(text: &str) -> Option<Lockdown> {
    let word = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))?;
    match word {
        "none" => Some(Lockdown::None),
        "integrity" => Some(Lockdown::Integrity),
        "confidentiality" => Some(Lockdown::Confidentiality),
        _ => None,
    }
}

/// The active security modules, in order (`/sys/kernel/security/lsm`:
/// `lockdown,capability,landlock,bpf`).
pub fn parse_lsm(text: &str) -> Vec<String> {
    text.trim()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// `kernel.io_uring_disabled` (6.6 and later).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoUring {
    /// 0: every process may create io_uring instances.
    Enabled,
    /// 1: only members of `kernel.io_uring_group` and CAP_SYS_ADMIN.
    Restricted,
    /// 2: nobody.
    Disabled,
}

impl IoUring {
    pub fn name(self) -> &'static str {
        match self {
            IoUring::Enabled => "enabled",
            IoUring::Restricted => "restricted",
            IoUring::Disabled => "disabled",
        }
    }
}

pub fn parse_io_uring_disabled(text: &str) -> Option<IoUring> {
    match text.trim() {
        "0" => Some(IoUring::Enabled),
        "1" => Some(IoUring::Restricted),
        "2" => Some(IoUring::Disabled),
        _ => None,
    }
}

/// A kernel version, from a release string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion(pub u32, pub u32, pub u32);

impl std::fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// `6.18.44-fc-v657`, `5.14.0-427.el9.x86_64`, `6.8`, `6.1.0-56-cloud-amd64`:
/// the leading `major.minor[.patch]`.
pub fn parse_kernel_version(release: &str) -> Option<KernelVersion> {
    let numeric: String = release
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = numeric.split('.').filter(|p| !p.is_empty());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some(KernelVersion(major, minor, patch))
}

// ---- what was read, and the findings built from it (pure) -------------------

/// A file of securityfs, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecFile {
    /// Its contents; `private`: read through a private mount of securityfs
    /// (it is not mounted on the host).
    Text { text: String, private: bool },
    /// securityfs was readable, the file is not there (the module that
    /// makes it is not built in).
    Absent,
    /// Could not be read: why.
    Unknown(String),
}

fn via(private: bool) -> &'static str {
    if private {
        " (read through a private mount of securityfs: it is not mounted here)"
    } else {
        ""
    }
}

pub fn lockdown_finding(file: &SecFile) -> Finding {
    const ID: &str = "lockdown";
    let path = format!("{SECURITYFS}/lockdown");
    match file {
        SecFile::Text { text, private } => match parse_lockdown(text) {
            Some(Lockdown::Confidentiality) => Finding::fail(
                ID,
                "confidentiality",
                format!(
                    "kernel lockdown is in confidentiality mode{}: it forbids \
                     bpf_probe_read_kernel, which every mntrace program uses to resolve \
                     mounts and paths, so the kernel refuses them",
                    via(*private)
                ),
                "boot with lockdown=integrity (or none), or without the setting or Secure \
                 Boot policy that raises it to confidentiality",
                exit::REFUSED,
            ),
            Some(mode) => Finding::ok(
                ID,
                mode.name(),
                format!(
                    "kernel lockdown is {}{}: it allows everything mntrace does \
                     (bpf_probe_read_kernel; only confidentiality forbids it)",
                    mode.name(),
                    via(*private)
                ),
            ),
            None => Finding::warn(
                ID,
                "unknown",
                format!("{path} says {:?}, not a mode mntrace knows", text.trim()),
                "if it is confidentiality, mntrace's programs will be refused (see \
                 tracepoints)",
            ),
        },
        SecFile::Absent => Finding::ok(
            ID,
            "none",
            format!("no {path}: the kernel has no lockdown module, nothing is locked down"),
        ),
        SecFile::Unknown(why) => Finding::warn(
            ID,
            "unknown",
            format!("lockdown mode unknown: {why}"),
            "run doctor as root to read it; only confidentiality mode stops mntrace, and \
             the tracepoints check shows whether the kernel accepts its programs",
        ),
    }
}

/// What the kernel said to loading a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Load {
    Accepted,
    /// Refused: the errno, if the kernel gave one, and the whole message.
    Refused {
        errno: Option<i32>,
        detail: String,
    },
    /// Not tried: why.
    NotTried(String),
}

impl Load {
    fn errno_name(&self) -> Option<String> {
        match self {
            Load::Refused { errno: Some(n), .. } => Some(errno_label(*n)),
            _ => None,
        }
    }
}

/// `EPERM`; ENOTSUPP (524) is the kernel's own, not in the UAPI.
fn errno_label(n: i32) -> String {
    match errno_name(n) {
        Some(name) => name.to_string(),
        None if n == 524 => "ENOTSUPP".to_string(),
        None => format!("errno {n}"),
    }
}

/// `EPERM (Operation not permitted)`.
fn errno_text(n: i32) -> String {
    let os = io::Error::from_raw_os_error(n).to_string();
    let os = os.split(" (os error").next().unwrap_or("").to_string();
    match n {
        524 => "ENOTSUPP (not supported by this kernel)".to_string(),
        _ => format!("{} ({os})", errno_label(n)),
    }
}

/// Why the kernel likely refused, in plain words.
fn refusal_reason(errno: Option<i32>, caps: &CapsCheck, not_built: &str) -> String {
    match errno {
        Some(libc::EPERM) if caps.needs.is_empty() && !caps.caps.has(cap::SYS_ADMIN) => format!(
            "{} has {} but not CAP_SYS_ADMIN: run doctor as root to tell a missing \
             capability from a policy of this kernel",
            who(caps),
            held_bpf_caps(caps)
        ),
        Some(libc::EPERM) if caps.needs.is_empty() => format!(
            "not for want of a capability ({} has {}): this kernel's own policy refuses \
             this program type",
            who(caps),
            held_bpf_caps(caps)
        ),
        Some(libc::EPERM) => "this process lacks CAP_BPF or CAP_PERFMON".to_string(),
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(524) | Some(libc::ENOENT) => {
            format!("this kernel does not support it ({not_built})")
        }
        _ => "the kernel's answer is above".to_string(),
    }
}

fn who(caps: &CapsCheck) -> String {
    if caps.uid == 0 {
        "root".to_string()
    } else {
        format!("uid {}", caps.uid)
    }
}

fn held_bpf_caps(caps: &CapsCheck) -> String {
    let held: Vec<String> = [cap::BPF, cap::PERFMON, cap::SYS_ADMIN]
        .into_iter()
        .filter(|&c| caps.caps.has(c))
        .map(cap::name)
        .collect();
    match held.len() {
        0 => "none of CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN".to_string(),
        _ => held.join(", "),
    }
}

/// One optional probe set (not used by `trace` today): accepted is ok,
/// anything else a warning.
fn optional_finding(
    id: &'static str,
    what: &str,
    load: &Load,
    caps: &CapsCheck,
    not_built: &str,
    fix: &str,
) -> Finding {
    match load {
        Load::Accepted => Finding::ok(
            id,
            "accepted",
            format!("the kernel accepts {what}: loaded, not attached"),
        ),
        Load::Refused { errno, detail } => Finding::warn(
            id,
            "refused",
            format!(
                "the kernel refused {what}: {}; {}",
                answer(*errno, detail),
                refusal_reason(*errno, caps, not_built)
            ),
            fix,
        )
        .with_errno(load.errno_name()),
        Load::NotTried(why) => Finding::warn(
            id,
            "not_tried",
            format!("{what} not tried: {why}"),
            "fix the failing checks above, then run doctor again",
        ),
    }
}

const UNUSED: &str = "nothing needed: mntrace attaches syscall tracepoints only";
const KERNEL_FUNCTIONS: &str = "nothing needed: mntrace attaches syscall tracepoints only; \
                                the faster kernel-function probe set (planned) needs fentry/fexit \
                                or kprobes, which stock distribution kernels allow";

/// The syscall tracepoint programs mntrace attaches: needed.
pub fn tracepoints_finding(load: &Load, count: usize, caps: &CapsCheck) -> Finding {
    const ID: &str = "tracepoints";
    match load {
        Load::Accepted => Finding::ok(
            ID,
            "accepted",
            format!(
                "the kernel accepts all {count} syscall tracepoint programs mntrace \
                 attaches (loaded through the verifier, not attached)"
            ),
        ),
        Load::Refused { errno, detail } => Finding::fail(
            ID,
            "refused",
            format!(
                "the kernel refused mntrace's syscall tracepoint programs: {}",
                answer(*errno, detail)
            ),
            match errno {
                Some(libc::EPERM) if caps.needs.is_empty() => {
                    "a security policy of this kernel forbids eBPF tracing programs: \
                     mntrace cannot run here until it allows them"
                }
                _ => {
                    "report this output (kernel release and the verifier's reason) to \
                     mntrace's maintainers; a kernel of 5.17 or later with BTF is needed"
                }
            },
            exit::REFUSED,
        )
        .with_errno(load.errno_name()),
        Load::NotTried(why) => Finding::warn(
            ID,
            "not_tried",
            format!("mntrace's syscall tracepoint programs not tried: {why}"),
            "fix the failing checks above, then run doctor again",
        ),
    }
}

/// kprobes: whether the kernel has them at all.
pub fn kprobes_finding(pmu: bool, kprobe_events: Option<bool>) -> Finding {
    const ID: &str = "kprobes";
    if pmu || kprobe_events == Some(true) {
        return Finding::ok(
            ID,
            "available",
            format!(
                "the kernel has kprobes ({})",
                if pmu {
                    format!("{KPROBE_PMU} is there")
                } else {
                    "tracefs has kprobe_events".to_string()
                }
            ),
        );
    }
    let events = match kprobe_events {
        Some(_) => "and no kprobe_events in tracefs",
        None => "(tracefs, and its kprobe_events, could not be looked at)",
    };
    Finding::warn(
        ID,
        "absent",
        format!(
            "kprobes are not built into this kernel (CONFIG_KPROBES is off): no kprobe \
             PMU at {KPROBE_PMU} {events}"
        ),
        KERNEL_FUNCTIONS,
    )
}

pub fn lsm_finding(load: &Load, lsm: &SecFile, caps: &CapsCheck) -> Finding {
    const ID: &str = "lsm";
    let what = format!("a trivial BPF LSM program (lsm/{LSM_HOOK})");
    let active = match lsm {
        SecFile::Text { text, private } => {
            let list = parse_lsm(text);
            let on = list.iter().any(|m| m == "bpf");
            Some((on, format!("{}{}", list.join(","), via(*private))))
        }
        _ => None,
    };
    let list_note = match &active {
        Some((true, list)) => format!("bpf is an active LSM: {list}"),
        Some((false, list)) => format!("bpf is not an active LSM: {list}"),
        None => match lsm {
            SecFile::Unknown(why) => format!("active LSMs unknown: {why}"),
            _ => format!("no {SECURITYFS}/lsm"),
        },
    };
    let fix = "nothing needed unless you want --guard deny (BPF LSM programs on path_unlink, \
               path_rmdir, path_rename); --guard stop and kill work without it, and --guard \
               auto is stop where deny is refused";
    let mut f = optional_finding(
        ID,
        &what,
        load,
        caps,
        "built without CONFIG_BPF_LSM or CONFIG_SECURITY_PATH",
        fix,
    );
    f.found = format!("{}; {list_note}", f.found);
    if matches!(load, Load::Accepted) && matches!(active, Some((false, _))) {
        // It loads, but would never run.
        f.status = Status::Warn;
        f.state = "inactive".into();
        f.fix = "nothing needed unless you want --guard deny, which needs bpf among the active \
                 LSMs: add bpf to the lsm= boot parameter"
            .into();
    }
    f
}

pub fn io_uring_finding(text: Option<&str>, version: Option<KernelVersion>) -> Finding {
    const ID: &str = "io_uring";
    let blind = "mntrace traces io_uring's unlink, rmdir and rename requests \
                 (IORING_OP_UNLINKAT, IORING_OP_RENAMEAT, through the io_uring tracepoints) \
                 like the syscalls, but the guard acts at a walk's listings, not at io_uring \
                 requests: what is left of a blind spot";
    let close = "if nothing on this node needs io_uring, close it with \
                 sysctl kernel.io_uring_disabled=2";
    match text.map(parse_io_uring_disabled) {
        Some(Some(IoUring::Disabled)) => Finding::ok(
            ID,
            "disabled",
            "io_uring is disabled (kernel.io_uring_disabled = 2): every deletion goes \
             through the syscalls mntrace traces",
        ),
        Some(Some(IoUring::Restricted)) => Finding::warn(
            ID,
            "restricted",
            format!(
                "io_uring is restricted (kernel.io_uring_disabled = 1) to members of \
                 kernel.io_uring_group and CAP_SYS_ADMIN; for them, {blind}"
            ),
            close,
        ),
        Some(Some(IoUring::Enabled)) => Finding::warn(
            ID,
            "enabled",
            format!("io_uring is enabled (kernel.io_uring_disabled = 0): {blind}"),
            close,
        ),
        Some(None) => Finding::warn(
            ID,
            "unknown",
            format!(
                "{IO_URING_DISABLED} says {:?}, not a value mntrace knows; if io_uring \
                 is usable, {blind}",
                text.unwrap_or("").trim()
            ),
            close,
        ),
        None if version.is_some_and(|v| v >= KernelVersion(6, 6, 0)) => Finding::ok(
            ID,
            "absent",
            format!(
                "no {IO_URING_DISABLED} on a 6.6+ kernel: built without io_uring, so no \
                 deletion can bypass the syscalls"
            ),
        ),
        None => Finding::warn(
            ID,
            "unknown",
            format!(
                "no {IO_URING_DISABLED} (kernels before 6.6 have no such switch): \
                 io_uring is probably usable by every process, and {blind}"
            ),
            "if nothing on this node needs io_uring, disable it (kernels before 6.6: \
             only by building without CONFIG_IO_URING)",
        ),
    }
}

/// bpf_loop (5.17): the path walk needs it. A distribution kernel may have
/// it backported: then the tracepoint programs load all the same.
pub fn bpf_loop_finding(version: Option<KernelVersion>, tracepoints: &Load) -> Finding {
    const ID: &str = "bpf_loop";
    let need = KernelVersion(5, 17, 0);
    match version {
        Some(v) if v >= need => Finding::ok(
            ID,
            "available",
            format!("kernel {v} has bpf_loop (5.17+), which mntrace's path walk uses"),
        ),
        Some(v) if matches!(tracepoints, Load::Accepted) => Finding::ok(
            ID,
            "available",
            format!(
                "kernel {v} predates bpf_loop (5.17), yet mntrace's programs that call \
                 it loaded: backported"
            ),
        ),
        Some(v) => Finding::fail(
            ID,
            "missing",
            format!(
                "kernel {v} predates bpf_loop (5.17), which mntrace's path walk needs: \
                 its programs will be refused"
            ),
            "run kernel 5.17 or later",
            exit::REFUSED,
        ),
        None => Finding::warn(
            ID,
            "unknown",
            "the kernel version is unknown; bpf_loop needs 5.17 (see tracepoints for \
             whether mntrace's programs load)",
            "nothing, if the tracepoints check is ok",
        ),
    }
}

/// The 64-bit unique mount id (6.8).
pub fn unique_mount_id_finding(version: Option<KernelVersion>) -> Finding {
    const ID: &str = "unique_mount_id";
    let need = KernelVersion(6, 8, 0);
    match version {
        Some(v) if v >= need => Finding::ok(
            ID,
            "available",
            format!(
                "kernel {v} has unique 64-bit mount ids (6.8+): events carry mnt_id_unique, \
                 which the kernel never reuses until reboot"
            ),
        ),
        Some(v) => Finding::warn(
            ID,
            "missing",
            format!(
                "kernel {v} predates unique mount ids (6.8): events carry mnt_id only, \
                 which the kernel reuses once a mount is gone"
            ),
            "nothing needed (mntrace matches mounts by mnt_id and namespace); kernel \
             6.8 or later adds mnt_id_unique",
        ),
        None => Finding::warn(
            ID,
            "unknown",
            "the kernel version is unknown: mnt_id_unique is reported from 6.8",
            "nothing needed",
        ),
    }
}

/// Mount tables from single mounts (statmount, by namespace id).
pub fn statmount_finding(probe: &io::Result<()>) -> Finding {
    const ID: &str = "statmount";
    match probe {
        Ok(()) => Finding::ok(
            ID,
            "available",
            "statmount(2) answers for a namespace given by id (6.8+, 6.11+ for other \
             namespaces): mount churn marks tables changed and deletions ask about their \
             mount alone, whatever the number of mounts"
                .to_owned(),
        ),
        Err(e) => Finding::warn(
            ID,
            "unavailable",
            format!(
                "statmount(2) by namespace id does not answer here ({e}): mntrace rereads a \
                 namespace's /proc/PID/mountinfo at every mount, which costs CPU in \
                 proportion to the number of mounts on nodes with heavy mount churn"
            ),
            "nothing needed for correctness; kernel 6.11 or later makes mount churn cheap",
        ),
    }
}

// ---- reading the system -------------------------------------------------------

/// Run `f` on a thread of its own in a private mount namespace: a copy of
/// this process's mounts from which nothing propagates back, where `f` may
/// mount what it needs to look at. It all goes with the thread. Needs
/// CAP_SYS_ADMIN.
fn in_private_mount_ns<T: Send>(f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: plain syscalls on this thread only (CLONE_NEWNS
            // unshares this thread's fs_struct with it).
            if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: NUL-terminated path, no data. Without this, a mount
            // below a shared mount would propagate to the host: stop if it
            // fails.
            let r = unsafe {
                libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                )
            };
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the private-namespace thread panicked")))
    })
}

fn mount_securityfs() -> io::Result<()> {
    // SAFETY: NUL-terminated strings, no data.
    let r = unsafe {
        libc::mount(
            c"securityfs".as_ptr(),
            c"/sys/kernel/security".as_ptr(),
            c"securityfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn read_sec(name: &str, private: bool) -> SecFile {
    let path = Path::new(SECURITYFS).join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => SecFile::Text { text, private },
        Err(e) if e.kind() == io::ErrorKind::NotFound => SecFile::Absent,
        Err(e) => SecFile::Unknown(format!("{}: {e}", path.display())),
    }
}

/// Whether `bpf` is among the kernel's active LSMs, and their list (read as
/// the `lsm` check reads it); `None` when the list cannot be read.
pub fn bpf_lsm_active() -> Option<(bool, String)> {
    let caps = CapsCheck::current().ok()?;
    match read_security_files(&caps).1 {
        SecFile::Text { text, .. } => {
            let list = parse_lsm(&text);
            Some((list.iter().any(|m| m == "bpf"), list.join(",")))
        }
        _ => None,
    }
}

/// `lockdown` and `lsm` of securityfs: where it is mounted, else through a
/// private mount of it (with CAP_SYS_ADMIN).
fn read_security_files(caps: &CapsCheck) -> (SecFile, SecFile) {
    let dir = Path::new(SECURITYFS);
    if preflight::statfs_type(dir).ok() == Some(SECURITYFS_MAGIC) {
        return (read_sec("lockdown", false), read_sec("lsm", false));
    }
    if !caps.caps.has(cap::SYS_ADMIN) {
        let why = format!(
            "securityfs is not mounted at {SECURITYFS}, and mounting it (privately) needs \
             CAP_SYS_ADMIN"
        );
        return (SecFile::Unknown(why.clone()), SecFile::Unknown(why));
    }
    let r = in_private_mount_ns(|| {
        mount_securityfs()?;
        Ok((read_sec("lockdown", true), read_sec("lsm", true)))
    });
    r.unwrap_or_else(|e| {
        let why = format!(
            "securityfs is not mounted at {SECURITYFS}, and mounting it in a private mount \
             namespace failed: {e}"
        );
        (SecFile::Unknown(why.clone()), SecFile::Unknown(why))
    })
}

/// The tracefs check: the start-up check's look, then whether every
/// tracepoint mntrace attaches is there. Where tracefs is mounted nowhere,
/// it is mounted in a private namespace to look (as mntrace would mount it
/// at start).
fn check_tracefs(caps: &CapsCheck, tracepoints: &[&str]) -> (Finding, Option<bool>) {
    let found = preflight::find_tracefs(tracepoints.first().copied());
    let mut f = found.finding(caps);
    let missing_fail = |f: &mut Finding, missing: &[&str]| {
        *f = Finding::fail(
            "tracefs",
            "missing_tracepoints",
            format!(
                "{}; but {} of the {} syscall tracepoints mntrace attaches are missing: {}",
                f.found,
                missing.len(),
                tracepoints.len(),
                missing.join(", ")
            ),
            "trace only the kinds this kernel has (-k), or run a kernel that has these \
             syscalls",
            exit::REFUSED,
        );
    };
    let kprobe_events = |root: &Path| Some(root.join("kprobe_events").exists());
    match &found {
        TracefsFound::Ready(root) => {
            let missing = preflight::missing_tracepoints(root, tracepoints);
            if missing.is_empty() {
                f.found = format!(
                    "{}: all {} syscall tracepoints mntrace attaches are there",
                    f.found,
                    tracepoints.len()
                );
            } else {
                missing_fail(&mut f, &missing);
            }
            let k = kprobe_events(root);
            (f, k)
        }
        TracefsFound::NotMounted(_) if f.status == Status::Warn => {
            // Look at what mntrace would mount, without mounting it here.
            let look = in_private_mount_ns(|| {
                preflight::mount_tracefs()?;
                let root = Path::new(TRACEFS);
                Ok(
                    match preflight::probe_tracefs(root, tracepoints.first().copied()) {
                        Tracefs::Ready(_) => (
                            Some(preflight::missing_tracepoints(root, tracepoints)),
                            kprobe_events(root),
                        ),
                        Tracefs::NoSyscalls(_) => (None, kprobe_events(root)),
                        _ => (Some(Vec::new()), None),
                    },
                )
            });
            match look {
                Ok((Some(missing), k)) if missing.is_empty() => {
                    f.found = format!(
                        "{}; mounted privately to look: all {} syscall tracepoints mntrace \
                         attaches are there",
                        f.found,
                        tracepoints.len()
                    );
                    (f, k)
                }
                Ok((Some(missing), k)) => {
                    missing_fail(&mut f, &missing);
                    (f, k)
                }
                Ok((None, k)) => (TracefsFound::NoSyscalls(TRACEFS.into()).finding(caps), k),
                Err(e) => {
                    f.found = format!("{}; mounting it privately to look failed: {e}", f.found);
                    (f, None)
                }
            }
        }
        _ => (f, None),
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The programs' answers.
struct Loads {
    tracepoints: Load,
    raw_tp: Load,
    tp_btf: Load,
    fentry: Load,
    fexit: Load,
    lsm: Load,
}

impl Loads {
    fn all_not_tried(why: &str) -> Loads {
        let n = || Load::NotTried(why.to_string());
        Loads {
            tracepoints: n(),
            raw_tp: n(),
            tp_btf: n(),
            fentry: n(),
            fexit: n(),
            lsm: n(),
        }
    }
}

/// The errno in an error's source chain.
fn errno_of(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(n) = e
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return Some(n);
        }
        cur = e.source();
    }
    None
}

fn load_result(r: Result<(), ProgramError>) -> Load {
    match r {
        Ok(()) => Load::Accepted,
        Err(ProgramError::LoadError {
            io_error,
            verifier_log,
        }) => {
            let log = verifier_log.to_string();
            let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
            let detail = if lines.is_empty() {
                "before the verifier ran (its log is empty)".to_string()
            } else {
                let tail = &lines[lines.len().saturating_sub(3)..];
                format!("by the verifier: {}", tail.join(" | "))
            };
            Load::Refused {
                errno: io_error.raw_os_error(),
                detail,
            }
        }
        Err(e) => Load::Refused {
            errno: errno_of(&e),
            detail: e.to_string(),
        },
    }
}

/// `EPERM (Operation not permitted), before the verifier ran (...)`.
fn answer(errno: Option<i32>, detail: &str) -> String {
    match errno {
        Some(n) => format!("{}, {detail}", errno_text(n)),
        None => detail.to_string(),
    }
}

/// Load one program of the object with `load`, by name.
fn try_program<P>(
    ebpf: &mut Ebpf,
    name: &str,
    load: impl FnOnce(&mut P) -> Result<(), ProgramError>,
) -> Load
where
    for<'a> &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let Some(prog) = ebpf.program_mut(name) else {
        return Load::NotTried(format!("program {name} is missing from mntrace's object"));
    };
    match <&mut P>::try_from(prog) {
        Ok(p) => load_result(load(p)),
        Err(e) => Load::NotTried(format!("program {name}: {e}")),
    }
}

/// Load the object, every tracepoint program mntrace attaches, and the
/// trivial programs of the other types; attach nothing. Everything is
/// closed on return.
fn try_programs(caps: &CapsCheck, btf: &BtfState, tracepoint_programs: &[String]) -> Loads {
    if !caps.needs.is_empty() {
        return Loads::all_not_tried(
            "loading programs needs CAP_BPF and CAP_PERFMON (see capabilities)",
        );
    }
    if *btf != BtfState::Readable {
        return Loads::all_not_tried("the kernel's BTF is needed (see btf)");
    }
    let cpus = match loader::possible_cpus() {
        Ok(n) => n,
        Err(e) => return Loads::all_not_tried(&e.to_string()),
    };
    let mut ebpf = match loader::load_object_with(TraceOptions::default().ring_size, cpus) {
        Ok(ebpf) => ebpf,
        Err(e) => {
            let mut loads =
                Loads::all_not_tried("mntrace's eBPF object could not be loaded (see tracepoints)");
            loads.tracepoints = Load::Refused {
                errno: errno_of(&e),
                detail: format!(
                    "the eBPF object (maps, BTF relocations): {:#}",
                    anyhow::Error::from(e)
                ),
            };
            return loads;
        }
    };
    let mut tracepoints = Load::Accepted;
    for name in tracepoint_programs {
        match try_program(&mut ebpf, name, aya::programs::TracePoint::load) {
            Load::Accepted => {}
            Load::Refused { errno, detail } => {
                tracepoints = Load::Refused {
                    errno,
                    detail: format!("program {name} refused {detail}"),
                };
                break;
            }
            other => {
                tracepoints = other;
                break;
            }
        }
    }
    let raw_tp = try_program(&mut ebpf, "probe_test_raw_tp", RawTracePoint::load);
    let (tp_btf, fentry, fexit, lsm) = match Btf::from_sys_fs() {
        Ok(btf) => (
            try_program(&mut ebpf, "probe_test_tp_btf", |p: &mut BtfTracePoint| {
                p.load(TP_BTF_TARGET, &btf)
            }),
            try_program(&mut ebpf, "probe_test_fentry", |p: &mut FEntry| {
                p.load(FUNCTION_TARGET, &btf)
            }),
            try_program(&mut ebpf, "probe_test_fexit", |p: &mut FExit| {
                p.load(FUNCTION_TARGET, &btf)
            }),
            try_program(&mut ebpf, "probe_test_lsm", |p: &mut Lsm| {
                p.load(LSM_HOOK, &btf)
            }),
        ),
        Err(e) => {
            let n = || Load::NotTried(format!("the kernel's BTF cannot be parsed: {e}"));
            (n(), n(), n(), n())
        }
    };
    Loads {
        tracepoints,
        raw_tp,
        tp_btf,
        fentry,
        fexit,
        lsm,
    }
}

// ---- the report ----------------------------------------------------------------

/// Every check, in order.
#[derive(Clone, Debug)]
pub struct Report {
    /// `/proc/sys/kernel/osrelease`.
    pub kernel_release: Option<String>,
    pub checks: Vec<Finding>,
}

/// Look at this node.
pub fn run() -> Report {
    let caps = match CapsCheck::current() {
        Ok(c) => c,
        Err(e) => {
            return Report {
                kernel_release: read_trimmed(OSRELEASE),
                checks: vec![Finding::fail(
                    "capabilities",
                    "unknown",
                    format!("cannot read this process's capabilities: {e}"),
                    "is /proc mounted?",
                    exit::FAILURE,
                )],
            }
        }
    };
    let probes = probes(&EventKind::SYSCALLS);
    let tracepoint_names: Vec<&str> = probes.iter().map(|p| p.tracepoint.as_str()).collect();
    let program_names: Vec<String> = probes.iter().map(|p| p.program.clone()).collect();

    let (tracefs, kprobe_events) = check_tracefs(&caps, &tracepoint_names);
    let btf = preflight::btf_state();
    let (lockdown, lsm) = read_security_files(&caps);
    let release = read_trimmed(OSRELEASE);
    let version = release.as_deref().and_then(parse_kernel_version);
    let loads = try_programs(&caps, &btf, &program_names);

    let checks = vec![
        caps.finding(),
        tracefs,
        btf.finding(),
        lockdown_finding(&lockdown),
        tracepoints_finding(&loads.tracepoints, program_names.len(), &caps),
        bpf_loop_finding(version, &loads.tracepoints),
        optional_finding(
            "raw_tp",
            "a trivial raw tracepoint program (raw_tp/sys_enter)",
            &loads.raw_tp,
            &caps,
            "built without CONFIG_BPF_EVENTS",
            UNUSED,
        ),
        optional_finding(
            "tp_btf",
            &format!("a trivial BTF tracepoint program (tp_btf/{TP_BTF_TARGET})"),
            &loads.tp_btf,
            &caps,
            "built without CONFIG_BPF_EVENTS or BTF",
            UNUSED,
        ),
        optional_finding(
            "fentry",
            &format!("a trivial fentry program (fentry/{FUNCTION_TARGET})"),
            &loads.fentry,
            &caps,
            "built without BPF trampolines (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS)",
            KERNEL_FUNCTIONS,
        ),
        optional_finding(
            "fexit",
            &format!("a trivial fexit program (fexit/{FUNCTION_TARGET})"),
            &loads.fexit,
            &caps,
            "built without BPF trampolines (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS)",
            KERNEL_FUNCTIONS,
        ),
        kprobes_finding(Path::new(KPROBE_PMU).exists(), kprobe_events),
        lsm_finding(&loads.lsm, &lsm, &caps),
        unique_mount_id_finding(version),
        statmount_finding(&crate::enrich::statmount::probe()),
        io_uring_finding(read_trimmed(IO_URING_DISABLED).as_deref(), version),
    ];
    Report {
        kernel_release: release,
        checks,
    }
}

impl Report {
    /// The first check that stops mntrace.
    pub fn blocking(&self) -> Option<&Finding> {
        self.checks.iter().find(|c| c.status == Status::Fail)
    }

    /// 0 when mntrace can run, else the first blocking check's code.
    pub fn exit_code(&self) -> i32 {
        self.blocking()
            .map(|c| c.exit_code.unwrap_or(exit::FAILURE))
            .unwrap_or(exit::OK)
    }

    fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// Plain text: one block per check, then the verdict.
    pub fn text(&self) -> String {
        let mut out = format!(
            "mntrace doctor: kernel {}\n",
            self.kernel_release
                .as_deref()
                .unwrap_or("(release unknown)")
        );
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
        for c in &self.checks {
            out.push_str(&format!(
                "{:<4}  {:<width$}  {}\n{:<4}  {:<width$}  -> {}\n",
                c.status.name(),
                c.id,
                c.found,
                "",
                "",
                c.fix
            ));
        }
        let warnings = self.count(Status::Warn);
        match self.blocking() {
            None => out.push_str(&format!(
                "mntrace can run here ({warnings} warning{}): exit 0\n",
                if warnings == 1 { "" } else { "s" }
            )),
            Some(b) => out.push_str(&format!(
                "mntrace cannot run here: {} failing check{}, the first is {}: exit {}\n",
                self.count(Status::Fail),
                if self.count(Status::Fail) == 1 {
                    ""
                } else {
                    "s"
                },
                b.id,
                self.exit_code()
            )),
        }
        out
    }

    /// One JSON object (docs/json-schema.md, "mntrace doctor --json").
    pub fn json(&self) -> Value {
        json!({
            "type": "doctor",
            "schema": 1,
            "kernel_release": self.kernel_release,
            "can_run": self.blocking().is_none(),
            "exit_code": self.exit_code(),
            "blocking": self.blocking().map(|b| b.id),
            "warnings": self.count(Status::Warn),
            "checks": self.checks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preflight::Caps;

    fn root() -> CapsCheck {
        CapsCheck::new(0, Caps(0x1ff_feff_ffff), 40)
    }

    #[test]
    fn lockdown_modes() {
        assert_eq!(
            parse_lockdown("none [integrity] confidentiality\n"),
            Some(Lockdown::Integrity)
        );
        assert_eq!(
            parse_lockdown("[none] integrity confidentiality"),
            Some(Lockdown::None)
        );
        assert_eq!(
            parse_lockdown("none integrity [confidentiality]\n"),
            Some(Lockdown::Confidentiality)
        );
        assert_eq!(parse_lockdown("none integrity confidentiality"), None);
        assert_eq!(parse_lockdown("[weird]"), None);
        assert_eq!(parse_lockdown(""), None);

        let text = |t: &str| SecFile::Text {
            text: t.into(),
            private: false,
        };
        let f = lockdown_finding(&text("none [integrity] confidentiality\n"));
        assert_eq!((f.status, f.state.as_str()), (Status::Ok, "integrity"));
        let f = lockdown_finding(&text("none integrity [confidentiality]\n"));
        assert_eq!(
            (f.status, f.state.as_str(), f.exit_code),
            (Status::Fail, "confidentiality", Some(exit::REFUSED))
        );
        assert!(f.found.contains("bpf_probe_read_kernel"), "{}", f.found);
        let f = lockdown_finding(&SecFile::Text {
            text: "[none] integrity confidentiality".into(),
            private: true,
        });
        assert_eq!(f.state, "none");
        assert!(
            f.found.contains("private mount of securityfs"),
            "{}",
            f.found
        );
        assert_eq!(lockdown_finding(&SecFile::Absent).status, Status::Ok);
        let f = lockdown_finding(&SecFile::Unknown("no securityfs".into()));
        assert_eq!((f.status, f.state.as_str()), (Status::Warn, "unknown"));
        assert_eq!(lockdown_finding(&text("garbage")).status, Status::Warn);
    }

    #[test]
    fn lsm_lists() {
        assert_eq!(
            parse_lsm("lockdown,capability,landlock,bpf"),
            ["lockdown", "capability", "landlock", "bpf"]
        );
        assert_eq!(parse_lsm("capability,selinux\n"), ["capability", "selinux"]);
        assert!(parse_lsm("").is_empty());

        let list = |t: &str| SecFile::Text {
            text: t.into(),
            private: false,
        };
        let eperm = Load::Refused {
            errno: Some(libc::EPERM),
            detail: "Operation not permitted (os error 1)".into(),
        };
        // This machine: bpf active, yet refused with EPERM.
        let f = lsm_finding(&eperm, &list("lockdown,capability,landlock,bpf"), &root());
        assert_eq!(
            (f.status, f.state.as_str(), f.errno.as_deref()),
            (Status::Warn, "refused", Some("EPERM"))
        );
        assert!(f.found.contains("bpf is an active LSM"), "{}", f.found);
        assert!(
            f.found.contains("not for want of a capability"),
            "{}",
            f.found
        );
        // Loads, but bpf is not in the list: it would never run.
        let f = lsm_finding(&Load::Accepted, &list("capability,selinux"), &root());
        assert_eq!((f.status, f.state.as_str()), (Status::Warn, "inactive"));
        assert!(f.found.contains("bpf is not an active LSM"), "{}", f.found);
        let f = lsm_finding(&Load::Accepted, &list("capability,bpf"), &root());
        assert_eq!((f.status, f.state.as_str()), (Status::Ok, "accepted"));
    }

    #[test]
    fn io_uring_states() {
        let v = Some(KernelVersion(6, 18, 0));
        assert_eq!(parse_io_uring_disabled("0\n"), Some(IoUring::Enabled));
        assert_eq!(parse_io_uring_disabled("1"), Some(IoUring::Restricted));
        assert_eq!(parse_io_uring_disabled(" 2 "), Some(IoUring::Disabled));
        assert_eq!(parse_io_uring_disabled("3"), None);
        assert_eq!(parse_io_uring_disabled(""), None);

        let f = io_uring_finding(Some("0\n"), v);
        assert_eq!((f.status, f.state.as_str()), (Status::Warn, "enabled"));
        assert!(f.found.contains("IORING_OP_RENAMEAT"), "{}", f.found);
        assert!(f.found.contains("rename requests"), "{}", f.found);
        let f = io_uring_finding(Some("1"), v);
        assert_eq!((f.status, f.state.as_str()), (Status::Warn, "restricted"));
        let f = io_uring_finding(Some("2"), v);
        assert_eq!((f.status, f.state.as_str()), (Status::Ok, "disabled"));
        let f = io_uring_finding(Some("7"), v);
        assert_eq!((f.status, f.state.as_str()), (Status::Warn, "unknown"));
        // No switch: built without io_uring on 6.6+, unknown before.
        let f = io_uring_finding(None, v);
        assert_eq!((f.status, f.state.as_str()), (Status::Ok, "absent"));
        let f = io_uring_finding(None, Some(KernelVersion(6, 1, 0)));
        assert_eq!((f.status, f.state.as_str()), (Status::Warn, "unknown"));
        assert!(io_uring_finding(None, None).status == Status::Warn);
    }

    #[test]
    fn statmount_is_ok_when_it_answers_and_a_warning_with_the_cause_otherwise() {
        let f = statmount_finding(&Ok(()));
        assert_eq!((f.status, f.state.as_str()), (Status::Ok, "available"));
        let f = statmount_finding(&Err(io::Error::from_raw_os_error(libc::ENOSYS)));
        assert_eq!((f.status, f.state.as_str()), (Status::Warn, "unavailable"));
        assert!(f.found.contains("not implemented"), "{}", f.found);
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(
            parse_kernel_version("6.18.44-fc-v657\n"),
            Some(KernelVersion(6, 18, 44))
        );
        assert_eq!(
            parse_kernel_version("5.14.0-427.el9.x86_64"),
            Some(KernelVersion(5, 14, 0))
        );
        assert_eq!(
            parse_kernel_version("6.1.0-56-cloud-amd64"),
            Some(KernelVersion(6, 1, 0))
        );
        assert_eq!(parse_kernel_version("6.8"), Some(KernelVersion(6, 8, 0)));
        assert_eq!(
            parse_kernel_version("6.8-rc1"),
            Some(KernelVersion(6, 8, 0))
        );
        assert_eq!(parse_kernel_version("6"), None);
        assert_eq!(parse_kernel_version("linux"), None);
        assert_eq!(parse_kernel_version(""), None);
        assert!(KernelVersion(5, 17, 0) > KernelVersion(5, 16, 20));
        assert_eq!(KernelVersion(6, 18, 44).to_string(), "6.18.44");

        // Features from the version.
        let f = unique_mount_id_finding(Some(KernelVersion(6, 8, 0)));
        assert_eq!((f.status, f.state.as_str()), (Status::Ok, "available"));
        let f = unique_mount_id_finding(Some(KernelVersion(6, 7, 12)));
        assert_eq!((f.status, f.state.as_str()), (Status::Warn, "missing"));
        let f = bpf_loop_finding(Some(KernelVersion(5, 17, 0)), &Load::Accepted);
        assert_eq!(f.status, Status::Ok);
        // Backported: the programs loaded anyway.
        let f = bpf_loop_finding(Some(KernelVersion(5, 14, 0)), &Load::Accepted);
        assert_eq!(f.status, Status::Ok);
        assert!(f.found.contains("backported"), "{}", f.found);
        let refused = Load::Refused {
            errno: Some(libc::EINVAL),
            detail: "unknown func bpf_loop#181".into(),
        };
        let f = bpf_loop_finding(Some(KernelVersion(5, 10, 0)), &refused);
        assert_eq!((f.status, f.exit_code), (Status::Fail, Some(exit::REFUSED)));
        assert_eq!(bpf_loop_finding(None, &refused).status, Status::Warn);
    }

    #[test]
    fn probe_sets() {
        let caps = root();
        let eperm = Load::Refused {
            errno: Some(libc::EPERM),
            detail: "x".into(),
        };
        let f = optional_finding("fentry", "a trivial fentry program", &eperm, &caps, "", "");
        assert_eq!(
            (f.status, f.state.as_str(), f.errno.as_deref(), f.exit_code),
            (Status::Warn, "refused", Some("EPERM"), None)
        );
        assert!(
            f.found
                .contains("refused a trivial fentry program: EPERM (Operation not permitted)"),
            "{}",
            f.found
        );
        let f = optional_finding("raw_tp", "p", &Load::Accepted, &caps, "", "");
        assert_eq!((f.status, f.state.as_str()), (Status::Ok, "accepted"));
        let f = tracepoints_finding(&eperm, 23, &caps);
        assert_eq!(
            (f.status, f.exit_code, f.errno.as_deref()),
            (Status::Fail, Some(exit::REFUSED), Some("EPERM"))
        );
        let f = tracepoints_finding(&Load::NotTried("no caps".into()), 23, &caps);
        assert_eq!((f.status, f.state.as_str()), (Status::Warn, "not_tried"));
        assert_eq!(errno_label(524), "ENOTSUPP");

        let f = kprobes_finding(false, Some(false));
        assert_eq!((f.status, f.state.as_str()), (Status::Warn, "absent"));
        assert!(f.found.contains("CONFIG_KPROBES"), "{}", f.found);
        assert_eq!(kprobes_finding(true, None).state, "available");
        assert_eq!(kprobes_finding(false, Some(true)).state, "available");
    }

    #[test]
    fn exit_code_is_the_first_failures() {
        let report = |checks: Vec<Finding>| Report {
            kernel_release: None,
            checks,
        };
        let ok = Finding::ok("a", "x", "fine");
        let warn = Finding::warn("b", "x", "meh", "do");
        let r = report(vec![ok.clone(), warn.clone()]);
        assert_eq!(r.exit_code(), 0);
        assert!(r
            .text()
            .ends_with("mntrace can run here (1 warning): exit 0\n"));
        let r = report(vec![
            ok,
            Finding::fail("c", "x", "no", "do", exit::NO_BTF),
            warn,
            Finding::fail("d", "x", "no", "do", exit::REFUSED),
        ]);
        assert_eq!(r.exit_code(), exit::NO_BTF);
        assert_eq!(r.json()["blocking"], "c");
        assert_eq!(r.json()["can_run"], false);
        assert!(r
            .text()
            .ends_with("cannot run here: 2 failing checks, the first is c: exit 5\n"));
    }
}
