//! Progress of long replays (`triage`, `query`) on a terminal: a bar on
//! stderr, by bytes of the recording's files, with rate and time left.
//! Nothing is drawn when stderr is not a terminal (a pipe, a file, a log
//! shipper), so scripts see the same output as before.
//!
//! The output goes through [`Suspending`], which hides the bar while a
//! line is written, so a bar and incidents on the same terminal never mix.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the bar is redrawn at most.
const REFRESH_HZ: u8 = 10;

/// The progress of one replay.
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar over `total` bytes, drawn on stderr only when it is a
    /// terminal.
    pub fn new(total: u64) -> Progress {
        let drawn = io::stderr().is_terminal();
        let target = if drawn {
            ProgressDrawTarget::stderr_with_hz(REFRESH_HZ)
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        bar.set_style(
            ProgressStyle::with_template(
                "mntrace: replaying {wide_bar} {bytes}/{total_bytes} ({eta} left)",
            )
            .expect("a valid template"),
        );
        if drawn {
            // The rate and the time left move even within a slow segment.
            bar.enable_steady_tick(Duration::from_millis(500));
        }
        Progress { bar }
    }

    /// Bytes of the recording done so far.
    pub fn set(&self, done: u64) {
        self.bar.set_position(done);
    }

    /// Done: the bar is removed from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// A writer that hides the bar while it writes.
    pub fn suspending<W: Write>(&self, inner: W) -> Suspending<W> {
        Suspending {
            bar: self.bar.clone(),
            inner,
        }
    }
}

/// See [`Progress::suspending`]; put it under the output's buffer, so the
/// bar is hidden once per buffer written, not once per line.
pub struct Suspending<W> {
    bar: ProgressBar,
    inner: W,
}

impl<W: Write> Write for Suspending<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let inner = &mut self.inner;
        self.bar.suspend(|| inner.write(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        let inner = &mut self.inner;
        self.bar.suspend(|| inner.flush())
    }
}
