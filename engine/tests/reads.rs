//! What the engine reads from a repository on local disk: listings by their own range, not
//! their whole volume, so walking a run of many directories reads about what it needs.
#![allow(clippy::unwrap_used)] // reason: tests

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use common::*;
use holdfast_engine::backup::BackupOptions;
use holdfast_engine::format::run::Level;
use holdfast_engine::repo::{InitOptions, Repository};
use holdfast_engine::storage::{LocalStorage, ObjectInfo, Storage, StorageError, Store};

/// A real local repository that counts the bytes read from it (every read goes through
/// `get` or `get_range`, none through the on-thread shortcuts).
#[derive(Debug)]
struct Counting {
    inner: LocalStorage,
    bytes_read: Arc<AtomicU64>,
}

#[async_trait]
impl Storage for Counting {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn reads_wait_on_latency(&self) -> bool {
        self.inner.reads_wait_on_latency()
    }
    fn spool_dir(&self) -> Option<PathBuf> {
        self.inner.spool_dir()
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
    let counter = Arc::new(AtomicU64::new(0));
    let backend = Counting {
        inner: LocalStorage::new(repo_dir.path()),
        bytes_read: counter.clone(),
    };
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
