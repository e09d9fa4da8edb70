//! Hooks: commands run in the application's pods around a backup, to bring its data to a
//! consistent state on disk (a database checkpoint, a table lock, a filesystem freeze) and
//! to undo that afterwards.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One hook: a `pre` command run in the selected pods before the backup's job pod starts,
/// and a `post` command run after it ends, whatever the outcome (complete, failed,
/// aborted), once `pre` ran. Hooks run in the order listed; their `post` commands in the
/// reverse order. The controller runs them through the API server's `pods/exec`, which the
/// chart grants only with `hooks.enabled`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("(has(self.pre) && size(self.pre) > 0) || (has(self.post) && size(self.post) > 0)").message("a hook needs a pre or a post command"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hook {
    /// Name of the hook in status and Events, e.g. `checkpoint`.
    #[schemars(
        length(min = 1, max = 63),
        pattern(r"^[a-z0-9]([a-z0-9._\-]*[a-z0-9])?$")
    )]
    pub name: String,
    /// The pods of the set's namespace the commands run in (every running pod whose
    /// labels match), e.g. `{app: shop-db}`.
    #[schemars(length(min = 1))]
    pub pod_labels: BTreeMap<String, String>,
    /// The container the commands run in. Default: the pod's first container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub container: Option<String>,
    /// Command run before the backup, e.g. `[psql, -c, CHECKPOINT]` (no shell unless you
    /// run one: `[sh, -c, "…"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre: Vec<String>,
    /// Command run after the backup, also when it failed or was aborted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post: Vec<String>,
    /// How long each command may take in each pod, e.g. `30s` (default) or `5m`. At the
    /// limit the controller stops waiting and counts the command as failed; a command
    /// that must not outlive it should carry its own limit (`timeout 25 …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[0-9]+(s|m)$"))]
    pub timeout: Option<String>,
    /// What a failed command (non-zero exit, timeout, no matching pod) does: `Fail` (the
    /// default) fails a `pre` hook's run before anything is read, and marks a `post`
    /// hook's run failed; `Continue` records the failure and goes on.
    #[serde(default)]
    pub on_error: OnError,
}

/// What a failed hook command does to the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OnError {
    /// The run fails (a failed `pre` stops it before it reads anything; `post` still runs).
    #[default]
    Fail,
    /// The failure is recorded, and the run goes on.
    Continue,
}

/// When a hook command ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum HookPhase {
    /// Before the backup.
    Pre,
    /// After it.
    Post,
}

/// How a hook command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum HookOutcome {
    /// Exit code 0.
    Succeeded,
    /// A non-zero exit code, or the exec could not start (the container is missing).
    Failed,
    /// Still running at the hook's timeout.
    TimedOut,
    /// No running pod matched its labels.
    NoPod,
}

/// What one hook command did in one pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookResult {
    /// The hook's name.
    pub hook: String,
    /// `Pre` or `Post`.
    pub phase: HookPhase,
    /// The pod it ran in (none when no pod matched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// How it ended.
    pub outcome: HookOutcome,
    /// Its exit code, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// When it started.
    pub start_time: Time,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// The last lines of what it wrote (stdout and stderr), at most 512 bytes; do not
    /// print secrets from a hook.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
}
