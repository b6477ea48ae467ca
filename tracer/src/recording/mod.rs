//! Recordings: what `mntrace record` keeps on disk so an incident can be
//! examined long after it happened. [`format`] is the segment layout and
//! its reader (torn tails and damage detected, never a panic); [`writer`]
//! rotates, compresses and bounds the segments.

pub mod format;
pub mod writer;
