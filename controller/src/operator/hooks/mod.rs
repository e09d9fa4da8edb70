//! A backup's hooks, run by the controller through `pods/exec`: `pre` before its Job is
//! released, `post` once it has ended (complete, failed or aborted), also after a failed
//! `pre`. What ran and where it stands is kept on the Job ([`state`]), so a controller
//! that restarts owes no hook and runs none twice: a Job left with `pre` half run gets
//! its `post` and is failed, not released.

pub mod exec;
pub mod plan;
pub mod state;

use crate::operator::names::list_annotation;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::api::BackupSet;
use crate::api::hook::{HookOutcome, HookPhase, HookResult};
use crate::operator::context::Context;
use crate::operator::error::Error;
use crate::operator::event_reason::EventReason;
use crate::operator::metrics::HookLabels;
use plan::{Step, Target};
use state::{ANNOTATION_HOOK_RESULTS, ANNOTATION_HOOKS, HookState};

/// A Job as its hooks see it: its name, where its hooks stand, what they did so far.
#[derive(Debug, Clone, Copy)]
pub struct Hooked<'a> {
    pub name: &'a str,
    pub state: Option<HookState>,
    pub results: &'a [HookResult],
}

/// What running `pre` came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreRan {
    /// Every result so far.
    pub results: Vec<HookResult>,
    /// Why the run must stop, if it must (a `pre` command failed, or an earlier `pre` was
    /// cut short by a restart): `post` is owed now.
    pub stop: Option<String>,
    /// An earlier `pre` was cut short: which of its commands ran is not known, so every
    /// hook's `post` is owed.
    pub cut_short: bool,
}

/// Run `pre` for the set's held Job `job`, marked `Pre` on it first so that a controller
/// that restarts meanwhile knows `post` is owed. A Job found marked `Pre` already was cut
/// short that way: what its `pre` did is unknown, so the run stops.
pub async fn pre(ctx: &Context, set: &BackupSet, job: &Hooked<'_>) -> Result<PreRan, Error> {
    let hooks = &set.spec.hooks;
    let mut results = job.results.to_vec();
    if job.state == Some(HookState::Pre) {
        return Ok(PreRan {
            results,
            stop: Some(
                "the controller stopped while the pre hooks ran; the post hooks ran, and the \
                 run is failed rather than started without knowing what pre did"
                    .to_owned(),
            ),
            cut_short: true,
        });
    }
    mark(ctx, set, job.name, HookState::Pre, &results).await?;
    let pods = targets(ctx, set).await?;
    for step in plan::steps(hooks, HookPhase::Pre, &pods) {
        results.push(run(ctx, set, &step).await);
        if plan::stops_the_run(hooks, &results).is_some() {
            break;
        }
    }
    announce(ctx, set, job.name, HookPhase::Pre, &results).await;
    let stop = plan::stops_the_run(hooks, &results);
    Ok(PreRan {
        results,
        stop,
        cut_short: false,
    })
}

/// Run `post` now for the set's Job `job` (a failed `pre`, or snapshots cut): `results`
/// with post's added, every hook's when `pre` was `cut_short`. The caller records them.
pub async fn post_now(
    ctx: &Context,
    set: &BackupSet,
    job: &str,
    results: Vec<HookResult>,
    cut_short: bool,
) -> Result<Vec<HookResult>, Error> {
    let results = post_steps(ctx, set, results, cut_short).await?;
    announce(ctx, set, job, HookPhase::Post, &results).await;
    Ok(results)
}

/// The annotations that record `state` and `results` on a Job, for the caller's patch.
pub fn annotations(hook_state: HookState, results: &[HookResult]) -> serde_json::Value {
    json!({
        ANNOTATION_HOOKS: hook_state.as_str(),
        ANNOTATION_HOOK_RESULTS: list_annotation(results),
    })
}

/// Run `post` for the set's ended Job `job` whose `pre` ran, and keep the results on it:
/// every result of the run, `pre` and `post`, for its record.
pub async fn post(
    ctx: &Context,
    set: &BackupSet,
    job: &Hooked<'_>,
) -> Result<Vec<HookResult>, Error> {
    let cut_short = job.state == Some(HookState::Pre);
    let results = post_now(ctx, set, job.name, job.results.to_vec(), cut_short).await?;
    mark(ctx, set, job.name, HookState::Done, &results).await?;
    Ok(results)
}

/// `results` with those of the `post` commands owed ([`plan::owed`]) added.
async fn post_steps(
    ctx: &Context,
    set: &BackupSet,
    mut results: Vec<HookResult>,
    cut_short: bool,
) -> Result<Vec<HookResult>, Error> {
    let owed = plan::owed(&set.spec.hooks, &results, cut_short);
    let pods = targets(ctx, set).await?;
    for step in plan::steps(&owed, HookPhase::Post, &pods) {
        results.push(run(ctx, set, &step).await);
    }
    Ok(results)
}

/// The running pods of the set's namespace, not being deleted.
async fn targets(ctx: &Context, set: &BackupSet) -> Result<Vec<Target>, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    let list = pods
        .list(&ListParams::default().fields("status.phase=Running"))
        .await
        .map_err(Error::api("listing the pods hooks run in"))?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| Target {
            labels: p.metadata.labels.clone().unwrap_or_default(),
            name: p.name_any(),
        })
        .collect())
}

/// One step, as its result.
async fn run(ctx: &Context, set: &BackupSet, step: &Step) -> HookResult {
    let started = ctx.now();
    let mut result = HookResult {
        hook: step.hook.clone(),
        phase: step.phase,
        pod: step.pod.clone(),
        outcome: HookOutcome::NoPod,
        exit_code: None,
        start_time: Time(started),
        duration_ms: 0,
        output: String::new(),
    };
    let Some(pod) = &step.pod else {
        count(ctx, set, &result);
        return result;
    };
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    let ended = exec::exec(
        &pods,
        pod,
        step.container.as_deref(),
        &step.command,
        step.timeout,
    )
    .await;
    result.outcome = ended.outcome;
    result.exit_code = ended.exit_code;
    result.duration_ms = u64::try_from(ended.took.as_millis()).unwrap_or(u64::MAX);
    result.output = ended.output;
    tracing::info!(set = %set.name_any(), hook = %step.hook, phase = ?step.phase, pod = %pod,
        outcome = ?result.outcome, ms = result.duration_ms, "hook command ran");
    count(ctx, set, &result);
    result
}

/// The command in the `hook_commands` metric.
fn count(ctx: &Context, set: &BackupSet, r: &HookResult) {
    let labels = HookLabels {
        namespace: set.namespace().unwrap_or_default(),
        backup_set: set.name_any(),
        phase: match r.phase {
            HookPhase::Pre => "pre",
            HookPhase::Post => "post",
        }
        .into(),
        outcome: match r.outcome {
            HookOutcome::Succeeded => "succeeded",
            HookOutcome::Failed => "failed",
            HookOutcome::TimedOut => "timed_out",
            HookOutcome::NoPod => "no_pod",
        }
        .into(),
    };
    ctx.metrics.hook_commands.get_or_create(&labels).inc();
}

/// One Event per phase that ran something: which commands, and which failed.
async fn announce(
    ctx: &Context,
    set: &BackupSet,
    job: &str,
    phase: HookPhase,
    results: &[HookResult],
) {
    let mine: Vec<HookResult> = results
        .iter()
        .filter(|r| r.phase == phase)
        .cloned()
        .collect();
    if mine.is_empty() {
        return;
    }
    let failed = plan::failures(&mine);
    let took: u64 = mine.iter().map(|r| r.duration_ms).sum();
    let message = if failed.is_empty() {
        format!(
            "{} command(s) for job {job} succeeded in {took} ms",
            mine.len()
        )
    } else {
        format!("for job {job}: {}", failed.join("; "))
    };
    ctx.event(
        &set.object_ref(&()),
        EventReason::Hooks {
            phase,
            failed: !failed.is_empty(),
        },
        "Hooks",
        message,
    )
    .await;
}

/// Record `state` and `results` on the Job.
async fn mark(
    ctx: &Context,
    set: &BackupSet,
    job: &str,
    hook_state: HookState,
    results: &[HookResult],
) -> Result<(), Error> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &set.namespace().unwrap_or_default());
    let body = json!({"metadata": {"annotations": annotations(hook_state, results)}});
    jobs.patch(job, &PatchParams::default(), &Patch::Merge(body))
        .await
        .map_err(Error::api(format!("recording the hooks of job {job}")))?;
    Ok(())
}
