//! Who holds a mount busy: a scan of `/proc` for processes with an open file
//! descriptor, working directory, root directory or memory mapping on a
//! given mount (the usual reasons for `EBUSY` from `umount`).
//!
//! The scan is best effort by nature: processes come and go while it runs,
//! and those that vanish or deny access are skipped silently. It is bounded
//! by a time budget; [`HolderScan::complete`] says whether every process was
//! looked at. Only thread-group leaders (`/proc/PID`) are scanned, so a
//! thread with its own fd table or working directory (`unshare(CLONE_FILES
//! | CLONE_FS)`) is not seen.

use std::ffi::CString;
use std::fs;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// One reason a process keeps a mount busy.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Hold {
    /// An open file descriptor (`path`: target of `/proc/PID/fd/N`).
    Fd { fd: i32, path: Bytes },
    /// The working directory.
    Cwd { path: Bytes },
    /// The root directory (`chroot`, or a container's root).
    Root { path: Bytes },
    /// A memory-mapped file (one entry per distinct path).
    Map { path: Bytes },
}

/// A process holding the mount, with its holds in the order: file
/// descriptors (by number), working directory, root, memory maps.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    pub pid: u32,
    /// `/proc/PID/comm` without the trailing newline.
    pub comm: Bytes,
    pub holds: Vec<Hold>,
}

/// Result of [`find_holders`]: holders sorted by pid.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HolderScan {
    pub holders: Vec<Holder>,
    /// Processes looked at (including those that vanished mid-scan).
    pub processes_scanned: u32,
    /// Every process listed in `/proc` was looked at within the budget.
    pub complete: bool,
}

/// Scans every process in `/proc` for holds on mount `mnt_id` (the mount id
/// of `/proc/PID/mountinfo`, unique system-wide). The elapsed time is
/// checked before each process; once it reaches `budget` the scan stops
/// with `complete: false`.
pub fn find_holders(mnt_id: u32, budget: Duration) -> HolderScan {
    let start = Instant::now();
    let mut scan = HolderScan::default();
    let Ok(pids) = list_pids() else {
        return scan;
    };
    scan.complete = true;
    for pid in pids {
        if start.elapsed() >= budget {
            scan.complete = false;
            break;
        }
        scan.processes_scanned += 1;
        if let Some(holder) = scan_process(pid, mnt_id) {
            scan.holders.push(holder);
        }
    }
    scan.holders.sort_by_key(|h| h.pid);
    scan
}

/// Identifies one requested holder scan; results are joined by it.
pub type ScanId = u64;

/// Holder scans on a thread of their own: a scan reads all of /proc (up to
/// its budget), which must never hold up the events behind the EBUSY that
/// asked for it. Requests are answered in order; results are joined to the
/// busy mount by [`ScanId`].
pub struct HolderScanner {
    budget: Duration,
    worker: Option<Worker>,
    /// Requests not answered yet.
    pending: u64,
}

struct Worker {
    requests: std::sync::mpsc::Sender<(ScanId, u32)>,
    results: std::sync::mpsc::Receiver<(ScanId, HolderScan)>,
    handle: std::thread::JoinHandle<()>,
}

impl HolderScanner {
    pub fn new(budget: Duration) -> HolderScanner {
        HolderScanner {
            budget,
            worker: None,
            pending: 0,
        }
    }

    /// Scan for holders of `mnt_id`; the answer comes from [`Self::ready`]
    /// or [`Self::wait_all`].
    pub fn submit(&mut self, id: ScanId, mnt_id: u32) {
        let budget = self.budget;
        let w = self.worker.get_or_insert_with(|| {
            let (req_tx, req_rx) = std::sync::mpsc::channel::<(ScanId, u32)>();
            let (res_tx, res_rx) = std::sync::mpsc::channel();
            let handle = std::thread::Builder::new()
                .name("mntrace-holders".into())
                .spawn(move || {
                    for (id, mnt) in req_rx {
                        if res_tx.send((id, find_holders(mnt, budget))).is_err() {
                            return;
                        }
                    }
                })
                .expect("spawn the holder-scan thread");
            Worker {
                requests: req_tx,
                results: res_rx,
                handle,
            }
        });
        if w.requests.send((id, mnt_id)).is_ok() {
            self.pending += 1;
        }
    }

    /// Scans finished so far.
    pub fn ready(&mut self) -> Vec<(ScanId, HolderScan)> {
        let Some(w) = &self.worker else {
            return Vec::new();
        };
        let v: Vec<_> = w.results.try_iter().collect();
        self.pending -= v.len() as u64;
        v
    }

    /// Every outstanding scan (each is bounded by the budget).
    pub fn wait_all(&mut self) -> Vec<(ScanId, HolderScan)> {
        let mut v = Vec::new();
        let Some(w) = &self.worker else {
            return v;
        };
        while self.pending > 0 {
            match w.results.recv() {
                Ok(r) => {
                    v.push(r);
                    self.pending -= 1;
                }
                Err(_) => break,
            }
        }
        v
    }

    pub fn pending(&self) -> u64 {
        self.pending
    }
}

impl Drop for HolderScanner {
    fn drop(&mut self) {
        if let Some(w) = self.worker.take() {
            drop(w.requests);
            let _ = w.handle.join();
        }
    }
}

fn list_pids() -> std::io::Result<Vec<u32>> {
    let mut pids: Vec<u32> = fs::read_dir("/proc")?
        .filter_map(|e| e.ok())
        .filter_map(|e| parse_decimal(e.file_name().as_bytes()))
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// A plain non-negative decimal number (no sign, no spaces).
fn parse_decimal<T: std::str::FromStr>(b: &[u8]) -> Option<T> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn scan_process(pid: u32, mnt_id: u32) -> Option<Holder> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let mut holds = fd_holds(&dir, mnt_id);
    let cwd = dir.join("cwd");
    if on_mount(&cwd, mnt_id) {
        if let Some(path) = read_link(&cwd) {
            holds.push(Hold::Cwd { path });
        }
    }
    let root = dir.join("root");
    if on_mount(&root, mnt_id) {
        if let Some(path) = read_link(&root) {
            holds.push(Hold::Root { path });
        }
    }
    map_holds(&dir, mnt_id, &mut holds);
    if holds.is_empty() {
        return None;
    }
    // Gone by now: skip it like any other vanished process.
    let mut comm = fs::read(dir.join("comm")).ok()?;
    if comm.last() == Some(&b'\n') {
        comm.pop();
    }
    Some(Holder {
        pid,
        comm: Bytes::from(comm),
        holds,
    })
}

fn fd_holds(dir: &Path, mnt_id: u32) -> Vec<Hold> {
    let Ok(entries) = fs::read_dir(dir.join("fdinfo")) else {
        return Vec::new();
    };
    let mut found: Vec<(i32, Bytes)> = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let Some(fd) = parse_decimal::<i32>(entry.file_name().as_bytes()) else {
            continue;
        };
        let Ok(info) = fs::read(entry.path()) else {
            continue;
        };
        if fdinfo_mnt_id(&info) != Some(mnt_id) {
            continue;
        }
        if let Some(path) = read_link(&dir.join("fd").join(fd.to_string())) {
            found.push((fd, path));
        }
    }
    found.sort_by_key(|&(fd, _)| fd);
    found
        .into_iter()
        .map(|(fd, path)| Hold::Fd { fd, path })
        .collect()
}

/// The `mnt_id:` line of a `/proc/PID/fdinfo/N` file.
fn fdinfo_mnt_id(info: &[u8]) -> Option<u32> {
    info.split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"mnt_id:"))
        .and_then(|v| parse_decimal(v.trim_ascii()))
}

fn map_holds(dir: &Path, mnt_id: u32, holds: &mut Vec<Hold>) {
    let Ok(entries) = fs::read_dir(dir.join("map_files")) else {
        return;
    };
    let mut seen: Vec<Bytes> = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let link = entry.path();
        let Some(path) = read_link(&link) else {
            continue;
        };
        if seen.contains(&path) {
            continue;
        }
        seen.push(path.clone());
        if on_mount(&link, mnt_id) {
            holds.push(Hold::Map { path });
        }
    }
}

fn read_link(path: &Path) -> Option<Bytes> {
    let target = fs::read_link(path).ok()?;
    Some(Bytes::copy_from_slice(target.as_os_str().as_bytes()))
}

/// Whether `path` (followed, so `/proc` magic links lead to the real file)
/// is on mount `mnt_id`.
fn on_mount(path: &Path, mnt_id: u32) -> bool {
    statx_mnt_id(path) == Some(u64::from(mnt_id))
}

/// The mount id of what `path` resolves to, via `statx(STATX_MNT_ID)`.
/// `AT_STATX_DONT_SYNC` keeps network filesystems from being asked for
/// fresh attributes, which the mount id does not need.
fn statx_mnt_id(path: &Path) -> Option<u64> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stx = MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `c_path` is a NUL-terminated string and `stx` points to
    // writable memory the size of `struct statx`.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            libc::AT_STATX_DONT_SYNC,
            libc::STATX_MNT_ID,
            stx.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: all-zero is a valid `struct statx`, and statx succeeded.
    let stx = unsafe { stx.assume_init() };
    (stx.stx_mask & libc::STATX_MNT_ID != 0).then_some(stx.stx_mnt_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};

    const BUDGET: Duration = Duration::from_secs(30);

    struct KillOnDrop(Child);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn mnt_id_of(path: &Path) -> u32 {
        u32::try_from(statx_mnt_id(path).unwrap()).unwrap()
    }

    fn bytes_of(path: &Path) -> Bytes {
        Bytes::copy_from_slice(path.as_os_str().as_bytes())
    }

    fn holder(scan: &HolderScan, pid: u32) -> &Holder {
        scan.holders
            .iter()
            .find(|h| h.pid == pid)
            .unwrap_or_else(|| panic!("pid {pid} not among holders: {scan:#?}"))
    }

    fn assert_well_ordered(scan: &HolderScan) {
        assert!(scan.holders.windows(2).all(|w| w[0].pid < w[1].pid));
        for h in &scan.holders {
            assert!(!h.holds.is_empty());
            assert!(!h.comm.ends_with(b"\n"));
            let rank = |hold: &Hold| match hold {
                Hold::Fd { fd, .. } => (0, i64::from(*fd)),
                Hold::Cwd { .. } => (1, 0),
                Hold::Root { .. } => (2, 0),
                Hold::Map { .. } => (3, 0),
            };
            let ranks: Vec<_> = h.holds.iter().map(rank).collect();
            assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{h:?}");
            assert!(h.holds.iter().filter(|x| rank(x).0 == 1).count() <= 1);
            let maps: Vec<_> = h
                .holds
                .iter()
                .filter_map(|x| match x {
                    Hold::Map { path } => Some(path),
                    _ => None,
                })
                .collect();
            for (i, p) in maps.iter().enumerate() {
                assert!(!maps[i + 1..].contains(p), "duplicate map {p:?}");
            }
        }
    }

    #[test]
    fn open_file_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let file_path = dir.path().join("held \u{e9}");
        let _file = fs::File::create(&file_path).unwrap();
        let file_path = fs::canonicalize(&file_path).unwrap();
        let id = mnt_id_of(dir.path());
        let scan = find_holders(id, Duration::from_secs(2));
        assert!(scan.complete);
        assert!(scan.processes_scanned >= 1);
        let me = holder(&scan, std::process::id());
        assert!(!me.comm.is_empty());
        assert!(
            me.holds.iter().any(|h| matches!(
                h,
                Hold::Fd { path, .. } if *path == bytes_of(&file_path)
            )),
            "{me:?}"
        );
        assert_well_ordered(&scan);
    }

    #[test]
    fn absurd_mount_id_has_no_holders() {
        let scan = find_holders(u32::MAX, BUDGET);
        assert!(scan.complete);
        assert!(scan.holders.is_empty());
        assert!(scan.processes_scanned >= 1);
    }

    #[test]
    fn zero_budget_is_incomplete() {
        let scan = find_holders(u32::MAX, Duration::ZERO);
        assert!(!scan.complete);
        assert_eq!(scan.processes_scanned, 0);
        assert!(scan.holders.is_empty());
    }

    #[test]
    fn child_cwd_and_mapped_executable() {
        let dir = tempfile::tempdir().unwrap();
        let child = KillOnDrop(
            Command::new("sleep")
                .arg("60")
                .current_dir(dir.path())
                .spawn()
                .unwrap(),
        );
        let pid = child.0.id();
        let exe_link = PathBuf::from(format!("/proc/{pid}/exe"));
        let exe = read_link(&exe_link).unwrap();

        let scan = find_holders(mnt_id_of(dir.path()), BUDGET);
        let h = holder(&scan, pid);
        assert_eq!(h.comm.as_ref(), b"sleep");
        let cwd = bytes_of(&fs::canonicalize(dir.path()).unwrap());
        assert!(h.holds.contains(&Hold::Cwd { path: cwd }), "{h:?}");
        assert_well_ordered(&scan);

        let scan = find_holders(mnt_id_of(&exe_link), BUDGET);
        let h = holder(&scan, pid);
        assert!(h.holds.contains(&Hold::Map { path: exe }), "{h:?}");
        assert_well_ordered(&scan);
    }

    #[test]
    fn root_of_init_mount() {
        // Our root directory is on the mount at "/" of our namespace.
        let scan = find_holders(mnt_id_of(Path::new("/proc/self/root")), BUDGET);
        let me = holder(&scan, std::process::id());
        assert!(me.holds.contains(&Hold::Root {
            path: Bytes::from_static(b"/")
        }));
    }

    #[test]
    fn fdinfo_parsing() {
        let info = b"pos:\t0\nflags:\t02100002\nmnt_id:\t27\nino:\t1234\n";
        assert_eq!(fdinfo_mnt_id(info), Some(27));
        assert_eq!(fdinfo_mnt_id(b"pos:\t0\n"), None);
        assert_eq!(fdinfo_mnt_id(b"mnt_id:\tx\n"), None);
        assert_eq!(parse_decimal::<u32>(b"123"), Some(123));
        assert_eq!(parse_decimal::<u32>(b"+1"), None);
        assert_eq!(parse_decimal::<u32>(b"self"), None);
        assert_eq!(parse_decimal::<u32>(b""), None);
    }
}
