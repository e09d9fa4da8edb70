//! Progress counters shared between an engine operation and whoever draws a progress bar.
//!
//! The engine only increments atomics; the CLI polls them. No callback runs on a hot path.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Live counters of a long operation. Totals are estimates and may still be growing.
#[derive(Debug, Default)]
pub struct Progress {
    /// Items (files, streams, blobs) done.
    pub items_done: AtomicU64,
    /// Bytes done.
    pub bytes_done: AtomicU64,
    /// Items expected, as far as known.
    pub items_total: AtomicU64,
    /// Bytes expected, as far as known.
    pub bytes_total: AtomicU64,
    /// Set once the totals are final (the scan finished).
    pub totals_final: AtomicBool,
    /// Items that failed.
    pub errors: AtomicU64,
}

impl Progress {
    pub(crate) fn add_done(&self, items: u64, bytes: u64) {
        self.items_done.fetch_add(items, Ordering::Relaxed);
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn add_total(&self, items: u64, bytes: u64) {
        self.items_total.fetch_add(items, Ordering::Relaxed);
        self.bytes_total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The counters' values now.
    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            items_done: self.items_done.load(Ordering::Relaxed),
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            items_total: self.items_total.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
            totals_final: self.totals_final.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// A consistent-enough copy of [`Progress`] for drawing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressSnapshot {
    /// Items done.
    pub items_done: u64,
    /// Bytes done.
    pub bytes_done: u64,
    /// Items expected, as far as known.
    pub items_total: u64,
    /// Bytes expected, as far as known.
    pub bytes_total: u64,
    /// Whether the totals are final (the scan is over), so a percentage means something.
    pub totals_final: bool,
    /// Items that failed.
    pub errors: u64,
}
