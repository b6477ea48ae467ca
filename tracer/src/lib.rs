//! mntrace userspace. Data flow, one module per stage:
//!
//! [`config`] (the run's configuration, built once) and [`preflight`]
//! (capabilities, tracefs, BTF) first ([`doctor`] reports the same checks
//! and more, for `mntrace doctor`); then kernel probes (`tracer-ebpf`) →
//! [`loader`] (attach) → [`reader`] (its own thread: ring buffer → queue of
//! raw records) → [`decode`] (bytes → [`model`]) → [`enrich`] (mount
//! table, holders on their own thread, wall time) → [`correlate`]
//! (incidents) → sinks ([`sink`]: console, JSON Lines, metrics, served by
//! [`metrics_http`]). [`pipeline`] runs the stages after the reader; [`live`]
//! wires them for a live session; [`recording`] and [`replay`] feed the
//! same pipeline from a recording (`record`, `triage`, `query`).
//! Shared helpers live in modules named for them: [`path`] (paths as
//! bytes), [`drops`] (kernel-side drop counters), [`names`] (flag and
//! errno names), [`progress`] (the bar of long replays on a terminal),
//! [`kernel_tick`] (the kernel's tick length, for the kernel's own clock).
//! [`floor`] stands apart: empty programs on the same hooks, for the
//! benchmark's floor (the hidden `mntrace floor`).

pub mod config;
pub mod correlate;
pub mod decode;
pub mod doctor;
pub mod drops;
pub mod enrich;
pub mod error;
pub mod floor;
pub mod kernel_tick;
pub mod live;
pub mod loader;
pub mod metrics_http;
pub mod model;
pub mod names;
pub mod path;
pub mod pipeline;
pub mod preflight;
pub mod probes;
pub mod progress;
pub mod reader;
pub mod recording;
pub mod replay;
pub mod sink;
pub mod stats;

pub use tracer_common::EventKind;
