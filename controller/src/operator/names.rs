//! Names, labels and annotations of what the controller creates. Job names are
//! deterministic (from the owner, the operation and the slot), so a restarted controller or
//! a second reconcile of the same moment finds the Job it made instead of making another.

use std::collections::BTreeMap;

/// Field manager of every write, and the `managed-by` value.
pub const MANAGER: &str = "holdfast-controller";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "holdfast";

pub const LABEL_BACKUP_SET: &str = "holdfast.io/backup-set";
pub const LABEL_RESTORE: &str = "holdfast.io/restore";
pub const LABEL_STORAGE_SET: &str = "holdfast.io/storage-set";
pub const LABEL_OPERATION: &str = "holdfast.io/operation";
/// A copy Job's copy (its name in the BackupSet's `spec.copies`).
pub const LABEL_COPY: &str = "holdfast.io/copy";
/// On a BackupSet: the braked purge plans someone approved (comma-separated), each run
/// once as it was planned.
pub const ANNOTATION_APPROVE_PURGE: &str = "holdfast.io/approve-purge";
/// On a BackupSet being deleted with a burst of others: `true` lets its repository go.
pub const ANNOTATION_APPROVE_DELETION: &str = "holdfast.io/approve-deletion";
/// A hash of the repository's location: Jobs of one repository share it (the queue).
pub const LABEL_REPOSITORY: &str = "holdfast.io/repository";

pub const ANNOTATION_SLOT: &str = "holdfast.io/slot";
pub const ANNOTATION_LEVEL: &str = "holdfast.io/level";
pub const ANNOTATION_REASON: &str = "holdfast.io/reason";
/// On a Job: who its pod runs as (`mover.rs`), for the run's status.
pub const ANNOTATION_MOVER: &str = "holdfast.io/mover";
/// On a Job: stopped on request, not to be released again.
pub const ANNOTATION_ABORTED: &str = "holdfast.io/aborted";
/// On a Job: failed by the controller because its pod cannot start, and why.
pub const ANNOTATION_FAILURE: &str = "holdfast.io/failure";
/// On a BackupSet: each new value aborts the running backup once.
pub const ANNOTATION_ABORT: &str = "holdfast.io/abort";
/// On a BackupSet being deleted with `Purge` that cannot purge: `"true"` lets it go and
/// keeps the repository.
pub const ANNOTATION_RELEASE: &str = "holdfast.io/release";

/// The finalizer that runs a BackupSet's `deletionPolicy: Purge` (a `Retain` set has none).
pub const FINALIZER_CLEANUP: &str = "holdfast.io/cleanup";
/// The finalizer that keeps a StorageSet while BackupSets that purge on deletion use it.
pub const FINALIZER_IN_USE: &str = "holdfast.io/in-use";

/// FNV-1a (64 bit): stable across releases and machines, unlike `std`'s hasher, so names
/// and offsets derived from it never change.
pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// FNV-1a, hex: short stable hashes for names and labels.
pub fn short_hash(s: &str) -> String {
    format!("{:016x}", fnv1a(s))
}

/// A Job name `<base>-<op>-<tail>` within 52 characters (pods add a suffix and must stay
/// within the 63 of a label value); a long base is cut and given a hash of itself.
pub fn job_name(base: &str, op: &str, tail: &str) -> String {
    const MAX: usize = 52;
    let suffix = format!("-{op}-{tail}");
    let room = MAX.saturating_sub(suffix.len());
    let base = if base.len() <= room {
        base.to_owned()
    } else {
        let keep = room.saturating_sub(7);
        format!(
            "{}-{}",
            base[..keep].trim_end_matches('-'),
            &short_hash(base)[..6]
        )
    };
    format!("{base}{suffix}")
}

/// A list kept in a Job's annotation (hook results, snapshots taken), as JSON.
pub fn list_annotation<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

/// The list an annotation holds (none when it is missing or unreadable).
pub fn read_list_annotation<T: serde::de::DeserializeOwned>(text: Option<&String>) -> Vec<T> {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

/// The labels every object the controller creates carries.
pub fn base_labels(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        ("app.kubernetes.io/name".to_owned(), "holdfast".to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            component.to_owned(),
        ),
    ])
}

/// The repository label of a location (`<namespace>/<storage set>/<repository>`).
pub fn repository_label(namespace: &str, storage_set: &str, repository: &str) -> String {
    short_hash(&format!("{namespace}/{storage_set}/{repository}"))
}

/// A slot as it appears in a Job name: `YYYYMMDDHHMM` (UTC).
pub fn slot_tail(slot: jiff::Timestamp) -> String {
    slot.strftime("%Y%m%d%H%M").to_string()
}

/// The container that runs the engine.
pub const MAIN_CONTAINER: &str = "holdfast";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_deterministic_and_short() {
        assert_eq!(
            job_name("shop", "backup", "202612010100"),
            "shop-backup-202612010100"
        );
        let long = "a-very-long-backup-set-name-that-goes-on-and-on-and-on";
        let n = job_name(long, "backup", "202612010100");
        assert!(n.len() <= 52, "{n} ({})", n.len());
        assert_eq!(n, job_name(long, "backup", "202612010100"));
        assert_ne!(
            n,
            job_name(
                "a-very-long-backup-set-name-that-goes-on-and-on-and-no",
                "backup",
                "202612010100"
            ),
            "cut names still differ"
        );
        assert!(n.ends_with("-backup-202612010100"));
        let t = "2026-12-01T01:00:00Z".parse().unwrap();
        assert_eq!(slot_tail(t), "202612010100");
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
