//! A set's copies, checked: each one's repository, how job pods reach it and who they run
//! as, or the problem to report (pure).

use crate::api::BackupSet;
use crate::api::backup_set::Retention;
use crate::job::plan::paths;
use crate::operator::error::Problem;
use crate::operator::mover::MoverPlan;
use crate::operator::names::repository_label;
use crate::operator::storage::{self, StorageMount};

use super::Refs;

/// A copy ready to be filled.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidCopy {
    pub name: String,
    /// `<StorageSet>/<repository path>`: status tells a changed target from the old one.
    pub target: String,
    /// The StorageSet that holds it, and its repository path there.
    pub storage: String,
    pub path: String,
    /// The copy's repository, as a copy Job's pod opens it (beside the set's).
    pub url: String,
    /// The copy's repository, as its own purge or verification Job's pod opens it.
    pub own_url: String,
    /// How the job pod reaches it (beside the set's own storage).
    pub mount: StorageMount,
    /// Who its job pods run as: as the set's maintenance pods, or root where the copy is a
    /// filesystem claim (its files belong to root, as a filesystem repository's do).
    pub mover: MoverPlan,
    /// The label of the copy's repository, as its own Jobs (purge, verify) carry it.
    pub repo_label: String,
    /// How long it keeps runs: its own retention, or the set's.
    pub retention: Option<Retention>,
}

/// Check every copy; `mover` says who a job pod runs as given whether it touches a
/// filesystem repository.
pub(super) fn copies(
    set: &BackupSet,
    refs: &Refs,
    repository: &str,
    mover: impl Fn(bool) -> Result<MoverPlan, Problem>,
    credentials: impl Fn(&str, &StorageMount) -> Result<(), Problem>,
) -> Result<Vec<ValidCopy>, Problem> {
    let own = &set.spec.storage_set_ref.name;
    let mut valid: Vec<ValidCopy> = Vec::new();
    let primary_fs = refs
        .storage
        .as_ref()
        .is_some_and(|s| s.spec.filesystem.is_some());
    for copy in &set.spec.copies {
        let storage_name = &copy.storage_set_ref.name;
        let Some(storage) = refs.copy_storages.get(storage_name) else {
            return Err(Problem::missing(
                "CopyStorageSetNotFound",
                format!(
                    "StorageSet {storage_name} (of copy {}) does not exist in namespace {}",
                    copy.name,
                    set.metadata.namespace.as_deref().unwrap_or_default()
                ),
                "create it (the set waits for it)",
            ));
        };
        let path = copy
            .repository
            .clone()
            .unwrap_or_else(|| repository.to_owned());
        storage::check_repository(&path).map_err(|m| {
            Problem::new("CopyRepositoryInvalid", format!("copy {}: {m}", copy.name))
        })?;
        let invalid = |m: String| {
            Problem::new(
                "CopyStorageSetInvalid",
                format!("StorageSet {storage_name} (of copy {}): {m}", copy.name),
            )
        };
        let url =
            storage::url_at(&storage.spec, Some(&path), paths::COPY_STORAGE).map_err(invalid)?;
        let own_url = storage::url(&storage.spec, Some(&path)).map_err(invalid)?;
        let mount = StorageMount::of(&storage.spec)
            .ok_or_else(|| invalid("it names neither s3 nor filesystem".into()))?;
        let overlaps = |other_storage: &str, other_path: &str| {
            other_storage == storage_name && storage::repositories_overlap(other_path, &path)
        };
        if overlaps(own, repository) {
            return Err(Problem::new(
                "CopyOverlapsRepository",
                format!(
                    "copy {} would be kept at {path} in StorageSet {storage_name}, which is the \
                     set's own repository or lies around or inside it: a copy must be somewhere \
                     else (another StorageSet, or another spec.copies[].repository)",
                    copy.name
                ),
            ));
        }
        if let Some(other) = valid.iter().find(|v| overlaps(&v.storage, &v.path)) {
            return Err(Problem::new(
                "CopyOverlapsRepository",
                format!(
                    "copies {} and {} would be kept at the same place ({path} in StorageSet \
                     {storage_name}), or one inside the other: give one another repository",
                    other.name, copy.name
                ),
            ));
        }
        credentials(storage_name, &mount)?;
        let retention = copy
            .retention
            .clone()
            .or_else(|| set.spec.retention.clone());
        if let Some(r) = &copy.retention {
            crate::job::plan::retention_policy(r).map_err(|m| {
                Problem::new("RetentionInvalid", format!("copy {}: {m}", copy.name))
            })?;
        }
        let copy_fs = matches!(mount, StorageMount::Filesystem { .. });
        valid.push(ValidCopy {
            name: copy.name.clone(),
            target: format!("{storage_name}/{path}"),
            storage: storage_name.clone(),
            path: path.clone(),
            url,
            own_url,
            repo_label: repository_label(
                set.metadata.namespace.as_deref().unwrap_or_default(),
                storage_name,
                &path,
            ),
            mount,
            mover: mover(primary_fs || copy_fs)?,
            retention,
        });
    }
    Ok(valid)
}
