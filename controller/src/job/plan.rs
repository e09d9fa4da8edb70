//! The plan a job pod runs: what the controller renders into the pod (the `HOLDFAST_JOB_PLAN`
//! variable) and `holdfast job run` executes. It names no secret: credentials and the
//! passphrase reach the pod as Secret references, never through the plan. Results come back
//! as an engine [`crate::job::summary::JobSummary`] in the termination message.

pub use crate::operation::OperationKind;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use holdfast_engine::compress::CompressionLevel;
use holdfast_engine::format::run::Level;
use holdfast_engine::restore::Overwrite;
use serde::{Deserialize, Serialize};

use crate::api::backup_set::Retention;

/// The variable holding the plan (JSON).
pub const PLAN_ENV: &str = "HOLDFAST_JOB_PLAN";
/// The variable holding, for a backup that reads sources from snapshots, the instant each
/// snapshot holds: a JSON object of source name to RFC 3339 time. Filled by the downward
/// API from the pod annotation [`SNAPSHOT_TIMES_ANNOTATION`], which the controller sets on
/// the held Job's template when the snapshots are cut, after the plan was written.
pub const SNAPSHOT_TIMES_ENV: &str = "HOLDFAST_SNAPSHOT_TIMES";
/// The job pod's annotation holding the snapshots' instants (see [`SNAPSHOT_TIMES_ENV`]).
pub const SNAPSHOT_TIMES_ANNOTATION: &str = "holdfast.io/snapshot-times";
/// The plan's schema version; a job refuses a plan of another version.
pub const PLAN_VERSION: u32 = 1;

/// Where job pods mount things.
pub mod paths {
    /// PVC sources: `<SOURCES>/<source name>`.
    pub const SOURCES: &str = "/holdfast/sources";
    /// FIFOs of command sources and their markers.
    pub const STREAMS: &str = "/holdfast/streams";
    /// The holdfast binary, copied for command containers, with the dynamic loader
    /// (`ld.so`) and shared libraries (`lib/`) it runs with.
    pub const TOOLS: &str = "/holdfast/tools";
    /// A filesystem StorageSet's claim.
    pub const STORAGE: &str = "/holdfast/storage";
    /// A copy's filesystem StorageSet's claim.
    pub const COPY_STORAGE: &str = "/holdfast/copy-storage";
    /// A restore's target claim.
    pub const TARGET: &str = "/holdfast/target";
    /// The key Secret's volume; the passphrase is `<KEY>/passphrase`.
    pub const KEY: &str = "/holdfast/key";
    /// Scratch space (the root filesystem is read-only).
    pub const TMP: &str = "/tmp";
}

/// How a command container starts the helper `job tools` copied: through the loader and
/// libraries copied beside it, so that it runs in whatever image the dump needs — musl
/// (Alpine), static (busybox), distroless or another glibc — never with the image's own.
pub fn helper_command() -> Vec<String> {
    vec![
        format!("{}/ld.so", paths::TOOLS),
        "--library-path".into(),
        format!("{}/lib", paths::TOOLS),
        format!("{}/holdfast", paths::TOOLS),
    ]
}

/// One job's work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobPlan {
    pub version: u32,
    pub repository: RepositoryRef,
    pub operation: Operation,
}

/// The repository, without credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepositoryRef {
    /// `s3://bucket/prefix/repo?endpoint=…&path_style=true` or `file:///holdfast/storage/…`.
    pub url: String,
    /// The owning BackupSet, `<namespace>/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Create the repository if there is none (the first backup of a set).
    #[serde(default)]
    pub create: bool,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum Operation {
    Backup(BackupPlan),
    Purge(PurgePlan),
    Verify(VerifyPlan),
    Restore(RestorePlan),
    StorageCheck(StorageCheckPlan),
    DeleteRepository,
    Copy(CopyPlan),
}

impl Operation {
    /// Which operation, without its parameters.
    pub fn kind(&self) -> OperationKind {
        match self {
            Operation::Backup(_) => OperationKind::Backup,
            Operation::Purge(_) => OperationKind::Purge,
            Operation::Verify(_) => OperationKind::Verify,
            Operation::Restore(_) => OperationKind::Restore,
            Operation::StorageCheck(_) => OperationKind::StorageCheck,
            Operation::DeleteRepository => OperationKind::DeleteRepository,
            Operation::Copy(_) => OperationKind::Copy,
        }
    }

    /// The name used in job names, labels, events and metrics.
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }
}

/// The variables holding a copy's S3 keys (from its StorageSet's Secret), beside the
/// `AWS_*` ones of the set's own StorageSet: `HOLDFAST_COPY_AWS_ACCESS_KEY_ID`, ….
pub const COPY_CREDENTIALS_PREFIX: &str = "HOLDFAST_COPY_";

/// A copy: the runs the copy's repository lacks, moved from the set's repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CopyPlan {
    /// The copy's name in the BackupSet.
    pub name: String,
    /// The copy's repository (created there, sharing the set's key, when `create` and
    /// absent). Its S3 keys, if its StorageSet names a Secret, are in the variables
    /// prefixed [`COPY_CREDENTIALS_PREFIX`].
    pub to: RepositoryRef,
}

/// A backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupPlan {
    /// The scheduled slot: the run's label time, and the job that must record one run only.
    pub slot_time: DateTime<Utc>,
    pub slot_id: String,
    pub level: Level,
    /// Per-source levels (Auto mode).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_levels: BTreeMap<String, Level>,
    pub sources: Vec<SourcePlan>,
    /// Validated by the controller; the engine's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<CompressionLevel>,
    /// Volumes uploaded in parallel (rate limits are in the repository URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploads: Option<u32>,
}

/// One source in the pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourcePlan {
    pub name: String,
    /// A directory source: the path in the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A command source: the FIFO its container writes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fifo: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Read from a snapshot or a clone of the claim, not in place: a snapshot's instant
    /// comes from [`SNAPSHOT_TIMES_ENV`], a clone's is the pod's start (it was cut before);
    /// recorded as the source's restore-point time.
    /// (`snapshot` was its name until the Clone copy method; a plan from an older
    /// controller still reads.)
    #[serde(
        default,
        alias = "snapshot",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub copied: bool,
}

/// A purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurgePlan {
    pub retention: Retention,
    /// How long marked volumes wait before deletion.
    pub grace_seconds: u64,
    /// The brake on mass deletion: the most of the restore points one purge may expire,
    /// in percent (none: no brake).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brake_percent: Option<u8>,
    /// The braked plans someone approved: this purge may expire exactly the runs of one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved: Vec<String>,
}

/// A verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyPlan {
    pub deep: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_percent: Option<f64>,
}

/// A restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestorePlan {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_in_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub allow_partial: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// The directory in the pod to restore into.
    pub target: String,
    /// `never`, `if-newer` or `always` on the wire.
    pub overwrite: Overwrite,
    pub continue_on_error: bool,
}

/// A storage check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageCheckPlan {
    /// A filesystem target's mount, to report its size and free space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_path: Option<String>,
}

/// The engine's policy from a BackupSet's retention, or what is wrong with it.
pub fn retention_policy(
    r: &Retention,
) -> Result<holdfast_engine::retention::RetentionPolicy, String> {
    let max_age = r
        .max_age
        .as_deref()
        .map(|a| a.parse::<holdfast_engine::retention::MaxAge>())
        .transpose()
        .map_err(|e| e.to_string())?;
    let policy = holdfast_engine::retention::RetentionPolicy {
        keep_fulls: r.keep_fulls,
        max_age,
        keep_daily: r.keep_daily,
        keep_weekly: r.keep_weekly,
        keep_monthly: r.keep_monthly,
        keep_yearly: r.keep_yearly,
    };
    policy.validate().map_err(|e| e.to_string())?;
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_round_trip_and_refuse_unknown_fields() {
        let plan = JobPlan {
            version: PLAN_VERSION,
            repository: RepositoryRef {
                url: "s3://b/p/shop/shop?endpoint=http://127.0.0.1:9000&path_style=true".into(),
                owner: Some("shop/shop".into()),
                create: true,
            },
            operation: Operation::Backup(BackupPlan {
                slot_time: Utc::now(),
                slot_id: "shop-backup-202612010100".into(),
                level: Level::Incr,
                source_levels: BTreeMap::from([("db".to_owned(), Level::Full)]),
                sources: vec![SourcePlan {
                    name: "db".into(),
                    path: None,
                    fifo: Some("/holdfast/streams/db".into()),
                    exclude: vec![],
                    file_name: Some("shop.sql".into()),
                    copied: false,
                }],
                compression: None,
                uploads: Some(4),
            }),
        };
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<JobPlan>(&json).unwrap(), plan);
        assert!(json.contains(r#""type":"backup""#), "{json}");
        let bad = json.replace(r#""create":true"#, r#""create":true,"passphrase":"x""#);
        assert!(serde_json::from_str::<JobPlan>(&bad).is_err());
    }

    #[test]
    fn a_source_read_from_a_copy_reads_back_under_its_new_and_its_old_name() {
        let new: SourcePlan =
            serde_json::from_str(r#"{"name":"data","path":"/data","copied":true}"#).unwrap();
        let old: SourcePlan =
            serde_json::from_str(r#"{"name":"data","path":"/data","snapshot":true}"#).unwrap();
        assert!(new.copied);
        assert_eq!(
            old, new,
            "a Job written by the controller before the rename"
        );
        let live: SourcePlan = serde_json::from_str(r#"{"name":"data","path":"/data"}"#).unwrap();
        assert!(!live.copied);
        assert!(!serde_json::to_string(&live).unwrap().contains("copied"));
    }

    #[test]
    fn every_operation_kind_reads_back_from_its_label() {
        for kind in OperationKind::ALL {
            assert_eq!(kind.as_str().parse::<OperationKind>(), Ok(kind));
        }
        assert!("replicate".parse::<OperationKind>().is_err());
    }
}
