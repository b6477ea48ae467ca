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
    find_holders_of(&[mnt_id], budget).pop().unwrap_or_default()
}

/// [`find_holders`] for several mounts in one pass over `/proc`: each
/// process is read once and its holds sorted to the mounts they are on.
/// The scans, in the order of `mnt_ids`, are what separate scans at that
/// moment would give (a mount listed twice gets the same scan twice).
pub fn find_holders_of(mnt_ids: &[u32], budget: Duration) -> Vec<HolderScan> {
    let start = Instant::now();
    let mut scans = vec![HolderScan::default(); mnt_ids.len()];
    let Ok(pids) = list_pids() else {
        return scans;
    };
    let mut complete = true;
    let mut scanned = 0;
    for pid in pids {
        if start.elapsed() >= budget {
            complete = false;
            break;
        }
        scanned += 1;
        for (i, holder) in scan_process(pid, mnt_ids) {
            scans[i].holders.push(holder);
        }
    }
    for s in &mut scans {
        s.complete = complete;
        s.processes_scanned = scanned;
        s.holders.sort_by_key(|h| h.pid);
    }
    scans
}

/// Identifies one requested holder scan; results are joined by it.
pub type ScanId = u64;

/// Requests answered by one pass over `/proc` at most.
const BATCH_MAX: usize = 64;

/// Holder scans on a thread of their own: a scan reads all of /proc (up to
/// its budget), which must never hold up the events behind the EBUSY that
/// asked for it. Requests are answered in order, those waiting together by
/// one pass ([`find_holders_of`]); results are joined to the busy mount by
/// [`ScanId`].
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
                    // The requests that came in while a pass ran are
                    // answered together by the next pass: a storm of busy
                    // unmounts reads /proc once per pass, not once per
                    // mount.
                    while let Ok(first) = req_rx.recv() {
                        let mut batch = vec![first];
                        batch.extend(req_rx.try_iter().take(BATCH_MAX - 1));
                        let mnts: Vec<u32> = batch.iter().map(|&(_, m)| m).collect();
                        let scans = find_holders_of(&mnts, budget);
                        for ((id, _), scan) in batch.into_iter().zip(scans) {
                            if res_tx.send((id, scan)).is_err() {
                                return;
                            }
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

/// The holds of process `pid` on each of `mnt_ids`: (index in `mnt_ids`,
/// holder) for each mount it holds, by index.
fn scan_process(pid: u32, mnt_ids: &[u32]) -> Vec<(usize, Holder)> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    // The holds of every mount looked for, each with the mount it is on.
    let mut found: Vec<(u32, Hold)> = fd_holds(&dir, mnt_ids);
    let cwd = dir.join("cwd");
    if let Some(m) = on_mount(&cwd, mnt_ids) {
        if let Some(path) = read_link(&cwd) {
            found.push((m, Hold::Cwd { path }));
        }
    }
    let root = dir.join("root");
    if let Some(m) = on_mount(&root, mnt_ids) {
        if let Some(path) = read_link(&root) {
            found.push((m, Hold::Root { path }));
        }
    }
    map_holds(&dir, mnt_ids, &mut found);
    if found.is_empty() {
        return Vec::new();
    }
    // Gone by now: skip it like any other vanished process.
    let Ok(mut comm) = fs::read(dir.join("comm")) else {
        return Vec::new();
    };
    if comm.last() == Some(&b'\n') {
        comm.pop();
    }
    let comm = Bytes::from(comm);
    mnt_ids
        .iter()
        .enumerate()
        .filter_map(|(i, &m)| {
            let holds: Vec<Hold> = found
                .iter()
                .filter(|(on, _)| *on == m)
                .map(|(_, h)| h.clone())
                .collect();
            (!holds.is_empty()).then(|| {
                (
                    i,
                    Holder {
                        pid,
                        comm: comm.clone(),
                        holds,
                    },
                )
            })
        })
        .collect()
}

fn fd_holds(dir: &Path, mnt_ids: &[u32]) -> Vec<(u32, Hold)> {
    let Ok(entries) = fs::read_dir(dir.join("fdinfo")) else {
        return Vec::new();
    };
    let mut found: Vec<(i32, u32, Bytes)> = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let Some(fd) = parse_decimal::<i32>(entry.file_name().as_bytes()) else {
            continue;
        };
        let Ok(info) = fs::read(entry.path()) else {
            continue;
        };
        let Some(m) = fdinfo_mnt_id(&info).filter(|m| mnt_ids.contains(m)) else {
            continue;
        };
        if let Some(path) = read_link(&dir.join("fd").join(fd.to_string())) {
            found.push((fd, m, path));
        }
    }
    found.sort_by_key(|&(fd, _, _)| fd);
    found
        .into_iter()
        .map(|(fd, m, path)| (m, Hold::Fd { fd, path }))
        .collect()
}

/// The `mnt_id:` line of a `/proc/PID/fdinfo/N` file.
fn fdinfo_mnt_id(info: &[u8]) -> Option<u32> {
    info.split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"mnt_id:"))
        .and_then(|v| parse_decimal(v.trim_ascii()))
}

fn map_holds(dir: &Path, mnt_ids: &[u32], holds: &mut Vec<(u32, Hold)>) {
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
        if let Some(m) = on_mount(&link, mnt_ids) {
            holds.push((m, Hold::Map { path }));
        }
    }
}

fn read_link(path: &Path) -> Option<Bytes> {
    let target = fs::read_link(path).ok()?;
    Some(Bytes::copy_from_slice(target.as_os_str().as_bytes()))
}

/// Which of `mnt_ids` `path` (followed, so `/proc` magic links lead to the
/// real file) is on, if any.
fn on_mount(path: &Path, mnt_ids: &[u32]) -> Option<u32> {
    let id = u32::try_from(statx_mnt_id(path)?).ok()?;
    mnt_ids.contains(&id).then_some(id)
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
    fn one_pass_for_several_mounts_sorts_holds_to_their_mounts() {
        let dir = tempfile::tempdir().unwrap();
        let file_path = dir.path().join("held");
        let _file = fs::File::create(&file_path).unwrap();
        let on_dir = mnt_id_of(dir.path());
        let on_root = mnt_id_of(Path::new("/proc/self/root"));
        let ids = [on_dir, u32::MAX, on_root, on_dir];
        let scans = find_holders_of(&ids, BUDGET);
        assert_eq!(scans.len(), ids.len());
        let me = std::process::id();
        use std::os::fd::AsRawFd;
        for scan in &scans {
            assert!(scan.complete);
            assert!(scan.processes_scanned >= 1);
            assert_well_ordered(scan);
        }
        assert!(scans[1].holders.is_empty());
        assert_eq!(scans[0], scans[3], "a mount asked twice");
        let held = Hold::Fd {
            fd: _file.as_raw_fd(),
            path: bytes_of(&fs::canonicalize(&file_path).unwrap()),
        };
        assert!(holder(&scans[0], me).holds.contains(&held));
        assert!(holder(&scans[2], me).holds.contains(&Hold::Root {
            path: Bytes::from_static(b"/")
        }));
        if on_dir != on_root {
            let mine = holder(&scans[0], me);
            assert!(!mine.holds.iter().any(|h| matches!(h, Hold::Root { .. })));
            assert!(!holder(&scans[2], me).holds.contains(&held));
        }
    }

    #[test]
    fn scanner_answers_every_request_by_id() {
        let mut s = HolderScanner::new(BUDGET);
        for id in 1..=5 {
            s.submit(id, u32::MAX - id as u32);
        }
        let mut got: Vec<ScanId> = s.wait_all().into_iter().map(|(id, _)| id).collect();
        assert_eq!(s.pending(), 0);
        got.sort_unstable();
        assert_eq!(got, vec![1, 2, 3, 4, 5]);
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
