//! Snapshot tests of every Job the controller can create, and the rules every one of them
//! keeps. Snapshots live in `snapshots/`; `UPDATE_SNAPSHOTS=1 cargo test` rewrites them
//! (review the diff).

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::TimeZone;
use holdfast_engine::format::run::Level;
use serde_json::Value;

use super::*;
use crate::api::backup_set::{CommandSource, Retention};
use crate::job::plan::{
    BackupPlan, CopyPlan, Operation, PurgePlan, RepositoryRef, RestorePlan, SourcePlan,
    StorageCheckPlan, VerifyPlan,
};

fn owner(kind: &str, name: &str) -> OwnerReference {
    OwnerReference {
        api_version: "holdfast.io/v1alpha1".into(),
        kind: kind.into(),
        name: name.into(),
        uid: "6f1b5b8e-0000-4000-8000-000000000001".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn plan(op: Operation) -> JobPlan {
    JobPlan {
        version: crate::job::plan::PLAN_VERSION,
        repository: RepositoryRef {
            url: "s3://backups/prod/shop/shop?endpoint=http://s3.example:9000&path_style=true"
                .into(),
            owner: Some("shop/shop".into()),
            create: matches!(op, Operation::Backup(_)),
        },
        operation: op,
    }
}

fn slot() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2026, 12, 1, 1, 0, 0).unwrap()
}

fn key() -> SecretKeyReference {
    SecretKeyReference {
        name: "shop-backup-key".into(),
        key: "passphrase".into(),
    }
}

struct Case {
    name: &'static str,
    plan: JobPlan,
    privilege: Privilege,
    storage: StorageMount,
    key: bool,
    sources: Vec<PodSource>,
    target: Option<&'static str>,
    node: Option<&'static str>,
    suspend: bool,
    mover: MoverPlan,
    /// A copy job's target.
    copy_storage: Option<StorageMount>,
}

fn default_user() -> MoverPlan {
    MoverPlan::Restricted(Identity::default_user())
}

fn from_pod() -> MoverPlan {
    MoverPlan::Restricted(Identity {
        user: 1000,
        group: 1000,
        fs_group: Some(1000),
        supplemental: vec![],
        origin: crate::operator::mover::Origin::Pod("shop-web-0".into()),
    })
}

fn backup_plan(sources: Vec<SourcePlan>) -> JobPlan {
    plan(Operation::Backup(BackupPlan {
        slot_time: slot(),
        slot_id: "shop-backup-202612010100".into(),
        level: Level::Incr,
        source_levels: BTreeMap::new(),
        sources,
        compression: None,
        uploads: Some(4),
    }))
}

fn s3() -> StorageMount {
    StorageMount::S3 {
        credentials_secret: Some("s3-creds".into()),
    }
}

fn cases() -> Vec<Case> {
    let uploads = PodSource::Claim {
        name: "uploads".into(),
        claim: "shop-uploads".into(),
        sub_path: None,
    };
    let dir_plan = |name: &str| SourcePlan {
        name: name.into(),
        path: Some(format!("/holdfast/sources/{name}")),
        fifo: None,
        exclude: vec!["*.tmp".into()],
        file_name: None,
        copied: false,
    };
    vec![
        Case {
            name: "backup-pvc",
            plan: backup_plan(vec![dir_plan("uploads")]),
            privilege: Privilege::Backup,
            storage: s3(),
            key: true,
            sources: vec![uploads.clone()],
            target: None,
            node: None,
            suspend: false,
            mover: from_pod(),
            copy_storage: None,
        },
        Case {
            name: "backup-rwo-on-node",
            plan: backup_plan(vec![dir_plan("uploads"), dir_plan("media")]),
            privilege: Privilege::Backup,
            storage: s3(),
            key: true,
            sources: vec![
                uploads.clone(),
                PodSource::Claim {
                    name: "media".into(),
                    claim: "shop-media".into(),
                    sub_path: Some("/public".into()),
                },
            ],
            target: None,
            node: Some("node-b"),
            suspend: false,
            mover: MoverPlan::Privileged,
            copy_storage: None,
        },
        Case {
            name: "backup-command",
            plan: backup_plan(vec![SourcePlan {
                name: "db".into(),
                path: None,
                fifo: Some("/holdfast/streams/db".into()),
                exclude: vec![],
                file_name: Some("shop.sql".into()),
                copied: false,
            }]),
            privilege: Privilege::Backup,
            storage: s3(),
            key: true,
            sources: vec![PodSource::Command {
                name: "db".into(),
                command: CommandSource {
                    image: "postgres:16".into(),
                    command: vec![],
                    args: vec!["pg_dumpall".into(), "-h".into(), "shop-db".into()],
                    env: vec![serde_json::from_value(serde_json::json!({
                        "name": "PGPASSWORD",
                        "valueFrom": {"secretKeyRef": {"name": "shop-db-credentials", "key": "password"}}
                    }))
                    .unwrap()],
                    file_name: Some("shop.sql".into()),
                    resources: None,
                },
            }],
            target: None,
            node: None,
            suspend: false,
            mover: default_user(),
            copy_storage: None,
        },
        Case {
            name: "backup-snapshot-held",
            plan: backup_plan(vec![SourcePlan {
                copied: true,
                ..dir_plan("uploads")
            }]),
            privilege: Privilege::Backup,
            storage: s3(),
            key: true,
            sources: vec![PodSource::Claim {
                name: "uploads".into(),
                claim: "shop-backup-x-uploads".into(),
                sub_path: None,
            }],
            target: None,
            node: None,
            suspend: true,
            mover: from_pod(),
            copy_storage: None,
        },
        Case {
            name: "backup-queued",
            plan: backup_plan(vec![dir_plan("uploads")]),
            privilege: Privilege::Backup,
            storage: s3(),
            key: true,
            sources: vec![uploads],
            target: None,
            node: None,
            suspend: true,
            mover: default_user(),
            copy_storage: None,
        },
        Case {
            name: "restore-existing-claim-filesystem-storage",
            plan: plan(Operation::Restore(RestorePlan {
                label: None,
                point_in_time: Some(slot()),
                allow_partial: false,
                sources: vec!["uploads".into()],
                include: vec!["/images/**".into()],
                exclude: vec![],
                target: "/holdfast/target".into(),
                overwrite: holdfast_engine::restore::Overwrite::Never,
                continue_on_error: true,
            })),
            privilege: Privilege::Restore,
            storage: StorageMount::Filesystem {
                claim: "nas".into(),
            },
            key: true,
            sources: vec![],
            target: Some("shop-uploads"),
            node: Some("node-b"),
            suspend: false,
            mover: MoverPlan::FilesystemRepository,
            copy_storage: None,
        },
        Case {
            name: "restore-new-claim",
            plan: plan(Operation::Restore(RestorePlan {
                label: Some("full-20261201.010000".into()),
                point_in_time: None,
                allow_partial: true,
                sources: vec![],
                include: vec![],
                exclude: vec![],
                target: "/holdfast/target/restored".into(),
                overwrite: holdfast_engine::restore::Overwrite::Always,
                continue_on_error: false,
            })),
            privilege: Privilege::Restore,
            storage: s3(),
            key: true,
            sources: vec![],
            target: Some("shop-uploads-restored"),
            node: None,
            suspend: false,
            mover: MoverPlan::Restricted(Identity {
                user: 1001,
                group: 1001,
                fs_group: None,
                supplemental: vec![3000],
                origin: crate::operator::mover::Origin::Spec,
            }),
            copy_storage: None,
        },
        Case {
            name: "purge",
            plan: plan(Operation::Purge(PurgePlan {
                retention: Retention {
                    keep_fulls: Some(4),
                    max_age: Some("90d".into()),
                    keep_daily: Some(7),
                    ..Retention::default()
                },
                grace_seconds: 86_400,
                brake_percent: Some(50),
                approved: vec!["0123456789abcdef".into()],
            })),
            privilege: Privilege::Maintenance,
            storage: s3(),
            key: true,
            sources: vec![],
            target: None,
            node: None,
            suspend: false,
            mover: default_user(),
            copy_storage: None,
        },
        Case {
            name: "verify",
            plan: plan(Operation::Verify(VerifyPlan {
                deep: true,
                sample_percent: Some(10.0),
            })),
            privilege: Privilege::Maintenance,
            storage: s3(),
            key: true,
            sources: vec![],
            target: None,
            node: None,
            suspend: false,
            mover: default_user(),
            copy_storage: None,
        },
        Case {
            name: "storage-check",
            plan: plan(Operation::StorageCheck(StorageCheckPlan {
                capacity_path: Some("/holdfast/storage".into()),
            })),
            privilege: Privilege::Maintenance,
            storage: StorageMount::Filesystem {
                claim: "nas".into(),
            },
            key: false,
            sources: vec![],
            target: None,
            node: None,
            suspend: false,
            mover: MoverPlan::FilesystemRepository,
            copy_storage: None,
        },
        Case {
            name: "delete-repository",
            plan: plan(Operation::DeleteRepository),
            privilege: Privilege::Maintenance,
            storage: StorageMount::S3 {
                credentials_secret: None,
            },
            key: true,
            sources: vec![],
            target: None,
            node: None,
            suspend: false,
            mover: default_user(),
            copy_storage: None,
        },
        Case {
            name: "copy-s3",
            plan: plan(Operation::Copy(CopyPlan {
                name: "vault".into(),
                to: RepositoryRef {
                    url: "s3://vault/shop/shop?region=eu-north-1".into(),
                    owner: Some("shop/shop".into()),
                    create: true,
                },
            })),
            privilege: Privilege::Maintenance,
            storage: s3(),
            key: true,
            sources: vec![],
            target: None,
            node: None,
            suspend: true,
            mover: default_user(),
            copy_storage: Some(StorageMount::S3 {
                credentials_secret: Some("vault-creds".into()),
            }),
        },
        Case {
            name: "copy-filesystem",
            plan: plan(Operation::Copy(CopyPlan {
                name: "staging".into(),
                to: RepositoryRef {
                    url: "file:///holdfast/copy-storage/shop/shop".into(),
                    owner: Some("shop/shop".into()),
                    create: true,
                },
            })),
            privilege: Privilege::Maintenance,
            storage: s3(),
            key: true,
            sources: vec![],
            target: None,
            node: None,
            suspend: false,
            mover: MoverPlan::FilesystemRepository,
            copy_storage: Some(StorageMount::Filesystem {
                claim: "nas".into(),
            }),
        },
    ]
}

fn render(c: &Case) -> Value {
    render_with(c, JobTemplate::default(), Vec::new())
}

fn render_with(c: &Case, template: JobTemplate, claim_tolerations: Vec<Toleration>) -> Value {
    let key = key();
    let input = JobInput {
        name: format!("shop-{}", c.name),
        namespace: "shop",
        owner: Some(owner("BackupSet", "shop")),
        labels: crate::operator::names::base_labels("backup"),
        annotations: BTreeMap::from([(
            "holdfast.io/slot".to_owned(),
            "2026-12-01T01:00:00Z".to_owned(),
        )]),
        image: "ghcr.io/holdfast-io/holdfast:0.1.0",
        pull_policy: Some("IfNotPresent"),
        service_account: Some("holdfast-job"),
        plan: &c.plan,
        privilege: c.privilege,
        storage: &c.storage,
        copy_storage: c.copy_storage.as_ref(),
        key: c.key.then_some(&key),
        sources: &c.sources,
        target: c.target,
        node: c.node,
        claim_tolerations,
        template,
        active_deadline_seconds: Some(21_600),
        ttl_seconds_after_finished: 86_400,
        backoff_limit: 2,
        suspend: c.suspend,
        mover: c.mover.clone(),
    };
    serde_json::to_value(build(&input).unwrap()).unwrap()
}

#[test]
fn every_job_matches_its_snapshot() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/operator/job/snapshots");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    for c in cases() {
        let got = serde_json::to_string_pretty(&render(&c)).unwrap() + "\n";
        let path = dir.join(format!("{}.json", c.name));
        if update {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            got == want,
            "{} differs from {} (UPDATE_SNAPSHOTS=1 rewrites it):\n{got}",
            c.name,
            path.display()
        );
    }
}

/// A pod template's containers, init containers included.
pub(crate) fn containers(pod: &Value) -> Vec<&Value> {
    pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(pod["initContainers"].as_array().into_iter().flatten())
        .collect()
}

#[test]
fn every_job_is_locked_down_and_carries_no_secret() {
    for c in cases() {
        let job = render(&c);
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false, "{}", c.name);
        assert_eq!(pod["restartPolicy"], "Never");
        let containers = containers(pod);
        for ct in &containers {
            let sc = &ct["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{}", c.name);
            assert_eq!(
                sc["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{}",
                c.name
            );
            for e in ct["env"].as_array().into_iter().flatten() {
                let name = e["name"].as_str().unwrap();
                let secretish = ["KEY", "SECRET", "TOKEN", "PASS"]
                    .iter()
                    .any(|w| name.contains(w));
                if secretish && name != "HOLDFAST_KEY_FILE" {
                    assert!(e.get("value").is_none(), "{}: {name} is a literal", c.name);
                    assert!(
                        e["valueFrom"]["secretKeyRef"].is_object(),
                        "{}: {name}",
                        c.name
                    );
                }
            }
        }
        let main = containers
            .iter()
            .find(|ct| ct["name"] == MAIN_CONTAINER)
            .unwrap();
        let sc = &main["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        let added: Vec<&str> = sc["capabilities"]["add"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.as_str().unwrap())
            .collect();
        // Capabilities only for a root mover.
        let wanted: &[&str] = if c.mover.is_root() {
            c.privilege.capabilities()
        } else {
            &[]
        };
        assert_eq!(added, wanted, "{}", c.name);
        // /tmp is writable (the root is not).
        assert!(
            main["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["mountPath"] == "/tmp")
        );
        // The plan names no secret.
        let plan = main["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == PLAN_ENV)
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_owned();
        for word in ["passphrase", "AWS_SECRET", "password"] {
            assert!(!plan.contains(word), "{}: the plan mentions {word}", c.name);
        }
        // Sources are mounted read-only.
        for m in main["volumeMounts"].as_array().unwrap() {
            if m["mountPath"]
                .as_str()
                .unwrap()
                .starts_with("/holdfast/sources/")
            {
                assert_eq!(m["readOnly"], true, "{}", c.name);
            }
        }
    }
}

#[test]
fn only_a_restore_asked_for_device_nodes_gets_mknod() {
    let mknod = |p: Privilege| p.capabilities().contains(&"MKNOD");
    assert!(mknod(Privilege::RestoreDevices));
    assert!(!mknod(Privilege::Restore));
    assert!(!mknod(Privilege::Backup));
    assert!(!mknod(Privilege::Maintenance));
    // Apart from MKNOD, the two restore privileges are the same.
    let without: Vec<_> = Privilege::RestoreDevices
        .capabilities()
        .iter()
        .filter(|c| **c != "MKNOD")
        .collect();
    assert_eq!(
        without,
        Privilege::Restore.capabilities().iter().collect::<Vec<_>>()
    );
}

/// The checks of the `restricted` Pod Security level (Kubernetes 1.35) that a Job's pod
/// template can fail: what the API server's admission would say, or nothing.
pub(crate) fn restricted_violations(pod: &Value) -> Vec<String> {
    let mut v = Vec::new();
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod[host] == true {
            v.push(host.to_owned());
        }
    }
    let allowed = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    for vol in pod["volumes"].as_array().into_iter().flatten() {
        for (k, _) in vol.as_object().unwrap() {
            if k != "name" && !allowed.contains(&k.as_str()) {
                v.push(format!("volume type {k}"));
            }
        }
    }
    let psc = &pod["securityContext"];
    let seccomp = |sc: &Value| sc["seccompProfile"]["type"].as_str().map(str::to_owned);
    let containers = containers(pod);
    if psc["runAsUser"] == 0 {
        v.push("pod runAsUser 0".into());
    }
    for ct in containers {
        let name = ct["name"].as_str().unwrap();
        let sc = &ct["securityContext"];
        if sc["privileged"] == true {
            v.push(format!("{name}: privileged"));
        }
        if sc["allowPrivilegeEscalation"] != false {
            v.push(format!("{name}: allowPrivilegeEscalation != false"));
        }
        if sc["capabilities"]["drop"] != serde_json::json!(["ALL"]) {
            v.push(format!("{name}: does not drop ALL"));
        }
        for cap in sc["capabilities"]["add"].as_array().into_iter().flatten() {
            if cap != "NET_BIND_SERVICE" {
                v.push(format!("{name}: adds {cap}"));
            }
        }
        let non_root = sc["runAsNonRoot"]
            .as_bool()
            .or(psc["runAsNonRoot"].as_bool());
        if non_root != Some(true) {
            v.push(format!("{name}: runAsNonRoot != true"));
        }
        if sc["runAsUser"] == 0 {
            v.push(format!("{name}: runAsUser 0"));
        }
        match seccomp(sc).or(seccomp(psc)).as_deref() {
            Some("RuntimeDefault" | "Localhost") => {}
            other => v.push(format!("{name}: seccompProfile {other:?}")),
        }
    }
    v
}

#[test]
fn the_pods_of_an_unprivileged_mover_pass_the_restricted_level_and_only_those() {
    for c in cases() {
        let job = render(&c);
        let pod = &job["spec"]["template"]["spec"];
        let violations = restricted_violations(pod);
        if c.mover.is_root() {
            assert!(!violations.is_empty(), "{}: a root pod passed", c.name);
        } else {
            assert_eq!(violations, Vec::<String>::new(), "{}", c.name);
        }
        // Whoever runs it, the Job says so for the run's status.
        assert_eq!(
            job["metadata"]["annotations"]["holdfast.io/mover"],
            c.mover.to_string(),
            "{}",
            c.name
        );
    }
}

#[test]
fn an_unprivileged_mover_runs_as_its_identity_and_reads_the_key_it_does_not_own() {
    let c = cases()
        .into_iter()
        .find(|c| c.name == "backup-pvc")
        .unwrap();
    let job = render(&c);
    let pod = &job["spec"]["template"]["spec"];
    let psc = &pod["securityContext"];
    assert_eq!(
        (
            &psc["runAsUser"],
            &psc["runAsGroup"],
            &psc["supplementalGroups"]
        ),
        (
            &serde_json::json!(1000),
            &serde_json::json!(1000),
            &serde_json::json!([1000])
        )
    );
    // A backup only reads: no fsGroup, which would have the kubelet change the group of the
    // application's volume.
    assert!(psc.get("fsGroup").is_none(), "{psc}");
    let key = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "key")
        .unwrap();
    assert_eq!(key["secret"]["defaultMode"], 0o444);
    // Root's key stays root's alone.
    let c = cases()
        .into_iter()
        .find(|c| c.name == "backup-rwo-on-node")
        .unwrap();
    let job = render(&c);
    let key = job["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "key")
        .unwrap()
        .clone();
    assert_eq!(key["secret"]["defaultMode"], 0o400);
}

fn case(name: &str) -> Case {
    cases().into_iter().find(|c| c.name == name).unwrap()
}

fn toleration(key: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some("NoSchedule".into()),
        ..Default::default()
    }
}

/// What a platform sets on every pod: labels and annotations, placement, priority, pull
/// secrets, resources.
fn platform() -> JobTemplate {
    serde_json::from_value(serde_json::json!({
        "podLabels": {"team": "shop", "app.kubernetes.io/name": "not-holdfast"},
        "podAnnotations": {"sidecar.istio.io/inject": "false", "holdfast.io/mover": "forged"},
        "tolerations": [{"key": "backup-pool", "operator": "Exists", "effect": "NoSchedule"}],
        "nodeSelector": {"pool": "backup"},
        "affinity": {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                    "labelSelector": {"matchLabels": {"app": "db"}}}}]}
        },
        "priorityClassName": "backup-low",
        "imagePullSecrets": [{"name": "registry"}],
        "resources": {"limits": {"memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "256Mi"}}
    }))
    .unwrap()
}

#[test]
fn a_job_pod_carries_the_platforms_labels_placement_priority_pull_secrets_and_resources() {
    let job = render_with(
        &case("backup-pvc"),
        platform(),
        vec![toleration("dedicated")],
    );
    let template = &job["spec"]["template"];
    let pod = &template["spec"];
    assert_eq!(template["metadata"]["labels"]["team"], "shop");
    // The controller's own keys win: it selects and reads its pods by them.
    assert_eq!(
        template["metadata"]["labels"]["app.kubernetes.io/name"],
        "holdfast"
    );
    assert_ne!(
        template["metadata"]["annotations"]["holdfast.io/mover"],
        "forged"
    );
    assert_eq!(
        template["metadata"]["annotations"]["sidecar.istio.io/inject"],
        "false"
    );
    // On the pod, not on the Job.
    assert!(job["metadata"]["labels"].get("team").is_none(), "{job:#}");
    assert_eq!(pod["nodeSelector"], serde_json::json!({"pool": "backup"}));
    assert_eq!(
        pod["tolerations"],
        serde_json::json!([{"key": "backup-pool", "operator": "Exists", "effect": "NoSchedule"}]),
        "the claim's tolerations are only for a pinned pod"
    );
    assert_eq!(
        pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchExpressions"][0]["key"],
        "zone"
    );
    assert_eq!(pod["priorityClassName"], "backup-low");
    assert_eq!(
        pod["imagePullSecrets"],
        serde_json::json!([{"name": "registry"}])
    );
    let main = containers(pod)
        .into_iter()
        .find(|ct| ct["name"] == MAIN_CONTAINER)
        .unwrap();
    assert_eq!(main["resources"]["limits"]["memory"], "1Gi");
    // The controller's settings are untouched.
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(main["image"], "ghcr.io/holdfast-io/holdfast:0.1.0");

    // Without a template, none of it.
    let bare = render(&case("backup-pvc"));
    let pod = &bare["spec"]["template"]["spec"];
    for field in [
        "nodeSelector",
        "tolerations",
        "affinity",
        "priorityClassName",
        "imagePullSecrets",
    ] {
        assert!(pod.get(field).is_none(), "{field}: {pod:#}");
    }
}

#[test]
fn a_job_pinned_to_a_claims_node_runs_there_tolerating_what_the_claims_pods_tolerate() {
    let job = render_with(
        &case("backup-rwo-on-node"),
        platform(),
        vec![toleration("dedicated")],
    );
    let pod = &job["spec"]["template"]["spec"];
    let terms = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"];
    assert_eq!(
        terms,
        &serde_json::json!([{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-b"]}]}]),
        "the claim decides the node, not the template"
    );
    assert!(pod.get("nodeSelector").is_none(), "{pod:#}");
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"],
        10,
        "the template's pod anti-affinity stays"
    );
    let keys: Vec<&str> = pod["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["backup-pool", "dedicated"]);
}

#[test]
fn under_a_template_with_resources_every_container_of_a_command_source_job_has_them() {
    // A ResourceQuota that requires limits requires them of every container, init
    // containers included: a dump container without its own takes the job's.
    let job = render_with(&case("backup-command"), platform(), Vec::new());
    let pod = &job["spec"]["template"]["spec"];
    let all = containers(pod);
    assert!(
        all.len() >= 3,
        "main, the dump and the tools init container"
    );
    for ct in &all {
        assert_eq!(ct["resources"]["limits"]["memory"], "1Gi", "{}", ct["name"]);
    }
    // Its own resources win.
    let mut c = case("backup-command");
    let PodSource::Command { command, .. } = &mut c.sources[0] else {
        panic!("a command source")
    };
    command.resources =
        Some(serde_json::from_value(serde_json::json!({"limits": {"memory": "3Gi"}})).unwrap());
    let job = render_with(&c, platform(), Vec::new());
    let pod = &job["spec"]["template"]["spec"];
    let dump = containers(pod)
        .into_iter()
        .find(|ct| ct["name"] == "source-db")
        .unwrap();
    assert_eq!(dump["resources"]["limits"]["memory"], "3Gi");
    // Without a template, none (as before).
    let bare = render(&case("backup-command"));
    for ct in containers(&bare["spec"]["template"]["spec"]) {
        assert!(ct.get("resources").is_none(), "{}", ct["name"]);
    }
}
