//! Ring buffer → decoded events, asynchronously. Each wake-up drains every
//! available record into one buffer; events are zero-copy slices of it.

use aya::maps::{MapData, RingBuf};
use bytes::BytesMut;
use tokio::io::{unix::AsyncFd, Interest};

use crate::decode::{decode, DecodeError};
use crate::model::Event;

pub struct EventReader {
    fd: AsyncFd<RingBuf<MapData>>,
    buf: BytesMut,
    /// Records that failed to decode.
    pub decode_errors: u64,
    /// The last decode error, for the report.
    pub last_error: Option<DecodeError>,
}

impl EventReader {
    pub fn new(ring: RingBuf<MapData>) -> std::io::Result<EventReader> {
        // Safety: the ring buffer owns its map fd and keeps it open, unchanged,
        // for as long as the AsyncFd owns the ring buffer.
        let fd = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(EventReader {
            fd,
            buf: BytesMut::with_capacity(1 << 20),
            decode_errors: 0,
            last_error: None,
        })
    }

    /// Decode every record available now into `out`; returns how many.
    pub fn drain(&mut self, out: &mut Vec<Event>) -> usize {
        let (n, errors) = drain_ring(self.fd.get_mut(), &mut self.buf, out);
        self.decode_errors += errors.len() as u64;
        if let Some(e) = errors.into_iter().last() {
            self.last_error = Some(e);
        }
        n
    }

    /// Wait until records are available, then drain them into `out`.
    pub async fn read(&mut self, out: &mut Vec<Event>) -> std::io::Result<usize> {
        loop {
            let mut guard = self.fd.readable_mut().await?;
            guard.clear_ready();
            drop(guard);
            let n = self.drain(out);
            if n > 0 {
                return Ok(n);
            }
        }
    }
}

/// Drain every available record of `ring` into `out`, copying them into one
/// buffer first so events are slices of a single allocation. Returns the
/// number of records and the decode errors.
pub fn drain_ring(
    ring: &mut RingBuf<MapData>,
    buf: &mut BytesMut,
    out: &mut Vec<Event>,
) -> (usize, Vec<DecodeError>) {
    let mut spans = Vec::new();
    while let Some(item) = ring.next() {
        spans.push(item.len());
        buf.extend_from_slice(&item);
    }
    let mut all = buf.split().freeze();
    let mut errors = Vec::new();
    for &len in &spans {
        match decode(all.split_to(len)) {
            Ok(ev) => out.push(ev),
            Err(e) => errors.push(e),
        }
    }
    (spans.len(), errors)
}
