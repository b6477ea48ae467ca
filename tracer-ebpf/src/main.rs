//! mntrace kernel programs: one `sys_enter`/`sys_exit` tracepoint pair per
//! traced syscall. Entry filters, takes the arguments and resolves directory
//! fds inside the kernel into a per-thread slot; exit adds the result and
//! emits one variable-size record into the ring buffer.
//!
//! Layout: `core` (typed kernel pointers over the CO-RE shim in `c/core.c`),
//! `maps`, `walk` (directory resolution and path walk), `emit` (slots, record
//! assembly, drop counters), `probes/` (one file per syscall family).
#![no_std]
#![no_main]

mod core_access;
mod emit;
mod maps;
mod probes;
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
