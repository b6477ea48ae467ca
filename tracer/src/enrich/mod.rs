//! Enrichment: facts userspace adds to kernel events before correlation, so
//! the correlator itself never does I/O: wall-clock time, the mount table of
//! every mount namespace seen, and who holds a mount busy.

pub mod clock;
pub mod facts;
pub mod holders;
pub mod mount_table;
pub mod ns_pids;
pub mod saved;
pub mod statmount;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tracer_common::uapi::{
    EBUSY, MS_BIND, MS_MOVE, MS_PRIVATE, MS_REMOUNT, MS_SHARED, MS_SLAVE, MS_UNBINDABLE,
    OPEN_TREE_CLONE,
};

use crate::model::{Args, Event};
use crate::path::resolve_arg;
use holders::{HolderScanner, ScanId};
use mount_table::{MountInfo, MountTable};

/// What enrichment adds to one event.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Enrichment {
    /// umount: the target as an absolute path in the caller's namespace.
    pub umount_target: Option<Bytes>,
    /// umount that failed with EBUSY: the mount at the target (still there);
    /// deletion: the mount its directory is on.
    pub mount: Option<Arc<MountInfo>>,
    /// Where the root of `mount` really lives (a path in the namespace),
    /// from the mount table: for a bind or clone of a directory, that
    /// directory.
    pub backing_root: Option<Bytes>,
    /// umount that failed with EBUSY: the scan of who holds the mount,
    /// running on its own thread (`None`: not scanned, over the rate limit
    /// or the mount unknown). Its result is joined by this id.
    pub holder_scan: Option<ScanId>,
    /// umount that failed with EBUSY: mountpoints strictly below the
    /// target in the caller's namespace, as the table has them now.
    pub submounts: Vec<Bytes>,
    /// deletion whose path has several components (or is absolute): the
    /// mount of the directory that really holds the entry, from the table.
    pub parent_mnt_id: Option<u32>,
    /// guard action that stopped or killed the process: what it saved.
    #[serde(default)]
    pub saved: Option<saved::Saved>,
}

pub struct Enricher {
    pub table: MountTable,
    /// What the events themselves say a mount is a copy of, for when the
    /// mount table cannot (the namespace is gone by the time userspace
    /// looks): `open_tree(OPEN_TREE_CLONE)` clones by mount id, and
    /// `mount(MS_BIND)` binds by (namespace, mountpoint). Bounded.
    clones: Recent<u32>,
    binds: Recent<(u32, Bytes)>,
    /// Holder scans, off the event path.
    pub scanner: HolderScanner,
    /// Namespace → the pid whose /proc could not be read for it (gone):
    /// retried only with another process of that namespace.
    failed_ns: HashMap<u32, u32>,
    /// Mount ids still unknown after a reload: not reloaded for again.
    missing_mnt: HashSet<u32>,
    /// Last event time per namespace with a loaded table: the least recently
    /// used tables are dropped beyond `NS_MAX` (containers come and go).
    ns_seen: HashMap<u32, u64>,
    /// Holder scans: a rate limit (event time) and the next scan's id.
    scans: ScanRate,
    /// Single mounts from the kernel, so that mount churn never rereads a
    /// whole table ([`statmount`]).
    statmount: statmount::StatMount,
    /// 64-bit ids of mount namespaces (by inode), for statmount.
    ns_ids: HashMap<u32, u64>,
    /// A live process per namespace, to read it through when the event's
    /// own process is gone.
    ns_pids: ns_pids::NsPids,
    /// This process's mount namespace and root: where statmount's
    /// mountpoints are the ones mountinfo gives.
    own: OwnView,
}

/// This process's mount namespace (inode) and root directory (mount,
/// inode), learnt once.
#[derive(Default)]
struct OwnView {
    known: Option<Option<(u32, (u64, u64))>>,
}

impl OwnView {
    /// This process's namespace and root, learnt once.
    fn get(&mut self) -> Option<(u32, (u64, u64))> {
        *self.known.get_or_insert_with(|| {
            let ns = mount_table::ns_inode("/proc/self/ns/mnt").ok()?;
            Some((ns, statmount::mount_and_inode(c"/").ok()?))
        })
    }

    /// Whether namespace `ns` is this process's.
    fn is_own_ns(&mut self, ns: u32) -> bool {
        self.get().is_some_and(|(own, _)| own == ns)
    }

    /// Whether process `pid` of namespace `ns` sees the mounts as this
    /// process does: the same namespace, the same root directory. Its
    /// root is looked at through `/proc/PID/root`, which leads to its root
    /// directory (not under any busy mount: the process would hold it).
    fn same_view(&mut self, ns: u32, pid: u32) -> bool {
        let Some((own_ns, own_root)) = self.get() else {
            return false;
        };
        if ns != own_ns {
            return false;
        }
        let Ok(root) = std::ffi::CString::new(format!("/proc/{pid}/root")) else {
            return false;
        };
        statmount::mount_and_inode(&root).is_ok_and(|r| r == own_root)
    }
}

impl Default for Enricher {
    fn default() -> Self {
        Self::new()
    }
}

impl Enricher {
    pub fn new() -> Enricher {
        Enricher {
            table: MountTable::new(),
            scanner: HolderScanner::new(HOLDER_SCAN_BUDGET),
            failed_ns: HashMap::new(),
            missing_mnt: HashSet::new(),
            ns_seen: HashMap::new(),
            scans: ScanRate::default(),
            statmount: statmount::StatMount::default(),
            ns_ids: HashMap::new(),
            ns_pids: ns_pids::NsPids::default(),
            own: OwnView::default(),
            clones: Recent::new(RECENT_MAX),
            binds: Recent::new(RECENT_MAX),
        }
    }

    /// Remember what mounts are copies of, from the events themselves.
    fn learn(&mut self, ev: &Event) {
        if ev.ret < 0 {
            return;
        }
        // Mounts already there moved or changed: their entries are asked
        // about again at the next refresh.
        let alters = match &ev.args {
            Args::Mount { flags, .. } => flags & ALTERS_MOUNTS != 0,
            Args::MoveMount { .. } | Args::MountSetattr { .. } => true,
            _ => false,
        };
        if alters {
            self.table.forget_refreshed(ev.mnt_ns);
        }
        match &ev.args {
            Args::OpenTree {
                pathname,
                flags,
                dir,
                result: Some(r),
                ..
            } if flags & u64::from(OPEN_TREE_CLONE) != 0 => {
                if let Some(src) = absolute(pathname.value(), dir) {
                    self.clones.insert(r.mnt_id, src);
                }
            }
            Args::Mount {
                source,
                target,
                flags,
                cwd,
                ..
            } if flags & MS_BIND != 0 => {
                if let (Some(src), Some(dst)) =
                    (absolute(source.value(), cwd), absolute(target.value(), cwd))
                {
                    self.binds.insert((ev.mnt_ns, dst), src);
                }
            }
            _ => {}
        }
    }

    /// Reload the mount table of `ev`'s namespace: from the kernel's list
    /// of its mounts when it can ([`Enricher::refresh`]), else from the
    /// mountinfo of a process of it.
    fn reload(&mut self, ev: &Event) {
        let loaded = match self.ns_pids.pid_in(ev.mnt_ns, ev.pid, ev.ts_ns) {
            Some(pid) if self.refresh(ev, pid) => Ok(ev.mnt_ns),
            Some(pid) => self.table.load_pid(pid),
            None => Err(std::io::ErrorKind::NotFound.into()),
        };
        match loaded {
            Ok(ns) => {
                self.failed_ns.remove(&ev.mnt_ns);
                self.ns_seen.insert(ns, ev.ts_ns);
                self.evict_namespaces();
            }
            Err(_) => {
                // The process is gone (short-lived, or its namespace with
                // it). Keep whatever table we have; only remember not to
                // retry through the same pid.
                if self.failed_ns.len() >= SET_MAX {
                    self.failed_ns.clear();
                }
                self.failed_ns.insert(ev.mnt_ns, ev.pid);
            }
        }
    }

    /// The table of `ev`'s namespace from listmount and statmount: the
    /// same entries as the mountinfo of `pid` (a process of it), but only
    /// the mounts made since the last refresh are asked about, so a busy
    /// unmount in a churning namespace costs a list of ids, not a whole
    /// mountinfo. Nothing under a mount is looked up by path. The kernel
    /// gives mountpoints as this process sees them, so only for its own
    /// namespace, through a process with its root directory (event paths
    /// are as the process sees them: a chroot sees other paths). False
    /// otherwise, or when the kernel cannot (older than 6.11): read
    /// mountinfo.
    fn refresh(&mut self, ev: &Event, pid: u32) -> bool {
        let ns = ev.mnt_ns;
        if ns == 0 || !self.statmount.available() || !self.own.same_view(ns, pid) {
            return false;
        }
        let Some(ns_id) = self.ns_id(ns, ev) else {
            return false;
        };
        let Ok(ids) = self.statmount.list(ns_id) else {
            return false;
        };
        let sm = &mut self.statmount;
        self.table
            .refresh(ns, &ids, |unique| match sm.mount(unique, ns_id) {
                Ok(m) => Ok(Some(m)),
                // Unmounted since it was listed: mountinfo read now would
                // not have it either.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
                Err(e) => Err(e),
            })
            .is_ok()
    }

    /// Drop the least recently used namespace tables beyond `NS_MAX`.
    fn evict_namespaces(&mut self) {
        while self.ns_seen.len() > NS_MAX {
            let Some((&oldest, _)) = self.ns_seen.iter().min_by_key(|&(_, &t)| t) else {
                break;
            };
            self.ns_seen.remove(&oldest);
            self.table.remove_ns(oldest);
        }
    }

    /// The mount a deletion's directory is on, and its namespace. From the
    /// table when it is sure of it ([`MountTable::exact`]); else that mount
    /// alone from the kernel, by its 64-bit id (statmount); else (an older
    /// kernel, a mount of no namespace) the table, reread once per unknown
    /// id.
    fn mount_of_dir(
        &mut self,
        ev: &Event,
        dir: &crate::model::Dir,
    ) -> Option<(u32, Arc<MountInfo>)> {
        let ns = dir.mnt_ns;
        if let Some(m) = self.table.exact(ns, dir.mnt_id, dir.mnt_id_unique) {
            return Some((ns, m.clone()));
        }
        if dir.mnt_id_unique != 0 && ns != 0 && self.statmount.available() {
            if let Some(ns_id) = self.ns_id(ns, ev) {
                if let Ok(m) = self.statmount.mount(dir.mnt_id_unique, ns_id) {
                    if m.mnt_id == dir.mnt_id {
                        return Some((ns, self.table.upsert(ns, m, dir.mnt_id_unique)));
                    }
                }
            }
        }
        // The entry of that 32-bit id is another mount (the kernel reused
        // the id), and this one is gone (its namespace with it): what the
        // events said of it (binds, clones) is all there is.
        let unique = self.table.unique_of(ns, dir.mnt_id);
        if dir.mnt_id_unique != 0 && unique.is_some_and(|u| u != dir.mnt_id_unique) {
            return None;
        }
        if self.table.find(dir.mnt_id).is_none()
            && bounded_insert(&mut self.missing_mnt, dir.mnt_id)
        {
            // A mount we have not seen yet (made since the last load).
            self.reload(ev);
        }
        self.table.find(dir.mnt_id).map(|(ns, m)| (ns, m.clone()))
    }

    /// The 64-bit id of mount namespace `ns` (inode), learnt from `ev`'s
    /// process when it is in that namespace.
    fn ns_id(&mut self, ns: u32, ev: &Event) -> Option<u64> {
        if let Some(&id) = self.ns_ids.get(&ns) {
            return Some(id);
        }
        if ev.mnt_ns != ns {
            return None;
        }
        let pid = self.ns_pids.pid_in(ns, ev.pid, ev.ts_ns)?;
        let id = statmount::ns_id_of_pid(pid).ok()?;
        if self.ns_ids.len() >= SET_MAX {
            self.ns_ids.clear();
        }
        self.ns_ids.insert(ns, id);
        Some(id)
    }

    /// Where the root of mount `m` (of namespace `ns`) really lives. A
    /// mount of a directory (its root is not the filesystem's) that the
    /// table can only resolve through itself lacks the mount showing that
    /// directory: made after the table was read (mount events do not
    /// reread it). Then the table is read again, once per change; if that
    /// cannot help, what the bind event said.
    fn backing_root(&mut self, ev: &Event, ns: u32, m: &MountInfo) -> Option<Bytes> {
        let through_itself =
            |r: &Option<Bytes>| &m.root[..] != b"/" && r.as_deref() == Some(&m.mountpoint[..]);
        let found = self.table.backing_path(ns, m, b"/");
        if !through_itself(&found) {
            return found;
        }
        if ns == ev.mnt_ns && !self.table.is_current(ns) {
            self.reload(ev);
            let again = self.table.backing_path(ns, m, b"/");
            if !through_itself(&again) {
                return again;
            }
        }
        self.binds
            .get(&(ns, m.mountpoint.clone()))
            .cloned()
            .or(found)
    }

    fn ensure_ns(&mut self, ev: &Event) {
        if !self.table.has_ns(ev.mnt_ns) && self.failed_ns.get(&ev.mnt_ns) != Some(&ev.pid) {
            self.reload(ev);
        }
    }

    /// The mount directory `dir` is on, and where its root really lives:
    /// from the table, else from the events (clones, binds).
    fn dir_mount(&mut self, ev: &Event, dir: &crate::model::Dir, out: &mut Enrichment) {
        if let Some((ns, m)) = self.mount_of_dir(ev, dir) {
            out.backing_root = self.backing_root(ev, ns, &m);
            out.mount = Some(m);
        } else if let Some(src) = self.clones.get(&dir.mnt_id) {
            out.backing_root = Some(src.clone());
        } else if let Some(mp) = dir.mountpoint() {
            out.backing_root = self.binds.get(&(dir.mnt_ns, mp)).cloned();
        }
    }

    pub fn enrich(&mut self, ev: &Event) -> Enrichment {
        self.learn(ev);
        if let Some(t) = self.ns_seen.get_mut(&ev.mnt_ns) {
            *t = ev.ts_ns;
        }
        let mut out = Enrichment::default();
        match &ev.args {
            Args::Umount {
                target,
                cwd,
                target_mount,
                ..
            } => {
                if ev.ret >= 0 {
                    self.table.changed(ev.mnt_ns);
                }
                let Some(t) = target.value() else {
                    return out;
                };
                let abs = resolve_arg(&cwd.path.bytes, t);
                out.umount_target = Some(abs.clone());
                if ev.errno() == Some(EBUSY) {
                    // The mount is still there: see it as it is now. Never
                    // by a path lookup into it (statx of the target): that
                    // pins the mount for a moment and can make someone
                    // else's unmount fail with EBUSY.
                    self.reload(ev);
                    out.submounts = self.table.submounts(ev.mnt_ns, &abs);
                    // The mount the kernel resolved the target to (kernel
                    // probe set) is exact, even through symlinks or below a
                    // chroot; else the top mount at the target's path.
                    let m = target_mount
                        .as_ref()
                        .and_then(|t| self.table.get(ev.mnt_ns, t.mnt_id))
                        .or_else(|| self.table.at_mountpoint(ev.mnt_ns, &abs))
                        .cloned();
                    if let Some(m) = m {
                        out.backing_root = self.table.backing_path(ev.mnt_ns, &m, b"/");
                        if let Some(id) = self.scans.admit(ev.ts_ns) {
                            self.scanner.submit(id, m.mnt_id);
                            out.holder_scan = Some(id);
                        }
                        out.mount = Some(m);
                    } else {
                        out.backing_root = self.binds.get(&(ev.mnt_ns, abs.clone())).cloned();
                    }
                }
            }
            // A rename's old path is the entry taken from its place.
            Args::Delete { dir, pathname, .. }
            | Args::Rename {
                old_dir: dir,
                oldpath: pathname,
                ..
            } if dir.resolved() => {
                self.ensure_ns(ev);
                if let Some(p) = pathname.value().filter(|p| p.contains(&b'/')) {
                    // Which mount holds the parent: the whole table, as it
                    // is now (not a path lookup, see the EBUSY case).
                    if !self.table.is_current(ev.mnt_ns) {
                        self.reload(ev);
                    }
                    let full = resolve_arg(&dir.path.bytes, p);
                    let parent = match full.iter().rposition(|&c| c == b'/') {
                        Some(0) | None => Bytes::from_static(b"/"),
                        Some(i) => full.slice(..i),
                    };
                    out.parent_mnt_id = self
                        .table
                        .mount_of_path(ev.mnt_ns, &parent)
                        .map(|m| m.mnt_id);
                }
                self.dir_mount(ev, dir, &mut out);
            }
            // The mount the guard acted at, described as a deletion's, and
            // what the guard saved there.
            Args::Guard(g) if g.mount.resolved() => {
                self.ensure_ns(ev);
                self.dir_mount(ev, &g.mount, &mut out);
                if g.action != crate::model::GuardAction::Reported {
                    let own = self.own.is_own_ns(ev.mnt_ns);
                    out.saved = match (&out.backing_root, g.mount.mountpoint()) {
                        (Some(b), Some(mp)) => saved::saved(ev.pid, b, &mp, own),
                        _ => None,
                    };
                }
            }
            // Mounts made or removed: the table is not reread (a node's
            // mount churn would reread thousands of lines per mount);
            // deletions ask about their mount alone (`mount_of_dir`).
            Args::Mount { .. } | Args::MoveMount { .. } | Args::Fsmount { .. } if ev.ret >= 0 => {
                if self.statmount.available() {
                    self.ensure_ns(ev);
                    self.table.changed(ev.mnt_ns);
                } else {
                    self.reload(ev);
                }
            }
            _ => self.ensure_ns(ev),
        }
        out
    }
}

const RECENT_MAX: usize = 16_384;

/// mount(2) flags that change mounts already there (move one, remount it,
/// change its propagation) rather than make a new one.
const ALTERS_MOUNTS: u64 = MS_MOVE | MS_REMOUNT | MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE;

/// A path argument made absolute with the directory its lookup started from.
fn absolute(path: Option<&[u8]>, dir: &crate::model::Dir) -> Option<Bytes> {
    let p = path?;
    (p.starts_with(b"/") || (dir.resolved() && !dir.truncated()))
        .then(|| resolve_arg(&dir.path.bytes, p))
}

/// A map that forgets its oldest entries beyond `max`.
struct Recent<K> {
    map: std::collections::HashMap<K, Bytes>,
    order: std::collections::VecDeque<K>,
    max: usize,
}

impl<K: std::hash::Hash + Eq + Clone> Recent<K> {
    fn new(max: usize) -> Self {
        Recent {
            map: Default::default(),
            order: Default::default(),
            max,
        }
    }
    fn insert(&mut self, k: K, v: Bytes) {
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push_back(k);
            if self.order.len() == self.max {
                // Full from now on: every insert removes one entry. A hash
                // table turning over its entries accumulates tombstones and
                // grows once more, long after it filled, unless it has room
                // for twice its entries; give it that room once, now.
                self.map.reserve(self.max);
            }
            if self.order.len() > self.max {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
    fn get(&self, k: &K) -> Option<&Bytes> {
        self.map.get(k)
    }
}

/// Namespace tables kept at most.
const NS_MAX: usize = 512;
/// Entries of the bookkeeping sets before they are cleared.
const SET_MAX: usize = 65_536;

/// Insert into a set that is cleared when it grows past `SET_MAX`.
fn bounded_insert(set: &mut HashSet<u32>, v: u32) -> bool {
    if set.len() >= SET_MAX {
        set.clear();
    }
    set.insert(v)
}

/// Holder scans read all of /proc: at most `SCANS_PER_SEC` start per second
/// of event time; beyond that an incident says the holders were not scanned.
#[derive(Default)]
struct ScanRate {
    window_start: u64,
    in_window: u32,
    last_id: ScanId,
}

const SCANS_PER_SEC: u32 = 20;
const SEC: u64 = 1_000_000_000;
/// Time one holder scan may take before it stops, marked incomplete.
pub const HOLDER_SCAN_BUDGET: Duration = Duration::from_millis(250);

impl ScanRate {
    /// The id of a new scan, unless over the rate limit.
    fn admit(&mut self, now: u64) -> Option<ScanId> {
        if now.saturating_sub(self.window_start) >= SEC {
            self.window_start = now;
            self.in_window = 0;
        }
        if self.in_window >= SCANS_PER_SEC {
            return None;
        }
        self.in_window += 1;
        self.last_id += 1;
        Some(self.last_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn holder_scans_are_rate_limited_in_event_time() {
        let mut r = ScanRate::default();
        let ids: Vec<_> = (0..SCANS_PER_SEC)
            .map(|i| r.admit(SEC + i as u64))
            .collect();
        assert!(ids.iter().all(Option::is_some));
        assert_eq!(ids[0], Some(1));
        assert_eq!(r.admit(SEC + 30), None, "over the rate limit");
        assert_eq!(
            r.admit(2 * SEC + 30),
            Some(SCANS_PER_SEC as u64 + 1),
            "next second"
        );
    }

    /// The mount table is refreshed from statmount only for processes that
    /// see the mounts as this one does: its namespace, its root.
    #[test]
    fn statmount_view_is_this_processs_namespace_and_root() {
        let mut own = OwnView::default();
        let ns = mount_table::ns_inode("/proc/self/ns/mnt").unwrap();
        let me = std::process::id();
        assert!(own.same_view(ns, me));
        assert!(!own.same_view(ns.wrapping_add(1), me), "another namespace");
        assert!(!own.same_view(ns, u32::MAX), "no such process");
        // A child in a chroot sees other paths.
        let dir = tempfile::tempdir().unwrap();
        let root = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: the child only makes async-signal-safe syscalls.
        let child = unsafe { libc::fork() };
        assert!(child >= 0);
        if child == 0 {
            // SAFETY: plain syscalls in the child.
            unsafe {
                libc::chroot(root.as_ptr());
                libc::pause();
                libc::_exit(0);
            }
        }
        let chrooted =
            || std::fs::read_link(format!("/proc/{child}/root")).is_ok_and(|p| p != Path::new("/"));
        let start = std::time::Instant::now();
        while !chrooted() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let (was_chrooted, same) = (chrooted(), own.same_view(ns, child as u32));
        // SAFETY: our own child.
        unsafe {
            libc::kill(child, libc::SIGKILL);
            libc::waitpid(child, std::ptr::null_mut(), 0);
        }
        assert!(was_chrooted, "the child did not chroot");
        assert!(!same, "a chrooted process");
    }

    #[test]
    fn bounded_sets_never_exceed_their_cap() {
        let mut s = HashSet::new();
        for v in 0..(SET_MAX as u32 + 10) {
            bounded_insert(&mut s, v);
        }
        assert!(s.len() <= SET_MAX);
    }
}
