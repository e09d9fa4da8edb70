//! From a plan to a `batch/v1` Job: the pod that runs `holdfast job run`. Pure: a function of
//! its input, snapshot-tested.
//!
//! Every pod: no service-account token, a read-only root filesystem, no privilege
//! escalation, every capability dropped, `seccompProfile: RuntimeDefault`, `/tmp` on an
//! emptyDir, the plan in an environment variable (it names no secret), the passphrase from
//! a Secret volume, storage keys from `secretKeyRef`, the summary in the termination
//! message. Who it runs as is its mover (`mover.rs`):
//!
//! - **restricted** (the default): a user other than root with no capability, so every pod
//!   passes the `restricted` Pod Security level; it reads what its user and groups may
//!   read, and restores files as its own.
//! - **root** (a privileged mover, or a set whose repository is a filesystem claim): root
//!   with the capabilities of its operation:
//!
//! | operation | capabilities | level |
//! | --- | --- | --- |
//! | backup | `DAC_READ_SEARCH` (read every file, whoever owns it) | privileged |
//! | restore | `CHOWN`, `DAC_OVERRIDE`, `FOWNER`, `FSETID` (owners, modes, times); `MKNOD` too with `deviceNodes: true` | baseline |
//! | purge, verify, storage check, repository deletion | none | baseline |

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, EnvVar, EnvVarSource, KeyToPath, LocalObjectReference,
    NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext,
    Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::error::Error;
use super::job_template;
use super::mover::{Identity, MoverPlan};
use super::names::{ANNOTATION_MOVER, LABEL_OPERATION, MAIN_CONTAINER, base_labels};
use super::settings::Settings;
use crate::api::backup_set::CommandSource;
use crate::api::common::{JobTemplate, SecretKeyReference};
use crate::job::plan::{
    JobPlan, Operation, PLAN_ENV, SNAPSHOT_TIMES_ANNOTATION, SNAPSHOT_TIMES_ENV, paths,
};

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
    /// The capabilities of a root mover.
    pub privilege: Privilege,
    /// Who the pod runs as.
    pub mover: MoverPlan,
    pub storage: &'a StorageMount,
    /// A copy job's target, reached beside `storage`: its S3 keys in variables prefixed
    /// `HOLDFAST_COPY_`, or its claim at `/holdfast/copy-storage`.
    pub copy_storage: Option<&'a StorageMount>,
    /// The passphrase Secret (none for a storage check).
    pub key: Option<&'a SecretKeyReference>,
    pub sources: &'a [PodSource],
    /// A restore's target claim.
    pub target: Option<&'a str>,
    /// Run on this node (a ReadWriteOnce claim is mounted there).
    pub node: Option<&'a str>,
    /// What the pods that mount the claims on `node` tolerate (the job pod runs beside
    /// them); unused without `node`.
    pub claim_tolerations: Vec<Toleration>,
    /// Placement, priority, pull secrets, labels, annotations and resources: the cluster's
    /// defaults merged with the set's or restore's own (`job_template::merge`).
    pub template: JobTemplate,
    pub active_deadline_seconds: Option<i64>,
    pub ttl_seconds_after_finished: i32,
    pub backoff_limit: i32,
    /// Created waiting (queued behind another operation of the repository).
    pub suspend: bool,
}

impl<'a> JobInput<'a> {
    /// A Job for `plan` as every reconciler starts one: this controller's image, pull
    /// policy, ServiceAccount, TTL and job pod defaults, the common labels with the operation's, the
    /// maintenance timeout, one retry, no privilege, and the mover of pods that touch only
    /// the repository (the image's user, or root for a filesystem repository); callers set
    /// what differs.
    pub fn new(
        settings: &'a Settings,
        name: String,
        namespace: &'a str,
        plan: &'a JobPlan,
        storage: &'a StorageMount,
    ) -> JobInput<'a> {
        let kind = plan.operation.kind().as_str();
        let mut labels = base_labels(kind);
        labels.insert(LABEL_OPERATION.into(), kind.into());
        let s = settings;
        JobInput {
            name,
            namespace,
            owner: None,
            labels,
            annotations: Default::default(),
            image: &s.image,
            pull_policy: s.pull_policy.as_deref(),
            service_account: s.job_service_account.as_deref(),
            plan,
            privilege: Privilege::Maintenance,
            mover: match storage {
                StorageMount::S3 { .. } => MoverPlan::Restricted(Identity::default_user()),
                StorageMount::Filesystem { .. } => MoverPlan::FilesystemRepository,
            },
            storage,
            copy_storage: None,
            key: None,
            sources: &[],
            target: None,
            node: None,
            claim_tolerations: Vec::new(),
            template: s.jobs.clone(),
            active_deadline_seconds: Some(s.default_maintenance_timeout.as_secs() as i64),
            ttl_seconds_after_finished: s.job_ttl_seconds,
            backoff_limit: 1,
            suspend: false,
        }
    }
}

/// A container of ours: root with `p`'s capabilities for a root mover, else no capability
/// (the pod's security context names the user).
fn security(p: Privilege, mover: &MoverPlan) -> SecurityContext {
    let root = mover.is_root();
    let add: Vec<String> = if root {
        p.capabilities().iter().map(|c| (*c).to_owned()).collect()
    } else {
        Vec::new()
    };
    SecurityContext {
        run_as_user: root.then_some(0),
        run_as_non_root: Some(!root),
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: (!add.is_empty()).then_some(add),
        }),
        ..Default::default()
    }
}

/// The pod's security context: the default seccomp profile, and an unprivileged mover's
/// user and groups. Its `fsGroup` is the pod's `fsGroup` only where it writes a claim (a
/// restore: the kubelet gives a fresh volume that group, and changes a volume's group only
/// where its root's differs, not file by file on every run); a pod that only reads claims
/// gets it as one more group, so that the kubelet never touches the application's volume.
fn pod_security(mover: &MoverPlan, p: Privilege) -> PodSecurityContext {
    let seccomp = Some(SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    });
    let MoverPlan::Restricted(id) = mover else {
        return PodSecurityContext {
            seccomp_profile: seccomp,
            ..Default::default()
        };
    };
    let writes = matches!(p, Privilege::Restore | Privilege::RestoreDevices);
    let fs_group = id.fs_group.filter(|_| writes);
    let mut groups = id.supplemental.clone();
    groups.extend(id.fs_group.filter(|g| !writes && !groups.contains(g)));
    PodSecurityContext {
        seccomp_profile: seccomp,
        run_as_non_root: Some(true),
        run_as_user: Some(id.user),
        run_as_group: Some(id.group),
        fs_group,
        fs_group_change_policy: fs_group.map(|_| "OnRootMismatch".into()),
        supplemental_groups: (!groups.is_empty()).then_some(groups),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(Default::default()),
        ..Default::default()
    }
}

fn claim_volume(name: &str, claim: &str, read_only: bool) -> Volume {
    Volume {
        name: name.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.into(),
            read_only: read_only.then_some(true),
        }),
        ..Default::default()
    }
}

fn var(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn var_from(name: &str, source: EnvVarSource) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(source),
        ..Default::default()
    }
}

/// The main container's volumes, mounts and environment: the plan, scratch space, the key,
/// the storage and a restore's target (sources are added by [`sources`]).
struct Pod {
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
    env: Vec<EnvVar>,
}

impl Pod {
    fn new(plan_json: String) -> Self {
        Pod {
            volumes: vec![empty_dir("tmp")],
            mounts: vec![mount("tmp", paths::TMP, false)],
            env: vec![
                var(PLAN_ENV, plan_json),
                var("HOLDFAST_SUMMARY_FILE", "/dev/termination-log"),
                var("HOME", paths::TMP),
                var("TMPDIR", paths::TMP),
                var_from(
                    "HOLDFAST_LOCK_HOLDER",
                    EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.name".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ),
            ],
        }
    }

    /// The passphrase, readable by the main container's user: root's alone, or, for an
    /// unprivileged mover, by everyone in the pod (only the main container mounts it).
    fn key(&mut self, key: &SecretKeyReference, root: bool) {
        self.volumes.push(Volume {
            name: "key".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(key.name.clone()),
                default_mode: Some(if root { 0o400 } else { 0o444 }),
                items: Some(vec![KeyToPath {
                    key: key.key.clone(),
                    path: "passphrase".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        self.mounts.push(mount("key", paths::KEY, true));
        self.env.push(var(
            "HOLDFAST_KEY_FILE",
            format!("{}/passphrase", paths::KEY),
        ));
    }

    fn storage(&mut self, storage: &StorageMount) {
        match storage {
            StorageMount::S3 {
                credentials_secret: Some(secret),
            } => self.s3_keys(secret, ""),
            StorageMount::S3 {
                credentials_secret: None,
            } => {}
            StorageMount::Filesystem { claim } => {
                self.volumes.push(claim_volume("storage", claim, false));
                self.mounts.push(mount("storage", paths::STORAGE, false));
            }
        }
    }

    /// A StorageSet's S3 keys from its Secret, as the variables the engine reads, each name
    /// prefixed with `prefix`.
    fn s3_keys(&mut self, secret: &str, prefix: &str) {
        let required = super::storage::CREDENTIAL_KEYS.map(|k| (k, false));
        for (name, optional) in required.into_iter().chain([("AWS_SESSION_TOKEN", true)]) {
            let source = EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.to_owned(),
                    key: name.into(),
                    optional: Some(optional),
                }),
                ..Default::default()
            };
            self.env.push(var_from(&format!("{prefix}{name}"), source));
        }
    }

    /// A copy's target, beside the set's own: its keys under their own names, or its claim
    /// at its own path.
    fn copy_storage(&mut self, storage: &StorageMount) {
        match storage {
            StorageMount::S3 {
                credentials_secret: Some(secret),
            } => self.s3_keys(secret, crate::job::plan::COPY_CREDENTIALS_PREFIX),
            StorageMount::S3 {
                credentials_secret: None,
            } => {}
            StorageMount::Filesystem { claim } => {
                self.volumes
                    .push(claim_volume("copy-storage", claim, false));
                self.mounts
                    .push(mount("copy-storage", paths::COPY_STORAGE, false));
            }
        }
    }

    fn target(&mut self, claim: &str) {
        self.volumes.push(claim_volume("target", claim, false));
        self.mounts.push(mount("target", paths::TARGET, false));
    }
}

/// Claim sources mounted read-only into the main container; each command source a
/// container of its own writing to its FIFO, and the init container that puts the helper
/// and the FIFOs in place. Returns the extra containers and the init containers.
fn sources(pod: &mut Pod, input: &JobInput<'_>) -> (Vec<Container>, Vec<Container>) {
    let mut fifos = Vec::new();
    let mut side = Vec::new();
    for s in input.sources {
        match s {
            PodSource::Claim {
                name,
                claim,
                sub_path,
            } => {
                let vol = format!("source-{name}");
                pod.volumes.push(claim_volume(&vol, claim, true));
                let mut m = mount(&vol, &format!("{}/{name}", paths::SOURCES), true);
                m.sub_path = sub_path
                    .as_deref()
                    .map(|p| p.trim_start_matches('/'))
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned);
                pod.mounts.push(m);
            }
            PodSource::Command { name, command } => {
                let fifo = format!("{}/{name}", paths::STREAMS);
                let resources = command
                    .resources
                    .as_ref()
                    .or(input.template.resources.as_ref());
                side.push(command_container(name, command, &fifo, resources));
                fifos.push(fifo);
            }
        }
    }
    if fifos.is_empty() {
        return (side, Vec::new());
    }
    pod.volumes.push(empty_dir("tools"));
    pod.volumes.push(empty_dir("streams"));
    pod.mounts.push(mount("streams", paths::STREAMS, false));
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
    let tools = Container {
        name: "tools".into(),
        image: Some(input.image.into()),
        image_pull_policy: input.pull_policy.map(str::to_owned),
        args: Some(args),
        volume_mounts: Some(vec![
            mount("tools", paths::TOOLS, false),
            mount("streams", paths::STREAMS, false),
        ]),
        security_context: Some(security(Privilege::Maintenance, &input.mover)),
        // A quota that requires limits requires them of init containers too; an init
        // container's resources do not add to the pod's (the largest of them counts).
        resources: input.template.resources.clone(),
        ..Default::default()
    };
    (side, vec![tools])
}

/// A command source's container: the user's image, running our helper (copied in by the
/// init container) around the command, with no capability, and its own resources or the
/// job's.
fn command_container(
    name: &str,
    command: &CommandSource,
    fifo: &str,
    resources: Option<&ResourceRequirements>,
) -> Container {
    let mut argv: Vec<String> = crate::job::plan::helper_command();
    argv.extend([
        "job".into(),
        "pipe".into(),
        "--fifo".into(),
        fifo.to_owned(),
        "--".into(),
    ]);
    // An image's entrypoint is unknown here: with no command, args are the whole command
    // line (documented on the field).
    argv.extend(command.command.iter().cloned());
    argv.extend(command.args.iter().cloned());
    Container {
        name: format!("source-{name}"),
        image: Some(command.image.clone()),
        command: Some(argv),
        env: Some(command.env.clone()),
        resources: resources.cloned(),
        volume_mounts: Some(vec![
            mount("tools", paths::TOOLS, true),
            mount("streams", paths::STREAMS, false),
        ]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Run on `node` only (a ReadWriteOnce claim is mounted there).
fn on_node(node: &str) -> Affinity {
    Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: "kubernetes.io/hostname".into(),
                        operator: "In".into(),
                        values: Some(vec![node.to_owned()]),
                    }]),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Where the pod may run and what it tolerates.
struct Placement {
    affinity: Option<Affinity>,
    node_selector: Option<BTreeMap<String, String>>,
    tolerations: Option<Vec<Toleration>>,
    image_pull_secrets: Option<Vec<LocalObjectReference>>,
}

/// The template's placement; a pod pinned to a claim's node runs there whatever the
/// template's node selector or node affinity say (they could only keep it from
/// scheduling), and tolerates what the claim's pods on that node tolerate.
fn placement(input: &JobInput<'_>) -> Placement {
    let t = &input.template;
    let (affinity, node_selector, tolerations) = match input.node {
        Some(node) => (
            Some(Affinity {
                node_affinity: on_node(node).node_affinity,
                ..t.affinity.clone().unwrap_or_default()
            }),
            None,
            job_template::union(&t.tolerations, &input.claim_tolerations),
        ),
        None => (
            t.affinity.clone(),
            (!t.node_selector.is_empty()).then(|| t.node_selector.clone()),
            t.tolerations.clone(),
        ),
    };
    let secrets: Vec<LocalObjectReference> = t
        .image_pull_secrets
        .iter()
        .map(|s| LocalObjectReference {
            name: s.name.clone(),
        })
        .collect();
    Placement {
        affinity,
        node_selector,
        tolerations: (!tolerations.is_empty()).then_some(tolerations),
        image_pull_secrets: (!secrets.is_empty()).then_some(secrets),
    }
}

/// A node going away (a drain, a preemption) is not the pod's fault: do not count it, and
/// let the Job start the work again elsewhere. This rule comes first, as the engine stopped
/// by the eviction's SIGTERM exits 5 (an Aborted run), which the next rule would take for a
/// deliberate stop. A retry cannot fix a wrong key, a foreign repository, a bad plan or a
/// refused init (the job's exit codes): fail at once.
fn failure_policy() -> PodFailurePolicy {
    PodFailurePolicy {
        rules: vec![
            PodFailurePolicyRule {
                action: "Ignore".into(),
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            PodFailurePolicyRule {
                action: "FailJob".into(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: Some(MAIN_CONTAINER.into()),
                    operator: "In".into(),
                    values: vec![2, 5, 10, 11, 13, 14, 16],
                }),
                ..Default::default()
            },
        ],
    }
}

/// A backup with a source read from a snapshot: its pod learns the snapshots' instants from
/// an annotation set after the Job was made (held), through the downward API.
fn reads_snapshots(plan: &JobPlan) -> bool {
    matches!(&plan.operation, Operation::Backup(b) if b.sources.iter().any(|s| s.copied))
}

/// The Job. Fails only if the plan cannot be serialized.
pub fn build(input: &JobInput<'_>) -> Result<Job, Error> {
    let plan_json = serde_json::to_string(input.plan).map_err(|source| Error::Build {
        what: format!("the plan of job {}", input.name),
        source,
    })?;
    let mut pod = Pod::new(plan_json);
    if reads_snapshots(input.plan) {
        pod.env.push(var_from(
            SNAPSHOT_TIMES_ENV,
            EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: format!("metadata.annotations['{SNAPSHOT_TIMES_ANNOTATION}']"),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ));
    }
    if let Some(key) = input.key {
        pod.key(key, input.mover.is_root());
    }
    pod.storage(input.storage);
    if let Some(copy) = input.copy_storage {
        pod.copy_storage(copy);
    }
    if let Some(claim) = input.target {
        pod.target(claim);
    }
    let (side, init) = sources(&mut pod, input);
    let main = Container {
        name: MAIN_CONTAINER.into(),
        image: Some(input.image.into()),
        image_pull_policy: input.pull_policy.map(str::to_owned),
        args: Some(vec!["job".into(), "run".into()]),
        env: Some(pod.env),
        volume_mounts: Some(pod.mounts),
        security_context: Some(security(input.privilege, &input.mover)),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        resources: input.template.resources.clone(),
        ..Default::default()
    };
    let place = placement(input);
    let pod_spec = PodSpec {
        restart_policy: Some("Never".into()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        // A backup asked to stop records what it stored: give it time to flush.
        termination_grace_period_seconds: Some(120),
        security_context: Some(pod_security(&input.mover, input.privilege)),
        containers: std::iter::once(main).chain(side).collect(),
        init_containers: (!init.is_empty()).then_some(init),
        volumes: Some(pod.volumes),
        service_account_name: input.service_account.map(str::to_owned),
        affinity: place.affinity,
        node_selector: place.node_selector,
        tolerations: place.tolerations,
        priority_class_name: input.template.priority_class_name.clone(),
        image_pull_secrets: place.image_pull_secrets,
        ..Default::default()
    };
    let mut annotations = input.annotations.clone();
    annotations.insert(ANNOTATION_MOVER.into(), input.mover.to_string());
    let meta = |name: Option<String>, namespace: Option<String>| ObjectMeta {
        name,
        namespace,
        labels: Some(input.labels.clone()),
        annotations: Some(annotations.clone()),
        ..Default::default()
    };
    // The template's labels and annotations go on the pod only, under the controller's
    // own (which it selects and reads its pods by).
    let pod_meta = ObjectMeta {
        labels: Some(job_template::overlay(
            &input.template.pod_labels,
            &input.labels,
        )),
        annotations: Some(job_template::overlay(
            &input.template.pod_annotations,
            &annotations,
        )),
        ..Default::default()
    };
    Ok(Job {
        metadata: ObjectMeta {
            owner_references: input.owner.clone().map(|o| vec![o]),
            ..meta(Some(input.name.clone()), Some(input.namespace.into()))
        },
        spec: Some(JobSpec {
            backoff_limit: Some(input.backoff_limit),
            pod_failure_policy: Some(failure_policy()),
            ttl_seconds_after_finished: Some(input.ttl_seconds_after_finished),
            suspend: Some(input.suspend),
            active_deadline_seconds: input.active_deadline_seconds,
            template: PodTemplateSpec {
                metadata: Some(pod_meta),
                spec: Some(pod_spec),
            },
            ..Default::default()
        }),
        status: None,
    })
}

/// Also read by other rooms' tests: what `restricted` admission would refuse of a pod.
#[cfg(test)]
pub(crate) mod tests;
