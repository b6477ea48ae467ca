//! Pre-flight checks, before anything is loaded: capabilities, tracefs, BTF.
//!
//! Every failure says exactly what is missing and what to do; what only
//! degrades enrichment comes back as warnings. Each check is a small
//! function returning what it found ([`CapsCheck`], [`TracefsFound`],
//! [`BtfState`]); [`check`] (start-up) turns those into a [`StartError`],
//! and `mntrace doctor` ([`crate::doctor`]) into [`Finding`]s, so both say
//! the same thing from the same look at the system. What each capability is
//! needed for was measured on kernel 6.18 (a process of uid 65534 given
//! ambient capabilities with `setpriv`, and root with capabilities dropped):
//!
//! | capability | without it |
//! |---|---|
//! | `CAP_BPF` (or `CAP_SYS_ADMIN`) | map creation fails: EPERM |
//! | `CAP_PERFMON` (or `CAP_SYS_ADMIN`) | tracepoint program load fails: EPERM |
//! | `CAP_DAC_READ_SEARCH` (or `CAP_DAC_OVERRIDE`), not the owner of tracefs | tracefs (mode 0700, root) unreadable: EACCES, no tracepoint ids |
//! | `CAP_SYS_PTRACE` | `/proc/PID/ns/mnt`, `fd/N`, `fdinfo`, `cwd`, `root` of other users' processes (or of processes with more capabilities): EACCES, so no mount table and no holders for them |
//! | `CAP_DAC_READ_SEARCH` (or `CAP_DAC_OVERRIDE`) | `/proc/PID/fd` and `map_files` of other users' processes (mode 0500): EACCES |
//! | `CAP_CHECKPOINT_RESTORE` (or `CAP_SYS_ADMIN`) | following `/proc/PID/map_files/*`: EPERM, so no memory-mapped holders |
//!
//! The first three are required; the others only degrade incidents and are
//! warnings. `CAP_SYS_RESOURCE` is not needed (no `RLIMIT_MEMLOCK` on 6.18:
//! eBPF memory is charged to the memory cgroup).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{exit, StartError};

pub const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";
pub const TRACEFS: &str = "/sys/kernel/tracing";
pub const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";
const TRACEFS_MAGIC: i64 = 0x7472_6163;

/// Capability numbers (linux/capability.h).
pub mod cap {
    pub const DAC_OVERRIDE: u32 = 1;
    pub const DAC_READ_SEARCH: u32 = 2;
    pub const SYS_PTRACE: u32 = 19;
    pub const SYS_ADMIN: u32 = 21;
    pub const PERFMON: u32 = 38;
    pub const BPF: u32 = 39;
    pub const CHECKPOINT_RESTORE: u32 = 40;

    pub fn name(n: u32) -> String {
        match n {
            DAC_OVERRIDE => "CAP_DAC_OVERRIDE".into(),
            DAC_READ_SEARCH => "CAP_DAC_READ_SEARCH".into(),
            SYS_PTRACE => "CAP_SYS_PTRACE".into(),
            SYS_ADMIN => "CAP_SYS_ADMIN".into(),
            PERFMON => "CAP_PERFMON".into(),
            BPF => "CAP_BPF".into(),
            CHECKPOINT_RESTORE => "CAP_CHECKPOINT_RESTORE".into(),
            n => format!("capability {n}"),
        }
    }
}

/// The capability set to recommend: required and enrichment ones.
pub const RECOMMENDED: &str =
    "CAP_BPF CAP_PERFMON CAP_DAC_READ_SEARCH CAP_SYS_PTRACE CAP_CHECKPOINT_RESTORE";
const RECOMMENDED_SHORT: [&str; 5] = [
    "bpf",
    "perfmon",
    "dac_read_search",
    "sys_ptrace",
    "checkpoint_restore",
];

/// How one check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing to do.
    Ok,
    /// mntrace runs, but something is missing or worth knowing.
    Warn,
    /// mntrace cannot run: `exit_code` says with which code it stops.
    Fail,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// What one check found, in plain words, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Which check (`capabilities`, `tracefs`, `btf`, ...).
    pub id: &'static str,
    pub status: Status,
    /// One word for what was found (`ready`, `accepted`, `integrity`, ...).
    pub state: String,
    /// One line: what was found.
    pub found: String,
    /// One line: what to do (`nothing to do` when there is nothing).
    pub fix: String,
    /// The exit code mntrace stops with because of this (status `fail`).
    pub exit_code: Option<i32>,
    /// The kernel's errno, when it refused something (`EPERM`).
    pub errno: Option<String>,
}

pub const NOTHING_TO_DO: &str = "nothing to do";

impl Finding {
    pub fn ok(id: &'static str, state: &str, found: impl Into<String>) -> Finding {
        Finding {
            id,
            status: Status::Ok,
            state: state.into(),
            found: found.into(),
            fix: NOTHING_TO_DO.into(),
            exit_code: None,
            errno: None,
        }
    }

    pub fn warn(
        id: &'static str,
        state: &str,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            status: Status::Warn,
            fix: fix.into(),
            ..Finding::ok(id, state, found)
        }
    }

    pub fn fail(
        id: &'static str,
        state: &str,
        found: impl Into<String>,
        fix: impl Into<String>,
        exit_code: i32,
    ) -> Finding {
        Finding {
            status: Status::Fail,
            fix: fix.into(),
            exit_code: Some(exit_code),
            ..Finding::ok(id, state, found)
        }
    }

    pub fn with_errno(mut self, errno: Option<String>) -> Finding {
        self.errno = errno;
        self
    }
}

/// The capabilities that only make incidents complete: one of `any` will
/// do; its name for messages; what is lost without it.
struct Enrichment {
    any: &'static [u32],
    name: &'static str,
    without: &'static str,
}

const ENRICHMENT: [Enrichment; 3] = [
    Enrichment {
        any: &[cap::SYS_PTRACE],
        name: "CAP_SYS_PTRACE",
        without: "without CAP_SYS_PTRACE the mount namespace, open files, working and root \
             directories of processes of other users (or with capabilities mntrace lacks) \
             cannot be read: their mount tables and busy-mount holders are missing from \
             incidents",
    },
    Enrichment {
        any: &[cap::DAC_READ_SEARCH, cap::DAC_OVERRIDE],
        name: "CAP_DAC_READ_SEARCH (or CAP_DAC_OVERRIDE)",
        without: "without CAP_DAC_READ_SEARCH (or CAP_DAC_OVERRIDE) the open files and memory \
             maps of other users' processes cannot be listed: they are missing from \
             busy-mount holders",
    },
    Enrichment {
        any: &[cap::CHECKPOINT_RESTORE, cap::SYS_ADMIN],
        name: "CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN)",
        without: "without CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN) memory-mapped files \
             (/proc/PID/map_files) cannot be followed: processes holding a mount only by \
             a mapping are missing from busy-mount holders",
    },
];

/// A process's effective capabilities (`CapEff` of `/proc/PID/status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps(pub u64);

impl Caps {
    pub fn from_status(status: &str) -> Option<Caps> {
        status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .map(Caps)
    }

    pub fn current() -> Result<Caps, StartError> {
        let status = std::fs::read_to_string("/proc/self/status").map_err(|e| {
            StartError::Other(anyhow::anyhow!("cannot read /proc/self/status: {e}"))
        })?;
        Caps::from_status(&status).ok_or_else(|| {
            StartError::Other(anyhow::anyhow!("no CapEff line in /proc/self/status"))
        })
    }

    pub fn has(self, cap: u32) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }

    fn any(self, caps: &[u32]) -> bool {
        caps.iter().any(|&c| self.has(c))
    }

    /// Names of the capabilities held, for messages.
    pub fn describe(self) -> String {
        if self.0 == 0 {
            return "none".into();
        }
        let known = [
            cap::DAC_OVERRIDE,
            cap::DAC_READ_SEARCH,
            cap::SYS_PTRACE,
            cap::SYS_ADMIN,
            cap::PERFMON,
            cap::BPF,
            cap::CHECKPOINT_RESTORE,
        ];
        let mut names: Vec<String> = known
            .iter()
            .filter(|&&c| self.has(c))
            .map(|&c| cap::name(c))
            .collect();
        let others = (0..64)
            .filter(|c| !known.contains(c) && self.has(*c))
            .count();
        if others > 0 {
            names.push(format!("{others} other(s)"));
        }
        names.join(", ")
    }
}

/// A missing capability that is required: one of `any` would do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need {
    pub any: Vec<u32>,
    pub why: String,
}

impl Need {
    fn names(&self) -> String {
        let mut names = self.any.iter().map(|&c| cap::name(c));
        let first = names.next().unwrap_or_default();
        let rest: Vec<String> = names.collect();
        if rest.is_empty() {
            first
        } else {
            format!("{first} (or {})", rest.join(" or "))
        }
    }
}

/// Required capabilities missing from `caps`. `last_cap` is the kernel's
/// highest capability (`/proc/sys/kernel/cap_last_cap`): before 5.8 there is
/// no CAP_BPF nor CAP_PERFMON and only CAP_SYS_ADMIN will do.
pub fn missing_required(caps: Caps, last_cap: u32) -> Vec<Need> {
    let split = last_cap >= cap::BPF;
    let mut v = Vec::new();
    let bpf = if split {
        vec![cap::BPF, cap::SYS_ADMIN]
    } else {
        vec![cap::SYS_ADMIN]
    };
    if !caps.any(&bpf) {
        v.push(Need {
            any: bpf,
            why: "to create the eBPF maps and load the programs".into(),
        });
    }
    if split && !caps.any(&[cap::PERFMON, cap::SYS_ADMIN]) {
        v.push(Need {
            any: vec![cap::PERFMON, cap::SYS_ADMIN],
            why: "to load tracing programs (they read kernel memory) and attach them to \
                  syscall tracepoints"
                .into(),
        });
    }
    v
}

/// The enrichment capabilities missing from `caps`, by name.
pub fn missing_enrichment(caps: Caps) -> Vec<&'static str> {
    ENRICHMENT
        .iter()
        .filter(|e| !caps.any(e.any))
        .map(|e| e.name)
        .collect()
}

/// What is lost without the enrichment capabilities, one warning each.
pub fn enrichment_warnings(caps: Caps) -> Vec<String> {
    let mut v: Vec<String> = ENRICHMENT
        .iter()
        .filter(|e| !caps.any(e.any))
        .map(|e| e.without.to_string())
        .collect();
    if !v.is_empty() {
        v.push(format!(
            "tracing works, incidents are still detected; grant the capabilities above \
             (all: {RECOMMENDED}) or run as root for complete incidents"
        ));
    }
    v
}

/// The message of [`StartError::NotPermitted`]: what is missing, why, and
/// how to grant it. `tracefs`: why tracefs could not be read, if it could not.
pub fn not_permitted_message(
    uid: u32,
    caps: Caps,
    needs: &[Need],
    tracefs: Option<&str>,
) -> String {
    let mut missing: Vec<String> = needs.iter().map(Need::names).collect();
    let mut lines: Vec<String> = needs
        .iter()
        .map(|n| format!("  {} {}", n.names(), n.why))
        .collect();
    if let Some(t) = tracefs {
        if caps.any(&[cap::DAC_READ_SEARCH, cap::DAC_OVERRIDE]) {
            missing.push("access to tracefs".into());
        } else {
            missing.push("CAP_DAC_READ_SEARCH (or CAP_DAC_OVERRIDE)".into());
        }
        lines.push(format!("  {t}"));
    }
    format!(
        "missing {} (uid {uid}, effective capabilities: {})\n{}\n  {}",
        missing.join(", "),
        caps.describe(),
        lines.join("\n"),
        grant_advice(),
    )
}

/// How to give mntrace what it needs, one sentence.
pub fn grant_advice() -> String {
    let plus = |sep: &str, prefix: &str| {
        RECOMMENDED_SHORT
            .iter()
            .map(|c| format!("{prefix}{c}"))
            .collect::<Vec<_>>()
            .join(sep)
    };
    format!(
        "Run mntrace as root (with root's usual capabilities), or grant it CAP_BPF, \
         CAP_PERFMON and CAP_DAC_READ_SEARCH (plus CAP_SYS_PTRACE and \
         CAP_CHECKPOINT_RESTORE for complete incidents), e.g. \
         `setpriv --reuid=USER --regid=GROUP --init-groups --inh-caps={setpriv} \
         --ambient-caps={setpriv} -- mntrace ...`, \
         `capsh --user=USER --inh={capsh} --addamb={capsh} -- -c 'mntrace ...'`, \
         or systemd `AmbientCapabilities={RECOMMENDED}`",
        setpriv = plus(",", "+"),
        capsh = plus(",", "cap_"),
    )
}

/// This process's capabilities as far as mntrace is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapsCheck {
    /// Effective uid.
    pub uid: u32,
    pub caps: Caps,
    /// Required capabilities missing (tracing cannot start).
    pub needs: Vec<Need>,
    /// Enrichment capabilities missing (incidents incomplete).
    pub missing_enrichment: Vec<&'static str>,
}

impl CapsCheck {
    /// `last_cap`: see [`missing_required`].
    pub fn new(uid: u32, caps: Caps, last_cap: u32) -> CapsCheck {
        CapsCheck {
            uid,
            caps,
            needs: missing_required(caps, last_cap),
            missing_enrichment: missing_enrichment(caps),
        }
    }

    /// The running process's.
    pub fn current() -> Result<CapsCheck, StartError> {
        let caps = Caps::current()?;
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(cap::CHECKPOINT_RESTORE);
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        Ok(CapsCheck::new(uid, caps, last_cap))
    }

    /// Whether this process may read tracefs files it does not own.
    pub fn reads_any_file(&self) -> bool {
        self.caps.any(&[cap::DAC_READ_SEARCH, cap::DAC_OVERRIDE])
    }

    pub fn finding(&self) -> Finding {
        const ID: &str = "capabilities";
        let who = format!(
            "uid {}, effective capabilities: {}",
            self.uid,
            self.caps.describe()
        );
        if !self.needs.is_empty() {
            let needs: Vec<String> = self
                .needs
                .iter()
                .map(|n| format!("{} {}", n.names(), n.why))
                .collect();
            return Finding::fail(
                ID,
                "missing",
                format!("{who}; missing {}", needs.join("; ")),
                grant_advice(),
                exit::NOT_PERMITTED,
            );
        }
        if !self.missing_enrichment.is_empty() {
            return Finding::warn(
                ID,
                "partial",
                format!(
                    "{who}: enough to trace; missing {}, so incidents lack the mount tables \
                     and busy-mount holders of other users' processes",
                    self.missing_enrichment.join(", ")
                ),
                format!(
                    "for complete incidents grant all of {RECOMMENDED}, or run as root \
                     (with root's usual capabilities)"
                ),
            );
        }
        Finding::ok(
            ID,
            "complete",
            format!("{who}: everything to trace and for complete incidents"),
        )
    }
}

/// What a tracefs candidate directory offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tracefs {
    /// Syscall tracepoints readable here.
    Ready(PathBuf),
    /// tracefs is mounted, but this process may not read it.
    Inaccessible { path: PathBuf, detail: String },
    /// tracefs is mounted without `events/syscalls`.
    NoSyscalls(PathBuf),
    /// No tracefs here (`what`: what is there instead).
    Absent { path: PathBuf, what: String },
}

pub(crate) fn statfs_type(path: &Path) -> io::Result<i64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut s = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `c` is NUL-terminated and `s` points to a writable `struct statfs`.
    if unsafe { libc::statfs(c.as_ptr(), s.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs succeeded and filled it.
    let f_type = unsafe { s.assume_init() }.f_type;
    // Its type varies by architecture (i64 on x86_64, u32 or i32 elsewhere).
    #[allow(clippy::unnecessary_cast)]
    Ok(f_type as i64)
}

pub(crate) fn is_denied(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM))
}

/// Mode and owner of what denied access to `path`: the deepest of `path`
/// and its ancestors that can be examined (examining only needs search
/// permission on its parent, so that one is the directory that refused).
fn blocker(path: &Path) -> String {
    for p in path.ancestors() {
        if let Ok(m) = std::fs::metadata(p) {
            return format!(
                "{} is mode {:04o}, owner uid {}, group {}",
                p.display(),
                m.mode() & 0o7777,
                m.uid(),
                m.gid()
            );
        }
    }
    format!("{} cannot be examined", path.display())
}

fn fs_name(magic: i64) -> String {
    match magic {
        0x6265_6572 => "a sysfs directory, nothing mounted".into(),
        0x0102_1994 => "a tmpfs is mounted there".into(),
        0x6462_6720 => "a debugfs directory, nothing mounted".into(),
        t => format!("a filesystem of type {t:#x} is there"),
    }
}

/// Look at one candidate: is tracefs mounted there, can this process read
/// the syscall tracepoints (the directory listing, as aya does, and the id of
/// `tracepoint`, e.g. `events/syscalls/sys_enter_umount/id`)?
pub fn probe_tracefs(root: &Path, tracepoint: Option<&str>) -> Tracefs {
    let denied = |path: &Path, e: &io::Error| Tracefs::Inaccessible {
        path: root.to_path_buf(),
        detail: format!(
            "tracefs is mounted at {} but not accessible: reading {}: {e} ({}); mntrace \
             reads the syscall tracepoint ids there",
            root.display(),
            path.display(),
            blocker(path)
        ),
    };
    match statfs_type(root) {
        Ok(TRACEFS_MAGIC) => {}
        Ok(t) => {
            return Tracefs::Absent {
                path: root.to_path_buf(),
                what: fs_name(t),
            }
        }
        Err(e) if is_denied(&e) => {
            // Not even known to be tracefs: a parent refused the lookup.
            return Tracefs::Inaccessible {
                path: root.to_path_buf(),
                detail: format!(
                    "{} cannot be examined: {e} ({}); mntrace reads the syscall \
                     tracepoint ids in tracefs there",
                    root.display(),
                    blocker(root)
                ),
            };
        }
        Err(e) => {
            return Tracefs::Absent {
                path: root.to_path_buf(),
                what: format!("{}: {e}", root.display()),
            }
        }
    }
    if let Err(e) = std::fs::read_dir(root) {
        if is_denied(&e) {
            return denied(root, &e);
        }
    }
    let syscalls = root.join("events/syscalls");
    match std::fs::metadata(&syscalls) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Tracefs::NoSyscalls(root.to_path_buf()),
        Err(e) if is_denied(&e) => return denied(&syscalls, &e),
        Err(_) => return Tracefs::NoSyscalls(root.to_path_buf()),
    }
    if let Some(tp) = tracepoint {
        let id = syscalls.join(tp).join("id");
        // A missing tracepoint is reported when attaching it.
        if let Err(e) = std::fs::read(&id) {
            if is_denied(&e) {
                return denied(&id, &e);
            }
        }
    }
    Tracefs::Ready(root.to_path_buf())
}

pub(crate) fn mount_tracefs() -> io::Result<()> {
    let target = c"/sys/kernel/tracing";
    // SAFETY: NUL-terminated strings and no data.
    let r = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Where the syscall tracepoints can be read, looked up without changing
/// anything: /sys/kernel/tracing, then /sys/kernel/debug/tracing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TracefsFound {
    /// Readable there.
    Ready(PathBuf),
    /// tracefs is mounted but this process may not read it: why.
    Inaccessible(String),
    /// tracefs is mounted there, without `events/syscalls`.
    NoSyscalls(PathBuf),
    /// tracefs is mounted at neither: what is at /sys/kernel/tracing instead.
    NotMounted(String),
}

/// The most telling of the candidates' states (see [`TracefsFound`]).
/// `tracepoint`: a syscall tracepoint whose id must be readable.
pub fn find_tracefs(tracepoint: Option<&str>) -> TracefsFound {
    let mut found = Vec::new();
    for root in [TRACEFS, DEBUGFS_TRACING] {
        match probe_tracefs(Path::new(root), tracepoint) {
            Tracefs::Ready(p) => return TracefsFound::Ready(p),
            other => found.push(other),
        }
    }
    if let Some(Tracefs::Inaccessible { detail, .. }) = found
        .iter()
        .find(|t| matches!(t, Tracefs::Inaccessible { .. }))
    {
        return TracefsFound::Inaccessible(detail.clone());
    }
    if let Some(Tracefs::NoSyscalls(p)) = found.iter().find(|t| matches!(t, Tracefs::NoSyscalls(_)))
    {
        return TracefsFound::NoSyscalls(p.clone());
    }
    match &found[0] {
        Tracefs::Absent { what, .. } => TracefsFound::NotMounted(what.clone()),
        _ => TracefsFound::NotMounted(String::new()),
    }
}

/// Why tracefs could not be read, with what would have allowed it.
/// `reads_any_file`: the process has CAP_DAC_READ_SEARCH or CAP_DAC_OVERRIDE.
pub fn inaccessible_detail(detail: &str, reads_any_file: bool) -> String {
    if reads_any_file {
        format!(
            "{detail}; denied despite CAP_DAC_READ_SEARCH or CAP_DAC_OVERRIDE \
             (a security module?)"
        )
    } else {
        format!(
            "{detail}, which needs CAP_DAC_READ_SEARCH (or CAP_DAC_OVERRIDE) \
             unless mntrace runs as its owner"
        )
    }
}

/// `tracepoints` (syscall tracepoint names, e.g. `sys_enter_umount`) whose
/// id cannot be read under tracefs at `root`: missing from this kernel.
pub fn missing_tracepoints<'a>(root: &Path, tracepoints: &[&'a str]) -> Vec<&'a str> {
    tracepoints
        .iter()
        .filter(|tp| std::fs::read(root.join("events/syscalls").join(tp).join("id")).is_err())
        .copied()
        .collect()
}

impl TracefsFound {
    /// What doctor says of it: `caps` decides whether a tracefs mounted
    /// nowhere is a problem (mntrace mounts it at start with CAP_SYS_ADMIN).
    pub fn finding(&self, caps: &CapsCheck) -> Finding {
        const ID: &str = "tracefs";
        match self {
            TracefsFound::Ready(p) => Finding::ok(
                ID,
                "ready",
                format!(
                    "tracefs is mounted at {} and its syscall tracepoints are readable",
                    p.display()
                ),
            ),
            TracefsFound::Inaccessible(detail) => Finding::fail(
                ID,
                "inaccessible",
                inaccessible_detail(detail, caps.reads_any_file()),
                if caps.reads_any_file() {
                    "find what denies the access (a security module's policy?) or run \
                     mntrace as root"
                        .to_string()
                } else {
                    "grant mntrace CAP_DAC_READ_SEARCH (see capabilities) or run it as \
                     root, the owner of tracefs"
                        .to_string()
                },
                exit::NOT_PERMITTED,
            ),
            TracefsFound::NoSyscalls(p) => Finding::fail(
                ID,
                "no_syscalls",
                no_syscalls(p),
                "run a kernel built with CONFIG_FTRACE_SYSCALLS=y (distribution kernels are)",
                exit::NO_TRACEFS,
            ),
            TracefsFound::NotMounted(what) if caps.caps.has(cap::SYS_ADMIN) => Finding::warn(
                ID,
                "not_mounted",
                format!(
                    "tracefs is not mounted at {TRACEFS} ({what}) nor at \
                     {DEBUGFS_TRACING}; mntrace mounts it on {TRACEFS} when it starts \
                     (it has CAP_SYS_ADMIN)"
                ),
                format!(
                    "nothing needed; to have it there for every tool, mount it at boot: \
                     `mount -t tracefs nodev {TRACEFS}`"
                ),
            ),
            TracefsFound::NotMounted(what) => Finding::fail(
                ID,
                "not_mounted",
                format!(
                    "tracefs is not mounted at {TRACEFS} ({what}) nor at \
                     {DEBUGFS_TRACING}, and mntrace cannot mount it without CAP_SYS_ADMIN"
                ),
                format!("mount it as root with `mount -t tracefs nodev {TRACEFS}`"),
                exit::NO_TRACEFS,
            ),
        }
    }
}

/// Syscall tracepoints readable at /sys/kernel/tracing or
/// /sys/kernel/debug/tracing, mounting tracefs on the first if it is
/// mounted nowhere. The error is the most telling of the candidates'.
fn ensure_tracefs(tracepoint: Option<&str>) -> Result<(), TracefsError> {
    let what = match find_tracefs(tracepoint) {
        TracefsFound::Ready(_) => return Ok(()),
        TracefsFound::Inaccessible(detail) => return Err(TracefsError::Inaccessible(detail)),
        TracefsFound::NoSyscalls(p) => return Err(TracefsError::Unavailable(no_syscalls(&p))),
        TracefsFound::NotMounted(what) => what,
    };
    if let Err(e) = mount_tracefs() {
        let hint = if is_denied(&e) {
            " (mounting needs CAP_SYS_ADMIN)"
        } else {
            ""
        };
        return Err(TracefsError::Unavailable(format!(
            "tracefs is not mounted at {TRACEFS} ({what}) nor at {DEBUGFS_TRACING}, and \
             mounting it on {TRACEFS} failed: {e}{hint}; mount it as root with \
             `mount -t tracefs nodev {TRACEFS}`"
        )));
    }
    match probe_tracefs(Path::new(TRACEFS), tracepoint) {
        Tracefs::Ready(_) => Ok(()),
        Tracefs::Inaccessible { detail, .. } => Err(TracefsError::Inaccessible(detail)),
        Tracefs::NoSyscalls(p) => Err(TracefsError::Unavailable(no_syscalls(&p))),
        Tracefs::Absent { what, .. } => Err(TracefsError::Unavailable(format!(
            "tracefs was mounted on {TRACEFS} but is not there ({what})"
        ))),
    }
}

fn no_syscalls(root: &Path) -> String {
    format!(
        "tracefs is mounted at {} but has no events/syscalls: this kernel has no syscall \
         tracepoints (built without CONFIG_FTRACE_SYSCALLS), which mntrace attaches to",
        root.display()
    )
}

enum TracefsError {
    /// Permission: part of the not-permitted message.
    Inaccessible(String),
    /// Not there (exit 6).
    Unavailable(String),
}

/// The kernel's BTF, as this process can read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BtfState {
    Readable,
    /// No such file: a kernel without CONFIG_DEBUG_INFO_BTF.
    Missing,
    /// Permission denied: why.
    Denied(String),
    /// Another error: its message.
    Unreadable(String),
}

/// Open /sys/kernel/btf/vmlinux.
pub fn btf_state() -> BtfState {
    match std::fs::File::open(BTF_PATH) {
        Ok(_) => BtfState::Readable,
        Err(e) if e.kind() == io::ErrorKind::NotFound => BtfState::Missing,
        Err(e) if is_denied(&e) => BtfState::Denied(format!(
            "cannot read the kernel's BTF: {BTF_PATH}: {e} ({})",
            blocker(Path::new(BTF_PATH))
        )),
        Err(e) => BtfState::Unreadable(e.to_string()),
    }
}

impl BtfState {
    /// What stops the start-up, if anything.
    pub fn error(&self) -> Option<StartError> {
        match self {
            BtfState::Readable => None,
            BtfState::Missing => Some(StartError::NoBtf(BTF_PATH.into())),
            BtfState::Denied(why) => Some(StartError::NotPermitted(why.clone())),
            BtfState::Unreadable(e) => Some(StartError::NoBtf(format!("{BTF_PATH} ({e})"))),
        }
    }

    pub fn finding(&self) -> Finding {
        const ID: &str = "btf";
        let rebuild = "run a kernel built with CONFIG_DEBUG_INFO_BTF=y (current Debian, \
                       Ubuntu, RHEL, Fedora and cloud kernels are)";
        match self {
            BtfState::Readable => Finding::ok(
                ID,
                "present",
                format!(
                    "{BTF_PATH} is present and readable: mntrace's reads of kernel \
                     structures are relocated against it (CO-RE)"
                ),
            ),
            BtfState::Missing => Finding::fail(
                ID,
                "missing",
                format!(
                    "{BTF_PATH} does not exist: this kernel was built without \
                     CONFIG_DEBUG_INFO_BTF, and mntrace reads kernel structures with CO-RE"
                ),
                rebuild,
                exit::NO_BTF,
            ),
            BtfState::Denied(why) => Finding::fail(
                ID,
                "unreadable",
                why.clone(),
                "run mntrace as root, or find what denies reading the file",
                exit::NOT_PERMITTED,
            ),
            BtfState::Unreadable(e) => Finding::fail(
                ID,
                "unreadable",
                format!("{BTF_PATH} cannot be read: {e}"),
                rebuild,
                exit::NO_BTF,
            ),
        }
    }
}

/// What the programs to be attached hook, for [`check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hooks<'a> {
    /// Syscall tracepoints, found through tracefs (mounted if it is not):
    /// this one's id, when given, must be readable.
    SyscallTracepoints(Option<&'a str>),
    /// Raw tracepoints (`raw_tp`, `tp_btf`), attached by name: no tracefs.
    RawTracepoints,
}

/// Everything checked before loading; the warnings to show once started.
pub fn check(hooks: Hooks) -> Result<Vec<String>, StartError> {
    let caps = CapsCheck::current()?;
    let tracefs = match hooks {
        Hooks::RawTracepoints => Ok(()),
        Hooks::SyscallTracepoints(tracepoint) if caps.needs.is_empty() => {
            ensure_tracefs(tracepoint)
        }
        // Do not mount anything without the rights to trace; still say
        // whether tracefs is readable, so one message names everything.
        Hooks::SyscallTracepoints(tracepoint) => {
            match probe_tracefs(Path::new(TRACEFS), tracepoint) {
                Tracefs::Inaccessible { detail, .. } => Err(TracefsError::Inaccessible(detail)),
                _ => Ok(()),
            }
        }
    };
    match tracefs {
        Err(TracefsError::Inaccessible(detail)) => {
            let detail = inaccessible_detail(&detail, caps.reads_any_file());
            return Err(StartError::NotPermitted(not_permitted_message(
                caps.uid,
                caps.caps,
                &caps.needs,
                Some(&detail),
            )));
        }
        _ if !caps.needs.is_empty() => {
            return Err(StartError::NotPermitted(not_permitted_message(
                caps.uid,
                caps.caps,
                &caps.needs,
                None,
            )));
        }
        Err(TracefsError::Unavailable(why)) => return Err(StartError::NoTracefs(why)),
        Ok(()) => {}
    }
    if let Some(e) = btf_state().error() {
        return Err(e);
    }
    Ok(enrichment_warnings(caps.caps))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Caps = Caps(0x1ff_ffff_ffff);

    fn caps(list: &[u32]) -> Caps {
        Caps(list.iter().fold(0, |a, &c| a | 1 << c))
    }

    #[test]
    fn cap_eff_is_parsed() {
        let s = "Name:\tx\nCapPrm:\t0000000000000001\nCapEff:\t000000c000000004\nCapBnd:\t1\n";
        let c = Caps::from_status(s).unwrap();
        assert!(c.has(cap::BPF) && c.has(cap::PERFMON) && c.has(cap::DAC_READ_SEARCH));
        assert!(!c.has(cap::SYS_ADMIN));
        assert_eq!(c.describe(), "CAP_DAC_READ_SEARCH, CAP_PERFMON, CAP_BPF");
        assert_eq!(Caps(0).describe(), "none");
        assert_eq!(Caps::from_status("Name:\tx\n"), None);
    }

    #[test]
    fn required_capabilities() {
        assert_eq!(missing_required(ALL, 40), vec![]);
        // This machine's root: everything but CAP_SYS_RESOURCE.
        assert_eq!(missing_required(Caps(0x1ff_feff_ffff), 40), vec![]);
        assert_eq!(
            missing_required(caps(&[cap::BPF, cap::PERFMON]), 40),
            vec![]
        );
        assert_eq!(missing_required(caps(&[cap::SYS_ADMIN]), 40), vec![]);
        let none = missing_required(Caps(0), 40);
        let names: Vec<String> = none.iter().map(Need::names).collect();
        assert_eq!(
            names,
            [
                "CAP_BPF (or CAP_SYS_ADMIN)",
                "CAP_PERFMON (or CAP_SYS_ADMIN)"
            ]
        );
        let bpf_only = missing_required(caps(&[cap::BPF]), 40);
        assert_eq!(bpf_only.len(), 1);
        assert_eq!(bpf_only[0].any[0], cap::PERFMON);
        // Before 5.8 only CAP_SYS_ADMIN will do.
        let old = missing_required(caps(&[cap::BPF, cap::PERFMON]), 37);
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].names(), "CAP_SYS_ADMIN");
    }

    #[test]
    fn enrichment_capabilities_only_warn() {
        assert!(enrichment_warnings(ALL).is_empty());
        assert!(enrichment_warnings(caps(&[
            cap::BPF,
            cap::PERFMON,
            cap::DAC_OVERRIDE,
            cap::SYS_PTRACE,
            cap::SYS_ADMIN
        ]))
        .is_empty());
        let w = enrichment_warnings(caps(&[cap::BPF, cap::PERFMON, cap::DAC_READ_SEARCH]));
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("CAP_SYS_PTRACE"));
        assert!(w[1].contains("CAP_CHECKPOINT_RESTORE"));
        assert!(w[2].contains(RECOMMENDED));
    }

    #[test]
    fn message_names_every_missing_capability() {
        let m = not_permitted_message(0, Caps(0), &missing_required(Caps(0), 40), None);
        assert!(m.starts_with(
            "missing CAP_BPF (or CAP_SYS_ADMIN), CAP_PERFMON (or CAP_SYS_ADMIN) (uid 0, \
             effective capabilities: none)"
        ));
        assert!(m.contains(
            "--ambient-caps=+bpf,+perfmon,+dac_read_search,+sys_ptrace,+checkpoint_restore"
        ));
        assert!(m.contains("--addamb=cap_bpf,cap_perfmon,cap_dac_read_search,"));
        assert!(m.contains(&format!("AmbientCapabilities={RECOMMENDED}")));
        let m = not_permitted_message(
            65534,
            caps(&[cap::BPF, cap::PERFMON]),
            &[],
            Some("tracefs is mounted at /sys/kernel/tracing but not accessible"),
        );
        assert!(m.starts_with("missing CAP_DAC_READ_SEARCH (or CAP_DAC_OVERRIDE) (uid 65534"));
        assert!(m.contains("not accessible"));
    }

    #[test]
    fn findings_for_doctor() {
        // Capabilities: required missing fails with 4, enrichment only warns.
        let f = CapsCheck::new(0, Caps(0), 40).finding();
        assert_eq!(
            (f.status, f.state.as_str(), f.exit_code),
            (Status::Fail, "missing", Some(exit::NOT_PERMITTED))
        );
        assert!(f.found.starts_with(
            "uid 0, effective capabilities: none; missing CAP_BPF (or CAP_SYS_ADMIN) to create"
        ));
        assert!(f.fix.contains("AmbientCapabilities="));
        let f = CapsCheck::new(
            65534,
            caps(&[cap::BPF, cap::PERFMON, cap::DAC_READ_SEARCH]),
            40,
        )
        .finding();
        assert_eq!((f.status, f.state.as_str()), (Status::Warn, "partial"));
        assert!(f
            .found
            .contains("missing CAP_SYS_PTRACE, CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN)"));
        let f = CapsCheck::new(0, ALL, 40).finding();
        assert_eq!((f.status, f.fix.as_str()), (Status::Ok, NOTHING_TO_DO));

        // tracefs mounted nowhere: mntrace mounts it with CAP_SYS_ADMIN.
        let nowhere = TracefsFound::NotMounted("a tmpfs is mounted there".into());
        let f = nowhere.finding(&CapsCheck::new(0, ALL, 40));
        assert_eq!((f.status, f.state.as_str()), (Status::Warn, "not_mounted"));
        let f = nowhere.finding(&CapsCheck::new(
            65534,
            caps(&[cap::BPF, cap::PERFMON, cap::DAC_READ_SEARCH]),
            40,
        ));
        assert_eq!(
            (f.status, f.exit_code),
            (Status::Fail, Some(exit::NO_TRACEFS))
        );
        let f = TracefsFound::Inaccessible("reading x: denied".into()).finding(&CapsCheck::new(
            65534,
            caps(&[cap::BPF, cap::PERFMON]),
            40,
        ));
        assert_eq!(
            (f.state.as_str(), f.exit_code),
            ("inaccessible", Some(exit::NOT_PERMITTED))
        );
        assert!(
            f.found.contains("which needs CAP_DAC_READ_SEARCH"),
            "{}",
            f.found
        );
        let f = TracefsFound::NoSyscalls(TRACEFS.into()).finding(&CapsCheck::new(0, ALL, 40));
        assert_eq!(f.exit_code, Some(exit::NO_TRACEFS));

        // BTF: the same verdict as the start-up check.
        assert_eq!(BtfState::Readable.finding().status, Status::Ok);
        assert!(BtfState::Readable.error().is_none());
        let f = BtfState::Missing.finding();
        assert_eq!(
            (f.state.as_str(), f.exit_code),
            ("missing", Some(exit::NO_BTF))
        );
        assert_eq!(
            BtfState::Missing.error().map(|e| e.exit_code()),
            Some(exit::NO_BTF)
        );
        assert_eq!(
            BtfState::Denied("x".into()).error().map(|e| e.exit_code()),
            f.exit_code.map(|_| exit::NOT_PERMITTED)
        );
        assert_eq!(
            BtfState::Denied("x".into()).finding().exit_code,
            Some(exit::NOT_PERMITTED)
        );
    }

    #[test]
    fn a_plain_directory_is_not_tracefs() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            probe_tracefs(d.path(), None),
            Tracefs::Absent { .. }
        ));
        assert!(matches!(
            probe_tracefs(&d.path().join("nope"), None),
            Tracefs::Absent { .. }
        ));
    }
}
