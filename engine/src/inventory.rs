//! Media inventory: every volume with its size, live bytes, the runs that need it and its
//! state, plus totals per source and per level and the dedup and compression ratios.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Result;
use crate::format::index::MasterIndex;
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
    /// The volume's id in hex.
    pub volume: String,
    /// Short label for humans: the first 8 hex digits.
    pub label: String,
    /// What the volume holds: `data` (file content) or `tree` (directory listings).
    pub kind: &'static str,
    /// Its stored size in bytes.
    pub size: u64,
    /// Blobs in it.
    pub blobs: usize,
    /// Bytes of blobs some retained run needs.
    pub live_bytes: u64,
    /// Labels of the runs that need it.
    pub runs: Vec<String>,
    /// Whether it is in use, reclaimable or marked.
    pub state: VolumeState,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// When a purge marked it, if one did.
    pub marked_at: Option<DateTime<Utc>>,
}

/// Totals for one source name across runs.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceTotals {
    /// Runs holding the source.
    pub runs: usize,
    /// Logical size in the newest run.
    pub newest_bytes: u64,
    /// Files in the newest run.
    pub newest_files: u64,
    /// New data each run added, summed.
    pub bytes_added: u64,
}

/// Totals for one level across runs.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LevelTotals {
    /// Runs at the level.
    pub runs: usize,
    /// Bytes the runs read from their sources, summed.
    pub bytes_read: u64,
    /// New data the runs added, summed.
    pub bytes_added: u64,
}

/// The whole inventory.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryReport {
    /// Every volume.
    pub volumes: Vec<VolumeInfo>,
    /// How many volumes.
    pub volume_count: usize,
    /// Their stored size.
    pub volume_bytes: u64,
    /// Bytes of blobs retained runs need.
    pub live_bytes: u64,
    /// Bytes a purge could reclaim.
    pub reclaimable_bytes: u64,
    /// Sum over runs of each run's logical size: what restoring every run would write.
    pub logical_bytes: u64,
    /// Plaintext size of the distinct data chunks the runs need.
    pub unique_bytes: u64,
    /// Stored size of those chunks (compressed and sealed).
    pub stored_bytes: u64,
    /// `logical_bytes / unique_bytes`: how much deduplication saves.
    pub dedup_ratio: f64,
    /// `unique_bytes / stored_bytes`: how much compression saves.
    pub compression_ratio: f64,
    /// Totals per source name.
    pub per_source: BTreeMap<String, SourceTotals>,
    /// Totals per level.
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
    let attribution = attribute(repo, &index, &runs);
    let (mut volumes, unique_bytes, stored_bytes) =
        indexed_volumes(&index, &marks, &attribution.live);
    classify(&mut volumes, &attribution.runs_of_pack, &runs, &archived);
    volumes.extend(unindexed_volumes(repo, &index, &marks)?);
    let (per_source, per_level) = totals(&runs);

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

/// Which blobs the runs need, and which runs need each indexed volume.
struct Attribution {
    live: HashSet<Id>,
    /// Per volume, in index order: the positions (in the catalog) of the runs needing it.
    runs_of_pack: Vec<Vec<usize>>,
}

/// Walk every run's trees (each listing read once however many runs share it).
fn attribute(repo: &Repository<Indexed>, index: &MasterIndex, runs: &[RunManifest]) -> Attribution {
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
            let Some(s) = summary(repo, &mut cache, t) else {
                continue;
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
    Attribution { live, runs_of_pack }
}

/// The listing `t` reduced to its subtrees and content blobs, read once.
fn summary<'a>(
    repo: &Repository<Indexed>,
    cache: &'a mut HashMap<Id, TreeSummary>,
    t: Id,
) -> Option<&'a TreeSummary> {
    match cache.entry(t) {
        std::collections::hash_map::Entry::Occupied(o) => Some(o.into_mut()),
        std::collections::hash_map::Entry::Vacant(v) => {
            // An unreadable listing leaves its volumes unattributed; verify reports it.
            let tree = repo.load_tree(&t).ok()?;
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
            Some(v.insert(s))
        }
    }
}

/// Every indexed volume with its blobs and live bytes; and the plaintext and stored size of
/// the live data blobs.
fn indexed_volumes(
    index: &MasterIndex,
    marks: &HashMap<Id, DateTime<Utc>>,
    live: &HashSet<Id>,
) -> (Vec<VolumeInfo>, u64, u64) {
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
    (volumes, unique_bytes, stored_bytes)
}

/// Name the runs needing each indexed volume, and say what state it is in.
fn classify(
    volumes: &mut [VolumeInfo],
    runs_of_pack: &[Vec<usize>],
    runs: &[RunManifest],
    archived: &HashSet<String>,
) {
    for (v, needed_by) in volumes.iter_mut().zip(runs_of_pack) {
        v.runs = needed_by.iter().map(|&r| runs[r].label.clone()).collect();
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
}

/// Volumes in storage that no index names: marked ones, or leftovers of an interrupted
/// backup.
fn unindexed_volumes(
    repo: &Repository<Indexed>,
    index: &MasterIndex,
    marks: &HashMap<Id, DateTime<Utc>>,
) -> Result<Vec<VolumeInfo>> {
    let indexed: HashSet<Id> = index.packs().iter().map(|p| p.id).collect();
    Ok(repo
        .list_volumes()?
        .into_iter()
        .filter(|(id, _)| !indexed.contains(id))
        .map(|(id, size)| VolumeInfo {
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
        })
        .collect())
}

/// Totals per source (new bytes shared out by bytes read, since runs count them whole) and
/// per level (every level listed, run or not).
fn totals(
    runs: &[RunManifest],
) -> (
    BTreeMap<String, SourceTotals>,
    BTreeMap<String, LevelTotals>,
) {
    let mut per_source: BTreeMap<String, SourceTotals> = BTreeMap::new();
    let mut per_level: BTreeMap<String, LevelTotals> = BTreeMap::new();
    for run in runs {
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
    for run in runs {
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
    (per_source, per_level)
}
