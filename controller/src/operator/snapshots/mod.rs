//! A backup's `Snapshot` sources: a VolumeSnapshot of each claim (taken after the `pre`
//! hooks), waited for, then a temporary claim made from it for the job pod to read; both
//! owned by the Job and deleted when its run has been recorded. Holdfast speaks only the
//! Kubernetes snapshot API: any CSI driver with snapshots works.

pub mod group;
pub mod objects;
pub mod state;

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams};

use crate::api::backup_set::{GroupSnapshot, SnapshotTaken};
use crate::operator::context::Context;
use crate::operator::error::Error;
use crate::operator::names::base_labels;
use crate::operator::write;
use objects::{Found, Owner, SnapshotSource, Verdict};
use state::object_name;

/// The label naming the Job a snapshot or temporary claim belongs to.
pub const LABEL_JOB: &str = "holdfast.io/job";

/// What the objects of Job `job` (its uid `uid`) carry.
pub fn owner(job: &str, uid: &str) -> Owner {
    let mut labels = base_labels("snapshot");
    labels.insert(LABEL_JOB.to_owned(), job.to_owned());
    Owner {
        job: job.to_owned(),
        reference: OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: job.to_owned(),
            uid: uid.to_owned(),
            ..OwnerReference::default()
        },
        labels,
    }
}

fn snapshots_api(ctx: &Context, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(ctx.client.clone(), ns, &objects::volume_snapshot_resource())
}

fn groups_api(ctx: &Context, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        ctx.client.clone(),
        ns,
        &group::volume_group_snapshot_resource(),
    )
}

/// Create the VolumeSnapshot of each source, or the one VolumeGroupSnapshot of them all
/// (once: a retried reconcile finds it).
pub async fn take(
    ctx: &Context,
    ns: &str,
    sources: &[SnapshotSource],
    together: Option<&GroupSnapshot>,
    owner: &Owner,
) -> Result<(), Error> {
    if let Some(g) = together {
        let api = groups_api(ctx, ns);
        let o = group::volume_group_snapshot(g, owner);
        return write::create_once(&api, &o)
            .await
            .map(|_| ())
            .map_err(Error::api(
                "creating the VolumeGroupSnapshot of the set's Snapshot sources (does the \
                 cluster serve groupsnapshot.storage.k8s.io/v1?)",
            ));
    }
    let api = snapshots_api(ctx, ns);
    for s in sources.iter().filter(|s| !s.clone) {
        let snap = objects::volume_snapshot(s, owner);
        write::create_once(&api, &snap).await.map_err(Error::api(format!(
            "creating the VolumeSnapshot of claim {} (does the cluster serve snapshot.storage.k8s.io/v1?)",
            s.claim
        )))?;
    }
    Ok(())
}

/// Where the Job's snapshots stand at `now`.
pub async fn look(
    ctx: &Context,
    ns: &str,
    job: &str,
    sources: &[SnapshotSource],
    together: Option<&GroupSnapshot>,
    now: Timestamp,
) -> Result<Verdict, Error> {
    let api = snapshots_api(ctx, ns);
    if let Some(g) = together {
        let Some(o) = groups_api(ctx, ns)
            .get_opt(job)
            .await
            .map_err(Error::api(format!("reading VolumeGroupSnapshot {job}")))?
        else {
            return Ok(Verdict::Fail(format!(
                "the VolumeGroupSnapshot {job} is gone before the backup read it"
            )));
        };
        let own = objects::readiness(&o);
        let members = match own {
            objects::Readiness::Ready { .. } => {
                let all = api
                    .list(&ListParams::default())
                    .await
                    .map_err(Error::api("listing the group's VolumeSnapshots"))?
                    .items;
                group::members(o.metadata.uid.as_deref().unwrap_or_default(), &all)
            }
            _ => BTreeMap::new(),
        };
        let since = o.metadata.creation_timestamp.as_ref().map(|t| t.0);
        return Ok(group::verdict(
            job,
            &g.volume_group_snapshot_class_name,
            &own,
            &members,
            sources,
            since,
            now,
        ));
    }
    let mut found = BTreeMap::new();
    let mut since: Option<Timestamp> = None;
    for s in sources.iter().filter(|s| !s.clone) {
        let name = object_name(job, &s.source);
        let Some(o) = api
            .get_opt(&name)
            .await
            .map_err(Error::api(format!("reading VolumeSnapshot {name}")))?
        else {
            continue;
        };
        since = earliest(since, o.metadata.creation_timestamp.as_ref());
        found.insert(
            s.source.clone(),
            Found {
                name,
                readiness: objects::readiness(&o),
                group: None,
            },
        );
    }
    let snapshotted: Vec<SnapshotSource> = sources.iter().filter(|s| !s.clone).cloned().collect();
    Ok(objects::verdict(&snapshotted, &found, since, now))
}

/// When the first of a Job's objects was made: `since`, or `created` if that is earlier.
fn earliest(since: Option<Timestamp>, created: Option<&Time>) -> Option<Timestamp> {
    since.into_iter().chain(created.map(|t| t.0)).min()
}

/// Ask for the clone of each `Clone` source (once).
pub async fn clones(
    ctx: &Context,
    ns: &str,
    sources: &[SnapshotSource],
    owner: &Owner,
) -> Result<(), Error> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    for s in sources.iter().filter(|s| s.clone) {
        write::create_once(&api, &objects::clone_claim(s, owner))
            .await
            .map_err(Error::api(format!(
                "creating the clone of claim {}",
                s.claim
            )))?;
    }
    Ok(())
}

/// Whether the Job's clones are made (bound) at `now`.
pub async fn clones_made(
    ctx: &Context,
    ns: &str,
    job: &str,
    sources: &[SnapshotSource],
    now: Timestamp,
) -> Result<Verdict, Error> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let mut claims = BTreeMap::new();
    let mut since: Option<Timestamp> = None;
    for s in sources.iter().filter(|s| s.clone) {
        let name = object_name(job, &s.source);
        let c = api
            .get_opt(&name)
            .await
            .map_err(Error::api(format!("reading the clone {name}")))?;
        since = earliest(
            since,
            c.as_ref()
                .and_then(|c| c.metadata.creation_timestamp.as_ref()),
        );
        claims.insert(name, c);
    }
    Ok(objects::clones_verdict(&claims, since, now))
}

/// Make the temporary claim of each ready snapshot (once).
pub async fn claims(
    ctx: &Context,
    ns: &str,
    sources: &[SnapshotSource],
    owner: &Owner,
    ready: &[(SnapshotTaken, Option<Quantity>)],
) -> Result<(), Error> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    for s in sources {
        let Some((taken, size)) = ready.iter().find(|(t, _)| t.source == s.source) else {
            continue;
        };
        let claim = objects::temporary_claim(s, &taken.volume_snapshot, owner, size.as_ref());
        write::create_once(&api, &claim)
            .await
            .map_err(Error::api(format!(
                "creating the temporary claim of the snapshot of {}",
                s.claim
            )))?;
    }
    Ok(())
}

/// Delete the Job's snapshots and temporary claims (found by its label: the set's spec may
/// have changed since).
pub async fn clean(ctx: &Context, ns: &str, job: &str) -> Result<(), Error> {
    let by_job = ListParams::default().labels(&format!("{LABEL_JOB}={job}"));
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    for c in claims
        .list(&by_job)
        .await
        .map_err(Error::api("listing a run's temporary claims"))?
        .items
    {
        let name = c.metadata.name.unwrap_or_default();
        let _ = claims.delete(&name, &DeleteParams::default()).await;
    }
    // A group's member snapshots go with it (the snapshot controller deletes them).
    for (api, what) in [
        (snapshots_api(ctx, ns), "VolumeSnapshots"),
        (groups_api(ctx, ns), "VolumeGroupSnapshots"),
    ] {
        match api.list(&by_job).await {
            Ok(list) => {
                for s in list.items {
                    let name = s.metadata.name.unwrap_or_default();
                    let _ = api.delete(&name, &DeleteParams::default()).await;
                }
            }
            // No such API: there is nothing of it to delete.
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(Error::api(format!("listing a run's {what}"))(e)),
        }
    }
    Ok(())
}

/// Whether the VolumeSnapshotClass `name` exists (`false` also when the cluster serves no
/// snapshot API; `true` when the controller may not look, `rbac.snapshotClassReads=false`:
/// the snapshot's own status then says what is wrong).
pub async fn class_exists(client: &kube::Client, name: &str) -> Result<bool, Error> {
    exists(client, &objects::volume_snapshot_class_resource(), name).await
}

/// Whether the VolumeGroupSnapshotClass `name` exists (as [`class_exists`]).
pub async fn group_class_exists(client: &kube::Client, name: &str) -> Result<bool, Error> {
    exists(client, &group::volume_group_snapshot_class_resource(), name).await
}

async fn exists(
    client: &kube::Client,
    resource: &kube::api::ApiResource,
    name: &str,
) -> Result<bool, Error> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
    match api.get_opt(name).await {
        Ok(found) => Ok(found.is_some()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(kube::Error::Api(e)) if e.code == 403 => Ok(true),
        Err(e) => Err(Error::api(format!("reading {} {name}", resource.kind))(e)),
    }
}
