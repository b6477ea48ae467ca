//! Runs a sequence of independent steps, keeps going after a failure, and
//! prints a one-line summary at the end.

use std::process::{Command, ExitCode};

use crate::cmd;

pub struct Steps {
    task: &'static str,
    results: Vec<(String, bool)>,
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
        let passed = match cmd::status(cmd) {
            Ok(status) => status.success(),
            Err(err) => {
                eprintln!("xtask: error: {err:#}");
                false
            }
        };
        if !passed {
            eprintln!("xtask: step `{name}` FAILED");
        }
        self.results.push((name.to_owned(), passed));
    }

    /// Runs an in-process step and records whether it passed (its error is
    /// printed).
    pub fn check(&mut self, name: &str, step: impl FnOnce() -> anyhow::Result<()>) {
        let passed = match step() {
            Ok(()) => true,
            Err(err) => {
                eprintln!("xtask: error: {err:#}");
                false
            }
        };
        if !passed {
            eprintln!("xtask: step `{name}` FAILED");
        }
        self.results.push((name.to_owned(), passed));
    }

    /// Appends another task's results (e.g. `lint` run as part of `test`).
    pub fn extend(&mut self, other: Steps) {
        self.results.extend(other.results);
    }

    pub fn passed(&self) -> bool {
        self.results.iter().all(|(_, ok)| *ok)
    }

    pub fn summary(&self) -> String {
        let list = |want: bool| {
            let names: Vec<&str> = self
                .results
                .iter()
                .filter(|(_, ok)| *ok == want)
                .map(|(name, _)| name.as_str())
                .collect();
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        };
        format!(
            "xtask {}: {} — passed: {}; failed: {}",
            self.task,
            if self.passed() { "OK" } else { "FAILED" },
            list(true),
            list(false)
        )
    }

    /// Prints the summary line and turns the results into the exit code.
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
    fn summary_lists_passed_and_failed() {
        let mut steps = Steps::new("test");
        steps.results.push(("cargo test".into(), true));
        steps.results.push(("clippy".into(), false));
        steps.results.push(("rustfmt".into(), true));
        assert!(!steps.passed());
        assert_eq!(
            steps.summary(),
            "xtask test: FAILED — passed: cargo test, rustfmt; failed: clippy"
        );
    }
}
