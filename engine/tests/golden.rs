//! Format stability: a version-1 repository made by an earlier build is checked in and must
//! stay readable, byte for byte, by every later build.
//!
//! Regenerate only when deliberately introducing a new format version (and keep the old
//! fixture): `cargo test -p holdfast-engine --test golden -- --ignored generate`.
#![allow(clippy::unwrap_used)] // reason: tests

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use holdfast_engine::backup::BackupOptions;
use holdfast_engine::repo::{InitOptions, Repository, RunSelector};
use holdfast_engine::restore::{RestoreOptions, RestoreStatus};
use holdfast_engine::verify::{VerifyDepth, verify};

const GOLDEN_PASS: &[u8] = b"golden fixture passphrase";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-v1")
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

#[test]
#[ignore = "writes the checked-in fixture; run only to create a new format version's fixture"]
fn generate() {
    let dir = fixture();
    let _ = fs::remove_dir_all(&dir);
    let src = tmp();
    let root = src.path().join("golden");
    fs::create_dir(&root).unwrap();
    golden_source(&root);
    let opts = InitOptions {
        kdf_iterations: 1000,
        owner: Some("golden/set".into()),
        ..InitOptions::default()
    };
    let mut repo = Repository::init(store(&dir.join("repo")), GOLDEN_PASS, &opts)
        .unwrap()
        .load_index()
        .unwrap();
    backup_paths(&mut repo, &[&root], &BackupOptions::default());
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

    let report = verify(
        &repo,
        VerifyDepth::Deep {
            sample_percent: None,
        },
        &holdfast_engine::progress::Progress::default(),
    )
    .unwrap();
    assert!(report.ok && report.data_verified, "{report:?}");
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
    assert_eq!(
        r.status,
        RestoreStatus::Complete,
        "{:?}",
        r.unrestored_items
    );
    let expected: BTreeMap<String, String> =
        serde_json::from_slice(&fs::read(dir.join("expected.json")).unwrap()).unwrap();
    assert_eq!(describe(&target), expected);
}
