//! What every reconciler shares: the client, the settings, metrics, events, the clock.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;

use super::job::{JobInput, Privilege};
use super::metrics::Metrics;
use super::names::{LABEL_OPERATION, base_labels};
use super::storage::StorageMount;
use crate::api::BackupSet;
use crate::job::plan::JobPlan;

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
}

impl Settings {
    /// A Job for `plan` as every reconciler starts one: this controller's image, pull
    /// policy, ServiceAccount and TTL, the common labels with the operation's, the
    /// maintenance timeout, one retry, no privilege; callers set what differs.
    pub fn job<'a>(
        &'a self,
        name: String,
        namespace: &'a str,
        plan: &'a JobPlan,
        storage: &'a StorageMount,
    ) -> JobInput<'a> {
        let kind = plan.operation.kind().as_str();
        let mut labels = base_labels(kind);
        labels.insert(LABEL_OPERATION.into(), kind.into());
        JobInput {
            name,
            namespace,
            owner: None,
            labels,
            annotations: Default::default(),
            image: &self.image,
            pull_policy: self.pull_policy.as_deref(),
            service_account: self.job_service_account.as_deref(),
            plan,
            privilege: Privilege::Maintenance,
            storage,
            key: None,
            sources: &[],
            target: None,
            node: None,
            resources: None,
            active_deadline_seconds: Some(self.default_maintenance_timeout.as_secs() as i64),
            ttl_seconds_after_finished: self.job_ttl_seconds,
            backoff_limit: 1,
            suspend: false,
        }
    }
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
        }
    }
}

/// The clock; tests give their own.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Shared by every reconcile.
pub struct Context {
    pub client: kube::Client,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub clock: Clock,
    /// Job pods' results, kept from the pod watch.
    pub pod_results: Arc<super::pod_results::PodResults>,
    /// BackupSets as the controllers' watches hold them.
    pub set_stores: SetStores,
}

/// The BackupSet controllers' caches, one per watched scope (a namespace, or all). A
/// reconcile finds the sets that share its repository here: listing every set of the
/// namespace on each reconcile made a resync cost N² objects (1,000 sets overloaded the API
/// server).
#[derive(Default)]
pub struct SetStores(std::sync::RwLock<std::collections::HashMap<String, Store<BackupSet>>>);

impl std::fmt::Debug for SetStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        f.debug_set().entries(map.keys()).finish()
    }
}

impl SetStores {
    /// Keep `store` for `scope` (`None`: every namespace), replacing an earlier one.
    pub fn insert(&self, scope: Option<&str>, store: Store<BackupSet>) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        map.insert(scope.unwrap_or_default().to_owned(), store);
    }

    /// The cache that holds the sets of `namespace`, if a controller keeps one.
    pub fn for_namespace(&self, namespace: &str) -> Option<Store<BackupSet>> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.get(namespace).or_else(|| map.get("")).cloned()
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(
        client: kube::Client,
        settings: Settings,
        metrics: Arc<Metrics>,
        instance: &str,
    ) -> Self {
        let reporter = Reporter {
            controller: "holdfast-controller".into(),
            instance: Some(instance.to_owned()),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            metrics,
            clock: Arc::new(Timestamp::now),
            pod_results: Arc::default(),
            set_stores: SetStores::default(),
        }
    }

    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Publish an Event; a failure to record one is logged, never fatal.
    pub async fn event(
        &self,
        object: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: impl Into<String>,
    ) {
        let mut note: String = note.into();
        // Events carry at most 1 KiB of note.
        note.truncate(crate::text::prefix(&note, 1000).len());
        // The same line in the log, for those who read logs rather than Events (and for
        // Events the API server drops under rate limits).
        let (kind, name) = (
            object.kind.as_deref().unwrap_or_default(),
            object.name.as_deref().unwrap_or_default(),
        );
        let namespace = object.namespace.as_deref().unwrap_or_default();
        if warning {
            tracing::warn!(kind, namespace, name, reason, "{note}");
        } else {
            tracing::info!(kind, namespace, name, reason, "{note}");
        }
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, object).await {
            tracing::warn!("could not record event {reason}: {e}");
        }
    }
}
