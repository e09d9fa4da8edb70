//! Format stability: repositories made by earlier builds are checked in and must stay
//! readable, byte for byte, by every later build: `golden-v1` (one level per run) and
//! `golden-v2` (manifest version 2, levels per source, feature `source-levels`), and
//! `golden-blake3` (the same with keyed-BLAKE3 blob ids, feature `blake3-ids`), and
//! `golden-aborted` (a full, then a run stopped on request: status `Aborted`, feature
//! `aborted-runs`).
//!
//! Regenerate only when deliberately introducing a new format version (and keep the old
//! fixtures): `cargo test -p holdfast-engine --test golden -- --ignored generate_v2`
//! (`generate_blake3` for the BLAKE3 one, `generate_aborted` for the aborted one).
#![allow(clippy::unwrap_used)] // reason: tests

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use holdfast_engine::backup::BackupOptions;
use holdfast_engine::crypto::IdScheme;
use holdfast_engine::format::config::{
    FEATURE_ABORTED_RUNS, FEATURE_BLAKE3_IDS, FEATURE_SOURCE_LEVELS,
};
use holdfast_engine::format::run::{Level, RunStatus, SourceStatus};
use holdfast_engine::repo::{InitOptions, Repository, RunSelector};
use holdfast_engine::restore::RestoreOptions;
use holdfast_engine::verify::{VerifyDepth, verify};

const GOLDEN_PASS: &[u8] = b"golden fixture passphrase";

fn fixture() -> PathBuf {
    fixture_named("golden-v1")
}

fn fixture_named(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A working copy of a checked-in repository, so nothing (not even a lock) touches it.
fn copy_of(name: &str) -> (tempfile::TempDir, PathBuf) {
    let copy = tmp();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(fixture_named(name).join("repo"))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    let path = copy.path().join("repo");
    (copy, path)
}

/// path (hex of bytes) → "kind mode size sha256-or-target".
fn describe(root: &Path) -> BTreeMap<String, String> {
    snapshot(root)
        .into_iter()
        .filter(|(p, _)| !p.is_empty())
        .map(|(p, s)| {
            let what = match (&s.content, &s.target) {
                (Some(c), _) => hex::encode(c),
                (_, Some(t)) => String::from_utf8_lossy(t).into_owned(),
                _ => String::new(),
            };
            (
                hex::encode(&p),
                format!("{} {:o} {} {} {}", s.kind, s.mode, s.size, s.mtime.0, what),
            )
        })
        .collect()
}

/// A deep verify reads back every byte and finds nothing wrong.
fn assert_verifies_deeply(
    repo: &holdfast_engine::repo::Repository<holdfast_engine::repo::Indexed>,
) {
    let report = verify(
        repo,
        VerifyDepth::Deep {
            sample_percent: None,
        },
        &holdfast_engine::progress::Progress::default(),
    )
    .unwrap();
    assert!(report.ok && report.data_verified, "{report:?}");
}

fn golden_source(root: &Path) {
    fs::create_dir_all(root.join("docs/empty")).unwrap();
    fs::write(
        root.join("docs/readme.txt"),
        "Holdfast golden fixture\n".repeat(4000),
    )
    .unwrap();
    fs::write(root.join("random.bin"), pseudo_random(700_000, 2026)).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(
        root.join(std::ffi::OsStr::new("caf\u{e9}.txt")),
        b"unicode name",
    )
    .unwrap();
    std::os::unix::fs::symlink("docs/readme.txt", root.join("link")).unwrap();
    fs::set_permissions(root.join("random.bin"), fs::Permissions::from_mode(0o640)).unwrap();
    for (p, t) in [
        ("docs/readme.txt", 1_700_000_000),
        ("random.bin", 1_700_000_100),
        ("empty", 1_700_000_200),
        ("caf\u{e9}.txt", 1_700_000_300),
    ] {
        set_mtime(&root.join(p), t, 0);
    }
    set_mtime(&root.join("link"), 1_700_000_400, 0);
    set_mtime(&root.join("docs/empty"), 1_700_000_500, 0);
    set_mtime(&root.join("docs"), 1_700_000_600, 0);
}

/// A new fixture repository at `dir/repo` (replacing any) holding one full run of the
/// golden source, which lives in the returned directory under `golden`.
fn fixture_with_a_full(
    dir: &Path,
    ids: IdScheme,
) -> (
    tempfile::TempDir,
    holdfast_engine::repo::Repository<holdfast_engine::repo::Indexed>,
) {
    let _ = fs::remove_dir_all(dir);
    let src = tmp();
    let root = src.path().join("golden");
    fs::create_dir(&root).unwrap();
    golden_source(&root);
    let opts = InitOptions {
        kdf_iterations: 1000,
        owner: Some("golden/set".into()),
        ids,
        ..InitOptions::default()
    };
    let mut repo = Repository::init(store(&dir.join("repo")), GOLDEN_PASS, &opts)
        .unwrap()
        .load_index()
        .unwrap();
    backup_paths(&mut repo, &[&root], &BackupOptions::default());
    (src, repo)
}

#[test]
#[ignore = "writes the checked-in fixture; run only to create a new format version's fixture"]
fn generate() {
    let dir = fixture();
    // What builds of that format made.
    let (src, _repo) = fixture_with_a_full(&dir, IdScheme::HmacSha256);
    let root = src.path().join("golden");
    fs::write(
        dir.join("expected.json"),
        serde_json::to_string_pretty(&describe(&root)).unwrap(),
    )
    .unwrap();
}

#[test]
fn golden_v1_repository_still_restores_exactly() {
    let dir = fixture();
    // Work on a copy, so nothing (not even a lock) touches the checked-in files.
    let copy = tmp();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(dir.join("repo"))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    let repo = Repository::open(store(&copy.path().join("repo")), GOLDEN_PASS)
        .unwrap()
        .load_index()
        .unwrap();
    assert_eq!(repo.config().version, 1);
    assert_eq!(repo.owner(), Some("golden/set"));
    let runs = repo.runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].label.starts_with("full-"));

    assert_verifies_deeply(&repo);
    let out = tmp();
    let target = out.path().join("t");
    let r = restore_into(
        &repo,
        &target,
        RestoreOptions {
            selector: RunSelector::Newest,
            owner: false,
            ..RestoreOptions::default()
        },
    );
    assert_complete(&r, "golden v1 repository");
    let expected: BTreeMap<String, String> =
        serde_json::from_slice(&fs::read(dir.join("expected.json")).unwrap()).unwrap();
    assert_eq!(describe(&target), expected);
}

#[test]
#[ignore = "writes the checked-in fixture; run only to create a new format version's fixture"]
fn generate_v2() {
    generate_two_sources("golden-v2", IdScheme::HmacSha256);
}

#[test]
#[ignore = "writes the checked-in fixture; run only to create a new format version's fixture"]
fn generate_blake3() {
    generate_two_sources("golden-blake3", IdScheme::Blake3Keyed);
}

/// Two sources, a full then an incremental with one source at full: the v2 catalog.
fn generate_two_sources(name: &str, ids: IdScheme) {
    let dir = fixture_named(name);
    let _ = fs::remove_dir_all(&dir);
    let src = tmp();
    let (a, b) = (src.path().join("a"), src.path().join("b"));
    fs::create_dir(&a).unwrap();
    golden_source(&a);
    fs::create_dir(&b).unwrap();
    fs::write(
        b.join("dump.sql"),
        "insert into t values (1);\n".repeat(100),
    )
    .unwrap();
    set_mtime(&b.join("dump.sql"), 1_700_001_000, 0);
    let opts = InitOptions {
        kdf_iterations: 1000,
        owner: Some("golden/set".into()),
        ids,
        ..InitOptions::default()
    };
    let mut repo = Repository::init(store(&dir.join("repo")), GOLDEN_PASS, &opts)
        .unwrap()
        .load_index()
        .unwrap();
    let both = [
        holdfast_engine::backup::SourceSpec::path("a", &a),
        holdfast_engine::backup::SourceSpec::path("b", &b),
    ];
    let progress = holdfast_engine::progress::Progress::default();
    holdfast_engine::backup::backup(&mut repo, &both, &BackupOptions::default(), &progress)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fs::write(a.join("empty"), b"now with content").unwrap();
    set_mtime(&a.join("empty"), 1_700_002_000, 0);
    let mixed = BackupOptions {
        level: Level::Incr,
        source_levels: [("b".to_owned(), Level::Full)].into_iter().collect(),
        ..BackupOptions::default()
    };
    holdfast_engine::backup::backup(&mut repo, &both, &mixed, &progress).unwrap();
    fs::write(
        dir.join("expected.json"),
        serde_json::to_string_pretty(&describe(src.path())).unwrap(),
    )
    .unwrap();
}

#[test]
fn golden_v2_repository_keeps_levels_per_source() {
    two_sources_restore_exactly("golden-v2", IdScheme::HmacSha256);
}

#[test]
fn golden_blake3_repository_computes_keyed_blake3_ids_and_restores_exactly() {
    two_sources_restore_exactly("golden-blake3", IdScheme::Blake3Keyed);
}

fn two_sources_restore_exactly(name: &str, ids: IdScheme) {
    let (_copy, path) = copy_of(name);
    let repo = Repository::open(store(&path), GOLDEN_PASS)
        .unwrap()
        .load_index()
        .unwrap();
    assert!(repo.config().features.requires(FEATURE_SOURCE_LEVELS));
    assert_eq!(repo.key().id_scheme(), ids);
    assert_eq!(
        repo.config().features.requires(FEATURE_BLAKE3_IDS),
        ids == IdScheme::Blake3Keyed
    );
    let runs = repo.runs().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs[0].label.starts_with("full-") && runs[1].label.starts_with("incr-"));
    let levels: Vec<(String, Option<Level>, Option<String>)> = runs[1]
        .sources
        .iter()
        .map(|s| (s.name.clone(), s.level, s.parent.clone()))
        .collect();
    assert_eq!(
        levels,
        [
            ("a".into(), Some(Level::Incr), Some(runs[0].label.clone())),
            ("b".into(), Some(Level::Full), None)
        ]
    );
    assert_verifies_deeply(&repo);
    let out = tmp();
    let r = restore_into(
        &repo,
        out.path(),
        RestoreOptions {
            owner: false,
            ..RestoreOptions::default()
        },
    );
    assert_complete(&r, &format!("fixture {name}"));
    let expected: BTreeMap<String, String> =
        serde_json::from_slice(&fs::read(fixture_named(name).join("expected.json")).unwrap())
            .unwrap();
    assert_eq!(describe(out.path()), expected);
}

#[test]
fn golden_v1_repository_takes_new_runs_and_purges_per_source() {
    let (_copy, path) = copy_of("golden-v1");
    let mut repo = Repository::open(store(&path), GOLDEN_PASS)
        .unwrap()
        .load_index()
        .unwrap();
    assert!(!repo.config().features.requires(FEATURE_SOURCE_LEVELS));
    let v1 = repo.runs().unwrap().remove(0);
    let src = tmp();
    let root = src.path().join("golden");
    fs::create_dir(&root).unwrap();
    golden_source(&root);
    let incr = backup_paths(
        &mut repo,
        &[&root],
        &BackupOptions {
            level: Level::Incr,
            ..BackupOptions::default()
        },
    );
    assert!(!incr.promoted, "the version 1 full is this source's full");
    assert_eq!(
        incr.run.sources[0].base_full.as_deref(),
        Some(v1.label.as_str())
    );
    assert_eq!(
        incr.run.sources[0].parent.as_deref(),
        Some(v1.label.as_str())
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(path.join("config")).unwrap()).unwrap();
    assert_eq!(
        cfg["features"]["delete"],
        serde_json::json!([FEATURE_SOURCE_LEVELS])
    );
    let report = holdfast_engine::purge::purge(
        &mut repo,
        &holdfast_engine::purge::PurgeOptions {
            policy: holdfast_engine::retention::RetentionPolicy {
                keep_fulls: Some(1),
                ..Default::default()
            },
            grace: std::time::Duration::ZERO,
            ..Default::default()
        },
        &holdfast_engine::progress::Progress::default(),
    )
    .unwrap();
    assert!(report.runs_expired.is_empty(), "{report:?}");
    assert_verifies_deeply(&repo);
}

#[test]
#[ignore = "writes the checked-in fixture; run only to create a new format version's fixture"]
fn generate_aborted() {
    let dir = fixture_named("golden-aborted");
    let (src, mut repo) = fixture_with_a_full(&dir, IdScheme::Blake3Keyed);
    let root = src.path().join("golden");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // Stopped before it read anything (as a SIGTERM at its start): recorded as Aborted.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let aborted = backup_paths(
        &mut repo,
        &[&root],
        &BackupOptions {
            level: Level::Incr,
            stop: Some(stop),
            ..BackupOptions::default()
        },
    );
    assert_eq!(aborted.run.status, RunStatus::Aborted);
    fs::write(
        dir.join("expected.json"),
        serde_json::to_string_pretty(&describe(&root)).unwrap(),
    )
    .unwrap();
}

#[test]
fn golden_aborted_repository_lists_its_aborted_run_and_restores_the_complete_one() {
    let (_copy, path) = copy_of("golden-aborted");
    let repo = Repository::open(store(&path), GOLDEN_PASS)
        .unwrap()
        .load_index()
        .unwrap();
    // Every operation reads the catalog, so every one needs to know the status.
    let cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(path.join("config")).unwrap()).unwrap();
    for op in ["read", "write", "check", "delete"] {
        assert!(
            cfg["features"][op]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!(FEATURE_ABORTED_RUNS)),
            "{op}: {cfg}"
        );
    }
    let runs = repo.runs().unwrap();
    let statuses: Vec<RunStatus> = runs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [RunStatus::Complete, RunStatus::Aborted]);
    assert!(runs[1].aborted);
    assert_eq!(runs[1].sources[0].status, SourceStatus::Failed);
    assert_verifies_deeply(&repo);
    // The newest restore point is the complete run before the aborted one.
    let out = tmp();
    let r = restore_into(
        &repo,
        out.path(),
        RestoreOptions {
            owner: false,
            ..RestoreOptions::default()
        },
    );
    assert_complete(&r, "fixture golden-aborted");
    assert_eq!(r.run, runs[0].label);
    let expected: BTreeMap<String, String> = serde_json::from_slice(
        &fs::read(fixture_named("golden-aborted").join("expected.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(describe(out.path()), expected);
}
