//! Levels, stream sources, locking and the purge/backup interplay, through the engine API.
#![allow(clippy::unwrap_used)] // reason: tests

mod common;

use std::fs;
use std::time::Duration;

use common::*;
use holdfast_engine::Error;
use holdfast_engine::backup::{BackupOptions, SourceSpec, backup};
use holdfast_engine::format::aad;
use holdfast_engine::format::run::{Level, RunStatus, SourceStatus};
use holdfast_engine::progress::Progress;
use holdfast_engine::purge::{PurgeOptions, purge};
use holdfast_engine::repo::{LockInfo, LockKind, ProcessId};
use holdfast_engine::restore::{RestoreOptions, RestoreStatus};
use holdfast_engine::retention::RetentionPolicy;

fn opts(level: Level) -> BackupOptions {
    BackupOptions {
        level,
        ..BackupOptions::default()
    }
}

fn touch(path: &std::path::Path, content: &str, mtime: i64) {
    fs::write(path, content).unwrap();
    set_mtime(path, mtime, 0);
}

#[test]
fn differential_sees_changes_since_full_and_incremental_since_previous_run() {
    let (src, repo_dir) = (tmp(), tmp());
    let root = src.path().join("d");
    fs::create_dir(&root).unwrap();
    for name in ["a", "b", "c", "d"] {
        touch(&root.join(name), name, 1_000);
    }
    let mut repo = init_repo(repo_dir.path());
    let full = backup_paths(&mut repo, &[&root], &opts(Level::Full)).run;
    assert_eq!((full.level, full.stats.files_unchanged), (Level::Full, 0));

    touch(&root.join("a"), "a2", 2_000);
    let diff1 = backup_paths(&mut repo, &[&root], &opts(Level::Diff)).run;
    assert_eq!(diff1.parent.as_deref(), Some(full.label.as_str()));
    assert_eq!(diff1.stats.files_unchanged, 3, "diff rereads only a");

    touch(&root.join("b"), "b2", 3_000);
    let incr = backup_paths(&mut repo, &[&root], &opts(Level::Incr)).run;
    assert_eq!(incr.parent.as_deref(), Some(diff1.label.as_str()));
    assert_eq!(incr.base_full.as_deref(), Some(full.label.as_str()));
    assert_eq!(
        incr.stats.files_unchanged, 3,
        "incr rereads only b (a is unchanged since the diff)"
    );

    let diff2 = backup_paths(&mut repo, &[&root], &opts(Level::Diff)).run;
    assert_eq!(diff2.parent.as_deref(), Some(full.label.as_str()));
    assert_eq!(
        diff2.stats.files_unchanged, 2,
        "diff rereads a and b: both changed since the full"
    );

    let full2 = backup_paths(&mut repo, &[&root], &opts(Level::Full)).run;
    assert_eq!(full2.stats.files_unchanged, 0, "a full reads every byte");
    assert_eq!(full2.stats.bytes_read, 6);

    // Every run is complete on its own: restoring the incremental gives its whole tree.
    let out = tmp();
    let r = restore_into(
        &repo,
        out.path(),
        RestoreOptions {
            selector: holdfast_engine::repo::RunSelector::Label(incr.label.clone()),
            ..Default::default()
        },
    );
    assert_eq!(r.status, RestoreStatus::Complete);
    for (name, want) in [("a", "a2"), ("b", "b2"), ("c", "c"), ("d", "d")] {
        assert_eq!(fs::read_to_string(out.path().join(name)).unwrap(), want);
    }
}

#[test]
fn unchanged_file_given_as_a_source_is_not_read_again() {
    let (src, repo_dir) = (tmp(), tmp());
    let file = src.path().join("db.pages");
    fs::write(&file, pseudo_random(3 << 20, 8)).unwrap();
    let mut repo = init_repo(repo_dir.path());
    backup_paths(&mut repo, &[&file], &opts(Level::Full));
    let incr = backup_paths(&mut repo, &[&file], &opts(Level::Incr)).run;
    assert_eq!((incr.stats.files_unchanged, incr.stats.bytes_read), (1, 0));
    fs::write(&file, pseudo_random(3 << 20, 9)).unwrap();
    let changed = backup_paths(&mut repo, &[&file], &opts(Level::Incr)).run;
    assert_eq!(
        (changed.stats.files_unchanged, changed.stats.bytes_read),
        (0, 3 << 20)
    );
}

#[test]
fn incremental_without_full_is_promoted_to_full() {
    let (src, repo_dir) = (tmp(), tmp());
    fs::write(src.path().join("f"), "x").unwrap();
    let mut repo = init_repo(repo_dir.path());
    let report = backup_paths(&mut repo, &[src.path()], &opts(Level::Incr));
    assert!(report.promoted);
    assert_eq!(report.run.level, Level::Full);
    assert!(report.run.label.starts_with("full-"));
}

#[test]
fn command_source_round_trips_and_a_failing_command_makes_the_run_partial() {
    let (repo_dir, out) = (tmp(), tmp());
    let mut repo = init_repo(repo_dir.path());
    let sources = [
        SourceSpec::command(
            "dump.sql",
            "for i in $(seq 1 20000); do echo \"INSERT INTO t VALUES ($i);\"; done",
        ),
        SourceSpec::command("broken", "echo 'connection refused' >&2; exit 7"),
    ];
    let report = backup(
        &mut repo,
        &sources,
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap();
    assert_eq!(report.run.status, RunStatus::Partial);
    let dump = &report.run.sources[0];
    assert_eq!(dump.status, SourceStatus::Complete);
    let broken = &report.run.sources[1];
    assert_eq!(broken.status, SourceStatus::Failed);
    let err = &broken.errors[0].error;
    assert!(
        err.contains("exited with status 7") && err.contains("connection refused"),
        "{err}"
    );

    let r = restore_into(
        &repo,
        out.path(),
        RestoreOptions {
            allow_partial: true,
            ..Default::default()
        },
    );
    assert_complete(&r, "command source");
    let restored = fs::read_to_string(out.path().join("dump.sql")).unwrap();
    assert_eq!(restored.lines().count(), 20000);
    assert!(restored.ends_with("INSERT INTO t VALUES (20000);\n"));
    assert!(!out.path().join("broken").exists());
}

#[test]
fn fifo_path_is_read_as_a_stream() {
    let (src, repo_dir, out) = (tmp(), tmp(), tmp());
    let fifo = src.path().join("pipe");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::write(fifo, b"streamed through a fifo").unwrap())
    };
    let mut repo = init_repo(repo_dir.path());
    let report = backup_paths(&mut repo, &[&fifo], &BackupOptions::default());
    writer.join().unwrap();
    assert_eq!(
        report.run.sources[0].kind,
        holdfast_engine::format::run::SourceKind::Stream
    );
    restore_into(&repo, out.path(), RestoreOptions::default());
    assert_eq!(
        fs::read(out.path().join("pipe")).unwrap(),
        b"streamed through a fifo"
    );
}

#[test]
fn exclusive_lock_blocks_backup_naming_its_holder_and_shared_locks_coexist() {
    let (src, repo_dir) = (tmp(), tmp());
    fs::write(src.path().join("f"), "x").unwrap();
    let mut repo = init_repo(repo_dir.path());
    let exclusive = repo
        .lock_with(
            LockKind::Exclusive,
            "purge (delete)",
            Duration::ZERO,
            Duration::from_secs(60),
            "pod/purge-abc",
        )
        .unwrap();
    let sources = [SourceSpec::from_path(src.path().to_path_buf())];
    let err = backup(
        &mut repo,
        &sources,
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("pod/purge-abc") && msg.contains("purge (delete)"),
        "names holder and operation: {msg}"
    );
    assert!(repo.run_labels().unwrap().is_empty(), "nothing written");
    drop(exclusive);

    let shared = repo
        .lock(LockKind::Shared, "restore", Duration::ZERO)
        .unwrap();
    backup(
        &mut repo,
        &sources,
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap();
    let err = repo
        .lock(LockKind::Exclusive, "purge (delete)", Duration::ZERO)
        .unwrap_err();
    assert!(err.to_string().contains("restore"), "{err}");
    drop(shared);
    assert!(
        repo.locks().unwrap().is_empty(),
        "locks are released on drop"
    );
}

#[test]
fn backup_waits_for_an_exclusive_lock_when_asked() {
    let (src, repo_dir) = (tmp(), tmp());
    fs::write(src.path().join("f"), "x").unwrap();
    let mut repo = init_repo(repo_dir.path());
    let exclusive = repo
        .lock(LockKind::Exclusive, "purge (delete)", Duration::ZERO)
        .unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        drop(exclusive);
    });
    let sources = [SourceSpec::from_path(src.path().to_path_buf())];
    let waiting = BackupOptions {
        lock_wait: Duration::from_secs(30),
        ..BackupOptions::default()
    };
    backup(&mut repo, &sources, &waiting, &Progress::default()).unwrap();
    releaser.join().unwrap();
}

#[test]
fn stale_lock_is_ignored_reported_and_removed_by_unlock() {
    let (src, repo_dir) = (tmp(), tmp());
    fs::write(src.path().join("f"), "x").unwrap();
    let mut repo = init_repo(repo_dir.path());
    // A holder that died without releasing: its lease ran out a minute ago.
    let dead = LockInfo {
        holder: "pod/backup-dead".into(),
        operation: "purge (delete)".into(),
        kind: LockKind::Exclusive,
        started: chrono::Utc::now() - chrono::Duration::minutes(10),
        expires: chrono::Utc::now() - chrono::Duration::minutes(1),
        process: None,
    };
    let sealed = repo
        .key()
        .seal(aad::LOCK, &serde_json::to_vec(&dead).unwrap())
        .unwrap();
    repo.store().put("locks/deadbeef", sealed).unwrap();
    let locks = repo.locks().unwrap();
    assert_eq!(locks.len(), 1);
    assert!(locks[0].stale);
    let sources = [SourceSpec::from_path(src.path().to_path_buf())];
    backup(
        &mut repo,
        &sources,
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap();
    let removed = repo.unlock(false).unwrap();
    assert_eq!(removed.len(), 1);
    assert!(repo.locks().unwrap().is_empty());
}

fn put_lock(
    repo: &holdfast_engine::repo::Repository<holdfast_engine::repo::Indexed>,
    name: &str,
    info: &LockInfo,
) {
    let sealed = repo
        .key()
        .seal(aad::LOCK, &serde_json::to_vec(info).unwrap())
        .unwrap();
    repo.store().put(&format!("locks/{name}"), sealed).unwrap();
}

#[test]
fn a_lock_whose_holder_was_killed_on_this_machine_is_stale_at_once() {
    let (src, repo_dir) = (tmp(), tmp());
    fs::write(src.path().join("f"), "x").unwrap();
    let mut repo = init_repo(repo_dir.path());
    // A holder killed with -9 in the middle of its lease.
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let process = ProcessId::of(child.id()).expect("/proc describes the child");
    child.kill().unwrap();
    child.wait().unwrap();
    let now = chrono::Utc::now();
    let killed = LockInfo {
        holder: "host:123".into(),
        operation: "backup".into(),
        kind: LockKind::Exclusive,
        started: now,
        expires: now + chrono::Duration::minutes(5),
        process: Some(process),
    };
    put_lock(&repo, "killed", &killed);
    let locks = repo.locks().unwrap();
    assert!(locks[0].stale, "{locks:?}");
    assert_eq!(locks[0].stale_because, Some("holder is gone"));
    let sources = [SourceSpec::from_path(src.path().to_path_buf())];
    backup(
        &mut repo,
        &sources,
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap();
    assert_eq!(repo.unlock(false).unwrap().len(), 1);

    // A live holder (this process) in its lease blocks, and the error says until when.
    let alive = LockInfo {
        process: ProcessId::current(),
        ..killed
    };
    put_lock(&repo, "alive", &alive);
    assert!(!repo.locks().unwrap()[0].stale);
    let err = backup(
        &mut repo,
        &sources,
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("lease ends at") && msg.contains("holdfast unlock --all"),
        "{msg}"
    );
    assert!(
        repo.unlock(false).unwrap().is_empty(),
        "a live lock is not stale"
    );
    // A holder on another machine cannot be judged from here: only its lease counts.
    let elsewhere = LockInfo {
        process: Some(ProcessId {
            host: "another-node".into(),
            ..ProcessId::current().unwrap()
        }),
        ..alive
    };
    put_lock(&repo, "alive", &elsewhere);
    assert!(!repo.locks().unwrap()[0].stale);
}

#[test]
fn purge_delete_phase_waits_for_running_backups_and_loses_nothing() {
    let (src, repo_dir, out) = (tmp(), tmp(), tmp());
    let root = src.path().join("d");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("old"), pseudo_random(2 << 20, 1)).unwrap();
    let mut repo = init_repo(repo_dir.path());
    backup_paths(&mut repo, &[&root], &BackupOptions::default());
    fs::remove_file(root.join("old")).unwrap();
    fs::write(root.join("new"), pseudo_random(2 << 20, 2)).unwrap();
    backup_paths(&mut repo, &[&root], &BackupOptions::default());

    // A backup in progress holds a shared lock: the purge marks, but may not delete.
    let running = repo
        .lock(LockKind::Shared, "backup", Duration::ZERO)
        .unwrap();
    let policy = RetentionPolicy {
        keep_fulls: Some(1),
        max_age: None,
        ..RetentionPolicy::default()
    };
    let popts = PurgeOptions {
        policy,
        grace: Duration::ZERO,
        ..PurgeOptions::default()
    };
    let deferred = purge(&mut repo, &popts, &Progress::default()).unwrap();
    let why = deferred.delete_deferred.as_deref().unwrap();
    assert!(why.contains("backup") && why.contains("not done"), "{why}");
    assert_eq!(deferred.volumes_deleted, 0);
    assert!(
        !repo.marks().unwrap().is_empty(),
        "phase one marked the dead volumes"
    );
    drop(running);

    let report = purge(&mut repo, &popts, &Progress::default()).unwrap();
    assert!(
        report.volumes_deleted > 0 && report.bytes_reclaimed >= 2 << 20,
        "{report:?}"
    );
    let r = restore_into(
        &open_repo(repo_dir.path()),
        out.path(),
        RestoreOptions::default(),
    );
    assert_eq!(r.status, RestoreStatus::Complete);
    assert_eq!(
        fs::read(out.path().join("new")).unwrap(),
        pseudo_random(2 << 20, 2)
    );
}

#[test]
fn backup_does_not_reference_volumes_marked_for_deletion() {
    let (src, repo_dir, out) = (tmp(), tmp(), tmp());
    let root = src.path().join("d");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("data"), pseudo_random(1 << 20, 5)).unwrap();
    let mut repo = init_repo(repo_dir.path());
    backup_paths(&mut repo, &[&root], &BackupOptions::default());
    fs::write(root.join("other"), b"x").unwrap();
    fs::write(root.join("data"), b"changed").unwrap();
    backup_paths(&mut repo, &[&root], &BackupOptions::default());
    // Phase one only (long grace): the first run expires and its data volume is marked.
    let policy = RetentionPolicy {
        keep_fulls: Some(1),
        max_age: None,
        ..RetentionPolicy::default()
    };
    let long = PurgeOptions {
        policy,
        grace: Duration::from_secs(3600),
        ..PurgeOptions::default()
    };
    let report = purge(&mut repo, &long, &Progress::default()).unwrap();
    assert!(
        report.volumes_marked > 0 && report.volumes_deleted == 0,
        "{report:?}"
    );
    // The old content comes back: the backup must store it again, not reuse the marked copy.
    fs::write(root.join("data"), pseudo_random(1 << 20, 5)).unwrap();
    let mut repo = open_repo(repo_dir.path());
    let again = backup_paths(&mut repo, &[&root], &BackupOptions::default());
    assert!(
        again.run.stats.bytes_new >= 1 << 20,
        "re-stored: {}",
        again.run.stats.bytes_new
    );
    // Now delete everything marked: the newest run must still restore.
    let now = PurgeOptions {
        grace: Duration::ZERO,
        ..long
    };
    let report = purge(&mut repo, &now, &Progress::default()).unwrap();
    assert!(report.volumes_deleted > 0);
    let r = restore_into(
        &open_repo(repo_dir.path()),
        out.path(),
        RestoreOptions::default(),
    );
    assert_complete(&r, "volumes marked for deletion");
    assert_eq!(
        fs::read(out.path().join("data")).unwrap(),
        pseudo_random(1 << 20, 5)
    );
}
