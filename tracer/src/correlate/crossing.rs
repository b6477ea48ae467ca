//! Recursive deletes that cross into a live mount (no unmount needed).
//!
//! The kernel groups each thread's deletions into bursts (one recursive
//! delete: deletions less than a second apart) whose origin is the mount
//! where the thread began listing directories (a walk lists a directory
//! before deleting in it). Once a burst is on another mount than its origin
//! or its previous deletion, the kernel captures the rest of it
//! (`CAP_CROSSING`); deletions through binds of directories and id-mapped
//! mounts are always captured.
//! Per thread, this collects a burst's captured deletions by mount and the
//! trees the walk removed from, each by its top: the first directory the
//! walk listed (the kernel's `walk_top`, sent as it first crossed), and the
//! outermost directories it removed (or tried to) or deleted from, as a
//! recursive delete ends with its top directory. When the burst ends, every
//! mount other than the walk's own (its origin, and the one holding the
//! root of its tree), mounted inside a tree the walk removed from, on which
//! the walk deleted something is a crossing incident.

use std::collections::BTreeMap;

use bytes::Bytes;
use tracer_common::{event::CAP_ALL, uapi::EBUSY};

use super::incident::{deletion, inode, is_dir_removal, mount_facts, prevention, process, Removed};
use super::*;
use crate::enrich::mount_table::MountInfo;
use crate::model::{detach, Args, Dir};
use crate::path::{is_under, join, resolve_arg};

/// What the burst did on one mount.
struct Side {
    first_dir: Dir,
    mountpoint: Bytes,
    mount: Option<std::sync::Arc<MountInfo>>,
    backing_root: Option<Bytes>,
    deletions: Vec<Deletion>,
    count: u64,
    removed: Removed,
    first_ts: u64,
    last_ts: u64,
    /// `--guard-crossings` acted at the walk's first listing here.
    prevented: Vec<Prevention>,
}

struct Burst {
    by: Process,
    origin_mnt_id: u32,
    start_ts: u64,
    last_ts: u64,
    /// The trees the walk removed from (see `consider_root`), none inside
    /// another: (top directory, the mount holding it).
    roots: Vec<(Bytes, u32)>,
    /// `roots` reached `ROOTS_MAX`: a tree may be missing from it.
    roots_full: bool,
    sides: BTreeMap<u32, Side>,
    /// Directories whose removal failed with EBUSY (mountpoints), with time.
    ebusy: Vec<(Bytes, u64)>,
    lost_while_open: u64,
}

impl Side {
    fn new(dir: &Dir, mountpoint: &Bytes, en: &Enrichment, ts: u64) -> Side {
        Side {
            first_dir: dir.detached(),
            mountpoint: detach(mountpoint),
            mount: en.mount.clone(),
            backing_root: en.backing_root.clone(),
            deletions: Vec::new(),
            count: 0,
            removed: Removed::default(),
            first_ts: ts,
            last_ts: ts,
            prevented: Vec::new(),
        }
    }
}

impl Burst {
    /// A root candidate and the mount holding it: a directory the walk
    /// listed first (the kernel's `walk_top`), removed (or tried to), or
    /// deleted a file from. The walk's roots are the outermost ones: a
    /// candidate inside a root changes nothing, one above roots replaces
    /// them, and one apart from all is the top of another tree (`rm -rf a
    /// b`, or a cleanup that removes several pod directories one after the
    /// other in one burst). `removal`: the directory was the target of a
    /// removal, so `mnt_id` is its parent's mount; it wins over the same
    /// directory seen as a place deleted from (which, at a mountpoint, is
    /// the mount on it, not the one holding it).
    fn consider_root(&mut self, path: &Bytes, mnt_id: u32, removal: bool) {
        if let Some(r) = self.roots.iter_mut().find(|r| is_under(path, &r.0)) {
            if removal && r.0 == path {
                r.1 = mnt_id;
            }
            return;
        }
        self.roots.retain(|r| !is_under(&r.0, path));
        if self.roots.len() < ROOTS_MAX {
            self.roots.push((detach(path), mnt_id));
        } else {
            self.roots_full = true;
        }
    }

    /// The root of the tree `mountpoint` is in: `Some(None)` when the walk
    /// removed from no tree holding it (or its trees are not all known),
    /// `None` when it is outside every tree the walk removed from.
    fn root_of(&self, mountpoint: &[u8]) -> Option<Option<&(Bytes, u32)>> {
        match self.roots.iter().find(|r| is_under(mountpoint, &r.0)) {
            Some(r) => Some(Some(r)),
            None if self.roots.is_empty() || self.roots_full => Some(None),
            None => None,
        }
    }
}

/// Most trees a walk's roots keep (`Burst::roots`).
const ROOTS_MAX: usize = 1024;

pub struct Crossings {
    cfg: CorrelatorConfig,
    bursts: BTreeMap<u32, Burst>,
}

impl Crossings {
    pub fn new(cfg: CorrelatorConfig) -> Crossings {
        Crossings {
            cfg,
            bursts: BTreeMap::new(),
        }
    }

    /// `claimed`: the deletion already belongs to a busy-unmount incident.
    pub fn event(
        &mut self,
        ev: &Event,
        en: &Enrichment,
        claimed: bool,
        next_id: &mut u64,
    ) -> Vec<Incident> {
        match &ev.args {
            Args::Guard(g) => return self.guard(ev, en, g, next_id),
            Args::WalkTop { dir, origin_mnt_id } => {
                return self.top(ev, dir, *origin_mnt_id, next_id);
            }
            _ => {}
        }
        let Args::Delete {
            pathname,
            flags,
            dir,
            capture,
            origin_mnt_id,
            ..
        } = &ev.args
        else {
            return Vec::new();
        };
        // Only deletions the kernel captured for a race reason carry burst
        // facts.
        if capture & !CAP_ALL == 0 || *origin_mnt_id == 0 || !dir.resolved() {
            return Vec::new();
        }
        let closed = self.end_other_walk(ev, *origin_mnt_id, next_id);
        let max_deletions = self.cfg.max_deletions;
        let b = self.burst(ev, *origin_mnt_id);
        let Some(name) = pathname.value() else {
            return closed;
        };
        let path = resolve_arg(&dir.path.bytes, name);
        // The walk's roots: the outermost directories it removed (or tried
        // to) or deleted from. A recursive delete ends with its top directory
        // (Go's RemoveAll tries it even when not empty; coreutils rm deletes
        // from it, and skips it once something below could not be removed).
        // A directory a file was deleted from is in the tree; a directory
        // only used to remove a subdirectory may be the tree's parent (the
        // last call of a recursive delete removes the top that way).
        let removes_dir = is_dir_removal(ev, *flags);
        if ev.ret == 0
            && !removes_dir
            && !dir.truncated()
            && dir.from() == crate::model::DirFrom::Fd
        {
            b.consider_root(&dir.path.bytes, dir.mnt_id, false);
        }
        if removes_dir {
            b.consider_root(&path, en.parent_mnt_id.unwrap_or(dir.mnt_id), true);
            if ev.errno() == Some(EBUSY) {
                b.ebusy.push((path.clone(), ev.ts_ns));
            }
        }
        if ev.ret != 0 || claimed || name.contains(&b'/') {
            return closed;
        }
        let Some(mountpoint) = dir.mountpoint() else {
            return closed;
        };
        let rel_dir = dir.rel_path().unwrap_or_else(|| Bytes::from_static(b"/"));
        let side = b
            .sides
            .entry(dir.mnt_id)
            .or_insert_with(|| Side::new(dir, &mountpoint, en, ev.ts_ns));
        side.count += 1;
        side.removed.add(inode(ev).as_ref());
        side.last_ts = ev.ts_ns;
        if side.deletions.len() < max_deletions {
            side.deletions.push(deletion(
                ev,
                *flags,
                dir,
                path,
                join(&rel_dir, name),
                side.backing_root.as_ref(),
            ));
        }
        closed
    }

    /// The thread's walk that began on another mount, or went quiet, is
    /// over: its incidents.
    fn end_other_walk(
        &mut self,
        ev: &Event,
        origin_mnt_id: u32,
        next_id: &mut u64,
    ) -> Vec<Incident> {
        let stale = self.bursts.get(&ev.tid).is_some_and(|b| {
            b.origin_mnt_id != origin_mnt_id
                || ev.ts_ns.saturating_sub(b.last_ts) > self.cfg.quiet_ns
        });
        match stale.then(|| self.bursts.remove(&ev.tid)).flatten() {
            Some(b) => self.close(b, next_id),
            None => Vec::new(),
        }
    }

    /// The thread's walk (begun on `origin_mnt_id`), now at `ev`.
    fn burst(&mut self, ev: &Event, origin_mnt_id: u32) -> &mut Burst {
        let b = self.bursts.entry(ev.tid).or_insert_with(|| Burst {
            by: process(ev),
            origin_mnt_id,
            start_ts: ev.ts_ns,
            last_ts: ev.ts_ns,
            roots: Vec::new(),
            roots_full: false,
            sides: BTreeMap::new(),
            ebusy: Vec::new(),
            lost_while_open: 0,
        });
        b.start_ts = b.start_ts.min(ev.ts_ns);
        b.last_ts = ev.ts_ns;
        b
    }

    /// The kernel's record of the walk's top directory (the first it
    /// listed), sent as the walk first crossed: a root, whichever deletions
    /// the kernel captured after it. (A walk of several trees, `rm -rf a b`
    /// or `rm -rf dir/*`, lists on from the first: the other trees' roots
    /// are what their deletions give.)
    fn top(
        &mut self,
        ev: &Event,
        dir: &Dir,
        origin_mnt_id: u32,
        next_id: &mut u64,
    ) -> Vec<Incident> {
        if !dir.resolved() || dir.truncated() || origin_mnt_id == 0 {
            return Vec::new();
        }
        let closed = self.end_other_walk(ev, origin_mnt_id, next_id);
        let new = !self.bursts.contains_key(&ev.tid);
        let b = self.burst(ev, origin_mnt_id);
        // The walk starts at its first captured deletion, which follows.
        if new {
            b.start_ts = u64::MAX;
        }
        b.consider_root(&dir.path.bytes, dir.mnt_id, false);
        closed
    }

    /// `--guard-crossings` acted on the walk at its first listing in a bind
    /// from outside the tree (the kernel decided that): an incident of the
    /// walk on that mount, with nothing deleted there.
    fn guard(
        &mut self,
        ev: &Event,
        en: &Enrichment,
        g: &crate::model::Guard,
        next_id: &mut u64,
    ) -> Vec<Incident> {
        if g.trigger != tracer_common::event::GUARD_AT_CROSSING {
            return Vec::new();
        }
        let Some(mountpoint) = g.mount.mountpoint() else {
            return Vec::new();
        };
        let closed = self.end_other_walk(ev, g.origin_mnt_id, next_id);
        let b = self.burst(ev, g.origin_mnt_id);
        let side = b
            .sides
            .entry(g.mount.mnt_id)
            .or_insert_with(|| Side::new(&g.mount, &mountpoint, en, ev.ts_ns));
        if side.prevented.len() < PREVENTED_MAX {
            side.prevented.push(prevention(ev, g, en.saved.clone()));
        }
        closed
    }

    pub fn is_empty(&self) -> bool {
        self.bursts.is_empty()
    }

    /// What is kept (a tick that changes it changed something).
    pub fn len(&self) -> usize {
        self.bursts.len()
    }

    pub fn losses(&mut self, delta: u64) {
        for b in self.bursts.values_mut() {
            b.lost_while_open += delta;
        }
    }

    pub fn tick(&mut self, now_ns: u64, next_id: &mut u64) -> Vec<Incident> {
        let quiet = self.cfg.quiet_ns;
        let done: Vec<u32> = self
            .bursts
            .iter()
            .filter(|(_, b)| now_ns.saturating_sub(b.last_ts) >= quiet)
            .map(|(&tid, _)| tid)
            .collect();
        let mut closed = Vec::new();
        for tid in done {
            if let Some(b) = self.bursts.remove(&tid) {
                closed.extend(self.close(b, next_id));
            }
        }
        closed
    }

    pub fn finish(&mut self, next_id: &mut u64) -> Vec<Incident> {
        let bursts = std::mem::take(&mut self.bursts);
        bursts
            .into_values()
            .flat_map(|b| self.close(b, next_id))
            .collect()
    }

    /// A finished burst: one incident per other mount it deleted on, below
    /// its root.
    fn close(&self, mut b: Burst, next_id: &mut u64) -> Vec<Incident> {
        let mut out = Vec::new();
        let sides = std::mem::take(&mut b.sides);
        for (mnt_id, side) in sides {
            // Not mounted inside a tree the walk removed: no crossing.
            let Some(root) = b.root_of(&side.mountpoint) else {
                continue;
            };
            let home = root.map(|&(_, m)| m).unwrap_or(b.origin_mnt_id);
            // The walk's own mounts: where its root is, and where it began
            // listing (a walk of a mount's own top never crossed into it).
            let acted = !side.prevented.is_empty();
            if mnt_id == home || mnt_id == b.origin_mnt_id || (side.count == 0 && !acted) {
                continue;
            }
            let id = *next_id;
            *next_id += 1;
            let ebusy = b
                .ebusy
                .iter()
                .find(|(p, _)| *p == side.mountpoint)
                .map(|&(_, t)| t);
            out.push(Incident {
                id,
                severity: Severity::Warning,
                root_label: None,
                cause: Cause::Crossing(Walk {
                    by: b.by.clone(),
                    origin_mnt_id: b.origin_mnt_id,
                    root: root.map(|(r, _)| r.clone()),
                    root_mnt_id: root.map(|&(_, m)| m),
                    start_ts_ns: b.start_ts,
                    mountpoint_ebusy_ts_ns: ebusy,
                }),
                mount: mount_facts(
                    &side.first_dir,
                    side.mountpoint.clone(),
                    side.mount.as_deref(),
                    side.backing_root.clone(),
                ),
                holders: None,
                deleters: vec![b.by.clone()],
                deletions: side.deletions,
                count: side.count,
                removed: side.removed,
                first_delay_ns: side.first_ts.saturating_sub(b.start_ts),
                last_ts_ns: side.last_ts,
                lost_while_open: b.lost_while_open,
                prevented: side.prevented,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Args, Dir, Str};
    use tracer_common::event::{
        CAP_CROSSING, CAP_SUBTREE, DIR_FROM_FD, DIR_FROM_ROOT, DIR_RESOLVED, DIR_SUBTREE,
    };
    use tracer_common::{uapi::AT_REMOVEDIR, EventKind};

    const NS: u32 = 4026531840;
    const POD: &str = "/var/lib/kubelet/pods/u1";
    const MP: &str = "/var/lib/kubelet/pods/u1/volume-subpaths/v/c/0";
    const PV: &[u8] = b"/mnt/disks/pv1";

    /// A deletion by thread 7 of `name` in `dir` on mount `mnt` (whose
    /// mountpoint is `mp`), captured with `cap`, burst origin `origin`.
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per event field the tests vary"
    )]
    fn del(
        ts: u64,
        dir: &str,
        mp: &str,
        mnt: u32,
        name: &str,
        flags: u32,
        ret: i64,
        cap: u32,
        origin: u32,
    ) -> Event {
        let mut dflags = DIR_RESOLVED
            | if dir == "/" {
                DIR_FROM_ROOT
            } else {
                DIR_FROM_FD
            };
        if mnt == 65 {
            dflags |= DIR_SUBTREE;
        }
        let rel_off = if mp == "/" { 0 } else { mp.len() as u32 };
        Event {
            kind: EventKind::Unlinkat,
            ts_ns: ts,
            duration_ns: 1,
            ret,
            pid: 7,
            tid: 7,
            ppid: 1,
            uid: 0,
            gid: 0,
            mnt_ns: NS,
            cgroup_id: 9,
            comm: Bytes::from_static(b"rm"),
            args: Args::Delete {
                dfd: 3,
                pathname: Str::new(Bytes::copy_from_slice(name.as_bytes())),
                flags,
                dir: Dir {
                    mnt_id: mnt,
                    mnt_ns: NS,
                    flags: dflags,
                    path: Str::new(Bytes::copy_from_slice(dir.as_bytes())),
                    rel_off,
                    ..Default::default()
                },
                capture: cap,
                origin_mnt_id: origin,
                victim: None,
            },
        }
    }

    fn pv_enrichment() -> Enrichment {
        Enrichment {
            backing_root: Some(Bytes::from_static(PV)),
            ..Default::default()
        }
    }

    fn run(evs: Vec<(Event, Enrichment)>) -> Vec<Incident> {
        let mut c = Correlator::new(CorrelatorConfig::default());
        let mut out = Vec::new();
        for (e, en) in &evs {
            out.extend(c.event(e, en));
        }
        out.extend(c.finish());
        out
    }

    const SUB: u32 = CAP_SUBTREE | CAP_CROSSING;

    /// Thread 7's removal of pod directory `pod`'s volume-subpath
    /// mountpoint from its parent (mount 44), failing with EBUSY.
    fn mountpoint_ebusy(ts: u64, pod: &str) -> (Event, Enrichment) {
        let parent = format!("{pod}/volume-subpaths/v/c");
        let e = del(
            ts,
            &parent,
            "/",
            44,
            "0",
            AT_REMOVEDIR,
            -i64::from(EBUSY),
            CAP_CROSSING,
            44,
        );
        (e, Enrichment::default())
    }

    /// coreutils rm -rf: enters the bind first, fails on the mountpoint,
    /// then deletes the rest from the pod directory; never retries the top.
    fn rm_order() -> Vec<(Event, Enrichment)> {
        let data = format!("{MP}/data");
        vec![
            (del(10, MP, MP, 65, "c", 0, 0, SUB, 44), pv_enrichment()),
            (del(11, &data, MP, 65, "a", 0, 0, SUB, 44), pv_enrichment()),
            (
                del(12, MP, MP, 65, "data", AT_REMOVEDIR, 0, SUB, 44),
                pv_enrichment(),
            ),
            mountpoint_ebusy(13, POD),
            (
                del(14, POD, "/", 44, "etc-hosts", 0, 0, CAP_CROSSING, 44),
                Enrichment::default(),
            ),
        ]
    }

    /// `--guard-crossings` acting on thread 7 at `ts`, at its first listing
    /// in the bind at `MP` (mount 65), its walk begun on mount 44.
    fn guard_at_crossing(ts: u64) -> Event {
        let mut e = del(ts, MP, MP, 65, "x", 0, 0, SUB, 44);
        e.kind = EventKind::Guard;
        let Args::Delete { dir, .. } = e.args else {
            unreachable!()
        };
        e.args = Args::Guard(crate::model::Guard {
            action: crate::model::GuardAction::Killed,
            trigger: tracer_common::event::GUARD_AT_CROSSING,
            fd: Some(5),
            signal: 9,
            busy_ns: 0,
            mount: dir,
            origin_mnt_id: 44,
        });
        e
    }

    #[test]
    fn a_crossing_the_guard_acted_on_is_a_critical_incident_with_nothing_deleted() {
        // The pod's own files went first (not captured: the walk had not
        // crossed yet), then the guard killed it at the bind.
        let inc = run(vec![(guard_at_crossing(20), pv_enrichment())]);
        assert_eq!(inc.len(), 1, "{inc:#?}");
        let i = &inc[0];
        assert_eq!((i.count, i.deletions.len()), (0, 0));
        assert_eq!(i.severity, Severity::Critical);
        assert_eq!(i.root_label.as_deref(), Some("kubelet volume subpath"));
        assert_eq!(
            (i.mount.mnt_id, &i.mount.mountpoint[..]),
            (65, MP.as_bytes())
        );
        assert_eq!(i.mount.backing_root.as_deref(), Some(PV));
        let w = i.walk().expect("a crossing");
        assert_eq!((w.by.tid, w.origin_mnt_id, w.start_ts_ns), (7, 44, 20));
        assert_eq!(i.prevented.len(), 1);
        let p = &i.prevented[0];
        assert_eq!(
            (p.trigger, p.action, p.fd),
            (
                tracer_common::event::GUARD_AT_CROSSING,
                crate::model::GuardAction::Killed,
                Some(5)
            )
        );
        // A guard action of the EBUSY kind is not a crossing.
        let mut busy = guard_at_crossing(20);
        if let Args::Guard(g) = &mut busy.args {
            g.trigger = tracer_common::event::GUARD_AT_LISTING;
        }
        assert!(run(vec![(busy, pv_enrichment())]).is_empty());
    }

    /// The kernel's record of the walk's top (thread 7), on mount 44.
    fn walk_top(ts: u64, path: &str) -> Event {
        let mut e = del(ts, path, "/", 44, "", 0, 0, CAP_CROSSING, 44);
        e.kind = EventKind::WalkTop;
        let Args::Delete { dir, .. } = e.args else {
            unreachable!()
        };
        e.args = Args::WalkTop {
            dir,
            origin_mnt_id: 44,
        };
        e
    }

    #[test]
    fn the_kernels_walk_top_is_the_root_when_the_walk_deleted_nothing_in_it() {
        // rm deleted the pod's own files before it crossed (not captured):
        // what was captured is at or below the mountpoint.
        let mut evs = rm_order();
        evs.pop();
        let inferred = run(evs.clone());
        assert_eq!(
            inferred[0].walk().unwrap().root.as_deref(),
            Some(MP.as_bytes()),
            "from the captured deletions alone: too deep"
        );
        evs.insert(0, (walk_top(9, POD), Enrichment::default()));
        let inc = run(evs);
        assert_eq!(inc.len(), 1, "{inc:#?}");
        let (i, w) = (&inc[0], inc[0].walk().unwrap());
        assert_eq!(w.root.as_deref(), Some(POD.as_bytes()));
        assert_eq!((w.root_mnt_id, w.origin_mnt_id), (Some(44), 44));
        assert_eq!(
            (w.start_ts_ns, w.mountpoint_ebusy_ts_ns),
            (10, Some(13)),
            "the walk starts at its first captured deletion"
        );
        assert_eq!((i.mount.mnt_id, i.count, i.first_delay_ns), (65, 3, 0));
        assert_eq!(i.severity, Severity::Critical);
        // `rm -rf other POD`: the walk listed `other` first; the mount is
        // not below it, so the deletions say where the root is.
        let mut two = rm_order();
        two.insert(
            0,
            (
                walk_top(9, "/var/lib/kubelet/pods/other"),
                Enrichment::default(),
            ),
        );
        let inc = run(two);
        assert_eq!(inc.len(), 1, "{inc:#?}");
        assert_eq!(inc[0].walk().unwrap().root.as_deref(), Some(POD.as_bytes()));
        // A top record alone (its deletions lost) raises nothing.
        assert!(run(vec![(walk_top(9, POD), Enrichment::default())]).is_empty());
        // A top that is not whole is not taken.
        let mut cut = rm_order();
        cut.pop();
        let mut top = walk_top(9, "/var/lib");
        if let Args::WalkTop { dir, .. } = &mut top.args {
            dir.flags |= tracer_common::event::DIR_TRUNCATED;
        }
        cut.insert(0, (top, Enrichment::default()));
        assert_eq!(
            run(cut)[0].walk().unwrap().root.as_deref(),
            Some(MP.as_bytes())
        );
    }

    /// Go's `os.RemoveAll` of one pod directory (thread 7, mount 44), its
    /// volume subpath a bind (mount `mnt`) of the PV: the PV's files, the
    /// mountpoint's EBUSY, the final ENOTEMPTY of the pod directory.
    fn remove_all_of_a_pod(ts: u64, pod: &str, mnt: u32) -> Vec<(Event, Enrichment)> {
        let mp = format!("{pod}/volume-subpaths/v/c/0");
        vec![
            (del(ts, &mp, &mp, mnt, "c", 0, 0, SUB, 44), pv_enrichment()),
            mountpoint_ebusy(ts + 1, pod),
            (
                del(
                    ts + 2,
                    "/var/lib/kubelet/pods",
                    "/",
                    44,
                    pod.rsplit('/').next().unwrap(),
                    AT_REMOVEDIR,
                    -39,
                    CAP_CROSSING,
                    44,
                ),
                Enrichment::default(),
            ),
        ]
    }

    #[test]
    fn a_walks_roots_are_its_outermost_trees_and_bounded() {
        let ev = del(1, POD, "/", 44, "x", 0, 0, CAP_CROSSING, 44);
        let mut c = Crossings::new(CorrelatorConfig::default());
        let b = c.burst(&ev, 44);
        let p = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        b.consider_root(&p("/a/b/c"), 70, false);
        b.consider_root(&p("/a/b/c/d"), 70, false); // inside: nothing
        b.consider_root(&p("/x/y"), 44, false); // another tree
        b.consider_root(&p("/a/b"), 44, false); // above the first: replaces it
        b.consider_root(&p("/a/b"), 45, true); // the same, removed: its parent's mount
        b.consider_root(&p("/a/b"), 46, false); // the same, deleted from: kept
        assert_eq!(b.roots, vec![(p("/x/y"), 44), (p("/a/b"), 45)]);
        assert_eq!(b.root_of(b"/a/b/c/m"), Some(Some(&(p("/a/b"), 45))));
        assert_eq!(b.root_of(b"/elsewhere/m"), None, "outside every tree");
        // Bounded: beyond ROOTS_MAX trees, a mount outside the known ones
        // is kept, with no root, rather than dropped.
        for i in 0..2 * ROOTS_MAX {
            b.consider_root(&p(&format!("/t/{i}")), 44, false);
        }
        assert_eq!(b.roots.len(), ROOTS_MAX);
        assert!(b.roots_full);
        assert_eq!(b.root_of(b"/elsewhere/m"), Some(None));
    }

    #[test]
    fn one_walk_of_several_pod_directories_is_an_incident_per_pod() {
        // kubelet's cleanup of orphaned pods: one RemoveAll after the
        // other on one thread, less than a burst's gap apart, so one burst
        // for the kernel; each pod's bind is crossed.
        let pods = ["/var/lib/kubelet/pods/u1", "/var/lib/kubelet/pods/u2"];
        let mut evs = remove_all_of_a_pod(10, pods[0], 65);
        evs.extend(remove_all_of_a_pod(20, pods[1], 66));
        let inc = run(evs);
        assert_eq!(inc.len(), 2, "{inc:#?}");
        for (i, (pod, mnt)) in inc.iter().zip(pods.iter().zip([65, 66])) {
            let w = i.walk().expect("a crossing");
            assert_eq!(i.mount.mnt_id, mnt);
            assert_eq!(w.root.as_deref(), Some(pod.as_bytes()));
            assert_eq!(w.root_mnt_id, Some(44));
            assert_eq!(i.count, 1);
        }
    }

    #[test]
    fn rm_rf_through_a_bind_of_an_outside_directory_is_critical() {
        let inc = run(rm_order());
        assert_eq!(inc.len(), 1, "{inc:#?}");
        let i = &inc[0];
        let w = i.walk().expect("crossing");
        assert_eq!(w.root.as_deref(), Some(POD.as_bytes()));
        assert_eq!((w.root_mnt_id, w.origin_mnt_id), (Some(44), 44));
        assert_eq!(w.mountpoint_ebusy_ts_ns, Some(13));
        assert_eq!(
            (i.severity, i.root_label.as_deref()),
            (Severity::Critical, Some("kubelet volume subpath"))
        );
        assert_eq!(
            (i.mount.mnt_id, &i.mount.mountpoint[..]),
            (65, MP.as_bytes())
        );
        let backing: Vec<&[u8]> = i
            .deletions
            .iter()
            .map(|d| d.backing_path.as_deref().unwrap())
            .collect();
        assert_eq!(
            backing,
            vec![
                &b"/mnt/disks/pv1/c"[..],
                b"/mnt/disks/pv1/data/a",
                b"/mnt/disks/pv1/data"
            ]
        );
        assert_eq!((i.count, i.first_delay_ns), (3, 0));
    }

    const TMP_MP: &str = "/var/lib/kubelet/pods/u1/scratch";

    fn tmpfs(id: u32) -> MountInfo {
        MountInfo {
            mnt_id: id,
            parent_id: 44,
            dev: 55,
            root: Bytes::from_static(b"/"),
            mountpoint: Bytes::from_static(TMP_MP.as_bytes()),
            options: "rw".into(),
            propagation: String::new(),
            fstype: "tmpfs".into(),
            source: Bytes::from_static(b"tmpfs"),
            super_options: "rw".into(),
            idmapped: false,
        }
    }

    #[test]
    fn go_order_into_a_tmpfs_inside_the_tree_is_a_complete_warning() {
        let tmp_en = Enrichment {
            mount: Some(tmpfs(70).into()),
            ..Default::default()
        };
        let evs = vec![
            // The burst began on the pod's mount (44), not captured; then the
            // walk entered the tmpfs: from here on everything is captured.
            (
                del(10, TMP_MP, TMP_MP, 70, "f", 0, 0, CAP_CROSSING, 44),
                tmp_en.clone(),
            ),
            (
                del(11, TMP_MP, TMP_MP, 70, "g", 0, 0, CAP_CROSSING, 44),
                tmp_en,
            ),
            (
                del(
                    12,
                    POD,
                    "/",
                    44,
                    "scratch",
                    AT_REMOVEDIR,
                    -i64::from(EBUSY),
                    CAP_CROSSING,
                    44,
                ),
                Enrichment::default(),
            ),
            (
                del(
                    13,
                    "/var/lib/kubelet/pods",
                    "/",
                    44,
                    "u1",
                    AT_REMOVEDIR,
                    -39,
                    CAP_CROSSING,
                    44,
                ),
                Enrichment::default(),
            ),
        ];
        let inc = run(evs);
        assert_eq!(inc.len(), 1, "{inc:#?}");
        let (i, w) = (&inc[0], inc[0].walk().unwrap());
        assert_eq!(
            w.root.as_deref(),
            Some(POD.as_bytes()),
            "from the final ENOTEMPTY removal"
        );
        assert_eq!(w.mountpoint_ebusy_ts_ns, Some(12));
        assert_eq!(
            (i.severity, i.root_label.as_deref()),
            (Severity::Warning, None)
        );
        assert_eq!(
            (i.count, i.mount.fstype.as_deref(), i.mount.subtree),
            (2, Some("tmpfs"), false)
        );
        assert_eq!(
            i.deletions[0].backing_path, None,
            "a filesystem of its own: no backing directory"
        );
    }

    #[test]
    fn a_walk_of_a_mounts_own_top_is_no_crossing() {
        // rm -rf of a tmpfs's own mountpoint: the walk began listing inside
        // the tmpfs (origin 70), deleted there, then failed on the
        // mountpoint from its parent's mount.
        let evs = vec![
            (
                del(10, TMP_MP, TMP_MP, 70, "f", 0, 0, CAP_CROSSING, 70),
                Enrichment::default(),
            ),
            (
                del(
                    12,
                    POD,
                    "/",
                    44,
                    "scratch",
                    AT_REMOVEDIR,
                    -i64::from(EBUSY),
                    CAP_CROSSING,
                    70,
                ),
                Enrichment::default(),
            ),
        ];
        assert!(run(evs).is_empty());
    }

    #[test]
    fn an_ebusy_unmount_before_the_crossing_is_one_incident_not_two() {
        let mut c = Correlator::new(CorrelatorConfig::default());
        let um = Event {
            kind: EventKind::Umount,
            args: Args::Umount {
                target: Str::new(Bytes::from_static(MP.as_bytes())),
                flags: 0,
                cwd: Dir::default(),
                target_mount: None,
            },
            ret: -i64::from(EBUSY),
            ts_ns: 5,
            ..del(5, MP, MP, 65, "x", 0, 0, 0, 0)
        };
        let en = Enrichment {
            umount_target: Some(Bytes::from_static(MP.as_bytes())),
            ..Default::default()
        };
        let mut out = c.event(&um, &en);
        for (e, en) in rm_order() {
            out.extend(c.event(&e, &en));
        }
        out.extend(c.finish());
        assert_eq!(out.len(), 1, "{out:#?}");
        assert!(
            out[0].unmount().is_some(),
            "reported as the busy-unmount incident"
        );
        assert_eq!(out[0].count, 3);
    }

    #[test]
    fn a_bind_of_a_directory_inside_the_deleted_tree_is_a_warning() {
        let inside = Enrichment {
            backing_root: Some(Bytes::from(format!("{POD}/containers/data"))),
            ..Default::default()
        };
        let mut evs = rm_order();
        for (e, en) in evs.iter_mut() {
            if let Args::Delete { dir, .. } = &e.args {
                if dir.mnt_id == 65 {
                    *en = inside.clone();
                }
            }
        }
        // Not under a volume-subpaths root either: seen elsewhere.
        let inc = run(evs
            .into_iter()
            .map(|(mut e, en)| {
                if let Args::Delete { dir, .. } = &mut e.args {
                    let p = String::from_utf8(dir.path.bytes.to_vec())
                        .unwrap()
                        .replace("volume-subpaths/v/c/0", "mnt0");
                    let off = if dir.mnt_id == 65 {
                        format!("{POD}/mnt0").len() as u32
                    } else {
                        0
                    };
                    dir.path = Str::new(Bytes::from(p));
                    dir.rel_off = off;
                }
                (e, en)
            })
            .collect());
        assert_eq!(inc.len(), 1, "{inc:#?}");
        assert_eq!(
            (inc[0].severity, inc[0].root_label.as_deref()),
            (Severity::Warning, None)
        );
    }

    #[test]
    fn deletions_confined_to_one_mount_are_no_crossing() {
        let evs = vec![
            (del(10, MP, MP, 65, "c", 0, 0, SUB, 65), pv_enrichment()),
            (
                del(11, MP, MP, 65, "d", AT_REMOVEDIR, 0, SUB, 65),
                pv_enrichment(),
            ),
        ];
        assert!(run(evs).is_empty());
    }
}
