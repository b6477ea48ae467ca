//! In-kernel filters (pid, comm, kind, failed-only) and exact loss counting.

mod common;

use common::*;
use mntrace::{config::TraceOptions, EventKind};
use tracer_common::counters::DropReason;

#[test]
fn failed_only_keeps_only_errors() {
    let s = scratch();
    let f = p(&[b(s.path()), b"/f"]);
    let run = run_traced_with(
        &[
            "write".as_ref(),
            f.as_os_str(),
            "unlink-raw".as_ref(),
            f.as_os_str(),
            "unlink-raw".as_ref(),
            f.as_os_str(),
        ],
        TraceOptions {
            failed_only: true,
            ..all_deletes()
        },
    );
    let evs = run.of(EventKind::Unlink);
    assert_eq!(evs.len(), 1, "{evs:#?}");
    assert_eq!(evs[0].ret, -2);
}

#[test]
fn kind_filter_attaches_only_those_probes() {
    let s = scratch();
    let d = p(&[b(s.path()), b"/d"]);
    let f = p(&[b(s.path()), b"/f"]);
    let run = run_traced_with(
        &[
            "mkdir".as_ref(),
            d.as_os_str(),
            "write".as_ref(),
            f.as_os_str(),
            "unlink-raw".as_ref(),
            f.as_os_str(),
            "rmdir-raw".as_ref(),
            d.as_os_str(),
        ],
        TraceOptions {
            kinds: vec![EventKind::Rmdir],
            ..all_deletes()
        },
    );
    assert_eq!(run.events.len(), 1, "{:#?}", run.events);
    assert_eq!(run.events[0].kind, EventKind::Rmdir);
}

#[test]
fn comm_filter_matches_the_command_name() {
    let s = scratch();
    let f = p(&[b(s.path()), b"/f"]);
    let ops = [
        "write".as_ref(),
        f.as_os_str(),
        "unlink-raw".as_ref(),
        f.as_os_str(),
    ];
    for (comm, want) in [(&b"mntrace-fixture"[..], 1), (&b"not-the-fixture"[..], 0)] {
        let fx = Fixture::spawn(&ops);
        let pid = fx.pid;
        let mut t = Traced::start(TraceOptions {
            comm: Some(comm.to_vec()),
            ..all_deletes()
        });
        fx.release_and_wait();
        let mine: Vec<_> = t.drain().into_iter().filter(|e| e.pid == pid).collect();
        assert_eq!(
            mine.len(),
            want,
            "comm {:?}: {mine:#?}",
            String::from_utf8_lossy(comm)
        );
    }
}

#[test]
fn a_full_ring_counts_every_lost_event_exactly() {
    // A one-page ring and a reader that does not read while 3,000 deletions
    // happen: most records cannot be delivered. Delivered + counted lost must
    // equal the calls made, exactly.
    let s = scratch();
    let d = p(&[b(s.path()), b"/many"]);
    let fx = Fixture::spawn(&[
        "mkdir".as_ref(),
        d.as_os_str(),
        "touch-many".as_ref(),
        d.as_os_str(),
        "3000".as_ref(),
        "remove-all".as_ref(),
        d.as_os_str(),
    ]);
    let pid = fx.pid;
    let mut t = Traced::start(TraceOptions {
        pids: vec![pid],
        ring_size: 4096,
        ..all_deletes()
    });
    let lines = fx.release_and_wait();
    let ra = op(&lines, 3);
    let calls = u64_of(ra, "ret") + u64_of(ra, "errors");
    assert!(calls >= 3001, "{ra}");
    let delivered = t
        .drain()
        .iter()
        .filter(|e| e.kind == EventKind::Unlinkat)
        .count() as u64;
    let drops = t.drops();
    let lost = drops.get(EventKind::Unlinkat, DropReason::RingFull);
    assert!(lost > 0, "a 4 KiB ring cannot hold {calls} records");
    assert_eq!(
        delivered + lost,
        calls,
        "delivered {delivered} + lost {lost} != calls {calls}"
    );
    assert_eq!(drops.total(), lost, "no other drop reason: {drops:?}");
}

#[test]
fn a_map_the_kernel_refuses_is_a_clear_refusal() {
    require_root();
    // aya rounds ring sizes up to a power of two but passes 0 through, and
    // the kernel refuses an empty ring buffer (EINVAL).
    let err = match mntrace::loader::Tracer::start(&TraceOptions {
        ring_size: 0,
        ..all_deletes()
    }) {
        Ok(_) => panic!("an empty ring buffer must be refused"),
        Err(e) => e,
    };
    assert_eq!(err.exit_code(), mntrace::error::exit::REFUSED);
    let msg = err.to_string();
    assert!(
        msg.contains("the kernel refused") && msg.contains("EVENTS"),
        "{msg}"
    );
}
