//! What an incident is made of (the failed unmount or the walk, the mount,
//! the deletions, the processes), and the builders both incident rules use
//! to fill it from events.

use bytes::Bytes;
use tracer_common::{uapi::AT_REMOVEDIR, EventKind};

use crate::enrich::holders::HolderScan;
use crate::enrich::mount_table::MountInfo;
use crate::model::{Args, Dir, Event, Guard, GuardAction, Victim};
use crate::path::join;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// A process, as the kernel reported it on one of its calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub comm: Bytes,
    pub cgroup_id: u64,
    pub mnt_ns: u32,
}

/// The unmount that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedUnmount {
    pub ts_ns: u64,
    pub by: Process,
    /// The target as given.
    pub target: Bytes,
    /// The target as an absolute path in the caller's namespace.
    pub target_abs: Bytes,
    pub flags: u64,
}

/// The mount the deletions went through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountFacts {
    pub mnt_id: u32,
    pub mnt_ns: u32,
    pub mountpoint: Bytes,
    /// Root of the mount within its filesystem (mountinfo's `root`), when
    /// the mount table knew the mount.
    pub root: Option<Bytes>,
    /// Where that root really lives, as a path in the namespace.
    pub backing_root: Option<Bytes>,
    pub fstype: Option<String>,
    pub source: Option<Bytes>,
    /// From the kernel at deletion time.
    pub idmapped: bool,
    /// A bind of a subdirectory (from the kernel at deletion time).
    pub subtree: bool,
}

/// One entry deleted through the mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deletion {
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub syscall: EventKind,
    /// `rmdir` or `unlinkat(AT_REMOVEDIR)`.
    pub is_dir: bool,
    /// The path as the deleting process saw it.
    pub path: Bytes,
    /// The path relative to the mount's root.
    pub rel_path: Bytes,
    /// Where the entry really lived (mount's backing root + `rel_path`).
    pub backing_path: Option<Bytes>,
    /// The path (as seen or backing) was cut by the kernel's limits.
    pub truncated: bool,
    /// The inode the kernel removed (kernel probe set).
    pub inode: Option<Victim>,
    /// A rename (`syscall` says which): where the entry went, as the
    /// renaming process saw it (on the same mount: the kernel renames
    /// within one mount only). A rename moves the entry out of its place
    /// in what the mount holds, and replaces what was at the new path.
    pub renamed_to: Option<Bytes>,
}

/// What the deletions of an incident removed, by the kernel's account
/// (kernel probe set), over all of them, also those past the kept list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// Deletions whose inode the kernel reported.
    pub seen: u64,
    /// Files (not directories) whose last link went: their data is gone
    /// once no one has them open.
    pub last_links: u64,
    /// The size of those files, in bytes.
    pub bytes: u64,
}

impl Removed {
    pub fn add(&mut self, inode: Option<&Victim>) {
        let Some(v) = inode else {
            return;
        };
        self.seen += 1;
        if !v.rmdir && v.last_link() {
            self.last_links += 1;
            self.bytes = self.bytes.saturating_add(v.size);
        }
    }
}

/// A recursive delete that went from its own mount into another one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walk {
    /// The walking thread.
    pub by: Process,
    /// Mount where the walk began: where the thread began listing
    /// directories (from the kernel).
    pub origin_mnt_id: u32,
    /// The top directory of the walk's tree that holds the mount: the first
    /// directory the walk listed (the kernel's `walk_top`), else the
    /// outermost directory of that tree it removed (or tried to) or deleted
    /// from; `None` when not seen.
    pub root: Option<Bytes>,
    /// Mount of the directory holding `root`.
    pub root_mnt_id: Option<u32>,
    /// First captured event of the walk.
    pub start_ts_ns: u64,
    /// When removing the mountpoint itself failed with EBUSY.
    pub mountpoint_ebusy_ts_ns: Option<u64>,
}

/// Why an incident was raised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// An unmount of the mount failed with EBUSY, then deletions went
    /// through it.
    BusyUnmount(FailedUnmount),
    /// A recursive delete crossed from its own mount into this one, mounted
    /// below its top directory, and deleted entries there.
    Crossing(Walk),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incident {
    /// 1, 2, ... in the order incidents were opened.
    pub id: u64,
    pub severity: Severity,
    /// Label of the snapshot/volume root the backing paths are under.
    pub root_label: Option<String>,
    pub cause: Cause,
    pub mount: MountFacts,
    /// Who held the mount, scanned when the EBUSY was seen (busy unmount).
    pub holders: Option<HolderScan>,
    /// Every process that deleted through the mount.
    pub deleters: Vec<Process>,
    /// The deletions, in order (at most `max_deletions` kept).
    pub deletions: Vec<Deletion>,
    /// All successful deletions, including those beyond the kept list.
    pub count: u64,
    /// What they removed, where the kernel said (kernel probe set).
    pub removed: Removed,
    /// First deletion's time minus the failed unmount's time (busy unmount)
    /// or minus the walk's first captured event (crossing).
    pub first_delay_ns: u64,
    pub last_ts_ns: u64,
    /// Kernel-side losses counted while the incident was open: the list of
    /// deletions may be incomplete.
    pub lost_while_open: u64,
    /// What the guard did to processes walking into the mount (at most
    /// [`PREVENTED_MAX`] kept).
    pub prevented: Vec<Prevention>,
}

/// Guard actions kept per incident (one per process and EBUSY, in the
/// kernel: more would be a storm of processes walking into the mount).
pub const PREVENTED_MAX: usize = 64;

/// The guard acted on (or, reporting, would have acted on) a process
/// walking into the mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prevention {
    pub ts_ns: u64,
    pub by: Process,
    pub action: GuardAction,
    /// The signal sent (0 when reporting).
    pub signal: u32,
    /// `GUARD_AT_*`: the call it was making (`model::trigger_name`).
    pub trigger: u32,
    /// The directory fd it was listing or deleting from (none for a
    /// denial: see `model::Guard::fd`).
    pub fd: Option<i32>,
    /// What sending the signal returned (0: sent, or nothing to send).
    pub result: i64,
    /// The entries under the mount's directory when it acted (stopped or
    /// killed; see `enrich::saved`), when they could be counted.
    pub saved: Option<crate::enrich::saved::Saved>,
}

impl Incident {
    pub fn unmount(&self) -> Option<&FailedUnmount> {
        match &self.cause {
            Cause::BusyUnmount(u) => Some(u),
            Cause::Crossing(_) => None,
        }
    }
    pub fn walk(&self) -> Option<&Walk> {
        match &self.cause {
            Cause::Crossing(w) => Some(w),
            Cause::BusyUnmount(_) => None,
        }
    }
    pub fn kind_name(&self) -> &'static str {
        match &self.cause {
            Cause::BusyUnmount(_) => "busy_unmount",
            Cause::Crossing(_) => "crossing",
        }
    }
}

/// The process of an event, as the kernel reported it.
pub fn process(ev: &Event) -> Process {
    Process {
        pid: ev.pid,
        tid: ev.tid,
        ppid: ev.ppid,
        uid: ev.uid,
        comm: crate::model::detach(&ev.comm),
        cgroup_id: ev.cgroup_id,
        mnt_ns: ev.mnt_ns,
    }
}

/// A guard action as an incident lists it, with what enrichment counted.
pub fn prevention(ev: &Event, g: &Guard, saved: Option<crate::enrich::saved::Saved>) -> Prevention {
    Prevention {
        ts_ns: ev.ts_ns,
        by: process(ev),
        action: g.action,
        signal: g.signal,
        trigger: g.trigger,
        fd: g.fd,
        result: ev.ret,
        saved,
    }
}

/// One deletion as an incident lists it.
pub fn deletion(
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
        inode: inode(ev),
        renamed_to: None,
    }
}

/// The inode a deletion removed, when the kernel said (kernel probe set).
pub fn inode(ev: &Event) -> Option<Victim> {
    match &ev.args {
        Args::Delete { victim, .. } => *victim,
        _ => None,
    }
}

pub fn is_dir_removal(ev: &Event, flags: u32) -> bool {
    ev.kind == EventKind::Rmdir || flags & AT_REMOVEDIR != 0
}

/// What an incident says about the mount, from the kernel (flags at the
/// deletion) and the mount table (when it knew the mount).
pub fn mount_facts(
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
