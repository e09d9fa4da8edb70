//! What the engine reads from a repository: listings by their own range, not their whole
//! volume, so walking a run of many directories reads about what it needs; and volume reads
//! that break off mid-way, asked for again from where they broke.
#![allow(clippy::unwrap_used)] // reason: tests

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use common::*;
use holdfast_engine::backup::BackupOptions;
use holdfast_engine::format::run::Level;
use holdfast_engine::repo::{Indexed, InitOptions, Repository};
use holdfast_engine::restore::{RestoreOptions, RestoreStatus};
use holdfast_engine::storage::{LocalStorage, ObjectInfo, Storage, StorageError, Store};

#[test]
fn a_listing_is_read_by_its_range_not_with_its_whole_volume() {
    let (src, repo_dir) = (tmp(), tmp());
    let root = src.path().join("tree");
    // 400 directories: their listings share one volume of listings.
    for d in 0..400 {
        let dir = root.join(format!("a{}/b{d:03}", d % 20));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("file"), format!("file {d}")).unwrap();
    }
    let backend = Observed::new(repo_dir.path(), false, 0);
    let counter = backend.bytes_read.clone();
    let opts = InitOptions {
        kdf_iterations: 1000,
        pack_size: 1 << 20,
        ..InitOptions::default()
    };
    let store = Store::new(Arc::new(backend)).unwrap();
    let mut repo = Repository::init(store.clone(), PASS, &opts)
        .unwrap()
        .load_index()
        .unwrap();
    backup_paths(&mut repo, &[&root], &BackupOptions::default());

    // A fresh handle, as the next command would open it.
    let repo = Repository::open(store, PASS).unwrap().load_index().unwrap();
    let run = repo.runs().unwrap().remove(0);
    let root_tree = run.sources[0].tree.unwrap();
    let loc = repo.index().lookup(&root_tree).unwrap();
    assert!(
        loc.pack_size > 20_000,
        "the listings share a volume of {} bytes",
        loc.pack_size
    );
    let before = counter.load(Ordering::Relaxed);
    repo.load_tree(&root_tree).unwrap();
    let read = counter.load(Ordering::Relaxed) - before;
    assert_eq!(
        read,
        u64::from(loc.length),
        "one listing read {read} bytes of a {}-byte volume",
        loc.pack_size
    );

    // An unchanged incremental reads each listing once: about the volume, not once per
    // directory.
    let mut repo = repo;
    let before = counter.load(Ordering::Relaxed);
    let incr = backup_paths(
        &mut repo,
        &[&root],
        &BackupOptions {
            level: Level::Incr,
            ..BackupOptions::default()
        },
    );
    assert_eq!(incr.run.stats.files_unchanged, 400);
    let read = counter.load(Ordering::Relaxed) - before;
    assert!(
        read < 3 * loc.pack_size,
        "an unchanged incremental read {read} bytes; the listings take {}",
        loc.pack_size
    );
}

/// A real local repository seen through a wrapper that counts the bytes read from it (every
/// read goes through `get`, `get_range` or `get_range_pieces`, none through the on-thread
/// shortcuts) and records each range streamed. Streamed ranges arrive in small pieces, as a
/// network body does, and break off half-way (a transient error) as often as `breaks` says;
/// `remote` makes it answer as an object store does (reads wait on latency).
#[derive(Debug)]
struct Observed {
    inner: LocalStorage,
    remote: bool,
    bytes_read: Arc<AtomicU64>,
    breaks: Arc<AtomicU64>,
    asked: Asked,
}

impl Observed {
    fn new(dir: &Path, remote: bool, breaks: u64) -> Self {
        Observed {
            inner: LocalStorage::new(dir),
            remote,
            bytes_read: Arc::new(AtomicU64::new(0)),
            breaks: Arc::new(AtomicU64::new(breaks)),
            asked: Arc::new(std::sync::Mutex::new(Vec::new())),
        }
    }
}

/// The ranges asked for: key, offset, length.
type Asked = Arc<std::sync::Mutex<Vec<(String, u64, u64)>>>;

struct SlicedPieces {
    rest: Bytes,
    break_after: Option<usize>,
    key: String,
}

#[async_trait]
impl holdfast_engine::storage::Pieces for SlicedPieces {
    async fn next_piece(&mut self) -> Option<Result<Bytes, StorageError>> {
        if self.break_after == Some(0) {
            self.break_after = None;
            self.rest = Bytes::new();
            return Some(Err(StorageError::Io {
                location: "test".into(),
                key: self.key.clone(),
                source: std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer"),
            }));
        }
        if self.rest.is_empty() {
            return None;
        }
        let n = self.rest.len().min(4096);
        self.break_after = self.break_after.map(|b| b - 1);
        Some(Ok(self.rest.split_to(n)))
    }
}

#[async_trait]
impl Storage for Observed {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn reads_wait_on_latency(&self) -> bool {
        self.remote || self.inner.reads_wait_on_latency()
    }
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        self.inner.put(key, data).await
    }
    async fn put_file(&self, key: &str, path: &Path) -> Result<(), StorageError> {
        self.inner.put_file(key, path).await
    }
    async fn put_new(&self, key: &str, data: Bytes) -> Result<bool, StorageError> {
        self.inner.put_new(key, data).await
    }
    async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let b = self.inner.get(key).await?;
        self.bytes_read.fetch_add(b.len() as u64, Ordering::Relaxed);
        Ok(b)
    }
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StorageError> {
        let b = self.inner.get_range(key, offset, len).await?;
        self.bytes_read.fetch_add(b.len() as u64, Ordering::Relaxed);
        Ok(b)
    }
    async fn get_range_pieces(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn holdfast_engine::storage::Pieces>, StorageError> {
        self.asked
            .lock()
            .unwrap()
            .push((key.to_owned(), offset, len));
        let rest = self.get_range(key, offset, len).await?;
        let pieces = rest.len().div_ceil(4096);
        let break_after = (pieces > 2
            && self
                .breaks
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                .is_ok())
        .then_some(pieces / 2);
        Ok(Box::new(SlicedPieces {
            rest,
            break_after,
            key: key.to_owned(),
        }))
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        self.inner.list(prefix).await
    }
    async fn stat(&self, key: &str) -> Result<Option<u64>, StorageError> {
        self.inner.stat(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }
}

/// A repository of 3 MiB of data in one file, seen as an object store whose streamed reads
/// break off `breaks` times.
fn breaking_repo(src: &Path, repo_dir: &Path, breaks: u64) -> (Repository<Indexed>, Asked) {
    fs::create_dir_all(src).unwrap();
    fs::write(src.join("big"), pseudo_random(3 << 20, 7)).unwrap();
    let mut repo = init_repo(repo_dir);
    backup_paths(&mut repo, &[src], &BackupOptions::default());
    let backend = Observed::new(repo_dir, true, breaks);
    let asked = backend.asked.clone();
    let store = Store::new(Arc::new(backend)).unwrap();
    let repo = Repository::open(store, PASS).unwrap().load_index().unwrap();
    (repo, asked)
}

#[test]
fn a_volume_read_that_breaks_off_is_asked_for_again_from_where_it_broke() {
    let (src, repo_dir, out) = (tmp(), tmp(), tmp());
    let data = src.path().join("data");
    let (repo, asked) = breaking_repo(&data, repo_dir.path(), 2);
    let report = restore_into(&repo, out.path(), RestoreOptions::default());
    assert_complete(&report, "restore through two broken reads");
    assert_same_tree(&snapshot(&data), &snapshot(out.path()));
    // Each break asked for the rest of its range: same volume and end, a later start; no
    // range was asked for whole again.
    let asked = asked.lock().unwrap();
    let again = asked
        .iter()
        .enumerate()
        .filter(|(i, (key, at, len))| {
            asked[..*i]
                .iter()
                .any(|(k, a, l)| k == key && at > a && at + len == a + l)
        })
        .count();
    assert_eq!(again, 2, "ranges asked for: {asked:?}");
    let keys: std::collections::BTreeSet<_> = asked.iter().map(|(k, ..)| k).collect();
    assert_eq!(asked.len(), keys.len() + 2, "ranges asked for: {asked:?}");
}

#[test]
fn a_volume_read_that_keeps_breaking_off_fails_the_items_and_says_why() {
    let (src, repo_dir, out) = (tmp(), tmp(), tmp());
    let data = src.path().join("data");
    let (repo, _) = breaking_repo(&data, repo_dir.path(), u64::MAX);
    let report = restore_into(&repo, out.path(), RestoreOptions::default());
    assert_ne!(report.status, RestoreStatus::Complete);
    let why = format!("{:?}", report.unrestored_items);
    assert!(why.contains("reset by peer"), "{why}");
}
