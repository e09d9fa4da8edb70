use crate::job::summary::{FailureSummary, PurgeSummary, SourceSummary, VerifySummary};
use chrono::TimeZone;
use holdfast_engine::format::run::{Level as EngineLevel, SourceStatus};

use super::*;
use crate::api::hook::{HookOutcome, HookPhase, HookResult};
use crate::operator::plan::queue::JobState;

fn job(name: &str, op: &str, ending: Option<Ending>) -> JobView {
    JobView {
        name: name.into(),
        operation: op.parse().ok(),
        created: "2026-12-01T01:00:00Z".parse().unwrap(),
        slot: Some("2026-12-01T01:00:00Z".parse().unwrap()),
        level: Some(EngineLevel::Incr),
        state: JobState::Done,
        ending,
        started: Some("2026-12-01T01:00:02Z".parse().unwrap()),
        finished: Some("2026-12-01T01:05:02Z".parse().unwrap()),
        mover: Some("restricted uid 1000 gid 1000 (from pod app-0)".into()),
        hooks: None,
        hook_results: vec![],
        copy: None,
        copy_name: None,
        snapshots: vec![],
        clones: vec![],
        uid: String::new(),
    }
}

fn hook_result(phase: HookPhase, outcome: HookOutcome) -> HookResult {
    HookResult {
        hook: "lock".into(),
        phase,
        pod: Some("db-0".into()),
        outcome,
        exit_code: Some(if outcome == HookOutcome::Succeeded {
            0
        } else {
            1
        }),
        start_time: Time("2026-12-01T01:00:00Z".parse().unwrap()),
        duration_ms: 40,
        output: "ERROR: cannot unlock".into(),
    }
}

#[test]
fn a_run_keeps_its_hook_results_and_a_failed_post_hook_is_in_its_message_without_failing_the_stored_data()
 {
    let mut s = BackupSetStatus::default();
    let mut ran = job("b1", "backup", Some(Ending::Succeeded));
    ran.hooks = Some(crate::operator::hooks::state::HookState::Done);
    ran.hook_results = vec![
        hook_result(HookPhase::Pre, HookOutcome::Succeeded),
        hook_result(HookPhase::Post, HookOutcome::Failed),
    ];
    let r = Report::Summary(Box::new(backup(
        BackupOutcome::Complete,
        vec![src(
            "uploads",
            EngineLevel::Full,
            SourceStatus::Complete,
            None,
        )],
    )));
    let a = absorb(&mut s, &ran, &r, &[], now()).unwrap();
    assert_eq!(a.result.as_str(), "complete");
    let last = s.last_run.clone().unwrap();
    assert_eq!(last.phase, RunPhase::Complete);
    assert_eq!(last.hooks, ran.hook_results);
    assert_eq!(
        last.message.as_deref(),
        Some("post hook \"lock\" in pod db-0 exited with 1: ERROR: cannot unlock")
    );
    assert_eq!(s.consecutive_failures, 0);

    // A pre hook that stopped the run: Failed with its words, the hooks listed.
    let mut stopped = job(
        "b2",
        "backup",
        Some(Ending::Failed {
            reason: crate::operator::hooks::state::HOOK_FAILED.into(),
            message: "pre hook \"lock\" in pod db-0 exited with 1: no".into(),
        }),
    );
    stopped.hook_results = vec![
        hook_result(HookPhase::Pre, HookOutcome::Failed),
        hook_result(HookPhase::Post, HookOutcome::Succeeded),
    ];
    let a = absorb(
        &mut s,
        &stopped,
        &Report::Missing("pre hook \"lock\" in pod db-0 exited with 1: no".into()),
        &[],
        now(),
    )
    .unwrap();
    assert_eq!(a.result.as_str(), "failed");
    let last = s.last_run.clone().unwrap();
    assert_eq!(last.phase, RunPhase::Failed);
    assert!(
        last.message
            .as_deref()
            .unwrap()
            .contains("pre hook \"lock\""),
        "{last:?}"
    );
    assert_eq!(last.hooks.len(), 2);
    assert_eq!(s.consecutive_failures, 1);
}

fn backup(status: BackupOutcome, sources: Vec<SourceSummary>) -> JobSummary {
    let t = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 1, 0, 2).unwrap();
    JobSummary::Backup(BackupSummary {
        label: "incr-20261201.010000".into(),
        level: EngineLevel::Incr,
        status,
        promoted: false,
        started: t,
        finished: t + chrono::Duration::minutes(5),
        duration_ms: 300_000,
        files: 1200,
        dirs: 30,
        bytes_total: 5_000_000,
        bytes_read: 700_000,
        bytes_new: 400_000,
        bytes_stored: 200_000,
        volumes: 1,
        error_count: 1,
        warning_count: 0,
        reused: false,
        repository: Some(RepositoryTotals {
            volumes: 12,
            bytes: 90_000_000,
            live_bytes: None,
            reclaimable_bytes: None,
            runs: 7,
            oldest_run: Some(t - chrono::Duration::days(6)),
            newest_run: Some(t),
        }),
        sources,
        errors: vec!["db:/: the command exited with status 3; stderr: connection refused".into()],
    })
}

fn src(name: &str, level: EngineLevel, status: SourceStatus, error: Option<&str>) -> SourceSummary {
    SourceSummary {
        name: name.into(),
        level,
        status,
        files: 10,
        bytes: 1000,
        errors: u64::from(error.is_some()),
        error: error.map(String::from),
        live: false,
    }
}

fn now() -> Timestamp {
    "2026-12-01T01:06:00Z".parse().unwrap()
}

#[test]
fn a_partial_backup_with_a_failing_dump_fills_run_sources_and_points() {
    let mut s = BackupSetStatus {
        consecutive_failures: 2,
        ..BackupSetStatus::default()
    };
    let r = Report::Summary(Box::new(backup(
        BackupOutcome::Partial,
        vec![
            src("uploads", EngineLevel::Full, SourceStatus::Complete, None),
            src(
                "db",
                EngineLevel::Incr,
                SourceStatus::Failed,
                Some("/: the command exited with status 3; stderr: connection refused"),
            ),
        ],
    )));
    let a = absorb(
        &mut s,
        &job("shop-backup-1", "backup", Some(Ending::Succeeded)),
        &r,
        &[],
        now(),
    )
    .unwrap();
    assert_eq!(
        (a.result.as_str(), a.reason().as_str(), a.warning()),
        ("partial", "BackupPartial", true)
    );
    let last = s.last_run.as_ref().unwrap();
    assert_eq!(last.phase, RunPhase::Partial);
    assert_eq!(last.label, "incr-20261201.010000");
    assert!(
        last.message
            .as_deref()
            .unwrap()
            .contains("exited with status 3")
    );
    assert_eq!(s.consecutive_failures, 0, "a partial run stored something");
    assert!(s.last_successful_time.is_some());
    let db = s.sources.iter().find(|x| x.name == "db").unwrap();
    assert_eq!(db.state, "Offline");
    assert!(
        db.message
            .as_deref()
            .unwrap()
            .contains("connection refused")
    );
    let up = s.sources.iter().find(|x| x.name == "uploads").unwrap();
    assert_eq!(
        (up.state.as_str(), up.last_full.as_deref()),
        ("Online", Some("incr-20261201.010000"))
    );
    assert_eq!(s.restore_points.as_ref().unwrap().count, 7);
    assert_eq!(s.usage.as_ref().unwrap().stored_bytes, 90_000_000);
    // The same Job again changes nothing.
    let before = s.clone();
    assert!(
        absorb(
            &mut s,
            &job("shop-backup-1", "backup", Some(Ending::Succeeded)),
            &r,
            &[],
            now()
        )
        .is_none()
    );
    assert_eq!(s, before);
}

#[test]
fn a_run_names_the_claims_it_read_live_or_from_a_clone_and_counts_each_way_of_reading() {
    let mut s = BackupSetStatus::default();
    let live = |mut x: SourceSummary| {
        x.live = true;
        x
    };
    let r = Report::Summary(Box::new(backup(
        BackupOutcome::Complete,
        vec![
            live(src(
                "uploads",
                EngineLevel::Full,
                SourceStatus::Complete,
                None,
            )),
            src("media", EngineLevel::Full, SourceStatus::Complete, None),
            src("db", EngineLevel::Full, SourceStatus::Complete, None),
        ],
    )));
    let mut view = job("shop-backup-1", "backup", Some(Ending::Succeeded));
    view.clones = vec!["media".into()];
    let a = absorb(&mut s, &view, &r, &[], now()).unwrap();
    let last = s.last_run.unwrap();
    assert_eq!(last.live_sources, ["uploads"]);
    assert_eq!(last.cloned_sources, ["media"]);
    use crate::operator::metrics::ReadMethod;
    assert_eq!(
        a.reads,
        [
            (ReadMethod::Live, 1),
            (ReadMethod::Clone, 1),
            (ReadMethod::Stream, 1)
        ]
    );
}

#[test]
fn failures_count_up_and_aborts_do_not() {
    let mut s = BackupSetStatus::default();
    let wrong_key = Report::Summary(Box::new(FailureSummary::of(
        "backup",
        &holdfast_engine::Error::WrongKey {
            location: "s3://b/p".into(),
        },
    )));
    let a = absorb(
        &mut s,
        &job("j1", "backup", Some(Ending::Succeeded)),
        &wrong_key,
        &[],
        now(),
    )
    .unwrap();
    assert_eq!(
        (a.result.as_str(), a.reason().as_str()),
        ("failed", "BackupFailed")
    );
    assert!(a.message.contains("WrongKey"), "{}", a.message);
    assert_eq!(s.consecutive_failures, 1);
    let gone =
        Report::Missing("DeadlineExceeded: Job was active longer than specified deadline".into());
    absorb(
        &mut s,
        &job(
            "j2",
            "backup",
            Some(Ending::Failed {
                reason: "DeadlineExceeded".into(),
                message: String::new(),
            }),
        ),
        &gone,
        &[],
        now(),
    );
    assert_eq!(s.consecutive_failures, 2);
    assert_eq!(s.last_run.as_ref().unwrap().phase, RunPhase::Failed);
    let a = absorb(
        &mut s,
        &job("j3", "backup", Some(Ending::Aborted)),
        &Report::Missing("pod deleted".into()),
        &[],
        now(),
    )
    .unwrap();
    assert_eq!(
        (a.result.as_str(), a.reason().as_str(), a.warning()),
        ("aborted", "BackupAborted", false)
    );
    assert_eq!(s.last_run.as_ref().unwrap().phase, RunPhase::Aborted);
    assert_eq!(
        s.consecutive_failures, 2,
        "an abort on request is not a failure"
    );
    assert_eq!(s.recent_runs.len(), 3);
    assert_eq!(s.recent_runs[0].job.as_deref(), Some("j3"), "newest first");
}

#[test]
fn purge_and_verify_results() {
    let mut s = BackupSetStatus::default();
    let purge = Report::Summary(Box::new(JobSummary::Purge(PurgeSummary {
        dry_run: false,
        runs_expired_count: 3,
        runs_kept: 9,
        volumes_marked: 4,
        bytes_marked: 64,
        volumes_repacked: 1,
        volumes_deleted: 2,
        bytes_reclaimed: 32_000_000,
        volumes_pending: 0,
        pending_until: None,
        duration_ms: 10,
        delete_deferred: None,
        braked: None,
        repository: Some(RepositoryTotals {
            volumes: 10,
            bytes: 100,
            live_bytes: Some(80),
            reclaimable_bytes: Some(20),
            runs: 9,
            oldest_run: None,
            newest_run: None,
        }),
        runs_expired: vec![],
    })));
    absorb(
        &mut s,
        &job("p", "purge", Some(Ending::Succeeded)),
        &purge,
        &[],
        now(),
    )
    .unwrap();
    let r = s.retention.as_ref().unwrap();
    assert_eq!((r.runs_expired, r.bytes_reclaimed), (3, 32_000_000));
    assert_eq!(s.usage.as_ref().unwrap().live_bytes, Some(80));
    let damaged = Report::Summary(Box::new(JobSummary::Verify(VerifySummary {
        depth: "deep".into(),
        ok: false,
        data_verified: true,
        runs: 9,
        volumes: 10,
        volumes_read: 10,
        bytes_read: 100,
        duration_ms: 5,
        damaged_volume_count: 1,
        problem_count: 0,
        unreferenced_volumes: 0,
        repository: None,
        problems: vec!["damaged volume 1a2b3c4d: hash mismatch (2 runs, 14 files)".into()],
    })));
    let a = absorb(
        &mut s,
        &job("v", "verify", Some(Ending::Succeeded)),
        &damaged,
        &[],
        now(),
    )
    .unwrap();
    assert_eq!((a.reason().as_str(), a.warning()), ("VerifyDamaged", true));
    let v = s.verification.as_ref().unwrap();
    assert!(!v.ok && v.message.as_deref().unwrap().contains("1a2b3c4d"));
    assert_eq!(
        s.usage.as_ref().unwrap().live_bytes,
        Some(80),
        "kept from the purge"
    );
}

#[test]
fn handled_jobs_are_bounded() {
    let mut s = BackupSetStatus::default();
    for i in 0..50 {
        absorb(
            &mut s,
            &job(&format!("j{i}"), "backup", Some(Ending::Succeeded)),
            &Report::Missing("x".into()),
            &[],
            now(),
        );
    }
    assert_eq!(s.handled_jobs.len(), HANDLED_JOBS);
    assert_eq!(s.handled_jobs.last().map(String::as_str), Some("j49"));
    assert_eq!(s.recent_runs.len(), RECENT_RUNS);
}

#[test]
fn a_run_retried_after_a_drain_says_which_pod_and_node_were_stopped() {
    let evicted = |pod: &str| Interruption {
        pod: pod.into(),
        node: Some("worker".into()),
        reason: "EvictionByEvictionAPI: Eviction API: evicting".into(),
    };
    let complete = Report::Summary(Box::new(backup(
        BackupOutcome::Complete,
        vec![src(
            "uploads",
            EngineLevel::Incr,
            SourceStatus::Complete,
            None,
        )],
    )));
    let mut s = BackupSetStatus::default();
    let a = absorb(
        &mut s,
        &job("j1", "backup", Some(Ending::Succeeded)),
        &complete,
        &[evicted("j1-a")],
        now(),
    )
    .unwrap();
    let run = s.last_run.clone().unwrap();
    assert_eq!((run.phase, run.interruptions), (RunPhase::Complete, 1));
    let said = "run again after pod j1-a on node worker was stopped (EvictionByEvictionAPI: \
                Eviction API: evicting)";
    assert_eq!(run.message.as_deref(), Some(said));
    assert!(a.message.ends_with(said), "{}", a.message);
    assert_eq!(a.reason().as_str(), "BackupComplete");

    // A run that failed after two interruptions says both its failure and the retries.
    let failed = Report::Missing("the job's pod is gone, and its result with it".into());
    absorb(
        &mut s,
        &job("j2", "backup", Some(Ending::Succeeded)),
        &failed,
        &[evicted("j2-a"), evicted("j2-b")],
        now(),
    )
    .unwrap();
    let run = s.last_run.unwrap();
    assert_eq!((run.phase, run.interruptions), (RunPhase::Failed, 2));
    let message = run.message.unwrap();
    assert!(message.starts_with("the job's pod is gone"), "{message}");
    assert!(
        message.ends_with("stopped (EvictionByEvictionAPI: Eviction API: evicting) and 1 more"),
        "{message}"
    );
}
