//! Backup → restore round trips must reproduce every attribute, for a hostile fixture tree
//! and for random trees.
#![allow(clippy::unwrap_used)] // reason: tests

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use common::*;
use holdfast_engine::backup::BackupOptions;
use holdfast_engine::format::run::RunStatus;
use holdfast_engine::restore::{RestoreOptions, RestoreStatus};
use proptest::prelude::*;

/// Every kind of entry the engine promises to keep, in one tree.
fn hostile_tree(root: &Path) {
    fs::create_dir_all(root.join("dir/nested/deeper")).unwrap();
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("small.txt"), b"hello holdfast\n").unwrap();
    fs::write(root.join("dir/random.bin"), pseudo_random(3 << 20, 1)).unwrap();
    fs::write(
        root.join("dir/nested/compressible.txt"),
        "all work and no play ".repeat(100_000),
    )
    .unwrap();
    // The same content twice: stored once.
    fs::write(root.join("dir/random-copy.bin"), pseudo_random(3 << 20, 1)).unwrap();
    // Hard links across directories.
    fs::write(root.join("dir/linked"), b"one inode, three names").unwrap();
    fs::hard_link(
        root.join("dir/linked"),
        root.join("dir/nested/linked-again"),
    )
    .unwrap();
    fs::hard_link(root.join("dir/linked"), root.join("linked-top")).unwrap();
    // Symlinks: relative, absolute, dangling, to a directory.
    symlink("small.txt", root.join("rel-link")).unwrap();
    symlink("/etc/hostname", root.join("abs-link")).unwrap();
    symlink("does/not/exist", root.join("dangling")).unwrap();
    symlink("dir/nested", root.join("dir-link")).unwrap();
    // Special permission bits.
    for (name, mode) in [
        ("setuid", 0o4755),
        ("setgid", 0o2750),
        ("private", 0o600),
        ("odd", 0o1604),
    ] {
        fs::write(root.join(name), name.as_bytes()).unwrap();
        fs::set_permissions(root.join(name), fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::create_dir(root.join("sticky")).unwrap();
    fs::set_permissions(root.join("sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
    // Non-UTF-8 names, a name with a newline, and a near-maximal name.
    fs::write(root.join(OsStr::from_bytes(b"latin1-\xe9t\xe9")), b"bytes").unwrap();
    fs::create_dir(root.join(OsStr::from_bytes(b"dir-\xff\xfe"))).unwrap();
    fs::write(root.join(OsStr::from_bytes(b"dir-\xff\xfe/inner")), b"x").unwrap();
    fs::write(root.join("new\nline"), b"y").unwrap();
    // A long path: 14 levels of 250-byte names (about 3.5 KB, under Linux's PATH_MAX).
    let mut long = root.to_path_buf();
    for i in 0..14 {
        long = long.join(format!("{i:02}{}", "x".repeat(248)));
    }
    fs::create_dir_all(&long).unwrap();
    fs::write(long.join("leaf"), b"deep").unwrap();
    // Extended attributes on a file and a directory.
    xattr::set(root.join("small.txt"), "user.comment", b"kept").unwrap();
    xattr::set(root.join("small.txt"), "user.binary", &[0, 1, 2, 255]).unwrap();
    xattr::set(root.join("dir"), "user.dir", b"dir attr").unwrap();
    // Sparse files: holes at start and middle, and data beyond 4 GiB.
    let f = fs::File::create(root.join("sparse-big")).unwrap();
    f.set_len(5 << 30).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"data at 1 MiB", 1 << 20).unwrap();
    f.write_all_at(&pseudo_random(100_000, 7), (4 << 30) + 12345)
        .unwrap();
    drop(f);
    let f = fs::File::create(root.join("sparse-all-hole")).unwrap();
    f.set_len(64 << 20).unwrap();
    drop(f);
    // Enough data for a parallel restore in segments whose boundaries fall inside extents:
    // twelve 1.5 MiB data runs between 3 MiB holes, and a dense 20 MiB file.
    let f = fs::File::create(root.join("sparse-many-extents")).unwrap();
    f.set_len(60 << 20).unwrap();
    for i in 0..12u64 {
        f.write_all_at(&pseudo_random(3 << 19, 100 + i), i * (9 << 19) + (3 << 20))
            .unwrap();
    }
    drop(f);
    fs::write(root.join("dense-large.bin"), pseudo_random(20 << 20, 9)).unwrap();
    // A FIFO; device nodes only as root.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    if is_root() {
        let dev = rustix::fs::makedev(1, 3);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("null-dev"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            dev,
        )
        .unwrap();
        let blk = rustix::fs::makedev(7, 200);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("loop-dev"),
            rustix::fs::FileType::BlockDevice,
            rustix::fs::Mode::from_raw_mode(0o660),
            blk,
        )
        .unwrap();
        // Ownership other than ours.
        rustix::fs::chownat(
            rustix::fs::CWD,
            root.join("small.txt"),
            Some(rustix::fs::Uid::from_raw(1234)),
            Some(rustix::fs::Gid::from_raw(5678)),
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
        rustix::fs::chownat(
            rustix::fs::CWD,
            root.join("rel-link"),
            Some(rustix::fs::Uid::from_raw(4321)),
            Some(rustix::fs::Gid::from_raw(8765)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
        // chown clears setuid; put it back.
        fs::set_permissions(root.join("setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
    }
    // Nanosecond modification times, set last (directories too).
    set_mtime(&root.join("small.txt"), 1_600_000_000, 123_456_789);
    set_mtime(&root.join("rel-link"), 1_500_000_000, 987_654_321);
    set_mtime(&root.join("dir/nested"), 1_400_000_000, 1);
    set_mtime(&root.join("dir"), 1_300_000_000, 999_999_999);
    set_mtime(&root.join("empty-dir"), 0, 5);
    set_mtime(root, 1_700_000_000, 42);
}

#[test]
fn hostile_tree_round_trips_exactly() {
    let (src, repo_dir, out) = (tmp(), tmp(), tmp());
    let root = src.path().join("data");
    fs::create_dir(&root).unwrap();
    hostile_tree(&root);
    let before = snapshot(&root);

    let mut repo = init_repo(repo_dir.path());
    let report = backup_paths(&mut repo, &[&root], &BackupOptions::default());
    assert_eq!(
        report.run.status,
        RunStatus::Complete,
        "{:?}",
        report.run.sources[0].errors
    );
    // Identical 3 MiB files and hard links are stored once; sparse holes are not stored.
    // About 41 MiB of the tree is distinct random data.
    assert!(
        report.run.stats.bytes_new < 46 << 20,
        "stored {} new bytes",
        report.run.stats.bytes_new
    );

    let target = out.path().join("restored");
    let r = restore_into(&repo, &target, RestoreOptions::default());
    assert_complete(&r, "hostile tree");
    let after = snapshot(&target);
    assert_same_tree(&before, &after);
    assert!(
        after[&b"/sparse-big".to_vec()].sparse,
        "holes are recreated"
    );
    assert!(after[&b"/sparse-all-hole".to_vec()].sparse);
    assert!(after[&b"/sparse-many-extents".to_vec()].sparse);
    if is_root() {
        assert_eq!(after[&b"/small.txt".to_vec()].uid, 1234);
        assert!(after.contains_key(b"/null-dev".as_slice()));
    }
}

/// The walk runs ahead of the readers and stores a directory's tree once its files are
/// read; however far ahead it may run, the same run is recorded and restores exactly.
#[test]
fn how_far_the_walk_runs_ahead_changes_nothing_stored() {
    let (src, repo_dir, out) = (tmp(), tmp(), tmp());
    let root = src.path().join("data");
    for a in 0..5 {
        for b in 0..5 {
            let dir = root.join(format!("d{a}/e{b}"));
            fs::create_dir_all(&dir).unwrap();
            for f in 0..7 {
                let body = format!("{a}/{b}/{f} ").repeat(f * 300 + a + b);
                fs::write(dir.join(format!("f{f}")), body).unwrap();
            }
        }
        fs::write(
            root.join(format!("d{a}/top")),
            pseudo_random(70_000, a as u64),
        )
        .unwrap();
    }
    fs::create_dir_all(root.join("d1/e1/deep/deeper/deepest")).unwrap();
    fs::write(root.join("d1/e1/deep/deeper/deepest/leaf"), b"leaf").unwrap();
    // A hard link whose other name is in a directory finished long before.
    fs::hard_link(root.join("d0/e0/f3"), root.join("d4/e4/link-to-d0-e0-f3")).unwrap();
    let before = snapshot(&root);

    let mut repo = init_repo(repo_dir.path());
    let mut trees = Vec::new();
    for ahead in [1, 5, 8192] {
        let opts = BackupOptions {
            read_ahead_files: ahead,
            read_threads: 2,
            ..BackupOptions::default()
        };
        let report = backup_paths(&mut repo, &[&root], &opts);
        assert_eq!(report.run.status, RunStatus::Complete, "ahead {ahead}");
        assert_eq!(report.run.stats.files, 5 * 5 * 7 + 5 + 2, "ahead {ahead}");
        trees.push(report.run.sources[0].tree);
    }
    assert!(
        trees.iter().all(|t| t.is_some() && *t == trees[0]),
        "{trees:?}"
    );
    let target = out.path().join("restored");
    let r = restore_into(&repo, &target, RestoreOptions::default());
    assert_complete(&r, "run-ahead walk");
    assert_same_tree(&before, &snapshot(&target));
}

#[test]
fn restore_report_counts_and_overwrite_policies() {
    let (src, repo_dir, out) = (tmp(), tmp(), tmp());
    let root = src.path().join("data");
    fs::create_dir_all(root.join("a")).unwrap();
    fs::write(root.join("a/one"), b"backed up").unwrap();
    fs::write(root.join("two"), b"backed up").unwrap();
    set_mtime(&root.join("a/one"), 1_000, 0);
    set_mtime(&root.join("two"), 3_000, 0);
    let mut repo = init_repo(repo_dir.path());
    backup_paths(&mut repo, &[&root], &BackupOptions::default());

    let target = out.path().join("t");
    fs::create_dir_all(target.join("a")).unwrap();
    fs::write(target.join("a/one"), b"local edit").unwrap();
    fs::write(target.join("two"), b"local edit").unwrap();
    set_mtime(&target.join("a/one"), 2_000, 0); // newer than the backup
    set_mtime(&target.join("two"), 2_000, 0); // older than the backup

    let never = restore_into(&repo, &target, RestoreOptions::default());
    // Two files plus the two existing directories, whose metadata is left as found.
    assert_eq!((never.skipped, never.unrestored), (4, 0), "{never:?}");
    assert!(
        never
            .skipped_items
            .iter()
            .any(|i| i.path == "data:/a" && i.reason.contains("directory exists"))
    );
    assert_eq!(fs::read(target.join("two")).unwrap(), b"local edit");

    let if_newer = restore_into(
        &repo,
        &target,
        RestoreOptions {
            overwrite: holdfast_engine::restore::Overwrite::IfNewer,
            ..Default::default()
        },
    );
    assert_eq!(if_newer.skipped, 1 + 2, "{if_newer:?}");
    assert_eq!(fs::read(target.join("a/one")).unwrap(), b"local edit");
    assert_eq!(fs::read(target.join("two")).unwrap(), b"backed up");

    let always = restore_into(
        &repo,
        &target,
        RestoreOptions {
            overwrite: holdfast_engine::restore::Overwrite::Always,
            ..Default::default()
        },
    );
    assert_eq!((always.skipped, always.restored), (0, 4), "{always:?}");
    assert_eq!(fs::read(target.join("a/one")).unwrap(), b"backed up");
}

#[test]
fn partly_existing_target_keeps_what_is_there_and_fills_in_what_is_missing() {
    let (src, repo_dir, out) = (tmp(), tmp(), tmp());
    let root = src.path().join("data");
    fs::create_dir_all(root.join("new/deeper")).unwrap();
    fs::write(root.join("new/one"), b"backed up").unwrap();
    fs::write(root.join("new/deeper/two"), b"backed up").unwrap();
    fs::write(root.join("kept"), b"backed up").unwrap();
    let mut repo = init_repo(repo_dir.path());
    backup_paths(&mut repo, &[&root], &BackupOptions::default());

    // The target exists with one of the files; the `new` subtree does not exist yet, so the
    // restore creates it (and skips looking up entries inside it).
    let target = out.path().join("t");
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("kept"), b"local edit").unwrap();
    let r = restore_into(&repo, &target, RestoreOptions::default());
    // Skipped: the existing root directory and `kept`; restored: two directories, two files.
    assert_eq!((r.skipped, r.restored, r.unrestored), (2, 4, 0), "{r:?}");
    assert_eq!(fs::read(target.join("kept")).unwrap(), b"local edit");
    assert_eq!(
        fs::read(target.join("new/deeper/two")).unwrap(),
        b"backed up"
    );

    // Run again: now everything exists and the policy check applies to every entry.
    let again = restore_into(&repo, &target, RestoreOptions::default());
    assert_eq!((again.skipped, again.restored), (6, 0), "{again:?}");
}

#[test]
fn fresh_volume_root_takes_the_backed_up_root_mode_and_an_used_one_keeps_its_own() {
    use std::os::unix::fs::PermissionsExt;
    let (src, repo_dir, out) = (tmp(), tmp(), tmp());
    let root = src.path().join("pgdata");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("PG_VERSION"), b"16").unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
    let mut repo = init_repo(repo_dir.path());
    backup_paths(&mut repo, &[&root], &BackupOptions::default());
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;

    // A new volume: its root exists (mode of the provisioner) and holds lost+found.
    let fresh = out.path().join("fresh");
    fs::create_dir_all(fresh.join("lost+found")).unwrap();
    fs::set_permissions(&fresh, fs::Permissions::from_mode(0o777)).unwrap();
    let r = restore_into(&repo, &fresh, RestoreOptions::default());
    assert_eq!((r.skipped, r.unrestored), (0, 0), "{r:?}");
    assert_eq!(mode(&fresh), 0o700, "the root takes the backed-up mode");
    assert!(
        fresh.join("lost+found").is_dir(),
        "lost+found is left alone"
    );

    // A volume in use keeps its root's metadata under the default policy.
    let used = out.path().join("used");
    fs::create_dir_all(&used).unwrap();
    fs::write(used.join("local"), b"x").unwrap();
    fs::set_permissions(&used, fs::Permissions::from_mode(0o755)).unwrap();
    let r = restore_into(&repo, &used, RestoreOptions::default());
    assert_eq!(r.skipped, 1, "{r:?}");
    assert_eq!(mode(&used), 0o755);
    assert_eq!(fs::read(used.join("PG_VERSION")).unwrap(), b"16");
}

#[test]
fn include_and_exclude_select_subtrees() {
    let (src, repo_dir, out) = (tmp(), tmp(), tmp());
    let root = src.path().join("site");
    fs::create_dir_all(root.join("images/2026")).unwrap();
    fs::create_dir_all(root.join("cache")).unwrap();
    fs::write(root.join("images/2026/a.png"), b"png").unwrap();
    fs::write(root.join("images/b.tmp"), b"tmp").unwrap();
    fs::write(root.join("cache/c"), b"c").unwrap();
    fs::write(root.join("index.html"), b"<html>").unwrap();
    let mut repo = init_repo(repo_dir.path());
    let opts = BackupOptions {
        exclude: vec!["/cache".into()],
        ..Default::default()
    };
    backup_paths(&mut repo, &[&root], &opts);

    let target = out.path().join("t");
    let r = restore_into(
        &repo,
        &target,
        RestoreOptions {
            include: vec!["/images".into()],
            exclude: vec!["*.tmp".into()],
            ..Default::default()
        },
    );
    assert_eq!(r.status, RestoreStatus::Complete);
    assert!(target.join("images/2026/a.png").exists());
    assert!(!target.join("images/b.tmp").exists());
    assert!(!target.join("index.html").exists());
    assert!(!target.join("cache").exists(), "excluded at backup time");
}

#[test]
fn several_sources_restore_under_their_names() {
    let (src, repo_dir, out) = (tmp(), tmp(), tmp());
    for name in ["alpha", "beta"] {
        fs::create_dir_all(src.path().join(name)).unwrap();
        fs::write(src.path().join(name).join("f"), name).unwrap();
    }
    let mut repo = init_repo(repo_dir.path());
    backup_paths(
        &mut repo,
        &[&src.path().join("alpha"), &src.path().join("beta")],
        &BackupOptions::default(),
    );
    let r = restore_into(&repo, out.path(), RestoreOptions::default());
    assert_eq!(r.targets.len(), 2);
    assert_eq!(fs::read(out.path().join("alpha/f")).unwrap(), b"alpha");
    assert_eq!(fs::read(out.path().join("beta/f")).unwrap(), b"beta");
}

#[test]
fn file_changing_during_read_is_flagged() {
    let (src, repo_dir) = (tmp(), tmp());
    let root = src.path().join("live");
    fs::create_dir(&root).unwrap();
    let log = root.join("growing.log");
    fs::write(&log, pseudo_random(40 << 20, 3)).unwrap();
    let mut repo = init_repo(repo_dir.path());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, log) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.write_all(b"another line\n").unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let report = backup_paths(&mut repo, &[&root], &BackupOptions::default());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let warnings = &report.run.sources[0].warnings;
    assert!(
        warnings
            .iter()
            .any(|w| w.path == "/growing.log" && w.error.contains("changed while being read")),
        "{warnings:?}"
    );
    // Stored content is still restorable (and a later run rereads the file).
    assert_eq!(report.run.status, RunStatus::Complete);
}

/// A random tree description: (path components, kind, content seed, size, mode, mtime).
#[derive(Debug, Clone)]
enum Entry {
    File {
        name: Vec<u8>,
        len: usize,
        seed: u64,
        mode: u32,
        mtime: (i64, i64),
    },
    Dir {
        name: Vec<u8>,
        children: Vec<Entry>,
        mode: u32,
    },
    Link {
        name: Vec<u8>,
        target: Vec<u8>,
    },
    Xattr {
        name: Vec<u8>,
        len: usize,
        value: Vec<u8>,
    },
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    // Any bytes but '/' and NUL, excluding "." and "..": many are not UTF-8.
    proptest::collection::vec(
        any::<u8>().prop_filter("no slash or nul", |b| *b != b'/' && *b != 0),
        1..40,
    )
    .prop_filter("not dot names", |n| n != b"." && n != b"..")
}

fn entry() -> impl Strategy<Value = Entry> {
    let leaf = prop_oneof![
        (
            name(),
            0usize..200_000,
            any::<u64>(),
            0o000u32..0o7777,
            (0i64..2_000_000_000, 0i64..1_000_000_000)
        )
            .prop_map(|(name, len, seed, mode, mtime)| Entry::File {
                name,
                len,
                seed,
                mode: mode | 0o600,
                mtime
            }),
        (name(), name()).prop_map(|(name, target)| Entry::Link { name, target }),
        (
            name(),
            0usize..1000,
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(name, len, value)| Entry::Xattr { name, len, value }),
    ];
    leaf.prop_recursive(3, 40, 8, |inner| {
        (
            name(),
            proptest::collection::vec(inner, 0..8),
            0o000u32..0o7777,
        )
            .prop_map(|(name, children, mode)| Entry::Dir {
                name,
                children,
                mode: mode | 0o700,
            })
    })
}

fn materialize(dir: &Path, entries: &[Entry]) {
    let mut used = std::collections::HashSet::new();
    for e in entries {
        let n = match e {
            Entry::File { name, .. }
            | Entry::Dir { name, .. }
            | Entry::Link { name, .. }
            | Entry::Xattr { name, .. } => name.clone(),
        };
        if !used.insert(n.clone()) {
            continue;
        }
        let path = dir.join(OsStr::from_bytes(&n));
        match e {
            Entry::File {
                len,
                seed,
                mode,
                mtime,
                ..
            } => {
                fs::write(&path, pseudo_random(*len, *seed)).unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
                set_mtime(&path, mtime.0, mtime.1);
            }
            Entry::Xattr { len, value, .. } => {
                fs::write(&path, pseudo_random(*len, 9)).unwrap();
                xattr::set(&path, "user.prop", value).unwrap();
            }
            Entry::Link { target, .. } => symlink(OsStr::from_bytes(target), &path).unwrap(),
            Entry::Dir { children, mode, .. } => {
                fs::create_dir(&path).unwrap();
                materialize(&path, children);
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
                set_mtime(&path, 1_234_567_890, 55);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_round_trip(entries in proptest::collection::vec(entry(), 0..12)) {
        let (src, repo_dir, out) = (tmp(), tmp(), tmp());
        let root = src.path().join("r");
        fs::create_dir(&root).unwrap();
        materialize(&root, &entries);
        let before = snapshot(&root);
        let mut repo = init_repo(repo_dir.path());
        let report = backup_paths(&mut repo, &[&root], &BackupOptions::default());
        prop_assert_eq!(report.run.status, RunStatus::Complete);
        let target = out.path().join("t");
        let r = restore_into(&repo, &target, RestoreOptions::default());
        prop_assert_eq!(r.status, RestoreStatus::Complete);
        assert_same_tree(&before, &snapshot(&target));
    }
}
