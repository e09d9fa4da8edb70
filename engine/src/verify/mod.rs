//! Coherency checks (Zextras' "coherency check", restic's `check`).
//!
//! Quick: every volume the index names exists with the recorded size, every run's trees
//! load and decode, and every data blob a file references is indexed with sizes that add
//! up. Deep: additionally read every volume (or a sample), check its SHA-256 name, its
//! trailer against the index, and authenticate, decompress and re-MAC every blob. Damaged
//! volumes are reported with exactly the runs and files they affect.

mod affected;
mod deep;
mod volume_scan;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use serde::Serialize;

use crate::Result;
use crate::format::config::Operation;
use crate::format::index::MasterIndex;
use crate::format::pack::BlobKind;
use crate::format::run::RunManifest;
use crate::format::tree::NodeKind;
use crate::id::Id;
use crate::progress::Progress;
use crate::repo::{Indexed, Repository};

pub use affected::AffectedFile;

/// How thoroughly to check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VerifyDepth {
    /// Check the index, the runs and the trees; read no volume.
    Quick,
    /// Read volumes: all of them, or a random sample of this percentage.
    Deep {
        /// Percentage of volumes to read (`None`: all of them).
        sample_percent: Option<f64>,
    },
}

/// A volume found damaged or missing.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DamagedVolume {
    /// The volume's id in hex.
    pub volume: String,
    /// What is wrong with it.
    pub problem: String,
    /// Blobs in it that are damaged.
    pub damaged_blobs: usize,
    /// Runs that need it.
    pub runs: Vec<String>,
    /// Affected files (first 1000) as `run  source:/path`.
    pub files: Vec<AffectedFile>,
    /// How many files are affected in all.
    pub files_total: usize,
}

/// The verify result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// How deep the check went: `quick`, `deep` or `deep (sample N%)`.
    pub depth: String,
    /// True only if volume contents were read and authenticated (deep, no sampling).
    pub data_verified: bool,
    /// Whether nothing was found wrong.
    pub ok: bool,
    /// Runs checked.
    pub runs_checked: usize,
    /// Directory listings checked.
    pub trees_checked: usize,
    /// Blobs the index names.
    pub blobs_indexed: usize,
    /// Volumes the index names.
    pub volumes_indexed: usize,
    /// Volumes read.
    pub volumes_read: usize,
    /// Bytes read.
    pub bytes_read: u64,
    /// Structural problems outside any one volume (missing blobs, bad sizes, bad manifests).
    pub problems: Vec<String>,
    /// Volumes found damaged or missing.
    pub damaged_volumes: Vec<DamagedVolume>,
    /// Volumes no index names: leftovers of an interrupted backup, removed by the next purge.
    pub unreferenced_volumes: Vec<String>,
    /// Wall time of the check.
    pub duration_ms: u64,
}

const MAX_PROBLEMS: usize = 1000;

/// Display path of a tree entry: `source:/dir/name`. A source's root tree holds one node,
/// the source root itself, shown as `source:/`.
pub(crate) fn child_path(parent: &str, name: &[u8], parent_is_root_tree: bool) -> String {
    if parent_is_root_tree {
        format!("{parent}/")
    } else {
        format!(
            "{}/{}",
            parent.trim_end_matches('/'),
            String::from_utf8_lossy(name)
        )
    }
}

struct Checker<'a> {
    repo: &'a Repository<Indexed>,
    index: &'a MasterIndex,
    problems: Vec<String>,
    problem_count: usize,
    trees_seen: HashSet<Id>,
}

impl Checker<'_> {
    fn problem(&mut self, msg: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(msg);
        }
    }

    /// Check one tree and everything below it, each distinct tree once.
    fn check_tree(&mut self, run: &str, id: Id, path: &str, root: bool) {
        if !self.trees_seen.insert(id) {
            return;
        }
        match self.index.lookup(&id) {
            Some(loc) if loc.kind == BlobKind::Tree => {}
            Some(_) => {
                return self.problem(format!(
                    "{run} {path}: listing {} is indexed as data",
                    id.short()
                ));
            }
            None => {
                return self.problem(format!(
                    "{run} {path}: listing {} is missing from the index",
                    id.short()
                ));
            }
        }
        let tree = match self.repo.load_tree(&id) {
            Ok(t) => t,
            Err(e) => return self.problem(format!("{run} {path}: listing unreadable: {e}")),
        };
        for node in &tree.nodes {
            let child = child_path(path, &node.name, root);
            match node.kind {
                NodeKind::Dir => match node.subtree {
                    Some(sub) => self.check_tree(run, sub, &child, false),
                    None => self.problem(format!("{run} {child}: directory without a listing")),
                },
                NodeKind::File => {
                    let mut total = 0u64;
                    for blob in &node.content {
                        match self.index.lookup(blob) {
                            Some(loc) if loc.kind == BlobKind::Data => {
                                total += u64::from(loc.raw_len)
                            }
                            Some(_) => self.problem(format!(
                                "{run} {child}: blob {} is a listing, not data",
                                blob.short()
                            )),
                            None => self.problem(format!(
                                "{run} {child}: data blob {} is missing",
                                blob.short()
                            )),
                        }
                    }
                    let expected: u64 = node.data_extents().iter().map(|e| e.len).sum();
                    if total != expected && node.content.iter().all(|b| self.index.contains(b)) {
                        self.problem(format!(
                            "{run} {child}: data adds up to {total} bytes, the file had {expected}"
                        ));
                    }
                }
                _ => {}
            }
        }
    }
}

/// Check the repository (failing at once if it is exclusively locked).
pub fn verify(
    repo: &Repository<Indexed>,
    depth: VerifyDepth,
    progress: &Progress,
) -> Result<VerifyReport> {
    verify_with(repo, depth, std::time::Duration::ZERO, progress)
}

/// Check the repository, waiting up to `lock_wait` for an exclusive lock to go away.
pub fn verify_with(
    repo: &Repository<Indexed>,
    depth: VerifyDepth,
    lock_wait: std::time::Duration,
    progress: &Progress,
) -> Result<VerifyReport> {
    let started = Instant::now();
    repo.check_features(Operation::Check)?;
    let _lock = repo.lock(crate::repo::LockKind::Shared, "verify", lock_wait)?;
    let index = repo.index().clone();
    let listed: HashMap<Id, u64> = repo.list_volumes()?.into_iter().collect();

    let mut checker = Checker {
        repo,
        index: &index,
        problems: Vec::new(),
        problem_count: 0,
        trees_seen: HashSet::new(),
    };
    let (mut damaged, unreferenced) = stored_volumes(&index, &listed);
    let runs: Vec<RunManifest> = match repo.runs() {
        Ok(r) => r,
        Err(e) => {
            checker.problem(format!("run catalog unreadable: {e}"));
            Vec::new()
        }
    };
    check_runs(&mut checker, &runs, progress);
    let data_verified = matches!(
        depth,
        VerifyDepth::Deep {
            sample_percent: None
        }
    );
    let (volumes_read, bytes_read) = match depth {
        VerifyDepth::Deep { sample_percent } => {
            read_volumes(repo, &listed, &mut damaged, sample_percent, progress)
        }
        VerifyDepth::Quick => (0, 0),
    };
    progress
        .totals_final
        .store(true, std::sync::atomic::Ordering::Relaxed);

    let damaged_volumes = affected::describe(repo, &index, &runs, damaged);
    let problems = checker.problems;
    let ok = checker.problem_count == 0 && damaged_volumes.is_empty();
    Ok(VerifyReport {
        depth: depth.describe(),
        data_verified,
        ok,
        runs_checked: runs.len(),
        trees_checked: checker.trees_seen.len(),
        blobs_indexed: index.blob_count(),
        volumes_indexed: index.packs().len(),
        volumes_read,
        bytes_read,
        problems,
        damaged_volumes,
        unreferenced_volumes: unreferenced,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// What a volume's problem is, and which of its blobs are damaged (none known: all).
type Damaged = BTreeMap<Id, (String, HashSet<Id>)>;

/// Volumes the index names must exist with their recorded size: those that do not, and the
/// volumes in storage no index names.
fn stored_volumes(index: &MasterIndex, listed: &HashMap<Id, u64>) -> (Damaged, Vec<String>) {
    let mut damaged = Damaged::new();
    for p in index.packs() {
        match listed.get(&p.id) {
            None => {
                damaged.insert(p.id, ("missing from storage".into(), HashSet::new()));
            }
            Some(&size) if size != p.size => {
                damaged.insert(
                    p.id,
                    (
                        format!("size is {size} bytes, the index says {}", p.size),
                        HashSet::new(),
                    ),
                );
            }
            Some(_) => {}
        }
    }
    let indexed: HashSet<Id> = index.packs().iter().map(|p| p.id).collect();
    let unreferenced = listed
        .keys()
        .filter(|id| !indexed.contains(id))
        .map(|id| id.to_hex())
        .collect();
    (damaged, unreferenced)
}

/// Every run's trees, down to each blob's index entry.
fn check_runs(checker: &mut Checker<'_>, runs: &[RunManifest], progress: &Progress) {
    progress.add_total(runs.len() as u64, 0);
    for run in runs {
        for source in &run.sources {
            if let Some(tree) = source.tree {
                checker.check_tree(&run.label, tree, &format!("{}:", source.name), true);
            }
        }
        progress.add_done(1, 0);
    }
}

/// Read and authenticate the volumes not already known damaged (all, or a sample of
/// `sample_percent`), adding those found damaged. How many volumes and bytes were read.
fn read_volumes(
    repo: &Repository<Indexed>,
    listed: &HashMap<Id, u64>,
    damaged: &mut Damaged,
    sample_percent: Option<f64>,
    progress: &Progress,
) -> (usize, u64) {
    repo.drop_cached_trees();
    let index = repo.index();
    let to_read: Vec<Id> = deep::choose(
        index
            .packs()
            .iter()
            .map(|p| p.id)
            .filter(|id| !damaged.contains_key(id)),
        sample_percent,
    );
    let sizes: u64 = to_read.iter().filter_map(|id| listed.get(id)).sum();
    progress.add_total(to_read.len() as u64, sizes);
    let mut bytes_read = 0;
    for r in deep::check_volumes(repo, index, &to_read, progress) {
        bytes_read += r.bytes;
        if let Some(problem) = r.problem {
            damaged.insert(r.volume, (problem, r.bad_blobs));
        }
    }
    (to_read.len(), bytes_read)
}

impl VerifyDepth {
    /// `quick`, `deep` or `deep (sample N%)`, as the report says it.
    fn describe(self) -> String {
        match self {
            VerifyDepth::Quick => "quick".into(),
            VerifyDepth::Deep {
                sample_percent: None,
            } => "deep".into(),
            VerifyDepth::Deep {
                sample_percent: Some(p),
            } => format!("deep (sample {p}%)"),
        }
    }
}
