//! Ring buffer → raw records, on a thread of its own.
//!
//! The reader thread does nothing but copy records out of the kernel's ring
//! buffer into chunks and hand them to the pipeline over a bounded queue, so
//! nothing slow (mount tables, holder scans, sinks) ever sits between the
//! kernel and the ring buffer's consumer position. When the pipeline falls
//! behind by more than the queue holds, the reader waits: the ring buffer
//! fills and the kernel counts what it cannot deliver (`ring_full`), so
//! losses stay counted where they happen.
//!
//! Records stay raw bytes until the pipeline decodes them (the same decoder
//! runs on recordings).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::thread::JoinHandle;

use aya::maps::{MapData, RingBuf};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tracer_common::limits::RING_DRAIN_MS;

use crate::decode::{decode, DecodeError};
use crate::model::Event;

/// Records copied out of the ring buffer in one go: one allocation, with
/// each record's length.
#[derive(Debug, Default)]
pub struct Chunk {
    pub bytes: Bytes,
    pub lens: Vec<u32>,
}

impl Chunk {
    /// The records, in ring-buffer order.
    pub fn records(&self) -> impl Iterator<Item = Bytes> + '_ {
        let mut rest = self.bytes.clone();
        self.lens.iter().map(move |&n| rest.split_to(n as usize))
    }
}

/// A chunk is handed over once it holds this many bytes (or the ring
/// buffer is empty).
pub const CHUNK_BYTES: usize = 1 << 20;
/// Chunks queued between the reader and the pipeline: with [`CHUNK_BYTES`],
/// the most a slow pipeline can keep waiting in memory (64 MiB).
pub const QUEUE_CHUNKS: usize = 64;

/// The running reader thread.
pub struct ReaderThread {
    handle: Option<JoinHandle<()>>,
    /// Written to stop the thread (it polls it beside the ring buffer).
    stop: Arc<OwnedFd>,
}

impl ReaderThread {
    /// Start reading `ring`; chunks arrive on the returned receiver, which
    /// ends after [`ReaderThread::stop`] once everything the kernel emitted
    /// before it has been delivered.
    pub fn spawn(ring: RingBuf<MapData>) -> std::io::Result<(ReaderThread, mpsc::Receiver<Chunk>)> {
        let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
        // SAFETY: eventfd returns a new descriptor or -1.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `efd` is a fresh descriptor owned by nobody else.
        let stop = Arc::new(unsafe { OwnedFd::from_raw_fd(efd) });
        let stop_rd = stop.clone();
        let handle = std::thread::Builder::new()
            .name("mntrace-reader".into())
            .spawn(move || read_loop(ring, &stop_rd, tx))?;
        Ok((
            ReaderThread {
                handle: Some(handle),
                stop,
            },
            rx,
        ))
    }

    /// Ask the thread to drain what is left and end.
    pub fn stop(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
        unsafe {
            libc::write(
                self.stop.as_raw_fd(),
                &one as *const u64 as *const libc::c_void,
                8,
            )
        };
    }
}

impl Drop for ReaderThread {
    fn drop(&mut self) {
        self.stop();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn read_loop(mut ring: RingBuf<MapData>, stop: &OwnedFd, tx: mpsc::Sender<Chunk>) {
    let mut buf = BytesMut::with_capacity(CHUNK_BYTES);
    loop {
        let mut fds = [
            libc::pollfd {
                fd: ring.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // Records wake this thread only in bulk (RING_WAKEUP_BYTES); the
        // rest is drained on this timer.
        // SAFETY: two valid pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, RING_DRAIN_MS) };
        if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
        let stopping = fds[1].revents != 0;
        if !drain_into(&mut ring, &mut buf, &tx) || stopping {
            return;
        }
    }
}

/// Hand every record available now to `tx`, in chunks; false when the
/// receiver is gone.
fn drain_into(ring: &mut RingBuf<MapData>, buf: &mut BytesMut, tx: &mpsc::Sender<Chunk>) -> bool {
    let mut lens = Vec::new();
    loop {
        let more = match ring.next() {
            Some(item) => {
                lens.push(item.len() as u32);
                buf.extend_from_slice(&item);
                true
            }
            None => false,
        };
        if (!more || buf.len() >= CHUNK_BYTES) && !lens.is_empty() {
            let chunk = Chunk {
                bytes: buf.split().freeze(),
                lens: std::mem::take(&mut lens),
            };
            if tx.blocking_send(chunk).is_err() {
                return false;
            }
            if buf.capacity() < CHUNK_BYTES {
                buf.reserve(CHUNK_BYTES);
            }
        }
        if !more {
            return true;
        }
    }
}

/// Decode every record of `chunk` into `out`; decode errors are returned.
pub fn decode_chunk(chunk: &Chunk, out: &mut Vec<Event>) -> Vec<DecodeError> {
    let mut errors = Vec::new();
    for rec in chunk.records() {
        match decode(rec) {
            Ok(ev) => out.push(ev),
            Err(e) => errors.push(e),
        }
    }
    errors
}

/// Drain every available record of `ring` into `out` on the caller's
/// thread (tests that drain the ring themselves). Returns the number of
/// records and the decode errors.
pub fn drain_ring(
    ring: &mut RingBuf<MapData>,
    buf: &mut BytesMut,
    out: &mut Vec<Event>,
) -> (usize, Vec<DecodeError>) {
    let mut lens = Vec::new();
    while let Some(item) = ring.next() {
        lens.push(item.len() as u32);
        buf.extend_from_slice(&item);
    }
    let chunk = Chunk {
        bytes: buf.split().freeze(),
        lens,
    };
    let errors = decode_chunk(&chunk, out);
    (chunk.lens.len(), errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_records_split_at_their_lengths() {
        let c = Chunk {
            bytes: Bytes::from_static(b"aaabbbbc"),
            lens: vec![3, 4, 1],
        };
        let v: Vec<Bytes> = c.records().collect();
        assert_eq!(v, [&b"aaa"[..], b"bbbb", b"c"]);
    }
}
