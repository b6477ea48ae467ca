//! Command line.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mntrace::config::{
    DeleteMode, GuardMode, ProbeSet, RunConfig, DEFAULT_BUSY_WINDOW_SECS,
    DEFAULT_LOSS_INTERVAL_SECS, DEFAULT_MAX_TOTAL_MIB, DEFAULT_METRICS_ADDR, DEFAULT_RECORD_DIR,
    DEFAULT_RING_MIB, DEFAULT_SEGMENT_AGE_SECS, DEFAULT_SEGMENT_MIB,
};
use mntrace::correlate::roots::Roots;
use mntrace::floor::FloorHooks;
use tracer_common::EventKind;

#[derive(Parser, Debug)]
#[command(
    name = "mntrace",
    version,
    about = "Trace mount, unmount and delete syscalls with the mount each one went through",
    after_help = "Exit codes: 0 ok, 1 runtime error, 2 usage, 3 incident (watch --fail-on-incident), \
                  4 not permitted (a capability missing), 5 no kernel BTF, 6 no tracefs or syscall tracepoints, 7 kernel refused a program.\n\
                  `mntrace doctor` exits 0 when mntrace can run here, else with the code of its first failing check (4, 5, 6 or 7)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Trace live, one line (or JSON object) per call and incident blocks,
    /// until Ctrl-C (or SIGTERM, SIGHUP).
    Trace(TraceArgs),
    /// Trace while COMMAND runs (its output passes through), show incidents
    /// and a summary; exit with COMMAND's status, or 3 with
    /// --fail-on-incident when an incident happened.
    Watch(WatchArgs),
    /// Record for months: every captured kernel record, the incidents and
    /// the losses, in rotating segments under --dir (compressed when closed,
    /// the oldest removed beyond --max-total-mib); incidents are shown on
    /// stderr (with --json: JSON Lines on stdout, for log shippers).
    Record(RecordArgs),
    /// Replay a recording (its directory, or one segment) through the same
    /// pipeline as live mode and show the incidents with their timelines.
    Triage(TriageArgs),
    /// Find recorded events: by time, path (as the process saw it, or where
    /// the entry really lived: `--path .../snapshots/42/fs` finds every
    /// deletion that removed something there, whichever mount it went
    /// through), pid, command, mount, kind and result.
    Query(QueryArgs),
    /// Check whether mntrace can run on this node and say what to fix: BTF,
    /// tracefs, lockdown, capabilities, which probe types the kernel accepts
    /// (each loaded, never attached), io_uring, kernel features. Changes
    /// nothing on the host.
    #[command(
        after_help = "Each check: ok, warn or fail, what was found, what to do.\n\
        Exit codes: 0 mntrace can run here (warnings included); otherwise the code of the \
        first failing check, the one `mntrace trace` would stop with: 4 not permitted (a \
        capability missing, tracefs or BTF unreadable), 5 no kernel BTF, 6 no tracefs or no \
        syscall tracepoints, 7 the kernel refuses mntrace's programs (lockdown \
        confidentiality, a verifier refusal, a missing tracepoint)."
    )]
    Doctor(DoctorArgs),
    /// Benchmark floor (hidden): attach empty programs (they return 0) to
    /// the hooks named, say how many on stderr, and hold them until SIGINT,
    /// SIGTERM or SIGHUP.
    #[command(hide = true)]
    Floor(FloorArgs),
}

#[derive(clap::Args, Debug)]
pub struct FloorArgs {
    /// `tracepoints`: every syscall tracepoint `mntrace trace` attaches by
    /// default; `raw-tp`, `tp-btf`: sys_enter and sys_exit.
    #[arg(long, value_enum)]
    pub hooks: FloorHooks,
}

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// One JSON object instead of text (schema: docs/json-schema.md, "mntrace doctor --json").
    #[arg(long)]
    pub json: bool,
}

/// Which recording, and which part of it (`triage` and `query`).
#[derive(clap::Args, Debug)]
pub struct RecordingArgs {
    /// A recording directory, or one segment file.
    #[arg(value_name = "DIR|FILE")]
    pub path: PathBuf,
    /// Only events at or after this time (RFC 3339, e.g. 2026-11-30T08:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only events at or before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    pub recording: RecordingArgs,
    /// Deletions at or below PATH, as seen or where the entry really lived
    /// (repeatable).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Only these processes (tgid); repeatable.
    #[arg(short, long = "pid", value_name = "PID", value_parser = parse_pid)]
    pub pids: Vec<u32>,
    /// Only these command names; repeatable.
    #[arg(short, long = "comm", value_name = "COMM", value_parser = parse_comm)]
    pub comms: Vec<String>,
    /// Only calls whose directory (or cwd, root) was on this mount id;
    /// repeatable.
    #[arg(long = "mnt", value_name = "ID")]
    pub mnt_ids: Vec<u32>,
    /// Only these syscalls (as for `trace -k`), `guard` (what the guard
    /// did) or `walk_top` (the top directories of recursive deletes that
    /// crossed into another mount); repeatable.
    #[arg(short, long = "kind", value_name = "KIND", value_parser = parse_recorded_kinds)]
    pub kinds: Vec<Vec<EventKind>>,
    /// Only calls that failed.
    #[arg(long, conflicts_with = "ok")]
    pub failed: bool,
    /// Only calls that succeeded.
    #[arg(long)]
    pub ok: bool,
    /// JSON Lines instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct TriageArgs {
    #[command(flatten)]
    pub recording: RecordingArgs,
    /// JSON Lines (the schema of docs/json-schema.md) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also show every recorded event.
    #[arg(long)]
    pub events: bool,
}

#[derive(clap::Args, Debug)]
pub struct RecordArgs {
    #[command(flatten)]
    pub common: TraceArgs,
    /// The recording directory (created 0700; segments 0600).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RECORD_DIR)]
    pub dir: PathBuf,
    /// Close a segment at this size (MiB, before compression).
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_SEGMENT_MIB,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub segment_mib: u64,
    /// Close a segment at this age (seconds).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_SEGMENT_AGE_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub segment_age: u64,
    /// Remove the oldest segments beyond this total (MiB, compressed).
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_MAX_TOTAL_MIB,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_total_mib: u64,
    /// Also show every captured event (by default only incidents).
    #[arg(long)]
    pub events: bool,
}

impl RecordArgs {
    pub fn writer_config(&self) -> mntrace::recording::writer::WriterConfig {
        mntrace::recording::writer::WriterConfig {
            dir: self.dir.clone(),
            segment_bytes: self.segment_mib << 20,
            segment_age: Duration::from_secs(self.segment_age),
            max_total_bytes: self.max_total_mib << 20,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    pub common: TraceArgs,
    /// Exit with code 3 when an incident happened.
    #[arg(long)]
    pub fail_on_incident: bool,
    /// Also show every captured event (by default only incidents).
    #[arg(long)]
    pub events: bool,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    /// JSON Lines (schema: docs/json-schema.md) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write events, incidents and the summary to FILE instead of stdout
    /// (`watch`: stderr). Whole records only: those that cannot be written
    /// (a full disk) are dropped whole, counted in the summary, and writing
    /// resumes when it can.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Only these processes (tgid); repeatable.
    #[arg(short, long = "pid", value_name = "PID", value_parser = parse_pid)]
    pub pids: Vec<u32>,
    /// Only processes with this command name (as in /proc/PID/comm; the
    /// kernel keeps its first 15 bytes).
    #[arg(short, long, value_parser = parse_comm)]
    pub comm: Option<String>,
    /// Only these syscalls; repeatable. Also `delete` (unlink, unlinkat,
    /// rmdir) and `mount-api` (open_tree, move_mount, mount_setattr, fsopen,
    /// fsconfig, fsmount).
    #[arg(short, long = "kind", value_name = "KIND", value_parser = parse_kinds)]
    pub kinds: Vec<Vec<EventKind>>,
    /// Only calls that failed.
    #[arg(long)]
    pub failed_only: bool,
    /// Which kernel hooks to use: `syscall` (syscall tracepoints, every
    /// kernel), `kernel` (those plus fentry/fexit or kprobes on vfs_unlink,
    /// vfs_rmdir, path_umount and io_unlinkat: deletions carry the inode
    /// removed, unmounts the mount their target resolved to; exit 7 where
    /// the kernel refuses them), `auto` (kernel where accepted, else
    /// syscall; start-up says which and why).
    #[arg(long, value_enum, env = mntrace::config::PROBES_ENV,
          default_value_t = ProbeSet::default())]
    pub probes: ProbeSet,
    /// Which deletions to capture: `race` (default: those that can be part of
    /// the EBUSY-then-delete race: after an EBUSY unmount by the same process,
    /// through id-mapped or subdirectory-bind mounts, or crossing into another
    /// mount) or `all` (every deletion; costly on delete-heavy workloads).
    #[arg(long, value_enum, default_value_t = DeleteMode::default())]
    pub deletes: DeleteMode,
    /// Act on a process that, within the busy window after its unmount
    /// failed with EBUSY, lists or deletes in a directory on that very
    /// mount: decided in the kernel before the listing returns. `report`
    /// only records what would have been done; `stop` freezes the process
    /// (SIGSTOP); `kill` kills it (SIGKILL); `deny` makes its deletions and
    /// renames on that mount fail with EPERM (BPF LSM; refused where the
    /// kernel does not accept it); `auto` is `deny` where the kernel accepts
    /// it, else `stop`. See the README's "Guard".
    #[arg(long, value_enum, default_value_t = GuardMode::default())]
    pub guard: GuardMode,
    /// With --guard: also act on a recursive delete at its first listing
    /// inside a bind of a directory (or an id-mapped mount) whose source is
    /// outside the tree it is deleting (kubelet's orphaned-pod cleanup
    /// walking into a live volume-subpath bind). Off by default.
    #[arg(long)]
    pub guard_crossings: bool,
    /// Also record every deletion at or below PATH (repeatable), besides
    /// those captured for the race. Needs every deletion walked in the
    /// kernel (the path is only known after it): costs like `--deletes all`.
    /// A relative PATH is taken from the current directory.
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<std::path::PathBuf>,
    /// Seconds after an EBUSY unmount during which deletions are captured
    /// and correlated.
    #[arg(long, default_value_t = DEFAULT_BUSY_WINDOW_SECS, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub busy_window: u64,
    /// A snapshot or volume root (glob over path components, `*` within a
    /// component, `**` for any number; e.g. `/srv/volumes/*/**`): deletions
    /// under it make an incident critical. Repeatable; added to the
    /// defaults (containerd snapshots, containers/storage, docker overlay2
    /// and volumes, kubelet pod volumes and subpaths, CSI global mounts).
    #[arg(long = "root", value_name = "GLOB")]
    pub roots: Vec<String>,
    /// Do not use the default snapshot and volume roots.
    #[arg(long)]
    pub no_default_roots: bool,
    /// Ring buffer size in MiB (power of two).
    #[arg(long, default_value_t = DEFAULT_RING_MIB, value_name = "MIB", value_parser = parse_ring_mib)]
    pub ring_mib: u32,
    /// Seconds between loss reports (reported only when losses grew).
    #[arg(long, default_value_t = DEFAULT_LOSS_INTERVAL_SECS, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub loss_interval: u64,
    /// Stop after SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "default",
          value_parser = parse_metrics_addr,
          help = format!(
              "Serve metrics in the Prometheus text format at http://ADDR/metrics. ADDR: \
               IP:PORT ([IPV6]:PORT), PORT alone (on 127.0.0.1), or `default` \
               (also without a value): {DEFAULT_METRICS_ADDR}. Port 0 picks a free port; \
               the address is printed on stderr at start"
          ))]
    pub metrics: Option<SocketAddr>,
}

impl TraceArgs {
    /// The run's configuration, built once; `show_events` is what the
    /// subcommand shows.
    pub fn run_config(&self, show_events: bool) -> Result<RunConfig, String> {
        let mut roots = if self.no_default_roots {
            Roots::empty()
        } else {
            Roots::defaults()
        };
        for r in &self.roots {
            roots.add(r, "configured root")?;
        }
        if self.guard_crossings && self.guard == GuardMode::Off {
            return Err("--guard-crossings needs --guard report, stop or kill".into());
        }
        Ok(RunConfig {
            probes: self.probes,
            deletes: self.deletes,
            guard: self.guard,
            guard_crossings: self.guard_crossings,
            paths: self
                .paths
                .iter()
                .map(|p| absolute_path(p))
                .collect::<Result<_, _>>()?,
            busy_window: Duration::from_secs(self.busy_window),
            kinds: self.kinds.iter().flatten().copied().collect(),
            pids: self.pids.clone(),
            comm: self.comm.as_ref().map(|c| c.as_bytes().to_vec()),
            failed_only: self.failed_only,
            ring_size: self.ring_mib << 20,
            roots,
            show_events,
            json: self.json,
            output: self.output.clone(),
            loss_interval: Duration::from_secs(self.loss_interval),
            duration: self.duration.map(Duration::from_secs),
            metrics: self.metrics,
            ..RunConfig::default()
        })
    }
}

/// A tgid: 0 is no process (the idle task has no tgid a filter could match).
fn parse_pid(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(0) => Err("0 is not a process id".into()),
        Ok(p) => Ok(p),
        Err(e) => Err(format!("{e}")),
    }
}

/// A command name: non-empty, no NUL; the kernel compares its first 15 bytes.
fn parse_comm(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("an empty command name matches no process".into());
    }
    if s.contains('\0') {
        return Err("a command name cannot contain NUL".into());
    }
    Ok(s.to_owned())
}

/// A path of interest as bytes, made absolute from the current directory
/// (lexically: symlinks are not followed).
fn absolute_path(p: &std::path::Path) -> Result<bytes::Bytes, String> {
    if p.as_os_str().is_empty() {
        return Err("--path: an empty path matches nothing".into());
    }
    let abs = std::path::absolute(p)
        .map_err(|e| format!("--path {}: cannot make it absolute: {e}", p.display()))?;
    Ok(bytes::Bytes::copy_from_slice(
        abs.as_os_str().as_encoded_bytes(),
    ))
}

/// A kind of recorded event: [`parse_kinds`], `guard` or `walk_top`.
pub fn parse_recorded_kinds(s: &str) -> Result<Vec<EventKind>, String> {
    for k in [EventKind::Guard, EventKind::WalkTop] {
        if s == k.syscall() {
            return Ok(vec![k]);
        }
    }
    parse_kinds(s).map_err(|e| format!("{e}, guard, walk_top"))
}

pub fn parse_kinds(s: &str) -> Result<Vec<EventKind>, String> {
    use EventKind::*;
    match s {
        "delete" => return Ok(vec![Unlink, Unlinkat, Rmdir]),
        "mount-api" => {
            return Ok(vec![
                OpenTree,
                MoveMount,
                MountSetattr,
                Fsopen,
                Fsconfig,
                Fsmount,
            ])
        }
        "umount2" => return Ok(vec![Umount]),
        _ => {}
    }
    EventKind::SYSCALLS
        .into_iter()
        .find(|k| k.syscall() == s)
        .map(|k| vec![k])
        .ok_or_else(|| {
            let all: Vec<&str> = EventKind::SYSCALLS.iter().map(|k| k.syscall()).collect();
            format!(
                "unknown kind {s:?}; one of: {}, delete, mount-api",
                all.join(", ")
            )
        })
}

/// Where to serve metrics: `IP:PORT`, `[IPV6]:PORT`, `PORT` alone (on
/// 127.0.0.1: another interface only when named), or `default`.
fn parse_metrics_addr(s: &str) -> Result<SocketAddr, String> {
    if s == "default" {
        return Ok(DEFAULT_METRICS_ADDR);
    }
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
    }
    s.parse().map_err(|_| {
        format!(
            "{s:?} is not an address: IP:PORT, [IPV6]:PORT, PORT (on 127.0.0.1) \
             or `default` ({DEFAULT_METRICS_ADDR})"
        )
    })
}

fn parse_ring_mib(s: &str) -> Result<u32, String> {
    let v: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if v == 0 || !v.is_power_of_two() || v > 1024 {
        return Err("must be a power of two between 1 and 1024".into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_groups_and_names() {
        assert_eq!(parse_kinds("unlinkat"), Ok(vec![EventKind::Unlinkat]));
        assert_eq!(parse_kinds("umount2"), Ok(vec![EventKind::Umount]));
        assert_eq!(parse_kinds("delete").map(|v| v.len()), Ok(3));
        assert!(parse_kinds("open").unwrap_err().contains("one of"));
        assert!(parse_kinds("guard").is_err(), "no probe to attach");
        assert_eq!(parse_recorded_kinds("guard"), Ok(vec![EventKind::Guard]));
        assert_eq!(
            parse_recorded_kinds("walk_top"),
            Ok(vec![EventKind::WalkTop])
        );
        assert_eq!(parse_recorded_kinds("rmdir"), Ok(vec![EventKind::Rmdir]));
        assert!(parse_ring_mib("3").is_err());
        assert_eq!(parse_ring_mib("8"), Ok(8));
    }

    fn metrics_of(args: &[&str]) -> Result<Option<SocketAddr>, clap::Error> {
        let cli = Cli::try_parse_from(args)?;
        Ok(match cli.command {
            Command::Trace(t) => t.run_config(true).unwrap().metrics,
            Command::Watch(w) => w.common.run_config(false).unwrap().metrics,
            Command::Record(r) => r.common.run_config(false).unwrap().metrics,
            Command::Triage(_) | Command::Query(_) | Command::Doctor(_) | Command::Floor(_) => None,
        })
    }

    #[test]
    fn metrics_address() {
        assert_eq!(metrics_of(&["mntrace", "trace"]).unwrap(), None, "off");
        let default = Some(DEFAULT_METRICS_ADDR);
        assert_eq!(
            metrics_of(&["mntrace", "trace", "--metrics"]).unwrap(),
            default
        );
        assert_eq!(
            metrics_of(&["mntrace", "trace", "--metrics", "--json"]).unwrap(),
            default,
            "an option after it is not its value"
        );
        assert_eq!(
            metrics_of(&["mntrace", "trace", "--metrics", "default"]).unwrap(),
            default
        );
        assert_eq!(
            metrics_of(&["mntrace", "watch", "--metrics", "--", "true"]).unwrap(),
            default
        );
        assert_eq!(DEFAULT_METRICS_ADDR.to_string(), "127.0.0.1:9477");
        assert_eq!(
            metrics_of(&["mntrace", "trace", "--metrics", "9100"]).unwrap(),
            Some("127.0.0.1:9100".parse().unwrap()),
            "a port alone stays on loopback"
        );
        assert_eq!(
            metrics_of(&["mntrace", "trace", "--metrics=0.0.0.0:9477"]).unwrap(),
            Some("0.0.0.0:9477".parse().unwrap())
        );
        assert_eq!(
            metrics_of(&["mntrace", "watch", "--metrics", "[::1]:0", "--", "true"]).unwrap(),
            Some("[::1]:0".parse().unwrap())
        );
        let e = metrics_of(&["mntrace", "trace", "--metrics", "localhost"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("is not an address"), "{e}");
    }
}
