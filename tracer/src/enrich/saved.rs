//! What the guard saved: when it stops or kills a process walking into a
//! mount, the entries that walk would have deleted are those under the
//! directory the mount shows. They are counted where that directory really
//! lives (the mount's backing root), never through the guarded mount
//! itself: a directory open inside a busy mount pins it, and can make
//! someone's retried unmount fail with EBUSY again. A mount showing a
//! filesystem of its own (a tmpfs) has nowhere else to be seen: its entries
//! are not counted.
//!
//! The count is bounded (entries and time) and stays on one filesystem (a
//! recursive delete would go on into mounts below, which are not the
//! guarded mount's data). It runs once per guard action, on the pipeline
//! (the ring buffer is drained by its own thread meanwhile).

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Entries counted at most.
pub const SAVED_MAX_ENTRIES: u64 = 100_000;
/// Time spent counting at most.
pub const SAVED_BUDGET: Duration = Duration::from_millis(100);

/// The entries under a guarded mount's directory when the guard acted.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Saved {
    /// Where they were counted: the mount's backing root, as a path in the
    /// process's namespace.
    pub under: Bytes,
    /// Files, directories and other entries below it (not itself).
    pub entries: u64,
    /// Every entry was counted (not cut by `SAVED_MAX_ENTRIES` or
    /// `SAVED_BUDGET`).
    pub complete: bool,
}

/// Count the entries under `dir` (not following symlinks, not leaving its
/// filesystem), within `max` entries and `budget`; `None` when `dir` cannot
/// be read.
pub fn count(dir: &Path, max: u64, budget: Duration) -> Option<(u64, bool)> {
    let start = Instant::now();
    let dev = std::fs::symlink_metadata(dir).ok()?.dev();
    let mut stack = vec![dir.to_path_buf()];
    let mut entries = 0u64;
    let mut first = true;
    while let Some(d) = stack.pop() {
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(_) if first => return None,
            Err(_) => continue, // gone meanwhile, or not readable
        };
        first = false;
        for e in rd.flatten() {
            entries += 1;
            if entries >= max || start.elapsed() >= budget {
                return Some((entries, false));
            }
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && e.metadata().is_ok_and(|m| m.dev() == dev) {
                stack.push(e.path());
            }
        }
    }
    Some((entries, true))
}

/// What a guard action on process `pid` saved: the entries under the
/// mount's backing root `backing` (a path in the process's namespace),
/// read through `/proc/PID/root` while the process is there, else directly
/// when `own_view` (the process saw the mounts as mntrace does). `None`
/// when the backing root is the mountpoint itself (a filesystem of its
/// own: only visible through the guarded mount) or cannot be read.
pub fn saved(pid: u32, backing: &Bytes, mountpoint: &[u8], own_view: bool) -> Option<Saved> {
    if backing.as_ref() == mountpoint || !backing.starts_with(b"/") {
        return None;
    }
    let rel = Path::new(std::ffi::OsStr::from_bytes(&backing[1..]));
    let through_proc = PathBuf::from(format!("/proc/{pid}/root")).join(rel);
    let found = count(&through_proc, SAVED_MAX_ENTRIES, SAVED_BUDGET).or_else(|| {
        own_view
            .then(|| count(&Path::new("/").join(rel), SAVED_MAX_ENTRIES, SAVED_BUDGET))
            .flatten()
    });
    let (entries, complete) = found?;
    Some(Saved {
        under: backing.clone(),
        entries,
        complete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_entry_below_and_says_when_it_stopped_short() {
        let d = tempfile::tempdir().expect("tempdir");
        for f in ["a/b/c", "a/d", "e"] {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        std::os::unix::fs::symlink("/", d.path().join("root-link")).unwrap();
        // a, a/b, a/b/c, a/d, e, root-link (not followed).
        assert_eq!(count(d.path(), 1000, SAVED_BUDGET), Some((6, true)));
        assert_eq!(count(d.path(), 3, SAVED_BUDGET), Some((3, false)));
        assert_eq!(count(&d.path().join("nope"), 1000, SAVED_BUDGET), None);
    }

    #[test]
    fn a_filesystem_of_its_own_is_never_entered() {
        let b = Bytes::from_static(b"/mnt/t");
        assert_eq!(saved(std::process::id(), &b, b"/mnt/t", true), None);
    }
}
