//! `cargo xtask lint`: clippy on the host crates and on the eBPF crate
//! (warnings are errors), and a rustfmt check.

use crate::cmd::{cargo, workspace_root};
use crate::summary::Steps;

/// Runs the lint steps, recording their results (setup must already be done:
/// clippy builds the tracer crate, whose build script builds the eBPF crate).
pub fn lint() -> Steps {
    let mut steps = Steps::new("lint");
    steps.run(
        "clippy",
        cargo().current_dir(workspace_root()).args([
            "clippy",
            "--workspace",
            "--exclude",
            "tracer-ebpf",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    );
    // The kernel crate only builds for the bpf target, with nightly's
    // build-std (as aya-build builds it); it has its own target dir so the
    // host build's cache stays warm.
    steps.run(
        "clippy (eBPF)",
        std::process::Command::new("rustup")
            .current_dir(workspace_root().join("tracer-ebpf"))
            .env(
                "CARGO_ENCODED_RUSTFLAGS",
                "--cfg=bpf_target_arch=\"x86_64\"",
            )
            .env(
                "CARGO_TARGET_DIR",
                crate::cmd::target_dir().join("ebpf-clippy"),
            )
            .args([
                "run",
                "nightly",
                "cargo",
                "clippy",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
                "--",
                "-D",
                "warnings",
            ]),
    );
    steps.run(
        "rustfmt",
        cargo()
            .current_dir(workspace_root())
            .args(["fmt", "--all", "--", "--check"]),
    );
    steps
}
