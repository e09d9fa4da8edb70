//! What every reconciler shares: the client, the settings, metrics, events, the clock.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;

use super::metrics::Metrics;
pub use super::settings::Settings;
use crate::api::BackupSet;
use crate::operator::event_reason::EventReason;

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

    /// Every set the caches hold, once each.
    pub fn all(&self) -> Vec<Arc<BackupSet>> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        let mut seen = std::collections::HashSet::new();
        map.values()
            .flat_map(|s| s.state())
            .filter(|s| seen.insert(s.metadata.uid.clone()))
            .collect()
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
        reason: EventReason,
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
        let warning = reason.is_warning();
        let reason = reason.as_str();
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
