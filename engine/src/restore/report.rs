//! The restore report: restored, skipped and unrestored items with reasons.

use std::time::Duration;

use serde::Serialize;

use crate::format::run::{Level, RunManifest};

/// What happened to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Restored {
        bytes: u64,
    },
    /// Deliberately not restored (overwrite policy), with the reason.
    Skipped(String),
    /// Should have been restored but could not be, with the reason.
    Unrestored(String),
}

/// An item that could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnrestoredItem {
    pub path: String,
    pub reason: String,
}

/// Overall outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RestoreStatus {
    /// Every selected item was restored or deliberately skipped.
    Complete,
    /// Some items could not be restored; the rest were.
    Partial,
    /// Stopped at the first failure (continue-on-error was off).
    Failed,
}

/// Where each source went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceTarget {
    pub source: String,
    pub target: String,
}

/// The result of a restore.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    pub run: String,
    pub level: Level,
    pub run_started: chrono::DateTime<chrono::Utc>,
    pub status: RestoreStatus,
    pub targets: Vec<SourceTarget>,
    pub restored: u64,
    pub skipped: u64,
    pub unrestored: u64,
    pub bytes_restored: u64,
    pub duration_ms: u64,
    /// Every unrestored item with its reason.
    pub unrestored_items: Vec<UnrestoredItem>,
    /// Skipped items (first 1000) with their reasons.
    pub skipped_items: Vec<UnrestoredItem>,
}

const SKIPPED_LISTED: usize = 1000;

#[derive(Debug, Default)]
pub(super) struct Builder {
    restored: u64,
    skipped: u64,
    bytes: u64,
    unrestored_items: Vec<UnrestoredItem>,
    skipped_items: Vec<UnrestoredItem>,
}

impl Builder {
    pub fn record(&mut self, path: &str, outcome: ItemOutcome) {
        match outcome {
            ItemOutcome::Restored { bytes } => {
                self.restored += 1;
                self.bytes += bytes;
            }
            ItemOutcome::Skipped(reason) => {
                self.skipped += 1;
                if self.skipped_items.len() < SKIPPED_LISTED {
                    self.skipped_items.push(UnrestoredItem {
                        path: path.to_owned(),
                        reason,
                    });
                }
            }
            ItemOutcome::Unrestored(reason) => {
                self.unrestored_items.push(UnrestoredItem {
                    path: path.to_owned(),
                    reason,
                });
            }
        }
    }

    pub fn finish(
        mut self,
        run: &RunManifest,
        targets: Vec<SourceTarget>,
        elapsed: Duration,
        continue_on_error: bool,
    ) -> RestoreReport {
        self.unrestored_items.sort_by(|a, b| a.path.cmp(&b.path));
        let status = match (self.unrestored_items.is_empty(), continue_on_error) {
            (true, _) => RestoreStatus::Complete,
            (false, true) => RestoreStatus::Partial,
            (false, false) => RestoreStatus::Failed,
        };
        RestoreReport {
            run: run.label.clone(),
            level: run.level,
            run_started: run.started,
            status,
            targets,
            restored: self.restored,
            skipped: self.skipped,
            unrestored: self.unrestored_items.len() as u64,
            bytes_restored: self.bytes,
            duration_ms: elapsed.as_millis() as u64,
            unrestored_items: self.unrestored_items,
            skipped_items: self.skipped_items,
        }
    }
}
