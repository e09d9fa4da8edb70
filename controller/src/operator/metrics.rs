//! Prometheus metrics, through the `prometheus-client` crate. Enough to alert on "no
//! successful backup in N hours" from metrics alone: `holdfast_last_success_timestamp_seconds`
//! is set from status on every reconcile, so it survives controller restarts.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Requests to the Kubernetes API.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The HTTP method, or `WATCH` for a watch.
    pub method: String,
}

/// One BackupSet.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SetLabels {
    pub namespace: String,
    pub backup_set: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StorageLabels {
    pub namespace: String,
    pub storage_set: String,
}

/// An operation's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub namespace: String,
    pub owner: String,
    /// `backup`, `purge`, `verify`, `restore`, `storage-check`, `delete-repository`.
    pub kind: String,
    /// `complete`, `partial`, `failed`, `aborted`.
    pub result: String,
}

/// Hook commands of one set, by phase and outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookLabels {
    pub namespace: String,
    pub backup_set: String,
    /// `pre` or `post`.
    pub phase: String,
    /// `succeeded`, `failed`, `timed_out`, `no_pod`.
    pub outcome: String,
}

/// How a backup read a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMethod {
    /// A claim read in place while the application could write it.
    Live,
    /// A claim read from a VolumeSnapshot of its own.
    Snapshot,
    /// A claim read from its member of a VolumeGroupSnapshot.
    GroupSnapshot,
    /// A claim read from a CSI clone.
    Clone,
    /// A command's output (a dump).
    Stream,
}

impl ReadMethod {
    /// Every way.
    pub const ALL: [ReadMethod; 5] = [
        ReadMethod::Live,
        ReadMethod::Snapshot,
        ReadMethod::GroupSnapshot,
        ReadMethod::Clone,
        ReadMethod::Stream,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadMethod::Live => "live",
            ReadMethod::Snapshot => "snapshot",
            ReadMethod::GroupSnapshot => "group_snapshot",
            ReadMethod::Clone => "clone",
            ReadMethod::Stream => "stream",
        }
    }
}

/// Sources read by one set's backups, by how.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CopyLabels {
    pub namespace: String,
    pub backup_set: String,
    /// The copy's name in the set.
    pub copy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadLabels {
    pub namespace: String,
    pub backup_set: String,
    /// `live`, `snapshot`, `group_snapshot`, `clone` or `stream`.
    pub method: String,
}

impl HookLabels {
    /// Every phase and outcome of one set (to forget them with it).
    fn all_of(namespace: &str, backup_set: &str) -> impl Iterator<Item = HookLabels> {
        let (namespace, backup_set) = (namespace.to_owned(), backup_set.to_owned());
        ["pre", "post"].into_iter().flat_map(move |phase| {
            let (namespace, backup_set) = (namespace.clone(), backup_set.clone());
            ["succeeded", "failed", "timed_out", "no_pod"]
                .into_iter()
                .map(move |outcome| HookLabels {
                    namespace: namespace.clone(),
                    backup_set: backup_set.clone(),
                    phase: phase.into(),
                    outcome: outcome.into(),
                })
        })
    }
}

/// One kind of operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

/// A reconcile error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The resource kind reconciled.
    pub resource: String,
    pub category: String,
}

/// Every metric the controller exports.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub runs: Family<RunLabels, Counter>,
    pub run_duration: Family<KindLabels, Histogram>,
    pub bytes_read: Family<SetLabels, Counter>,
    pub bytes_stored: Family<SetLabels, Counter>,
    pub last_success: Family<SetLabels, Gauge<f64, AtomicU64>>,
    pub consecutive_failures: Family<SetLabels, Gauge>,
    pub queue_depth: Family<SetLabels, Gauge>,
    pub missed_runs: Family<SetLabels, Counter>,
    pub reconciles: Family<KindLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub restore_points: Family<SetLabels, Gauge>,
    pub backup_interval: Family<SetLabels, Gauge>,
    pub storage_ready: Family<StorageLabels, Gauge>,
    pub created: Family<SetLabels, Gauge>,
    pub api_requests: Family<RequestLabels, Counter>,
    pub hook_commands: Family<HookLabels, Counter>,
    pub source_reads: Family<ReadLabels, Counter>,
    pub copy_behind: Family<CopyLabels, Gauge>,
    pub copy_failures: Family<CopyLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("holdfast");
        let runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "runs",
            "Operations finished, by kind and result",
            runs.clone(),
        );
        let run_duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1.0, 2.0, 18))
        });
        registry.register(
            "run_duration_seconds",
            "How long operations took",
            run_duration.clone(),
        );
        let bytes_read = Family::<SetLabels, Counter>::default();
        registry.register(
            "backup_bytes_read",
            "Bytes backups read from their sources",
            bytes_read.clone(),
        );
        let bytes_stored = Family::<SetLabels, Counter>::default();
        registry.register(
            "backup_bytes_stored",
            "Bytes backups added to storage (after dedup and compression)",
            bytes_stored.clone(),
        );
        let last_success = Family::<SetLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "last_success_timestamp_seconds",
            "When each set's last backup that stored something finished (Unix time)",
            last_success.clone(),
        );
        let consecutive_failures = Family::<SetLabels, Gauge>::default();
        registry.register(
            "consecutive_failures",
            "Backups failed in a row, per set",
            consecutive_failures.clone(),
        );
        let queue_depth = Family::<SetLabels, Gauge>::default();
        registry.register(
            "queue_depth",
            "Operations waiting for each set's repository",
            queue_depth.clone(),
        );
        let missed_runs = Family::<SetLabels, Counter>::default();
        registry.register(
            "missed_runs",
            "Scheduled runs skipped because they were missed",
            missed_runs.clone(),
        );
        let reconciles = Family::<KindLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles, by resource kind",
            reconciles.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconcile errors, by resource kind and category",
            reconcile_errors.clone(),
        );
        let restore_points = Family::<SetLabels, Gauge>::default();
        registry.register(
            "restore_points",
            "Runs that hold a restorable source, per set",
            restore_points.clone(),
        );
        let backup_interval = Family::<SetLabels, Gauge>::default();
        registry.register(
            "backup_interval_seconds",
            "The longest wait between two scheduled backups of each set (absent for sets without a schedule): alert when time() minus the last success exceeds it",
            backup_interval.clone(),
        );
        let storage_ready = Family::<StorageLabels, Gauge>::default();
        registry.register(
            "storage_ready",
            "1 when the StorageSet's last check found it reachable and writable, else 0",
            storage_ready.clone(),
        );
        let created = Family::<SetLabels, Gauge>::default();
        registry.register(
            "backup_set_created_timestamp_seconds",
            "When each BackupSet was created (Unix time): with no successful backup yet, the overdue clock starts here",
            created.clone(),
        );
        let api_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "kubernetes_requests",
            "Requests this controller made to the Kubernetes API, by method (WATCH for watches)",
            api_requests.clone(),
        );
        let hook_commands = Family::<HookLabels, Counter>::default();
        registry.register(
            "hook_commands",
            "Hook commands run in application pods, by set, phase and outcome",
            hook_commands.clone(),
        );
        let source_reads = Family::<ReadLabels, Counter>::default();
        registry.register(
            "source_reads",
            "Sources read by recorded backups, by set and how: live (in place, while the \
             application could write), snapshot, group_snapshot, clone, or stream (a command)",
            source_reads.clone(),
        );
        let copy_behind = Family::<CopyLabels, Gauge>::default();
        registry.register(
            "copy_behind_seconds",
            "How long each copy has lacked a run the set recorded (0: it holds them all)",
            copy_behind.clone(),
        );
        let copy_failures = Family::<CopyLabels, Gauge>::default();
        registry.register(
            "copy_consecutive_failures",
            "Copies of each copy that failed in a row",
            copy_failures.clone(),
        );
        Metrics {
            registry,
            api_requests,
            copy_behind,
            copy_failures,
            hook_commands,
            source_reads,
            created,
            backup_interval,
            storage_ready,
            runs,
            run_duration,
            bytes_read,
            bytes_stored,
            last_success,
            consecutive_failures,
            queue_depth,
            missed_runs,
            reconciles,
            reconcile_errors,
            restore_points,
        }
    }
}

impl Metrics {
    /// Count one reconcile of an object of `kind`.
    pub fn reconciled(&self, kind: &str) {
        self.reconciles
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Drop a deleted set's series, so that no alert fires for a set that is gone.
    pub fn forget(&self, namespace: &str, name: &str, copies: &[String]) {
        let l = Metrics::set(namespace, name);
        for copy in copies {
            let c = Metrics::copy(namespace, name, copy);
            self.copy_behind.remove(&c);
            self.copy_failures.remove(&c);
        }
        self.last_success.remove(&l);
        self.consecutive_failures.remove(&l);
        self.queue_depth.remove(&l);
        self.restore_points.remove(&l);
        self.backup_interval.remove(&l);
        self.created.remove(&l);
        self.bytes_read.remove(&l);
        self.bytes_stored.remove(&l);
        self.missed_runs.remove(&l);
        for h in HookLabels::all_of(namespace, name) {
            self.hook_commands.remove(&h);
        }
        for method in ReadMethod::ALL {
            self.source_reads.remove(&ReadLabels {
                namespace: namespace.to_owned(),
                backup_set: name.to_owned(),
                method: method.as_str().into(),
            });
        }
    }

    pub fn copy(namespace: &str, name: &str, copy: &str) -> CopyLabels {
        CopyLabels {
            namespace: namespace.to_owned(),
            backup_set: name.to_owned(),
            copy: copy.to_owned(),
        }
    }

    pub fn set(namespace: &str, name: &str) -> SetLabels {
        SetLabels {
            namespace: namespace.to_owned(),
            backup_set: name.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_with_their_prefix_and_labels() {
        let m = Metrics::default();
        m.runs
            .get_or_create(&RunLabels {
                namespace: "shop".into(),
                owner: "shop".into(),
                kind: "backup".into(),
                result: "complete".into(),
            })
            .inc();
        m.last_success
            .get_or_create(&Metrics::set("shop", "shop"))
            .set(1_764_550_800.0);
        let text = m.render();
        assert!(text.contains("holdfast_runs_total{namespace=\"shop\",owner=\"shop\",kind=\"backup\",result=\"complete\"} 1"), "{text}");
        assert!(text.contains("holdfast_last_success_timestamp_seconds{namespace=\"shop\",backup_set=\"shop\"} 1764550800"), "{text}");
    }
}
