//! A Job as the reconcilers see it: where it stands (waiting, active, done) and how it
//! ended, read from the Job object alone (pure), and what its pod reported.

use crate::operator::names::read_list_annotation;
use holdfast_engine::format::run::Level;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;

use super::hooks::state::{ANNOTATION_HOOK_RESULTS, ANNOTATION_HOOKS, HOOK_FAILED, HookState};
use super::names::{
    ANNOTATION_ABORTED, ANNOTATION_FAILURE, ANNOTATION_LEVEL, ANNOTATION_MOVER, ANNOTATION_SLOT,
    LABEL_OPERATION,
};
use super::plan::queue::{JobState, QueuedJob};
use super::snapshots::state::{
    ANNOTATION_CLONES, ANNOTATION_COPY, ANNOTATION_SNAPSHOTS, CopyState, SNAPSHOT_FAILED,
};
use crate::api::backup_set::SnapshotTaken;
use crate::api::hook::HookResult;
use crate::job::plan::OperationKind;
use crate::job::summary::JobSummary;

/// The reason of a Job the controller failed because its pod could not start.
pub const POD_CANNOT_START: &str = "PodCannotStart";
/// The reason of an owner whose job pod the API server refuses to create (Pod Security
/// admission, a quota, a LimitRange, a webhook), and how a run it failed begins its message.
pub const POD_REFUSED: &str = "PodRefused";

/// How a finished Job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Succeeded,
    /// With the Job's reason and message (e.g. `DeadlineExceeded`).
    Failed {
        reason: String,
        message: String,
    },
    /// Stopped on request.
    Aborted,
}

/// A Job as the reconcilers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    pub name: String,
    /// From its operation label; `None` for a Job without a known one.
    pub operation: Option<OperationKind>,
    pub created: Timestamp,
    pub slot: Option<Timestamp>,
    /// From its level annotation (a backup's); `None` when absent or unreadable.
    pub level: Option<Level>,
    pub state: JobState,
    pub ending: Option<Ending>,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    /// Who its pod runs as, from its mover annotation.
    pub mover: Option<String>,
    /// Where its hooks stand; `None` for a Job without hooks.
    pub hooks: Option<HookState>,
    /// What its hook commands did so far.
    pub hook_results: Vec<HookResult>,
    /// Where its snapshots stand; `None` for a Job that reads every claim live.
    pub copy: Option<CopyState>,
    /// A copy Job's copy, by name.
    pub copy_name: Option<String>,
    /// The snapshots its run reads.
    pub snapshots: Vec<SnapshotTaken>,
    /// The sources its run reads from clones.
    pub clones: Vec<String>,
    /// Its uid (what objects it owns name).
    pub uid: String,
}

impl JobView {
    pub fn of(job: &Job) -> JobView {
        let meta = &job.metadata;
        let ann = meta.annotations.clone().unwrap_or_default();
        let status = job.status.clone().unwrap_or_default();
        let cond = |t: &str| {
            status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == t && c.status == "True")
                .cloned()
        };
        let aborted = ann.get(ANNOTATION_ABORTED).is_some_and(|v| v == "true");
        let suspended = job.spec.as_ref().and_then(|s| s.suspend) == Some(true);
        let active = status.active.unwrap_or(0) + status.terminating.unwrap_or(0);
        let hooks = ann.get(ANNOTATION_HOOKS).and_then(|h| HookState::parse(h));
        let copy = ann.get(ANNOTATION_COPY).and_then(|c| CopyState::parse(c));
        // Its `pre` hook or a snapshot failed: it never ran.
        let never_ran = if hooks == Some(HookState::Failed) {
            Some(HOOK_FAILED)
        } else if copy == Some(CopyState::Failed) {
            Some(SNAPSHOT_FAILED)
        } else {
            None
        };
        let ending = if let Some(reason) = never_ran {
            Some(Ending::Failed {
                reason: reason.into(),
                message: ann.get(ANNOTATION_FAILURE).cloned().unwrap_or_default(),
            })
        } else if let Some(_c) = cond("Complete") {
            Some(Ending::Succeeded)
        } else if let Some(c) = cond("Failed") {
            // Failed by the controller because its pod could not start: say why.
            Some(match ann.get(ANNOTATION_FAILURE) {
                Some(why) => Ending::Failed {
                    reason: POD_CANNOT_START.into(),
                    message: why.clone(),
                },
                None => Ending::Failed {
                    reason: c.reason.unwrap_or_default(),
                    message: c.message.unwrap_or_default(),
                },
            })
        } else if aborted && active == 0 {
            Some(Ending::Aborted)
        } else {
            None
        };
        let state = match (&ending, suspended && !aborted) {
            (Some(_), _) => JobState::Done,
            (None, true) => JobState::Waiting,
            (None, false) => JobState::Active,
        };
        JobView {
            name: meta.name.clone().unwrap_or_default(),
            operation: meta
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_OPERATION)?.parse().ok()),
            created: meta
                .creation_timestamp
                .as_ref()
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
            slot: ann.get(ANNOTATION_SLOT).and_then(|s| s.parse().ok()),
            level: ann.get(ANNOTATION_LEVEL).and_then(|l| l.parse().ok()),
            mover: ann.get(ANNOTATION_MOVER).cloned(),
            hooks,
            hook_results: read_list_annotation(ann.get(ANNOTATION_HOOK_RESULTS)),
            copy,
            copy_name: meta
                .labels
                .as_ref()
                .and_then(|l| l.get(crate::operator::names::LABEL_COPY).cloned()),
            snapshots: read_list_annotation(ann.get(ANNOTATION_SNAPSHOTS)),
            clones: read_list_annotation(ann.get(ANNOTATION_CLONES)),
            uid: meta.uid.clone().unwrap_or_default(),
            state,
            ending,
            started: status.start_time.map(|t| t.0),
            finished: status.completion_time.map(|t| t.0).or_else(|| {
                cond("Failed").map(|c| {
                    c.last_transition_time
                        .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
                })
            }),
        }
    }

    /// As its hooks see it.
    pub fn hooked(&self) -> super::hooks::Hooked<'_> {
        super::hooks::Hooked {
            name: &self.name,
            state: self.hooks,
            results: &self.hook_results,
        }
    }

    /// As the queue sees it.
    pub fn queued(&self) -> QueuedJob {
        QueuedJob {
            name: self.name.clone(),
            created: self.created,
            state: self.state,
            held: self.hooks.is_some_and(HookState::held) || self.copy.is_some_and(CopyState::held),
            operation: self
                .operation
                .map(|k| k.as_str().to_owned())
                .unwrap_or_default(),
        }
    }
}

/// What a finished Job's pod reported: its summary, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Summary(Box<JobSummary>),
    /// No summary (the pod never ran, was deleted, or crashed): the best explanation.
    Missing(String),
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(v: serde_json::Value) -> Job {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn job_states_from_their_status() {
        let base = json!({"metadata": {"name": "j", "creationTimestamp": "2026-12-01T01:00:00Z",
            "labels": {LABEL_OPERATION: "backup"}, "annotations": {ANNOTATION_SLOT: "2026-12-01T01:00:00Z"}},
            "spec": {"template": {}}});
        let with = |spec: serde_json::Value, status: serde_json::Value| {
            let mut v = base.clone();
            for (k, val) in spec.as_object().unwrap() {
                v["spec"][k] = val.clone();
            }
            v["status"] = status;
            JobView::of(&job(v))
        };
        let waiting = with(json!({"suspend": true}), json!({}));
        assert_eq!(
            (waiting.state, waiting.ending.clone()),
            (JobState::Waiting, None)
        );
        assert_eq!(waiting.slot, Some("2026-12-01T01:00:00Z".parse().unwrap()));
        let running = with(json!({}), json!({"active": 1}));
        assert_eq!(running.state, JobState::Active);
        let done = with(
            json!({}),
            json!({"conditions": [{"type": "Complete", "status": "True"}]}),
        );
        assert_eq!(
            (done.state, done.ending),
            (JobState::Done, Some(Ending::Succeeded))
        );
        let failed = with(
            json!({}),
            json!({"conditions": [{"type": "Failed", "status": "True",
            "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}]}),
        );
        assert!(
            matches!(failed.ending, Some(Ending::Failed { ref reason, .. }) if reason == "DeadlineExceeded")
        );
        let mut v = base.clone();
        v["metadata"]["annotations"][ANNOTATION_ABORTED] = json!("true");
        v["spec"]["suspend"] = json!(true);
        v["status"] = json!({"active": 1});
        let stopping = JobView::of(&job(v.clone()));
        assert_eq!(
            stopping.state,
            JobState::Active,
            "still stopping: keeps its turn"
        );
        v["status"] = json!({});
        let aborted = JobView::of(&job(v));
        assert_eq!(
            (aborted.state, aborted.ending),
            (JobState::Done, Some(Ending::Aborted))
        );
    }
}
