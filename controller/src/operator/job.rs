//! From a plan to a `batch/v1` Job: the pod that runs `holdfast job run`. Pure: a function of
//! its input, snapshot-tested.
//!
//! Every pod: no service-account token, a read-only root filesystem, no privilege
//! escalation, every capability dropped but those its operation needs, `/tmp` on an
//! emptyDir, the plan in an environment variable (it names no secret), the passphrase from
//! a Secret volume, storage keys from `secretKeyRef`, the summary in the termination
//! message. Capabilities and the Pod Security level each operation needs:
//!
//! | operation | capabilities | level |
//! | --- | --- | --- |
//! | backup | `DAC_READ_SEARCH` (read every file, whoever owns it) | privileged |
//! | restore | `CHOWN`, `DAC_OVERRIDE`, `FOWNER`, `FSETID` (owners, modes, times); `MKNOD` too with `deviceNodes: true` | baseline |
//! | purge, verify, storage check, repository deletion | none | baseline |
//!
//! (`DAC_READ_SEARCH` is outside the baseline level's list, hence privileged for backups;
//! every pod runs as root so that it can use repositories on filesystem targets that
//! backups wrote, but with no capability beyond its list.)

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::{Value, json};

use super::names::MAIN_CONTAINER;
use crate::api::backup_set::CommandSource;
use crate::api::common::SecretKeyReference;
use crate::job::plan::{JobPlan, PLAN_ENV, paths};

use super::storage::StorageMount;

/// What runs where, for the capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Reads every file of its sources.
    Backup,
    /// Writes files with their owners, modes and times.
    Restore,
    /// As `Restore`, and creates device nodes.
    RestoreDevices,
    /// Touches only the repository.
    Maintenance,
}

impl Privilege {
    fn capabilities(self) -> &'static [&'static str] {
        match self {
            Privilege::Backup => &["DAC_READ_SEARCH"],
            Privilege::Restore => &["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"],
            Privilege::RestoreDevices => &["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "MKNOD"],
            Privilege::Maintenance => &[],
        }
    }
}

/// A source as the pod gets it.
#[derive(Debug, Clone, PartialEq)]
pub enum PodSource {
    /// A claim, mounted read-only at `/holdfast/sources/<name>` (its `path` as subPath).
    Claim {
        name: String,
        claim: String,
        sub_path: Option<String>,
    },
    /// A command in its own container, writing to `/holdfast/streams/<name>`.
    Command {
        name: String,
        command: CommandSource,
    },
}

/// Everything the Job is made from.
#[derive(Debug, Clone)]
pub struct JobInput<'a> {
    pub name: String,
    pub namespace: &'a str,
    /// The owner (garbage collection); none for a Job that must outlive its owner's
    /// deletion (the repository deletion of a set being deleted).
    pub owner: Option<OwnerReference>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub image: &'a str,
    pub pull_policy: Option<&'a str>,
    pub service_account: Option<&'a str>,
    pub plan: &'a JobPlan,
    pub privilege: Privilege,
    pub storage: &'a StorageMount,
    /// The passphrase Secret (none for a storage check).
    pub key: Option<&'a SecretKeyReference>,
    pub sources: &'a [PodSource],
    /// A restore's target claim.
    pub target: Option<&'a str>,
    /// Run on this node (a ReadWriteOnce claim is mounted there).
    pub node: Option<&'a str>,
    pub resources: Option<&'a ResourceRequirements>,
    pub active_deadline_seconds: Option<i64>,
    pub ttl_seconds_after_finished: i32,
    pub backoff_limit: i32,
    /// Created waiting (queued behind another operation of the repository).
    pub suspend: bool,
}

fn security(p: Privilege) -> Value {
    json!({
        "runAsUser": 0,
        "runAsNonRoot": false,
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "privileged": false,
        "capabilities": {"drop": ["ALL"], "add": p.capabilities()},
    })
}

/// The Job.
pub fn build(input: &JobInput<'_>) -> Result<Job, serde_json::Error> {
    let plan_json = serde_json::to_string(input.plan)?;
    let mut volumes: Vec<Value> = vec![json!({"name": "tmp", "emptyDir": {}})];
    let mut mounts: Vec<Value> = vec![json!({"name": "tmp", "mountPath": paths::TMP})];
    let mut env: Vec<Value> = vec![
        json!({"name": PLAN_ENV, "value": plan_json}),
        json!({"name": "HOLDFAST_SUMMARY_FILE", "value": "/dev/termination-log"}),
        json!({"name": "HOME", "value": paths::TMP}),
        json!({"name": "TMPDIR", "value": paths::TMP}),
        json!({"name": "HOLDFAST_LOCK_HOLDER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
    ];
    if let Some(key) = input.key {
        volumes.push(json!({"name": "key", "secret": {
            "secretName": key.name, "defaultMode": 0o400,
            "items": [{"key": key.key, "path": "passphrase"}]}}));
        mounts.push(json!({"name": "key", "mountPath": paths::KEY, "readOnly": true}));
        env.push(
            json!({"name": "HOLDFAST_KEY_FILE", "value": format!("{}/passphrase", paths::KEY)}),
        );
    }
    match input.storage {
        StorageMount::S3 { credentials_secret } => {
            if let Some(secret) = credentials_secret {
                let required = super::storage::CREDENTIAL_KEYS.map(|k| (k, false));
                for (var, optional) in required.into_iter().chain([("AWS_SESSION_TOKEN", true)]) {
                    env.push(json!({"name": var, "valueFrom": {"secretKeyRef": {
                        "name": secret, "key": var, "optional": optional}}}));
                }
            }
        }
        StorageMount::Filesystem { claim } => {
            volumes.push(json!({"name": "storage", "persistentVolumeClaim": {"claimName": claim}}));
            mounts.push(json!({"name": "storage", "mountPath": paths::STORAGE}));
        }
    }
    if let Some(claim) = input.target {
        volumes.push(json!({"name": "target", "persistentVolumeClaim": {"claimName": claim}}));
        mounts.push(json!({"name": "target", "mountPath": paths::TARGET}));
    }
    let mut fifos = Vec::new();
    let mut side: Vec<Value> = Vec::new();
    for s in input.sources {
        match s {
            PodSource::Claim {
                name,
                claim,
                sub_path,
            } => {
                let vol = format!("source-{name}");
                volumes.push(json!({"name": vol, "persistentVolumeClaim": {"claimName": claim, "readOnly": true}}));
                let mut m = json!({"name": vol, "mountPath": format!("{}/{name}", paths::SOURCES), "readOnly": true});
                if let Some(p) = sub_path
                    .as_deref()
                    .map(|p| p.trim_start_matches('/'))
                    .filter(|p| !p.is_empty())
                {
                    m["subPath"] = json!(p);
                }
                mounts.push(m);
            }
            PodSource::Command { name, command } => {
                let fifo = format!("{}/{name}", paths::STREAMS);
                let mut argv: Vec<String> = crate::job::plan::helper_command();
                argv.extend([
                    "job".into(),
                    "pipe".into(),
                    "--fifo".into(),
                    fifo.clone(),
                    "--".into(),
                ]);
                // An image's entrypoint is unknown here: with no command, args are the whole
                // command line (documented on the field).
                argv.extend(command.command.iter().cloned());
                argv.extend(command.args.iter().cloned());
                side.push(json!({
                    "name": format!("source-{name}"),
                    "image": command.image,
                    "command": argv,
                    "env": command.env,
                    "volumeMounts": [
                        {"name": "tools", "mountPath": paths::TOOLS, "readOnly": true},
                        {"name": "streams", "mountPath": paths::STREAMS},
                    ],
                    "securityContext": {"allowPrivilegeEscalation": false,
                                        "capabilities": {"drop": ["ALL"]}},
                }));
                fifos.push(fifo);
            }
        }
    }
    let mut init: Vec<Value> = Vec::new();
    if !fifos.is_empty() {
        volumes.push(json!({"name": "tools", "emptyDir": {}}));
        volumes.push(json!({"name": "streams", "emptyDir": {}}));
        mounts.push(json!({"name": "streams", "mountPath": paths::STREAMS}));
        let mut args = vec![
            "job".to_owned(),
            "tools".into(),
            "--into".into(),
            paths::TOOLS.into(),
        ];
        for f in &fifos {
            args.push("--fifo".into());
            args.push(f.clone());
        }
        init.push(json!({
            "name": "tools",
            "image": input.image,
            "imagePullPolicy": input.pull_policy,
            "args": args,
            "volumeMounts": [
                {"name": "tools", "mountPath": paths::TOOLS},
                {"name": "streams", "mountPath": paths::STREAMS},
            ],
            "securityContext": security(Privilege::Maintenance),
        }));
    }
    let mut main = json!({
        "name": MAIN_CONTAINER,
        "image": input.image,
        "imagePullPolicy": input.pull_policy,
        "args": ["job", "run"],
        "env": env,
        "volumeMounts": mounts,
        "securityContext": security(input.privilege),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    });
    if let Some(r) = input.resources {
        main["resources"] = serde_json::to_value(r)?;
    }
    let mut containers = vec![main];
    containers.extend(side);
    let mut pod_spec = json!({
        "restartPolicy": "Never",
        "automountServiceAccountToken": false,
        "enableServiceLinks": false,
        // A backup asked to stop records what it stored: give it time to flush.
        "terminationGracePeriodSeconds": 120,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers,
        "volumes": volumes,
    });
    if !init.is_empty() {
        pod_spec["initContainers"] = json!(init);
    }
    if let Some(sa) = input.service_account {
        pod_spec["serviceAccountName"] = json!(sa);
    }
    if let Some(node) = input.node {
        pod_spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}});
    }
    let mut spec = json!({
        "backoffLimit": input.backoff_limit,
        // A node going away (a drain, a preemption) is not the pod's fault: do not count
        // it, and let the Job start the work again elsewhere. This rule comes first, as the
        // engine stopped by the eviction's SIGTERM exits 5 (an Aborted run), which the next
        // rule would take for a deliberate stop. A retry cannot fix a wrong key, a foreign
        // repository, a bad plan or a refused init (the job's exit codes): fail at once.
        "podFailurePolicy": {"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": MAIN_CONTAINER,
                "operator": "In", "values": [2, 5, 10, 11, 13, 14, 16]}},
        ]},
        "ttlSecondsAfterFinished": input.ttl_seconds_after_finished,
        "suspend": input.suspend,
        "template": {
            "metadata": {"labels": input.labels, "annotations": input.annotations},
            "spec": pod_spec,
        },
    });
    if let Some(d) = input.active_deadline_seconds {
        spec["activeDeadlineSeconds"] = json!(d);
    }
    let mut metadata = json!({
        "name": input.name,
        "namespace": input.namespace,
        "labels": input.labels,
        "annotations": input.annotations,
    });
    if let Some(o) = &input.owner {
        metadata["ownerReferences"] = json!([o]);
    }
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": spec,
    }))
}

#[cfg(test)]
mod tests;
