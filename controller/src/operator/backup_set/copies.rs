//! Starting a set's copies: after each recorded run, one copy Job per copy that is behind,
//! queued with the set's repository (it reads it), a failed one retried after a growing
//! pause (`plan::copies`).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, Resource, ResourceExt};

use super::RepoJobs;
use super::validate::{ValidCopy, ValidSet};
use crate::api::BackupSet;
use crate::api::backup_set::{BackupSetStatus, CopyStatus, RunPhase};
use crate::job::plan::{self as job_plan, CopyPlan, JobPlan, Operation, RepositoryRef};
use crate::operator::context::Context;
use crate::operator::error::Error;
use crate::operator::event_reason::EventReason;
use crate::operator::job::{self, JobInput, Privilege};
use crate::operator::job_template;
use crate::operator::job_view::JobView;
use crate::operator::names::{self, LABEL_BACKUP_SET, LABEL_COPY, LABEL_REPOSITORY};
use crate::operator::plan::copies::{CopyInput, plan_copies};
use crate::operator::plan::queue::{JobState, must_wait};
use crate::operator::plan::set::{OpKind, Start};
use crate::operator::settings::Settings;
use crate::operator::write;

/// When each of the set's recent recorded runs (Complete, Partial or Aborted: each is in
/// the repository) finished.
pub(super) fn recorded_completions(
    status: &BackupSetStatus,
) -> impl Iterator<Item = Timestamp> + '_ {
    status
        .recent_runs
        .iter()
        .filter(|r| {
            matches!(
                r.phase,
                RunPhase::Complete | RunPhase::Partial | RunPhase::Aborted
            )
        })
        .filter_map(|r| r.completion_time.as_ref().map(|t| t.0))
}

/// The copy's bookkeeping, forgotten when its target changed (a new copy, filled anew).
fn bookkeeping<'s>(status: &'s BackupSetStatus, copy: &ValidCopy) -> Option<&'s CopyStatus> {
    status
        .copies
        .iter()
        .find(|c| c.name == copy.name && c.target == copy.target)
}

/// Create the copy Jobs that are due; returns when a copy waiting out its pause is due.
pub(super) async fn start_copies(
    ctx: &Context,
    set: &BackupSet,
    valid: &ValidSet,
    status: &mut BackupSetStatus,
    jobs: &mut RepoJobs,
    now: Timestamp,
) -> Result<Option<Timestamp>, Error> {
    // The bookkeeping of copies removed from the spec goes.
    status
        .copies
        .retain(|c| valid.copies.iter().any(|v| v.name == c.name));
    if valid.copies.is_empty() {
        return Ok(None);
    }
    let running = |name: &str| {
        jobs.all.iter().any(|j| {
            j.state != JobState::Done
                && j.copy_name.as_deref() == Some(name)
                && jobs.own.contains(&j.name)
        })
    };
    let inputs: Vec<CopyInput<'_>> = valid
        .copies
        .iter()
        .map(|c| {
            let known = bookkeeping(status, c);
            CopyInput {
                name: &c.name,
                caught_up_to: known.and_then(|k| k.caught_up_to.as_ref()).map(|t| t.0),
                last_attempt: known.and_then(|k| k.last_attempt.as_ref()).map(|t| t.0),
                consecutive_failures: known.map_or(0, |k| k.consecutive_failures),
                running: running(&c.name),
            }
        })
        .collect();
    let newest = recorded_completions(status).max();
    let decision = plan_copies(&inputs, newest, set.spec.suspend, now);
    let ns = set.namespace().unwrap_or_default();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    for name in &decision.start {
        let Some(copy) = valid.copies.iter().find(|c| &c.name == name) else {
            continue;
        };
        let suspend = must_wait(&jobs.queued());
        let job = build_job(&ctx.settings, set, valid, copy, now, suspend)?;
        let job_name = job.name_any();
        let created = write::create_once(&jobs_api, &job)
            .await
            .map_err(Error::api(format!("creating job {job_name}")))?;
        let entry = crate::operator::results::copy_entry(status, &copy.name);
        if entry.target != copy.target {
            // Another target is another copy, filled anew.
            *entry = CopyStatus {
                name: copy.name.clone(),
                target: copy.target.clone(),
                ..CopyStatus::default()
            };
        }
        entry.last_attempt = Some(Time(now));
        let Some(created) = created else { continue };
        let (verb, reason) = if suspend {
            (
                "queued",
                EventReason::Queued(crate::job::plan::OperationKind::Copy),
            )
        } else {
            (
                "started",
                EventReason::Started(crate::job::plan::OperationKind::Copy),
            )
        };
        ctx.event(
            &set.object_ref(&()),
            reason,
            "Start",
            format!(
                "copy {} {verb} as job {job_name}, into {}",
                copy.name, copy.target
            ),
        )
        .await;
        jobs.own.push(job_name);
        jobs.all.push(JobView::of(&created));
    }
    Ok(decision.wake)
}

/// A copy's Job: it reads the set's repository (its queue) and writes the copy's.
pub(super) fn build_job(
    settings: &Settings,
    set: &BackupSet,
    valid: &ValidSet,
    copy: &ValidCopy,
    now: Timestamp,
    suspend: bool,
) -> Result<Job, Error> {
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let tail = format!("{}-{}", copy.name, now.strftime("%Y%m%d%H%M%S"));
    let job_name = names::job_name(&name, "copy", &tail);
    let owner = Some(format!("{ns}/{name}"));
    let plan = JobPlan {
        version: job_plan::PLAN_VERSION,
        repository: RepositoryRef {
            url: valid.url.clone(),
            owner: owner.clone(),
            create: false,
        },
        operation: Operation::Copy(CopyPlan {
            name: copy.name.clone(),
            to: RepositoryRef {
                url: copy.url.clone(),
                owner,
                create: true,
            },
        }),
    };
    job::build(&JobInput {
        copy_storage: Some(&copy.mount),
        backoff_limit: 2,
        suspend,
        ..copy_input(
            settings,
            set,
            valid,
            copy,
            job_name,
            &plan,
            Reach::FromTheSet,
        )
    })
}

/// Where a copy's Job works: beside the set's repository (a copy Job reads it), or on the
/// copy's repository alone (its purge and verification).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    FromTheSet,
    CopyAlone,
}

/// What every Job of one copy has, whichever its operation: the set's labels with the
/// copy's, the repository label and storage of what it works on, the set as owner, the
/// set's key, job template and maintenance timeout, and the copy's mover.
fn copy_input<'a>(
    settings: &'a Settings,
    set: &'a BackupSet,
    valid: &'a ValidSet,
    copy: &'a ValidCopy,
    job_name: String,
    plan: &'a JobPlan,
    reach: Reach,
) -> JobInput<'a> {
    let (storage, repo_label) = match reach {
        Reach::FromTheSet => (&valid.storage, &valid.repo_label),
        Reach::CopyAlone => (&copy.mount, &copy.repo_label),
    };
    let ns = set.metadata.namespace.as_deref().unwrap_or_default();
    let mut input = JobInput::new(settings, job_name, ns, plan, storage);
    input.labels.insert(LABEL_BACKUP_SET.into(), set.name_any());
    input
        .labels
        .insert(LABEL_REPOSITORY.into(), repo_label.clone());
    input.labels.insert(LABEL_COPY.into(), copy.name.clone());
    JobInput {
        owner: set.controller_owner_ref(&()),
        privilege: Privilege::Maintenance,
        key: Some(&valid.key),
        template: job_template::merge(&settings.jobs, set.job_template().as_ref()),
        mover: copy.mover.clone(),
        active_deadline_seconds: Some(
            valid
                .maintenance_timeout
                .unwrap_or(settings.default_maintenance_timeout.as_secs() as i64),
        ),
        ..input
    }
}

/// The set's purge or verification, done to each copy too: a Job per copy, on the copy's
/// repository alone (its own storage and keys, its own retention), in the same window.
/// Named as the set's own Job of that start, so a reconcile run again makes none twice.
pub(super) async fn maintain(
    ctx: &Context,
    set: &BackupSet,
    valid: &ValidSet,
    start: &Start,
) -> Result<(), Error> {
    let ns = set.namespace().unwrap_or_default();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    for copy in &valid.copies {
        let job = maintenance_job(&ctx.settings, set, valid, copy, start)?;
        let job_name = job.name_any();
        let created = write::create_once(&jobs_api, &job)
            .await
            .map_err(Error::api(format!("creating job {job_name}")))?;
        if created.is_some() {
            ctx.event(
                &set.object_ref(&()),
                EventReason::Started(start.kind.kind()),
                "Start",
                format!(
                    "{} of copy {} started as job {job_name}",
                    start.kind.name(),
                    copy.name
                ),
            )
            .await;
        }
    }
    Ok(())
}

/// A purge or verification Job of one copy's repository.
pub(super) fn maintenance_job(
    settings: &Settings,
    set: &BackupSet,
    valid: &ValidSet,
    copy: &ValidCopy,
    start: &Start,
) -> Result<Job, Error> {
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let tail = format!(
        "{}-{}",
        copy.name,
        super::start::job_tail(start, set.metadata.generation.unwrap_or_default())
    );
    let job_name = names::job_name(&name, start.kind.name(), &tail);
    let operation = match start.kind {
        OpKind::Verify => super::start::verify(valid),
        _ => super::start::purge(
            settings,
            copy.retention.as_ref(),
            super::start::approvals(set),
        ),
    };
    // The copy's storage is this pod's only one: its keys under the usual names, its
    // claim where a filesystem repository is mounted.
    let plan = JobPlan {
        version: job_plan::PLAN_VERSION,
        repository: RepositoryRef {
            url: copy.own_url.clone(),
            owner: Some(format!("{ns}/{name}")),
            create: false,
        },
        operation,
    };
    job::build(&JobInput {
        annotations: BTreeMap::from([(names::ANNOTATION_SLOT.to_owned(), start.slot.to_string())]),
        ..copy_input(
            settings,
            set,
            valid,
            copy,
            job_name,
            &plan,
            Reach::CopyAlone,
        )
    })
}
