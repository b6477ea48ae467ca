//! JSON Lines, schema `mntrace/1` (docs/json-schema.md). Byte strings are
//! exact: valid UTF-8 as a JSON string; otherwise a lossy string plus the
//! exact bytes in `<field>_hex`.

use std::io;
use std::os::unix::ffi::OsStrExt;

use serde_json::{json, Map, Value};
use tracer_common::event::*;

use super::output::{Record, RecordWrite};
use super::{hex, Sink};
use crate::correlate::{Deletion, Incident, Process};
use crate::drops::Drops;
use crate::enrich::clock::BootClock;
use crate::enrich::holders::Hold;
use crate::model::{Args, Dir, DirFrom, Event, Str};
use crate::names;
use crate::stats::{Stats, Unwritten};

pub const SCHEMA: u32 = 1;

pub struct JsonLines<W: RecordWrite> {
    out: W,
    clock: BootClock,
}

impl<W: RecordWrite> JsonLines<W> {
    pub fn new(out: W, clock: BootClock) -> Self {
        JsonLines { out, clock }
    }
    /// One record, one line.
    fn write(&mut self, kind: Record, v: &Value) -> io::Result<()> {
        let mut line = serde_json::to_vec(v)?;
        line.push(b'\n');
        self.out.record(kind, &line)
    }
}

/// Put a byte string under `key` (see the module doc).
pub fn put_bytes(m: &mut Map<String, Value>, key: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            m.insert(key.into(), Value::String(s.into()));
        }
        Err(_) => {
            m.insert(
                key.into(),
                Value::String(String::from_utf8_lossy(bytes).into_owned()),
            );
            m.insert(format!("{key}_hex"), Value::String(hex(bytes)));
        }
    }
}

/// A captured argument: null when NULL or unreadable, omitted when absent.
fn put_str(m: &mut Map<String, Value>, key: &str, s: &Str) {
    if s.absent() {
        return;
    }
    if s.is_null() {
        m.insert(key.into(), Value::Null);
        return;
    }
    if s.faulted() {
        m.insert(key.into(), Value::Null);
        m.insert(format!("{key}_unreadable"), Value::Bool(true));
        return;
    }
    put_bytes(m, key, &s.bytes);
    if s.truncated() {
        m.insert(format!("{key}_truncated"), Value::Bool(true));
    }
}

fn put_flags(m: &mut Map<String, Value>, key: &str, raw: u64, text: String) {
    m.insert(key.into(), json!(raw));
    m.insert(format!("{key}_str"), json!(text));
}

/// A kernel-resolved directory as a JSON object.
pub fn dir_json(d: &Dir) -> Value {
    let mut m = Map::new();
    let from = match d.from() {
        DirFrom::Fd => "fd",
        DirFrom::Cwd => "cwd",
        DirFrom::Root => "root",
        DirFrom::Unknown => "unknown",
    };
    m.insert("from".into(), json!(from));
    if d.flags & DIR_BAD_FD != 0 {
        m.insert("error".into(), json!("bad_fd"));
        return Value::Object(m);
    }
    if !d.resolved() {
        m.insert("error".into(), json!("unresolved"));
        return Value::Object(m);
    }
    m.insert("mnt_id".into(), json!(d.mnt_id));
    if d.mnt_id_unique != 0 {
        m.insert("mnt_id_unique".into(), json!(d.mnt_id_unique));
    }
    m.insert("mnt_ns".into(), json!(d.mnt_ns));
    m.insert("dev".into(), json!(d.dev_str()));
    m.insert("ino".into(), json!(d.ino));
    put_bytes(&mut m, "path", &d.path.bytes);
    match d.rel_path() {
        Some(r) => put_bytes(&mut m, "rel_path", &r),
        None => {
            m.insert("rel_path".into(), Value::Null);
        }
    }
    m.insert("truncated".into(), json!(d.truncated()));
    m.insert("flags".into(), json!(names::dir_flags(d.flags)));
    Value::Object(m)
}

fn args_json(ev: &Event) -> Value {
    let mut m = Map::new();
    match &ev.args {
        Args::Mount {
            source,
            target,
            fstype,
            data,
            flags,
            cwd,
        } => {
            put_str(&mut m, "source", source);
            put_str(&mut m, "target", target);
            put_str(&mut m, "fstype", fstype);
            put_flags(&mut m, "flags", *flags, names::mount_flags(*flags));
            put_str(&mut m, "data", data);
            m.insert("cwd".into(), dir_json(cwd));
        }
        Args::Umount { target, flags, cwd } => {
            put_str(&mut m, "target", target);
            put_flags(&mut m, "flags", *flags, names::umount_flags(*flags));
            m.insert("cwd".into(), dir_json(cwd));
        }
        Args::Delete {
            dfd,
            pathname,
            flags,
            dir,
            capture,
            origin_mnt_id,
        } => {
            m.insert("dfd".into(), json!(dfd));
            put_str(&mut m, "pathname", pathname);
            put_flags(
                &mut m,
                "flags",
                *flags as u64,
                names::at_flags(*flags as u64),
            );
            m.insert("dir".into(), dir_json(dir));
            m.insert("capture".into(), json!(names::capture_reasons(*capture)));
            if *origin_mnt_id != 0 {
                m.insert("origin_mnt_id".into(), json!(origin_mnt_id));
            }
        }
        Args::OpenTree {
            dfd,
            pathname,
            flags,
            dir,
            result,
        } => {
            m.insert("dfd".into(), json!(dfd));
            put_str(&mut m, "pathname", pathname);
            put_flags(&mut m, "flags", *flags, names::open_tree_flags(*flags));
            m.insert("dir".into(), dir_json(dir));
            m.insert(
                "result".into(),
                result.as_ref().map(dir_json).unwrap_or(Value::Null),
            );
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
            m.insert("from_dfd".into(), json!(from_dfd));
            put_str(&mut m, "from_pathname", from_path);
            m.insert("to_dfd".into(), json!(to_dfd));
            put_str(&mut m, "to_pathname", to_path);
            put_flags(&mut m, "flags", *flags, names::move_mount_flags(*flags));
            m.insert("from".into(), dir_json(from));
            m.insert("to".into(), dir_json(to));
        }
        Args::MountSetattr {
            dfd,
            pathname,
            at_flags,
            size,
            attr,
            dir,
        } => {
            m.insert("dfd".into(), json!(dfd));
            put_str(&mut m, "pathname", pathname);
            put_flags(
                &mut m,
                "flags",
                *at_flags as u64,
                names::at_flags(*at_flags as u64),
            );
            m.insert("size".into(), json!(size));
            let attr = match attr {
                Some(a) => {
                    let mut o = Map::new();
                    put_flags(
                        &mut o,
                        "attr_set",
                        a.attr_set,
                        names::mount_attr(a.attr_set),
                    );
                    put_flags(
                        &mut o,
                        "attr_clr",
                        a.attr_clr,
                        names::mount_attr(a.attr_clr),
                    );
                    put_flags(
                        &mut o,
                        "propagation",
                        a.propagation,
                        names::propagation(a.propagation),
                    );
                    o.insert("userns_fd".into(), json!(a.userns_fd as i64));
                    o.insert(
                        "userns_ino".into(),
                        if a.userns_ino != 0 {
                            json!(a.userns_ino)
                        } else {
                            Value::Null
                        },
                    );
                    Value::Object(o)
                }
                None => Value::Null,
            };
            m.insert("attr".into(), attr);
            m.insert("dir".into(), dir_json(dir));
        }
        Args::Fsopen { fs_name, flags } => {
            put_str(&mut m, "fs_name", fs_name);
            put_flags(&mut m, "flags", *flags, names::fsopen_flags(*flags));
        }
        Args::Fsconfig {
            fd,
            cmd,
            key,
            value,
            aux,
            aux_dir,
        } => {
            m.insert("fd".into(), json!(fd));
            m.insert("cmd".into(), json!(cmd));
            m.insert("cmd_str".into(), json!(names::fsconfig_cmd(*cmd)));
            put_str(&mut m, "key", key);
            put_str(&mut m, "value", value);
            m.insert("aux".into(), json!(aux));
            if let Some(d) = aux_dir {
                m.insert("aux_dir".into(), dir_json(d));
            }
        }
        Args::Fsmount {
            fs_fd,
            flags,
            attr_flags,
            result,
        } => {
            m.insert("fs_fd".into(), json!(fs_fd));
            put_flags(
                &mut m,
                "flags",
                *flags as u64,
                names::fsmount_flags(*flags as u64),
            );
            put_flags(
                &mut m,
                "attr_flags",
                *attr_flags,
                names::mount_attr(*attr_flags),
            );
            m.insert(
                "result".into(),
                result.as_ref().map(dir_json).unwrap_or(Value::Null),
            );
        }
    }
    Value::Object(m)
}

/// One event as a JSON object.
pub fn event_json(ev: &Event, clock: &BootClock) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!("event"));
    m.insert("schema".into(), json!(SCHEMA));
    m.insert(
        "time".into(),
        json!(clock
            .wall(ev.ts_ns)
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
    );
    m.insert("ts_boot_ns".into(), json!(ev.ts_ns));
    m.insert("duration_ns".into(), json!(ev.duration_ns));
    m.insert("syscall".into(), json!(ev.kind.syscall()));
    m.insert("ret".into(), json!(ev.ret));
    m.insert(
        "errno".into(),
        match ev.errno() {
            Some(e) => json!(names::errno_name(e)
                .map(str::to_owned)
                .unwrap_or_else(|| e.to_string())),
            None => Value::Null,
        },
    );
    m.insert("pid".into(), json!(ev.pid));
    m.insert("tid".into(), json!(ev.tid));
    m.insert("ppid".into(), json!(ev.ppid));
    m.insert("uid".into(), json!(ev.uid));
    m.insert("gid".into(), json!(ev.gid));
    put_bytes(&mut m, "comm", &ev.comm);
    m.insert("cgroup_id".into(), json!(ev.cgroup_id));
    m.insert("mnt_ns".into(), json!(ev.mnt_ns));
    m.insert("args".into(), args_json(ev));
    Value::Object(m)
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
    json!(clock
        .wall(ns)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
}

/// One incident as a JSON object (`"type": "incident"`).
/// One deletion of an incident.
pub fn deletion_json(d: &Deletion, clock: &BootClock) -> Value {
    let mut o = Map::new();
    o.insert("time".into(), time(clock, d.ts_ns));
    o.insert("pid".into(), json!(d.pid));
    o.insert("tid".into(), json!(d.tid));
    o.insert("syscall".into(), json!(d.syscall.syscall()));
    o.insert("is_dir".into(), json!(d.is_dir));
    put_bytes(&mut o, "path", &d.path);
    put_bytes(&mut o, "rel_path", &d.rel_path);
    bytes_field(&mut o, "backing_path", d.backing_path.as_deref());
    o.insert("truncated".into(), json!(d.truncated));
    Value::Object(o)
}

/// An incident as one JSON object.
pub fn incident_json(inc: &Incident, clock: &BootClock) -> Value {
    let mut m = incident_head(inc, clock);
    let dels = inc.deletions.iter().map(|d| deletion_json(d, clock));
    m.insert("deletions".into(), Value::Array(dels.collect()));
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
        serde_json::to_writer(&mut line, &deletion_json(d, clock))?;
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
        put_flags(&mut um, "flags", u.flags, names::umount_flags(u.flags));
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
    m.insert("first_delay_ns".into(), json!(inc.first_delay_ns));
    m.insert("last_time".into(), time(clock, inc.last_ts_ns));
    m.insert("lost_while_open".into(), json!(inc.lost_while_open));
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
        let v = event_json(ev, &self.clock);
        self.write(Record::Event, &v)
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
