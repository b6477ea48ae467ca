//! The EBUSY-unmount → deletion correlation.
//!
//! An unmount of target T fails with EBUSY: the mount M at T is still there.
//! Every later successful deletion whose starting directory is on a mount
//! mounted at T, in the same mount namespace (both facts come from the kernel
//! with the deletion: the mount's namespace, and `dir.path[..rel_off]`, the
//! mountpoint of the directory's mount as the deleting process sees it), went
//! through M. When the mount table knew M at the EBUSY, its mount id must
//! match too (so a mount stacked under M is not mistaken for it).
//!
//! Incidents stay open while deletions keep coming and close after
//! `quiet_ns` without one, when M is finally unmounted, or at the end.

use std::collections::BTreeMap;

use bytes::Bytes;
use tracer_common::{
    uapi::{AT_REMOVEDIR, EBUSY},
    EventKind,
};

use super::*;
use crate::enrich::mount_table::{join, MountInfo};
use crate::enrich::Enrichment;
use crate::model::{Args, Dir, Event};

/// A mount whose unmount failed with EBUSY and that may still be there.
#[derive(Clone, Debug)]
struct Busy {
    unmount: FailedUnmount,
    mount: Option<MountInfo>,
    backing_root: Option<Bytes>,
    holders: Option<crate::enrich::holders::HolderScan>,
    open: Option<Incident>,
}

pub struct BusyUnmounts {
    cfg: CorrelatorConfig,
    /// (mount namespace, absolute target) → state. Ordered: deterministic.
    busy: BTreeMap<(u32, Bytes), Busy>,
}

pub(super) fn process(ev: &Event) -> Process {
    Process {
        pid: ev.pid,
        tid: ev.tid,
        ppid: ev.ppid,
        uid: ev.uid,
        comm: ev.comm.clone(),
        cgroup_id: ev.cgroup_id,
        mnt_ns: ev.mnt_ns,
    }
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
            } if ev.ret == 0 => (
                self.delete(ev, en, &pathname.bytes, *flags, dir, next_id),
                Vec::new(),
            ),
            _ => (false, Vec::new()),
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
                    target,
                    target_abs: abs,
                    flags,
                },
                mount: en.mount.clone(),
                backing_root: en.backing_root.clone(),
                holders: en.holders.clone(),
                open: None,
            };
            match self.busy.get_mut(&key) {
                // An incident is open for an earlier EBUSY: it stays about that one.
                Some(b) if b.open.is_some() => {}
                Some(b) => *b = fresh,
                None => {
                    self.busy.insert(key, fresh);
                }
            }
            Vec::new()
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

    fn delete(
        &mut self,
        ev: &Event,
        en: &Enrichment,
        pathname: &[u8],
        flags: u32,
        dir: &Dir,
        next_id: &mut u64,
    ) -> bool {
        let Some(mp) = dir.mountpoint() else {
            return false;
        };
        let Some(b) = self.busy.get_mut(&(dir.mnt_ns, mp.clone())) else {
            return false;
        };
        if ev.ts_ns < b.unmount.ts_ns || ev.ts_ns - b.unmount.ts_ns > self.cfg.busy_window_ns {
            return false;
        }
        if b.mount.as_ref().is_some_and(|m| m.mnt_id != dir.mnt_id) {
            return false; // another mount on the same mountpoint
        }
        let rel_dir = dir.rel_path().unwrap_or_else(|| Bytes::from_static(b"/"));
        let (path, rel) = if pathname.starts_with(b"/") {
            let rel = pathname.strip_prefix(&mp[..]).map(Bytes::copy_from_slice);
            (
                Bytes::copy_from_slice(pathname),
                rel.unwrap_or_else(|| Bytes::copy_from_slice(pathname)),
            )
        } else {
            (join(&dir.path.bytes, pathname), join(&rel_dir, pathname))
        };
        let backing_root = b.backing_root.clone().or_else(|| en.backing_root.clone());
        let d = deletion(ev, flags, dir, path, rel, backing_root.as_ref());
        let inc = b.open.get_or_insert_with(|| {
            let id = *next_id;
            *next_id += 1;
            let mount = b.mount.as_ref().or(en.mount.as_ref());
            Incident {
                id,
                severity: Severity::Warning,
                root_label: None,
                cause: Cause::BusyUnmount(b.unmount.clone()),
                mount: mount_facts(dir, mp.clone(), mount, backing_root.clone()),
                holders: b.holders.clone(),
                deleters: Vec::new(),
                deletions: Vec::new(),
                count: 0,
                first_delay_ns: ev.ts_ns - b.unmount.ts_ns,
                last_ts_ns: ev.ts_ns,
                lost_while_open: 0,
            }
        });
        if !inc.deleters.iter().any(|p| p.pid == ev.pid) {
            inc.deleters.push(process(ev));
        }
        inc.count += 1;
        inc.last_ts_ns = ev.ts_ns;
        if inc.deletions.len() < self.cfg.max_deletions {
            inc.deletions.push(d);
        }
        true
    }

    /// Kernel-side losses so far (cumulative): open incidents may be missing
    /// deletions, and say so.
    pub fn losses(&mut self, delta: u64) {
        for inc in self.busy.values_mut().filter_map(|b| b.open.as_mut()) {
            inc.lost_while_open += delta;
        }
    }

    /// Time passes (boot-time ns, never read here): close quiet incidents and
    /// forget EBUSY unmounts older than the window.
    pub fn tick(&mut self, now_ns: u64) -> Vec<Incident> {
        let mut closed = Vec::new();
        for b in self.busy.values_mut() {
            if b.open
                .as_ref()
                .is_some_and(|i| now_ns.saturating_sub(i.last_ts_ns) >= self.cfg.quiet_ns)
            {
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

/// One deletion as an incident lists it.
pub(super) fn deletion(
    ev: &Event,
    flags: u32,
    dir: &Dir,
    path: Bytes,
    rel: Bytes,
    backing_root: Option<&Bytes>,
) -> Deletion {
    Deletion {
        ts_ns: ev.ts_ns,
        pid: ev.pid,
        tid: ev.tid,
        syscall: ev.kind,
        is_dir: is_dir_removal(ev, flags),
        path,
        backing_path: backing_root.map(|r| join(r, &rel)),
        rel_path: rel,
        truncated: dir.truncated(),
    }
}

pub(super) fn is_dir_removal(ev: &Event, flags: u32) -> bool {
    ev.kind == EventKind::Rmdir || flags & AT_REMOVEDIR != 0
}

/// What an incident says about the mount, from the kernel (flags at the
/// deletion) and the mount table (when it knew the mount).
pub(super) fn mount_facts(
    dir: &Dir,
    mountpoint: Bytes,
    mount: Option<&MountInfo>,
    backing_root: Option<Bytes>,
) -> MountFacts {
    MountFacts {
        mnt_id: dir.mnt_id,
        mnt_ns: dir.mnt_ns,
        mountpoint,
        root: mount.map(|m| m.root.clone()),
        backing_root,
        fstype: mount.map(|m| m.fstype.clone()),
        source: mount.map(|m| m.source.clone()),
        idmapped: dir.flags & tracer_common::event::DIR_IDMAPPED != 0
            || mount.is_some_and(|m| m.idmapped),
        subtree: dir.flags & tracer_common::event::DIR_SUBTREE != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Str;
    use tracer_common::event::{DIR_FROM_FD, DIR_IDMAPPED, DIR_RESOLVED, DIR_SUBTREE};

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
            },
        );
        let en = Enrichment {
            umount_target: Some(Bytes::copy_from_slice(target)),
            mount: (ret == -i64::from(EBUSY)).then(|| mount_info(65)),
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
            },
        )
    }

    fn run(events: &[(Event, Enrichment)], end: u64) -> Vec<Incident> {
        let mut c = Correlator::new(CorrelatorConfig::default());
        let mut out = Vec::new();
        for (e, en) in events {
            out.extend(c.tick(e.ts_ns));
            out.extend(c.event(e, en));
        }
        out.extend(c.tick(end));
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
            c.tick(2_000 + 1_999_999_999).is_empty(),
            "not quiet long enough yet"
        );
        let first = c.tick(2_000 + 2_000_000_000);
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
