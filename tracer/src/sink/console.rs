//! Human-readable lines, strace style:
//! `10:04:05.123456 rm[812/812] unlinkat(3, "f", 0) = 0  dir="/srv/a" mnt=41 rel="/a"`.

use std::io::{self, Write};

use tracer_common::event::*;

use super::{quote, Sink};
use crate::enrich::clock::BootClock;
use crate::loader::Drops;
use crate::model::{Args, Dir, Event, Str};
use crate::names;
use crate::stats::Stats;

pub struct Console<W: Write> {
    out: W,
    clock: BootClock,
}

impl<W: Write> Console<W> {
    pub fn new(out: W, clock: BootClock) -> Self {
        Console { out, clock }
    }
}

/// A string argument: quoted, `NULL`, `<fault>`, with `...` after a cut.
fn arg(s: &Str) -> String {
    if s.is_null() {
        "NULL".into()
    } else if s.faulted() {
        "<unreadable>".into()
    } else if s.absent() {
        "?".into()
    } else if s.truncated() {
        format!("{}...", quote(&s.bytes))
    } else {
        quote(&s.bytes)
    }
}

fn dir_flags(d: &Dir) -> String {
    let names = [
        (DIR_IDMAPPED, "idmapped"),
        (DIR_SUBTREE, "subtree"),
        (DIR_DETACHED, "detached"),
        (DIR_OUTSIDE_ROOT, "outside-root"),
        (DIR_NOT_DIR, "not-dir"),
        (DIR_TRUNC_LEN, "truncated"),
        (DIR_TRUNC_DEPTH, "too-deep"),
        (DIR_READ_ERR, "read-error"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(f, _)| d.flags & f != 0)
        .map(|&(_, n)| n)
        .collect();
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
    let path = if d.truncated() {
        format!("...{}", quote(&d.path.bytes))
    } else {
        quote(&d.path.bytes)
    };
    let rel = match d.rel_path() {
        Some(r) if d.rel_off > 0 => format!(" rel={}", quote(&r)),
        _ => String::new(),
    };
    format!("{label}={path} mnt={}{rel}{}", d.mnt_id, dir_flags(d))
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
        Args::Umount { target, flags, cwd } => (
            format!("umount2({}, {})", arg(target), names::umount_flags(*flags)),
            relative_only(target, "cwd", cwd),
        ),
        Args::Delete {
            dfd,
            pathname,
            flags,
            dir: d,
            ..
        } => {
            let call = match ev.kind {
                tracer_common::EventKind::Unlinkat => {
                    format!(
                        "unlinkat({}, {}, {})",
                        fd(*dfd),
                        arg(pathname),
                        names::at_flags(*flags as u64)
                    )
                }
                k => format!("{}({})", k.syscall(), arg(pathname)),
            };
            (call, dir("dir", d))
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
                    "NULL".into()
                } else {
                    arg(value)
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
    let (call, extra) = render(ev);
    let t = clock
        .wall(ev.ts_ns)
        .with_timezone(&chrono::Local)
        .format("%H:%M:%S%.6f");
    let comm = String::from_utf8_lossy(&ev.comm);
    let sep = if extra.is_empty() { "" } else { "  " };
    format!(
        "{t} {comm}[{}/{}] {call} = {}{sep}{extra}",
        ev.pid,
        ev.tid,
        names::ret(ev.ret)
    )
}

fn drops_line(d: &Drops) -> String {
    d.nonzero()
        .map(|(k, r, n)| format!("{}:{}={n}", k.syscall(), r.name()))
        .collect::<Vec<_>>()
        .join(" ")
}

impl<W: Write> Sink for Console<W> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        writeln!(self.out, "{}", line(ev, &self.clock))
    }

    fn losses(&mut self, delta: &Drops, total: &Drops) -> io::Result<()> {
        // Losses go to stderr so they are seen even when stdout is piped.
        eprintln!(
            "mntrace: LOST {} events in the kernel ({}); total {}",
            delta.total(),
            drops_line(delta),
            total.total()
        );
        Ok(())
    }

    fn finish(&mut self, stats: &Stats) -> io::Result<()> {
        self.out.flush()?;
        eprintln!("{}", summary(stats));
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The end-of-run summary (stderr).
pub fn summary(stats: &Stats) -> String {
    let mut s = format!("mntrace: {} events", stats.total_events());
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
    let lost = stats.drops.total();
    if lost > 0 {
        s.push_str(&format!(
            "\nmntrace: LOST {lost} events in the kernel ({})",
            drops_line(&stats.drops)
        ));
    } else {
        s.push_str("\nmntrace: no events lost");
    }
    if stats.decode_errors > 0 {
        s.push_str(&format!(
            "\nmntrace: {} malformed records skipped",
            stats.decode_errors
        ));
        if let Some(e) = &stats.last_decode_error {
            s.push_str(&format!(" (last: {e})"));
        }
    }
    s
}
