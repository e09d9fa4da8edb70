//! What a first-time user trips over: storage checks, init into an occupied place, leftovers
//! of a killed restore, a purge that cannot finish, progress that adds up.
#![allow(clippy::unwrap_used)] // reason: tests

mod common;

use std::fs;
use std::time::Duration;

use common::*;
use holdfast_engine::backup::BackupOptions;
use holdfast_engine::progress::Progress;
use holdfast_engine::purge::{PurgeOptions, purge};
use holdfast_engine::repo::check_location;
use holdfast_engine::repo::{InitOptions, LockKind, Repository};
use holdfast_engine::restore::RestoreOptions;
use holdfast_engine::retention::RetentionPolicy;
use holdfast_engine::verify::{VerifyDepth, verify};
use holdfast_engine::{Error, ErrorCategory};

#[test]
fn storage_check_passes_on_an_existing_local_repository() {
    let dir = tmp();
    init_repo(dir.path());
    let report = check_location(&store(dir.path()));
    assert!(report.ok, "{report:#?}");
    let repo = report
        .items
        .iter()
        .find(|i| i.check == "repository")
        .unwrap();
    assert!(repo.detail.contains("found"), "{repo:?}");
}

#[test]
fn storage_check_of_a_missing_directory_creates_nothing() {
    let dir = tmp();
    let missing = dir.path().join("not/yet");
    let report = check_location(&store(&missing));
    assert!(report.ok, "{report:#?}");
    let loc = report.items.iter().find(|i| i.check == "location").unwrap();
    assert!(loc.detail.contains("does not exist yet"), "{loc:?}");
    assert!(
        !dir.path().join("not").exists(),
        "the check created the directory"
    );
}

#[test]
fn init_refuses_a_directory_holding_other_data_unless_allowed() {
    let dir = tmp();
    fs::write(dir.path().join("vacation.jpg"), "pixels").unwrap();
    let opts = InitOptions {
        kdf_iterations: 1000,
        ..InitOptions::default()
    };
    let err = Repository::init(store(dir.path()), PASS, &opts).unwrap_err();
    assert_eq!(err.category(), ErrorCategory::LocationNotEmpty);
    assert!(err.to_string().contains("vacation.jpg"), "{err}");
    assert!(!dir.path().join("config").exists());
    let allowed = InitOptions {
        allow_non_empty: true,
        ..opts.clone()
    };
    Repository::init(store(dir.path()), PASS, &allowed).unwrap();
    assert!(dir.path().join("vacation.jpg").exists());
    let again = Repository::init(store(dir.path()), PASS, &allowed).unwrap_err();
    assert_eq!(
        again.category(),
        ErrorCategory::RepositoryExists,
        "not a storage failure"
    );
}

#[test]
fn leftovers_of_a_killed_restore_are_removed_and_reported() {
    let (src, repo_dir, out) = (tmp(), tmp(), tmp());
    let root = src.path().join("d");
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("sub/f"), "content").unwrap();
    let mut repo = init_repo(repo_dir.path());
    backup_paths(&mut repo, &[&root], &BackupOptions::default());
    // What a restore killed by its pid's end leaves: a half-written entry under a
    // temporary name next to where it was going.
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let dead_pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    let target = out.path().join("t");
    fs::create_dir_all(target.join("sub")).unwrap();
    let leftover = target.join(format!("sub/.holdfast-restore-{dead_pid}-7"));
    fs::write(&leftover, "half").unwrap();
    let r = restore_into(
        &repo,
        &target,
        RestoreOptions {
            owner: false,
            ..RestoreOptions::default()
        },
    );
    assert_eq!(r.leftovers_removed, 1, "{:?}", r.leftovers);
    assert!(r.leftovers[0].reason.contains("interrupted restore"));
    assert!(!leftover.exists());
    assert_eq!(fs::read_to_string(target.join("sub/f")).unwrap(), "content");
}

#[test]
fn a_purge_that_cannot_delete_says_what_it_did_and_did_not() {
    let (src, repo_dir) = (tmp(), tmp());
    let root = src.path().join("d");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("old"), pseudo_random(1 << 20, 1)).unwrap();
    let mut repo = init_repo(repo_dir.path());
    backup_paths(&mut repo, &[&root], &BackupOptions::default());
    std::thread::sleep(Duration::from_millis(1100));
    fs::remove_file(root.join("old")).unwrap();
    fs::write(root.join("new"), pseudo_random(1 << 20, 2)).unwrap();
    backup_paths(&mut repo, &[&root], &BackupOptions::default());
    // A shared lock (a running backup) blocks only the delete phase.
    let _backup = repo
        .lock(LockKind::Shared, "backup", Duration::ZERO)
        .unwrap();
    let opts = PurgeOptions {
        policy: RetentionPolicy {
            keep_fulls: Some(1),
            ..RetentionPolicy::default()
        },
        grace: Duration::ZERO,
        ..PurgeOptions::default()
    };
    let report = purge(&mut repo, &opts, &Progress::default()).unwrap();
    assert_eq!(report.runs_expired.len(), 1);
    assert_eq!(report.volumes_deleted, 0);
    let why = report.delete_deferred.as_deref().unwrap();
    assert!(
        why.contains("done: 1 runs expired") && why.contains("not done") && why.contains("locked"),
        "{why}"
    );
    drop(_backup);
    let next = purge(&mut repo, &opts, &Progress::default()).unwrap();
    assert!(
        next.volumes_deleted > 0 && next.delete_deferred.is_none(),
        "{next:?}"
    );
}

#[test]
fn deep_verify_progress_counts_items_it_announced() {
    let (src, repo_dir) = (tmp(), tmp());
    fs::write(src.path().join("f"), pseudo_random(3 << 20, 5)).unwrap();
    let mut repo = init_repo(repo_dir.path());
    backup_paths(&mut repo, &[src.path()], &BackupOptions::default());
    let progress = Progress::default();
    let r = verify(
        &repo,
        VerifyDepth::Deep {
            sample_percent: None,
        },
        &progress,
    )
    .unwrap();
    assert!(r.ok);
    let s = progress.snapshot();
    assert_eq!(s.items_done, s.items_total, "{s:?}");
    assert_eq!(s.bytes_done, s.bytes_total, "{s:?}");
    let sampled = verify(
        &repo,
        VerifyDepth::Deep {
            sample_percent: Some(50.0),
        },
        &Progress::default(),
    )
    .unwrap();
    assert!(sampled.ok && !sampled.data_verified && sampled.volumes_read > 0);
    let _ = Error::NoRuns;
}
