//! The probe registry: which program hooks which tracepoint, derived from the
//! one list of event kinds so programs, attach points and kinds cannot drift.

use std::path::Path;

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

/// io_uring's submission tracepoint, by its names, newest first (6.1 has
/// `io_uring_submit_sqe`, later kernels `io_uring_submit_req`: same fields).
const URING_SUBMIT: [&str; 2] = ["io_uring_submit_req", "io_uring_submit_sqe"];
/// The fields the io_uring programs read (`tracer-ebpf/src/probes/uring.rs`),
/// with the offsets they read them at.
const URING_SUBMIT_FIELDS: [(&str, u32); 2] = [("req", 16), ("opcode", 32)];
/// The same for `io_uring_complete`.
const URING_COMPLETE_FIELDS: [(&str, u32); 2] = [("req", 16), ("res", 32)];

/// The io_uring deletion and rename probes
/// (`tracer-ebpf/src/probes/uring.rs`), with any deletion kind: the request's submission, then its completion, on
/// the tracepoints this kernel has (`tracefs`: where tracefs is), checked
/// against the offsets the programs read. They are optional: a kernel
/// without io_uring, its tracepoints or those fields is traced without
/// them, with a warning (the reason is the `Err`).
pub fn uring_probes(tracefs: &Path) -> Result<[Probe; 2], String> {
    let events = tracefs.join("events/io_uring");
    let submit = URING_SUBMIT
        .into_iter()
        .find(|tp| events.join(tp).join("format").exists())
        .ok_or_else(|| {
            format!(
                "this kernel has no io_uring submission tracepoint ({} in {})",
                URING_SUBMIT.join(", "),
                events.display()
            )
        })?;
    for (tp, fields) in [
        (submit, &URING_SUBMIT_FIELDS),
        ("io_uring_complete", &URING_COMPLETE_FIELDS),
    ] {
        let path = events.join(tp).join("format");
        let format =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for &(name, offset) in fields {
            let found = field_offset(&format, name);
            if found != Some(offset) {
                return Err(format!(
                    "io_uring:{tp} has its `{name}` at offset {found:?}, not at {offset} where \
                     mntrace reads it"
                ));
            }
        }
    }
    let probe = |program: &str, tracepoint: &str, entry| Probe {
        kind: EventKind::UringUnlinkat,
        program: program.into(),
        category: "io_uring",
        tracepoint: tracepoint.into(),
        entry,
    };
    Ok([
        probe("uring_submit", submit, true),
        probe("uring_complete", "io_uring_complete", false),
    ])
}

/// Offset of field `name` in a tracefs `format` file.
fn field_offset(format: &str, name: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let (decl, rest) = line.trim().strip_prefix("field:")?.split_once(';')?;
        if decl.split_whitespace().last()? != name {
            return None;
        }
        let offset = rest.trim().strip_prefix("offset:")?.split(';').next()?;
        offset.parse().ok()
    })
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
    fn tracepoint_field_offsets_are_read_from_the_format() {
        // io_uring_submit_sqe as 6.1 has it (tracefs format).
        let format = "name: io_uring_submit_sqe\nID: 1519\nformat:\n\
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n\
            \tfield:void * ctx;\toffset:8;\tsize:8;\tsigned:0;\n\
            \tfield:void * req;\toffset:16;\tsize:8;\tsigned:0;\n\
            \tfield:unsigned long long user_data;\toffset:24;\tsize:8;\tsigned:0;\n\
            \tfield:u8 opcode;\toffset:32;\tsize:1;\tsigned:0;\n\
            \tfield:__data_loc char[] op_str;\toffset:44;\tsize:4;\tsigned:0;\n";
        assert_eq!(field_offset(format, "req"), Some(16));
        assert_eq!(field_offset(format, "opcode"), Some(32));
        assert_eq!(field_offset(format, "op_str"), Some(44));
        assert_eq!(field_offset(format, "res"), None);
        assert_eq!(field_offset(format, "user"), None);
    }

    #[test]
    fn this_kernels_io_uring_tracepoints_have_the_fields_where_they_are_read() {
        let tracefs = Path::new(crate::preflight::TRACEFS);
        if !tracefs.join("events/io_uring").exists() {
            return; // not root, or no tracefs here: the kernel tests cover it
        }
        let p = uring_probes(tracefs).expect("io_uring tracepoints as the programs read them");
        assert_eq!(p[1].tracepoint, "io_uring_complete");
    }

    #[test]
    fn no_listing_hook_without_deletions() {
        assert!(probes(&[EventKind::Mount])
            .iter()
            .all(|p| p.program != "enter_getdents64"));
    }
}
