//! `job run`: executes a [`JobPlan`] with the engine and returns the result as the
//! [`JobSummary`] the controller reads, with the engine's full report for the pod's log.
//! Knows nothing of the command line: the runner gives it the passphrase and the stop flag.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chrono::{DateTime, Utc};
use holdfast_engine::Error;
use holdfast_engine::backup::{BackupOptions, BackupReport, PipeSpec, Slot, SourceSpec, backup};
use holdfast_engine::copy::{CopyOptions, CopyReport, copy};
use holdfast_engine::format::run::RunStatus;
use holdfast_engine::progress::Progress;
use holdfast_engine::purge::{PurgeOptions, PurgeReport, purge};
use holdfast_engine::repo::{
    CheckReport, InitOptions, Repository, RepositoryTotals, RunSelector, check_location,
};
use holdfast_engine::restore::{RestoreOptions, RestoreReport, RestoreTarget, restore};
use holdfast_engine::storage::{RepoUrl, StaticCredentials, Store};
use holdfast_engine::verify::{VerifyDepth, VerifyReport, verify_with};

use super::error::JobError;
use super::pipe::{DONE_MARKER, PIPE_START_TIMEOUT};
use super::plan::{
    self, BackupPlan, CopyPlan, JobPlan, Operation, PurgePlan, RestorePlan, StorageCheckPlan,
    VerifyPlan,
};
use super::summary::{DeleteSummary, JobSummary};

/// How long a job waits for another operation's lock on the repository.
const LOCK_WAIT: Duration = Duration::from_secs(600);

/// Reads the repository's passphrase when the job needs it (a storage check does not).
pub type Key<'a> = dyn Fn() -> Result<Vec<u8>, String> + 'a;

/// One job to run: the plan, and what the runner provides.
pub struct Job<'a> {
    pub plan: &'a JobPlan,
    pub key: &'a Key<'a>,
    /// Installs the stop-on-SIGTERM handler and gives its flag: the operations that can stop
    /// cleanly (a backup records an Aborted run, a restore stops) ask for it; the others
    /// keep the signal's default action.
    pub stop: &'a dyn Fn() -> Arc<AtomicBool>,
    pub progress: &'a Arc<Progress>,
}

impl std::fmt::Debug for Job<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("plan", self.plan)
            .finish_non_exhaustive()
    }
}

/// A job's result.
#[derive(Debug)]
pub struct Outcome {
    /// What the controller reads (the termination message).
    pub summary: JobSummary,
    /// The engine's report, for the pod's log.
    pub report: Report,
    /// It was stopped by a signal before it finished (its summary says what it did).
    pub stopped: bool,
}

/// The engine's report of each kind of job.
#[derive(Debug)]
pub enum Report {
    // Boxed: a backup's report is several times the others' size.
    Backup(Box<BackupReport>),
    Purge(PurgeReport),
    Verify(VerifyReport),
    Restore(RestoreReport),
    StorageCheck(CheckReport),
    Copy {
        report: CopyReport,
        /// The copy's repository was created by this job.
        created: bool,
    },
    DeleteRepository {
        summary: DeleteSummary,
        /// Objects at the location that were not the repository's, left in place.
        kept: Vec<String>,
    },
}

/// Read the plan from `file`, or from the variable the controller sets; refuse another
/// version's.
pub fn read_plan(file: Option<&Path>) -> Result<JobPlan, JobError> {
    let text = match file {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| JobError::Plan(format!("cannot read the plan {}: {e}", f.display())))?,
        None => std::env::var(plan::PLAN_ENV).map_err(|_| {
            JobError::Plan(format!("no plan: set {} or pass --plan", plan::PLAN_ENV))
        })?,
    };
    let parsed: JobPlan = serde_json::from_str(&text)
        .map_err(|e| JobError::Plan(format!("the job plan does not parse: {e}")))?;
    if parsed.version != plan::PLAN_VERSION {
        return Err(JobError::Plan(format!(
            "the job plan has version {}, this holdfast runs version {}: the controller and \
             the job image differ",
            parsed.version,
            plan::PLAN_VERSION
        )));
    }
    Ok(parsed)
}

/// Run the job. An error means there is no result to report (the runner reports the
/// failure); a Partial backup, a damaged verify or a failed check are results.
pub fn execute(job: &Job<'_>) -> Result<Outcome, JobError> {
    let store = store_of(job.plan)?;
    match &job.plan.operation {
        Operation::Backup(b) => backup_job(job, b, store),
        Operation::Purge(p) => purge_job(job, p, store),
        Operation::Verify(v) => verify_job(job, v, store),
        Operation::Restore(r) => restore_job(job, r, store),
        Operation::StorageCheck(c) => Ok(storage_check_job(c, &store)),
        Operation::DeleteRepository => delete_repository_job(job, store),
        Operation::Copy(c) => copy_job(job, c, store),
    }
}

/// An operation that ran to its end (not stopped by a signal).
fn done(summary: JobSummary, report: Report) -> Outcome {
    Outcome {
        summary,
        report,
        stopped: false,
    }
}

fn purge_job(job: &Job<'_>, p: &PurgePlan, store: Store) -> Result<Outcome, JobError> {
    let mut repo = open(job, store)?.load_index()?;
    let opts = PurgeOptions {
        policy: plan::retention_policy(&p.retention).map_err(JobError::Plan)?,
        grace: Duration::from_secs(p.grace_seconds),
        lock_wait: LOCK_WAIT,
        brake: p
            .brake_percent
            .map(|max_expire_percent| holdfast_engine::purge::Brake {
                max_expire_percent,
                approved: p.approved.clone(),
            }),
        ..PurgeOptions::default()
    };
    let report = purge(&mut repo, &opts, job.progress)?;
    let totals = inventory_totals(&repo)?;
    // A deferred deletion is a result (phase one stands; the summary says what is left), not
    // a failure to retry.
    Ok(done(
        JobSummary::purge(&report, Some(totals)),
        Report::Purge(report),
    ))
}

fn verify_job(job: &Job<'_>, v: &VerifyPlan, store: Store) -> Result<Outcome, JobError> {
    let repo = open(job, store)?.load_index()?;
    let depth = if v.deep {
        VerifyDepth::Deep {
            sample_percent: v.sample_percent,
        }
    } else {
        VerifyDepth::Quick
    };
    let report = verify_with(&repo, depth, LOCK_WAIT, job.progress)?;
    let totals = repo.totals()?;
    // Damage is the result, carried by the summary; the job did its work.
    Ok(done(
        JobSummary::verify(&report, Some(totals)),
        Report::Verify(report),
    ))
}

fn restore_job(job: &Job<'_>, r: &RestorePlan, store: Store) -> Result<Outcome, JobError> {
    let repo = open(job, store)?.load_index()?;
    let selector = match (&r.label, r.point_in_time) {
        (Some(l), _) => RunSelector::Label(l.clone()),
        (None, Some(t)) => RunSelector::At(t),
        (None, None) => RunSelector::Newest,
    };
    let opts = RestoreOptions {
        selector,
        allow_partial: r.allow_partial,
        sources: r.sources.clone(),
        include: r.include.clone(),
        exclude: r.exclude.clone(),
        target: RestoreTarget::Directory(PathBuf::from(&r.target)),
        overwrite: r.overwrite,
        continue_on_error: r.continue_on_error,
        owner: true,
        lock_wait: LOCK_WAIT,
        threads: None,
        stop: Some((job.stop)()),
    };
    let report = restore(&repo, &opts, job.progress)?;
    // Partial and failed restores are results the summary carries; only a stop on request is
    // an ending of its own.
    Ok(Outcome {
        summary: JobSummary::from(&report),
        stopped: report.aborted,
        report: Report::Restore(report),
    })
}

fn storage_check_job(c: &StorageCheckPlan, store: &Store) -> Outcome {
    let report = check_location(store);
    let (total, available) = match c.capacity_path.as_deref() {
        Some(p) => capacity(Path::new(p)),
        None => (None, None),
    };
    // The checks that failed are the result the summary carries.
    done(
        JobSummary::storage_check(&report, total, available),
        Report::StorageCheck(report),
    )
}

/// Delete the repository; a location that holds none is already what was asked for.
fn delete_repository_job(job: &Job<'_>, store: Store) -> Result<Outcome, JobError> {
    let (summary, kept) = match holdfast_engine::repo::read_config(&store) {
        Err(Error::NotARepository { .. }) => (
            DeleteSummary {
                objects_deleted: 0,
                bytes_deleted: 0,
                objects_kept: 0,
                absent: true,
            },
            Vec::new(),
        ),
        Err(e) => return Err(e.into()),
        Ok(_) => {
            let pass = (job.key)().map_err(JobError::Plan)?;
            let repo = Repository::open(store, &pass)?;
            let r = repo.destroy(job.plan.repository.owner.as_deref(), LOCK_WAIT, false)?;
            (
                DeleteSummary {
                    objects_deleted: r.objects_deleted,
                    bytes_deleted: r.bytes_deleted,
                    objects_kept: r.objects_kept,
                    absent: false,
                },
                r.kept,
            )
        }
    };
    Ok(done(
        JobSummary::DeleteRepository(summary.clone()),
        Report::DeleteRepository { summary, kept },
    ))
}

/// Move the runs the copy lacks into it, creating it (sharing the set's key) the first
/// time. A stop on request ends after the run being copied; the rest stays pending.
fn copy_job(job: &Job<'_>, c: &CopyPlan, store: Store) -> Result<Outcome, JobError> {
    let from = open(job, store)?.load_index()?;
    let mut url = RepoUrl::parse(&c.to.url).map_err(Error::from)?;
    if let RepoUrl::S3(o) = &mut url {
        o.credentials = copy_credentials(|name| std::env::var(name).ok());
    }
    let to_store = Store::open(&url).map_err(Error::from)?;
    let pass = (job.key)().map_err(JobError::Plan)?;
    let (to, created) = match holdfast_engine::repo::read_config(&to_store) {
        Err(Error::NotARepository { .. }) if c.to.create => (
            Repository::init_copy_of(
                to_store,
                &from,
                &pass,
                holdfast_engine::crypto::DEFAULT_KDF_ITERATIONS,
            )?,
            true,
        ),
        Err(e) => return Err(e.into()),
        Ok(_) => (Repository::open(to_store, &pass)?, false),
    };
    let mut to = to.load_index()?;
    let opts = CopyOptions {
        lock_wait: LOCK_WAIT,
        stop: Some((job.stop)()),
        ..CopyOptions::default()
    };
    let report = copy(&from, &mut to, &opts, job.progress)?;
    let totals = to.totals()?;
    Ok(Outcome {
        summary: JobSummary::copy(&c.name, created, &report, Some(totals)),
        stopped: report.stopped,
        report: Report::Copy { report, created },
    })
}

/// A copy's S3 keys, from the variables its StorageSet's Secret fills; `None` (the
/// standard chain) when they are not set.
fn copy_credentials(var: impl Fn(&str) -> Option<String>) -> Option<StaticCredentials> {
    let prefixed = |name: &str| var(&format!("{}{name}", plan::COPY_CREDENTIALS_PREFIX));
    Some(StaticCredentials {
        access_key_id: prefixed("AWS_ACCESS_KEY_ID")?,
        secret_access_key: prefixed("AWS_SECRET_ACCESS_KEY")?,
    })
}

fn store_of(plan: &JobPlan) -> Result<Store, JobError> {
    let url = RepoUrl::parse(&plan.repository.url).map_err(Error::from)?;
    Ok(Store::open(&url).map_err(Error::from)?)
}

/// Open the repository, creating it first if the plan says so and there is none.
fn open(job: &Job<'_>, store: Store) -> Result<Repository, JobError> {
    let plan = job.plan;
    let pass = (job.key)().map_err(JobError::Plan)?;
    match holdfast_engine::repo::read_config(&store) {
        Err(Error::NotARepository { .. }) if plan.repository.create => {
            let opts = InitOptions {
                owner: plan.repository.owner.clone(),
                ..InitOptions::default()
            };
            Ok(Repository::init(store, &pass, &opts)?)
        }
        Err(e) => Err(e.into()),
        Ok(_) => Ok(Repository::open(store, &pass)?),
    }
}

fn backup_job(job: &Job<'_>, b: &BackupPlan, store: Store) -> Result<Outcome, JobError> {
    let stop = (job.stop)();
    let started = Utc::now();
    let times = if b.sources.iter().any(|s| s.copied) {
        snapshot_times(std::env::var(plan::SNAPSHOT_TIMES_ENV).ok().as_deref())
    } else {
        BTreeMap::new()
    };
    let sources: Vec<SourceSpec> = b
        .sources
        .iter()
        .map(|s| {
            let mut spec = match (&s.path, &s.fifo) {
                (Some(p), _) => SourceSpec::path(&s.name, p),
                (None, Some(f)) => SourceSpec::pipe(
                    &s.name,
                    PipeSpec {
                        fifo: PathBuf::from(f),
                        start_timeout: PIPE_START_TIMEOUT,
                    },
                ),
                (None, None) => SourceSpec::path(&s.name, "/nonexistent"),
            };
            spec.exclude = s.exclude.clone();
            spec.file_name = s.file_name.clone();
            // A clone (or a snapshot whose instant did not reach the pod) was cut before
            // this pod started: dated by now, later than its data, so a point-in-time
            // restore never takes it for a time before it was cut.
            spec.captured = s
                .copied
                .then(|| times.get(&s.name).copied().unwrap_or(started));
            spec
        })
        .collect();
    let fifo_dirs: Vec<PathBuf> = b
        .sources
        .iter()
        .filter_map(|s| s.fifo.as_ref())
        .filter_map(|f| Path::new(f).parent().map(Path::to_path_buf))
        .collect();
    let compression = b.compression.unwrap_or_default();
    let result = (|| -> Result<holdfast_engine::backup::BackupReport, JobError> {
        let mut repo = open(job, store)?.load_index()?;
        let opts = BackupOptions {
            level: b.level,
            source_levels: b.source_levels.clone(),
            owner: job.plan.repository.owner.clone(),
            compression,
            uploads: b.uploads.map_or(4, |u| u as usize).max(1),
            lock_wait: LOCK_WAIT,
            stop: Some(stop.clone()),
            slot: Some(Slot {
                time: b.slot_time,
                id: b.slot_id.clone(),
            }),
            totals: true,
            ..BackupOptions::default()
        };
        Ok(backup(&mut repo, &sources, &opts, job.progress)?)
    })();
    // Whatever happened, command containers must not wait for a reader that is gone.
    for dir in &fifo_dirs {
        let _ = std::fs::write(dir.join(DONE_MARKER), b"");
    }
    let report = result?;
    // A Partial run is a recorded run: the job succeeded (a retry would only find it again).
    Ok(Outcome {
        summary: JobSummary::from(&report),
        stopped: report.run.status == RunStatus::Aborted,
        report: Report::Backup(Box::new(report)),
    })
}

/// Totals including live and reclaimable bytes (walks every run).
/// The snapshots' instants the controller put on the pod, by source (none for a clone).
/// Missing or unreadable, a source is dated by the pod's start (see `backup_job`).
fn snapshot_times(raw: Option<&str>) -> BTreeMap<String, DateTime<Utc>> {
    let raw = raw.unwrap_or_default();
    match serde_json::from_str::<BTreeMap<String, DateTime<Utc>>>(raw) {
        Ok(times) => times,
        Err(e) => {
            eprintln!(
                "warning: the snapshots' instants ({}) do not parse ({e}); their sources are \
                 dated by this pod's start",
                plan::SNAPSHOT_TIMES_ENV
            );
            BTreeMap::new()
        }
    }
}

fn inventory_totals(
    repo: &Repository<holdfast_engine::repo::Indexed>,
) -> Result<RepositoryTotals, JobError> {
    let inv = holdfast_engine::inventory::inventory(repo)?;
    let mut t = repo.totals()?;
    t.live_bytes = Some(inv.live_bytes);
    t.reclaimable_bytes = Some(inv.reclaimable_bytes);
    Ok(t)
}

/// Size and free space of the filesystem holding `path`.
fn capacity(path: &Path) -> (Option<u64>, Option<u64>) {
    match rustix::fs::statvfs(path) {
        Ok(s) => (
            Some(s.f_blocks.saturating_mul(s.f_frsize)),
            Some(s.f_bavail.saturating_mul(s.f_frsize)),
        ),
        Err(_) => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copys_keys_come_from_its_own_prefixed_variables_and_only_as_a_pair() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let both = copy_credentials(env(&[
            ("AWS_ACCESS_KEY_ID", "set-key"),
            ("HOLDFAST_COPY_AWS_ACCESS_KEY_ID", "copy-key"),
            ("HOLDFAST_COPY_AWS_SECRET_ACCESS_KEY", "copy-secret"),
        ]))
        .unwrap();
        assert_eq!(
            (both.access_key_id.as_str(), both.secret_access_key.as_str()),
            ("copy-key", "copy-secret")
        );
        // Half a pair is no pair: the standard chain (ambient credentials) then.
        assert!(copy_credentials(env(&[("HOLDFAST_COPY_AWS_ACCESS_KEY_ID", "k")])).is_none());
        assert!(copy_credentials(env(&[])).is_none());
    }

    #[test]
    fn snapshot_times_are_read_by_source() {
        let times = snapshot_times(Some(r#"{"db":"2026-12-07T02:00:00Z"}"#));
        assert_eq!(times["db"].to_rfc3339(), "2026-12-07T02:00:00+00:00");
    }

    #[test]
    fn missing_or_broken_snapshot_times_are_none() {
        assert!(snapshot_times(None).is_empty());
        assert!(snapshot_times(Some("{not json")).is_empty());
    }
}
