//! The engine's error type. Every variant names what failed and, where there is one, the fix.
//!
//! Rules: every error has an [`ErrorCategory`], matched exhaustively wherever it is turned
//! into something else (CLI exit codes, Kubernetes event reasons, metric labels), so two
//! different failures never share a name by accident. Causes stay attached as `#[source]`.

use crate::crypto::CryptoError;
use crate::error_category::ErrorCategory;
use crate::storage::StorageError;

/// An engine operation failed. `location` is always the repository's location as the
/// storage backend gives it (never with credentials).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No repository `config` at the location, or one that is not Holdfast's.
    #[error("no Holdfast repository at {location}: {detail}")]
    NotARepository {
        /// Where a repository was expected.
        location: String,
        /// What was found instead.
        detail: String,
    },

    /// `init` found a repository already there.
    #[error("a Holdfast repository already exists at {location}")]
    AlreadyExists {
        /// The repository's location.
        location: String,
    },

    /// `init` found other data at the location.
    #[error(
        "{location} is not empty (it holds {sample}): choose an empty directory or prefix, or \
         pass --allow-non-empty to create the repository beside what is there"
    )]
    LocationNotEmpty {
        /// The location asked for.
        location: String,
        /// A few of the entries found there.
        sample: String,
    },

    /// `init` was asked for a location inside another repository.
    #[error(
        "{location} lies inside the repository at {outer}: a repository cannot hold another (its \
         purge or deletion would destroy the inner one); choose a location outside it"
    )]
    InsideRepository {
        /// The location asked for.
        location: String,
        /// The enclosing repository's location.
        outer: String,
    },

    /// `init` was asked for a location that encloses other repositories.
    #[error(
        "other repositories lie inside {location} (at {}): a repository cannot hold another (its \
         purge or deletion would destroy the inner one); nothing was changed. Move or delete the \
         inner ones first, or choose another location",
        .inner.join(", ")
    )]
    ContainsRepository {
        /// The location asked for.
        location: String,
        /// The repositories found inside it.
        inner: Vec<String>,
    },

    /// The passphrase or key file does not unwrap the repository's key.
    #[error("wrong key: the passphrase or key file does not open the repository at {location}")]
    WrongKey {
        /// The repository's location.
        location: String,
    },

    /// The repository was written by a newer Holdfast.
    #[error(
        "the repository at {location} has format version {found}, this holdfast supports up to \
         {supported}: upgrade holdfast"
    )]
    UnsupportedVersion {
        /// The repository's location.
        location: String,
        /// The repository's format version.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },

    /// The repository uses format features this build does not know for this operation.
    #[error(
        "the repository at {location} needs features {features:?} to {operation}, which this \
         holdfast does not know: upgrade holdfast"
    )]
    UnsupportedFeature {
        /// The repository's location.
        location: String,
        /// What was attempted: `read`, `write`, `check` or `delete`.
        operation: &'static str,
        /// The unknown features.
        features: Vec<String>,
    },

    /// The repository belongs to another backup set.
    #[error(
        "the repository at {location} belongs to {owner:?}, not {requested:?}: each backup set \
         needs its own repository (pass --force to write anyway)"
    )]
    OwnedByOther {
        /// The repository's location.
        location: String,
        /// The owner recorded in the repository.
        owner: String,
        /// The owner this operation runs for.
        requested: String,
    },

    /// A copy's destination was not made as a copy of its source.
    #[error(
        "the repository at {to} was not made as a copy of {from} (their keys or chunkers \
         differ), so blobs cannot move between them as they are: copy into an empty location \
         (the copy is created there) or into one an earlier copy from {from} made"
    )]
    NotACopy {
        /// The source repository.
        from: String,
        /// The destination.
        to: String,
    },

    /// Another operation holds a lock that conflicts with this one, and waiting did not end.
    #[error("the repository at {location} is locked: {holder}; {hint}")]
    Locked {
        /// The repository's location.
        location: String,
        /// Who holds the lock, for what, since when.
        holder: String,
        /// When the lock ends and what to do meanwhile.
        hint: String,
    },

    /// This operation's own lock expired or was removed while it ran.
    #[error(
        "this operation's lock on {location} expired or was removed while it ran; its result was \
         not recorded (run it again)"
    )]
    LockLost {
        /// The repository's location.
        location: String,
    },

    /// The storage backend failed.
    #[error(transparent)]
    Storage(#[from] StorageError),

    /// Stored data does not decrypt, does not match its id, or contradicts other data.
    #[error("repository data is damaged: {0}")]
    Corrupt(String),

    /// A stored object does not parse as what its key says it is.
    #[error("repository data is damaged: {0}")]
    Format(#[from] crate::format::FormatError),

    /// A local file (a source, a restore target, a spool file) could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The local path.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// No run has the label asked for.
    #[error("no run labelled {label:?}{}", nearest_hint(.nearest))]
    RunNotFound {
        /// The label asked for.
        label: String,
        /// The labels nearest to it, to suggest.
        nearest: Vec<String>,
    },

    /// The repository holds no runs.
    #[error("the repository has no runs yet: run `holdfast backup` first")]
    NoRuns,

    /// Runs exist, but none can restore what was asked as asked; the text says why and what
    /// to pass instead.
    #[error("{0}")]
    NoRestorePoint(String),

    /// A point-in-time restore asked for a time before the first run.
    #[error(
        "no restorable run at or before {requested}; the first run is {first_label} at {first_time}"
    )]
    NoRunBefore {
        /// The time asked for.
        requested: String,
        /// The first run's label.
        first_label: String,
        /// When the first run started.
        first_time: String,
    },

    /// An option or argument the operation cannot use; the text says which and why.
    #[error("{0}")]
    InvalidArgument(String),

    /// A key or sealed object could not be opened or made.
    #[error(transparent)]
    Crypto(#[from] CryptoError),

    /// The operation was cancelled (a signal, an abort request) before it finished.
    #[error("operation interrupted")]
    Interrupted,

    /// A bug or an impossible state: please report it.
    #[error("internal error: {0}")]
    Internal(String),
}

fn nearest_hint(nearest: &[String]) -> String {
    if nearest.is_empty() {
        String::new()
    } else {
        format!("; nearest labels: {}", nearest.join(", "))
    }
}

impl Error {
    pub(crate) fn corrupt(msg: impl Into<String>) -> Self {
        Error::Corrupt(msg.into())
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }

    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    /// The category: exit code, event reason and metric label.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Error::NotARepository { .. } => ErrorCategory::NotARepository,
            Error::AlreadyExists { .. } => ErrorCategory::RepositoryExists,
            Error::LocationNotEmpty { .. } => ErrorCategory::LocationNotEmpty,
            Error::InsideRepository { .. } | Error::ContainsRepository { .. } => {
                ErrorCategory::NestedRepository
            }
            Error::WrongKey { .. } => ErrorCategory::WrongKey,
            Error::UnsupportedVersion { .. } | Error::UnsupportedFeature { .. } => {
                ErrorCategory::UnsupportedFormat
            }
            Error::OwnedByOther { .. } => ErrorCategory::OwnedByOther,
            Error::Locked { .. } | Error::LockLost { .. } => ErrorCategory::Locked,
            Error::Storage(e) => e.category(),
            Error::Corrupt(_) | Error::Format(_) => ErrorCategory::Corrupt,
            Error::Io { .. } => ErrorCategory::Io,
            Error::RunNotFound { .. }
            | Error::NoRuns
            | Error::NoRunBefore { .. }
            | Error::NoRestorePoint(_) => ErrorCategory::RunNotFound,
            Error::InvalidArgument(_) | Error::NotACopy { .. } => ErrorCategory::InvalidArgument,
            Error::Crypto(_) => ErrorCategory::Crypto,
            Error::Interrupted => ErrorCategory::Interrupted,
            Error::Internal(_) => ErrorCategory::Internal,
        }
    }
}

/// The engine's result: [`Error`] unless said otherwise.
pub type Result<T, E = Error> = std::result::Result<T, E>;
