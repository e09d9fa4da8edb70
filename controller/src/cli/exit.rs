//! Exit codes, documented in README.md. Scripts and the controller rely on them.

use holdfast_engine::Error;

/// Success.
pub const OK: u8 = 0;
/// An error not covered below.
pub const ERROR: u8 = 1;
/// Bad command line (clap's own code).
pub const USAGE: u8 = 2;
/// The operation finished but some items failed: a Partial backup or restore.
pub const PARTIAL: u8 = 3;
/// Verify found damage or inconsistencies.
pub const DAMAGED: u8 = 4;
/// Stopped by a signal (SIGTERM, SIGINT): a backup recorded what it stored as an Aborted run.
pub const ABORTED: u8 = 5;
/// A purge stopped by the brake on mass deletion: nothing expired; it waits for approval.
pub const BRAKED: u8 = 6;
/// Wrong passphrase or key file.
pub const WRONG_KEY: u8 = 10;
/// No repository at the given location, or no such run.
pub const NOT_FOUND: u8 = 11;
/// The repository is locked by another operation.
pub const LOCKED: u8 = 12;
/// The repository's format is newer than this binary.
pub const UNSUPPORTED: u8 = 13;
/// The repository belongs to another backup set.
pub const OWNED_BY_OTHER: u8 = 14;
/// Storage failed (full, unreachable, permission denied).
pub const STORAGE: u8 = 15;

/// A repository already exists at the location, or it holds other data (`init`); a
/// repository would lie inside another or around one (`init`, deleting a repository).
pub const EXISTS: u8 = 16;
/// Output was cut short: the reader of stdout went away (e.g. `holdfast ls | head`).
pub const BROKEN_PIPE: u8 = 141;

/// The exit code for an engine error.
pub fn for_error(e: &Error) -> u8 {
    use holdfast_engine::ErrorCategory as C;
    match e.category() {
        C::WrongKey => WRONG_KEY,
        C::NotARepository | C::RunNotFound => NOT_FOUND,
        C::Locked => LOCKED,
        C::UnsupportedFormat => UNSUPPORTED,
        C::OwnedByOther => OWNED_BY_OTHER,
        C::RepositoryExists | C::LocationNotEmpty | C::NestedRepository => EXISTS,
        C::NotFound
        | C::PermissionDenied
        | C::NoSpace
        | C::Unreachable
        | C::StorageIo
        | C::BucketNotFound
        | C::InvalidCredentials
        | C::ClockSkew
        | C::WrongRegion
        | C::ObjectExists => STORAGE,
        C::InvalidArgument | C::InvalidUrl => USAGE,
        C::Corrupt => DAMAGED,
        C::Interrupted => ABORTED,
        C::Io | C::Crypto | C::Internal => ERROR,
        // The engine may add categories; until this CLI knows one it is a plain error.
        _ => ERROR,
    }
}
