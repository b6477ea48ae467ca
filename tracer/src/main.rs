//! `mntrace`: wires the command line to the pipeline in the library.

mod cli;

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mntrace::{
    enrich::clock::BootClock,
    error::{exit, StartError},
    live,
    loader::{DeleteMode, TraceOptions, Tracer},
    sink::{console::Console, jsonl::JsonLines, Sink},
};
use tokio::signal::unix::{signal, Signal, SignalKind};

use cli::{Cli, Command, TraceArgs};

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
    };
    ExitCode::from(code as u8)
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

    /// Resolves on SIGINT, SIGTERM, or after `duration`.
    async fn wait(mut self, duration: Option<u64>) {
        let timer = async {
            match duration {
                Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = timer => {}
        }
    }
}

async fn trace(args: TraceArgs) -> i32 {
    let signals = match StopSignals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mntrace: cannot install signal handlers: {e}");
            return exit::FAILURE;
        }
    };
    let opts = TraceOptions {
        kinds: args.kinds.iter().flatten().copied().collect(),
        pids: args.pids.clone(),
        comm: args.comm.as_ref().map(|c| c.as_bytes().to_vec()),
        failed_only: args.failed_only,
        ring_size: args.ring_mib << 20,
        deletes: if args.deletes == "all" {
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
            Err(e) => {
                eprintln!("mntrace: cannot create {}: {e}", path.display());
                return exit::FAILURE;
            }
        },
        None => Box::new(BufWriter::new(io::stdout().lock())),
    };
    let clock = BootClock::now();
    let mut sink: Box<dyn Sink> = if args.json {
        Box::new(JsonLines::new(out, clock))
    } else {
        Box::new(Console::new(out, clock))
    };
    let mut tracer = match Tracer::start(&opts) {
        Ok(t) => t,
        Err(e) => return report_start_error(&e),
    };
    let names: Vec<&str> = tracer.kinds.iter().map(|k| k.syscall()).collect();
    eprintln!("mntrace: tracing {} (Ctrl-C to stop)", names.join(", "));
    let stop = signals.wait(args.duration);
    let r = live::run(
        &mut tracer,
        sink.as_mut(),
        stop,
        Duration::from_secs(args.loss_interval.max(1)),
    )
    .await;
    drop(tracer); // detach every probe before exiting
    match r {
        Ok(_) => exit::OK,
        Err(e) if is_broken_pipe(&e) => exit::OK,
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
