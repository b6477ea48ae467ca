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
use crate::recording::format::{End, Reader, RecordKind};
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
    /// Incidents the live run recorded as they closed.
    pub recorded_incidents: Vec<Value>,
    /// How segments that did not end cleanly ended: (path, end).
    pub damaged: Vec<(PathBuf, End)>,
    /// The wall clock of the recording (from its first segment header).
    pub clock: Option<BootClock>,
}

/// The wall clock a segment header gives.
pub fn header_clock(payload: &[u8]) -> Option<BootClock> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let off: i128 = v["clock"]["boot_to_wall_ns"].as_str()?.parse().ok()?;
    Some(BootClock::with_offset(off))
}

/// Read the recording's first segment header for its clock.
pub fn recording_clock(paths: &[PathBuf]) -> Option<BootClock> {
    let first = paths.first()?;
    let mut r = Reader::open(first).ok()?;
    let rec = r.next()?;
    (rec.kind == RecordKind::Segment)
        .then(|| header_clock(&rec.payload))
        .flatten()
}

/// Replay `paths` into `pipeline` (set up like live mode's) and `sink`;
/// `progress` is told the bytes of each segment done.
pub fn replay(
    paths: &[PathBuf],
    window: Window,
    pipeline: &mut Pipeline,
    sink: &mut dyn Sink,
    mut progress: impl FnMut(usize),
) -> io::Result<Replayed> {
    let mut out = Replayed {
        clock: recording_clock(paths),
        ..Default::default()
    };
    let mut facts = ReplayFacts::default();
    for p in paths {
        let Ok(r) = Reader::open(p) else { continue };
        for rec in r.filter(|r| r.kind == RecordKind::Fact) {
            if let Ok(Fact::Enrichment { ts_ns, tid, en }) = Fact::from_json(&rec.payload) {
                facts.add(ts_ns, tid, *en);
            }
        }
    }
    pipeline.replaying(facts);
    for (i, p) in paths.iter().enumerate() {
        let mut r = Reader::open(p).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", p.display()))
        })?;
        out.segments += 1;
        for rec in r.by_ref() {
            match rec.kind {
                RecordKind::Kernel => match decode(rec.payload) {
                    Ok(ev) => {
                        out.kernel_records += 1;
                        if window.contains(ev.ts_ns) {
                            pipeline.event(&ev, sink)?;
                        }
                    }
                    Err(_) => out.bad_records += 1,
                },
                RecordKind::Fact => match Fact::from_json(&rec.payload) {
                    Ok(f) => pipeline.apply_fact(f, sink)?,
                    Err(_) => out.bad_records += 1,
                },
                RecordKind::Loss => {
                    let v: Value = serde_json::from_slice(&rec.payload).unwrap_or_default();
                    if let Some(total) = v["lost_total"].as_u64() {
                        pipeline.losses(total);
                    }
                }
                RecordKind::Incident => {
                    if let Ok(v) = serde_json::from_slice(&rec.payload) {
                        out.recorded_incidents.push(v);
                    }
                }
                RecordKind::Segment | RecordKind::Unwritten => {}
            }
        }
        if let Some(end) = r.end() {
            if *end != End::Clean {
                out.damaged.push((p.clone(), end.clone()));
            }
        }
        progress(i + 1);
    }
    pipeline.finish(sink)?;
    Ok(out)
}
