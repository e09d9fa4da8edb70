//! Types shared by several resources.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reference to another object in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectReference {
    /// Name of the object, in this namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A key in a Secret in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyReference {
    /// Name of the Secret, in this namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A PersistentVolumeClaim in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimReference {
    /// Name of the PersistentVolumeClaim, in this namespace.
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: String,
}

/// Encryption of a repository.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Encryption {
    /// The Secret key holding the repository passphrase. Only job pods read it; the
    /// controller never does. Losing it makes the backups unreadable.
    pub key_secret_ref: SecretKeyReference,
}

/// Who a set's or a restore's job pods run as (the "mover").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("!(has(self.securityContext) && self.privileged)").message("a privileged mover runs as root: set securityContext or privileged, not both"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mover {
    /// The user and groups the job pods run as, with no capability (they pass the
    /// `restricted` Pod Security level). Unset: those of the running pods that mount the
    /// claims (a restore: its target claim, else the set's claims), else user and group
    /// 65532; files that identity cannot read are listed in the run as unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<MoverSecurityContext>,
    /// Run as root with the capabilities that read every file (a backup:
    /// `DAC_READ_SEARCH`) or set every owner (a restore: `CHOWN`, `DAC_OVERRIDE`,
    /// `FOWNER`, `FSETID`). Needs the `privileged` Pod Security level for backups, and the
    /// namespace annotation `holdfast.io/privileged-movers: "true"`, which only whoever may
    /// edit the Namespace (the cluster admin) sets.
    #[serde(default)]
    pub privileged: bool,
}

/// The identity of an unprivileged mover.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MoverSecurityContext {
    /// User ID, not 0 (root is the privileged mover).
    #[schemars(range(min = 1))]
    pub run_as_user: i64,
    /// Primary group ID. Defaults to `runAsUser`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub run_as_group: Option<i64>,
    /// The application's `fsGroup`: one more group of a backup pod (which never changes a
    /// volume), the `fsGroup` of a restore pod (the kubelet gives the target volume that
    /// group where the volume supports it and its root's group differs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub fs_group: Option<i64>,
    /// More groups, e.g. one that may read the data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supplemental_groups: Vec<i64>,
}

/// What a platform requires of every job pod: where it may run, its priority, the Secrets
/// that pull its image, labels and annotations, resources. Merged over the cluster's
/// defaults (the chart's `jobs`): maps key by key and lists added, single values replaced.
/// It cannot set what the controller decides (image, command, volumes, security context,
/// ServiceAccount): the API server refuses unknown fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobTemplate {
    /// Labels of the job pods, e.g. for cost or policy tooling. Keys under `holdfast.io/`
    /// and `app.kubernetes.io/` are the controller's own (it selects its pods by them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('holdfast.io/') && !k.startsWith('app.kubernetes.io/'))").message("podLabels under holdfast.io/ and app.kubernetes.io/ are the controller's own: choose other keys"))]
    #[schemars(extend("maxProperties" = 64))]
    pub pod_labels: BTreeMap<String, String>,
    /// Annotations of the job pods, e.g. `sidecar.istio.io/inject: "false"` (a Job's pod
    /// with a mesh sidecar never finishes: the proxy outlives the engine). Keys under
    /// `holdfast.io/` are the controller's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('holdfast.io/'))").message("podAnnotations under holdfast.io/ are the controller's own: choose other keys"))]
    #[schemars(extend("maxProperties" = 64))]
    pub pod_annotations: BTreeMap<String, String>,
    /// Taints the job pods tolerate (e.g. a dedicated backup node pool's). A job pinned to
    /// the node of a ReadWriteOnce claim in use also tolerates what the pods that mount it
    /// tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Node labels a job pod's node must have. Not applied to a job pinned to the node of a
    /// ReadWriteOnce claim in use: the claim decides its node.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub node_selector: BTreeMap<String, String>,
    /// Scheduling constraints of the job pods. A job pinned to a claim's node keeps only
    /// the pod (anti-)affinity of this: the claim decides its node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// The PriorityClass of the job pods: whether they may preempt, or be preempted by,
    /// other pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
    /// Secrets, in the job's namespace, that pull the Holdfast image from a private
    /// registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Resources of the job pods' main container (e.g. what a ResourceQuota requires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// Adds the Kubernetes list-map markers so conditions merge by `type` under server-side apply.
pub fn conditions_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}

/// A backup level, as status shows it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Level 0: every byte read.
    Full,
    /// Level 1: changes since the source's last full.
    Diff,
    /// Level 2: changes since the source's previous run.
    Incr,
}

impl From<holdfast_engine::format::run::Level> for Level {
    fn from(l: holdfast_engine::format::run::Level) -> Self {
        use holdfast_engine::format::run::Level as E;
        match l {
            E::Full => Level::Full,
            E::Diff => Level::Diff,
            E::Incr => Level::Incr,
        }
    }
}

impl From<Level> for holdfast_engine::format::run::Level {
    fn from(l: Level) -> Self {
        use holdfast_engine::format::run::Level as E;
        match l {
            Level::Full => E::Full,
            Level::Diff => E::Diff,
            Level::Incr => E::Incr,
        }
    }
}

/// A duration like `90s`, `30m`, `12h`, `7d` or `2w`.
pub const DURATION_PATTERN: &str = r"^[0-9]+(s|m|h|d|w)$";

/// One cron field over the values `$v`: `*`, a value or a range, each with an optional
/// `/step`, in a comma-separated list. Expands to a string literal so the whole pattern stays
/// a `const` that schemars can put into the CRD.
macro_rules! cron_field {
    ($v:literal) => {
        concat!(
            r"(\*|",
            $v,
            "(-",
            $v,
            r")?)(/[1-9][0-9]?)?(,(\*|",
            $v,
            "(-",
            $v,
            r")?)(/[1-9][0-9]?)?)*"
        )
    };
}

/// A five-field cron expression (minute, hour, day of month, month, day of week; months and
/// weekdays also as `JAN`…`DEC` and `SUN`…`SAT`) or a macro such as `@daily`. Every value is
/// range-checked at admission, so `0 24 * * *` or `61 * * * *` never reaches the controller.
pub const CRON_PATTERN: &str = concat!(
    "^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|",
    cron_field!("([0-5]?[0-9])"),
    r"\s+",
    cron_field!("([01]?[0-9]|2[0-3])"),
    r"\s+",
    cron_field!("(0?[1-9]|[12][0-9]|3[01])"),
    r"\s+",
    cron_field!(
        "(0?[1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
    ),
    r"\s+",
    cron_field!("([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT|sun|mon|tue|wed|thu|fri|sat)"),
    ")$"
);
