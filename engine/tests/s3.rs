//! The S3 backend against real S3 servers on loopback (s3s-fs, and moto when installed),
//! through a fault-injecting proxy: throttling, 5xx, resets, stalls and truncated bodies
//! are survived; permanent errors fail fast and clearly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests

mod common;
mod s3_support;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use holdfast_engine::Error;
use holdfast_engine::backup::{BackupOptions, SourceSpec, backup};
use holdfast_engine::progress::Progress;
use holdfast_engine::purge::{PurgeOptions, purge};
use holdfast_engine::repo::check_location;
use holdfast_engine::repo::{Indexed, InitOptions, Repository};
use holdfast_engine::restore::RestoreOptions;
use holdfast_engine::retention::RetentionPolicy;
use holdfast_engine::storage::{RepoUrl, StaticCredentials, StorageError, Store};
use holdfast_engine::verify::{VerifyDepth, verify};
use s3_support::*;

const BUCKET: &str = "holdfast-bucket";

fn with_keys(url: RepoUrl) -> RepoUrl {
    match url {
        RepoUrl::S3(mut o) => {
            o.credentials = Some(StaticCredentials {
                access_key_id: ACCESS_KEY.into(),
                secret_access_key: SECRET_KEY.into(),
            });
            RepoUrl::S3(o)
        }
        other => other,
    }
}

fn url(endpoint: &str, extra: &str) -> RepoUrl {
    with_keys(RepoUrl::parse(&format!("s3://{BUCKET}/repos/shop?endpoint={endpoint}&path_style=true&connect_timeout=2s&read_timeout=2s{extra}")).unwrap())
}

fn store(endpoint: &str, extra: &str) -> Store {
    Store::open(&url(endpoint, extra)).unwrap()
}

fn init(store: Store) -> Repository<Indexed> {
    let opts = InitOptions {
        kdf_iterations: 1000,
        pack_size: 1 << 20,
        ..InitOptions::default()
    };
    Repository::init(store, PASS, &opts)
        .unwrap()
        .load_index()
        .unwrap()
}

fn source_tree(root: &Path, seed: u64) {
    fs::create_dir_all(root.join("sub")).unwrap();
    for i in 0..6u64 {
        fs::write(
            root.join(format!("f{i}.bin")),
            pseudo_random(700_000, seed * 100 + i * 2 + 1),
        )
        .unwrap();
    }
    fs::write(root.join("sub/notes.txt"), "hello s3 ".repeat(50_000)).unwrap();
}

fn full_cycle(store: Store, what: &str) {
    let (src, out) = (tmp(), tmp());
    let root = src.path().join("site");
    source_tree(&root, 1);
    let mut repo = init(store);
    let first = backup_paths(&mut repo, &[&root], &BackupOptions::default());
    assert!(
        first.volumes_written >= 3,
        "{what}: several volumes: {}",
        first.volumes_written
    );
    fs::write(root.join("f0.bin"), pseudo_random(700_000, 999)).unwrap();
    let incr = backup_paths(
        &mut repo,
        &[&root],
        &BackupOptions {
            level: holdfast_engine::format::run::Level::Incr,
            ..Default::default()
        },
    );
    assert_eq!(incr.run.stats.files_unchanged, 6, "{what}");
    let v = verify(
        &repo,
        VerifyDepth::Deep {
            sample_percent: None,
        },
        &Progress::default(),
    )
    .unwrap();
    assert!(v.ok && v.data_verified, "{what}: {v:?}");
    let target = out.path().join("r");
    let r = restore_into(&repo, &target, RestoreOptions::default());
    assert_complete(&r, what);
    assert_same_tree(&snapshot(&root), &snapshot(&target));
    let policy = RetentionPolicy {
        keep_fulls: Some(1),
        max_age: None,
        ..RetentionPolicy::default()
    };
    let p = purge(
        &mut repo,
        &PurgeOptions {
            policy,
            grace: Duration::ZERO,
            ..Default::default()
        },
        &Progress::default(),
    )
    .unwrap();
    assert_eq!(
        p.runs_expired.len(),
        0,
        "{what}: the incremental keeps its full"
    );
}

#[test]
fn backup_incremental_restore_verify_purge_against_s3s_fs() {
    let Some(server) = s3s_fs(BUCKET) else { return };
    full_cycle(store(&server.endpoint(), ""), "s3s-fs");
}

#[test]
fn survives_ten_percent_injected_faults() {
    let Some(server) = s3s_fs(BUCKET) else { return };
    let kinds = [
        Fault::SlowDown,
        Fault::InternalError,
        Fault::Reset,
        Fault::Stall,
        Fault::Truncate,
    ];
    let proxy = FaultProxy::start(server.port, 0.10, &kinds, Duration::from_secs(3));
    let started = Instant::now();
    full_cycle(store(&proxy.endpoint(), "&max_attempts=12"), "faulty proxy");
    let requests = proxy
        .stats
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    let faults = proxy
        .stats
        .faults
        .load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "fault injection: {faults} faults in {requests} requests, cycle took {:?}",
        started.elapsed()
    );
    assert!(faults >= 5, "faults were injected ({faults} of {requests})");
}

#[test]
fn permanent_403_fails_fast_and_leaves_the_repository_intact() {
    let Some(server) = s3s_fs(BUCKET) else { return };
    let (src, _) = (tmp(), ());
    let root = src.path().join("site");
    source_tree(&root, 2);
    let mut repo = init(store(&server.endpoint(), ""));
    backup_paths(&mut repo, &[&root], &BackupOptions::default());
    fs::write(root.join("new.bin"), pseudo_random(2_000_000, 77)).unwrap();

    let proxy = FaultProxy::start(server.port, 1.0, &[Fault::Forbidden], Duration::ZERO);
    let started = Instant::now();
    let err = match Repository::open(store(&proxy.endpoint(), ""), PASS) {
        Err(e) => e,
        Ok(r) => {
            let mut r = r.load_index().unwrap();
            let sources = [SourceSpec::from_path(root.clone())];
            backup(
                &mut r,
                &sources,
                &BackupOptions::default(),
                &Progress::default(),
            )
            .unwrap_err()
        }
    };
    let took = started.elapsed();
    assert!(
        matches!(err, Error::Storage(StorageError::PermissionDenied { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("AccessDenied"), "{err}");
    assert!(
        took < Duration::from_secs(5),
        "403 is not retried: took {took:?}"
    );

    let repo = Repository::open(store(&server.endpoint(), ""), PASS)
        .unwrap()
        .load_index()
        .unwrap();
    assert_eq!(repo.run_labels().unwrap().len(), 1);
    let v = verify(
        &repo,
        VerifyDepth::Deep {
            sample_percent: None,
        },
        &Progress::default(),
    )
    .unwrap();
    assert!(v.ok, "{v:?}");
}

#[test]
fn bad_configuration_gives_distinct_actionable_errors() {
    let Some(server) = s3s_fs(BUCKET) else { return };
    // Missing bucket.
    let missing = Store::open(&with_keys(
        RepoUrl::parse(&format!(
            "s3://no-such-bucket/x?endpoint={}&path_style=true",
            server.endpoint()
        ))
        .unwrap(),
    ))
    .unwrap();
    let err = missing.list("config").unwrap_err();
    assert!(
        matches!(err, StorageError::BucketNotFound { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("no-such-bucket"));
    // Wrong secret key.
    let mut wrong = url(&server.endpoint(), "");
    if let RepoUrl::S3(o) = &mut wrong {
        o.credentials = Some(StaticCredentials {
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: "not-the-secret".into(),
        });
    }
    let err = Store::open(&wrong).unwrap().list("config").unwrap_err();
    assert!(
        matches!(err, StorageError::InvalidCredentials { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("access key and secret"), "{err}");
    // Nothing listening: bounded, and reported as unreachable.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let dead = store(&format!("http://127.0.0.1:{dead_port}"), "&max_attempts=2");
    let err = dead.list("config").unwrap_err();
    assert!(matches!(err, StorageError::Unreachable { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "bounded: {:?}",
        started.elapsed()
    );
    // A stalled server: the read timeout bounds it.
    let proxy = FaultProxy::start(server.port, 1.0, &[Fault::Stall], Duration::from_secs(30));
    let started = Instant::now();
    let err = store(&proxy.endpoint(), "&max_attempts=2")
        .list("config")
        .unwrap_err();
    assert!(matches!(err, StorageError::Unreachable { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "bounded: {:?}",
        started.elapsed()
    );
    // The storage check reports each line.
    let report = check_location(&store(&server.endpoint(), ""));
    assert!(report.ok, "{report:?}");
    assert!(report.items.iter().any(|i| i.check == "write" && i.ok));
    let report = check_location(&missing);
    assert!(!report.ok);
    assert!(
        report
            .items
            .iter()
            .any(|i| i.check == "access" && !i.ok && i.detail.contains("no-such-bucket")),
        "{report:?}"
    );
    // A check changes nothing: no probe is written to the missing bucket (s3s-fs would
    // create it, and the next check would pass).
    assert!(
        !report.items.iter().any(|i| i.check == "write"),
        "{report:?}"
    );
    assert!(!server.bucket_dir("no-such-bucket").exists());
}

#[test]
fn listing_twenty_thousand_objects_pages_through() {
    let Some(server) = s3s_fs(BUCKET) else { return };
    // Create the objects directly in s3s-fs's directory: fast, and listing is what is tested.
    let dir = server.bucket_dir(BUCKET).join("repos/shop/data/ab");
    fs::create_dir_all(&dir).unwrap();
    // 20 pages of 1,000. (100,000 also lists correctly, but s3s-fs rescans its directory for
    // every page, which makes that take six minutes: a server cost, not the client's.)
    for i in 0..20_000u32 {
        fs::write(dir.join(format!("{i:08}")), b"").unwrap();
    }
    // s3s-fs rescans its directory for every page, so give each page time.
    let s = store(&server.endpoint(), "&read_timeout=120s");
    let started = Instant::now();
    let listed = s.list("data/").unwrap();
    eprintln!("listed {} objects in {:?}", listed.len(), started.elapsed());
    assert_eq!(listed.len(), 20_000);
    assert_eq!(listed[0].key, "data/ab/00000000");
}

#[test]
fn round_trip_against_moto_as_a_second_implementation() {
    let Some(server) = moto(BUCKET) else { return };
    full_cycle(store(&server.endpoint(), ""), "moto");
}

/// A repository whose volumes are uploaded in parts (20 MiB volumes, above the 8 MiB
/// multipart threshold), backed up, verified deeply and restored.
fn multipart_cycle(store: Store, what: &str) {
    let (src, out) = (tmp(), tmp());
    let root = src.path().join("big");
    fs::create_dir_all(&root).unwrap();
    for i in 0..3u64 {
        fs::write(
            root.join(format!("{i}.bin")),
            pseudo_random(12 << 20, 77 + i),
        )
        .unwrap();
    }
    let opts = InitOptions {
        kdf_iterations: 1000,
        pack_size: 20 << 20,
        ..InitOptions::default()
    };
    let mut repo = Repository::init(store, PASS, &opts)
        .unwrap()
        .load_index()
        .unwrap();
    let report = backup_paths(&mut repo, &[&root], &BackupOptions::default());
    let sizes: Vec<u64> = repo
        .list_volumes()
        .unwrap()
        .iter()
        .map(|(_, s)| *s)
        .collect();
    assert!(
        sizes.iter().any(|s| *s > 8 << 20),
        "{what}: a volume above the multipart threshold: {sizes:?} ({} written)",
        report.volumes_written
    );
    let v = verify(
        &repo,
        VerifyDepth::Deep {
            sample_percent: None,
        },
        &Progress::default(),
    )
    .unwrap();
    assert!(v.ok && v.data_verified, "{what}: {v:?}");
    let target = out.path().join("r");
    let r = restore_into(&repo, &target, RestoreOptions::default());
    assert_complete(&r, what);
    assert_same_tree(&snapshot(&root), &snapshot(&target));
}

#[test]
fn multipart_volumes_against_s3s_fs() {
    let Some(server) = s3s_fs(BUCKET) else { return };
    multipart_cycle(store(&server.endpoint(), ""), "s3s-fs");
}

#[test]
fn multipart_volumes_against_moto() {
    let Some(server) = moto(BUCKET) else { return };
    multipart_cycle(store(&server.endpoint(), ""), "moto");
}

#[test]
fn a_completion_answer_the_client_cannot_read_is_confirmed_never_aborted() {
    for rewrite in [Rewrite::MotoCompleteRoot, Rewrite::GarbageCompleteBody] {
        let Some(server) = s3s_fs(BUCKET) else { return };
        let proxy = FaultProxy::rewriting(server.port, rewrite);
        multipart_cycle(store(&proxy.endpoint(), ""), &format!("{rewrite:?}"));
        assert!(
            proxy
                .stats
                .rewritten
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0,
            "{rewrite:?}: the quirk was exercised"
        );
        assert_eq!(
            proxy
                .stats
                .aborts
                .load(std::sync::atomic::Ordering::Relaxed),
            0,
            "{rewrite:?}: a completed upload is never aborted"
        );
    }
}

#[test]
fn errors_count_the_attempts_really_made() {
    // Nothing listens on this port: every attempt fails to connect, and each is retried.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = store(&format!("http://127.0.0.1:{port}"), "&max_attempts=3");
    let err = s.get("config").unwrap_err().to_string();
    assert!(err.contains("after 3 attempts"), "{err}");

    // A permanent error is not retried, and says so.
    let Some(server) = s3s_fs(BUCKET) else { return };
    let proxy = FaultProxy::start(server.port, 1.0, &[Fault::Forbidden], Duration::ZERO);
    let err = store(&proxy.endpoint(), "")
        .get("config")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("after 1 attempt") && err.contains("AccessDenied"),
        "{err}"
    );
}

/// 1,500 small files in 30 directories and two files of several chunks: with 1 MiB
/// volumes, about a dozen volumes and one of listings.
fn many_small_files(root: &Path) {
    for d in 0..30u64 {
        let dir = root.join(format!("d{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..50u64 {
            let n = d * 50 + f;
            fs::write(
                dir.join(format!("f{f:02}")),
                pseudo_random(500 + (n * 7919 % 6000) as usize, n + 1),
            )
            .unwrap();
        }
    }
    fs::write(root.join("big1"), pseudo_random(3 << 20, 7001)).unwrap();
    fs::write(root.join("big2"), pseudo_random(5 << 19, 7002)).unwrap();
}

#[test]
fn a_restore_from_s3_reads_each_volume_once_not_each_blob() {
    let Some(server) = s3s_fs(BUCKET) else { return };
    let proxy = FaultProxy::start(server.port, 0.0, &[], Duration::ZERO);
    let (src, out) = (tmp(), tmp());
    let root = src.path().join("site");
    many_small_files(&root);
    let mut repo = init(store(&proxy.endpoint(), ""));
    let first = backup_paths(&mut repo, &[&root], &BackupOptions::default());
    let volumes = repo.list_volumes().unwrap().len() as u64;
    let blobs = first.run.stats.blobs_new;
    assert!(blobs > 1500, "{blobs} blobs");

    let gets = |p: &FaultProxy| {
        p.stats
            .object_gets
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = gets(&proxy);
    let target = out.path().join("all");
    let r = restore_into(&repo, &target, RestoreOptions::default());
    assert_complete(&r, "restore from S3");
    assert_same_tree(&snapshot(&root), &snapshot(&target));
    let whole = gets(&proxy) - before;
    // One read per volume (a few more for listings, the catalog and locks), never one per
    // blob: before, this restore made a ranged GET for each of its 1,500 blobs.
    assert!(
        whole <= 2 * volumes + 10,
        "{whole} GETs to restore {blobs} blobs from {volumes} volumes"
    );

    // A few files from one directory: a few reads, not one per blob either.
    let before = gets(&proxy);
    let some = out.path().join("some");
    let r = restore_into(
        &repo,
        &some,
        RestoreOptions {
            include: vec!["/d07/**".into()],
            ..RestoreOptions::default()
        },
    );
    assert_complete(&r, "partial restore from S3");
    assert_eq!(r.restored, 51, "the directory and its 50 files");
    let part = gets(&proxy) - before;
    assert!(part <= 12, "{part} GETs to restore 50 small files");
}

#[test]
fn a_local_primary_copied_to_s3_restores_from_the_copy_alone_and_an_unchanged_run_costs_a_few_requests()
 {
    let Some(server) = s3s_fs(BUCKET) else { return };
    let proxy = FaultProxy::start(server.port, 0.0, &[], Duration::ZERO);
    let (primary_dir, src, out) = (tmp(), tmp(), tmp());
    let root = src.path().join("site");
    source_tree(&root, 3);
    // The seeds' staging area: backups land on local disk, the copy goes to the bucket.
    let mut primary = init_repo(primary_dir.path());
    let full = backup_paths(&mut primary, &[&root], &BackupOptions::default()).run;
    let mut copy = Repository::init_copy_of(store(&proxy.endpoint(), ""), &primary, PASS, 1000)
        .unwrap()
        .load_index()
        .unwrap();
    let options = holdfast_engine::copy::CopyOptions::default();
    let first =
        holdfast_engine::copy::copy(&primary, &mut copy, &options, &Progress::default()).unwrap();
    assert_eq!(first.copied.len(), 1);
    assert!(first.bytes_moved > 4_000_000, "{first:?}");

    let unchanged = BackupOptions {
        level: holdfast_engine::format::run::Level::Incr,
        ..BackupOptions::default()
    };
    let incr = backup_paths(&mut primary, &[&root], &unchanged).run;
    let requests = |p: &FaultProxy| p.stats.requests.load(std::sync::atomic::Ordering::Relaxed);
    let before = requests(&proxy);
    let second =
        holdfast_engine::copy::copy(&primary, &mut copy, &options, &Progress::default()).unwrap();
    let made = requests(&proxy) - before;
    assert_eq!(second.copied.len(), 1);
    assert_eq!(second.bytes_moved, 0, "{second:?}");
    // Locks (take, confirm, release), listings of runs, the ledger and marks, the feature
    // check, the manifest and its record: a dozen or so, whatever the run's size.
    assert!(made <= 16, "{made} requests to copy an unchanged run");

    // The copy alone, opened from the bucket with the passphrase, restores both runs.
    drop(copy);
    let alone = Repository::open(store(&server.endpoint(), ""), PASS)
        .unwrap()
        .load_index()
        .unwrap();
    let v = verify(
        &alone,
        VerifyDepth::Deep {
            sample_percent: None,
        },
        &Progress::default(),
    )
    .unwrap();
    assert!(v.ok && v.data_verified, "{v:?}");
    for label in [&full.label, &incr.label] {
        let target = out.path().join(label);
        let r = restore_into(
            &alone,
            &target,
            RestoreOptions {
                selector: holdfast_engine::repo::RunSelector::Label(label.clone()),
                ..RestoreOptions::default()
            },
        );
        assert_complete(&r, label);
        assert_same_tree(&snapshot(&root), &snapshot(&target));
    }
}
