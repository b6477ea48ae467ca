//! `--guard deny`: BPF LSM programs on the security hooks every deletion and
//! rename passes, syscall or io_uring (`do_unlinkat`, `do_rmdir`,
//! `do_renameat2` call them once the parent directory is looked up):
//!
//! - `path_unlink(const struct path *dir, struct dentry *dentry)`
//! - `path_rmdir(const struct path *dir, struct dentry *dentry)`
//! - `path_rename(const struct path *old_dir, struct dentry *old_dentry,
//!   const struct path *new_dir, struct dentry *new_dentry, unsigned int
//!   flags)` (the `flags` argument since 5.19; the old directory is the one
//!   an entry leaves)
//!
//! They exist with `CONFIG_SECURITY_PATH` (Debian, Ubuntu, RHEL and COS
//! kernels set it for AppArmor and TOMOYO). A hook's last argument is what
//! the BPF LSM programs before this one returned: a refusal stands. Userspace
//! loads these only for `--guard deny` (or `auto` where the kernel accepts
//! them), so no other run pays for a hook.

use aya_ebpf::{macros::lsm, programs::LsmContext};
use tracer_common::{
    config::GUARD_DENY,
    event::{GUARD_AT_DELETE, GUARD_AT_RENAME},
    uapi::EPERM,
};

use crate::clock::decision_ns;
use crate::core_access::KPath;
use crate::guard;
use crate::maps::CONFIG;

/// The decision for a call removing an entry from the directory at kernel
/// address `dir` (a `struct path`), after the earlier programs' `prev`.
#[inline(always)]
fn decide(dir: u64, trigger: u32, prev: i32) -> i32 {
    if prev != 0 {
        return prev;
    }
    let Some(cfg) = CONFIG.get(0) else {
        return 0;
    };
    if cfg.guard != GUARD_DENY {
        return 0;
    }
    let Some(dir) = KPath::at(dir) else {
        return 0;
    };
    if guard::deny(cfg, dir, trigger, decision_ns(cfg)) {
        -EPERM
    } else {
        0
    }
}

#[lsm(hook = "path_unlink")]
pub fn guard_path_unlink(ctx: LsmContext) -> i32 {
    decide(ctx.arg(0), GUARD_AT_DELETE, ctx.arg(2))
}

#[lsm(hook = "path_rmdir")]
pub fn guard_path_rmdir(ctx: LsmContext) -> i32 {
    decide(ctx.arg(0), GUARD_AT_DELETE, ctx.arg(2))
}

#[lsm(hook = "path_rename")]
pub fn guard_path_rename(ctx: LsmContext) -> i32 {
    decide(ctx.arg(0), GUARD_AT_RENAME, ctx.arg(5))
}
