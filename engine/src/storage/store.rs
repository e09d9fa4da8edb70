//! Blocking access to a [`Storage`] for the engine's worker threads.

use std::sync::Arc;

use bytes::Bytes;

use super::{ObjectInfo, Storage, StorageError};

/// A storage backend plus the runtime that drives it. Cheap to clone.
///
/// The engine's pipelines run on plain threads (chunking, hashing and compression are CPU
/// work); they reach the async backend by blocking on this runtime. Do not call these
/// methods from inside another async runtime: use `spawn_blocking` there.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn Storage>,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Store {
    pub fn new(backend: Arc<dyn Storage>) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("holdfast-io")
            .enable_all()
            .build()?;
        Ok(Store {
            backend,
            runtime: Arc::new(runtime),
        })
    }

    /// Open the backend a repository URL names.
    pub fn open(url: &super::RepoUrl) -> Result<Self, StorageError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("holdfast-io")
            .enable_all()
            .build()
            .map_err(|e| StorageError::Io {
                location: url.to_string(),
                key: String::new(),
                source: e,
            })?;
        let backend = runtime.block_on(super::url::connect(url));
        Ok(Store {
            backend,
            runtime: Arc::new(runtime),
        })
    }

    /// See [`Storage::diagnose`].
    pub fn diagnose(&self) -> Vec<super::check::CheckItem> {
        self.runtime.block_on(self.backend.diagnose())
    }

    /// See [`Storage::prune_empty`].
    pub fn prune_empty(&self) -> Result<(), StorageError> {
        self.runtime.block_on(self.backend.prune_empty())
    }

    /// See [`Storage::not_created_yet`].
    pub fn not_created_yet(&self) -> Option<super::check::CheckItem> {
        self.backend.not_created_yet()
    }

    /// See [`Storage::enclosing_objects`].
    pub fn enclosing_objects(&self, name: &str) -> Result<Vec<(String, Bytes)>, StorageError> {
        self.runtime.block_on(self.backend.enclosing_objects(name))
    }

    /// See [`Storage::sample_entries`].
    pub fn sample_entries(&self, limit: usize) -> Result<Vec<String>, StorageError> {
        self.runtime.block_on(self.backend.sample_entries(limit))
    }

    pub fn backend(&self) -> &Arc<dyn Storage> {
        &self.backend
    }

    /// See [`Storage::reads_wait_on_latency`].
    pub fn reads_wait_on_latency(&self) -> bool {
        self.backend.reads_wait_on_latency()
    }

    pub fn location(&self) -> String {
        self.backend.location()
    }

    pub fn put(&self, key: &str, data: impl Into<Bytes>) -> Result<(), StorageError> {
        self.runtime.block_on(self.backend.put(key, data.into()))
    }

    /// See [`Storage::put_file`].
    pub fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(), StorageError> {
        self.runtime.block_on(self.backend.put_file(key, path))
    }

    /// See [`Storage::remove_stale_temporaries`].
    pub fn remove_stale_temporaries(
        &self,
        older_than: std::time::SystemTime,
    ) -> Result<u64, StorageError> {
        self.runtime
            .block_on(self.backend.remove_stale_temporaries(older_than))
    }

    pub fn spool_dir(&self) -> std::path::PathBuf {
        self.backend.spool_dir().unwrap_or_else(std::env::temp_dir)
    }

    /// Whether a spooled volume is stored by moving it (a filesystem repository), so it is
    /// never read again by this process; otherwise it is read back to upload it.
    pub fn spool_is_destination(&self) -> bool {
        self.backend.spool_dir().is_some()
    }

    pub fn put_new(&self, key: &str, data: impl Into<Bytes>) -> Result<bool, StorageError> {
        self.runtime
            .block_on(self.backend.put_new(key, data.into()))
    }

    pub fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        if let Some(r) = self.backend.read_now(key) {
            return r;
        }
        self.runtime.block_on(self.backend.get(key))
    }

    /// See [`Storage::open_now`].
    pub fn open_now(&self, key: &str) -> Option<Result<std::fs::File, StorageError>> {
        self.backend.open_now(key)
    }

    pub fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StorageError> {
        if let Some(r) = self.backend.read_range_now(key, offset, len) {
            return r;
        }
        self.runtime
            .block_on(self.backend.get_range(key, offset, len))
    }

    pub fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        self.runtime.block_on(self.backend.list(prefix))
    }

    pub fn stat(&self, key: &str) -> Result<Option<u64>, StorageError> {
        self.runtime.block_on(self.backend.stat(key))
    }

    /// Fetch many objects concurrently (at most `concurrency` at a time), in input order.
    pub fn get_many(
        &self,
        keys: &[String],
        concurrency: usize,
    ) -> Vec<Result<Bytes, StorageError>> {
        self.runtime.block_on(async {
            let limit = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
            let mut set = tokio::task::JoinSet::new();
            for (i, key) in keys.iter().enumerate() {
                let backend = self.backend.clone();
                let key = key.clone();
                let limit = limit.clone();
                set.spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    (i, backend.get(&key).await)
                });
            }
            let mut out: Vec<Option<Result<Bytes, StorageError>>> =
                keys.iter().map(|_| None).collect();
            while let Some(joined) = set.join_next().await {
                // A task that panicked leaves its slot empty; it is reported below.
                if let Ok((i, r)) = joined {
                    out[i] = Some(r);
                }
            }
            out.into_iter()
                .zip(keys)
                .map(|(r, key)| {
                    r.unwrap_or_else(|| {
                        Err(StorageError::Io {
                            location: self.backend.location(),
                            key: key.clone(),
                            source: std::io::Error::other("fetch task panicked"),
                        })
                    })
                })
                .collect()
        })
    }

    pub fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.runtime.block_on(self.backend.delete(key))
    }
}
