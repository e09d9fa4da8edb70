//! Bad input gets a clear error and loses nothing: wrong key, not a repository, newer
//! format, full disk, corrupted volume, unwritable restore target, foreign owner.
#![allow(clippy::unwrap_used)] // reason: tests

mod common;

use std::fs;
use std::path::Path;

use common::*;
use holdfast_engine::Error;
use holdfast_engine::backup::{BackupOptions, SourceSpec, backup};
use holdfast_engine::format::run::RunStatus;
use holdfast_engine::progress::Progress;
use holdfast_engine::repo::{InitOptions, Repository};
use holdfast_engine::restore::{RestoreOptions, RestoreStatus};
use holdfast_engine::verify::{VerifyDepth, verify};

fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path().display().to_string(), e.metadata().unwrap().len()));
            }
        }
    }
    out.sort();
    out
}

fn sample_tree(root: &Path) {
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("a.bin"), pseudo_random(3 << 20, 11)).unwrap();
    fs::write(root.join("sub/b.bin"), pseudo_random(3 << 20, 12)).unwrap();
    fs::write(root.join("c.txt"), b"small file").unwrap();
}

#[test]
fn wrong_passphrase_is_reported_as_wrong_key_and_writes_nothing() {
    let repo_dir = tmp();
    drop(init_repo(repo_dir.path()));
    let before = listing(repo_dir.path());
    let err = Repository::open(store(repo_dir.path()), b"not the passphrase").unwrap_err();
    assert!(matches!(err, Error::WrongKey { .. }), "{err:?}");
    assert_eq!(err.category(), holdfast_engine::ErrorCategory::WrongKey);
    assert!(err.to_string().contains("wrong key"), "{err}");
    assert_eq!(listing(repo_dir.path()), before);
}

#[test]
fn missing_or_foreign_directory_is_not_a_repository() {
    let dir = tmp();
    let missing = dir.path().join("nope");
    let err = Repository::open(store(&missing), PASS).unwrap_err();
    assert!(matches!(err, Error::NotARepository { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "names the path: {err}"
    );
    fs::write(dir.path().join("config"), b"[core]\nbare = false\n").unwrap();
    let err = Repository::open(store(dir.path()), PASS).unwrap_err();
    assert!(matches!(err, Error::NotARepository { .. }), "{err:?}");
}

#[test]
fn newer_format_version_is_refused_clearly() {
    let repo_dir = tmp();
    drop(init_repo(repo_dir.path()));
    let path = repo_dir.path().join("config");
    let mut config: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    config["version"] = 2.into();
    fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let err = Repository::open(store(repo_dir.path()), PASS).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("upgrade holdfast"), "{err}");
}

#[test]
fn unknown_write_feature_refuses_backup_but_not_restore() {
    let (repo_dir, src, out) = (tmp(), tmp(), tmp());
    sample_tree(src.path());
    let mut repo = init_repo(repo_dir.path());
    backup_paths(&mut repo, &[src.path()], &BackupOptions::default());
    let path = repo_dir.path().join("config");
    let mut config: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    config["features"]["write"] = serde_json::json!(["future-thing"]);
    fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let mut repo = open_repo(repo_dir.path());
    let sources = [SourceSpec::from_path(src.path().to_path_buf())];
    let err = backup(
        &mut repo,
        &sources,
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedFeature {
                operation: "write",
                ..
            }
        ),
        "{err:?}"
    );
    let r = restore_into(&repo, &out.path().join("t"), RestoreOptions::default());
    assert_eq!(r.status, RestoreStatus::Complete);
}

#[test]
fn repository_of_another_backup_set_is_refused_unless_forced() {
    let (repo_dir, src) = (tmp(), tmp());
    sample_tree(src.path());
    let opts = InitOptions {
        owner: Some("shop/shop".into()),
        kdf_iterations: 1000,
        ..InitOptions::default()
    };
    let mut repo = Repository::init(store(repo_dir.path()), PASS, &opts)
        .unwrap()
        .load_index()
        .unwrap();
    let sources = [SourceSpec::from_path(src.path().to_path_buf())];
    let other = BackupOptions {
        owner: Some("blog/blog".into()),
        ..BackupOptions::default()
    };
    let err = backup(&mut repo, &sources, &other, &Progress::default()).unwrap_err();
    assert!(matches!(err, Error::OwnedByOther { .. }), "{err:?}");
    assert!(err.to_string().contains("shop/shop"), "{err}");
    assert!(repo.run_labels().unwrap().is_empty(), "nothing written");
    let forced = BackupOptions {
        force: true,
        ..other
    };
    backup(&mut repo, &sources, &forced, &Progress::default()).unwrap();
    let same = BackupOptions {
        owner: Some("shop/shop".into()),
        ..BackupOptions::default()
    };
    backup(&mut repo, &sources, &same, &Progress::default()).unwrap();
}

/// Mount a small tmpfs; `None` where mounting is not permitted (not root).
struct TinyFs(std::path::PathBuf);

impl TinyFs {
    fn mount(at: &Path, size: &str) -> Option<Self> {
        Self::mount_with(at, &format!("size={size}"))
    }

    fn mount_with(at: &Path, options: &str) -> Option<Self> {
        fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| TinyFs(at.to_path_buf()))
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn disk_full_fails_the_run_cleanly_and_the_repository_still_verifies() {
    let (base, src) = (tmp(), tmp());
    let Some(mnt) = TinyFs::mount(&base.path().join("mnt"), "6m") else {
        eprintln!("SKIP disk_full test: cannot mount a tmpfs here (needs root)");
        return;
    };
    let repo_path = mnt.0.join("repo");
    fs::create_dir(src.path().join("small")).unwrap();
    fs::write(src.path().join("small/f"), b"fits").unwrap();
    let mut repo = init_repo(&repo_path);
    backup_paths(
        &mut repo,
        &[&src.path().join("small")],
        &BackupOptions::default(),
    );
    let big = src.path().join("big");
    fs::create_dir(&big).unwrap();
    for i in 0..4 {
        fs::write(big.join(format!("f{i}")), pseudo_random(3 << 20, i)).unwrap();
    }
    let sources = [SourceSpec::from_path(big.clone())];
    let err = backup(
        &mut repo,
        &sources,
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.category(),
        holdfast_engine::ErrorCategory::NoSpace,
        "{err:?}"
    );
    assert!(err.to_string().contains("no space left"), "{err}");

    let repo = open_repo(&repo_path);
    assert_eq!(
        repo.run_labels().unwrap().len(),
        1,
        "the failed run left no manifest"
    );
    let report = verify(
        &repo,
        VerifyDepth::Deep {
            sample_percent: None,
        },
        &Progress::default(),
    )
    .unwrap();
    assert!(report.ok, "{report:?}");
    let leftovers: Vec<_> = listing(&repo_path)
        .into_iter()
        .filter(|(p, _)| p.contains(".tmp-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files removed: {leftovers:?}"
    );
}

fn flip_byte_in_largest_data_volume(repo_dir: &Path) -> String {
    let (path, _) = listing(&repo_dir.join("data"))
        .into_iter()
        .max_by_key(|(_, len)| *len)
        .unwrap();
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    fs::write(&path, bytes).unwrap();
    Path::new(&path)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn corrupted_volume_is_named_with_affected_runs_and_files_and_the_rest_restores() {
    let (repo_dir, src, out) = (tmp(), tmp(), tmp());
    let root = src.path().join("data");
    sample_tree(&root);
    let mut repo = init_repo(repo_dir.path());
    let run = backup_paths(&mut repo, &[&root], &BackupOptions::default())
        .run
        .label;
    let volume = flip_byte_in_largest_data_volume(repo_dir.path());

    let repo = open_repo(repo_dir.path());
    let quick = verify(&repo, VerifyDepth::Quick, &Progress::default()).unwrap();
    assert!(
        !quick.data_verified,
        "quick verify must not claim the data is intact"
    );

    let deep = verify(
        &repo,
        VerifyDepth::Deep {
            sample_percent: None,
        },
        &Progress::default(),
    )
    .unwrap();
    assert!(!deep.ok);
    assert_eq!(deep.damaged_volumes.len(), 1, "{:?}", deep.damaged_volumes);
    let damaged = &deep.damaged_volumes[0];
    assert_eq!(damaged.volume, volume);
    assert_eq!(damaged.runs, vec![run.clone()]);
    assert_eq!(damaged.files.len(), 1, "{:?}", damaged.files);
    let hit = &damaged.files[0];
    assert_eq!(hit.run, run);
    assert!(
        hit.path == "data:/a.bin" || hit.path == "data:/sub/b.bin",
        "{hit:?}"
    );

    let target = out.path().join("t");
    let r = restore_into(&repo, &target, RestoreOptions::default());
    assert_eq!(r.status, RestoreStatus::Partial);
    assert_eq!(r.unrestored, 1, "{:?}", r.unrestored_items);
    assert!(
        r.unrestored_items[0].reason.contains("unreadable"),
        "{:?}",
        r.unrestored_items
    );
    assert_eq!(fs::read(target.join("c.txt")).unwrap(), b"small file");
    let damaged_rel = hit.path.trim_start_matches("data:/");
    assert!(
        !target.join(damaged_rel).exists(),
        "no half-restored file is left"
    );
    let other = if damaged_rel == "a.bin" {
        "sub/b.bin"
    } else {
        "a.bin"
    };
    assert_eq!(
        fs::read(target.join(other)).unwrap(),
        fs::read(root.join(other)).unwrap()
    );
}

#[test]
fn unwritable_restore_target_is_reported_per_item_and_restore_continues() {
    let (repo_dir, src, out) = (tmp(), tmp(), tmp());
    let root = src.path().join("data");
    sample_tree(&root);
    let mut repo = init_repo(repo_dir.path());
    backup_paths(&mut repo, &[&root], &BackupOptions::default());
    let target = out.path().join("t");
    fs::create_dir(&target).unwrap();
    // A file where the backup has a directory: sub/ cannot be created.
    fs::write(target.join("sub"), b"in the way").unwrap();
    let r = restore_into(&repo, &target, RestoreOptions::default());
    assert_eq!(r.status, RestoreStatus::Partial);
    assert!(
        r.unrestored_items
            .iter()
            .any(|i| i.path == "data:/sub" && i.reason.contains("not a directory")),
        "{:?}",
        r.unrestored_items
    );
    assert!(target.join("a.bin").exists() && target.join("c.txt").exists());

    // Without continue-on-error the restore stops at the first failure.
    let target2 = out.path().join("t2");
    fs::create_dir(&target2).unwrap();
    fs::write(target2.join("sub"), b"in the way").unwrap();
    let r = restore_into(
        &repo,
        &target2,
        RestoreOptions {
            continue_on_error: false,
            ..RestoreOptions::default()
        },
    );
    assert_eq!(r.status, RestoreStatus::Failed);
}

#[test]
fn read_only_restore_target_lists_every_item_with_its_reason() {
    let (repo_dir, src, base) = (tmp(), tmp(), tmp());
    let root = src.path().join("data");
    sample_tree(&root);
    let mut repo = init_repo(repo_dir.path());
    backup_paths(&mut repo, &[&root], &BackupOptions::default());
    // A read-only filesystem is unwritable even for root.
    let Some(ro) = TinyFs::mount_with(&base.path().join("ro"), "size=1m,ro") else {
        eprintln!("SKIP read-only target test: cannot mount a tmpfs here (needs root)");
        return;
    };
    let r = restore_into(&repo, &ro.0, RestoreOptions::default());
    assert_eq!(r.status, RestoreStatus::Partial, "{r:?}");
    assert_eq!(r.restored, 0, "{r:?}");
    // The (empty, so fresh) root's owner and mode, a.bin, c.txt and sub/ (whose contents
    // cannot be reached once it cannot be created).
    assert_eq!(r.unrestored_items.len(), 4, "{:?}", r.unrestored_items);
    assert!(
        r.unrestored_items
            .iter()
            .any(|i| i.path == "data:/" && i.reason.starts_with("metadata not applied")),
        "{:?}",
        r.unrestored_items
    );
    assert!(
        r.unrestored_items
            .iter()
            .all(|i| i.reason.contains("Read-only file system")),
        "{:?}",
        r.unrestored_items
    );
}

#[test]
fn second_full_of_unchanged_data_adds_almost_nothing() {
    let (repo_dir, src) = (tmp(), tmp());
    let root = src.path().join("data");
    sample_tree(&root);
    let mut repo = init_repo(repo_dir.path());
    let first = backup_paths(&mut repo, &[&root], &BackupOptions::default()).run;
    let second = backup_paths(&mut repo, &[&root], &BackupOptions::default()).run;
    assert_eq!(second.status, RunStatus::Complete);
    assert_eq!(
        second.stats.bytes_read, first.stats.bytes_read,
        "a full rereads everything"
    );
    assert!(
        second.stats.bytes_new * 100 < first.stats.bytes_new,
        "{} vs {}",
        second.stats.bytes_new,
        first.stats.bytes_new
    );
    assert_ne!(first.label, second.label);
}
