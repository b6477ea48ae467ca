//! The metrics sink (`--metrics`): the run's counters in the Prometheus text
//! format, for node scraping. Names, labels and meanings are in the README
//! (Metrics).
//!
//! [`Metrics`] is the registry plus a handle on every counter; it is cheap
//! to clone (each counter is an atomic behind an `Arc`) and is shared with
//! the HTTP server ([`crate::metrics_http`]), which renders it on its own
//! thread at each scrape. Every label combination is created up front, at 0:
//! a scrape shows every series from the start (a rate over a series that
//! appears late misses its first increase), and counting never looks a
//! label up.
//!
//! [`MetricsSink`] updates them from the run: from the totals the live loop
//! hands every sink after each chunk of events ([`Sink::totals`]: every
//! event, shown or not, so `watch` counts exactly as `trace` does, and
//! nothing is done per event), from each incident, from each loss report,
//! and at the end.
//!
//! [`RecorderMetrics`] are the recorder's counters: registered, so exported,
//! only once a recorder asks for them ([`Metrics::recorder`]).

use std::io;
use std::sync::{Arc, OnceLock};

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use tracer_common::counters::{DropReason, DROP_REASONS};
use tracer_common::kind::KIND_SLOTS;
use tracer_common::EventKind;

use crate::correlate::{Cause, Incident, Severity};
use crate::drops::Drops;
use crate::model::{Event, GuardAction, GUARD_ACTIONS};
use crate::sink::Sink;
use crate::stats::Stats;

/// The `Content-Type` of a scrape: the Prometheus text format, version
/// 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `cause` label values, indexed by [`cause_index`].
const CAUSES: [&str; 2] = ["busy_unmount", "crossing"];
/// Severities, indexed by `Severity as usize` (as in [`Stats::incidents`]).
const SEVERITIES: [Severity; 2] = [Severity::Warning, Severity::Critical];
/// `record` label values of records not written to the output file.
const UNWRITTEN: [&str; 3] = ["event", "incident", "loss"];

fn cause_index(inc: &Incident) -> usize {
    match inc.cause {
        Cause::BusyUnmount(_) => 0,
        Cause::Crossing(_) => 1,
    }
}

/// One kind's counters.
#[derive(Clone)]
struct KindCounters {
    kind: EventKind,
    events: IntCounter,
    failed: IntCounter,
    /// By `DropReason as usize`.
    lost: [IntCounter; DROP_REASONS],
}

/// The run's metrics: a registry and a handle on every counter (see the
/// module doc). Clones share the counters.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    kinds: Vec<KindCounters>,
    ebusy_unmounts: IntCounter,
    /// By `GuardAction as usize`.
    guard: [IntCounter; GUARD_ACTIONS],
    /// `[cause][severity]`.
    incidents: [[IntCounter; 2]; 2],
    decode_errors: IntCounter,
    /// By [`UNWRITTEN`].
    unwritten: [IntCounter; 3],
    recorder: Arc<OnceLock<RecorderMetrics>>,
}

/// Register a family. The definitions are fixed: an error is a bug (the
/// unit tests build them all).
fn family(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let family = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(family.clone()))
        .expect("metric registered once");
    family
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let counter = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(counter.clone()))
        .expect("metric registered once");
    counter
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let events = family(
            &registry,
            "mntrace_events_total",
            "Traced calls, by syscall: every event received from the kernel, shown or not.",
            &["syscall"],
        );
        let failed = family(
            &registry,
            "mntrace_events_failed_total",
            "Traced calls that failed (returned an error), by syscall.",
            &["syscall"],
        );
        let lost = family(
            &registry,
            "mntrace_kernel_lost_total",
            "Events the kernel side dropped, by reason (ring_full: the ring buffer had no \
             room; slot_full: no per-thread slot at syscall entry; scratch: no scratch \
             buffer) and probe (the syscall). Updated at each loss report and at exit.",
            &["reason", "probe"],
        );
        let kinds = EventKind::ALL
            .into_iter()
            .map(|kind| KindCounters {
                kind,
                events: events.with_label_values(&[kind.syscall()]),
                failed: failed.with_label_values(&[kind.syscall()]),
                lost: std::array::from_fn(|r| {
                    lost.with_label_values(&[DropReason::ALL[r].name(), kind.syscall()])
                }),
            })
            .collect();
        let ebusy_unmounts = counter(
            &registry,
            "mntrace_ebusy_unmounts_total",
            "Unmounts that failed with EBUSY.",
        );
        let guard = family(
            &registry,
            "mntrace_guard_actions_total",
            "What the guard (--guard) did to processes walking into a mount whose unmount \
             they saw fail with EBUSY, by action (stopped: SIGSTOP; killed: SIGKILL; \
             reported: --guard report, nothing done).",
            &["action"],
        );
        let guard = std::array::from_fn(|a| guard.with_label_values(&[GuardAction::ALL[a].name()]));
        let incidents = family(
            &registry,
            "mntrace_incidents_total",
            "Incidents, counted as they close, by cause (busy_unmount: deletions through a \
             mount whose unmount failed with EBUSY; crossing: a recursive delete that crossed \
             into another mount) and severity (critical: under a snapshot or volume root).",
            &["cause", "severity"],
        );
        let incidents = std::array::from_fn(|c| {
            std::array::from_fn(|s| incidents.with_label_values(&[CAUSES[c], SEVERITIES[s].name()]))
        });
        let decode_errors = counter(
            &registry,
            "mntrace_decode_errors_total",
            "Records from the kernel that failed validation and were skipped.",
        );
        let unwritten = family(
            &registry,
            "mntrace_unwritten_records_total",
            "Records not written to the output file (-o FILE), by record (event, incident, \
             loss): each was dropped whole after a failed write (a full disk, a quota).",
            &["record"],
        );
        let unwritten = std::array::from_fn(|r| unwritten.with_label_values(&[UNWRITTEN[r]]));
        Metrics {
            registry,
            kinds,
            ebusy_unmounts,
            guard,
            incidents,
            decode_errors,
            unwritten,
            recorder: Arc::new(OnceLock::new()),
        }
    }

    /// The recorder's counters, registered on the first call (they are
    /// exported only when something records); later calls share them.
    pub fn recorder(&self) -> RecorderMetrics {
        self.recorder
            .get_or_init(|| {
                let segments = IntGauge::new(
                    "mntrace_recorder_segments",
                    "Segment files the recording consists of now.",
                )
                .expect("valid metric");
                self.registry
                    .register(Box::new(segments.clone()))
                    .expect("metric registered once");
                RecorderMetrics {
                    bytes: counter(
                        &self.registry,
                        "mntrace_recorder_bytes_total",
                        "Bytes written to the recording.",
                    ),
                    segments,
                    write_errors: counter(
                        &self.registry,
                        "mntrace_recorder_write_errors_total",
                        "Writes to the recording that failed.",
                    ),
                }
            })
            .clone()
    }

    /// Every metric in the Prometheus text format (version 0.0.4, see
    /// [`CONTENT_TYPE`]).
    pub fn render(&self) -> io::Result<String> {
        let mut out = String::new();
        TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut out)
            .map_err(io::Error::other)?;
        Ok(out)
    }
}

/// The recorder's counters, for the recorder to update as it writes (see
/// [`Metrics::recorder`]). Clones share them.
#[derive(Clone)]
pub struct RecorderMetrics {
    bytes: IntCounter,
    segments: IntGauge,
    write_errors: IntCounter,
}

impl RecorderMetrics {
    /// `n` bytes were written to the recording.
    pub fn wrote(&self, n: u64) {
        self.bytes.inc_by(n);
    }
    /// The recording now consists of `n` segment files.
    pub fn set_segments(&self, n: u64) {
        self.segments.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    /// A write to the recording failed.
    pub fn write_error(&self) {
        self.write_errors.inc();
    }
}

/// Add to `counter` what `now` (a run total) grew since `seen`.
fn advance(counter: &IntCounter, seen: &mut u64, now: u64) {
    if now > *seen {
        counter.inc_by(now - *seen);
        *seen = now;
    }
}

/// What the counters hold already, from the run's totals.
#[derive(Default)]
struct Seen {
    events: [u64; KIND_SLOTS],
    failed: [u64; KIND_SLOTS],
    ebusy_unmounts: u64,
    guard: [u64; GUARD_ACTIONS],
    decode_errors: u64,
    unwritten: [u64; 3],
    lost: Drops,
}

/// The sink that keeps [`Metrics`] up to date (see the module doc).
pub struct MetricsSink {
    metrics: Metrics,
    seen: Seen,
}

impl MetricsSink {
    pub fn new(metrics: Metrics) -> MetricsSink {
        MetricsSink {
            metrics,
            seen: Seen::default(),
        }
    }

    /// Kernel-side drops so far.
    fn lost(&mut self, total: &Drops) {
        for k in &self.metrics.kinds {
            let i = k.kind as usize;
            for (r, counter) in k.lost.iter().enumerate() {
                advance(counter, &mut self.seen.lost.0[i][r], total.0[i][r]);
            }
        }
    }
}

impl Sink for MetricsSink {
    /// Events are counted from [`Sink::totals`], which covers those not
    /// shown too.
    fn event(&mut self, _: &Event) -> io::Result<()> {
        Ok(())
    }

    fn incident(&mut self, inc: &Incident) -> io::Result<()> {
        self.metrics.incidents[cause_index(inc)][inc.severity as usize].inc();
        Ok(())
    }

    fn losses(&mut self, _delta: &Drops, total: &Drops) -> io::Result<()> {
        self.lost(total);
        Ok(())
    }

    fn finish(&mut self, stats: &Stats) -> io::Result<()> {
        self.totals(stats);
        self.lost(&stats.drops);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn totals(&mut self, stats: &Stats) {
        let seen = &mut self.seen;
        for k in &self.metrics.kinds {
            let i = k.kind as usize;
            advance(&k.events, &mut seen.events[i], stats.events[i]);
            advance(&k.failed, &mut seen.failed[i], stats.failed[i]);
        }
        let m = &self.metrics;
        advance(
            &m.ebusy_unmounts,
            &mut seen.ebusy_unmounts,
            stats.ebusy_unmounts,
        );
        advance(
            &m.decode_errors,
            &mut seen.decode_errors,
            stats.decode_errors,
        );
        for (a, counter) in m.guard.iter().enumerate() {
            advance(counter, &mut seen.guard[a], stats.guard[a]);
        }
        if let Some(u) = &stats.unwritten {
            for (r, now) in [u.events, u.incidents, u.losses].into_iter().enumerate() {
                advance(&m.unwritten[r], &mut seen.unwritten[r], now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::{FailedUnmount, MountFacts, Process, Walk};
    use crate::stats::Unwritten;
    use bytes::Bytes;

    /// The value of the series `name{labels}` (labels as rendered, e.g.
    /// `syscall="umount"`; empty for none).
    fn value(text: &str, name: &str, labels: &str) -> u64 {
        let series = if labels.is_empty() {
            format!("{name} ")
        } else {
            format!("{name}{{{labels}}} ")
        };
        let line = text
            .lines()
            .find(|l| l.starts_with(&series))
            .unwrap_or_else(|| panic!("no series {series:?} in:\n{text}"));
        line[series.len()..].parse().expect("an integer value")
    }

    fn process() -> Process {
        Process {
            pid: 1,
            tid: 1,
            ppid: 0,
            uid: 0,
            comm: Bytes::from_static(b"rm"),
            cgroup_id: 1,
            mnt_ns: 1,
        }
    }

    fn incident(cause: Cause, severity: Severity) -> Incident {
        Incident {
            id: 1,
            severity,
            root_label: None,
            cause,
            mount: MountFacts {
                mnt_id: 65,
                mnt_ns: 1,
                mountpoint: Bytes::from_static(b"/m"),
                root: None,
                backing_root: None,
                fstype: None,
                source: None,
                idmapped: false,
                subtree: false,
            },
            holders: None,
            deleters: Vec::new(),
            deletions: Vec::new(),
            count: 1,
            removed: Default::default(),
            first_delay_ns: 1,
            last_ts_ns: 2,
            lost_while_open: 0,
            prevented: Vec::new(),
        }
    }

    fn busy() -> Cause {
        Cause::BusyUnmount(FailedUnmount {
            ts_ns: 1,
            by: process(),
            target: Bytes::from_static(b"/m"),
            target_abs: Bytes::from_static(b"/m"),
            flags: 0,
        })
    }

    fn crossing() -> Cause {
        Cause::Crossing(Walk {
            by: process(),
            origin_mnt_id: 44,
            root: None,
            root_mnt_id: None,
            start_ts_ns: 1,
            mountpoint_ebusy_ts_ns: None,
        })
    }

    #[test]
    fn every_series_is_there_from_the_start_with_help_and_type() {
        let text = Metrics::new().render().unwrap();
        for (name, kind) in [
            ("mntrace_events_total", "counter"),
            ("mntrace_events_failed_total", "counter"),
            ("mntrace_kernel_lost_total", "counter"),
            ("mntrace_ebusy_unmounts_total", "counter"),
            ("mntrace_guard_actions_total", "counter"),
            ("mntrace_incidents_total", "counter"),
            ("mntrace_decode_errors_total", "counter"),
            ("mntrace_unwritten_records_total", "counter"),
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}:\n{text}");
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name}:\n{text}"
            );
        }
        for k in EventKind::ALL {
            let l = format!("syscall=\"{}\"", k.syscall());
            assert_eq!(value(&text, "mntrace_events_total", &l), 0);
            assert_eq!(value(&text, "mntrace_events_failed_total", &l), 0);
            for r in DropReason::ALL {
                let l = format!("probe=\"{}\",reason=\"{}\"", k.syscall(), r.name());
                assert_eq!(value(&text, "mntrace_kernel_lost_total", &l), 0);
            }
        }
        for c in CAUSES {
            for s in SEVERITIES {
                let l = format!("cause=\"{c}\",severity=\"{}\"", s.name());
                assert_eq!(value(&text, "mntrace_incidents_total", &l), 0);
            }
        }
        for a in GuardAction::ALL {
            let l = format!("action=\"{}\"", a.name());
            assert_eq!(value(&text, "mntrace_guard_actions_total", &l), 0);
        }
        for r in UNWRITTEN {
            let l = format!("record=\"{r}\"");
            assert_eq!(value(&text, "mntrace_unwritten_records_total", &l), 0);
        }
        assert!(
            !text.contains("mntrace_recorder"),
            "the recorder's metrics only when recording:\n{text}"
        );
        assert!(CONTENT_TYPE.starts_with(prometheus::TEXT_FORMAT));
    }

    #[test]
    fn totals_are_counted_once_however_often_they_come() {
        let metrics = Metrics::new();
        let mut sink = MetricsSink::new(metrics.clone());
        let mut stats = Stats::default();
        stats.events[EventKind::Umount as usize] = 3;
        stats.failed[EventKind::Umount as usize] = 2;
        stats.events[EventKind::Unlinkat as usize] = 5;
        stats.ebusy_unmounts = 2;
        stats.events[EventKind::Guard as usize] = 1;
        stats.guard[GuardAction::Stopped as usize] = 1;
        sink.totals(&stats);
        sink.totals(&stats);
        stats.events[EventKind::Guard as usize] = 3;
        stats.guard[GuardAction::Killed as usize] = 2;
        stats.events[EventKind::Unlinkat as usize] = 7;
        stats.failed[EventKind::Unlinkat as usize] = 1;
        stats.decode_errors = 1;
        stats.unwritten = Some(Unwritten {
            events: 4,
            losses: 1,
            ..Default::default()
        });
        sink.totals(&stats);
        let text = metrics.render().unwrap();
        let v = |name, labels| value(&text, name, labels);
        assert_eq!(v("mntrace_events_total", r#"syscall="umount""#), 3);
        assert_eq!(v("mntrace_events_failed_total", r#"syscall="umount""#), 2);
        assert_eq!(v("mntrace_events_total", r#"syscall="unlinkat""#), 7);
        assert_eq!(v("mntrace_events_failed_total", r#"syscall="unlinkat""#), 1);
        assert_eq!(v("mntrace_events_total", r#"syscall="mount""#), 0);
        assert_eq!(v("mntrace_ebusy_unmounts_total", ""), 2);
        assert_eq!(v("mntrace_events_total", r#"syscall="guard""#), 3);
        assert_eq!(v("mntrace_guard_actions_total", r#"action="stopped""#), 1);
        assert_eq!(v("mntrace_guard_actions_total", r#"action="killed""#), 2);
        assert_eq!(v("mntrace_guard_actions_total", r#"action="reported""#), 0);
        assert_eq!(v("mntrace_decode_errors_total", ""), 1);
        assert_eq!(v("mntrace_unwritten_records_total", r#"record="event""#), 4);
        assert_eq!(v("mntrace_unwritten_records_total", r#"record="loss""#), 1);
        assert_eq!(
            v("mntrace_unwritten_records_total", r#"record="incident""#),
            0
        );
        // The end: the same totals again, nothing counted twice.
        sink.finish(&stats).unwrap();
        let text = metrics.render().unwrap();
        assert_eq!(
            value(&text, "mntrace_events_total", r#"syscall="unlinkat""#),
            7
        );
    }

    #[test]
    fn losses_by_reason_and_probe_at_each_report_and_at_exit() {
        let metrics = Metrics::new();
        let mut sink = MetricsSink::new(metrics.clone());
        let mut total = Drops::default();
        total.0[EventKind::Unlinkat as usize][DropReason::RingFull as usize] = 10;
        sink.losses(&total.clone(), &total).unwrap();
        let mut now = total.clone();
        now.0[EventKind::Unlinkat as usize][DropReason::RingFull as usize] = 12;
        now.0[EventKind::Mount as usize][DropReason::SlotFull as usize] = 1;
        sink.losses(&now.since(&total), &now).unwrap();
        let lost = |text: &str, probe: &str, reason: &str| {
            let l = format!("probe=\"{probe}\",reason=\"{reason}\"");
            value(text, "mntrace_kernel_lost_total", &l)
        };
        let text = metrics.render().unwrap();
        assert_eq!(lost(&text, "unlinkat", "ring_full"), 12);
        assert_eq!(lost(&text, "mount", "slot_full"), 1);
        assert_eq!(lost(&text, "mount", "ring_full"), 0);
        // At exit, the final counters (here grown since the last report).
        now.0[EventKind::Rmdir as usize][DropReason::Scratch as usize] = 2;
        let stats = Stats {
            drops: now,
            ..Default::default()
        };
        sink.finish(&stats).unwrap();
        let text = metrics.render().unwrap();
        assert_eq!(lost(&text, "unlinkat", "ring_full"), 12);
        assert_eq!(lost(&text, "rmdir", "scratch"), 2);
    }

    #[test]
    fn incidents_by_cause_and_severity() {
        let metrics = Metrics::new();
        let mut sink = MetricsSink::new(metrics.clone());
        for inc in [
            incident(busy(), Severity::Critical),
            incident(busy(), Severity::Critical),
            incident(busy(), Severity::Warning),
            incident(crossing(), Severity::Warning),
        ] {
            assert_eq!(CAUSES[cause_index(&inc)], inc.kind_name());
            sink.incident(&inc).unwrap();
        }
        let text = metrics.render().unwrap();
        let n = |cause: &str, severity: &str| {
            let l = format!("cause=\"{cause}\",severity=\"{severity}\"");
            value(&text, "mntrace_incidents_total", &l)
        };
        assert_eq!(n("busy_unmount", "critical"), 2);
        assert_eq!(n("busy_unmount", "warning"), 1);
        assert_eq!(n("crossing", "warning"), 1);
        assert_eq!(n("crossing", "critical"), 0);
    }

    #[test]
    fn recorder_metrics_once_asked_for() {
        let metrics = Metrics::new();
        let rec = metrics.recorder();
        rec.wrote(4096);
        rec.wrote(100);
        rec.set_segments(3);
        rec.write_error();
        // A second handle shares the same counters.
        metrics.recorder().wrote(4);
        let text = metrics.render().unwrap();
        assert!(text.contains("# TYPE mntrace_recorder_bytes_total counter\n"));
        assert!(text.contains("# TYPE mntrace_recorder_segments gauge\n"));
        assert!(text.contains("# TYPE mntrace_recorder_write_errors_total counter\n"));
        assert_eq!(value(&text, "mntrace_recorder_bytes_total", ""), 4200);
        assert_eq!(value(&text, "mntrace_recorder_segments", ""), 3);
        assert_eq!(value(&text, "mntrace_recorder_write_errors_total", ""), 1);
    }

    #[test]
    fn a_pipeline_that_shows_no_event_still_counts_them_all() {
        // `watch` without --events: nothing reaches `Sink::event`, every
        // event is counted from the totals.
        use crate::pipeline::Pipeline;
        let metrics = Metrics::new();
        let mut sink = MetricsSink::new(metrics.clone());
        let mut p = Pipeline::new(Default::default(), Default::default());
        let ev = Event {
            kind: EventKind::Umount,
            ts_ns: 1,
            duration_ns: 1,
            ret: -i64::from(tracer_common::uapi::EBUSY),
            pid: 1,
            tid: 1,
            ppid: 0,
            uid: 0,
            gid: 0,
            mnt_ns: 1,
            cgroup_id: 1,
            comm: Bytes::from_static(b"umount"),
            args: crate::model::Args::Umount {
                target: crate::model::Str::new(Bytes::from_static(b"/nonexistent-mntrace")),
                flags: 0,
                cwd: Default::default(),
                target_mount: None,
            },
        };
        p.event(&ev, &mut sink).unwrap();
        p.event(&ev, &mut sink).unwrap();
        sink.totals(&p.stats);
        let text = metrics.render().unwrap();
        assert_eq!(
            value(&text, "mntrace_events_total", r#"syscall="umount""#),
            2
        );
        assert_eq!(value(&text, "mntrace_ebusy_unmounts_total", ""), 2);
    }
}
