//! The BackupSet reconciler, as a pipeline: read what it references ([`fetch`]), take in
//! the results of finished Jobs ([`crate::operator::results`]), check the spec
//! ([`validate`], pure), plan what is due ([`crate::operator::plan`], pure), create Jobs and
//! release the repository's queue, then write status (server-side apply, one field
//! manager). Deletion runs the `deletionPolicy` ([`cleanup`]).

pub mod cleanup;
mod copies;
pub mod fetch;
mod release;
mod start;
mod summary;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use crate::api::BackupSet;
use crate::api::backup_set::{BackupSetStatus, DeletionPolicy, SetPhase};
use crate::job::plan::OperationKind;
use crate::operator::conditions::{Health, conditions};
use crate::operator::context::Context;
use crate::operator::error::{Error, Problem};
use crate::operator::event_reason::EventReason;
use crate::operator::hooks::{self, state::HookState};
use crate::operator::job_control;
use crate::operator::job_view::{Ending, JobView};
use crate::operator::metrics::{KindLabels, Metrics, ReadLabels, RunLabels};
use crate::operator::names::*;
use crate::operator::plan::auto::SourceHistory;
use crate::operator::plan::queue::{JobState, QueuedJob};
use crate::operator::plan::set::{OpKind, SetPlan, Timing, plan_set, until};
use crate::operator::results::absorb;
use crate::operator::snapshots::state::CopyState;
use crate::operator::write;
use validate::ValidSet;

/// Reconcile at least this often while a job of the set runs (to notice a stuck pod).
const WATCH_JOBS: Duration = Duration::from_secs(30);
/// How often a set looks at the snapshots of its backup until they are ready.
const SNAPSHOTS: Duration = Duration::from_secs(2);
/// And at least this often otherwise (the schedule's own wake-ups come sooner).
const IDLE: Duration = Duration::from_secs(3600);

fn timing_of(status: &BackupSetStatus) -> Timing {
    let slots = status.slots.clone().unwrap_or_default();
    Timing {
        backup: slots.backup.map(|t| t.0),
        purge: slots.purge.map(|t| t.0),
        verify: slots.verify.map(|t| t.0),
        manual_token: status.last_manual_token.clone(),
        run_on_create_done: slots.run_on_create_done,
    }
}

fn history(set: &BackupSet, status: &BackupSetStatus) -> Vec<SourceHistory> {
    set.spec
        .sources
        .iter()
        .map(|s| {
            let known = status.sources.iter().find(|x| x.name == s.name);
            SourceHistory {
                name: s.name.clone(),
                last_full: known.and_then(|k| k.last_full_time.as_ref()).map(|t| t.0),
                size: known.map_or(0, |k| k.size_bytes),
            }
        })
        .collect()
}

/// Keep the cleanup finalizer on a set exactly while its `deletionPolicy` is `Purge` or it
/// has hooks (metadata only, never spec). A `Retain` set without hooks has nothing to do on
/// deletion, so it never holds up its own deletion or its namespace's, whatever happens to
/// the controller.
async fn sync_finalizer(api: &Api<BackupSet>, set: &BackupSet) -> Result<(), Error> {
    // A set with hooks keeps it too: a backup whose `pre` ran owes its `post`.
    let want = set.spec.deletion_policy == DeletionPolicy::Purge || !set.spec.hooks.is_empty();
    crate::operator::finalizer::set(api, set, FINALIZER_CLEANUP, want)
        .await
        .map_err(Error::api("updating the cleanup finalizer"))
}

/// Reconcile one BackupSet: its stages, in order. Status is built by the stages and written
/// once, at the end.
pub async fn reconcile(set: Arc<BackupSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciled("BackupSet");
    let ns = set.namespace().unwrap_or_default();
    let api: Api<BackupSet> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(set) = crate::operator::latest::latest(&api, &set).await? else {
        return Ok(Action::await_change());
    };
    if set.metadata.deletion_timestamp.is_some() {
        return cleanup::finalize(&set, &ctx).await;
    }
    sync_finalizer(&api, &set).await?;
    let refs = fetch::fetch(&ctx.client, &set, &ctx.set_stores).await?;
    let now = ctx.now();
    let mut status = set.status.clone().unwrap_or_default();
    // Results first: they are the history the planner reads.
    absorb_finished(&ctx, &set, &refs, &mut status, now).await?;
    let valid = validate::validate(&set, &refs)
        .and_then(|v| validate::hooks(&set, ctx.settings.allow_hooks).map(|()| v));
    let action = match valid {
        Ok(valid) => run(&ctx, &set, &refs, &valid, &mut status, now).await?,
        Err(problem) => stall(&ctx, &set, problem, &mut status, now).await,
    };
    write::status(&api, &set.name_any(), set.status.as_ref(), &status).await?;
    Ok(action)
}

/// The stages of a valid set: abort on request → plan → start what is due → release the
/// repository's queue → summarise. Returns when to look again.
async fn run(
    ctx: &Context,
    set: &BackupSet,
    refs: &fetch::Refs,
    valid: &ValidSet,
    status: &mut BackupSetStatus,
    now: Timestamp,
) -> Result<Action, Error> {
    abort_on_request(ctx, set, refs, status).await?;
    let mut plan = plan(set, valid, status, now);
    // An approved purge starts once: not while a purge of the set waits or runs.
    let pending = pending_purges(status);
    let purging = refs
        .jobs
        .iter()
        .map(JobView::of)
        .any(|j| j.operation == Some(OperationKind::Purge) && j.state != JobState::Done);
    if !purging
        && let Some(start) =
            crate::operator::plan::set::approved_purge(&pending, &start::approvals(set), now)
    {
        plan.start.push(start);
    }
    let mut jobs = RepoJobs::of(refs);
    let missed = start::start_due(ctx, set, valid, &plan, &mut jobs).await?;
    // The set's purge and verification, done to each copy too.
    for due in plan
        .start
        .iter()
        .filter(|s| matches!(s.kind, OpKind::Purge | OpKind::Verify))
    {
        copies::maintain(ctx, set, valid, due).await?;
    }
    record_missed(ctx, set, missed).await;
    status.missed_runs += missed;
    let copy_wake = copies::start_copies(ctx, set, valid, status, &mut jobs, now).await?;
    start::release_queue(ctx, set, valid, &mut jobs).await?;
    for job in jobs
        .own_unfinished()
        .filter(|j| j.copy == Some(CopyState::Cloning))
    {
        release::cloning(ctx, set, valid, job).await?;
    }
    summary::summarise(set, &plan, &jobs, status);
    let health = watch_stuck(ctx, set, &jobs, summary::health_of(status, valid)).await?;
    status.observed_generation = set.metadata.generation;
    // From the conditions as they were, so its transition time stays put.
    let approval = approval_condition(set, status, now);
    status.conditions = conditions(&status.conditions, &health, set.metadata.generation, now);
    status.conditions.push(approval);
    observe(ctx, set, valid, status, now);
    let mut after = requeue_after(now, &plan, &jobs);
    if let Some(w) = copy_wake {
        after = after.min(until(now, w));
    }
    Ok(Action::requeue(after))
}

/// The braked purges waiting for approval: the set's and its copies' plans.
fn pending_purges(status: &BackupSetStatus) -> Vec<&str> {
    awaiting(status).map(|(_, a)| a.plan.as_str()).collect()
}

/// Each braked purge that waits, and whose repository it would purge (the set's or a
/// copy's).
fn awaiting(
    status: &BackupSetStatus,
) -> impl Iterator<Item = (&'static str, &crate::api::backup_set::PurgeApproval)> {
    std::iter::once(("the set", status.retention.as_ref()))
        .chain(
            status
                .copies
                .iter()
                .map(|c| ("a copy", c.retention.as_ref())),
        )
        .filter_map(|(whose, r)| Some((whose, r?.awaiting_approval.as_ref()?)))
}

/// `AwaitingApproval`: whether a purge the brake stopped waits, what it would expire and
/// how to approve it.
fn approval_condition(
    set: &BackupSet,
    status: &BackupSetStatus,
    now: Timestamp,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    let waiting: Vec<String> = awaiting(status)
        .map(|(whose, a)| {
            format!(
                "a purge of {whose} would expire {} runs and waits: {} (plan {})",
                a.runs_count, a.reason, a.plan
            )
        })
        .collect();
    let message = if waiting.is_empty() {
        String::new()
    } else {
        format!(
            "{}; to run it, annotate the set {ANNOTATION_APPROVE_PURGE}=<plan>",
            waiting.join("; ")
        )
    };
    crate::operator::conditions::condition(
        &status.conditions,
        "AwaitingApproval",
        !waiting.is_empty(),
        if waiting.is_empty() {
            "None"
        } else {
            "PurgeBraked"
        },
        &message,
        set.metadata.generation,
        now,
    )
}

/// Take in the reports of the set's finished Jobs not handled yet: runs, events, metrics.
async fn absorb_finished(
    ctx: &Context,
    set: &BackupSet,
    refs: &fetch::Refs,
    status: &mut BackupSetStatus,
    now: Timestamp,
) -> Result<(), Error> {
    let ns = set.namespace().unwrap_or_default();
    let object = set.object_ref(&());
    for j in &refs.jobs {
        let mut view = JobView::of(j);
        if view.state != JobState::Done || status.handled_jobs.contains(&view.name) {
            continue;
        }
        if view.hooks.is_some_and(HookState::owes_post) {
            view.hook_results = hooks::post(ctx, set, &view.hooked()).await?;
        }
        let report = job_control::report(ctx, &ns, &view).await?;
        // Seen by the pod watch: an evicted pod is gone by now.
        let interrupted = ctx.pod_results.interruptions(&ns, &view.name);
        if let Some(a) = absorb(status, &view, &report, &interrupted, now) {
            record(ctx, set, &a);
            ctx.event(&object, a.reason(), "Run", a.message).await;
        }
        let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
        if view.copy.is_some() {
            // Its snapshots and temporary claims: the run is recorded. A claim stays while
            // a pod that mounted it exists, even one that ended: the Job goes too, with
            // its pods (its results are in status), also one whose snapshot failed.
            crate::operator::snapshots::clean(ctx, &ns, &view.name).await?;
            let _ = jobs_api
                .delete(&view.name, &kube::api::DeleteParams::background())
                .await;
        } else if view.ending == Some(Ending::Aborted) || view.hooks == Some(HookState::Failed) {
            // A stopped Job, or one whose `pre` hook failed, stays suspended forever
            // otherwise.
            let _ = jobs_api.delete(&view.name, &Default::default()).await;
        }
    }
    Ok(())
}

/// An invalid set: Stalled with the problem's reason (an Event when the reason is new), and
/// no hot retry; a set waiting for something on its way: Reconciling with its reason.
async fn stall(
    ctx: &Context,
    set: &BackupSet,
    mut problem: Problem,
    status: &mut BackupSetStatus,
    now: Timestamp,
) -> Action {
    let ns = set.namespace().unwrap_or_default();
    // A missing reference in a namespace being deleted cannot be created again.
    if problem.reason.ends_with("NotFound")
        && crate::operator::namespace::terminating(&ctx.client, &ns).await
    {
        problem = Problem::new(
            "NamespaceTerminating",
            crate::operator::namespace::advice(
                &ns,
                problem.fact(),
                set.spec.deletion_policy == DeletionPolicy::Purge,
            ),
        );
    }
    let (condition, event, phase, health) = if problem.waiting {
        (
            "Reconciling",
            EventReason::Waiting(problem.reason),
            SetPhase::Waiting,
            Health::progressing(problem.reason, &problem.message),
        )
    } else {
        (
            "Stalled",
            EventReason::Problem(problem.reason),
            SetPhase::Failed,
            Health::stalled(problem.reason, &problem.message),
        )
    };
    if condition_reason(set.status.as_ref(), condition).as_deref() != Some(problem.reason) {
        let object = set.object_ref(&());
        ctx.event(&object, event, "Validate", problem.message.clone())
            .await;
    }
    status.phase = Some(phase);
    status.observed_generation = set.metadata.generation;
    status.conditions = conditions(&status.conditions, &health, set.metadata.generation, now);
    problem.action()
}

/// Abort on request: each new annotation value stops the running backup once.
async fn abort_on_request(
    ctx: &Context,
    set: &BackupSet,
    refs: &fetch::Refs,
    status: &mut BackupSetStatus,
) -> Result<(), Error> {
    let abort = set.annotations().get(ANNOTATION_ABORT).cloned();
    if abort.is_none() || abort == status.last_abort_token {
        return Ok(());
    }
    let ns = set.namespace().unwrap_or_default();
    let object = set.object_ref(&());
    for j in &refs.jobs {
        let v = JobView::of(j);
        if v.operation == Some(OperationKind::Backup) && v.state != JobState::Done {
            job_control::abort(&ctx.client, &ns, &v.name).await?;
            ctx.event(&object, EventReason::BackupAborting, "Abort",
                format!("stopping {} on request (holdfast.io/abort); what it read is recorded as an Aborted run", v.name)).await;
        }
    }
    status.last_abort_token = abort;
    Ok(())
}

/// What is due now (pure): the planner's input read from the set and its status.
fn plan(set: &BackupSet, valid: &ValidSet, status: &BackupSetStatus, now: Timestamp) -> SetPlan {
    let timing = timing_of(status);
    let sources = history(set, status);
    let manual = set.spec.manual_run.as_ref().map(|m| {
        let level = m
            .level
            .as_deref()
            .and_then(|l| l.parse().ok())
            .unwrap_or(holdfast_engine::format::run::Level::Incr);
        (m.token.as_str(), level)
    });
    let key = format!("{}/{}", set.namespace().unwrap_or_default(), set.name_any());
    plan_set(&crate::operator::plan::set::SetInput {
        key: &key,
        created: created_at(set, now),
        now,
        schedule: valid.schedule.as_ref(),
        suspended: set.spec.suspend,
        run_on_create: set.spec.run_on_create,
        manual,
        timing: &timing,
        sources: &sources,
    })
}

fn created_at(set: &BackupSet, now: Timestamp) -> Timestamp {
    set.metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0)
}

async fn record_missed(ctx: &Context, set: &BackupSet, missed: u64) {
    if missed == 0 {
        return;
    }
    let labels = Metrics::set(&set.namespace().unwrap_or_default(), &set.name_any());
    ctx.metrics
        .missed_runs
        .get_or_create(&labels)
        .inc_by(missed);
    ctx.event(&set.object_ref(&()), EventReason::MissedRun, "Schedule",
        format!("{missed} scheduled run(s) skipped: missed while the controller was away past the starting deadline, or the previous run had not started yet")).await;
}

/// A running Job of the set whose pod cannot start makes it Stalled (and is failed when it
/// never will start).
async fn watch_stuck(
    ctx: &Context,
    set: &BackupSet,
    jobs: &RepoJobs,
    health: Health,
) -> Result<Health, Error> {
    match jobs.own_unfinished().find(|j| j.state == JobState::Active) {
        Some(active) => {
            let ns = set.namespace().unwrap_or_default();
            job_control::watch_stuck(ctx, &ns, active, health).await
        }
        None => Ok(health),
    }
}

/// Metrics that mirror the status just built.
fn observe(
    ctx: &Context,
    set: &BackupSet,
    valid: &ValidSet,
    status: &BackupSetStatus,
    now: Timestamp,
) {
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let labels = Metrics::set(&ns, &name);
    gauges(ctx, &ns, &name, status);
    copy_gauges(ctx, &ns, &name, valid, status, now);
    ctx.metrics
        .created
        .get_or_create(&labels)
        .set(created_at(set, now).as_second());
    match valid
        .schedule
        .as_ref()
        .and_then(|s| crate::operator::plan::schedule::longest_gap(s, now))
    {
        Some(gap) => {
            ctx.metrics
                .backup_interval
                .get_or_create(&labels)
                .set(gap.as_secs());
        }
        None => {
            ctx.metrics.backup_interval.remove(&labels);
        }
    }
}

/// When to reconcile again: the schedule's next wake-up, sooner while a Job of the set runs,
/// and every [`SNAPSHOTS`] while its snapshots are being cut or its clones made (no watch
/// sees them).
fn requeue_after(now: Timestamp, plan: &SetPlan, jobs: &RepoJobs) -> Duration {
    let wait = plan.wake.map_or(IDLE, |w| until(now, w)).min(IDLE);
    jobs.own_unfinished()
        .map(|j| match j.copy {
            Some(CopyState::Snapshotting | CopyState::Cloning) => SNAPSHOTS,
            _ => job_control::next_look(j, now, WATCH_JOBS),
        })
        .fold(wait, Duration::min)
}

/// The repository's Jobs as this reconcile sees them (created ones added as it goes), and
/// which of them are the set's own.
pub(crate) struct RepoJobs {
    pub(crate) all: Vec<JobView>,
    pub(crate) own: Vec<String>,
}

impl RepoJobs {
    fn of(refs: &fetch::Refs) -> Self {
        RepoJobs {
            all: refs.repo_jobs.iter().map(JobView::of).collect(),
            own: refs.jobs.iter().map(|j| j.name_any()).collect(),
        }
    }

    pub(crate) fn queued(&self) -> Vec<QueuedJob> {
        self.all.iter().map(JobView::queued).collect()
    }

    /// The set's own Jobs that have not finished.
    pub(crate) fn own_unfinished(&self) -> impl Iterator<Item = &JobView> {
        self.all
            .iter()
            .filter(|j| self.own.contains(&j.name) && j.state != JobState::Done)
    }
}

/// The reason of its `type_` condition (Stalled, Reconciling), if that is true.
fn condition_reason(status: Option<&BackupSetStatus>, type_: &str) -> Option<String> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| c.reason.clone())
}

/// Metrics that mirror status, so they survive restarts.
fn gauges(ctx: &Context, ns: &str, name: &str, status: &BackupSetStatus) {
    let l = Metrics::set(ns, name);
    if let Some(t) = &status.last_successful_time {
        ctx.metrics
            .last_success
            .get_or_create(&l)
            .set(t.0.as_second() as f64);
    }
    ctx.metrics
        .consecutive_failures
        .get_or_create(&l)
        .set(i64::from(status.consecutive_failures));
    ctx.metrics
        .queue_depth
        .get_or_create(&l)
        .set(status.queue.len() as i64);
    ctx.metrics
        .restore_points
        .get_or_create(&l)
        .set(status.restore_points.as_ref().map_or(0, |p| p.count as i64));
}

/// Each copy's lag and failures in a row.
fn copy_gauges(
    ctx: &Context,
    ns: &str,
    name: &str,
    valid: &ValidSet,
    status: &BackupSetStatus,
    now: Timestamp,
) {
    for copy in &valid.copies {
        let known = status.copies.iter().find(|c| c.name == copy.name);
        let completions = copies::recorded_completions(status);
        let behind = crate::operator::plan::copies::behind_since(
            completions,
            known.and_then(|k| k.caught_up_to.as_ref()).map(|t| t.0),
        )
        .map_or(0, |since| now.duration_since(since).as_secs().max(0));
        let l = Metrics::copy(ns, name, &copy.name);
        ctx.metrics.copy_behind.get_or_create(&l).set(behind);
        ctx.metrics
            .copy_failures
            .get_or_create(&l)
            .set(i64::from(known.map_or(0, |k| k.consecutive_failures)));
    }
}

fn record(ctx: &Context, set: &BackupSet, a: &crate::operator::results::Absorbed) {
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    ctx.metrics
        .runs
        .get_or_create(&RunLabels {
            namespace: ns.clone(),
            owner: name.clone(),
            kind: a.kind.as_str().into(),
            result: a.result.as_str().into(),
        })
        .inc();
    ctx.metrics
        .run_duration
        .get_or_create(&KindLabels {
            kind: a.kind.as_str().into(),
        })
        .observe(a.seconds);
    let l = Metrics::set(&ns, &name);
    ctx.metrics
        .bytes_read
        .get_or_create(&l)
        .inc_by(a.bytes_read);
    ctx.metrics
        .bytes_stored
        .get_or_create(&l)
        .inc_by(a.bytes_stored);
    for (method, n) in &a.reads {
        ctx.metrics
            .source_reads
            .get_or_create(&ReadLabels {
                namespace: ns.clone(),
                backup_set: name.clone(),
                method: method.as_str().into(),
            })
            .inc_by(*n);
    }
}
