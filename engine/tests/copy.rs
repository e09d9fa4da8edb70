//! Copies: a second repository filled from the first, restoring and purging on its own.
#![allow(clippy::unwrap_used)] // reason: tests

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::*;
use holdfast_engine::Error;
use holdfast_engine::backup::BackupOptions;
use holdfast_engine::copy::{CopyOptions, CopyReport, copy};
use holdfast_engine::format::run::Level;
use holdfast_engine::progress::Progress;
use holdfast_engine::purge::{PurgeOptions, purge};
use holdfast_engine::repo::{Indexed, Repository, RunSelector};
use holdfast_engine::restore::RestoreOptions;
use holdfast_engine::retention::RetentionPolicy;

/// Incompressible files of 0 bytes to 3 MiB whose content depends on `seed`, so runs differ.
fn write_data(root: &Path, seed: u8) {
    fs::create_dir_all(root.join("sub/deeper")).unwrap();
    for (i, size) in [0usize, 17, 4096, 300_000, 3 << 20].into_iter().enumerate() {
        let bytes = holdfast_testkit::pseudo_random(size, u64::from(seed) * 10 + i as u64);
        fs::write(root.join(format!("sub/f{i}")), &bytes).unwrap();
    }
    fs::write(root.join("sub/deeper/seed"), format!("seed {seed}")).unwrap();
}

fn copy_of(from: &Repository<Indexed>, at: &Path) -> Repository<Indexed> {
    Repository::init_copy_of(store(at), from, PASS, 1000)
        .unwrap()
        .load_index()
        .unwrap()
}

fn copy_all(from: &Repository<Indexed>, to: &mut Repository<Indexed>) -> CopyReport {
    copy(from, to, &CopyOptions::default(), &Progress::default()).unwrap()
}

fn incr() -> BackupOptions {
    BackupOptions {
        level: Level::Incr,
        ..BackupOptions::default()
    }
}

fn restore_run(repo: &Repository<Indexed>, label: &str, into: &Path) {
    let r = restore_into(
        repo,
        into,
        RestoreOptions {
            selector: RunSelector::Label(label.to_owned()),
            ..RestoreOptions::default()
        },
    );
    assert_complete(&r, label);
}

/// A source repository with a run of each of `seeds` (a full, then incrementals unless
/// `fulls`), its data directory, and the runs' labels.
fn source_with_runs(
    seeds: std::ops::Range<u8>,
    fulls: bool,
) -> (
    tempfile::TempDir,
    tempfile::TempDir,
    Repository<Indexed>,
    Vec<String>,
) {
    let (src_dir, data) = (tmp(), tmp());
    let root = data.path().join("data");
    let mut src = init_repo(src_dir.path());
    let mut labels = Vec::new();
    for (i, seed) in seeds.enumerate() {
        write_data(&root, seed);
        let opts = if i == 0 || fulls {
            BackupOptions::default()
        } else {
            incr()
        };
        labels.push(backup_paths(&mut src, &[&root], &opts).run.label);
    }
    (src_dir, data, src, labels)
}

#[test]
fn a_copy_alone_restores_every_run_of_its_source_exactly_and_verifies_deep() {
    let (_src_dir, _data, src, labels) = source_with_runs(0..3, false);
    let copy_dir = tmp();
    let mut dst = copy_of(&src, copy_dir.path());
    let report = copy_all(&src, &mut dst);
    let copied: Vec<&str> = report.copied.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(
        copied,
        labels.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(
        report.bytes_moved > 3 << 20 && report.volumes_written > 0,
        "{report:?}"
    );
    assert!(report.pending.is_empty() && !report.stopped);

    // The copy opened on its own, with the passphrase alone.
    drop(dst);
    let alone = open_repo(copy_dir.path());
    assert_deep_ok(&alone, "the copy");
    assert_eq!(alone.owner(), src.owner());
    assert_ne!(
        alone.config().id,
        src.config().id,
        "a repository of its own"
    );
    for label in &labels {
        let (a, b) = (tmp(), tmp());
        restore_run(&src, label, a.path());
        restore_run(&alone, label, b.path());
        assert_same_tree(&snapshot(a.path()), &snapshot(b.path()));
    }
}

#[test]
fn an_unchanged_run_moves_its_manifest_and_no_data_and_a_second_copy_moves_nothing() {
    let (src_dir, copy_dir, data) = (tmp(), tmp(), tmp());
    let root = data.path().join("data");
    write_data(&root, 7);
    let mut src = init_repo(src_dir.path());
    let full = backup_paths(&mut src, &[&root], &BackupOptions::default()).run;
    let mut dst = copy_of(&src, copy_dir.path());
    let first = copy_all(&src, &mut dst);
    let unchanged = backup_paths(&mut src, &[&root], &incr()).run;
    let second = copy_all(&src, &mut dst);
    assert_eq!(second.copied.len(), 1, "{second:?}");
    assert_eq!(second.copied[0].label, unchanged.label);
    assert!(
        second.bytes_moved * 100 < first.bytes_moved,
        "an unchanged run moved {} bytes, the full {}",
        second.bytes_moved,
        first.bytes_moved
    );
    assert!(
        full.stats.bytes_read > 3 << 20 && first.bytes_moved > 3 << 20,
        "{first:?}"
    );
    let third = copy_all(&src, &mut dst);
    assert!(
        third.copied.is_empty() && third.bytes_moved == 0,
        "{third:?}"
    );
    assert_deep_ok(&dst, "the copy");
}

#[test]
fn the_copy_keeps_its_own_retention_and_never_brings_back_a_run_it_expired() {
    let (_src_dir, _data, mut src, labels) = source_with_runs(0..3, true);
    let copy_dir = tmp();
    let mut dst = copy_of(&src, copy_dir.path());
    copy_all(&src, &mut dst);
    // The copy keeps one full cycle, the source all three.
    let keep_one = PurgeOptions {
        policy: RetentionPolicy {
            keep_fulls: Some(1),
            ..RetentionPolicy::default()
        },
        grace: Duration::ZERO,
        ..PurgeOptions::default()
    };
    let purged = purge(&mut dst, &keep_one, &Progress::default()).unwrap();
    assert_eq!(purged.runs_expired.len(), 2, "{purged:?}");
    let again = copy_all(&src, &mut dst);
    assert!(again.copied.is_empty(), "{again:?}");
    assert_eq!(again.expired_at_destination, labels[..2].to_vec());
    assert_eq!(dst.run_labels().unwrap(), labels[2..].to_vec());
    assert_deep_ok(&dst, "the purged copy");

    // Asked for by name, an expired run comes back.
    let asked = copy(
        &src,
        &mut dst,
        &CopyOptions {
            labels: Some(vec![labels[0].clone()]),
            ..CopyOptions::default()
        },
        &Progress::default(),
    )
    .unwrap();
    assert_eq!(asked.copied.len(), 1);
    let out = tmp();
    restore_run(&dst, &labels[0], out.path());

    // Once the source expires its runs too, their records go.
    purge(&mut src, &keep_one, &Progress::default()).unwrap();
    purge(&mut dst, &keep_one, &Progress::default()).unwrap();
    let tidy = copy_all(&src, &mut dst);
    assert_eq!(tidy.records_forgotten, 2, "{tidy:?}");
    assert_eq!(dst.copied_labels().unwrap().len(), 1);
}

#[test]
fn a_repository_not_made_as_a_copy_is_refused_and_left_as_it_was() {
    let (src_dir, other_dir, data) = (tmp(), tmp(), tmp());
    let root = data.path().join("data");
    write_data(&root, 1);
    let mut src = init_repo(src_dir.path());
    backup_paths(&mut src, &[&root], &BackupOptions::default());
    let mut other = init_repo(other_dir.path());
    let before = snapshot(other_dir.path());
    let err = copy(
        &src,
        &mut other,
        &CopyOptions::default(),
        &Progress::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::NotACopy { .. }), "{err}");
    assert!(err.to_string().contains("not made as a copy"), "{err}");
    assert_same_tree(&before, &snapshot(other_dir.path()));
}

#[test]
fn a_run_missing_from_the_source_is_named_with_the_nearest_labels() {
    let (src_dir, copy_dir, data) = (tmp(), tmp(), tmp());
    let root = data.path().join("data");
    write_data(&root, 1);
    let mut src = init_repo(src_dir.path());
    let full = backup_paths(&mut src, &[&root], &BackupOptions::default()).run;
    let mut dst = copy_of(&src, copy_dir.path());
    let err = copy(
        &src,
        &mut dst,
        &CopyOptions {
            labels: Some(vec!["full-20200101.000000".into()]),
            ..CopyOptions::default()
        },
        &Progress::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::RunNotFound { .. }), "{err}");
    assert!(err.to_string().contains(&full.label), "{err}");
}

#[test]
fn a_damaged_source_volume_stops_the_copy_before_the_run_that_needs_it() {
    let (src_dir, copy_dir, data) = (tmp(), tmp(), tmp());
    let root = data.path().join("data");
    write_data(&root, 1);
    let mut src = init_repo(src_dir.path());
    backup_paths(&mut src, &[&root], &BackupOptions::default());
    // Flip one byte in the middle of the largest data volume.
    let largest = walk_files(&src_dir.path().join("data"))
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = fs::read(&largest).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    fs::write(&largest, bytes).unwrap();

    let mut dst = copy_of(&src, copy_dir.path());
    let err = copy(
        &src,
        &mut dst,
        &CopyOptions::default(),
        &Progress::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("failed authentication"), "{err}");
    let dst = open_repo(copy_dir.path());
    assert!(
        dst.run_labels().unwrap().is_empty(),
        "no run without its data"
    );
    assert_deep_ok(&dst, "the copy after a refused run");
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Twenty runs, a copy after every few, and purges on both sides by different policies (the
/// source keeps 3 fulls, the copy 6, neither brakes): both verify deeply, the copy holds
/// exactly the runs its own policy keeps of those it was given, and each restores from the
/// copy alone exactly as it was backed up.
#[test]
fn twenty_runs_purged_on_both_sides_by_their_own_policies_restore_from_the_copy_alone() {
    let (src_dir, copy_dir, data, versions) = (tmp(), tmp(), tmp(), tmp());
    let root = data.path().join("data");
    let mut src = init_repo(src_dir.path());
    let mut dst = copy_of(&src, copy_dir.path());
    let purge_by = |fulls: u32| PurgeOptions {
        policy: RetentionPolicy {
            keep_fulls: Some(fulls),
            ..RetentionPolicy::default()
        },
        grace: Duration::ZERO,
        repack_below: 0.0,
        brake: None,
        ..PurgeOptions::default()
    };
    let mut version_of = std::collections::BTreeMap::new();
    for i in 0..20u8 {
        write_data(&root, i);
        // Labelled by a slot a day apart, not by the clock (which may step back and give a
        // new run the label of one a purge expired).
        let slot = holdfast_engine::backup::Slot {
            time: chrono::DateTime::from_timestamp(1_764_547_200 + i64::from(i) * 86_400, 0)
                .unwrap(),
            id: format!("run-{i}"),
        };
        let level = if i % 3 == 0 { Level::Full } else { Level::Incr };
        let opts = BackupOptions {
            level,
            slot: Some(slot),
            ..BackupOptions::default()
        };
        let label = backup_paths(&mut src, &[&root], &opts).run.label;
        // Keep what this run holds, to compare its restore with later.
        let keep = versions.path().join(&label);
        copy_tree(&root, &keep);
        version_of.insert(label, keep);
        if i % 4 == 3 {
            copy_all(&src, &mut dst);
            purge(&mut src, &purge_by(3), &Progress::default()).unwrap();
            purge(&mut dst, &purge_by(6), &Progress::default()).unwrap();
        }
    }
    copy_all(&src, &mut dst);
    purge(&mut dst, &purge_by(6), &Progress::default()).unwrap();
    assert_deep_ok(&src, "the source");
    drop(dst);
    let alone = open_repo(copy_dir.path());
    assert_deep_ok(&alone, "the copy");
    let held = alone.run_labels().unwrap();
    let fulls = held.iter().filter(|l| l.starts_with("full-")).count();
    assert_eq!(fulls, 6, "the copy keeps its own 6 fulls: {held:?}");
    assert!(
        src.run_labels()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("full-"))
            .count()
            == 3,
        "the source keeps 3"
    );
    for label in &held {
        let out = tmp();
        restore_run(&alone, label, out.path());
        assert_same_tree(&snapshot(&version_of[label]), &snapshot(out.path()));
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}
