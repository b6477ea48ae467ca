//! JSON Lines, schema `mntrace/1` (docs/json-schema.md). Byte strings are
//! exact: valid UTF-8 as a JSON string; otherwise a lossy string plus the
//! exact bytes in `<field>_hex`.

use std::io;
use std::os::unix::ffi::OsStrExt;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Map, Value};
use tracer_common::event::*;

use super::output::{Record, RecordWrite};
use super::{hex, Sink};
use crate::correlate::{Deletion, Incident, Process};
use crate::drops::Drops;
use crate::enrich::clock::BootClock;
use crate::enrich::holders::Hold;
use crate::model::{Args, Dir, DirFrom, Event, GuardAction, MountAttr, Str, Victim};
use crate::names;
use crate::stats::{Stats, Unwritten};

pub const SCHEMA: u32 = 1;

pub struct JsonLines<W: RecordWrite> {
    out: W,
    clock: BootClock,
    /// The line being written, reused from record to record.
    line: Vec<u8>,
}

impl<W: RecordWrite> JsonLines<W> {
    pub fn new(out: W, clock: BootClock) -> Self {
        JsonLines {
            out,
            clock,
            line: Vec::new(),
        }
    }
    /// One record, one line.
    fn write(&mut self, kind: Record, v: &impl Serialize) -> io::Result<()> {
        write_line(&mut self.line, v)?;
        self.out.record(kind, &self.line)
    }
}

/// `v` as one JSON line in `line` (cleared first).
fn write_line(line: &mut Vec<u8>, v: &impl Serialize) -> io::Result<()> {
    line.clear();
    serde_json::to_writer(&mut *line, v)?;
    line.push(b'\n');
    Ok(())
}

/// A byte string as JSON (see the module doc): its text, lossy when it is
/// not UTF-8, and then its exact bytes in hex for `<key>_hex`.
fn text_and_hex(bytes: &[u8]) -> (std::borrow::Cow<'_, str>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.into(), None),
        Err(_) => (String::from_utf8_lossy(bytes), Some(hex(bytes))),
    }
}

/// Put a byte string under `key` (see the module doc).
pub fn put_bytes(m: &mut Map<String, Value>, key: &str, bytes: &[u8]) {
    let (text, hex) = text_and_hex(bytes);
    m.insert(key.into(), Value::String(text.into_owned()));
    if let Some(h) = hex {
        m.insert(format!("{key}_hex"), Value::String(h));
    }
}

// Events and an incident's deletions are the records of which there can be
// millions: they are written field by field through serde's map serializer,
// never built as a `Value` tree first (that tree cost more than half of
// `--deletes all --json`'s CPU). Fields come in the order written here.

/// A byte string under `key` (see the module doc).
fn bytes_entry<M: SerializeMap>(m: &mut M, key: &str, bytes: &[u8]) -> Result<(), M::Error> {
    let (text, hex) = text_and_hex(bytes);
    m.serialize_entry(key, &text)?;
    match hex {
        Some(h) => m.serialize_entry(&format!("{key}_hex"), &h),
        None => Ok(()),
    }
}

/// An optional byte string: null when absent.
fn opt_bytes_entry<M: SerializeMap>(
    m: &mut M,
    key: &str,
    bytes: Option<&[u8]>,
) -> Result<(), M::Error> {
    match bytes {
        Some(b) => bytes_entry(m, key, b),
        None => m.serialize_entry(key, &()),
    }
}

/// A captured argument: null when NULL or unreadable, omitted when absent.
fn str_entry<M: SerializeMap>(m: &mut M, key: &str, s: &Str) -> Result<(), M::Error> {
    if s.absent() {
        return Ok(());
    }
    if s.is_null() {
        return m.serialize_entry(key, &());
    }
    if s.faulted() {
        m.serialize_entry(key, &())?;
        return m.serialize_entry(&format!("{key}_unreadable"), &true);
    }
    bytes_entry(m, key, &s.bytes)?;
    if s.truncated() {
        m.serialize_entry(&format!("{key}_truncated"), &true)?;
    }
    Ok(())
}

/// Flags as their number and their names.
fn flags_entry<M: SerializeMap>(
    m: &mut M,
    key: &str,
    raw: u64,
    text: String,
) -> Result<(), M::Error> {
    m.serialize_entry(key, &raw)?;
    m.serialize_entry(&format!("{key}_str"), &text)
}

/// The `(dfd, pathname, flags)` of a `*at()` call, its flags named by
/// `names`.
fn at_entries<M: SerializeMap>(
    m: &mut M,
    dfd: i32,
    pathname: &Str,
    flags: u64,
    names: fn(u64) -> String,
) -> Result<(), M::Error> {
    m.serialize_entry("dfd", &dfd)?;
    str_entry(m, "pathname", pathname)?;
    flags_entry(m, "flags", flags, names(flags))
}

/// A boot-clock time as RFC 3339 wall time.
fn wall(clock: &BootClock, ns: u64) -> String {
    clock
        .wall(ns)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// A kernel-resolved directory as a JSON object.
pub struct DirJson<'a>(pub &'a Dir);

impl Serialize for DirJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let mut m = s.serialize_map(None)?;
        let from = match d.from() {
            DirFrom::Fd => "fd",
            DirFrom::Cwd => "cwd",
            DirFrom::Root => "root",
            DirFrom::Unknown => "unknown",
        };
        m.serialize_entry("from", from)?;
        if d.flags & DIR_BAD_FD != 0 {
            m.serialize_entry("error", "bad_fd")?;
            return m.end();
        }
        if !d.resolved() {
            m.serialize_entry("error", "unresolved")?;
            return m.end();
        }
        m.serialize_entry("mnt_id", &d.mnt_id)?;
        if d.mnt_id_unique != 0 {
            m.serialize_entry("mnt_id_unique", &d.mnt_id_unique)?;
        }
        m.serialize_entry("mnt_ns", &d.mnt_ns)?;
        m.serialize_entry("dev", &d.dev_str())?;
        m.serialize_entry("ino", &d.ino)?;
        bytes_entry(&mut m, "path", &d.path.bytes)?;
        opt_bytes_entry(&mut m, "rel_path", d.rel_path().as_deref())?;
        m.serialize_entry("truncated", &d.truncated())?;
        m.serialize_entry("flags", &names::dir_flags(d.flags))?;
        m.end()
    }
}

/// The mount an unmount's target resolved to, in the kernel (no path).
struct MountJson<'a>(&'a Dir);

impl Serialize for MountJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("mnt_id", &d.mnt_id)?;
        if d.mnt_id_unique != 0 {
            m.serialize_entry("mnt_id_unique", &d.mnt_id_unique)?;
        }
        m.serialize_entry("mnt_ns", &d.mnt_ns)?;
        m.serialize_entry("dev", &d.dev_str())?;
        m.serialize_entry("root_ino", &d.ino)?;
        m.serialize_entry("flags", &names::dir_flags(d.flags))?;
        m.end()
    }
}

/// The inode a deletion removed.
struct VictimJson<'a>(&'a Victim);

impl Serialize for VictimJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("ino", &v.ino)?;
        m.serialize_entry("dev", &crate::model::dev_str(v.dev))?;
        m.serialize_entry("type", v.file_type())?;
        m.serialize_entry("mode", &format!("{:o}", v.mode & 0o7777))?;
        m.serialize_entry("size", &v.size)?;
        m.serialize_entry("nlink", &v.nlink)?;
        m.serialize_entry("last_link", &v.last_link())?;
        m.end()
    }
}

/// An optional resolved directory: null when absent.
fn opt_dir_entry<M: SerializeMap>(m: &mut M, key: &str, d: Option<&Dir>) -> Result<(), M::Error> {
    m.serialize_entry(key, &d.map(DirJson))
}

/// `mount_setattr`'s `struct mount_attr`.
struct AttrJson<'a>(&'a MountAttr);

impl Serialize for AttrJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = self.0;
        let mut o = s.serialize_map(None)?;
        flags_entry(
            &mut o,
            "attr_set",
            a.attr_set,
            names::mount_attr(a.attr_set),
        )?;
        flags_entry(
            &mut o,
            "attr_clr",
            a.attr_clr,
            names::mount_attr(a.attr_clr),
        )?;
        flags_entry(
            &mut o,
            "propagation",
            a.propagation,
            names::propagation(a.propagation),
        )?;
        o.serialize_entry("userns_fd", &(a.userns_fd as i64))?;
        o.serialize_entry("userns_ino", &(a.userns_ino != 0).then_some(a.userns_ino))?;
        o.end()
    }
}

/// An event's arguments.
struct ArgsJson<'a>(&'a Args);

impl Serialize for ArgsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self.0 {
            Args::Mount {
                source,
                target,
                fstype,
                data,
                flags,
                cwd,
            } => {
                str_entry(&mut m, "source", source)?;
                str_entry(&mut m, "target", target)?;
                str_entry(&mut m, "fstype", fstype)?;
                flags_entry(&mut m, "flags", *flags, names::mount_flags(*flags))?;
                str_entry(&mut m, "data", data)?;
                m.serialize_entry("cwd", &DirJson(cwd))?;
            }
            Args::Umount {
                target,
                flags,
                cwd,
                target_mount,
            } => {
                str_entry(&mut m, "target", target)?;
                flags_entry(&mut m, "flags", *flags, names::umount_flags(*flags))?;
                m.serialize_entry("cwd", &DirJson(cwd))?;
                if let Some(t) = target_mount {
                    m.serialize_entry("target_mount", &MountJson(t))?;
                }
            }
            Args::Delete {
                dfd,
                pathname,
                flags,
                dir,
                capture,
                origin_mnt_id,
                victim,
            } => {
                at_entries(&mut m, *dfd, pathname, *flags as u64, names::at_flags)?;
                m.serialize_entry("dir", &DirJson(dir))?;
                m.serialize_entry("capture", &names::capture_reasons(*capture))?;
                if *origin_mnt_id != 0 {
                    m.serialize_entry("origin_mnt_id", origin_mnt_id)?;
                }
                if let Some(v) = victim {
                    m.serialize_entry("inode", &VictimJson(v))?;
                }
            }
            Args::Rename {
                olddfd,
                oldpath,
                newdfd,
                newpath,
                flags,
                old_dir,
                new_dir,
                capture,
            } => {
                m.serialize_entry("olddfd", olddfd)?;
                str_entry(&mut m, "oldpath", oldpath)?;
                m.serialize_entry("newdfd", newdfd)?;
                str_entry(&mut m, "newpath", newpath)?;
                flags_entry(
                    &mut m,
                    "flags",
                    u64::from(*flags),
                    names::rename_flags(*flags),
                )?;
                m.serialize_entry("old_dir", &DirJson(old_dir))?;
                m.serialize_entry("new_dir", &DirJson(new_dir))?;
                m.serialize_entry("capture", &names::capture_reasons(*capture))?;
            }
            Args::OpenTree {
                dfd,
                pathname,
                flags,
                dir,
                result,
            } => {
                at_entries(&mut m, *dfd, pathname, *flags, names::open_tree_flags)?;
                m.serialize_entry("dir", &DirJson(dir))?;
                opt_dir_entry(&mut m, "result", result.as_ref())?;
            }
            Args::MoveMount {
                from_dfd,
                from_path,
                to_dfd,
                to_path,
                flags,
                from,
                to,
            } => {
                m.serialize_entry("from_dfd", from_dfd)?;
                str_entry(&mut m, "from_pathname", from_path)?;
                m.serialize_entry("to_dfd", to_dfd)?;
                str_entry(&mut m, "to_pathname", to_path)?;
                flags_entry(&mut m, "flags", *flags, names::move_mount_flags(*flags))?;
                m.serialize_entry("from", &DirJson(from))?;
                m.serialize_entry("to", &DirJson(to))?;
            }
            Args::MountSetattr {
                dfd,
                pathname,
                at_flags,
                size,
                attr,
                dir,
            } => {
                at_entries(&mut m, *dfd, pathname, *at_flags as u64, names::at_flags)?;
                m.serialize_entry("size", size)?;
                m.serialize_entry("attr", &attr.as_ref().map(AttrJson))?;
                m.serialize_entry("dir", &DirJson(dir))?;
            }
            Args::Fsopen { fs_name, flags } => {
                str_entry(&mut m, "fs_name", fs_name)?;
                flags_entry(&mut m, "flags", *flags, names::fsopen_flags(*flags))?;
            }
            Args::Fsconfig {
                fd,
                cmd,
                key,
                value,
                aux,
                aux_dir,
            } => {
                m.serialize_entry("fd", fd)?;
                m.serialize_entry("cmd", cmd)?;
                m.serialize_entry("cmd_str", &names::fsconfig_cmd(*cmd))?;
                str_entry(&mut m, "key", key)?;
                str_entry(&mut m, "value", value)?;
                m.serialize_entry("aux", aux)?;
                if let Some(d) = aux_dir {
                    m.serialize_entry("aux_dir", &DirJson(d))?;
                }
            }
            Args::Fsmount {
                fs_fd,
                flags,
                attr_flags,
                result,
            } => {
                m.serialize_entry("fs_fd", fs_fd)?;
                flags_entry(
                    &mut m,
                    "flags",
                    *flags as u64,
                    names::fsmount_flags(*flags as u64),
                )?;
                flags_entry(
                    &mut m,
                    "attr_flags",
                    *attr_flags,
                    names::mount_attr(*attr_flags),
                )?;
                opt_dir_entry(&mut m, "result", result.as_ref())?;
            }
            Args::Guard(g) => {
                m.serialize_entry("action", g.action.name())?;
                m.serialize_entry("trigger", g.trigger_name())?;
                m.serialize_entry("fd", &g.fd)?;
                m.serialize_entry("signal", &(g.signal != 0).then(|| names::signal(g.signal)))?;
                m.serialize_entry("busy_ts_boot_ns", &(g.busy_ns != 0).then_some(g.busy_ns))?;
                m.serialize_entry(
                    "origin_mnt_id",
                    &(g.origin_mnt_id != 0).then_some(g.origin_mnt_id),
                )?;
                m.serialize_entry("mount", &DirJson(&g.mount))?;
            }
            Args::WalkTop { dir, origin_mnt_id } => {
                m.serialize_entry("dir", &DirJson(dir))?;
                m.serialize_entry("origin_mnt_id", origin_mnt_id)?;
            }
        }
        m.end()
    }
}

/// One event as a JSON object; `query` adds the deleted file's
/// `backing_path` when it knows it.
pub struct EventJson<'a> {
    pub ev: &'a Event,
    pub clock: &'a BootClock,
    pub backing_path: Option<&'a [u8]>,
}

impl<'a> EventJson<'a> {
    pub fn new(ev: &'a Event, clock: &'a BootClock) -> Self {
        EventJson {
            ev,
            clock,
            backing_path: None,
        }
    }
}

impl Serialize for EventJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ev = self.ev;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", "event")?;
        m.serialize_entry("schema", &SCHEMA)?;
        m.serialize_entry("time", &wall(self.clock, ev.ts_ns))?;
        m.serialize_entry("ts_boot_ns", &ev.ts_ns)?;
        m.serialize_entry("duration_ns", &ev.duration_ns)?;
        m.serialize_entry("syscall", ev.kind.syscall())?;
        m.serialize_entry("ret", &ev.ret)?;
        match ev.errno() {
            Some(e) => match names::errno_name(e) {
                Some(name) => m.serialize_entry("errno", name)?,
                None => m.serialize_entry("errno", &e.to_string())?,
            },
            None => m.serialize_entry("errno", &())?,
        }
        m.serialize_entry("pid", &ev.pid)?;
        m.serialize_entry("tid", &ev.tid)?;
        m.serialize_entry("ppid", &ev.ppid)?;
        m.serialize_entry("uid", &ev.uid)?;
        m.serialize_entry("gid", &ev.gid)?;
        bytes_entry(&mut m, "comm", &ev.comm)?;
        m.serialize_entry("cgroup_id", &ev.cgroup_id)?;
        m.serialize_entry("mnt_ns", &ev.mnt_ns)?;
        m.serialize_entry("args", &ArgsJson(&ev.args))?;
        if let Some(b) = self.backing_path {
            bytes_entry(&mut m, "backing_path", b)?;
        }
        m.end()
    }
}

/// One event as a JSON value (for tests and callers that inspect it).
pub fn event_json(ev: &Event, clock: &BootClock) -> Value {
    serde_json::to_value(EventJson::new(ev, clock)).expect("an event serializes")
}

/// `{"unlinkat": {"ring_full": 3}}`.
pub fn drops_json(d: &Drops) -> Value {
    let mut m = Map::new();
    for (k, r, n) in d.nonzero() {
        let e = m
            .entry(k.syscall())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(o) = e {
            o.insert(r.name().into(), json!(n));
        }
    }
    Value::Object(m)
}

fn bytes_field(m: &mut Map<String, Value>, key: &str, v: Option<&[u8]>) {
    match v {
        Some(b) => put_bytes(m, key, b),
        None => {
            m.insert(key.into(), Value::Null);
        }
    }
}

fn process_json(p: &Process) -> Value {
    let mut m = Map::new();
    m.insert("pid".into(), json!(p.pid));
    m.insert("tid".into(), json!(p.tid));
    m.insert("ppid".into(), json!(p.ppid));
    m.insert("uid".into(), json!(p.uid));
    put_bytes(&mut m, "comm", &p.comm);
    m.insert("cgroup_id".into(), json!(p.cgroup_id));
    m.insert("mnt_ns".into(), json!(p.mnt_ns));
    Value::Object(m)
}

fn time(clock: &BootClock, ns: u64) -> Value {
    json!(wall(clock, ns))
}

/// One deletion of an incident.
pub struct DeletionJson<'a>(pub &'a Deletion, pub &'a BootClock);

impl Serialize for DeletionJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let mut o = s.serialize_map(None)?;
        o.serialize_entry("time", &wall(self.1, d.ts_ns))?;
        o.serialize_entry("pid", &d.pid)?;
        o.serialize_entry("tid", &d.tid)?;
        o.serialize_entry("syscall", d.syscall.syscall())?;
        o.serialize_entry("is_dir", &d.is_dir)?;
        bytes_entry(&mut o, "path", &d.path)?;
        bytes_entry(&mut o, "rel_path", &d.rel_path)?;
        opt_bytes_entry(&mut o, "backing_path", d.backing_path.as_deref())?;
        o.serialize_entry("truncated", &d.truncated)?;
        if let Some(v) = &d.inode {
            o.serialize_entry("inode", &VictimJson(v))?;
        }
        if let Some(to) = &d.renamed_to {
            bytes_entry(&mut o, "renamed_to", to)?;
        }
        o.end()
    }
}

/// An incident as one JSON object.
pub fn incident_json(inc: &Incident, clock: &BootClock) -> Value {
    let mut m = incident_head(inc, clock);
    let dels = inc.deletions.iter().map(|d| DeletionJson(d, clock));
    m.insert(
        "deletions".into(),
        serde_json::to_value(dels.collect::<Vec<_>>()).expect("deletions serialize"),
    );
    Value::Object(m)
}

/// An incident as one JSON line, its deletions serialized one at a time (an
/// incident can keep 100,000 of them: never a tree of them all at once).
pub fn incident_line(inc: &Incident, clock: &BootClock) -> io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(&Value::Object(incident_head(inc, clock)))?;
    line.pop(); // the head's closing brace; it is never empty
    line.extend_from_slice(b",\"deletions\":[");
    for (i, d) in inc.deletions.iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        serde_json::to_writer(&mut line, &DeletionJson(d, clock))?;
    }
    line.extend_from_slice(b"]}\n");
    Ok(line)
}

/// Everything of an incident but its deletions.
fn incident_head(inc: &Incident, clock: &BootClock) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("type".into(), json!("incident"));
    m.insert("schema".into(), json!(SCHEMA));
    m.insert("id".into(), json!(inc.id));
    m.insert("kind".into(), json!(inc.kind_name()));
    m.insert("severity".into(), json!(inc.severity.name()));
    m.insert("root_label".into(), json!(inc.root_label));
    let unmount = inc.unmount().map(|u| {
        let mut um = Map::new();
        um.insert("time".into(), time(clock, u.ts_ns));
        um.insert("ts_boot_ns".into(), json!(u.ts_ns));
        um.insert("process".into(), process_json(&u.by));
        put_bytes(&mut um, "target", &u.target);
        put_bytes(&mut um, "target_abs", &u.target_abs);
        um.insert("flags".into(), json!(u.flags));
        um.insert("flags_str".into(), json!(names::umount_flags(u.flags)));
        Value::Object(um)
    });
    m.insert("unmount".into(), unmount.unwrap_or(Value::Null));
    let walk = inc.walk().map(|w| {
        let mut wm = Map::new();
        wm.insert("time".into(), time(clock, w.start_ts_ns));
        wm.insert("process".into(), process_json(&w.by));
        bytes_field(&mut wm, "root", w.root.as_deref());
        wm.insert("root_mnt_id".into(), json!(w.root_mnt_id));
        wm.insert("origin_mnt_id".into(), json!(w.origin_mnt_id));
        wm.insert(
            "mountpoint_ebusy_time".into(),
            w.mountpoint_ebusy_ts_ns
                .map(|t| time(clock, t))
                .unwrap_or(Value::Null),
        );
        Value::Object(wm)
    });
    m.insert("walk".into(), walk.unwrap_or(Value::Null));
    let mt = &inc.mount;
    let mut mm = Map::new();
    mm.insert("mnt_id".into(), json!(mt.mnt_id));
    mm.insert("mnt_ns".into(), json!(mt.mnt_ns));
    put_bytes(&mut mm, "mountpoint", &mt.mountpoint);
    bytes_field(&mut mm, "root", mt.root.as_deref());
    bytes_field(&mut mm, "backing_root", mt.backing_root.as_deref());
    mm.insert("fstype".into(), json!(mt.fstype));
    bytes_field(&mut mm, "source", mt.source.as_deref());
    mm.insert("idmapped".into(), json!(mt.idmapped));
    mm.insert("subtree".into(), json!(mt.subtree));
    m.insert("mount".into(), Value::Object(mm));
    m.insert("count".into(), json!(inc.count));
    if inc.removed.seen > 0 {
        // Kernel probe set: what the deletions removed, by the kernel.
        m.insert(
            "removed".into(),
            json!({
                "inodes_seen": inc.removed.seen,
                "last_links": inc.removed.last_links,
                "bytes": inc.removed.bytes,
            }),
        );
    }
    m.insert("first_delay_ns".into(), json!(inc.first_delay_ns));
    m.insert("last_time".into(), time(clock, inc.last_ts_ns));
    m.insert("lost_while_open".into(), json!(inc.lost_while_open));
    m.insert(
        "prevented".into(),
        Value::Array(
            inc.prevented
                .iter()
                .map(|p| {
                    json!({
                        "time": time(clock, p.ts_ns),
                        "ts_boot_ns": p.ts_ns,
                        "process": process_json(&p.by),
                        "action": p.action.name(),
                        "signal": (p.signal != 0).then(|| names::signal(p.signal)),
                        "trigger": crate::model::trigger_name(p.trigger),
                        "fd": p.fd,
                        "result": p.result,
                        "saved": p.saved.as_ref().map(|sv| {
                            let mut m = Map::new();
                            put_bytes(&mut m, "under", &sv.under);
                            m.insert("entries".into(), json!(sv.entries));
                            m.insert("complete".into(), json!(sv.complete));
                            Value::Object(m)
                        }),
                    })
                })
                .collect(),
        ),
    );
    m.insert(
        "deleters".into(),
        Value::Array(inc.deleters.iter().map(process_json).collect()),
    );
    m.insert(
        "holders".into(),
        match &inc.holders {
            None => Value::Null,
            Some(h) => json!({
                "complete": h.complete,
                "processes_scanned": h.processes_scanned,
                "processes": h.holders.iter().map(|hd| {
                    let mut o = Map::new();
                    o.insert("pid".into(), json!(hd.pid));
                    put_bytes(&mut o, "comm", &hd.comm);
                    let holds: Vec<Value> = hd.holds.iter().map(|h| {
                        let mut x = Map::new();
                        let (how, path) = match h {
                            Hold::Fd { fd, path } => { x.insert("fd".into(), json!(fd)); ("fd", path) }
                            Hold::Cwd { path } => ("cwd", path),
                            Hold::Root { path } => ("root", path),
                            Hold::Map { path } => ("mmap", path),
                        };
                        x.insert("how".into(), json!(how));
                        put_bytes(&mut x, "path", path);
                        Value::Object(x)
                    }).collect();
                    o.insert("holds".into(), Value::Array(holds));
                    Value::Object(o)
                }).collect::<Vec<_>>(),
            }),
        },
    );
    m
}

/// The `unwritten` object of the stats record (null when all was written).
pub fn unwritten_json(u: Option<&Unwritten>) -> Value {
    let Some(u) = u else { return Value::Null };
    let mut m = Map::new();
    put_bytes(&mut m, "file", u.file.as_os_str().as_bytes());
    m.insert("records".into(), json!(u.records()));
    m.insert("events".into(), json!(u.events));
    m.insert("incidents".into(), json!(u.incidents));
    m.insert("losses".into(), json!(u.losses));
    m.insert("error".into(), json!(u.error));
    Value::Object(m)
}

impl<W: RecordWrite> Sink for JsonLines<W> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        write_line(&mut self.line, &EventJson::new(ev, &self.clock))?;
        self.out.record(Record::Event, &self.line)
    }

    fn incident(&mut self, inc: &Incident) -> io::Result<()> {
        let line = incident_line(inc, &self.clock)?;
        self.out.record(Record::Incident, &line)
    }

    fn losses(&mut self, delta: &Drops, total: &Drops) -> io::Result<()> {
        let v = json!({
            "type": "loss",
            "schema": SCHEMA,
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "lost": drops_json(delta),
            "lost_total": total.total(),
        });
        self.write(Record::Loss, &v)
    }

    fn finish(&mut self, stats: &Stats) -> io::Result<()> {
        let mut events = Map::new();
        let mut failed = Map::new();
        for (k, n, f) in stats.by_kind() {
            events.insert(k.syscall().into(), json!(n));
            failed.insert(k.syscall().into(), json!(f));
        }
        let v = json!({
            "type": "stats",
            "schema": SCHEMA,
            "events": events,
            "failed": failed,
            "lost": drops_json(&stats.drops),
            "lost_total": stats.drops.total(),
            "decode_errors": stats.decode_errors,
            "ebusy_unmounts": stats.ebusy_unmounts,
            "incidents": {"critical": stats.incidents[1], "warning": stats.incidents[0]},
            "guard": GuardAction::ALL
                .iter()
                .map(|&a| (a.name().to_owned(), json!(stats.guard[a as usize])))
                .collect::<Map<String, Value>>(),
            "unwritten": unwritten_json(stats.unwritten.as_ref()),
        });
        self.write(Record::Summary, &v)?;
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
