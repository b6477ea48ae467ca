//! `cargo xtask bench replay`: how fast `mntrace triage` and `mntrace
//! query` go through a real recording, on one core. `cargo xtask bench
//! mounts`: what mount churn costs with the mount count of a small, a large
//! and a very large node (the curve must stay flat).
//!
//! The recording is made here, by the real tracer (`mntrace record
//! --deletes all`), of a real workload in a private mount namespace: FILES
//! files removed by `rm -rf` (most of them plain, a share of them through a
//! mount whose unmount failed with EBUSY while a process held it, so the
//! replay builds one large incident). Then, for REPS rounds, each replay
//! command runs pinned to one CPU (`taskset -c 0`), in an order rotated
//! every round; reported: median, min and max wall time, events per second
//! of the median, CPU time and peak RSS. Not part of the tests (too slow
//! and too noisy for CI).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cmd::{self, cargo, target_dir, workspace_root};

/// Share of the files under the busy mount (the incident's deletions).
const BUSY_SHARE: u64 = 3;
/// Files per directory of the workload tree.
const PER_DIR: u64 = 10_000;

pub fn replay(files: u64, reps: usize) -> Result<()> {
    if files < PER_DIR || reps == 0 {
        bail!("--files must be at least {PER_DIR} and --reps at least 1");
    }
    let release = build("the replay benchmark records real deletions")?;
    let mntrace = release.join("mntrace");
    let fixture = release.join("mntrace-fixture");
    let work = target_dir().join("bench").join("replay");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    let tree = work.join("tree");
    let rec = work.join("rec");
    std::fs::create_dir_all(&tree)?;

    eprintln!("xtask: recording the removal of {files} files (mntrace record --deletes all)");
    let recorded = record(&mntrace, &fixture, &tree, &rec, files)?;
    let stored: u64 = std::fs::read_dir(&rec)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();

    let rec_os = rec.as_os_str().to_owned();
    let configs: Vec<(&str, Vec<OsString>)> = vec![
        ("triage", vec!["triage".into(), rec_os.clone()]),
        (
            "triage --json",
            vec!["triage".into(), "--json".into(), rec_os.clone()],
        ),
        (
            "query --path (no match)",
            vec![
                "query".into(),
                "--path".into(),
                "/nonexistent".into(),
                rec_os.clone(),
            ],
        ),
    ];
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); configs.len()];
    let mut events = None;
    for rep in 0..reps {
        for k in 0..configs.len() {
            let i = (k + rep) % configs.len();
            let (name, args) = &configs[i];
            let r = timed(&mntrace, args)?;
            eprintln!(
                "xtask: rep {rep} {name}: {:.3} s, {} events, RSS {} MiB",
                r.wall.as_secs_f64(),
                r.events,
                r.max_rss_kib / 1024
            );
            if *events.get_or_insert(r.events) != r.events {
                bail!(
                    "{name} replayed {} events, another run {events:?}",
                    r.events
                );
            }
            runs[i].push(r);
        }
    }
    let events = events.unwrap_or(0);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Replay of a recording of {recorded} events ({} MiB in its files, zstd), \
         one CPU (`taskset -c 0`), {reps} rounds, kernel {}:\n",
        stored >> 20,
        kernel()
    );
    let _ = writeln!(
        md,
        "| command | median | min | max | events/s (median) | CPU (median) | peak RSS (median) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for ((name, _), rs) in configs.iter().zip(&runs) {
        let mut wall: Vec<f64> = rs.iter().map(|r| r.wall.as_secs_f64()).collect();
        wall.sort_by(f64::total_cmp);
        let mut cpu: Vec<f64> = rs.iter().map(|r| r.cpu.as_secs_f64()).collect();
        cpu.sort_by(f64::total_cmp);
        let med = median(&wall);
        let mut rss: Vec<u64> = rs.iter().map(|r| r.max_rss_kib).collect();
        rss.sort();
        let rss = rss[rss.len() / 2];
        let _ = writeln!(
            md,
            "| `mntrace {name}` | {med:.3} s | {:.3} s | {:.3} s | {:.2} M | {:.3} s | {} MiB |",
            wall[0],
            wall[wall.len() - 1],
            events as f64 / med / 1e6,
            median(&cpu),
            rss / 1024
        );
    }
    println!("{md}");
    let out = work.join("replay.md");
    std::fs::write(&out, &md)?;
    eprintln!("xtask: written to {}", out.display());
    Ok(())
}

/// Check for root (`why` it is needed), build mntrace and the fixture in
/// release mode; their directory.
pub fn build(why: &str) -> Result<std::path::PathBuf> {
    if !cmd::is_root() {
        bail!("{why}: run it as root");
    }
    cmd::run(cargo().current_dir(workspace_root()).args([
        "build",
        "--release",
        "-p",
        "tracer",
        "-p",
        "mntrace-fixture",
    ]))?;
    Ok(target_dir().join("release"))
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}

/// The workload, run by bash in a private mount namespace: a tmpfs for
/// the tree, a tmpfs mounted inside it and held busy, an unmount that fails
/// with EBUSY, then `rm -rf` of the plain part and of the busy part.
const WORKLOAD: &str = r#"
set -eu
tree=$1 fixture=$2 plain_dirs=$3 busy_dirs=$4 per_dir=$5
mount -t tmpfs -o size=8g,nr_inodes=0 bench "$tree"
cd "$tree"
mkdir -p plain layer/mnt
for i in $(seq 1 "$plain_dirs"); do mkdir plain/d$i; "$fixture" touch-many plain/d$i "$per_dir" >/dev/null; done
mount -t tmpfs -o nr_inodes=0 busy layer/mnt
touch layer/mnt/held
for i in $(seq 1 "$busy_dirs"); do mkdir layer/mnt/d$i; "$fixture" touch-many layer/mnt/d$i "$per_dir" >/dev/null; done
sleep 3600 < layer/mnt/held &
holder=$!
trap 'kill $holder 2>/dev/null; cd /; umount -l "$tree/layer/mnt" 2>/dev/null; umount -l "$tree"' EXIT
if umount layer/mnt 2>/dev/null; then echo "the busy mount unmounted" >&2; exit 1; fi
rm -rf plain
rm -rf layer 2>/dev/null || true
"#;

/// Record the workload; the number of events recorded.
fn record(mntrace: &Path, fixture: &Path, tree: &Path, rec: &Path, files: u64) -> Result<u64> {
    let dirs = files / PER_DIR;
    let busy_dirs = (dirs / BUSY_SHARE).max(1);
    let plain_dirs = dirs - busy_dirs;
    let mut recorder = Command::new(mntrace)
        .args(["record", "--deletes", "all", "--no-default-roots", "--root"])
        .arg(format!("{}/layer/**", tree.display()))
        .arg("--dir")
        .arg(rec)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting mntrace record")?;
    let mut err = BufReader::new(recorder.stderr.take().expect("piped"));
    let mut line = String::new();
    loop {
        line.clear();
        if err.read_line(&mut line)? == 0 {
            bail!(
                "mntrace record exited before recording: {:?}",
                recorder.wait()?
            );
        }
        if line.starts_with("mntrace: recording") {
            break;
        }
    }
    let lines =
        std::thread::spawn(move || err.lines().map_while(Result::ok).collect::<Vec<String>>());
    let status = Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "bash",
            "-c",
            WORKLOAD,
            "workload",
        ])
        .arg(tree)
        .arg(fixture)
        .args([plain_dirs, busy_dirs, PER_DIR].map(|n| n.to_string()))
        .status()
        .context("running the workload (unshare, bash)")?;
    // The recorder stops on SIGINT, after draining what the kernel emitted.
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(recorder.id() as i32, libc::SIGINT) };
    let rstatus = recorder.wait()?;
    let summary = lines.join().unwrap_or_default();
    if !status.success() || !rstatus.success() {
        bail!(
            "the workload ({status}) or mntrace record ({rstatus}) failed:\n{}",
            summary.join("\n")
        );
    }
    if !summary.iter().any(|l| l.contains("no events lost")) {
        bail!("the recording lost events:\n{}", summary.join("\n"));
    }
    // "mntrace: N events: ..."
    summary
        .iter()
        .find_map(|l| {
            l.strip_prefix("mntrace: ")?
                .split_once(" events: ")?
                .0
                .parse()
                .ok()
        })
        .with_context(|| format!("no event count in the summary:\n{}", summary.join("\n")))
}

#[derive(Clone, Debug)]
struct Run {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: u64,
    events: u64,
}

/// `mntrace ARGS` on CPU 0, stdout discarded; wall time, the CPU time and
/// peak RSS of the run (its own rusage), and the events it replayed.
fn timed(mntrace: &Path, args: &[OsString]) -> Result<Run> {
    use std::io::Read;
    let t = Instant::now();
    let mut child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(mntrace)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running taskset -c 0 mntrace")?;
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut err)?;
    // wait4 rather than Child::wait: the rusage of this child alone
    // (taskset execs mntrace, so it is mntrace's).
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a child of ours, not waited for yet; valid pointers.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    let wall = t.elapsed();
    if pid < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("mntrace {args:?} failed (wait status {status}):\n{err}");
    }
    // "mntrace: replayed N kernel records ..." or "mntrace: M of N recorded
    // events matched".
    let events = err
        .lines()
        .find_map(|l| {
            let l = l.strip_prefix("mntrace: ")?;
            l.strip_prefix("replayed ")
                .and_then(|r| r.split_once(' '))
                .map(|(n, _)| n)
                .or_else(|| l.split_once(" of ")?.1.split_once(' ').map(|(n, _)| n))?
                .parse()
                .ok()
        })
        .with_context(|| format!("no event count from mntrace {args:?}:\n{err}"))?;
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Run {
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        max_rss_kib: ru.ru_maxrss as u64,
        events,
    })
}

/// Mount churn against the number of mounts in the namespace, traced or
/// not: for each size, `rounds` rounds of (no tracer, `mntrace trace`) in
/// turn, each timing `pairs` bind + unmount pairs made by one process
/// (mntrace-fixture) in a private mount namespace, and the CPU mntrace
/// spent meanwhile. With `sustain` seconds, then for each size a steady
/// 100 pairs per second for that long under mntrace: its CPU per mount
/// event and what the kernel dropped (nothing, or the benchmark fails).
pub fn mounts(sizes: &[u64], pairs: u64, rounds: usize, sustain: u64) -> Result<()> {
    let release = build("the mount benchmark mounts in a private namespace")?;
    let work = target_dir().join("bench").join("mounts");
    std::fs::create_dir_all(&work)?;
    let sizes: Vec<String> = sizes.iter().map(u64::to_string).collect();
    let out = Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "bash",
            "-c",
            MOUNTS,
            "mounts",
        ])
        .arg(&work)
        .arg(release.join("mntrace"))
        .arg(release.join("mntrace-fixture"))
        .arg(pairs.to_string())
        .arg(rounds.to_string())
        .arg(sustain.to_string())
        .args(&sizes)
        .stderr(Stdio::inherit())
        .output()
        .context("running the mount benchmark (unshare, bash)")?;
    if !out.status.success() {
        bail!("the mount benchmark failed ({})", out.status);
    }
    // Lines: "MOUNTS CONFIG SECONDS CPU_SECONDS", and for the steady phase
    // "MOUNTS sustained SECONDS CPU_SECONDS PAIRS LOST".
    let mut runs: std::collections::BTreeMap<(u64, String), Vec<(f64, f64)>> = Default::default();
    let mut steady = Vec::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f[..] {
            [n, "sustained", secs, cpu, pairs, lost] => steady.push((
                n.parse::<u64>()?,
                secs.parse::<f64>()?,
                cpu.parse::<f64>()?,
                pairs.parse::<u64>()?,
                lost.parse::<u64>()?,
            )),
            [n, config, secs, cpu] => runs
                .entry((n.parse()?, config.to_owned()))
                .or_default()
                .push((secs.parse()?, cpu.parse()?)),
            _ => {}
        }
    }
    let mut md = String::new();
    let _ = writeln!(
        md,
        "{pairs} bind + unmount pairs by one process, against the mounts in its namespace; \
         {rounds} rounds alternating no tracer / `mntrace trace`, kernel {}:\n",
        kernel()
    );
    let _ = writeln!(
        md,
        "| mounts | untraced median | traced median (min-max) | ratio | mntrace CPU median | per mount event |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        median(v)
    };
    let ns: std::collections::BTreeSet<u64> = runs.keys().map(|k| k.0).collect();
    for n in ns {
        let (Some(base), Some(traced)) = (
            runs.get(&(n, "baseline".into())),
            runs.get(&(n, "mntrace".into())),
        ) else {
            continue;
        };
        let b = med(&mut base.iter().map(|r| r.0).collect());
        let mut t: Vec<f64> = traced.iter().map(|r| r.0).collect();
        let tm = med(&mut t);
        let cpu = med(&mut traced.iter().map(|r| r.1).collect());
        let _ = writeln!(
            md,
            "| {n} | {b:.3} s | {tm:.3} s ({:.3}-{:.3}) | {:.2}× | {cpu:.2} s | {:.0} µs |",
            t[0],
            t[t.len() - 1],
            tm / b,
            cpu * 1e6 / (2 * pairs) as f64
        );
    }
    if !steady.is_empty() {
        let _ = writeln!(
            md,
            "\nSteady churn under `mntrace trace`: 100 bind + unmount pairs a second \
             (`sleep-ms 10` between pairs) for {sustain} s:\n"
        );
        let _ = writeln!(
            md,
            "| mounts | pairs | seconds | mntrace CPU | per mount event | lost in the kernel |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|");
        for (n, secs, cpu, pairs, lost) in &steady {
            let _ = writeln!(
                md,
                "| {n} | {pairs} | {secs:.1} s | {cpu:.2} s | {:.0} µs | {lost} |",
                cpu * 1e6 / (2 * pairs) as f64
            );
        }
    }
    println!("{md}");
    std::fs::write(work.join("mounts.md"), &md)?;
    if let Some((n, _, _, _, lost)) = steady.iter().find(|s| s.4 > 0) {
        bail!("mntrace lost {lost} events under steady churn with {n} mounts");
    }
    eprintln!("xtask: written to {}", work.join("mounts.md").display());
    Ok(())
}

/// The mount benchmark, in bash in a private mount namespace: a tmpfs for
/// the mounts, grown to each size, then the churn alone and under mntrace.
const MOUNTS: &str = r#"
set -eu
work=$1 mntrace=$2 fixture=$3 pairs=$4 rounds=$5 sustain=$6; shift 6
w=$work/ns
mkdir -p "$w"
mount -t tmpfs bench "$w"
trap 'cd /; umount -R -l "$w"' EXIT
mkdir -p "$w/src" "$w/dst" "$w/m"
ops=(); for i in $(seq 1 "$pairs"); do ops+=(bind "$w/src" "$w/dst" umount "$w/dst" 0); done
steady=(); for i in $(seq 1 $((sustain * 100))); do steady+=(bind "$w/src" "$w/dst" umount "$w/dst" 0 sleep-ms 10); done
start_mntrace() {
  "$mntrace" trace -o /dev/null 2> "$work/trace.err" & pid=$!
  until grep -q "mntrace: tracing" "$work/trace.err"; do
    kill -0 $pid 2>/dev/null || { cat "$work/trace.err" >&2; exit 1; }
    sleep 0.1
  done
  c0=$(awk '{print $14 + $15}' /proc/$pid/stat)
}
# mntrace's CPU since start_mntrace (after a second to catch up), then stop it.
stop_mntrace() {
  sleep 1
  c1=$(awk '{print $14 + $15}' /proc/$pid/stat)
  cpu=$(awk -v a=$c0 -v b=$c1 -v hz=$(getconf CLK_TCK) 'BEGIN {print (b - a) / hz}')
  kill -INT $pid; wait $pid
}
have=0
for size in "$@"; do
  while (( $(grep -c . /proc/self/mountinfo) < size )); do
    mkdir -p "$w/m/$have"; mount -t tmpfs -o size=64k m "$w/m/$have"; have=$((have + 1))
  done
  n=$(grep -c . /proc/self/mountinfo)
  for r in $(seq 1 "$rounds"); do
    for config in baseline mntrace; do
      pid= cpu=0
      [[ $config == mntrace ]] && start_mntrace
      s=$(date +%s%N); "$fixture" "${ops[@]}" > /dev/null; e=$(date +%s%N)
      [[ -n $pid ]] && stop_mntrace
      echo "$n $config $(awk -v s=$s -v e=$e 'BEGIN {print (e - s) / 1e9}') $cpu"
      echo "xtask: $n mounts, $config: $(( (e - s) / 1000000 )) ms" >&2
    done
  done
  if (( sustain > 0 )); then
    start_mntrace
    s=$(date +%s%N); "$fixture" "${steady[@]}" > /dev/null; e=$(date +%s%N)
    stop_mntrace
    lost=$(sed -n 's/^mntrace: LOST \([0-9]*\) .*/\1/p' "$work/trace.err")
    echo "$n sustained $(awk -v s=$s -v e=$e 'BEGIN {print (e - s) / 1e9}') $cpu $((sustain * 100)) ${lost:-0}"
    echo "xtask: $n mounts, steady churn for $(( (e - s) / 1000000000 )) s" >&2
  fi
done
"#;
