//! A deleted BackupSet: its `deletionPolicy`, through the `holdfast.io/cleanup` finalizer.
//! `Retain` lets it go at once and keeps the repository. `Purge` runs a Job that deletes
//! the repository, then lets it go. When the purge cannot run (its StorageSet or Secrets are
//! gone, the namespace is being deleted), the set says why in a Stalled condition and how to
//! release it: annotate `holdfast.io/release: "true"` (or switch to `Retain`) to delete it
//! and keep the repository. It never waits silently.

use k8s_openapi::api::batch::v1::Job;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use crate::api::BackupSet;
use crate::api::backup_set::{DeletionPolicy, SetPhase};
use crate::job::plan::OperationKind;
use crate::job::plan::{self as job_plan, JobPlan, Operation, RepositoryRef};
use crate::operator::conditions::{Health, conditions};
use crate::operator::context::Context;
use crate::operator::error::Error;
use crate::operator::event_reason::EventReason;
use crate::operator::hooks::{self, state::HookState};
use crate::operator::job::{self, JobInput};
use crate::operator::job_control;
use crate::operator::job_template;
use crate::operator::job_view::{JobView, Report};
use crate::operator::names::*;
use crate::operator::plan::queue::{JobState, must_wait};
use crate::operator::snapshots::state::CopyState;

use super::validate::ValidSet;
use super::{fetch, validate};
use crate::operator::plan::deletions::{self, Deleting};
use crate::operator::write;

const RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// Remove the finalizer: the set goes away.
async fn release(ctx: &Context, api: &Api<BackupSet>, set: &BackupSet) -> Result<Action, Error> {
    let copies: Vec<String> = set.spec.copies.iter().map(|c| c.name.clone()).collect();
    ctx.metrics.forget(
        &set.namespace().unwrap_or_default(),
        &set.name_any(),
        &copies,
    );
    match crate::operator::finalizer::set(api, set, FINALIZER_CLEANUP, false).await {
        Ok(()) => Ok(Action::await_change()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(Error::api("removing the cleanup finalizer")(e)),
    }
}

/// Report why the set cannot go yet, and how to let it go.
async fn stalled(
    ctx: &Context,
    api: &Api<BackupSet>,
    set: &BackupSet,
    reason: &'static str,
    message: String,
) -> Result<Action, Error> {
    let message = format!(
        "{message}. To delete the set and keep the repository instead, annotate it \
         holdfast.io/release=true or set deletionPolicy: Retain"
    );
    report_stalled(ctx, api, set, reason, message).await
}

async fn report_stalled(
    ctx: &Context,
    api: &Api<BackupSet>,
    set: &BackupSet,
    reason: &'static str,
    message: String,
) -> Result<Action, Error> {
    let old = set.status.clone();
    let mut status = old.clone().unwrap_or_default();
    if super::condition_reason(old.as_ref(), "Stalled").as_deref() != Some(reason) {
        ctx.event(
            &set.object_ref(&()),
            EventReason::Problem(reason),
            "Delete",
            message.clone(),
        )
        .await;
    }
    status.phase = Some(SetPhase::Terminating);
    status.conditions = conditions(
        &status.conditions,
        &Health::stalled(reason, &message),
        set.metadata.generation,
        ctx.now(),
    );
    write::status(api, &set.name_any(), old.as_ref(), &status).await?;
    Ok(Action::requeue(RECHECK))
}

/// The namespace is going: nothing can be created in it, so say what can still be done.
async fn stalled_terminating(
    ctx: &Context,
    api: &Api<BackupSet>,
    set: &BackupSet,
    what: &str,
) -> Result<Action, Error> {
    let ns = set.namespace().unwrap_or_default();
    let message = crate::operator::namespace::advice(&ns, what, true);
    report_stalled(ctx, api, set, "NamespaceTerminating", message).await
}

pub async fn finalize(set: &BackupSet, ctx: &Context) -> Result<Action, Error> {
    let ns = set.namespace().unwrap_or_default();
    let api: Api<BackupSet> = Api::namespaced(ctx.client.clone(), &ns);
    if !set.finalizers().iter().any(|f| f == FINALIZER_CLEANUP) {
        return Ok(Action::await_change());
    }
    let snapshotted = set.spec.sources.iter().any(|s| {
        s.persistent_volume_claim
            .as_ref()
            .is_some_and(|p| p.snapshot())
    });
    if (snapshotted || !set.spec.hooks.is_empty()) && !settle(ctx, set).await? {
        return Ok(Action::requeue(RECHECK));
    }
    let released = set
        .annotations()
        .get(ANNOTATION_RELEASE)
        .is_some_and(|v| v == "true");
    if set.spec.deletion_policy == DeletionPolicy::Retain || released {
        let how = if released {
            "released by annotation"
        } else {
            "deletionPolicy Retain"
        };
        ctx.event(&set.object_ref(&()), EventReason::RepositoryRetained { released }, "Delete",
            format!("the repository of {} is kept ({how}); a Restore with storageSetRef can still restore it", set.name_any())).await;
        return release(ctx, &api, set).await;
    }
    // Purge: delete the repository first.
    let refs = fetch::fetch(&ctx.client, set, &ctx.set_stores).await?;
    let valid = match validate::validate(set, &refs) {
        Ok(v) => v,
        Err(p) if crate::operator::namespace::terminating(&ctx.client, &ns).await => {
            return stalled_terminating(ctx, &api, set, p.fact()).await;
        }
        Err(p) => {
            return stalled(
                ctx,
                &api,
                set,
                "PurgeBlocked",
                format!("cannot delete the repository: {}", p.message),
            )
            .await;
        }
    };
    let deletion = Deletion {
        ctx,
        api: &api,
        set,
        valid: &valid,
        job_name: job_name(
            &set.name_any(),
            OperationKind::DeleteRepository.as_str(),
            "final",
        ),
    };
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = jobs_api
        .get_opt(&deletion.job_name)
        .await
        .map_err(Error::api("reading the repository deletion job"))?;
    let queued: Vec<_> = refs
        .repo_jobs
        .iter()
        .map(|j| JobView::of(j).queued())
        .collect();
    match existing.map(|j| JobView::of(&j)) {
        Some(view) if view.state == JobState::Done => deletion.finished(&view).await,
        Some(_) => {
            job_control::release_next(&ctx.client, &ns, &queued).await?;
            Ok(Action::requeue(RECHECK))
        }
        None => {
            if let Some(why) = deletion_braked(ctx, set) {
                return report_stalled(
                    ctx,
                    &api,
                    set,
                    DELETION_BRAKED,
                    format!(
                        "the repository is not deleted yet: {why}. If that is what you want, \
                         annotate the set {ANNOTATION_APPROVE_DELETION}=true; to keep the \
                         repository, holdfast.io/release=true"
                    ),
                )
                .await;
            }
            deletion.start(must_wait(&queued)).await
        }
    }
}

/// The reason a braked deletion stalls with.
const DELETION_BRAKED: &str = "DeletionBraked";

/// Whether this set's repository deletion waits as one of a burst (`plan::deletions`): the
/// sets being deleted with `deletionPolicy: Purge`, from the controller's watch cache.
fn deletion_braked(ctx: &Context, set: &BackupSet) -> Option<String> {
    let key = |s: &BackupSet| format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any());
    let deleting_of = |s: &BackupSet| {
        let since = s.metadata.deletion_timestamp.as_ref()?.0;
        let released = s
            .annotations()
            .get(ANNOTATION_RELEASE)
            .is_some_and(|v| v == "true");
        (s.spec.deletion_policy == DeletionPolicy::Purge && !released)
            .then(|| Deleting { key: key(s), since })
    };
    let this = deleting_of(set)?;
    let mut deleting: Vec<Deleting> = ctx
        .set_stores
        .all()
        .iter()
        .filter_map(|s| deleting_of(s))
        .collect();
    if !deleting.iter().any(|d| d.key == this.key) {
        deleting.push(this.clone());
    }
    let approved = set
        .annotations()
        .get(ANNOTATION_APPROVE_DELETION)
        .is_some_and(|v| v == "true");
    let braked_before =
        super::condition_reason(set.status.as_ref(), "Stalled").as_deref() == Some(DELETION_BRAKED);
    deletions::must_wait(&this, &deleting, braked_before, approved)
}

/// Before a set with hooks or snapshots goes: no `post` owed, no snapshot left. A backup
/// still held is deleted (after its `post`, when its `pre` ran), a running one is stopped,
/// and an ended one gets the `post` it is owed and its snapshots deleted. Whether all is
/// settled (else look again soon).
async fn settle(ctx: &Context, set: &BackupSet) -> Result<bool, Error> {
    let ns = set.namespace().unwrap_or_default();
    let refs = fetch::fetch(&ctx.client, set, &ctx.set_stores).await?;
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let mut settled = true;
    for j in &refs.jobs {
        let view = JobView::of(j);
        if view.hooks.is_none() && view.copy.is_none() {
            continue;
        }
        let held =
            view.hooks.is_some_and(HookState::held) || view.copy.is_some_and(CopyState::held);
        if view.state != JobState::Done && !held {
            job_control::abort(&ctx.client, &ns, &view.name).await?;
            settled = false;
            continue;
        }
        if view.hooks.is_some_and(HookState::owes_post) {
            hooks::post(ctx, set, &view.hooked()).await?;
        }
        if view.copy.is_some() {
            crate::operator::snapshots::clean(ctx, &ns, &view.name).await?;
        }
        if view.state != JobState::Done {
            let _ = jobs_api.delete(&view.name, &Default::default()).await;
        }
    }
    Ok(settled)
}

/// Deleting the repository of a set with `deletionPolicy: Purge`, by its one Job.
struct Deletion<'a> {
    ctx: &'a Context,
    api: &'a Api<BackupSet>,
    set: &'a BackupSet,
    valid: &'a ValidSet,
    job_name: String,
}

impl Deletion<'_> {
    /// The Job finished: the repository is gone and the set may go, or why not.
    async fn finished(&self, view: &JobView) -> Result<Action, Error> {
        let ns = self.set.namespace().unwrap_or_default();
        let job_name = &self.job_name;
        let why = match job_control::report(self.ctx, &ns, view).await? {
            Report::Summary(s) => match s.as_ref() {
                crate::job::summary::JobSummary::DeleteRepository(_) => {
                    self.ctx
                        .event(
                            &self.set.object_ref(&()),
                            EventReason::RepositoryDeleted,
                            "Delete",
                            format!(
                                "the repository {} was deleted (deletionPolicy Purge)",
                                self.valid.repository
                            ),
                        )
                        .await;
                    let jobs_api: Api<Job> = Api::namespaced(self.ctx.client.clone(), &ns);
                    let _ = jobs_api.delete(job_name, &Default::default()).await;
                    return release(self.ctx, self.api, self.set).await;
                }
                crate::job::summary::JobSummary::Failed(f) => {
                    format!("{}: {}", f.category, f.message)
                }
                other => format!("{other:?}"),
            },
            Report::Missing(m) => m,
        };
        stalled(
            self.ctx,
            self.api,
            self.set,
            "PurgeFailed",
            format!("deleting the repository failed ({why}); delete job {job_name} to try again"),
        )
        .await
    }

    /// Create the Job, queued behind the repository's other operations.
    async fn start(&self, suspend: bool) -> Result<Action, Error> {
        let (ctx, set, valid) = (self.ctx, self.set, self.valid);
        let ns = set.namespace().unwrap_or_default();
        let job_name = &self.job_name;
        let plan = JobPlan {
            version: job_plan::PLAN_VERSION,
            repository: RepositoryRef {
                url: valid.url.clone(),
                owner: Some(format!("{ns}/{}", set.name_any())),
                create: false,
            },
            operation: Operation::DeleteRepository,
        };
        let mut input = JobInput::new(&ctx.settings, job_name.clone(), &ns, &plan, &valid.storage);
        input
            .labels
            .insert(LABEL_REPOSITORY.into(), valid.repo_label.clone());
        // No owner: a foreground deletion of the set would take the Job with it.
        let job = job::build(&JobInput {
            key: Some(&valid.key),
            template: job_template::merge(&ctx.settings.jobs, set.job_template().as_ref()),
            backoff_limit: 2,
            suspend,
            ..input
        })?;
        let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
        match write::create_once(&jobs_api, &job).await {
            Ok(Some(_)) => {
                ctx.event(&set.object_ref(&()), EventReason::RepositoryDeleting, "Delete",
                    format!("deleting the repository {} (deletionPolicy Purge) with job {job_name}", valid.repository)).await;
                Ok(Action::requeue(RECHECK))
            }
            Ok(None) => Ok(Action::requeue(RECHECK)),
            // The namespace is being deleted: nothing new may be created in it.
            Err(e) if crate::operator::namespace::refuses_as_terminating(&e) => {
                stalled_terminating(ctx, self.api, set,
                    &format!("it refuses the job that would delete the repository {}; next time delete the BackupSet before its namespace", valid.repository)).await
            }
            Err(e) => Err(Error::api(format!("creating job {job_name}"))(e)),
        }
    }
}
