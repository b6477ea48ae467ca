//! `mntrace record` on a full disk: tracing goes on, the records that could
//! not be written are counted and reported, every segment on disk holds only
//! whole records, and recording resumes once space returns.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use mntrace::recording::format::{End, Reader, RecordKind};
use mntrace::recording::writer::segments;

/// Kernel records of `dir`'s segments (checking each ends cleanly).
fn kernel_records(dir: &Path) -> Vec<mntrace::model::Event> {
    let mut v = Vec::new();
    for (_, path, _) in segments(dir).expect("segments") {
        let mut r = Reader::open(&path).expect("readable segment");
        for rec in r.by_ref() {
            if rec.kind == RecordKind::Kernel {
                v.push(mntrace::decode::decode(rec.payload).expect("kernel record"));
            }
        }
        assert_eq!(r.end(), Some(&End::Clean), "{}", path.display());
    }
    v
}

#[test]
fn a_full_disk_keeps_tracing_counts_what_was_not_recorded_and_resumes() {
    require_root();
    let s = scratch();
    let disk = s.path().join("disk");
    let work = s.path().join("work");
    let out = s.path().join("out");
    for d in [&disk, &work, &out] {
        std::fs::create_dir(d).expect("mkdir");
    }
    let fx = fixture();
    let (d, w, o) = (disk.display(), work.display(), out.display());
    let (fx, mt) = (fx.display(), MNTRACE);
    // A 256 KiB tmpfs, nearly filled; a burst of 3,000 deletions overflows
    // it; then the filler goes and 100 more deletions must be recorded.
    let script = format!(
        "set -e; mount -t tmpfs -o size=256k none '{d}'; \
         head -c 200000 /dev/zero > '{d}/fill'; \
         '{mt}' record --dir '{d}/rec' --deletes all -c mntrace-fixture 2> '{o}/err' & M=$!; \
         until grep -q '^mntrace: recording' '{o}/err'; do sleep 0.05; done; \
         '{fx}' mkdirs '{w}/a' touch-many '{w}/a' 3000 remove-all '{w}/a' > /dev/null; \
         sleep 2.5; rm '{d}/fill'; sleep 1.5; \
         '{fx}' mkdirs '{w}/b' touch-many '{w}/b' 100 remove-all '{w}/b' > /dev/null; \
         sleep 1.5; kill -INT $M; wait $M; cp -a '{d}/rec' '{o}/rec'"
    );
    let st = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .status()
        .expect("run the script");
    assert!(st.success(), "{st}");
    let err = std::fs::read_to_string(out.join("err")).expect("stderr");
    assert_eq!(
        err.matches("warning: cannot record to").count(),
        1,
        "warned once: {err}"
    );
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("recording to"), "{err}");
    assert!(err.contains(" again"), "said when it resumed: {err}");
    let summary = err
        .lines()
        .find(|l| l.starts_with("mntrace: recorded "))
        .unwrap_or_else(|| panic!("no recorder summary: {err}"));
    let not: u64 = summary
        .split("; ")
        .nth(1)
        .and_then(|x| x.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of records not recorded: {summary}"));
    assert!(not > 0, "{summary}");
    let events = kernel_records(&out.join("rec"));
    let deleted = |dir: &Path| {
        events
            .iter()
            .filter(|e| {
                e.kind.is_delete()
                    && e.ret == 0
                    && matches!(&e.args, mntrace::model::Args::Delete { dir: dd, .. }
                        if dd.path.bytes.starts_with(b(dir)))
            })
            .count()
    };
    let a = deleted(&work.join("a"));
    assert!(
        a < 3000,
        "the full disk cost records of the first burst ({a})"
    );
    assert_eq!(
        deleted(&work.join("b")),
        100,
        "recording resumed once space returned"
    );
}
