//! Tracepoint programs, one file per syscall family. Syscall tracepoint
//! layout (tracefs `format`): arguments at offsets 16, 24, 32, ...;
//! `sys_exit_*` has `long ret` at 16.

use aya_ebpf::programs::TracePointContext;

pub mod delete;
pub mod kfunc;
pub mod mount;
pub mod mount_api;
pub mod uring;

/// Argument `n` of a `sys_enter_*` tracepoint.
#[inline(always)]
pub fn arg(ctx: &TracePointContext, n: usize) -> u64 {
    unsafe { ctx.read_at::<u64>(16 + 8 * n) }.unwrap_or(0)
}

/// Return value of a `sys_exit_*` tracepoint.
#[inline(always)]
pub fn ret(ctx: &TracePointContext) -> i64 {
    unsafe { ctx.read_at::<i64>(16) }.unwrap_or(0)
}
