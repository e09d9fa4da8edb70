//! Every example's backup Job, built as the controller builds it with everything it names
//! present, meets the `restricted` Pod Security level; a root mover (the privileged one, or
//! a filesystem repository's without `mover.securityContext`) does not, and no example
//! needs one.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::api::{Schedule, StorageSet};
use crate::operator::backup_set::fetch::{ClaimUser, GroupRefs, Refs};
use crate::operator::mover::{MoverPlan, PodIdentity};
use crate::operator::plan::set::{OpKind, Reason, Start};
use crate::operator::test_support::{example_documents as documents, restricted_violations};

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
