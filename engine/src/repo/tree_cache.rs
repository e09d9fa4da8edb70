//! Tree volumes of an object store, kept on local disk once they are known to be wanted.
//!
//! Tree blobs are small and many (one per directory). Locally each is read where the index
//! places it. From an object store one request per tree would make walking a run cost a
//! round trip per directory, so a tree volume is fetched whole the second time one of its
//! trees is wanted (the first time only the tree itself is fetched, so reading one tree of
//! a large volume costs one small request) and then served from a spill file. The spill
//! file is anonymous (unlinked at creation) and holds each volume once; memory holds only
//! where each volume sits in it, so walking trees that span many volumes neither refetches
//! them nor grows the heap.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use crate::id::Id;

#[derive(Debug, Default)]
struct Spill {
    /// Created at the first spilled volume; `None` also after creating it failed.
    file: Option<Arc<File>>,
    failed: bool,
    len: u64,
    /// Where each spilled volume starts in the file, and its size.
    volumes: HashMap<Id, (u64, u64)>,
    /// Volumes one tree was read from already.
    touched: HashSet<Id>,
}

/// What to do for a tree blob of a remote volume.
#[derive(Debug)]
pub(super) enum TreeRead {
    /// The volume is spilled: read the entry from this file at this offset.
    Spilled(Arc<File>, u64),
    /// Fetch the volume whole and spill it.
    FetchVolume,
    /// Fetch only this blob's range.
    FetchRange,
}

/// Tree volumes spilled to local disk, shared by the clones of a repository handle.
#[derive(Debug, Default)]
pub(super) struct TreeVolumeCache {
    spill: Mutex<Spill>,
}

impl TreeVolumeCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Spill> {
        self.spill.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How to read a tree blob at `offset` of `volume`.
    pub(crate) fn plan(&self, volume: &Id, offset: u64) -> TreeRead {
        let mut s = self.lock();
        if let (Some(&(start, _)), Some(file)) = (s.volumes.get(volume), &s.file) {
            return TreeRead::Spilled(file.clone(), start + offset);
        }
        if s.failed || s.touched.insert(*volume) {
            TreeRead::FetchRange
        } else {
            TreeRead::FetchVolume
        }
    }

    /// Keep a fetched volume. A failure to spill is not an error: reads fall back to one
    /// request per tree.
    pub(crate) fn insert(&self, volume: Id, bytes: &[u8]) {
        let mut s = self.lock();
        if s.volumes.contains_key(&volume) || s.failed {
            return;
        }
        if s.file.is_none() {
            match spill_file() {
                Ok(f) => s.file = Some(Arc::new(f)),
                Err(e) => {
                    tracing::warn!(
                        "no temporary file for tree volumes ({e}); reading listings one request each"
                    );
                    s.failed = true;
                    return;
                }
            }
        }
        let start = s.len;
        let written = s
            .file
            .as_ref()
            .map(|f| f.write_all_at(bytes, start))
            .unwrap_or_else(|| Err(io::Error::other("no spill file")));
        match written {
            Ok(()) => {
                s.len += bytes.len() as u64;
                s.volumes.insert(volume, (start, bytes.len() as u64));
            }
            Err(e) => {
                tracing::warn!(
                    "writing a tree volume to a temporary file failed ({e}); reading listings one request each"
                );
                s.failed = true;
            }
        }
    }

    /// Forget every spilled volume and give the disk space back.
    pub(crate) fn clear(&self) {
        let mut s = self.lock();
        if let Some(f) = &s.file {
            let _ = f.set_len(0);
        }
        s.len = 0;
        s.volumes.clear();
        s.touched.clear();
    }
}

/// An anonymous file in the temporary directory: removed from the directory at once, so
/// nothing is left behind however the process ends.
fn spill_file() -> io::Result<File> {
    let dir = std::env::temp_dir();
    let path = dir.join(format!(
        ".holdfast-trees-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

pub(super) type SharedTreeCache = Arc<TreeVolumeCache>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_is_fetched_whole_on_its_second_tree_and_then_read_from_disk() {
        let cache = TreeVolumeCache::default();
        let v = Id([7; 32]);
        assert!(matches!(cache.plan(&v, 10), TreeRead::FetchRange));
        assert!(matches!(cache.plan(&v, 20), TreeRead::FetchVolume));
        cache.insert(v, b"0123456789abcdefghij-tree-");
        match cache.plan(&v, 20) {
            TreeRead::Spilled(f, at) => {
                let mut buf = [0u8; 6];
                f.read_exact_at(&mut buf, at).unwrap();
                assert_eq!(&buf, b"-tree-");
            }
            other => panic!("expected a spilled read, got {other:?}"),
        }
        cache.clear();
        assert!(matches!(cache.plan(&v, 20), TreeRead::FetchRange));
    }
}
