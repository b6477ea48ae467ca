//! Paths are bytes: spaces, newlines, non-UTF-8, 255-byte names survive
//! intact; too-deep and too-long directories are kept by their tail and
//! flagged truncated.

mod common;

use common::*;
use mntrace::{
    enrich::clock::BootClock,
    sink::{console, jsonl},
    EventKind,
};
use tracer_common::{event::*, limits::WALK_MAX_COMPONENTS};

#[test]
fn awkward_names_survive_byte_for_byte() {
    let s = scratch();
    let dir = p(&[b(s.path()), b"/a b\nc\xff"]);
    let file = p(&[b(s.path()), b"/a b\nc\xff/n\xfe m"]);
    let long: Vec<u8> = vec![b'y'; 255];
    let ldir = p(&[b(s.path()), b"/a b\nc\xff/", &long]);
    let lfile = p(&[b(s.path()), b"/a b\nc\xff/", &long, b"/", &[b'x'; 255]]);
    let run = run_traced(&[
        "mkdirs".as_ref(), // 1
        ldir.as_os_str(),
        "write".as_ref(), // 2
        file.as_os_str(),
        "write".as_ref(), // 3
        lfile.as_os_str(),
        "open-dir".as_ref(), // 4
        dir.as_os_str(),
        "open-dir".as_ref(), // 5
        ldir.as_os_str(),
        "unlinkat".as_ref(), // 6
        "@4".as_ref(),
        p(&[b"n\xfe m"]).as_os_str(),
        "0".as_ref(),
        "unlinkat".as_ref(), // 7
        "@5".as_ref(),
        p(&[&[b'x'; 255]]).as_os_str(),
        "0".as_ref(),
    ]);
    run.assert_no_drops();
    let evs = run.of(EventKind::Unlinkat);
    assert_eq!(evs.len(), 2);
    assert_eq!((pathname(evs[0]), evs[0].ret), (&b"n\xfe m"[..], 0));
    assert_eq!(&delete_dir(evs[0]).path.bytes[..], dir.as_encoded_bytes());
    assert_eq!((pathname(evs[1]), evs[1].ret), (&[b'x'; 255][..], 0));
    assert_eq!(&delete_dir(evs[1]).path.bytes[..], ldir.as_encoded_bytes());
    for e in &evs {
        assert_eq!(delete_dir(e).flags & DIR_TRUNCATED, 0);
    }

    // JSON: lossy text plus exact hex, which decodes back to the bytes.
    let v = jsonl::event_json(evs[0], &BootClock::with_offset(0));
    let hex = v["args"]["pathname_hex"]
        .as_str()
        .expect("non-UTF-8 name has _hex");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(bytes, b"n\xfe m");
    let dhex = v["args"]["dir"]["path_hex"]
        .as_str()
        .expect("dir path has _hex");
    assert!(dhex.ends_with("2f6120620a63ff"), "{dhex}"); // "/a b\nc\xff"
                                                         // Console: quoted with escapes, newline never raw.
    let line = console::line(evs[0], &BootClock::with_offset(0));
    assert!(
        line.contains(r#"unlinkat(4, "n\xfe m", 0) = 0"#)
            || line.contains(r#", "n\xfe m", 0) = 0"#),
        "{line}"
    );
    assert!(line.contains(r#"a b\nc\xff""#), "{line}");
    assert!(!line.contains('\n'));
}

#[test]
fn deeper_than_the_walk_limit_is_flagged_and_keeps_its_tail() {
    let s = scratch();
    let depth = WALK_MAX_COMPONENTS as usize + 20;
    let mut deep = b(s.path()).to_vec();
    for _ in 0..depth {
        deep.extend_from_slice(b"/d");
    }
    let deep = p(&[&deep]);
    let f = p(&[deep.as_encoded_bytes(), b"/f"]);
    let run = run_traced(&[
        "mkdirs".as_ref(),
        deep.as_os_str(),
        "write".as_ref(),
        f.as_os_str(),
        "open-dir".as_ref(), // 3
        deep.as_os_str(),
        "unlinkat".as_ref(),
        "@3".as_ref(),
        "f".as_ref(),
        "0".as_ref(),
    ]);
    run.assert_no_drops();
    let e = run.one(EventKind::Unlinkat);
    assert_eq!(e.ret, 0);
    let d = delete_dir(e);
    assert_eq!(d.flags & DIR_TRUNCATED, DIR_TRUNC_DEPTH, "{:#x}", d.flags);
    assert!(d.path.truncated());
    assert_eq!(d.path.bytes, b"/d".repeat(WALK_MAX_COMPONENTS as usize));
}

#[test]
fn longer_than_path_max_is_flagged_and_keeps_its_tail() {
    // 20 components of 255 bytes (5,120 bytes): built by chdir, since the
    // whole path is longer than PATH_MAX.
    let s = scratch();
    let name = p(&[&[b'z'; 255]]);
    let root = p(&[b(s.path()), b"/L"]);
    let mut ops: Vec<std::ffi::OsString> = vec!["mkdir".into(), root.clone(), "chdir".into(), root];
    for _ in 0..20 {
        ops.extend(["mkdir".into(), name.clone(), "chdir".into(), name.clone()]);
    }
    ops.extend(["write".into(), "f".into(), "unlink-raw".into(), "f".into()]);
    let run = run_traced(&ops);
    run.assert_no_drops();
    let e = run.one(EventKind::Unlink);
    assert_eq!(e.ret, 0);
    let d = delete_dir(e);
    assert_eq!(d.flags & DIR_TRUNCATED, DIR_TRUNC_LEN, "{:#x}", d.flags);
    // 16 components of "/" + 255 bytes fill the 4,096-byte walk buffer exactly.
    let mut want = Vec::new();
    for _ in 0..16 {
        want.push(b'/');
        want.extend_from_slice(&[b'z'; 255]);
    }
    assert_eq!(d.path.bytes.len(), 4096);
    assert_eq!(&d.path.bytes[..], &want[..]);
}
