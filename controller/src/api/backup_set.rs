//! BackupSet: what to back up, where, when and for how long.

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::common::Level;
use super::common::{
    DURATION_PATTERN, Encryption, JobTemplate, LocalObjectReference, Mover, conditions_schema,
};
pub use super::hook::{Hook, HookResult};

/// One group of sources backed up together: a data boundary (stored, deduplicated and
/// encrypted apart from every other set), bound to one StorageSet for life, run on a
/// Schedule, kept by its retention policy.
// clippy reads the repeated `printcolumn(name, type_, json_path)` keys as duplicate attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "holdfast.io",
    doc = "What to back up (PVCs, command streams), where, when and for how long.",
    version = "v1alpha1",
    kind = "BackupSet",
    namespaced,
    status = "BackupSetStatus",
    shortname = "bset",
    shortname = "hfbs",
    category = "holdfast",
    printcolumn(
        name = "Storage",
        type_ = "string",
        json_path = ".spec.storageSetRef.name"
    ),
    printcolumn(
        name = "Schedule",
        type_ = "string",
        json_path = ".spec.scheduleRef.name"
    ),
    printcolumn(
        name = "Last Run",
        type_ = "string",
        json_path = ".status.lastRun.label"
    ),
    printcolumn(name = "Result", type_ = "string", json_path = ".status.lastRun.phase"),
    printcolumn(name = "Next Run", type_ = "date", json_path = ".status.nextRun.time"),
    printcolumn(
        name = "Suspended",
        type_ = "boolean",
        json_path = ".spec.suspend",
        priority = 1
    ),
    printcolumn(
        name = "Restore Points",
        type_ = "integer",
        json_path = ".status.restorePoints.count",
        priority = 1
    ),
    printcolumn(
        name = "Last Success",
        type_ = "date",
        json_path = ".status.lastSuccessfulTime",
        priority = 1
    ),
    printcolumn(
        name = "Failures",
        type_ = "integer",
        json_path = ".status.consecutiveFailures",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("has(self.repository) == has(oldSelf.repository)").message("repository is immutable: it cannot be added or removed after creation"))]
#[x_kube(validation = Rule::new("!(has(self.resources) && has(self.jobTemplate) && has(self.jobTemplate.resources))").message("set resources or jobTemplate.resources, not both"))]
#[x_kube(validation = Rule::new("has(self.groupSnapshot) || self.sources.all(s, !has(s.persistentVolumeClaim) || !has(s.persistentVolumeClaim.copyMethod) || s.persistentVolumeClaim.copyMethod != 'Snapshot' || has(s.persistentVolumeClaim.volumeSnapshotClassName))").message("copyMethod Snapshot needs volumeSnapshotClassName (or the set's groupSnapshot)"))]
#[x_kube(validation = Rule::new("!has(self.groupSnapshot) || self.sources.all(s, !has(s.persistentVolumeClaim) || !has(s.persistentVolumeClaim.volumeSnapshotClassName))").message("with groupSnapshot the Snapshot sources are taken by its class: remove their volumeSnapshotClassName"))]
#[x_kube(validation = Rule::new("!has(self.groupSnapshot) || self.sources.exists(s, has(s.persistentVolumeClaim) && has(s.persistentVolumeClaim.copyMethod) && s.persistentVolumeClaim.copyMethod == 'Snapshot')").message("groupSnapshot needs at least one source with copyMethod Snapshot"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupSetSpec {
    /// The StorageSet that holds this set's repository. Immutable: a set's data never moves.
    #[x_kube(validation = Rule::new("self == oldSelf").message("storageSetRef is immutable: create a new BackupSet to use another StorageSet"))]
    pub storage_set_ref: LocalObjectReference,
    /// Repository prefix within the StorageSet. Defaults to `<namespace>/<name>`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[a-z0-9][a-z0-9._\-/]*$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("repository is immutable"))]
    pub repository: Option<String>,
    /// The Schedule to run on. Without one, the set only runs on `runOnCreate` or a manual
    /// run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_ref: Option<LocalObjectReference>,
    /// Stop scheduled runs (restores still work).
    #[serde(default)]
    pub suspend: bool,
    /// What to back up. Names must be unique; they name the sources in runs and restores.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(validation = Rule::new("self.all(s, self.exists_one(t, t.name == s.name))").message("source names must be unique"))]
    pub sources: Vec<Source>,
    /// How the repository is encrypted.
    pub encryption: Encryption,
    /// Compression of new data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// How long runs are kept. Without it, runs are kept until deleted by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Sources backed up at the same time in one run (PVC sources may need to be on the
    /// same node to be mounted together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16))]
    pub parallelism: Option<u32>,
    /// Time limits for job pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    /// What happens to the backups when this BackupSet is deleted: `Retain` keeps the
    /// repository (restorable later via a Restore with storageSetRef), `Purge` deletes it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Run a backup as soon as the set is created (otherwise the first run waits for the
    /// schedule).
    #[serde(default)]
    pub run_on_create: bool,
    /// Ask for a run now, GitOps style: set a new token value (e.g. a date) and commit. A
    /// value that differs from the last one handled runs once (so reverting to an earlier
    /// value runs again); re-applying the same value does nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_run: Option<ManualRun>,
    /// Resources for the job pods (the same as `jobTemplate.resources`; set one of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// What the set's job pods carry besides what the controller decides: tolerations, node
    /// selector, affinity, priority class, image pull secrets, labels, annotations and
    /// resources, over the cluster's defaults (the chart's `jobs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_template: Option<JobTemplate>,
    /// Who the job pods run as. Default: unprivileged, as the user and groups of the pods
    /// that mount the claims (sets whose StorageSet is a filesystem claim keep the
    /// privileged mover for now: their repositories' files belong to root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mover: Option<Mover>,
    /// Commands run in the application's pods before and after each backup, to make its
    /// data consistent on disk (a checkpoint, a lock, a freeze) and undo that afterwards.
    /// Needs the chart's `hooks.enabled` (it grants the controller `pods/exec`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(validation = Rule::new("self.all(h, self.exists_one(g, g.name == h.name))").message("hook names must be unique"))]
    pub hooks: Vec<Hook>,
    /// Take the set's `Snapshot` sources together, at one instant, as one CSI
    /// VolumeGroupSnapshot (an application whose data spans several claims: a database and
    /// its WAL, shards written in step). Without it each claim gets a VolumeSnapshot of its
    /// own, one after another inside the hooks' window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_snapshot: Option<GroupSnapshot>,
    /// Second (third…) repositories of the set in other StorageSets, filled after each
    /// backup from the set's repository without reading the sources again: another place,
    /// another medium (3-2-1). Each restores, verifies and purges on its own, and is kept
    /// when the set is deleted, whatever its `deletionPolicy` (`holdfast destroy` deletes
    /// one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    #[x_kube(validation = Rule::new("self.all(c, self.exists_one(d, d.name == c.name))").message("copy names must be unique"))]
    pub copies: Vec<CopySpec>,
}

/// A copy of the set's repository in another StorageSet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CopySpec {
    /// Name of the copy within the set, e.g. `offsite`: in its Jobs' names and in status.
    #[schemars(
        length(min = 1, max = 20),
        pattern(r"^[a-z0-9]([a-z0-9\-]*[a-z0-9])?$")
    )]
    pub name: String,
    /// The StorageSet that holds the copy: another bucket, region or medium than the set's
    /// own (it may be the same StorageSet, at another repository path).
    pub storage_set_ref: LocalObjectReference,
    /// Repository prefix within that StorageSet. Defaults to the set's repository path.
    /// Changing it (or the StorageSet) starts a new copy, filled from scratch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[a-z0-9][a-z0-9._\-/]*$"))]
    pub repository: Option<String>,
    /// How long the copy keeps runs, purged in the set's purge window: its own (a copy
    /// offsite often keeps more, or less, than the set). Defaults to the set's retention.
    /// As in the set, each source's newest complete run is never expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

/// Several claims captured at one instant by their CSI driver.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupSnapshot {
    /// The VolumeGroupSnapshotClass: its driver must hold every claim of the group.
    #[schemars(length(min = 1, max = 253))]
    pub volume_group_snapshot_class_name: String,
    /// The labels that select the claims of the group, as the group snapshot API wants: they
    /// must select exactly the claims of the set's `Snapshot` sources (the set stalls with
    /// `GroupSnapshotSelectorMismatch` and names the difference otherwise).
    pub claim_selector: LabelSelector,
}

/// One source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.persistentVolumeClaim) != has(self.command)").message("set exactly one of persistentVolumeClaim or command"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// Name of the source within runs, e.g. `uploads`.
    #[schemars(
        length(min = 1, max = 63),
        pattern(r"^[a-z0-9]([a-z0-9._\-]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Back up the files of a PersistentVolumeClaim (mounted read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<PvcSource>,
    /// Back up the standard output of a command run in its own container, e.g. a database
    /// dump.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandSource>,
}

/// A PVC source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.volumeSnapshotClassName) || (has(self.copyMethod) && self.copyMethod == 'Snapshot')").message("volumeSnapshotClassName is for copyMethod Snapshot"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PvcSource {
    /// Name of the PersistentVolumeClaim, in this namespace.
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: String,
    /// Sub-directory of the volume to back up. Defaults to the whole volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^/"))]
    pub path: Option<String>,
    /// Glob patterns to leave out: `*.tmp` matches at any depth, `/cache` at the root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// How the claim is read. `Direct` (the default): the live claim, mounted read-only
    /// beside the application, which may change files while they are read. `Snapshot`: a
    /// CSI VolumeSnapshot of the claim, taken after the `pre` hooks (and followed by the
    /// `post` ones), is read through a temporary claim made from it; the run holds the
    /// claim as it was at that instant, the job pod needs no place beside the application,
    /// and both temporary objects are deleted when the run ends. `Clone`: a temporary CSI
    /// clone of the claim (a claim whose dataSource is this one; same StorageClass), made
    /// after `pre`; `post` runs once the clone is bound (a WaitForFirstConsumer class binds
    /// it when the job pod is scheduled) or when the run ends; for drivers that clone but
    /// do not snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_method: Option<CopyMethod>,
    /// The VolumeSnapshotClass of the snapshot (copyMethod `Snapshot`): its driver must be
    /// the claim's. Required unless the set takes its snapshots as a `groupSnapshot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub volume_snapshot_class_name: Option<String>,
}

/// How a claim is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CopyMethod {
    /// The live claim.
    #[default]
    Direct,
    /// A CSI snapshot of the claim, through a temporary claim made from it.
    Snapshot,
    /// A temporary CSI clone of the claim.
    Clone,
}

impl PvcSource {
    /// Read through a snapshot.
    pub fn snapshot(&self) -> bool {
        self.copy_method == Some(CopyMethod::Snapshot)
    }

    /// Read through a clone.
    pub fn clone_copy(&self) -> bool {
        self.copy_method == Some(CopyMethod::Clone)
    }

    /// Read through a copy made for the run (a snapshot or a clone), not in place.
    pub fn copied(&self) -> bool {
        self.snapshot() || self.clone_copy()
    }
}

/// A command source: stdout is the data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandSource {
    /// Container image to run, e.g. `postgres:16`.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Entrypoint override.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments, e.g. `[pg_dumpall, -h, shop-db]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment, e.g. a password from a Secret with `valueFrom.secretKeyRef`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// File name the stream is stored under. Defaults to the source name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[^/]+$"))]
    pub file_name: Option<String>,
    /// Resources of the command's container (what the dump tool needs). Default: the job
    /// pods' resources (`jobTemplate.resources`, the set's `resources` or the chart's
    /// `jobs.resources`), as a ResourceQuota that requires limits requires them of every
    /// container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// Compression of new data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Compression {
    /// `fast`, `default`, `best`, `off`, or a zstd level from 1 to 19.
    #[serde(default = "default_compression")]
    #[schemars(pattern(r"^(fast|default|best|off|[1-9]|1[0-9])$"))]
    pub level: String,
}

fn default_compression() -> String {
    "default".to_owned()
}

/// Retention, applied to each source on its own (sources have their own rhythms of fulls).
/// A full and every run based on it (a cycle) are kept or expired together; a cycle is kept
/// if it is one of the newest `keepFulls` cycles or has a run younger than `maxAge`. The GFS
/// rules keep the newest restore point of each of the newest N days, weeks, months and
/// years that have one, with the runs it was based on. Rules add up. Archived runs and
/// each source's newest complete run are never expired.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.keepFulls) || has(self.maxAge) || has(self.keepDaily) || has(self.keepWeekly) || has(self.keepMonthly) || has(self.keepYearly)").message("retention needs at least one rule: keepFulls, maxAge, keepDaily, keepWeekly, keepMonthly or keepYearly (maxAge: forever keeps everything)"))]
#[x_kube(validation = Rule::new("(has(self.keepFulls) && self.keepFulls > 0) || (has(self.maxAge) && !self.maxAge.matches('^0+[dwmy]$')) || (has(self.keepDaily) && self.keepDaily > 0) || (has(self.keepWeekly) && self.keepWeekly > 0) || (has(self.keepMonthly) && self.keepMonthly > 0) || (has(self.keepYearly) && self.keepYearly > 0)").message("this retention keeps nothing: give one rule a count of at least 1 or a maxAge above zero"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retention {
    /// The brake on mass deletion: a purge that would expire more than this percentage of
    /// the restore points, or every full of a source but the newest (two or more), expires
    /// nothing and waits for approval (`holdfast.io/approve-purge`). Default 50; 100
    /// releases the brake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_expire_percent: Option<u8>,
    /// Keep each source's newest N full cycles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub keep_fulls: Option<u32>,
    /// Keep cycles with a run younger than this: `90d`, `12w`, `6m`, `1y`, or `forever`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^([0-9]+[dwmy]|forever)$"))]
    #[x_kube(validation = Rule::new("!self.matches('^0+[dwmy]$')").message("maxAge of zero keeps nothing"))]
    pub max_age: Option<String>,
    /// Keep the newest restore point of each of the newest N days (UTC) that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub keep_daily: Option<u32>,
    /// Keep the newest restore point of each of the newest N ISO weeks that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub keep_weekly: Option<u32>,
    /// Keep the newest restore point of each of the newest N months that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub keep_monthly: Option<u32>,
    /// Keep the newest restore point of each of the newest N years that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub keep_yearly: Option<u32>,
}

/// Time limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timeouts {
    /// A backup job running longer is stopped and the run marked Aborted, e.g. `6h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub backup: Option<String>,
    /// Same for purge and verify jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub maintenance: Option<String>,
}

/// What deleting the BackupSet does to its backups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the repository.
    #[default]
    Retain,
    /// Delete the repository and everything in it.
    Purge,
}

/// A manual run request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManualRun {
    /// Any value; a value that differs from the last one handled runs once.
    #[schemars(length(min = 1, max = 128))]
    pub token: String,
    /// Level of the manual run: `full`, `diff` or `incr` (default `incr`, promoted to full
    /// when there is no full yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^(full|diff|incr)$"))]
    pub level: Option<String>,
}

/// Where a BackupSet stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SetPhase {
    /// Valid, nothing running.
    Idle,
    /// An operation of its repository is running or waiting.
    Running,
    /// Scheduled runs are off.
    Suspended,
    /// Cannot proceed (see the Stalled condition).
    Failed,
    /// Valid, and waits for something on its way before it runs, such as its StorageSet's
    /// first check (see the Reconciling condition).
    Waiting,
    /// Being deleted.
    Terminating,
}

/// How a run ended (or that it has not yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RunPhase {
    /// Waiting for the repository (another operation runs).
    Queued,
    Running,
    Complete,
    /// Some items could not be read; everything else is stored.
    Partial,
    Failed,
    /// Stopped on request; what was read before is recorded.
    Aborted,
}

/// Observed state of a BackupSet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSetStatus {
    /// `Ready`, `Reconciling`, `Stalled`, with reason and message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Idle`, `Running`, `Suspended`, `Failed` (references missing or invalid) or
    /// `Terminating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SetPhase>,
    /// The most recent backup run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunSummary>,
    /// When the last Complete or Partial backup finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// Backups that failed in a row since the last one that stored something.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// The next planned backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<NextRun>,
    /// The last ten backup runs, newest first (the full catalog is in the repository).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_runs: Vec<RunSummary>,
    /// State of each source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceState>,
    /// What can be restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_points: Option<RestorePoints>,
    /// The last purge's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionResult>,
    /// The last verification's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerifyResult>,
    /// Operations waiting for the repository (one runs at a time), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queue: Vec<QueuedOperation>,
    /// Repository usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The last manual-run token acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_manual_token: Option<String>,
    /// The last `holdfast.io/abort` annotation value acted on (each new value aborts the
    /// running backup once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_abort_token: Option<String>,
    /// Scheduled runs skipped because they were missed (the controller was down past the
    /// starting deadline, or the previous run was still going).
    #[serde(default)]
    pub missed_runs: u64,
    /// The scheduler's bookkeeping: the newest slot acted on per operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<SlotState>,
    /// Jobs whose results this status already holds (newest last, bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handled_jobs: Vec<String>,
    /// Each copy: how far it has caught up, what its last copy moved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<CopyStatus>,
}

/// Where one copy stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyStatus {
    /// The copy's name.
    pub name: String,
    /// The copy's repository (its StorageSet and path), so a changed target is told from
    /// the old one.
    pub target: String,
    /// When the last copy that succeeded started: every run recorded before it is in the
    /// copy (or was expired there by its own retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caught_up_to: Option<Time>,
    /// When the last copy attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<Time>,
    /// Copies that failed in a row (the next waits longer: 1 minute, doubling, at most 1
    /// hour).
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Why the last copy failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Runs the last copy moved.
    #[serde(default)]
    pub runs_copied: u64,
    /// Bytes the last copy moved (as stored: compressed and encrypted).
    #[serde(default)]
    pub bytes_moved: u64,
    /// Bytes moved by every copy so far.
    #[serde(default)]
    pub total_bytes_moved: u64,
    /// The copy's size, as its last copy found it.
    #[serde(default)]
    pub stored_bytes: u64,
    /// The copy's last purge, by its own retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionResult>,
    /// The copy's last verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerifyResult>,
}

/// The newest scheduled slot acted on (run, queued or skipped) per operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlotState {
    /// Backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Time>,
    /// Purges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge: Option<Time>,
    /// Verifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Time>,
    /// The `runOnCreate` backup was started.
    #[serde(default)]
    pub run_on_create_done: bool,
}

/// A run, as status shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Run label, e.g. `full-20261122.010000` (UTC); the job's name while it has none yet.
    pub label: String,
    /// `full`, `diff` or `incr` (the most incremental level of its sources).
    pub level: Level,
    /// `Queued`, `Running`, `Complete`, `Partial`, `Failed` or `Aborted`.
    pub phase: RunPhase,
    /// The Job that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// When the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Files in the run.
    #[serde(default)]
    pub files: u64,
    /// Bytes read from the sources.
    #[serde(default)]
    pub bytes_read: u64,
    /// Bytes added to storage after dedup and compression.
    #[serde(default)]
    pub bytes_stored: u64,
    /// Items that could not be read.
    #[serde(default)]
    pub errors: u64,
    /// Who the job pod ran as, e.g. `restricted uid 1000 gid 1000 (from pod shop-0)` or
    /// `privileged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mover: Option<String>,
    /// Attempts stopped by a disruption (a node drain, a preemption) and run again by the
    /// Job; the message names the first one's pod and node.
    #[serde(default)]
    pub interruptions: u32,
    /// The hook commands run for it, in the order they ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookResult>,
    /// The sources read from a snapshot (copyMethod `Snapshot`), with the instant each
    /// holds; the others were read live.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<SnapshotTaken>,
    /// The claims read live (copyMethod `Direct`) while the application could write them:
    /// their files were read one after another during the run, not at one instant. Use
    /// copyMethod `Snapshot` (with hooks for what must be flushed) for one instant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live_sources: Vec<String>,
    /// The sources read from a temporary CSI clone of their claim (copyMethod `Clone`),
    /// made after `pre`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cloned_sources: Vec<String>,
    /// Why it failed, or what was partial, or why it was run again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A source read from a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotTaken {
    /// The source's name.
    pub source: String,
    /// The VolumeSnapshot (deleted once the run ended).
    pub volume_snapshot: String,
    /// The instant the snapshot holds, as its driver reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<Time>,
    /// The VolumeGroupSnapshot it was taken in, with the set's other `Snapshot` sources at
    /// the same instant; absent when it was snapshotted on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_group_snapshot: Option<String>,
}

/// The next planned run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NextRun {
    /// When (the jitter included).
    pub time: Time,
    /// At which level (in Auto mode, each source's level is chosen at the run).
    pub level: Level,
}

/// A source's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceState {
    /// Source name.
    pub name: String,
    /// `Online` (last run complete), `Partial` (some items failed) or `Offline` (could not
    /// be read: missing PVC, failing command).
    pub state: String,
    /// Its level in the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_level: Option<Level>,
    /// Label of its last full run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full: Option<String>,
    /// When its last full ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full_time: Option<Time>,
    /// Its logical size in its last run.
    #[serde(default)]
    pub size_bytes: u64,
    /// Why it is Partial or Offline (e.g. a dump's exit status and stderr tail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Restore points.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestorePoints {
    /// Number of runs holding a restorable source.
    pub count: u64,
    /// The oldest one's start time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest: Option<Time>,
    /// The newest one's start time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest: Option<Time>,
}

/// A purge's result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionResult {
    /// When the last purge ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_purge_time: Option<Time>,
    /// Runs it expired.
    #[serde(default)]
    pub runs_expired: u64,
    /// Runs it kept.
    #[serde(default)]
    pub runs_kept: u64,
    /// Bytes it reclaimed.
    #[serde(default)]
    pub bytes_reclaimed: u64,
    /// What it could not finish and left for the next purge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The brake stopped the last purge: it waits for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_approval: Option<PurgeApproval>,
}

/// A purge the brake on mass deletion stopped, waiting for approval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurgeApproval {
    /// The plan: `kubectl annotate backupset <set> holdfast.io/approve-purge=<plan>` runs
    /// exactly this purge (several plans: comma-separated).
    pub plan: String,
    /// Why it waits.
    pub reason: String,
    /// Runs it would expire.
    pub runs_count: u64,
    /// Which (the oldest 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<String>,
    /// When it was stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
}

/// A verification's result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResult {
    /// When it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// `quick`, `deep` or `deep (sample N%)`.
    pub depth: String,
    /// Whether the repository was found intact.
    pub ok: bool,
    /// Volumes read back.
    #[serde(default)]
    pub volumes_read: u64,
    /// Damaged volumes and problems, in short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A queued operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueuedOperation {
    /// `backup`, `purge`, `verify` or `restore/<name>`.
    pub operation: String,
    /// Its Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// When it was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<Time>,
}

/// Repository usage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Bytes stored in the repository.
    pub stored_bytes: u64,
    /// Volumes (pack files) in the repository.
    #[serde(default)]
    pub volumes: u64,
    /// Bytes retained runs need (known after a purge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_bytes: Option<u64>,
    /// Bytes a purge could reclaim (known after a purge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaimable_bytes: Option<u64>,
    /// Logical bytes of the newest run.
    pub logical_bytes: u64,
}

impl BackupSet {
    /// The repository path of the set: `spec.repository` or `<namespace>/<name>`.
    pub fn repository(&self) -> String {
        self.spec.repository.clone().unwrap_or_else(|| {
            format!(
                "{}/{}",
                self.metadata.namespace.as_deref().unwrap_or_default(),
                self.metadata.name.as_deref().unwrap_or_default()
            )
        })
    }

    /// What its job pods carry (`jobTemplate`, with `resources` where the set gives them
    /// beside it), if it says anything.
    pub fn job_template(&self) -> Option<JobTemplate> {
        let spec = &self.spec;
        if spec.job_template.is_none() && spec.resources.is_none() {
            return None;
        }
        let mut t = spec.job_template.clone().unwrap_or_default();
        t.resources = t.resources.or_else(|| spec.resources.clone());
        Some(t)
    }

    /// The claims its PVC sources back up, in the order of its sources.
    pub fn source_claims(&self) -> impl Iterator<Item = &str> {
        self.spec
            .sources
            .iter()
            .filter_map(|s| s.persistent_volume_claim.as_ref())
            .map(|p| p.claim_name.as_str())
    }
}
