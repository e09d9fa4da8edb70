//! Where a backup Job's snapshots stand, kept on the Job (annotations), as its hooks' are
//! (pure).

/// The annotation with the [`CopyState`].
pub const ANNOTATION_COPY: &str = "holdfast.io/copy";
/// The annotation with the snapshots the run reads (JSON, the status's list).
pub const ANNOTATION_SNAPSHOTS: &str = "holdfast.io/snapshots";
/// The annotation with the sources the run reads from clones (JSON list of names).
pub const ANNOTATION_CLONES: &str = "holdfast.io/clones";
/// The reason of a run whose snapshot failed.
pub const SNAPSHOT_FAILED: &str = "SnapshotFailed";

/// Where a Job's snapshots stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyState {
    /// Created held: its set takes the snapshots (after `pre`) when its turn comes.
    Pending,
    /// The VolumeSnapshots exist; the set waits for them to be ready.
    Snapshotting,
    /// Released with its clones asked for: `post` waits until they are bound (made).
    Cloning,
    /// Ready: the temporary claims exist and the Job was released.
    Ready,
    /// A snapshot failed or was not ready in time: the Job never runs.
    Failed,
}

impl CopyState {
    pub fn as_str(self) -> &'static str {
        match self {
            CopyState::Pending => "pending",
            CopyState::Snapshotting => "snapshotting",
            CopyState::Cloning => "cloning",
            CopyState::Ready => "ready",
            CopyState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<CopyState> {
        [
            CopyState::Pending,
            CopyState::Snapshotting,
            CopyState::Cloning,
            CopyState::Ready,
            CopyState::Failed,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// Only its own set may release the Job (it takes the snapshots first).
    pub fn held(self) -> bool {
        matches!(self, CopyState::Pending | CopyState::Snapshotting)
    }
}

/// The name of the VolumeSnapshot, and of the temporary claim made from it, of `source`
/// for the Job `job` (DNS names: a source's `_` becomes `-`).
pub fn object_name(job: &str, source: &str) -> String {
    format!("{job}-{}", source.replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_as_written_and_only_pending_and_snapshotting_hold_the_job() {
        for s in [
            CopyState::Pending,
            CopyState::Snapshotting,
            CopyState::Cloning,
            CopyState::Ready,
            CopyState::Failed,
        ] {
            assert_eq!(CopyState::parse(s.as_str()), Some(s));
            assert_eq!(
                s.held(),
                matches!(s, CopyState::Pending | CopyState::Snapshotting)
            );
        }
        assert_eq!(object_name("shop-backup-x", "my_db"), "shop-backup-x-my-db");
    }
}
