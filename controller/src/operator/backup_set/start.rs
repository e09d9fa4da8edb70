//! Starting what the plan says is due, queued behind whatever else of the repository runs,
//! and releasing the repository's queue: the BackupSet stages that create and resume Jobs.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use kube::{Api, Resource, ResourceExt};

use super::RepoJobs;
use super::validate::ValidSet;
use crate::api::BackupSet;
use crate::api::backup_set::Retention;
use crate::job::plan::{
    self as job_plan, BackupPlan, JobPlan, Operation, PurgePlan, RepositoryRef, VerifyPlan,
};
use crate::operator::context::Context;
use crate::operator::error::Error;
use crate::operator::event_reason::EventReason;
use crate::operator::hooks::state::{ANNOTATION_HOOKS, HookState};
use crate::operator::job::{self, JobInput, Privilege};
use crate::operator::job_control;
use crate::operator::job_template;
use crate::operator::job_view::JobView;
use crate::operator::names::{self, *};
use crate::operator::plan::queue::{JobState, must_wait, next_to_release};
use crate::operator::plan::set::{OpKind, Reason, SetPlan, Start};
use crate::operator::settings::Settings;
use crate::operator::snapshots::state::{ANNOTATION_COPY, CopyState, object_name};
use crate::operator::write;

/// Create a Job for each start of the plan (suspended while the repository is busy).
/// Returns how many scheduled starts were skipped because the previous one of the same
/// operation still waits.
pub(super) async fn start_due(
    ctx: &Context,
    set: &BackupSet,
    valid: &ValidSet,
    plan: &SetPlan,
    jobs: &mut RepoJobs,
) -> Result<u64, Error> {
    let ns = set.namespace().unwrap_or_default();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let object = set.object_ref(&());
    let mut missed = plan.missed;
    for start in &plan.start {
        let already_waiting = jobs.all.iter().any(|j| {
            j.state == JobState::Waiting
                && j.operation == Some(start.kind.kind())
                && jobs.own.contains(&j.name)
        });
        if already_waiting && start.reason == Reason::Scheduled {
            // One queued run per operation: the previous one has not started yet.
            missed += 1;
            continue;
        }
        let suspend = must_wait(&jobs.queued());
        let job = build_job(&ctx.settings, set, valid, start, suspend)?;
        let job_name = job.name_any();
        let Some(created) = write::create_once(&jobs_api, &job)
            .await
            .map_err(Error::api(format!("creating job {job_name}")))?
        else {
            // Made by an earlier reconcile of the same slot.
            continue;
        };
        let (verb, reason) = if suspend {
            ("queued", EventReason::Queued(start.kind.kind()))
        } else {
            ("started", EventReason::Started(start.kind.kind()))
        };
        ctx.event(
            &object,
            reason,
            "Start",
            format!(
                "{} {verb} as job {job_name} ({:?}), mover {}",
                start.kind.name(),
                start.reason,
                valid.mover
            ),
        )
        .await;
        jobs.own.push(job_name);
        jobs.all.push(JobView::of(&created));
    }
    Ok(missed)
}

/// Resume the repository's next waiting Job once nothing of it runs: the set's own held
/// backup after its `pre` hooks (or, when they fail, not at all).
pub(super) async fn release_queue(
    ctx: &Context,
    set: &BackupSet,
    valid: &ValidSet,
    jobs: &mut RepoJobs,
) -> Result<(), Error> {
    let ns = set.namespace().unwrap_or_default();
    let queued = jobs.queued();
    let held = next_to_release(&queued)
        .filter(|q| q.held && jobs.own.contains(&q.name))
        .and_then(|q| jobs.all.iter().find(|v| v.name == q.name).cloned());
    if let Some(view) = held {
        // A Job failed here is absorbed as a failed run by the next reconcile (the Job's
        // patch wakes it).
        let state = super::release::release(ctx, set, valid, &view).await?;
        if let Some(v) = jobs.all.iter_mut().find(|v| v.name == view.name) {
            v.state = state;
        }
        return Ok(());
    }
    if let Some(released) = job_control::release_next(&ctx.client, &ns, &queued).await?
        && let Some(v) = jobs.all.iter_mut().find(|v| v.name == released)
    {
        v.state = JobState::Active;
    }
    Ok(())
}

/// A `Snapshot` source's claim is the temporary one made from its snapshot for this Job.
fn through_snapshot(source: &job::PodSource, valid: &ValidSet, job_name: &str) -> job::PodSource {
    match source {
        job::PodSource::Claim {
            name,
            claim: _,
            sub_path,
        } if valid.snapshots.iter().any(|s| &s.source == name) => job::PodSource::Claim {
            name: name.clone(),
            claim: object_name(job_name, name),
            sub_path: sub_path.clone(),
        },
        other => other.clone(),
    }
}

/// What tells a start's Job apart from the set's others: its slot, or for a manual run its
/// token and the set's generation. The generation too, because a token reverted to an
/// earlier value (A → B → A) is a new request that runs once whether or not the first A's
/// Job still exists; the same generation always names the same Job, so a retried reconcile
/// never runs it twice.
pub(super) fn job_tail(start: &Start, generation: i64) -> String {
    match &start.reason {
        Reason::Scheduled => slot_tail(start.slot),
        Reason::Manual(token) => {
            format!("m{}", &short_hash(&format!("{token}\0{generation}"))[..8])
        }
        Reason::OnCreate => format!("c{}", slot_tail(start.slot)),
    }
}

/// What a started operation does, with the capabilities a root mover gets for it and its
/// timeout in seconds (the set's, else the controller's default) (pure).
fn operation(
    settings: &Settings,
    valid: &ValidSet,
    start: &Start,
    job_name: &str,
    approved: Vec<String>,
) -> (Operation, Privilege, i64) {
    let maintenance = valid
        .maintenance_timeout
        .unwrap_or(settings.default_maintenance_timeout.as_secs() as i64);
    match start.kind {
        OpKind::Backup => (
            Operation::Backup(BackupPlan {
                slot_time: chrono::DateTime::from_timestamp(start.slot.as_second(), 0)
                    .unwrap_or_default(),
                slot_id: job_name.to_owned(),
                level: start.level,
                source_levels: start.source_levels.clone(),
                sources: valid.sources.iter().map(|(_, p)| p.clone()).collect(),
                compression: valid.compression,
                uploads: None,
            }),
            Privilege::Backup,
            valid
                .backup_timeout
                .unwrap_or(settings.default_backup_timeout.as_secs() as i64),
        ),
        OpKind::Purge => (
            purge(settings, valid.retention.as_ref(), approved),
            Privilege::Maintenance,
            maintenance,
        ),
        OpKind::Verify => (verify(valid), Privilege::Maintenance, maintenance),
    }
}

/// A purge by `retention` (the engine's default policy without one), under the brake on
/// mass deletion, with the plans someone approved.
pub(super) fn purge(
    settings: &Settings,
    retention: Option<&Retention>,
    approved: Vec<String>,
) -> Operation {
    let retention = retention.cloned().unwrap_or_default();
    Operation::Purge(PurgePlan {
        brake_percent: Some(
            retention
                .max_expire_percent
                .unwrap_or(DEFAULT_BRAKE_PERCENT),
        ),
        retention,
        grace_seconds: settings.purge_grace.as_secs(),
        approved,
    })
}

/// The share of its restore points a purge may expire unless approved.
const DEFAULT_BRAKE_PERCENT: u8 = 50;

/// The braked purge plans the set's annotation approves.
pub(super) fn approvals(set: &BackupSet) -> Vec<String> {
    set.annotations()
        .get(ANNOTATION_APPROVE_PURGE)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A verification as deep as the set's Schedule asks.
pub(super) fn verify(valid: &ValidSet) -> Operation {
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
    Operation::Verify(VerifyPlan {
        deep,
        sample_percent: sample,
    })
}

/// The Job for a start.
fn build_job(
    settings: &Settings,
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
    let (operation, privilege, timeout) =
        operation(settings, valid, start, &job_name, approvals(set));
    let plan = JobPlan {
        version: job_plan::PLAN_VERSION,
        repository,
        operation,
    };
    let mut annotations = BTreeMap::from([
        (ANNOTATION_SLOT.to_owned(), start.slot.to_string()),
        (ANNOTATION_LEVEL.to_owned(), start.level.to_string()),
        (ANNOTATION_REASON.to_owned(), format!("{:?}", start.reason)),
    ]);
    // A backup with hooks or snapshots is held: only its set releases it, after running
    // `pre` and taking the snapshots.
    let backup = start.kind == OpKind::Backup;
    let hooked = backup && !set.spec.hooks.is_empty();
    let snapshotted = backup && !valid.snapshots.is_empty();
    if hooked {
        annotations.insert(
            ANNOTATION_HOOKS.to_owned(),
            HookState::Pending.as_str().to_owned(),
        );
    }
    if snapshotted {
        annotations.insert(
            ANNOTATION_COPY.to_owned(),
            CopyState::Pending.as_str().to_owned(),
        );
    }
    let held = hooked || snapshotted;
    let pod_sources: Vec<job::PodSource> = match start.kind {
        OpKind::Backup => valid
            .sources
            .iter()
            .map(|(s, _)| through_snapshot(s, valid, &job_name))
            .collect(),
        _ => Vec::new(),
    };
    let mut input = JobInput::new(settings, job_name, &ns, &plan, &valid.storage);
    input.labels.insert(LABEL_BACKUP_SET.into(), name.clone());
    input
        .labels
        .insert(LABEL_REPOSITORY.into(), valid.repo_label.clone());
    job::build(&JobInput {
        owner: set.controller_owner_ref(&()),
        annotations,
        privilege,
        key: Some(&valid.key),
        sources: &pod_sources,
        node: if start.kind == OpKind::Backup {
            valid.node.as_deref()
        } else {
            None
        },
        claim_tolerations: valid.node_tolerations.clone(),
        template: job_template::merge(&settings.jobs, set.job_template().as_ref()),
        mover: valid.mover.clone(),
        active_deadline_seconds: Some(timeout),
        backoff_limit: 2,
        suspend: suspend || held,
        ..input
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::plan::set::{OpKind, Reason, Start};

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

    /// Every document of every file of `examples/`.
    fn examples() -> Vec<serde_json::Value> {
        crate::operator::test_support::example_documents()
            .into_iter()
            .map(|(_, d)| d)
            .collect()
    }

    #[test]
    fn the_backup_pods_of_every_example_pass_the_restricted_level_unless_it_keeps_a_root_mover() {
        use crate::api::{Schedule, StorageSet};
        use crate::operator::backup_set::fetch::Refs;
        use crate::operator::job::tests::restricted_violations;
        let docs = examples();
        let named = |kind: &str, name: &str| {
            docs.iter()
                .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("no {kind} {name} among the examples"))
        };
        let (mut checked, mut copies) = (0, 0);
        for doc in docs.iter().filter(|d| d["kind"] == "BackupSet") {
            let set: BackupSet = serde_json::from_value(doc.clone()).unwrap();
            let mut storage = named("StorageSet", &set.spec.storage_set_ref.name);
            storage["metadata"]["generation"] = 1.into();
            storage["status"] = serde_json::json!({"checkedGeneration": 1});
            let storage: StorageSet = serde_json::from_value(storage).unwrap();
            let schedule =
                set.spec.schedule_ref.as_ref().map(|r| {
                    serde_json::from_value::<Schedule>(named("Schedule", &r.name)).unwrap()
                });
            // Every Secret and claim the example names exists; the claims are
            // ReadWriteOnce and no pod mounts them (so no pod names the mover's user).
            let copy_storages: std::collections::BTreeMap<String, StorageSet> = set
                .spec
                .copies
                .iter()
                .map(|c| {
                    let name = c.storage_set_ref.name.clone();
                    (
                        name.clone(),
                        serde_json::from_value(named("StorageSet", &name)).unwrap(),
                    )
                })
                .collect();
            let mut claims: Vec<String> = set.source_claims().map(str::to_owned).collect();
            for s in std::iter::once(&storage).chain(copy_storages.values()) {
                if let Some(fs) = &s.spec.filesystem {
                    claims.push(fs.persistent_volume_claim.claim_name.clone());
                }
            }
            let claim = |name: &str| {
                serde_json::from_value(serde_json::json!({
                    "metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"]}}))
                .unwrap()
            };
            let mut secrets = vec![set.spec.encryption.key_secret_ref.name.clone()];
            for s in std::iter::once(&storage).chain(copy_storages.values()) {
                if let Some(s3) = &s.spec.s3 {
                    secrets.extend(s3.credentials_secret_ref.as_ref().map(|r| r.name.clone()));
                }
            }
            let refs = Refs {
                storage: Some(storage.clone()),
                copy_storages,
                schedule,
                secrets: secrets.into_iter().collect(),
                claims: claims.iter().map(|c| (c.clone(), claim(c))).collect(),
                // Every VolumeSnapshotClass it names exists.
                snapshot_classes: set
                    .spec
                    .sources
                    .iter()
                    .filter_map(|s| {
                        s.persistent_volume_claim
                            .as_ref()?
                            .volume_snapshot_class_name
                            .clone()
                    })
                    .map(|c| (c, true))
                    .collect(),
                ..Refs::default()
            };
            let name = set.metadata.name.clone().unwrap_or_default();
            let valid = crate::operator::backup_set::validate::validate(&set, &refs)
                .unwrap_or_else(|p| panic!("example {name}: {}", p.message));
            let start = Start {
                kind: OpKind::Backup,
                reason: Reason::Manual("t".into()),
                slot: "2026-12-01T00:00:00Z".parse().unwrap(),
                level: holdfast_engine::format::run::Level::Full,
                source_levels: Default::default(),
            };
            let job = build_job(&Settings::default(), &set, &valid, &start, false).unwrap();
            let job = serde_json::to_value(job).unwrap();
            // A Snapshot source is read through the temporary claim of this Job, which is
            // held until its snapshots are ready.
            let job_name = job["metadata"]["name"].as_str().unwrap().to_owned();
            let mounted: Vec<String> = job["spec"]["template"]["spec"]["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|v| {
                    v["persistentVolumeClaim"]["claimName"]
                        .as_str()
                        .map(str::to_owned)
                })
                .collect();
            for s in &set.spec.sources {
                let Some(p) = &s.persistent_volume_claim else {
                    continue;
                };
                let temporary = format!("{job_name}-{}", s.name);
                assert_eq!(
                    mounted.contains(&temporary),
                    p.snapshot(),
                    "{name}: {mounted:?}"
                );
                assert_eq!(
                    mounted.contains(&p.claim_name),
                    !p.snapshot(),
                    "{name}: {mounted:?}"
                );
                if p.snapshot() {
                    assert_eq!(job["spec"]["suspend"], true, "{name}: held");
                    assert_eq!(
                        job["metadata"]["annotations"]["holdfast.io/copy"],
                        "pending"
                    );
                }
            }
            let violations = restricted_violations(&job["spec"]["template"]["spec"]);
            // What keeps root: a privileged mover asked for, or a repository on a claim
            // (its files belong to root) without a mover identity, as documented.
            let mover = set.spec.mover.as_ref();
            let root = mover.is_some_and(|m| m.privileged)
                || (storage.spec.filesystem.is_some()
                    && mover.and_then(|m| m.security_context.as_ref()).is_none());
            assert_eq!(
                violations.is_empty(),
                !root,
                "example {name} (root mover: {root}): {violations:?}"
            );
            // Its copies' pods too.
            for copy in &valid.copies {
                let now = "2026-12-01T00:00:00Z".parse().unwrap();
                let job = super::super::copies::build_job(
                    &Settings::default(),
                    &set,
                    &valid,
                    copy,
                    now,
                    false,
                )
                .unwrap();
                let job = serde_json::to_value(job).unwrap();
                let violations = restricted_violations(&job["spec"]["template"]["spec"]);
                assert_eq!(
                    violations.is_empty(),
                    !root,
                    "example {name}, copy {} (root mover: {root}): {violations:?}",
                    copy.name
                );
                copies += 1;
            }
            checked += 1;
        }
        assert!(checked >= 4, "the examples' BackupSets: {checked}");
        assert!(copies >= 1, "the examples' copies: {copies}");
    }
}
