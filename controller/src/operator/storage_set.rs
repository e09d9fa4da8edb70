//! The StorageSet reconciler: a storage-check Job on every spec change and periodically
//! (`Ready` from its result: reachable, writable, clock, bucket), the media inventory summed
//! from the BackupSets keeping repositories here, capacity of filesystem targets, and the
//! `holdfast.io/in-use` finalizer that keeps a StorageSet while BackupSets with
//! `deletionPolicy: Purge` use it (so a deletion of everything at once still lets their
//! purges run).

use std::sync::Arc;
use std::time::Duration;

use crate::api::backup_set::DeletionPolicy;
use crate::operator::event_reason::EventReason;
use crate::operator::write;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use crate::api::storage_set::{BackupSetUsage, Capacity, StorageInventory, StorageSetStatus};
use crate::api::{BackupSet, STATUS_LIST_LIMIT, StorageSet};
use crate::job::plan::{
    self as job_plan, JobPlan, Operation, RepositoryRef, StorageCheckPlan, paths,
};
use crate::operator::conditions::{Health, conditions};
use crate::operator::context::Context;
use crate::operator::error::{Error, Problem};
use crate::operator::job::{self, JobInput};
use crate::operator::job_control;
use crate::operator::job_template;
use crate::operator::job_view::{JobView, Report};
use crate::operator::names::*;
use crate::operator::plan::queue::JobState;
use crate::operator::storage::{self, StorageMount, Target};

const RECHECK: Duration = Duration::from_secs(30);
/// How often a failing target is checked again (at most).
const FAILING_RECHECK_SECS: u64 = 120;

/// The inventory of a StorageSet from the sets that use it (their last reports).
pub fn inventory(sets: &[&BackupSet]) -> StorageInventory {
    let mut inv = StorageInventory::default();
    for s in sets {
        let usage = s
            .status
            .as_ref()
            .and_then(|st| st.usage.clone())
            .unwrap_or_default();
        inv.volumes += usage.volumes;
        inv.total_bytes += usage.stored_bytes;
        inv.live_bytes += usage.live_bytes.unwrap_or(usage.stored_bytes);
        inv.reclaimable_bytes += usage.reclaimable_bytes.unwrap_or(0);
        inv.per_backup_set.push(BackupSetUsage {
            name: s.name_any(),
            repository: s.repository(),
            bytes: usage.stored_bytes,
        });
    }
    inv.backup_sets = u32::try_from(sets.len()).unwrap_or(u32::MAX);
    inv.per_backup_set
        .sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    inv.per_backup_set.truncate(STATUS_LIST_LIMIT);
    inv.total_size = crate::human::bytes(inv.total_bytes);
    inv
}

async fn set_finalizer(api: &Api<StorageSet>, s: &StorageSet, on: bool) -> Result<(), Error> {
    match crate::operator::finalizer::set(api, s, FINALIZER_IN_USE, on).await {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(Error::api("updating the in-use finalizer")(e)),
    }
}

fn storage_labels(ns: &str, name: &str) -> crate::operator::metrics::StorageLabels {
    crate::operator::metrics::StorageLabels {
        namespace: ns.to_owned(),
        storage_set: name.to_owned(),
    }
}

/// Check a StorageSet's references: its spec names a valid target, and the Secret or claim
/// that target needs exists; else the problem.
async fn check_refs(ctx: &Context, s: &StorageSet) -> Result<Result<Target, Problem>, Error> {
    let ns = s.namespace().unwrap_or_default();
    let target = match storage::target(&s.spec, None) {
        Ok(t) => t,
        Err(m) => return Ok(Err(Problem::new("StorageSetInvalid", m))),
    };
    match &target.mount {
        StorageMount::S3 {
            credentials_secret: Some(c),
        } => {
            let found = crate::operator::secrets::exists(&ctx.client, &ns, c).await?;
            if !found {
                return Ok(Err(Problem::new(
                    "CredentialsSecretNotFound",
                    format!("Secret {c} does not exist: create it with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
                )
                .recheck(RECHECK)));
            }
        }
        StorageMount::Filesystem { claim } => {
            let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
            if pvcs
                .get_opt(claim)
                .await
                .map_err(Error::api(format!("reading persistentvolumeclaim {claim}")))?
                .is_none()
            {
                return Ok(Err(Problem::new(
                    "StorageClaimNotFound",
                    format!("PersistentVolumeClaim {claim} does not exist"),
                )
                .recheck(RECHECK)));
            }
        }
        StorageMount::S3 {
            credentials_secret: None,
        } => {}
    }
    Ok(Ok(target))
}

fn check_job(ctx: &Context, s: &StorageSet, target: &Target, name: &str) -> Result<Job, Error> {
    let ns = s.namespace().unwrap_or_default();
    let plan = JobPlan {
        version: job_plan::PLAN_VERSION,
        repository: RepositoryRef {
            url: target.url.clone(),
            owner: None,
            create: false,
        },
        operation: Operation::StorageCheck(StorageCheckPlan {
            capacity_path: matches!(target.mount, StorageMount::Filesystem { .. })
                .then(|| paths::STORAGE.to_owned()),
        }),
    };
    let mut input = JobInput::new(&ctx.settings, name.to_owned(), &ns, &plan, &target.mount);
    input.labels.insert(LABEL_STORAGE_SET.into(), s.name_any());
    job::build(&JobInput {
        owner: s.controller_owner_ref(&()),
        active_deadline_seconds: Some(600),
        template: job_template::merge(&ctx.settings.jobs, s.spec.job_template.as_ref()),
        ..input
    })
}

pub async fn reconcile(s: Arc<StorageSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciled("StorageSet");
    let ns = s.namespace().unwrap_or_default();
    let name = s.name_any();
    let api: Api<StorageSet> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(s) = crate::operator::latest::latest(&api, &s).await? else {
        return Ok(Action::await_change());
    };
    let now = ctx.now();
    let mut status = s.status.clone().unwrap_or_default();
    let sets: Api<BackupSet> = Api::namespaced(ctx.client.clone(), &ns);
    let all = sets
        .list(&ListParams::default())
        .await
        .map_err(Error::api("listing backup sets"))?
        .items;
    let users: Vec<&BackupSet> = all
        .iter()
        .filter(|b| b.spec.storage_set_ref.name == name)
        .collect();
    (status.used_by, status.used_by_count) =
        crate::api::bounded_names(users.iter().map(|b| b.name_any()).collect());
    // Held only while a set would need this StorageSet to purge its repository.
    let purging: Vec<String> = users
        .iter()
        .filter(|b| b.spec.deletion_policy == DeletionPolicy::Purge)
        .map(|b| b.name_any())
        .collect();
    let action = if s.metadata.deletion_timestamp.is_some() {
        if purging.is_empty() {
            set_finalizer(&api, &s, false).await?;
            ctx.metrics
                .storage_ready
                .remove(&storage_labels(&ns, &name));
            return Ok(Action::await_change());
        }
        status.conditions = conditions(
            &status.conditions,
            &Health::progressing(
                "InUse",
                format!(
                    "deleted, kept until the BackupSets that purge their repositories here are gone: {}",
                    purging.join(", ")
                ),
            ),
            s.metadata.generation,
            now,
        );
        Action::requeue(RECHECK)
    } else {
        set_finalizer(&api, &s, !purging.is_empty()).await?;
        status.inventory = Some(inventory(&users));
        let (health, action) = check(&ctx, &s, &mut status, now).await?;
        ctx.metrics
            .storage_ready
            .get_or_create(&storage_labels(&ns, &name))
            .set(i64::from(health.is_ready()));
        status.observed_generation = s.metadata.generation;
        status.conditions = conditions(&status.conditions, &health, s.metadata.generation, now);
        action
    };
    write::status(&api, &name, s.status.as_ref(), &status).await?;
    Ok(action)
}

/// The stages of a StorageSet in use: its references → the result of its last check → the
/// next check when due → its health. Returns the health and when to look again.
async fn check(
    ctx: &Context,
    s: &StorageSet,
    status: &mut StorageSetStatus,
    now: Timestamp,
) -> Result<(Health, Action), Error> {
    let target = match check_refs(ctx, s).await? {
        Ok(target) => target,
        Err(problem) => {
            let health = Health::stalled(problem.reason, &problem.message);
            return Ok((health, problem.action()));
        }
    };
    let ns = s.namespace().unwrap_or_default();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let mut checks: Vec<JobView> = jobs_api
        .list(&ListParams::default().labels(&format!("{LABEL_STORAGE_SET}={}", s.name_any())))
        .await
        .map_err(Error::api("listing storage check jobs"))?
        .items
        .iter()
        .map(JobView::of)
        .collect();
    checks.sort_by_key(|j| j.created);
    if let Some(done) = checks.iter().rev().find(|j| j.state == JobState::Done)
        && status.last_check_job.as_deref() != Some(&done.name)
    {
        absorb_check(ctx, s, done, status, now).await?;
    }
    // A failing target is checked again sooner, so the sets waiting for it start soon
    // after it is fixed.
    let interval = if status.failed_checks.is_empty() {
        ctx.settings.storage_check_interval.as_secs().max(60)
    } else {
        ctx.settings
            .storage_check_interval
            .as_secs()
            .clamp(60, FAILING_RECHECK_SECS)
    } as i64;
    let due = status.checked_generation != s.metadata.generation
        || status
            .last_check_time
            .as_ref()
            .is_none_or(|t| now.duration_since(t.0).as_secs() >= interval);
    // The check that runs now, if one does.
    let running = checks.iter().find(|j| j.state != JobState::Done);
    if due && running.is_none() {
        let epoch = now.as_second() / interval;
        let job_name = job_name(
            &s.name_any(),
            "check",
            &format!("g{}-{epoch}", s.metadata.generation.unwrap_or(0)),
        );
        let job = check_job(ctx, s, &target, &job_name)?;
        write::create_once(&jobs_api, &job)
            .await
            .map_err(Error::api(format!("creating job {job_name}")))?;
    }
    let next = if let Some(running) = running {
        job_control::next_look(running, now, RECHECK)
    } else if due {
        // Created just now: a refused pod shows only in an Event.
        job_control::FIRST_LOOK
    } else {
        let last = status.last_check_time.as_ref().map_or(now, |t| t.0);
        crate::operator::plan::set::until(now, last + jiff::SignedDuration::from_secs(interval))
    };
    let mut health = health_of(status, s.metadata.generation);
    // A check whose pod cannot start (refused by admission, a missing credential) says so
    // instead of "checking" for ever, and its sets wait for a reason they can read.
    if let Some(running) = running {
        health = job_control::watch_stuck(ctx, &ns, running, health).await?;
    }
    Ok((health, Action::requeue(next.min(Duration::from_secs(3600)))))
}

/// Take in a finished check: what failed and why, the capacity, an Event.
async fn absorb_check(
    ctx: &Context,
    s: &StorageSet,
    done: &JobView,
    status: &mut StorageSetStatus,
    now: Timestamp,
) -> Result<(), Error> {
    status.last_check_job = Some(done.name.clone());
    status.last_check_time = Some(Time(done.finished.unwrap_or(now)));
    status.checked_generation = done
        .name
        .rsplit_once("-g")
        .and_then(|(_, g)| g.split('-').next()?.parse().ok());
    let ns = s.namespace().unwrap_or_default();
    let check = match job_control::report(ctx, &ns, done).await? {
        Report::Summary(sum) => match *sum {
            crate::job::summary::JobSummary::StorageCheck(c) => c,
            other => {
                status.failed_checks = vec![format!("the check did not run: {other:?}")];
                status.failure_reason = None;
                return Ok(());
            }
        },
        Report::Missing(m) => {
            // A pod the API server refused will not run until someone changes something:
            // the sets wait for that, not for a retry.
            status.failure_reason = m
                .contains(job_control::POD_REFUSED)
                .then(|| job_control::POD_REFUSED.to_owned());
            status.failed_checks = vec![format!("the check did not run: {m}")];
            return Ok(());
        }
    };
    let failed = || check.items.iter().filter(|i| !i.ok);
    status.failed_checks = failed()
        .map(|i| format!("{}: {}", i.check, i.detail))
        .collect();
    status.failure_reason = failed()
        .find_map(|i| i.category.filter(|c| !c.is_transient()))
        .map(|c| c.as_str().to_owned());
    status.capacity = match (check.total_bytes, check.available_bytes) {
        (Some(t), Some(a)) => Some(Capacity {
            total_bytes: t,
            available_bytes: a,
        }),
        _ => None,
    };
    let object = s.object_ref(&());
    if check.ok {
        ctx.event(
            &object,
            EventReason::StorageReady,
            "Check",
            "storage check passed",
        )
        .await;
    } else {
        ctx.event(
            &object,
            EventReason::StorageCheckFailed,
            "Check",
            status.failed_checks.join("; "),
        )
        .await;
    }
    Ok(())
}

/// Ready once the current generation was checked and nothing failed (pure).
fn health_of(status: &StorageSetStatus, generation: Option<i64>) -> Health {
    if status.checked_generation != generation {
        Health::progressing(
            "Checking",
            "checking the storage target (a storage-check job runs)",
        )
    } else if status.failed_checks.is_empty() {
        Health::ready("Ready", "reachable and writable")
    } else {
        Health::stalled(
            status
                .failure_reason
                .as_deref()
                .unwrap_or("StorageCheckFailed"),
            format!(
                "the storage check failed: {}",
                status.failed_checks.join("; ")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // reason: tests
    use super::*;

    fn set(i: usize, bytes: u64) -> BackupSet {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "holdfast.io/v1alpha1", "kind": "BackupSet",
            "metadata": {"name": format!("app-{i:04}"), "namespace": "shop"},
            "spec": {"storageSetRef": {"name": "offsite"}, "sources": [],
                     "encryption": {"keySecretRef": {"name": "k", "key": "p"}}},
            "status": {"usage": {"volumes": 1, "storedBytes": bytes, "logicalBytes": bytes}}}))
        .unwrap()
    }

    #[test]
    fn status_lists_stay_bounded_while_totals_count_every_set() {
        let sets: Vec<BackupSet> = (0..1000).map(|i| set(i, i as u64)).collect();
        let refs: Vec<&BackupSet> = sets.iter().collect();
        let inv = inventory(&refs);
        assert_eq!(inv.backup_sets, 1000);
        assert_eq!(inv.volumes, 1000);
        assert_eq!(inv.total_bytes, (0..1000u64).sum::<u64>());
        assert_eq!(inv.per_backup_set.len(), STATUS_LIST_LIMIT);
        assert_eq!(inv.per_backup_set[0].name, "app-0999", "largest first");
        assert_eq!(inv.per_backup_set[99].bytes, 900);

        let (names, count) =
            crate::api::bounded_names((0..1000).rev().map(|i| format!("s{i:04}")).collect());
        assert_eq!((names.len(), count), (STATUS_LIST_LIMIT, Some(1000)));
        assert_eq!(names[0], "s0000", "sorted by name");
        assert_eq!(crate::api::bounded_names(vec![]), (vec![], None));
        assert_eq!(
            crate::api::bounded_names(vec!["b".into(), "a".into()]),
            (vec!["a".into(), "b".into()], Some(2))
        );
    }
}
