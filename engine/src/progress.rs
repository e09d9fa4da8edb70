//! Progress counters shared between an engine operation and whoever draws a progress bar.
//!
//! The engine only increments atomics; the CLI polls them. No callback runs on a hot path.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Live counters of a long operation. Totals are estimates and may still be growing.
#[derive(Debug, Default)]
pub struct Progress {
    pub items_done: AtomicU64,
    pub bytes_done: AtomicU64,
    pub items_total: AtomicU64,
    pub bytes_total: AtomicU64,
    /// Set once the totals are final (the scan finished).
    pub totals_final: AtomicBool,
    pub errors: AtomicU64,
}

impl Progress {
    pub fn add_done(&self, items: u64, bytes: u64) {
        self.items_done.fetch_add(items, Ordering::Relaxed);
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn add_total(&self, items: u64, bytes: u64) {
        self.items_total.fetch_add(items, Ordering::Relaxed);
        self.bytes_total.fetch_add(bytes, Ordering::Relaxed);
    }

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
    pub items_done: u64,
    pub bytes_done: u64,
    pub items_total: u64,
    pub bytes_total: u64,
    pub totals_final: bool,
    pub errors: u64,
}
