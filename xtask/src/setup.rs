//! `cargo xtask setup`: install (or check) everything the build and the tests
//! need (the deployment files' validators included). Every step checks first and prints exactly one line, either
//! `setup: <thing> ok` or `setup: installing <thing>`, so a run on a
//! fully provisioned machine does no work and finishes well under 2 s.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cmd::{self, cargo, is_root, probe, run, stdout_of};
use crate::deploy;

/// Debian packages the build and the tests need.
///
/// clang/LLVM 22 (plus polly and zstd, which linking bpf-linker against
/// LLVM also needs) for bpf-linker; the rest for the end-to-end tests and
/// the deployment files' checks.
const APT_PACKAGES: &[&str] = &[
    "clang-22",
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "containerd",
    "runc",
    "golang-go",
    "busybox-static",
    "util-linux",
    "strace",
    // The deployment files' checks: systemd-analyze (works without systemd
    // as PID 1) and a virtualenv for kubernetes-validate.
    "systemd",
    "python3-venv",
];

/// Debian packages only `cargo xtask bench overhead` needs: the anchor
/// tracers it measures mntrace against, and gcc for its workload helper.
/// Not part of the tests' set-up (see `bench_packages`).
pub const BENCH_PACKAGES: &[&str] = &["bpftrace", "auditd", "fatrace", "gcc"];

const NIGHTLY: &str = "nightly";
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const TRACEFS: &str = "/sys/kernel/tracing";

pub fn setup() -> Result<()> {
    let start = Instant::now();
    let root = is_root();

    // Cheap and not fixable from here, so check it before installing anything.
    check_nightly()?;
    apt_packages(root)?;
    rust_src()?;
    lint_components()?;
    bpf_linker()?;
    deploy_validator()?;
    tracefs(root)?;

    println!("setup: done in {:.2?}", start.elapsed());
    Ok(())
}

/// The eBPF crate is built by aya-build with `rustup run nightly cargo build
/// -Z build-std=core`, so a `nightly` toolchain must exist.
fn check_nightly() -> Result<()> {
    let list = stdout_of(Command::new("rustup").args(["toolchain", "list"]))?.context(
        "`rustup toolchain list` failed or rustup is not on PATH: rustup with a `nightly` \
         toolchain is required (the eBPF crate is built with `rustup run nightly cargo build`)",
    )?;
    let present = list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .any(is_plain_nightly);
    if !present {
        bail!(
            "the `{NIGHTLY}` Rust toolchain is missing (`rustup toolchain list` does not list it). \
             It is needed to build the eBPF crate (aya-build runs `rustup run nightly cargo build \
             -Z build-std=core`). `cargo xtask setup` cannot install it on this machine; \
             provision it in the machine image by hand: \
             `rustup toolchain install nightly --component rust-src`"
        );
    }
    println!("setup: rust toolchain {NIGHTLY} ok");
    Ok(())
}

/// `nightly` or `nightly-<host triple>`, but not a dated `nightly-YYYY-MM-DD…`
/// (which is not what `rustup run nightly` picks).
fn is_plain_nightly(name: &str) -> bool {
    match name.strip_prefix(NIGHTLY) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('-')
            .is_some_and(|triple| !triple.starts_with(|c: char| c.is_ascii_digit())),
        None => false,
    }
}

fn apt_installed(package: &str) -> Result<bool> {
    let out = probe(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))?.context(
        "`dpkg-query` not found: setup installs system packages with apt and only supports \
             Debian-like systems; install these packages by hand",
    )?;
    // "install ok installed" (or "hold ok installed" for a held package);
    // a package dpkg has never heard of makes dpkg-query fail.
    let status = String::from_utf8_lossy(&out.stdout);
    Ok(out.status.success() && status.trim_end().ends_with("ok installed"))
}

fn apt_packages(root: bool) -> Result<()> {
    apt_install(APT_PACKAGES, root)
}

/// Install (or check) `BENCH_PACKAGES`, the same way as the set-up's own
/// packages; an error says which could not be installed and why.
pub fn bench_packages() -> Result<()> {
    apt_install(BENCH_PACKAGES, is_root())
}

/// Install (or check) `packages` with apt-get, as the set-up does.
pub fn apt_install(packages: &[&str], root: bool) -> Result<()> {
    let mut missing = Vec::new();
    for &package in packages {
        if apt_installed(package)? {
            println!("setup: apt package {package} ok");
        } else {
            missing.push(package);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !root {
        bail!(
            "apt packages missing: {list}. Installing them needs root (apt-get): \
             run as root or install them by hand: `sudo apt-get update && sudo apt-get install -y {list}`"
        );
    }
    for package in &missing {
        println!("setup: installing apt package {package}");
    }
    // At most once per invocation, and only because something is missing.
    run(apt_get().arg("update"))?;
    run(apt_get().args(["install", "-y"]).args(&missing))?;
    let still_missing: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|p| !apt_installed(p).unwrap_or(false))
        .collect();
    if !still_missing.is_empty() {
        bail!(
            "apt-get install succeeded but these packages are still not installed: {}",
            still_missing.join(" ")
        );
    }
    Ok(())
}

fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null());
    cmd
}

/// `-Z build-std=core` needs the standard library sources of the nightly
/// toolchain.
fn rust_src() -> Result<()> {
    let installed = stdout_of(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        NIGHTLY,
        "--installed",
    ]))?
    .context("`rustup component list --toolchain nightly --installed` failed")?;
    if installed.lines().any(|l| l.trim() == "rust-src") {
        println!("setup: rust-src ({NIGHTLY}) ok");
        return Ok(());
    }
    println!("setup: installing rust-src ({NIGHTLY})");
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))
}

/// `cargo xtask lint` needs clippy and rustfmt on the toolchain the
/// workspace builds with (the default one; there is no rust-toolchain file).
fn lint_components() -> Result<()> {
    let installed = stdout_of(
        Command::new("rustup")
            .args(["component", "list", "--installed"])
            .current_dir(cmd::workspace_root()),
    )?
    .context("`rustup component list --installed` failed")?;
    for component in ["clippy", "rustfmt"] {
        let present = installed.lines().map(str::trim).any(|line| {
            line == component
                || line
                    .strip_prefix(component)
                    .is_some_and(|rest| rest.starts_with('-'))
        });
        if present {
            println!("setup: {component} ok");
        } else {
            println!("setup: installing {component}");
            run(Command::new("rustup")
                .args(["component", "add", component])
                .current_dir(cmd::workspace_root()))?;
        }
    }
    Ok(())
}

/// Finds a bpf-linker that reports the wanted version: first on PATH, then in
/// `$CARGO_HOME/bin` (rustup puts that on the PATH of the builds it runs).
fn find_bpf_linker() -> Result<Option<PathBuf>> {
    let mut candidates = vec![PathBuf::from("bpf-linker")];
    if let Some(home) = cargo_home() {
        candidates.push(home.join("bin").join("bpf-linker"));
    }
    for candidate in candidates {
        let Some(out) = probe(Command::new(&candidate).arg("--version"))? else {
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && reports_version(&text, BPF_LINKER_VERSION) {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// `bpf-linker 0.13.0` → true; `0.13.01`/`0.13.0-rc` style tokens don't match.
fn reports_version(text: &str, version: &str) -> bool {
    text.split_whitespace()
        .any(|word| word.trim_start_matches('v') == version)
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
}

fn bpf_linker() -> Result<()> {
    if find_bpf_linker()?.is_some() {
        println!("setup: bpf-linker {BPF_LINKER_VERSION} ok");
        return Ok(());
    }
    println!("setup: installing bpf-linker {BPF_LINKER_VERSION} (LLVM 22)");
    if !Path::new(LLVM_PREFIX)
        .join("bin")
        .join("llvm-config")
        .exists()
    {
        bail!(
            "{LLVM_PREFIX}/bin/llvm-config not found: bpf-linker needs LLVM 22 \
             (apt-get install -y clang-22 llvm-22-dev libpolly-22-dev libzstd-dev)"
        );
    }
    run(cargo()
        .env("LLVM_PREFIX", LLVM_PREFIX)
        .current_dir(cmd::workspace_root())
        .args([
            "install",
            &format!("bpf-linker@{BPF_LINKER_VERSION}"),
            "--no-default-features",
            "--features",
            "llvm-22",
        ]))?;
    if find_bpf_linker()?.is_none() {
        bail!(
            "bpf-linker was installed but neither `bpf-linker --version` on PATH nor \
             $CARGO_HOME/bin/bpf-linker reports {BPF_LINKER_VERSION}; \
             check for another bpf-linker earlier on PATH"
        );
    }
    Ok(())
}

/// kubernetes-validate (PyPI, pinned in xtask/deploy-requirements.txt) in a
/// virtualenv under the target directory, made with Debian's python3.
fn deploy_validator() -> Result<()> {
    let version = deploy::kubernetes_validate_version()?;
    let exe = deploy::kubernetes_validate();
    if let Some(out) = probe(Command::new(&exe).arg("--version"))? {
        if out.status.success() && reports_version(&String::from_utf8_lossy(&out.stdout), &version)
        {
            println!("setup: kubernetes-validate {version} ok");
            return Ok(());
        }
    }
    let venv = deploy::venv();
    println!(
        "setup: installing kubernetes-validate {version} (PyPI) into {}",
        venv.display()
    );
    run(Command::new("/usr/bin/python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv))?;
    run(Command::new(venv.join("bin").join("pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "--requirement",
        ])
        .arg(cmd::workspace_root().join(deploy::REQUIREMENTS)))?;
    let out = probe(Command::new(&exe).arg("--version"))?;
    match out {
        Some(out)
            if out.status.success()
                && reports_version(&String::from_utf8_lossy(&out.stdout), &version) =>
        {
            Ok(())
        }
        _ => bail!(
            "installed kubernetes-validate {version} into {} but `{} --version` does not report it",
            venv.display(),
            exe.display()
        ),
    }
}

/// The tracer attaches to tracepoints, which needs tracefs mounted.
fn tracefs(root: bool) -> Result<()> {
    let events = Path::new(TRACEFS).join("events");
    if events.is_dir() {
        println!("setup: tracefs ok");
        return Ok(());
    }
    if !root {
        println!(
            "setup: tracefs not visible at {TRACEFS} (not mounted, or not readable without \
             root); not root, so not mounting it — run as root: \
             `mount -t tracefs nodev {TRACEFS}`"
        );
        return Ok(());
    }
    println!("setup: mounting tracefs on {TRACEFS}");
    run(Command::new("mount").args(["-t", "tracefs", "nodev", TRACEFS]))?;
    if !events.is_dir() {
        bail!(
            "mounted tracefs on {TRACEFS} but {} still does not exist",
            events.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nightly_names() {
        assert!(is_plain_nightly("nightly"));
        assert!(is_plain_nightly("nightly-x86_64-unknown-linux-gnu"));
        assert!(!is_plain_nightly(
            "nightly-2025-01-01-x86_64-unknown-linux-gnu"
        ));
        assert!(!is_plain_nightly("stable-x86_64-unknown-linux-gnu"));
        assert!(!is_plain_nightly("nightlyish"));
    }

    #[test]
    fn versions() {
        assert!(reports_version("bpf-linker 0.13.0\n", "0.13.0"));
        assert!(reports_version("bpf-linker v0.13.0", "0.13.0"));
        assert!(!reports_version("bpf-linker 0.13.01", "0.13.0"));
        assert!(!reports_version("bpf-linker 0.12.0", "0.13.0"));
    }
}
