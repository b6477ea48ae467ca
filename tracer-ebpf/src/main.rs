//! mntrace kernel programs: one `sys_enter`/`sys_exit` tracepoint pair per
//! traced syscall. Entry filters, takes the arguments and resolves directory
//! fds inside the kernel into a per-thread slot; exit adds the result and
//! emits one variable-size record into the ring buffer.
//!
//! Layout: each module imports only modules listed below it (and
//! `tracer_common`), so dependencies run one way, from the probes down to
//! plain types:
//!
//! ```text
//! probes/      one file per syscall family (mount, mount_api, delete, rename)
//! slot         a thread's slot: taken and filled at entry, finished at exit
//! burst        a thread's burst of deletions (for the delete capture decision)
//! capture      what a deletion's or rename's capture decision reads
//! clock        the records' clock and the capture decisions' clock
//! dir_cache    reuse of a thread's last walked deletion directory
//! guard        the guard's marks and its decision to act
//! filter       the pid/comm filter
//! walk         directory resolution and the dentry path walk
//! emit         record assembly, ring output, drop counters, user strings
//! maps         every map
//! types        plain buffer and state types the maps hold
//! core_access  typed kernel pointers over the CO-RE shim in `c/core.c`
//! ```
//!
//! `probe_test` stands apart: trivial programs of other types (raw_tp,
//! tp_btf, fentry, fexit, lsm) that `mntrace doctor` only loads, to learn
//! which types the kernel accepts; nothing attaches them.
//!
//! `floor` stands apart too: empty programs (a syscall tracepoint one, and
//! raw_tp and tp_btf on sys_enter/sys_exit) that the hidden `mntrace floor`
//! attaches, so the benchmark measures what the hooks alone cost.
//!
//! `guard` → `slot`, `walk`, `clock`, `capture`; `slot` → `emit`, `filter`, `dir_cache`; `burst` → `walk`; `capture`, `walk`, `emit`, `filter` →
//! `maps` → `types`; `types`, `clock` and `core_access` import nothing from the crate.
#![no_std]
#![no_main]

mod burst;
mod capture;
mod clock;
mod core_access;
mod dir_cache;
mod emit;
mod filter;
mod floor;
mod guard;
mod maps;
mod probe_test;
mod probes;
mod slot;
mod types;
mod walk;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program: the verifier rejects code that could
    // reach a panic path with an unbounded loop, so make it `unreachable`.
    unsafe { core::hint::unreachable_unchecked() }
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
