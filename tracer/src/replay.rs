//! Replaying a recording through the same decoder and pipeline as live
//! mode: the source is the only difference (segments instead of the ring
//! buffer, recorded facts instead of the live system).
//!
//! Two passes over the segments: the first indexes the recorded enrichment
//! (by event), the second feeds the kernel records, ticks, holder answers
//! and loss totals to the pipeline in the order live mode applied them.

use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::decode::decode_in;
use crate::enrich::clock::BootClock;
use crate::enrich::facts::{Fact, ReplayFacts};
use crate::path::is_under;
use crate::pipeline::Pipeline;
use crate::recording::format::{first_record, load_into, reclaim, End, Reader, RecordKind};
use crate::recording::writer::segments;
use crate::sink::Sink;

/// The segments of a recording: a directory's, oldest first, or one file.
pub fn segment_paths(path: &Path) -> io::Result<Vec<PathBuf>> {
    if path.is_dir() {
        let v: Vec<PathBuf> = segments(path)?.into_iter().map(|(_, p, _)| p).collect();
        if v.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{}: no recording segments (seg-*.mtr[.zst])",
                    path.display()
                ),
            ));
        }
        Ok(v)
    } else {
        std::fs::metadata(path)?;
        Ok(vec![path.to_owned()])
    }
}

/// What a replay goes through, in bytes of the files as stored.
pub fn stored_bytes(paths: &[PathBuf]) -> u64 {
    paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// How far a replay is, in bytes of the files as stored: a segment's share
/// as its records are done.
#[derive(Default)]
struct Done {
    /// Segments before the current one.
    before: u64,
    /// The current segment.
    size: u64,
    items: usize,
}

impl Done {
    /// Records between two reports.
    const EVERY: usize = 1 << 14;

    fn segment(&mut self, p: &Path, items: usize) {
        self.before += self.size;
        self.size = std::fs::metadata(p).map_or(0, |m| m.len());
        self.items = items.max(1);
    }

    fn item(&self, i: usize, progress: &mut impl FnMut(u64)) {
        if i.is_multiple_of(Self::EVERY) {
            progress(self.before + self.size * i as u64 / self.items as u64);
        }
    }
}

/// Boot-time bounds of what is replayed (inclusive).
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    pub since_ns: Option<u64>,
    pub until_ns: Option<u64>,
}

impl Window {
    fn contains(&self, ts: u64) -> bool {
        self.since_ns.is_none_or(|s| ts >= s) && self.until_ns.is_none_or(|u| ts <= u)
    }
}

/// What a replay went through.
#[derive(Clone, Debug, Default)]
pub struct Replayed {
    pub segments: usize,
    pub kernel_records: u64,
    /// Records that did not decode, facts that did not parse.
    pub bad_records: u64,
    /// How segments that did not end cleanly ended: (path, end).
    pub damaged: Vec<(PathBuf, End)>,
}

/// Which recorded events `mntrace query` shows: all given criteria hold
/// (each list: any of its values).
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub window: Window,
    /// The path as the process saw it, or where the entry really lived
    /// (backing path), is at or below one of these.
    pub paths: Vec<bytes::Bytes>,
    pub pids: Vec<u32>,
    pub comms: Vec<bytes::Bytes>,
    /// The mount the call's directory (or cwd/root) was on.
    pub mnt_ids: Vec<u32>,
    pub kinds: Vec<crate::EventKind>,
    /// `Some(true)`: only successful calls; `Some(false)`: only failed ones.
    pub ok: Option<bool>,
}

/// Where a deletion's entry (a rename's old entry) is, as seen and as it
/// really lived (when the recorded enrichment knew the backing root of its
/// mount).
pub fn deletion_paths(
    ev: &crate::model::Event,
    en: &crate::enrich::Enrichment,
) -> Option<(bytes::Bytes, Option<bytes::Bytes>)> {
    use crate::path::{join, resolve_arg};
    let (pathname, dir) = ev.args.taken_entry()?;
    let name = pathname.value()?;
    let seen = resolve_arg(&dir.path.bytes, name);
    let backing = match (&en.backing_root, dir.rel_path()) {
        (Some(root), Some(rel)) if !name.contains(&b'/') => Some(join(root, &join(&rel, name))),
        _ => None,
    };
    Some((seen, backing))
}

impl Query {
    /// Whether `ev` (with its recorded enrichment) is selected; the backing
    /// path of a deletion, when known. The cheap criteria first; paths are
    /// only built for deletions that can be at or below a path asked for.
    pub fn select(
        &self,
        ev: &crate::model::Event,
        en: &crate::enrich::Enrichment,
    ) -> (bool, Option<bytes::Bytes>) {
        use crate::model::Args;
        let dir_mnt = match &ev.args {
            Args::Delete { dir, .. } | Args::Rename { old_dir: dir, .. } => Some(dir.mnt_id),
            Args::Mount { cwd, .. } | Args::Umount { cwd, .. } => Some(cwd.mnt_id),
            Args::OpenTree { dir, .. } | Args::MountSetattr { dir, .. } => Some(dir.mnt_id),
            Args::MoveMount { from, .. } => Some(from.mnt_id),
            Args::WalkTop { dir, .. } => Some(dir.mnt_id),
            _ => None,
        };
        let cheap = self.window.contains(ev.ts_ns)
            && (self.pids.is_empty() || self.pids.contains(&ev.pid))
            && (self.comms.is_empty() || self.comms.iter().any(|c| c == &ev.comm))
            && (self.kinds.is_empty() || self.kinds.contains(&ev.kind))
            && self.ok.is_none_or(|want| want == (ev.ret >= 0))
            && (self.mnt_ids.is_empty() || dir_mnt.is_some_and(|m| self.mnt_ids.contains(&m)));
        if !cheap || (!self.paths.is_empty() && !self.may_be_under(ev, en)) {
            return (false, None);
        }
        let paths = deletion_paths(ev, en);
        let backing = paths.as_ref().and_then(|(_, b)| b.clone());
        let ok = self.paths.is_empty()
            || paths.as_ref().is_some_and(|(seen, backing)| {
                self.paths
                    .iter()
                    .any(|p| is_under(seen, p) || backing.as_ref().is_some_and(|b| is_under(b, p)))
            });
        (ok, backing)
    }

    /// Whether a deletion's paths can be at or below one of `self.paths`
    /// (without building them): each is its directory (or the backing
    /// root) followed by more components, so that start and the path asked
    /// for must be one under the other.
    fn may_be_under(&self, ev: &crate::model::Event, en: &crate::enrich::Enrichment) -> bool {
        let Some((pathname, dir)) = ev.args.taken_entry() else {
            return false;
        };
        let Some(name) = pathname.value() else {
            return false;
        };
        let starts: [Option<&[u8]>; 2] = if name.starts_with(b"/") {
            [Some(name), None]
        } else {
            [Some(&dir.path.bytes[..]), en.backing_root.as_deref()]
        };
        let related = |a: &[u8], p: &[u8]| is_under(a, p) || is_under(p, a);
        self.paths
            .iter()
            .any(|p| starts.iter().flatten().any(|s| related(s, p)))
    }
}

/// Go through a recording's events with the enrichment live mode had, and
/// hand those `q` selects to `each` (with their backing path).
pub fn query(
    paths: &[PathBuf],
    q: &Query,
    progress: impl FnMut(u64),
    mut each: impl FnMut(&crate::model::Event, Option<&bytes::Bytes>) -> io::Result<()>,
) -> io::Result<Replayed> {
    let mut facts = ReplayFacts::default();
    walk(
        paths,
        &mut facts,
        |f| f,
        progress,
        |facts, step| {
            let Step::Event(ev) = step else {
                return Ok(());
            };
            let en = facts.enrich(ev);
            let (selected, backing) = q.select(ev, &en);
            if selected {
                each(ev, backing.as_ref())?;
            }
            Ok(())
        },
    )
}

/// The recorded enrichment a replaying pipeline holds.
fn pipeline_facts(p: &mut Pipeline) -> &mut ReplayFacts {
    p.replay_facts().expect("replaying")
}

/// What a replay hands on, in stream order.
enum Step<'a> {
    Event(&'a crate::model::Event),
    /// A tick or a holder answer.
    Fact(Fact),
    /// Cumulative kernel-side losses.
    Losses(u64),
}

/// Go through the segments in order, each read once: its enrichment
/// indexed into the facts `state` holds, then every kernel record (decoded,
/// counted) and every other input handed to `each` in stream order;
/// `progress` told the bytes of the files done.
fn walk<S>(
    paths: &[PathBuf],
    state: &mut S,
    facts: fn(&mut S) -> &mut ReplayFacts,
    mut progress: impl FnMut(u64),
    mut each: impl FnMut(&mut S, Step<'_>) -> io::Result<()>,
) -> io::Result<Replayed> {
    let mut out = Replayed::default();
    let mut buf = Vec::new();
    let mut done = Done::default();
    for p in paths {
        // The enrichment a chunk of events used is recorded in the same
        // segment as the chunk (a segment only rotates between chunks), so
        // it is indexed segment by segment.
        let (data, items) = read_segment(p, buf, facts(state), &mut out)?;
        done.segment(p, items.len());
        for (i, item) in items.into_iter().enumerate() {
            done.item(i, &mut progress);
            match item {
                Item::Kernel(rec) => {
                    if let Some(ev) = decoded(&data, rec, &mut out) {
                        each(state, Step::Event(&ev))?;
                    }
                }
                Item::Fact(f) => each(state, Step::Fact(*f))?,
                Item::Losses(total) => each(state, Step::Losses(total))?,
            }
        }
        buf = reclaim(data);
    }
    progress(done.before + done.size);
    Ok(out)
}

/// A segment's records in stream order, as the pipeline takes them.
enum Item {
    /// Where a kernel record's bytes are in the segment (decoded when its
    /// turn comes: a segment's events are not all kept at once).
    Kernel(std::ops::Range<usize>),
    /// A tick or a holder answer (enrichment is indexed instead).
    Fact(Box<Fact>),
    /// Cumulative kernel-side losses.
    Losses(u64),
}

/// The kernel record at `range` of a segment decoded, counted as replayed
/// or as bad.
fn decoded(
    data: &bytes::Bytes,
    range: std::ops::Range<usize>,
    out: &mut Replayed,
) -> Option<crate::model::Event> {
    match decode_in(data, range) {
        Ok(ev) => {
            out.kernel_records += 1;
            Some(ev)
        }
        Err(_) => {
            out.bad_records += 1;
            None
        }
    }
}

/// Read one segment in one pass (every record's checksum checked once):
/// its enrichment indexed into `facts`, the records the pipeline takes in
/// stream order, what was damaged into `out`. `buf`: memory to load it
/// into ([`reclaim`] it after).
fn read_segment(
    p: &Path,
    buf: Vec<u8>,
    facts: &mut ReplayFacts,
    out: &mut Replayed,
) -> io::Result<(bytes::Bytes, Vec<Item>)> {
    let bad = |e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", p.display()));
    let data = load_into(p, buf).map_err(bad)?;
    let mut r = Reader::new(data.clone()).map_err(bad)?;
    out.segments += 1;
    let mut items = Vec::new();
    while let Some((kind, range)) = r.next_in_place() {
        let payload = &data[range.clone()];
        match kind {
            RecordKind::Kernel => items.push(Item::Kernel(range)),
            RecordKind::Fact => match Fact::from_json(payload) {
                Ok(Fact::Enrichment { ts_ns, tid, en }) => facts.add(ts_ns, tid, *en),
                Ok(f) => items.push(Item::Fact(Box::new(f))),
                Err(_) => out.bad_records += 1,
            },
            RecordKind::Loss => {
                let v: Value = serde_json::from_slice(payload).unwrap_or_default();
                match v["lost_total"].as_u64() {
                    Some(total) => items.push(Item::Losses(total)),
                    None => out.bad_records += 1,
                }
            }
            // The incidents are found again by the pipeline.
            RecordKind::Segment | RecordKind::Incident | RecordKind::Unwritten => {}
        }
    }
    if let Some(end) = r.end().filter(|e| **e != End::Clean) {
        out.damaged.push((p.to_owned(), end.clone()));
    }
    Ok((data, items))
}

/// The recording's first segment header (JSON), if it can be read.
pub fn first_header(paths: &[PathBuf]) -> Option<Value> {
    let rec = first_record(paths.first()?).ok()??;
    (rec.kind == RecordKind::Segment)
        .then(|| serde_json::from_slice(&rec.payload).ok())
        .flatten()
}

/// The wall clock a segment header gives (what the live run's sinks used).
pub fn header_clock(header: &Value) -> Option<BootClock> {
    let off: i128 = header["clock"]["boot_to_wall_ns"].as_str()?.parse().ok()?;
    Some(BootClock::with_offset(off))
}

/// Replay `paths` into `pipeline` (set up like live mode's) and `sink`;
/// `progress` is told the bytes of the recording's files done (of
/// [`stored_bytes`]).
pub fn replay(
    paths: &[PathBuf],
    window: Window,
    pipeline: &mut Pipeline,
    sink: &mut dyn Sink,
    progress: impl FnMut(u64),
) -> io::Result<Replayed> {
    pipeline.replaying(ReplayFacts::default());
    let out = walk(
        paths,
        pipeline,
        pipeline_facts,
        progress,
        |pipeline, step| {
            match step {
                Step::Event(ev) if window.contains(ev.ts_ns) => pipeline.event(ev, sink)?,
                Step::Event(_) => {}
                Step::Fact(f) => pipeline.apply_fact(f, sink)?,
                Step::Losses(total) => pipeline.losses(total),
            }
            Ok(())
        },
    )?;
    pipeline.finish(sink)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::Enrichment;
    use crate::model::{Args, Dir, Event, Str};
    use bytes::Bytes;
    use tracer_common::event::{DIR_FROM_FD, DIR_RESOLVED};

    fn deletion(dir: &'static [u8], rel_off: u32, name: &'static [u8]) -> Event {
        Event {
            kind: crate::EventKind::Unlinkat,
            args: Args::Delete {
                dfd: 3,
                pathname: Str::new(Bytes::from_static(name)),
                flags: 0,
                dir: Dir {
                    mnt_id: 70,
                    flags: DIR_RESOLVED | DIR_FROM_FD,
                    path: Str::new(Bytes::from_static(dir)),
                    rel_off,
                    ..Default::default()
                },
                capture: 0,
                origin_mnt_id: 0,
                victim: None,
            },
            ts_ns: 1,
            duration_ns: 1,
            ret: 0,
            pid: 7,
            tid: 7,
            ppid: 1,
            uid: 0,
            gid: 0,
            mnt_ns: 1,
            cgroup_id: 1,
            comm: Bytes::from_static(b"rm"),
        }
    }

    fn selects(paths: &[&'static [u8]], ev: &Event, en: &Enrichment) -> (bool, Option<Bytes>) {
        let q = Query {
            paths: paths.iter().map(|p| Bytes::from_static(p)).collect(),
            ..Default::default()
        };
        q.select(ev, en)
    }

    #[test]
    fn a_path_selects_deletions_seen_or_living_at_or_below_it() {
        // Through a clone mounted at /run/c of the layer /srv/layer.
        let en = Enrichment {
            backing_root: Some(Bytes::from_static(b"/srv/layer")),
            ..Default::default()
        };
        let ev = deletion(b"/run/c/etc", 6, b"passwd");
        let backing = Some(Bytes::from_static(b"/srv/layer/etc/passwd"));
        // As seen, as it really lived, exactly the entry, or its directory.
        for p in [
            &b"/run/c"[..],
            b"/run/c/etc/passwd",
            b"/srv/layer",
            b"/srv/layer/etc",
        ] {
            assert_eq!(selects(&[p], &ev, &en), (true, backing.clone()), "{p:?}");
        }
        for p in [
            &b"/run/c/etc/pass"[..],
            b"/srv/lay",
            b"/srv/layer/usr",
            b"/run/c/etc/passwd/x",
        ] {
            assert!(!selects(&[p], &ev, &en).0, "{p:?}");
        }
        // Any of several paths; no path: everything.
        assert!(selects(&[b"/nowhere", b"/srv"], &ev, &en).0);
        assert_eq!(selects(&[], &ev, &en), (true, backing));
        // A name with components below the directory; an absolute name.
        let ev = deletion(b"/srv", 0, b"tree/x/y");
        assert!(selects(&[b"/srv/tree/x"], &ev, &Enrichment::default()).0);
        assert!(!selects(&[b"/srv/tree/z"], &ev, &Enrichment::default()).0);
        let ev = deletion(b"/home/u", 0, b"/srv/tree/x");
        assert!(selects(&[b"/srv/tree"], &ev, &Enrichment::default()).0);
        assert!(!selects(&[b"/home/u"], &ev, &Enrichment::default()).0);
    }
}
