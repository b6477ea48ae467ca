//! Paths as bytes: joining a path argument to the directory its lookup
//! started from, and component-wise prefixes. Nothing here touches the file
//! system: paths are what the kernel reported.

use bytes::{BufMut, Bytes, BytesMut};

/// A path argument as a path: as is when absolute, else below `dir`, the
/// directory its lookup started from.
pub fn resolve_arg(dir: &[u8], arg: &[u8]) -> Bytes {
    if arg.starts_with(b"/") {
        Bytes::copy_from_slice(arg)
    } else {
        join(dir, arg)
    }
}

/// Joins `base` and `rel` with exactly one `/` between them. Slashes are
/// normalized at the join only: trailing slashes of `base` and leading and
/// trailing slashes of `rel` are dropped. The result has no trailing `/`
/// unless it is `/` itself (which is also what two empty inputs give).
pub fn join(base: &[u8], rel: &[u8]) -> Bytes {
    let base = trim_end_slashes(base);
    let rel = trim_end_slashes(trim_start_slashes(rel));
    let mut out = BytesMut::with_capacity(base.len() + rel.len() + 1);
    out.put_slice(base);
    if !rel.is_empty() {
        out.put_u8(b'/');
        out.put_slice(rel);
    }
    if out.is_empty() {
        out.put_u8(b'/');
    }
    out.freeze()
}

fn trim_end_slashes(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., b'/'] = b {
        b = rest;
    }
    b
}

fn trim_start_slashes(mut b: &[u8]) -> &[u8] {
    while let [b'/', rest @ ..] = b {
        b = rest;
    }
    b
}

/// If `prefix` is a component-wise prefix of `path` ("/a" of "/a" and "/a/b",
/// not of "/ab"; "/" of every absolute path), the rest of `path` after it.
pub fn strip_component_prefix<'a>(path: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let prefix = trim_end_slashes(prefix);
    let rest = path.strip_prefix(prefix)?;
    match rest.first() {
        None | Some(b'/') => Some(rest),
        Some(_) => None,
    }
}

/// Whether `path` is `root` or below it (component-wise).
pub fn is_under(path: &[u8], root: &[u8]) -> bool {
    strip_component_prefix(path, root).is_some()
}

/// `path` (absolute) with empty and `.` components dropped and `..`
/// applied lexically, as the kernel walks it when no symlink is involved;
/// no trailing `/` unless it is `/`.
pub fn normalize(path: &[u8]) -> Bytes {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = BytesMut::with_capacity(path.len() + 1);
    for c in &parts {
        out.put_u8(b'/');
        out.put_slice(c);
    }
    if out.is_empty() {
        out.put_u8(b'/');
    }
    out.freeze()
}

/// The directory holding the last component of a normalized absolute path
/// (`/` for `/x` and for `/`).
pub fn parent(path: &Bytes) -> Bytes {
    match path.iter().rposition(|&c| c == b'/') {
        Some(0) | None => Bytes::from_static(b"/"),
        Some(i) => path.slice(..i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_prefix() {
        assert_eq!(strip_component_prefix(b"/a/b", b"/a"), Some(&b"/b"[..]));
        assert_eq!(strip_component_prefix(b"/a", b"/a"), Some(&b""[..]));
        assert_eq!(strip_component_prefix(b"/ab", b"/a"), None);
        assert_eq!(strip_component_prefix(b"/ab", b"/"), Some(&b"/ab"[..]));
        assert_eq!(strip_component_prefix(b"/", b"/"), Some(&b"/"[..]));
        assert_eq!(strip_component_prefix(b"/a/b", b"/a/"), Some(&b"/b"[..]));
        assert_eq!(strip_component_prefix(b"/a", b"/a/b"), None);
    }

    #[test]
    fn join_cases() {
        assert_eq!(join(b"/", b"/a").as_ref(), b"/a");
        assert_eq!(join(b"/mnt/t", b"/a").as_ref(), b"/mnt/t/a");
        assert_eq!(join(b"/mnt/t/", b"a").as_ref(), b"/mnt/t/a");
        assert_eq!(join(b"/mnt/t//", b"//a/").as_ref(), b"/mnt/t/a");
        assert_eq!(join(b"/mnt/t", b"/").as_ref(), b"/mnt/t");
        assert_eq!(join(b"/mnt/t", b"").as_ref(), b"/mnt/t");
        assert_eq!(join(b"/", b"/").as_ref(), b"/");
        assert_eq!(join(b"", b"").as_ref(), b"/");
        assert_eq!(join(b"", b"a").as_ref(), b"/a");
        // Only the join is normalized.
        assert_eq!(join(b"/x//y", b"/a//b").as_ref(), b"/x//y/a//b");
        assert_eq!(join(b"/caf\xe9", b"/\xff").as_ref(), b"/caf\xe9/\xff");
    }

    #[test]
    fn normalize_and_parent() {
        assert_eq!(normalize(b"/a//b/./c/").as_ref(), b"/a/b/c");
        assert_eq!(normalize(b"/a/../b/..").as_ref(), b"/");
        assert_eq!(normalize(b"/../x").as_ref(), b"/x");
        assert_eq!(normalize(b"/m/\xff\n").as_ref(), b"/m/\xff\n");
        assert_eq!(parent(&Bytes::from_static(b"/a/b")).as_ref(), b"/a");
        assert_eq!(parent(&Bytes::from_static(b"/a")).as_ref(), b"/");
        assert_eq!(parent(&Bytes::from_static(b"/")).as_ref(), b"/");
    }

    #[test]
    fn under() {
        assert!(is_under(b"/a/b", b"/a"));
        assert!(is_under(b"/a", b"/a"));
        assert!(!is_under(b"/ab", b"/a"));
        assert!(is_under(b"/x", b"/"));
    }
}
