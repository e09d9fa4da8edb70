//! The restore report: restored, skipped and unrestored items with reasons.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::format::run::Level;
use crate::fsmeta::NotKept;

/// What happened to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Written.
    Restored {
        /// Bytes of content written.
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
    /// The item's path at the target.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// Overall outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum RestoreStatus {
    /// Every selected item was restored or deliberately skipped.
    Complete,
    /// Some items could not be restored; the rest were.
    Partial,
    /// Stopped at the first failure (continue-on-error was off).
    Failed,
}

/// Where each source went, and from which run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceTarget {
    /// The source's name.
    pub source: String,
    /// Where it was restored to.
    pub target: String,
    /// The run this source was restored from (sources may come from different runs).
    pub run: String,
    /// When that run started.
    pub run_started: chrono::DateTime<chrono::Utc>,
    /// The source's level in that run.
    pub level: Level,
}

/// The result of a restore.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    /// The newest run restored from (each source's own run is in `targets`).
    pub run: String,
    /// That run's level.
    pub level: Level,
    /// When that run started.
    pub run_started: chrono::DateTime<chrono::Utc>,
    /// How completely the restore succeeded.
    pub status: RestoreStatus,
    /// Where each source went.
    pub targets: Vec<SourceTarget>,
    /// Items restored.
    pub restored: u64,
    /// Items deliberately skipped.
    pub skipped: u64,
    /// Items that could not be restored.
    pub unrestored: u64,
    /// Bytes of content written.
    pub bytes_restored: u64,
    /// Wall time of the restore.
    pub duration_ms: u64,
    /// Every unrestored item with its reason.
    pub unrestored_items: Vec<UnrestoredItem>,
    /// Skipped items (first 1000) with their reasons.
    pub skipped_items: Vec<UnrestoredItem>,
    /// Temporary entries an interrupted earlier restore left in the target: removed, or
    /// kept with the reason (first 1000).
    pub leftovers: Vec<UnrestoredItem>,
    /// How many leftovers were removed.
    pub leftovers_removed: u64,
    /// Entries restored with the restoring user as owner, not the backed-up one: a restore
    /// not run as root cannot give files away.
    pub owners_not_set: u64,
    /// Existing entries the restoring user does not own (a volume's root), whose mode and
    /// times it could not set.
    pub modes_not_set: u64,
    /// Stopped on request (a signal) before everything was restored.
    pub aborted: bool,
}

const SKIPPED_LISTED: usize = 1000;

/// What was found of an earlier restore's temporary entries in a directory.
pub(super) enum Leftover {
    /// A killed restore's half-built entry, now removed.
    Removed(PathBuf),
    /// Another restore that is still running owns it (or it could not be removed).
    Kept(PathBuf, String),
}

#[derive(Debug, Default)]
pub(super) struct Builder {
    restored: u64,
    skipped: u64,
    bytes: u64,
    unrestored_items: Vec<UnrestoredItem>,
    skipped_items: Vec<UnrestoredItem>,
    leftovers: Vec<UnrestoredItem>,
    leftovers_removed: u64,
    owners_not_set: u64,
    modes_not_set: u64,
}

impl Builder {
    /// Count what an unprivileged restore could not apply to an entry it restored.
    pub(crate) fn not_kept(&mut self, n: NotKept) {
        self.owners_not_set += u64::from(n.owner);
        self.modes_not_set += u64::from(n.mode);
    }

    pub(crate) fn leftover(&mut self, found: Leftover) {
        let (path, reason) = match found {
            Leftover::Removed(p) => {
                self.leftovers_removed += 1;
                (p, "removed: left by an interrupted restore".to_owned())
            }
            Leftover::Kept(p, why) => (p, format!("kept: {why}")),
        };
        if self.leftovers.len() < SKIPPED_LISTED {
            self.leftovers.push(UnrestoredItem {
                path: path.display().to_string(),
                reason,
            });
        }
    }

    pub(crate) fn record(&mut self, path: &str, outcome: ItemOutcome) {
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

    pub(crate) fn finish(
        mut self,
        targets: Vec<SourceTarget>,
        elapsed: Duration,
        continue_on_error: bool,
        aborted: bool,
    ) -> RestoreReport {
        self.unrestored_items.sort_by(|a, b| a.path.cmp(&b.path));
        let status = match (self.unrestored_items.is_empty(), continue_on_error) {
            _ if aborted => RestoreStatus::Failed,
            (true, _) => RestoreStatus::Complete,
            (false, true) => RestoreStatus::Partial,
            (false, false) => RestoreStatus::Failed,
        };
        let newest = targets.iter().max_by_key(|t| t.run_started);
        RestoreReport {
            run: newest.map(|t| t.run.clone()).unwrap_or_default(),
            level: newest.map_or(Level::Full, |t| t.level),
            run_started: newest.map(|t| t.run_started).unwrap_or_default(),
            status,
            targets,
            restored: self.restored,
            skipped: self.skipped,
            unrestored: self.unrestored_items.len() as u64,
            bytes_restored: self.bytes,
            duration_ms: elapsed.as_millis() as u64,
            unrestored_items: self.unrestored_items,
            skipped_items: self.skipped_items,
            leftovers: self.leftovers,
            leftovers_removed: self.leftovers_removed,
            owners_not_set: self.owners_not_set,
            modes_not_set: self.modes_not_set,
            aborted,
        }
    }
}
