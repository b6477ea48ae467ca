//! `mntrace floor` (hidden): the benchmark's floor. Attaches the empty
//! programs of `tracer-ebpf/src/floor.rs` (they return 0 and touch nothing)
//! to a set of hooks and holds them until stopped, so the cost of the
//! attachment alone is measured on the same workloads as mntrace's real
//! programs (issue 13: "the distance to the limit of the chosen attachment
//! is a number in the table, not a guess"):
//!
//! - [`FloorHooks::Tracepoints`]: the syscall tracepoints `mntrace trace`
//!   attaches in its default configuration, entry and exit (the list of
//!   [`probes`] for the default kinds, not written again here);
//! - [`FloorHooks::RawTp`], [`FloorHooks::TpBtf`]: `sys_enter` and
//!   `sys_exit`, which run for every syscall of the machine.
//!
//! Detaching goes through the same [`Links`] as `trace` (concurrent closes),
//! so the time from the stop signal to the exit is comparable too.

use aya::{
    programs::{BtfTracePoint, RawTracePoint, TracePoint},
    Btf, Ebpf,
};

use crate::config::TraceOptions;
use crate::error::StartError;
use crate::loader::{attach_tracepoint, load_object, load_refused, program, refused, Links};
use crate::preflight::{self, Hooks};
use crate::probes::probes;

/// The object's ring buffer is not used by the empty programs: the
/// smallest the kernel takes (one page).
const RING_SIZE: u32 = 4096;

/// Which hooks get empty programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FloorHooks {
    /// `floor_tracepoint` on every syscall tracepoint `mntrace trace`
    /// attaches by default, entry and exit.
    Tracepoints,
    /// `raw_tp/sys_enter` and `raw_tp/sys_exit`.
    RawTp,
    /// `tp_btf/sys_enter` and `tp_btf/sys_exit`.
    TpBtf,
}

impl FloorHooks {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FloorHooks::Tracepoints => "tracepoints",
            FloorHooks::RawTp => "raw-tp",
            FloorHooks::TpBtf => "tp-btf",
        }
    }
}

/// The raw tracepoints of `raw-tp` and `tp-btf`, with the program of each
/// kind for them: (hook, raw_tp program, tp_btf program).
const RAW_HOOKS: [(&str, &str, &str); 2] = [
    ("sys_enter", "floor_raw_enter", "floor_btf_enter"),
    ("sys_exit", "floor_raw_exit", "floor_btf_exit"),
];

/// The empty programs, attached. Dropping it detaches them all (links
/// first, concurrently, then the programs and maps).
pub struct Floor {
    links: Links,
    _ebpf: Ebpf,
}

impl Floor {
    /// Check the host, load the object and attach the empty programs to
    /// `hooks`; a refusal says which program and why (exit 7), like `trace`.
    pub fn attach(hooks: FloorHooks) -> Result<Floor, StartError> {
        let tracepoints = match hooks {
            FloorHooks::Tracepoints => probes(&TraceOptions::default().attached_kinds()),
            FloorHooks::RawTp | FloorHooks::TpBtf => Vec::new(),
        };
        preflight::check(match hooks {
            FloorHooks::Tracepoints => {
                Hooks::SyscallTracepoints(tracepoints.first().map(|p| p.tracepoint.as_str()))
            }
            FloorHooks::RawTp | FloorHooks::TpBtf => Hooks::RawTracepoints,
        })?;
        let mut ebpf = load_object(RING_SIZE)?;
        let mut links = Links::default();
        match hooks {
            FloorHooks::Tracepoints => {
                const NAME: &str = "floor_tracepoint";
                let prog: &mut TracePoint = program(&mut ebpf, NAME)?;
                prog.load().map_err(|e| load_refused(NAME, &e))?;
                for p in &tracepoints {
                    attach_tracepoint(prog, NAME, p, &mut links)?;
                }
            }
            FloorHooks::RawTp => {
                for (hook, name, _) in RAW_HOOKS {
                    let prog: &mut RawTracePoint = program(&mut ebpf, name)?;
                    prog.load().map_err(|e| load_refused(name, &e))?;
                    let id = prog
                        .attach(hook)
                        .map_err(|e| refused(format!("attaching {name} to raw_tp/{hook}"), e))?;
                    links.push(prog.take_link(id).map_err(anyhow::Error::from)?);
                }
            }
            FloorHooks::TpBtf => {
                let btf = Btf::from_sys_fs().map_err(|e| refused("parsing the kernel's BTF", e))?;
                for (hook, _, name) in RAW_HOOKS {
                    let prog: &mut BtfTracePoint = program(&mut ebpf, name)?;
                    prog.load(hook, &btf).map_err(|e| load_refused(name, &e))?;
                    let id = prog
                        .attach()
                        .map_err(|e| refused(format!("attaching {name} to tp_btf/{hook}"), e))?;
                    links.push(prog.take_link(id).map_err(anyhow::Error::from)?);
                }
            }
        }
        Ok(Floor { links, _ebpf: ebpf })
    }

    /// How many programs are attached (one per link: the tracepoint program
    /// counts once per tracepoint).
    pub fn attached(&self) -> usize {
        self.links.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn names_are_the_command_line_values() {
        for h in FloorHooks::value_variants() {
            let value = h.to_possible_value().unwrap();
            assert_eq!(value.get_name(), h.name());
        }
    }

    #[test]
    fn tracepoints_are_the_default_trace_list() {
        let p = probes(&TraceOptions::default().attached_kinds());
        assert_eq!(p.len(), 2 * tracer_common::EventKind::SYSCALLS.len() + 1);
        assert!(p.iter().all(|p| p.category == "syscalls"));
    }
}
