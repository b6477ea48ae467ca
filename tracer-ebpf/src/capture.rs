//! What the capture decision of a deletion or a rename reads: the delete
//! mode; the EBUSY facts, when the node's last EBUSY unmount was
//! (`LAST_BUSY`), the calling process's own (`BUSY`), and the mounts
//! userspace found busy (`BUSY_MNTS`), all on the decisions' clock
//! (`clock::decision_ns`); and the shape of the path (absolute, several
//! components).

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, generated::bpf_probe_read_user};
use core::ffi::c_void;
use tracer_common::{
    config::DELETES_RACE,
    event::{CAP_AFTER_ANY_EBUSY, CAP_ALL, CAP_BUSY, CAP_BUSY_MOUNT},
    limits::NAME_MAX,
    Config,
};

use crate::core_access::KPath;
use crate::maps::{BUSY, BUSY_MNTS, LAST_BUSY};
use crate::types::REGION;

/// Time since the node's last EBUSY unmount (`u64::MAX` when none).
#[inline(always)]
pub fn since_last_ebusy(now: u64) -> u64 {
    LAST_BUSY.get(0).map_or(u64::MAX, |&t| now.wrapping_sub(t))
}

/// Whether an unmount failed with EBUSY on the node within the busy window.
#[inline(always)]
pub fn node_busy(cfg: &Config, now: u64) -> bool {
    since_last_ebusy(now) <= cfg.busy_window_ns
}

/// Whether the calling process's own unmount failed with EBUSY within the
/// busy window.
#[inline(always)]
pub fn process_busy(cfg: &Config, now: u64) -> bool {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    unsafe { BUSY.get(tgid) }.is_some_and(|&t| now.wrapping_sub(t) <= cfg.busy_window_ns)
}

/// The race reasons the EBUSY facts give a call at `now` whose lookup
/// starts in `start` (`CAP_AFTER_ANY_EBUSY`, `CAP_BUSY`, `CAP_BUSY_MOUNT`),
/// and whether an EBUSY is recent on the node (`recent`).
#[inline(always)]
pub fn reasons(cfg: &Config, now: u64, start: Option<KPath>) -> (u32, bool) {
    let since = since_last_ebusy(now);
    let busy = (since, since <= cfg.busy_window_ns);
    let cap =
        process_reasons(cfg, now, busy) | start.map_or(0, |s| mount_reason(cfg, now, busy.1, s));
    (cap, busy.1)
}

/// The EBUSY reasons that do not depend on where the lookup starts
/// (`CAP_AFTER_ANY_EBUSY`, `CAP_BUSY`), `busy` being the time since the
/// node's last EBUSY (`since_last_ebusy`) and whether that is recent. The
/// process's map is only looked up when it is.
#[inline(always)]
pub fn process_reasons(cfg: &Config, now: u64, (since, recent): (u64, bool)) -> u32 {
    let mut cap = 0;
    if since <= cfg.busy_grace_ns {
        cap |= CAP_AFTER_ANY_EBUSY;
    }
    if recent && process_busy(cfg, now) {
        cap |= CAP_BUSY;
    }
    cap
}

/// `CAP_BUSY_MOUNT` when `start` is on a mount userspace found busy within
/// the window (the map is only looked up when an EBUSY is `recent` on the
/// node).
#[inline(always)]
pub fn mount_reason(cfg: &Config, now: u64, recent: bool, start: KPath) -> u32 {
    if !recent {
        return 0;
    }
    match unsafe { BUSY_MNTS.get(start.mnt.id()) } {
        Some(&t) if now.wrapping_sub(t) <= cfg.busy_window_ns => CAP_BUSY_MOUNT,
        _ => 0,
    }
}

/// `CAP_ALL` unless the delete mode is `race` (the default).
#[inline(always)]
pub fn mode_reason(cfg: &Config) -> u32 {
    if cfg.delete_mode == DELETES_RACE {
        0
    } else {
        CAP_ALL
    }
}

/// First byte of a user string (0 when unreadable): decides absolute vs
/// relative before the string is copied.
#[inline(always)]
pub fn first_byte(ptr: u64) -> u8 {
    let mut c = 0u8;
    if ptr != 0 {
        unsafe { bpf_probe_read_user(&mut c as *mut u8 as *mut c_void, 1, ptr as *const c_void) };
    }
    c
}

/// Whether the first `len` bytes of `buf` hold a `/` (only the first
/// `NAME_MAX + 1` are looked at: a longer first component fails the
/// syscall with ENAMETOOLONG). Each exit of the loop leaves `len` its own
/// range, which 6.1's verifier follows through the rest of the program:
/// one call per program (two made a rename's entry a million instructions
/// there).
#[inline(always)]
pub fn has_slash(buf: &[u8; REGION], len: u16) -> bool {
    let n = (len as usize).min(NAME_MAX + 1);
    let mut i = 0;
    while i < NAME_MAX + 1 {
        if i >= n {
            return false;
        }
        if buf[i] == b'/' {
            return true;
        }
        i += 1;
    }
    false
}
