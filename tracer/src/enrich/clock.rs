//! Kernel `CLOCK_BOOTTIME` nanoseconds → wall-clock time.

use chrono::{DateTime, TimeZone, Utc};

fn now_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // clock_gettime cannot fail for these clocks with a valid pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// `CLOCK_BOOTTIME` now, nanoseconds: the kernel's event clock.
pub fn boot_ns() -> u64 {
    now_ns(libc::CLOCK_BOOTTIME) as u64
}

/// The offset between boot time and wall time, measured once.
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    offset_ns: i128,
}

impl BootClock {
    pub fn now() -> BootClock {
        let boot = now_ns(libc::CLOCK_BOOTTIME);
        let real = now_ns(libc::CLOCK_REALTIME);
        BootClock {
            offset_ns: real - boot,
        }
    }

    /// Nanoseconds added to a boot time to get wall time.
    pub fn offset_ns(&self) -> i128 {
        self.offset_ns
    }

    /// A clock with a fixed offset (recordings, tests).
    pub fn with_offset(offset_ns: i128) -> BootClock {
        BootClock { offset_ns }
    }

    pub fn wall(&self, boot_ns: u64) -> DateTime<Utc> {
        let ns = boot_ns as i128 + self.offset_ns;
        let secs = ns.div_euclid(1_000_000_000) as i64;
        let sub = ns.rem_euclid(1_000_000_000) as u32;
        Utc.timestamp_opt(secs, sub).single().unwrap_or_default()
    }
}
