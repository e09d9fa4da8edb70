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
    /// A store over `backend`, with its own small I/O runtime.
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
    pub(crate) fn diagnose(&self) -> Vec<super::check::CheckItem> {
        self.runtime.block_on(self.backend.diagnose())
    }

    /// Remove what deleting every object left behind (a directory's empty directories;
    /// object stores have nothing to remove).
    pub(crate) fn prune_empty(&self) -> Result<(), StorageError> {
        match self.backend.as_local() {
            Some(local) => self.runtime.block_on(local.prune_empty()),
            None => Ok(()),
        }
    }

    /// For a location that does not exist yet and would be created by the first write (a
    /// directory), what `storage check` should say instead of probing, which would create
    /// it. `None` when the location exists or needs no creating (object stores).
    pub(crate) fn not_created_yet(&self) -> Option<super::check::CheckItem> {
        self.backend.as_local()?.not_created_yet()
    }

    /// See [`Storage::enclosing_objects`].
    pub(crate) fn enclosing_objects(
        &self,
        name: &str,
    ) -> Result<Vec<(String, Bytes)>, StorageError> {
        self.runtime.block_on(self.backend.enclosing_objects(name))
    }

    /// See [`Storage::sample_entries`].
    pub(crate) fn sample_entries(&self, limit: usize) -> Result<Vec<String>, StorageError> {
        self.runtime.block_on(self.backend.sample_entries(limit))
    }

    /// See [`Storage::reads_wait_on_latency`].
    pub(crate) fn reads_wait_on_latency(&self) -> bool {
        self.backend.reads_wait_on_latency()
    }

    /// Where the repository is, for messages (never with credentials).
    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// Write `data` under `key`, replacing any previous object, durably.
    pub fn put(&self, key: &str, data: impl Into<Bytes>) -> Result<(), StorageError> {
        self.runtime.block_on(self.backend.put(key, data.into()))
    }

    /// See [`Storage::put_file`].
    pub(crate) fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(), StorageError> {
        self.runtime.block_on(self.backend.put_file(key, path))
    }

    /// See [`Storage::remove_stale_temporaries`].
    pub(crate) fn remove_stale_temporaries(
        &self,
        older_than: std::time::SystemTime,
    ) -> Result<u64, StorageError> {
        self.runtime
            .block_on(self.backend.remove_stale_temporaries(older_than))
    }

    /// Where large objects are built before [`Store::put_file`]: inside a filesystem
    /// repository (so that storing one is a rename), else the system's temporary directory.
    pub(crate) fn spool_dir(&self) -> std::path::PathBuf {
        match self.backend.as_local() {
            Some(local) => local.spool_dir(),
            None => std::env::temp_dir(),
        }
    }

    /// Whether a spooled volume is stored by moving it (a filesystem repository), so it is
    /// never read again by this process; otherwise it is read back to upload it.
    pub(crate) fn spool_is_destination(&self) -> bool {
        self.backend.as_local().is_some()
    }

    pub(crate) fn put_new(&self, key: &str, data: impl Into<Bytes>) -> Result<bool, StorageError> {
        self.runtime
            .block_on(self.backend.put_new(key, data.into()))
    }

    /// The whole object.
    pub fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        if let Some(local) = self.backend.as_local() {
            return local.read_now(key);
        }
        self.runtime.block_on(self.backend.get(key))
    }

    /// Open an object as a local file to be read piecewise on the calling thread (so that a
    /// large object need not be held in memory whole); `None` if the backend is not local.
    pub(crate) fn open_now(&self, key: &str) -> Option<Result<std::fs::File, StorageError>> {
        Some(self.backend.as_local()?.open_now(key))
    }

    pub(crate) fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, StorageError> {
        if let Some(local) = self.backend.as_local() {
            return local.read_range_now(key, offset, len);
        }
        self.runtime
            .block_on(self.backend.get_range(key, offset, len))
    }

    /// Read a range of an object as it arrives (see [`RangeReader`]).
    pub(crate) fn read_range(&self, key: &str, offset: u64, len: u64) -> RangeReader {
        let (tx, rx) = tokio::sync::mpsc::channel(PIECES_AHEAD);
        if let Some(local) = self.backend.as_local() {
            // A local file: one piece, read on this thread.
            let _ = tx.try_send(local.read_range_now(key, offset, len));
        } else {
            let backend = self.backend.clone();
            let key = key.to_owned();
            self.runtime
                .spawn(async move { pump(backend, key, offset, len, tx).await });
        }
        RangeReader {
            rx,
            piece: Bytes::new(),
            at: offset,
            location: self.backend.location(),
            key: key.to_owned(),
            broken: None,
        }
    }

    /// Every object whose key starts with `prefix`.
    pub fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        self.runtime.block_on(self.backend.list(prefix))
    }

    /// Size of the object, or `None` when absent.
    pub fn stat(&self, key: &str) -> Result<Option<u64>, StorageError> {
        self.runtime.block_on(self.backend.stat(key))
    }

    /// Fetch many objects concurrently (at most `concurrency` at a time), in input order.
    pub(crate) fn get_many(
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

    pub(crate) fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.runtime.block_on(self.backend.delete(key))
    }
}

/// Pieces a range reader may have received but not read yet.
const PIECES_AHEAD: usize = 4;
/// A network body arrives in pieces of a few KiB; the reader gets them joined into pieces of
/// about this size, so handing them over costs a wake-up per MiB, not per packet.
const PIECE: usize = 1 << 20;
/// How often a range that breaks off while streaming is asked for again (from where it
/// broke off) before the read fails.
const STREAM_ATTEMPTS: u32 = 5;

/// A range of an object, read as it arrives: a task of the store's runtime receives the
/// pieces a little ahead of the reader (so the network and the reader's work overlap, and
/// memory holds a few pieces, not the range), and asks for the rest again when a
/// connection breaks off mid-way. Reads go forward only.
#[derive(Debug)]
pub struct RangeReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, StorageError>>,
    piece: Bytes,
    /// Offset in the object of the first byte of `piece`.
    at: u64,
    location: String,
    key: String,
    /// Why the range could not be read, once it could not.
    broken: Option<String>,
}

impl RangeReader {
    fn failure(&self, detail: &str) -> StorageError {
        StorageError::Io {
            location: self.location.clone(),
            key: self.key.clone(),
            source: std::io::Error::other(detail.to_owned()),
        }
    }

    /// The `len` bytes at offset `at` of the object (at or after what was read before).
    pub(crate) fn read_at(&mut self, at: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        if let Some(why) = &self.broken {
            return Err(self.failure(why));
        }
        if at < self.at {
            return Err(self.failure("a range is read forward only"));
        }
        let mut skip = at - self.at;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            if self.piece.is_empty() {
                match self.rx.blocking_recv() {
                    Some(Ok(b)) => self.piece = b,
                    Some(Err(e)) => {
                        self.broken = Some(e.to_string());
                        return Err(e);
                    }
                    None => {
                        let why = "the object ended before the range did".to_owned();
                        self.broken = Some(why.clone());
                        return Err(self.failure(&why));
                    }
                }
            }
            let dropped = usize::try_from(skip)
                .unwrap_or(usize::MAX)
                .min(self.piece.len());
            let _ = self.piece.split_to(dropped);
            skip -= dropped as u64;
            self.at += dropped as u64;
            if skip > 0 {
                continue;
            }
            let take = (len - out.len()).min(self.piece.len());
            out.extend_from_slice(&self.piece.split_to(take));
            self.at += take as u64;
        }
        Ok(out)
    }
}

/// Feed a range's pieces to its reader, asking again from where it broke off.
async fn pump(
    backend: Arc<dyn Storage>,
    key: String,
    offset: u64,
    len: u64,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, StorageError>>,
) {
    let end = offset + len;
    let mut pos = offset;
    let mut breaks = 0u32;
    while pos < end {
        let mut pieces = match backend.get_range_pieces(&key, pos, end - pos).await {
            Ok(p) => p,
            // The request itself was retried already (by the backend).
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let mut joined = bytes::BytesMut::new();
        let broke = loop {
            let piece = pieces.next_piece().await;
            if let Some(Ok(b)) = &piece {
                pos += b.len() as u64;
                if joined.capacity() == 0 {
                    joined.reserve(PIECE.max(b.len()));
                }
                joined.extend_from_slice(b);
            }
            // Hand over whole MiBs, and whatever is there at the end or before asking again
            // (those bytes were counted in `pos`).
            let ending = !matches!(piece, Some(Ok(_)));
            if (joined.len() >= PIECE || (ending && !joined.is_empty()))
                && tx.send(Ok(joined.split().freeze())).await.is_err()
            {
                // The reader has what it wanted, or stopped.
                return;
            }
            match piece {
                Some(Ok(_)) => {}
                Some(Err(e)) if e.is_transient() => break e,
                Some(Err(e)) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                None if pos < end => {
                    break StorageError::Io {
                        location: backend.location(),
                        key: key.clone(),
                        source: std::io::Error::other(format!(
                            "the body ended after {} of {len} bytes",
                            pos - offset
                        )),
                    };
                }
                None => return,
            }
        };
        breaks += 1;
        if breaks >= STREAM_ATTEMPTS {
            let _ = tx.send(Err(broke)).await;
            return;
        }
        tracing::warn!(
            "reading {key} broke off ({broke}); asking again for the rest (attempt {} of {STREAM_ATTEMPTS})",
            breaks + 1
        );
        tokio::time::sleep(std::time::Duration::from_millis(100 << breaks)).await;
    }
}
