//! `cargo xtask test`: the test fixture driver's build, the workspace tests,
//! a qemu run of the kernel probe set's tests, the overhead benchmark's
//! smoke run, the deployment files' validators, then
//! the lints.

use std::process::ExitCode;

use anyhow::Result;

use crate::cmd::{cargo, is_root, workspace_root};
use crate::summary::Steps;
use crate::{deploy, lint, overhead, setup, vm};

pub fn test(extra: &[String]) -> Result<ExitCode> {
    setup::setup()?;
    if !is_root() {
        eprintln!(
            "xtask: warning: not running as root; the kernel tests need root (to load eBPF \
             programs) and will report that they could not run"
        );
    }

    let mut steps = Steps::new("test");
    // The kernel tests run the fixture driver, a binary of another package
    // (cargo only builds a test's own package's binaries): build it first, in
    // the tests' profile (debug), where they look for it.
    steps.run(
        "build fixture",
        cargo()
            .current_dir(workspace_root())
            .args(["build", "--package", "mntrace-fixture"]),
    );
    steps.run(
        "cargo test",
        cargo()
            .current_dir(workspace_root())
            .args([
                "test",
                "--workspace",
                "--exclude",
                "tracer-ebpf",
                "--no-fail-fast",
            ])
            .args(extra),
    );
    // The kernel probe set where the kernel accepts it: Debian's 6.12
    // kernel under qemu, the kernel set's own tests and the io_uring ones
    // (about two minutes); and the race replica on Debian 12's default
    // kernel, 6.1, whose older verifier and structures differ most from
    // this machine's (about two more). The whole `cargo xtask vm-test`,
    // both kernels and sets, takes over twenty minutes and is run on its
    // own.
    steps.check("vm smoke (6.12, kernel probe set)", || {
        vm::step(&[
            "--kernel",
            "6.12",
            "--set",
            "kernel",
            "--test",
            "kernel_probes",
            "--test",
            "uring",
            "--timeout",
            "900",
        ])
    });
    // With the guard's deny (BPF LSM, which the guests enable) on the same
    // replica: 6.1's verifier is the oldest the LSM programs meet.
    steps.check(
        "vm smoke (6.1, syscall set, the containerd replica, --guard deny)",
        || {
            vm::step(&[
                "--kernel",
                "6.1",
                "--set",
                "syscall",
                "--test",
                "race",
                "--test",
                "guard",
                "--timeout",
                "900",
                "--",
                "containerd_idmapped_lowerdir_race_is_one_critical_incident",
                "guard_deny_fails_the_replicas_deletions_with_eperm_or_is_refused_with_the_reason",
                "--exact",
            ])
        },
    );
    // The overhead benchmark at tiny sizes, its report checked (with the
    // mntrace `cargo test` built).
    steps.check("bench smoke", overhead::smoke);
    // The deployment files, by systemd's and Kubernetes' own validators
    // (needs the binary that `cargo test` built).
    steps.check("deploy files", deploy::check);
    // Lints run even if tests failed, so one run reports everything.
    steps.extend(lint::lint());
    Ok(steps.finish())
}
