//! mntrace userspace. Data flow, one module per stage:
//!
//! [`preflight`] (capabilities, tracefs, BTF) first; then kernel probes
//! (`tracer-ebpf`) → [`loader`] (attach) → [`reader`] (ring
//! buffer) → [`decode`] (bytes → [`model`]) → [`enrich`] (mount table,
//! holders, wall time) → [`correlate`] (incidents) → sinks ([`sink`]:
//! console, JSON Lines). [`pipeline`] runs the stages after the reader;
//! [`live`] wires them for a live session.

pub mod config;
pub mod correlate;
pub mod decode;
pub mod drops;
pub mod enrich;
pub mod error;
pub mod live;
pub mod loader;
pub mod model;
pub mod names;
pub mod path;
pub mod pipeline;
pub mod preflight;
pub mod probes;
pub mod reader;
pub mod sink;
pub mod stats;

pub use tracer_common::EventKind;
