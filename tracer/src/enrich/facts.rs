//! What the correlator was given besides the kernel records, recorded so a
//! replay gives exactly the incidents live mode gave: the correlator is a
//! pure state machine, and these are the rest of its inputs.
//!
//! - Enrichment learnt from the live system (mount tables), only what the
//!   correlator reads and only when it changes: the enrichment of every
//!   failed (EBUSY) unmount; of a deletion, when its mount's answer (the
//!   mount, its backing root) differs from the last one recorded for that
//!   mount id, or when its path has several components (the parent's
//!   mount); of every guard action (its mount, and what it saved). A
//!   replay ([`ReplayFacts`]) indexes them by the event they belong to
//!   (boot time and thread id), so where they sit does not matter.
//! - Ticks (time passing with no event) and holder-scan answers, at the
//!   place in the stream where live mode applied them.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::holders::{HolderScan, ScanId};
use super::mount_table::MountInfo;
use super::Enrichment;
use crate::model::{Args, Event};
use crate::path::resolve_arg;

/// One input of the correlator besides the kernel records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fact {
    /// The enrichment of the event at (`ts_ns`, `tid`).
    Enrichment {
        ts_ns: u64,
        tid: u32,
        en: Box<Enrichment>,
    },
    /// A holder scan's answer, applied here.
    Holders { id: ScanId, scan: HolderScan },
    /// Time passed (boot ns) with no event, applied here.
    Tick { now_ns: u64 },
}

impl Fact {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("facts serialize")
    }
    pub fn from_json(b: &[u8]) -> Result<Fact, serde_json::Error> {
        serde_json::from_slice(b)
    }
}

/// A deletion's per-mount answer.
type MountAnswer = (Option<std::sync::Arc<MountInfo>>, Option<Bytes>);

/// Mount ids whose last answer is remembered at most (the rest is recorded
/// again when seen again: correct, a few bytes more).
const MOUNTS_MAX: usize = 4096;

/// Live side: which enrichments to record.
#[derive(Default)]
pub struct FactLog {
    last: HashMap<u32, MountAnswer>,
    pending: Vec<Fact>,
}

impl FactLog {
    /// Note the enrichment of `ev` if a replay will need it.
    pub fn observe(&mut self, ev: &Event, en: &Enrichment) {
        let keep = match &ev.args {
            Args::Umount { .. } => ev.errno() == Some(tracer_common::uapi::EBUSY),
            Args::Delete { dir, .. } | Args::Rename { old_dir: dir, .. } => {
                let answer = (en.mount.clone(), en.backing_root.clone());
                let changed = self.last.get(&dir.mnt_id) != Some(&answer);
                if changed {
                    if self.last.len() >= MOUNTS_MAX {
                        self.last.clear();
                    }
                    self.last.insert(dir.mnt_id, answer);
                }
                changed || en.parent_mnt_id.is_some()
            }
            Args::Guard(_) => true,
            _ => false,
        };
        if keep {
            self.pending.push(Fact::Enrichment {
                ts_ns: ev.ts_ns,
                tid: ev.tid,
                en: Box::new(en.clone()),
            });
        }
    }

    pub fn holders(&mut self, id: ScanId, scan: &HolderScan) {
        self.pending.push(Fact::Holders {
            id,
            scan: scan.clone(),
        });
    }

    pub fn tick(&mut self, now_ns: u64) {
        self.pending.push(Fact::Tick { now_ns });
    }

    /// Facts noted since the last call.
    pub fn take(&mut self) -> Vec<Fact> {
        std::mem::take(&mut self.pending)
    }
}

/// Replay side: the enrichment of each event from the recorded facts.
#[derive(Default)]
pub struct ReplayFacts {
    by_event: HashMap<(u64, u32), Enrichment>,
    /// The last answer seen per mount id, in replay order.
    last: HashMap<u32, MountAnswer>,
}

impl ReplayFacts {
    /// Index an enrichment fact (the others are applied in stream order).
    pub fn add(&mut self, ts_ns: u64, tid: u32, en: Enrichment) {
        self.by_event.insert((ts_ns, tid), en);
    }

    /// The enrichment live mode computed for `ev`.
    pub fn enrich(&mut self, ev: &Event) -> Enrichment {
        // Most events have no recorded enrichment (and the index is
        // mostly empty): no hashing then.
        let recorded = if self.by_event.is_empty() {
            None
        } else {
            self.by_event.remove(&(ev.ts_ns, ev.tid))
        };
        match &ev.args {
            Args::Umount { target, cwd, .. } => {
                let mut en = recorded.unwrap_or_default();
                if en.umount_target.is_none() {
                    en.umount_target = target.value().map(|t| resolve_arg(&cwd.path.bytes, t));
                }
                en
            }
            Args::Delete { dir, .. } | Args::Rename { old_dir: dir, .. } => match recorded {
                Some(en) => {
                    self.last
                        .insert(dir.mnt_id, (en.mount.clone(), en.backing_root.clone()));
                    en
                }
                None => {
                    let (mount, backing_root) =
                        self.last.get(&dir.mnt_id).cloned().unwrap_or_default();
                    Enrichment {
                        mount,
                        backing_root,
                        ..Default::default()
                    }
                }
            },
            Args::Guard(_) => recorded.unwrap_or_default(),
            _ => Enrichment::default(),
        }
    }
}
