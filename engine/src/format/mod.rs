//! Repository format version 1: the bytes of every object. See `engine/FORMAT.md`.

pub mod config;
pub(crate) mod index;
pub(crate) mod pack;
pub use pack::BlobKind;
pub mod run;
pub mod tree;

/// Associated-data prefixes that bind each sealed object to its kind, so one kind of object
/// can never be substituted for another.
pub mod aad {
    /// The repository's owner record.
    pub const OWNER: &[u8] = b"holdfast/v1/owner";
    /// An index segment.
    pub const INDEX: &[u8] = b"holdfast/v1/index";
    /// A run manifest.
    pub const RUN: &[u8] = b"holdfast/v1/run";
    /// A blob in a volume.
    pub const BLOB: &[u8] = b"holdfast/v1/blob";
    /// A volume's trailer (its table of blobs).
    pub const PACK_TRAILER: &[u8] = b"holdfast/v1/pack-trailer";
    /// A lock object.
    pub const LOCK: &[u8] = b"holdfast/v1/lock";
    /// A run's archive mark.
    pub const ARCHIVE: &[u8] = b"holdfast/v1/archive";
    /// Purge's record of marked volumes.
    pub const MARKS: &[u8] = b"holdfast/v1/marks";
    /// A copy's record that a run was copied into it.
    pub const COPIED: &[u8] = b"holdfast/v1/copied";
}

/// A stored object does not parse as what its key says it is.
#[derive(Debug, thiserror::Error)]
#[error("{what} is malformed: {detail}")]
pub struct FormatError {
    /// What was being parsed (an object key or kind).
    pub what: String,
    /// What is wrong with it.
    pub detail: String,
}

impl FormatError {
    pub(crate) fn new(what: impl Into<String>, detail: impl Into<String>) -> Self {
        FormatError {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// Little-endian cursor over a byte slice for the binary formats.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'a str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'a str) -> Self {
        Reader { data, pos: 0, what }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                FormatError::new(
                    self.what,
                    format!("truncated at byte {} (wanted {n} more)", self.pos),
                )
            })?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, FormatError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, FormatError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(crate) fn id(&mut self) -> Result<crate::id::Id, FormatError> {
        let b = self.take(32)?;
        let mut a = [0u8; 32];
        a.copy_from_slice(b);
        Ok(crate::id::Id(a))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.data.len()
    }
}
