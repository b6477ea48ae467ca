//! `mntrace`: wires the command line to the pipeline in the library.

mod cli;

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mntrace::{
    config::{DeleteMode, RunConfig, TraceOptions},
    enrich::clock::BootClock,
    error::{exit, StartError},
    live,
    loader::Tracer,
    pipeline::Pipeline,
    sink::{console::Console, jsonl::JsonLines, output::OutputFile, Sink},
};
use tokio::signal::unix::{signal, Signal, SignalKind};

use cli::{Cli, Command, TraceArgs, WatchArgs};

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
        Command::Doctor(args) => doctor(args.json),
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
fn output(run: &RunConfig, default_out: Box<dyn Write>) -> Result<Box<dyn Sink>, String> {
    let clock = BootClock::now();
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
            for w in &t.warnings {
                eprintln!("mntrace: warning: {w}");
            }
            Ok(t)
        }
        Err(e) => Err(report_start_error(&e)),
    }
}

/// What `trace` and `watch` start from: signal handlers (first, so a signal
/// at any point detaches cleanly), the run's configuration, sink, pipeline
/// and attached probes.
struct Started {
    signals: StopSignals,
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
    let sink = output(&run, default_out).map_err(usage)?;
    let tracer = start(&run.kernel(), what)?;
    let pipeline = Pipeline::new(run.correlator(), run.display());
    Ok(Started {
        signals,
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

async fn watch(args: WatchArgs) -> i32 {
    // The command owns stdout; mntrace writes to stderr unless -o is given.
    let Started {
        signals,
        run,
        mut sink,
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
