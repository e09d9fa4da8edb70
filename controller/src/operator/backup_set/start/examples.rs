//! Every example's backup Job, built as the controller builds it with everything it names
//! present, meets the `restricted` Pod Security level; a root mover (the privileged one, or
//! a filesystem repository's without `mover.securityContext`) does not, and no example
//! needs one.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::{Value, json};

use super::*;
use crate::api::{Schedule, StorageSet};
use crate::operator::backup_set::fetch::{ClaimUser, GroupRefs, Refs};
use crate::operator::mover::{MoverPlan, PodIdentity};
use crate::operator::plan::set::{OpKind, Reason, Start};

fn documents() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        out.extend(docs.into_iter().map(|d| (name.clone(), d)));
    }
    out
}

/// What the cluster holds for `set`: its StorageSet and Schedule (the example's own, or
/// plain ones), its Secrets and claims, the claims mounted by an application running as
/// uid 1000, every snapshot class.
fn refs_for(set: &BackupSet, docs: &[(String, Value)]) -> Refs {
    let find = |kind: &str, name: &str| {
        docs.iter()
            .map(|(_, d)| d)
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .cloned()
    };
    let storage_name = &set.spec.storage_set_ref.name;
    let mut storage = find("StorageSet", storage_name).unwrap_or_else(|| {
        json!({"apiVersion": "holdfast.io/v1alpha1", "kind": "StorageSet",
               "metadata": {"name": storage_name},
               "spec": {"s3": {"bucket": "backups", "credentialsSecretRef": {"name": "s3-credentials"}}}})
    });
    storage["metadata"]["namespace"] = json!(set.namespace());
    storage["metadata"]["generation"] = json!(1);
    storage["status"] = json!({"checkedGeneration": 1});
    let schedule = set.spec.schedule_ref.as_ref().map(|r| {
        let mut s = find("Schedule", &r.name).unwrap_or_else(|| {
            json!({"apiVersion": "holdfast.io/v1alpha1", "kind": "Schedule",
                   "metadata": {"name": r.name}, "spec": {"full": "0 1 * * 0"}})
        });
        s["metadata"]["namespace"] = json!(set.namespace());
        serde_json::from_value::<Schedule>(s).unwrap()
    });
    let storage: StorageSet = serde_json::from_value(storage).unwrap();
    let mut secrets = vec![set.spec.encryption.key_secret_ref.name.clone()];
    if let Some(r) = storage
        .spec
        .s3
        .as_ref()
        .and_then(|s3| s3.credentials_secret_ref.as_ref())
    {
        secrets.push(r.name.clone());
    }
    let mut claims: Vec<String> = set.source_claims().map(str::to_owned).collect();
    if let Some(fs) = &storage.spec.filesystem {
        claims.push(fs.persistent_volume_claim.claim_name.clone());
    }
    let app = PodIdentity {
        user: Some(1000),
        group: Some(1000),
        fs_group: Some(1000),
        supplemental: vec![],
    };
    let snapshot_claims = set
        .spec
        .sources
        .iter()
        .filter_map(|s| s.persistent_volume_claim.as_ref())
        .filter(|p| p.snapshot())
        .map(|p| p.claim_name.clone())
        .collect();
    Refs {
        storage: Some(storage),
        schedule,
        secrets: secrets.into_iter().collect(),
        claims: claims
            .iter()
            .map(|c| {
                let pvc = serde_json::from_value(json!({"metadata": {"name": c},
                    "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "csi",
                             "resources": {"requests": {"storage": "10Gi"}}}}))
                .unwrap();
                (c.clone(), pvc)
            })
            .collect(),
        claim_users: claims
            .iter()
            .map(|c| {
                let user = ClaimUser {
                    pod: "app-0".into(),
                    node: Some("node-a".into()),
                    identity: app.clone(),
                    tolerations: vec![],
                };
                (c.clone(), vec![user])
            })
            .collect(),
        snapshot_classes: set
            .spec
            .sources
            .iter()
            .filter_map(|s| {
                s.persistent_volume_claim
                    .as_ref()?
                    .volume_snapshot_class_name
                    .clone()
            })
            .map(|c| (c, true))
            .collect(),
        group: set.spec.group_snapshot.as_ref().map(|_| GroupRefs {
            class_exists: true,
            selected: Some(snapshot_claims),
        }),
        ..Refs::default()
    }
}

/// What the `restricted` Pod Security level refuses in `pod` (Kubernetes' own list: no
/// host namespaces, ports or paths, not privileged, no escalation, non-root, capabilities
/// dropped but NET_BIND_SERVICE, a RuntimeDefault or Localhost seccomp profile).
fn restricted_violations(pod: &PodSpec) -> Vec<String> {
    let mut out = Vec::new();
    if pod.host_network == Some(true) || pod.host_pid == Some(true) || pod.host_ipc == Some(true) {
        out.push("host namespaces".to_owned());
    }
    for v in pod.volumes.iter().flatten() {
        if v.host_path.is_some() {
            out.push(format!("hostPath volume {}", v.name));
        }
    }
    let psc = pod.security_context.clone().unwrap_or_default();
    let containers: Vec<&Container> = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
        .collect();
    for c in containers {
        let sc = c.security_context.clone().unwrap_or_default();
        let name = &c.name;
        if sc.privileged == Some(true) {
            out.push(format!("{name}: privileged"));
        }
        if sc.allow_privilege_escalation != Some(false) {
            out.push(format!("{name}: allowPrivilegeEscalation is not false"));
        }
        if sc.run_as_non_root.or(psc.run_as_non_root) != Some(true) {
            out.push(format!("{name}: runAsNonRoot is not true"));
        }
        if sc.run_as_user.or(psc.run_as_user) == Some(0) {
            out.push(format!("{name}: runAsUser 0"));
        }
        let seccomp = sc
            .seccomp_profile
            .as_ref()
            .or(psc.seccomp_profile.as_ref())
            .map(|p| p.type_.clone());
        if !matches!(seccomp.as_deref(), Some("RuntimeDefault" | "Localhost")) {
            out.push(format!("{name}: seccompProfile {seccomp:?}"));
        }
        let caps = sc.capabilities.clone().unwrap_or_default();
        if !caps.drop.iter().flatten().any(|d| d == "ALL") {
            out.push(format!("{name}: capabilities not dropped"));
        }
        for add in caps.add.iter().flatten() {
            if add != "NET_BIND_SERVICE" {
                out.push(format!("{name}: adds {add}"));
            }
        }
        for p in c.ports.iter().flatten() {
            if p.host_port.unwrap_or(0) != 0 {
                out.push(format!("{name}: hostPort"));
            }
        }
    }
    out
}

/// A scheduled full backup.
fn backup_start() -> Start {
    Start {
        kind: OpKind::Backup,
        slot: "2026-12-07T01:00:00Z".parse().unwrap(),
        level: holdfast_engine::format::run::Level::Full,
        source_levels: BTreeMap::new(),
        reason: Reason::Scheduled,
    }
}

#[test]
fn every_examples_backup_job_meets_the_restricted_pod_security_level() {
    let docs = documents();
    let settings = Settings::default();
    let mut checked = Vec::new();
    let mut root = Vec::new();
    let mut last = None;
    for (file, doc) in docs.iter().filter(|(_, d)| d["kind"] == "BackupSet") {
        let mut doc = doc.clone();
        doc["metadata"]["creationTimestamp"] = json!("2026-12-01T00:00:00Z");
        let set: BackupSet = serde_json::from_value(doc).unwrap();
        let what = format!("{file}: BackupSet {}", set.name_any());
        let refs = refs_for(&set, &docs);
        let valid = crate::operator::backup_set::validate::validate(&set, &refs)
            .unwrap_or_else(|p| panic!("{what} does not validate: {}", p.message));
        let start = backup_start();
        let job = build_job(&settings, &set, &valid, &start, false).unwrap();
        let pod = job.spec.unwrap().template.spec.unwrap();
        let violations = restricted_violations(&pod);
        match valid.mover {
            MoverPlan::Restricted(_) => {
                assert!(violations.is_empty(), "{what}: {violations:#?}");
            }
            // Asked for by the set (with the namespace's consent), or, for now, a
            // repository on a filesystem claim, whose files belong to root: a namespace at
            // `restricted` refuses these pods, and must.
            MoverPlan::Privileged | MoverPlan::FilesystemRepository => {
                assert!(
                    !violations.is_empty(),
                    "{what}: a root mover passed restricted"
                );
                root.push(what.clone());
            }
        }
        checked.push(what);
        last = Some((set, valid));
    }
    assert!(checked.len() >= 6, "{checked:?}");
    assert!(root.is_empty(), "no example needs a root mover: {root:?}");
    // The check sees a root mover (what a namespace at `restricted` refuses).
    let (set, mut valid) = last.unwrap();
    valid.mover = MoverPlan::Privileged;
    let start = backup_start();
    let job = build_job(&settings, &set, &valid, &start, false).unwrap();
    let violations = restricted_violations(&job.spec.unwrap().template.spec.unwrap());
    assert!(
        violations.iter().any(|v| v.contains("runAsNonRoot")),
        "{violations:?}"
    );
}
