//! Releasing the set's own held backup when its turn comes: `pre` hooks, then the
//! snapshots of its `Snapshot` sources (waited for over several reconciles), then `post`
//! hooks once they are cut, the temporary claims made from them, and the Job released. A
//! failed `pre` or snapshot runs `post` and marks the Job failed: it never runs. Every step
//! is recorded on the Job before the next, so a controller that restarts picks up where
//! it stood.

use crate::operator::names::list_annotation;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};

use super::validate::ValidSet;
use crate::api::BackupSet;
use crate::api::backup_set::SnapshotTaken;
use crate::api::hook::HookResult;
use crate::job::plan::SNAPSHOT_TIMES_ANNOTATION;
use crate::operator::context::Context;
use crate::operator::error::Error;
use crate::operator::event_reason::EventReason;
use crate::operator::hooks::{self, state::HookState};
use crate::operator::job_view::JobView;
use crate::operator::names::ANNOTATION_FAILURE;
use crate::operator::plan::queue::JobState;
use crate::operator::snapshots;
use crate::operator::snapshots::objects::Verdict;
use crate::operator::snapshots::state::{
    ANNOTATION_CLONES, ANNOTATION_COPY, ANNOTATION_SNAPSHOTS, CopyState,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Take the held Job `job` one step on; where it stands after.
pub(super) async fn release(
    ctx: &Context,
    set: &BackupSet,
    valid: &ValidSet,
    job: &JobView,
) -> Result<JobState, Error> {
    if job.copy.is_some() && valid.snapshots.is_empty() {
        // Its pod mounts the temporary claims of sources the set no longer snapshots.
        return fail(
            ctx,
            set,
            job,
            "the set's Snapshot sources were changed while this run waited; the next run \
             reads them as the set now says"
                .to_owned(),
        )
        .await;
    }
    if job.copy == Some(CopyState::Snapshotting) {
        return snapshots_cut(ctx, set, valid, job).await;
    }
    let mut results = job.hook_results.clone();
    if job.hooks.is_some() {
        let ran = hooks::pre(ctx, set, &job.hooked()).await?;
        results = ran.results;
        if let Some(why) = ran.stop {
            let results = hooks::post_now(ctx, set, &job.name, results, ran.cut_short).await?;
            let mut ann = hooks::annotations(HookState::Failed, &results);
            ann[ANNOTATION_FAILURE] = json!(why);
            patch(
                ctx,
                set,
                &job.name,
                json!({"metadata": {"annotations": ann}}),
            )
            .await?;
            return Ok(JobState::Done);
        }
    }
    let hook_ann = || {
        job.hooks
            .map(|_| hooks::annotations(HookState::Released, &results))
            .unwrap_or_else(|| json!({}))
    };
    if job.copy.is_some() && valid.snapshots.iter().any(|s| !s.clone) {
        let ns = set.namespace().unwrap_or_default();
        let owner = snapshots::owner(&job.name, &job.uid);
        snapshots::take(ctx, &ns, &valid.snapshots, valid.group.as_ref(), &owner).await?;
        let mut ann = hook_ann();
        ann[ANNOTATION_COPY] = json!(CopyState::Snapshotting.as_str());
        patch(
            ctx,
            set,
            &job.name,
            json!({"metadata": {"annotations": ann}}),
        )
        .await?;
        return Ok(JobState::Waiting);
    }
    if job.copy.is_some() {
        // Clones only: asked for now, made (a WaitForFirstConsumer class) once the pod is
        // scheduled.
        return copies_ready(ctx, set, valid, job, results, Vec::new()).await;
    }
    patch(
        ctx,
        set,
        &job.name,
        json!({"metadata": {"annotations": hook_ann()}, "spec": {"suspend": false}}),
    )
    .await?;
    Ok(JobState::Active)
}

/// The instant each snapshot holds, by source, as the job pod reads it
/// ([`SNAPSHOT_TIMES_ANNOTATION`]).
fn snapshot_times(taken: &[SnapshotTaken]) -> String {
    let times: std::collections::BTreeMap<&str, String> = taken
        .iter()
        .filter_map(|t| Some((t.source.as_str(), t.creation_time.as_ref()?.0.to_string())))
        .collect();
    serde_json::to_string(&times).unwrap_or_default()
}

/// The Job's snapshots were asked for: when all are ready, `post` (they are cut), the
/// temporary claims, and the Job released; a failed one fails the run.
async fn snapshots_cut(
    ctx: &Context,
    set: &BackupSet,
    valid: &ValidSet,
    job: &JobView,
) -> Result<JobState, Error> {
    let ns = set.namespace().unwrap_or_default();
    let object = set.object_ref(&());
    let look = snapshots::look(
        ctx,
        &ns,
        &job.name,
        &valid.snapshots,
        valid.group.as_ref(),
        ctx.now(),
    );
    let ready = match look.await? {
        Verdict::Wait => return Ok(JobState::Waiting),
        Verdict::Fail(why) => {
            let state = fail(ctx, set, job, why.clone()).await?;
            ctx.event(&object, EventReason::SnapshotFailed, "Snapshot", why)
                .await;
            return Ok(state);
        }
        Verdict::Ready(ready) => ready,
    };
    copies_ready(ctx, set, valid, job, job.hook_results.clone(), ready).await
}

/// The snapshots are `ready` (none without `Snapshot` sources) and `pre` left `results`:
/// the temporary claims from the snapshots, the clones asked for, `post` now unless a clone
/// is still to be made, and the Job released with the snapshots' instants.
async fn copies_ready(
    ctx: &Context,
    set: &BackupSet,
    valid: &ValidSet,
    job: &JobView,
    results: Vec<HookResult>,
    ready: Vec<(SnapshotTaken, Option<Quantity>)>,
) -> Result<JobState, Error> {
    let ns = set.namespace().unwrap_or_default();
    let object = set.object_ref(&());
    let owner = snapshots::owner(&job.name, &job.uid);
    snapshots::claims(ctx, &ns, &valid.snapshots, &owner, &ready).await?;
    snapshots::clones(ctx, &ns, &valid.snapshots, &owner).await?;
    let clones: Vec<String> = valid
        .snapshots
        .iter()
        .filter(|s| s.clone)
        .map(|s| s.source.clone())
        .collect();
    // Cut: what `pre` froze may thaw; a clone is cut only once it is made.
    let (hook_state, results, copy) = if clones.is_empty() {
        let results = match job.hooks {
            Some(_) => hooks::post_now(ctx, set, &job.name, results, false).await?,
            None => results,
        };
        (HookState::Done, results, CopyState::Ready)
    } else {
        (HookState::Released, results, CopyState::Cloning)
    };
    let mut ann = job
        .hooks
        .map(|_| hooks::annotations(hook_state, &results))
        .unwrap_or_else(|| json!({}));
    let taken: Vec<_> = ready.into_iter().map(|(t, _)| t).collect();
    ann[ANNOTATION_COPY] = json!(copy.as_str());
    ann[ANNOTATION_SNAPSHOTS] = json!(list_annotation(&taken));
    ann[ANNOTATION_CLONES] = json!(list_annotation(&clones));
    // The pod reads them through the downward API; a held Job that never ran may still
    // change its template's annotations.
    let pod_ann = json!({ SNAPSHOT_TIMES_ANNOTATION: snapshot_times(&taken) });
    patch(
        ctx,
        set,
        &job.name,
        json!({
            "metadata": {"annotations": ann},
            "spec": {
                "suspend": false,
                "template": {"metadata": {"annotations": pod_ann}},
            },
        }),
    )
    .await?;
    if taken.is_empty() {
        return Ok(JobState::Active);
    }
    let list: Vec<String> = taken.iter().map(|t| t.volume_snapshot.clone()).collect();
    ctx.event(
        &object,
        EventReason::SnapshotsReady,
        "Snapshot",
        match taken
            .iter()
            .find_map(|t| t.volume_group_snapshot.as_deref())
        {
            Some(group) => format!(
                "job {} reads {} (taken together as VolumeGroupSnapshot {group}) through a \
                 temporary claim each",
                job.name,
                list.join(", ")
            ),
            None => format!(
                "job {} reads {} through a temporary claim each",
                job.name,
                list.join(", ")
            ),
        },
    )
    .await;
    Ok(JobState::Active)
}

/// The released Job `job` waits for its clones: once they are made, `post`; if they are
/// not made in time, the Job is stopped and fails (`post` too).
pub(super) async fn cloning(
    ctx: &Context,
    set: &BackupSet,
    valid: &ValidSet,
    job: &JobView,
) -> Result<(), Error> {
    let ns = set.namespace().unwrap_or_default();
    match snapshots::clones_made(ctx, &ns, &job.name, &valid.snapshots, ctx.now()).await? {
        Verdict::Wait => return Ok(()),
        Verdict::Fail(why) => {
            fail(ctx, set, job, why.clone()).await?;
            ctx.event(
                &set.object_ref(&()),
                EventReason::SnapshotFailed,
                "Clone",
                why,
            )
            .await;
            return Ok(());
        }
        Verdict::Ready(_) => {}
    }
    let results = post_if_owed(ctx, set, job).await?;
    let mut ann = job
        .hooks
        .map(|_| hooks::annotations(HookState::Done, &results))
        .unwrap_or_else(|| json!({}));
    ann[ANNOTATION_COPY] = json!(CopyState::Ready.as_str());
    patch(
        ctx,
        set,
        &job.name,
        json!({"metadata": {"annotations": ann}}),
    )
    .await
}

/// Fail the Job `job`: `post` if owed, the Job suspended (a held one never runs; a running
/// one, waiting for its clones, has its pod stopped), its snapshots and claims deleted.
async fn fail(
    ctx: &Context,
    set: &BackupSet,
    job: &JobView,
    why: String,
) -> Result<JobState, Error> {
    let results = post_if_owed(ctx, set, job).await?;
    let mut ann = job
        .hooks
        .map(|_| hooks::annotations(HookState::Done, &results))
        .unwrap_or_else(|| json!({}));
    ann[ANNOTATION_COPY] = json!(CopyState::Failed.as_str());
    ann[ANNOTATION_FAILURE] = json!(why);
    patch(
        ctx,
        set,
        &job.name,
        json!({"metadata": {"annotations": ann}, "spec": {"suspend": true}}),
    )
    .await?;
    snapshots::clean(ctx, &set.namespace().unwrap_or_default(), &job.name).await?;
    Ok(JobState::Done)
}

/// `post` when the Job's `pre` ran and its `post` has not: every result of the run.
async fn post_if_owed(
    ctx: &Context,
    set: &BackupSet,
    job: &JobView,
) -> Result<Vec<HookResult>, Error> {
    if job.hooks.is_some_and(HookState::owes_post) {
        let cut_short = job.hooks == Some(HookState::Pre);
        hooks::post_now(ctx, set, &job.name, job.hook_results.clone(), cut_short).await
    } else {
        Ok(job.hook_results.clone())
    }
}

async fn patch(ctx: &Context, set: &BackupSet, job: &str, body: Value) -> Result<(), Error> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    jobs.patch(job, &PatchParams::default(), &Patch::Merge(body))
        .await
        .map_err(Error::api(format!("recording the progress of job {job}")))?;
    Ok(())
}
