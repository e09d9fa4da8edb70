//! Index segments (`index/<id>`) and the merged in-memory index.
//!
//! A segment, before zstd and sealing:
//! ```text
//! "HFIX" 0x01 0 0 0
//! pack_count u32, then per volume: id [32], size u64
//! entry_count u32, then per blob, sorted by id:
//!     id [32], pack_no u32, offset u32, length u32, raw_len u32, kind u8, encoding u8
//! ```
//! A segment is written only after every volume it names is durable.

use std::collections::HashMap;

use crate::compress::Encoding;
use crate::crypto::MasterKey;
use crate::id::Id;

use super::pack::{BlobKind, PackEntry};
use super::{FormatError, Reader, aad};

const MAGIC: &[u8; 4] = b"HFIX";
const VERSION: u8 = 1;

/// One volume as a segment records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackRecord {
    pub id: Id,
    pub size: u64,
}

/// One blob's location. 52 bytes in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub id: Id,
    /// Position of the volume in the owning table of volumes.
    pub pack: u32,
    pub offset: u32,
    /// Header plus sealed payload.
    pub length: u32,
    pub raw_len: u32,
    pub kind: BlobKind,
    pub encoding: Encoding,
}

/// The content of one index segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexSegment {
    pub packs: Vec<PackRecord>,
    pub entries: Vec<IndexEntry>,
}

impl IndexSegment {
    /// Record a stored volume and its blobs.
    pub(crate) fn add_pack(&mut self, id: Id, size: u64, entries: &[PackEntry]) {
        let pack = self.packs.len() as u32;
        self.packs.push(PackRecord { id, size });
        self.entries.extend(entries.iter().map(|e| IndexEntry {
            id: e.header.id,
            pack,
            offset: e.offset,
            length: e.header.entry_len(),
            raw_len: e.header.raw_len,
            kind: e.header.kind,
            encoding: e.header.encoding,
        }));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.packs.is_empty()
    }

    /// Serialize, compress and seal. Returns the object id (SHA-256 of the sealed bytes).
    pub(crate) fn seal(&self, key: &MasterKey) -> Result<(Id, Vec<u8>), crate::Error> {
        let mut entries = self.entries.clone();
        entries.sort_unstable_by_key(|e| e.id);
        let mut out = Vec::with_capacity(16 + self.packs.len() * 40 + entries.len() * 50);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, 0, 0, 0]);
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            out.extend_from_slice(&p.id.0);
            out.extend_from_slice(&p.size.to_le_bytes());
        }
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for e in &entries {
            out.extend_from_slice(&e.id.0);
            out.extend_from_slice(&e.pack.to_le_bytes());
            out.extend_from_slice(&e.offset.to_le_bytes());
            out.extend_from_slice(&e.length.to_le_bytes());
            out.extend_from_slice(&e.raw_len.to_le_bytes());
            out.push(e.kind as u8);
            out.push(e.encoding as u8);
        }
        let compressed = zstd::bulk::compress(&out, 3).map_err(crate::Error::internal)?;
        let sealed = key.seal(aad::INDEX, &compressed)?;
        Ok((Id::content(key.id_scheme(), &sealed), sealed))
    }

    pub(crate) fn open(key: &MasterKey, sealed: &[u8], name: &str) -> Result<Self, crate::Error> {
        let compressed = key.open(aad::INDEX, sealed).map_err(|_| {
            crate::Error::corrupt(format!("index segment {name} failed authentication"))
        })?;
        let plain = zstd::stream::decode_all(&compressed[..]).map_err(|e| {
            crate::Error::corrupt(format!("index segment {name} does not decompress: {e}"))
        })?;
        Ok(Self::parse(&plain)?)
    }

    fn parse(plain: &[u8]) -> Result<Self, FormatError> {
        let what = "index segment";
        let mut r = Reader::new(plain, what);
        if r.take(4)? != MAGIC {
            return Err(FormatError::new(what, "bad magic"));
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(FormatError::new(
                what,
                format!("unsupported index version {version}"),
            ));
        }
        r.take(3)?;
        let pack_count = r.u32()? as usize;
        let mut packs = Vec::with_capacity(pack_count.min(1 << 20));
        for _ in 0..pack_count {
            packs.push(PackRecord {
                id: r.id()?,
                size: r.u64()?,
            });
        }
        let entry_count = r.u32()? as usize;
        let mut entries = Vec::with_capacity(entry_count.min(1 << 24));
        for _ in 0..entry_count {
            let id = r.id()?;
            let pack = r.u32()?;
            let offset = r.u32()?;
            let length = r.u32()?;
            let raw_len = r.u32()?;
            let kind = r.u8()?;
            let encoding = r.u8()?;
            if pack as usize >= packs.len() {
                return Err(FormatError::new(
                    what,
                    format!("entry names volume #{pack} of {}", packs.len()),
                ));
            }
            let kind = BlobKind::from_u8(kind)
                .ok_or_else(|| FormatError::new(what, format!("unknown blob kind {kind}")))?;
            let encoding = Encoding::from_u8(encoding)
                .ok_or_else(|| FormatError::new(what, format!("unknown encoding {encoding}")))?;
            entries.push(IndexEntry {
                id,
                pack,
                offset,
                length,
                raw_len,
                kind,
                encoding,
            });
        }
        if !r.is_empty() {
            return Err(FormatError::new(what, "trailing bytes"));
        }
        Ok(IndexSegment { packs, entries })
    }
}

/// Where to find a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// The volume holding the blob.
    pub pack: Id,
    /// Size of the whole volume.
    pub pack_size: u64,
    /// Where the sealed blob starts in the volume.
    pub offset: u32,
    /// Length of the sealed blob.
    pub length: u32,
    /// Length of the blob's plaintext.
    pub raw_len: u32,
    /// Whether the blob is file data or a directory listing.
    pub kind: BlobKind,
}

/// Every segment merged: one table of volumes and one sorted array of entries, so memory is
/// about 52 bytes per blob plus 40 per volume.
#[derive(Debug, Default)]
pub struct MasterIndex {
    packs: Vec<PackRecord>,
    entries: Vec<IndexEntry>,
    /// Segment object names loaded, so callers can tell which exist.
    segments: Vec<String>,
}

impl MasterIndex {
    pub(crate) fn from_segments(segments: Vec<(String, IndexSegment)>) -> Self {
        Self::from_segments_avoiding(segments, &std::collections::HashSet::new())
    }

    /// Merge segments; where a blob is in several volumes, prefer one not in `avoid`.
    pub(crate) fn from_segments_avoiding(
        segments: Vec<(String, IndexSegment)>,
        avoid: &std::collections::HashSet<Id>,
    ) -> Self {
        let mut pack_pos: HashMap<Id, u32> = HashMap::new();
        let mut packs: Vec<PackRecord> = Vec::new();
        let mut entries = Vec::new();
        let mut names = Vec::new();
        for (name, seg) in segments {
            names.push(name);
            let remap: Vec<u32> = seg
                .packs
                .iter()
                .map(|p| {
                    *pack_pos.entry(p.id).or_insert_with(|| {
                        packs.push(*p);
                        (packs.len() - 1) as u32
                    })
                })
                .collect();
            entries.extend(seg.entries.into_iter().map(|mut e| {
                e.pack = remap[e.pack as usize];
                e
            }));
        }
        let avoided: Vec<bool> = packs.iter().map(|p| avoid.contains(&p.id)).collect();
        entries.sort_unstable_by(|a, b| {
            a.id.cmp(&b.id)
                .then(avoided[a.pack as usize].cmp(&avoided[b.pack as usize]))
                .then(a.pack.cmp(&b.pack))
        });
        // The same blob in two volumes (after a repack, or a re-upload instead of a marked
        // volume) keeps one entry: the first, which is outside `avoid` if any copy is.
        entries.dedup_by(|a, b| a.id == b.id);
        entries.shrink_to_fit();
        MasterIndex {
            packs,
            entries,
            segments: names,
        }
    }

    /// This index plus newly written segments (so a handle sees the blobs it just stored).
    pub(crate) fn with_segments(&self, segments: Vec<(String, IndexSegment)>) -> Self {
        let existing = IndexSegment {
            packs: self.packs.clone(),
            entries: self.entries.clone(),
        };
        let mut all = vec![(String::new(), existing)];
        all.extend(segments);
        let mut merged = Self::from_segments(all);
        merged.segments.remove(0);
        merged.segments.splice(0..0, self.segments.iter().cloned());
        merged
    }

    /// Re-segment the index without the volumes in `exclude`, at most `packs_per_segment`
    /// volumes per segment.
    pub(crate) fn to_segments(
        &self,
        exclude: &std::collections::HashSet<Id>,
        packs_per_segment: usize,
    ) -> Vec<IndexSegment> {
        let mut by_pack: Vec<Vec<&IndexEntry>> = vec![Vec::new(); self.packs.len()];
        for e in &self.entries {
            by_pack[e.pack as usize].push(e);
        }
        let mut out: Vec<IndexSegment> = Vec::new();
        let mut current = IndexSegment::default();
        for (i, p) in self.packs.iter().enumerate() {
            if exclude.contains(&p.id) || by_pack[i].is_empty() {
                continue;
            }
            let n = current.packs.len() as u32;
            current.packs.push(*p);
            current
                .entries
                .extend(by_pack[i].iter().map(|e| IndexEntry { pack: n, ..**e }));
            if current.packs.len() >= packs_per_segment.max(1) {
                out.push(std::mem::take(&mut current));
            }
        }
        if !current.packs.is_empty() {
            out.push(current);
        }
        out
    }

    /// Where the blob `id` is stored, if any volume holds it.
    pub fn lookup(&self, id: &Id) -> Option<BlobLocation> {
        let pos = self.entries.binary_search_by(|e| e.id.cmp(id)).ok()?;
        let e = &self.entries[pos];
        Some(BlobLocation {
            pack: self.packs[e.pack as usize].id,
            pack_size: self.packs[e.pack as usize].size,
            offset: e.offset,
            length: e.length,
            raw_len: e.raw_len,
            kind: e.kind,
        })
    }

    pub(crate) fn contains(&self, id: &Id) -> bool {
        self.entries.binary_search_by(|e| e.id.cmp(id)).is_ok()
    }

    pub(crate) fn packs(&self) -> &[PackRecord] {
        &self.packs
    }

    pub(crate) fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    pub(crate) fn pack_id(&self, entry: &IndexEntry) -> Id {
        self.packs[entry.pack as usize].id
    }

    pub(crate) fn segment_names(&self) -> &[String] {
        &self.segments
    }

    pub(crate) fn blob_count(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::BLOB_HEADER_LEN;
    use crate::format::pack::BlobHeader;

    fn entry(id: u8, offset: u32) -> PackEntry {
        PackEntry {
            offset,
            header: BlobHeader {
                kind: BlobKind::Data,
                encoding: Encoding::Raw,
                raw_len: 10,
                sealed_len: 38,
                id: Id([id; 32]),
            },
        }
    }

    #[test]
    fn seal_open_round_trip() {
        let key = MasterKey::generate().unwrap();
        let mut seg = IndexSegment::default();
        seg.add_pack(Id([9; 32]), 1000, &[entry(3, 8), entry(1, 90)]);
        let (id, sealed) = seg.seal(&key).unwrap();
        assert_eq!(id, Id::content(key.id_scheme(), &sealed));
        let back = IndexSegment::open(&key, &sealed, "x").unwrap();
        assert_eq!(back.packs, seg.packs);
        assert_eq!(back.entries.len(), 2);
        assert_eq!(back.entries[0].id, Id([1; 32]), "entries are stored sorted");
    }

    #[test]
    fn merged_index_looks_up_across_segments() {
        let mut a = IndexSegment::default();
        a.add_pack(Id([9; 32]), 100, &[entry(1, 8)]);
        let mut b = IndexSegment::default();
        b.add_pack(Id([8; 32]), 100, &[entry(2, 8), entry(1, 90)]);
        let idx = MasterIndex::from_segments(vec![("a".into(), a), ("b".into(), b)]);
        assert_eq!(idx.blob_count(), 2);
        assert_eq!(idx.lookup(&Id([2; 32])).unwrap().pack, Id([8; 32]));
        assert_eq!(
            idx.lookup(&Id([2; 32])).unwrap().length,
            BLOB_HEADER_LEN as u32 + 38
        );
        assert!(idx.lookup(&Id([7; 32])).is_none());
        assert_eq!(std::mem::size_of::<IndexEntry>(), 52);
    }
}
