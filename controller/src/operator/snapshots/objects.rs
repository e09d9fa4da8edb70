//! The objects a snapshot read makes (a VolumeSnapshot per source, a temporary claim from
//! it) and what their status says (pure, table-tested).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use crate::api::backup_set::SnapshotTaken;

use super::state::object_name;

/// How long a snapshot may take to be ready before the run fails with what the driver
/// says.
pub const READY_TIMEOUT: Duration = Duration::from_secs(600);

/// The snapshot API's VolumeSnapshot.
pub fn volume_snapshot_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "snapshot.storage.k8s.io",
        "v1",
        "VolumeSnapshot",
    ))
}

/// The snapshot API's VolumeSnapshotClass (cluster-scoped).
pub fn volume_snapshot_class_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "snapshot.storage.k8s.io",
        "v1",
        "VolumeSnapshotClass",
    ))
}

/// A source read through a snapshot, as the set's spec and its claim say.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotSource {
    pub source: String,
    pub claim: String,
    /// Read from a clone of the claim (copyMethod `Clone`), not a snapshot.
    pub clone: bool,
    /// The snapshot's class (a VolumeSnapshotClass, or the group's); empty for a clone.
    pub class: String,
    /// The claim's StorageClass: the temporary claim's too.
    pub storage_class: Option<String>,
    /// The claim's requested size: the temporary claim's at least.
    pub size: Option<Quantity>,
}

/// What every object of a Job's snapshot read carries: owned by the Job (deleted with it
/// at the latest) and labelled with it.
#[derive(Debug, Clone)]
pub struct Owner {
    pub job: String,
    pub reference: OwnerReference,
    pub labels: BTreeMap<String, String>,
}

/// The VolumeSnapshot of `s` for the Job.
pub fn volume_snapshot(s: &SnapshotSource, owner: &Owner) -> DynamicObject {
    let mut o = DynamicObject::new(
        &object_name(&owner.job, &s.source),
        &volume_snapshot_resource(),
    );
    o.metadata.labels = Some(owner.labels.clone());
    o.metadata.owner_references = Some(vec![owner.reference.clone()]);
    o.data = json!({"spec": {
        "volumeSnapshotClassName": s.class,
        "source": {"persistentVolumeClaimName": s.claim},
    }});
    o
}

/// The temporary claim made from `snapshot`, the ready snapshot of `s` (`restore_size` its
/// size when the driver says so: a claim from a snapshot may not be smaller).
pub fn temporary_claim(
    s: &SnapshotSource,
    snapshot: &str,
    owner: &Owner,
    restore_size: Option<&Quantity>,
) -> PersistentVolumeClaim {
    let from =
        json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snapshot});
    owned_claim(s, owner, restore_size.or(s.size.as_ref()), from)
}

/// The temporary clone of `s`'s claim for the Job: a claim whose data source is the
/// claim, in its StorageClass, at its size.
pub fn clone_claim(s: &SnapshotSource, owner: &Owner) -> PersistentVolumeClaim {
    let from = json!({"kind": "PersistentVolumeClaim", "name": s.claim});
    owned_claim(s, owner, s.size.as_ref(), from)
}

/// The Job's claim of `s` with its data from `from`, in the source claim's StorageClass.
fn owned_claim(
    s: &SnapshotSource,
    owner: &Owner,
    size: Option<&Quantity>,
    from: serde_json::Value,
) -> PersistentVolumeClaim {
    let size = size.cloned().unwrap_or_else(|| Quantity("1Gi".into()));
    let mut claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": object_name(&owner.job, &s.source)},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
            "dataSource": from,
        },
    }))
    .unwrap_or_default();
    claim.metadata.labels = Some(owner.labels.clone());
    claim.metadata.owner_references = Some(vec![owner.reference.clone()]);
    if let Some(spec) = claim.spec.as_mut() {
        spec.storage_class_name = s.storage_class.clone();
    }
    claim
}

/// What the Job's clones come to: all bound (made), still waiting, or not made in time.
pub fn clones_verdict(
    claims: &BTreeMap<String, Option<PersistentVolumeClaim>>,
    since: Option<Timestamp>,
    now: Timestamp,
) -> Verdict {
    let mut waiting = Vec::new();
    for (name, c) in claims {
        let Some(c) = c else {
            return Verdict::Fail(format!(
                "the clone {name} is gone before the backup read it"
            ));
        };
        let phase = c.status.as_ref().and_then(|s| s.phase.as_deref());
        match phase {
            Some("Bound") => {}
            Some("Lost") => {
                return Verdict::Fail(format!("the clone {name} lost its volume"));
            }
            _ => waiting.push(name.clone()),
        }
    }
    if waiting.is_empty() {
        return Verdict::Ready(Vec::new());
    }
    if late(since, now) {
        return Verdict::Fail(format!(
            "the clone(s) {} were not made after {} minutes: see `kubectl describe pvc` (the \
             CSI driver must support cloning, in the source claim's StorageClass)",
            waiting.join(", "),
            READY_TIMEOUT.as_secs() / 60
        ));
    }
    Verdict::Wait
}

/// Where one VolumeSnapshot stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    Ready {
        creation_time: Option<Time>,
        restore_size: Option<Quantity>,
    },
    Waiting,
    /// The snapshot controller or the driver said why not.
    Failed(String),
}

/// What a VolumeSnapshot's status says.
pub fn readiness(o: &DynamicObject) -> Readiness {
    let status = &o.data["status"];
    if let Some(message) = status["error"]["message"].as_str() {
        return Readiness::Failed(message.to_owned());
    }
    if status["readyToUse"].as_bool() == Some(true) {
        return Readiness::Ready {
            creation_time: serde_json::from_value(status["creationTime"].clone()).ok(),
            restore_size: serde_json::from_value(status["restoreSize"].clone()).ok(),
        };
    }
    Readiness::Waiting
}

/// What the Job's snapshots come to.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every one is ready: the sources and the instant each holds, and their sizes.
    Ready(Vec<(SnapshotTaken, Option<Quantity>)>),
    Wait,
    Fail(String),
}

/// One source's snapshot as found: its name, where it stands, and the group it was taken in.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub name: String,
    pub readiness: Readiness,
    pub group: Option<String>,
}

/// How long an error in a snapshot's status may stand before the run fails with it: the
/// snapshot controller retries and clears what was passing (a conflicting update of its
/// own objects), so only an error that stays is the driver's answer.
pub const ERROR_GRACE: Duration = Duration::from_secs(30);

/// Past the time a snapshot asked for at `since` may take (`None`: not known, never late).
pub fn late(since: Option<Timestamp>, now: Timestamp) -> bool {
    older_than(since, now, READY_TIMEOUT)
}

/// An error in the status of a snapshot asked for at `since` is final by `now`.
pub fn error_final(since: Option<Timestamp>, now: Timestamp) -> bool {
    older_than(since, now, ERROR_GRACE)
}

fn older_than(since: Option<Timestamp>, now: Timestamp, age: Duration) -> bool {
    since.is_some_and(|t| Duration::try_from(now.duration_since(t)).unwrap_or_default() >= age)
}

/// The verdict on the snapshots of `sources` (`found` by source; a missing one was deleted
/// by someone), taken at `since` (`None`: not known, no timeout), at `now`.
pub fn verdict(
    sources: &[SnapshotSource],
    found: &BTreeMap<String, Found>,
    since: Option<Timestamp>,
    now: Timestamp,
) -> Verdict {
    let mut ready = Vec::new();
    let mut waiting = Vec::new();
    for s in sources {
        let Some(f) = found.get(&s.source) else {
            return Verdict::Fail(format!(
                "the VolumeSnapshot of source {} is gone before the backup read it",
                s.source
            ));
        };
        let name = f.name.clone();
        match &f.readiness {
            Readiness::Failed(why) if error_final(since, now) => {
                return Verdict::Fail(format!(
                    "the VolumeSnapshot {name} of claim {} (class {}) failed: {why}",
                    s.claim, s.class
                ));
            }
            Readiness::Failed(_) | Readiness::Waiting => waiting.push(name),
            Readiness::Ready {
                creation_time,
                restore_size,
            } => ready.push((
                SnapshotTaken {
                    source: s.source.clone(),
                    volume_snapshot: name,
                    creation_time: creation_time.clone(),
                    volume_group_snapshot: f.group.clone(),
                },
                restore_size.clone(),
            )),
        }
    }
    if waiting.is_empty() {
        return Verdict::Ready(ready);
    }
    if late(since, now) {
        return Verdict::Fail(format!(
            "the VolumeSnapshot(s) {} were not ready after {} minutes: see `kubectl describe \
             volumesnapshot` and the CSI driver's snapshotter logs",
            waiting.join(", "),
            READY_TIMEOUT.as_secs() / 60
        ));
    }
    Verdict::Wait
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A Snapshot source of the claim `<name>-claim` (the group tests share it).
    pub(in crate::operator::snapshots) fn source(name: &str) -> SnapshotSource {
        SnapshotSource {
            source: name.into(),
            claim: format!("{name}-claim"),
            clone: false,
            class: "btrfs".into(),
            storage_class: Some("fast".into()),
            size: Some(Quantity("2Gi".into())),
        }
    }

    fn ready(t: &str) -> Readiness {
        Readiness::Ready {
            creation_time: Some(Time(t.parse().unwrap())),
            restore_size: Some(Quantity("3Gi".into())),
        }
    }

    #[test]
    fn the_snapshots_are_ready_together_fail_with_the_drivers_words_or_after_the_timeout() {
        let sources = [source("db"), source("files")];
        let t0: Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
        let at = |source: &str, readiness: Readiness| Found {
            name: format!("j-{source}"),
            readiness,
            group: None,
        };
        let found = |db: Readiness, files: Option<Readiness>| {
            let mut m = BTreeMap::from([("db".to_owned(), at("db", db))]);
            if let Some(f) = files {
                m.insert("files".into(), at("files", f));
            }
            m
        };
        let v = verdict(
            &sources,
            &found(
                ready("2026-12-07T10:00:01Z"),
                Some(ready("2026-12-07T10:00:01Z")),
            ),
            Some(t0),
            t0,
        );
        let Verdict::Ready(taken) = v else {
            panic!("{v:?}")
        };
        assert_eq!(taken[0].0.volume_snapshot, "j-db");
        assert_eq!(taken[1].1, Some(Quantity("3Gi".into())));
        assert_eq!(
            verdict(
                &sources,
                &found(ready("2026-12-07T10:00:01Z"), Some(Readiness::Waiting)),
                Some(t0),
                t0
            ),
            Verdict::Wait
        );
        let late = t0 + jiff::SignedDuration::from_secs(601);
        let Verdict::Fail(why) = verdict(
            &sources,
            &found(Readiness::Waiting, Some(Readiness::Waiting)),
            Some(t0),
            late,
        ) else {
            panic!()
        };
        assert!(
            why.contains("j-db, j-files were not ready after 10 minutes"),
            "{why}"
        );
        let failed = found(
            Readiness::Failed("no space".into()),
            Some(ready("2026-12-07T10:00:01Z")),
        );
        assert_eq!(
            verdict(&sources, &failed, Some(t0), t0),
            Verdict::Wait,
            "the snapshot controller may still clear it"
        );
        let settled = t0 + jiff::SignedDuration::from_secs(31);
        let Verdict::Fail(why) = verdict(&sources, &failed, Some(t0), settled) else {
            panic!()
        };
        assert!(
            why.contains("claim db-claim (class btrfs) failed: no space"),
            "{why}"
        );
        let Verdict::Fail(why) = verdict(
            &sources,
            &found(ready("2026-12-07T10:00:01Z"), None),
            Some(t0),
            t0,
        ) else {
            panic!()
        };
        assert!(why.contains("is gone"), "{why}");
    }

    #[test]
    fn a_temporary_claim_is_made_from_its_snapshot_in_the_claims_class_at_the_restore_size() {
        let owner = Owner {
            job: "shop-backup-x".into(),
            reference: OwnerReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name: "shop-backup-x".into(),
                uid: "u".into(),
                ..OwnerReference::default()
            },
            labels: BTreeMap::from([("holdfast.io/job".to_owned(), "shop-backup-x".to_owned())]),
        };
        let s = source("db");
        let snap = volume_snapshot(&s, &owner);
        assert_eq!(snap.metadata.name.as_deref(), Some("shop-backup-x-db"));
        assert_eq!(
            snap.data["spec"]["source"]["persistentVolumeClaimName"],
            "db-claim"
        );
        assert_eq!(snap.data["spec"]["volumeSnapshotClassName"], "btrfs");
        let claim = temporary_claim(
            &s,
            "shop-backup-x-db",
            &owner,
            Some(&Quantity("3Gi".into())),
        );
        let spec = claim.spec.unwrap();
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(spec.data_source.unwrap().name, "shop-backup-x-db");
        assert_eq!(
            spec.resources.unwrap().requests.unwrap()["storage"],
            Quantity("3Gi".into())
        );
        assert_eq!(claim.metadata.owner_references.unwrap()[0].kind, "Job");
        let ready_status: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
            "metadata": {"name": "x"},
            "status": {"readyToUse": true, "creationTime": "2026-12-07T10:00:01Z", "restoreSize": "1Gi"}}))
        .unwrap();
        assert_eq!(
            readiness(&ready_status),
            Readiness::Ready {
                creation_time: Some(Time("2026-12-07T10:00:01Z".parse().unwrap())),
                restore_size: Some(Quantity("1Gi".into()))
            }
        );
    }

    #[test]
    fn a_clone_is_a_claim_from_the_source_claim_and_is_made_once_bound_or_fails_late() {
        let owner = Owner {
            job: "shop-backup-x".into(),
            reference: OwnerReference::default(),
            labels: BTreeMap::new(),
        };
        let s = SnapshotSource {
            clone: true,
            ..source("db")
        };
        let c = clone_claim(&s, &owner);
        assert_eq!(c.metadata.name.as_deref(), Some("shop-backup-x-db"));
        let spec = c.spec.unwrap();
        let from = spec.data_source.unwrap();
        assert_eq!(
            (from.kind.as_str(), from.name.as_str()),
            ("PersistentVolumeClaim", "db-claim")
        );
        assert_eq!(from.api_group, None);
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
        let phase = |p: &str| -> Option<PersistentVolumeClaim> {
            Some(serde_json::from_value(json!({"status": {"phase": p}})).unwrap())
        };
        let t0: Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
        let claims = |a: Option<PersistentVolumeClaim>| BTreeMap::from([("x-db".to_owned(), a)]);
        assert_eq!(
            clones_verdict(&claims(phase("Bound")), Some(t0), t0),
            Verdict::Ready(vec![])
        );
        assert_eq!(
            clones_verdict(&claims(phase("Pending")), Some(t0), t0),
            Verdict::Wait
        );
        let late = t0 + jiff::SignedDuration::from_secs(601);
        let Verdict::Fail(why) = clones_verdict(&claims(phase("Pending")), Some(t0), late) else {
            panic!()
        };
        assert!(why.contains("x-db were not made after 10 minutes"), "{why}");
        assert!(matches!(
            clones_verdict(&claims(phase("Lost")), Some(t0), t0),
            Verdict::Fail(_)
        ));
        assert!(matches!(
            clones_verdict(&claims(None), Some(t0), t0),
            Verdict::Fail(_)
        ));
    }
}
