//! `cargo xtask bench overhead`: what mntrace costs a deletion- and
//! mount-heavy node, beside the tools a user would pick instead (bpftrace,
//! auditd, fatrace), in one run with alternating reps; and the `bench
//! smoke` step of `cargo xtask test`, the same run at tiny sizes whose
//! report is then checked.
//!
//! The measurement itself is `xtask/bench/overhead.sh` (ported from the
//! project's `anchors.sh`; its header says what it does): this builds
//! mntrace, installs the anchor tools, runs the script as root and keeps its
//! markdown report in the target directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{ensure, Context, Result};

use crate::cmd::{self, target_dir, workspace_root};
use crate::{bench, setup};

/// The measurement script, from the workspace root.
const SCRIPT: &str = "xtask/bench/overhead.sh";

/// The anchor tools and the commands each needs.
const ANCHORS: &[(&str, &[&str])] = &[
    ("bpftrace", &["bpftrace"]),
    ("auditd", &["auditd", "auditctl", "ausyscall"]),
    ("fatrace", &["fatrace"]),
];

/// A smoke run's settings (the script's own defaults are the full run's).
const SMOKE: &[(&str, &str)] = &[
    ("REPS", "1"),
    ("W1_DIRS", "5"),
    ("W1_FILES", "100"),
    ("W2_ITERS", "200"),
    ("W3_ITERS", "50"),
    ("CAP_DIRS", "2"),
    ("CAP_FILES", "100"),
    ("WARMUP", "0"),
    ("SETTLE_S", "0.1"),
    ("PAUSE_S", "0.05"),
    ("MARKER_MS", "50"),
];

/// `cargo xtask bench overhead [--reps N] [--smoke]`: mntrace built in
/// release. `reps`: None leaves the script's default.
pub fn bench(reps: Option<usize>, smoke: bool) -> Result<()> {
    let release = bench::build("the overhead benchmark traces the whole machine")?;
    run(&release.join("mntrace"), reps, smoke)
}

/// The `bench smoke` step of `cargo xtask test`. With mntrace in release
/// too: a debug build reads events an order of magnitude slower, and on a
/// busy machine the whole node's deletions would overflow its ring buffer.
pub fn smoke() -> Result<()> {
    bench(None, true)
}

fn run(mntrace: &Path, reps: Option<usize>, smoke: bool) -> Result<()> {
    let (anchors, skipped) = anchors();
    for s in &skipped {
        eprintln!("xtask: overhead: anchor skipped: {s}");
    }
    let mut script = Command::new("bash");
    script
        .arg(workspace_root().join(SCRIPT))
        .env("MNTRACE", mntrace)
        .env("WORK", target_dir().join("bench").join("overhead"))
        .env("ANCHORS", anchors.join(" "))
        .env("SKIPPED", skipped.join("; "))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if smoke {
        script.envs(SMOKE.iter().copied());
    }
    if let Some(reps) = reps {
        script.env("REPS", reps.to_string());
    }
    eprintln!("+ {}", cmd::display(&script));
    let start = Instant::now();
    let out = script.output().context("running the overhead script")?;
    let took = start.elapsed();
    ensure!(
        out.status.success(),
        "the overhead script failed ({}); its log is above",
        out.status
    );
    let report = String::from_utf8_lossy(&out.stdout);
    let file = report_file(smoke);
    std::fs::write(&file, report.as_bytes())
        .with_context(|| format!("writing {}", file.display()))?;
    println!("{report}");
    eprintln!(
        "xtask: overhead report written to {} ({:.1} s)",
        file.display(),
        took.as_secs_f64()
    );
    if smoke {
        check(&report, &anchors).context("the smoke run's report")?;
        eprintln!(
            "xtask: bench smoke: report well-formed in {:.1} s; anchors skipped: {}",
            took.as_secs_f64(),
            skipped_line(&report).unwrap_or("?")
        );
    }
    Ok(())
}

/// Where a run's report goes (a smoke run never overwrites the real one).
fn report_file(smoke: bool) -> PathBuf {
    let name = if smoke {
        "overhead-smoke.md"
    } else {
        "overhead.md"
    };
    target_dir().join("bench").join(name)
}

/// Installs the anchor tools when missing; the anchors that can run, and
/// for each one that cannot, why.
fn anchors() -> (Vec<&'static str>, Vec<String>) {
    let install = setup::bench_packages().err();
    let mut run = Vec::new();
    let mut skipped = Vec::new();
    for &(anchor, commands) in ANCHORS {
        match commands.iter().find(|c| !on_path(c)) {
            None => run.push(anchor),
            Some(missing) => skipped.push(match &install {
                Some(err) => {
                    format!("{anchor}: `{missing}` not found (installing failed: {err:#})")
                }
                None => format!("{anchor}: `{missing}` not found"),
            }),
        }
    }
    (run, skipped)
}

fn on_path(command: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(command).is_file()))
}

/// A smoke run's report is well-formed: every configuration has a time for
/// every workload, the floor (`mntrace-empty`, empty programs) was run and
/// counts no events (it emits none), `mntrace-all` delivered exactly W1's
/// deletions and lost nothing, no tracer died, and in the capacity figure
/// every deletion was delivered or counted lost. `anchors`: those asked for (the script may
/// have skipped one, saying why).
fn check(report: &str, anchors: &[&str]) -> Result<()> {
    let tracers: Vec<&str> = report
        .lines()
        .find_map(|l| l.strip_prefix("- order per rep: baseline,T for each tracer T in ["))
        .and_then(|l| l.split_once(']'))
        .context("no list of tracers")?
        .0
        .split_whitespace()
        .collect();
    let skipped = skipped_line(report).unwrap_or("");
    ensure!(tracers.contains(&"mntrace-all"), "mntrace-all was not run");
    ensure!(
        tracers.contains(&"mntrace-empty"),
        "mntrace-empty (the floor) was not run"
    );
    for anchor in anchors {
        ensure!(
            tracers.contains(anchor) || skipped.contains(&format!("{anchor}:")),
            "{anchor} was neither run nor reported skipped"
        );
    }

    let results = Table::find(report, "| workload | config |")?;
    for config in std::iter::once("baseline").chain(tracers.iter().copied()) {
        for workload in ["W1", "W2", "W3"] {
            let row = results
                .row(&[workload, config])
                .with_context(|| format!("no result for {config} in {workload}"))?;
            let median = results.cell(row, "median s")?;
            ensure!(
                median.parse::<f64>().is_ok_and(|m| m > 0.0),
                "{config} in {workload}: median {median:?} is not a time"
            );
            if config.starts_with("mntrace-empty") {
                let events = results.cell(row, "events delivered")?;
                ensure!(
                    events.starts_with('—'),
                    "{config} in {workload}: empty programs counted events: {events:?}"
                );
            }
        }
    }
    let expected_w1 = smoke_knob("W1_DIRS") * smoke_knob("W1_FILES") + smoke_knob("W1_DIRS") + 1;
    let all_w1 = results.row(&["W1", "mntrace-all"]).context("no W1 row")?;
    let events = results.cell(all_w1, "events delivered")?;
    ensure!(
        events == format!("{expected_w1} / {expected_w1}"),
        "mntrace-all delivered {events:?} of W1's {expected_w1} deletions"
    );

    let costs = Table::find(report, "| config | runs |")?;
    for config in &tracers {
        let row = costs
            .row(&[config])
            .with_context(|| format!("{config} missing from the loss table"))?;
        let died = costs.cell(row, "tracer died")?;
        ensure!(died == "0", "{config} died in {died} run(s)");
    }
    let lost = costs.cell(
        costs.row(&["mntrace-all"]).context("mntrace-all")?,
        "events lost",
    )?;
    ensure!(lost == "0", "mntrace-all lost {lost} events");

    // mntrace counts losses machine-wide, so another process's lost
    // deletions can make delivered + lost exceed generated; never less.
    let capacity = Table::find(report, "| `rm -rf` workers |")?;
    ensure!(!capacity.rows.is_empty(), "no capacity figures");
    for row in &capacity.rows {
        let [generated, delivered, lost] =
            ["deletions generated", "delivered", "lost"].map(|c| capacity.cell(row, c));
        let n = |v: Result<&str>| -> Result<u64> { Ok(v?.parse()?) };
        ensure!(
            n(delivered)? + n(lost)? >= n(generated)?,
            "capacity with {} workers: deletions neither delivered nor counted lost",
            row[0]
        );
    }
    Ok(())
}

/// The report's list of the anchors skipped, and why (the script may skip
/// one itself: auditd when an audit daemon already runs).
fn skipped_line(report: &str) -> Option<&str> {
    report
        .lines()
        .find_map(|l| l.strip_prefix("- anchors skipped: "))
}

/// A smoke setting as a number.
fn smoke_knob(name: &str) -> u64 {
    SMOKE
        .iter()
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("smoke setting {name}"))
}

/// A markdown table of the report: its header cells and its rows' cells.
struct Table<'a> {
    header: Vec<&'a str>,
    rows: Vec<Vec<&'a str>>,
}

impl<'a> Table<'a> {
    /// The table whose header line starts with `start`.
    fn find(report: &'a str, start: &str) -> Result<Self> {
        let mut lines = report.lines().skip_while(|l| !l.starts_with(start));
        let header = cells(lines.next().with_context(|| format!("no table {start}"))?);
        let rows = lines
            .skip(1) // |---|---|
            .take_while(|l| l.starts_with('|'))
            .map(cells)
            .collect();
        Ok(Table { header, rows })
    }

    /// The first row whose leading cells are `keys`.
    fn row(&self, keys: &[&str]) -> Option<&Vec<&'a str>> {
        self.rows.iter().find(|r| r.starts_with(keys))
    }

    /// The cell of `row` in the column whose header starts with `column`.
    fn cell(&self, row: &[&'a str], column: &str) -> Result<&'a str> {
        let i = self
            .header
            .iter()
            .position(|h| h.starts_with(column))
            .with_context(|| format!("no column {column:?}"))?;
        row.get(i)
            .copied()
            .with_context(|| format!("a row has no {column:?}"))
    }
}

fn cells(line: &str) -> Vec<&str> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "\
- order per rep: baseline,T for each tracer T in [mntrace-empty mntrace-all bpftrace], tracer order rotated per rep
- anchors skipped: auditd: `auditd` not found; fatrace: `fatrace` not found

| workload | config | n | median s | events delivered (min..max per run) / expected |
|---|---|---|---|---|
| W1 | baseline | 2 | 0.004 | — |
| W1 | mntrace-empty | 1 | 0.004 | — (e) |
| W1 | mntrace-all | 1 | 0.006 | 506 / 506 |
| W1 | bpftrace | 1 | 0.006 | 506 / 506 |
| W2 | baseline | 2 | 0.003 | — |
| W2 | mntrace-empty | 1 | 0.003 | — (e) |
| W2 | mntrace-all | 1 | 0.005 | 400 / 400 |
| W2 | bpftrace | 1 | 0.005 | 400 / 400 |
| W3 | baseline | 2 | 0.005 | — |
| W3 | mntrace-empty | 1 | 0.005 | — (e) |
| W3 | mntrace-all | 1 | 0.027 | 650 / 650 |
| W3 | bpftrace | 1 | 0.027 | 650 / 650 |

| config | runs | tracer died | events lost (sum) |
|---|---|---|---|
| mntrace-empty | 1 | 0 | n/a (not reported) |
| mntrace-all | 1 | 0 | 0 |
| bpftrace | 1 | 0 | 0 |

| `rm -rf` workers | deletions generated | delivered (lines) | lost (mntrace total) | delivered + lost = generated |
|---|---|---|---|---|
| 1 | 203 | 203 | 0 | yes |
";

    #[test]
    fn checks_a_smoke_report() {
        let anchors = ["bpftrace", "auditd", "fatrace"];
        check(REPORT, &anchors).unwrap();
        let lossy = REPORT.replace("| mntrace-all | 1 | 0 | 0 |", "| mntrace-all | 1 | 0 | 3 |");
        assert!(check(&lossy, &anchors).is_err());
        let short = REPORT.replace(
            "| W1 | mntrace-all | 1 | 0.006 | 506 / 506 |",
            "| W1 | mntrace-all | 1 | 0.006 | 505 / 506 |",
        );
        assert!(check(&short, &anchors).is_err());
        let died = REPORT.replace("| bpftrace | 1 | 0 | 0 |", "| bpftrace | 1 | 1 | 0 |");
        assert!(check(&died, &anchors).is_err());
        let missing = REPORT.replace("| W3 | bpftrace | 1 | 0.027 | 650 / 650 |\n", "");
        assert!(check(&missing, &anchors).is_err());
        let vanished = REPORT.replace(
            "| 1 | 203 | 203 | 0 | yes |",
            "| 1 | 203 | 200 | 0 | **no** (-3) |",
        );
        assert!(check(&vanished, &anchors).is_err());
        let silent = REPORT.replace("fatrace: `fatrace` not found", "");
        assert!(check(&silent, &anchors).is_err());
        let no_floor = REPORT.replace("[mntrace-empty ", "[");
        assert!(check(&no_floor, &anchors).is_err());
        let counted = REPORT.replace(
            "| W2 | mntrace-empty | 1 | 0.003 | — (e) |",
            "| W2 | mntrace-empty | 1 | 0.003 | 0 / 400 |",
        );
        assert!(check(&counted, &anchors).is_err());
    }
}
