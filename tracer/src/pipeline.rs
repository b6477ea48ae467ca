//! Everything after the reader: enrich → correlate → sinks, plus totals.
//! The same code runs live and over recordings: live, enrichment reads the
//! system and what the correlator was given besides the kernel records is
//! noted as facts for the recorder ([`Pipeline::record_facts`]); in a
//! replay, those facts stand in for the system ([`Pipeline::replaying`]).

use std::io;

use tracer_common::event::CAP_ALL;

use crate::config::Display;
use crate::correlate::{Correlator, CorrelatorConfig, Incident};
use crate::enrich::facts::{Fact, FactLog, ReplayFacts};
use crate::enrich::Enricher;
use crate::model::Args;
use crate::model::Event;
use crate::path::{is_under, resolve_arg};
use crate::sink::Sink;
use crate::stats::Stats;
use crate::EventKind;
use tracer_common::uapi::EBUSY;

/// Busy mounts waiting to be told to the kernel at most (they are taken
/// after every chunk of events).
const BUSY_MOUNTS_MAX: usize = 4096;

pub struct Pipeline {
    pub enricher: Enricher,
    pub correlator: Correlator,
    pub stats: Stats,
    pub display: Display,
    /// Ids of the mounts found busy since the last
    /// [`Pipeline::take_busy_mounts`]: the kernel is told, so other
    /// processes' deletions through them are captured too.
    busy_mounts: Vec<u32>,
    /// Kernel-side losses seen so far (cumulative).
    lost_seen: u64,
    /// Live, recording: the facts a replay will need.
    log: Option<FactLog>,
    /// Replaying: the recorded facts instead of the system.
    replay: Option<ReplayFacts>,
}

impl Pipeline {
    pub fn new(cfg: CorrelatorConfig, display: Display) -> Pipeline {
        Pipeline {
            enricher: Enricher::new(),
            correlator: Correlator::new(cfg),
            stats: Stats::default(),
            display,
            busy_mounts: Vec::new(),
            lost_seen: 0,
            log: None,
            replay: None,
        }
    }

    /// Note the facts a replay will need ([`Pipeline::take_facts`]).
    pub fn record_facts(&mut self) {
        self.log = Some(FactLog::default());
    }

    /// Facts noted since the last call, in the order they were applied.
    pub fn take_facts(&mut self) -> Vec<Fact> {
        self.log.as_mut().map(FactLog::take).unwrap_or_default()
    }

    /// Replay a recording: `facts` (its indexed enrichment) stands in for
    /// the system; ticks and holder answers come with
    /// [`Pipeline::apply_fact`] in stream order.
    pub fn replaying(&mut self, facts: ReplayFacts) {
        self.replay = Some(facts);
    }

    /// The recorded enrichment a replay uses (to index more of it).
    pub fn replay_facts(&mut self) -> Option<&mut ReplayFacts> {
        self.replay.as_mut()
    }

    /// A recorded tick or holder answer, in stream order.
    pub fn apply_fact(&mut self, fact: Fact, sink: &mut dyn Sink) -> io::Result<()> {
        match fact {
            Fact::Tick { now_ns } => self.tick(now_ns, sink),
            Fact::Holders { id, scan } => {
                self.correlator.holders(id, &scan);
                Ok(())
            }
            Fact::Enrichment { .. } => Ok(()),
        }
    }

    /// Whether `ev` is shown (events are always correlated; guard actions
    /// always shown).
    fn shown(&self, ev: &Event) -> bool {
        if let Args::Guard(_) = ev.args {
            return true; // what the guard did is always said
        }
        if !self.display.show_events {
            return false;
        }
        let capture = match &ev.args {
            Args::Delete { capture, .. } | Args::Rename { capture, .. } => capture,
            _ => return true,
        };
        let Some((pathname, dir)) = ev.args.taken_entry() else {
            return true;
        };
        let paths = &self.display.delete_paths;
        if paths.is_empty() || capture & !CAP_ALL != 0 {
            return true;
        }
        let Some(name) = pathname.value() else {
            return false;
        };
        let path = resolve_arg(&dir.path.bytes, name);
        paths.iter().any(|p| is_under(&path, p))
    }

    pub fn event(&mut self, ev: &Event, sink: &mut dyn Sink) -> io::Result<()> {
        self.stats.record(ev);
        let en = match self.replay.as_mut() {
            Some(r) => r.enrich(ev),
            None => {
                let en = self.enricher.enrich(ev);
                if let Some(log) = self.log.as_mut() {
                    log.observe(ev, &en);
                }
                en
            }
        };
        if let (EventKind::Umount, Some(m)) = (ev.kind, &en.mount) {
            if ev.errno() == Some(EBUSY) && self.busy_mounts.len() < BUSY_MOUNTS_MAX {
                self.busy_mounts.push(m.mnt_id);
            }
        }
        if self.shown(ev) {
            sink.event(ev)?;
        }
        let closed = self.correlator.event(ev, &en);
        self.emit(closed, sink)
    }

    /// Current boot time, for closing quiet incidents.
    pub fn tick(&mut self, now_boot_ns: u64, sink: &mut dyn Sink) -> io::Result<()> {
        if self.correlator.is_idle() {
            return Ok(()); // nothing to close or forget
        }
        let (closed, changed) = self.correlator.tick(now_boot_ns);
        if let Some(log) = self.log.as_mut().filter(|_| changed) {
            log.tick(now_boot_ns);
        }
        self.emit(closed, sink)
    }

    /// Cumulative kernel-side losses.
    pub fn losses(&mut self, total: u64) {
        if total > self.lost_seen {
            // A lost event may have moved mounts: the mount tables are
            // asked about every mount again at their next refresh.
            self.lost_seen = total;
            self.enricher.table.forget_all_refreshed();
        }
        self.correlator.losses(total);
    }

    /// Mounts found busy since the last call.
    pub fn take_busy_mounts(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.busy_mounts)
    }

    /// Join the holder scans that have answered to their busy mounts.
    pub fn holders_ready(&mut self) {
        for (id, scan) in self.enricher.scanner.ready() {
            self.holders(id, scan);
        }
    }

    fn holders(
        &mut self,
        id: crate::enrich::holders::ScanId,
        scan: crate::enrich::holders::HolderScan,
    ) {
        if let Some(log) = self.log.as_mut() {
            log.holders(id, &scan);
        }
        self.correlator.holders(id, &scan);
    }

    /// End of the stream: wait for the holder scans still running (each is
    /// bounded by its budget), then close every open incident.
    pub fn finish(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        self.holders_ready();
        for (id, scan) in self.enricher.scanner.wait_all() {
            self.holders(id, scan);
        }
        let closed = self.correlator.finish();
        self.emit(closed, sink)
    }

    fn emit(&mut self, closed: Vec<Incident>, sink: &mut dyn Sink) -> io::Result<()> {
        for inc in closed {
            self.stats.incidents[inc.severity as usize] += 1;
            sink.incident(&inc)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Dir, Str};
    use bytes::Bytes;
    use tracer_common::event::{CAP_BUSY, DIR_FROM_FD, DIR_RESOLVED};
    use tracer_common::EventKind;

    fn del(dir: &str, name: &str, capture: u32) -> Event {
        Event {
            kind: EventKind::Unlinkat,
            ts_ns: 1,
            duration_ns: 1,
            ret: 0,
            pid: 1,
            tid: 1,
            ppid: 0,
            uid: 0,
            gid: 0,
            mnt_ns: 1,
            cgroup_id: 1,
            comm: Bytes::from_static(b"rm"),
            args: Args::Delete {
                dfd: 3,
                pathname: Str::new(Bytes::copy_from_slice(name.as_bytes())),
                flags: 0,
                dir: Dir {
                    flags: DIR_RESOLVED | DIR_FROM_FD,
                    path: Str::new(Bytes::copy_from_slice(dir.as_bytes())),
                    ..Default::default()
                },
                capture,
                origin_mnt_id: 0,
                victim: None,
            },
        }
    }

    #[test]
    fn paths_of_interest_select_plain_deletions_only() {
        let mut p = Pipeline::new(
            CorrelatorConfig::default(),
            Display {
                show_events: true,
                ..Default::default()
            },
        );
        assert!(
            p.shown(&del("/srv/other", "f", CAP_ALL)),
            "no paths: everything"
        );
        p.display.delete_paths = vec![Bytes::from_static(b"/var/lib/containerd")];
        assert!(p.shown(&del("/var/lib/containerd/x", "f", CAP_ALL)));
        assert!(
            p.shown(&del("/var/lib", "containerd", CAP_ALL)),
            "the path itself"
        );
        assert!(
            !p.shown(&del("/var/lib/containerd-old", "f", CAP_ALL)),
            "component-wise"
        );
        assert!(!p.shown(&del("/srv/other", "f", CAP_ALL)));
        assert!(
            p.shown(&del("/srv/other", "f", CAP_ALL | CAP_BUSY)),
            "race reasons always"
        );
        assert!(
            p.shown(&del("/srv", "/var/lib/containerd/abs", CAP_ALL)),
            "absolute pathname"
        );
    }
}
