//! Filesystem metadata: reading it into tree nodes, writing it back on restore.

mod read;
mod write;

pub use read::{EntryStat, data_extents, lstat, read_xattrs};
pub use write::{MetadataOptions, apply_file_metadata, apply_metadata, create_special};

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A path from raw name bytes.
pub fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

/// Raw bytes of a path.
pub fn path_bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}
