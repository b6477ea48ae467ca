//! Empty programs for the benchmark's floor (issue 13): they return 0 and
//! touch nothing, so what they cost a workload is the price of the
//! attachment alone (the kernel entering the hook and running a BPF program
//! that does nothing), the limit under which no program on that hook can go.
//! `mntrace floor --hooks ...` (hidden; `tracer/src/floor.rs`) attaches them
//! and waits for a signal; `xtask/bench/overhead.sh` times the workloads
//! under them (`mntrace-empty*`) beside mntrace's real programs.
//!
//! - [`floor_tracepoint`]: one program attached to every syscall tracepoint
//!   `mntrace trace` attaches by default (the same list, `probes(...)`),
//!   entry and exit alike: a tracepoint program reads its context only
//!   through helpers, so one program fits every tracepoint.
//! - `raw_tp` and `tp_btf` on `sys_enter`/`sys_exit`: the hooks that run
//!   for every syscall of the machine, traced or not, whose cost is the
//!   question against the ~23 per-syscall tracepoints.
//!
//! `trace`, `watch` and `record` never load them (aya loads a program only on
//! its own `load()`). Kernel program names are cut to 15 bytes, so the
//! tracepoint program shows as `floor_tracepoin`.

use aya_ebpf::{
    macros::{btf_tracepoint, raw_tracepoint, tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
};

/// Any syscall tracepoint (`tracepoint/syscalls/sys_{enter,exit}_*`).
#[tracepoint]
pub fn floor_tracepoint(_ctx: TracePointContext) -> u32 {
    0
}

/// `raw_tp/sys_enter`: every syscall's entry.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn floor_raw_enter(_ctx: RawTracePointContext) -> u32 {
    0
}

/// `raw_tp/sys_exit`: every syscall's exit.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn floor_raw_exit(_ctx: RawTracePointContext) -> u32 {
    0
}

/// `tp_btf/sys_enter`: the BTF-typed raw tracepoint at every syscall's entry.
#[btf_tracepoint(function = "sys_enter")]
pub fn floor_btf_enter(_ctx: BtfTracePointContext) -> i32 {
    0
}

/// `tp_btf/sys_exit`: the BTF-typed raw tracepoint at every syscall's exit.
#[btf_tracepoint(function = "sys_exit")]
pub fn floor_btf_exit(_ctx: BtfTracePointContext) -> i32 {
    0
}
