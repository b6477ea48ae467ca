//! One run configuration, built once from the command line.
//!
//! Every setting has one definition and one default here; each stage gets
//! its part derived from [`RunConfig`]: the kernel side ([`TraceOptions`],
//! written into the `CONFIG` map), the correlator ([`CorrelatorConfig`]) and
//! what the sinks are shown ([`Display`]). Adding an option touches the CLI,
//! `RunConfig`, and the one stage that uses it.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use tracer_common::EventKind;

use crate::correlate::roots::Roots;
use crate::correlate::CorrelatorConfig;

/// Which deletions the kernel side captures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DeleteMode {
    /// Only those that can be part of the race: after an EBUSY unmount by
    /// the same process, path-carrying ones while an EBUSY is recent,
    /// through id-mapped or subdirectory-bind mounts, or crossing into
    /// another mount during a burst of deletions.
    #[default]
    Race,
    /// Every deletion (costly on delete-heavy workloads: every call is
    /// walked).
    All,
}

/// What the guard does to a process that, within the busy window after its
/// unmount failed with EBUSY, lists or deletes in a directory on that mount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum GuardMode {
    /// Nothing (the default).
    #[default]
    Off,
    /// Decide as `stop` would and record what would have been done, without
    /// acting.
    Report,
    /// Stop the process (SIGSTOP): frozen for inspection, its open files and
    /// the mount left as they are.
    Stop,
    /// Kill the process (SIGKILL).
    Kill,
    /// Make its deletions and renames on the mount fail with EPERM, for the
    /// rest of the busy window (BPF LSM programs; refused at start, with
    /// the kernel's reason, where the kernel does not accept them).
    Deny,
    /// `deny` where the kernel accepts BPF LSM programs, else `stop`.
    Auto,
}

impl GuardMode {
    /// The `GUARD_*` value of the kernel's `CONFIG`. `auto` is decided at
    /// start (`loader::GuardChosen`); as a value of its own it is `stop`,
    /// what it falls back to.
    pub fn kernel(self) -> u32 {
        use tracer_common::config::*;
        match self {
            GuardMode::Off => GUARD_OFF,
            GuardMode::Report => GUARD_REPORT,
            GuardMode::Stop | GuardMode::Auto => GUARD_STOP,
            GuardMode::Kill => GUARD_KILL,
            GuardMode::Deny => GUARD_DENY,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            GuardMode::Off => "off",
            GuardMode::Report => "report",
            GuardMode::Stop => "stop",
            GuardMode::Kill => "kill",
            GuardMode::Deny => "deny",
            GuardMode::Auto => "auto",
        }
    }
}

/// Which kernel hooks feed the events (`--probes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeSet {
    /// `kernel` where the kernel accepts it, else `syscall`; start-up says
    /// which runs and why.
    Auto,
    /// Syscall tracepoints (and io_uring's): every kernel with BTF.
    Syscall,
    /// The syscall tracepoints plus kernel-function hooks (fentry/fexit, or
    /// kprobes where the kernel has no BPF trampolines) on `vfs_unlink`,
    /// `vfs_rmdir`, `path_umount` and `io_unlinkat`: deletions carry the
    /// inode removed, unmounts the mount their target resolved to. Refused
    /// at start (exit 7) where the kernel accepts neither.
    Kernel,
}

/// The environment variable that sets `--probes`' default (for the
/// in-process tests too, so one suite runs under either set).
pub const PROBES_ENV: &str = "MNTRACE_PROBES";

impl Default for ProbeSet {
    /// `$MNTRACE_PROBES` when it names a set, else `auto`.
    fn default() -> Self {
        std::env::var(PROBES_ENV)
            .ok()
            .and_then(|v| clap::ValueEnum::from_str(&v, true).ok())
            .unwrap_or(ProbeSet::Auto)
    }
}

impl ProbeSet {
    pub fn name(self) -> &'static str {
        match self {
            ProbeSet::Auto => "auto",
            ProbeSet::Syscall => "syscall",
            ProbeSet::Kernel => "kernel",
        }
    }
}

/// Seconds after an EBUSY unmount during which deletions are captured and
/// correlated.
pub const DEFAULT_BUSY_WINDOW_SECS: u64 = 60;
/// A thread's deletions closer than this form one burst (one recursive
/// delete). The kernel splits bursts on it; userspace ends a burst, and
/// closes a quiet incident, after [`QUIET_FACTOR`] times it, so records
/// still in flight when the gap elapses are not cut off.
pub const BURST_GAP: Duration = Duration::from_secs(1);
/// See [`BURST_GAP`].
pub const QUIET_FACTOR: u32 = 2;
/// For this long after an EBUSY anywhere on the node, the kernel captures
/// every deletion: userspace needs a few milliseconds to find which mount
/// is busy and tell the kernel (then only deletions through it are).
pub const BUSY_GRACE: Duration = Duration::from_millis(250);
/// Ring buffer size, MiB.
pub const DEFAULT_RING_MIB: u32 = 16;
/// Seconds between loss reports.
pub const DEFAULT_LOSS_INTERVAL_SECS: u64 = 5;
/// Deletions kept per incident (all are counted).
pub const DEFAULT_MAX_DELETIONS: usize = 100_000;
/// Where `record` keeps its segments.
pub const DEFAULT_RECORD_DIR: &str = "/var/lib/mntrace";
/// A segment is closed at this size (MiB, uncompressed)...
pub const DEFAULT_SEGMENT_MIB: u64 = 64;
/// ... or age (seconds).
pub const DEFAULT_SEGMENT_AGE_SECS: u64 = 3600;
/// The recording directory's segments are kept under this total (MiB).
pub const DEFAULT_MAX_TOTAL_MIB: u64 = 1024;
/// Where `--metrics` (without an address, or `--metrics default`) serves
/// `/metrics`: loopback only, so nothing is exposed beyond the node unless
/// an address is given. Port 9477: not one of the ports peers on the same
/// nodes use (2112/2113, 2224, 8765, 6789).
pub const DEFAULT_METRICS_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9477));

/// Everything one `trace` or `watch` run is told.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub probes: ProbeSet,
    pub deletes: DeleteMode,
    pub guard: GuardMode,
    /// The guard also acts on recursive deletes crossing into a bind of a
    /// directory from outside their tree (`--guard-crossings`).
    pub guard_crossings: bool,
    /// Paths of interest (absolute): every deletion at or below them is
    /// recorded besides the race captures.
    pub paths: Vec<Bytes>,
    pub busy_window: Duration,
    pub burst_gap: Duration,
    /// Kinds to attach; empty means all.
    pub kinds: Vec<EventKind>,
    /// Only these tgids (empty: all).
    pub pids: Vec<u32>,
    /// Only this command name (first 15 bytes, as the kernel keeps it).
    pub comm: Option<Vec<u8>>,
    pub failed_only: bool,
    /// Ring buffer bytes (power of two, multiple of the page size).
    pub ring_size: u32,
    pub roots: Roots,
    pub max_deletions: usize,
    /// Every captured event goes to the sink (`trace`, `watch --events`).
    pub show_events: bool,
    pub json: bool,
    pub output: Option<PathBuf>,
    pub loss_interval: Duration,
    pub duration: Option<Duration>,
    /// Serve metrics for scraping on this address (`--metrics`); off by
    /// default.
    pub metrics: Option<SocketAddr>,
}

impl RunConfig {
    /// The settings a recording keeps in every segment header.
    pub fn settings_json(&self) -> serde_json::Value {
        serde_json::json!({
            "probes": self.probes.name(),
            "deletes": match self.deletes { DeleteMode::Race => "race", DeleteMode::All => "all" },
            "guard": self.guard.name(),
            "guard_crossings": self.guard_crossings,
            "paths": self.paths.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect::<Vec<_>>(),
            "busy_window_ns": nanos(self.busy_window),
            "burst_gap_ns": nanos(self.burst_gap),
            "kinds": self.kinds.iter().map(|k| k.syscall()).collect::<Vec<_>>(),
            "pids": self.pids,
            "comm": self.comm.as_ref().map(|c| String::from_utf8_lossy(c).into_owned()),
            "failed_only": self.failed_only,
            "ring_size": self.ring_size,
            "max_deletions": self.max_deletions,
            "roots": self.roots.patterns().map(|(p, l)| serde_json::json!([p, l])).collect::<Vec<_>>(),
        })
    }

    /// The correlator's settings back from a recording's `settings` (what
    /// is missing keeps its default).
    pub fn from_settings(v: &serde_json::Value) -> RunConfig {
        let mut run = RunConfig::default();
        if let Some(n) = v["busy_window_ns"].as_u64() {
            run.busy_window = Duration::from_nanos(n);
        }
        if let Some(n) = v["burst_gap_ns"].as_u64() {
            run.burst_gap = Duration::from_nanos(n);
        }
        if let Some(n) = v["max_deletions"].as_u64() {
            run.max_deletions = n as usize;
        }
        if let Some(roots) = v["roots"].as_array() {
            let mut r = Roots::empty();
            for pair in roots {
                if let (Some(p), Some(l)) = (pair[0].as_str(), pair[1].as_str()) {
                    let _ = r.add(p, l);
                }
            }
            run.roots = r;
        }
        run
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            probes: ProbeSet::default(),
            deletes: DeleteMode::default(),
            guard: GuardMode::default(),
            guard_crossings: false,
            paths: Vec::new(),
            busy_window: Duration::from_secs(DEFAULT_BUSY_WINDOW_SECS),
            burst_gap: BURST_GAP,
            kinds: Vec::new(),
            pids: Vec::new(),
            comm: None,
            failed_only: false,
            ring_size: DEFAULT_RING_MIB << 20,
            roots: Roots::defaults(),
            max_deletions: DEFAULT_MAX_DELETIONS,
            show_events: true,
            json: false,
            output: None,
            loss_interval: Duration::from_secs(DEFAULT_LOSS_INTERVAL_SECS),
            duration: None,
            metrics: None,
        }
    }
}

/// What the kernel side is configured with (the `CONFIG` map, the `PIDS`
/// map, the ring size, which programs are attached).
#[derive(Clone, Debug)]
pub struct TraceOptions {
    pub probes: ProbeSet,
    pub deletes: DeleteMode,
    pub guard: GuardMode,
    pub guard_crossings: bool,
    pub busy_window: Duration,
    pub burst_gap: Duration,
    pub busy_grace: Duration,
    pub kinds: Vec<EventKind>,
    pub pids: Vec<u32>,
    pub comm: Option<Vec<u8>>,
    pub failed_only: bool,
    pub ring_size: u32,
}

impl Default for TraceOptions {
    fn default() -> Self {
        RunConfig::default().kernel()
    }
}

impl TraceOptions {
    /// The kinds whose programs are attached: those asked for, or all of
    /// them when none was (`-k` not given).
    pub fn attached_kinds(&self) -> Vec<EventKind> {
        if self.kinds.is_empty() {
            EventKind::SYSCALLS.to_vec()
        } else {
            self.kinds.clone()
        }
    }
}

/// What the sinks are shown (events are always correlated).
#[derive(Clone, Debug, Default)]
pub struct Display {
    /// Every event goes to the sink (off in `watch`, which shows incidents).
    pub show_events: bool,
    /// Paths of interest: when set, a deletion the kernel captured only
    /// because every deletion is (`CAP_ALL`) is shown only if its path is
    /// at or below one of them. Deletions captured for a race reason always
    /// are.
    pub delete_paths: Vec<Bytes>,
}

impl RunConfig {
    /// The kernel side: paths of interest need every deletion walked (a
    /// deletion's path is only known after the kernel's walk).
    pub fn kernel(&self) -> TraceOptions {
        TraceOptions {
            probes: self.probes,
            deletes: if self.paths.is_empty() {
                self.deletes
            } else {
                DeleteMode::All
            },
            guard: self.guard,
            guard_crossings: self.guard_crossings,
            busy_window: self.busy_window,
            burst_gap: self.burst_gap,
            busy_grace: BUSY_GRACE,
            kinds: self.kinds.clone(),
            pids: self.pids.clone(),
            comm: self.comm.clone(),
            failed_only: self.failed_only,
            ring_size: self.ring_size,
        }
    }

    pub fn correlator(&self) -> CorrelatorConfig {
        CorrelatorConfig {
            roots: self.roots.clone(),
            busy_window_ns: nanos(self.busy_window),
            quiet_ns: nanos(self.burst_gap * QUIET_FACTOR),
            max_deletions: self.max_deletions,
        }
    }

    pub fn display(&self) -> Display {
        Display {
            show_events: self.show_events,
            // With every deletion asked for, nothing is filtered by path.
            delete_paths: match self.deletes {
                DeleteMode::All => Vec::new(),
                DeleteMode::Race => self.paths.clone(),
            },
        }
    }
}

/// A duration in nanoseconds, saturating.
pub fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_default_per_value() {
        let run = RunConfig::default();
        let k = TraceOptions::default();
        let c = CorrelatorConfig::default();
        assert_eq!(k.busy_window, run.busy_window);
        assert_eq!(c.busy_window_ns, nanos(run.busy_window));
        assert_eq!(k.burst_gap, BURST_GAP);
        assert_eq!(c.quiet_ns, nanos(BURST_GAP) * QUIET_FACTOR as u64);
        assert_eq!(k.deletes, DeleteMode::Race);
        assert_eq!(c.max_deletions, DEFAULT_MAX_DELETIONS);
    }

    #[test]
    fn paths_of_interest_walk_every_deletion_and_filter_the_display() {
        let run = RunConfig {
            paths: vec![Bytes::from_static(b"/var/lib/x")],
            ..Default::default()
        };
        assert_eq!(run.kernel().deletes, DeleteMode::All);
        assert_eq!(run.display().delete_paths, run.paths);
        let all = RunConfig {
            deletes: DeleteMode::All,
            ..run
        };
        assert!(all.display().delete_paths.is_empty());
    }
}
