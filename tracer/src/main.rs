//! `mntrace`: wires the command line to the pipeline in the library.

mod cli;

use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mntrace::progress::Progress;
use mntrace::replay::stored_bytes;
use mntrace::{
    config::{DeleteMode, GuardMode, RunConfig, TraceOptions},
    enrich::clock::BootClock,
    error::{exit, StartError},
    floor::Floor,
    live,
    loader::Tracer,
    metrics_http,
    pipeline::Pipeline,
    sink::{
        console::Console,
        jsonl::JsonLines,
        metrics::{Metrics, MetricsSink},
        output::OutputFile,
        recorder::RecorderSink,
        Fanout, Sink,
    },
};
use tokio::signal::unix::{signal, Signal, SignalKind};

use cli::{Cli, Command, FloorArgs, QueryArgs, RecordArgs, TraceArgs, TriageArgs, WatchArgs};

/// `mntrace doctor`: the report on stdout; exit 0 when mntrace can run.
fn doctor(json: bool) -> i32 {
    let report = mntrace::doctor::run();
    let out = if json {
        format!("{}\n", report.json())
    } else {
        report.text()
    };
    let mut stdout = io::stdout().lock();
    if let Err(e) = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("mntrace: writing the report: {e}");
            return exit::FAILURE;
        }
    }
    report.exit_code()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Doctor(args) = &cli.command {
        return ExitCode::from(doctor(args.json) as u8);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mntrace: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE as u8);
        }
    };
    let code = match cli.command {
        Command::Trace(args) => rt.block_on(trace(args)),
        Command::Watch(args) => rt.block_on(watch(args)),
        Command::Record(args) => rt.block_on(record(args)),
        Command::Triage(args) => triage(args),
        Command::Query(args) => query(args),
        Command::Doctor(args) => doctor(args.json),
        Command::Floor(args) => rt.block_on(floor(args)),
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// SIGINT, SIGTERM and SIGHUP handlers, installed before anything is
/// attached so a signal at any point leads to a clean stop: final summary,
/// every probe detached, exit 0 (`watch`: the command's status). SIGHUP (the
/// terminal or the ssh session went away) is a request to stop like the
/// others, not a crash.
struct StopSignals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl StopSignals {
    fn install() -> io::Result<StopSignals> {
        Ok(StopSignals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Resolves on SIGINT, SIGTERM, SIGHUP, or when `other` does.
    async fn wait_or<F: std::future::Future>(mut self, other: F) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
            _ = other => {}
        }
    }
}

async fn sleep_opt(duration: Option<Duration>) {
    match duration {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Where `trace` and `watch` write: `-o FILE` (everything but loss lines
/// and warnings, summary included; whole records only, see
/// [`OutputFile`]), else their default (the summary then on stderr).
fn output(
    run: &RunConfig,
    default_out: Box<dyn Write>,
    clock: BootClock,
) -> Result<Box<dyn Sink>, String> {
    let Some(path) = &run.output else {
        return Ok(if run.json {
            Box::new(JsonLines::new(default_out, clock))
        } else {
            Box::new(Console::new(default_out, clock))
        });
    };
    let out =
        OutputFile::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    Ok(if run.json {
        Box::new(JsonLines::new(out, clock))
    } else {
        Box::new(Console::new(out, clock).summary_in_output())
    })
}

/// `--metrics ADDR`: listen (failing is a start-up error naming the address
/// and why, exit 2) and serve from a thread of its own; the address it
/// listens on.
fn serve_metrics(addr: SocketAddr) -> Result<(SocketAddr, Metrics), i32> {
    let listener = metrics_http::bind(addr).map_err(|e| {
        eprintln!("mntrace: --metrics: cannot listen on {addr}: {e}");
        exit::USAGE
    })?;
    let metrics = Metrics::new();
    let bound = metrics_http::spawn(listener, metrics.clone()).map_err(|e| {
        eprintln!("mntrace: --metrics: cannot serve on {addr}: {e}");
        exit::FAILURE
    })?;
    Ok((bound, metrics))
}

fn start(opts: &TraceOptions, what: &str) -> Result<Tracer, i32> {
    match Tracer::start(opts) {
        Ok(t) => {
            let names: Vec<&str> = t.kinds.iter().map(|k| k.syscall()).collect();
            let mode = match opts.deletes {
                _ if !t.kinds.iter().any(|k| k.is_delete()) => "",
                DeleteMode::All => " (all deletions)",
                DeleteMode::Race => " (deletions that can be part of the race)",
            };
            eprintln!("mntrace: {what} {}{mode}", names.join(", "));
            eprintln!("mntrace: {}", t.probes.line());
            if let Some(line) = guard_line(&t.guard) {
                eprintln!("mntrace: {line}");
                if opts.guard_crossings {
                    eprintln!(
                        "mntrace: guard: and a recursive delete at its first listing inside a \
                         bind of a directory from outside the tree it is deleting"
                    );
                }
                let has = |k: tracer_common::EventKind| t.kinds.contains(&k);
                if !has(tracer_common::EventKind::Umount) || !t.kinds.iter().any(|k| k.is_delete())
                {
                    eprintln!(
                        "mntrace: warning: the guard needs the umount and deletion probes: \
                         with these kinds (-k) it has nothing to act on"
                    );
                }
            }
            for w in &t.warnings {
                eprintln!("mntrace: warning: {w}");
            }
            Ok(t)
        }
        Err(e) => Err(report_start_error(&e)),
    }
}

/// The start-up line saying what the guard will do (none when it is off).
fn guard_line(g: &mntrace::loader::GuardChosen) -> Option<String> {
    let what = "a process that lists or deletes in a directory on a mount whose unmount it saw \
                fail with EBUSY (within the busy window)";
    let line = match g.mode {
        GuardMode::Off => return None,
        GuardMode::Report => format!("report: {what} is reported, not acted on"),
        GuardMode::Stop => format!("stop: {what} is stopped (SIGSTOP)"),
        GuardMode::Kill => format!("kill: {what} is killed (SIGKILL)"),
        GuardMode::Deny => format!(
            "deny: {what} has its deletions and renames there fail with EPERM (BPF LSM), for \
             the rest of the window; listings are not denied"
        ),
        GuardMode::Auto => return None, // decided at start, never left as is
    };
    Some(if g.why.is_empty() {
        format!("guard: {line}")
    } else {
        format!("guard: {line} ({})", g.why)
    })
}

/// What `trace` and `watch` start from: signal handlers (first, so a signal
/// at any point detaches cleanly), the run's configuration, sink, pipeline
/// and attached probes.
struct Started {
    signals: StopSignals,
    /// Boot time → wall time, for every sink of the run.
    clock: BootClock,
    /// The metrics, when served (`record` adds the recorder's).
    metrics: Option<Metrics>,
    run: RunConfig,
    sink: Box<dyn Sink>,
    pipeline: Pipeline,
    tracer: Tracer,
}

fn prepare(
    args: &TraceArgs,
    default_out: Box<dyn Write>,
    what: &str,
    show_events: bool,
) -> Result<Started, i32> {
    let Ok(signals) = StopSignals::install() else {
        eprintln!("mntrace: cannot install signal handlers");
        return Err(exit::FAILURE);
    };
    let usage = |e: String| {
        eprintln!("mntrace: {e}");
        exit::USAGE
    };
    let run = args.run_config(show_events).map_err(usage)?;
    // Before the output file is created: a failure leaves it untouched.
    let metrics = run.metrics.map(serve_metrics).transpose()?;
    let clock = BootClock::now();
    let mut sink = output(&run, default_out, clock).map_err(usage)?;
    let tracer = start(&run.kernel(), what)?;
    let mut handle = None;
    if let Some((addr, metrics)) = metrics {
        eprintln!("mntrace: serving metrics at http://{addr}/metrics");
        handle = Some(metrics.clone());
        sink = Box::new(Fanout::new(vec![sink, Box::new(MetricsSink::new(metrics))]));
    }
    let pipeline = Pipeline::new(run.correlator(), run.display());
    Ok(Started {
        signals,
        clock,
        metrics: handle,
        run,
        sink,
        pipeline,
        tracer,
    })
}

async fn trace(args: TraceArgs) -> i32 {
    let out = Box::new(BufWriter::new(io::stdout().lock()));
    let Started {
        signals,
        run,
        mut sink,
        clock: _,
        metrics: _,
        mut pipeline,
        mut tracer,
    } = match prepare(&args, out, "tracing", true) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let stop = signals.wait_or(sleep_opt(run.duration));
    let r = live::run(
        &mut tracer,
        &mut pipeline,
        sink.as_mut(),
        stop,
        run.loss_interval,
    )
    .await;
    drop(tracer); // detach every probe before exiting
    finish_code(r, exit::OK)
}

async fn record(args: RecordArgs) -> i32 {
    // Incidents on stderr; JSON Lines (for log shippers) on stdout.
    let out: Box<dyn Write> = if args.common.json {
        Box::new(BufWriter::new(io::stdout().lock()))
    } else {
        Box::new(io::stderr())
    };
    let Started {
        signals,
        clock,
        metrics,
        run,
        sink,
        mut pipeline,
        mut tracer,
    } = match prepare(&args.common, out, "recording", args.events) {
        Ok(s) => s,
        Err(code) => return code,
    };
    pipeline.record_facts();
    let recorder_metrics = metrics.as_ref().map(Metrics::recorder);
    let mut sink = match RecorderSink::open(
        args.writer_config(),
        run.settings_json(),
        clock,
        recorder_metrics,
        sink,
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mntrace: cannot record to {}: {e}", args.dir.display());
            return exit::FAILURE;
        }
    };
    let stop = signals.wait_or(sleep_opt(run.duration));
    let r = live::run(
        &mut tracer,
        &mut pipeline,
        &mut sink,
        stop,
        run.loss_interval,
    )
    .await;
    drop(tracer);
    finish_code(r, exit::OK)
}

/// `mntrace floor --hooks H` (hidden, for the benchmark): empty programs
/// attached to H until a stop signal, then detached as `trace` detaches.
async fn floor(args: FloorArgs) -> i32 {
    let Ok(signals) = StopSignals::install() else {
        eprintln!("mntrace: cannot install signal handlers");
        return exit::FAILURE;
    };
    let floor = match Floor::attach(args.hooks) {
        Ok(f) => f,
        Err(e) => return report_start_error(&e),
    };
    eprintln!(
        "mntrace floor: {} programs attached ({})",
        floor.attached(),
        args.hooks.name()
    );
    signals.wait_or(std::future::pending::<()>()).await;
    drop(floor); // detach every program before exiting
    exit::OK
}

/// A wall time (RFC 3339) as boot time of the recording.
fn boot_time(s: &str, clock: &BootClock, what: &str) -> Result<u64, String> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("--{what} {s:?}: not an RFC 3339 time ({e})"))?;
    let wall = t.timestamp_nanos_opt().ok_or("time out of range")? as i128;
    Ok((wall - clock.offset_ns()).max(0) as u64)
}

/// A recording's segments, its clock, and the time window asked for.
/// Also the recording's settings (from its first segment header).
fn open_recording(args: &cli::RecordingArgs) -> Result<Recording, i32> {
    use mntrace::replay::{first_header, header_clock, segment_paths, Window};
    let paths = segment_paths(&args.path).map_err(|e| {
        eprintln!(
            "mntrace: cannot read the recording {}: {e}",
            args.path.display()
        );
        exit::FAILURE
    })?;
    let header = first_header(&paths).unwrap_or_default();
    let clock = header_clock(&header).unwrap_or_else(BootClock::now);
    let at =
        |t: &Option<String>, what| t.as_deref().map(|s| boot_time(s, &clock, what)).transpose();
    let window = (|| -> Result<Window, String> {
        Ok(Window {
            since_ns: at(&args.since, "since")?,
            until_ns: at(&args.until, "until")?,
        })
    })()
    .map_err(|e| {
        eprintln!("mntrace: {e}");
        exit::USAGE
    })?;
    Ok(Recording {
        paths,
        clock,
        window,
        settings: header["settings"].clone(),
    })
}

/// A recording opened for `triage` or `query`.
struct Recording {
    paths: Vec<std::path::PathBuf>,
    clock: BootClock,
    window: mntrace::replay::Window,
    settings: serde_json::Value,
}

/// Say which segments did not end cleanly (what was before the damage was
/// `done`).
fn warn_damaged(replayed: &mntrace::replay::Replayed, done: &str) {
    for (p, end) in &replayed.damaged {
        eprintln!(
            "mntrace: warning: {}: {end}; the records before it were {done}",
            p.display()
        );
    }
}

fn triage(args: TriageArgs) -> i32 {
    use mntrace::replay::replay;
    let Recording {
        paths,
        clock,
        window,
        settings,
    } = match open_recording(&args.recording) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let run = RunConfig {
        show_events: args.events,
        ..RunConfig::from_settings(&settings)
    };
    let progress = Progress::new(stored_bytes(&paths));
    let out: Box<dyn Write> = Box::new(BufWriter::new(progress.suspending(io::stdout().lock())));
    let mut sink: Box<dyn Sink> = if args.json {
        Box::new(JsonLines::new(out, clock))
    } else {
        Box::new(Console::new(out, clock))
    };
    let mut pipeline = Pipeline::new(run.correlator(), run.display());
    let r = replay(&paths, window, &mut pipeline, sink.as_mut(), |done| {
        progress.set(done)
    });
    progress.finish();
    let replayed = match r {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mntrace: {e}");
            return exit::FAILURE;
        }
    };
    warn_damaged(&replayed, "replayed");
    let _ = sink.flush();
    if let Err(e) = sink.finish(&pipeline.stats) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("mntrace: {e}");
            return exit::FAILURE;
        }
    }
    eprintln!(
        "mntrace: replayed {} kernel records from {} segment{}",
        replayed.kernel_records,
        replayed.segments,
        if replayed.segments == 1 { "" } else { "s" }
    );
    exit::OK
}

fn query(args: QueryArgs) -> i32 {
    use mntrace::replay::{query, Query};
    let Recording {
        paths,
        clock,
        window,
        settings: _,
    } = match open_recording(&args.recording) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut paths_of_interest = Vec::new();
    for p in &args.paths {
        match std::path::absolute(p) {
            Ok(a) => paths_of_interest.push(bytes::Bytes::copy_from_slice(
                a.as_os_str().as_encoded_bytes(),
            )),
            Err(e) => {
                eprintln!("mntrace: --path {}: {e}", p.display());
                return exit::USAGE;
            }
        }
    }
    let q = Query {
        window,
        paths: paths_of_interest,
        pids: args.pids.clone(),
        comms: args
            .comms
            .iter()
            .map(|c| bytes::Bytes::copy_from_slice(&c.as_bytes()[..c.len().min(15)]))
            .collect(),
        mnt_ids: args.mnt_ids.clone(),
        kinds: args.kinds.iter().flatten().copied().collect(),
        ok: if args.failed {
            Some(false)
        } else if args.ok {
            Some(true)
        } else {
            None
        },
    };
    let progress = Progress::new(stored_bytes(&paths));
    let mut out = BufWriter::new(progress.suspending(io::stdout().lock()));
    let mut matched = 0u64;
    let r = query(
        &paths,
        &q,
        |done| progress.set(done),
        |ev, backing| {
            matched += 1;
            if args.json {
                let mut v = mntrace::sink::jsonl::EventJson::new(ev, &clock);
                v.backing_path = backing.map(|b| &b[..]);
                serde_json::to_writer(&mut out, &v)?;
                writeln!(out)
            } else {
                let mut line = mntrace::sink::console::line(ev, &clock);
                if let Some(b) = backing {
                    line += &format!("  backing={}", mntrace::sink::quote(b));
                }
                writeln!(out, "{line}")
            }
        },
    );
    let r = r.and_then(|r| out.flush().map(|()| r));
    progress.finish();
    let replayed = match r {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return exit::OK,
        Err(e) => {
            eprintln!("mntrace: {e}");
            return exit::FAILURE;
        }
    };
    warn_damaged(&replayed, "read");
    eprintln!(
        "mntrace: {matched} of {} recorded events matched",
        replayed.kernel_records
    );
    exit::OK
}

async fn watch(args: WatchArgs) -> i32 {
    // The command owns stdout; mntrace writes to stderr unless -o is given.
    let Started {
        signals,
        run,
        mut sink,
        clock: _,
        metrics: _,
        mut pipeline,
        mut tracer,
    } = match prepare(
        &args.common,
        Box::new(io::stderr()),
        "watching",
        args.events,
    ) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (program, rest) = match args.command.split_first() {
        Some(x) => x,
        None => return exit::USAGE,
    };
    let mut command = tokio::process::Command::new(program);
    command.args(rest);
    tie_to_mntrace(&mut command);
    // Spawned from the thread that runs `watch` (the main thread: the
    // runtime is current-thread and this future is `block_on`'s), which
    // lives as long as mntrace: the parent-death signal is tied to it.
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mntrace: cannot run {}: {e}", program.to_string_lossy());
            return exit::FAILURE;
        }
    };
    let mut status = None;
    let stop = signals.wait_or(async { status = child.wait().await.ok() });
    let r = live::run(
        &mut tracer,
        &mut pipeline,
        sink.as_mut(),
        stop,
        run.loss_interval,
    )
    .await;
    drop(tracer);
    let status = match status {
        Some(s) => s,
        // Stopped by a signal before the command ended: it got the same
        // signal (same process group); collect it.
        None => match child.wait().await {
            Ok(s) => s,
            Err(_) => return exit::FAILURE,
        },
    };
    let cmd_code = status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        128 + status.signal().unwrap_or(0)
    });
    let incidents = pipeline.stats.total_incidents();
    let code = if args.fail_on_incident && incidents > 0 {
        eprintln!(
            "mntrace: {incidents} incident(s): exiting with {}",
            exit::INCIDENT
        );
        exit::INCIDENT
    } else {
        cmd_code
    };
    finish_code(r, code)
}

/// The command of `watch` dies with mntrace: SIGTERM when mntrace dies,
/// even by SIGKILL (`PR_SET_PDEATHSIG`, set in the child before exec; it
/// exits at once if mntrace is already gone). And it gets none of mntrace's
/// ambient capabilities (a non-root mntrace given `CAP_BPF` etc. as ambient
/// capabilities would otherwise hand them on).
fn tie_to_mntrace(command: &mut tokio::process::Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe calls (prctl, getppid, _exit).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                // mntrace died before the death signal was set.
                libc::_exit(128 + libc::SIGTERM);
            }
            if libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn finish_code(r: anyhow::Result<()>, ok: i32) -> i32 {
    match r {
        Ok(()) => ok,
        Err(e) if is_broken_pipe(&e) => ok,
        Err(e) => {
            eprintln!("mntrace: {e:#}");
            exit::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn report_start_error(e: &StartError) -> i32 {
    eprintln!("mntrace: {e}");
    e.exit_code()
}
