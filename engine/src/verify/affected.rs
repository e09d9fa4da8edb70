//! Mapping damaged volumes to the runs and files that need them.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::format::index::MasterIndex;
use crate::format::run::RunManifest;
use crate::format::tree::NodeKind;
use crate::id::Id;
use crate::repo::{Indexed, Repository};

use super::DamagedVolume;

const FILES_LISTED: usize = 1000;

/// A file (or a directory whose listing is lost) that a damaged volume affects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AffectedFile {
    /// The run's label.
    pub run: String,
    /// The file, as `source:/path`.
    pub path: String,
}

struct Mapper<'a> {
    repo: &'a Repository<Indexed>,
    /// Damaged blob → its volume.
    bad: HashMap<Id, Id>,
    /// Tree id → volumes whose damage shows below it (memoized; empty = clean).
    memo: HashMap<Id, HashSet<Id>>,
    /// Volume → affected files.
    hits: HashMap<Id, Vec<AffectedFile>>,
}

impl Mapper<'_> {
    /// Volumes whose damage reaches into this tree; records affected files for `run`.
    fn walk(&mut self, run: &str, tree: Id, path: &str, record: bool, root: bool) -> HashSet<Id> {
        if let Some(v) = self.bad.get(&tree).copied() {
            if record {
                self.hits.entry(v).or_default().push(AffectedFile {
                    run: run.into(),
                    path: format!("{path} (listing lost)"),
                });
            }
            return HashSet::from([v]);
        }
        // A clean subtree is never walked twice; a damaged one is walked again only to
        // record its paths for this run.
        if let Some(known) = self.memo.get(&tree)
            && (!record || known.is_empty())
        {
            return known.clone();
        }
        let Ok(t) = self.repo.load_tree(&tree) else {
            return HashSet::new();
        };
        let mut found = HashSet::new();
        for node in &t.nodes {
            let child = super::child_path(path, &node.name, root);
            match node.kind {
                NodeKind::Dir => {
                    if let Some(sub) = node.subtree {
                        found.extend(self.walk(run, sub, &child, record, false));
                    }
                }
                NodeKind::File => {
                    let vols: HashSet<Id> = node
                        .content
                        .iter()
                        .filter_map(|b| self.bad.get(b).copied())
                        .collect();
                    if record {
                        for v in &vols {
                            self.hits.entry(*v).or_default().push(AffectedFile {
                                run: run.into(),
                                path: child.clone(),
                            });
                        }
                    }
                    found.extend(vols);
                }
                _ => {}
            }
        }
        self.memo.insert(tree, found.clone());
        found
    }
}

/// Describe damaged volumes with the runs and files they affect.
pub(super) fn describe(
    repo: &Repository<Indexed>,
    index: &MasterIndex,
    runs: &[RunManifest],
    damaged: BTreeMap<Id, (String, HashSet<Id>)>,
) -> Vec<DamagedVolume> {
    if damaged.is_empty() {
        return Vec::new();
    }
    let mut bad = HashMap::new();
    for (vol, (_, blobs)) in &damaged {
        if blobs.is_empty() {
            // A missing or truncated volume loses every blob the index puts in it.
            for e in index.entries().iter().filter(|e| index.pack_id(e) == *vol) {
                bad.insert(e.id, *vol);
            }
        } else {
            for b in blobs {
                bad.insert(*b, *vol);
            }
        }
    }
    let mut mapper = Mapper {
        repo,
        bad,
        memo: HashMap::new(),
        hits: HashMap::new(),
    };
    let mut runs_by_volume: HashMap<Id, Vec<String>> = HashMap::new();
    for run in runs {
        for source in &run.sources {
            let Some(tree) = source.tree else { continue };
            // First a cheap pass to see whether this source is touched at all.
            let touched = mapper.walk(&run.label, tree, &format!("{}:", source.name), false, true);
            if touched.is_empty() {
                continue;
            }
            mapper.walk(&run.label, tree, &format!("{}:", source.name), true, true);
            for v in touched {
                let list = runs_by_volume.entry(v).or_default();
                if !list.contains(&run.label) {
                    list.push(run.label.clone());
                }
            }
        }
    }
    damaged
        .into_iter()
        .map(|(vol, (problem, blobs))| {
            let mut files = mapper.hits.remove(&vol).unwrap_or_default();
            files.dedup();
            let files_total = files.len();
            files.truncate(FILES_LISTED);
            DamagedVolume {
                volume: vol.to_hex(),
                problem,
                damaged_blobs: blobs.len(),
                runs: runs_by_volume.remove(&vol).unwrap_or_default(),
                files,
                files_total,
            }
        })
        .collect()
}
