//! `mntrace`: wires the command line to the pipeline in the library.

mod cli;

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mntrace::{
    correlate::{roots::Roots, CorrelatorConfig},
    enrich::clock::BootClock,
    error::{exit, StartError},
    live,
    loader::{DeleteMode, TraceOptions, Tracer},
    pipeline::Pipeline,
    sink::{console::Console, jsonl::JsonLines, Sink},
};
use tokio::signal::unix::{signal, Signal, SignalKind};

use cli::{Cli, Command, TraceArgs, WatchArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// SIGINT and SIGTERM handlers, installed before anything is attached so a
/// signal at any point leads to a clean detach.
struct StopSignals {
    int: Signal,
    term: Signal,
}

impl StopSignals {
    fn install() -> io::Result<StopSignals> {
        Ok(StopSignals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves on SIGINT, SIGTERM, or when `other` does.
    async fn wait_or<F: std::future::Future>(mut self, other: F) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = other => {}
        }
    }
}

async fn sleep_opt(duration: Option<u64>) {
    match duration {
        Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
        None => std::future::pending().await,
    }
}

/// Everything `trace` and `watch` share: options, sink, correlator.
struct Setup {
    opts: TraceOptions,
    sink: Box<dyn Sink>,
    correlator: CorrelatorConfig,
    /// Paths of interest (`--path`), unless every deletion was asked for.
    delete_paths: Vec<bytes::Bytes>,
}

fn setup(args: &TraceArgs, default_out: Box<dyn Write>) -> Result<Setup, String> {
    let opts = TraceOptions {
        kinds: args.kinds.iter().flatten().copied().collect(),
        pids: args.pids.clone(),
        comm: args.comm.as_ref().map(|c| c.as_bytes().to_vec()),
        failed_only: args.failed_only,
        ring_size: args.ring_mib << 20,
        deletes: if args.deletes == "all" || !args.paths.is_empty() {
            DeleteMode::All
        } else {
            DeleteMode::Race
        },
        busy_window: Duration::from_secs(args.busy_window),
        ..TraceOptions::default()
    };
    let out: Box<dyn Write> = match &args.output {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Box::new(BufWriter::new(f)),
            Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
        },
        None => default_out,
    };
    let clock = BootClock::now();
    let sink: Box<dyn Sink> = if args.json {
        Box::new(JsonLines::new(out, clock))
    } else {
        Box::new(Console::new(out, clock))
    };
    let mut roots = if args.no_default_roots {
        Roots::empty()
    } else {
        Roots::defaults()
    };
    for r in &args.roots {
        roots.add(r, "configured root")?;
    }
    let correlator = CorrelatorConfig {
        roots,
        busy_window_ns: Duration::from_secs(args.busy_window).as_nanos() as u64,
        ..CorrelatorConfig::default()
    };
    let delete_paths = if args.deletes == "all" {
        Vec::new()
    } else {
        args.paths
            .iter()
            .map(|p| bytes::Bytes::copy_from_slice(p.as_os_str().as_encoded_bytes()))
            .collect()
    };
    Ok(Setup {
        opts,
        sink,
        correlator,
        delete_paths,
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
/// at any point detaches cleanly), options and sink, attached probes.
struct Started {
    signals: StopSignals,
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
    let Setup {
        opts,
        sink,
        correlator,
        delete_paths,
    } = setup(args, default_out).map_err(|e| {
        eprintln!("mntrace: {e}");
        exit::USAGE
    })?;
    let tracer = start(&opts, what)?;
    let mut pipeline = Pipeline::new(correlator, show_events);
    pipeline.delete_paths = delete_paths;
    Ok(Started {
        signals,
        sink,
        pipeline,
        tracer,
    })
}

async fn trace(args: TraceArgs) -> i32 {
    let out = Box::new(BufWriter::new(io::stdout().lock()));
    let Started {
        signals,
        mut sink,
        mut pipeline,
        mut tracer,
    } = match prepare(&args, out, "tracing", true) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let stop = signals.wait_or(sleep_opt(args.duration));
    let interval = Duration::from_secs(args.loss_interval.max(1));
    let r = live::run(&mut tracer, &mut pipeline, sink.as_mut(), stop, interval).await;
    drop(tracer); // detach every probe before exiting
    finish_code(r, exit::OK)
}

async fn watch(args: WatchArgs) -> i32 {
    // The command owns stdout; mntrace writes to stderr unless -o is given.
    let Started {
        signals,
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
    let mut child = match tokio::process::Command::new(program).args(rest).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mntrace: cannot run {}: {e}", program.to_string_lossy());
            return exit::FAILURE;
        }
    };
    let mut status = None;
    let stop = signals.wait_or(async { status = child.wait().await.ok() });
    let interval = Duration::from_secs(args.common.loss_interval.max(1));
    let r = live::run(&mut tracer, &mut pipeline, sink.as_mut(), stop, interval).await;
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
