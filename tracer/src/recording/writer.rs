//! Writing a recording: segments in one directory, rotated by size and age,
//! the oldest removed beyond a total size, closed ones compressed with zstd
//! on a thread of their own.
//!
//! Flush policy: records are buffered and written with `fdatasync` at every
//! [`Writer::flush`] (the live loop calls it at least once a second) and
//! whenever a megabyte is buffered, so a crash or a power loss costs at most
//! the last second. A write that fails (a full disk) is undone: the file is
//! cut back to its last whole record, the records are counted as not
//! written, the error is kept for the summary, and the next flush tries
//! again, so recording resumes when space returns. Every start opens a new
//! segment; segments a crash left uncompressed are compressed then.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::format::{encode, file_header, RecordKind};

/// Where and how much to record.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    pub dir: PathBuf,
    /// A segment is closed once it holds this many bytes...
    pub segment_bytes: u64,
    /// ... or is this old.
    pub segment_age: Duration,
    /// Segments (compressed) beyond this total are removed, oldest first.
    pub max_total_bytes: u64,
}

/// Buffered bytes that trigger a write before the next flush.
const BUF_BYTES: usize = 1 << 20;
/// zstd level of closed segments.
const ZSTD_LEVEL: i32 = 3;

/// Totals for the summary and the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Bytes written (uncompressed, headers included).
    pub bytes: u64,
    /// Segments opened by this run.
    pub segments: u64,
    /// Records not written (full disk, I/O error).
    pub unwritten: u64,
    /// Failed writes.
    pub write_errors: u64,
    /// The last write error.
    pub last_error: Option<String>,
}

/// A segment's file name: its sequence number, so names sort in time order.
pub fn segment_name(seq: u64, compressed: bool) -> String {
    format!("seg-{seq:010}.mtr{}", if compressed { ".zst" } else { "" })
}

/// The sequence number of a segment file name.
pub fn segment_seq(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("seg-")?;
    let num = rest
        .strip_suffix(".mtr.zst")
        .or_else(|| rest.strip_suffix(".mtr"))?;
    (num.len() == 10 && num.bytes().all(|b| b.is_ascii_digit()))
        .then(|| num.parse().ok())
        .flatten()
}

/// The segments of `dir`, oldest first: (seq, path, compressed).
pub fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf, bool)>> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = segment_seq(name) {
            v.push((seq, e.path(), name.ends_with(".zst")));
        }
    }
    v.sort();
    Ok(v)
}

pub struct Writer {
    cfg: WriterConfig,
    /// The segment header payload, asked for at every new segment.
    header: Box<dyn FnMut() -> Vec<u8> + Send>,
    file: File,
    path: PathBuf,
    seq: u64,
    opened: Instant,
    /// Bytes of the open segment known to be whole records on disk.
    good: u64,
    buf: Vec<u8>,
    /// Records in `buf`.
    buffered: u64,
    stats: WriterStats,
    /// The error was reported on stderr (once per episode).
    warned: bool,
    compressor: Option<Compressor>,
}

impl Writer {
    /// Create `cfg.dir` (0700) if needed and open a new segment after the
    /// existing ones; uncompressed segments left by an earlier run are
    /// compressed in the background.
    pub fn open(
        cfg: WriterConfig,
        header: impl FnMut() -> Vec<u8> + Send + 'static,
    ) -> io::Result<Writer> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.dir)
            .map_err(|e| with_path(e, &cfg.dir))?;
        let existing = segments(&cfg.dir).map_err(|e| with_path(e, &cfg.dir))?;
        let seq = existing.last().map_or(1, |(s, _, _)| s + 1);
        let compressor = Compressor::spawn()?;
        for (_, path, compressed) in &existing {
            if !compressed {
                compressor.send(path.clone());
            }
        }
        let (file, path) = create_segment(&cfg.dir, seq)?;
        let mut w = Writer {
            cfg,
            header: Box::new(header),
            file,
            path,
            seq,
            opened: Instant::now(),
            good: 0,
            buf: Vec::with_capacity(BUF_BYTES),
            buffered: 0,
            stats: WriterStats::default(),
            warned: false,
            compressor: Some(compressor),
        };
        w.start_segment();
        w.flush();
        Ok(w)
    }

    fn start_segment(&mut self) {
        self.stats.segments += 1;
        self.buf.extend_from_slice(&file_header());
        let h = (self.header)();
        encode(&mut self.buf, RecordKind::Segment, &h);
        self.buffered += 1;
    }

    /// Add one record (written at the next flush, or now if the buffer is
    /// full).
    pub fn append(&mut self, kind: RecordKind, payload: &[u8]) {
        encode(&mut self.buf, kind, payload);
        self.buffered += 1;
        if self.buf.len() >= BUF_BYTES {
            self.write_out(false);
        }
    }

    /// Write what is buffered and make it durable; rotate when the segment
    /// is full or old.
    pub fn flush(&mut self) {
        self.write_out(true);
        if self.full() || self.opened.elapsed() >= self.cfg.segment_age {
            self.rotate();
        }
    }

    /// The open segment holds (with what is buffered) its size.
    pub fn full(&self) -> bool {
        self.good + self.buf.len() as u64 >= self.cfg.segment_bytes
    }

    fn write_out(&mut self, sync: bool) {
        if self.buf.is_empty() {
            return;
        }
        let r = self.file.write_all(&self.buf).and_then(|()| {
            if sync {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        match r {
            Ok(()) => {
                self.good += self.buf.len() as u64;
                self.stats.bytes += self.buf.len() as u64;
                if self.warned {
                    eprintln!("mntrace: recording to {} again", self.cfg.dir.display());
                    self.warned = false;
                }
            }
            Err(e) => {
                // Cut back to the last whole record; the next write starts
                // there.
                let _ = self.file.set_len(self.good);
                let _ = self.file.seek(SeekFrom::Start(self.good));
                self.stats.unwritten += self.buffered;
                self.stats.write_errors += 1;
                let msg = format!("{}: {e}", self.path.display());
                if !self.warned {
                    eprintln!(
                        "mntrace: warning: cannot record to {msg}; tracing goes on, \
                         records not written are counted"
                    );
                    self.warned = true;
                }
                self.stats.last_error = Some(msg);
                if self.good == 0 {
                    // Not even the segment header made it: the next write
                    // starts the segment again.
                    self.buf.clear();
                    self.buffered = 0;
                    self.start_segment();
                    self.stats.segments -= 1;
                    return;
                }
            }
        }
        self.buf.clear();
        self.buffered = 0;
    }

    /// Close the open segment (it is compressed in the background), open
    /// the next one, and remove the oldest beyond the total size.
    pub fn rotate(&mut self) {
        self.write_out(true);
        match create_segment(&self.cfg.dir, self.seq + 1) {
            Ok((file, path)) => {
                let old = std::mem::replace(&mut self.path, path);
                self.file = file;
                self.seq += 1;
                self.good = 0;
                self.opened = Instant::now();
                if let Some(c) = &self.compressor {
                    c.send(old);
                }
                self.start_segment();
                self.write_out(true);
            }
            Err(e) => {
                self.stats.write_errors += 1;
                self.stats.last_error = Some(e.to_string());
            }
        }
        self.retain();
    }

    /// Remove the oldest closed segments while the directory holds more
    /// than `max_total_bytes`.
    fn retain(&mut self) {
        let Ok(segs) = segments(&self.cfg.dir) else {
            return;
        };
        let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut total: u64 = segs.iter().map(|(_, p, _)| size(p)).sum();
        for (seq, path, compressed) in segs {
            if total <= self.cfg.max_total_bytes || seq >= self.seq {
                break;
            }
            // An uncompressed closed segment is being compressed: its
            // compressed twin replaces it shortly; leave both alone.
            if !compressed {
                continue;
            }
            let n = size(&path);
            if fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(n);
            }
        }
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// The open segment's path.
    pub fn current(&self) -> &Path {
        &self.path
    }

    /// Flush and close: the last segment is compressed before this returns.
    pub fn close(mut self) -> WriterStats {
        self.write_out(true);
        if let Some(c) = self.compressor.take() {
            c.send(self.path.clone());
            c.finish();
        }
        self.stats.clone()
    }
}

fn with_path(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

fn create_segment(dir: &Path, seq: u64) -> io::Result<(File, PathBuf)> {
    let path = dir.join(segment_name(seq, false));
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| with_path(e, &path))?;
    Ok((file, path))
}

/// Compresses closed segments on its own thread: `seg-N.mtr` becomes
/// `seg-N.mtr.zst` (written beside it, synced, renamed, then the plain one
/// removed), so a crash at any point leaves a readable segment.
struct Compressor {
    tx: mpsc::Sender<PathBuf>,
    handle: std::thread::JoinHandle<()>,
}

impl Compressor {
    fn spawn() -> io::Result<Compressor> {
        let (tx, rx) = mpsc::channel::<PathBuf>();
        let handle = std::thread::Builder::new()
            .name("mntrace-compress".into())
            .spawn(move || {
                for path in rx {
                    if let Err(e) = compress(&path) {
                        eprintln!(
                            "mntrace: warning: cannot compress {}: {e}; it stays uncompressed",
                            path.display()
                        );
                    }
                }
            })?;
        Ok(Compressor { tx, handle })
    }

    fn send(&self, path: PathBuf) {
        let _ = self.tx.send(path);
    }

    fn finish(self) {
        drop(self.tx);
        let _ = self.handle.join();
    }
}

/// Compress one closed segment in place.
pub fn compress(path: &Path) -> io::Result<()> {
    let data = fs::read(path)?;
    let mut zst = path.as_os_str().to_owned();
    zst.push(".zst");
    let zst = PathBuf::from(zst);
    let mut tmp = zst.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let out = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    let r = (|| {
        let mut enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
        // The size in the frame header: a reader allocates it once.
        enc.set_pledged_src_size(Some(data.len() as u64))?;
        enc.write_all(&data)?;
        let out = enc.finish()?;
        out.sync_all()?;
        fs::rename(&tmp, &zst)?;
        fs::remove_file(path)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::super::format::{End, Reader};
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn cfg(dir: &Path) -> WriterConfig {
        WriterConfig {
            dir: dir.join("rec"),
            segment_bytes: 4096,
            segment_age: Duration::from_secs(3600),
            max_total_bytes: 1 << 30,
        }
    }

    fn read_dir_records(dir: &Path) -> Vec<(u64, RecordKind, Vec<u8>)> {
        let mut out = Vec::new();
        for (seq, path, _) in segments(dir).unwrap() {
            let mut r = Reader::open(&path).unwrap();
            for rec in r.by_ref() {
                out.push((seq, rec.kind, rec.payload.to_vec()));
            }
            assert_eq!(r.end(), Some(&End::Clean), "{}", path.display());
        }
        out
    }

    #[test]
    fn rotation_compression_and_permissions() {
        let t = tempfile::tempdir().unwrap();
        let c = cfg(t.path());
        let mut n = 0u32;
        let mut w = Writer::open(c.clone(), move || {
            n += 1;
            format!("{{\"segment\":{n}}}").into_bytes()
        })
        .unwrap();
        for i in 0..100u32 {
            w.append(RecordKind::Kernel, &[i as u8; 200]);
            if i % 10 == 9 {
                w.flush();
            }
        }
        let stats = w.close();
        assert_eq!(stats.unwritten, 0);
        let segs = segments(&c.dir).unwrap();
        assert!(segs.len() >= 4, "rotated by size: {segs:?}");
        assert!(segs.iter().all(|(_, _, z)| *z), "all compressed: {segs:?}");
        assert_eq!(stats.segments, segs.len() as u64);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&c.dir), 0o700);
        for (_, p, _) in &segs {
            assert_eq!(mode(p), 0o600);
        }
        let recs = read_dir_records(&c.dir);
        // Every segment starts with its own header; the kernel records are
        // all there, in order.
        let mut last_seq = 0;
        let mut kernel = Vec::new();
        for (seq, kind, payload) in &recs {
            if *seq != last_seq {
                assert_eq!(*kind, RecordKind::Segment);
                last_seq = *seq;
            }
            if *kind == RecordKind::Kernel {
                kernel.push(payload[0]);
            }
        }
        assert_eq!(kernel, (0..100u32).map(|i| i as u8).collect::<Vec<_>>());
    }

    #[test]
    fn retention_removes_the_oldest_first_and_a_new_start_appends_a_new_segment() {
        let t = tempfile::tempdir().unwrap();
        let mut c = cfg(t.path());
        c.max_total_bytes = 3000;
        let mut w = Writer::open(c.clone(), || b"{}".to_vec()).unwrap();
        for i in 0..400u32 {
            // Incompressible payloads so sizes stay meaningful.
            let p: Vec<u8> = (0..200u32)
                .map(|j| (i * 7919 + j * 31) as u8 ^ (j >> 3) as u8)
                .collect();
            w.append(RecordKind::Kernel, &p);
            w.flush();
        }
        let first_run_last = w.close().segments;
        let segs = segments(&c.dir).unwrap();
        let total: u64 = segs
            .iter()
            .map(|(_, p, _)| fs::metadata(p).unwrap().len())
            .sum();
        assert!(first_run_last > 10);
        assert!(segs.len() < first_run_last as usize, "old segments removed");
        // Within the cap but for the last segment's rotation slack.
        assert!(total <= c.max_total_bytes + 4096 + 512, "{total}");
        let newest = segs.last().unwrap().0;
        assert_eq!(newest, first_run_last, "the newest kept");
        let w = Writer::open(c.clone(), || b"{}".to_vec()).unwrap();
        assert_eq!(
            segment_seq(w.current().file_name().unwrap().to_str().unwrap()),
            Some(newest + 1)
        );
        w.close();
    }

    #[test]
    fn a_segment_left_uncompressed_by_a_crash_is_compressed_at_the_next_start() {
        let t = tempfile::tempdir().unwrap();
        let c = cfg(t.path());
        let mut w = Writer::open(c.clone(), || b"{}".to_vec()).unwrap();
        w.append(RecordKind::Kernel, b"before the crash");
        w.flush();
        let crashed = w.current().to_owned();
        std::mem::forget(w); // like kill -9: nothing closes it
        let w = Writer::open(c.clone(), || b"{}".to_vec()).unwrap();
        w.close();
        assert!(!crashed.exists());
        let recs = read_dir_records(&c.dir);
        assert!(recs
            .iter()
            .any(|(_, k, p)| *k == RecordKind::Kernel && p == b"before the crash"));
    }

    #[test]
    fn names_and_sequence_numbers() {
        assert_eq!(segment_name(42, false), "seg-0000000042.mtr");
        assert_eq!(segment_seq("seg-0000000042.mtr.zst"), Some(42));
        assert_eq!(segment_seq("seg-0000000042.mtr"), Some(42));
        assert_eq!(segment_seq("seg-42.mtr"), None);
        assert_eq!(segment_seq("seg-0000000042.mtr.zst.tmp"), None);
        assert_eq!(segment_seq("notes.txt"), None);
    }
}
