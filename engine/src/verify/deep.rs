//! Reading volumes back: SHA-256 name, trailer against index, every blob authenticated.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::format::index::MasterIndex;
use crate::format::pack::{PackEntry, decode_blob, read_trailer};
use crate::id::Id;
use crate::progress::Progress;
use crate::repo::{Indexed, Repository};
use crate::storage::pack_key;

/// Outcome of reading one volume.
#[derive(Debug)]
pub(super) struct VolumeResult {
    pub volume: Id,
    pub bytes: u64,
    pub problem: Option<String>,
    /// Indexed blobs of this volume that did not read back intact.
    pub bad_blobs: HashSet<Id>,
}

/// All volumes, or a pseudo-random sample of `percent` of them (at least one).
pub(super) fn choose(all: impl Iterator<Item = Id>, percent: Option<f64>) -> Vec<Id> {
    let all: Vec<Id> = all.collect();
    let Some(p) = percent else { return all };
    let want = ((all.len() as f64) * p / 100.0).ceil().max(1.0) as usize;
    let seed: [u8; 8] = crate::crypto::random_bytes().unwrap_or([7; 8]);
    let seed = u64::from_le_bytes(seed);
    let mut keyed: Vec<(u64, Id)> = all
        .into_iter()
        .map(|id| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&id.0[..8]);
            (u64::from_le_bytes(b) ^ seed, id)
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().take(want).map(|(_, id)| id).collect()
}

fn check_one(
    repo: &Repository<Indexed>,
    expected: &[(Id, u32, u32)],
    volume: Id,
    buf: &mut Vec<u8>,
) -> VolumeResult {
    let mut result = VolumeResult {
        volume,
        bytes: 0,
        problem: None,
        bad_blobs: HashSet::new(),
    };
    let bytes = match repo.store().get_into(&pack_key(&volume), buf) {
        Ok(()) => &buf[..],
        Err(e) => {
            result.problem = Some(format!("unreadable: {e}"));
            result.bad_blobs = expected.iter().map(|e| e.0).collect();
            return result;
        }
    };
    result.bytes = bytes.len() as u64;
    let mut problems = Vec::new();
    if Id::sha256(bytes) != volume {
        problems.push("content does not match its SHA-256 name".to_owned());
    }
    match read_trailer(repo.key(), bytes) {
        Ok(entries) => {
            let by_id: HashMap<Id, PackEntry> = entries.iter().map(|e| (e.header.id, *e)).collect();
            let missing = expected
                .iter()
                .filter(|(id, off, len)| {
                    by_id
                        .get(id)
                        .is_none_or(|e| e.offset != *off || e.header.entry_len() != *len)
                })
                .count();
            if missing > 0 {
                problems.push(format!(
                    "{missing} indexed blobs disagree with the volume's own trailer"
                ));
            }
        }
        Err(e) => problems.push(format!("trailer: {e}")),
    }
    for (id, off, len) in expected {
        let (start, end) = (*off as usize, *off as usize + *len as usize);
        let ok = bytes.get(start..end).is_some_and(
            |entry| matches!(decode_blob(repo.key(), entry), Ok((h, _)) if h.id == *id),
        );
        if !ok {
            result.bad_blobs.insert(*id);
        }
    }
    if !result.bad_blobs.is_empty() {
        problems.push(format!(
            "{} of {} blobs fail authentication or do not decode",
            result.bad_blobs.len(),
            expected.len()
        ));
    }
    if !problems.is_empty() {
        result.problem = Some(problems.join("; "));
    }
    result
}

/// Read the given volumes on a few threads.
pub(super) fn check_volumes(
    repo: &Repository<Indexed>,
    index: &MasterIndex,
    volumes: &[Id],
    progress: &Progress,
) -> Vec<VolumeResult> {
    let wanted: HashSet<Id> = volumes.iter().copied().collect();
    let mut expected: HashMap<Id, Vec<(Id, u32, u32)>> = HashMap::new();
    for e in index.entries() {
        let pack = index.pack_id(e);
        if wanted.contains(&pack) {
            expected
                .entry(pack)
                .or_default()
                .push((e.id, e.offset, e.length));
        }
    }
    let queue = Mutex::new(volumes.iter().copied());
    let results = Mutex::new(Vec::with_capacity(volumes.len()));
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = Vec::new();
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                    let Some(volume) = next else { break };
                    let r = check_one(
                        repo,
                        expected.get(&volume).map(Vec::as_slice).unwrap_or(&[]),
                        volume,
                        &mut buf,
                    );
                    progress.add_done(1, r.bytes);
                    results.lock().unwrap_or_else(|p| p.into_inner()).push(r);
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner())
}
