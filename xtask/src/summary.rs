//! Runs a sequence of independent steps, keeps going after a failure, and
//! prints a one-line summary at the end, after one line per failed step
//! saying why it failed (so the end of a long log says it).

use std::process::{Command, ExitCode};

use crate::cmd;

/// One step's outcome: `why` is `None` when it passed.
struct Outcome {
    name: String,
    why: Option<String>,
}

pub struct Steps {
    task: &'static str,
    results: Vec<Outcome>,
}

impl Steps {
    pub fn new(task: &'static str) -> Self {
        Steps {
            task,
            results: Vec::new(),
        }
    }

    /// Runs `cmd` (echoed, inherited stdio) and records whether it passed.
    /// A command that cannot even be started counts as failed.
    pub fn run(&mut self, name: &str, cmd: &mut Command) {
        let why = match cmd::status(cmd) {
            Ok(status) if status.success() => None,
            Ok(status) => Some(format!("{status} (its output is above)")),
            Err(err) => Some(format!("{err:#}")),
        };
        self.record(name, why);
    }

    /// Runs an in-process step and records whether it passed (its error is
    /// printed).
    pub fn check(&mut self, name: &str, step: impl FnOnce() -> anyhow::Result<()>) {
        let why = step().err().map(|err| format!("{err:#}"));
        self.record(name, why);
    }

    fn record(&mut self, name: &str, why: Option<String>) {
        if let Some(why) = &why {
            eprintln!("xtask: step `{name}` FAILED: {why}");
        }
        self.results.push(Outcome {
            name: name.to_owned(),
            why,
        });
    }

    /// Appends another task's results (e.g. `lint` run as part of `test`).
    pub fn extend(&mut self, other: Steps) {
        self.results.extend(other.results);
    }

    pub fn passed(&self) -> bool {
        self.results.iter().all(|o| o.why.is_none())
    }

    pub fn summary(&self) -> String {
        let list = |want: bool| {
            let names: Vec<&str> = self
                .results
                .iter()
                .filter(|o| o.why.is_none() == want)
                .map(|o| o.name.as_str())
                .collect();
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        };
        let mut s = String::new();
        for o in &self.results {
            if let Some(why) = &o.why {
                s += &format!("xtask {}: `{}` failed: {why}\n", self.task, o.name);
            }
        }
        s += &format!(
            "xtask {}: {} — passed: {}; failed: {}",
            self.task,
            if self.passed() { "OK" } else { "FAILED" },
            list(true),
            list(false)
        );
        s
    }

    /// Prints the summary and turns the results into the exit code.
    pub fn finish(self) -> ExitCode {
        println!("{}", self.summary());
        if self.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_says_why_each_failed_step_failed_then_lists_them() {
        let mut steps = Steps::new("test");
        steps.check("cargo test", || Ok(()));
        steps.check("vm smoke", || {
            anyhow::bail!("6.12 kernel uring: a_race (rc=101)")
        });
        steps.run("clippy", &mut Command::new("false"));
        steps.check("rustfmt", || Ok(()));
        assert!(!steps.passed());
        assert_eq!(
            steps.summary(),
            "xtask test: `vm smoke` failed: 6.12 kernel uring: a_race (rc=101)\n\
             xtask test: `clippy` failed: exit status: 1 (its output is above)\n\
             xtask test: FAILED — passed: cargo test, rustfmt; failed: vm smoke, clippy"
        );
    }
}
