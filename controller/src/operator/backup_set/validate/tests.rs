use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde_json::json;

use super::*;
use crate::api::{Schedule, StorageSet};
use crate::operator::backup_set::fetch::ClaimUser;

fn set(extra: serde_json::Value) -> BackupSet {
    let mut v = json!({
        "apiVersion": "holdfast.io/v1alpha1", "kind": "BackupSet",
        "metadata": {"name": "shop", "namespace": "shop", "creationTimestamp": "2026-11-01T00:00:00Z"},
        "spec": {"storageSetRef": {"name": "offsite"}, "scheduleRef": {"name": "nightly"},
                 "sources": [{"name": "uploads", "persistentVolumeClaim": {"claimName": "shop-uploads"}}],
                 "encryption": {"keySecretRef": {"name": "key", "key": "passphrase"}}},
    });
    for (k, val) in extra.as_object().unwrap() {
        v["spec"][k] = val.clone();
    }
    serde_json::from_value(v).unwrap()
}

fn claim(name: &str, mode: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"accessModes": [mode]}}))
        .unwrap()
}

fn refs() -> Refs {
    Refs {
        storage: Some(
            serde_json::from_value::<StorageSet>(json!({
            "apiVersion": "holdfast.io/v1alpha1", "kind": "StorageSet",
            "metadata": {"name": "offsite", "namespace": "shop"},
            "spec": {"s3": {"bucket": "backups", "credentialsSecretRef": {"name": "creds"}}}}))
            .unwrap(),
        ),
        schedule: Some(
            serde_json::from_value::<Schedule>(json!({
            "apiVersion": "holdfast.io/v1alpha1", "kind": "Schedule",
            "metadata": {"name": "nightly", "namespace": "shop"},
            "spec": {"full": "0 1 * * 6", "incremental": "0 1 * * 0-5"}}))
            .unwrap(),
        ),
        secrets: ["key".to_owned(), "creds".to_owned()].into(),
        claims: BTreeMap::from([(
            "shop-uploads".to_owned(),
            claim("shop-uploads", "ReadWriteMany"),
        )]),
        ..Refs::default()
    }
}

fn reason(r: Result<ValidSet, Problem>) -> &'static str {
    match r {
        Ok(_) => "Ok",
        Err(p) => p.reason,
    }
}

#[test]
fn validation_table() {
    let s = set(json!({}));
    let used_on = |node: &str, mode: &str| {
        let mut r = refs();
        r.claims
            .insert("shop-uploads".into(), claim("shop-uploads", mode));
        r.claim_users.insert(
            "shop-uploads".into(),
            vec![ClaimUser {
                pod: "web-0".into(),
                node: Some(node.into()),
            }],
        );
        r
    };
    let cases: Vec<(&str, BackupSet, Refs, &str)> = vec![
        ("everything there", s.clone(), refs(), "Ok"),
        (
            "no StorageSet",
            s.clone(),
            Refs {
                storage: None,
                ..refs()
            },
            "StorageSetNotFound",
        ),
        (
            "no Schedule",
            s.clone(),
            Refs {
                schedule: None,
                ..refs()
            },
            "ScheduleNotFound",
        ),
        (
            "no key Secret",
            s.clone(),
            Refs {
                secrets: ["creds".to_owned()].into(),
                ..refs()
            },
            "KeySecretNotFound",
        ),
        (
            "no credentials Secret",
            s.clone(),
            Refs {
                secrets: ["key".to_owned()].into(),
                ..refs()
            },
            "CredentialsSecretNotFound",
        ),
        (
            "no source claim",
            s.clone(),
            Refs {
                claims: BTreeMap::new(),
                ..refs()
            },
            "SourceClaimNotFound",
        ),
        (
            "ReadWriteOncePod in use",
            s.clone(),
            used_on("node-b", "ReadWriteOncePod"),
            "ReadWriteOncePodInUse",
        ),
        (
            "ReadWriteOnce in use: fine, on its node",
            s.clone(),
            used_on("node-b", "ReadWriteOnce"),
            "Ok",
        ),
        (
            "bad retention",
            set(json!({"retention": {"maxAge": "0d"}})),
            refs(),
            "RetentionInvalid",
        ),
        (
            "bad timeout",
            set(json!({"timeouts": {"backup": "soon"}})),
            refs(),
            "TimeoutInvalid",
        ),
        (
            "escaping repository",
            set(json!({"repository": "../other"})),
            refs(),
            "RepositoryInvalid",
        ),
    ];
    for (what, s, r, want) in cases {
        assert_eq!(reason(validate(&s, &r)), want, "{what}");
    }
    let v = validate(&s, &used_on("node-b", "ReadWriteOnce")).unwrap();
    assert_eq!(
        v.node.as_deref(),
        Some("node-b"),
        "the backup runs where the claim is mounted"
    );
    assert_eq!(v.url, "s3://backups/shop/shop");
    let v = validate(&s, &refs()).unwrap();
    assert_eq!(
        v.node, None,
        "a ReadWriteMany claim needs no particular node"
    );
}

#[test]
fn a_bad_time_zone_and_two_sets_on_one_repository() {
    let mut r = refs();
    r.schedule.as_mut().unwrap().spec.time_zone = "Mars/Olympus".into();
    let p = validate(&set(json!({})), &r).unwrap_err();
    assert_eq!(p.reason, "ScheduleInvalid");
    assert!(p.message.contains("unknown time zone"), "{}", p.message);

    let mut older = set(json!({"repository": "shared/repo"}));
    older.metadata.name = Some("first".into());
    let mut newer = set(json!({"repository": "shared/repo"}));
    newer.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-11-05T00:00:00Z".parse().unwrap(),
    ));
    let r = Refs {
        siblings: vec![older.clone(), newer.clone()],
        ..refs()
    };
    let p = validate(&newer, &r).unwrap_err();
    assert_eq!(p.reason, "RepositoryClaimed");
    assert!(p.message.contains("first"), "{}", p.message);
    assert!(validate(&older, &r).is_ok(), "the older set keeps it");

    let two: BackupSet = set(json!({"sources": [
        {"name": "a", "persistentVolumeClaim": {"claimName": "ca"}},
        {"name": "b", "persistentVolumeClaim": {"claimName": "cb"}}]}));
    let mut r = refs();
    r.claims = BTreeMap::from([
        ("ca".to_owned(), claim("ca", "ReadWriteOnce")),
        ("cb".to_owned(), claim("cb", "ReadWriteOnce")),
    ]);
    r.claim_users.insert(
        "ca".into(),
        vec![ClaimUser {
            pod: "x".into(),
            node: Some("node-a".into()),
        }],
    );
    r.claim_users.insert(
        "cb".into(),
        vec![ClaimUser {
            pod: "y".into(),
            node: Some("node-b".into()),
        }],
    );
    let p = validate(&two, &r).unwrap_err();
    assert_eq!(p.reason, "SourcesOnDifferentNodes");
    assert!(p.recheck.is_some());
}
