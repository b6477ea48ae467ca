//! The recorder sink: every kernel record exactly as the ring buffer
//! delivered it, the incidents as they close and the kernel-side losses, in
//! rotating segments (see [`crate::recording`]); what the run shows besides
//! (incidents on stderr, or JSON Lines on stdout) goes to `inner`.
//!
//! Each segment begins with what triage needs to stand alone: host, kernel,
//! boot id, the boot-time ↔ wall-clock reference, the run's settings and a
//! snapshot of every mount namespace's table (the mounts an incident
//! explains are often gone by the time anyone looks).

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::correlate::Incident;
use crate::drops::Drops;
use crate::enrich::clock::{boot_ns, BootClock};
use crate::enrich::facts::Fact;
use crate::model::Event;
use crate::recording::format::RecordKind;
use crate::recording::writer::{Writer, WriterConfig, WriterStats};
use crate::sink::jsonl::{drops_json, incident_line};
use crate::sink::metrics::RecorderMetrics;
use crate::sink::Sink;
use crate::stats::Stats;

/// Recorded data reaches the disk at least this often.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

pub struct RecorderSink {
    writer: Option<Writer>,
    inner: Box<dyn Sink>,
    clock: BootClock,
    last_flush: Instant,
    /// Boot time of the last loss report (a loss record spans from it).
    last_loss_ns: u64,
    stats: WriterStats,
    metrics: Option<RecorderMetrics>,
    /// What the metrics were last told.
    reported: WriterStats,
}

impl RecorderSink {
    /// Open the recording directory and its first segment. `settings` goes
    /// into every segment header.
    /// `clock` is the one the run's other sinks use: replays show the same
    /// times.
    pub fn open(
        cfg: WriterConfig,
        settings: Value,
        clock: BootClock,
        metrics: Option<RecorderMetrics>,
        inner: Box<dyn Sink>,
    ) -> io::Result<Self> {
        let writer = Writer::open(cfg, move || segment_header(&settings, &clock))?;
        Ok(RecorderSink {
            writer: Some(writer),
            inner,
            clock,
            last_flush: Instant::now(),
            last_loss_ns: boot_ns(),
            stats: WriterStats::default(),
            metrics,
            reported: WriterStats::default(),
        })
    }

    /// The recorder's totals so far (after [`Sink::finish`]: final).
    pub fn writer_stats(&self) -> WriterStats {
        self.writer
            .as_ref()
            .map_or_else(|| self.stats.clone(), |w| w.stats().clone())
    }

    /// Tell the metrics what the writer did since the last time.
    fn report(&mut self) {
        let (Some(m), Some(w)) = (&self.metrics, &self.writer) else {
            return;
        };
        let now = w.stats();
        m.wrote(now.bytes - self.reported.bytes);
        m.set_segments(now.segments);
        for _ in self.reported.write_errors..now.write_errors {
            m.write_error();
        }
        self.reported = now.clone();
    }

    fn append(&mut self, kind: RecordKind, payload: &[u8]) {
        if let Some(w) = self.writer.as_mut() {
            w.append(kind, payload);
        }
    }
}

impl Sink for RecorderSink {
    fn raw(&mut self, record: &[u8]) {
        self.append(RecordKind::Kernel, record);
    }

    fn fact(&mut self, fact: &Fact) {
        self.append(RecordKind::Fact, &fact.to_json());
    }

    fn event(&mut self, ev: &Event) -> io::Result<()> {
        self.inner.event(ev)
    }

    fn incident(&mut self, inc: &Incident) -> io::Result<()> {
        let mut line = incident_line(inc, &self.clock)?;
        line.pop(); // the newline
        self.append(RecordKind::Incident, &line);
        self.inner.incident(inc)
    }

    fn losses(&mut self, delta: &Drops, total: &Drops) -> io::Result<()> {
        let now = boot_ns();
        let v = json!({
            "from_boot_ns": self.last_loss_ns,
            "to_boot_ns": now,
            "lost": drops_json(delta),
            "lost_total": total.total(),
        });
        self.last_loss_ns = now;
        self.append(RecordKind::Loss, v.to_string().as_bytes());
        self.inner.losses(delta, total)
    }

    fn finish(&mut self, stats: &Stats) -> io::Result<()> {
        if let Some(w) = self.writer.take() {
            let dir = w.current().parent().map(|p| p.display().to_string());
            self.stats = w.close();
            let s = &self.stats;
            let mut line = format!(
                "mntrace: recorded {} in {} segment{} to {}",
                human_bytes(s.bytes),
                s.segments,
                if s.segments == 1 { "" } else { "s" },
                dir.unwrap_or_default()
            );
            if s.unwritten > 0 {
                line += &format!(
                    "; {} record{} not recorded ({})",
                    s.unwritten,
                    if s.unwritten == 1 { "" } else { "s" },
                    s.last_error.as_deref().unwrap_or("write error")
                );
            }
            eprintln!("{line}");
        }
        self.inner.finish(stats)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Called after every chunk of events (a segment only rotates
        // between chunks, so a chunk and its facts share a segment).
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            if let Some(w) = self.writer.as_mut() {
                w.flush();
            }
            self.report();
            self.last_flush = Instant::now();
        } else if let Some(w) = self.writer.as_mut().filter(|w| w.full()) {
            // Full before the next durable flush: closed now, so a segment
            // overshoots its size by at most a chunk, whatever the rate.
            w.rotate();
            self.report();
        }
        self.inner.flush()
    }

    fn totals(&mut self, stats: &Stats) {
        self.inner.totals(stats)
    }

    fn unwritten(&self) -> Option<crate::stats::Unwritten> {
        self.inner.unwritten()
    }
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} bytes"),
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// What a segment needs to stand alone.
pub fn segment_header(settings: &Value, clock: &BootClock) -> Vec<u8> {
    let boot = boot_ns();
    let wall = clock.wall(boot);
    let v = json!({
        "format": crate::recording::format::VERSION,
        "mntrace": env!("CARGO_PKG_VERSION"),
        "host": read_trimmed("/proc/sys/kernel/hostname"),
        "kernel": read_trimmed("/proc/sys/kernel/osrelease"),
        "boot_id": read_trimmed("/proc/sys/kernel/random/boot_id"),
        "clock": {
            "boot_ns": boot,
            "wall": wall.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "wall_unix_ns": wall.timestamp_nanos_opt(),
            // What the run's sinks add to a boot time to show wall time.
            "boot_to_wall_ns": clock.offset_ns().to_string(),
        },
        "recorder_pid": std::process::id(),
        "settings": settings,
        "mount_tables": mount_tables(),
    });
    v.to_string().into_bytes()
}

/// The mount table of every mount namespace, read through one process of
/// each: `[{mnt_ns, pid, mountinfo}]`.
fn mount_tables() -> Value {
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(meta) = std::fs::metadata(format!("/proc/{pid}/ns/mnt")) else {
                continue;
            };
            use std::os::unix::fs::MetadataExt;
            seen.entry(meta.ino()).or_insert(pid);
        }
    }
    let tables: Vec<Value> = seen
        .into_iter()
        .filter_map(|(ns, pid)| {
            let text = std::fs::read(format!("/proc/{pid}/mountinfo")).ok()?;
            Some(json!({
                "mnt_ns": ns,
                "pid": pid,
                "mountinfo": String::from_utf8_lossy(&text),
                "mountinfo_hex": std::str::from_utf8(&text).is_err().then(|| crate::sink::hex(&text)),
            }))
        })
        .collect();
    Value::Array(tables)
}
