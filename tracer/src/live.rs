//! A live session: attach, stream events into a sink until told to stop,
//! report kernel-side losses as they happen and in the final summary.
//!
//! The ring buffer is drained by its own thread ([`ReaderThread`]); this
//! loop decodes, enriches, correlates and writes, and joins the holder
//! scans (their own thread) by id, so nothing slow sits between the kernel
//! and the ring buffer.

use std::future::Future;
use std::time::Duration;

use crate::drops::Drops;
use crate::enrich::clock::boot_ns;
use crate::loader::Tracer;
use crate::model::Event;
use crate::pipeline::Pipeline;
use crate::reader::{decode_chunk, ReaderThread};
use crate::sink::Sink;

/// How often quiet incidents are looked for when no event arrives.
const TICK: Duration = Duration::from_millis(250);

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
    let (reader, mut chunks) = ReaderThread::spawn(tracer.ring()?)?;
    let mut batch: Vec<Event> = Vec::with_capacity(4096);
    let mut reported = Drops::default();
    let mut loss_tick = tokio::time::interval(loss_interval);
    let mut tick = tokio::time::interval(TICK);
    loss_tick.tick().await;
    tokio::pin!(stop);
    let mut stopping = false;
    // Loss reports are also due while the queue never empties (the timer
    // branch below only runs when no chunk is ready).
    let mut loss_due = tokio::time::Instant::now() + loss_interval;
    loop {
        tokio::select! {
            biased;
            _ = &mut stop, if !stopping => {
                // The reader delivers what the kernel emitted until now, then
                // closes the queue.
                stopping = true;
                reader.stop();
            }
            chunk = chunks.recv() => {
                let Some(chunk) = chunk else { break };
                for rec in chunk.records() {
                    sink.raw(&rec);
                }
                for e in decode_chunk(&chunk, &mut batch) {
                    pipeline.stats.decode_error(&e);
                }
                deliver(&mut batch, pipeline, sink)?;
                record_facts(pipeline, sink);
                for mnt_id in pipeline.take_busy_mounts() {
                    tracer.arm_busy_mount(mnt_id)?;
                }
                if tokio::time::Instant::now() >= loss_due {
                    report_losses(tracer, pipeline, sink, &mut reported)?;
                    loss_due = tokio::time::Instant::now() + loss_interval;
                }
                sink.flush()?;
                totals(pipeline, sink);
            }
            // Only when the queue is empty: everything emitted before `now`
            // has been seen (up to records in flight, which the quiet gap
            // covers).
            _ = tick.tick() => {
                pipeline.holders_ready();
                pipeline.tick(boot_ns(), sink)?;
                record_facts(pipeline, sink);
                sink.flush()?;
                totals(pipeline, sink);
            }
            _ = loss_tick.tick() => {
                report_losses(tracer, pipeline, sink, &mut reported)?;
                loss_due = tokio::time::Instant::now() + loss_interval;
            }
        }
    }
    drop(reader);
    report_losses(tracer, pipeline, sink, &mut reported)?;
    pipeline.finish(sink)?;
    record_facts(pipeline, sink);
    pipeline.stats.drops = reported;
    // Everything but the summary is out (or counted as not written).
    sink.flush()?;
    pipeline.stats.unwritten = sink.unwritten();
    sink.finish(&pipeline.stats)?;
    Ok(())
}

fn deliver(
    batch: &mut Vec<Event>,
    pipeline: &mut Pipeline,
    sink: &mut dyn Sink,
) -> std::io::Result<()> {
    let mut last = 0;
    for ev in batch.drain(..) {
        last = last.max(ev.ts_ns);
        pipeline.event(&ev, sink)?;
    }
    pipeline.holders_ready();
    // Event time as the watermark: incidents quiet since then can close
    // even while the queue never empties.
    pipeline.tick(last, sink)
}

/// Hand what the correlator was given besides the kernel records to the
/// sink, after the records of the same chunk (the recorder keeps them).
fn record_facts(pipeline: &mut Pipeline, sink: &mut dyn Sink) {
    for f in pipeline.take_facts() {
        sink.fact(&f);
    }
}

/// After a flush: the run's totals to the counting sinks (the metrics),
/// once per chunk rather than per event. What the output could not write is
/// only looked at (copied) once something was not.
fn totals(pipeline: &mut Pipeline, sink: &mut dyn Sink) {
    pipeline.stats.unwritten = sink.unwritten();
    sink.totals(&pipeline.stats);
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
        sink.losses(&now.since(reported), &now)?;
        *reported = now;
    }
    Ok(())
}
