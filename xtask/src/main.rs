//! Project tasks: `cargo xtask setup | run | test | lint | deploy-check |
//! bench | vm-test`.

mod bench;
mod cmd;
mod deploy;
mod lint;
mod overhead;
mod run;
mod setup;
mod summary;
mod test;
mod vm;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "mntrace project tasks"
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install or check the toolchain, bpf-linker, apt packages and tracefs
    /// (idempotent; fast when everything is present).
    Setup,
    /// Run setup, build the tracer (release) and exec `mntrace ARGS`
    /// (default ARGS: `trace`).
    Run {
        /// Arguments for mntrace (put them after `--`).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// Run setup, the workspace tests, then the lints; prints a summary.
    Test {
        /// Extra arguments for `cargo test` (after `--`; use a second `--`
        /// for the test harness, e.g. `-- -- --nocapture`).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// Run setup, then clippy (-D warnings) and `cargo fmt --check`.
    Lint,
    /// Run setup, build mntrace, then check deploy/ with systemd-analyze and
    /// kubernetes-validate (the `deploy files` step of `test`).
    DeployCheck,
    /// Run setup and a benchmark (root; not part of the tests): `replay`
    /// records a real workload, then times `mntrace triage` and `query`
    /// over it on one CPU; `mounts` times mount churn against the mount
    /// count, untraced and traced; `overhead` measures mntrace against
    /// bpftrace, auditd and fatrace.
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
    /// Build the tests, boot Debian's stock 6.1 and 6.12 cloud kernels
    /// under qemu (TCG) and run test binaries inside, per probe set;
    /// prints pass/fail per kernel, set and test (logs in target/vm/).
    VmTest(vm::VmTest),
}

#[derive(Subcommand)]
enum Bench {
    /// Replay speed: events per second of triage and query on one CPU.
    Replay {
        /// Files removed by the recorded workload (one event each).
        #[arg(long, default_value_t = 1_000_000)]
        files: u64,
        /// Rounds (each runs every command once, in a rotated order).
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
    /// Mount churn against the mount count: untraced vs mntrace.
    Mounts {
        /// Mounts in the namespace (each size in turn).
        #[arg(long, value_delimiter = ',', default_value = "100,1000,5000")]
        sizes: Vec<u64>,
        /// Bind + unmount pairs per run.
        #[arg(long, default_value_t = 2000)]
        pairs: u64,
        /// Rounds per size (each: untraced, then traced).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Then, per size, this many seconds of steady churn (100 pairs a
        /// second) under mntrace; 0: none.
        #[arg(long, default_value_t = 0)]
        sustain: u64,
    },
    /// Tracer overhead on deletion and mount workloads: mntrace in four
    /// configurations against bpftrace, auditd and fatrace (installed when
    /// missing), alternating with no tracer; report in
    /// target/bench/overhead.md.
    Overhead {
        /// Rounds (each runs every tracer once after a no-tracer run, in a
        /// rotated order); default: the script's, 5.
        #[arg(long)]
        reps: Option<usize>,
        /// One round at tiny sizes, then check the report (the `bench
        /// smoke` step of `cargo xtask test`); report in
        /// target/bench/overhead-smoke.md.
        #[arg(long, conflicts_with = "reps")]
        smoke: bool,
    },
}

fn main() -> ExitCode {
    match try_main(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn try_main(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Task::Setup => setup::setup().map(|()| ExitCode::SUCCESS),
        Task::Run { args } => run::run(&args).map(|()| ExitCode::SUCCESS),
        Task::Test { args } => test::test(&args),
        Task::Lint => {
            setup::setup()?;
            Ok(lint::lint().finish())
        }
        Task::Bench {
            what: Bench::Replay { files, reps },
        } => {
            setup::setup()?;
            bench::replay(files, reps).map(|()| ExitCode::SUCCESS)
        }
        Task::Bench {
            what:
                Bench::Mounts {
                    sizes,
                    pairs,
                    rounds,
                    sustain,
                },
        } => {
            setup::setup()?;
            bench::mounts(&sizes, pairs, rounds, sustain).map(|()| ExitCode::SUCCESS)
        }
        Task::Bench {
            what: Bench::Overhead { reps, smoke },
        } => {
            setup::setup()?;
            overhead::bench(reps, smoke).map(|()| ExitCode::SUCCESS)
        }
        Task::VmTest(opts) => vm::vm_test(opts),
        Task::DeployCheck => {
            setup::setup()?;
            let mut steps = summary::Steps::new("deploy-check");
            steps.run(
                "build mntrace",
                cmd::cargo().current_dir(cmd::workspace_root()).args([
                    "build",
                    "--package",
                    "tracer",
                    "--bin",
                    "mntrace",
                ]),
            );
            steps.check("deploy files", deploy::check);
            Ok(steps.finish())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_of(argv: &[&str]) -> Vec<String> {
        match Cli::try_parse_from(argv).unwrap().command {
            Task::Run { args } | Task::Test { args } => args,
            _ => panic!("not run/test"),
        }
    }

    #[test]
    fn trailing_args() {
        assert_eq!(args_of(&["x", "run"]), Vec::<String>::new());
        assert_eq!(
            args_of(&["x", "run", "--", "trace", "--json"]),
            ["trace", "--json"]
        );
        assert_eq!(args_of(&["x", "run", "trace", "-v"]), ["trace", "-v"]);
        assert_eq!(
            args_of(&["x", "test", "--", "kernel", "--", "--nocapture"]),
            ["kernel", "--", "--nocapture"]
        );
        assert_eq!(
            args_of(&["x", "test", "--", "--", "--nocapture"]),
            ["--", "--nocapture"]
        );
    }
}
