//! Tracepoint programs, one file per syscall family, the kernel-function
//! hooks (`kfunc`) and the guard's LSM programs (`lsm`). Syscall tracepoint
//! layout (tracefs `format`): arguments at offsets 16, 24, 32, ...;
//! `sys_exit_*` has `long ret` at 16.

use aya_ebpf::{programs::TracePointContext, EbpfContext};

pub mod delete;
pub mod kfunc;
pub mod lsm;
pub mod mount;
pub mod mount_api;
pub mod rename;
pub mod uring;

/// Argument `n` of a `sys_enter_*` tracepoint.
#[inline(always)]
pub fn arg(ctx: &TracePointContext, n: usize) -> u64 {
    field(ctx, 16 + 8 * n)
}

/// Return value of a `sys_exit_*` tracepoint.
#[inline(always)]
pub fn ret(ctx: &TracePointContext) -> i64 {
    field(ctx, 16)
}

/// The tracepoint record's field at byte `off` (a constant, aligned to
/// `T`): a plain load from the context, which tracepoint programs may read
/// directly, instead of `read_at`'s `bpf_probe_read` (a helper call and a
/// fault-tolerant copy per argument, on every traced syscall).
#[inline(always)]
pub fn field<T: Copy>(ctx: &TracePointContext, off: usize) -> T {
    unsafe { core::ptr::read((ctx.as_ptr() as *const u8).add(off) as *const T) }
}
