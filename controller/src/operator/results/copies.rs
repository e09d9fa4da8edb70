//! What a finished copy Job tells its copy's entry in status (pure).

use crate::api::backup_set::{BackupSetStatus, CopyStatus};
use crate::job::plan::OperationKind;
use crate::job::summary::{CopySummary, JobSummary};
use crate::operation::Outcome;
use crate::operator::job_view::Report;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Absorbed, Ended};

/// The copy's entry, made if status has none (its target is set when its next copy starts).
pub(crate) fn entry<'s>(status: &'s mut BackupSetStatus, name: &str) -> &'s mut CopyStatus {
    let at = match status.copies.iter().position(|c| c.name == name) {
        Some(i) => i,
        None => {
            status.copies.push(CopyStatus {
                name: name.to_owned(),
                ..CopyStatus::default()
            });
            status.copies.len() - 1
        }
    };
    &mut status.copies[at]
}

/// A copy that ran: caught up to when its Job started, unless stopped before the end.
pub(super) fn copied(status: &mut BackupSetStatus, ended: &Ended<'_>, c: &CopySummary) -> Absorbed {
    let e = entry(status, &c.name);
    e.runs_copied = c.runs_copied_count;
    e.bytes_moved = c.bytes_moved;
    e.total_bytes_moved += c.bytes_moved;
    if let Some(t) = &c.repository {
        e.stored_bytes = t.bytes;
    }
    let result = if c.stopped {
        Outcome::Aborted
    } else {
        // Everything recorded before the Job started was there for it to copy.
        e.caught_up_to = ended.job.started.or(ended.job.finished).map(Time);
        e.consecutive_failures = 0;
        e.last_error = None;
        Outcome::Complete
    };
    let message = format!(
        "copy {}{}: {} runs copied, {} moved{}{}",
        c.name,
        if c.created { " (created)" } else { "" },
        c.runs_copied_count,
        crate::human::bytes(c.bytes_moved),
        if c.expired_at_destination > 0 {
            format!(
                ", {} expired by the copy's retention left out",
                c.expired_at_destination
            )
        } else {
            String::new()
        },
        if c.stopped {
            format!("; stopped with {} runs still to copy", c.pending)
        } else {
            String::new()
        }
    );
    Absorbed {
        bytes_stored: c.bytes_moved,
        ..ended.absorbed(OperationKind::Copy, result, message)
    }
}

/// A copy that did not run to its end: counted, and its reason kept, so the next one waits
/// longer.
pub(super) fn copy_failed(
    status: &mut BackupSetStatus,
    ended: &Ended<'_>,
    why: String,
) -> Absorbed {
    let name = ended.job.copy_name.clone().unwrap_or_default();
    let e = entry(status, &name);
    e.consecutive_failures += 1;
    e.last_error = Some(crate::text::prefix(&why, 1024).to_owned());
    let message = format!("copy {name} failed: {why}");
    super::ended_badly(ended, OperationKind::Copy, message)
}

/// A purge or verification of a copy's repository, into the copy's entry (the set's own
/// `retention` and `verification` stay the set's repository's).
pub(super) fn maintained(
    status: &mut BackupSetStatus,
    ended: &Ended<'_>,
    name: &str,
    kind: OperationKind,
    summary: Option<&JobSummary>,
    report: &Report,
) -> Absorbed {
    let e = entry(status, name);
    let (outcome, message) = match (kind, summary) {
        (OperationKind::Purge, Some(JobSummary::Purge(p))) => {
            let (result, outcome, message) = super::retention_result(ended, p);
            e.retention = Some(result);
            if let Some(t) = &p.repository {
                e.stored_bytes = t.bytes;
            }
            (outcome, message)
        }
        (OperationKind::Verify, Some(JobSummary::Verify(v))) => {
            let (result, outcome, message) = super::verify_result(ended, v);
            e.verification = Some(result);
            (outcome, message)
        }
        (kind, _) => {
            let why = super::why(report);
            super::note_failure(&mut e.retention, &mut e.verification, ended, kind, &why);
            return super::ended_badly(ended, kind, format!("copy {name}: {why}"));
        }
    };
    ended.absorbed(kind, outcome, format!("copy {name}: {message}"))
}
