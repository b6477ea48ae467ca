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

use crate::decode::decode;
use crate::enrich::clock::BootClock;
use crate::enrich::facts::{Fact, ReplayFacts};
use crate::pipeline::Pipeline;
use crate::recording::format::{load_into, reclaim, End, Reader, RecordKind, RECORD_HEADER_LEN};
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

/// Where a deletion's entry is, as seen and as it really lived (when the
/// recorded enrichment knew the backing root of its mount).
pub fn deletion_paths(
    ev: &crate::model::Event,
    en: &crate::enrich::Enrichment,
) -> Option<(bytes::Bytes, Option<bytes::Bytes>)> {
    use crate::path::{join, resolve_arg};
    let crate::model::Args::Delete { pathname, dir, .. } = &ev.args else {
        return None;
    };
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
    /// path of a deletion, when known.
    pub fn select(
        &self,
        ev: &crate::model::Event,
        en: &crate::enrich::Enrichment,
    ) -> (bool, Option<bytes::Bytes>) {
        use crate::path::is_under;
        let paths = deletion_paths(ev, en);
        let backing = paths.as_ref().and_then(|(_, b)| b.clone());
        let dir_mnt = match &ev.args {
            crate::model::Args::Delete { dir, .. } => Some(dir.mnt_id),
            crate::model::Args::Mount { cwd, .. } | crate::model::Args::Umount { cwd, .. } => {
                Some(cwd.mnt_id)
            }
            crate::model::Args::OpenTree { dir, .. }
            | crate::model::Args::MountSetattr { dir, .. } => Some(dir.mnt_id),
            crate::model::Args::MoveMount { from, .. } => Some(from.mnt_id),
            _ => None,
        };
        let ok = self.window.contains(ev.ts_ns)
            && (self.pids.is_empty() || self.pids.contains(&ev.pid))
            && (self.comms.is_empty() || self.comms.iter().any(|c| c == &ev.comm))
            && (self.kinds.is_empty() || self.kinds.contains(&ev.kind))
            && self.ok.is_none_or(|want| want == (ev.ret >= 0))
            && (self.mnt_ids.is_empty() || dir_mnt.is_some_and(|m| self.mnt_ids.contains(&m)))
            && (self.paths.is_empty()
                || paths.as_ref().is_some_and(|(seen, backing)| {
                    self.paths.iter().any(|p| {
                        is_under(seen, p) || backing.as_ref().is_some_and(|b| is_under(b, p))
                    })
                }));
        (ok, backing)
    }
}

/// Go through a recording's events with the enrichment live mode had, and
/// hand those `q` selects to `each` (with their backing path).
pub fn query(
    paths: &[PathBuf],
    q: &Query,
    mut each: impl FnMut(&crate::model::Event, Option<&bytes::Bytes>) -> io::Result<()>,
) -> io::Result<Replayed> {
    let mut out = Replayed::default();
    let mut facts = ReplayFacts::default();
    let mut buf = Vec::new();
    for p in paths {
        let (data, items) = read_segment(p, buf, &mut facts, &mut out)?;
        for item in items {
            let Item::Kernel(rec) = item else { continue };
            let Some(ev) = decoded(data.slice(rec), &mut out) else {
                continue;
            };
            let en = facts.enrich(&ev);
            let (selected, backing) = q.select(&ev, &en);
            if selected {
                each(&ev, backing.as_ref())?;
            }
        }
        buf = reclaim(data);
    }
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

/// A kernel record decoded, counted as replayed or as bad.
fn decoded(rec: bytes::Bytes, out: &mut Replayed) -> Option<crate::model::Event> {
    match decode(rec) {
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
    for rec in r.by_ref() {
        match rec.kind {
            RecordKind::Kernel => {
                let start = rec.offset as usize + RECORD_HEADER_LEN;
                items.push(Item::Kernel(start..start + rec.payload.len()));
            }
            RecordKind::Fact => match Fact::from_json(&rec.payload) {
                Ok(Fact::Enrichment { ts_ns, tid, en }) => facts.add(ts_ns, tid, *en),
                Ok(f) => items.push(Item::Fact(Box::new(f))),
                Err(_) => out.bad_records += 1,
            },
            RecordKind::Loss => {
                let v: Value = serde_json::from_slice(&rec.payload).unwrap_or_default();
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
    let rec = Reader::open(paths.first()?).ok()?.next()?;
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
/// `progress` is told the number of segments done.
pub fn replay(
    paths: &[PathBuf],
    window: Window,
    pipeline: &mut Pipeline,
    sink: &mut dyn Sink,
    mut progress: impl FnMut(usize),
) -> io::Result<Replayed> {
    let mut out = Replayed::default();
    pipeline.replaying(ReplayFacts::default());
    let mut buf = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        // The enrichment a chunk of events used is recorded in the same
        // segment as the chunk (a segment only rotates between chunks), so
        // it is indexed segment by segment.
        let facts = pipeline.replay_facts().expect("replaying");
        let (data, items) = read_segment(p, buf, facts, &mut out)?;
        for item in items {
            match item {
                Item::Kernel(rec) => match decoded(data.slice(rec), &mut out) {
                    Some(ev) if window.contains(ev.ts_ns) => pipeline.event(&ev, sink)?,
                    _ => {}
                },
                Item::Fact(f) => pipeline.apply_fact(*f, sink)?,
                Item::Losses(total) => pipeline.losses(total),
            }
        }
        buf = reclaim(data);
        progress(i + 1);
    }
    pipeline.finish(sink)?;
    Ok(out)
}
