//! Where repository objects live. The engine sees a flat key space (`config`,
//! `keys/<id>`, `data/<ab>/<id>`, …); each backend maps it onto its medium.
//!
//! The trait is async because object stores are network services; the engine's worker
//! threads call it through [`Store`], which owns a small runtime.

pub(crate) mod check;
mod local;
mod rate;
mod s3;
mod store;
mod url;

use async_trait::async_trait;
use bytes::Bytes;

pub use check::CheckItem;
pub use local::LocalStorage;
pub(crate) use local::TEMP_PREFIX;
pub use s3::{S3Options, S3Storage, StaticCredentials};
pub use store::{RangeReader, Store};
pub use url::RepoUrl;

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A storage backend. Every write is atomic: a reader sees the whole object or none of it.
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Where the repository is, for messages (never contains credentials).
    fn location(&self) -> String;

    /// Write `data` under `key`, replacing any previous object, durably.
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError>;

    /// Whether a read mostly waits on the other end (an object store's latency) rather than
    /// on this machine, so that more reads in flight than cores pay off.
    fn reads_wait_on_latency(&self) -> bool {
        self.as_local().is_none()
    }

    /// This backend as a directory on this machine, if it is one: the engine then reads on
    /// its own threads instead of handing reads to the I/O runtime, builds volumes inside
    /// the repository so that storing one is a rename, and tidies empty directories. Only
    /// the filesystem backend answers; every other backend (and any wrapper that wants all
    /// reads to pass through it) keeps the default.
    fn as_local(&self) -> Option<&LocalStorage> {
        None
    }

    /// Store the local file at `path` under `key`, durably and atomically. The file is
    /// consumed: moved into place or removed afterwards, also on failure.
    async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(), StorageError> {
        let read = std::fs::read(path);
        let _ = std::fs::remove_file(path);
        let data = read.map_err(|e| StorageError::Io {
            location: self.location(),
            key: key.to_owned(),
            source: e,
        })?;
        self.put(key, Bytes::from(data)).await
    }

    /// Backend-specific checks for `holdfast storage check` (bucket, region, clock skew).
    async fn diagnose(&self) -> Vec<check::CheckItem> {
        Vec::new()
    }

    /// Objects (or entries) at the location, up to `limit`, whatever they are: `init`
    /// refuses a location that already holds other data.
    async fn sample_entries(&self, limit: usize) -> Result<Vec<String>, StorageError> {
        Ok(self
            .list("")
            .await?
            .into_iter()
            .take(limit)
            .map(|o| o.key)
            .collect())
    }

    /// The object named `name` in each location that encloses this one (a parent
    /// directory, a shorter prefix in the same bucket), nearest first, where one exists and
    /// can be read: `init` looks for a repository `config` there, so that no repository is
    /// created inside another. A location this one's credentials may not read is passed
    /// over.
    async fn enclosing_objects(&self, name: &str) -> Result<Vec<(String, Bytes)>, StorageError> {
        let _ = name;
        Ok(Vec::new())
    }

    /// Remove leftovers of interrupted writes (temporary objects) older than `older_than`.
    /// Returns how many were removed. Backends without temporaries remove nothing.
    async fn remove_stale_temporaries(
        &self,
        older_than: std::time::SystemTime,
    ) -> Result<u64, StorageError> {
        let _ = older_than;
        Ok(0)
    }

    /// Write `data` under `key` only if no object has that key; `Ok(false)` if one does.
    async fn put_new(&self, key: &str, data: Bytes) -> Result<bool, StorageError>;

    /// The whole object.
    async fn get(&self, key: &str) -> Result<Bytes, StorageError>;

    /// `len` bytes of the object from `offset`.
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StorageError>;

    /// A byte range of an object as it arrives, piece by piece, so that a large read need
    /// not be held whole. By default the range is read in one piece.
    async fn get_range_pieces(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn Pieces>, StorageError> {
        Ok(Box::new(OnePiece(Some(
            self.get_range(key, offset, len).await?,
        ))))
    }

    /// Every object whose key starts with `prefix` (a directory-like prefix ending in `/`).
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError>;

    /// Size of the object, or `None` when absent.
    async fn stat(&self, key: &str) -> Result<Option<u64>, StorageError>;

    /// Remove the object; removing an absent object is not an error.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
}

/// The pieces of a range as they arrive.
#[async_trait]
pub trait Pieces: Send {
    /// The next piece, or `None` at the end.
    async fn next_piece(&mut self) -> Option<Result<Bytes, StorageError>>;
}

/// A range read whole.
struct OnePiece(Option<Bytes>);

#[async_trait]
impl Pieces for OnePiece {
    async fn next_piece(&mut self) -> Option<Result<Bytes, StorageError>> {
        self.0.take().map(Ok)
    }
}

/// A storage operation failed. `location` is always the repository's location as
/// [`Storage::location`] gives it (never with credentials); `key` the object's key.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The object does not exist.
    #[error("{key} not found in {location}")]
    NotFound {
        /// The repository's location.
        location: String,
        /// The missing object's key.
        key: String,
    },
    /// The backend refused the credentials' or the process's access.
    #[error("permission denied on {location}: {detail}")]
    PermissionDenied {
        /// The repository's location.
        location: String,
        /// What the backend or the system said.
        detail: String,
    },
    /// The disk (or quota) is full.
    #[error("no space left on {location} while writing {key}: free space, or move the repository")]
    NoSpace {
        /// The repository's location.
        location: String,
        /// The object being written.
        key: String,
    },
    /// The backend does not answer (network, DNS, TLS, timeouts after retries).
    #[error("{location} is unreachable: {detail}")]
    Unreachable {
        /// The repository's location.
        location: String,
        /// What failed, as the client library said it.
        detail: String,
    },
    /// The S3 bucket does not exist.
    #[error("bucket {bucket:?} does not exist ({location}): create it, or fix the bucket name")]
    BucketNotFound {
        /// The repository's location.
        location: String,
        /// The bucket the URL names.
        bucket: String,
    },
    /// The object store rejected the access key or its signature.
    #[error(
        "the storage credentials were rejected by {location} ({detail}): check the access key and secret"
    )]
    InvalidCredentials {
        /// The repository's location.
        location: String,
        /// The server's error code and message.
        detail: String,
    },
    /// Requests are refused because this machine's clock differs too much from the server's.
    #[error("this machine's clock is too far from {location}'s ({detail}): fix the time (NTP)")]
    ClockSkew {
        /// The repository's location.
        location: String,
        /// The server's error code and message.
        detail: String,
    },
    /// The bucket is in another region than the one the requests were signed for.
    #[error(
        "{location} is in another region ({detail}): set region= in the URL to the bucket's region"
    )]
    WrongRegion {
        /// The repository's location.
        location: String,
        /// The server's error code and message.
        detail: String,
    },
    /// A write that must not replace an object found one.
    #[error("{key} already exists in {location}")]
    AlreadyExists {
        /// The repository's location.
        location: String,
        /// The object that exists.
        key: String,
    },
    /// Any other failure to read or write an object.
    #[error("I/O error on {key} in {location}")]
    Io {
        /// The repository's location.
        location: String,
        /// The object being read or written (empty when none).
        key: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A repository URL that does not parse, or names an unsupported scheme.
    #[error("invalid repository URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl StorageError {
    /// The category: exit code, event reason and metric label.
    pub(crate) fn category(&self) -> crate::error_category::ErrorCategory {
        use crate::error_category::ErrorCategory as C;
        match self {
            StorageError::NotFound { .. } => C::NotFound,
            StorageError::PermissionDenied { .. } => C::PermissionDenied,
            StorageError::NoSpace { .. } => C::NoSpace,
            StorageError::Unreachable { .. } => C::Unreachable,
            StorageError::BucketNotFound { .. } => C::BucketNotFound,
            StorageError::InvalidCredentials { .. } => C::InvalidCredentials,
            StorageError::ClockSkew { .. } => C::ClockSkew,
            StorageError::WrongRegion { .. } => C::WrongRegion,
            StorageError::AlreadyExists { .. } => C::ObjectExists,
            StorageError::Io { .. } => C::StorageIo,
            StorageError::InvalidUrl { .. } => C::InvalidUrl,
        }
    }

    /// Whether retrying the same operation later may succeed.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(
            self,
            StorageError::Unreachable { .. } | StorageError::Io { .. }
        )
    }
}

/// Key of a volume (pack file).
pub(crate) fn pack_key(id: &crate::id::Id) -> String {
    let hex = id.to_hex();
    format!("data/{}/{}", &hex[..2], hex)
}
