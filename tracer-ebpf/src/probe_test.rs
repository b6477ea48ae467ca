//! Trivial programs of the program types mntrace does not use (yet), one per
//! type, that return 0 and touch nothing: `mntrace doctor` loads each to ask
//! the kernel whether it accepts that type at all, and reports the errno when
//! it does not. They are never attached: `trace` and `watch` load only the
//! syscall tracepoint programs they attach (aya loads a program only on its
//! own `load()`), and `doctor` closes them right after loading.
//!
//! The attach targets (a function or hook every kernel with BTF has) are
//! named again in `tracer/src/doctor.rs`, which passes them to aya's `load`.

use aya_ebpf::{
    macros::{btf_tracepoint, fentry, fexit, lsm, raw_tracepoint},
    programs::{
        BtfTracePointContext, FEntryContext, FExitContext, LsmContext, RawTracePointContext,
    },
};

/// `raw_tp/sys_enter`.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn probe_test_raw_tp(_ctx: RawTracePointContext) -> u32 {
    0
}

/// `tp_btf/sys_enter`: the BTF-typed raw tracepoint.
#[btf_tracepoint(function = "sys_enter")]
pub fn probe_test_tp_btf(_ctx: BtfTracePointContext) -> i32 {
    0
}

/// `fentry/vfs_unlink`.
#[fentry(function = "vfs_unlink")]
pub fn probe_test_fentry(_ctx: FEntryContext) -> u32 {
    0
}

/// `fexit/vfs_unlink`.
#[fexit(function = "vfs_unlink")]
pub fn probe_test_fexit(_ctx: FExitContext) -> u32 {
    0
}

/// `lsm/path_unlink`, one of the hooks `--guard deny` uses (it exists only
/// with `CONFIG_SECURITY_PATH`): 0 allows the deletion (it would, were it
/// ever attached).
#[lsm(hook = "path_unlink")]
pub fn probe_test_lsm(_ctx: LsmContext) -> i32 {
    0
}
