//! Every example Restore's Job, built as the controller builds it (its set's mover and
//! claims, used by an application running as uid 1000), meets the `restricted` Pod
//! Security level.

use serde_json::json;

use super::*;
use crate::api::BackupSet;
use crate::operator::job::tests::restricted_violations;
use crate::operator::mover::PodIdentity;
use crate::operator::test_support::example_documents;

#[test]
fn every_examples_restore_job_meets_the_restricted_pod_security_level() {
    let docs = example_documents();
    let settings = Settings::default();
    let app = ClaimUser {
        pod: "app-0".into(),
        node: Some("node-a".into()),
        identity: PodIdentity {
            user: Some(1000),
            group: Some(1000),
            fs_group: Some(1000),
            supplemental: vec![],
        },
        tolerations: vec![],
    };
    let mut checked = Vec::new();
    for (file, doc) in docs.iter().filter(|(_, d)| d["kind"] == "Restore") {
        let r: Restore = serde_json::from_value(doc.clone()).unwrap();
        let what = format!("{file}: Restore {}", r.name_any());
        // The set it restores, as the example defines it (none for disaster recovery).
        let set: Option<BackupSet> = r.spec.backup_set_ref.as_ref().map(|b| {
            let d = docs
                .iter()
                .map(|(_, d)| d)
                .find(|d| {
                    d["kind"] == "BackupSet"
                        && d["metadata"]["name"] == json!(b.name)
                        && d["metadata"]["namespace"] == doc["metadata"]["namespace"]
                })
                .unwrap_or_else(|| panic!("{what}: its BackupSet is not in the examples"));
            serde_json::from_value(d.clone()).unwrap()
        });
        let storage = StorageMount::S3 {
            credentials_secret: Some("s3-credentials".into()),
        };
        let src = Source {
            url: "s3://backups/shop/shop".into(),
            repo_label: "shop".into(),
            storage: storage.clone(),
            key: SecretKeyReference {
                name: "key".into(),
                key: "passphrase".into(),
            },
            owner: None,
            set_mover: set.as_ref().and_then(|s| s.spec.mover.clone()),
            set_job_template: set.as_ref().and_then(BackupSet::job_template),
            set_claims: set
                .as_ref()
                .map(|s| s.source_claims().map(str::to_owned).collect())
                .unwrap_or_default(),
        };
        let set_users = if src.set_claims.is_empty() {
            vec![]
        } else {
            vec![app.clone()]
        };
        let spec = r.spec.mover.as_ref().or(src.set_mover.as_ref());
        let mover = restore_mover(spec, [&[], &set_users], &storage, "shop", None)
            .unwrap_or_else(|p| panic!("{what}: {}", p.message));
        let target = Target {
            claim: "restored".into(),
            node: None,
            tolerations: vec![],
            mover,
        };
        let job = build_job(&settings, &r, &src, &target, "shop-restore-x", false).unwrap();
        let pod = serde_json::to_value(job.spec.unwrap().template.spec.unwrap()).unwrap();
        let violations = restricted_violations(&pod);
        assert!(violations.is_empty(), "{what}: {violations:#?}");
        checked.push(what);
    }
    assert!(checked.len() >= 2, "{checked:?}");
}
