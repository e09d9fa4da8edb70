//! Filesystem backend: one file per object under a root directory.
//!
//! Writes go to a temporary file in the destination directory, are fsynced, renamed into
//! place and the directory is fsynced, so a crash leaves either the old state or the whole
//! new object (plus perhaps a `.tmp-*` file that listings ignore and purge removes).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use super::check::CheckItem;
use super::{ObjectInfo, Storage, StorageError};

/// Prefix of in-progress writes; never a valid object key component.
pub const TEMP_PREFIX: &str = ".tmp-";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// How many volume files stay open for reads: a restore reads many blobs from each.
const OPEN_FILES: usize = 64;

/// Recently read files by key, most recent last.
type OpenFiles = std::sync::Arc<std::sync::Mutex<Vec<(String, std::sync::Arc<File>)>>>;

/// A repository in a local (or mounted network) directory.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
    /// Recently read files, most recent last; shared by clones.
    open: OpenFiles,
}

impl LocalStorage {
    /// A repository in the directory `root` (created by the first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStorage {
            root: root.into(),
            open: Default::default(),
        }
    }

    fn open_cached(&self, key: &str) -> io::Result<std::sync::Arc<File>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pos) = open.iter().position(|(k, _)| k == key) {
            let entry = open.remove(pos);
            let f = entry.1.clone();
            open.push(entry);
            return Ok(f);
        }
        drop(open);
        let f = std::sync::Arc::new(File::open(self.path(key))?);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= OPEN_FILES {
            open.remove(0);
        }
        open.push((key.to_owned(), f.clone()));
        Ok(f)
    }

    fn forget_open(&self, key: &str) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(k, _)| k != key);
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn err(&self, key: &str, e: io::Error) -> StorageError {
        let location = self.location();
        match e.kind() {
            io::ErrorKind::NotFound => StorageError::NotFound {
                location,
                key: key.to_owned(),
            },
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                StorageError::PermissionDenied {
                    location,
                    detail: format!("{key}: {e}"),
                }
            }
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => StorageError::NoSpace {
                location,
                key: key.to_owned(),
            },
            _ => StorageError::Io {
                location,
                key: key.to_owned(),
                source: e,
            },
        }
    }

    fn write_temp(&self, key: &str, data: &[u8]) -> io::Result<(PathBuf, PathBuf)> {
        let dest = self.path(key);
        let dir = dest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(
            "{TEMP_PREFIX}{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(data)?;
            f.sync_all()
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok((tmp, dir))
    }

    fn put_sync(&self, key: &str, data: &[u8]) -> io::Result<()> {
        let (tmp, dir) = self.write_temp(key, data)?;
        if let Err(e) = fs::rename(&tmp, self.path(key)) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        File::open(&dir)?.sync_all()
    }

    fn put_file_sync(&self, key: &str, src: &Path) -> io::Result<()> {
        let moved = (|| {
            File::open(src)?.sync_all()?;
            let dest = self.path(key);
            let dir = dest
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| self.root.clone());
            fs::create_dir_all(&dir)?;
            fs::rename(src, &dest)?;
            File::open(&dir)?.sync_all()
        })();
        if moved.is_err() {
            let _ = fs::remove_file(src);
        }
        moved
    }

    fn put_new_sync(&self, key: &str, data: &[u8]) -> io::Result<bool> {
        let (tmp, dir) = self.write_temp(key, data)?;
        // link() fails if the destination exists, which rename() would silently replace.
        let linked = fs::hard_link(&tmp, self.path(key));
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                File::open(&dir)?.sync_all()?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn get_range_sync(&self, key: &str, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let f = self.open_cached(key)?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    fn remove_temporaries_sync(&self, older_than: std::time::SystemTime) -> io::Result<u64> {
        let mut removed = 0;
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let meta = entry.metadata()?;
                if meta.is_dir() {
                    stack.push(entry.path());
                } else if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
                    && meta.modified()? < older_than
                {
                    fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    fn list_sync(&self, prefix: &str) -> io::Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let start = self.path(prefix.trim_end_matches('/'));
        let mut stack = vec![(start, prefix.trim_end_matches('/').to_owned())];
        while let Some((dir, key_prefix)) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with(TEMP_PREFIX) {
                    continue;
                }
                let key = if key_prefix.is_empty() {
                    name.to_owned()
                } else {
                    format!("{key_prefix}/{name}")
                };
                let meta = entry.metadata()?;
                if meta.is_dir() {
                    stack.push((entry.path(), key));
                } else {
                    out.push(ObjectInfo {
                        key,
                        size: meta.len(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// For a directory that does not exist yet (the first write creates it), what `storage
    /// check` says instead of probing, which would create it; `None` when it exists.
    pub(crate) fn not_created_yet(&self) -> Option<CheckItem> {
        if self.root.exists() {
            return None;
        }
        let Some(ancestor) = self.root.ancestors().skip(1).find(|p| p.exists()) else {
            return Some(CheckItem::error(
                "location",
                crate::error_category::ErrorCategory::NotFound,
                "no part of this path exists",
            ));
        };
        Some(
            match rustix::fs::access(ancestor, rustix::fs::Access::WRITE_OK) {
                Ok(()) => CheckItem::ok(
                    "location",
                    format!(
                        "does not exist yet; `holdfast init` creates it ({} is writable)",
                        ancestor.display()
                    ),
                ),
                Err(e) => CheckItem::error(
                    "location",
                    crate::error_category::ErrorCategory::PermissionDenied,
                    format!(
                        "does not exist, and {} is not writable ({e}): create it, or choose \
                         another path",
                        ancestor.display()
                    ),
                ),
            },
        )
    }

    /// Remove the empty directories deleting every object left behind.
    pub(crate) async fn prune_empty(&self) -> Result<(), StorageError> {
        self.blocking("", |s| {
            fn prune(dir: &Path) -> io::Result<bool> {
                let mut empty = true;
                for entry in fs::read_dir(dir)? {
                    let entry = entry?;
                    if entry.file_type()?.is_dir() {
                        if !prune(&entry.path())? {
                            empty = false;
                        }
                    } else {
                        empty = false;
                    }
                }
                if empty {
                    fs::remove_dir(dir)?;
                }
                Ok(empty)
            }
            match prune(&s.root) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        })
        .await
    }

    /// Where volumes are built: inside the repository, on the same filesystem, so that
    /// finishing one is a rename.
    pub(crate) fn spool_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// Read a whole object on the calling thread. Besides skipping the hand-off to the I/O
    /// runtime, the buffer then belongs to the caller's allocator arena (volume-sized buffers
    /// allocated on the runtime's threads and freed on the caller's stay cached per thread).
    pub(crate) fn read_now(&self, key: &str) -> Result<Bytes, StorageError> {
        fs::read(self.path(key))
            .map(Bytes::from)
            .map_err(|e| self.err(key, e))
    }

    /// Open an object as a file to be read piecewise on the calling thread, so that a large
    /// object need not be held in memory whole.
    pub(crate) fn open_now(&self, key: &str) -> Result<File, StorageError> {
        File::open(self.path(key)).map_err(|e| self.err(key, e))
    }

    /// Read a range on the calling thread.
    pub(crate) fn read_range_now(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, StorageError> {
        self.get_range_sync(key, offset, len)
            .map(Bytes::from)
            .map_err(|e| self.err(key, e))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        key: &str,
        f: impl FnOnce(LocalStorage) -> io::Result<T> + Send + 'static,
    ) -> Result<T, StorageError> {
        let this = self.clone();
        match tokio::task::spawn_blocking(move || f(this)).await {
            Ok(r) => r.map_err(|e| self.err(key, e)),
            Err(join) => Err(self.err(key, io::Error::other(join.to_string()))),
        }
    }
}

#[async_trait]
impl Storage for LocalStorage {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn as_local(&self) -> Option<&LocalStorage> {
        Some(self)
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        let k = key.to_owned();
        self.blocking(key, move |s| s.put_sync(&k, &data)).await
    }

    async fn enclosing_objects(&self, name: &str) -> Result<Vec<(String, Bytes)>, StorageError> {
        let name = name.to_owned();
        self.blocking("", move |s| {
            let mut found = Vec::new();
            for dir in s.root.ancestors().skip(1) {
                // Unreadable or absent: nothing to say about that directory.
                if let Ok(bytes) = fs::read(dir.join(&name)) {
                    found.push((dir.display().to_string(), Bytes::from(bytes)));
                }
            }
            Ok(found)
        })
        .await
    }

    async fn sample_entries(&self, limit: usize) -> Result<Vec<String>, StorageError> {
        // Any entry counts, not only what a repository would hold.
        let root = self.root.clone();
        self.blocking("", move |_| match fs::read_dir(&root) {
            Ok(entries) => Ok(entries
                .filter_map(|e| e.ok())
                .take(limit)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        })
        .await
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<(), StorageError> {
        let (k, p) = (key.to_owned(), path.to_path_buf());
        self.blocking(key, move |s| s.put_file_sync(&k, &p)).await
    }

    async fn remove_stale_temporaries(
        &self,
        older_than: std::time::SystemTime,
    ) -> Result<u64, StorageError> {
        self.blocking("temporary files", move |s| {
            s.remove_temporaries_sync(older_than)
        })
        .await
    }

    async fn put_new(&self, key: &str, data: Bytes) -> Result<bool, StorageError> {
        let k = key.to_owned();
        self.blocking(key, move |s| s.put_new_sync(&k, &data)).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let k = key.to_owned();
        self.blocking(key, move |s| fs::read(s.path(&k)).map(Bytes::from))
            .await
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StorageError> {
        let k = key.to_owned();
        self.blocking(key, move |s| {
            s.get_range_sync(&k, offset, len).map(Bytes::from)
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let p = prefix.to_owned();
        self.blocking(prefix, move |s| s.list_sync(&p)).await
    }

    async fn stat(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let k = key.to_owned();
        self.blocking(key, move |s| match fs::metadata(s.path(&k)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.forget_open(key);
        let k = key.to_owned();
        self.blocking(key, move |s| match fs::remove_file(s.path(&k)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        rt().block_on(async {
            s.put("data/ab/abc", Bytes::from_static(b"hello"))
                .await
                .unwrap();
            s.put("config", Bytes::from_static(b"c")).await.unwrap();
            assert_eq!(&s.get("data/ab/abc").await.unwrap()[..], b"hello");
            assert_eq!(&s.get_range("data/ab/abc", 1, 3).await.unwrap()[..], b"ell");
            let listed = s.list("data/").await.unwrap();
            assert_eq!(
                listed,
                vec![ObjectInfo {
                    key: "data/ab/abc".into(),
                    size: 5
                }]
            );
            assert_eq!(s.stat("config").await.unwrap(), Some(1));
            s.delete("config").await.unwrap();
            s.delete("config").await.unwrap();
            assert_eq!(s.stat("config").await.unwrap(), None);
            assert!(matches!(
                s.get("config").await,
                Err(StorageError::NotFound { .. })
            ));
        });
    }

    #[test]
    fn put_new_refuses_to_replace() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        rt().block_on(async {
            assert!(s.put_new("runs/x", Bytes::from_static(b"1")).await.unwrap());
            assert!(!s.put_new("runs/x", Bytes::from_static(b"2")).await.unwrap());
            assert_eq!(&s.get("runs/x").await.unwrap()[..], b"1");
        });
    }

    #[test]
    fn listing_ignores_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("data/ab")).unwrap();
        fs::write(dir.path().join("data/ab/.tmp-1-2"), b"partial").unwrap();
        let s = LocalStorage::new(dir.path());
        assert!(rt().block_on(s.list("data/")).unwrap().is_empty());
    }
}
