//! A long run keeps nothing without a bound: the pipeline (enrich →
//! correlate → sink) over two million synthetic events, with busy-unmount
//! incidents, crossing bursts, plain deletions and mount events in every
//! round, holds the same heap after each round. The heap is measured
//! exactly, by a counting global allocator. No root needed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;
use mntrace::config::Display;
use mntrace::correlate::{CorrelatorConfig, Incident};
use mntrace::drops::Drops;
use mntrace::model::{Args, Dir, Event, Str};
use mntrace::pipeline::Pipeline;
use mntrace::sink::Sink;
use mntrace::stats::Stats;
use mntrace::EventKind;
use tracer_common::event::{
    CAP_ALL, CAP_BUSY, CAP_CROSSING, CAP_SUBTREE, DIR_FROM_FD, DIR_FROM_ROOT, DIR_RESOLVED,
    DIR_SUBTREE,
};

struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as i64 - l.size() as i64, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Counts what it is given and keeps nothing.
#[derive(Default)]
struct Discard {
    events: u64,
    incidents: u64,
    deletions: u64,
}

impl Sink for Discard {
    fn event(&mut self, _: &Event) -> std::io::Result<()> {
        self.events += 1;
        Ok(())
    }
    fn incident(&mut self, inc: &Incident) -> std::io::Result<()> {
        self.incidents += 1;
        self.deletions += inc.count;
        Ok(())
    }
    fn losses(&mut self, _: &Drops, _: &Drops) -> std::io::Result<()> {
        Ok(())
    }
    fn finish(&mut self, _: &Stats) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const NS: u32 = 4026599999;
/// A pid with no /proc entry: the mount-table reloads fail quickly.
const PID: u32 = 0x3fff_fff0;

fn event(ts: u64, tid: u32, kind: EventKind, ret: i64, args: Args) -> Event {
    Event {
        kind,
        ts_ns: ts,
        duration_ns: 1,
        ret,
        pid: PID,
        tid,
        ppid: 1,
        uid: 0,
        gid: 0,
        mnt_ns: NS,
        cgroup_id: 1,
        comm: Bytes::from_static(b"load"),
        args,
    }
}

fn dir(path: impl Into<Bytes>, mountpoint_len: usize, mnt_id: u32, flags: u32) -> Dir {
    Dir {
        mnt_id,
        mnt_ns: NS,
        flags: DIR_RESOLVED | flags,
        path: Str::new(path),
        rel_off: mountpoint_len as u32,
        ..Default::default()
    }
}

fn delete(ts: u64, tid: u32, d: Dir, name: impl Into<Bytes>, capture: u32, origin: u32) -> Event {
    event(
        ts,
        tid,
        EventKind::Unlinkat,
        0,
        Args::Delete {
            dfd: 3,
            pathname: Str::new(name),
            flags: 0,
            dir: d,
            capture,
            origin_mnt_id: origin,
            victim: None,
        },
    )
}

fn umount(ts: u64, target: impl Into<Bytes>, ret: i64) -> Event {
    event(
        ts,
        1,
        EventKind::Umount,
        ret,
        Args::Umount {
            target: Str::new(target),
            flags: 0,
            cwd: dir("/", 0, 27, DIR_FROM_ROOT),
            target_mount: None,
        },
    )
}

fn bind(ts: u64, n: u64) -> Event {
    event(
        ts,
        2,
        EventKind::Mount,
        0,
        Args::Mount {
            source: Str::new(Bytes::from(format!("/srv/src{n}"))),
            target: Str::new(Bytes::from(format!("/srv/dst{n}"))),
            fstype: Str::default(),
            data: Str::default(),
            flags: 4096, // MS_BIND
            cwd: dir("/", 0, 27, DIR_FROM_ROOT),
        },
    )
}

/// A kernel record as the recorder keeps it (its bytes are not looked at).
const RAW: [u8; 160] = [0x5a; 160];

/// One event as live mode hands it on: its record to the sink (the
/// recorder keeps it), then the pipeline, then what it noted for a replay.
fn feed(p: &mut Pipeline, sink: &mut dyn Sink, ev: &Event) {
    sink.raw(&RAW);
    p.event(ev, sink).unwrap();
    for f in p.take_facts() {
        sink.fact(&f);
    }
}

/// How busy a round of the node is.
struct Busy {
    /// Bind mounts (more than any cache keeps, over a few rounds).
    binds: u64,
    /// Busy mounts, with this many deletions through each.
    busy: u32,
    per_busy: u32,
    /// Crossing bursts of 100 deletions.
    bursts: u32,
    /// Plain deletions.
    plain: u32,
}

/// [`two_million_events_with_incidents_keep_the_heap_flat`]'s round.
const ROUND: Busy = Busy {
    binds: 20_000,
    busy: 50,
    per_busy: 2_000,
    bursts: 50,
    plain: 100_000,
};

/// An hour of [`a_day_of_recording_keeps_the_heap_and_the_directory_bounded`]
/// (about 10 MiB recorded).
const HOUR: Busy = Busy {
    binds: 2_000,
    busy: 5,
    per_busy: 2_000,
    bursts: 10,
    plain: 40_000,
};

/// One round of a busy node: busy mounts with deletions through them (half
/// of them unmounted after), crossing bursts, plain deletions, bind mounts;
/// then an hour later everything has closed.
fn round(p: &mut Pipeline, sink: &mut dyn Sink, r: u64, n: &Busy) {
    let base = r * 3_600_000_000_000;
    let mut ts = base;
    let mut tick = || {
        ts += 1_000;
        ts
    };
    for i in 0..n.binds {
        feed(p, sink, &bind(tick(), r * n.binds + i));
    }
    for m in 0..n.busy {
        let mp = format!("/var/lib/c/r{r}/tmpmounts/p{m}/0");
        feed(p, sink, &umount(tick(), mp.clone(), -16));
        for i in 0..n.per_busy {
            let d = dir(
                format!("{mp}/lib"),
                mp.len(),
                100 + m,
                DIR_FROM_FD | DIR_SUBTREE,
            );
            feed(
                p,
                sink,
                &delete(tick(), 10, d, format!("f{i}"), CAP_BUSY, 0),
            );
        }
        if m % 2 == 0 {
            feed(p, sink, &umount(tick(), mp, 0));
        }
    }
    for b in 0..n.bursts {
        let pod = format!("/var/lib/kubelet/pods/r{r}b{b}");
        let mp = format!("{pod}/volume-subpaths/v/c/0");
        for i in 0..100u32 {
            let d = dir(mp.clone(), mp.len(), 300 + b, DIR_FROM_FD | DIR_SUBTREE);
            let caps = CAP_SUBTREE | CAP_CROSSING;
            feed(
                p,
                sink,
                &delete(tick(), 1000 + b, d, format!("x{i}"), caps, 27),
            );
        }
        let d = dir(pod.clone(), 0, 27, DIR_FROM_FD);
        feed(
            p,
            sink,
            &delete(tick(), 1000 + b, d, "etc-hosts", CAP_CROSSING, 27),
        );
    }
    for i in 0..n.plain {
        let d = dir(format!("/home/u/tree{}", i % 100), 0, 27, DIR_FROM_FD);
        feed(p, sink, &delete(tick(), 7, d, format!("n{i}"), CAP_ALL, 0));
        // A chunk boundary, as live mode has (a segment rotates there).
        if i.is_multiple_of(4096) {
            sink.flush().unwrap();
        }
    }
    p.tick(base + 3_000_000_000_000, sink).unwrap();
    p.holders_ready();
    for f in p.take_facts() {
        sink.fact(&f);
    }
    sink.flush().unwrap();
}

/// The tests measure the one process-wide heap: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn two_million_events_with_incidents_keep_the_heap_flat() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut p = Pipeline::new(
        CorrelatorConfig::default(),
        Display {
            show_events: true,
            ..Default::default()
        },
    );
    let mut sink = Discard::default();
    let mut after = Vec::new();
    const ROUNDS: u64 = 9;
    for r in 1..=ROUNDS {
        round(&mut p, &mut sink, r, &ROUND);
        after.push(LIVE.load(Ordering::Relaxed));
    }
    eprintln!("live heap after each round: {after:?}");
    p.finish(&mut sink).unwrap();
    // Every round's incidents were emitted and forgotten.
    assert_eq!(sink.incidents, ROUNDS * (50 + 50), "{after:?}");
    assert_eq!(sink.deletions, ROUNDS * (50 * 2_000 + 50 * 100));
    assert!(sink.events >= ROUNDS * 225_000);
    // The first round fills the bounded caches; from then on the heap
    // stays where it is (a few KiB of hash-table slack allowed).
    let settled = after[1];
    for (i, &bytes) in after.iter().enumerate().skip(1) {
        assert!(
            (bytes - settled).abs() < 256 * 1024,
            "round {}: {bytes} bytes live vs {settled} after round 2: {after:?}",
            i + 1
        );
    }
}

/// Events are slices of the record they were decoded from (a 1 MiB
/// ring-buffer chunk live, a whole segment in a replay). What outlives an
/// event (a busy mount, an open incident, a burst) must not keep that
/// record alive: a replay of a months-long recording with a busy mount in
/// every segment would otherwise hold every segment.
#[test]
fn what_is_kept_does_not_pin_the_record_it_came_from() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut p = Pipeline::new(CorrelatorConfig::default(), Display::default());
    let mut sink = Discard::default();
    const RECORD: usize = 16 << 20;
    let before = LIVE.load(Ordering::Relaxed);
    {
        let mp = b"/var/lib/c/pin/tmpmounts/p0/0";
        let pod = b"/var/lib/kubelet/pods/pin";
        let sub = b"/var/lib/kubelet/pods/pin/volume-subpaths/v/c/0";
        let mut buf = vec![0u8; RECORD];
        let mut at = 0;
        let mut put = |s: &[u8]| {
            buf[at..at + s.len()].copy_from_slice(s);
            at += s.len();
            at - s.len()..at
        };
        let (mp_r, pod_r, sub_r, name_r) = (put(mp), put(pod), put(sub), put(b"f0"));
        let record = Bytes::from(buf);
        let ts = 7_000_000_000;
        let events = vec![
            umount(ts, record.slice(mp_r.clone()), -16),
            delete(
                ts + 1_000,
                10,
                dir(
                    record.slice(mp_r.clone()),
                    mp.len(),
                    100,
                    DIR_FROM_FD | DIR_SUBTREE,
                ),
                record.slice(name_r.clone()),
                CAP_BUSY,
                0,
            ),
            // A walk of the pod directory that crosses into a subpath bind.
            delete(
                ts + 2_000,
                20,
                dir(record.slice(pod_r.clone()), 0, 27, DIR_FROM_FD),
                record.slice(name_r.clone()),
                CAP_CROSSING,
                27,
            ),
            delete(
                ts + 3_000,
                20,
                dir(
                    record.slice(sub_r),
                    sub.len(),
                    300,
                    DIR_FROM_FD | DIR_SUBTREE,
                ),
                record.slice(name_r),
                CAP_SUBTREE | CAP_CROSSING,
                27,
            ),
        ];
        for e in &events {
            p.event(e, &mut sink).unwrap();
        }
        // The events and the record are gone; the busy mount, its open
        // incident and the burst are still kept.
        assert!(!p.correlator.is_idle());
        let _ = pod_r;
    }
    let kept = LIVE.load(Ordering::Relaxed) - before;
    assert!(
        kept < (RECORD / 16) as i64,
        "{kept} bytes still live after the events of a {RECORD}-byte record were dropped"
    );
    p.finish(&mut sink).unwrap();
    assert_eq!(
        sink.incidents, 2,
        "the busy-unmount incident and the crossing"
    );
}

/// `mntrace record` left running: a day of a busy node (an hour in well
/// under a second) through the recorder, in segments of 4 MiB rotated,
/// compressed on their own thread and removed beyond 8 MiB. The heap is
/// flat once the bounded caches are full, and the directory stays within
/// its cap (a segment closes at its size at the next chunk boundary, not a
/// second later: at a high rate, that second was most of a segment).
#[test]
fn a_day_of_recording_keeps_the_heap_and_the_directory_bounded() {
    use mntrace::recording::writer::{segments, WriterConfig};
    use mntrace::sink::recorder::RecorderSink;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    const SEGMENT: u64 = 4 << 20;
    const MAX_TOTAL: u64 = 8 << 20;
    let cfg = WriterConfig {
        dir: rec.clone(),
        segment_bytes: SEGMENT,
        segment_age: std::time::Duration::from_secs(3600),
        max_total_bytes: MAX_TOTAL,
    };
    let clock = mntrace::enrich::clock::BootClock::now();
    let mut sink = RecorderSink::open(
        cfg,
        serde_json::json!({}),
        clock,
        None,
        Box::new(Discard::default()),
    )
    .unwrap();
    let mut p = Pipeline::new(CorrelatorConfig::default(), Display::default());
    p.record_facts();
    // The compressor thread is done with the closed segments: only the
    // open one is uncompressed.
    let settle = || {
        for _ in 0..600 {
            let open = segments(&rec).unwrap().iter().filter(|s| !s.2).count();
            if open == 1 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("closed segments still uncompressed after 30 s");
    };
    const HOURS: u64 = 24;
    let mut after = Vec::new();
    for r in 1..=HOURS {
        round(&mut p, &mut sink, r, &HOUR);
        settle();
        after.push(LIVE.load(Ordering::Relaxed));
        let on_disk: u64 = segments(&rec)
            .unwrap()
            .iter()
            .map(|s| std::fs::metadata(&s.1).map_or(0, |m| m.len()))
            .sum();
        assert!(
            on_disk <= MAX_TOTAL + SEGMENT,
            "hour {r}: {on_disk} bytes in the recording: {:?}",
            segments(&rec)
                .unwrap()
                .iter()
                .map(|s| (
                    s.1.file_name().unwrap().to_owned(),
                    std::fs::metadata(&s.1).map_or(0, |m| m.len())
                ))
                .collect::<Vec<_>>()
        );
    }
    eprintln!("live heap after each hour: {after:?}");
    let stats = sink.writer_stats();
    assert!(stats.segments > HOURS * 2, "{stats:?}");
    assert_eq!((stats.unwritten, stats.write_errors), (0, 0), "{stats:?}");
    // The heap grows while the bounded caches fill (the bind cache keeps
    // 16,384 binds: 2,000 an hour fill it in about 8 hours), then stays
    // flat for the rest of the day, and small.
    let settled = after[11];
    for (i, &bytes) in after.iter().enumerate().skip(11) {
        assert!(
            (bytes - settled).abs() < 256 * 1024,
            "hour {}: {bytes} bytes live vs {settled} after hour 12: {after:?}",
            i + 1
        );
    }
    assert!(settled < 32 << 20, "{after:?}");
    p.finish(&mut sink).unwrap();
    sink.finish(&p.stats).unwrap();
}
