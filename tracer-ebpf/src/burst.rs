//! A thread's burst of deletions (one recursive delete: deletions less than
//! `burst_gap_ns` apart), kept in its slot's `DeleteState`: which mount the
//! burst began on and whether it has moved between mounts since. Fed by the
//! delete probes with every deletion of the thread (`on_deletion`) and every
//! directory listing (`on_listing`, from `getdents64`), before they decide
//! whether a deletion is captured.

use tracer_common::event::CAP_CROSSING;

use crate::core_access::{Mount, Task};
use crate::types::DeleteState;
use crate::walk::{mount_class, start_path, DirSource};

/// `DeleteState::top`: the burst began at a listing (`listed_dentry` is
/// its top) and its top is not recorded yet; it is recorded
/// (`EventKind::WalkTop`) with the burst's first walked deletion once it
/// has crossed (`top_pending`).
pub const TOP_KNOWN: u32 = 1;

/// Whether the burst's top is to be recorded now: known, not recorded,
/// and the burst has crossed. Asked by the directory walk's program, not by
/// the entry programs (in `on_deletion`, the test cost `enter_unlinkat`
/// 60,000-120,000 more instructions to verify on 6.18).
#[inline(always)]
pub fn top_pending(d: &DeleteState) -> bool {
    d.top == TOP_KNOWN && d.crossed != 0
}

/// A deletion through mount `mnt` at `now`: update the burst and return the
/// capture reasons it gives, the mount's `CAP_IDMAPPED | CAP_SUBTREE` class
/// and `CAP_CROSSING` once the burst has moved between mounts.
#[inline(always)]
pub fn on_deletion(d: &mut DeleteState, mnt: Mount, now: u64, gap_ns: u64) -> u32 {
    let id = mnt.id();
    let new_burst = d.origin_mnt == 0 || now.wrapping_sub(d.last_ns) > gap_ns;
    let other_mount = d.last_mnt != mnt.0 || d.last_mnt_id != id;
    if other_mount {
        d.last_mnt = mnt.0;
        d.last_mnt_id = id;
        d.last_class = mount_class(mnt);
    }
    let mut cap = d.last_class;
    if new_burst {
        // The walk began where the thread started listing directories, if
        // it has been listing: a post-order delete's first deletion can be
        // deep inside a mount below its top.
        let listing = d.listed_mnt != 0 && now.wrapping_sub(d.listed_ns) <= gap_ns;
        if listing {
            d.origin_mnt = d.listed_mnt;
            d.origin_mnt_id = d.listed_mnt_id;
            d.top = TOP_KNOWN;
        } else {
            d.origin_mnt = mnt.0;
            d.origin_mnt_id = id;
            d.top = 0;
        }
        d.crossed = (d.origin_mnt != mnt.0) as u32;
    } else if other_mount {
        // The burst moved into another mount (or back out of one): from now
        // on every deletion of the burst is captured, so the walk's end
        // (the EBUSY rmdir of the mountpoint, the top directory) is seen.
        d.crossed = 1;
    }
    d.last_ns = now;
    if d.crossed != 0 {
        cap |= CAP_CROSSING;
    }
    cap
}

/// A listing of directory `fd` at `now`: remember the first mount and
/// directory of the thread's current sequence of listings (listings less
/// than `gap_ns` apart). Returns whether the listing continues a sequence.
#[inline(always)]
pub fn on_listing(d: &mut DeleteState, fd: i32, gap_ns: u64, now: u64) -> bool {
    if d.listed_mnt != 0 && now.wrapping_sub(d.listed_ns) <= gap_ns {
        d.listed_ns = now;
        return true;
    }
    let Some(p) = start_path(Task::current(), DirSource::Fd(fd)) else {
        return false;
    };
    d.listed_mnt = p.mnt.0;
    d.listed_mnt_id = p.mnt.id();
    d.listed_ns = now;
    d.listed_dentry = p.dentry.0;
    d.crossing_acted_mnt = 0;
    false
}
