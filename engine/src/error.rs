//! The engine's error type. Every variant names what failed and, where there is one, the fix.
//!
//! Rules: every error has an [`ErrorCategory`], matched exhaustively wherever it is turned
//! into something else (CLI exit codes, Kubernetes event reasons, metric labels), so two
//! different failures never share a name by accident. Causes stay attached as `#[source]`.

use crate::crypto::CryptoError;
use crate::error_category::ErrorCategory;
use crate::storage::StorageError;

/// An engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no Holdfast repository at {location}: {detail}")]
    NotARepository { location: String, detail: String },

    #[error("a Holdfast repository already exists at {location}")]
    AlreadyExists { location: String },

    #[error(
        "{location} is not empty (it holds {sample}): choose an empty directory or prefix, or \
         pass --allow-non-empty to create the repository beside what is there"
    )]
    LocationNotEmpty { location: String, sample: String },

    #[error(
        "{location} lies inside the repository at {outer}: a repository cannot hold another (its \
         purge or deletion would destroy the inner one); choose a location outside it"
    )]
    InsideRepository { location: String, outer: String },

    #[error(
        "other repositories lie inside {location} (at {}): a repository cannot hold another (its \
         purge or deletion would destroy the inner one); nothing was changed. Move or delete the \
         inner ones first, or choose another location",
        .inner.join(", ")
    )]
    ContainsRepository {
        location: String,
        inner: Vec<String>,
    },

    #[error("wrong key: the passphrase or key file does not open the repository at {location}")]
    WrongKey { location: String },

    #[error(
        "the repository at {location} has format version {found}, this holdfast supports up to \
         {supported}: upgrade holdfast"
    )]
    UnsupportedVersion {
        location: String,
        found: u32,
        supported: u32,
    },

    #[error(
        "the repository at {location} needs features {features:?} to {operation}, which this \
         holdfast does not know: upgrade holdfast"
    )]
    UnsupportedFeature {
        location: String,
        operation: &'static str,
        features: Vec<String>,
    },

    #[error(
        "the repository at {location} belongs to {owner:?}, not {requested:?}: each backup set \
         needs its own repository (pass --force to write anyway)"
    )]
    OwnedByOther {
        location: String,
        owner: String,
        requested: String,
    },

    #[error("the repository at {location} is locked: {holder}; {hint}")]
    Locked {
        location: String,
        holder: String,
        /// When the lock ends and what to do meanwhile.
        hint: String,
    },

    #[error(
        "this operation's lock on {location} expired or was removed while it ran; its result was \
         not recorded (run it again)"
    )]
    LockLost { location: String },

    #[error(transparent)]
    Storage(#[from] StorageError),

    #[error("repository data is damaged: {0}")]
    Corrupt(String),

    #[error("repository data is damaged: {0}")]
    Format(#[from] crate::format::FormatError),

    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("no run labelled {label:?}{}", nearest_hint(.nearest))]
    RunNotFound { label: String, nearest: Vec<String> },

    #[error("the repository has no runs yet: run `holdfast backup` first")]
    NoRuns,

    /// Runs exist, but none can restore what was asked as asked; the text says why and what
    /// to pass instead.
    #[error("{0}")]
    NoRestorePoint(String),

    #[error(
        "no restorable run at or before {requested}; the first run is {first_label} at {first_time}"
    )]
    NoRunBefore {
        requested: String,
        first_label: String,
        first_time: String,
    },

    #[error("{0}")]
    InvalidArgument(String),

    #[error(transparent)]
    Crypto(#[from] CryptoError),

    #[error("operation interrupted")]
    Interrupted,

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
    pub fn corrupt(msg: impl Into<String>) -> Self {
        Error::Corrupt(msg.into())
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }

    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
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
            Error::InvalidArgument(_) => ErrorCategory::InvalidArgument,
            Error::Crypto(_) => ErrorCategory::Crypto,
            Error::Interrupted => ErrorCategory::Interrupted,
            Error::Internal(_) => ErrorCategory::Internal,
        }
    }

    /// Whether the same operation may succeed if retried later without any change.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Storage(e) => e.is_transient(),
            Error::Interrupted | Error::Locked { .. } => true,
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
