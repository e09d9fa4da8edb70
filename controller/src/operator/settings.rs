//! The controller's settings: how job pods are made and how often things are checked.

use std::time::Duration;

use crate::api::common::JobTemplate;

/// How job pods are made and how often things are checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The image job pods run (this binary's image).
    pub image: String,
    pub pull_policy: Option<String>,
    /// The ServiceAccount of job pods (they get no token).
    pub job_service_account: Option<String>,
    /// How long finished Jobs stay for `kubectl` (their results are in status already).
    pub job_ttl_seconds: i32,
    /// How often a StorageSet is checked besides every spec change.
    pub storage_check_interval: Duration,
    /// How long volumes marked by a purge wait before deletion.
    pub purge_grace: Duration,
    /// A backup with no `timeouts.backup` is stopped after this long.
    pub default_backup_timeout: Duration,
    /// Same for purge, verify, restore and the other jobs.
    pub default_maintenance_timeout: Duration,
    /// What every job pod carries under a set's or a restore's own `jobTemplate`.
    pub jobs: JobTemplate,
    /// BackupSets' hooks may run (the controller holds `pods/exec`).
    pub allow_hooks: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            image: "ghcr.io/holdfast-io/holdfast:latest".into(),
            pull_policy: None,
            job_service_account: None,
            job_ttl_seconds: 86_400,
            storage_check_interval: Duration::from_secs(6 * 3600),
            purge_grace: Duration::from_secs(24 * 3600),
            default_backup_timeout: Duration::from_secs(24 * 3600),
            default_maintenance_timeout: Duration::from_secs(12 * 3600),
            jobs: JobTemplate::default(),
            allow_hooks: false,
        }
    }
}
