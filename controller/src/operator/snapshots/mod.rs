//! A backup's `Snapshot` sources: a VolumeSnapshot of each claim (taken after the `pre`
//! hooks), waited for, then a temporary claim made from it for the job pod to read; both
//! owned by the Job and deleted when its run has been recorded. Holdfast speaks only the
//! Kubernetes snapshot API: any CSI driver with snapshots works.

pub mod objects;
pub mod state;

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams};

use crate::api::backup_set::SnapshotTaken;
use crate::operator::context::Context;
use crate::operator::error::Error;
use crate::operator::names::base_labels;
use crate::operator::write;
use objects::{Owner, SnapshotSource, Verdict};
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

/// Create the VolumeSnapshot of each source (once: a retried reconcile finds it).
pub async fn take(
    ctx: &Context,
    ns: &str,
    sources: &[SnapshotSource],
    owner: &Owner,
) -> Result<(), Error> {
    let api = snapshots_api(ctx, ns);
    for s in sources {
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
    now: Timestamp,
) -> Result<Verdict, Error> {
    let api = snapshots_api(ctx, ns);
    let mut found = BTreeMap::new();
    let mut since: Option<Timestamp> = None;
    for s in sources {
        let name = object_name(job, &s.source);
        let Some(o) = api
            .get_opt(&name)
            .await
            .map_err(Error::api(format!("reading VolumeSnapshot {name}")))?
        else {
            continue;
        };
        if let Some(t) = &o.metadata.creation_timestamp {
            since = Some(since.map_or(t.0, |s| s.min(t.0)));
        }
        found.insert(s.source.clone(), objects::readiness(&o));
    }
    Ok(objects::verdict(job, sources, &found, since, now))
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
        let size = ready
            .iter()
            .find(|(t, _)| t.source == s.source)
            .and_then(|(_, size)| size.as_ref());
        let claim = objects::temporary_claim(s, owner, size);
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
    let snaps = snapshots_api(ctx, ns);
    match snaps.list(&by_job).await {
        Ok(list) => {
            for s in list.items {
                let name = s.metadata.name.unwrap_or_default();
                let _ = snaps.delete(&name, &DeleteParams::default()).await;
            }
        }
        // No snapshot API: there is nothing of it to delete.
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(Error::api("listing a run's VolumeSnapshots")(e)),
    }
    Ok(())
}

/// Whether the VolumeSnapshotClass `name` exists (`false` also when the cluster serves no
/// snapshot API; `true` when the controller may not look, `rbac.snapshotClassReads=false`:
/// the snapshot's own status then says what is wrong).
pub async fn class_exists(client: &kube::Client, name: &str) -> Result<bool, Error> {
    let api: Api<DynamicObject> =
        Api::all_with(client.clone(), &objects::volume_snapshot_class_resource());
    match api.get_opt(name).await {
        Ok(found) => Ok(found.is_some()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(kube::Error::Api(e)) if e.code == 403 => Ok(true),
        Err(e) => Err(Error::api(format!("reading VolumeSnapshotClass {name}"))(e)),
    }
}
