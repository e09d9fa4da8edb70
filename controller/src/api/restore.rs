//! Restore: a one-shot request to restore a run.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    ClaimReference, Encryption, JobTemplate, LocalObjectReference, Mover, conditions_schema,
};

/// Restore a BackupSet's run (or, for disaster recovery, a repository found in a StorageSet)
/// to a point in time, into an existing or new PersistentVolumeClaim. One-shot: the spec is
/// immutable, and re-applying the same manifest never runs it again.
// clippy reads the repeated `printcolumn(name, type_, json_path)` keys as duplicate attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "holdfast.io",
    doc = "A one-shot restore of a run to an existing or new PersistentVolumeClaim.",
    version = "v1alpha1",
    kind = "Restore",
    namespaced,
    status = "RestoreStatus",
    shortname = "hfrestore",
    shortname = "hfrs",
    category = "holdfast",
    printcolumn(
        name = "Backup Set",
        type_ = "string",
        json_path = ".spec.backupSetRef.name"
    ),
    printcolumn(name = "Run", type_ = "string", json_path = ".status.run"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Restored", type_ = "integer", json_path = ".status.restored"),
    printcolumn(
        name = "Unrestored",
        type_ = "integer",
        json_path = ".status.unrestored"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("a Restore is one-shot and its spec is immutable: create a new Restore"))]
#[x_kube(validation = Rule::new("has(self.backupSetRef) != has(self.storageSetRef)").message("set exactly one of backupSetRef, or storageSetRef with repository (disaster recovery)"))]
#[x_kube(validation = Rule::new("!has(self.storageSetRef) || (has(self.repository) && has(self.encryption))").message("disaster recovery from a storageSetRef needs repository and encryption"))]
#[x_kube(validation = Rule::new("!(has(self.pointInTime) && has(self.label))").message("set at most one of pointInTime and label"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreSpec {
    /// The BackupSet whose runs to restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_set_ref: Option<LocalObjectReference>,
    /// Disaster recovery: the StorageSet to find the repository in, when its BackupSet is
    /// gone (e.g. a rebuilt cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_set_ref: Option<LocalObjectReference>,
    /// Disaster recovery: the repository prefix within the StorageSet (`<namespace>/<name>`
    /// of the original BackupSet by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Disaster recovery: the repository's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// Restore the newest restorable run started at or before this time (RFC 3339). With
    /// neither this nor label, the newest run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_in_time: Option<Time>,
    /// Restore exactly this run, e.g. `full-20261120.010000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^(full|diff|incr)-[0-9]{8}\.[0-9]{6}$"))]
    pub label: Option<String>,
    /// Also consider Partial runs when choosing by time or newest.
    #[serde(default)]
    pub allow_partial: bool,
    /// Sources to restore (default all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// Only paths matching these globs, and everything below them, e.g. `/images/**`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Leave out paths matching these globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Where to restore to.
    pub target: RestoreTarget,
    /// What to do with files that already exist: `Never` replace them, replace `IfNewer`,
    /// or `Always`.
    #[serde(default)]
    pub overwrite: Overwrite,
    /// Restore everything that can be, listing what could not; otherwise stop at the first
    /// failure.
    #[serde(default = "default_true")]
    pub continue_on_error: bool,
    /// Also recreate device nodes (character and block devices): a privileged restore pod
    /// then gets the `MKNOD` capability as well (still within the baseline Pod Security
    /// level). Without it, or with an unprivileged mover, device nodes are listed as
    /// unrestored, naming the capability.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub device_nodes: bool,
    /// Who the restore pod runs as. Default: unprivileged, as the user and groups of the
    /// pods that mount the target claim, else as the set's mover (files then belong to that
    /// user; the owners it could not set are counted). `privileged: true` restores owners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mover: Option<Mover>,
    /// What the restore's job pod carries besides what the controller decides:
    /// tolerations, node selector, affinity, priority class, image pull secrets, labels,
    /// annotations and resources, over the cluster's defaults (the chart's `jobs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_template: Option<JobTemplate>,
}

fn default_true() -> bool {
    true
}

/// The restore target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.persistentVolumeClaim) != has(self.newPersistentVolumeClaim)").message("set exactly one of persistentVolumeClaim or newPersistentVolumeClaim"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreTarget {
    /// An existing claim to restore into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<ClaimReference>,
    /// A claim for the controller to create (owned by this Restore only if
    /// `deleteWithRestore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_persistent_volume_claim: Option<NewClaim>,
    /// Directory within the volume, e.g. `/` (a single source fills it; several go to
    /// `<path>/<source>`).
    #[serde(default = "default_root")]
    #[schemars(pattern(r"^/"))]
    pub path: String,
}

fn default_root() -> String {
    "/".to_owned()
}

/// A claim to create.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewClaim {
    /// Name of the new claim.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Size, e.g. `20Gi`.
    #[schemars(pattern(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|K|M|G|T|P)?$"))]
    pub size: String,
    /// Storage class; the cluster default when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Access modes (default `ReadWriteOnce`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_modes: Vec<String>,
    /// Delete the claim when this Restore is deleted (default false: the data stays).
    #[serde(default)]
    pub delete_with_restore: bool,
}

/// Overwrite policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Overwrite {
    /// Keep existing files.
    #[default]
    Never,
    /// Replace existing files older than the backed-up copy.
    IfNewer,
    /// Replace existing files.
    Always,
}

/// Where a Restore stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RestorePhase {
    /// Waiting for its references (or a new claim to bind).
    Pending,
    /// Waiting for the repository (another operation runs).
    Queued,
    Running,
    /// Everything selected was restored or deliberately skipped.
    Completed,
    /// Some items could not be restored; the rest were (see unrestoredItems).
    PartiallyFailed,
    /// Nothing could be restored, or it stopped at the first failure.
    Failed,
}

impl RestorePhase {
    /// Finished: a one-shot Restore never runs again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RestorePhase::Completed | RestorePhase::PartiallyFailed | RestorePhase::Failed
        )
    }
}

/// Observed state of a Restore.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    /// `Ready` (done), `Reconciling` (running), `Stalled` (cannot proceed), with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Pending`, `Queued`, `Running`, `Completed`, `PartiallyFailed` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestorePhase>,
    /// The newest run restored from (each source's own run is in `sources`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Each source restored and the run it came from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<RestoredSource>,
    /// Who the restore pod ran as, e.g. `restricted uid 1000 gid 1000` or `privileged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mover: Option<String>,
    /// The Job that runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// When the restore started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Items restored.
    #[serde(default)]
    pub restored: u64,
    /// Items deliberately skipped (overwrite policy).
    #[serde(default)]
    pub skipped: u64,
    /// Items that could not be restored.
    #[serde(default)]
    pub unrestored: u64,
    /// Entries restored with the restore pod's user as owner, not the backed-up one (an
    /// unprivileged mover cannot give files away).
    #[serde(default)]
    pub owners_not_set: u64,
    /// Bytes written.
    #[serde(default)]
    pub bytes_restored: u64,
    /// The first unrestored items with their reasons (the job log has all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unrestored_items: Vec<UnrestoredItem>,
    /// A human-readable summary or failure reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A source restored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoredSource {
    /// The source.
    pub source: String,
    /// The run it came from.
    pub run: String,
}

/// An item that could not be restored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnrestoredItem {
    /// `source:/path`.
    pub path: String,
    /// Why.
    pub reason: String,
}
