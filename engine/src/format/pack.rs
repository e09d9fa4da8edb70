//! Volumes (pack files): self-describing containers of sealed blobs.
//!
//! ```text
//! "HFPK" 0x01 0 0 0                        8-byte volume header
//! repeated: header (44 bytes) || sealed     one entry per blob
//! sealed trailer || trailer_len u32 || "HFPT"
//! ```
//! A blob header is `kind u8, encoding u8, 0u16, raw_len u32, sealed_len u32, id [32]`,
//! little-endian, and is bound into the blob's AEAD as associated data. The trailer lists
//! `(offset u32, header)` for every entry, sealed, so a lost index can be rebuilt from volumes.

use crate::compress::{self, Compressor, Encoding};
use crate::crypto::IdScheme;
use crate::crypto::MasterKey;
use crate::id::ContentHasher;
use crate::id::Id;

use super::{FormatError, Reader, aad};

pub const PACK_MAGIC: &[u8; 4] = b"HFPK";
pub const TRAILER_MAGIC: &[u8; 4] = b"HFPT";
pub const PACK_VERSION: u8 = 1;
pub const PACK_HEADER_LEN: usize = 8;
pub const BLOB_HEADER_LEN: usize = 44;

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BlobKind {
    /// A chunk of file or stream content.
    Data = 1,
    /// A directory listing (a serialized [`crate::format::tree::Tree`]).
    Tree = 2,
}

impl BlobKind {
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(BlobKind::Data),
            2 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// The plaintext header in front of every blob in a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobHeader {
    pub kind: BlobKind,
    pub encoding: Encoding,
    pub raw_len: u32,
    pub sealed_len: u32,
    pub id: Id,
}

impl BlobHeader {
    pub(crate) fn encode(&self) -> [u8; BLOB_HEADER_LEN] {
        let mut out = [0u8; BLOB_HEADER_LEN];
        out[0] = self.kind as u8;
        out[1] = self.encoding as u8;
        out[4..8].copy_from_slice(&self.raw_len.to_le_bytes());
        out[8..12].copy_from_slice(&self.sealed_len.to_le_bytes());
        out[12..44].copy_from_slice(&self.id.0);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(bytes, "blob header");
        let kind = r.u8()?;
        let encoding = r.u8()?;
        let reserved = r.take(2)?;
        let raw_len = r.u32()?;
        let sealed_len = r.u32()?;
        let id = r.id()?;
        let kind = BlobKind::from_u8(kind)
            .ok_or_else(|| FormatError::new("blob header", format!("unknown blob kind {kind}")))?;
        let encoding = Encoding::from_u8(encoding).ok_or_else(|| {
            FormatError::new("blob header", format!("unknown encoding {encoding}"))
        })?;
        if reserved != [0, 0] {
            return Err(FormatError::new(
                "blob header",
                "reserved bytes are not zero",
            ));
        }
        Ok(BlobHeader {
            kind,
            encoding,
            raw_len,
            sealed_len,
            id,
        })
    }

    /// Bytes the entry (header and sealed payload) takes in the volume.
    pub(crate) fn entry_len(&self) -> u32 {
        BLOB_HEADER_LEN as u32 + self.sealed_len
    }
}

fn blob_aad(header: &[u8; BLOB_HEADER_LEN]) -> Vec<u8> {
    let mut a = Vec::with_capacity(aad::BLOB.len() + BLOB_HEADER_LEN);
    a.extend_from_slice(aad::BLOB);
    a.extend_from_slice(header);
    a
}

/// A blob compressed and sealed, ready to append to a volume.
#[derive(Debug)]
pub struct EncodedBlob {
    pub header: BlobHeader,
    /// Header bytes followed by the sealed payload.
    pub bytes: Vec<u8>,
}

/// Compress and seal one blob whose id the caller already computed.
pub(crate) fn encode_blob(
    key: &MasterKey,
    compressor: &mut Compressor,
    kind: BlobKind,
    id: Id,
    plaintext: &[u8],
) -> Result<EncodedBlob, crate::crypto::CryptoError> {
    // One buffer, filled in place: header, nonce, payload, tag.
    let start = BLOB_HEADER_LEN + crate::crypto::NONCE_LEN;
    let mut bytes = Vec::with_capacity(start + plaintext.len() + crate::crypto::TAG_LEN);
    bytes.resize(start, 0);
    let encoding = compressor.compress_into(plaintext, &mut bytes);
    let sealed_len = (bytes.len() - BLOB_HEADER_LEN + crate::crypto::TAG_LEN) as u32;
    let header = BlobHeader {
        kind,
        encoding,
        raw_len: plaintext.len() as u32,
        sealed_len,
        id,
    };
    let header_bytes = header.encode();
    bytes[..BLOB_HEADER_LEN].copy_from_slice(&header_bytes);
    key.seal_in_place_at(&blob_aad(&header_bytes), &mut bytes, BLOB_HEADER_LEN)?;
    Ok(EncodedBlob { header, bytes })
}

/// Why a blob could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("blob {id:?} failed authentication (volume damaged or altered)")]
    Authentication { id: Id },
    #[error("blob {id:?} does not decompress: {detail}")]
    Decompress { id: Id, detail: String },
    #[error("blob {expected:?} has content of another blob ({found:?})")]
    IdMismatch { expected: Id, found: Id },
}

/// Check that one entry (header + sealed payload) is the blob `expected`, intact, and keep
/// it sealed as it is: a copy moves blobs between repositories that share a key without
/// decompressing or re-hashing them, and the authentication tag covers the header (with the
/// id) and every payload byte, so nothing altered passes.
pub(crate) fn authenticate_entry(
    key: &MasterKey,
    expected: Id,
    entry: Vec<u8>,
) -> Result<EncodedBlob, BlobError> {
    if entry.len() < BLOB_HEADER_LEN {
        return Err(FormatError::new("blob entry", "shorter than its header").into());
    }
    let header = BlobHeader::decode(&entry[..BLOB_HEADER_LEN])?;
    if header.id != expected {
        return Err(BlobError::IdMismatch {
            expected,
            found: header.id,
        });
    }
    if entry.len() - BLOB_HEADER_LEN != header.sealed_len as usize {
        return Err(FormatError::new(
            "blob entry",
            format!(
                "{} payload bytes, header says {}",
                entry.len() - BLOB_HEADER_LEN,
                header.sealed_len
            ),
        )
        .into());
    }
    let mut hb = [0u8; BLOB_HEADER_LEN];
    hb.copy_from_slice(&entry[..BLOB_HEADER_LEN]);
    key.open(&blob_aad(&hb), &entry[BLOB_HEADER_LEN..])
        .map_err(|_| BlobError::Authentication { id: header.id })?;
    Ok(EncodedBlob {
        header,
        bytes: entry,
    })
}

/// Open one entry (header + sealed payload) and return its plaintext after checking that the
/// keyed MAC of the plaintext is the id in the header.
pub(crate) fn decode_blob(
    key: &MasterKey,
    entry: &[u8],
) -> Result<(BlobHeader, Vec<u8>), BlobError> {
    if entry.len() < BLOB_HEADER_LEN {
        return Err(FormatError::new("blob entry", "shorter than its header").into());
    }
    let header = BlobHeader::decode(&entry[..BLOB_HEADER_LEN])?;
    let sealed = &entry[BLOB_HEADER_LEN..];
    if sealed.len() != header.sealed_len as usize {
        return Err(FormatError::new(
            "blob entry",
            format!(
                "{} payload bytes, header says {}",
                sealed.len(),
                header.sealed_len
            ),
        )
        .into());
    }
    let mut hb = [0u8; BLOB_HEADER_LEN];
    hb.copy_from_slice(&entry[..BLOB_HEADER_LEN]);
    let payload = key
        .open(&blob_aad(&hb), sealed)
        .map_err(|_| BlobError::Authentication { id: header.id })?;
    let plain =
        compress::decompress(header.encoding, payload, header.raw_len as usize).map_err(|e| {
            BlobError::Decompress {
                id: header.id,
                detail: e.to_string(),
            }
        })?;
    let found = key.blob_id(&plain);
    if found != header.id {
        return Err(BlobError::IdMismatch {
            expected: header.id,
            found,
        });
    }
    Ok((header, plain))
}

/// Where a blob sits in its volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    pub offset: u32,
    pub header: BlobHeader,
}

/// Writes encoded blobs into one volume through any writer (memory or a spool file),
/// hashing as it goes so the volume's name is known when it is finished.
pub struct PackBuilder<W> {
    out: W,
    len: u64,
    hasher: ContentHasher,
    entries: Vec<PackEntry>,
}

impl<W> std::fmt::Debug for PackBuilder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackBuilder")
            .field("len", &self.len)
            .field("blobs", &self.entries.len())
            .finish()
    }
}

impl<W: std::io::Write> PackBuilder<W> {
    /// A volume named the way `scheme`'s repositories name them.
    pub(crate) fn new(out: W, scheme: IdScheme) -> std::io::Result<Self> {
        let mut b = PackBuilder {
            out,
            len: 0,
            hasher: ContentHasher::new(scheme),
            entries: Vec::new(),
        };
        let mut header = [0u8; PACK_HEADER_LEN];
        header[..4].copy_from_slice(PACK_MAGIC);
        header[4] = PACK_VERSION;
        b.write(&header)?;
        Ok(b)
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn add(&mut self, blob: &EncodedBlob) -> std::io::Result<()> {
        let offset = u32::try_from(self.len)
            .map_err(|_| std::io::Error::other("volume larger than 4 GiB"))?;
        self.write(&blob.bytes)?;
        self.entries.push(PackEntry {
            offset,
            header: blob.header,
        });
        Ok(())
    }

    /// Append the sealed trailer; returns the volume's id (SHA-256 of its bytes), the writer
    /// and the entries.
    pub(crate) fn finish(mut self, key: &MasterKey) -> Result<FinishedPack<W>, PackWriteError> {
        let mut trailer = Vec::with_capacity(4 + self.entries.len() * (4 + BLOB_HEADER_LEN));
        trailer.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            trailer.extend_from_slice(&e.offset.to_le_bytes());
            trailer.extend_from_slice(&e.header.encode());
        }
        let sealed = key.seal(aad::PACK_TRAILER, &trailer)?;
        self.write(&sealed)?;
        self.write(&(sealed.len() as u32).to_le_bytes())?;
        self.write(TRAILER_MAGIC)?;
        self.out.flush()?;
        Ok(FinishedPack {
            id: self.hasher.finish(),
            size: self.len,
            out: self.out,
            entries: self.entries,
        })
    }
}

/// Writing a volume failed.
#[derive(Debug, thiserror::Error)]
pub enum PackWriteError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
}

/// A complete volume in its writer.
#[derive(Debug)]
pub struct FinishedPack<W> {
    pub id: Id,
    pub size: u64,
    pub out: W,
    pub entries: Vec<PackEntry>,
}

// Whole-volume reading, which the tests use to check the piecewise reader against.
#[cfg(test)]
/// Read a volume's entry list from its sealed trailer.
pub(crate) fn read_trailer(key: &MasterKey, pack: &[u8]) -> Result<Vec<PackEntry>, FormatError> {
    parse_trailer(
        key,
        &pack[..pack.len().min(PACK_HEADER_LEN)],
        pack,
        pack.len() as u64,
    )
}

/// Length of the volume's footer: the trailer's length and magic.
pub const FOOTER_LEN: usize = 8;

/// Where the trailer begins in a volume of `len` bytes ending in `footer`; `None` when the
/// footer is not one (a truncated or foreign object).
pub(crate) fn trailer_start(len: u64, footer: &[u8]) -> Option<u64> {
    if footer.len() != FOOTER_LEN || &footer[4..] != TRAILER_MAGIC {
        return None;
    }
    let trailer = u64::from(u32::from_le_bytes([
        footer[0], footer[1], footer[2], footer[3],
    ]));
    len.checked_sub(FOOTER_LEN as u64 + trailer)
        .filter(|&s| s >= PACK_HEADER_LEN as u64)
}

/// [`read_trailer`] for a volume read piecewise: `head` is its first bytes (at least the
/// header), `tail` its last `tail.len()` bytes (at least the trailer and footer), `len` its
/// length.
pub(crate) fn parse_trailer(
    key: &MasterKey,
    head: &[u8],
    tail: &[u8],
    len: u64,
) -> Result<Vec<PackEntry>, FormatError> {
    let what = "volume trailer";
    if len < (PACK_HEADER_LEN + FOOTER_LEN) as u64
        || head.len() < PACK_HEADER_LEN
        || &head[..4] != PACK_MAGIC
    {
        return Err(FormatError::new(what, "not a Holdfast volume (bad magic)"));
    }
    if head[4] != PACK_VERSION {
        return Err(FormatError::new(
            what,
            format!("unsupported volume version {}", head[4]),
        ));
    }
    let n = tail.len();
    if n < FOOTER_LEN || &tail[n - 4..] != TRAILER_MAGIC {
        return Err(FormatError::new(
            what,
            "trailer magic missing (volume truncated?)",
        ));
    }
    let start = trailer_start(len, &tail[n - FOOTER_LEN..])
        .ok_or_else(|| FormatError::new(what, "trailer length out of range"))?;
    let tail_offset = len - n as u64;
    // start <= len - FOOTER_LEN, so `from` lies within the tail's blob part.
    let from = start
        .checked_sub(tail_offset)
        .and_then(|f| usize::try_from(f).ok())
        .ok_or_else(|| FormatError::new(what, "trailer begins before the bytes read"))?;
    let sealed = &tail[from..n - FOOTER_LEN];
    let plain = key
        .open(aad::PACK_TRAILER, sealed)
        .map_err(|_| FormatError::new(what, "trailer failed authentication"))?;
    let mut r = Reader::new(&plain, what);
    let count = r.u32()? as usize;
    let mut out = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let offset = r.u32()?;
        let header = BlobHeader::decode(r.take(BLOB_HEADER_LEN)?)?;
        if u64::from(offset) + u64::from(header.entry_len()) > start {
            return Err(FormatError::new(what, "entry extends past the blob area"));
        }
        out.push(PackEntry { offset, header });
    }
    if !r.is_empty() {
        return Err(FormatError::new(
            what,
            "trailing bytes after the entry list",
        ));
    }
    Ok(out)
}

// The tests check a cut volume's salvage with it; verify scans piecewise.
#[cfg(test)]
/// Walk a volume's entries from the front, header by header, for when the trailer is lost.
/// Stops at the first entry that does not parse.
pub(crate) fn scan_entries(pack: &[u8]) -> Vec<PackEntry> {
    let mut out = Vec::new();
    let mut pos = PACK_HEADER_LEN;
    while pos + BLOB_HEADER_LEN <= pack.len() {
        let Ok(header) = BlobHeader::decode(&pack[pos..pos + BLOB_HEADER_LEN]) else {
            break;
        };
        let end = pos + header.entry_len() as usize;
        if end > pack.len() {
            break;
        }
        out.push(PackEntry {
            offset: pos as u32,
            header,
        });
        pos = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::CompressionLevel;

    struct Built {
        id: Id,
        bytes: Vec<u8>,
        entries: Vec<PackEntry>,
    }

    fn build(key: &MasterKey, blobs: &[&[u8]]) -> Built {
        let mut c = Compressor::new(CompressionLevel::FAST).unwrap();
        let mut p = PackBuilder::new(Vec::new(), key.id_scheme()).unwrap();
        for b in blobs {
            p.add(&encode_blob(key, &mut c, BlobKind::Data, key.blob_id(b), b).unwrap())
                .unwrap();
        }
        let f = p.finish(key).unwrap();
        assert_eq!(f.size as usize, f.out.len());
        Built {
            id: f.id,
            bytes: f.out,
            entries: f.entries,
        }
    }

    #[test]
    fn trailer_and_scan_agree_and_blobs_decode() {
        let key = MasterKey::generate().unwrap();
        let big = vec![1u8; 5000];
        let pack = build(&key, &[b"alpha", &big, b""]);
        assert_eq!(pack.id, Id::content(key.id_scheme(), &pack.bytes));
        let entries = read_trailer(&key, &pack.bytes).unwrap();
        assert_eq!(entries, pack.entries);
        assert_eq!(scan_entries(&pack.bytes), entries);
        let e = entries[1];
        let slice = &pack.bytes[e.offset as usize..(e.offset + e.header.entry_len()) as usize];
        let (h, plain) = decode_blob(&key, slice).unwrap();
        assert_eq!(plain, big);
        assert_eq!(h.encoding, Encoding::Zstd);
    }

    #[test]
    fn altered_header_fails_authentication() {
        let key = MasterKey::generate().unwrap();
        let pack = build(&key, &[b"alpha"]);
        let e = pack.entries[0];
        let mut entry =
            pack.bytes[e.offset as usize..(e.offset + e.header.entry_len()) as usize].to_vec();
        entry[4] ^= 1; // raw_len
        assert!(matches!(
            decode_blob(&key, &entry),
            Err(BlobError::Authentication { .. })
        ));
    }

    #[test]
    fn truncated_volume_has_no_trailer_but_scans() {
        let key = MasterKey::generate().unwrap();
        let pack = build(&key, &[b"a", b"b"]);
        let cut = &pack.bytes[..pack.bytes.len() - 3];
        assert!(read_trailer(&key, cut).is_err());
        assert_eq!(scan_entries(cut).len(), 2);
    }
}
