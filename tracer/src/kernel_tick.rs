//! The kernel's tick length (`1 / CONFIG_HZ`), for the clock of the
//! kernel-side capture decisions (`Config::tick_ns`, see `tracer-ebpf`'s
//! `clock`): they count ticks (`bpf_jiffies64`), which costs a load where
//! boot time costs a TSC read on every deletion.
//!
//! `CONFIG_HZ` is not exposed to userspace, but `/proc/timer_list` gives
//! the jiffies counter and the monotonic time at one moment, and the
//! counter starts at `INITIAL_JIFFIES` (`(u32)(-300 * HZ)`) when that
//! clock starts at boot: one `HZ` of the values kernels are built with
//! fits, the others are off by thousands of ticks.

use std::io::{BufRead, BufReader};

/// `CONFIG_HZ` values Linux offers.
const HZ_CHOICES: [u64; 4] = [100, 250, 300, 1000];

/// Lines of `/proc/timer_list` read at most looking for the two values
/// (they are in its first CPU's section; the rest lists every timer).
const LINES_MAX: usize = 10_000;

/// Nanoseconds per tick of the running kernel; `None` when
/// `/proc/timer_list` is unreadable or fits no `HZ` (the kernel's
/// decisions then use boot time, as precise and a little dearer).
pub fn tick_ns() -> Option<u64> {
    let f = std::fs::File::open("/proc/timer_list").ok()?;
    let (now_ns, jiffies) = read_sample(BufReader::new(f))?;
    hz_of(now_ns, jiffies).map(|hz| 1_000_000_000 / hz)
}

/// The first `now at N nsecs` and `jiffies: J` of a `/proc/timer_list`.
fn read_sample(r: impl BufRead) -> Option<(u64, u64)> {
    let (mut now, mut jiffies) = (None, None);
    for line in r.lines().take(LINES_MAX) {
        let line = line.ok()?;
        if now.is_none() {
            if let Some(v) = line.strip_prefix("now at ") {
                now = v.strip_suffix(" nsecs")?.trim().parse().ok();
            }
        }
        if jiffies.is_none() {
            if let Some(v) = line.trim_start().strip_prefix("jiffies: ") {
                jiffies = v.trim().parse().ok();
            }
        }
        if let (Some(n), Some(j)) = (now, jiffies) {
            return Some((n, j));
        }
    }
    None
}

/// The `HZ` whose tick count since boot matches `jiffies` at monotonic
/// time `now_ns`: within ten seconds' worth of ticks, or 1 % of the count
/// (the timekeeping offsets of early boot and clock slewing). Unique: the
/// choices' starting values and rates differ by far more.
fn hz_of(now_ns: u64, jiffies: u64) -> Option<u64> {
    let mut found = None;
    for hz in HZ_CHOICES {
        let initial = (-300i64 * hz as i64) as u32 as u64;
        let elapsed = (now_ns as u128 * hz as u128 / 1_000_000_000) as u64;
        let expected = initial.wrapping_add(elapsed);
        let tolerance = (10 * hz).max(elapsed / 100);
        if jiffies.abs_diff(expected) <= tolerance {
            if found.is_some() {
                return None;
            }
            found = Some(hz);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hz_whose_count_since_boot_fits() {
        // This project's machine (HZ=250), 22 hours up.
        assert_eq!(hz_of(80_286_790_482_588, 4_314_963_969), Some(250));
        // A minute after boot, each choice of HZ.
        for hz in HZ_CHOICES {
            let j = (-300i64 * hz as i64) as u32 as u64 + 60 * hz + 3;
            assert_eq!(hz_of(60_000_000_000, j), Some(hz), "HZ={hz}");
        }
        // A year up at HZ=1000, 0.5 % slewed.
        let elapsed = 365 * 86_400 * 1000u64;
        let j = (-300_000i64) as u32 as u64 + elapsed + elapsed / 200;
        assert_eq!(hz_of(365 * 86_400 * 1_000_000_000, j), Some(1000));
        // Nothing fits: no guess.
        assert_eq!(hz_of(60_000_000_000, 12_345), None);
    }

    #[test]
    fn the_sample_is_the_first_now_and_jiffies() {
        let text = "Timer List Version: v0.10\nHRTIMER_MAX_CLOCK_BASES: 8\nnow at 80286790482588 nsecs\n\ncpu: 0\n clock 0:\n  .base:       0x0\n  .index:      0\n  .get_time:   ktime_get\n  .jiffies: 1\n  jiffies: 4314963969\n  jiffies: 4314963970\n";
        assert_eq!(
            read_sample(text.as_bytes()),
            Some((80_286_790_482_588, 4_314_963_969))
        );
        assert_eq!(read_sample("now at x nsecs\njiffies: 1\n".as_bytes()), None);
        assert_eq!(read_sample("".as_bytes()), None);
    }
}
