//! `cargo xtask lint`: clippy (warnings are errors) and rustfmt check.

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
    steps.run(
        "rustfmt",
        cargo()
            .current_dir(workspace_root())
            .args(["fmt", "--all", "--", "--check"]),
    );
    steps
}
