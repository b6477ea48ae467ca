//! Enrichment: facts userspace adds to kernel events (wall-clock time now;
//! the mount table and process details come with the correlator).

pub mod clock;
