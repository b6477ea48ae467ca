//! A live process in a given mount namespace, to read that namespace
//! through (`/proc/PID/mountinfo`, `/proc/PID/root`, `/proc/PID/ns/mnt`).
//!
//! The process an event came from is often gone by the time the event is
//! enriched: `umount(8)`, `mount(8)` and `rm` live for a millisecond, while
//! the namespace lives on in the container's or the shell's other
//! processes. So: the event's process when it is still in the namespace,
//! else the last one found for it, else one found by a scan of `/proc`, at
//! most once per namespace per [`SCAN_EVERY_NS`] of event time. Bounded.

use std::collections::HashMap;

use super::mount_table::ns_inode;

/// Event time between two scans of `/proc` for the same namespace.
const SCAN_EVERY_NS: u64 = 1_000_000_000;
/// Age of an event (event time against the boot clock now) beyond which
/// its namespace is not looked for in `/proc`.
const SCAN_FRESH_NS: u64 = 500_000_000;

/// Namespaces remembered (a pid each, and when they were last scanned for).
const NAMESPACES_MAX: usize = 4096;

#[derive(Default)]
pub struct NsPids {
    /// Namespace → a process found in it.
    found: HashMap<u32, u32>,
    /// Namespace → event time of its last scan.
    scanned: HashMap<u32, u64>,
}

/// The mount namespace (inode) of process `pid` now, if it exists.
fn ns_of(pid: u32) -> Option<u32> {
    ns_inode(&format!("/proc/{pid}/ns/mnt")).ok()
}

impl NsPids {
    /// A process in namespace `ns` now: `hint` (the event's process) if it
    /// still is, else another one (see the module doc). `now` is the
    /// event's time.
    pub fn pid_in(&mut self, ns: u32, hint: u32, now: u64) -> Option<u32> {
        if ns_of(hint) == Some(ns) {
            return Some(hint);
        }
        if let Some(&p) = self.found.get(&ns) {
            if ns_of(p) == Some(ns) {
                return Some(p);
            }
            self.found.remove(&ns);
        }
        if self
            .scanned
            .get(&ns)
            .is_some_and(|&t| now.wrapping_sub(t) < SCAN_EVERY_NS)
        {
            return None;
        }
        // An older event's namespace may be gone, and its inode number
        // given to a new namespace: a process found with that inode now
        // would be read as if it were the event's namespace.
        if super::clock::boot_ns().saturating_sub(now) > SCAN_FRESH_NS {
            return None;
        }
        if self.scanned.len() >= NAMESPACES_MAX {
            self.scanned.clear();
        }
        self.scanned.insert(ns, now);
        let p = scan(ns)?;
        if self.found.len() >= NAMESPACES_MAX {
            self.found.clear();
        }
        self.found.insert(ns, p);
        Some(p)
    }
}

/// The first process of `/proc` in namespace `ns`.
fn scan(ns: u32) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|&pid| ns_of(pid) == Some(ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process, its namespace, and the pid of a child that has exited.
    fn me_my_ns_and_a_gone_pid() -> (u32, u32, u32) {
        let me = std::process::id();
        let ns = ns_of(me).expect("own namespace");
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let gone = child.id();
        child.wait().expect("wait");
        (me, ns, gone)
    }

    /// A gone process's namespace is read through another of its
    /// processes; a namespace of no process gives none, and is not
    /// scanned for again at once.
    #[test]
    fn a_gone_process_is_replaced_by_another_of_its_namespace() {
        let (me, ns, gone) = me_my_ns_and_a_gone_pid();
        let mut p = NsPids::default();
        let now = crate::enrich::clock::boot_ns();
        assert_eq!(p.pid_in(ns, me, now), Some(me));
        let other = p
            .pid_in(ns, gone, now)
            .expect("a process of this namespace");
        assert_eq!(ns_of(other), Some(ns));
        assert_eq!(p.pid_in(ns, gone, now + 1), Some(other), "remembered");
        assert_eq!(p.pid_in(1, gone, now), None, "no process has namespace 1");
        assert!(p.scanned.contains_key(&1));
        assert_eq!(p.pid_in(1, gone, now + SCAN_EVERY_NS - 1), None);
    }

    /// An event older than `SCAN_FRESH_NS`: its namespace is not looked for
    /// (its inode may be another namespace's now); the event's own process
    /// still is used when it is in it.
    #[test]
    fn an_old_events_namespace_is_not_scanned_for() {
        let (me, ns, gone) = me_my_ns_and_a_gone_pid();
        let old = crate::enrich::clock::boot_ns() - 2 * SCAN_FRESH_NS;
        let mut p = NsPids::default();
        assert_eq!(p.pid_in(ns, gone, old), None);
        assert_eq!(p.pid_in(ns, me, old), Some(me));
    }
}
