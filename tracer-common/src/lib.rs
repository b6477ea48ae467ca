//! Types shared by the kernel programs (`tracer-ebpf`) and userspace (`tracer`).
//!
//! Everything here is `#[repr(C)]` plain data with explicit padding, so the byte
//! layout is identical on both sides. A ring-buffer record is:
//!
//! ```text
//! Header | payload (kind-specific, `payload_len` bytes) | StrRef[nstr] | string bytes
//! ```
//!
//! Strings are concatenated in `StrRef` order with no terminator; each `StrRef`
//! carries the length and whether the string was truncated or unreadable.
#![no_std]

pub mod config;
pub mod counters;
pub mod event;
pub mod kind;
pub mod limits;
pub mod uapi;

pub use config::Config;
pub use counters::DropReason;
pub use event::*;
pub use kind::EventKind;
