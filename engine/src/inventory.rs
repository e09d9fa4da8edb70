//! Media inventory: every volume with its size, live bytes, the runs that need it and its
//! state, plus totals per source and per level and the dedup and compression ratios.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Result;
use crate::format::pack::BlobKind;
use crate::format::run::{Level, RunManifest};
use crate::format::tree::NodeKind;
use crate::id::Id;
use crate::repo::{Indexed, Repository};

/// A volume is reclaimable when less than this share of it is live.
pub const RECLAIMABLE_BELOW: f64 = 0.5;

/// Where a volume stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeState {
    /// Mostly live data.
    Active,
    /// Needed by an archived run (kept regardless of retention).
    Archived,
    /// Less than half live: a purge would repack it.
    Reclaimable,
    /// Nothing live: a purge will mark it.
    Dead,
    /// Marked by a purge, deleted after the grace period.
    Marked,
    /// No index names it (left by an interrupted backup).
    Unreferenced,
}

/// One volume.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeInfo {
    pub volume: String,
    /// Short label for humans: the first 8 hex digits.
    pub label: String,
    pub kind: &'static str,
    pub size: u64,
    pub blobs: usize,
    pub live_bytes: u64,
    pub runs: Vec<String>,
    pub state: VolumeState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marked_at: Option<DateTime<Utc>>,
}

/// Totals for one source name across runs.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceTotals {
    pub runs: usize,
    /// Logical size in the newest run.
    pub newest_bytes: u64,
    pub newest_files: u64,
    /// New data each run added, summed.
    pub bytes_added: u64,
}

/// Totals for one level across runs.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LevelTotals {
    pub runs: usize,
    pub bytes_read: u64,
    pub bytes_added: u64,
}

/// The whole inventory.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryReport {
    pub volumes: Vec<VolumeInfo>,
    pub volume_count: usize,
    pub volume_bytes: u64,
    pub live_bytes: u64,
    pub reclaimable_bytes: u64,
    /// Sum over runs of each run's logical size: what restoring every run would write.
    pub logical_bytes: u64,
    /// Plaintext size of the distinct data chunks the runs need.
    pub unique_bytes: u64,
    /// Stored size of those chunks (compressed and sealed).
    pub stored_bytes: u64,
    pub dedup_ratio: f64,
    pub compression_ratio: f64,
    pub per_source: BTreeMap<String, SourceTotals>,
    pub per_level: BTreeMap<String, LevelTotals>,
}

/// A tree reduced to what the inventory needs, cached so runs sharing trees cost one read.
struct TreeSummary {
    subtrees: Vec<Id>,
    blobs: Vec<Id>,
}

/// Build the inventory.
pub fn inventory(repo: &Repository<Indexed>) -> Result<InventoryReport> {
    let index = repo.index().clone();
    let runs: Vec<RunManifest> = repo.runs()?;
    let archived = repo.archived_labels()?;
    let marks: HashMap<Id, DateTime<Utc>> = repo
        .marks()?
        .into_iter()
        .flat_map(|(_, r)| r.volumes.into_iter().map(move |v| (v, r.marked_at)))
        .collect();
    let pack_pos: HashMap<Id, usize> = index
        .packs()
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id, i))
        .collect();

    let mut cache: HashMap<Id, TreeSummary> = HashMap::new();
    let mut runs_of_pack: Vec<Vec<usize>> = vec![Vec::new(); index.packs().len()];
    let mut live: HashSet<Id> = HashSet::new();
    for (ri, run) in runs.iter().enumerate() {
        let mut seen_trees = HashSet::new();
        let mut packs_seen = vec![false; index.packs().len()];
        let mut stack: Vec<Id> = run.sources.iter().filter_map(|s| s.tree).collect();
        while let Some(t) = stack.pop() {
            if !seen_trees.insert(t) {
                continue;
            }
            let s = match cache.entry(t) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    // An unreadable listing leaves its volumes unattributed; verify reports it.
                    let Ok(tree) = repo.load_tree(&t) else {
                        continue;
                    };
                    let mut s = TreeSummary {
                        subtrees: Vec::new(),
                        blobs: Vec::new(),
                    };
                    for n in tree.nodes {
                        match n.kind {
                            NodeKind::Dir => s.subtrees.extend(n.subtree),
                            NodeKind::File => s.blobs.extend(n.content),
                            _ => {}
                        }
                    }
                    v.insert(s)
                }
            };
            stack.extend(s.subtrees.iter().copied());
            for b in std::iter::once(&t).chain(&s.blobs) {
                live.insert(*b);
                if let Some(loc) = index.lookup(b)
                    && let Some(&p) = pack_pos.get(&loc.pack)
                    && !packs_seen[p]
                {
                    packs_seen[p] = true;
                    runs_of_pack[p].push(ri);
                }
            }
        }
    }

    let mut volumes: Vec<VolumeInfo> = index
        .packs()
        .iter()
        .map(|p| VolumeInfo {
            volume: p.id.to_hex(),
            label: p.id.short(),
            kind: "data",
            size: p.size,
            blobs: 0,
            live_bytes: 0,
            runs: Vec::new(),
            state: VolumeState::Active,
            marked_at: marks.get(&p.id).copied(),
        })
        .collect();
    let (mut unique_bytes, mut stored_bytes) = (0u64, 0u64);
    for e in index.entries() {
        let v = &mut volumes[e.pack as usize];
        v.blobs += 1;
        if e.kind == BlobKind::Tree {
            v.kind = "tree";
        }
        if live.contains(&e.id) {
            v.live_bytes += u64::from(e.length);
            if e.kind == BlobKind::Data {
                unique_bytes += u64::from(e.raw_len);
                stored_bytes += u64::from(e.length);
            }
        }
    }
    for (i, v) in volumes.iter_mut().enumerate() {
        v.runs = runs_of_pack[i]
            .iter()
            .map(|&r| runs[r].label.clone())
            .collect();
        v.state = if v.marked_at.is_some() {
            VolumeState::Marked
        } else if v.live_bytes == 0 {
            VolumeState::Dead
        } else if v.runs.iter().any(|r| archived.contains(r)) {
            VolumeState::Archived
        } else if (v.live_bytes as f64) < RECLAIMABLE_BELOW * v.size as f64 {
            VolumeState::Reclaimable
        } else {
            VolumeState::Active
        };
    }
    let indexed: HashSet<Id> = index.packs().iter().map(|p| p.id).collect();
    for (id, size) in repo.list_volumes()? {
        if !indexed.contains(&id) {
            volumes.push(VolumeInfo {
                volume: id.to_hex(),
                label: id.short(),
                kind: "unknown",
                size,
                blobs: 0,
                live_bytes: 0,
                runs: Vec::new(),
                state: if marks.contains_key(&id) {
                    VolumeState::Marked
                } else {
                    VolumeState::Unreferenced
                },
                marked_at: marks.get(&id).copied(),
            });
        }
    }

    let mut per_source: BTreeMap<String, SourceTotals> = BTreeMap::new();
    let mut per_level: BTreeMap<String, LevelTotals> = BTreeMap::new();
    for run in &runs {
        for s in &run.sources {
            let t = per_source.entry(s.name.clone()).or_default();
            t.runs += 1;
            t.newest_bytes = s.stats.bytes_total;
            t.newest_files = s.stats.files;
        }
        let lt = per_level.entry(run.level.to_string()).or_default();
        lt.runs += 1;
        lt.bytes_read += run.stats.bytes_read;
        lt.bytes_added += run.stats.bytes_new;
    }
    // New bytes are counted per run, not per source; attribute them by share of bytes read.
    for run in &runs {
        let read: u64 = run.sources.iter().map(|s| s.stats.bytes_read).sum();
        for s in &run.sources {
            let share = if read == 0 {
                0
            } else {
                (run.stats.bytes_new as u128 * s.stats.bytes_read as u128 / read as u128) as u64
            };
            if let Some(t) = per_source.get_mut(&s.name) {
                t.bytes_added += share;
            }
        }
    }
    for level in [Level::Full, Level::Diff, Level::Incr] {
        per_level.entry(level.to_string()).or_default();
    }
    let logical_bytes: u64 = runs.iter().map(|r| r.stats.bytes_total).sum();
    let volume_bytes: u64 = volumes.iter().map(|v| v.size).sum();
    let live_bytes: u64 = volumes.iter().map(|v| v.live_bytes).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    Ok(InventoryReport {
        volume_count: volumes.len(),
        volume_bytes,
        live_bytes,
        reclaimable_bytes: volume_bytes.saturating_sub(live_bytes),
        logical_bytes,
        unique_bytes,
        stored_bytes,
        dedup_ratio: ratio(logical_bytes, unique_bytes),
        compression_ratio: ratio(unique_bytes, stored_bytes),
        per_source,
        per_level,
        volumes,
    })
}
