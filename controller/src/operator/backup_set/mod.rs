//! The BackupSet reconciler, as a pipeline: read what it references ([`fetch`]), take in
//! the results of finished Jobs ([`crate::operator::results`]), check the spec
//! ([`validate`], pure), plan what is due ([`crate::operator::plan`], pure), create Jobs and
//! release the repository's queue, then write status (server-side apply, one field
//! manager). Deletion runs the `deletionPolicy` ([`cleanup`]).

pub mod cleanup;
pub mod fetch;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::api::BackupSet;
use crate::api::backup_set::DeletionPolicy;
use crate::api::backup_set::{
    BackupSetStatus, NextRun, QueuedOperation, RunPhase, RunSummary, SetPhase, SlotState,
};
use crate::job::plan::{
    self as job_plan, BackupPlan, JobPlan, Operation, PurgePlan, RepositoryRef, VerifyPlan,
};
use crate::operator::conditions::{Health, conditions};
use crate::operator::context::Context;
use crate::operator::error::Error;
use crate::operator::job::{self, JobInput, Privilege};
use crate::operator::job_control;
use crate::operator::job_view::{Ending, JobView};
use crate::operator::metrics::{KindLabels, Metrics, RunLabels};
use crate::operator::names::{self, *};
use crate::operator::plan::auto::SourceHistory;
use crate::operator::plan::queue::{JobState, must_wait, next_to_release, waiting};
use crate::operator::plan::set::{OpKind, Reason, Start, Timing, plan_set, until};
use crate::operator::results::absorb;
use validate::ValidSet;

/// Reconcile at least this often while a job of the set runs (to notice a stuck pod).
const WATCH_JOBS: Duration = Duration::from_secs(30);
/// And at least this often otherwise (the schedule's own wake-ups come sooner).
const IDLE: Duration = Duration::from_secs(3600);

fn owner_ref(set: &BackupSet) -> OwnerReference {
    OwnerReference {
        api_version: "holdfast.io/v1alpha1".into(),
        kind: "BackupSet".into(),
        name: set.name_any(),
        uid: set.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

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

/// Write the status subresource (server-side apply), unless nothing changed.
pub async fn write_status(
    api: &Api<BackupSet>,
    name: &str,
    old: Option<&BackupSetStatus>,
    status: &BackupSetStatus,
) -> Result<(), Error> {
    if old == Some(status) {
        return Ok(());
    }
    let patch =
        json!({"apiVersion": "holdfast.io/v1alpha1", "kind": "BackupSet", "status": status});
    api.patch_status(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map_err(Error::api("writing BackupSet status"))?;
    Ok(())
}

/// Keep the cleanup finalizer on a set exactly while its `deletionPolicy` is `Purge`
/// (metadata only, never spec). A `Retain` set has nothing to do on deletion, so it never
/// holds up its own deletion or its namespace's, whatever happens to the controller.
async fn sync_finalizer(api: &Api<BackupSet>, set: &BackupSet) -> Result<(), Error> {
    let want = set.spec.deletion_policy == DeletionPolicy::Purge;
    crate::operator::finalizer::set(api, set, FINALIZER_CLEANUP, want)
        .await
        .map_err(Error::api("updating the cleanup finalizer"))
}

/// Reconcile one BackupSet.
pub async fn reconcile(set: Arc<BackupSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics
        .reconciles
        .get_or_create(&KindLabels {
            kind: "BackupSet".into(),
        })
        .inc();
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
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
    let old = set.status.clone();
    let mut status = old.clone().unwrap_or_default();
    let object = set.object_ref(&());

    // Results first: they are the history the planner reads.
    for j in &refs.jobs {
        let view = JobView::of(j);
        if view.state != JobState::Done || status.handled_jobs.contains(&view.name) {
            continue;
        }
        let report = job_control::report(&ctx, &ns, &view).await?;
        if let Some(a) = absorb(&mut status, &view, &report, now) {
            record(&ctx, &set, &a);
            ctx.event(&object, a.warning, &a.reason, "Run", a.message)
                .await;
        }
        if view.ending == Some(Ending::Aborted) {
            // A stopped Job stays suspended forever otherwise.
            let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
            let _ = jobs_api.delete(&view.name, &Default::default()).await;
        }
    }

    let valid = match validate::validate(&set, &refs) {
        Ok(v) => v,
        Err(mut problem) => {
            // A missing reference in a namespace being deleted cannot be created again.
            if problem.reason.ends_with("NotFound")
                && crate::operator::namespace::terminating(&ctx.client, &ns).await
            {
                problem = crate::operator::error::Problem::new(
                    "NamespaceTerminating",
                    crate::operator::namespace::advice(
                        &ns,
                        problem.fact(),
                        set.spec.deletion_policy == DeletionPolicy::Purge,
                    ),
                );
            }
            let was = stalled_reason(old.as_ref());
            if was.as_deref() != Some(problem.reason) {
                ctx.event(
                    &object,
                    true,
                    problem.reason,
                    "Validate",
                    problem.message.clone(),
                )
                .await;
            }
            status.phase = Some(SetPhase::Failed);
            status.observed_generation = set.metadata.generation;
            status.conditions = conditions(
                &status.conditions,
                &Health::stalled(problem.reason, &problem.message),
                set.metadata.generation,
                now,
            );
            write_status(&api, &name, old.as_ref(), &status).await?;
            return Ok(problem.action());
        }
    };

    // Abort on request: each new annotation value stops the running backup once.
    let abort = set.annotations().get(ANNOTATION_ABORT).cloned();
    if abort.is_some() && abort != status.last_abort_token {
        for j in &refs.jobs {
            let v = JobView::of(j);
            if v.operation == "backup" && v.state != JobState::Done {
                job_control::abort(&ctx.client, &ns, &v.name).await?;
                ctx.event(&object, false, "BackupAborting", "Abort",
                    format!("stopping {} on request (holdfast.io/abort); what it read is recorded as an Aborted run", v.name)).await;
            }
        }
        status.last_abort_token = abort;
    }

    let timing = timing_of(&status);
    let sources = history(&set, &status);
    let manual = set.spec.manual_run.as_ref().map(|m| {
        let level = match m.level.as_deref() {
            Some("full") => holdfast_engine::format::run::Level::Full,
            Some("diff") => holdfast_engine::format::run::Level::Diff,
            _ => holdfast_engine::format::run::Level::Incr,
        };
        (m.token.as_str(), level)
    });
    let key = format!("{ns}/{name}");
    let created = set
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let plan = plan_set(&crate::operator::plan::set::SetInput {
        key: &key,
        created,
        now,
        schedule: valid.schedule.as_ref(),
        suspended: set.spec.suspend,
        run_on_create: set.spec.run_on_create,
        manual,
        timing: &timing,
        sources: &sources,
    });

    // Start what is due; queued behind whatever else of the repository runs.
    let mut repo: Vec<JobView> = refs.repo_jobs.iter().map(JobView::of).collect();
    let mut own: Vec<String> = refs.jobs.iter().map(|j| j.name_any()).collect();
    let mut missed = plan.missed;
    for start in &plan.start {
        let already_waiting = repo.iter().any(|j| {
            j.state == JobState::Waiting
                && j.operation == start.kind.name()
                && own.contains(&j.name)
        });
        if already_waiting && start.reason == Reason::Scheduled {
            // One queued run per operation: the previous one has not started yet.
            missed += 1;
            continue;
        }
        let queued: Vec<_> = repo.iter().map(JobView::queued).collect();
        let suspend = must_wait(&queued);
        let job = build_job(&ctx, &set, &valid, start, suspend)?;
        let job_name = job.name_any();
        let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
        match jobs_api.create(&PostParams::default(), &job).await {
            Ok(created) => {
                let verb = if suspend { "queued" } else { "started" };
                ctx.event(
                    &object,
                    false,
                    &format!(
                        "{}{}",
                        crate::operator::results::title(start.kind.name()),
                        if suspend { "Queued" } else { "Started" }
                    ),
                    "Start",
                    format!(
                        "{} {verb} as job {job_name} ({:?})",
                        start.kind.name(),
                        start.reason
                    ),
                )
                .await;
                own.push(job_name.clone());
                repo.push(JobView::of(&created));
            }
            // Made by an earlier reconcile of the same slot: never twice.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(Error::api(format!("creating job {job_name}"))(e)),
        }
    }
    if missed > 0 {
        ctx.metrics
            .missed_runs
            .get_or_create(&Metrics::set(&ns, &name))
            .inc_by(missed);
        ctx.event(&object, true, "MissedRun", "Schedule",
            format!("{missed} scheduled run(s) skipped: missed while the controller was away past the starting deadline, or the previous run had not started yet")).await;
        status.missed_runs += missed;
    }
    let queued: Vec<_> = repo.iter().map(JobView::queued).collect();
    if let Some(next) = next_to_release(&queued) {
        job_control::release(&ctx.client, &ns, &next.name).await?;
        if let Some(v) = repo.iter_mut().find(|v| v.name == next.name) {
            v.state = JobState::Active;
        }
    }

    // Status.
    status.slots = Some(SlotState {
        backup: plan.timing.backup.map(Time),
        purge: plan.timing.purge.map(Time),
        verify: plan.timing.verify.map(Time),
        run_on_create_done: plan.timing.run_on_create_done,
    });
    status.last_manual_token = plan.timing.manual_token.clone();
    status.next_run = if set.spec.suspend {
        None
    } else {
        plan.next_backup.map(|(t, l)| NextRun {
            time: Time(t),
            level: l.into(),
        })
    };
    let queued: Vec<_> = repo.iter().map(JobView::queued).collect();
    status.queue = waiting(&queued)
        .into_iter()
        .map(|j| QueuedOperation {
            operation: j.operation.clone(),
            job: Some(j.name.clone()),
            requested: Some(Time(j.created)),
        })
        .collect();
    let mine: Vec<&JobView> = repo
        .iter()
        .filter(|j| own.contains(&j.name) && j.state != JobState::Done)
        .collect();
    if let Some(running) = mine.iter().find(|j| j.operation == "backup") {
        let placeholder = RunSummary {
            label: running.name.clone(),
            level: running
                .level
                .as_deref()
                .and_then(|l| l.parse::<holdfast_engine::format::run::Level>().ok())
                .map_or(crate::api::common::Level::Incr, Into::into),
            phase: if running.state == JobState::Waiting {
                RunPhase::Queued
            } else {
                RunPhase::Running
            },
            job: Some(running.name.clone()),
            start_time: running.started.map(Time),
            completion_time: None,
            files: 0,
            bytes_read: 0,
            bytes_stored: 0,
            errors: 0,
            message: None,
        };
        if status.last_run.as_ref().and_then(|r| r.job.as_ref()) != Some(&running.name) {
            status.last_run = Some(placeholder);
        }
    }
    status.phase = Some(if set.spec.suspend {
        SetPhase::Suspended
    } else if !mine.is_empty() {
        SetPhase::Running
    } else {
        SetPhase::Idle
    });
    let mut health = health_of(&status, &valid);
    if let Some(active) = mine.iter().find(|j| j.state == JobState::Active)
        && let Some(stuck) = job_control::stuck(&ctx, &ns, &active.name).await
    {
        if stuck.fatal {
            // It will not start by itself: the run fails with the kubelet's reason (taken
            // in once the Job has failed) and the next one can start.
            job_control::fail(&ctx.client, &ns, &active.name, &stuck.why).await?;
        }
        health = Health::stalled(
            "JobPodStuck",
            format!("the pod of job {} cannot start: {}", active.name, stuck.why),
        );
    }
    status.observed_generation = set.metadata.generation;
    status.conditions = conditions(&status.conditions, &health, set.metadata.generation, now);
    gauges(&ctx, &ns, &name, &status);
    ctx.metrics
        .created
        .get_or_create(&Metrics::set(&ns, &name))
        .set(created.as_second());
    match valid
        .schedule
        .as_ref()
        .and_then(|s| crate::operator::plan::schedule::longest_gap(s, now))
    {
        Some(gap) => {
            ctx.metrics
                .backup_interval
                .get_or_create(&Metrics::set(&ns, &name))
                .set(gap.as_secs());
        }
        None => {
            ctx.metrics
                .backup_interval
                .remove(&Metrics::set(&ns, &name));
        }
    }
    write_status(&api, &name, old.as_ref(), &status).await?;

    let mut wait = plan.wake.map_or(IDLE, |w| until(now, w)).min(IDLE);
    if !mine.is_empty() {
        wait = wait.min(WATCH_JOBS);
    }
    Ok(Action::requeue(wait))
}

fn stalled_reason(status: Option<&BackupSetStatus>) -> Option<String> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled" && c.status == "True")
        .map(|c| c.reason.clone())
}

fn health_of(status: &BackupSetStatus, valid: &ValidSet) -> Health {
    if status.consecutive_failures > 0 {
        let why = status
            .last_run
            .as_ref()
            .and_then(|r| r.message.clone())
            .unwrap_or_default();
        return Health::stalled(
            "BackupFailed",
            format!(
                "{} backup(s) failed in a row; the last: {why}",
                status.consecutive_failures
            ),
        );
    }
    if let Some(v) = status.verification.as_ref().filter(|v| !v.ok) {
        return Health::stalled(
            "RepositoryDamaged",
            format!(
                "the last {} verification found damage: {}",
                v.depth,
                v.message.clone().unwrap_or_default()
            ),
        );
    }
    let what = match &valid.schedule {
        Some(_) => "scheduled",
        None => "ready for manual runs",
    };
    Health::ready("Ready", format!("repository {} {what}", valid.repository))
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

fn record(ctx: &Context, set: &BackupSet, a: &crate::operator::results::Absorbed) {
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    ctx.metrics
        .runs
        .get_or_create(&RunLabels {
            namespace: ns.clone(),
            owner: name.clone(),
            kind: a.kind.clone(),
            result: a.result.into(),
        })
        .inc();
    ctx.metrics
        .run_duration
        .get_or_create(&KindLabels {
            kind: a.kind.clone(),
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
}

/// What tells a start's Job apart from the set's others: its slot, or for a manual run its
/// token and the set's generation. The generation too, because a token reverted to an
/// earlier value (A → B → A) is a new request that runs once whether or not the first A's
/// Job still exists; the same generation always names the same Job, so a retried reconcile
/// never runs it twice.
fn job_tail(start: &Start, generation: i64) -> String {
    match &start.reason {
        Reason::Scheduled => slot_tail(start.slot),
        Reason::Manual(token) => {
            format!("m{}", &short_hash(&format!("{token}\0{generation}"))[..8])
        }
        Reason::OnCreate => format!("c{}", slot_tail(start.slot)),
    }
}

/// The Job for a start.
fn build_job(
    ctx: &Context,
    set: &BackupSet,
    valid: &ValidSet,
    start: &Start,
    suspend: bool,
) -> Result<Job, Error> {
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let tail = job_tail(start, set.metadata.generation.unwrap_or_default());
    let job_name = names::job_name(&name, start.kind.name(), &tail);
    let repository = RepositoryRef {
        url: valid.url.clone(),
        owner: Some(format!("{ns}/{name}")),
        create: start.kind == OpKind::Backup,
    };
    let (operation, privilege, timeout) = match start.kind {
        OpKind::Backup => (
            Operation::Backup(BackupPlan {
                slot_time: chrono::DateTime::from_timestamp(start.slot.as_second(), 0)
                    .unwrap_or_default(),
                slot_id: job_name.clone(),
                level: start.level,
                source_levels: start.source_levels.clone(),
                sources: valid.sources.iter().map(|(_, p)| p.clone()).collect(),
                compression: set.spec.compression.as_ref().map(|c| c.level.clone()),
                uploads: None,
            }),
            Privilege::Backup,
            valid
                .backup_timeout
                .unwrap_or(ctx.settings.default_backup_timeout.as_secs() as i64),
        ),
        OpKind::Purge => (
            Operation::Purge(PurgePlan {
                retention: valid.retention.clone().unwrap_or_default(),
                grace_seconds: ctx.settings.purge_grace.as_secs(),
            }),
            Privilege::Maintenance,
            valid
                .maintenance_timeout
                .unwrap_or(ctx.settings.default_maintenance_timeout.as_secs() as i64),
        ),
        OpKind::Verify => {
            let (deep, sample) = valid
                .schedule
                .as_ref()
                .and_then(|s| s.verify.as_ref())
                .map(|(_, d, p)| {
                    (
                        *d == crate::api::schedule::VerifyDepth::Deep,
                        p.map(f64::from),
                    )
                })
                .unwrap_or((false, None));
            (
                Operation::Verify(VerifyPlan {
                    deep,
                    sample_percent: sample,
                }),
                Privilege::Maintenance,
                valid
                    .maintenance_timeout
                    .unwrap_or(ctx.settings.default_maintenance_timeout.as_secs() as i64),
            )
        }
    };
    let plan = JobPlan {
        version: job_plan::PLAN_VERSION,
        repository,
        operation,
    };
    let mut labels = base_labels(start.kind.name());
    labels.insert(LABEL_BACKUP_SET.into(), name.clone());
    labels.insert(LABEL_OPERATION.into(), start.kind.name().into());
    labels.insert(LABEL_REPOSITORY.into(), valid.repo_label.clone());
    let annotations = BTreeMap::from([
        (ANNOTATION_SLOT.to_owned(), start.slot.to_string()),
        (ANNOTATION_LEVEL.to_owned(), start.level.to_string()),
        (ANNOTATION_REASON.to_owned(), format!("{:?}", start.reason)),
    ]);
    let pod_sources: Vec<job::PodSource> = match start.kind {
        OpKind::Backup => valid.sources.iter().map(|(s, _)| s.clone()).collect(),
        _ => Vec::new(),
    };
    let input = JobInput {
        name: job_name,
        namespace: &ns,
        owner: Some(owner_ref(set)),
        labels,
        annotations,
        image: &ctx.settings.image,
        pull_policy: ctx.settings.pull_policy.as_deref(),
        service_account: ctx.settings.job_service_account.as_deref(),
        plan: &plan,
        privilege,
        storage: &valid.storage,
        key: Some(&valid.key),
        sources: &pod_sources,
        target: None,
        node: if start.kind == OpKind::Backup {
            valid.node.as_deref()
        } else {
            None
        },
        resources: set.spec.resources.as_ref(),
        active_deadline_seconds: Some(timeout),
        ttl_seconds_after_finished: ctx.settings.job_ttl_seconds,
        backoff_limit: 2,
        suspend,
    };
    job::build(&input).map_err(|source| Error::Build {
        what: "a job".into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_token_names_a_new_job_per_generation_and_the_same_one_within_it() {
        let start = |token: &str| Start {
            kind: OpKind::Backup,
            reason: Reason::Manual(token.into()),
            slot: "2026-12-01T00:00:00Z".parse().unwrap(),
            level: holdfast_engine::format::run::Level::Incr,
            source_levels: Default::default(),
        };
        // A at generation 5, B at 6, A again at 7: three Jobs.
        let names = [
            job_tail(&start("a"), 5),
            job_tail(&start("b"), 6),
            job_tail(&start("a"), 7),
        ];
        assert_eq!(
            names
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            3
        );
        // A retried reconcile of one generation: one Job.
        assert_eq!(job_tail(&start("a"), 7), names[2]);
    }
}
