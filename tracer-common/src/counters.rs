//! Why the kernel side dropped an event. The `DROPS` per-CPU array holds one
//! `u64` per (kind, reason): index `kind * DROP_REASONS + reason`.

use crate::kind::KIND_SLOTS;

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The ring buffer had no room (userspace is behind).
    RingFull = 0,
    /// No per-thread slot could be taken at syscall entry (slot map full).
    SlotFull = 1,
    /// The per-CPU scratch buffer could not be looked up (should never happen).
    Scratch = 2,
}

pub const DROP_REASONS: usize = 3;
pub const DROP_SLOTS: usize = KIND_SLOTS * DROP_REASONS;

impl DropReason {
    pub const ALL: [DropReason; DROP_REASONS] = [
        DropReason::RingFull,
        DropReason::SlotFull,
        DropReason::Scratch,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            DropReason::RingFull => "ring_full",
            DropReason::SlotFull => "slot_full",
            DropReason::Scratch => "scratch",
        }
    }

    pub const fn index(kind: u32, reason: DropReason) -> u32 {
        kind * DROP_REASONS as u32 + reason as u32
    }
}
