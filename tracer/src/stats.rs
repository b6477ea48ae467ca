//! Run totals shown at exit (and in `watch` summaries).

use tracer_common::{kind::KIND_SLOTS, uapi::EBUSY, EventKind};

use crate::loader::Drops;
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
