//! A repository never lies inside another, or around one: `init` refuses both, and
//! destroying a repository deletes only the objects of its own layout, refusing while
//! another repository lies inside it (before, deleting the outer one destroyed the inner).
#![allow(clippy::unwrap_used)] // reason: tests

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::*;
use holdfast_engine::backup::BackupOptions;
use holdfast_engine::repo::{InitOptions, Repository};
use holdfast_engine::{Error, ErrorCategory};

fn opts() -> InitOptions {
    InitOptions {
        kdf_iterations: 1000,
        pack_size: 1 << 20,
        ..InitOptions::default()
    }
}

fn with_a_run(path: &Path, src: &Path) {
    let mut repo = Repository::init(store(path), PASS, &opts())
        .unwrap()
        .load_index()
        .unwrap();
    backup_paths(&mut repo, &[src], &BackupOptions::default());
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn init_refuses_a_location_inside_a_repository_or_around_one() {
    let (dir, src) = (tmp(), tmp());
    fs::write(src.path().join("f"), b"data").unwrap();
    let outer = dir.path().join("ns/outer");
    with_a_run(&outer, src.path());

    for (inner, allow) in [("ns/outer/nested", false), ("ns/outer/a/b/c", true)] {
        let o = InitOptions {
            allow_non_empty: allow,
            ..opts()
        };
        let err = Repository::init(store(&dir.path().join(inner)), PASS, &o).unwrap_err();
        assert_eq!(err.category(), ErrorCategory::NestedRepository, "{err}");
        assert!(
            matches!(&err, Error::InsideRepository { outer: o, .. } if o.ends_with("ns/outer")),
            "{err}"
        );
    }
    // A neighbour whose name merely starts the same is fine.
    Repository::init(store(&dir.path().join("ns/outer2")), PASS, &opts()).unwrap();

    // Around one: only with --allow-non-empty does init look past a non-empty location,
    // and then it still refuses.
    let around = InitOptions {
        allow_non_empty: true,
        ..opts()
    };
    let err = Repository::init(store(&dir.path().join("ns")), PASS, &around).unwrap_err();
    assert_eq!(err.category(), ErrorCategory::NestedRepository, "{err}");
    assert!(err.to_string().contains("outer/"), "{err}");
}

#[test]
fn destroying_a_repository_deletes_its_own_objects_only_and_never_one_inside_it() {
    let (dir, src, other) = (tmp(), tmp(), tmp());
    fs::write(src.path().join("f"), b"data").unwrap();
    let outer = dir.path().join("outer");
    with_a_run(&outer, src.path());
    // A repository inside it, as a build before this refusal could make.
    let made_apart = other.path().join("inner");
    with_a_run(&made_apart, src.path());
    copy_dir(&made_apart, &outer.join("nested"));

    let repo = Repository::open(store(&outer), PASS).unwrap();
    let err = repo.destroy(None, Duration::ZERO, false).unwrap_err();
    assert_eq!(err.category(), ErrorCategory::NestedRepository, "{err}");
    assert!(err.to_string().contains("nested/"), "{err}");
    // Nothing was deleted: both still open and list their runs.
    let inner = Repository::open(store(&outer.join("nested")), PASS)
        .unwrap()
        .load_index()
        .unwrap();
    assert_eq!(inner.runs().unwrap().len(), 1);
    assert_eq!(open_repo(&outer).runs().unwrap().len(), 1);

    // Without the inner repository, a stray file stays and everything of the layout goes.
    fs::remove_dir_all(outer.join("nested")).unwrap();
    fs::write(outer.join("notes.txt"), b"the user's").unwrap();
    let dry = Repository::open(store(&outer), PASS)
        .unwrap()
        .destroy(None, Duration::ZERO, true)
        .unwrap();
    assert!(dry.dry_run && dry.objects_deleted > 5, "{dry:?}");
    assert_eq!(
        open_repo(&outer).runs().unwrap().len(),
        1,
        "a dry run deletes nothing"
    );
    let done = Repository::open(store(&outer), PASS)
        .unwrap()
        .destroy(None, Duration::ZERO, false)
        .unwrap();
    assert_eq!(done.objects_deleted, dry.objects_deleted);
    assert_eq!(done.kept, ["notes.txt"]);
    let left: Vec<_> = fs::read_dir(&outer)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["notes.txt"]);
}
