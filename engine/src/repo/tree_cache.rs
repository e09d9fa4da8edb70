//! Whole tree volumes kept in memory while walking trees.
//!
//! Tree blobs are small and many (one per directory); reading them one request each is slow
//! on object storage. A tree volume is fetched whole on first use and kept in a small LRU,
//! so walking a run costs about one request per tree volume.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::id::Id;

/// Memory the cache may hold.
const BUDGET: usize = 64 * 1024 * 1024;

/// Volumes by id, least recently used first.
#[derive(Debug, Default)]
pub(super) struct TreeVolumeCache {
    volumes: Mutex<Vec<(Id, Bytes)>>,
}

impl TreeVolumeCache {
    pub fn get(&self, id: &Id) -> Option<Bytes> {
        let mut v = self.volumes.lock().unwrap_or_else(|p| p.into_inner());
        let pos = v.iter().position(|(k, _)| k == id)?;
        let entry = v.remove(pos);
        let bytes = entry.1.clone();
        v.push(entry);
        Some(bytes)
    }

    pub fn insert(&self, id: Id, bytes: Bytes) {
        if bytes.len() > BUDGET / 4 {
            return;
        }
        let mut v = self.volumes.lock().unwrap_or_else(|p| p.into_inner());
        v.retain(|(k, _)| *k != id);
        v.push((id, bytes));
        while v.iter().map(|(_, b)| b.len()).sum::<usize>() > BUDGET && v.len() > 1 {
            v.remove(0);
        }
    }

    pub fn clear(&self) {
        self.volumes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

pub(super) type SharedTreeCache = Arc<TreeVolumeCache>;
