//! The two clocks of the programs.
//!
//! Records carry `CLOCK_BOOTTIME` (`bpf_ktime_get_boot_ns`, set in
//! `slot::fill_header` and `slot::emit_result`). The capture decisions,
//! taken on every deletion whether or not it is captured, only compare
//! stamps of their own (the busy window, the grace after an EBUSY, a
//! burst's gap: a second or more) and read the tick counter instead:
//! `bpf_jiffies64`, scaled by `Config::tick_ns`, a load where the boot
//! clock reads the TSC (`read_tsc` was 4 % of a traced `unlinkat`'s time
//! under `perf`). Stamps of this clock never leave the kernel and are never
//! compared with boot times: `BUSY`, `LAST_BUSY`, `BUSY_MNTS` (armed by
//! userspace with `LAST_BUSY`'s value), a thread's burst, the guard's marks.

use aya_ebpf::helpers::generated::{bpf_jiffies64, bpf_ktime_get_boot_ns};
use tracer_common::config::Config;

/// Now, on the decisions' clock: ticks in nanoseconds (tick resolution,
/// 1-10 ms), or boot time when userspace could not measure the tick.
#[inline(always)]
pub fn decision_ns(cfg: &Config) -> u64 {
    if cfg.tick_ns != 0 {
        unsafe { bpf_jiffies64() }.wrapping_mul(cfg.tick_ns)
    } else {
        unsafe { bpf_ktime_get_boot_ns() }
    }
}
