//! Run totals shown at exit (and in `watch` summaries).

use std::path::PathBuf;

use tracer_common::{kind::KIND_SLOTS, uapi::EBUSY, EventKind};

use crate::drops::Drops;
use crate::model::Event;

#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Events received, by kind id.
    pub events: [u64; KIND_SLOTS],
    /// Failed calls, by kind id.
    pub failed: [u64; KIND_SLOTS],
    pub drops: Drops,
    pub decode_errors: u64,
    /// The last decode error, when there were any.
    pub last_decode_error: Option<String>,
    /// Unmounts that failed with EBUSY.
    pub ebusy_unmounts: u64,
    /// Incidents by severity (`Severity as usize`: warning, critical).
    pub incidents: [u64; 2],
    /// Guard actions, by `GuardAction as usize` (reported, stopped, killed).
    pub guard: [u64; crate::model::GUARD_ACTIONS],
    /// Records the output file (`-o FILE`) could not take, when any.
    pub unwritten: Option<Unwritten>,
}

/// Records that could not be written to the output file (a full disk, a
/// quota, an I/O error): each was dropped whole, and writing went on with
/// the next one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Unwritten {
    pub file: PathBuf,
    pub events: u64,
    pub incidents: u64,
    /// Loss reports (`loss` records).
    pub losses: u64,
    /// The final summary itself (seen only by the sink that writes it).
    pub summary: u64,
    /// The operating system's message for the first failure.
    pub error: String,
}

impl Unwritten {
    /// Events, incidents and loss reports not written (the summary aside).
    pub fn records(&self) -> u64 {
        self.events + self.incidents + self.losses
    }
}

impl Stats {
    pub fn record(&mut self, ev: &Event) {
        self.events[ev.kind as usize] += 1;
        if ev.failed() {
            self.failed[ev.kind as usize] += 1;
        }
        if ev.kind == EventKind::Umount && ev.errno() == Some(EBUSY) {
            self.ebusy_unmounts += 1;
        }
        if let crate::model::Args::Guard(g) = &ev.args {
            self.guard[g.action as usize] += 1;
        }
    }
    /// A record that could not be decoded.
    pub fn decode_error(&mut self, e: &crate::decode::DecodeError) {
        self.decode_errors += 1;
        self.last_decode_error = Some(e.to_string());
    }
    pub fn total_incidents(&self) -> u64 {
        self.incidents.iter().sum()
    }
    pub fn total_events(&self) -> u64 {
        self.events.iter().sum()
    }
    /// (kind, events, failed) for kinds seen.
    pub fn by_kind(&self) -> impl Iterator<Item = (EventKind, u64, u64)> + '_ {
        EventKind::ALL
            .into_iter()
            .map(|k| (k, self.events[k as usize], self.failed[k as usize]))
            .filter(|&(_, n, _)| n > 0)
    }
}
