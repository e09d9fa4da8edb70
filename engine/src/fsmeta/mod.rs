//! Filesystem metadata: reading it into tree nodes, writing it back on restore.

mod read;
mod write;

pub(crate) use read::{EntryStat, data_extents, lstat, read_xattrs};
pub(crate) use write::{
    MetadataOptions, NotKept, apply_file_metadata, apply_metadata, create_special,
};

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A path from raw name bytes.
pub(crate) fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

/// Raw bytes of a path.
pub(crate) fn path_bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}
