//! Everything after the reader: enrich → correlate → sinks, plus totals.
//! The same code runs live and (later) over recordings.

use std::io;

use crate::correlate::{Correlator, CorrelatorConfig, Incident};
use crate::enrich::Enricher;
use crate::model::Event;
use crate::sink::Sink;
use crate::stats::Stats;

pub struct Pipeline {
    pub enricher: Enricher,
    pub correlator: Correlator,
    pub stats: Stats,
    /// Incidents closed so far.
    pub incidents: Vec<Incident>,
    /// Send every event to the sink (off in `watch`, which shows incidents).
    pub show_events: bool,
}

impl Pipeline {
    pub fn new(cfg: CorrelatorConfig, show_events: bool) -> Pipeline {
        Pipeline {
            enricher: Enricher::new(),
            correlator: Correlator::new(cfg),
            stats: Stats::default(),
            incidents: Vec::new(),
            show_events,
        }
    }

    pub fn event(&mut self, ev: &Event, sink: &mut dyn Sink) -> io::Result<()> {
        self.stats.record(ev);
        let en = self.enricher.enrich(ev);
        if self.show_events {
            sink.event(ev)?;
        }
        let closed = self.correlator.event(ev, &en);
        self.emit(closed, sink)
    }

    /// Current boot time, for closing quiet incidents.
    pub fn tick(&mut self, now_boot_ns: u64, sink: &mut dyn Sink) -> io::Result<()> {
        let closed = self.correlator.tick(now_boot_ns);
        self.emit(closed, sink)
    }

    /// Cumulative kernel-side losses.
    pub fn losses(&mut self, total: u64) {
        self.correlator.losses(total);
    }

    pub fn finish(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        let closed = self.correlator.finish();
        self.emit(closed, sink)
    }

    fn emit(&mut self, closed: Vec<Incident>, sink: &mut dyn Sink) -> io::Result<()> {
        for inc in closed {
            self.stats.incidents[inc.severity as usize] += 1;
            sink.incident(&inc)?;
            self.incidents.push(inc);
        }
        Ok(())
    }
}
