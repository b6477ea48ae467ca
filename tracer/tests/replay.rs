//! `triage` and `query` as a user runs them on a recording: a progress bar
//! on a terminal, nothing of it in a pipe, the same output either way. The
//! recording is written here, record by record, in the recording format
//! (no tracer needed).

use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use mntrace::decode::encode;
use mntrace::model::Str;
use mntrace::recording::format::{self, RecordKind};
use mntrace::EventKind;
use tracer_common::event::{DeleteArgs, DirRef, Header, CAP_ALL, DIR_FROM_FD, DIR_RESOLVED};

const MNTRACE: &str = env!("CARGO_BIN_EXE_mntrace");

/// A segment of `n` deletions by `rm`, one ms apart.
fn segment(n: u64) -> Vec<u8> {
    let mut seg = format::file_header().to_vec();
    format::encode(&mut seg, RecordKind::Segment, b"{}");
    let mut comm = [0u8; 16];
    comm[..2].copy_from_slice(b"rm");
    for i in 0..n {
        let hdr = Header {
            kind: EventKind::Unlinkat as u32,
            ts_ns: 1_000_000_000 + i * 1_000_000,
            pid: 4242,
            tid: 4242,
            comm,
            ..Default::default()
        };
        let args = DeleteArgs {
            dfd: 3,
            capture: CAP_ALL,
            dir: DirRef {
                mnt_id: 42,
                flags: DIR_RESOLVED | DIR_FROM_FD,
                ..Default::default()
            },
            ..Default::default()
        };
        let name = Bytes::from(format!("f{i}"));
        let rec = encode(hdr, &args, &[Str::new(name), Str::new(&b"/srv/tree"[..])]);
        format::encode(&mut seg, RecordKind::Kernel, &rec);
    }
    seg
}

/// `mntrace ARGS` with stdout in `out` and stderr on a terminal (a pty made
/// by script(1)); what the terminal showed.
fn on_a_terminal(args: &str, out: &Path) -> String {
    let cmd = format!("{MNTRACE} {args} > {}", out.display());
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script(1) (util-linux) runs");
    assert!(o.status.success(), "{cmd}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_replay_shows_progress_on_a_terminal_only_and_the_same_output() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    std::fs::create_dir(&rec).unwrap();
    std::fs::write(rec.join("seg-0000000001.mtr"), segment(20_000)).unwrap();
    let recp = rec.display();
    for (args, summary) in [
        (
            format!("triage --events {recp}"),
            "replayed 20000 kernel records",
        ),
        (
            format!("query --comm rm {recp}"),
            "20000 of 20000 recorded events matched",
        ),
    ] {
        let tty_out = dir.path().join("tty.out");
        let terminal = on_a_terminal(&args, &tty_out);
        assert!(
            terminal.contains("mntrace: replaying") && terminal.contains("B/"),
            "{args}: no progress bar on the terminal: {terminal:?}"
        );
        assert!(terminal.contains(summary), "{args}: {terminal:?}");
        // The bar is cleared before the summary: the summary's line is clean.
        let last_bar = terminal.rfind("mntrace: replaying").unwrap();
        let clear = terminal[last_bar..].find("\x1b[2K").map(|i| i + last_bar);
        let sum_at = terminal.find(summary).unwrap();
        assert!(
            clear.is_some_and(|c| c < sum_at),
            "{args}: the bar was not cleared before the summary: {terminal:?}"
        );

        let piped = Command::new(MNTRACE)
            .args(args.split(' '))
            .output()
            .unwrap();
        assert!(piped.status.success(), "{args}: {piped:?}");
        let err = String::from_utf8_lossy(&piped.stderr);
        assert!(!err.contains("replaying"), "{args}: a bar in a pipe: {err}");
        assert!(!err.contains('\x1b'), "{args}: escapes in a pipe: {err}");
        assert!(err.contains(summary), "{args}: {err}");
        let tty_stdout = std::fs::read(&tty_out).unwrap();
        assert!(!tty_stdout.is_empty());
        assert_eq!(
            tty_stdout, piped.stdout,
            "{args}: the output differs with a bar on the terminal"
        );
    }
}
