//! The pid/comm filter: which tasks are traced at all. Checked first at
//! every syscall entry, before any slot is taken.

use aya_ebpf::helpers::bpf_get_current_comm;
use tracer_common::config::{CFG_COMM_FILTER, CFG_PID_FILTER};

use crate::maps::{CONFIG, PIDS};

/// Whether the configured filters let this task through.
#[inline(always)]
pub fn wanted(tgid: u32) -> bool {
    let Some(cfg) = CONFIG.get(0) else {
        return true;
    };
    if tgid == cfg.self_tgid {
        return false;
    }
    if cfg.flags & CFG_PID_FILTER != 0 && unsafe { PIDS.get(tgid) }.is_none() {
        return false;
    }
    if cfg.flags & CFG_COMM_FILTER != 0 {
        let Ok(comm) = bpf_get_current_comm() else {
            return false;
        };
        let mut i = 0;
        while i < comm.len() {
            if comm[i] != cfg.comm[i] {
                return false;
            }
            if comm[i] == 0 {
                break;
            }
            i += 1;
        }
    }
    true
}
