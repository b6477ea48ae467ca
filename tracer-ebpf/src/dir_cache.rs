//! Reuse of a thread's last walked deletion directory. A recursive delete
//! deletes every entry of a directory from the same fd: the directory's
//! mount and path are walked once (`walk`, ~30 kernel reads) and reused by
//! the thread's next deletions from the same mount and dentry, as long as
//! the dentry's parent and name are unchanged (a rename of the directory
//! itself) and the walk is at most `WALK_REUSE_NS` old (a rename of an
//! ancestor is seen at the next walk). The result lives where the walk
//! left it, in the thread's slot (payload `dir`, string 1), so any other
//! use of the slot forgets it.

use tracer_common::limits::WALK_REUSE_NS;

use crate::core_access::KPath;
use crate::types::DeleteState;

/// What a deletion's starting directory is, for reuse.
#[derive(Clone, Copy)]
pub struct Key {
    mnt: u64,
    dentry: u64,
    parent: u64,
    hash_len: u64,
}

/// The key of `start` (two kernel reads); `None` when unreadable.
#[inline(always)]
pub fn key(start: KPath) -> Option<Key> {
    let (parent, hash_len) = start.dentry.identity()?;
    Some(Key {
        mnt: start.mnt.0,
        dentry: start.dentry.0,
        parent,
        hash_len,
    })
}

/// Whether the slot still holds a walk of `k` done at most
/// `WALK_REUSE_NS` before `now`.
#[inline(always)]
pub fn hit(d: &DeleteState, k: &Key, now: u64) -> bool {
    d.dir_valid != 0
        && d.dir_mnt == k.mnt
        && d.dir_dentry == k.dentry
        && d.dir_parent == k.parent
        && d.dir_hash_len == k.hash_len
        && now.wrapping_sub(d.dir_ns) <= WALK_REUSE_NS
}

/// A walk of `start` is about to replace the slot's result: remember what
/// it walks (`from`: its `DIR_FROM_*` flag), for the walk program and for
/// reuse once it is [`commit`]ted.
#[inline(always)]
pub fn pending(d: &mut DeleteState, start: KPath, k: Option<Key>, now: u64, from: u32) {
    d.dir_valid = 0;
    d.dir_mnt = start.mnt.0;
    d.dir_dentry = start.dentry.0;
    d.dir_from = from;
    d.dir_ns = now;
    match k {
        Some(k) => {
            d.dir_parent = k.parent;
            d.dir_hash_len = k.hash_len;
            d.dir_keyed = 1;
        }
        None => d.dir_keyed = 0,
    }
}

/// The pending walk is in the slot, complete: reusable if it had a key.
#[inline(always)]
pub fn commit(d: &mut DeleteState) {
    d.dir_valid = d.dir_keyed;
}

/// The slot no longer holds a walk's result.
#[inline(always)]
pub fn forget(d: &mut DeleteState) {
    d.dir_valid = 0;
}
