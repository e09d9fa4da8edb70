//! The Restore reconciler. One-shot: once its status is final it never runs again, whether
//! the manifest is re-applied, the controller restarts or the Job is deleted. It resolves
//! the repository (from a BackupSet, or for disaster recovery from a StorageSet, a path and
//! a key, with no BackupSet and no history), creates the target claim if asked, queues one
//! Job behind the repository's other operations, and writes the counts and the unrestored
//! items it reports.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, Toleration, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use crate::api::common::{JobTemplate, Mover, SecretKeyReference};
use crate::api::restore::{Overwrite, RestorePhase, RestoreStatus, RestoredSource, UnrestoredItem};
use crate::api::{BackupSet, Restore, StorageSet};
use crate::job::plan::{
    self as job_plan, JobPlan, Operation, OperationKind, RepositoryRef, RestorePlan, paths,
};
use crate::operation::Outcome;
use crate::operator::claim_users::{ClaimUser, claim_users, tolerations_on};
use crate::operator::conditions::{Health, conditions};
use crate::operator::context::Context;
use crate::operator::error::{Error, Problem};
use crate::operator::event_reason::EventReason;
use crate::operator::job::{self, JobInput, Privilege};
use crate::operator::job_control;
use crate::operator::job_template;
use crate::operator::job_view::{JobView, Report};
use crate::operator::metrics::RunLabels;
use crate::operator::mover::{self, Consent, MoverPlan, PodIdentity};
use crate::operator::names::*;
use crate::operator::plan::queue::{JobState, must_wait};
use crate::operator::secrets;
use crate::operator::settings::Settings;
use crate::operator::storage::{self, StorageMount};
use crate::operator::write;

const RECHECK: Duration = Duration::from_secs(15);

/// Where the repository of a Restore is.
struct Source {
    url: String,
    repo_label: String,
    storage: StorageMount,
    key: SecretKeyReference,
    owner: Option<String>,
    /// The BackupSet's mover, job template and claims (none for disaster recovery).
    set_mover: Option<Mover>,
    set_job_template: Option<JobTemplate>,
    set_claims: Vec<String>,
}

/// The Pending reason of a Restore whose BackupSet has not backed anything up yet.
const WAITING_FOR_BACKUP: &str = "WaitingForFirstBackup";

async fn resolve(ctx: &Context, r: &Restore) -> Result<Result<Source, Problem>, Error> {
    let ns = r.namespace().unwrap_or_default();
    let origin = match &r.spec.backup_set_ref {
        Some(b) => match of_backup_set(ctx, &ns, &b.name).await? {
            Ok(o) => o,
            Err(p) => return Ok(Err(p)),
        },
        None => match of_disaster_recovery(r) {
            Ok(o) => o,
            Err(p) => return Ok(Err(p)),
        },
    };
    let storages: Api<StorageSet> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(storage) = storages
        .get_opt(&origin.storage_set)
        .await
        .map_err(Error::api("reading the StorageSet"))?
    else {
        return Ok(Err(Problem::new(
            "StorageSetNotFound",
            format!(
                "StorageSet {} does not exist in namespace {ns}",
                origin.storage_set
            ),
        )));
    };
    let repository = &origin.repository;
    if let Err(m) = storage::check_repository(repository) {
        return Ok(Err(Problem::new("RepositoryInvalid", m)));
    }
    let storage::Target { url, mount } = match storage::target(&storage.spec, Some(repository)) {
        Ok(t) => t,
        Err(m) => return Ok(Err(Problem::new("StorageSetInvalid", m))),
    };
    if let Err(p) = secrets_present(ctx, &ns, &origin.key, &mount).await? {
        return Ok(Err(p));
    }
    Ok(Ok(Source {
        repo_label: repository_label(&ns, &origin.storage_set, repository),
        url,
        storage: mount,
        key: origin.key,
        owner: origin.owner,
        set_mover: origin.set_mover,
        set_job_template: origin.set_job_template,
        set_claims: origin.set_claims,
    }))
}

/// Where a Restore's repository is, before the StorageSet is read.
struct Origin {
    storage_set: String,
    repository: String,
    key: SecretKeyReference,
    /// The owner recorded in the repository (`namespace/set`), none for disaster recovery.
    owner: Option<String>,
    set_mover: Option<Mover>,
    set_job_template: Option<JobTemplate>,
    set_claims: Vec<String>,
}

/// From a BackupSet that has backed something up.
async fn of_backup_set(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<Result<Origin, Problem>, Error> {
    let sets: Api<BackupSet> = Api::namespaced(ctx.client.clone(), ns);
    let Some(set) = sets
        .get_opt(name)
        .await
        .map_err(Error::api("reading the BackupSet"))?
    else {
        return Ok(Err(Problem::new(
            "BackupSetNotFound",
            format!(
                "BackupSet {name} does not exist; for disaster recovery use storageSetRef, repository and encryption instead"
            ),
        )));
    };
    // Applied together with its set (one GitOps sync), a Restore waits for the set's first
    // backup rather than fail at once on an empty repository.
    let points = set
        .status
        .as_ref()
        .and_then(|s| s.restore_points.as_ref())
        .map_or(0, |p| p.count);
    if points == 0 {
        return Ok(Err(Problem::new(
            WAITING_FOR_BACKUP,
            format!(
                "BackupSet {name} has no restore point yet; the restore starts after its first backup"
            ),
        )
        .recheck(RECHECK)));
    }
    Ok(Ok(Origin {
        storage_set: set.spec.storage_set_ref.name.clone(),
        repository: set.repository(),
        key: set.spec.encryption.key_secret_ref.clone(),
        owner: Some(format!("{ns}/{name}")),
        set_mover: set.spec.mover.clone(),
        set_job_template: set.job_template(),
        set_claims: set.source_claims().map(str::to_owned).collect(),
    }))
}

/// For disaster recovery: a StorageSet, a path and a key, with no BackupSet.
fn of_disaster_recovery(r: &Restore) -> Result<Origin, Problem> {
    let (Some(s), Some(repo), Some(enc)) = (
        &r.spec.storage_set_ref,
        &r.spec.repository,
        &r.spec.encryption,
    ) else {
        return Err(Problem::new(
            "RestoreInvalid",
            "set backupSetRef, or storageSetRef with repository and encryption",
        ));
    };
    Ok(Origin {
        storage_set: s.name.clone(),
        repository: repo.clone(),
        key: enc.key_secret_ref.clone(),
        owner: None,
        set_mover: None,
        set_job_template: None,
        set_claims: Vec::new(),
    })
}

/// The key Secret and the target's S3 credentials exist and hold the keys they must.
async fn secrets_present(
    ctx: &Context,
    ns: &str,
    key: &SecretKeyReference,
    mount: &StorageMount,
) -> Result<Result<(), Problem>, Error> {
    let mut needed = vec![(
        key.name.clone(),
        "KeySecretNotFound",
        "KeySecretInvalid",
        vec![key.key.as_str()],
    )];
    if let StorageMount::S3 {
        credentials_secret: Some(c),
    } = mount
    {
        needed.push((
            c.clone(),
            "CredentialsSecretNotFound",
            "CredentialsSecretInvalid",
            storage::CREDENTIAL_KEYS.to_vec(),
        ));
    }
    for (secret, missing, invalid, keys) in needed {
        let found = secrets::lookup(&ctx.client, ns, &secret).await?;
        let secrets::Found::Present(names) = found else {
            return Ok(Err(Problem::new(
                missing,
                format!("Secret {secret} does not exist"),
            )
            .recheck(RECHECK)));
        };
        if let Some(why) = keys
            .iter()
            .find_map(|k| secrets::missing_key(&secret, k, names.as_ref()))
        {
            return Ok(Err(Problem::new(invalid, why).recheck(RECHECK)));
        }
    }
    Ok(Ok(()))
}

/// Whether this Restore created the claim (an earlier reconcile of it did).
fn made_by(claim: &PersistentVolumeClaim, r: &Restore) -> bool {
    claim
        .labels()
        .get(LABEL_RESTORE)
        .is_some_and(|v| *v == r.name_any())
        && claim
            .labels()
            .get(MANAGED_BY)
            .is_some_and(|v| v == MANAGED_BY_VALUE)
}

/// The target claim: the existing one, or a new one created now. Its name, the running pods
/// that mount it (the node of a ReadWriteOnce claim, the mover's identity), and those that
/// mount the set's claims (the mover's identity when no pod mounts the target).
async fn target(
    ctx: &Context,
    r: &Restore,
    set_claims: &[String],
) -> Result<Result<(String, Vec<ClaimUser>, Vec<ClaimUser>), Problem>, Error> {
    let ns = r.namespace().unwrap_or_default();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let claim = if let Some(existing) = &r.spec.target.persistent_volume_claim {
        if pvcs
            .get_opt(&existing.claim_name)
            .await
            .map_err(Error::api("reading the target claim"))?
            .is_none()
        {
            return Ok(Err(Problem::new(
                "TargetClaimNotFound",
                format!(
                    "PersistentVolumeClaim {} does not exist",
                    existing.claim_name
                ),
            )
            .recheck(RECHECK)));
        }
        existing.claim_name.clone()
    } else if let Some(new) = &r.spec.target.new_persistent_volume_claim {
        let found = pvcs
            .get_opt(&new.name)
            .await
            .map_err(Error::api("reading the new claim"))?;
        if let Some(existing) = &found
            && !made_by(existing, r)
        {
            // "New" means new: restoring into a claim that holds data is a choice to make
            // explicitly, with an overwrite policy.
            return Ok(Err(Problem::new(
                "TargetClaimExists",
                format!(
                    "PersistentVolumeClaim {} already exists, and newPersistentVolumeClaim restores \
                     only into a claim this Restore creates: delete that claim or choose another \
                     name, or restore into it on purpose with target.persistentVolumeClaim \
                     ({{claimName: {}}}) and an overwrite policy (Never, IfNewer or Always)",
                    new.name, new.name
                ),
            )
            .recheck(RECHECK)));
        }
        if found.is_none() {
            let modes = if new.access_modes.is_empty() {
                vec!["ReadWriteOnce".to_owned()]
            } else {
                new.access_modes.clone()
            };
            let mut labels = base_labels(OperationKind::Restore.as_str());
            labels.insert(LABEL_RESTORE.into(), r.name_any());
            let pvc = PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(new.name.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(labels),
                    owner_references: new
                        .delete_with_restore
                        .then(|| r.controller_owner_ref(&()).into_iter().collect()),
                    ..Default::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(modes),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_owned(),
                            Quantity(new.size.clone()),
                        )])),
                        ..Default::default()
                    }),
                    storage_class_name: new.storage_class_name.clone(),
                    ..Default::default()
                }),
                status: None,
            };
            write::create_once(&pvcs, &pvc)
                .await
                .map_err(Error::api("creating the target claim"))?;
        }
        new.name.clone()
    } else {
        return Ok(Err(Problem::new(
            "RestoreInvalid",
            "the target names no claim",
        )));
    };
    // A ReadWriteOnce claim in use: restore on that node, as its users.
    let mut users = claim_users(&ctx.client, &ns, |c| {
        c == claim || set_claims.iter().any(|s| s == c)
    })
    .await?;
    let of_target = users.remove(&claim).unwrap_or_default();
    let of_set = users.into_values().flatten().collect();
    Ok(Ok((claim, of_target, of_set)))
}

fn plan_of(r: &Restore, src: &Source) -> JobPlan {
    let path = r.spec.target.path.trim_matches('/');
    JobPlan {
        version: job_plan::PLAN_VERSION,
        repository: RepositoryRef {
            url: src.url.clone(),
            owner: src.owner.clone(),
            create: false,
        },
        operation: Operation::Restore(RestorePlan {
            label: r.spec.label.clone(),
            point_in_time: r
                .spec
                .point_in_time
                .as_ref()
                .and_then(|t| chrono::DateTime::from_timestamp(t.0.as_second(), 0)),
            allow_partial: r.spec.allow_partial,
            sources: r.spec.sources.clone(),
            include: r.spec.include.clone(),
            exclude: r.spec.exclude.clone(),
            target: if path.is_empty() {
                paths::TARGET.to_owned()
            } else {
                format!("{}/{path}", paths::TARGET)
            },
            overwrite: match r.spec.overwrite {
                Overwrite::Never => holdfast_engine::restore::Overwrite::Never,
                Overwrite::IfNewer => holdfast_engine::restore::Overwrite::IfNewer,
                Overwrite::Always => holdfast_engine::restore::Overwrite::Always,
            },
            continue_on_error: r.spec.continue_on_error,
        }),
    }
}

/// Take a finished restore job's report into status; the message its Event carries.
fn finish(
    status: &mut RestoreStatus,
    view: &JobView,
    report: &Report,
    now: jiff::Timestamp,
) -> String {
    status.completion_time = Some(Time(view.finished.unwrap_or(now)));
    match report {
        Report::Summary(s) => match s.as_ref() {
            crate::job::summary::JobSummary::Restore(rs) => {
                status.run = Some(rs.run.clone()).filter(|r| !r.is_empty());
                status.restored = rs.restored;
                status.skipped = rs.skipped;
                status.unrestored = rs.unrestored;
                status.bytes_restored = rs.bytes_restored;
                status.owners_not_set = rs.owners_not_set;
                status.sources = rs
                    .sources
                    .iter()
                    .map(|s| RestoredSource {
                        source: s.source.clone(),
                        run: s.run.clone(),
                    })
                    .collect();
                status.unrestored_items = rs
                    .unrestored_items
                    .iter()
                    .map(|i| {
                        let (path, reason) = i.split_once(": ").unwrap_or((i, ""));
                        UnrestoredItem {
                            path: path.into(),
                            reason: reason.into(),
                        }
                    })
                    .collect();
                let phase = match rs.status {
                    holdfast_engine::restore::RestoreStatus::Complete => RestorePhase::Completed,
                    holdfast_engine::restore::RestoreStatus::Partial => {
                        RestorePhase::PartiallyFailed
                    }
                    holdfast_engine::restore::RestoreStatus::Failed => RestorePhase::Failed,
                };
                let mut message = format!(
                    "{} restored ({}), {} skipped, {} unrestored, from run {}",
                    rs.restored,
                    crate::human::bytes(rs.bytes_restored),
                    rs.skipped,
                    rs.unrestored,
                    rs.run
                );
                if rs.unrestored_items.iter().any(|i| i.contains("CAP_MKNOD")) {
                    message.push_str(
                        "; device nodes need the MKNOD capability: create a new Restore with \
                         spec.deviceNodes: true and a privileged mover",
                    );
                }
                if rs.owners_not_set > 0 || rs.modes_not_set > 0 {
                    message.push_str(&not_kept_note(rs.owners_not_set, rs.modes_not_set));
                }
                status.message = Some(message.clone());
                status.phase = Some(phase);
                message
            }
            crate::job::summary::JobSummary::Failed(f) => {
                let mut message = format!("{}: {}", f.category, f.message);
                // The engine speaks the command line's flags; a Restore's fields say the same.
                if f.message.contains("--partial") {
                    message.push_str(
                        " (a Restore is one-shot: create a new one with spec.allowPartial: true, \
                         or spec.label)",
                    );
                }
                status.message = Some(message.clone());
                status.phase = Some(RestorePhase::Failed);
                message
            }
            other => {
                let message = format!("unexpected report {other:?}");
                status.message = Some(message.clone());
                status.phase = Some(RestorePhase::Failed);
                message
            }
        },
        Report::Missing(m) => {
            status.message = Some(m.clone());
            status.phase = Some(RestorePhase::Failed);
            m.clone()
        }
    }
}

pub async fn reconcile(r: Arc<Restore>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciled("Restore");
    let ns = r.namespace().unwrap_or_default();
    let api: Api<Restore> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(r) = crate::operator::latest::latest(&api, &r).await? else {
        return Ok(Action::await_change());
    };
    let mut status = r.status.clone().unwrap_or_default();
    // One-shot.
    if status.phase.is_some_and(RestorePhase::is_final) || r.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let now = ctx.now();
    let (health, action) = advance(&ctx, &r, &mut status, now).await?;
    status.observed_generation = r.metadata.generation;
    status.conditions = conditions(&status.conditions, &health, r.metadata.generation, now);
    write::status(&api, &r.name_any(), r.status.as_ref(), &status).await?;
    Ok(action)
}

/// The stages of a Restore: resolve its repository → find its Job → record the result of a
/// finished one, watch a running one, fail a lost one, or prepare the target claim and
/// start one. Returns its health and when to look again.
async fn advance(
    ctx: &Context,
    r: &Restore,
    status: &mut RestoreStatus,
    now: Timestamp,
) -> Result<(Health, Action), Error> {
    let src = match resolve(ctx, r).await? {
        Ok(s) => s,
        Err(p) => return Ok(pending(status, &p)),
    };
    let ns = r.namespace().unwrap_or_default();
    let job_name = restore_job_name(r);
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let repo_jobs: Vec<JobView> = jobs_api
        .list(&ListParams::default().labels(&format!("{LABEL_REPOSITORY}={}", src.repo_label)))
        .await
        .map_err(Error::api("listing the repository's jobs"))?
        .items
        .iter()
        .map(JobView::of)
        .collect();
    let mine = jobs_api
        .get_opt(&job_name)
        .await
        .map_err(Error::api("reading the restore job"))?
        .map(|j| JobView::of(&j));
    match mine {
        Some(view) if view.state == JobState::Done => finished(ctx, r, status, &view, now).await,
        Some(view) => running(ctx, r, status, &view, &repo_jobs).await,
        // It ran, and its Job went before it reported: never run again.
        None if status.job.is_some() => Ok(lost(status, &job_name)),
        None => {
            let (claim, users, set_users) = match target(ctx, r, &src.set_claims).await? {
                Ok(t) => t,
                Err(p) => return Ok(pending(status, &p)),
            };
            let spec = r.spec.mover.as_ref().or(src.set_mover.as_ref());
            let consent = if spec.is_some_and(|m| m.privileged) {
                crate::operator::namespace::privileged_movers(&ctx.client, &ns).await?
            } else {
                None
            };
            let mover = match restore_mover(spec, [&users, &set_users], &src.storage, &ns, consent)
            {
                Ok(m) => m,
                Err(p) => return Ok(pending(status, &p)),
            };
            let node = users.iter().find_map(|u| u.node.clone());
            let tolerations = node
                .as_deref()
                .map(|n| tolerations_on(n, &users))
                .unwrap_or_default();
            let target = Target {
                claim,
                node,
                tolerations,
                mover,
            };
            start(ctx, r, status, &src, &target, &job_name, &repo_jobs, now).await
        }
    }
}

/// Waiting for something the user or a backup must provide: Pending with why.
fn pending(status: &mut RestoreStatus, p: &Problem) -> (Health, Action) {
    status.phase = Some(RestorePhase::Pending);
    status.message = Some(p.message.clone());
    // Waiting for a backup that is coming is progress, not a problem to fix.
    let health = if p.reason == WAITING_FOR_BACKUP {
        Health::progressing(p.reason, &p.message)
    } else {
        Health::stalled(p.reason, &p.message)
    };
    (health, p.action())
}

/// The Restore's one Job, named by its uid so a re-created Restore of the same name is a
/// new restore.
fn restore_job_name(r: &Restore) -> String {
    let uid = r.metadata.uid.clone().unwrap_or_default();
    job_name(
        &r.name_any(),
        OperationKind::Restore.as_str(),
        &uid.chars()
            .filter(|c| c.is_ascii_hexdigit())
            .take(8)
            .collect::<String>(),
    )
}

/// Its Job finished: the result, an Event, the run metric.
async fn finished(
    ctx: &Context,
    r: &Restore,
    status: &mut RestoreStatus,
    view: &JobView,
    now: Timestamp,
) -> Result<(Health, Action), Error> {
    let ns = r.namespace().unwrap_or_default();
    let report = job_control::report(ctx, &ns, view).await?;
    let message = finish(status, view, &report, now);
    let result = match status.phase {
        Some(RestorePhase::Completed) => Outcome::Complete,
        Some(RestorePhase::PartiallyFailed) => Outcome::Partial,
        _ => Outcome::Failed,
    };
    ctx.metrics
        .runs
        .get_or_create(&RunLabels {
            namespace: ns,
            owner: r.name_any(),
            kind: OperationKind::Restore.as_str().into(),
            result: result.as_str().into(),
        })
        .inc();
    let reason = EventReason::Ended(OperationKind::Restore, result);
    ctx.event(&r.object_ref(&()), reason, "Restore", message.clone())
        .await;
    // Only a complete restore is Ready: a partial one needs a look (its unrestored items),
    // and a script waiting for Ready must not take it for done.
    let health = if result == Outcome::Complete {
        Health::ready(reason.as_str(), message)
    } else {
        Health::stalled(reason.as_str(), message)
    };
    Ok((health, Action::await_change()))
}

/// Its Job waits or runs: release the repository's queue, and watch for a pod that cannot
/// start.
async fn running(
    ctx: &Context,
    r: &Restore,
    status: &mut RestoreStatus,
    view: &JobView,
    repo_jobs: &[JobView],
) -> Result<(Health, Action), Error> {
    let ns = r.namespace().unwrap_or_default();
    let queued: Vec<_> = repo_jobs.iter().map(JobView::queued).collect();
    let released = job_control::release_next(&ctx.client, &ns, &queued).await?;
    status.phase = Some(
        if view.state == JobState::Waiting && released.as_deref() != Some(view.name.as_str()) {
            RestorePhase::Queued
        } else {
            RestorePhase::Running
        },
    );
    status.job = Some(view.name.clone());
    status.start_time = status.start_time.clone().or(view.started.map(Time));
    let restoring = Health::progressing("Restoring", format!("job {} restores", view.name));
    let health = job_control::watch_stuck(ctx, &ns, view, restoring).await?;
    let next = job_control::next_look(view, ctx.now(), RECHECK);
    Ok((health, Action::requeue(next)))
}

/// Its Job is gone without a report: Failed, never run again.
fn lost(status: &mut RestoreStatus, job_name: &str) -> (Health, Action) {
    status.phase = Some(RestorePhase::Failed);
    let message = format!(
        "the job {job_name} disappeared before reporting a result; create a new Restore to try again"
    );
    status.message = Some(message.clone());
    (Health::stalled("JobLost", message), Action::await_change())
}

/// The restore pod's template: the cluster's defaults, under its set's, under its own.
fn restore_template(defaults: &JobTemplate, set: Option<&JobTemplate>, r: &Restore) -> JobTemplate {
    let with_set = job_template::merge(defaults, set);
    job_template::merge(&with_set, r.spec.job_template.as_ref())
}

/// The claim restored into, and the node a running pod mounts it on (ReadWriteOnce).
struct Target {
    claim: String,
    node: Option<String>,
    /// What the pods that mount the claim on `node` tolerate.
    tolerations: Vec<Toleration>,
    mover: MoverPlan,
}

/// What an unprivileged restore could not keep, and how to keep it.
fn not_kept_note(owners: u64, modes: u64) -> String {
    let mut what = Vec::new();
    if owners > 0 {
        what.push(format!(
            "{owners} entries keep the restoring user as owner instead of the backed-up one"
        ));
    }
    if modes > 0 {
        what.push(format!(
            "{modes} existing entries (a volume's root) kept their mode and times, as the \
             restoring user does not own them"
        ));
    }
    format!(
        "; {}: restore with mover.privileged (where the namespace allows it) to keep owners",
        what.join(", and ")
    )
}

/// Who the restore pod runs as: the Restore's `mover`, else its set's, else the pods that
/// mount the target claim, else those that mount the set's claims (pure).
fn restore_mover(
    spec: Option<&Mover>,
    [target, set]: [&[ClaimUser]; 2],
    storage: &StorageMount,
    namespace: &str,
    consent: Consent,
) -> Result<MoverPlan, Problem> {
    let choose = |users: &[ClaimUser]| {
        let users: Vec<(&str, &PodIdentity)> = users
            .iter()
            .map(|u| (u.pod.as_str(), &u.identity))
            .collect();
        mover::choose(
            spec,
            &users,
            matches!(storage, StorageMount::Filesystem { .. }),
            namespace,
            consent,
        )
        .map_err(Problem::from)
    };
    match choose(target)? {
        MoverPlan::Restricted(id) if id.origin == mover::Origin::Default => choose(set),
        plan => Ok(plan),
    }
}

/// Create its Job, queued behind the repository's other operations.
#[allow(clippy::too_many_arguments)] // reason: one stage's inputs, each read by an earlier stage
async fn start(
    ctx: &Context,
    r: &Restore,
    status: &mut RestoreStatus,
    src: &Source,
    target: &Target,
    job_name: &str,
    repo_jobs: &[JobView],
    now: Timestamp,
) -> Result<(Health, Action), Error> {
    let ns = r.namespace().unwrap_or_default();
    let queued: Vec<_> = repo_jobs.iter().map(JobView::queued).collect();
    let suspend = must_wait(&queued);
    let job = build_job(&ctx.settings, r, src, target, job_name, suspend)?;
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    write::create_once(&jobs_api, &job)
        .await
        .map_err(Error::api(format!("creating job {job_name}")))?;
    let claim = &target.claim;
    ctx.event(
        &r.object_ref(&()),
        if suspend {
            EventReason::Queued(OperationKind::Restore)
        } else {
            EventReason::Started(OperationKind::Restore)
        },
        "Restore",
        format!(
            "restoring into claim {claim} with job {job_name}, mover {}",
            target.mover
        ),
    )
    .await;
    status.job = Some(job_name.to_owned());
    status.mover = Some(target.mover.to_string());
    status.phase = Some(if suspend {
        RestorePhase::Queued
    } else {
        RestorePhase::Running
    });
    status.start_time = Some(Time(now));
    let health = Health::progressing("Restoring", format!("job {job_name} restores into {claim}"));
    Ok((health, Action::requeue(RECHECK)))
}

fn build_job(
    settings: &Settings,
    r: &Restore,
    src: &Source,
    target: &Target,
    job_name: &str,
    suspend: bool,
) -> Result<Job, Error> {
    let plan = plan_of(r, src);
    let ns = r.namespace().unwrap_or_default();
    let mut input = JobInput::new(settings, job_name.to_owned(), &ns, &plan, &src.storage);
    input.labels.insert(LABEL_RESTORE.into(), r.name_any());
    input
        .labels
        .insert(LABEL_REPOSITORY.into(), src.repo_label.clone());
    job::build(&JobInput {
        owner: r.controller_owner_ref(&()),
        privilege: if r.spec.device_nodes {
            Privilege::RestoreDevices
        } else {
            Privilege::Restore
        },
        key: Some(&src.key),
        target: Some(&target.claim),
        node: target.node.as_deref(),
        claim_tolerations: target.tolerations.clone(),
        template: restore_template(&settings.jobs, src.set_job_template.as_ref(), r),
        mover: target.mover.clone(),
        suspend,
        ..input
    })
}

#[cfg(test)]
mod examples;
