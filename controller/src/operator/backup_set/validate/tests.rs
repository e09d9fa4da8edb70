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
            "metadata": {"name": "offsite", "namespace": "shop", "generation": 1},
            "spec": {"s3": {"bucket": "backups", "credentialsSecretRef": {"name": "creds"}}},
            "status": {"checkedGeneration": 1}}))
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
                ..Default::default()
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
            ..Default::default()
        }],
    );
    r.claim_users.insert(
        "cb".into(),
        vec![ClaimUser {
            pod: "y".into(),
            node: Some("node-b".into()),
            ..Default::default()
        }],
    );
    let p = validate(&two, &r).unwrap_err();
    assert_eq!(p.reason, "SourcesOnDifferentNodes");
    assert!(p.recheck.is_some());
}

#[test]
fn a_repository_inside_or_around_an_older_sets_is_claimed_but_a_mere_prefix_is_not() {
    let at = |name: &str, repo: &str, day: u32| {
        let mut s = set(json!({"repository": repo}));
        s.metadata.name = Some(name.into());
        s.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            format!("2026-11-{day:02}T00:00:00Z").parse().unwrap(),
        ));
        s
    };
    let outer = at("outer", "shop/outer", 1);
    for (what, younger, claimed) in [
        ("inside", at("inner", "shop/outer/nested", 2), true),
        ("around", at("around", "shop", 2), true),
        (
            "a name that only starts alike",
            at("outer2", "shop/outer2", 2),
            false,
        ),
    ] {
        let r = Refs {
            siblings: vec![outer.clone(), younger.clone()],
            ..refs()
        };
        let got = validate(&younger, &r);
        match (claimed, got) {
            (true, Err(p)) => {
                assert_eq!(p.reason, "RepositoryClaimed", "{what}");
                assert!(
                    p.message.contains("BackupSet outer"),
                    "{what}: {}",
                    p.message
                );
            }
            (false, Ok(_)) => {}
            (_, other) => panic!("{what}: {:?}", other.map(|v| v.repository)),
        }
        assert!(
            validate(&outer, &r).is_ok(),
            "{what}: the older set keeps its own"
        );
    }
    // A sibling on another StorageSet is another place altogether.
    let mut elsewhere = at("elsewhere", "shop/outer/nested", 1);
    elsewhere.spec.storage_set_ref.name = "other".into();
    let r = Refs {
        siblings: vec![elsewhere],
        ..refs()
    };
    assert!(validate(&at("inner", "shop/outer/nested", 2), &r).is_ok());
}

#[test]
fn a_secret_lacking_the_named_key_is_reported_when_its_key_names_are_known() {
    let keys = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
    let mut r = refs();
    r.secret_keys.insert("key".into(), keys(&["pass"]));
    let p = validate(&set(json!({})), &r).unwrap_err();
    assert_eq!(p.reason, "KeySecretInvalid");
    assert!(
        p.message
            .contains("Secret key has no key \"passphrase\" (it has pass)"),
        "{}",
        p.message
    );
    assert!(p.recheck.is_some(), "a Secret is not watched: look again");

    let mut r = refs();
    r.secret_keys.insert("key".into(), keys(&["passphrase"]));
    r.secret_keys
        .insert("creds".into(), keys(&["AWS_ACCESS_KEY_ID"]));
    let p = validate(&set(json!({})), &r).unwrap_err();
    assert_eq!(p.reason, "CredentialsSecretInvalid");
    assert!(p.message.contains("AWS_SECRET_ACCESS_KEY"), "{}", p.message);

    // Key names unknown (no field records): nothing to say before the pod does.
    assert!(validate(&set(json!({})), &refs()).is_ok());
}

#[test]
fn a_storage_set_failing_for_a_reason_only_a_user_can_fix_holds_the_set() {
    let failing = |reason: Option<&str>, checked: Option<i64>| {
        let mut r = refs();
        let storage = r.storage.as_mut().unwrap();
        storage.metadata.generation = Some(3);
        storage.status = Some(crate::api::storage_set::StorageSetStatus {
            checked_generation: checked,
            failed_checks: vec!["bucket: bucket \"backups\" does not exist".into()],
            failure_reason: reason.map(str::to_owned),
            ..Default::default()
        });
        r
    };
    let p = validate(&set(json!({})), &failing(Some("BucketNotFound"), Some(3))).unwrap_err();
    assert_eq!(p.reason, "StorageNotReady");
    assert!(
        p.message.contains("StorageSet offsite") && p.message.contains("BucketNotFound"),
        "{}",
        p.message
    );
    // A failure that may pass by itself holds nothing back; a check of an older spec
    // says nothing of this one: the set waits for the new spec's check.
    assert!(validate(&set(json!({})), &failing(None, Some(3))).is_ok());
    let p = validate(&set(json!({})), &failing(Some("BucketNotFound"), Some(2))).unwrap_err();
    assert_eq!(p.reason, "StorageNotChecked");
    assert!(
        p.waiting && p.message.contains("changed spec"),
        "{}",
        p.message
    );
}

#[test]
fn a_backup_pinned_to_a_claims_node_takes_the_tolerations_of_the_pods_there() {
    let toleration = |key: &str| k8s_openapi::api::core::v1::Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        ..Default::default()
    };
    let mut r = refs();
    r.claims.insert(
        "shop-uploads".into(),
        claim("shop-uploads", "ReadWriteOnce"),
    );
    r.claim_users.insert(
        "shop-uploads".into(),
        vec![
            ClaimUser {
                pod: "db-0".into(),
                node: Some("node-a".into()),
                tolerations: vec![toleration("dedicated")],
                ..Default::default()
            },
            // Gone from the node (another node's pod): not the job's neighbour.
            ClaimUser {
                pod: "db-old".into(),
                node: Some("node-b".into()),
                tolerations: vec![toleration("elsewhere")],
                ..Default::default()
            },
        ],
    );
    let v = validate(&set(json!({})), &r).unwrap();
    assert_eq!(v.node.as_deref(), Some("node-a"));
    assert_eq!(v.node_tolerations, vec![toleration("dedicated")]);

    // An unpinned backup (ReadWriteMany) tolerates only what its template says.
    let v = validate(&set(json!({})), &refs()).unwrap();
    assert_eq!(v.node, None);
    assert!(v.node_tolerations.is_empty());
}

#[test]
fn a_storage_set_never_checked_makes_the_set_wait_for_its_first_check() {
    let mut r = refs();
    r.storage.as_mut().unwrap().status = None;
    let p = validate(&set(json!({})), &r).unwrap_err();
    assert_eq!(p.reason, "StorageNotChecked");
    assert!(p.waiting, "waiting, not stalled");
    assert!(p.message.contains("StorageSet offsite"), "{}", p.message);
    assert!(p.recheck.is_some());
    // A status written before any check ended (an inventory, say) holds it the same.
    r.storage.as_mut().unwrap().status = Some(Default::default());
    assert_eq!(reason(validate(&set(json!({})), &r)), "StorageNotChecked");
    assert!(p.message.contains("first storage check"), "{}", p.message);
    // Once the current spec's check ended, the set runs (a failing one is reported as
    // StorageNotReady).
    assert_eq!(reason(validate(&set(json!({})), &refs())), "Ok");
    // A StorageSet being deleted checks nothing more, and its deletion moved its
    // generation on: a set purging through it on its own deletion does not wait.
    let mut r = refs();
    let storage = r.storage.as_mut().unwrap();
    storage.metadata.generation = Some(2);
    storage.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-12-07T00:00:00Z".parse().unwrap(),
        ));
    assert_eq!(reason(validate(&set(json!({})), &r)), "Ok");
}

#[test]
fn a_set_with_hooks_stalls_until_the_controller_may_run_them() {
    let plain = set(json!({}));
    assert!(hooks(&plain, false).is_ok());
    let hooked =
        set(json!({"hooks": [{"name": "lock", "podLabels": {"app": "db"}, "pre": ["sync"]}]}));
    let p = hooks(&hooked, false).unwrap_err();
    assert_eq!(p.reason, "HooksNotEnabled");
    assert!(p.message.contains("hooks.enabled=true"), "{}", p.message);
    assert!(hooks(&hooked, true).is_ok());
}

#[test]
fn a_group_snapshot_needs_its_class_and_a_selector_that_selects_exactly_the_snapshot_claims() {
    let grouped = set(json!({
        "sources": [
            {"name": "db", "persistentVolumeClaim": {"claimName": "db", "copyMethod": "Snapshot"}},
            {"name": "wal", "persistentVolumeClaim": {"claimName": "wal", "copyMethod": "Snapshot"}},
        ],
        "groupSnapshot": {"volumeGroupSnapshotClassName": "csi", "claimSelector": {"matchLabels": {"app": "db"}}},
    }));
    let with = |class_exists: bool, selected: Option<&[&str]>| {
        let mut r = refs();
        r.claims = ["db", "wal"]
            .iter()
            .map(|c| ((*c).to_owned(), claim(c, "ReadWriteOnce")))
            .collect();
        r.group = Some(crate::operator::backup_set::fetch::GroupRefs {
            class_exists,
            selected: selected.map(|s| s.iter().map(|c| (*c).to_owned()).collect()),
        });
        r
    };
    let message = |r: Result<ValidSet, Problem>| r.err().map(|p| p.message).unwrap_or_default();
    let v = validate(&grouped, &with(true, Some(&["db", "wal"]))).unwrap();
    assert_eq!(
        v.group
            .map(|g| g.volume_group_snapshot_class_name)
            .as_deref(),
        Some("csi")
    );
    assert_eq!(v.snapshots[1].class, "csi", "no VolumeSnapshotClass needed");
    assert_eq!(
        reason(validate(&grouped, &with(false, Some(&["db", "wal"])))),
        "VolumeGroupSnapshotClassNotFound"
    );
    let left_out = validate(&grouped, &with(true, Some(&["db"])));
    assert!(message(left_out).contains("does not select wal"));
    let extra = validate(&grouped, &with(true, Some(&["db", "wal", "cache"])));
    assert!(message(extra).contains("also selects cache"));
    assert_eq!(
        reason(validate(&grouped, &with(true, None))),
        "GroupSnapshotSelectorMismatch"
    );
}

#[test]
fn a_clone_source_needs_no_snapshot_class_and_stays_out_of_a_group() {
    let s = set(json!({
        "sources": [
            {"name": "db", "persistentVolumeClaim": {"claimName": "db", "copyMethod": "Clone"}},
        ],
    }));
    let mut r = refs();
    r.claims = BTreeMap::from([("db".to_owned(), claim("db", "ReadWriteOnce"))]);
    let v = validate(&s, &r).unwrap();
    assert!(v.snapshots[0].clone && v.snapshots[0].class.is_empty());
    assert!(v.sources[0].1.copied, "the pod dates it, not a live read");
}
