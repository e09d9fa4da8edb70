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

/// The exit code for an engine error.
pub fn for_error(e: &Error) -> u8 {
    match e.category() {
        "WrongKey" => WRONG_KEY,
        "NotARepository" | "RunNotFound" => NOT_FOUND,
        "Locked" => LOCKED,
        "UnsupportedFormat" => UNSUPPORTED,
        "OwnedByOther" => OWNED_BY_OTHER,
        "NotFound" | "PermissionDenied" | "NoSpace" | "Unreachable" | "StorageIo"
        | "BucketNotFound" | "InvalidCredentials" | "ClockSkew" | "WrongRegion"
        | "AlreadyExists" => STORAGE,
        "InvalidArgument" | "InvalidUrl" => USAGE,
        "Corrupt" => DAMAGED,
        _ => ERROR,
    }
}
