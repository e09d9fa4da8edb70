//! What a BackupSet's status says after this reconcile's starts (pure): its slots, the next
//! run, the queue, the running backup, its phase and its health.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::RepoJobs;
use super::validate::ValidSet;
use crate::api::BackupSet;
use crate::api::backup_set::{
    BackupSetStatus, NextRun, QueuedOperation, RunPhase, RunSummary, SetPhase, SlotState,
};
use crate::job::plan::OperationKind;
use crate::operator::conditions::Health;
use crate::operator::job_view::JobView;
use crate::operator::plan::queue::{JobState, waiting};
use crate::operator::plan::set::SetPlan;

/// Write the plan's bookkeeping and the Jobs' state into `status`.
pub(super) fn summarise(
    set: &BackupSet,
    plan: &SetPlan,
    jobs: &RepoJobs,
    status: &mut BackupSetStatus,
) {
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
    status.queue = waiting(&jobs.queued())
        .into_iter()
        .map(|j| QueuedOperation {
            operation: j.operation.clone(),
            job: Some(j.name.clone()),
            requested: Some(Time(j.created)),
        })
        .collect();
    let running = jobs
        .own_unfinished()
        .find(|j| j.operation == Some(OperationKind::Backup));
    if let Some(running) = running
        && status.last_run.as_ref().and_then(|r| r.job.as_ref()) != Some(&running.name)
    {
        status.last_run = Some(placeholder(running));
    }
    status.phase = Some(if set.spec.suspend {
        SetPhase::Suspended
    } else if jobs.own_unfinished().next().is_some() {
        SetPhase::Running
    } else {
        SetPhase::Idle
    });
}

/// The last run while a backup is queued or running: its Job, level and start.
fn placeholder(running: &JobView) -> RunSummary {
    RunSummary {
        label: running.name.clone(),
        level: running
            .level
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
        mover: running.mover.clone(),
        interruptions: 0,
        message: None,
    }
}

pub(super) fn health_of(status: &BackupSetStatus, valid: &ValidSet) -> Health {
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
