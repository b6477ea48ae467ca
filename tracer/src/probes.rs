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

/// How the kernel probe set's programs are attached to their functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// fentry/fexit (BPF trampolines: cheapest; need the function in BTF).
    Trampoline,
    /// kprobe/kretprobe (kernels without trampolines).
    Kprobe,
}

impl Variant {
    /// In the order `auto` and `kernel` try them.
    pub const ALL: [Variant; 2] = [Variant::Trampoline, Variant::Kprobe];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Trampoline => "fentry/fexit",
            Variant::Kprobe => "kprobes",
        }
    }
}

/// A hook of the kernel probe set (`tracer-ebpf/src/probes/kfunc.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelHook {
    pub function: &'static str,
    /// On the function's return (else its entry).
    pub exit: bool,
    /// The set is refused without it; an optional hook (io_uring's, on a
    /// kernel without io_uring) is left out with a note.
    pub required: bool,
}

impl KernelHook {
    /// Its program in `variant`.
    pub fn program(&self, variant: Variant) -> String {
        let prefix = match (variant, self.exit) {
            (Variant::Trampoline, false) => "fentry",
            (Variant::Trampoline, true) => "fexit",
            (Variant::Kprobe, false) => "kprobe",
            (Variant::Kprobe, true) => "kretprobe",
        };
        format!("{prefix}_{}", self.function)
    }
}

/// The kernel probe set's hooks, in attach order: `io_unlinkat`'s return
/// before its entry (so no thread is left marked as issuing a request).
pub const KERNEL_HOOKS: [KernelHook; 5] = [
    KernelHook {
        function: "vfs_unlink",
        exit: false,
        required: true,
    },
    KernelHook {
        function: "vfs_rmdir",
        exit: false,
        required: true,
    },
    KernelHook {
        function: "path_umount",
        exit: false,
        required: true,
    },
    KernelHook {
        function: "io_unlinkat",
        exit: true,
        required: false,
    },
    KernelHook {
        function: "io_unlinkat",
        exit: false,
        required: false,
    },
];

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
    fn kernel_hook_programs_are_named_as_in_the_object() {
        let names: Vec<String> = KERNEL_HOOKS
            .iter()
            .flat_map(|h| Variant::ALL.map(|v| h.program(v)))
            .collect();
        assert_eq!(
            names,
            [
                "fentry_vfs_unlink",
                "kprobe_vfs_unlink",
                "fentry_vfs_rmdir",
                "kprobe_vfs_rmdir",
                "fentry_path_umount",
                "kprobe_path_umount",
                "fexit_io_unlinkat",
                "kretprobe_io_unlinkat",
                "fentry_io_unlinkat",
                "kprobe_io_unlinkat",
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
