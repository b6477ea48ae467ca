//! Record assembly and output: a slot's used bytes are packed into this
//! CPU's scratch buffer and copied once into the ring buffer with their exact
//! length. Also the drop counters and the user-string reads that fill a
//! slot's string regions.

use aya_ebpf::helpers::generated::{
    bpf_get_smp_processor_id, bpf_probe_read_kernel, bpf_probe_read_kernel_str,
    bpf_probe_read_user, bpf_probe_read_user_str,
};
use core::ffi::c_void;
use tracer_common::{
    counters::DropReason,
    event::{nstr, payload_len, Header, StrRef, STR_ABSENT, STR_FAULT, STR_NULL, STR_TRUNCATED},
    limits::{RECORD_MAX, RING_WAKEUP_BYTES, STR_MAX},
    uapi::EBUSY,
    EventKind,
};

use crate::maps::{DROPS, EVENTS, SCRATCH};
use crate::types::{Scratch, Slot, REGION};

/// This CPU's scratch buffer.
#[inline(always)]
pub fn scratch() -> Option<*mut Scratch> {
    SCRATCH.get_ptr_mut(unsafe { bpf_get_smp_processor_id() })
}

#[inline(always)]
pub fn count_drop(kind: EventKind, reason: DropReason) {
    if let Some(c) = DROPS.get_ptr_mut(DropReason::index(kind as u32, reason)) {
        unsafe { *c += 1 };
    }
}

/// A string not read (not part of the call, or left for a program reached
/// by tail call to fill).
pub const ABSENT: StrRef = StrRef {
    len: 0,
    flags: STR_ABSENT,
};

/// Copy a NUL-terminated user string into `region`, flagging NULL, unreadable
/// and truncated strings.
#[inline(always)]
pub fn read_user_str(region: &mut [u8; REGION], ptr: u64) -> StrRef {
    if ptr == 0 {
        return StrRef {
            len: 0,
            flags: STR_NULL,
        };
    }
    let src = ptr as *const c_void;
    let r =
        unsafe { bpf_probe_read_user_str(region.as_mut_ptr() as *mut c_void, STR_MAX as u32, src) };
    str_ref(r, || {
        let mut last = 0u8;
        let at = (ptr + STR_MAX as u64 - 1) as *const c_void;
        let rr = unsafe { bpf_probe_read_user(&mut last as *mut u8 as *mut c_void, 1, at) };
        rr == 0 && last != 0
    })
}

/// Copy a NUL-terminated kernel string (an io_uring request's name) into
/// `region`, flagging unreadable and truncated strings.
#[inline(always)]
pub fn read_kernel_str(region: &mut [u8; REGION], ptr: u64) -> StrRef {
    let src = ptr as *const c_void;
    let r = unsafe {
        bpf_probe_read_kernel_str(region.as_mut_ptr() as *mut c_void, STR_MAX as u32, src)
    };
    str_ref(r, || {
        let mut last = 0u8;
        let at = (ptr + STR_MAX as u64 - 1) as *const c_void;
        let rr = unsafe { bpf_probe_read_kernel(&mut last as *mut u8 as *mut c_void, 1, at) };
        rr == 0 && last != 0
    })
}

/// The string entry of a `*_read_*_str` result `r` (bytes copied, with the
/// terminator; negative on a fault). When the buffer filled up, the string
/// was cut unless its last kept byte really was its terminator:
/// `cut_after_last` reads the byte after that and says whether it is not
/// the end.
#[inline(always)]
fn str_ref(r: i64, cut_after_last: impl FnOnce() -> bool) -> StrRef {
    if r <= 0 {
        return StrRef {
            len: 0,
            flags: STR_FAULT,
        };
    }
    let flags = if r as usize >= STR_MAX && cut_after_last() {
        STR_TRUNCATED
    } else {
        0
    };
    StrRef {
        len: (r - 1) as u16,
        flags,
    }
}

/// Pack the slot's record (header, payload, string table, strings) and
/// output it; a full ring buffer is counted as a drop.
#[inline(always)]
pub fn emit<const N: usize>(slot: &mut Slot<N>, kind: EventKind) {
    let Some(scratch) = scratch() else {
        count_drop(kind, DropReason::Scratch);
        return;
    };
    let base = unsafe { (*scratch).buf.as_mut_ptr() };
    let plen = payload_len(kind);
    let n = nstr(kind);
    let hdr_len = core::mem::size_of::<Header>();
    let table = hdr_len + plen;
    let mut off = table + n * core::mem::size_of::<StrRef>();
    let mut i = 0;
    while i < N {
        if i < n {
            let mut len = slot.strs[i].len as usize;
            if len > STR_MAX {
                len = STR_MAX;
                slot.strs[i].len = STR_MAX as u16;
            }
            if len > 0 {
                unsafe {
                    bpf_probe_read_kernel(
                        base.add(off & (RECORD_MAX - 1)) as *mut c_void,
                        len as u32,
                        slot.bufs[i].as_ptr() as *const c_void,
                    )
                };
            }
            off += len;
        }
        i += 1;
    }
    let total = off & (RECORD_MAX - 1);
    slot.hdr.len = total as u32;
    unsafe {
        bpf_probe_read_kernel(
            base as *mut c_void,
            hdr_len as u32,
            &slot.hdr as *const Header as *const c_void,
        );
        bpf_probe_read_kernel(
            base.add(hdr_len) as *mut c_void,
            plen as u32,
            slot.payload.as_ptr() as *const c_void,
        );
        bpf_probe_read_kernel(
            base.add(table) as *mut c_void,
            (n * core::mem::size_of::<StrRef>()) as u32,
            slot.strs.as_ptr() as *const c_void,
        );
    }
    if total < hdr_len {
        return;
    }
    let record = unsafe { core::slice::from_raw_parts(base as *const u8, total) };
    if EVENTS
        .output::<[u8]>(record, wakeup(kind, slot.hdr.ret, total))
        .is_err()
    {
        count_drop(kind, DropReason::RingFull);
    }
}

// linux/bpf.h: bpf_ringbuf_output flags and bpf_ringbuf_query's question.
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

/// Wake the reader for a record of `len` bytes only when the waiting bytes
/// cross [`RING_WAKEUP_BYTES`] with it, or for a failed (EBUSY) unmount;
/// the reader drains on a timer otherwise.
#[inline(always)]
fn wakeup(kind: EventKind, ret: i64, len: usize) -> u64 {
    if kind == EventKind::Umount && ret == -(EBUSY as i64) {
        return BPF_RB_FORCE_WAKEUP;
    }
    let waiting = EVENTS.query(BPF_RB_AVAIL_DATA);
    if waiting < RING_WAKEUP_BYTES && waiting + len as u64 >= RING_WAKEUP_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}
