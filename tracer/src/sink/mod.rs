//! Sinks: where events go (console lines, JSON Lines, metrics), and
//! [`Fanout`] to feed several. Shared helpers render byte strings exactly.

use std::fmt;
use std::io;

use crate::correlate::Incident;
use crate::drops::Drops;
use crate::model::Event;
use crate::stats::{Stats, Unwritten};

pub mod console;
pub mod jsonl;
pub mod metrics;
pub mod output;
pub mod recorder;

pub trait Sink {
    /// A kernel record exactly as the ring buffer delivered it, before it
    /// is decoded (the recorder keeps these; others ignore them).
    fn raw(&mut self, _record: &[u8]) {}
    /// What the correlator was given besides the kernel records (the
    /// recorder keeps these so a replay gives the same incidents).
    fn fact(&mut self, _fact: &crate::enrich::facts::Fact) {}
    /// An event to show (every event in `trace`, none in `watch` without
    /// `--events`; see [`crate::config::Display`]). Counting sinks count
    /// from [`Sink::totals`] instead, which covers every event.
    fn event(&mut self, ev: &Event) -> io::Result<()>;
    fn incident(&mut self, inc: &Incident) -> io::Result<()>;
    /// Kernel-side drops grew: `delta` since the last report, `total` so far.
    fn losses(&mut self, delta: &Drops, total: &Drops) -> io::Result<()>;
    /// End of the run: the summary. `stats.unwritten` is what
    /// [`Sink::unwritten`] said after the last flush.
    fn finish(&mut self, stats: &Stats) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
    /// Records the output could not take (see [`output::OutputFile`]).
    fn unwritten(&self) -> Option<Unwritten> {
        None
    }
    /// The run's totals so far, after each chunk of events and each quiet
    /// tick (`stats.unwritten` as of the last flush): every event received,
    /// shown or not, and decode errors. For counting sinks; others ignore it.
    fn totals(&mut self, _stats: &Stats) {}
}

/// Several sinks fed the same run, in order (the output, then the metrics).
/// What the output could not write is the first sink's that says.
pub struct Fanout(Vec<Box<dyn Sink>>);

impl Fanout {
    pub fn new(sinks: Vec<Box<dyn Sink>>) -> Fanout {
        Fanout(sinks)
    }
}

impl Sink for Fanout {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.event(ev))
    }
    fn incident(&mut self, inc: &Incident) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.incident(inc))
    }
    fn losses(&mut self, delta: &Drops, total: &Drops) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.losses(delta, total))
    }
    fn finish(&mut self, stats: &Stats) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.finish(stats))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.flush())
    }
    fn unwritten(&self) -> Option<Unwritten> {
        self.0.iter().find_map(|s| s.unwritten())
    }
    fn totals(&mut self, stats: &Stats) {
        for s in &mut self.0 {
            s.totals(stats);
        }
    }
}

/// After the summary went to `out`: when `out` (an output file) missed
/// records, say so on stderr too; when it missed the summary itself, the
/// summary goes there.
fn report_unwritten(out: Option<Unwritten>, stats: &Stats) {
    match out {
        Some(u) if u.summary > 0 => eprintln!(
            "mntrace: the summary could not be written to {}: {}; here it is:\n{}",
            u.file.display(),
            u.error,
            console::summary(stats)
        ),
        Some(u) => eprintln!("{}", console::unwritten_line(&u)),
        None => {}
    }
}

/// A byte string as a C-like quoted literal: printable UTF-8 as is, `\"`,
/// `\\`, `\n`, `\t`, `\r`, and every other byte as `\xNN`. Reversible.
pub fn quote(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    let _ = fmt::Write::write_fmt(&mut s, format_args!("{}", Quoted(bytes)));
    s
}

/// [`quote`] as it is written into a line (`format!("{}", Quoted(b))`),
/// without a string of its own.
pub struct Quoted<'a>(pub &'a [u8]);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        f.write_char('"')?;
        for chunk in self.0.utf8_chunks() {
            let valid = chunk.valid();
            // Runs of characters written as they are go out in one piece.
            let mut plain = 0;
            for (i, c) in valid.char_indices() {
                let escape = match c {
                    '"' => "\\\"",
                    '\\' => "\\\\",
                    '\n' => "\\n",
                    '\t' => "\\t",
                    '\r' => "\\r",
                    c if c.is_control() => "",
                    _ => continue,
                };
                f.write_str(&valid[plain..i])?;
                plain = i + c.len_utf8();
                if escape.is_empty() {
                    let mut b = [0u8; 4];
                    for byte in c.encode_utf8(&mut b).bytes() {
                        write!(f, "\\x{byte:02x}")?;
                    }
                } else {
                    f.write_str(escape)?;
                }
            }
            f.write_str(&valid[plain..])?;
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        f.write_char('"')
    }
}

/// Lower-case hex of all bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_is_exact_and_reversible_in_form() {
        assert_eq!(quote(b"a b"), r#""a b""#);
        assert_eq!(quote(b"a\nb\\c\"d"), r#""a\nb\\c\"d""#);
        assert_eq!(quote(b"\xff\xfe/\xc3\xa9"), r#""\xff\xfe/é""#);
        assert_eq!(quote(b"\x01"), r#""\x01""#);
        assert_eq!(hex(b"\x00\xff"), "00ff");
        assert_eq!(quote(b""), r#""""#);
        assert_eq!(
            quote(b"\x7f\xc2\x85z"),
            r#""\x7f\xc2\x85z""#,
            "control characters"
        );
        assert_eq!(quote("\t\r".as_bytes()), r#""\t\r""#);
        let b = b"a\"b\x01\xffc\\";
        assert_eq!(format!("{}", Quoted(b)), quote(b));
    }
}
