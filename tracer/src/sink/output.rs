//! Where the sinks write: whole records only.
//!
//! A sink hands over each record (an event line or object, an incident
//! block, a loss report, the summary) whole, through [`RecordWrite`]. Any
//! [`Write`] takes them as they come (stdout, stderr, a pipe: a failed write
//! is an error of the run, and a broken pipe ends it quietly, see main.rs).
//!
//! [`OutputFile`], the `-o FILE` writer, never leaves part of a record in a
//! regular file: when a write fails (a full disk, a quota, an I/O error) it
//! truncates the file back to the end of the last whole record, counts the
//! records it could not write, warns once on stderr naming the file and the
//! error, and goes on: the next records are tried again, so the output
//! resumes when space comes back. The run's summary says what was not
//! written ([`Unwritten`]). Other files (a FIFO, a character device) are
//! written like a pipe.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::stats::Unwritten;

/// What a record is, for the count of those not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    Event,
    Incident,
    Loss,
    Summary,
}

/// A destination of whole records.
pub trait RecordWrite {
    /// One whole record: one or more lines, each ending with a newline.
    fn record(&mut self, kind: Record, bytes: &[u8]) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
    /// Records that could not be written so far (after a flush, all of
    /// them), if any.
    fn unwritten(&self) -> Option<Unwritten> {
        None
    }
}

impl<W: Write> RecordWrite for W {
    fn record(&mut self, _: Record, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        Write::flush(self)
    }
}

/// Records are written out once this many bytes are waiting, and at each
/// flush.
const BUFFER: usize = 64 * 1024;

/// The `-o FILE` writer (see the module doc).
pub struct OutputFile {
    file: File,
    path: PathBuf,
    /// A regular file: written at known offsets and truncated back after a
    /// failed write. Otherwise written in sequence, errors returned.
    regular: bool,
    /// Whole records waiting to be written.
    buf: Vec<u8>,
    /// Each waiting record: its kind and where it ends in `buf`.
    ends: Vec<(Record, usize)>,
    /// End of the last whole record written: the file's length.
    len: u64,
    /// A failed write left part of a record after `len` and truncating it
    /// away failed too: retried before the next write.
    dirty: bool,
    lost: Unwritten,
}

impl OutputFile {
    /// Create (or truncate) `path`.
    pub fn create(path: &Path) -> io::Result<OutputFile> {
        let file = File::create(path)?;
        let regular = file.metadata()?.is_file();
        Ok(OutputFile {
            file,
            path: path.to_owned(),
            regular,
            buf: Vec::with_capacity(BUFFER),
            ends: Vec::new(),
            len: 0,
            dirty: false,
            lost: Unwritten {
                file: path.to_owned(),
                ..Default::default()
            },
        })
    }

    /// Write out the waiting records; on a failure, drop those not written
    /// whole (see the module doc).
    fn write_out(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if !self.regular {
            let r = self.file.write_all(&self.buf);
            self.buf.clear();
            self.ends.clear();
            return r.map_err(|e| {
                io::Error::new(e.kind(), format!("writing {}: {e}", self.path.display()))
            });
        }
        let mut done = 0;
        let mut failure = None;
        if self.dirty {
            match self.file.set_len(self.len) {
                Ok(()) => self.dirty = false,
                Err(e) => failure = Some(e),
            }
        }
        while failure.is_none() && done < self.buf.len() {
            match self
                .file
                .write_at(&self.buf[done..], self.len + done as u64)
            {
                Ok(0) => failure = Some(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => failure = Some(e),
            }
        }
        // The whole records among the bytes written stay.
        let kept = self
            .ends
            .iter()
            .take_while(|&&(_, end)| end <= done)
            .count();
        let kept_bytes = kept.checked_sub(1).map_or(0, |i| self.ends[i].1);
        self.len += kept_bytes as u64;
        if let Some(e) = failure {
            if done > kept_bytes && self.file.set_len(self.len).is_err() {
                self.dirty = true;
            }
            for &(kind, _) in &self.ends[kept..] {
                match kind {
                    Record::Event => self.lost.events += 1,
                    Record::Incident => self.lost.incidents += 1,
                    Record::Loss => self.lost.losses += 1,
                    Record::Summary => self.lost.summary += 1,
                }
            }
            if self.lost.error.is_empty() {
                eprintln!(
                    "mntrace: warning: cannot write to {}: {e}; records that cannot be written \
                     are dropped whole and counted (see the summary), writing goes on",
                    self.path.display()
                );
                self.lost.error = e.to_string();
            }
        }
        self.buf.clear();
        self.ends.clear();
        Ok(())
    }
}

impl RecordWrite for OutputFile {
    fn record(&mut self, kind: Record, bytes: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(bytes);
        self.ends.push((kind, self.buf.len()));
        if self.buf.len() >= BUFFER {
            self.write_out()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out()
    }

    fn unwritten(&self) -> Option<Unwritten> {
        let l = &self.lost;
        (l.records() + l.summary > 0).then(|| l.clone())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        let _ = self.write_out();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_records_go_out_at_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut out = OutputFile::create(&path).unwrap();
        out.record(Record::Event, b"a\n").unwrap();
        out.record(Record::Incident, b"b\nc\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        RecordWrite::flush(&mut out).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"a\nb\nc\n");
        assert_eq!(out.unwritten(), None);
        out.record(Record::Summary, b"d\n").unwrap();
        drop(out);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"a\nb\nc\nd\n",
            "written on drop"
        );
    }
}
