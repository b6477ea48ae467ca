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
use std::ffi::{OsStr, OsString};

use mntrace::model::Dir;
use tracer_common::{
    event::*,
    limits::{WALK_MAX_COMPONENTS, WALK_PATH_MAX},
};

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
    assert_eq!(d.path.bytes.len(), WALK_PATH_MAX);
    assert_eq!(&d.path.bytes[..], &want[..]);
}

/// The scratch dir's real path, as the kernel's walk shows it (no symlinks).
fn real_path(s: &tempfile::TempDir) -> Vec<u8> {
    let real = std::fs::canonicalize(s.path()).expect("canonical scratch path");
    b(&real).to_vec()
}

/// Path components counted from the real root: `/tmp/x` has 2.
fn components(path: &[u8]) -> usize {
    path.split(|&c| c == b'/').filter(|c| !c.is_empty()).count()
}

/// `base` extended with `/d` components to exactly `depth` components from
/// the root. One-byte names keep the path far below the length limit, so
/// only the depth limit can apply.
fn deep_path(base: &[u8], depth: usize) -> OsString {
    let have = components(base);
    assert!(
        depth > have,
        "{depth} components: the scratch dir has {have}"
    );
    let mut path = base.to_vec();
    for _ in have..depth {
        path.extend_from_slice(b"/d");
    }
    assert_eq!(components(&path), depth);
    assert!(path.len() < WALK_PATH_MAX, "{} bytes", path.len());
    p(&[&path])
}

/// After the `setup` ops, create `dir`, make it the cwd and unlink a file
/// in it by a relative name: the directory the kernel resolved (from the cwd).
fn walked_cwd(setup: &[&OsStr], dir: &OsStr) -> Dir {
    let mut ops: Vec<&OsStr> = setup.to_vec();
    ops.extend([
        "mkdirs".as_ref(),
        dir,
        "chdir".as_ref(),
        dir,
        "write".as_ref(),
        "f".as_ref(),
        "unlink-raw".as_ref(),
        "f".as_ref(),
    ]);
    let run = run_traced(&ops);
    run.assert_no_drops();
    let e = run.one(EventKind::Unlink);
    assert_eq!(e.ret, 0);
    let d = delete_dir(e).clone();
    assert_eq!(d.flags & DIR_FROM_CWD, DIR_FROM_CWD, "{:#x}", d.flags);
    d
}

#[test]
fn exactly_the_walk_limit_deep_is_whole_and_unflagged() {
    let s = scratch();
    let deep = deep_path(&real_path(&s), WALK_MAX_COMPONENTS as usize);
    let d = walked_cwd(&[], &deep);
    assert_eq!(d.flags & DIR_TRUNCATED, 0, "{:#x}", d.flags);
    assert!(!d.path.truncated());
    assert_eq!(&d.path.bytes[..], deep.as_encoded_bytes());
}

#[test]
fn one_past_the_walk_limit_is_flagged_and_keeps_the_nearest_components() {
    let s = scratch();
    let deep = deep_path(&real_path(&s), WALK_MAX_COMPONENTS as usize + 1);
    let d = walked_cwd(&[], &deep);
    assert_eq!(d.flags & DIR_TRUNCATED, DIR_TRUNC_DEPTH, "{:#x}", d.flags);
    assert!(d.path.truncated());
    // Everything but the first component (the one nearest the root).
    let bytes = deep.as_encoded_bytes();
    let second = 1 + bytes[1..]
        .iter()
        .position(|&c| c == b'/')
        .expect("2 components");
    let kept = &bytes[second..];
    assert_eq!(components(kept), WALK_MAX_COMPONENTS as usize);
    assert_eq!(&d.path.bytes[..], kept);
}

#[test]
fn mount_crossings_do_not_count_as_components() {
    // Two tmpfs stacked on the first level below the scratch dir: the walk
    // crosses two mount boundaries on its way up, and still keeps all
    // WALK_MAX_COMPONENTS components.
    let s = scratch();
    let base = real_path(&s);
    let m = p(&[&base, b"/d"]);
    let deep = deep_path(&base, WALK_MAX_COMPONENTS as usize);
    let d = walked_cwd(
        &[
            "unshare-mntns".as_ref(),
            "mkdirs".as_ref(),
            &m,
            "mount-tmpfs".as_ref(),
            &m,
            "mount-tmpfs".as_ref(),
            &m,
        ],
        &deep,
    );
    assert_eq!(d.flags & DIR_TRUNCATED, 0, "{:#x}", d.flags);
    assert!(!d.path.truncated());
    assert_eq!(&d.path.bytes[..], deep.as_encoded_bytes());
    let rel = d.rel_path().expect("path relative to the top tmpfs");
    assert_eq!(&rel[..], &deep.as_encoded_bytes()[m.len()..]);
}
