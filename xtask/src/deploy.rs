//! The `deploy files` step of `cargo xtask test`: the deployment files under
//! `deploy/` checked by the tools that know systemd's and Kubernetes' own
//! rules (the structural checks against the README are a plain test,
//! `tracer/tests/deploy.rs`).
//!
//! - `systemd-analyze verify` on the unit, its `ExecStart=` pointed at the
//!   freshly built binary (verify insists that the program exists); it exits
//!   0 after mere warnings (an unknown key, an unparsable value: systemd
//!   ignores those lines), so any output at all fails the step. Then
//!   `systemd-analyze security --offline`, failing above an exposure of
//!   3.0. Both work without systemd as PID 1 (Debian's `systemd` package).
//! - `kubernetes-validate --strict` on the manifest, against the Kubernetes
//!   API's JSON schemas that it bundles, for every version the manifest
//!   supports (1.30, the first with `appArmorProfile`, to the newest it
//!   knows): unknown or misspelt fields and wrong types fail. A copy with a
//!   misspelt field must fail, so a validator that accepts anything cannot
//!   pass the step. `cargo xtask setup` installs it from PyPI into a
//!   virtualenv under `target/` (pinned in `xtask/deploy-requirements.txt`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::cmd::{display, target_dir, workspace_root};

const UNIT: &str = "deploy/systemd/mntrace.service";
const MANIFEST: &str = "deploy/kubernetes/mntrace-daemonset.yaml";
/// Where the unit expects the binary.
const INSTALLED_BINARY: &str = "/usr/local/bin/mntrace";
/// `systemd-analyze security --threshold` (0-100, shown as 0.0-10.0): the
/// unit scores 2.6; anything above 3.0 is a regression.
const MAX_EXPOSURE: u32 = 30;
/// The Kubernetes versions whose schemas the manifest must satisfy.
const KUBERNETES_VERSIONS: &[&str] = &[
    "1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0", "1.36.0", "1.37.0",
];
pub const REQUIREMENTS: &str = "xtask/deploy-requirements.txt";

/// The virtualenv holding kubernetes-validate.
pub fn venv() -> PathBuf {
    target_dir().join("deploy-venv")
}

pub fn kubernetes_validate() -> PathBuf {
    venv().join("bin").join("kubernetes-validate")
}

/// The kubernetes-validate version pinned in the requirements file.
pub fn kubernetes_validate_version() -> Result<String> {
    let path = workspace_root().join(REQUIREMENTS);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("kubernetes-validate=="))
        .map(str::to_owned)
        .with_context(|| format!("{} pins no kubernetes-validate==VERSION", path.display()))
}

pub fn check() -> Result<()> {
    verify_unit()?;
    validate_manifest()
}

/// Runs `cmd` quietly; its status and everything it printed.
fn output(cmd: &mut Command) -> Result<(bool, String)> {
    eprintln!("+ {}", display(cmd));
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("could not run `{}`", display(cmd)))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

fn verify_unit() -> Result<()> {
    let binary = target_dir().join("debug").join("mntrace");
    ensure!(
        binary.is_file(),
        "{} is missing: `cargo test` builds it (the unit's ExecStart= is pointed at it)",
        binary.display()
    );
    let unit = std::fs::read_to_string(workspace_root().join(UNIT))
        .with_context(|| format!("reading {UNIT}"))?;
    let exec = format!("ExecStart={INSTALLED_BINARY} ");
    ensure!(
        unit.matches(&exec).count() == 1,
        "{UNIT}: expected one `{exec}...` line"
    );
    let shown = binary.display().to_string();
    ensure!(
        !shown.contains(char::is_whitespace),
        "{shown}: a path with blanks cannot stand in ExecStart= unquoted"
    );
    let dir = target_dir().join("deploy-check");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Same file name: verify checks the unit under its own name.
    let copy = dir.join("mntrace.service");
    std::fs::write(&copy, unit.replace(&exec, &format!("ExecStart={shown} ")))
        .with_context(|| format!("writing {}", copy.display()))?;

    let (ok, text) = output(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&copy),
    )?;
    if !ok || !text.trim().is_empty() {
        bail!(
            "systemd-analyze verify {UNIT} (as {}):\n{text}",
            copy.display()
        );
    }
    println!("deploy: systemd-analyze verify {UNIT}: no warnings");

    let (ok, text) = output(
        Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(format!("--threshold={MAX_EXPOSURE}"))
            .arg(&copy),
    )?;
    let overall = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or("no overall exposure level printed")
        .trim()
        .to_owned();
    if !ok {
        bail!(
            "systemd-analyze security {UNIT}: above {}.{} — {overall}\n{text}",
            MAX_EXPOSURE / 10,
            MAX_EXPOSURE % 10
        );
    }
    println!("deploy: systemd-analyze security {UNIT}: {overall}");
    Ok(())
}

fn run_validator(version: &str, file: &Path) -> Result<(bool, String)> {
    output(
        Command::new(kubernetes_validate())
            .args(["--strict", "--quiet", "--kubernetes-version", version])
            .arg(file),
    )
}

fn validate_manifest() -> Result<()> {
    ensure!(
        kubernetes_validate().is_file(),
        "{} is missing: run `cargo xtask setup`",
        kubernetes_validate().display()
    );
    let manifest = workspace_root().join(MANIFEST);
    for version in KUBERNETES_VERSIONS {
        let (ok, text) = run_validator(version, &manifest)?;
        if !ok || text.contains("ERROR") {
            bail!("kubernetes-validate --strict, Kubernetes {version}, {MANIFEST}:\n{text}");
        }
    }
    println!(
        "deploy: kubernetes-validate --strict {MANIFEST}: valid for Kubernetes {} to {}",
        KUBERNETES_VERSIONS[0],
        KUBERNETES_VERSIONS[KUBERNETES_VERSIONS.len() - 1]
    );

    // The validator must see a mistake: a misspelt field.
    let text = std::fs::read_to_string(&manifest)?;
    ensure!(text.contains("readOnlyRootFilesystem: true"));
    let bad = target_dir().join("deploy-check").join("misspelt.yaml");
    std::fs::create_dir_all(bad.parent().expect("parent"))?;
    std::fs::write(
        &bad,
        text.replace(
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesytem: true",
        ),
    )?;
    let last = KUBERNETES_VERSIONS[KUBERNETES_VERSIONS.len() - 1];
    let (ok, text) = run_validator(last, &bad)?;
    ensure!(
        !ok && text.contains("readOnlyRootFilesytem"),
        "kubernetes-validate accepted a misspelt field in {}:\n{text}",
        bad.display()
    );
    println!("deploy: kubernetes-validate rejects a misspelt field, as it should");
    Ok(())
}
