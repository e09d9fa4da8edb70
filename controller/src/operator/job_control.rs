//! Reading Jobs back and acting on them: what a finished Job produced (the [`JobSummary`]
//! its pod left as termination message: the controller learns results only this way; it
//! never opens the repository), a Job stuck because its pod cannot start, and releasing,
//! aborting or failing a Job.

use crate::job::summary::JobSummary;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use std::time::Duration;

use super::conditions::Health;
use super::context::Context;
use super::error::Error;
use super::hooks::state::HOOK_FAILED;
pub use super::job_view::POD_REFUSED;
use super::job_view::{Ending, JobView, POD_CANNOT_START, Report};
use super::names::MAIN_CONTAINER;
use super::names::{ANNOTATION_ABORTED, ANNOTATION_FAILURE};
use super::plan::queue::{JobState, QueuedJob, next_to_release};
use super::pod_results::{Terminated, main_terminated};
use super::snapshots::state::SNAPSHOT_FAILED;

/// Read the termination message of the newest pod of `job` that ran the engine: from the
/// pods still there, else from what the pod watch kept ([`PodResults`]). A Job that ended a
/// moment ago may have lost its pod before the watch event arrived: wait for it briefly
/// rather than declare the result lost.
pub async fn report(ctx: &Context, namespace: &str, view: &JobView) -> Result<Report, Error> {
    // Failed by the controller because its pod could not start: that is the whole story.
    if let Some(Ending::Failed { reason, message }) = &view.ending {
        if reason == POD_CANNOT_START {
            return Ok(Report::Missing(format!(
                "the job's pod never started: {message}"
            )));
        }
        // Its `pre` hook or a snapshot failed: it never ran.
        if reason == HOOK_FAILED || reason == SNAPSHOT_FAILED {
            return Ok(Report::Missing(message.clone()));
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (found, waiting) = from_pods(&ctx.client, namespace, &view.name).await?;
        let found = match (found, ctx.pod_results.get(namespace, &view.name)) {
            (Some(a), Some(b)) => Some(if b.finished > a.finished { b } else { a }),
            (a, b) => a.or(b),
        };
        if let Some(t) = found {
            return Ok(match JobSummary::parse(&t.message) {
                Some(s) => Report::Summary(Box::new(s)),
                None => Report::Missing(without_summary(&t)),
            });
        }
        let recent = view
            .finished
            .is_none_or(|f| ctx.now().duration_since(f).as_secs() < 20);
        if waiting.is_some() || !recent || std::time::Instant::now() >= deadline {
            return Ok(Report::Missing(match (&view.ending, waiting) {
                (_, Some(w)) => format!("the job's pod never started: {w}"),
                (Some(Ending::Failed { reason, message }), None) => {
                    format!("{reason}: {message}")
                }
                _ => "the job's pod is gone, and its result with it".into(),
            }));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Why a container that ended without a summary ended, as the run's message says it. The
/// kernel's OOM kill gets its own words: the fix is the job pods' memory limit, and its
/// exit code alone (137) reads like any other SIGKILL.
fn without_summary(t: &Terminated) -> String {
    let tail = t
        .message
        .lines()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .join(" | ");
    if t.reason == "OOMKilled" {
        return format!(
            "the job's container was killed by the kernel for using more memory than its limit \
             (OOMKilled, exit code {}): raise spec.resources.limits.memory{}",
            t.exit_code,
            if tail.is_empty() {
                String::new()
            } else {
                format!("; it said: {tail}")
            }
        );
    }
    format!(
        "the job's container ended ({}, exit code {}) without a summary: {tail}",
        t.reason, t.exit_code
    )
}

/// The newest engine end among the pods of `job` still there, and why one is waiting.
async fn from_pods(
    client: &kube::Client,
    namespace: &str,
    job: &str,
) -> Result<(Option<Terminated>, Option<String>), Error> {
    let list = pods_of(client, namespace, job).await?;
    let mut newest: Option<Terminated> = None;
    let mut waiting: Option<String> = None;
    for p in &list {
        if let Some(t) = main_terminated(p) {
            if newest.as_ref().is_none_or(|n| t.finished > n.finished) {
                newest = Some(t);
            }
            continue;
        }
        let w = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == MAIN_CONTAINER))
            .and_then(|c| c.state.as_ref()?.waiting.clone());
        if let Some(w) = w {
            waiting = Some(format!(
                "{}: {}",
                w.reason.unwrap_or_default(),
                w.message.unwrap_or_default()
            ));
        }
    }
    Ok((newest, waiting))
}

/// The pods of `job` (its retries too).
async fn pods_of(client: &kube::Client, namespace: &str, job: &str) -> Result<Vec<Pod>, Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    Ok(pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .map_err(Error::api(format!("listing the pods of job {job}")))?
        .items)
}

/// The health of an owner whose Job `job` is active: `health` as it is, unless the Job's pod
/// cannot start: then Stalled with the kubelet's reason, and the Job failed when it never
/// will start by itself (the run fails with that reason, and the next one can start).
pub async fn watch_stuck(
    ctx: &Context,
    namespace: &str,
    view: &JobView,
    health: Health,
) -> Result<Health, Error> {
    let Some(stuck) = stuck(ctx, namespace, view).await? else {
        return Ok(health);
    };
    let job = &view.name;
    let refused = stuck.reason == POD_REFUSED;
    if stuck.fatal {
        // The run's message: a refusal says so first, as the kubelet's reasons do.
        let why = if refused {
            format!("{POD_REFUSED}: {}", stuck.why)
        } else {
            stuck.why.clone()
        };
        fail(&ctx.client, namespace, job, &why).await?;
    }
    let what = if refused {
        "the API server refuses the pod of job"
    } else {
        "the pod of job"
    };
    Ok(Health::stalled(
        stuck.reason,
        format!("{what} {job} cannot start: {}", stuck.why),
    ))
}

/// A job pod that cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    /// `PodRefused` (the API server would not create it) or `JobPodStuck` (the kubelet
    /// cannot start it): the owner's Stalled reason.
    pub reason: &'static str,
    /// The kubelet's or the admission's reason and message, and what to do.
    pub why: String,
    /// It will not start without someone changing something (a Secret or a key it names
    /// is missing, a policy refuses it): the run is failed with this reason rather than
    /// left "running".
    pub fatal: bool,
}

/// A pod still starting after this long with a config or mount error is not going to
/// start by itself (a Secret created in the same sync has had time to arrive).
const STUCK_GRACE: Duration = Duration::from_secs(20);
/// A mount that fails for another reason (a slow attach) is given this long; so is a pod
/// the API server refuses for a reason that may pass (a quota, a webhook).
const MOUNT_GRACE: Duration = Duration::from_secs(300);
/// A Job still without a pod after this long is asked why (the job controller creates its
/// pod within a second or so; earlier, asking would cost a request per run for nothing).
const CREATE_GRACE: Duration = Duration::from_secs(5);
/// How soon after its creation an owner looks at its Job again, to see a refused pod.
pub const FIRST_LOOK: Duration = Duration::from_secs(6);
/// A Job younger than this is looked at every [`FIRST_LOOK`]: a pod the API server refuses
/// shows only in an Event, which no watch delivers, and the user should read the refusal
/// within seconds, not at the owner's usual cadence.
const YOUNG_JOB: Duration = Duration::from_secs(60);

/// How long ago `since` was (zero for a time in the future).
fn elapsed(now: jiff::Timestamp, since: jiff::Timestamp) -> Duration {
    Duration::try_from(now.duration_since(since)).unwrap_or_default()
}

/// When an owner should look at its unfinished Job `view` again at the latest:
/// [`FIRST_LOOK`] while the Job is young, else `otherwise` (the owner's own cadence).
pub fn next_look(view: &JobView, now: jiff::Timestamp, otherwise: Duration) -> Duration {
    if elapsed(now, view.created) < YOUNG_JOB {
        FIRST_LOOK.min(otherwise)
    } else {
        otherwise
    }
}

/// Why a Job's pod cannot start yet, if it is stuck (a missing Secret key, an image, a pod
/// the API server refuses to create).
pub async fn stuck(ctx: &Context, namespace: &str, view: &JobView) -> Result<Option<Stuck>, Error> {
    let pods = pods_of(&ctx.client, namespace, &view.name).await?;
    if pods.is_empty() {
        if view.state != JobState::Active || elapsed(ctx.now(), view.created) < CREATE_GRACE {
            return Ok(None);
        }
        return Ok(refused(&ctx.client, namespace, &view.name, ctx.now()).await);
    }
    for p in &pods {
        let Some(status) = p.status.as_ref() else {
            continue;
        };
        let age = p
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(Duration::ZERO, |t| elapsed(ctx.now(), t.0));
        let waiting = status
            .container_statuses
            .iter()
            .flatten()
            .find_map(|c| c.state.as_ref()?.waiting.clone());
        let reason = waiting
            .as_ref()
            .and_then(|w| w.reason.clone())
            .unwrap_or_default();
        match reason.as_str() {
            // Starting normally, unless a volume cannot be mounted: the kubelet says so
            // only in Events.
            "ContainerCreating" | "" if status.phase.as_deref() == Some("Pending") => {
                if age < STUCK_GRACE {
                    continue;
                }
                let pod = p.metadata.name.as_deref().unwrap_or_default();
                if let Some(message) = failed_mount(&ctx.client, namespace, pod).await {
                    // A missing Secret or key never appears by itself; anything else may
                    // be slow storage.
                    let fatal = message.contains("secret") || age >= MOUNT_GRACE;
                    return Ok(Some(Stuck {
                        reason: "JobPodStuck",
                        why: format!("FailedMount: {message}"),
                        fatal,
                    }));
                }
            }
            "ContainerCreating" | "PodInitializing" | "" => {}
            _ => {
                let message = waiting.and_then(|w| w.message).unwrap_or_default();
                return Ok(Some(Stuck {
                    reason: "JobPodStuck",
                    fatal: reason == "CreateContainerConfigError" && age >= STUCK_GRACE,
                    why: format!("{reason}: {message}"),
                }));
            }
        }
    }
    Ok(None)
}

/// The newest `FailedMount` event of a pod, if any (what a kubelet reports when a volume,
/// such as a Secret item naming a missing key, cannot be mounted).
async fn failed_mount(client: &kube::Client, namespace: &str, pod: &str) -> Option<String> {
    newest_event(client, namespace, "Pod", pod, "FailedMount")
        .await?
        .message
}

/// Why the job controller could not create `job`'s pod: its newest `FailedCreate` Event
/// (Pod Security admission, a quota, a webhook), if there is one.
async fn refused(
    client: &kube::Client,
    namespace: &str,
    job: &str,
    now: jiff::Timestamp,
) -> Option<Stuck> {
    let newest = newest_event(client, namespace, "Job", job, "FailedCreate").await?;
    let first = newest
        .first_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| newest.event_time.as_ref().map(|t| t.0))
        .unwrap_or(now);
    Some(refusal(&newest.message?, elapsed(now, first)))
}

/// The newest Event with `reason` about the `kind` object `name`, if any (none when the
/// Events cannot be listed: the caller then knows no more than before).
async fn newest_event(
    client: &kube::Client,
    namespace: &str,
    kind: &str,
    name: &str,
    reason: &str,
) -> Option<Event> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let list = events
        .list(&ListParams::default().fields(&format!(
            "involvedObject.kind={kind},involvedObject.name={name},reason={reason}"
        )))
        .await
        .ok()?;
    list.items
        .into_iter()
        .max_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0))
}

/// Why the API server refused a pod, as far as its message tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Pod Security admission: the namespace's level.
    PodSecurity,
    /// A ResourceQuota that requires requests or limits the pod does not set.
    QuotaNeedsResources,
    /// A ResourceQuota used up: it clears when other pods end or the quota grows.
    QuotaUsedUp,
    /// A LimitRange the pod's resources are outside of.
    LimitRange,
    /// A policy denied it: a ValidatingAdmissionPolicy, or a webhook (Kyverno,
    /// Gatekeeper).
    Policy,
    /// Anything else.
    Other,
}

impl Refusal {
    fn of(message: &str) -> Refusal {
        if message.contains("violates PodSecurity") {
            Refusal::PodSecurity
        } else if message.contains("exceeded quota") {
            Refusal::QuotaUsedUp
        } else if message.contains("failed quota") && message.contains("must specify") {
            Refusal::QuotaNeedsResources
        } else if message.contains("per Container")
            || message.contains("per Pod")
            || message.contains("LimitRange")
        {
            Refusal::LimitRange
        } else if message.contains("ValidatingAdmissionPolicy")
            || (message.contains("admission webhook") && message.contains("denied"))
        {
            Refusal::Policy
        } else {
            Refusal::Other
        }
    }

    /// It will not pass until someone changes the namespace, a policy or the spec.
    fn lasting(self) -> bool {
        !matches!(self, Refusal::QuotaUsedUp | Refusal::Other)
    }

    /// What to do about it.
    fn advice(self) -> &'static str {
        match self {
            Refusal::PodSecurity => {
                "; a privileged mover's backup pod reads every file (capability DAC_READ_SEARCH) and \
                 needs the namespace's Pod Security level `privileged`, its restore pod `baseline` \
                 (label pod-security.kubernetes.io/enforce on the namespace), and so does a set whose \
                 repository is a filesystem claim; the default mover passes `restricted` (remove \
                 mover.privileged; README: Pod security)"
            }
            Refusal::QuotaNeedsResources => {
                "; the namespace's ResourceQuota requires the requests or limits it names: set them \
                 in the BackupSet's, Restore's or StorageSet's jobTemplate.resources, or for every \
                 job pod in the chart's jobs.resources"
            }
            Refusal::QuotaUsedUp => {
                "; the namespace's ResourceQuota is used up: the job controller retries with \
                 backoff, and the run fails if it is still refused after five minutes; raise the \
                 quota or lower the job's jobTemplate.resources"
            }
            Refusal::LimitRange => {
                "; the namespace's LimitRange does not allow the job pod's resources: set \
                 jobTemplate.resources (or the chart's jobs.resources) within its bounds"
            }
            Refusal::Policy => {
                "; an admission policy denied the job pod: give it the labels, annotations or \
                 placement the policy requires through the BackupSet's, Restore's or StorageSet's \
                 jobTemplate (or the chart's jobs values), or ask the policy's owner for an \
                 exception for Holdfast's job pods (label app.kubernetes.io/managed-by=holdfast)"
            }
            Refusal::Other => "",
        }
    }
}

/// A pod the API server refused to create, and whether that is final: a refusal that will
/// not pass by itself (Pod Security admission, a quota that requires resources, a
/// LimitRange, a policy's deny) fails the run at once with the reason and the fix; one
/// that may (a quota used up) is retried by the job controller with backoff for
/// [`MOUNT_GRACE`] first.
fn refusal(message: &str, refused_for: Duration) -> Stuck {
    let kind = Refusal::of(message);
    Stuck {
        reason: POD_REFUSED,
        why: format!("{message}{}", kind.advice()),
        fatal: kind.lasting() || refused_for >= MOUNT_GRACE,
    }
}

/// End a Job whose pod cannot start: the job controller fails it (its deadline lowered to
/// what has passed) and removes the pod; the reason is kept on the Job for the run's record.
pub async fn fail(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    why: &str,
) -> Result<(), Error> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let patch = json!({"metadata": {"annotations": {ANNOTATION_FAILURE: why}},
                       "spec": {"activeDeadlineSeconds": 1}});
    jobs.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(Error::api(format!("failing job {name}")))?;
    Ok(())
}

/// Release the repository's next waiting Job, if its turn has come (nothing of the
/// repository runs): the name of the Job released.
pub async fn release_next(
    client: &kube::Client,
    namespace: &str,
    queued: &[QueuedJob],
) -> Result<Option<String>, Error> {
    let Some(next) = next_to_release(queued) else {
        return Ok(None);
    };
    if next.held {
        // Its set runs its `pre` hooks, then releases it.
        return Ok(None);
    }
    let name = &next.name;
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    jobs.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": false}})),
    )
    .await
    .map_err(Error::api(format!("releasing job {name}")))?;
    Ok(Some(name.clone()))
}

/// Stop a Job on request: suspended (its pods get SIGTERM and their grace period; the engine
/// records an Aborted run) and marked so it is never released again.
pub async fn abort(client: &kube::Client, namespace: &str, name: &str) -> Result<(), Error> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let patch = json!({"metadata": {"annotations": {ANNOTATION_ABORTED: "true"}},
                       "spec": {"suspend": true}});
    jobs.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(Error::api(format!("aborting job {name}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_that_will_not_pass_fails_the_run_at_once_with_its_fix_and_a_used_up_quota_after_a_grace()
     {
        let psa = "pods \"b-1\" is forbidden: violates PodSecurity \"restricted:latest\": \
                   runAsNonRoot != true";
        let needs = "pods \"b-1\" is forbidden: failed quota: compute: must specify \
                     limits.memory for: holdfast";
        let used_up = "pods \"b-1\" is forbidden: exceeded quota: compute, requested: \
                       pods=1, used: pods=4, limited: pods=4";
        let range = "pods \"b-1\" is forbidden: maximum memory usage per Container is 64Mi, \
                     but limit is 1Gi";
        let webhook = "admission webhook \"validate.kyverno.svc\" denied the request: \
                       require-team-label";
        let vap = "pods \"b-1\" is forbidden: ValidatingAdmissionPolicy 'require-team' with \
                   binding 'require-team' denied request: failed expression: \
                   has(object.metadata.labels.team)";
        let other = "Internal error occurred: something";
        let cases = [
            (
                psa,
                Duration::ZERO,
                true,
                "pod-security.kubernetes.io/enforce",
            ),
            (needs, Duration::ZERO, true, "jobTemplate.resources"),
            (
                used_up,
                Duration::from_secs(10),
                false,
                "retries with backoff",
            ),
            (used_up, MOUNT_GRACE, true, "raise the quota"),
            (range, Duration::ZERO, true, "LimitRange"),
            (webhook, Duration::ZERO, true, "exception"),
            (vap, Duration::ZERO, true, "jobTemplate"),
            (other, Duration::from_secs(10), false, ""),
            (other, MOUNT_GRACE, true, ""),
        ];
        for (message, refused_for, fatal, advice) in cases {
            let s = refusal(message, refused_for);
            assert_eq!(s.reason, POD_REFUSED);
            assert_eq!(s.fatal, fatal, "{message} after {refused_for:?}");
            assert!(s.why.starts_with(message), "{}", s.why);
            assert!(s.why.contains(advice), "{advice} missing: {}", s.why);
        }
        // Each advice names only its own fix.
        assert!(!refusal(needs, Duration::ZERO).why.contains("pod-security"));
        assert!(!refusal(psa, Duration::ZERO).why.contains("jobTemplate"));
    }

    #[test]
    fn a_container_oom_killed_without_a_summary_names_the_memory_limit() {
        let ended = |reason: &str, message: &str| Terminated {
            finished: jiff::Timestamp::UNIX_EPOCH,
            message: message.into(),
            exit_code: 137,
            reason: reason.into(),
        };
        let oom = without_summary(&ended("OOMKilled", ""));
        assert!(oom.contains("OOMKilled"), "{oom}");
        assert!(oom.contains("spec.resources.limits.memory"), "{oom}");
        let killed = without_summary(&ended("Error", "a\nb\nc\nlast words"));
        assert!(!killed.contains("memory"), "{killed}");
        assert!(killed.ends_with("last words | c | b"), "{killed}");
    }
}
