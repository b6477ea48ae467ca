//! Shared helpers for running external commands.
//!
//! Every command that changes something is echoed (`+ cmd args`) before it
//! runs, and a failure turns into an error naming the command and what went
//! wrong. Quiet probes (`probe`) are used for the cheap "is it there?" checks.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output, Stdio};

use anyhow::{bail, Context, Result};

/// A `cargo` command. Uses the plain `cargo` (the rustup proxy) from `PATH`,
/// so that `cargo clippy`/`cargo fmt` resolve the same way as in a shell.
pub fn cargo() -> Command {
    Command::new("cargo")
}

/// Renders a command the way one would type it into a shell
/// (`VAR=value prog arg 'arg with space'`).
pub fn display(cmd: &Command) -> String {
    let mut out = String::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            let _ = write!(out, "{}={} ", key.to_string_lossy(), quote(value));
        }
    }
    out.push_str(&quote(cmd.get_program()));
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&quote(arg));
    }
    out
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn spawn_error(cmd: &Command, err: std::io::Error) -> anyhow::Error {
    let program = cmd.get_program().to_string_lossy().into_owned();
    if err.kind() == ErrorKind::NotFound {
        anyhow::anyhow!(
            "could not run `{}`: `{program}` was not found on PATH (is it installed?)",
            display(cmd)
        )
    } else {
        anyhow::anyhow!("could not run `{}`: {err}", display(cmd))
    }
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => {
            use std::os::unix::process::ExitStatusExt;
            match status.signal() {
                Some(sig) => format!("signal {sig}"),
                None => status.to_string(),
            }
        }
    }
}

/// Prints the command, runs it with inherited stdio and returns its status
/// (a non-zero status is *not* an error here; only failing to start is).
pub fn status(cmd: &mut Command) -> Result<ExitStatus> {
    eprintln!("+ {}", display(cmd));
    cmd.status().map_err(|e| spawn_error(cmd, e))
}

/// Prints the command, runs it with inherited stdio, and fails with a clear
/// message if it cannot be started or exits unsuccessfully.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = status(cmd)?;
    if !status.success() {
        bail!("command `{}` failed ({})", display(cmd), describe(status));
    }
    Ok(())
}

/// Runs a command quietly (no echo, stdin closed, output captured) for
/// checks. Returns `Ok(None)` if the program does not exist, so callers can
/// treat "not installed" as a normal answer.
pub fn probe(cmd: &mut Command) -> Result<Option<Output>> {
    cmd.stdin(Stdio::null());
    match cmd.output() {
        Ok(out) => Ok(Some(out)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(spawn_error(cmd, e)),
    }
}

/// Replaces the current process with `cmd` (so signals and the exit code go
/// straight to/from it). Only returns on failure.
pub fn exec(cmd: &mut Command) -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    eprintln!("+ {}", display(cmd));
    let err = cmd.exec();
    spawn_error(cmd, err)
}

/// The workspace root: the parent of the xtask crate directory.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative paths are taken
/// from the workspace root, as cargo does when run there) or `<root>/target`.
pub fn target_dir() -> PathBuf {
    let root = workspace_root();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// Whether the effective user is root (read from `/proc/self/status`, so no
/// libc dependency is needed).
pub fn is_root() -> bool {
    effective_uid() == Some(0)
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    // Uid: real effective saved filesystem
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Runs `cmd` quietly and returns its stdout as text if it succeeded.
pub fn stdout_of(cmd: &mut Command) -> Result<Option<String>> {
    let out = probe(cmd).with_context(|| format!("checking `{}`", display(cmd)))?;
    Ok(out
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned()))
}
