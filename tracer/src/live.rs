//! A live session: attach, stream events into a sink until told to stop,
//! report kernel-side losses as they happen and in the final summary.

use std::future::Future;
use std::time::Duration;

use crate::loader::{Drops, Tracer};
use crate::model::Event;
use crate::pipeline::Pipeline;
use crate::reader::EventReader;
use crate::sink::Sink;

/// `CLOCK_BOOTTIME` now, the kernel's event clock.
pub fn boot_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Stream events from an attached tracer through `pipeline` into `sink`
/// until `stop` resolves, then drain what is left, close open incidents and
/// finish the sink. The run's totals are in `pipeline.stats`.
pub async fn run(
    tracer: &mut Tracer,
    pipeline: &mut Pipeline,
    sink: &mut dyn Sink,
    stop: impl Future<Output = ()>,
    loss_interval: Duration,
) -> anyhow::Result<()> {
    let mut reader = EventReader::new(tracer.ring()?)?;
    let mut batch: Vec<Event> = Vec::with_capacity(4096);
    let mut reported = Drops::default();
    let mut loss_tick = tokio::time::interval(loss_interval);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loss_tick.tick().await;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            r = reader.read(&mut batch) => {
                r?;
                deliver(&mut batch, pipeline, sink)?;
                sink.flush()?;
            }
            _ = tick.tick() => {
                pipeline.tick(boot_ns(), sink)?;
                sink.flush()?;
            }
            _ = loss_tick.tick() => {
                report_losses(tracer, pipeline, sink, &mut reported)?;
            }
            _ = &mut stop => break,
        }
    }
    // Everything the kernel emitted before we stopped is in the ring: drain it.
    reader.drain(&mut batch);
    deliver(&mut batch, pipeline, sink)?;
    report_losses(tracer, pipeline, sink, &mut reported)?;
    pipeline.finish(sink)?;
    let stats = &mut pipeline.stats;
    stats.drops = reported;
    stats.decode_errors = reader.decode_errors;
    stats.last_decode_error = reader.last_error.as_ref().map(|e| e.to_string());
    sink.finish(stats)?;
    Ok(())
}

fn deliver(
    batch: &mut Vec<Event>,
    pipeline: &mut Pipeline,
    sink: &mut dyn Sink,
) -> std::io::Result<()> {
    for ev in batch.drain(..) {
        pipeline.event(&ev, sink)?;
    }
    Ok(())
}

fn report_losses(
    tracer: &Tracer,
    pipeline: &mut Pipeline,
    sink: &mut dyn Sink,
    reported: &mut Drops,
) -> anyhow::Result<()> {
    let now = tracer.drops()?;
    pipeline.losses(now.total());
    if now != *reported {
        let mut delta = Drops::default();
        for (k, row) in delta.0.iter_mut().enumerate() {
            for (r, v) in row.iter_mut().enumerate() {
                *v = now.0[k][r].saturating_sub(reported.0[k][r]);
            }
        }
        sink.losses(&delta, &now)?;
        *reported = now;
    }
    Ok(())
}
