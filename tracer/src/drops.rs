//! Kernel-side drop counters as userspace reads them: one count per (event
//! kind, drop reason), summed over CPUs, and what grew between two reads.

use tracer_common::{
    counters::{DropReason, DROP_REASONS},
    kind::KIND_SLOTS,
    EventKind,
};

/// Kernel-side drop counters, summed over CPUs: `[kind][reason]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drops(pub [[u64; DROP_REASONS]; KIND_SLOTS]);

impl Drops {
    pub fn total(&self) -> u64 {
        self.0.iter().flatten().sum()
    }
    pub fn get(&self, kind: EventKind, reason: DropReason) -> u64 {
        self.0[kind as usize][reason as usize]
    }
    /// Non-zero counters.
    pub fn nonzero(&self) -> impl Iterator<Item = (EventKind, DropReason, u64)> + '_ {
        EventKind::ALL.into_iter().flat_map(move |k| {
            DropReason::ALL
                .into_iter()
                .map(move |r| (k, r, self.get(k, r)))
                .filter(|&(_, _, n)| n > 0)
        })
    }
}

impl Drops {
    /// What grew from `before` to `self`.
    pub fn since(&self, before: &Drops) -> Drops {
        let mut delta = Drops::default();
        for (k, row) in delta.0.iter_mut().enumerate() {
            for (r, v) in row.iter_mut().enumerate() {
                *v = self.0[k][r].saturating_sub(before.0[k][r]);
            }
        }
        delta
    }
}
