//! StorageSet: where backups are kept.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ClaimReference, JobTemplate, LocalObjectReference, conditions_schema};

/// A storage target: an S3 bucket and prefix (AWS or any S3-compatible store), or a path on
/// a PersistentVolumeClaim (a PVC, NFS share, …). Many BackupSets may share one StorageSet;
/// each keeps its own repository under it.
// clippy reads the repeated `printcolumn(name, type_, json_path)` keys as duplicate attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "holdfast.io",
    doc = "A storage target for backups: an S3 bucket or a PersistentVolumeClaim path.",
    version = "v1alpha1",
    kind = "StorageSet",
    namespaced,
    status = "StorageSetStatus",
    shortname = "sset",
    shortname = "hfss",
    category = "holdfast",
    printcolumn(name = "Bucket", type_ = "string", json_path = ".spec.s3.bucket"),
    printcolumn(
        name = "Claim",
        type_ = "string",
        json_path = ".spec.filesystem.persistentVolumeClaim.claimName"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Used",
        type_ = "string",
        json_path = ".status.inventory.totalSize"
    ),
    printcolumn(name = "Checked", type_ = "date", json_path = ".status.lastCheckTime"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("has(self.s3) != has(self.filesystem)").message("set exactly one of s3 or filesystem"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageSetSpec {
    /// An S3 or S3-compatible bucket. Exactly one of s3 and filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Target>,
    /// A directory on a PersistentVolumeClaim. Exactly one of s3 and filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FilesystemTarget>,
    /// Transfer tuning: parallel transfers and bandwidth limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferSettings>,
    /// What its storage-check job pods carry besides what the controller decides
    /// (placement, priority, pull secrets, labels, annotations, resources), over the
    /// cluster's defaults (the chart's `jobs`): e.g. the resources a namespace's
    /// ResourceQuota requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_template: Option<JobTemplate>,
}

/// An S3 bucket.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3Target {
    /// Bucket name.
    #[schemars(length(min = 3, max = 63), pattern(r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$"))]
    pub bucket: String,
    /// Key prefix under which repositories are kept, e.g. `prod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[^/].*[^/]$|^[^/]$"))]
    pub prefix: Option<String>,
    /// Bucket region, e.g. `eu-west-1`. Defaults to the ambient AWS configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Endpoint of an S3-compatible store (MinIO, Ceph RGW, Garage, …), e.g.
    /// `https://s3.example.internal`. Omit for AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^https?://"))]
    pub endpoint: Option<String>,
    /// Address the bucket in the path (`endpoint/bucket/key`) rather than the host name;
    /// most self-hosted stores need this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_path_style: Option<bool>,
    /// Secret with `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and optionally
    /// `AWS_SESSION_TOKEN`). Omit to use ambient credentials (IRSA, instance role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<LocalObjectReference>,
    /// Storage class for new objects, e.g. `STANDARD_IA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Server-side encryption to request (data is always encrypted client-side as well).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_side_encryption: Option<ServerSideEncryption>,
}

/// Server-side encryption modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ServerSideEncryption {
    /// S3-managed keys (`AES256`).
    #[serde(rename = "AES256")]
    Aes256,
    /// AWS KMS (`aws:kms`) with the bucket's default key.
    #[serde(rename = "aws:kms")]
    AwsKms,
}

/// A directory on a PersistentVolumeClaim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilesystemTarget {
    /// The claim holding the repositories.
    pub persistent_volume_claim: ClaimReference,
    /// Directory within the volume, e.g. `/backups`. Defaults to the volume root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^/"))]
    pub path: Option<String>,
}

/// Transfer tuning.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferSettings {
    /// Volumes transferred in parallel per job (the seeds' "threads per upload").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub concurrency: Option<u32>,
    /// Upload limit in bytes per second, e.g. `50Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[0-9]+(Ki|Mi|Gi|K|M|G)?$"))]
    pub max_upload_rate: Option<String>,
    /// Download limit in bytes per second, e.g. `100Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[0-9]+(Ki|Mi|Gi|K|M|G)?$"))]
    pub max_download_rate: Option<String>,
}

/// What the controller last observed about the storage target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSetStatus {
    /// `Ready` is true when the target is reachable and writable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the last connection check ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_time: Option<Time>,
    /// Media inventory across the repositories in this target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<StorageInventory>,
    /// Size and free space of a filesystem target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
    /// The generation the last storage check tested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_generation: Option<i64>,
    /// The BackupSets keeping their repositories here, by name (the first 100; `usedByCount`
    /// counts them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<String>,
    /// How many BackupSets keep their repositories here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by_count: Option<u32>,
    /// The checks of the last storage check that failed, with what to fix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_checks: Vec<String>,
    /// Why the last storage check failed, when only a user can fix it (e.g.
    /// `BucketNotFound`, `InvalidCredentials`, `PermissionDenied`): BackupSets using this
    /// StorageSet start no backup until a check passes. Absent when the check passed or
    /// failed in a way that may pass by itself (a timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// The last storage-check Job whose result this status holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_job: Option<String>,
}

/// Media inventory summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageInventory {
    /// Number of volumes (pack files).
    pub volumes: u64,
    /// Bytes stored.
    pub total_bytes: u64,
    /// `totalBytes` for humans, e.g. `3.4 GiB`.
    pub total_size: String,
    /// Bytes that retained runs need.
    pub live_bytes: u64,
    /// Bytes a purge could reclaim (as of each set's last purge).
    pub reclaimable_bytes: u64,
    /// Per backup set (repository): the 100 largest, largest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_backup_set: Vec<BackupSetUsage>,
    /// How many backup sets the totals cover.
    #[serde(default)]
    pub backup_sets: u32,
}

/// One repository's share of a storage target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSetUsage {
    /// The BackupSet's name.
    pub name: String,
    /// Its repository prefix within the target.
    pub repository: String,
    /// Bytes stored.
    pub bytes: u64,
}

/// Capacity of a filesystem target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    /// Size of the filesystem in bytes.
    pub total_bytes: u64,
    /// Free bytes.
    pub available_bytes: u64,
}
