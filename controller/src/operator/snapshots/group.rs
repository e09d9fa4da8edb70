//! A set's `Snapshot` sources taken together as one VolumeGroupSnapshot: the object, and
//! what it and its member VolumeSnapshots (made by the snapshot controller, one per claim,
//! owned by the group) say (pure, table-tested).

use std::collections::BTreeMap;

use jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use crate::api::backup_set::GroupSnapshot;

use super::objects::{
    Found, Owner, Readiness, SnapshotSource, Verdict, error_final, late, readiness,
};

/// The group snapshot API's VolumeGroupSnapshot.
pub fn volume_group_snapshot_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "groupsnapshot.storage.k8s.io",
        "v1",
        "VolumeGroupSnapshot",
    ))
}

/// The group snapshot API's VolumeGroupSnapshotClass (cluster-scoped).
pub fn volume_group_snapshot_class_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "groupsnapshot.storage.k8s.io",
        "v1",
        "VolumeGroupSnapshotClass",
    ))
}

/// The group's name: the Job's (one group per run).
pub fn name(owner: &Owner) -> String {
    owner.job.clone()
}

/// The VolumeGroupSnapshot of the Job.
pub fn volume_group_snapshot(group: &GroupSnapshot, owner: &Owner) -> DynamicObject {
    let mut o = DynamicObject::new(&name(owner), &volume_group_snapshot_resource());
    o.metadata.labels = Some(owner.labels.clone());
    o.metadata.owner_references = Some(vec![owner.reference.clone()]);
    o.data = json!({"spec": {
        "volumeGroupSnapshotClassName": group.volume_group_snapshot_class_name,
        "source": {"selector": group.claim_selector},
    }});
    o
}

/// The member VolumeSnapshots of the group `uid` among `snapshots`, by the claim each holds.
pub fn members(uid: &str, snapshots: &[DynamicObject]) -> BTreeMap<String, (String, Readiness)> {
    snapshots
        .iter()
        .filter(|s| {
            s.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        .filter_map(|s| {
            let claim = s.data["spec"]["source"]["persistentVolumeClaimName"].as_str()?;
            Some((
                claim.to_owned(),
                (s.metadata.name.clone().unwrap_or_default(), readiness(s)),
            ))
        })
        .collect()
}

/// The verdict on the group `group` (its own readiness), asked for at `since`, whose
/// members are `members`, at `now`.
pub fn verdict(
    group: &str,
    class: &str,
    own: &Readiness,
    members: &BTreeMap<String, (String, Readiness)>,
    sources: &[SnapshotSource],
    since: Option<Timestamp>,
    now: Timestamp,
) -> Verdict {
    match own {
        Readiness::Failed(why) if error_final(since, now) => {
            return Verdict::Fail(format!(
                "the VolumeGroupSnapshot {group} (class {class}) failed: {why}"
            ));
        }
        Readiness::Failed(_) | Readiness::Waiting if late(since, now) => {
            return Verdict::Fail(format!(
                "the VolumeGroupSnapshot {group} was not ready after {} minutes: see `kubectl \
                 describe volumegroupsnapshot {group}` and the CSI driver's snapshotter logs",
                super::objects::READY_TIMEOUT.as_secs() / 60
            ));
        }
        Readiness::Failed(_) | Readiness::Waiting => return Verdict::Wait,
        Readiness::Ready { .. } => {}
    }
    let mut found = BTreeMap::new();
    for s in sources {
        let Some((name, r)) = members.get(&s.claim) else {
            return Verdict::Fail(format!(
                "the VolumeGroupSnapshot {group} holds no snapshot of claim {} (source {}): \
                 the set's groupSnapshot.claimSelector must select it",
                s.claim, s.source
            ));
        };
        found.insert(
            s.source.clone(),
            Found {
                name: name.clone(),
                readiness: r.clone(),
                group: Some(group.to_owned()),
            },
        );
    }
    super::objects::verdict(sources, &found, since, now)
}

#[cfg(test)]
mod tests {
    use super::super::objects::tests::source;
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn member(name: &str, owner_uid: &str, claim: &str, ready: bool) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
            "metadata": {"name": name, "ownerReferences": [{"apiVersion": "groupsnapshot.storage.k8s.io/v1",
                "kind": "VolumeGroupSnapshot", "name": "g", "uid": owner_uid}]},
            "spec": {"source": {"persistentVolumeClaimName": claim}},
            "status": {"readyToUse": ready, "creationTime": "2026-12-07T10:00:01Z"}}))
        .unwrap()
    }

    #[test]
    fn a_ready_group_gives_each_source_its_member_snapshot_and_the_group_name() {
        let sources = [source("db"), source("wal")];
        let snaps = [
            member("snapshot-1", "g-uid", "db-claim", true),
            member("snapshot-2", "g-uid", "wal-claim", true),
            member("other", "another-group", "db-claim", true),
        ];
        let m = members("g-uid", &snaps);
        assert_eq!(m.len(), 2);
        let t0: Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
        let ready = Readiness::Ready {
            creation_time: Some(Time("2026-12-07T10:00:01Z".parse().unwrap())),
            restore_size: None,
        };
        let Verdict::Ready(taken) = verdict("g", "c", &ready, &m, &sources, Some(t0), t0) else {
            panic!()
        };
        let names: Vec<_> = taken
            .iter()
            .map(|(t, _)| {
                (
                    t.volume_snapshot.as_str(),
                    t.volume_group_snapshot.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [("snapshot-1", Some("g")), ("snapshot-2", Some("g"))]
        );
    }

    #[test]
    fn a_group_fails_with_the_drivers_words_late_or_without_a_sources_claim() {
        let sources = [source("db"), source("wal")];
        let t0: Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
        let none = BTreeMap::new();
        let refused = Readiness::Failed("refused".into());
        assert_eq!(
            verdict("g", "c", &refused, &none, &sources, Some(t0), t0),
            Verdict::Wait,
            "the snapshot controller may still clear it"
        );
        let settled = t0 + jiff::SignedDuration::from_secs(31);
        let Verdict::Fail(why) = verdict("g", "c", &refused, &none, &sources, Some(t0), settled)
        else {
            panic!()
        };
        assert!(
            why.contains("VolumeGroupSnapshot g (class c) failed: refused"),
            "{why}"
        );
        assert_eq!(
            verdict("g", "c", &Readiness::Waiting, &none, &sources, Some(t0), t0),
            Verdict::Wait
        );
        let late = t0 + jiff::SignedDuration::from_secs(601);
        assert!(matches!(
            verdict(
                "g",
                "c",
                &Readiness::Waiting,
                &none,
                &sources,
                Some(t0),
                late
            ),
            Verdict::Fail(_)
        ));
        let ready = Readiness::Ready {
            creation_time: None,
            restore_size: None,
        };
        let only_db = members("u", &[member("snapshot-1", "u", "db-claim", true)]);
        let Verdict::Fail(why) = verdict("g", "c", &ready, &only_db, &sources, Some(t0), t0) else {
            panic!()
        };
        assert!(
            why.contains("holds no snapshot of claim wal-claim") && why.contains("claimSelector"),
            "{why}"
        );
    }
}
