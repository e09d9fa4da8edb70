//! Why the controller publishes an Event: one typed vocabulary. The names are stable (users
//! alert and filter on them), and each reason knows whether it is a Warning, so no call
//! site decides that on its own.

use crate::api::hook::HookPhase;
use crate::operation::{OperationKind, Outcome};

/// Why an Event is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventReason {
    /// A Job for the operation was created and runs: `BackupStarted`, `RestoreStarted`.
    Started(OperationKind),
    /// A Job for the operation was created and waits its turn at the repository:
    /// `PurgeQueued`.
    Queued(OperationKind),
    /// The operation's Job ended: `BackupComplete`, `RestorePartial`, `PurgeFailed`,
    /// `VerifyOk`, `VerifyDamaged`, `BackupAborted`.
    Ended(OperationKind, Outcome),
    /// An abort was asked for: the running backup is being stopped.
    BackupAborting,
    /// A scheduled run did not start in its window.
    MissedRun,
    /// What the user wrote is wrong or refers to something missing; the Stalled condition
    /// carries the same reason (`StorageSetNotFound`, `ScheduleInvalid`, …).
    Problem(&'static str),
    /// The set waits for something on its way before it runs (`StorageNotChecked`); its
    /// Reconciling condition carries the same reason.
    Waiting(&'static str),
    /// The set was deleted and its repository is kept: by `deletionPolicy: Retain`, or,
    /// a Warning, released by annotation although the policy said Purge.
    RepositoryRetained {
        /// Kept by the release annotation, against `deletionPolicy: Purge`.
        released: bool,
    },
    /// The set was deleted and its repository is being deleted (`deletionPolicy: Purge`).
    RepositoryDeleting,
    /// The set's repository was deleted.
    RepositoryDeleted,
    /// A StorageSet's check passed.
    StorageReady,
    /// A StorageSet's check failed.
    StorageCheckFailed,
    /// A backup's snapshots are ready: its job reads them.
    SnapshotsReady,
    /// A backup's snapshot failed or was not ready in time: the run failed.
    SnapshotFailed,
    /// A backup's hook commands of one phase ran: `PreHooksSucceeded`, `PostHooksFailed`.
    Hooks {
        phase: HookPhase,
        /// One of them failed (a Warning).
        failed: bool,
    },
}

/// `concat!` of a kind's name and a suffix, for every kind: the names stay `&'static str`.
macro_rules! by_kind {
    ($kind:expr, $suffix:literal) => {
        match $kind {
            OperationKind::Backup => concat!("Backup", $suffix),
            OperationKind::Purge => concat!("Purge", $suffix),
            OperationKind::Verify => concat!("Verify", $suffix),
            OperationKind::Restore => concat!("Restore", $suffix),
            OperationKind::StorageCheck => concat!("StorageCheck", $suffix),
            OperationKind::DeleteRepository => concat!("DeleteRepository", $suffix),
            OperationKind::Copy => concat!("Copy", $suffix),
        }
    };
}

impl EventReason {
    /// The Event's reason, PascalCase.
    pub fn as_str(self) -> &'static str {
        match self {
            EventReason::Started(kind) => by_kind!(kind, "Started"),
            EventReason::Queued(kind) => by_kind!(kind, "Queued"),
            EventReason::Ended(OperationKind::Verify, Outcome::Complete) => "VerifyOk",
            EventReason::Ended(kind, Outcome::Complete) => by_kind!(kind, "Complete"),
            EventReason::Ended(kind, Outcome::Partial) => by_kind!(kind, "Partial"),
            EventReason::Ended(kind, Outcome::Failed) => by_kind!(kind, "Failed"),
            EventReason::Ended(kind, Outcome::Aborted) => by_kind!(kind, "Aborted"),
            EventReason::Ended(kind, Outcome::Damaged) => by_kind!(kind, "Damaged"),
            EventReason::Ended(kind, Outcome::Braked) => by_kind!(kind, "Braked"),
            EventReason::BackupAborting => "BackupAborting",
            EventReason::MissedRun => "MissedRun",
            EventReason::Problem(reason) | EventReason::Waiting(reason) => reason,
            EventReason::RepositoryRetained { .. } => "RepositoryRetained",
            EventReason::RepositoryDeleting => "RepositoryDeleting",
            EventReason::RepositoryDeleted => "RepositoryDeleted",
            EventReason::StorageReady => "StorageReady",
            EventReason::StorageCheckFailed => "StorageCheckFailed",
            EventReason::SnapshotsReady => "SnapshotsReady",
            EventReason::SnapshotFailed => "SnapshotFailed",
            EventReason::Hooks { phase, failed } => match (phase, failed) {
                (HookPhase::Pre, false) => "PreHooksSucceeded",
                (HookPhase::Pre, true) => "PreHooksFailed",
                (HookPhase::Post, false) => "PostHooksSucceeded",
                (HookPhase::Post, true) => "PostHooksFailed",
            },
        }
    }

    /// Whether the Event is a Warning: something needs a look. An abort asked for, and an
    /// operation stopped by one, are not.
    pub fn is_warning(self) -> bool {
        match self {
            EventReason::Ended(_, outcome) => {
                !matches!(outcome, Outcome::Complete | Outcome::Aborted)
            }
            EventReason::MissedRun | EventReason::Problem(_) | EventReason::StorageCheckFailed => {
                true
            }
            EventReason::RepositoryRetained { released } => released,
            EventReason::Hooks { failed, .. } => failed,
            EventReason::SnapshotFailed => true,
            EventReason::SnapshotsReady => false,
            EventReason::Started(_)
            | EventReason::Queued(_)
            | EventReason::BackupAborting
            | EventReason::Waiting(_)
            | EventReason::RepositoryDeleting
            | EventReason::RepositoryDeleted
            | EventReason::StorageReady => false,
        }
    }
}

impl std::fmt::Display for EventReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_keep_the_names_users_alert_on() {
        for (reason, name, warning) in [
            (
                EventReason::Started(OperationKind::Backup),
                "BackupStarted",
                false,
            ),
            (
                EventReason::Queued(OperationKind::StorageCheck),
                "StorageCheckQueued",
                false,
            ),
            (
                EventReason::Ended(OperationKind::Backup, Outcome::Complete),
                "BackupComplete",
                false,
            ),
            (
                EventReason::Ended(OperationKind::Backup, Outcome::Partial),
                "BackupPartial",
                true,
            ),
            (
                EventReason::Ended(OperationKind::Backup, Outcome::Aborted),
                "BackupAborted",
                false,
            ),
            (
                EventReason::Ended(OperationKind::Purge, Outcome::Failed),
                "PurgeFailed",
                true,
            ),
            (
                EventReason::Ended(OperationKind::Verify, Outcome::Complete),
                "VerifyOk",
                false,
            ),
            (
                EventReason::Ended(OperationKind::Verify, Outcome::Damaged),
                "VerifyDamaged",
                true,
            ),
            (
                EventReason::Ended(OperationKind::Restore, Outcome::Partial),
                "RestorePartial",
                true,
            ),
            (
                EventReason::Ended(OperationKind::DeleteRepository, Outcome::Failed),
                "DeleteRepositoryFailed",
                true,
            ),
            (
                EventReason::Problem("StorageSetNotFound"),
                "StorageSetNotFound",
                true,
            ),
            (
                EventReason::RepositoryRetained { released: false },
                "RepositoryRetained",
                false,
            ),
            (
                EventReason::RepositoryRetained { released: true },
                "RepositoryRetained",
                true,
            ),
            (EventReason::MissedRun, "MissedRun", true),
            (
                EventReason::Hooks {
                    phase: HookPhase::Pre,
                    failed: false,
                },
                "PreHooksSucceeded",
                false,
            ),
            (
                EventReason::Hooks {
                    phase: HookPhase::Post,
                    failed: true,
                },
                "PostHooksFailed",
                true,
            ),
        ] {
            assert_eq!(
                (reason.as_str(), reason.is_warning()),
                (name, warning),
                "{reason:?}"
            );
        }
    }
}
