//! Levels, retention and restore are per source: a repository holds many sources, each
//! with its own rhythm, and a run may hold them at different levels.
#![allow(clippy::unwrap_used)] // reason: tests

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use common::*;
use holdfast_engine::Error;
use holdfast_engine::backup::{BackupOptions, BackupReport, SourceSpec, backup};
use holdfast_engine::format::aad;
use holdfast_engine::format::config::FEATURE_SOURCE_LEVELS;
use holdfast_engine::format::run::{Level, RunManifest, SourceStatus};
use holdfast_engine::progress::Progress;
use holdfast_engine::purge::{PurgeOptions, purge};
use holdfast_engine::repo::{Indexed, Repository, RunSelector};
use holdfast_engine::restore::{RestoreOptions, RestoreStatus, RestoreTarget, restore};
use holdfast_engine::retention::RetentionPolicy;

fn run(
    repo: &mut Repository<Indexed>,
    sources: &[(&str, &Path)],
    level: Level,
    per_source: &[(&str, Level)],
) -> BackupReport {
    let specs: Vec<SourceSpec> = sources
        .iter()
        .map(|(n, p)| SourceSpec::path(*n, *p))
        .collect();
    let opts = BackupOptions {
        level,
        source_levels: per_source
            .iter()
            .map(|(n, l)| ((*n).to_owned(), *l))
            .collect::<BTreeMap<_, _>>(),
        ..BackupOptions::default()
    };
    let report = backup(repo, &specs, &opts, &Progress::default()).unwrap();
    // Labels have one-second resolution: keep runs apart so their order is their time.
    std::thread::sleep(Duration::from_millis(1100));
    report
}

fn keep_fulls(n: u32) -> PurgeOptions {
    PurgeOptions {
        policy: RetentionPolicy {
            keep_fulls: Some(n),
            ..RetentionPolicy::default()
        },
        grace: Duration::ZERO,
        ..PurgeOptions::default()
    }
}

fn restore_sources(
    repo: &Repository<Indexed>,
    target: &Path,
    sources: &[&str],
) -> Result<holdfast_engine::restore::RestoreReport, Error> {
    restore(
        repo,
        &RestoreOptions {
            sources: sources.iter().map(|s| (*s).to_owned()).collect(),
            target: RestoreTarget::Directory(target.to_path_buf()),
            owner: false,
            ..RestoreOptions::default()
        },
        &Progress::default(),
    )
}

fn tree(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (name, content) in files {
        fs::write(dir.join(name), content).unwrap();
    }
}

#[test]
fn purge_never_expires_a_sources_only_run() {
    let (src, repo_dir) = (tmp(), tmp());
    let (a, b) = (src.path().join("a"), src.path().join("b"));
    tree(&a, &[("photo.jpg", "pixels")]);
    tree(&b, &[("dump.sql", "rows")]);
    // Version 1 repositories have HMAC-SHA256 ids.
    let mut repo = init_repo_with(
        repo_dir.path(),
        holdfast_engine::crypto::IdScheme::HmacSha256,
    );
    let uploads = run(&mut repo, &[("uploads", &a)], Level::Full, &[]).run;
    run(&mut repo, &[("db", &b)], Level::Full, &[]);
    run(&mut repo, &[("db", &b)], Level::Incr, &[]);
    let newsrc = run(&mut repo, &[("newsrc", &a)], Level::Incr, &[]);

    // A source with no full of its own is promoted, whatever other sources have.
    assert_eq!(newsrc.promoted_sources, ["newsrc"]);
    assert_eq!(newsrc.run.level, Level::Full);
    assert!(newsrc.run.label.starts_with("full-"));
    assert_eq!(newsrc.run.sources[0].level, Some(Level::Full));
    assert_eq!(newsrc.run.sources[0].parent, None);

    let report = purge(&mut repo, &keep_fulls(1), &Progress::default()).unwrap();
    let expired: Vec<&str> = report
        .runs_expired
        .iter()
        .map(|e| e.label.as_str())
        .collect();
    assert!(!expired.contains(&uploads.label.as_str()), "{report:#?}");
    assert!(
        expired.is_empty(),
        "each source keeps its one cycle: {report:#?}"
    );

    // Restore without a label finds uploads in its own newest run.
    let out = tmp();
    let r = restore_sources(&repo, out.path(), &["uploads"]).unwrap();
    assert_eq!(r.status, RestoreStatus::Complete);
    assert_eq!(r.targets[0].run, uploads.label);
    assert_eq!(
        fs::read_to_string(out.path().join("photo.jpg")).unwrap(),
        "pixels"
    );
    assert_deep_ok(&repo, "the repository");
}

#[test]
fn a_run_can_hold_sources_at_different_levels() {
    let (src, repo_dir) = (tmp(), tmp());
    let (a, b) = (src.path().join("a"), src.path().join("b"));
    tree(&a, &[("1", "one"), ("2", "two")]);
    tree(&b, &[("3", "three")]);
    let mut repo = init_repo(repo_dir.path());
    let first = run(&mut repo, &[("a", &a), ("b", &b)], Level::Full, &[]).run;
    // The Auto schedule's shape: b gets its full, a stays incremental.
    let second = run(
        &mut repo,
        &[("a", &a), ("b", &b)],
        Level::Incr,
        &[("b", Level::Full)],
    )
    .run;
    assert!(
        second.label.starts_with("incr-"),
        "labelled by its most incremental source"
    );
    let level_of = |r: &RunManifest, n: &str| {
        let s = r.sources.iter().find(|s| s.name == n).unwrap();
        (s.level, s.parent.clone(), s.base_full.clone())
    };
    assert_eq!(
        level_of(&second, "a"),
        (
            Some(Level::Incr),
            Some(first.label.clone()),
            Some(first.label.clone())
        )
    );
    assert_eq!(level_of(&second, "b"), (Some(Level::Full), None, None));
    assert_eq!(second.parent, None, "no common parent");
    let a_stats = &second.sources.iter().find(|s| s.name == "a").unwrap().stats;
    assert_eq!(
        a_stats.files_unchanged, 2,
        "a's incremental reused its unchanged files"
    );

    let third = run(&mut repo, &[("a", &a), ("b", &b)], Level::Incr, &[]).run;
    assert_eq!(level_of(&third, "a").1, Some(second.label.clone()));
    assert_eq!(
        level_of(&third, "b"),
        (
            Some(Level::Incr),
            Some(second.label.clone()),
            Some(second.label.clone())
        )
    );

    // keepFulls 1: a's cycle starts at the first run, b's at the second; all stay.
    let report = purge(&mut repo, &keep_fulls(1), &Progress::default()).unwrap();
    assert!(report.runs_expired.is_empty(), "{report:#?}");
    // A new full of both leaves the first run needed by nobody.
    run(&mut repo, &[("a", &a), ("b", &b)], Level::Full, &[]);
    let report = purge(&mut repo, &keep_fulls(1), &Progress::default()).unwrap();
    let expired: Vec<&str> = report
        .runs_expired
        .iter()
        .map(|e| e.label.as_str())
        .collect();
    assert_eq!(
        expired,
        [
            first.label.as_str(),
            second.label.as_str(),
            third.label.as_str()
        ]
    );
    assert_deep_ok(&repo, "the repository");
}

#[test]
fn restore_takes_each_source_from_its_own_newest_run() {
    let (src, repo_dir) = (tmp(), tmp());
    let (a, b) = (src.path().join("a"), src.path().join("b"));
    tree(&a, &[("f", "a1")]);
    tree(&b, &[("g", "b1")]);
    let mut repo = init_repo(repo_dir.path());
    let both = run(&mut repo, &[("a", &a), ("b", &b)], Level::Full, &[]).run;
    fs::write(a.join("f"), "a2").unwrap();
    let only_a = run(&mut repo, &[("a", &a)], Level::Incr, &[]).run;

    let out = tmp();
    let r = restore_sources(&repo, out.path(), &[]).unwrap();
    assert_eq!(r.status, RestoreStatus::Complete);
    let runs: BTreeMap<&str, &str> = r
        .targets
        .iter()
        .map(|t| (t.source.as_str(), t.run.as_str()))
        .collect();
    assert_eq!(
        runs,
        BTreeMap::from([("a", only_a.label.as_str()), ("b", both.label.as_str())])
    );
    assert_eq!(r.run, only_a.label);
    assert_eq!(fs::read_to_string(out.path().join("a/f")).unwrap(), "a2");
    assert_eq!(fs::read_to_string(out.path().join("b/g")).unwrap(), "b1");

    // A point in time before the second run gives the first state of both.
    let out = tmp();
    let r = restore(
        &repo,
        &RestoreOptions {
            selector: RunSelector::At(both.started + chrono::Duration::milliseconds(500)),
            target: RestoreTarget::Directory(out.path().to_path_buf()),
            owner: false,
            ..RestoreOptions::default()
        },
        &Progress::default(),
    )
    .unwrap();
    assert!(
        r.targets.iter().all(|t| t.run == both.label),
        "{:?}",
        r.targets
    );
    assert_eq!(fs::read_to_string(out.path().join("a/f")).unwrap(), "a1");

    // An unknown source names the ones there are.
    let err = restore_sources(&repo, out.path(), &["c"]).unwrap_err();
    assert!(
        err.to_string()
            .contains("the repository's sources are: a, b"),
        "{err}"
    );
}

#[test]
fn restore_with_only_partial_runs_says_so_and_how() {
    let (src, repo_dir) = (tmp(), tmp());
    let a = src.path().join("a");
    tree(&a, &[("ok", "fine")]);
    let mut repo = init_repo(repo_dir.path());
    // A failing command stores nothing for its source; the directory source is fine.
    let specs = vec![
        SourceSpec::path("a", &a),
        SourceSpec::command("dump", "echo partial; exit 3"),
    ];
    let r = backup(
        &mut repo,
        &specs,
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap();
    let dump = r.run.sources.iter().find(|s| s.name == "dump").unwrap();
    assert_eq!(dump.status, SourceStatus::Failed);
    let out = tmp();
    // "a" is complete in that run: it restores although the run is Partial.
    let ok = restore_sources(&repo, out.path(), &["a"]).unwrap();
    assert_eq!(ok.status, RestoreStatus::Complete);
    let err = restore_sources(&repo, out.path(), &["dump"]).unwrap_err();
    assert!(err.to_string().contains("every run of it failed"), "{err}");

    // Make a's entry Partial (as an unreadable file would): restore says what to pass.
    let mut m = r.run.clone();
    for s in &mut m.sources {
        s.status = SourceStatus::Partial;
    }
    let sealed = repo
        .key()
        .seal(aad::RUN, &serde_json::to_vec(&m).unwrap())
        .unwrap();
    repo.store()
        .put(&format!("runs/{}", m.label), sealed)
        .unwrap();
    let err = restore_sources(&repo, out.path(), &["a"]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("only partial runs") && msg.contains("--partial") && msg.contains(&m.label),
        "{msg}"
    );
    let partial = restore(
        &repo,
        &RestoreOptions {
            sources: vec!["a".into()],
            allow_partial: true,
            target: RestoreTarget::Directory(out.path().join("p")),
            owner: false,
            ..RestoreOptions::default()
        },
        &Progress::default(),
    )
    .unwrap();
    assert_eq!(partial.status, RestoreStatus::Complete);
}

#[test]
fn a_file_source_goes_into_the_target_directory_whether_or_not_it_exists() {
    let (src, repo_dir) = (tmp(), tmp());
    let file = src.path().join("notes.txt");
    fs::write(&file, "remember").unwrap();
    let mut repo = init_repo(repo_dir.path());
    run(&mut repo, &[("notes", &file)], Level::Full, &[]);
    for exists in [false, true] {
        let out = tmp();
        let target = out.path().join("t");
        if exists {
            fs::create_dir(&target).unwrap();
        }
        let r = restore_sources(&repo, &target, &[]).unwrap();
        assert_eq!(
            r.status,
            RestoreStatus::Complete,
            "{:?}",
            r.unrestored_items
        );
        assert_eq!(
            fs::read_to_string(target.join("notes.txt")).unwrap(),
            "remember",
            "target existed: {exists}"
        );
    }
}

/// Rewrite every manifest as format version 1 wrote it: one level, parent and base full
/// for the whole run, chosen from the whole catalog (the planner this build replaced).
fn rewrite_as_version_1(repo: &Repository<Indexed>) {
    let runs = repo.runs().unwrap();
    let mut last_full: Option<String> = None;
    let mut previous: Option<String> = None;
    for mut r in runs {
        r.version = 1;
        let level = r.sources[0].level.unwrap();
        r.level = level;
        if level == Level::Full {
            r.parent = None;
            r.base_full = None;
            last_full = Some(r.label.clone());
        } else {
            r.parent = previous.clone();
            r.base_full = last_full.clone();
        }
        previous = Some(r.label.clone());
        for s in &mut r.sources {
            s.level = None;
            s.parent = None;
            s.base_full = None;
        }
        let json = serde_json::to_vec(&r).unwrap();
        let sealed = repo.key().seal(aad::RUN, &json).unwrap();
        repo.store()
            .put(&format!("runs/{}", r.label), sealed)
            .unwrap();
    }
}

#[test]
fn version_1_catalogs_are_read_per_source_and_upgraded_on_write() {
    let (src, repo_dir) = (tmp(), tmp());
    let (a, b) = (src.path().join("a"), src.path().join("b"));
    tree(&a, &[("photo.jpg", "pixels")]);
    tree(&b, &[("dump.sql", "rows")]);
    // Version 1 repositories have HMAC-SHA256 ids.
    let mut repo = init_repo_with(
        repo_dir.path(),
        holdfast_engine::crypto::IdScheme::HmacSha256,
    );
    let uploads = run(&mut repo, &[("uploads", &a)], Level::Full, &[]).run;
    run(&mut repo, &[("db", &b)], Level::Full, &[]);
    let db_incr = run(&mut repo, &[("db", &b)], Level::Incr, &[]).run;
    // As version 1 planned it: newsrc's incremental based on db's runs.
    let newsrc = run(
        &mut repo,
        &[("newsrc", &a)],
        Level::Incr,
        &[("newsrc", Level::Incr)],
    )
    .run;
    drop(repo);
    // Strip the feature too, as a version 1 repository has none.
    let cfg_path = repo_dir.path().join("config");
    let mut cfg: serde_json::Value = serde_json::from_slice(&fs::read(&cfg_path).unwrap()).unwrap();
    cfg["features"] = serde_json::json!({"read": [], "write": [], "check": [], "delete": []});
    fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let mut repo = open_repo(repo_dir.path());
    rewrite_as_version_1(&repo);
    // newsrc was promoted by this build; make its v1 record the misattributed incremental.
    let mut m = repo.load_run(&newsrc.label).unwrap();
    m.level = Level::Incr;
    m.parent = Some(db_incr.label.clone());
    m.base_full = db_incr.base_full.clone();
    let sealed = repo
        .key()
        .seal(aad::RUN, &serde_json::to_vec(&m).unwrap())
        .unwrap();
    // The label keeps its old prefix; only the manifest's fields matter to retention.
    repo.store()
        .put(&format!("runs/{}", newsrc.label), sealed)
        .unwrap();

    let report = purge(&mut repo, &keep_fulls(1), &Progress::default()).unwrap();
    assert!(report.runs_expired.is_empty(), "{report:#?}");
    assert!(repo.load_run(&uploads.label).is_ok());

    // A new run upgrades the repository: older binaries then refuse to write or purge.
    let again = run(&mut repo, &[("newsrc", &a)], Level::Incr, &[]).run;
    assert_eq!(
        again.sources[0].level,
        Some(Level::Full),
        "newsrc had no full of its own"
    );
    let cfg: serde_json::Value = serde_json::from_slice(&fs::read(&cfg_path).unwrap()).unwrap();
    for op in ["write", "delete"] {
        assert_eq!(
            cfg["features"][op],
            serde_json::json!([FEATURE_SOURCE_LEVELS]),
            "{cfg}"
        );
    }
    assert_eq!(
        cfg["features"]["read"],
        serde_json::json!([]),
        "old binaries can still restore"
    );
    assert_deep_ok(&repo, "the repository");
}
