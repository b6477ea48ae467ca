//! The probe registry: which program hooks which tracepoint, derived from the
//! one list of event kinds so programs, attach points and kinds cannot drift.

use tracer_common::EventKind;

/// One program and its attach point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub kind: EventKind,
    /// Program (function) name in the eBPF object.
    pub program: String,
    /// Tracepoint category and name.
    pub category: &'static str,
    pub tracepoint: String,
    pub entry: bool,
}

/// Probes for `kinds`: all entry programs first, then all exits, the order
/// they are attached in (so a call is never seen exiting without its entry
/// once both are attached). Deletions also need `getdents64` (no events:
/// it tells the kernel side where a recursive delete began listing), which
/// comes first.
pub fn probes(kinds: &[EventKind]) -> Vec<Probe> {
    let mut v = Vec::with_capacity(kinds.len() * 2 + 1);
    if let Some(&kind) = kinds.iter().find(|k| k.is_delete()) {
        v.push(Probe {
            kind,
            program: "enter_getdents64".into(),
            category: "syscalls",
            tracepoint: "sys_enter_getdents64".into(),
            entry: true,
        });
    }
    for entry in [true, false] {
        for &kind in kinds {
            let (prefix, side) = if entry {
                ("enter", "sys_enter")
            } else {
                ("exit", "sys_exit")
            };
            v.push(Probe {
                kind,
                program: format!("{prefix}_{}", kind.syscall()),
                category: "syscalls",
                tracepoint: format!("{side}_{}", kind.syscall()),
                entry,
            });
        }
    }
    v
}

/// The io_uring deletion probes (`tracer-ebpf/src/probes/uring.rs`), with
/// any deletion kind: the request's submission, then its completion. They
/// are optional: a kernel without io_uring (or its tracepoints) is traced
/// without them, with a warning.
pub fn uring_probes() -> [Probe; 2] {
    let probe = |program: &str, tracepoint: &str, entry| Probe {
        kind: EventKind::UringUnlinkat,
        program: program.into(),
        category: "io_uring",
        tracepoint: tracepoint.into(),
        entry,
    };
    [
        probe("uring_submit", "io_uring_submit_req", true),
        probe("uring_complete", "io_uring_complete", false),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_first_and_names_match_the_kernel() {
        let p = probes(&[EventKind::Unlinkat, EventKind::Umount]);
        let names: Vec<_> = p
            .iter()
            .map(|p| (p.program.as_str(), p.tracepoint.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("enter_getdents64", "sys_enter_getdents64"),
                ("enter_unlinkat", "sys_enter_unlinkat"),
                ("enter_umount", "sys_enter_umount"),
                ("exit_unlinkat", "sys_exit_unlinkat"),
                ("exit_umount", "sys_exit_umount"),
            ]
        );
    }

    #[test]
    fn no_listing_hook_without_deletions() {
        assert!(probes(&[EventKind::Mount])
            .iter()
            .all(|p| p.program != "enter_getdents64"));
    }
}
