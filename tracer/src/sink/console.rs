//! Human-readable lines, strace style:
//! `10:04:05.123456 rm[812/812] unlinkat(3, "f", 0) = 0  dir="/srv/a" mnt=41 rel="/a"`.

use std::io;
use std::os::unix::ffi::OsStrExt;

use tracer_common::event::*;

use super::output::{Record, RecordWrite};
use super::{quote, Quoted, Sink};
use crate::correlate::{Cause, Incident, Prevention};
use crate::drops::Drops;
use crate::enrich::clock::BootClock;
use crate::enrich::holders::Hold;
use crate::model::{Args, Dir, Event, GuardAction, Str};
use crate::names;
use crate::stats::{Stats, Unwritten};

pub struct Console<W: RecordWrite> {
    out: W,
    clock: BootClock,
    /// The summary goes to `out` (an `-o FILE`), not to stderr.
    summary_in_output: bool,
    /// The event line being written (its allocation is kept).
    line: String,
}

impl<W: RecordWrite> Console<W> {
    /// Event lines and incident blocks to `out`; loss reports and the
    /// summary to stderr.
    pub fn new(out: W, clock: BootClock) -> Self {
        Console {
            out,
            clock,
            summary_in_output: false,
            line: String::new(),
        }
    }

    /// The summary to `out` too (`-o FILE`); loss reports stay on stderr.
    pub fn summary_in_output(mut self) -> Self {
        self.summary_in_output = true;
        self
    }
}

/// `1 file`, `2 files`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A string argument: quoted, `NULL`, `<fault>`, with `...` after a cut.
fn arg(s: &Str) -> Arg<'_> {
    Arg(s)
}

/// [`arg`]: written straight into the line.
struct Arg<'a>(&'a Str);

impl std::fmt::Display for Arg<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        if s.is_null() {
            f.write_str("NULL")
        } else if s.faulted() {
            f.write_str("<unreadable>")
        } else if s.absent() {
            f.write_str("?")
        } else if s.truncated() {
            write!(f, "{}...", Quoted(&s.bytes))
        } else {
            Quoted(&s.bytes).fmt(f)
        }
    }
}

fn dir_flags(d: &Dir) -> String {
    let set = names::dir_flags(d.flags);
    if set.is_empty() {
        String::new()
    } else {
        format!(" [{}]", set.join(","))
    }
}

/// `label="/path" mnt=41 rel="/a" [flags]`.
fn dir(label: &str, d: &Dir) -> String {
    if d.flags & DIR_BAD_FD != 0 {
        return format!("{label}=<bad fd>");
    }
    if !d.resolved() {
        return format!("{label}=<unresolved>");
    }
    let cut = if d.truncated() { "..." } else { "" };
    let path = Quoted(&d.path.bytes);
    let mut s = format!("{label}={cut}{path} mnt={}", d.mnt_id);
    if let Some(r) = d.rel_path().filter(|_| d.rel_off > 0) {
        use std::fmt::Write;
        let _ = write!(s, " rel={}", Quoted(&r));
    }
    s.push_str(&dir_flags(d));
    s
}

/// The call as strace would print it, plus what the kernel resolved.
pub fn render(ev: &Event) -> (String, String) {
    let fd = names::dirfd;
    match &ev.args {
        Args::Mount {
            source,
            target,
            fstype,
            data,
            flags,
            cwd,
        } => (
            format!(
                "mount({}, {}, {}, {}, {})",
                arg(source),
                arg(target),
                arg(fstype),
                names::mount_flags(*flags),
                arg(data)
            ),
            relative_only(target, "cwd", cwd),
        ),
        Args::Umount {
            target,
            flags,
            cwd,
            target_mount,
        } => {
            let mut extra = relative_only(target, "cwd", cwd);
            if let Some(t) = target_mount {
                if !extra.is_empty() {
                    extra.push_str("  ");
                }
                extra.push_str(&format!("target mnt={}{}", t.mnt_id, dir_flags(t)));
            }
            (
                format!("umount2({}, {})", arg(target), names::umount_flags(*flags)),
                extra,
            )
        }
        Args::Delete {
            dfd,
            pathname,
            flags,
            dir: d,
            victim,
            ..
        } => {
            let call = match ev.kind {
                k @ (tracer_common::EventKind::Unlinkat
                | tracer_common::EventKind::UringUnlinkat) => {
                    format!(
                        "{}({}, {}, {})",
                        k.syscall(),
                        fd(*dfd),
                        arg(pathname),
                        names::at_flags(*flags as u64)
                    )
                }
                k => format!("{}({})", k.syscall(), arg(pathname)),
            };
            let mut extra = dir("dir", d);
            if let Some(v) = victim {
                extra.push_str(&format!(
                    "  inode={} {} size={} nlink={}{}",
                    v.ino,
                    v.file_type(),
                    v.size,
                    v.nlink,
                    if v.last_link() { " (last link)" } else { "" }
                ));
            }
            (call, extra)
        }
        Args::Rename {
            olddfd,
            oldpath,
            newdfd,
            newpath,
            flags,
            old_dir,
            new_dir,
            ..
        } => {
            let call = match ev.kind {
                tracer_common::EventKind::Rename => {
                    format!("rename({}, {})", arg(oldpath), arg(newpath))
                }
                k => {
                    let with_flags = matches!(
                        k,
                        tracer_common::EventKind::Renameat2
                            | tracer_common::EventKind::UringRenameat
                    );
                    let flags = if with_flags {
                        format!(", {}", names::rename_flags(*flags))
                    } else {
                        String::new()
                    };
                    format!(
                        "{}({}, {}, {}, {}{flags})",
                        k.syscall(),
                        fd(*olddfd),
                        arg(oldpath),
                        fd(*newdfd),
                        arg(newpath)
                    )
                }
            };
            (
                call,
                format!("{}  {}", dir("from", old_dir), dir("to", new_dir)),
            )
        }
        Args::OpenTree {
            dfd,
            pathname,
            flags,
            dir: d,
            result,
        } => {
            let mut extra = dir("dir", d);
            if let Some(r) = result {
                extra.push_str(&format!("  -> mnt={}{}", r.mnt_id, dir_flags(r)));
            }
            (
                format!(
                    "open_tree({}, {}, {})",
                    fd(*dfd),
                    arg(pathname),
                    names::open_tree_flags(*flags)
                ),
                extra,
            )
        }
        Args::MoveMount {
            from_dfd,
            from_path,
            to_dfd,
            to_path,
            flags,
            from,
            to,
        } => (
            format!(
                "move_mount({}, {}, {}, {}, {})",
                fd(*from_dfd),
                arg(from_path),
                fd(*to_dfd),
                arg(to_path),
                names::move_mount_flags(*flags)
            ),
            format!("{}  {}", dir("from", from), dir("to", to)),
        ),
        Args::MountSetattr {
            dfd,
            pathname,
            at_flags,
            size,
            attr,
            dir: d,
        } => {
            let attr = match attr {
                Some(a) => {
                    let userns = if a.userns_ino != 0 {
                        format!(" (userns {})", a.userns_ino)
                    } else {
                        String::new()
                    };
                    format!(
                        "{{attr_set={}, attr_clr={}, propagation={}, userns_fd={}{userns}}}",
                        names::mount_attr(a.attr_set),
                        names::mount_attr(a.attr_clr),
                        names::propagation(a.propagation),
                        a.userns_fd as i64
                    )
                }
                None => "<unreadable>".into(),
            };
            (
                format!(
                    "mount_setattr({}, {}, {}, {attr}, {size})",
                    fd(*dfd),
                    arg(pathname),
                    names::at_flags(*at_flags as u64)
                ),
                dir("mount", d),
            )
        }
        Args::Fsopen { fs_name, flags } => (
            format!("fsopen({}, {})", arg(fs_name), names::fsopen_flags(*flags)),
            String::new(),
        ),
        Args::Fsconfig {
            fd: f,
            cmd,
            key,
            value,
            aux,
            aux_dir,
        } => (
            format!(
                "fsconfig({f}, {}, {}, {}, {aux})",
                names::fsconfig_cmd(*cmd),
                arg(key),
                if value.absent() {
                    "NULL".to_string()
                } else {
                    arg(value).to_string()
                }
            ),
            aux_dir.as_ref().map(|d| dir("aux", d)).unwrap_or_default(),
        ),
        Args::Fsmount {
            fs_fd,
            flags,
            attr_flags,
            result,
        } => (
            format!(
                "fsmount({fs_fd}, {}, {})",
                names::fsmount_flags(*flags as u64),
                names::mount_attr(*attr_flags)
            ),
            result
                .as_ref()
                .map(|r| format!("-> mnt={}{}", r.mnt_id, dir_flags(r)))
                .unwrap_or_default(),
        ),
        Args::Guard(g) => {
            let what = match g.action {
                GuardAction::Reported => "would stop it (--guard report)".to_string(),
                GuardAction::Denied => {
                    "denied its deletions and renames on this mount (EPERM)".to_string()
                }
                a => format!("{} it ({})", a.name(), names::signal(g.signal)),
            };
            let m = &g.mount;
            let why = if g.busy_ns == 0 {
                format!(" (its walk began on mnt {})", g.origin_mnt_id)
            } else {
                format!(
                    ", {} after its unmount of this mount failed with EBUSY",
                    ms(ev.ts_ns.saturating_sub(g.busy_ns))
                )
            };
            (
                format!("GUARD {what} at its {}{why}", trigger_text(g.trigger, g.fd),),
                format!(
                    "mountpoint={} mnt={}{}",
                    Quoted(&m.path.bytes),
                    m.mnt_id,
                    dir_flags(m)
                ),
            )
        }
        Args::WalkTop { dir: d, .. } => (
            "WALK TOP its recursive delete began here, and now crossed into another mount"
                .to_string(),
            dir("dir", d),
        ),
    }
}

/// The cwd only matters for relative paths.
fn relative_only(path: &Str, label: &str, d: &Dir) -> String {
    match path.value() {
        Some(p) if !p.starts_with(b"/") => dir(label, d),
        _ => String::new(),
    }
}

/// One full console line (without newline).
pub fn line(ev: &Event, clock: &BootClock) -> String {
    let mut s = String::with_capacity(160);
    push_line(&mut s, ev, clock);
    s
}

/// [`line`], appended to `s`.
fn push_line(s: &mut String, ev: &Event, clock: &BootClock) {
    use std::fmt::Write;
    let (call, extra) = render(ev);
    push_time(s, clock, ev.ts_ns);
    s.push(' ');
    s.push_str(&String::from_utf8_lossy(&ev.comm));
    let _ = write!(s, "[{}/{}] {call} = {}", ev.pid, ev.tid, names::ret(ev.ret));
    if !extra.is_empty() {
        s.push_str("  ");
        s.push_str(&extra);
    }
}

/// Local wall-clock time of day of boot time `ns`, `HH:MM:SS.ffffff`
/// (strftime's `%H:%M:%S%.6f`, without parsing that format per line).
fn push_time(s: &mut String, clock: &BootClock, ns: u64) {
    use chrono::Timelike;
    use std::fmt::Write;
    let t = clock.wall(ns).with_timezone(&chrono::Local);
    let _ = write!(
        s,
        "{:02}:{:02}:{:02}.{:06}",
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() % 1_000_000_000 / 1_000
    );
}

fn drops_line(d: &Drops) -> String {
    d.nonzero()
        .map(|(k, r, n)| format!("{}:{}={n}", k.syscall(), r.name()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ms(ns: u64) -> String {
    if ns < 1_000_000 {
        format!("{:.0}µs", ns as f64 / 1e3)
    } else {
        format!("{:.1}ms", ns as f64 / 1e6)
    }
}

fn proc_label(comm: &[u8], pid: u32) -> String {
    format!("{}[{pid}]", String::from_utf8_lossy(comm))
}

/// The incident block: what was lost, where it really lived, who did it,
/// who held the mount.
pub fn incident_block(inc: &Incident, clock: &BootClock) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(2048);
    let m = &inc.mount;
    let moved = inc
        .deletions
        .iter()
        .filter(|d| d.renamed_to.is_some())
        .count() as u64;
    let files = inc
        .deletions
        .iter()
        .filter(|d| !d.is_dir && d.renamed_to.is_none())
        .count() as u64;
    let dirs = inc.deletions.iter().filter(|d| d.is_dir).count() as u64;
    let kept = inc.deletions.len() as u64;
    let sev = inc.severity.name().to_uppercase();
    let label = inc
        .root_label
        .as_deref()
        .map(|l| format!(" ({l})"))
        .unwrap_or_default();
    let verb = if moved > 0 {
        "deleted or renamed"
    } else {
        "deleted"
    };
    let what = match &inc.cause {
        Cause::BusyUnmount(_) => {
            format!("{verb} through a mount whose unmount failed with EBUSY")
        }
        Cause::Crossing(_) => {
            format!("{verb} by a recursive delete that crossed into another mount")
        }
    };
    let prevented = if inc.prevented.is_empty() {
        ""
    } else if inc
        .prevented
        .iter()
        .all(|p| p.action == GuardAction::Reported)
    {
        " (the guard would have acted: --guard report)"
    } else {
        " (PREVENTED by the guard)"
    };
    let _ = writeln!(
        s,
        "!!! INCIDENT #{} {sev}{label}: {} {what}{prevented}",
        inc.id,
        count(inc.count, "entry", "entries")
    );
    let at = |ns: u64| {
        let mut t = String::with_capacity(15);
        push_time(&mut t, clock, ns);
        t
    };
    match &inc.cause {
        Cause::BusyUnmount(u) => {
            let _ = writeln!(
                s,
                "    unmount   {} {} umount2({}, {}) = -EBUSY",
                at(u.ts_ns),
                proc_label(&u.by.comm, u.by.pid),
                Quoted(&u.target),
                names::umount_flags(u.flags)
            );
        }
        Cause::Crossing(w) => {
            let root = w
                .root
                .as_ref()
                .map(|r| quote(r))
                .unwrap_or_else(|| "? (its top directory was not seen)".into());
            let _ = writeln!(
                s,
                "    walk      {} {} removing {root}, from mnt {}",
                at(w.start_ts_ns),
                proc_label(&w.by.comm, w.by.pid),
                w.root_mnt_id.unwrap_or(w.origin_mnt_id)
            );
            if let Some(t) = w.mountpoint_ebusy_ts_ns {
                let _ = writeln!(
                    s,
                    "    then      {} removing the mountpoint failed with EBUSY",
                    at(t)
                );
            }
        }
    }
    let mut facts = vec![m.fstype.clone().unwrap_or_else(|| "fs ?".into())];
    if m.idmapped {
        facts.push("idmapped".into());
    }
    if m.subtree {
        facts.push("bind of a subdirectory".into());
    }
    let _ = writeln!(
        s,
        "    mount     mnt {} on {} ({})",
        m.mnt_id,
        Quoted(&m.mountpoint),
        facts.join(", ")
    );
    match (&m.backing_root, &m.root) {
        (Some(b), _) => {
            let _ = writeln!(s, "    lives at  {}", Quoted(b));
        }
        (None, Some(r)) => {
            let _ = writeln!(s, "    root      {} (within its filesystem)", Quoted(r));
        }
        (None, None) => s.push_str("    lives at  ? (mount not in the mount table)\n"),
    }
    let who: Vec<String> = inc
        .deleters
        .iter()
        .map(|p| {
            format!(
                "{} (ppid {}, uid {}, cgroup {})",
                proc_label(&p.comm, p.pid),
                p.ppid,
                p.uid,
                p.cgroup_id
            )
        })
        .collect();
    // Past the correlator's cap, only the first deletions are kept: the
    // kinds are known for those only.
    let mut kinds = format!(
        "{}, {}",
        count(files, "file", "files"),
        count(dirs, "directory", "directories")
    );
    if moved > 0 {
        kinds.push_str(&format!(", {} renamed", count(moved, "entry", "entries")));
    }
    let what = if kept < inc.count {
        format!(
            "{}, the first {kept} kept ({kinds})",
            count(inc.count, "entry", "entries")
        )
    } else {
        kinds
    };
    for p in &inc.prevented {
        let _ = writeln!(
            s,
            "    guard     {} {}",
            at(p.ts_ns),
            prevention_text(p, inc)
        );
    }
    if inc.removed.seen > 0 {
        let r = &inc.removed;
        let _ = writeln!(
            s,
            "    inodes    {} lost their last link ({} bytes); the kernel reported {} of the \
             deletions",
            count(r.last_links, "file", "files"),
            r.bytes,
            r.seen
        );
    }
    if inc.count == 0 {
        s.push_str("    deleted   nothing\n");
    } else {
        let _ = writeln!(
            s,
            "    deleted   {what} by {}, first {} after the {}",
            who.join(", "),
            ms(inc.first_delay_ns),
            if inc.unmount().is_some() {
                "EBUSY"
            } else {
                "walk's first captured deletion"
            }
        );
    }
    const SHOWN: usize = 20;
    for d in inc.deletions.iter().take(SHOWN) {
        let lost = d.backing_path.as_ref().unwrap_or(&d.path);
        let kind = if d.renamed_to.is_some() {
            "moved"
        } else if d.is_dir {
            "dir "
        } else {
            "file"
        };
        let to = match &d.renamed_to {
            Some(to) => format!(" to {}", Quoted(to)),
            None => String::new(),
        };
        let _ = writeln!(
            s,
            "      {kind} {}  (seen as {}){to}",
            Quoted(lost),
            Quoted(&d.path)
        );
    }
    if inc.deletions.len() > SHOWN {
        let _ = writeln!(
            s,
            "      ... and {} more (in --json)",
            inc.deletions.len() - SHOWN
        );
    }
    if kept < inc.count {
        let _ = writeln!(
            s,
            "      ... and {} more not kept (only the first {kept} are kept)",
            inc.count - kept
        );
    }
    match &inc.holders {
        Some(h) if !h.holders.is_empty() => {
            for hd in &h.holders {
                let holds: Vec<String> = hd.holds.iter().map(hold_text).collect();
                let _ = writeln!(s,
                    "    held by   {}: {}",
                    proc_label(&hd.comm, hd.pid),
                    holds.join(", ")
                );
            }
            if !h.complete {
                s.push_str("    held by   (scan incomplete: time budget exceeded)\n");
            }
        }
        Some(h) => {
            let _ = writeln!(s,
            "    held by   nobody found (scanned {} processes{})",
            h.processes_scanned,
            if h.complete { "" } else { ", incomplete" }
        );
        }
        None if inc.unmount().is_some() => {
            s.push_str("    held by   ? (not scanned: mount not in the table at the EBUSY, or scan rate limit)\n")
        }
        None => {}
    }
    if inc.lost_while_open > 0 {
        let _ = writeln!(s,
            "    WARNING   {} events were lost in the kernel while this incident was open: the list may be incomplete",
            inc.lost_while_open
        );
    }
    s
}

/// The call the guard acted at (`GUARD_AT_*`), on fd `fd` when known.
fn trigger_text(trigger: u32, fd: Option<i32>) -> String {
    let of_fd = fd.map(|fd| format!(" of fd {fd}")).unwrap_or_default();
    match trigger {
        GUARD_AT_CROSSING => {
            format!("listing{of_fd} inside a bind from outside the tree it is deleting")
        }
        t => format!("{}{of_fd}", crate::model::trigger_name(t)),
    }
}

/// What the guard did, to whom, and what to do next.
fn prevention_text(p: &Prevention, inc: &Incident) -> String {
    let who = proc_label(&p.by.comm, p.by.pid);
    let after = inc
        .unmount()
        .map(|u| format!(", {} after the EBUSY", ms(p.ts_ns.saturating_sub(u.ts_ns))))
        .unwrap_or_default();
    let at = format!("at its {}{after}", trigger_text(p.trigger, p.fd));
    let pid = p.by.pid;
    if p.result != 0 {
        return format!(
            "{who} {at}: sending {} FAILED ({}); the process was not stopped",
            names::signal(p.signal),
            names::ret(p.result)
        );
    }
    let saved = match &p.saved {
        Some(sv) => format!(
            "; {}{} saved under {}",
            if sv.complete { "" } else { "at least " },
            count(sv.entries, "entry", "entries"),
            Quoted(&sv.under)
        ),
        None => String::new(),
    };
    match p.action {
        GuardAction::Reported => format!("{who} {at}: would have been stopped (--guard report)"),
        GuardAction::Stopped => format!(
            "{who} STOPPED (SIGSTOP) {at}{saved}; it is frozen: inspect it, then end it with \
             `kill -KILL {pid}`, or unmount the mount first and resume it with `kill -CONT {pid}`"
        ),
        GuardAction::Killed => format!("{who} KILLED (SIGKILL) {at}{saved}"),
        GuardAction::Denied => format!(
            "{who} DENIED (EPERM) {at}{saved}; its deletions and renames on this mount fail for \
             the rest of the busy window: unmount the mount (or end what holds it) before \
             deleting again"
        ),
    }
}

fn hold_text(h: &Hold) -> String {
    match h {
        Hold::Fd { fd, path } => format!("fd {fd} {}", Quoted(path)),
        Hold::Cwd { path } => format!("cwd {}", Quoted(path)),
        Hold::Root { path } => format!("root {}", Quoted(path)),
        Hold::Map { path } => format!("mmap {}", Quoted(path)),
    }
}

impl<W: RecordWrite> Sink for Console<W> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        let mut l = std::mem::take(&mut self.line);
        l.clear();
        push_line(&mut l, ev, &self.clock);
        l.push('\n');
        let r = self.out.record(Record::Event, l.as_bytes());
        self.line = l;
        r
    }

    fn incident(&mut self, inc: &Incident) -> io::Result<()> {
        let block = incident_block(inc, &self.clock);
        self.out.record(Record::Incident, block.as_bytes())
    }

    fn losses(&mut self, delta: &Drops, total: &Drops) -> io::Result<()> {
        // Losses go to stderr so they are seen even when stdout is piped.
        eprintln!("{}", loss_line(delta, total));
        Ok(())
    }

    fn finish(&mut self, stats: &Stats) -> io::Result<()> {
        let text = summary(stats);
        if !self.summary_in_output {
            self.out.flush()?;
            eprintln!("{text}");
            return Ok(());
        }
        self.out
            .record(Record::Summary, format!("{text}\n").as_bytes())?;
        self.out.flush()?;
        super::report_unwritten(self.out.unwritten(), stats);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn unwritten(&self) -> Option<Unwritten> {
        self.out.unwritten()
    }
}

/// The loss report (stderr): `delta` since the last report, `total` so far.
pub fn loss_line(delta: &Drops, total: &Drops) -> String {
    format!(
        "mntrace: LOST {} in the kernel ({}); total {}",
        count(delta.total(), "event", "events"),
        drops_line(delta),
        total.total()
    )
}

/// What the output file could not take: `mntrace: 57 records not written
/// to "/x/out" (events 55, incidents 2): No space left on device (os error 28)`.
pub fn unwritten_line(u: &Unwritten) -> String {
    let kinds: Vec<String> = [
        ("events", u.events),
        ("incidents", u.incidents),
        ("loss reports", u.losses),
    ]
    .iter()
    .filter(|&&(_, n)| n > 0)
    .map(|(k, n)| format!("{k} {n}"))
    .collect();
    format!(
        "mntrace: {} not written to {} ({}): {}",
        count(u.records(), "record", "records"),
        quote(u.file.as_os_str().as_bytes()),
        kinds.join(", "),
        u.error
    )
}

/// The end-of-run summary (stderr, or the `-o FILE`).
pub fn summary(stats: &Stats) -> String {
    let mut s = format!(
        "mntrace: {}",
        count(stats.total_events(), "event", "events")
    );
    let kinds: Vec<String> = stats
        .by_kind()
        .map(|(k, n, f)| {
            if f > 0 {
                format!("{} {n} ({f} failed)", k.syscall())
            } else {
                format!("{} {n}", k.syscall())
            }
        })
        .collect();
    if !kinds.is_empty() {
        s.push_str(&format!(": {}", kinds.join(", ")));
    }
    s.push_str(&format!(
        "\nmntrace: {} failed with EBUSY; incidents: {} critical, {} warning",
        count(stats.ebusy_unmounts, "unmount", "unmounts"),
        stats.incidents[1],
        stats.incidents[0]
    ));
    if stats.guard.iter().any(|&n| n > 0) {
        let acts: Vec<String> = GuardAction::ALL
            .iter()
            .map(|&a| format!("{} {}", stats.guard[a as usize], a.name()))
            .collect();
        s.push_str(&format!("\nmntrace: GUARD acted: {}", acts.join(", ")));
    }
    let lost = stats.drops.total();
    if lost > 0 {
        s.push_str(&format!(
            "\nmntrace: LOST {} in the kernel ({})",
            count(lost, "event", "events"),
            drops_line(&stats.drops)
        ));
    } else {
        s.push_str("\nmntrace: no events lost");
    }
    if let Some(u) = &stats.unwritten {
        s.push('\n');
        s.push_str(&unwritten_line(u));
    }
    if stats.decode_errors > 0 {
        s.push_str(&format!(
            "\nmntrace: {} skipped",
            count(stats.decode_errors, "malformed record", "malformed records")
        ));
        if let Some(e) = &stats.last_decode_error {
            s.push_str(&format!(" (last: {e})"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The time of day is strftime's `%H:%M:%S%.6f`, to the microsecond.
    #[test]
    fn time_of_day_is_strftimes() {
        let clock = BootClock::now();
        for ns in [
            0,
            1,
            999,
            1_000,
            123_456_789,
            59_999_999_999,
            86_399_999_999_999,
        ] {
            let mut s = String::new();
            push_time(&mut s, &clock, ns);
            let want = clock
                .wall(ns)
                .with_timezone(&chrono::Local)
                .format("%H:%M:%S%.6f")
                .to_string();
            assert_eq!(s, want, "{ns}");
        }
    }
}
