//! A live session: attach, stream events into a sink until told to stop,
//! report kernel-side losses as they happen and in the final summary.

use std::future::Future;
use std::time::Duration;

use crate::loader::{Drops, Tracer};
use crate::model::Event;
use crate::reader::EventReader;
use crate::sink::Sink;
use crate::stats::Stats;

/// Stream events from an attached tracer into `sink` until `stop` resolves,
/// then drain what is left and finish the sink. Returns the run's totals.
pub async fn run(
    tracer: &mut Tracer,
    sink: &mut dyn Sink,
    stop: impl Future<Output = ()>,
    loss_interval: Duration,
) -> anyhow::Result<Stats> {
    let mut reader = EventReader::new(tracer.ring()?)?;
    let mut stats = Stats::default();
    let mut batch: Vec<Event> = Vec::with_capacity(4096);
    let mut reported = Drops::default();
    let mut tick = tokio::time::interval(loss_interval);
    tick.tick().await;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            r = reader.read(&mut batch) => {
                r?;
                deliver(&mut batch, sink, &mut stats)?;
                sink.flush()?;
            }
            _ = tick.tick() => {
                report_losses(tracer, sink, &mut reported)?;
            }
            _ = &mut stop => break,
        }
    }
    // Everything the kernel emitted before we stopped is in the ring: drain it.
    reader.drain(&mut batch);
    deliver(&mut batch, sink, &mut stats)?;
    report_losses(tracer, sink, &mut reported)?;
    stats.drops = reported;
    stats.decode_errors = reader.decode_errors;
    stats.last_decode_error = reader.last_error.as_ref().map(|e| e.to_string());
    sink.finish(&stats)?;
    Ok(stats)
}

fn deliver(batch: &mut Vec<Event>, sink: &mut dyn Sink, stats: &mut Stats) -> std::io::Result<()> {
    for ev in batch.drain(..) {
        stats.record(&ev);
        sink.event(&ev)?;
    }
    Ok(())
}

fn report_losses(tracer: &Tracer, sink: &mut dyn Sink, reported: &mut Drops) -> anyhow::Result<()> {
    let now = tracer.drops()?;
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
