//! Helpers shared by the engine's integration tests: repositories, and exact snapshots of
//! directory trees (every attribute the engine promises to keep).
#![allow(dead_code, clippy::unwrap_used)] // reason: test helpers; not every test file uses each one

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use holdfast_engine::backup::{BackupOptions, BackupReport, SourceSpec, backup};
use holdfast_engine::progress::Progress;
use holdfast_engine::repo::{Indexed, InitOptions, Repository};
use holdfast_engine::restore::{
    RestoreOptions, RestoreReport, RestoreStatus, RestoreTarget, restore,
};
use holdfast_engine::storage::{LocalStorage, Store};

pub const PASS: &[u8] = b"correct horse battery staple";

pub fn store(path: &Path) -> Store {
    Store::new(Arc::new(LocalStorage::new(path))).unwrap()
}

pub fn init_repo(path: &Path) -> Repository<Indexed> {
    init_repo_with(path, InitOptions::default().ids)
}

/// A repository whose blob ids use `ids` (HMAC-SHA256 ones are what builds before BLAKE3
/// ids made).
pub fn init_repo_with(path: &Path, ids: holdfast_engine::crypto::IdScheme) -> Repository<Indexed> {
    let opts = InitOptions {
        kdf_iterations: 1000,
        pack_size: 1 << 20,
        ids,
        ..InitOptions::default()
    };
    Repository::init(store(path), PASS, &opts)
        .unwrap()
        .load_index()
        .unwrap()
}

pub fn open_repo(path: &Path) -> Repository<Indexed> {
    Repository::open(store(path), PASS)
        .unwrap()
        .load_index()
        .unwrap()
}

pub fn backup_paths(
    repo: &mut Repository<Indexed>,
    paths: &[&Path],
    opts: &BackupOptions,
) -> BackupReport {
    let sources: Vec<SourceSpec> = paths
        .iter()
        .map(|p| SourceSpec::from_path(p.to_path_buf()))
        .collect();
    backup(repo, &sources, opts, &Progress::default()).unwrap()
}

pub fn restore_into(
    repo: &Repository<Indexed>,
    target: &Path,
    opts: RestoreOptions,
) -> RestoreReport {
    let opts = RestoreOptions {
        target: RestoreTarget::Directory(target.to_path_buf()),
        ..opts
    };
    restore(repo, &opts, &Progress::default()).unwrap()
}

/// A deep verify reads every volume back and finds nothing wrong.
pub fn assert_deep_ok(repo: &Repository<Indexed>, what: &str) {
    let v = holdfast_engine::verify::verify(
        repo,
        holdfast_engine::verify::VerifyDepth::Deep {
            sample_percent: None,
        },
        &Progress::default(),
    )
    .unwrap();
    assert!(v.ok && v.data_verified, "{what}: {v:?}");
}

/// The restore brought everything back; otherwise the failure lists what it did not.
pub fn assert_complete(r: &RestoreReport, what: &str) {
    assert_eq!(
        r.status,
        RestoreStatus::Complete,
        "{what}: {:?}",
        r.unrestored_items
    );
}

/// Everything about one entry that a restore must reproduce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snap {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub size: u64,
    pub content: Option<Vec<u8>>,
    pub target: Option<Vec<u8>>,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    pub rdev: u64,
    /// Path of the first entry (in walk order) sharing this inode, for hard links.
    pub link_first: Option<Vec<u8>>,
    /// The file has holes (allocated much less than its size).
    pub sparse: bool,
}

fn digest(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    ctx.finish().as_ref().to_vec()
}

/// Snapshot a tree: relative path (bytes, root = "") → attributes.
pub fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Snap> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
    let mut stack = vec![(root.to_path_buf(), Vec::new())];
    while let Some((path, rel)) = stack.pop() {
        let m = std::fs::symlink_metadata(&path).unwrap();
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_fifo() {
            'p'
        } else if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else {
            'f'
        };
        let mut xattrs = BTreeMap::new();
        if kind != 'l' {
            for name in xattr::list(&path).unwrap() {
                let n = name.as_bytes().to_vec();
                if n.starts_with(b"user.") {
                    xattrs.insert(n, xattr::get(&path, &name).unwrap().unwrap_or_default());
                }
            }
        }
        let link_first = if kind == 'f' && m.nlink() > 1 {
            Some(
                inodes
                    .entry((m.dev(), m.ino()))
                    .or_insert_with(|| rel.clone())
                    .clone(),
            )
        } else {
            None
        };
        out.insert(
            rel.clone(),
            Snap {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                mtime: (m.mtime(), m.mtime_nsec()),
                size: if kind == 'f' { m.len() } else { 0 },
                content: (kind == 'f').then(|| digest(&path)),
                target: (kind == 'l').then(|| {
                    std::fs::read_link(&path)
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .to_vec()
                }),
                xattrs,
                rdev: if matches!(kind, 'c' | 'b') {
                    m.rdev()
                } else {
                    0
                },
                link_first,
                sparse: kind == 'f' && m.len() > 1 << 20 && m.blocks() * 512 < m.len() / 2,
            },
        );
        if kind == 'd' {
            let mut names: Vec<_> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for name in names.into_iter().rev() {
                let mut r = rel.clone();
                r.push(b'/');
                r.extend_from_slice(name.as_bytes());
                stack.push((path.join(&name), r));
            }
        }
    }
    out
}

/// Assert two snapshots are equal, naming the first difference.
pub fn assert_same_tree(a: &BTreeMap<Vec<u8>, Snap>, b: &BTreeMap<Vec<u8>, Snap>) {
    for (path, sa) in a {
        let shown = String::from_utf8_lossy(path);
        let sb = b
            .get(path)
            .unwrap_or_else(|| panic!("{shown} missing after restore"));
        assert_eq!(sa, sb, "{shown} differs after restore");
    }
    for path in b.keys() {
        assert!(
            a.contains_key(path),
            "{} appeared after restore",
            String::from_utf8_lossy(path)
        );
    }
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub fn set_mtime(path: &Path, sec: i64, nsec: i64) {
    let ts = rustix::fs::Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

// Not every test binary sharing this module writes random data.
#[allow(unused_imports)]
pub use holdfast_testkit::pseudo_random;

pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn p(dir: &tempfile::TempDir, rel: &str) -> PathBuf {
    dir.path().join(rel)
}
