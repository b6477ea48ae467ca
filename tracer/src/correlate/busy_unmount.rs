//! The EBUSY-unmount → deletion correlation.
//!
//! An unmount of target T fails with EBUSY: the mount M at T is still there.
//! A later successful deletion went through M when:
//! - its lookup started in a directory on a mount mounted at T, in the same
//!   mount namespace (both facts come from the kernel with the deletion:
//!   the mount's namespace, and `dir.path[..rel_off]`, the mountpoint of the
//!   directory's mount as the deleting process sees it), with the mount id
//!   the mount table saw at T at the EBUSY, when it saw one (so a mount
//!   stacked under M is not mistaken for it); or
//! - its path has several components (`unlink("/…/T/f")`, `rm -rf T/d`):
//!   the entry's parent directory, made absolute and normalized lexically,
//!   is T or below it, in the deleting process's namespace, and no other
//!   mount the table saw below T at the EBUSY lies between T and it.
//!
//! Incidents stay open while deletions keep coming and close after
//! `quiet_ns` without one (once the holder scan has answered), when M is
//! finally unmounted, or at the end.

use std::collections::BTreeMap;

use bytes::Bytes;
use tracer_common::uapi::EBUSY;

use super::*;
use crate::enrich::holders::ScanId;
use crate::enrich::mount_table::MountInfo;
use crate::enrich::Enrichment;
use crate::model::{Args, Dir, Event};
use crate::path::{is_under, join, normalize, parent, resolve_arg, strip_component_prefix};

/// Busy mounts remembered at most (each for the busy window); beyond, the
/// oldest without an open incident is forgotten first.
pub const BUSY_MAX: usize = 4096;

/// Who holds a busy mount: the scan runs off the event path.
#[derive(Clone, Debug)]
enum Holders {
    NotScanned,
    Pending(ScanId),
    Done(HolderScan),
}

impl Holders {
    fn scan(&self) -> Option<HolderScan> {
        match self {
            Holders::Done(s) => Some(s.clone()),
            _ => None,
        }
    }
}

/// A mount whose unmount failed with EBUSY and that may still be there.
#[derive(Clone, Debug)]
struct Busy {
    unmount: FailedUnmount,
    mount: Option<std::sync::Arc<MountInfo>>,
    backing_root: Option<Bytes>,
    /// Mountpoints strictly below T at the EBUSY (a path below one of them
    /// goes through that mount, not M).
    submounts: Vec<Bytes>,
    holders: Holders,
    open: Option<Incident>,
}

impl Busy {
    /// Whether `ts_ns` is within the busy window after the failed unmount.
    fn within_window(&self, ts_ns: u64, window_ns: u64) -> bool {
        ts_ns >= self.unmount.ts_ns && ts_ns - self.unmount.ts_ns <= window_ns
    }

    /// Whether mount `mnt_id` is another mount on the same mountpoint than
    /// the one the table saw at the target at the EBUSY (when it saw one).
    fn other_mount(&self, mnt_id: u32) -> bool {
        self.mount.as_ref().is_some_and(|m| m.mnt_id != mnt_id)
    }
}

pub struct BusyUnmounts {
    cfg: CorrelatorConfig,
    /// (mount namespace, absolute target) → state. Ordered: deterministic.
    busy: BTreeMap<(u32, Bytes), Busy>,
}

/// The entry a deletion or a rename takes from its place: its name as given,
/// the deletion's flags, the directory its lookup starts in, and for a
/// rename where it went.
struct Taken<'a> {
    name: &'a [u8],
    flags: u32,
    dir: &'a Dir,
    renamed_to: Option<Bytes>,
}

/// Where a deletion's entry is, as far as the busy rule needs it.
struct Entry {
    /// The entry as the deleting process saw it (absolute).
    path: Bytes,
    /// Its path inside the mount it went through.
    rel: Bytes,
}

impl BusyUnmounts {
    pub fn new(cfg: CorrelatorConfig) -> BusyUnmounts {
        BusyUnmounts {
            cfg,
            busy: BTreeMap::new(),
        }
    }

    /// Feed one event: whether it was a deletion through a busy mount
    /// (claimed by an incident), and the incidents it closed.
    pub fn event(
        &mut self,
        ev: &Event,
        en: &Enrichment,
        next_id: &mut u64,
    ) -> (bool, Vec<Incident>) {
        match &ev.args {
            Args::Umount { target, flags, .. } => {
                (false, self.umount(ev, en, target.bytes.clone(), *flags))
            }
            Args::Delete {
                pathname,
                flags,
                dir,
                ..
            } if ev.ret == 0 => match pathname.value() {
                Some(name) => {
                    let taken = Taken {
                        name,
                        flags: *flags,
                        dir,
                        renamed_to: None,
                    };
                    (self.delete(ev, en, taken, next_id), Vec::new())
                }
                None => (false, Vec::new()),
            },
            // Both paths are on one mount: the old one says whether it is M.
            Args::Rename {
                oldpath,
                newpath,
                old_dir,
                new_dir,
                ..
            } if ev.ret == 0 => match oldpath.value() {
                Some(name) => {
                    let to = newpath
                        .value()
                        .filter(|_| new_dir.resolved() || newpath.bytes.starts_with(b"/"))
                        .map(|n| normalize(&resolve_arg(&new_dir.path.bytes, n)));
                    let taken = Taken {
                        name,
                        flags: 0,
                        dir: old_dir,
                        renamed_to: to,
                    };
                    (self.delete(ev, en, taken, next_id), Vec::new())
                }
                None => (false, Vec::new()),
            },
            Args::Guard(g) if g.trigger != tracer_common::event::GUARD_AT_CROSSING => {
                self.guard(ev, en, g, next_id);
                (false, Vec::new())
            }
            _ => (false, Vec::new()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.busy.is_empty()
    }

    /// What is kept (a tick that changes it changed something).
    pub fn len(&self) -> usize {
        self.busy.len()
    }

    /// The holder scan `id` answered.
    pub fn holders(&mut self, id: ScanId, scan: &HolderScan) {
        for b in self.busy.values_mut() {
            if matches!(b.holders, Holders::Pending(p) if p == id) {
                b.holders = Holders::Done(scan.clone());
                if let Some(inc) = b.open.as_mut() {
                    inc.holders = Some(scan.clone());
                }
            }
        }
    }

    fn umount(&mut self, ev: &Event, en: &Enrichment, target: Bytes, flags: u64) -> Vec<Incident> {
        let Some(abs) = en.umount_target.clone() else {
            return Vec::new();
        };
        let key = (ev.mnt_ns, abs.clone());
        if ev.errno() == Some(EBUSY) {
            let fresh = Busy {
                unmount: FailedUnmount {
                    ts_ns: ev.ts_ns,
                    by: process(ev),
                    target: crate::model::detach(&target),
                    target_abs: abs,
                    flags,
                },
                mount: en.mount.clone(),
                backing_root: en.backing_root.clone(),
                submounts: en.submounts.clone(),
                holders: en.holder_scan.map_or(Holders::NotScanned, Holders::Pending),
                open: None,
            };
            let mut closed = Vec::new();
            match self.busy.get_mut(&key) {
                // An incident is open for an earlier EBUSY: it stays about that one.
                Some(b) if b.open.is_some() => {}
                Some(b) => *b = fresh,
                None => {
                    closed.extend(self.make_room());
                    self.busy.insert(key, fresh);
                }
            }
            closed
        } else if ev.ret == 0 {
            // The mount is gone: nothing can go through it any more.
            self.busy
                .remove(&key)
                .and_then(|b| b.open)
                .into_iter()
                .collect()
        } else {
            Vec::new()
        }
    }

    /// Keep at most `BUSY_MAX` busy mounts: forget the oldest EBUSY,
    /// preferring one without an open incident (an open one is closed).
    fn make_room(&mut self) -> Option<Incident> {
        if self.busy.len() < BUSY_MAX {
            return None;
        }
        let oldest = |want_closed: bool| {
            self.busy
                .iter()
                .filter(|(_, b)| !want_closed || b.open.is_none())
                .min_by_key(|(_, b)| b.unmount.ts_ns)
                .map(|(k, _)| k.clone())
        };
        let key = oldest(true).or_else(|| oldest(false))?;
        self.busy.remove(&key).and_then(|b| b.open)
    }

    /// The busy mount a deletion went through, and where its entry is.
    fn through(&self, ev: &Event, name: &[u8], dir: &Dir) -> Option<((u32, Bytes), Entry)> {
        if !name.contains(&b'/') {
            // A name in a directory the kernel resolved: the directory's
            // mount is the one the deletion went through.
            let mp = dir.mountpoint()?;
            let key = (dir.mnt_ns, mp);
            let b = self.busy.get(&key)?;
            if b.other_mount(dir.mnt_id) {
                return None;
            }
            let rel_dir = dir.rel_path().unwrap_or_else(|| Bytes::from_static(b"/"));
            let entry = Entry {
                path: join(&dir.path.bytes, name),
                rel: join(&rel_dir, name),
            };
            return Some((key, entry));
        }
        // A path: which mount it goes through is decided by where its last
        // component's parent is, among the busy targets of the namespace.
        if !name.starts_with(b"/") && (!dir.resolved() || dir.truncated()) {
            return None;
        }
        let full = normalize(&resolve_arg(&dir.path.bytes, name));
        let parent = parent(&full);
        let ns = ev.mnt_ns;
        let (key, b) = self
            .busy
            .range((ns, Bytes::new())..)
            .take_while(|((n, _), _)| *n == ns)
            .filter(|((_, t), _)| is_under(&parent, t))
            .max_by_key(|((_, t), _)| t.len())?;
        let t = &key.1;
        let below = |mp: &Bytes| is_under(&parent, mp) && mp != t;
        if b.submounts.iter().any(below) {
            return None; // through a mount below T, not M
        }
        let rel = strip_component_prefix(&full, t)?;
        let rel = if rel.is_empty() { &b"/"[..] } else { rel };
        let entry = Entry {
            rel: Bytes::copy_from_slice(rel),
            path: full,
        };
        Some((key.clone(), entry))
    }

    fn delete(&mut self, ev: &Event, en: &Enrichment, taken: Taken, next_id: &mut u64) -> bool {
        let Taken {
            name,
            flags,
            dir,
            renamed_to,
        } = taken;
        let Some((key, entry)) = self.through(ev, name, dir) else {
            return false;
        };
        let window = self.cfg.busy_window_ns;
        let max = self.cfg.max_deletions;
        let Some(b) = self.busy.get_mut(&key) else {
            return false;
        };
        if !b.within_window(ev.ts_ns, window) {
            return false;
        }
        let via_path = name.contains(&b'/');
        // A deletion by path reports nothing about M's directory: the
        // mount table's facts are M's.
        let en_mount = if via_path { None } else { en.mount.as_deref() };
        let en_backing = if via_path {
            None
        } else {
            en.backing_root.clone()
        };
        let backing_root = b.backing_root.clone().or(en_backing);
        let mut d = deletion(ev, flags, dir, entry.path, entry.rel, backing_root.as_ref());
        d.renamed_to = renamed_to;
        let inc = open_incident(
            b,
            dir,
            via_path,
            key.0,
            en_mount,
            backing_root,
            ev.ts_ns,
            next_id,
        );
        if !via_path && inc.mount.mnt_id == 0 {
            inc.mount.mnt_id = dir.mnt_id;
        }
        if !via_path {
            // The kernel's flags at a deletion through M are M's.
            inc.mount.idmapped |= dir.flags & tracer_common::event::DIR_IDMAPPED != 0;
            inc.mount.subtree |= dir.flags & tracer_common::event::DIR_SUBTREE != 0;
        }
        if !inc.deleters.iter().any(|p| p.pid == ev.pid) {
            inc.deleters.push(process(ev));
        }
        inc.count += 1;
        inc.removed.add(d.inode.as_ref());
        inc.last_ts_ns = ev.ts_ns;
        if inc.deletions.len() < max {
            inc.deletions.push(d);
        }
        true
    }

    /// The guard acted on a process walking into a mount whose unmount
    /// failed: part of that unmount's incident (opened by it when nothing
    /// was deleted through the mount yet, the usual case: the guard acts at
    /// the first listing).
    fn guard(&mut self, ev: &Event, en: &Enrichment, g: &crate::model::Guard, next_id: &mut u64) {
        let Some(mp) = g.mount.mountpoint() else {
            return;
        };
        let window = self.cfg.busy_window_ns;
        let Some(b) = self.busy.get_mut(&(ev.mnt_ns, mp)) else {
            return;
        };
        if !b.within_window(ev.ts_ns, window) || b.other_mount(g.mount.mnt_id) {
            return;
        }
        let backing_root = b.backing_root.clone();
        let inc = open_incident(
            b,
            &g.mount,
            false,
            ev.mnt_ns,
            None,
            backing_root,
            ev.ts_ns,
            next_id,
        );
        inc.last_ts_ns = inc.last_ts_ns.max(ev.ts_ns);
        if inc.prevented.len() < PREVENTED_MAX {
            inc.prevented.push(prevention(ev, g, en.saved.clone()));
        }
    }

    /// Kernel-side losses so far (cumulative): open incidents may be missing
    /// deletions, and say so.
    pub fn losses(&mut self, delta: u64) {
        for inc in self.busy.values_mut().filter_map(|b| b.open.as_mut()) {
            inc.lost_while_open += delta;
        }
    }

    /// Time passes (boot-time ns, never read here): close quiet incidents
    /// whose holder scan has answered, and forget EBUSY unmounts older than
    /// the window.
    pub fn tick(&mut self, now_ns: u64) -> Vec<Incident> {
        let mut closed = Vec::new();
        for b in self.busy.values_mut() {
            let quiet = b
                .open
                .as_ref()
                .is_some_and(|i| now_ns.saturating_sub(i.last_ts_ns) >= self.cfg.quiet_ns);
            if quiet && !matches!(b.holders, Holders::Pending(_)) {
                if let Some(i) = b.open.take() {
                    closed.push(i);
                }
            }
        }
        let window = self.cfg.busy_window_ns;
        self.busy
            .retain(|_, b| b.open.is_some() || now_ns.saturating_sub(b.unmount.ts_ns) <= window);
        closed
    }

    /// End of the stream: close everything still open.
    pub fn finish(&mut self) -> Vec<Incident> {
        let open: Vec<Incident> = self
            .busy
            .values_mut()
            .filter_map(|b| b.open.take())
            .collect();
        self.busy.clear();
        open
    }
}

/// The open incident of busy mount `b`, opened at `ts_ns` by a deletion
/// (through `dir`, or by path) or a guard action if there is none.
#[allow(clippy::too_many_arguments)]
fn open_incident<'a>(
    b: &'a mut Busy,
    dir: &Dir,
    via_path: bool,
    ns: u32,
    en_mount: Option<&MountInfo>,
    backing_root: Option<Bytes>,
    ts_ns: u64,
    next_id: &mut u64,
) -> &'a mut Incident {
    b.open.get_or_insert_with(|| {
        let id = *next_id;
        *next_id += 1;
        let mount = b.mount.as_deref().or(en_mount);
        // The busy target as kept (the key found may be a slice of the event).
        let mountpoint = b.unmount.target_abs.clone();
        let mut facts = mount_facts(dir, mountpoint, mount, backing_root.clone());
        if via_path {
            // The directory the lookup started in is not on M.
            facts.mnt_id = mount.map_or(0, |m| m.mnt_id);
            facts.mnt_ns = ns;
            facts.idmapped = mount.is_some_and(|m| m.idmapped);
            facts.subtree = mount.is_some_and(|m| m.root.as_ref() != b"/");
        }
        Incident {
            id,
            severity: Severity::Warning,
            root_label: None,
            cause: Cause::BusyUnmount(b.unmount.clone()),
            mount: facts,
            holders: b.holders.scan(),
            deleters: Vec::new(),
            deletions: Vec::new(),
            count: 0,
            removed: Default::default(),
            first_delay_ns: ts_ns - b.unmount.ts_ns,
            last_ts_ns: ts_ns,
            lost_while_open: 0,
            prevented: Vec::new(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Str;
    use tracer_common::event::{DIR_FROM_FD, DIR_IDMAPPED, DIR_RESOLVED, DIR_SUBTREE};
    use tracer_common::{uapi::AT_REMOVEDIR, EventKind};

    const NS: u32 = 4026532000;
    const MP: &[u8] = b"/var/lib/containerd/tmpmounts/ovl-idmapped1/0";
    const ROOT: &[u8] =
        b"/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/7/fs";

    fn ev(ts: u64, pid: u32, ret: i64, args: Args) -> Event {
        let kind = match &args {
            Args::Umount { .. } => EventKind::Umount,
            _ => EventKind::Unlinkat,
        };
        Event {
            kind,
            ts_ns: ts,
            duration_ns: 1,
            ret,
            pid,
            tid: pid,
            ppid: 1,
            uid: 0,
            gid: 0,
            mnt_ns: NS,
            cgroup_id: 7,
            comm: Bytes::from_static(b"containerd"),
            args,
        }
    }

    fn umount(ts: u64, target: &[u8], ret: i64, flags: u64) -> (Event, Enrichment) {
        let e = ev(
            ts,
            100,
            ret,
            Args::Umount {
                target: Str::new(Bytes::copy_from_slice(target)),
                flags,
                cwd: Dir::default(),
                target_mount: None,
            },
        );
        let en = Enrichment {
            umount_target: Some(Bytes::copy_from_slice(target)),
            mount: (ret == -i64::from(EBUSY)).then(|| mount_info(65).into()),
            backing_root: (ret == -i64::from(EBUSY)).then(|| Bytes::from_static(ROOT)),
            ..Default::default()
        };
        (e, en)
    }

    fn mount_info(id: u32) -> MountInfo {
        MountInfo {
            mnt_id: id,
            parent_id: 44,
            dev: 254 << 20,
            root: Bytes::from_static(ROOT),
            mountpoint: Bytes::from_static(MP),
            options: "rw,idmapped".into(),
            propagation: String::new(),
            fstype: "ext4".into(),
            source: Bytes::from_static(b"/dev/vda"),
            super_options: "rw".into(),
            idmapped: true,
        }
    }

    /// A deletion of `name` in directory `mountpoint + sub` on mount `mnt`.
    fn delete(
        ts: u64,
        pid: u32,
        mountpoint: &[u8],
        sub: &[u8],
        mnt: u32,
        name: &[u8],
        flags: u32,
    ) -> Event {
        let mut path = mountpoint.to_vec();
        path.extend_from_slice(sub);
        let dir = Dir {
            mnt_id: mnt,
            mnt_ns: NS,
            flags: DIR_RESOLVED | DIR_FROM_FD | DIR_IDMAPPED | DIR_SUBTREE,
            path: Str::new(path),
            rel_off: mountpoint.len() as u32,
            ..Default::default()
        };
        ev(
            ts,
            pid,
            0,
            Args::Delete {
                dfd: 5,
                pathname: Str::new(Bytes::copy_from_slice(name)),
                flags,
                dir,
                capture: tracer_common::event::CAP_BUSY,
                origin_mnt_id: 0,
                victim: None,
            },
        )
    }

    fn run(events: &[(Event, Enrichment)], end: u64) -> Vec<Incident> {
        let mut c = Correlator::new(CorrelatorConfig::default());
        let mut out = Vec::new();
        for (e, en) in events {
            out.extend(c.tick(e.ts_ns).0);
            out.extend(c.event(e, en));
        }
        out.extend(c.tick(end).0);
        out.extend(c.finish());
        out
    }

    fn plain(e: Event) -> (Event, Enrichment) {
        (e, Enrichment::default())
    }

    #[test]
    fn ebusy_then_deletions_through_the_mount_is_one_critical_incident() {
        let evs = vec![
            umount(1_000, MP, -i64::from(EBUSY), 0),
            plain(delete(1_150, 100, MP, b"/bin", 65, b"sh", 0)),
            plain(delete(1_160, 100, MP, b"/bin", 65, b"busybox", 0)),
            plain(delete(1_170, 100, MP, b"", 65, b"bin", AT_REMOVEDIR)),
        ];
        let inc = run(&evs, 10_000_000_000);
        assert_eq!(inc.len(), 1, "{inc:#?}");
        let i = &inc[0];
        assert_eq!(
            (i.id, i.severity, i.root_label.as_deref()),
            (1, Severity::Critical, Some("containerd snapshot"))
        );
        assert_eq!((i.count, i.first_delay_ns), (3, 150));
        assert_eq!(i.mount.mnt_id, 65);
        assert_eq!(&i.mount.mountpoint[..], MP);
        assert!(i.mount.idmapped && i.mount.subtree);
        assert_eq!(i.unmount().unwrap().by.pid, 100);
        let got: Vec<(&[u8], &[u8], bool)> = i
            .deletions
            .iter()
            .map(|d| {
                (
                    &d.rel_path[..],
                    d.backing_path.as_deref().unwrap_or_default(),
                    d.is_dir,
                )
            })
            .collect();
        let b = |s: &str| [ROOT, s.as_bytes()].concat();
        assert_eq!(
            got,
            vec![
                (&b"/bin/sh"[..], &b("/bin/sh")[..], false),
                (&b"/bin/busybox"[..], &b("/bin/busybox")[..], false),
                (&b"/bin"[..], &b("/bin")[..], true),
            ]
        );
        assert_eq!(&i.deletions[0].path[..], [MP, b"/bin/sh"].concat());
        assert_eq!(i.deleters.len(), 1);
    }

    /// The guard acting at `ts` on pid 100 listing fd 9 on mount `mnt` at
    /// `mountpoint`.
    fn guard(ts: u64, mountpoint: &[u8], mnt: u32, action: crate::model::GuardAction) -> Event {
        let mut e = ev(
            ts,
            100,
            0,
            Args::Guard(crate::model::Guard {
                action,
                trigger: tracer_common::event::GUARD_AT_LISTING,
                fd: Some(9),
                signal: 19,
                busy_ns: 1_000,
                mount: Dir {
                    mnt_id: mnt,
                    mnt_ns: NS,
                    flags: DIR_RESOLVED | DIR_IDMAPPED | DIR_SUBTREE,
                    path: Str::new(Bytes::copy_from_slice(mountpoint)),
                    rel_off: mountpoint.len() as u32,
                    ..Default::default()
                },
                origin_mnt_id: 0,
            }),
        );
        e.kind = EventKind::Guard;
        e
    }

    #[test]
    fn a_guard_action_is_the_busy_unmounts_incident_even_with_nothing_deleted() {
        use crate::model::GuardAction;
        let evs = vec![
            umount(1_000, MP, -i64::from(EBUSY), 0),
            plain(guard(1_200, MP, 65, GuardAction::Stopped)),
        ];
        let inc = run(&evs, 10_000_000_000);
        assert_eq!(inc.len(), 1, "{inc:#?}");
        let i = &inc[0];
        assert_eq!((i.count, i.deletions.len(), i.first_delay_ns), (0, 0, 200));
        assert_eq!((i.severity, i.mount.mnt_id), (Severity::Critical, 65));
        assert_eq!(&i.mount.mountpoint[..], MP);
        assert_eq!(i.prevented.len(), 1);
        let p = &i.prevented[0];
        assert_eq!(
            (p.ts_ns, p.by.pid, p.action, p.signal, p.trigger, p.fd, p.result),
            (
                1_200,
                100,
                GuardAction::Stopped,
                19,
                tracer_common::event::GUARD_AT_LISTING,
                Some(9),
                0
            )
        );
        // A report, then the deletions it did not stop: one incident.
        let evs = vec![
            umount(1_000, MP, -i64::from(EBUSY), 0),
            plain(guard(1_100, MP, 65, GuardAction::Reported)),
            plain(delete(1_150, 100, MP, b"/bin", 65, b"sh", 0)),
        ];
        let inc = run(&evs, 10_000_000_000);
        assert_eq!(inc.len(), 1, "{inc:#?}");
        assert_eq!((inc[0].count, inc[0].prevented.len()), (1, 1));
        assert_eq!(inc[0].first_delay_ns, 100, "opened by the guard action");
    }

    #[test]
    fn a_guard_action_on_another_mount_or_after_the_window_is_no_incident() {
        use crate::model::GuardAction;
        let window = CorrelatorConfig::default().busy_window_ns;
        for (g, why) in [
            (
                guard(1_200, b"/elsewhere", 65, GuardAction::Stopped),
                "another mountpoint",
            ),
            (
                guard(1_200, MP, 66, GuardAction::Stopped),
                "another mount at the target",
            ),
            (
                guard(1_001 + window, MP, 65, GuardAction::Stopped),
                "after the window",
            ),
        ] {
            let inc = run(
                &[umount(1_000, MP, -i64::from(EBUSY), 0), plain(g)],
                u64::MAX / 2,
            );
            assert!(inc.is_empty(), "{why}: {inc:#?}");
        }
    }

    /// A deletion by path: lookup from `dir` (on mount 27, the root mount).
    fn delete_by_path(ts: u64, pid: u32, dir: &[u8], name: &[u8], flags: u32) -> Event {
        let from = if name.starts_with(b"/") {
            tracer_common::event::DIR_FROM_ROOT
        } else {
            tracer_common::event::DIR_FROM_CWD
        };
        let d = Dir {
            mnt_id: 27,
            mnt_ns: NS,
            flags: DIR_RESOLVED | from,
            path: Str::new(Bytes::copy_from_slice(dir)),
            rel_off: 0,
            ..Default::default()
        };
        ev(
            ts,
            pid,
            0,
            Args::Delete {
                dfd: -100,
                pathname: Str::new(Bytes::copy_from_slice(name)),
                flags,
                dir: d,
                capture: tracer_common::event::CAP_BUSY_PATH,
                origin_mnt_id: 0,
                victim: None,
            },
        )
    }

    #[test]
    fn deletions_by_path_through_the_busy_mount_are_in_the_incident() {
        let abs = [MP, b"/f0"].concat();
        let rel_multi = [&MP[MP.len() - 1..], b"/rN"].concat(); // "0/rN"
        let parent_dir = &MP[..MP.len() - 2]; // .../ovl-idmapped1
        let evs = vec![
            umount(1_000, MP, -16, 0),
            // Another process, absolute path (xargs rm).
            plain(delete_by_path(1_100, 200, b"/", &abs, 0)),
            // Relative multi-component path from the parent (rm -rf 0/rN's
            // last call).
            plain(delete_by_path(
                1_200,
                201,
                parent_dir,
                &rel_multi,
                AT_REMOVEDIR,
            )),
            // Not normalized, still inside.
            plain(delete_by_path(
                1_300,
                200,
                b"/",
                &[MP, b"/./a//../f1"].concat(),
                0,
            )),
            // Escapes T: not through M.
            plain(delete_by_path(
                1_400,
                200,
                b"/",
                &[MP, b"/../other"].concat(),
                0,
            )),
            // The mountpoint itself, by path, lives in the parent mount.
            plain(delete_by_path(1_500, 200, b"/", MP, AT_REMOVEDIR)),
        ];
        let inc = run(&evs, 10_000_000_000);
        assert_eq!(inc.len(), 1, "{inc:#?}");
        let i = &inc[0];
        assert_eq!((i.count, i.severity), (3, Severity::Critical));
        type Row<'a> = (&'a [u8], &'a [u8], &'a [u8], bool);
        let got: Vec<Row> = i
            .deletions
            .iter()
            .map(|d| {
                (
                    &d.path[..],
                    &d.rel_path[..],
                    d.backing_path.as_deref().unwrap_or_default(),
                    d.is_dir,
                )
            })
            .collect();
        let f0 = [MP, b"/f0"].concat();
        let rn = [MP, b"/rN"].concat();
        let f1 = [MP, b"/f1"].concat();
        let b0 = [ROOT, b"/f0"].concat();
        let brn = [ROOT, b"/rN"].concat();
        let b1 = [ROOT, b"/f1"].concat();
        assert_eq!(
            got,
            vec![
                (&f0[..], &b"/f0"[..], &b0[..], false),
                (&rn[..], &b"/rN"[..], &brn[..], true),
                (&f1[..], &b"/f1"[..], &b1[..], false),
            ]
        );
        // The mount is M as the table saw it at the EBUSY, not the root
        // mount the lookups started on.
        assert_eq!(i.mount.mnt_id, 65);
        assert_eq!(&i.mount.mountpoint[..], MP);
        assert_eq!(
            i.deleters.iter().map(|p| p.pid).collect::<Vec<_>>(),
            [200, 201]
        );
    }

    #[test]
    fn a_path_into_a_mount_below_the_busy_one_is_not_through_it() {
        let (e, mut en) = umount(1_000, MP, -16, 0);
        en.submounts = vec![Bytes::from([MP, b"/sub"].concat())];
        let evs = vec![
            (e, en),
            plain(delete_by_path(
                1_100,
                200,
                b"/",
                &[MP, b"/sub/f"].concat(),
                0,
            )),
            plain(delete_by_path(
                1_200,
                200,
                b"/",
                &[MP, b"/subx/f"].concat(),
                0,
            )),
        ];
        let inc = run(&evs, 10_000_000_000);
        assert_eq!(inc.len(), 1);
        assert_eq!(inc[0].count, 1);
        assert_eq!(&inc[0].deletions[0].rel_path[..], b"/subx/f");
    }

    #[test]
    fn a_path_in_another_namespace_is_not_through_it() {
        let mut d = delete_by_path(1_100, 200, b"/", &[MP, b"/f"].concat(), 0);
        d.mnt_ns = NS + 1;
        let evs = vec![umount(1_000, MP, -16, 0), plain(d)];
        assert!(run(&evs, 10_000_000_000).is_empty());
    }

    #[test]
    fn holders_scanned_off_the_event_path_join_the_incident() {
        let mut c = Correlator::new(CorrelatorConfig::default());
        let (e, mut en) = umount(1_000, MP, -16, 0);
        en.holder_scan = Some(7);
        c.event(&e, &en);
        c.event(
            &delete(1_100, 100, MP, b"", 65, b"a", 0),
            &Enrichment::default(),
        );
        // Quiet long enough, but the scan has not answered: kept open, and
        // the tick changed nothing (a recording leaves it out).
        assert_eq!(c.tick(10_000_000_000), (Vec::new(), false));
        let scan = HolderScan {
            holders: Vec::new(),
            processes_scanned: 3,
            complete: true,
        };
        c.holders(6, &scan); // another scan
        assert_eq!(c.tick(10_000_000_001), (Vec::new(), false));
        c.holders(7, &scan);
        let (closed, changed) = c.tick(10_000_000_002);
        assert!(changed);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].holders.as_ref(), Some(&scan));
    }

    #[test]
    fn busy_mounts_are_bounded() {
        let mut c = BusyUnmounts::new(CorrelatorConfig::default());
        let mut id = 1;
        for n in 0..(BUSY_MAX as u64 + 100) {
            let t = format!("/mnt/t{n}");
            let (e, en) = umount(1_000 + n, t.as_bytes(), -16, 0);
            c.event(&e, &en, &mut id);
        }
        assert_eq!(c.busy.len(), BUSY_MAX);
        assert!(!c.busy.contains_key(&(NS, Bytes::from_static(b"/mnt/t0"))));
    }

    #[test]
    fn detach_then_delete_is_no_incident() {
        let evs = vec![
            umount(1_000, MP, 0, 2), // MNT_DETACH succeeds
            plain(delete(
                1_100,
                100,
                b"/var/lib/containerd/tmpmounts",
                b"/ovl-idmapped1",
                44,
                b"0",
                AT_REMOVEDIR,
            )),
        ];
        assert!(run(&evs, 10_000_000_000).is_empty());
    }

    #[test]
    fn deletions_on_another_mount_are_no_incident() {
        let other: &[u8] = b"/var/lib/containerd/tmpmounts/ovl-idmapped1/1";
        let evs = vec![
            umount(1_000, MP, -i64::from(EBUSY), 0),
            plain(delete(1_100, 100, other, b"", 66, b"f", 0)),
        ];
        assert!(run(&evs, 10_000_000_000).is_empty());
    }

    #[test]
    fn a_mount_stacked_under_the_busy_one_is_not_it() {
        // Same mountpoint, but the mount table said the EBUSY hit mount 65.
        let evs = vec![
            umount(1_000, MP, -i64::from(EBUSY), 0),
            plain(delete(1_100, 100, MP, b"", 64, b"f", 0)),
        ];
        assert!(run(&evs, 10_000_000_000).is_empty());
    }

    #[test]
    fn deletions_before_the_ebusy_or_after_the_window_do_not_count() {
        let evs = vec![
            plain(delete(500, 100, MP, b"", 65, b"early", 0)),
            umount(1_000, MP, -i64::from(EBUSY), 0),
            plain(delete(1_000 + 61_000_000_000, 100, MP, b"", 65, b"late", 0)),
        ];
        assert!(run(&evs, 200_000_000_000).is_empty());
    }

    #[test]
    fn a_successful_unmount_closes_the_incident_and_later_deletions_are_not_it() {
        let mut c = Correlator::new(CorrelatorConfig::default());
        let (e, en) = umount(1_000, MP, -i64::from(EBUSY), 0);
        assert!(c.event(&e, &en).is_empty());
        assert!(c
            .event(
                &delete(1_100, 100, MP, b"", 65, b"a", 0),
                &Enrichment::default()
            )
            .is_empty());
        let (e, en) = umount(2_000, MP, 0, 0);
        let closed = c.event(&e, &en);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].count, 1);
        assert!(c
            .event(
                &delete(3_000, 100, MP, b"", 65, b"b", 0),
                &Enrichment::default()
            )
            .is_empty());
        assert!(c.finish().is_empty());
    }

    #[test]
    fn quiet_incidents_close_on_tick_and_a_later_burst_is_a_new_incident() {
        let mut c = Correlator::new(CorrelatorConfig::default());
        let (e, en) = umount(1_000, MP, -i64::from(EBUSY), 0);
        c.event(&e, &en);
        c.event(
            &delete(2_000, 100, MP, b"", 65, b"a", 0),
            &Enrichment::default(),
        );
        assert!(
            c.tick(2_000 + 1_999_999_999).0.is_empty(),
            "not quiet long enough yet"
        );
        let first = c.tick(2_000 + 2_000_000_000).0;
        assert_eq!((first.len(), first[0].id), (1, 1));
        c.event(
            &delete(3_000_000_000, 100, MP, b"", 65, b"b", 0),
            &Enrichment::default(),
        );
        let second = c.finish();
        assert_eq!((second.len(), second[0].id, second[0].count), (1, 2, 1));
    }

    #[test]
    fn outside_known_roots_is_a_warning() {
        let mut e = umount(1_000, MP, -i64::from(EBUSY), 0);
        e.1.backing_root = Some(Bytes::from_static(b"/srv/data"));
        let inc = run(
            &[e, plain(delete(1_100, 100, MP, b"", 65, b"f", 0))],
            10_000_000_000,
        );
        assert_eq!(
            (inc[0].severity, inc[0].root_label.as_deref()),
            (Severity::Warning, None)
        );
        assert_eq!(
            inc[0].deletions[0].backing_path.as_deref(),
            Some(&b"/srv/data/f"[..])
        );
    }

    #[test]
    fn losses_while_open_are_reported_on_the_incident() {
        let mut c = Correlator::new(CorrelatorConfig::default());
        c.losses(5); // before: not this incident's business
        let (e, en) = umount(1_000, MP, -i64::from(EBUSY), 0);
        c.event(&e, &en);
        c.event(
            &delete(1_100, 100, MP, b"", 65, b"a", 0),
            &Enrichment::default(),
        );
        c.losses(12);
        let inc = c.finish();
        assert_eq!(inc[0].lost_while_open, 7);
    }

    #[test]
    fn parallel_replicas_in_their_own_namespaces_stay_apart() {
        let mut c = Correlator::new(CorrelatorConfig::default());
        for n in 0..50u32 {
            let (mut e, en) = umount(1_000 + n as u64, MP, -i64::from(EBUSY), 0);
            e.mnt_ns = NS + n;
            c.event(&e, &en);
        }
        for n in 0..50u32 {
            let mut d = delete(
                2_000 + n as u64,
                100 + n,
                MP,
                b"",
                65,
                format!("f{n}").as_bytes(),
                0,
            );
            if let Args::Delete { dir, .. } = &mut d.args {
                dir.mnt_ns = NS + n;
            }
            d.mnt_ns = NS + n;
            c.event(&d, &Enrichment::default());
        }
        let inc = c.finish();
        assert_eq!(inc.len(), 50);
        for i in &inc {
            assert_eq!(i.count, 1);
            assert_eq!(i.mount.mnt_ns, i.unmount().unwrap().by.mnt_ns);
            assert_eq!(i.deleters[0].pid, 100 + (i.mount.mnt_ns - NS));
        }
    }
}
