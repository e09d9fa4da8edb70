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
use crate::operator::job_view::{JobView, POD_REFUSED};
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
        hooks: running.hook_results.clone(),
        snapshots: running.snapshots.clone(),
        live_sources: Vec::new(),
        cloned_sources: running.clones.clone(),
        message: None,
    }
}

/// Stalled while backups fail in a row: `PodRefused` when the API server refused the last
/// one's pod (it will be refused again until the namespace, a policy or the spec changes),
/// else `BackupFailed`; the message ends with the last run's, which says what to change.
fn failing(status: &BackupSetStatus) -> Option<Health> {
    if status.consecutive_failures == 0 {
        return None;
    }
    let why = status
        .last_run
        .as_ref()
        .and_then(|r| r.message.clone())
        .unwrap_or_default();
    let reason = if why.contains(POD_REFUSED) {
        POD_REFUSED
    } else {
        "BackupFailed"
    };
    Some(Health::stalled(
        reason,
        format!(
            "{} backup(s) failed in a row; the last: {why}",
            status.consecutive_failures
        ),
    ))
}

pub(super) fn health_of(status: &BackupSetStatus, valid: &ValidSet) -> Health {
    if let Some(failing) = failing(status) {
        return failing;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::backup_set::RunSummary;

    fn after(failures: u32, message: &str) -> BackupSetStatus {
        BackupSetStatus {
            consecutive_failures: failures,
            last_run: Some(
                serde_json::from_value::<RunSummary>(serde_json::json!({
                    "job": "shop-backup-1", "label": "full-20261207.010000", "level": "full",
                    "phase": "Failed", "message": message,
                }))
                .unwrap(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn a_set_whose_last_pod_was_refused_stays_stalled_with_that_reason_until_a_run_succeeds() {
        let refused = after(
            2,
            "the job's pod never started: PodRefused: … failed quota: compute: must specify limits.memory",
        );
        let Some(Health::Stalled { reason, message }) = failing(&refused) else {
            panic!("not stalled");
        };
        assert_eq!(reason, POD_REFUSED);
        assert!(
            message.starts_with("2 backup(s) failed in a row"),
            "{message}"
        );
        assert!(message.contains("limits.memory"), "{message}");
        let other = after(1, "WrongKey: the key does not open the repository");
        assert!(matches!(
            failing(&other),
            Some(Health::Stalled { reason, .. }) if reason == "BackupFailed"
        ));
        assert_eq!(failing(&after(0, "PodRefused: old news")), None);
    }
}
