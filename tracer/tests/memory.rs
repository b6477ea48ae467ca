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

fn dir(path: String, mountpoint_len: usize, mnt_id: u32, flags: u32) -> Dir {
    Dir {
        mnt_id,
        mnt_ns: NS,
        flags: DIR_RESOLVED | flags,
        path: Str::new(Bytes::from(path)),
        rel_off: mountpoint_len as u32,
        ..Default::default()
    }
}

fn delete(ts: u64, tid: u32, d: Dir, name: String, capture: u32, origin: u32) -> Event {
    event(
        ts,
        tid,
        EventKind::Unlinkat,
        0,
        Args::Delete {
            dfd: 3,
            pathname: Str::new(Bytes::from(name)),
            flags: 0,
            dir: d,
            capture,
            origin_mnt_id: origin,
        },
    )
}

fn umount(ts: u64, target: String, ret: i64) -> Event {
    event(
        ts,
        1,
        EventKind::Umount,
        ret,
        Args::Umount {
            target: Str::new(Bytes::from(target)),
            flags: 0,
            cwd: dir("/".into(), 0, 27, DIR_FROM_ROOT),
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
            cwd: dir("/".into(), 0, 27, DIR_FROM_ROOT),
        },
    )
}

/// One round of a busy node: 50 busy mounts with 2,000 deletions each
/// through them, 50 crossing bursts of 100 deletions, 100,000 plain
/// deletions, 20,000 bind mounts (more than any cache keeps); then an hour
/// later everything has closed.
fn round(p: &mut Pipeline, sink: &mut Discard, r: u64) {
    let base = r * 3_600_000_000_000;
    let mut ts = base;
    let tick = |ts: &mut u64| {
        *ts += 1_000;
        *ts
    };
    for n in 0..20_000u64 {
        p.event(&bind(tick(&mut ts), r * 20_000 + n), sink).unwrap();
    }
    for m in 0..50u32 {
        let mp = format!("/var/lib/c/r{r}/tmpmounts/p{m}/0");
        p.event(&umount(tick(&mut ts), mp.clone(), -16), sink)
            .unwrap();
        for i in 0..2_000u32 {
            let d = dir(
                format!("{mp}/lib"),
                mp.len(),
                100 + m,
                DIR_FROM_FD | DIR_SUBTREE,
            );
            let e = delete(tick(&mut ts), 10, d, format!("f{i}"), CAP_BUSY, 0);
            p.event(&e, sink).unwrap();
        }
        if m % 2 == 0 {
            p.event(&umount(tick(&mut ts), mp, 0), sink).unwrap();
        }
    }
    for b in 0..50u32 {
        let pod = format!("/var/lib/kubelet/pods/r{r}b{b}");
        let mp = format!("{pod}/volume-subpaths/v/c/0");
        for i in 0..100u32 {
            let d = dir(mp.clone(), mp.len(), 300 + b, DIR_FROM_FD | DIR_SUBTREE);
            let e = delete(
                tick(&mut ts),
                1000 + b,
                d,
                format!("x{i}"),
                CAP_SUBTREE | CAP_CROSSING,
                27,
            );
            p.event(&e, sink).unwrap();
        }
        let d = dir(pod.clone(), 0, 27, DIR_FROM_FD);
        p.event(
            &delete(
                tick(&mut ts),
                1000 + b,
                d,
                "etc-hosts".into(),
                CAP_CROSSING,
                27,
            ),
            sink,
        )
        .unwrap();
    }
    for i in 0..100_000u32 {
        let d = dir(format!("/home/u/tree{}", i % 100), 0, 27, DIR_FROM_FD);
        p.event(
            &delete(tick(&mut ts), 7, d, format!("n{i}"), CAP_ALL, 0),
            sink,
        )
        .unwrap();
    }
    p.tick(base + 3_000_000_000_000, sink).unwrap();
    p.holders_ready();
}

#[test]
fn two_million_events_with_incidents_keep_the_heap_flat() {
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
        round(&mut p, &mut sink, r);
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
