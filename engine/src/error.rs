//! The engine's error type. Every variant names what failed and, where there is one, the fix.
//!
//! Rules: every error has an [`ErrorCategory`], matched exhaustively wherever it is turned
//! into something else (CLI exit codes, Kubernetes event reasons, metric labels), so two
//! different failures never share a name by accident. Causes stay attached as `#[source]`.

use serde::{Deserialize, Serialize};

use crate::crypto::CryptoError;
use crate::storage::StorageError;

/// What kind of failure an error is. Stable: the names are event reasons, metric labels
/// and the `category` field of job summaries.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCategory {
    /// No repository at the location.
    NotARepository,
    /// `init` found a repository already there.
    RepositoryExists,
    /// `init` found other data at the location.
    LocationNotEmpty,
    /// A repository would lie inside another, or around one.
    NestedRepository,
    WrongKey,
    /// The repository's format version or features are newer than this build.
    UnsupportedFormat,
    OwnedByOther,
    Locked,
    /// A storage object (not a run) is missing.
    NotFound,
    PermissionDenied,
    NoSpace,
    Unreachable,
    /// A storage read or write failed (possibly transient).
    StorageIo,
    BucketNotFound,
    InvalidCredentials,
    ClockSkew,
    WrongRegion,
    /// A storage object that must be new already exists.
    ObjectExists,
    InvalidUrl,
    /// Repository data failed authentication or does not parse.
    Corrupt,
    /// A local file or directory could not be read or written.
    Io,
    /// No such run, or no run can restore what was asked.
    RunNotFound,
    InvalidArgument,
    Crypto,
    /// Stopped on request (a signal); the repository is consistent.
    Interrupted,
    Internal,
}

impl ErrorCategory {
    /// The name, as used in event reasons and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCategory::NotARepository => "NotARepository",
            ErrorCategory::RepositoryExists => "RepositoryExists",
            ErrorCategory::LocationNotEmpty => "LocationNotEmpty",
            ErrorCategory::NestedRepository => "NestedRepository",
            ErrorCategory::WrongKey => "WrongKey",
            ErrorCategory::UnsupportedFormat => "UnsupportedFormat",
            ErrorCategory::OwnedByOther => "OwnedByOther",
            ErrorCategory::Locked => "Locked",
            ErrorCategory::NotFound => "NotFound",
            ErrorCategory::PermissionDenied => "PermissionDenied",
            ErrorCategory::NoSpace => "NoSpace",
            ErrorCategory::Unreachable => "Unreachable",
            ErrorCategory::StorageIo => "StorageIo",
            ErrorCategory::BucketNotFound => "BucketNotFound",
            ErrorCategory::InvalidCredentials => "InvalidCredentials",
            ErrorCategory::ClockSkew => "ClockSkew",
            ErrorCategory::WrongRegion => "WrongRegion",
            ErrorCategory::ObjectExists => "ObjectExists",
            ErrorCategory::InvalidUrl => "InvalidUrl",
            ErrorCategory::Corrupt => "Corrupt",
            ErrorCategory::Io => "Io",
            ErrorCategory::RunNotFound => "RunNotFound",
            ErrorCategory::InvalidArgument => "InvalidArgument",
            ErrorCategory::Crypto => "Crypto",
            ErrorCategory::Interrupted => "Interrupted",
            ErrorCategory::Internal => "Internal",
        }
    }
}

impl ErrorCategory {
    /// Whether a failure of this kind may pass by itself: the same operation, retried later
    /// with nothing changed, can succeed (a timeout, a lock). The others need someone to fix
    /// something (a missing bucket, a wrong key, a full disk).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorCategory::Unreachable
                | ErrorCategory::StorageIo
                | ErrorCategory::Locked
                | ErrorCategory::Interrupted
                | ErrorCategory::Internal
        )
    }
}

impl std::fmt::Display for ErrorCategory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error and its causes as one line, `outer: cause: cause`, skipping causes whose text the
/// outer message already contains (transparent wrappers repeat their inner message).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    text
}

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
