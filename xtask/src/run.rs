//! `cargo xtask run`: build the tracer in release mode and exec it.

use anyhow::{bail, Result};
use std::process::Command;

use crate::cmd::{self, cargo, is_root, workspace_root};
use crate::setup;

pub fn run(args: &[String]) -> Result<()> {
    setup::setup()?;
    cmd::run(
        cargo()
            .current_dir(workspace_root())
            .args(["build", "--release", "-p", "tracer"]),
    )?;

    let binary = cmd::target_dir().join("release").join("mntrace");
    if !binary.is_file() {
        bail!(
            "the build succeeded but {} does not exist",
            binary.display()
        );
    }
    if !is_root() {
        eprintln!(
            "xtask: warning: not running as root; loading the eBPF programs will likely fail"
        );
    }
    let default = ["trace".to_owned()];
    let args = if args.is_empty() { &default[..] } else { args };
    // exec: mntrace replaces this process, so its exit code (and signals
    // such as Ctrl-C) are its own.
    Err(cmd::exec(Command::new(&binary).args(args)))
}
