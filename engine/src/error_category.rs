//! What kind of failure an error is, and how its causes read as one line: the vocabulary
//! every layer maps its errors onto (storage, repository, CLI exit codes, event reasons,
//! metric labels). A leaf: it knows no error type of the engine.

use serde::{Deserialize, Serialize};

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
    /// The passphrase or key file does not open the repository.
    WrongKey,
    /// The repository's format version or features are newer than this build.
    UnsupportedFormat,
    /// The repository belongs to another backup set.
    OwnedByOther,
    /// Another operation holds the repository's lock, or this one lost its own.
    Locked,
    /// A storage object (not a run) is missing.
    NotFound,
    /// The storage or the filesystem refused access.
    PermissionDenied,
    /// The disk or quota is full.
    NoSpace,
    /// The storage does not answer.
    Unreachable,
    /// A storage read or write failed (possibly transient).
    StorageIo,
    /// The S3 bucket does not exist.
    BucketNotFound,
    /// The object store rejected the credentials.
    InvalidCredentials,
    /// This machine's clock is too far from the object store's.
    ClockSkew,
    /// The bucket is in another region than the requests were signed for.
    WrongRegion,
    /// A storage object that must be new already exists.
    ObjectExists,
    /// A repository URL that does not parse.
    InvalidUrl,
    /// Repository data failed authentication or does not parse.
    Corrupt,
    /// A local file or directory could not be read or written.
    Io,
    /// No such run, or no run can restore what was asked.
    RunNotFound,
    /// An option or argument the operation cannot use.
    InvalidArgument,
    /// A key or sealed object could not be opened or made.
    Crypto,
    /// Stopped on request (a signal); the repository is consistent.
    Interrupted,
    /// A bug or an impossible state.
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
