//! Compact summaries of results, small enough for a Kubernetes container termination
//! message (4 KiB): how job pods hand results to the controller. [`JobSummary`] is the one
//! typed contract between the two: the runner writes it from the engine's reports, the
//! controller reads it, and neither builds or picks apart untyped JSON.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use holdfast_engine::ErrorCategory;
use holdfast_engine::backup::BackupReport;
use holdfast_engine::copy::CopyReport;
use holdfast_engine::format::run::{Level, RunStatus, SourceKind, SourceStatus};
use holdfast_engine::purge::PurgeReport;
use holdfast_engine::repo::{CheckReport, RepositoryTotals};
use holdfast_engine::restore::{RestoreReport, RestoreStatus};
use holdfast_engine::verify::VerifyReport;

/// Kubernetes truncates termination messages beyond 4096 bytes.
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;

const TEXT_LIMIT: usize = 240;

fn clip(s: &str) -> String {
    let kept = crate::text::prefix(s, TEXT_LIMIT);
    if kept.len() == s.len() {
        return s.to_owned();
    }
    format!("{kept}…")
}

/// Serialize `value` within `limit` bytes: the arrays named in `shrinkable` lose elements
/// from the end (the count fields stay exact) until it fits; as a last resort only the
/// scalar fields are kept.
pub fn fit(mut value: Value, shrinkable: &[&str], limit: usize) -> String {
    loop {
        let text = value.to_string();
        if text.len() <= limit {
            return text;
        }
        let mut shrunk = false;
        for key in shrinkable {
            if let Some(Value::Array(a)) = value.get_mut(*key)
                && !a.is_empty()
            {
                a.pop();
                shrunk = true;
                break;
            }
        }
        if !shrunk {
            if let Value::Object(map) = &mut value {
                map.retain(|_, v| !v.is_array() && !v.is_object());
                map.insert("truncated".into(), Value::Bool(true));
            }
            let text = value.to_string();
            return if text.len() <= limit {
                text
            } else {
                json!({"truncated": true}).to_string()
            };
        }
    }
}

/// How a backup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupOutcome {
    Complete,
    /// Some items failed; everything else was stored.
    Partial,
    /// Stopped on request (SIGTERM); what was read before is recorded.
    Aborted,
}

/// One source of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceSummary {
    pub name: String,
    pub level: Level,
    pub status: SourceStatus,
    #[serde(default)]
    pub files: u64,
    /// Logical bytes of the source in this run.
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub errors: u64,
    /// The first error, for status (e.g. a failing dump's exit status and stderr tail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A directory read live, while the application could write it (no snapshot): its
    /// files date from anywhere within the run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub live: bool,
}

/// What a backup job did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupSummary {
    pub label: String,
    pub level: Level,
    pub status: BackupOutcome,
    #[serde(default)]
    pub promoted: bool,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub files: u64,
    #[serde(default)]
    pub dirs: u64,
    #[serde(default)]
    pub bytes_total: u64,
    #[serde(default)]
    pub bytes_read: u64,
    #[serde(default)]
    pub bytes_new: u64,
    #[serde(default)]
    pub bytes_stored: u64,
    #[serde(default)]
    pub volumes: u64,
    #[serde(default)]
    pub error_count: u64,
    #[serde(default)]
    pub warning_count: u64,
    /// This job had already recorded its run (a retried pod): nothing was read again.
    #[serde(default)]
    pub reused: bool,
    /// Volumes and bytes in the repository after the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepositoryTotals>,
    #[serde(default)]
    pub sources: Vec<SourceSummary>,
    #[serde(default)]
    pub errors: Vec<String>,
}

/// One restored source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoredSource {
    pub source: String,
    pub run: String,
    pub target: String,
}

/// What a restore job did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSummary {
    /// The newest run restored from.
    pub run: String,
    pub status: RestoreStatus,
    #[serde(default)]
    pub restored: u64,
    #[serde(default)]
    pub skipped: u64,
    #[serde(default)]
    pub unrestored: u64,
    #[serde(default)]
    pub bytes_restored: u64,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub aborted: bool,
    /// Entries left owned by the restoring user (an unprivileged restore).
    #[serde(default)]
    pub owners_not_set: u64,
    /// Existing entries it does not own whose mode and times it could not set.
    #[serde(default)]
    pub modes_not_set: u64,
    #[serde(default)]
    pub sources: Vec<RestoredSource>,
    /// The first unrestored items, `path: reason`.
    #[serde(default)]
    pub unrestored_items: Vec<String>,
}

/// What a verify job found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifySummary {
    pub depth: String,
    pub ok: bool,
    #[serde(default)]
    pub data_verified: bool,
    #[serde(default)]
    pub runs: u64,
    #[serde(default)]
    pub volumes: u64,
    #[serde(default)]
    pub volumes_read: u64,
    #[serde(default)]
    pub bytes_read: u64,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub damaged_volume_count: u64,
    #[serde(default)]
    pub problem_count: u64,
    #[serde(default)]
    pub unreferenced_volumes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepositoryTotals>,
    #[serde(default)]
    pub problems: Vec<String>,
}

/// What a purge job did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeSummary {
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub runs_expired_count: u64,
    #[serde(default)]
    pub runs_kept: u64,
    #[serde(default)]
    pub volumes_marked: u64,
    #[serde(default)]
    pub bytes_marked: u64,
    #[serde(default)]
    pub volumes_repacked: u64,
    #[serde(default)]
    pub volumes_deleted: u64,
    #[serde(default)]
    pub bytes_reclaimed: u64,
    #[serde(default)]
    pub volumes_pending: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_deferred: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepositoryTotals>,
    #[serde(default)]
    pub runs_expired: Vec<String>,
    /// The brake stopped it: nothing expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub braked: Option<BrakedSummary>,
}

/// A purge the brake on mass deletion stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrakedSummary {
    pub reason: String,
    /// The plan to approve.
    pub plan: String,
    /// How many runs it would expire.
    pub runs_count: u64,
    /// Which (the oldest 20).
    #[serde(default)]
    pub runs: Vec<String>,
}

/// What a copy job did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopySummary {
    /// The copy's name in the BackupSet.
    pub name: String,
    /// The copy's repository was created by this job.
    #[serde(default)]
    pub created: bool,
    /// Runs copied, oldest first.
    #[serde(default)]
    pub runs_copied: Vec<String>,
    /// How many (kept when the list is shortened to fit).
    #[serde(default)]
    pub runs_copied_count: u64,
    /// Runs the copy's own retention expired, not copied again.
    #[serde(default)]
    pub expired_at_destination: u64,
    /// Runs still to copy when the job ended (it was stopped).
    #[serde(default)]
    pub pending: u64,
    #[serde(default)]
    pub blobs_moved: u64,
    #[serde(default)]
    pub bytes_moved: u64,
    #[serde(default)]
    pub volumes_written: u64,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub stopped: bool,
    /// The copy's size after the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepositoryTotals>,
}

/// One line of a storage check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckLine {
    pub check: String,
    pub ok: bool,
    pub detail: String,
    /// The category of the error behind a failure, where there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<ErrorCategory>,
}

/// What a storage check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageCheckSummary {
    pub ok: bool,
    /// Size and free space of a filesystem target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(default)]
    pub items: Vec<CheckLine>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What deleting a repository did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteSummary {
    #[serde(default)]
    pub objects_deleted: u64,
    #[serde(default)]
    pub bytes_deleted: u64,
    /// Objects under the repository's location that were not part of it, left in place.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub objects_kept: u64,
    /// There was no repository to delete.
    #[serde(default)]
    pub absent: bool,
}

/// A job that failed before producing a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureSummary {
    /// The operation that failed, e.g. `backup`.
    pub operation: String,
    pub category: ErrorCategory,
    pub message: String,
}

/// The result of one job, as its termination message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum JobSummary {
    Backup(BackupSummary),
    Restore(RestoreSummary),
    Verify(VerifySummary),
    Purge(PurgeSummary),
    StorageCheck(StorageCheckSummary),
    DeleteRepository(DeleteSummary),
    Copy(CopySummary),
    Failed(FailureSummary),
}

impl JobSummary {
    /// The message, within [`TERMINATION_MESSAGE_LIMIT`]: lists shrink first, counts stay.
    pub fn to_message(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or_else(|_| json!({"op": "failed"}));
        fit(
            value,
            &[
                "errors",
                "unrestoredItems",
                "problems",
                "runsExpired",
                "items",
                "sources",
                "runsCopied",
            ],
            TERMINATION_MESSAGE_LIMIT,
        )
    }

    /// Read a termination message. `None` if it is not a summary (e.g. a crash's output).
    pub fn parse(message: &str) -> Option<JobSummary> {
        serde_json::from_str(message.trim()).ok()
    }
}

impl From<&BackupReport> for JobSummary {
    fn from(report: &BackupReport) -> Self {
        let r = &report.run;
        let errors: Vec<String> = r
            .sources
            .iter()
            .flat_map(|s| {
                s.errors
                    .iter()
                    .map(move |e| clip(&format!("{}:{}: {}", s.name, e.path, e.error)))
            })
            .take(20)
            .collect();
        let sources = r
            .sources
            .iter()
            .map(|s| SourceSummary {
                name: s.name.clone(),
                level: s.level.unwrap_or(r.level),
                status: s.status,
                files: s.stats.files,
                bytes: s.stats.bytes_total,
                errors: s.stats.errors,
                error: s
                    .errors
                    .first()
                    .map(|e| clip(&format!("{}: {}", e.path, e.error))),
                live: s.kind == SourceKind::Directory && s.captured.is_none(),
            })
            .collect();
        JobSummary::Backup(BackupSummary {
            label: r.label.clone(),
            level: r.level,
            status: match r.status {
                RunStatus::Complete => BackupOutcome::Complete,
                RunStatus::Partial => BackupOutcome::Partial,
                RunStatus::Aborted => BackupOutcome::Aborted,
            },
            promoted: report.promoted,
            started: r.started,
            finished: r.finished,
            duration_ms: report.duration_ms,
            files: r.stats.files,
            dirs: r.stats.dirs,
            bytes_total: r.stats.bytes_total,
            bytes_read: r.stats.bytes_read,
            bytes_new: r.stats.bytes_new,
            bytes_stored: r.stats.bytes_stored,
            volumes: report.volumes_written,
            error_count: r.stats.errors,
            warning_count: r.stats.warnings,
            reused: report.reused,
            repository: report.repository,
            sources,
            errors,
        })
    }
}

impl From<&RestoreReport> for JobSummary {
    fn from(report: &RestoreReport) -> Self {
        JobSummary::Restore(RestoreSummary {
            run: report.run.clone(),
            status: report.status,
            restored: report.restored,
            skipped: report.skipped,
            unrestored: report.unrestored,
            bytes_restored: report.bytes_restored,
            duration_ms: report.duration_ms,
            aborted: report.aborted,
            owners_not_set: report.owners_not_set,
            modes_not_set: report.modes_not_set,
            sources: report
                .targets
                .iter()
                .map(|t| RestoredSource {
                    source: t.source.clone(),
                    run: t.run.clone(),
                    target: t.target.clone(),
                })
                .collect(),
            unrestored_items: report
                .unrestored_items
                .iter()
                .take(20)
                .map(|i| clip(&format!("{}: {}", i.path, i.reason)))
                .collect(),
        })
    }
}

impl JobSummary {
    /// A verify's report, with the repository's size when it was measured.
    pub fn verify(report: &VerifyReport, repository: Option<RepositoryTotals>) -> Self {
        JobSummary::Verify(VerifySummary {
            depth: report.depth.clone(),
            ok: report.ok,
            data_verified: report.data_verified,
            runs: report.runs_checked as u64,
            volumes: report.volumes_indexed as u64,
            volumes_read: report.volumes_read as u64,
            bytes_read: report.bytes_read,
            duration_ms: report.duration_ms,
            damaged_volume_count: report.damaged_volumes.len() as u64,
            problem_count: report.problems.len() as u64,
            unreferenced_volumes: report.unreferenced_volumes.len() as u64,
            repository,
            problems: report
                .problems
                .iter()
                .take(10)
                .map(|p| clip(p))
                .chain(report.damaged_volumes.iter().take(5).map(|d| {
                    clip(&format!(
                        "damaged volume {}: {} ({} runs, {} files)",
                        &d.volume[..8.min(d.volume.len())],
                        d.problem,
                        d.runs.len(),
                        d.files_total
                    ))
                }))
                .collect(),
        })
    }

    /// A purge's report, with the repository's size when it was measured.
    pub fn purge(report: &PurgeReport, repository: Option<RepositoryTotals>) -> Self {
        JobSummary::Purge(PurgeSummary {
            dry_run: report.dry_run,
            runs_expired_count: report.runs_expired.len() as u64,
            runs_kept: report.runs_kept as u64,
            volumes_marked: report.volumes_marked as u64,
            bytes_marked: report.bytes_marked,
            volumes_repacked: report.volumes_repacked as u64,
            volumes_deleted: report.volumes_deleted as u64,
            bytes_reclaimed: report.bytes_reclaimed,
            volumes_pending: report.volumes_pending as u64,
            pending_until: report.pending_until,
            duration_ms: report.duration_ms,
            delete_deferred: report.delete_deferred.as_deref().map(clip),
            repository,
            runs_expired: report
                .runs_expired
                .iter()
                .map(|e| e.label.clone())
                .collect(),
            braked: report.braked.as_ref().map(|b| BrakedSummary {
                reason: clip(&b.reason),
                plan: b.plan.clone(),
                runs_count: b.runs.len() as u64,
                // Nested lists are not shortened by `fit`: bounded here.
                runs: b.runs.iter().take(20).map(|e| e.label.clone()).collect(),
            }),
        })
    }

    /// A copy's report, with the copy's size after it.
    pub fn copy(
        name: &str,
        created: bool,
        report: &CopyReport,
        repository: Option<RepositoryTotals>,
    ) -> Self {
        JobSummary::Copy(CopySummary {
            name: name.to_owned(),
            created,
            runs_copied: report.copied.iter().map(|r| r.label.clone()).collect(),
            runs_copied_count: report.copied.len() as u64,
            expired_at_destination: report.expired_at_destination.len() as u64,
            pending: report.pending.len() as u64,
            blobs_moved: report.blobs_moved,
            bytes_moved: report.bytes_moved,
            volumes_written: report.volumes_written,
            duration_ms: report.duration_ms,
            stopped: report.stopped,
            repository,
        })
    }

    /// A storage check's report, with the capacity of a filesystem location.
    pub fn storage_check(report: &CheckReport, total: Option<u64>, available: Option<u64>) -> Self {
        JobSummary::StorageCheck(StorageCheckSummary {
            ok: report.ok,
            total_bytes: total,
            available_bytes: available,
            items: report
                .items
                .iter()
                .map(|i| CheckLine {
                    check: i.check.clone(),
                    ok: i.ok,
                    detail: clip(&i.detail),
                    category: i.category,
                })
                .collect(),
        })
    }
}

impl FailureSummary {
    pub fn of(operation: &str, e: &holdfast_engine::Error) -> JobSummary {
        JobSummary::Failed(FailureSummary {
            operation: operation.to_owned(),
            category: e.category(),
            message: clip(&holdfast_engine::error_chain(e)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_drops_list_items_then_everything_but_scalars() {
        let v = json!({"op": "x", "count": 500, "errors": (0..500).map(|i| format!("error number {i}")).collect::<Vec<_>>()});
        let text = fit(v, &["errors"], 4096);
        assert!(text.len() <= 4096);
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["count"], 500, "counts stay exact");
        assert!(!back["errors"].as_array().unwrap().is_empty());

        let v = json!({"op": "x", "blob": "y".repeat(5000)});
        let text = fit(v, &[], 4096);
        assert!(text.len() <= 4096, "{}", text.len());
    }

    #[test]
    fn clip_respects_char_boundaries() {
        let s = "é".repeat(300);
        let c = clip(&s);
        assert!(c.len() <= TEXT_LIMIT + 3);
    }

    #[test]
    fn a_summary_too_long_for_a_termination_message_still_parses() {
        let now = Utc::now();
        let s = JobSummary::Backup(BackupSummary {
            label: "full-20261201.010000".into(),
            level: Level::Full,
            status: BackupOutcome::Partial,
            promoted: false,
            started: now,
            finished: now,
            duration_ms: 1,
            files: 10,
            dirs: 1,
            bytes_total: 1,
            bytes_read: 1,
            bytes_new: 1,
            bytes_stored: 1,
            volumes: 1,
            error_count: 400,
            warning_count: 0,
            reused: false,
            repository: None,
            sources: (0..40)
                .map(|i| SourceSummary {
                    name: format!("source-{i}"),
                    level: Level::Full,
                    status: SourceStatus::Partial,
                    files: 1,
                    bytes: 1,
                    errors: 10,
                    error: Some("x".repeat(200)),
                    live: true,
                })
                .collect(),
            errors: (0..20)
                .map(|i| format!("{i}: {}", "e".repeat(200)))
                .collect(),
        });
        let text = s.to_message();
        assert!(text.len() <= TERMINATION_MESSAGE_LIMIT);
        let JobSummary::Backup(back) = JobSummary::parse(&text).unwrap() else {
            panic!("{text}")
        };
        assert_eq!(back.error_count, 400, "counts stay exact");
        assert!(back.sources.len() < 40);
        let failed = FailureSummary::of("backup", &holdfast_engine::Error::NoRuns);
        let JobSummary::Failed(f) = JobSummary::parse(&failed.to_message()).unwrap() else {
            panic!()
        };
        assert_eq!(f.category, ErrorCategory::RunNotFound);
        assert!(JobSummary::parse("panicked at main.rs").is_none());
    }
}
