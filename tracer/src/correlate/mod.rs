//! Correlation: a pure, deterministic state machine over enriched events
//! that turns "an unmount failed with EBUSY, then deletions went through that
//! same mount" into incidents. No I/O, no clock: time comes from the events
//! and from [`Correlator::tick`], so live mode and replays give the same
//! incidents.

pub mod busy_unmount;
pub mod crossing;
pub mod incident;
pub mod roots;

pub use incident::*;

use crate::enrich::holders::HolderScan;
use crate::enrich::Enrichment;
use crate::model::Event;
use roots::Roots;

#[derive(Clone, Debug)]
pub struct CorrelatorConfig {
    /// Snapshot and volume roots: deletions under them make an incident
    /// critical.
    pub roots: Roots,
    /// Deletions this long after the EBUSY still count.
    pub busy_window_ns: u64,
    /// An incident closes after this long without a new deletion; a burst of
    /// deletions by one thread ends after this long without one.
    pub quiet_ns: u64,
    /// Deletions kept per incident (all are counted).
    pub max_deletions: usize,
}

impl Default for CorrelatorConfig {
    fn default() -> Self {
        crate::config::RunConfig::default().correlator()
    }
}

/// Both incident rules over one event stream. A deletion that went through a
/// mount whose unmount failed belongs to that incident only: a crossing
/// through the same mount is not reported a second time.
pub struct Correlator {
    cfg: CorrelatorConfig,
    busy: busy_unmount::BusyUnmounts,
    crossing: crossing::Crossings,
    next_id: u64,
    lost_total: u64,
}

impl Correlator {
    pub fn new(cfg: CorrelatorConfig) -> Correlator {
        Correlator {
            busy: busy_unmount::BusyUnmounts::new(cfg.clone()),
            crossing: crossing::Crossings::new(cfg.clone()),
            cfg,
            next_id: 1,
            lost_total: 0,
        }
    }

    /// Feed one event; returns the incidents it closed.
    pub fn event(&mut self, ev: &Event, en: &Enrichment) -> Vec<Incident> {
        let (claimed, mut closed) = self.busy.event(ev, en, &mut self.next_id);
        closed.extend(self.crossing.event(ev, en, claimed, &mut self.next_id));
        self.graded(closed)
    }

    /// The holder scan `id` answered (it ran off the event path).
    pub fn holders(&mut self, id: crate::enrich::holders::ScanId, scan: &HolderScan) {
        self.busy.holders(id, scan);
    }

    /// Kernel-side losses so far (cumulative): what was lost since the last
    /// call is charged to every incident open now (its list may be missing
    /// deletions).
    pub fn losses(&mut self, total: u64) {
        let delta = total.saturating_sub(self.lost_total);
        self.lost_total = self.lost_total.max(total);
        if delta > 0 {
            self.busy.losses(delta);
            self.crossing.losses(delta);
        }
    }

    /// Nothing open: a tick would change nothing.
    pub fn is_idle(&self) -> bool {
        self.busy.is_empty() && self.crossing.is_empty()
    }

    /// Time passes (boot-time ns, never read here): the incidents it
    /// closed, and whether it changed anything (closed an incident, forgot
    /// a busy mount or a burst). A tick that changed nothing need not be
    /// recorded: a replay without it ends in the same state.
    pub fn tick(&mut self, now_ns: u64) -> (Vec<Incident>, bool) {
        let before = (self.busy.len(), self.crossing.len());
        let mut closed = self.busy.tick(now_ns);
        closed.extend(self.crossing.tick(now_ns, &mut self.next_id));
        let changed = !closed.is_empty() || before != (self.busy.len(), self.crossing.len());
        (self.graded(closed), changed)
    }

    /// End of the stream: close everything still open.
    pub fn finish(&mut self) -> Vec<Incident> {
        let mut closed = self.busy.finish();
        closed.extend(self.crossing.finish(&mut self.next_id));
        let mut v = self.graded(closed);
        v.sort_by_key(|i| i.id);
        v
    }

    fn graded(&self, v: Vec<Incident>) -> Vec<Incident> {
        v.into_iter().map(|i| grade(&self.cfg.roots, i)).collect()
    }
}

/// Severity, as an incident closes. Critical: a backing path under a
/// snapshot or volume root; or, for a crossing, entries of a bind of a
/// directory outside the tree the walk was removing. Warning otherwise (for a
/// crossing: a filesystem of its own mounted inside the tree).
fn grade(roots: &Roots, mut inc: Incident) -> Incident {
    // Where the entries really lived first, then where they were seen (a
    // kubelet volume-subpath bind is itself under a volume root).
    let label = inc
        .deletions
        .iter()
        .find_map(|d| d.backing_path.as_ref().and_then(|b| roots.classify(b)))
        .or_else(|| inc.deletions.iter().find_map(|d| roots.classify(&d.path)))
        .or_else(|| {
            inc.mount
                .backing_root
                .as_ref()
                .and_then(|r| roots.classify(r))
        })
        // Nothing deleted (the guard acted first): where it was walking.
        .or_else(|| {
            (inc.count == 0)
                .then(|| roots.classify(&inc.mount.mountpoint))
                .flatten()
        })
        .map(str::to_owned);
    // `--guard-crossings` acts only on a bind whose root the kernel found
    // outside the walk's tree.
    let guarded_crossing = inc
        .prevented
        .iter()
        .any(|p| p.trigger == tracer_common::event::GUARD_AT_CROSSING);
    let outside_tree = match &inc.cause {
        Cause::Crossing(_) if guarded_crossing => true,
        Cause::Crossing(w) => match (&w.root, &inc.mount.backing_root) {
            (Some(root), Some(backing)) if inc.mount.subtree || inc.mount.idmapped => {
                !crate::path::is_under(backing, root)
            }
            // A bind whose source is unknown: it may live anywhere.
            (_, None) => inc.mount.subtree || inc.mount.idmapped,
            _ => false,
        },
        Cause::BusyUnmount(_) => false,
    };
    inc.severity = if label.is_some() || outside_tree {
        Severity::Critical
    } else {
        Severity::Warning
    };
    inc.root_label = label.or_else(|| {
        outside_tree.then(|| "bind of a directory outside the deleted tree".to_owned())
    });
    inc
}
