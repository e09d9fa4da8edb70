//! The operations a job runs, by kind: a leaf every floor names them by (job names,
//! labels, events, metrics, the plan).

/// The kinds of operation a job runs: the vocabulary of job names, the operation label,
/// events and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OperationKind {
    Backup,
    Purge,
    Verify,
    Restore,
    StorageCheck,
    DeleteRepository,
    /// Runs moved into one of the set's copies.
    Copy,
}

impl OperationKind {
    pub const ALL: [OperationKind; 7] = [
        OperationKind::Backup,
        OperationKind::Purge,
        OperationKind::Verify,
        OperationKind::Restore,
        OperationKind::StorageCheck,
        OperationKind::DeleteRepository,
        OperationKind::Copy,
    ];

    /// `backup`, `storage-check` …: labels, job names, metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Backup => "backup",
            OperationKind::Purge => "purge",
            OperationKind::Verify => "verify",
            OperationKind::Restore => "restore",
            OperationKind::StorageCheck => "storage-check",
            OperationKind::DeleteRepository => "delete-repository",
            OperationKind::Copy => "copy",
        }
    }
}

impl std::fmt::Display for OperationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OperationKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OperationKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown operation {s:?}"))
    }
}

/// How an operation ended: the `result` label of the runs metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    Partial,
    Failed,
    Aborted,
    /// A verification that found damage.
    Damaged,
    /// A purge the brake on mass deletion stopped: nothing expired; it waits for approval.
    Braked,
}

impl Outcome {
    /// `complete`, `partial` …: the runs metric's `result` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::Aborted => "aborted",
            Outcome::Damaged => "damaged",
            Outcome::Braked => "braked",
        }
    }
}
