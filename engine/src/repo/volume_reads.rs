//! Reading many blobs by volume: each volume is fetched once, whole or as a few coalesced
//! ranges, instead of one request per blob, and streamed: a read holds a few pieces of the
//! volume at a time, not the whole range.
//!
//! On an object store a request costs tens of milliseconds whatever its size, so a restore
//! that asked for each blob on its own spent its time waiting (one ranged GET per blob); on
//! local disk, reading neighbouring blobs in one call lets the kernel read ahead. Callers
//! plan which blobs they need from each volume, then start each planned read and take its
//! blobs in order.

use std::ops::Range;

use crate::id::Id;
use crate::storage::{RangeReader, Store, pack_key};
use crate::{Error, Result};

use super::{Indexed, Repository};

/// One blob wanted from a volume, where the index places it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WantedBlob {
    pub id: Id,
    pub offset: u32,
    pub length: u32,
}

impl WantedBlob {
    fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.length)
    }
}

/// How wanted blobs are grouped into reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coalescing {
    /// Blobs at most this many bytes apart are fetched in one read (the gap is read and
    /// thrown away): cheaper than a second request.
    pub gap: u64,
    /// No read spans more than this (unless one blob alone is longer), which bounds the
    /// memory one read holds.
    pub max_read: u64,
}

impl Coalescing {
    /// For an object store a request costs about as much as a few MiB of transfer, so
    /// gaps up to 4 MiB are read through and a volume is one request (reads stream, so
    /// their length costs no memory); for local files a read costs a system call and is
    /// held whole, so only near neighbours are joined, up to 8 MiB.
    pub(crate) fn for_store(store: &Store) -> Self {
        if store.reads_wait_on_latency() {
            Coalescing {
                gap: 4 << 20,
                max_read: 64 << 20,
            }
        } else {
            Coalescing {
                gap: 64 << 10,
                max_read: 8 << 20,
            }
        }
    }
}

/// One read of a volume: a byte range and the wanted blobs it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRead {
    /// Indices into the wanted blobs (sorted by offset) that this read covers.
    pub blobs: Range<usize>,
    pub start: u64,
    pub len: u64,
}

/// Group `blobs` (sorted by offset) into reads.
pub(crate) fn plan_volume_reads(blobs: &[WantedBlob], c: Coalescing) -> Vec<VolumeRead> {
    let mut reads: Vec<VolumeRead> = Vec::new();
    for (i, b) in blobs.iter().enumerate() {
        let start = u64::from(b.offset);
        if let Some(last) = reads.last_mut() {
            let end = last.start + last.len;
            let joined = b.end().max(end) - last.start;
            if start <= end + c.gap && joined <= c.max_read {
                last.len = joined;
                last.blobs.end = i + 1;
                continue;
            }
        }
        reads.push(VolumeRead {
            blobs: i..i + 1,
            start,
            len: u64::from(b.length),
        });
    }
    reads
}

/// One planned read of a volume, as it arrives: its blobs are taken in offset order, so
/// the read holds a few pieces of the volume at a time, never the whole range.
#[derive(Debug)]
pub struct VolumeReader<'r> {
    repo: &'r Repository<Indexed>,
    volume: Id,
    reader: RangeReader,
}

impl Repository<Indexed> {
    /// Start one planned read of `volume`.
    pub(crate) fn read_volume(&self, volume: &Id, read: &VolumeRead) -> VolumeReader<'_> {
        VolumeReader {
            repo: self,
            volume: *volume,
            reader: self
                .store()
                .read_range(&pack_key(volume), read.start, read.len),
        }
    }
}

impl VolumeReader<'_> {
    /// The next wanted blob of the read (each at or after the one before), authenticated
    /// and decoded.
    pub(crate) fn blob(&mut self, blob: &WantedBlob) -> Result<Vec<u8>> {
        let entry = self
            .reader
            .read_at(u64::from(blob.offset), blob.length as usize)?;
        self.repo.decode_entry(&blob.id, &self.volume, &entry)
    }

    /// The next wanted blob of the read as it is stored (header and sealed payload),
    /// authenticated but not opened: what a copy moves.
    pub(crate) fn sealed_blob(
        &mut self,
        blob: &WantedBlob,
    ) -> Result<crate::format::pack::EncodedBlob> {
        let entry = self
            .reader
            .read_at(u64::from(blob.offset), blob.length as usize)?;
        crate::format::pack::authenticate_entry(self.repo.key(), blob.id, entry)
            .map_err(|e| Error::corrupt(format!("volume {}: {e}", self.volume.short())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(offset: u32, length: u32) -> WantedBlob {
        WantedBlob {
            id: Id([offset as u8; 32]),
            offset,
            length,
        }
    }

    const C: Coalescing = Coalescing {
        gap: 100,
        max_read: 1000,
    };

    #[test]
    fn neighbours_within_the_gap_share_one_read() {
        let blobs = [blob(8, 50), blob(58, 50), blob(200, 10), blob(400, 10)];
        let reads = plan_volume_reads(&blobs, C);
        assert_eq!(
            reads,
            vec![
                VolumeRead {
                    blobs: 0..3,
                    start: 8,
                    len: 202
                },
                VolumeRead {
                    blobs: 3..4,
                    start: 400,
                    len: 10
                },
            ]
        );
    }

    #[test]
    fn a_read_stops_growing_at_its_limit_but_a_long_blob_still_gets_one() {
        let blobs = [blob(0, 600), blob(600, 600), blob(1200, 2000)];
        let reads = plan_volume_reads(&blobs, C);
        assert_eq!(reads.len(), 3);
        assert_eq!((reads[2].start, reads[2].len), (1200, 2000));
    }

    #[test]
    fn every_blob_lies_inside_its_read() {
        let blobs: Vec<_> = (0..200).map(|i| blob(i * 37, 20 + i % 30)).collect();
        for c in [
            C,
            Coalescing {
                gap: 0,
                max_read: 1,
            },
        ] {
            let reads = plan_volume_reads(&blobs, c);
            let mut covered = 0;
            for r in &reads {
                assert_eq!(r.blobs.start, covered);
                covered = r.blobs.end;
                for b in &blobs[r.blobs.clone()] {
                    assert!(u64::from(b.offset) >= r.start && b.end() <= r.start + r.len);
                }
            }
            assert_eq!(covered, blobs.len());
        }
    }
}
