//! Reading volumes back: SHA-256 name, trailer against index, every blob authenticated.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::format::index::MasterIndex;
use crate::format::pack::{FOOTER_LEN, PackEntry, parse_trailer};
use crate::id::Id;
use crate::progress::Progress;
use crate::repo::{Indexed, Repository};
use crate::storage::pack_key;

use super::volume_scan::{scan, trailer_from, volume_footer};

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

/// Bytes read from a volume at a time: a thread holds this plus the blob being checked, not
/// a whole volume.
const WINDOW: usize = 1 << 20;

fn check_one(
    repo: &Repository<Indexed>,
    expected: &[(Id, u32, u32)],
    volume: Id,
    buf: &mut Vec<u8>,
) -> VolumeResult {
    let key = pack_key(&volume);
    let scanned = match repo.store().open_now(&key) {
        Some(Ok(file)) => volume_footer(&file).and_then(|(len, footer)| {
            scan(
                repo.key(),
                expected,
                &mut &file,
                trailer_from(len, &footer),
                WINDOW,
                buf,
            )
        }),
        Some(Err(e)) => Err(e.to_string()),
        // Remote objects arrive whole anyway.
        None => repo
            .store()
            .get(&key)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                let footer = &bytes[bytes.len().saturating_sub(FOOTER_LEN)..];
                let from = trailer_from(bytes.len() as u64, footer);
                scan(repo.key(), expected, &mut &bytes[..], from, WINDOW, buf)
            }),
    };
    let scan = match scanned {
        Ok(s) => s,
        Err(e) => {
            return VolumeResult {
                volume,
                bytes: 0,
                problem: Some(format!("unreadable: {e}")),
                bad_blobs: expected.iter().map(|e| e.0).collect(),
            };
        }
    };
    let mut problems = Vec::new();
    if scan.name != volume {
        problems.push("content does not match its SHA-256 name".to_owned());
    }
    match parse_trailer(repo.key(), &scan.head, &scan.tail, scan.len) {
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
    if !scan.bad_blobs.is_empty() {
        problems.push(format!(
            "{} of {} blobs fail authentication or do not decode",
            scan.bad_blobs.len(),
            expected.len()
        ));
    }
    VolumeResult {
        volume,
        bytes: scan.len,
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
        bad_blobs: scan.bad_blobs,
    }
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
    for entries in expected.values_mut() {
        entries.sort_unstable_by_key(|e| e.1);
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
