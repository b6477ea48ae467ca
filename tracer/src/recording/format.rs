//! The recording format: segment files of framed records.
//!
//! ```text
//! segment  = MAGIC (8 bytes) | version u32 | reserved u32 | record*
//! record   = len u32 | kind u16 | flags u16 | crc u32 | payload (len bytes)
//! ```
//!
//! Little endian. `crc` is the CRC-32 (IEEE) of `kind`, `flags` and the
//! payload, so a record cut by a crash (a torn tail) or damaged on disk is
//! recognised and never decoded. The first record of a segment is always a
//! [`RecordKind::Segment`] header, so every segment stands alone. A closed
//! segment is compressed whole with zstd (`.mtr.zst`); the open one is plain
//! (`.mtr`), appended to and flushed at least once a second.
//!
//! Reading never panics and never trusts a length: [`Reader`] yields
//! records until the end, then says how the segment ended ([`End`]).

use std::io::{self, Read};

use bytes::Bytes;

/// First bytes of every segment.
pub const MAGIC: &[u8; 8] = b"MNTRACE\0";
/// Format version; readers refuse a newer one.
pub const VERSION: u32 = 1;
/// File header: magic, version, reserved.
pub const FILE_HEADER_LEN: usize = 16;
/// Record header: len, kind, flags, crc.
pub const RECORD_HEADER_LEN: usize = 12;
/// Largest payload a reader accepts (a segment header with the mount tables
/// of a large node is the largest record).
pub const PAYLOAD_MAX: usize = 64 << 20;

/// Largest decompressed segment a reader allocates at once (a larger size
/// in a damaged frame header is not believed).
const SEGMENT_MAX: u64 = 4 << 30;

/// What a record holds. Stable ids: recordings store them.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// JSON: what the segment needs to stand alone (host, kernel, boot id,
    /// boot-time ↔ wall-clock reference, mount tables, the run's settings).
    Segment = 1,
    /// A kernel record exactly as the ring buffer delivered it.
    Kernel = 2,
    /// JSON: an incident as it closed (the JSON Lines `incident` object).
    Incident = 3,
    /// JSON: kernel-side drops that grew, with counts and time span.
    Loss = 4,
    /// JSON: records the recorder itself could not write (full disk).
    Unwritten = 5,
    /// JSON: an input of the correlator besides the kernel records
    /// ([`crate::enrich::facts::Fact`]): enrichment, a tick, holders.
    Fact = 6,
}

impl RecordKind {
    pub fn from_u16(v: u16) -> Option<RecordKind> {
        Some(match v {
            1 => RecordKind::Segment,
            2 => RecordKind::Kernel,
            3 => RecordKind::Incident,
            4 => RecordKind::Loss,
            5 => RecordKind::Unwritten,
            6 => RecordKind::Fact,
            _ => return None,
        })
    }
}

/// The file header of a new segment.
pub fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

fn crc(kind: u16, flags: u16, payload: &[u8]) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(&kind.to_le_bytes());
    c.update(&flags.to_le_bytes());
    c.update(payload);
    c.finalize()
}

/// Append one framed record to `out`.
pub fn encode(out: &mut Vec<u8>, kind: RecordKind, payload: &[u8]) {
    let k = kind as u16;
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&k.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&crc(k, 0, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// One record read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: RecordKind,
    pub payload: Bytes,
    /// Offset of the record in the (uncompressed) segment.
    pub offset: u64,
}

/// How a segment ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// At a record boundary.
    Clean,
    /// The last record is incomplete (a crash while writing it): `bytes`
    /// after `offset` were skipped.
    Torn { offset: u64, bytes: u64 },
    /// A record failed its checksum or is impossible (length, kind): the
    /// rest of the segment from `offset` (`bytes`) was skipped.
    Corrupt {
        offset: u64,
        bytes: u64,
        why: String,
    },
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Clean => write!(f, "ends cleanly"),
            End::Torn { offset, bytes } => write!(
                f,
                "its last record, at byte {offset}, is incomplete (a crash while writing it); \
                 {bytes} bytes skipped"
            ),
            End::Corrupt { offset, bytes, why } => write!(
                f,
                "damaged at byte {offset} ({why}); the {bytes} bytes from there skipped"
            ),
        }
    }
}

/// Why a segment cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("not an mntrace recording (bad magic)")]
    Magic,
    #[error("recording format version {0} is newer than this mntrace reads ({VERSION})")]
    Version(u32),
    #[error("shorter than a segment header ({0} bytes)")]
    Short(usize),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Records of one segment's bytes (decompressed), in order.
pub struct Reader {
    data: Bytes,
    pos: usize,
    end: Option<End>,
}

impl Reader {
    /// Check the file header of `data`.
    pub fn new(data: Bytes) -> Result<Reader, FormatError> {
        if data.len() < FILE_HEADER_LEN {
            // An empty or cut header: the segment was just created.
            if !MAGIC.starts_with(&data[..data.len().min(8)]) {
                return Err(FormatError::Magic);
            }
            return Err(FormatError::Short(data.len()));
        }
        if &data[..8] != MAGIC {
            return Err(FormatError::Magic);
        }
        let version = u32::from_le_bytes(data[8..12].try_into().expect("4 bytes"));
        if version > VERSION {
            return Err(FormatError::Version(version));
        }
        Ok(Reader {
            data,
            pos: FILE_HEADER_LEN,
            end: None,
        })
    }

    /// Read a whole segment file, decompressing `.zst` ones.
    pub fn open(path: &std::path::Path) -> Result<Reader, FormatError> {
        Reader::new(load(path)?)
    }

    /// How the segment ended (after the iterator returned `None`).
    pub fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    fn stop<T>(&mut self, end: End) -> Option<T> {
        self.pos = self.data.len();
        self.end = Some(end);
        None
    }
}

/// A segment file's bytes, decompressed when it is `.zst`.
pub fn load(path: &std::path::Path) -> Result<Bytes, FormatError> {
    load_into(path, Vec::new())
}

/// [`load`] into `buf` (its memory reused: see [`reclaim`]).
pub fn load_into(path: &std::path::Path, mut buf: Vec<u8>) -> Result<Bytes, FormatError> {
    buf.clear();
    if path.extension().is_none_or(|e| e != "zst") {
        std::fs::File::open(path)?.read_to_end(&mut buf)?;
        return Ok(Bytes::from(buf));
    }
    let raw = std::fs::read(path)?;
    // Segments say their size in the frame header: decompressed at once
    // into a buffer of that size. Without it (or when that fails) streamed.
    let size = zstd::zstd_safe::get_frame_content_size(&raw).ok().flatten();
    if let Some(n) = size.filter(|&n| n <= SEGMENT_MAX) {
        buf.reserve_exact(n as usize);
        let whole = zstd::bulk::Decompressor::new()
            .and_then(|mut d| d.decompress_to_buffer(&raw[..], &mut buf));
        if whole.is_ok() {
            return Ok(Bytes::from(buf));
        }
        buf.clear();
    }
    buf.reserve(raw.len() * 4);
    // A damaged compressed segment yields what decompressed before the
    // damage; the reader then reports the cut record as torn.
    let mut dec = zstd::stream::read::Decoder::new(&raw[..])?;
    if let Err(e) = dec.read_to_end(&mut buf) {
        if buf.len() < FILE_HEADER_LEN {
            return Err(FormatError::Io(e));
        }
    }
    Ok(Bytes::from(buf))
}

/// A segment file's first record (its header, in a well-formed segment),
/// reading and decompressing only as much of the file as it takes.
pub fn first_record(path: &std::path::Path) -> Result<Option<Record>, FormatError> {
    let file = std::fs::File::open(path)?;
    let mut src: Box<dyn Read> = if path.extension().is_some_and(|e| e == "zst") {
        Box::new(zstd::stream::read::Decoder::new(file)?)
    } else {
        Box::new(io::BufReader::new(file))
    };
    let mut head = vec![0u8; FILE_HEADER_LEN + RECORD_HEADER_LEN];
    let n = read_up_to(&mut src, &mut head)?;
    head.truncate(n);
    if n == FILE_HEADER_LEN + RECORD_HEADER_LEN {
        let len = u32::from_le_bytes(head[FILE_HEADER_LEN..][..4].try_into().expect("4 bytes"));
        let len = (len as usize).min(PAYLOAD_MAX);
        head.resize(n + len, 0);
        let got = read_up_to(&mut src, &mut head[n..])?;
        head.truncate(n + got);
    }
    Ok(Reader::new(Bytes::from(head))?.next())
}

/// Read until `buf` is full or the end (or a decompression error: what
/// came before it is kept); how much was read.
fn read_up_to(src: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) if n > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The memory of a segment's bytes back, once nothing refers to them any
/// more (else an empty buffer), to load the next segment into: a replay
/// then faults in one segment's worth of memory, not every segment's.
pub fn reclaim(data: Bytes) -> Vec<u8> {
    data.try_into_mut().map(Vec::from).unwrap_or_default()
}

impl Iterator for Reader {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        let (kind, payload) = self.next_in_place()?;
        Some(Record {
            kind,
            offset: (payload.start - RECORD_HEADER_LEN) as u64,
            payload: self.data.slice(payload),
        })
    }
}

impl Reader {
    /// The segment's bytes (what [`Reader::next_in_place`] ranges are in).
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The next record, checked like [`Iterator::next`]'s, as its kind and
    /// where its payload is in [`Reader::data`] (no reference taken).
    pub fn next_in_place(&mut self) -> Option<(RecordKind, std::ops::Range<usize>)> {
        if self.end.is_some() {
            return None;
        }
        let rest = self.data.len() - self.pos;
        let offset = self.pos as u64;
        if rest == 0 {
            return self.stop(End::Clean);
        }
        if rest < RECORD_HEADER_LEN {
            return self.stop(End::Torn {
                offset,
                bytes: rest as u64,
            });
        }
        let h = &self.data[self.pos..self.pos + RECORD_HEADER_LEN];
        let len = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_le_bytes(h[4..6].try_into().expect("2 bytes"));
        let flags = u16::from_le_bytes(h[6..8].try_into().expect("2 bytes"));
        let sum = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
        if len > PAYLOAD_MAX {
            return self.stop(End::Corrupt {
                offset,
                bytes: rest as u64,
                why: format!("record length {len} is impossible"),
            });
        }
        if rest < RECORD_HEADER_LEN + len {
            return self.stop(End::Torn {
                offset,
                bytes: rest as u64,
            });
        }
        let start = self.pos + RECORD_HEADER_LEN;
        let payload = start..start + len;
        if crc(kind, flags, &self.data[payload.clone()]) != sum {
            // The last record of the file cut and padded by the file system
            // (power loss) reads like this too: a torn tail when nothing
            // follows it.
            let end = if start + len == self.data.len() {
                End::Torn {
                    offset,
                    bytes: rest as u64,
                }
            } else {
                End::Corrupt {
                    offset,
                    bytes: rest as u64,
                    why: "checksum mismatch".into(),
                }
            };
            return self.stop(end);
        }
        let Some(kind) = RecordKind::from_u16(kind) else {
            return self.stop(End::Corrupt {
                offset,
                bytes: rest as u64,
                why: format!("unknown record kind {kind}"),
            });
        };
        self.pos = start + len;
        Some((kind, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[(RecordKind, &[u8])]) -> Vec<u8> {
        let mut v = file_header().to_vec();
        for (k, p) in records {
            encode(&mut v, *k, p);
        }
        v
    }

    fn read_all(data: Vec<u8>) -> (Vec<Record>, End) {
        let mut r = Reader::new(Bytes::from(data)).expect("header");
        let recs: Vec<Record> = r.by_ref().collect();
        (recs, r.end().cloned().expect("an end"))
    }

    #[test]
    fn records_round_trip() {
        let data = segment(&[
            (RecordKind::Segment, b"{}"),
            (RecordKind::Kernel, b"\x00\xff raw"),
            (RecordKind::Kernel, b""),
            (RecordKind::Incident, b"{\"id\":1}"),
        ]);
        let (recs, end) = read_all(data);
        assert_eq!(end, End::Clean);
        let kinds: Vec<_> = recs.iter().map(|r| (r.kind, &r.payload[..])).collect();
        assert_eq!(
            kinds,
            vec![
                (RecordKind::Segment, &b"{}"[..]),
                (RecordKind::Kernel, b"\x00\xff raw"),
                (RecordKind::Kernel, b""),
                (RecordKind::Incident, b"{\"id\":1}"),
            ]
        );
        assert_eq!(recs[0].offset, FILE_HEADER_LEN as u64);
    }

    #[test]
    fn a_torn_last_record_is_detected_at_every_byte_offset() {
        let whole = segment(&[
            (RecordKind::Segment, b"{\"host\":\"n1\"}"),
            (RecordKind::Kernel, b"first kernel record"),
            (RecordKind::Kernel, b"the last record, cut anywhere"),
        ]);
        let last = whole.len() - (RECORD_HEADER_LEN + 29);
        for cut in last..whole.len() {
            let (recs, end) = read_all(whole[..cut].to_vec());
            assert_eq!(recs.len(), 2, "cut at {cut}");
            let want = if cut == last {
                End::Clean
            } else {
                End::Torn {
                    offset: last as u64,
                    bytes: (cut - last) as u64,
                }
            };
            assert_eq!(end, want, "cut at {cut}");
        }
        // A cut record padded with zeros (power loss on some file systems).
        let mut padded = whole[..whole.len() - 5].to_vec();
        padded.extend_from_slice(&[0; 5]);
        let (recs, end) = read_all(padded);
        assert_eq!(recs.len(), 2);
        assert!(matches!(end, End::Torn { .. }), "{end:?}");
    }

    #[test]
    fn damage_in_the_middle_is_corrupt_and_stops_the_segment() {
        let mut data = segment(&[
            (RecordKind::Segment, b"{}"),
            (RecordKind::Kernel, b"damaged"),
            (RecordKind::Kernel, b"after"),
        ]);
        let at = FILE_HEADER_LEN + RECORD_HEADER_LEN + 2 + RECORD_HEADER_LEN + 1;
        data[at] ^= 0xff;
        let (recs, end) = read_all(data);
        assert_eq!(recs.len(), 1);
        assert!(
            matches!(&end, End::Corrupt { why, .. } if why == "checksum mismatch"),
            "{end:?}"
        );
    }

    #[test]
    fn headers_are_checked() {
        assert!(matches!(
            Reader::new(Bytes::from_static(b"NOTMNTRC\x01\0\0\0\0\0\0\0")),
            Err(FormatError::Magic)
        ));
        let mut v = file_header().to_vec();
        v[8] = 9;
        assert!(matches!(
            Reader::new(Bytes::from(v)),
            Err(FormatError::Version(9))
        ));
        assert!(matches!(
            Reader::new(Bytes::from_static(b"MNTR")),
            Err(FormatError::Short(4))
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic generator: every reader path, no panic.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let base = segment(&[
            (RecordKind::Segment, b"{}"),
            (RecordKind::Kernel, &[7u8; 100]),
            (RecordKind::Loss, b"{}"),
        ]);
        for _ in 0..20_000 {
            let mut v = base.clone();
            let n = (next() % 4) as usize + 1;
            for _ in 0..n {
                let i = (next() as usize) % v.len();
                v[i] = next() as u8;
            }
            let cut = (next() as usize) % (v.len() + 1);
            v.truncate(cut);
            if let Ok(r) = Reader::new(Bytes::from(v)) {
                for rec in r {
                    assert!(rec.payload.len() <= PAYLOAD_MAX);
                }
            }
            let len = (next() % 64) as usize;
            let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = Reader::new(Bytes::from(junk)).map(|r| r.count());
        }
    }

    #[test]
    fn compressed_segments_load_with_or_without_their_size_and_damaged() {
        use std::io::Write;
        // Several zstd blocks (128 KiB each) of data that does not shrink.
        let mut x: u32 = 1;
        let noise: Vec<u8> = (0..600_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as u8
            })
            .collect();
        let plain = segment(&[
            (RecordKind::Segment, b"{}"),
            (RecordKind::Kernel, &noise[..300_000]),
            (RecordKind::Kernel, &noise[300_000..]),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pledged: bool| {
            let path = dir.path().join(name);
            let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            if pledged {
                enc.set_pledged_src_size(Some(plain.len() as u64)).unwrap();
            }
            enc.write_all(&plain).unwrap();
            let z = enc.finish().unwrap();
            std::fs::write(&path, &z).unwrap();
            (path, z)
        };
        let (sized, z) = write("a.mtr.zst", true);
        let (unsized_, _) = write("b.mtr.zst", false);
        assert!(zstd::zstd_safe::get_frame_content_size(&z)
            .unwrap()
            .is_some());
        assert_eq!(load(&sized).unwrap(), plain);
        assert_eq!(load(&unsized_).unwrap(), plain);
        // Into a reclaimed buffer: its memory is reused.
        let first = load(&sized).unwrap();
        let ptr = first.as_ptr();
        let buf = reclaim(first);
        assert!(buf.capacity() >= plain.len());
        let again = load_into(&sized, buf).unwrap();
        assert_eq!((again.as_ptr(), &again[..]), (ptr, &plain[..]));
        // Still referred to: nothing reclaimed.
        let held = again.slice(0..8);
        assert_eq!(reclaim(again).capacity(), 0);
        drop(held);
        // Cut short (a damaged file): what decompressed, then a torn end.
        let cut = dir.path().join("c.mtr.zst");
        std::fs::write(&cut, &z[..z.len() * 3 / 4]).unwrap();
        let (recs, end) = read_all(load(&cut).unwrap().to_vec());
        assert!(matches!(end, End::Torn { .. }), "{end:?}");
        assert_eq!(recs.len(), 2, "the header and the first record");
    }

    #[test]
    fn the_first_record_is_read_without_the_rest() {
        use std::io::Write;
        let plain = segment(&[
            (RecordKind::Segment, b"{\"host\":\"h\"}"),
            (RecordKind::Kernel, &[7u8; 1_000_000]),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("seg-0000000001.mtr");
        std::fs::write(&raw, &plain).unwrap();
        let zst = dir.path().join("seg-0000000002.mtr.zst");
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.write_all(&plain).unwrap();
        std::fs::write(&zst, enc.finish().unwrap()).unwrap();
        for p in [&raw, &zst] {
            let r = first_record(p).unwrap().unwrap();
            assert_eq!(
                (r.kind, &r.payload[..]),
                (RecordKind::Segment, &b"{\"host\":\"h\"}"[..])
            );
        }
        // Cut inside the first record: none; not a segment: an error.
        std::fs::write(&raw, &plain[..FILE_HEADER_LEN + RECORD_HEADER_LEN + 3]).unwrap();
        assert!(first_record(&raw).unwrap().is_none());
        std::fs::write(&raw, b"not a segment at all").unwrap();
        assert!(first_record(&raw).is_err());
    }
}
