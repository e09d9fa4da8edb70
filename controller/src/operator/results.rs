//! What a finished Job tells a BackupSet's status: the run it recorded (or why it failed),
//! the state of each source, restore points, usage, the last purge and verification. Pure:
//! from the job's report to status fields, table-tested.

use crate::job::plan::OperationKind;
use crate::job::summary::{BackupOutcome, BackupSummary, JobSummary, PurgeSummary, VerifySummary};
use crate::operation::Outcome;
use crate::operator::event_reason::EventReason;
use holdfast_engine::repo::RepositoryTotals;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::backup_set::{
    BackupSetStatus, Level, PurgeApproval, RestorePoints, RetentionResult, RunPhase, RunSummary,
    SourceState, Usage, VerifyResult,
};

use super::job_view::{Ending, JobView, Report};
use super::metrics::ReadMethod;
use super::pod_results::Interruption;

/// Runs kept in `recentRuns`.
pub const RECENT_RUNS: usize = 10;
/// Job names kept in `handledJobs`.
pub const HANDLED_JOBS: usize = 30;

/// A chrono time from the engine as an API time.
pub fn time(t: chrono::DateTime<chrono::Utc>) -> Time {
    Time(Timestamp::from_second(t.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// What absorbing a report amounts to, for events and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Absorbed {
    pub kind: OperationKind,
    pub result: Outcome,
    pub message: String,
    pub seconds: f64,
    pub bytes_read: u64,
    pub bytes_stored: u64,
    /// How a recorded backup read its sources: a count per way.
    pub reads: Vec<(ReadMethod, u64)>,
}

/// How the run `run` of a backup of `total` sources read them.
fn reads(run: &RunSummary, total: usize) -> Vec<(ReadMethod, u64)> {
    let grouped = run
        .snapshots
        .iter()
        .filter(|s| s.volume_group_snapshot.is_some())
        .count();
    let counts = [
        (ReadMethod::Live, run.live_sources.len()),
        (ReadMethod::Snapshot, run.snapshots.len() - grouped),
        (ReadMethod::GroupSnapshot, grouped),
        (ReadMethod::Clone, run.cloned_sources.len()),
    ];
    let claims: usize = counts.iter().map(|(_, n)| n).sum();
    counts
        .into_iter()
        .chain([(ReadMethod::Stream, total.saturating_sub(claims))])
        .filter(|(_, n)| *n > 0)
        .map(|(m, n)| (m, n as u64))
        .collect()
}

impl Absorbed {
    /// Its Event's reason, e.g. `BackupComplete`.
    pub fn reason(&self) -> EventReason {
        EventReason::Ended(self.kind, self.result)
    }

    /// Whether its Event is a Warning.
    pub fn warning(&self) -> bool {
        self.reason().is_warning()
    }
}

fn restore_points(t: &RepositoryTotals) -> RestorePoints {
    RestorePoints {
        count: t.runs,
        oldest: t.oldest_run.map(time),
        newest: t.newest_run.map(time),
    }
}

fn usage(old: Option<&Usage>, t: &RepositoryTotals, logical: Option<u64>) -> Usage {
    Usage {
        stored_bytes: t.bytes,
        volumes: t.volumes,
        live_bytes: t.live_bytes.or(old.and_then(|u| u.live_bytes)),
        reclaimable_bytes: t
            .reclaimable_bytes
            .or(old.and_then(|u| u.reclaimable_bytes)),
        logical_bytes: logical.unwrap_or(old.map_or(0, |u| u.logical_bytes)),
    }
}

fn push_run(status: &mut BackupSetStatus, run: RunSummary) {
    status.recent_runs.insert(0, run.clone());
    status.recent_runs.truncate(RECENT_RUNS);
    status.last_run = Some(run);
}

fn backup_run(ended: &Ended<'_>, b: &BackupSummary) -> (RunSummary, Outcome) {
    let (phase, result) = match b.status {
        BackupOutcome::Complete => (RunPhase::Complete, Outcome::Complete),
        BackupOutcome::Partial => (RunPhase::Partial, Outcome::Partial),
        BackupOutcome::Aborted => (RunPhase::Aborted, Outcome::Aborted),
    };
    let errors = match b.status {
        BackupOutcome::Complete => None,
        _ => Some(
            b.errors
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
        )
        .filter(|m| !m.is_empty()),
    };
    let message = [errors, retried(ended.interrupted), hooks_failed(ended)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ");
    (
        RunSummary {
            label: b.label.clone(),
            level: b.level.into(),
            phase,
            job: Some(ended.job.name.clone()),
            start_time: Some(time(b.started)),
            completion_time: Some(time(b.finished)),
            files: b.files,
            bytes_read: b.bytes_read,
            bytes_stored: b.bytes_stored,
            errors: b.error_count,
            mover: ended.job.mover.clone(),
            interruptions: ended.interrupted.len() as u32,
            hooks: ended.job.hook_results.clone(),
            snapshots: ended.job.snapshots.clone(),
            live_sources: b
                .sources
                .iter()
                .filter(|s| s.live)
                .map(|s| s.name.clone())
                .collect(),
            cloned_sources: ended.job.clones.clone(),
            message: Some(message).filter(|m| !m.is_empty()),
        },
        result,
    )
}

/// The hook commands that failed around a run that recorded its data (a failed `pre` that
/// stops the run is its whole message instead): the data is kept, and the message says the
/// application may not be back to normal.
fn hooks_failed(ended: &Ended<'_>) -> Option<String> {
    let failed = super::hooks::plan::failures(&ended.job.hook_results);
    (!failed.is_empty()).then(|| failed.join("; "))
}

/// Why a run took longer than it should have: the attempts a disruption stopped before the
/// one that recorded it (the repository keeps each stopped attempt as an Aborted run).
fn retried(interrupted: &[Interruption]) -> Option<String> {
    let (first, rest) = interrupted.split_first()?;
    let more = match rest.len() {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    Some(format!("run again after {}{more}", first.describe()))
}

fn sources(status: &mut BackupSetStatus, b: &BackupSummary) {
    for s in &b.sources {
        let state = match s.status {
            holdfast_engine::format::run::SourceStatus::Complete => "Online",
            holdfast_engine::format::run::SourceStatus::Partial => "Partial",
            holdfast_engine::format::run::SourceStatus::Failed => "Offline",
        };
        let entry = match status.sources.iter_mut().find(|x| x.name == s.name) {
            Some(e) => e,
            None => {
                status.sources.push(SourceState {
                    name: s.name.clone(),
                    ..SourceState::default()
                });
                let last = status.sources.len() - 1;
                &mut status.sources[last]
            }
        };
        entry.state = state.into();
        entry.last_level = Some(s.level.into());
        entry.message = s.error.clone();
        if s.status != holdfast_engine::format::run::SourceStatus::Failed {
            entry.size_bytes = s.bytes;
            if s.level == holdfast_engine::format::run::Level::Full {
                entry.last_full = Some(b.label.clone());
                entry.last_full_time = Some(time(b.started));
            }
        }
    }
}

/// Record a finished Job's report in a BackupSet's status. Idempotent: a Job already in
/// `handledJobs` changes nothing and returns `None`.
pub fn absorb(
    status: &mut BackupSetStatus,
    job: &JobView,
    report: &Report,
    interrupted: &[Interruption],
    now: Timestamp,
) -> Option<Absorbed> {
    if status.handled_jobs.contains(&job.name) {
        return None;
    }
    status.handled_jobs.push(job.name.clone());
    let overflow = status.handled_jobs.len().saturating_sub(HANDLED_JOBS);
    status.handled_jobs.drain(..overflow);
    // Every Job the controller makes carries its operation.
    let kind = job.operation?;
    let ended = Ended {
        job,
        interrupted,
        now,
    };
    let summary = match report {
        Report::Summary(s) => Some(s.as_ref()),
        Report::Missing(_) => None,
    };
    if let Some(copy) = job.copy_name.as_deref()
        && kind != OperationKind::Copy
    {
        return Some(copies::maintained(
            status, &ended, copy, kind, summary, report,
        ));
    }
    Some(match (kind, summary) {
        (OperationKind::Backup, Some(JobSummary::Backup(b))) => backed_up(status, &ended, b),
        (OperationKind::Backup, _) => backup_failed(status, &ended, why(report)),
        (OperationKind::Purge, Some(JobSummary::Purge(p))) => purged(status, &ended, p),
        (OperationKind::Verify, Some(JobSummary::Verify(v))) => verified(status, &ended, v),
        (OperationKind::Copy, Some(JobSummary::Copy(c))) => copies::copied(status, &ended, c),
        (OperationKind::Copy, _) => copies::copy_failed(status, &ended, why(report)),
        (_, _) => failed(status, &ended, kind, why(report)),
    })
}

/// A finished Job, its attempts a disruption stopped, and when it is taken in.
struct Ended<'a> {
    job: &'a JobView,
    interrupted: &'a [Interruption],
    now: Timestamp,
}

impl Ended<'_> {
    fn seconds(&self) -> f64 {
        match (self.job.started, self.job.finished) {
            (Some(s), Some(f)) => f.duration_since(s).as_secs_f64().max(0.0),
            _ => 0.0,
        }
    }

    fn finished(&self) -> Time {
        Time(self.job.finished.unwrap_or(self.now))
    }

    fn aborted(&self) -> bool {
        self.job.ending == Some(Ending::Aborted)
    }

    /// What is taken in for the events and metrics, nothing read or stored.
    fn absorbed(&self, kind: OperationKind, result: Outcome, message: String) -> Absorbed {
        Absorbed {
            kind,
            result,
            message,
            seconds: self.seconds(),
            bytes_read: 0,
            bytes_stored: 0,
            reads: Vec::new(),
        }
    }
}

/// Why a Job reported no result of its kind: its failure, or why there is no report.
fn why(report: &Report) -> String {
    match report {
        Report::Summary(s) => match s.as_ref() {
            JobSummary::Failed(f) => format!("{}: {}", f.category, f.message),
            s => format!("unexpected report {s:?}"),
        },
        Report::Missing(m) => m.clone(),
    }
}

fn backed_up(status: &mut BackupSetStatus, ended: &Ended<'_>, b: &BackupSummary) -> Absorbed {
    let (run, result) = backup_run(ended, b);
    sources(status, b);
    if let Some(t) = &b.repository {
        status.restore_points = Some(restore_points(t));
        status.usage = Some(usage(status.usage.as_ref(), t, Some(b.bytes_total)));
    }
    if b.status != BackupOutcome::Aborted {
        status.consecutive_failures = 0;
        status.last_successful_time = Some(time(b.finished));
    }
    let message = format!(
        "run {} ({}): {} files, {} read, {} stored{}",
        b.label,
        result.as_str(),
        b.files,
        crate::human::bytes(b.bytes_read),
        crate::human::bytes(b.bytes_stored),
        run.message
            .as_deref()
            .map(|m| format!("; {m}"))
            .unwrap_or_default()
    );
    let reads = reads(&run, b.sources.len());
    push_run(status, run);
    Absorbed {
        bytes_read: if b.reused { 0 } else { b.bytes_read },
        bytes_stored: if b.reused { 0 } else { b.bytes_stored },
        reads,
        ..ended.absorbed(OperationKind::Backup, result, message)
    }
}

fn backup_failed(status: &mut BackupSetStatus, ended: &Ended<'_>, why: String) -> Absorbed {
    let why = match retried(ended.interrupted) {
        Some(r) => format!("{why}; {r}"),
        None => why,
    };
    let message = if ended.aborted() {
        format!("aborted on request; what was read before is recorded as an Aborted run ({why})")
    } else {
        why
    };
    if !ended.aborted() {
        status.consecutive_failures += 1;
    }
    push_run(status, failed_run(ended, &message));
    ended_badly(ended, OperationKind::Backup, message)
}

/// A run that recorded nothing: Failed, or Aborted when stopped on request.
fn failed_run(ended: &Ended<'_>, message: &str) -> RunSummary {
    let job = ended.job;
    RunSummary {
        label: job.name.clone(),
        level: job.level.map_or(Level::Incr, Into::into),
        phase: if ended.aborted() {
            RunPhase::Aborted
        } else {
            RunPhase::Failed
        },
        job: Some(job.name.clone()),
        start_time: job.started.map(Time),
        completion_time: Some(ended.finished()),
        files: 0,
        bytes_read: 0,
        bytes_stored: 0,
        errors: 0,
        mover: job.mover.clone(),
        interruptions: ended.interrupted.len() as u32,
        hooks: job.hook_results.clone(),
        snapshots: job.snapshots.clone(),
        live_sources: Vec::new(),
        cloned_sources: job.clones.clone(),
        message: Some(message.to_owned()),
    }
}

/// `<Kind>Failed`, or `<Kind>Aborted` when stopped on request.
fn ended_badly(ended: &Ended<'_>, kind: OperationKind, message: String) -> Absorbed {
    let result = if ended.aborted() {
        Outcome::Aborted
    } else {
        Outcome::Failed
    };
    ended.absorbed(kind, result, message)
}

/// A purge's result, how it ended (braked: nothing expired), and what its Event says.
fn retention_result(ended: &Ended<'_>, p: &PurgeSummary) -> (RetentionResult, Outcome, String) {
    let message = format!(
        "{} runs expired, {} kept, {} reclaimed{}",
        p.runs_expired_count,
        p.runs_kept,
        crate::human::bytes(p.bytes_reclaimed),
        p.delete_deferred
            .as_deref()
            .map(|d| format!("; {d}"))
            .unwrap_or_default()
    );
    let mut result = RetentionResult {
        last_purge_time: Some(ended.finished()),
        runs_expired: p.runs_expired_count,
        runs_kept: p.runs_kept,
        bytes_reclaimed: p.bytes_reclaimed,
        message: p.delete_deferred.clone(),
        awaiting_approval: None,
    };
    let Some(b) = &p.braked else {
        return (result, Outcome::Complete, message);
    };
    result.awaiting_approval = Some(PurgeApproval {
        plan: b.plan.clone(),
        reason: b.reason.clone(),
        runs_count: b.runs_count,
        runs: b.runs.clone(),
        since: Some(ended.finished()),
    });
    let message = format!(
        "the purge expired nothing and waits for approval: {}; it would expire {} runs ({}{}); \
         if that is what you want, annotate the set holdfast.io/approve-purge={}",
        b.reason,
        b.runs_count,
        b.runs.join(", "),
        if b.runs_count > b.runs.len() as u64 {
            ", …"
        } else {
            ""
        },
        b.plan
    );
    (result, Outcome::Braked, message)
}

/// A verification's result, how it ended, and what its Event says.
fn verify_result(ended: &Ended<'_>, v: &VerifySummary) -> (VerifyResult, Outcome, String) {
    let problems = (!v.ok).then(|| v.problems.join("; "));
    let result = VerifyResult {
        time: Some(ended.finished()),
        depth: v.depth.clone(),
        ok: v.ok,
        volumes_read: v.volumes_read,
        message: problems.clone(),
    };
    let (outcome, message) = if v.ok {
        (
            Outcome::Complete,
            format!(
                "{} verification: intact ({} volumes read)",
                v.depth, v.volumes_read
            ),
        )
    } else {
        (
            Outcome::Damaged,
            format!(
                "{} verification found damage: {}",
                v.depth,
                problems.unwrap_or_default()
            ),
        )
    };
    (result, outcome, message)
}

fn purged(status: &mut BackupSetStatus, ended: &Ended<'_>, p: &PurgeSummary) -> Absorbed {
    let (result, outcome, message) = retention_result(ended, p);
    status.retention = Some(result);
    if let Some(t) = &p.repository {
        status.restore_points = Some(restore_points(t));
        status.usage = Some(usage(status.usage.as_ref(), t, None));
    }
    ended.absorbed(OperationKind::Purge, outcome, message)
}

fn verified(status: &mut BackupSetStatus, ended: &Ended<'_>, v: &VerifySummary) -> Absorbed {
    let (result, outcome, message) = verify_result(ended, v);
    status.verification = Some(result);
    if let Some(t) = &v.repository {
        status.restore_points = Some(restore_points(t));
        status.usage = Some(usage(status.usage.as_ref(), t, None));
    }
    ended.absorbed(OperationKind::Verify, outcome, message)
}

/// Any other operation that reported no result of its kind.
fn failed(
    status: &mut BackupSetStatus,
    ended: &Ended<'_>,
    kind: OperationKind,
    why: String,
) -> Absorbed {
    note_failure(
        &mut status.retention,
        &mut status.verification,
        ended,
        kind,
        &why,
    );
    ended_badly(ended, kind, why)
}

/// What a purge or verification that reported no result of its kind leaves in its
/// repository's `retention` or `verification`.
fn note_failure(
    retention: &mut Option<RetentionResult>,
    verification: &mut Option<VerifyResult>,
    ended: &Ended<'_>,
    kind: OperationKind,
    why: &str,
) {
    match kind {
        OperationKind::Purge => {
            let mut r = retention.clone().unwrap_or_default();
            r.message = Some(format!("the last purge failed: {why}"));
            *retention = Some(r);
        }
        OperationKind::Verify => {
            *verification = Some(VerifyResult {
                time: Some(ended.finished()),
                depth: "unknown".into(),
                ok: false,
                volumes_read: 0,
                message: Some(format!("the verification could not run: {why}")),
            });
        }
        _ => {}
    }
}

mod copies;
pub(crate) use copies::entry as copy_entry;

#[cfg(test)]
mod tests;
